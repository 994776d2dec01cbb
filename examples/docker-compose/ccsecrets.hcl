# The agent's configuration for compose.yaml.
environment = "prod"

agent {
  listen = "0.0.0.0:8765" # /healthz, /readyz, /metrics
}

genesys_token "app" {
  path = "genesys/{environment}/runtime"
  sink {
    file = "/run/ccsecrets/genesys/access_token"
  }
}
