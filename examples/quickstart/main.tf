# ccsecrets quickstart: a Genesys Cloud token minted from an OAuth client kept in Vault,
# handed to the genesyscloud provider. Nothing secret is written to the plan or the state.
#
#   bao kv put -mount=secret genesys/demo/pipeline client_id=... client_secret=... region=us-east-1
#   export VAULT_ADDR=... VAULT_TOKEN=...   (or: bao login)
#   terraform init && terraform apply

terraform {
  required_version = ">= 1.10"
  required_providers {
    ccsecrets = {
      source  = "ccsecrets/ccsecrets"
      version = "~> 0.1"
    }
    genesyscloud = {
      source = "mypurecloud/genesyscloud"
    }
  }
}

variable "vault_address" {
  description = "Vault or OpenBao address (null: use VAULT_ADDR)."
  type        = string
  default     = null
}

variable "genesys_login_url" {
  description = "Token endpoint override, for a gateway or a local stand-in (null: from the region)."
  type        = string
  default     = null
}

variable "genesys_api_url" {
  description = "API override, for a gateway or a local stand-in (null: from the region)."
  type        = string
  default     = null
}

provider "ccsecrets" {
  vault {
    address = var.vault_address
  }
}

# The region comes from the secret's "region" key.
ephemeral "ccsecrets_genesys_token" "deploy" {
  path      = "genesys/demo/pipeline"
  login_url = var.genesys_login_url
  api_url   = var.genesys_api_url
}

provider "genesyscloud" {
  access_token = ephemeral.ccsecrets_genesys_token.deploy.access_token
  aws_region   = ephemeral.ccsecrets_genesys_token.deploy.region
}

data "genesyscloud_organizations_me" "current" {}

output "organization" {
  value = data.genesyscloud_organizations_me.current.name
}
