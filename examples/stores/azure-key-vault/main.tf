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

# The default configuration reads from Vault; blocks without a `provider` argument use it.
provider "ccsecrets" {
  environment = "prod"

  vault {
    address = "https://vault.example.com:8200"
  }
}

# A second configuration reads from Azure Key Vault. With no `credential` set, it signs in
# with what the environment offers: AZURE_CLIENT_SECRET, else a federated token file
# (AZURE_FEDERATED_TOKEN_FILE: GitHub Actions OIDC, AKS workload identity), else the managed
# identity that IDENTITY_ENDPOINT announces (App Service, Container Apps), else the signed-in
# Azure CLI. On a VM, set credential = "managed_identity". The identity needs the Key Vault
# Secrets User role.
provider "ccsecrets" {
  alias       = "azure"
  environment = "prod"

  azure_keyvault {
    vault_url = "https://cc-prod.vault.azure.net"
  }
}

# The OAuth client (grant type Client Credentials) is one JSON object in the secret's value,
# tagged with its environment. Key Vault names allow letters, digits and "-" only:
#   az keyvault secret set --vault-name cc-prod --name genesys-prod-pipeline \
#     --value '{"client_id":"...","client_secret":"..."}' --tags environment=prod
ephemeral "ccsecrets_genesys_token" "pipeline" {
  provider = ccsecrets.azure
  path     = "genesys-{environment}-pipeline" # reads genesys-prod-pipeline
  region   = "us-east-1"                      # the Genesys Cloud region
}

# The token goes straight into the genesyscloud provider; neither it nor the client
# secret is written to the plan or the state.
provider "genesyscloud" {
  access_token = ephemeral.ccsecrets_genesys_token.pipeline.access_token
  aws_region   = ephemeral.ccsecrets_genesys_token.pipeline.region
}

data "genesyscloud_organizations_me" "current" {}
