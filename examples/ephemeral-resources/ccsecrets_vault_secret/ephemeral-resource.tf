# Any KV v2 secret, as an ephemeral value: here a webhook signing key for a
# write-only argument or a provisioner, without putting it in the state.
ephemeral "ccsecrets_vault_secret" "webhook" {
  path = "contact-center/prod/webhook"
}

resource "terraform_data" "register_webhook" {
  provisioner "local-exec" {
    command = "test -n \"$SIGNING_KEY\""
    environment = {
      SIGNING_KEY = ephemeral.ccsecrets_vault_secret.webhook.data["signing_key"]
    }
  }
}
