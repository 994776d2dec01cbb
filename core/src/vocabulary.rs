//! One vocabulary: every setting's and result's name, kind, role and description, defined once.
//! The Terraform provider builds its schemas (and so the registry docs) from these words, and the
//! command line reads its configuration file with the very same names; the typed settings
//! ([`crate::settings::Settings`], [`crate::platform::genesys::GenesysSettings`], ...) decode
//! them, and their `validate` methods hold the one copy of each validation message.

use crate::platform::cxone::{DEFAULT_ISSUER, KEYS as CXONE_KEYS};
use crate::platform::regions;
use crate::pool::DEFAULT_REUSE_PERCENT;
use crate::settings::{ENVIRONMENT_ENV, KUBERNETES_JWT_FILE, OPEN_TIMEOUT, RETRIES, TIMEOUT};

/// A value's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    String,
    /// A number.
    Number,
    /// true or false.
    Bool,
    /// A map of strings.
    StringMap,
}

/// Who sets a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user must set it.
    Required,
    /// The user may set it.
    Optional,
    /// The user may set it; when not set, the default (or what was found) is reported back.
    Defaulted,
    /// A result: set by ccsecrets, never by the user.
    Result,
}

/// One word: an attribute of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Its name, the same everywhere.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Who sets it.
    pub role: Role,
    /// Whether its value is a secret.
    pub sensitive: bool,
    /// What it is, in Markdown (becomes the docs).
    pub doc: String,
}

impl Term {
    /// A word that is not a secret.
    pub fn new(name: &'static str, kind: Kind, role: Role, doc: impl Into<String>) -> Self {
        Term {
            name,
            kind,
            role,
            sensitive: false,
            doc: doc.into(),
        }
    }

    /// The same word, marked as holding a secret.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Whether a user may set it.
    pub fn settable(&self) -> bool {
        self.role != Role::Result
    }
}

/// A block of words: a resource type, the provider's settings, or a nested block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// What the block is, in Markdown.
    pub doc: String,
    /// Its attributes.
    pub terms: Vec<Term>,
    /// Its nested blocks (at most one of each), by name.
    pub blocks: Vec<(&'static str, Words)>,
}

impl Words {
    /// A block of `terms`, described by `doc`.
    pub fn new(doc: impl Into<String>, terms: Vec<Term>) -> Self {
        Words {
            doc: doc.into(),
            terms,
            blocks: Vec::new(),
        }
    }

    /// The same block with a nested block `name`.
    pub fn with_block(mut self, name: &'static str, block: Words) -> Self {
        self.blocks.push((name, block));
        self
    }

    /// The term named `name`.
    pub fn term(&self, name: &str) -> Option<&Term> {
        self.terms.iter().find(|t| t.name == name)
    }

    /// The nested block named `name`.
    pub fn block(&self, name: &str) -> Option<&Words> {
        self.blocks.iter().find(|(n, _)| *n == name).map(|(_, b)| b)
    }
}

