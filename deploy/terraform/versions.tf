terraform {
  # startswith() in the alias validation: 1.3.
  required_version = ">= 1.3"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_kms_key's multi_region and the data sources used here are in 5.x
      # and 6.x; nothing here reads an attribute either of them deprecates.
      version = ">= 5.0, < 7.0"
    }
  }
}
