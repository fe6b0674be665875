output "key_arn" {
  description = "The seal key's ARN: strongroom's kms_key_id."
  value       = aws_kms_key.seal.arn
}

output "key_id" {
  description = "The seal key's ID."
  value       = aws_kms_key.seal.key_id
}

output "alias_name" {
  description = "The key's alias."
  value       = aws_kms_alias.seal.name
}

output "alias_arn" {
  description = "The alias's ARN."
  value       = aws_kms_alias.seal.arn
}

output "key_policy_json" {
  description = "The key policy, for an aws_kms_replica_key of a multi-Region key."
  value       = data.aws_iam_policy_document.key.json
}

output "role_policy_json" {
  description = "The role policy, to attach in the role's account when create_role_policy is false."
  value       = data.aws_iam_policy_document.role.json
}

output "seal_config" {
  description = "The seal block to paste into strongroom.hcl: the key by its ARN, in its Region (with seal_name, as one of several seals)."
  value = "${join("\n", compact([
    "seal \"awskms\" {",
    var.seal_name == null ? "" : "  name       = \"${var.seal_name}\"",
    var.seal_name == null ? "" : "  priority   = ${var.seal_priority}",
    "  region     = \"${local.region}\"",
    "  kms_key_id = \"${aws_kms_key.seal.arn}\"",
    "}",
  ]))}\n"
}
