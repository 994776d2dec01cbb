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

# AWS credentials come from the SDK's default chain, as for the AWS CLI: in CI the keys
# aws-actions/configure-aws-credentials exports (or AWS_ROLE_ARN with
# AWS_WEB_IDENTITY_TOKEN_FILE), on a laptop AWS_PROFILE (SSO profiles work). The role needs
# secretsmanager:GetSecretValue and secretsmanager:DescribeSecret on the secret.
provider "ccsecrets" {
  environment = "prod"

  aws_secretsmanager {
    region = "eu-west-1" # the AWS region of the secret
  }
}

# The OAuth client (grant type Client Credentials) is one JSON object in the secret string,
# tagged with its environment:
#   aws secretsmanager create-secret --name genesys/prod/pipeline \
#     --secret-string '{"client_id":"...","client_secret":"..."}' \
#     --tags Key=environment,Value=prod
ephemeral "ccsecrets_genesys_token" "pipeline" {
  path   = "genesys/{environment}/pipeline" # reads genesys/prod/pipeline
  region = "us-east-1"                      # the Genesys Cloud region
}

# The token goes straight into the genesyscloud provider; neither it nor the client
# secret is written to the plan or the state.
provider "genesyscloud" {
  access_token = ephemeral.ccsecrets_genesys_token.pipeline.access_token
  aws_region   = ephemeral.ccsecrets_genesys_token.pipeline.region
}

data "genesyscloud_organizations_me" "current" {}
