# The access key and the DEVone application credentials live in Vault:
#   bao kv put -mount=secret cxone/prod/pipeline \
#     access_key_id=... access_key_secret=... client_id=... client_secret=...
ephemeral "ccsecrets_cxone_token" "pipeline" {
  path = "cxone/prod/pipeline"
}

# There is no official CXone provider: hand the token and the discovered API endpoint
# to whatever calls the CXone API, here a script run at apply time.
resource "terraform_data" "sync_skills" {
  provisioner "local-exec" {
    command = "curl -sSf -H \"Authorization: Bearer $CXONE_TOKEN\" \"$CXONE_API/inContactAPI/services/v25.0/server-time\""
    environment = {
      CXONE_TOKEN = ephemeral.ccsecrets_cxone_token.pipeline.access_token
      CXONE_API   = ephemeral.ccsecrets_cxone_token.pipeline.api_endpoint
    }
  }
}