/// The field names `T` reads (from its derived `Deserialize`), in declaration order: a typed
/// settings struct's own list of the words it understands.
pub fn field_names<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use serde::de::{self, Visitor};
    struct Names(Vec<&'static str>);
    impl<'de> de::Deserializer<'de> for &mut Names {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _v: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(fields);
            Err(de::Error::custom("names taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut n = Names(Vec::new());
    let _ = T::deserialize(&mut n);
    n.0
}

use Kind::{Bool, Number, String as Text, StringMap};
use Role::{Defaulted, Optional, Required, Result as Computed};

/// The settings every front end shares (the Terraform provider block; the top level of the
/// command line's configuration file).
pub fn settings() -> Words {
    let approle = Words::new(
        "Log in to Vault with AppRole: a `role_id` and a `secret_id` (from a value or a file).",
        vec![
            Term::new(
                "mount",
                Text,
                Optional,
                "Path of the AppRole auth method. Default `approle`.",
            ),
            Term::new("role_id", Text, Required, "The role ID."),
            Term::new(
                "secret_id",
                Text,
                Optional,
                "The secret ID. Prefer `secret_id_file` so it stays out of configuration.",
            )
            .sensitive(),
            Term::new(
                "secret_id_file",
                Text,
                Optional,
                "A file holding the secret ID (read at each login).",
            ),
        ],
    );
    let jwt = Words::new(
        "Log in to Vault with a signed JWT, for example the OIDC token of a GitHub Actions or GitLab CI job: no static secret anywhere. Give exactly one of `jwt`, `jwt_file` and `jwt_env`.",
        vec![
            Term::new(
                "mount",
                Text,
                Optional,
                "Path of the JWT auth method. Default `jwt`.",
            ),
            Term::new("role", Text, Required, "The JWT auth role to log in with."),
            Term::new("jwt", Text, Optional, "The JWT itself.").sensitive(),
            Term::new(
                "jwt_file",
                Text,
                Optional,
                "A file holding the JWT (read at each login).",
            ),
            Term::new(
                "jwt_env",
                Text,
                Optional,
                "The name of an environment variable holding the JWT (read at each login), e.g. one defined with GitLab CI's `id_tokens`, or one a GitHub Actions step filled with the job's OIDC token.",
            ),
        ],
    );
    let kubernetes = Words::new(
        "Log in to Vault with the pod's Kubernetes service account token.",
        vec![
            Term::new(
                "mount",
                Text,
                Optional,
                "Path of the Kubernetes auth method. Default `kubernetes`.",
            ),
            Term::new(
                "role",
                Text,
                Required,
                "The Kubernetes auth role to log in with.",
            ),
            Term::new(
                "jwt_file",
                Text,
                Optional,
                format!("The service account token file. Default `{KUBERNETES_JWT_FILE}`."),
            ),
        ],
    );
    let vault = Words::new(
        "How to reach and authenticate to Vault or OpenBao. Most attributes fall back to the environment variable the Vault CLI uses (`BAO_*` variables are accepted too). Configure at most one way to authenticate: `token`/`token_file`, or one `auth_*` block.",
        vec![
            Term::new("address", Text, Optional, "Vault address, e.g. `https://vault.example.com:8200`. Falls back to `VAULT_ADDR`. Plain `http` is accepted only for loopback addresses."),
            Term::new("token", Text, Optional, "A Vault token. Falls back to the file in `token_file` when that is set, then to `VAULT_TOKEN` (or `BAO_TOKEN`), then to `~/.vault-token`. Not used when an `auth_*` block is set. Prefer a login method in automation.").sensitive(),
            Term::new("token_file", Text, Optional, "A file holding a Vault token, as written by `vault login` / `bao login`. When set, it is used instead of `VAULT_TOKEN`; when not set, `VAULT_TOKEN` (or `BAO_TOKEN`) is used, then `~/.vault-token`."),
            Term::new("namespace", Text, Optional, "Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`. Falls back to `VAULT_NAMESPACE`."),
            Term::new("ca_cert_file", Text, Optional, "A PEM file of CA certificates to trust for Vault's TLS certificate, in addition to the system ones. Falls back to `VAULT_CACERT`."),
            Term::new("skip_tls_verify", Bool, Optional, "Do not verify Vault's TLS certificate. Falls back to `VAULT_SKIP_VERIFY`. Only for experiments: a warning is shown whenever it is on."),
        ],
    )
    .with_block("auth_approle", approle)
    .with_block("auth_jwt", jwt)
    .with_block("auth_kubernetes", kubernetes);
    let aws = Words::new(
        "Read secrets from AWS Secrets Manager instead of Vault. Credentials are found as every AWS tool finds them (the official SDK's default chain): `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the shared config and credentials files and their profiles (including SSO and `credential_process`), web identity (`AWS_ROLE_ARN` with `AWS_WEB_IDENTITY_TOKEN_FILE`: GitHub Actions and EKS OIDC), then container and instance credentials. In token blocks `path` is the secret's name or ARN, and `version_id` or `version_stage` pins a version. Needs `secretsmanager:GetSecretValue` and `secretsmanager:DescribeSecret` on the secrets (plus `secretsmanager:ListSecretVersionIds` for `ccsecrets_vault_secret_metadata`).",
        vec![
            Term::new(
                "region",
                Text,
                Optional,
                "The AWS region of the secrets, e.g. `eu-west-1`. Falls back to `AWS_REGION` (or `AWS_DEFAULT_REGION`), then to the profile's `region`.",
            ),
            Term::new(
                "profile",
                Text,
                Optional,
                "The profile of the shared config and credentials files to use. Falls back to `AWS_PROFILE`, then `default`.",
            ),
            Term::new(
                "role_arn",
                Text,
                Optional,
                "An IAM role to assume (with `sts:AssumeRole`) using the credentials found, e.g. `arn:aws:iam::123456789012:role/cc-deploy`.",
            ),
            Term::new(
                "endpoint",
                Text,
                Optional,
                "The Secrets Manager endpoint, e.g. a VPC endpoint's `https://vpce-....secretsmanager.eu-west-1.vpce.amazonaws.com`. Falls back to `AWS_ENDPOINT_URL_SECRETS_MANAGER`, then `AWS_ENDPOINT_URL`. Plain `http` is accepted only for loopback addresses.",
            ),
            Term::new(
                "ca_cert_file",
                Text,
                Optional,
                "A PEM file of CA certificates to trust for the TLS certificates of Secrets Manager, STS and SSO (a TLS-inspecting proxy, a private endpoint), in addition to the system ones. Falls back to `AWS_CA_BUNDLE`.",
            ),
        ],
    );
    let azure = Words::new(
        "Read secrets from Azure Key Vault instead of Vault. In token blocks `path` is the secret's name and `version_id` pins a version. The identity needs the `Key Vault Secrets User` role on the vault (or, with access policies, secret `Get` and `List`).",
        vec![
            Term::new("vault_url", Text, Optional, "The vault's URL, e.g. `https://cc-prod.vault.azure.net`. Falls back to `AZURE_KEYVAULT_URL`. Required one way or the other."),
            Term::new("credential", Text, Optional, "How to sign in to Microsoft Entra ID: `client_secret`, `workload_identity` (a federated token file: GitHub Actions OIDC, AKS workload identity), `managed_identity` or `azure_cli`. When not set: `client_secret` if a client secret is configured, else `workload_identity` if a federated token file is, else `managed_identity` when `IDENTITY_ENDPOINT`/`MSI_ENDPOINT` is set (App Service, Container Apps, Functions), else `azure_cli`."),
            Term::new("tenant_id", Text, Optional, "The tenant (directory) id. Falls back to `AZURE_TENANT_ID`."),
            Term::new("client_id", Text, Optional, "The application (client) id; for `managed_identity`, a user-assigned identity's client id. Falls back to `AZURE_CLIENT_ID`."),
            Term::new("client_secret", Text, Optional, "The application's client secret, for `client_secret`. Falls back to `AZURE_CLIENT_SECRET`. Prefer workload identity or a managed identity in automation.").sensitive(),
            Term::new("federated_token_file", Text, Optional, "The federated token file, for `workload_identity`. Falls back to `AZURE_FEDERATED_TOKEN_FILE`."),
            Term::new("authority_host", Text, Optional, "Microsoft Entra ID's host for a sovereign cloud, e.g. `https://login.microsoftonline.us`. Falls back to `AZURE_AUTHORITY_HOST`, then the public cloud. Must use https."),
            Term::new("ca_cert_file", Text, Optional, "A PEM file of CA certificates to trust for the vault's and Entra ID's TLS certificates (a TLS-inspecting proxy), in addition to the system ones."),
        ],
    );
    Words::new(
        "The ccsecrets provider reads contact-center platform credentials from a secret store (Vault or OpenBao KV version 2 by default; AWS Secrets Manager or Azure Key Vault with their blocks) and mints short-lived platform tokens as ephemeral resources, so no credential or token is ever written to plan or state. One provider configuration reads from one store; use aliases to mix them.",
        vec![
            Term::new("environment", Text, Optional, format!("The environment this configuration deploys to, e.g. `prod`. Secret paths may use the placeholder `{{environment}}`, and a secret whose KV custom metadata (AWS, Azure: tag) has an `environment` entry that differs is refused. Letters, digits, `-`, `_` and `.` only. Falls back to `{ENVIRONMENT_ENV}`.")),
            Term::new("timeout_seconds", Number, Optional, format!("Timeout of each HTTP request, in seconds, between {} and {}. Default {}. Falls back to `{}`.", TIMEOUT.1, TIMEOUT.2, TIMEOUT.0, TIMEOUT.3)),
            Term::new("max_retries", Number, Optional, format!("How many times a request is retried after a transient failure (connection errors, 5xx, a sealed Vault, rate limiting). Rejected credentials are never retried. Between {} and {}; default {}. Falls back to `{}`.", RETRIES.1, RETRIES.2, RETRIES.0, RETRIES.3)),
            Term::new("open_timeout_seconds", Number, Optional, format!("Deadline of one whole open (Vault read and token request, with retries), in seconds, between {} and {}. Default {}. Falls back to `{}`.", OPEN_TIMEOUT.1, OPEN_TIMEOUT.2, OPEN_TIMEOUT.0, OPEN_TIMEOUT.3)),
        ],
    )
    .with_block("vault", vault)
    .with_block("aws_secretsmanager", aws)
    .with_block("azure_keyvault", azure)
}

/// `mount`, `path` and `version`: where a block's secret lives.
fn source(what: &str, example_path: &str) -> Vec<Term> {
    vec![
        Term::new(
            "mount",
            Text,
            Defaulted,
            "Mount path of the KV version 2 secrets engine. Default `secret`. Vault only: an error with another store (reported as null there).",
        ),
        Term::new(
            "path",
            Text,
            Required,
            format!(
                "Path of the secret holding {what}, within the mount (e.g. `{example_path}`). With AWS Secrets Manager the secret's name or ARN; with Azure Key Vault the secret's name (letters, digits and `-`). May contain `{{environment}}`, replaced by the provider's `environment`."
            ),
        ),
        Term::new(
            "version",
            Number,
            Defaulted,
            "KV version to read. When not set, the latest version is read and its number is reported here. Vault only (null with another store).",
        ),
        Term::new(
            "version_id",
            Text,
            Defaulted,
            "The version to read, by id: an AWS Secrets Manager `VersionId` or an Azure Key Vault version. When not set, the current version is read and its id is reported here (with Vault, the version number as text).",
        ),
        Term::new(
            "version_stage",
            Text,
            Optional,
            "AWS Secrets Manager only: the staging label of the version to read, e.g. `AWSPREVIOUS` or a custom label. Default: the current version (`AWSCURRENT`).",
        ),
    ]
}

/// `rotation_fallback`, `credential_version` and `reuse_min_remaining_percent`.
fn rotation(platform: &str) -> Vec<Term> {
    vec![
        Term::new(
            "rotation_fallback",
            Bool,
            Defaulted,
            format!(
                "When {platform} rejects the credential in the latest version as invalid, try the previous live version once and succeed with a warning naming both: Vault's newest older live version, AWS's `AWSPREVIOUS`, Azure's newest older version that is enabled and not expired. Never used when a version is pinned, nor for any other error. Default `true`."
            ),
        ),
        Term::new(
            "credential_version",
            Number,
            Computed,
            "The KV version whose credential produced the token (differs from `version` only during a rotation). Vault only (null with another store).",
        ),
        Term::new(
            "credential_version_id",
            Text,
            Computed,
            "The id of the version whose credential produced the token (differs from `version_id` only during a rotation): an AWS `VersionId`, an Azure version, or Vault's version number as text.",
        ),
        Term::new(
            "reuse_min_remaining_percent",
            Number,
            Defaulted,
            format!(
                "Blocks that need the same token share one; a token already held is handed out again only while more than this share (percent, 0 to 100) of its lifetime is left, otherwise a fresh one is minted. The consumer of a token cannot renew it, so a block opened late in a long run must not get one about to expire. Default {DEFAULT_REUSE_PERCENT}."
            ),
        ),
    ]
}

/// The token results every token block has.
fn token(platform: &str) -> Vec<Term> {
    vec![
        Term::new(
            "access_token",
            Text,
            Computed,
            format!("The {platform} access token. Never stored in plan or state."),
        )
        .sensitive(),
        Term::new(
            "token_type",
            Text,
            Computed,
            "The token type, e.g. `bearer`.",
        ),
        Term::new(
            "expires_in",
            Number,
            Computed,
            "Seconds of life the token had left when it was handed out.",
        ),
        Term::new(
            "expires_at",
            Text,
            Computed,
            "When the token expires, in RFC 3339 format (UTC).",
        ),
    ]
}

/// A Genesys Cloud token block (`ccsecrets_genesys_token`, `genesys_token`).
pub fn genesys_token() -> Words {
    let platform = crate::platform::genesys::PLATFORM;
    let mut terms = source(
        "the OAuth client (keys `client_id` and `client_secret`, optionally `region` or `domain`)",
        "genesys/prod/pipeline",
    );
    terms.extend([
        Term::new("client_id_key", Text, Defaulted, "Key of the secret that holds the OAuth client ID. Default `client_id`."),
        Term::new("client_secret_key", Text, Defaulted, "Key of the secret that holds the OAuth client secret. Default `client_secret`."),
        Term::new("region", Text, Defaulted, format!("Genesys Cloud region, named as the genesyscloud provider's `aws_region` (e.g. `us-east-1`). When neither `region` nor `domain` is set, the secret's `region` or `domain` key is used (a public region's only). One of: {}.", regions::region_names())),
        Term::new("domain", Text, Defaulted, "Genesys Cloud domain instead of a region, e.g. `mypurecloud.com` (tokens from `login.<domain>`, API at `api.<domain>`)."),
        Term::new("login_url", Text, Optional, "Override of the token endpoint's base URL (scheme, host, port; `/oauth/token` is appended), for gateways and tests. https is required except to loopback hosts."),
        Term::new("api_url", Text, Defaulted, "Base URL of the Genesys Cloud API (`/api/v2/...` is appended): `https://api.<domain>` unless overridden. Used for revocation and the organization check."),
        Term::new("revoke_on_close", Bool, Defaulted, "Revoke the token (`DELETE /api/v2/tokens/me`) when the last block using it closes, or when Terraform ends the provider. Default `true`."),
        Term::new("expected_organization_id", Text, Optional, "When set, the organization of the minted token (from `GET /api/v2/tokens/me`) must have this id; otherwise the open fails and the token is released (revoked unless `revoke_on_close = false`). Guards against using one environment's credentials in another."),
    ]);
    terms.extend(rotation(platform));
    terms.extend(token(platform));
    terms.push(Term::new(
        "organization_id",
        Text,
        Computed,
        "The token's organization id, when `expected_organization_id` is set (null otherwise).",
    ));
    Words::new(
        "Mints a Genesys Cloud OAuth token (client-credentials grant) from an OAuth client stored in Vault. The token is handed to Terraform as an ephemeral value, typically to the genesyscloud provider's `access_token`, and never written to plan or state. Blocks that need the same token share one token request within one provider process (Terraform starts a new process for each plan and apply).",
        terms,
    )
}

/// A NICE CXone token block (`ccsecrets_cxone_token`, `cxone_token`).
pub fn cxone_token() -> Words {
    let platform = crate::platform::cxone::PLATFORM;
    let mut terms = source(
        "the access key and application credentials (keys `access_key_id`, `access_key_secret`, `client_id`, `client_secret`, optionally `issuer`)",
        "cxone/prod/pipeline",
    );
    for (name, default) in CXONE_KEYS {
        terms.push(Term::new(
            name,
            Text,
            Defaulted,
            format!(
                "Key of the secret that holds the {}. Default `{default}`.",
                default.replace('_', " ")
            ),
        ));
    }
    terms.extend([
        Term::new("issuer", Text, Defaulted, format!("CXone authentication issuer (token endpoint `<issuer>/auth/token`), e.g. `https://cxone-gov.niceincontact.com` for FedRAMP. When not set, the secret's `issuer` key (a public issuer's only), else `{DEFAULT_ISSUER}`. https is required except to loopback hosts.")),
        Term::new("expected_tenant_id", Text, Optional, "When set, the token's `tenantId` claim must equal it; otherwise the open fails. Guards against using one environment's access key in another."),
    ]);
    terms.extend(rotation(platform));
    terms.extend(token(platform));
    terms.extend([
        Term::new(
            "tenant_id",
            Text,
            Computed,
            "The tenant id, from the token's `tenantId` claim.",
        ),
        Term::new(
            "area",
            Text,
            Computed,
            "The tenant's area (e.g. `na1`), from the cxone-configuration discovery document.",
        ),
        Term::new(
            "api_endpoint",
            Text,
            Computed,
            "The tenant's API base URL (e.g. `https://api-na1.niceincontact.com`), from discovery.",
        ),
    ]);
    Words::new(
        "Mints a NICE CXone access token (OAuth password grant with an access key) from credentials stored in Vault, and discovers the tenant's API endpoint. The token is an ephemeral value, never written to plan or state. CXone documents no revocation for these tokens; they expire after their lifetime (one hour by default).",
        terms,
    )
}

/// A block that reads a secret as it is (`ccsecrets_vault_secret`, `vault_secret`).
pub fn vault_secret() -> Words {
    let mut terms = source("the values to read", "contact-center/prod/webhook");
    terms.extend([
        Term::new("data", StringMap, Computed, "The secret's key/value pairs. Values that are not strings in Vault are given as JSON text.").sensitive(),
        Term::new("data_json", Text, Computed, "The whole secret as a JSON object, with its original value types; decode with `jsondecode`.").sensitive(),
        Term::new("created_time", Text, Computed, "When the version read was written (RFC 3339)."),
        Term::new("custom_metadata", StringMap, Computed, "The secret's KV custom metadata (not secret); with AWS Secrets Manager the secret's tags, with Azure Key Vault the version's tags."),
    ]);
    Words::new(
        "Reads a secret from the configured store (a Vault or OpenBao KV version 2 secrets engine, AWS Secrets Manager or Azure Key Vault, whose value is then a JSON object) as an ephemeral value: usable in provider blocks and write-only arguments, never written to plan or state.",
        terms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_documented_and_names_are_unique() {
        fn check(w: &Words) {
            assert!(!w.doc.is_empty());
            let mut names: Vec<&str> = w.terms.iter().map(|t| t.name).collect();
            names.extend(w.blocks.iter().map(|(n, _)| *n));
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), n, "duplicate names in {names:?}");
            for t in &w.terms {
                assert!(t.doc.ends_with('.'), "{}: {}", t.name, t.doc);
            }
            for (_, b) in &w.blocks {
                check(b);
            }
        }
        for w in [settings(), genesys_token(), cxone_token(), vault_secret()] {
            check(&w);
        }
    }

    #[test]
    fn the_settings_structs_read_exactly_the_settable_words() {
        // serde's own field list is the typed settings' vocabulary.
        fn fields<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
            let mut v = field_names::<T>();
            v.sort_unstable();
            v
        }
        fn settable(w: &Words) -> Vec<&'static str> {
            let mut v: Vec<&str> = w
                .terms
                .iter()
                .filter(|t| t.settable())
                .map(|t| t.name)
                .collect();
            v.sort_unstable();
            v
        }
        assert_eq!(
            fields::<crate::platform::genesys::GenesysSettings>(),
            settable(&genesys_token())
        );
        assert_eq!(
            fields::<crate::platform::cxone::CxoneSettings>(),
            settable(&cxone_token())
        );
        assert_eq!(
            fields::<crate::mint::SecretSettings>(),
            settable(&vault_secret())
        );
    }
}
