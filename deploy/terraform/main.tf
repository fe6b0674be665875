# The KMS key of strongroom's awskms seal, its alias, its key policy and the
# strongroom role's policy. The actions granted are exactly those strongroom
# calls: the seal's are strongroom::seal::awskms::SEAL_ACTIONS, Key
# Management's strongroom::seal::import::aws::BYOK_ACTIONS, and
# tests/integration/terraform.rs fails when a list here differs from the code.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  # The key's Region, read from its ARN (the provider's Region attribute
  # changed name between provider versions).
  region    = split(":", aws_kms_key.seal.arn)[3]
  role_name = regex("[^/]+$", var.role_arn)

  # The keys strongroom puts in the encryption context: purpose and
  # cluster_id, and with several seals the seal's name.
  context_keys = ["purpose", "cluster_id", "seal"]

  # The tag strongroom puts on every KMS key of a distribution
  # (DISTRIBUTION_TAG in src/seal/import/aws.rs; the test checks they agree).
  distribution_tag = "strongroom-distribution"

  # A multi-Region key and its replicas share a key ID, not a Region.
  key_resource = var.multi_region ? "arn:${local.partition}:kms:*:${local.account_id}:key/${aws_kms_key.seal.key_id}" : aws_kms_key.seal.arn

  byok_region = coalesce(var.byok_region, local.region)
}

