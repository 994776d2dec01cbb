# A command-line configuration reading from AWS Secrets Manager:
#   ccsecrets check --config ccsecrets-aws.hcl
#   ccsecrets exec --config ccsecrets-aws.hcl -- terraform apply -auto-approve
#
# AWS credentials come from the SDK's default chain, as for the AWS CLI (environment keys,
# AWS_PROFILE, AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE, container or instance role).
environment = "prod"

aws_secretsmanager {
  region = "eu-west-1"
  # role_arn = "arn:aws:iam::210987654321:role/cc-secrets-read-prod"   # assumed on top
}

# Sets GENESYSCLOUD_ACCESS_TOKEN and GENESYSCLOUD_REGION for the command. The secret
# genesys/prod/pipeline holds {"client_id": "...", "client_secret": "...", "region": "..."}.
genesys_token "deploy" {
  path = "genesys/{environment}/pipeline"
}

# Sets CXONE_ACCESS_TOKEN and CXONE_API_ENDPOINT. The secret cxone/prod/pipeline holds
# {"access_key_id": "...", "access_key_secret": "...", "client_id": "...", "client_secret": "..."}.
cxone_token "deploy" {
  path = "cxone/{environment}/pipeline"
}
