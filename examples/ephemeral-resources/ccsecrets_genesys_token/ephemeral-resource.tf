terraform {
  required_version = ">= 1.10"
  required_providers {
    ccsecrets = {
      source = "ccsecrets/ccsecrets"
    }
    genesyscloud = {
      source = "mypurecloud/genesyscloud"
    }
  }
}

# No provider "ccsecrets" block: the Vault address and token come from VAULT_ADDR and
# VAULT_TOKEN (or ~/.vault-token), as for the Vault CLI.

# The OAuth client (grant type Client Credentials) lives in Vault:
#   bao kv put -mount=secret genesys/prod/pipeline client_id=... client_secret=...
ephemeral "ccsecrets_genesys_token" "pipeline" {
  path   = "genesys/prod/pipeline"
  region = "us-east-1"
}

# The token goes straight into the genesyscloud provider; neither it nor the client
# secret is written to the plan or the state.
provider "genesyscloud" {
  access_token = ephemeral.ccsecrets_genesys_token.pipeline.access_token
  aws_region   = ephemeral.ccsecrets_genesys_token.pipeline.region
}

data "genesyscloud_organizations_me" "current" {}
