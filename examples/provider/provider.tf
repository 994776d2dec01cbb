terraform {
  required_version = ">= 1.10"
  required_providers {
    ccsecrets = {
      source  = "ccsecrets/ccsecrets"
      version = "~> 0.1"
    }
  }
}

# The vault attributes fall back to the variables the Vault CLI uses (VAULT_ADDR,
# VAULT_TOKEN or ~/.vault-token, VAULT_NAMESPACE, VAULT_CACERT), so in CI this block can
# be empty. Prefer a login method (auth_jwt, auth_approle, auth_kubernetes) to a token.
provider "ccsecrets" {
  vault {
    address = "https://vault.example.com:8200"
  }
}
