variable "role_arn" {
  description = "ARN of the IAM role strongroom runs as (the EC2 instance profile's role, or the IRSA / EKS Pod Identity role): the key policy and the role policy grant it the seal's actions."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+", var.role_arn))
    error_message = "The role_arn must be an IAM role ARN, like arn:aws:iam::111122223333:role/strongroom."
  }
}

variable "alias_name" {
  description = "The key's alias, starting with alias/ (not alias/aws/, which AWS reserves)."
  type        = string
  default     = "alias/strongroom-unseal"

  validation {
    condition     = can(regex("^alias/[a-zA-Z0-9/_-]+$", var.alias_name)) && !startswith(var.alias_name, "alias/aws/")
    error_message = "The alias_name must start with alias/, not alias/aws/, and use only letters, digits, /, _ and -."
  }
}

variable "description" {
  description = "The key's description, shown in the KMS console."
  type        = string
  default     = "strongroom seal: wraps the root key and the recovery key (auto-unseal)"
}

variable "deletion_window_in_days" {
  description = "Days (7 to 30) between scheduling the key's deletion and KMS deleting it for good. A store whose seal key is gone cannot be unsealed by it again, so the default is the longest window."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "The deletion_window_in_days must be 7 to 30, as KMS allows."
  }
}

variable "multi_region" {
  description = "Make a multi-Region primary key, which aws_kms_replica_key can replicate to other Regions (give the replica this module's key_policy_json). For strongroom's own seal HA (enable_multiseal), use this module once per Region instead: each seal a key of its own."
  type        = bool
  default     = false
}

variable "cluster_id" {
  description = "The store's cluster_id (strongroom status, after init). When set, Encrypt and Decrypt are granted only with this cluster_id in the encryption context; null grants them for any cluster whose context has only strongroom's keys."
  type        = string
  default     = null
}

variable "create_role_policy" {
  description = "Attach the role policy (seal actions, and the Key Management actions with enable_byok) to the role in this account. Set false for a role in another account, and attach the role_policy_json output there."
  type        = bool
  default     = true
}

variable "role_policy_name" {
  description = "The name of the inline role policy."
  type        = string
  default     = "strongroom-seal"
}

variable "enable_byok" {
  description = "Also grant the role the Key Management (keymgmt, bring your own key) actions, in separate statements of the role policy: a KMS provider makes and manages its own keys, not this one."
  type        = bool
  default     = false
}

variable "byok_region" {
  description = "The Region of the Key Management provider's keys (its key_collection); null is the seal key's Region."
  type        = string
  default     = null
}

variable "seal_name" {
  description = "With enable_multiseal: the seal's name, written with seal_priority into the seal_config output. Null writes a single seal's block."
  type        = string
  default     = null
}

variable "seal_priority" {
  description = "With seal_name: the seal's priority in the seal_config output (1 is tried first)."
  type        = number
  default     = 1
}

variable "tags" {
  description = "Tags for the key."
  type        = map(string)
  default     = {}
}
