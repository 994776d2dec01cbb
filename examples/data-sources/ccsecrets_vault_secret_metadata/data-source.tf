# Metadata only (versions, times, custom metadata): safe in state. A rotation of the
# secret changes current_version, which shows up in the next plan.
data "ccsecrets_vault_secret_metadata" "pipeline" {
  path = "genesys/prod/pipeline"
}

output "pipeline_credential_version" {
  value = data.ccsecrets_vault_secret_metadata.pipeline.current_version
}