resource "aws_kms_key" "seal" {
  description              = var.description
  key_usage                = "ENCRYPT_DECRYPT"
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  # Rotation keeps every earlier key material: stored envelopes still
  # decrypt, and the key's ARN, the one strongroom names, stays.
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  multi_region            = var.multi_region
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "seal" {
  name          = var.alias_name
  target_key_id = aws_kms_key.seal.key_id
}

# The key policy. In a key policy "*" is this key.
data "aws_iam_policy_document" "key" {
  # AWS's default statement: the account administers the key through IAM,
  # so the key cannot become unmanageable, and IAM policies (the role
  # policy below) take effect.
  statement {
    sid       = "EnableRootAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "StrongroomSealWrap"
    actions   = ["kms:Encrypt", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [var.role_arn]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "kms:EncryptionContextKeys"
      values   = local.context_keys
    }
    # ForAllValues also matches a request with no encryption context at
    # all: require one.
    condition {
      test     = "Null"
      variable = "kms:EncryptionContextKeys"
      values   = ["false"]
    }
    dynamic "condition" {
      for_each = var.cluster_id == null ? [] : [var.cluster_id]
      content {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:cluster_id"
        values   = [condition.value]
      }
    }
  }

  # DescribeKey carries no encryption context: a statement of its own.
  statement {
    sid       = "StrongroomSealDescribe"
    actions   = ["kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [var.role_arn]
    }
  }
}

# The role's own policy: the same seal actions on this key, and with
# enable_byok the Key Management actions, which are about keys that do not
# exist yet (each distribution makes its own), so they belong here and not
# in this key's policy.
data "aws_iam_policy_document" "role" {
  statement {
    sid       = "StrongroomSealWrap"
    actions   = ["kms:Encrypt", "kms:Decrypt"]
    resources = [local.key_resource]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "kms:EncryptionContextKeys"
      values   = local.context_keys
    }
    # ForAllValues also matches a request with no encryption context at
    # all: require one.
    condition {
      test     = "Null"
      variable = "kms:EncryptionContextKeys"
      values   = ["false"]
    }
    dynamic "condition" {
      for_each = var.cluster_id == null ? [] : [var.cluster_id]
      content {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:cluster_id"
        values   = [condition.value]
      }
    }
  }

  statement {
    sid       = "StrongroomSealDescribe"
    actions   = ["kms:DescribeKey"]
    resources = [local.key_resource]
  }

  # Key Management (enable_byok), in the provider's Region. Its keys do not
  # exist yet: the reads and CreateKey take "*"; CreateKey only for a key of
  # imported material (origin EXTERNAL) with the distribution tag strongroom
  # sends, and what changes a key only on such keys. This keeps the role off
  # keys made otherwise; it is not a wall against a stolen role: AWS cannot
  # tell the tagging CreateKey needs from tagging an existing key, so a role
  # holding kms:TagResource can tag another EXTERNAL key in the Region. Give
  # providers credentials in an account of their own for that.
  dynamic "statement" {
    for_each = var.enable_byok ? [local.byok_region] : []
    content {
      sid       = "StrongroomKeyMgmtRead"
      actions   = ["kms:DescribeKey", "kms:ListKeys", "kms:ListResourceTags", "kms:ListAliases"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "aws:RequestedRegion"
        values   = [statement.value]
      }
    }
  }

  dynamic "statement" {
    for_each = var.enable_byok ? [local.byok_region] : []
    content {
      sid       = "StrongroomKeyMgmtCreate"
      actions   = ["kms:CreateKey"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "aws:RequestedRegion"
        values   = [statement.value]
      }
      condition {
        test     = "StringEquals"
        variable = "kms:KeyOrigin"
        values   = ["EXTERNAL"]
      }
      condition {
        test     = "Null"
        variable = "aws:RequestTag/${local.distribution_tag}"
        values   = ["false"]
      }
    }
  }

  # What CreateKey's Tags need.
  dynamic "statement" {
    for_each = var.enable_byok ? [local.byok_region] : []
    content {
      sid       = "StrongroomKeyMgmtTag"
      actions   = ["kms:TagResource"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "aws:RequestedRegion"
        values   = [statement.value]
      }
      condition {
        test     = "Null"
        variable = "aws:RequestTag/${local.distribution_tag}"
        values   = ["false"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.enable_byok ? [local.byok_region] : []
    content {
      sid = "StrongroomKeyMgmtManage"
      actions = [
        "kms:GetParametersForImport",
        "kms:ImportKeyMaterial",
        "kms:EnableKey",
        "kms:DisableKey",
        "kms:ScheduleKeyDeletion",
      ]
      resources = ["arn:${local.partition}:kms:${statement.value}:${local.account_id}:key/*"]
      condition {
        test     = "StringEquals"
        variable = "kms:KeyOrigin"
        values   = ["EXTERNAL"]
      }
      condition {
        test     = "Null"
        variable = "aws:ResourceTag/${local.distribution_tag}"
        values   = ["false"]
      }
    }
  }

  # The seal's own key is never Key Management's: not tagged (which would
  # open the statement above to it), disabled or deleted by this role, and
  # its alias not moved or removed.
  dynamic "statement" {
    for_each = var.enable_byok ? [local.byok_region] : []
    content {
      sid    = "StrongroomKeyMgmtNotTheSealKey"
      effect = "Deny"
      actions = [
        "kms:TagResource",
        "kms:ImportKeyMaterial",
        "kms:DisableKey",
        "kms:ScheduleKeyDeletion",
        "kms:UpdateAlias",
        "kms:DeleteAlias",
      ]
      resources = [local.key_resource, aws_kms_alias.seal.arn]
    }
  }

  # AWS checks an alias action against the alias and each key it names:
  # any alias of the Region, but only on keys Key Management made.
  dynamic "statement" {
    for_each = var.enable_byok ? [local.byok_region] : []
    content {
      sid       = "StrongroomKeyMgmtAliases"
      actions   = ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"]
      resources = ["arn:${local.partition}:kms:${statement.value}:${local.account_id}:alias/*"]
    }
  }

  dynamic "statement" {
    for_each = var.enable_byok ? [local.byok_region] : []
    content {
      sid       = "StrongroomKeyMgmtAliasedKeys"
      actions   = ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"]
      resources = ["arn:${local.partition}:kms:${statement.value}:${local.account_id}:key/*"]
      condition {
        test     = "StringEquals"
        variable = "kms:KeyOrigin"
        values   = ["EXTERNAL"]
      }
      condition {
        test     = "Null"
        variable = "aws:ResourceTag/${local.distribution_tag}"
        values   = ["false"]
      }
    }
  }
}

resource "aws_iam_role_policy" "strongroom" {
  count  = var.create_role_policy ? 1 : 0
  name   = var.role_policy_name
  role   = local.role_name
  policy = data.aws_iam_policy_document.role.json
}
