//! Ephemeral resources and data sources, one file each, plus what they share: attribute
//! names, the KV source attributes, the environment guard, rotation fallback, and the one
//! place where Vault and platform errors become diagnostics.

mod cxone_token;
mod genesys_token;
mod vault_secret;
mod vault_secret_metadata;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use crate::framework::{
    Attribute, Config, DataSource, Diagnostic, Diagnostics, EphemeralResource, Type, Value,
};
use crate::net::Budget;
use crate::platforms::PlatformError;
use crate::provider::{Context, Shared};
use crate::vault::{KvSecret, VaultError};

/// The ephemeral resources, in documentation order.
pub(crate) fn ephemeral(shared: &Arc<Shared>) -> Vec<Arc<dyn EphemeralResource<Context>>> {
    vec![
        Arc::new(genesys_token::GenesysTokenResource::new(shared)),
        Arc::new(cxone_token::CxoneTokenResource::new(shared)),
        Arc::new(vault_secret::VaultSecret),
    ]
}

/// The data sources.
pub(crate) fn data_sources(_shared: &Arc<Shared>) -> Vec<Arc<dyn DataSource<Context>>> {
    vec![Arc::new(vault_secret_metadata::VaultSecretMetadata)]
}

/// Attribute names shared by several resources.
pub(crate) mod attr {
    pub(crate) const MOUNT: &str = "mount";
    pub(crate) const PATH: &str = "path";
    pub(crate) const VERSION: &str = "version";
    pub(crate) const ROTATION_FALLBACK: &str = "rotation_fallback";
    pub(crate) const CREDENTIAL_VERSION: &str = "credential_version";
    pub(crate) const ACCESS_TOKEN: &str = "access_token";
    pub(crate) const TOKEN_TYPE: &str = "token_type";
    pub(crate) const EXPIRES_IN: &str = "expires_in";
    pub(crate) const EXPIRES_AT: &str = "expires_at";
    pub(crate) const CUSTOM_METADATA: &str = "custom_metadata";
    pub(crate) const CREATED_TIME: &str = "created_time";
}
use attr::*;

const DEFAULT_MOUNT: &str = "secret";
const ENV_PLACEHOLDER: &str = "{environment}";
/// The custom metadata entry the environment guard compares.
const ENV_METADATA_KEY: &str = "environment";

/// `mount`, `path` and `version`: where a resource's secret lives in KV v2.
fn source_attributes(what: &str, example_path: &str) -> Vec<Attribute> {
    vec![
        Attribute::optional_computed(
            MOUNT,
            Type::String,
            "Mount path of the KV version 2 secrets engine. Default `secret`.",
        ),
        Attribute::required(
            PATH,
            Type::String,
            format!(
                "Path of the secret holding {what}, within the mount (e.g. `{example_path}`). May contain `{{environment}}`, replaced by the provider's `environment`."
            ),
        ),
        Attribute::optional_computed(
            VERSION,
            Type::Number,
            "KV version to read. When not set, the latest version is read and its number is reported here.",
        ),
    ]
}

/// `rotation_fallback` and `credential_version`, for the token resources.
fn rotation_attributes(platform: &str) -> Vec<Attribute> {
    vec![
        Attribute::optional_computed(
            ROTATION_FALLBACK,
            Type::Bool,
            format!(
                "When {platform} rejects the credential in the latest version as invalid, try the previous live version once and succeed with a warning naming both. Never used when `version` is set, nor for any other error. Default `true`."
            ),
        ),
        Attribute::computed(
            CREDENTIAL_VERSION,
            Type::Number,
            "The KV version whose credential produced the token (differs from `version` only during a rotation).",
        ),
    ]
}

/// The token results shared by the token resources.
fn token_attributes(platform: &str) -> Vec<Attribute> {
    vec![
        Attribute::computed(
            ACCESS_TOKEN,
            Type::String,
            format!("The {platform} access token. Never stored in plan or state."),
        )
        .sensitive(),
        Attribute::computed(TOKEN_TYPE, Type::String, "The token type, e.g. `bearer`."),
        Attribute::computed(
            EXPIRES_IN,
            Type::Number,
            "Seconds of life the token had left when it was handed out.",
        ),
        Attribute::computed(
            EXPIRES_AT,
            Type::String,
            "When the token expires, in RFC 3339 format (UTC).",
        ),
    ]
}

/// Checks `mount`, `path` and `version` as far as they are known.
fn validate_source(config: &Config) -> Diagnostics {
    let mut d = Diagnostics::new();
    if let Some(path) = config.get(PATH).as_str() {
        if path.trim_matches('/').trim().is_empty() {
            d.push(
                Diagnostic::error(
                    "Invalid path",
                    "`path` must name a secret, e.g. `genesys/prod/pipeline`.",
                )
                .at(config.path(PATH)),
            );
        } else if path.contains("{") && path.replace(ENV_PLACEHOLDER, "").contains('{') {
            d.push(
                Diagnostic::error(
                    "Invalid path",
                    format!("The only placeholder `path` may contain is `{ENV_PLACEHOLDER}`."),
                )
                .at(config.path(PATH)),
            );
        }
    }
    if config
        .get(MOUNT)
        .as_str()
        .is_some_and(|m| m.trim_matches('/').trim().is_empty())
    {
        d.push(
            Diagnostic::error(
                "Invalid mount",
                "`mount` must name a KV version 2 mount, e.g. `secret`.",
            )
            .at(config.path(MOUNT)),
        );
    }
    match config.int(VERSION) {
        Err(e) => d.push(e),
        Ok(Some(v)) if v < 1 => d.push(
            Diagnostic::error("Invalid version", "`version` must be 1 or more.")
                .at(config.path(VERSION)),
        ),
        _ => {}
    }
    d
}

/// Where to read, with the environment placeholder resolved.
#[derive(Debug, Clone)]
struct Source {
    mount: String,
    /// As configured (echoed in results).
    config_path: String,
    /// With `{environment}` replaced.
    path: String,
    version: Option<i64>,
}

impl Source {
    fn from_config(config: &Config, ctx: &Context) -> Result<Self, Diagnostics> {
        let d = validate_source(config);
        if d.has_errors() {
            return Err(d);
        }
        let config_path = config.string(PATH).unwrap_or_default();
        let path = if config_path.contains(ENV_PLACEHOLDER) {
            let Some(env) = &ctx.environment else {
                return Err(Diagnostic::error(
                    "No environment for the path",
                    format!("`path` uses `{ENV_PLACEHOLDER}`, but the provider has no `environment` (set it in the provider block or with CCSECRETS_ENVIRONMENT)."),
                )
                .at(config.path(PATH))
                .into());
            };
            config_path.replace(ENV_PLACEHOLDER, env)
        } else {
            config_path.clone()
        };
        Ok(Source {
            mount: config.string(MOUNT).map_or_else(
                || DEFAULT_MOUNT.to_owned(),
                |m| m.trim_matches('/').to_owned(),
            ),
            path: path.trim_matches('/').to_owned(),
            config_path,
            version: config.int(VERSION).map_err(Diagnostics::from)?,
        })
    }

    fn display(&self) -> String {
        format!("{}/{}", self.mount, self.path)
    }

    /// The source's own attribute values for a result.
    fn result_values(&self, version_read: i64) -> [(&'static str, Value); 3] {
        [
            (MOUNT, Value::from(self.mount.clone())),
            (PATH, Value::from(self.config_path.clone())),
            (VERSION, Value::from(self.version.unwrap_or(version_read))),
        ]
    }
}

/// Turns a Vault error into a diagnostic that says what to check.
fn vault_diagnostic(e: &VaultError, src: &Source) -> Diagnostic {
    let at = |d: Diagnostic, name: &str| d.at(crate::framework::AttributePath::root(name));
    match e.root() {
        VaultError::NotFound { .. } => at(
            Diagnostic::error(
                "Secret not found in Vault",
                format!(
                    "{e}. Check `mount` ({:?}) and `path` ({:?}): the secret must be in a KV version 2 secrets engine, readable with `bao kv get -mount={} {}`.",
                    src.mount, src.path, src.mount, src.path
                ),
            ),
            if src.version.is_some() { VERSION } else { PATH },
        ),
        VaultError::NoMount { .. } => at(
            Diagnostic::error(
                "Vault mount not found",
                format!("{e}. Check `mount`, and the namespace if you use one."),
            ),
            MOUNT,
        ),
        VaultError::VersionGone { .. } => at(
            Diagnostic::error(
                "Secret version not available",
                format!("{e}. Choose a live version, or undelete this one."),
            ),
            if src.version.is_some() { VERSION } else { PATH },
        ),
        VaultError::Forbidden { what, .. } => at(
            Diagnostic::error(
                "Vault denied access",
                format!(
                    "{e}. Check that the Vault token is valid and that its policy grants \"read\" on \"{what}\" (for example `path \"{what}\" {{ capabilities = [\"read\"] }}`)."
                ),
            ),
            PATH,
        ),
        VaultError::Unreachable { reason, .. } if reason == crate::net::TIMED_OUT => {
            Diagnostic::error(
                "Vault did not answer in time",
                format!(
                    "{e}. Check that Vault is healthy, or raise `timeout_seconds` (each request) and `open_timeout_seconds` (the whole open)."
                ),
            )
        }
        VaultError::Unreachable { .. } => Diagnostic::error(
            "Cannot reach Vault",
            format!(
                "{e}. Check the provider's vault `address` (or VAULT_ADDR), that Vault is running and reachable from this machine, and for TLS errors `ca_cert_file` (or VAULT_CACERT)."
            ),
        ),
        VaultError::Unavailable { sealed: true, .. } => Diagnostic::error(
            "Vault is sealed",
            format!(
                "{e}. Unseal Vault (or point the provider at an unsealed node) and run Terraform again."
            ),
        ),
        VaultError::Unavailable { .. } => Diagnostic::error(
            "Vault is unavailable",
            format!("{e}. Retry later, or raise `max_retries` / `open_timeout_seconds`."),
        ),
        VaultError::NoToken => Diagnostic::error(
            "No Vault token",
            "The provider has no way to authenticate to Vault. Set `token` in the provider's vault block or the VAULT_TOKEN environment variable, log in with `bao login` / `vault login` (which writes ~/.vault-token), or configure an `auth_approle`, `auth_jwt` or `auth_kubernetes` block.",
        ),
        VaultError::Login { method, .. } => Diagnostic::error(
            "Vault login failed",
            format!(
                "{e}. Check the provider's vault auth block: the role, the credential it reads, and that the auth method is enabled at that mount.{}",
                if *method == "kubernetes" {
                    " Vault reports every TokenReview refusal as \"permission denied\": check that the pod runs under a service account and namespace the role is bound to, that Vault reaches the auth method's kubernetes_host, and Vault's debug log for the reason."
                } else {
                    ""
                }
            ),
        ),
        VaultError::Deadline(_) => Diagnostic::error(
            "Timed out waiting for Vault",
            format!("{e}. Check that Vault is up, or raise `open_timeout_seconds`."),
        ),
        VaultError::Cancelled => Diagnostic::error(
            "Interrupted",
            "Terraform was interrupted while reading from Vault.",
        ),
        VaultError::Retried { .. } | VaultError::Http { .. } | VaultError::BadResponse { .. } => {
            Diagnostic::error("Unexpected response from Vault", format!("{e}."))
        }
    }
}

/// Turns a platform error into a diagnostic naming the platform and the Vault source.
fn platform_diagnostic(
    e: &PlatformError,
    platform: &str,
    src: &Source,
    version: i64,
) -> Diagnostic {
    let origin = format!(
        "the credentials from Vault path {} (version {version})",
        src.display()
    );
    match e.root() {
        PlatformError::Rejected { .. } if e.rejected_credential().is_some() => Diagnostic::error(
            format!("{platform} rejected the credentials"),
            format!("{e}. {platform} refused {origin}. Check that the secret holds current credentials for this {platform} organization and region; if you are rotating them, see `rotation_fallback`."),
        )
        .at_attr(PATH),
        PlatformError::Rejected { .. } => Diagnostic::error(
            format!("{platform} refused the token request"),
            format!("{e}. The request used {origin}."),
        )
        .at_attr(PATH),
        PlatformError::RateLimited { .. } => Diagnostic::error(
            format!("{platform} is rate limiting token requests"),
            format!("{e}. Retries were exhausted; wait a minute, or raise `max_retries`."),
        ),
        PlatformError::Deadline(_) => Diagnostic::error(
            format!("Timed out waiting for {platform}"),
            format!("{e}. Raise `open_timeout_seconds` if {platform} is slow, or check connectivity."),
        ),
        PlatformError::Unreachable { reason, .. } if reason == crate::net::TIMED_OUT => Diagnostic::error(
            format!("{platform} did not answer in time"),
            format!("{e}. Raise `timeout_seconds` if {platform} is slow, or check connectivity."),
        ),
        PlatformError::Unreachable { .. } => Diagnostic::error(
            format!("Cannot reach {platform}"),
            format!("{e}. Check the region/endpoint settings and that this machine can reach it."),
        ),
        PlatformError::Cancelled => Diagnostic::error("Interrupted", format!("Terraform was interrupted while waiting for {platform}.")),
        _ => Diagnostic::error(format!("Unexpected response from {platform}"), format!("{e}. The request used {origin}.")),
    }
}

/// Refuses a secret whose custom metadata names another environment (fail closed).
fn environment_guard(
    ctx: &Context,
    src: &Source,
    custom_metadata: &std::collections::BTreeMap<String, String>,
) -> Result<(), Diagnostic> {
    let (Some(ours), Some(theirs)) = (
        ctx.environment.as_deref(),
        custom_metadata.get(ENV_METADATA_KEY),
    ) else {
        return Ok(());
    };
    if ours == theirs {
        return Ok(());
    }
    Err(Diagnostic::error(
        "Secret belongs to another environment",
        format!(
            "The secret at {} is marked environment {theirs:?} in its custom metadata, but this provider is configured for environment {ours:?}. Refusing to use it. Fix the path, or the provider's `environment`.",
            src.display()
        ),
    )
    .at_attr(PATH))
}

/// Reads one version of the source through the shared cache, then applies the guard.
async fn read(
    ctx: &Context,
    budget: &Budget,
    src: &Source,
    version: Option<i64>,
) -> Result<Arc<KvSecret>, Diagnostic> {
    let secret = ctx
        .secrets
        .read(&ctx.vault, budget, &src.mount, &src.path, version)
        .await
        .map_err(|e| vault_diagnostic(&e, src))?;
    environment_guard(ctx, src, &secret.metadata.custom_metadata)?;
    Ok(secret)
}

/// The value of `key` in the secret, or a diagnostic on `key_attr` naming the key and the
/// keys that do exist (never a value).
fn key_value(
    secret: &KvSecret,
    src: &Source,
    key: &str,
    key_attr: &str,
) -> Result<SecretString, Diagnostic> {
    secret.data.non_empty(key).cloned().ok_or_else(|| {
        let keys: Vec<String> = secret.data.keys().map(|k| format!("{k:?}")).collect();
        Diagnostic::error(
            "Key not found in secret",
            format!(
                "The secret at {} (version {}) has no non-empty key {key:?}. Its keys are: {}. Store the value under {key:?}, or set `{key_attr}` to the key that holds it.",
                src.display(),
                secret.metadata.version,
                if keys.is_empty() { "(none)".to_owned() } else { keys.join(", ") },
            ),
        )
        .at_attr(key_attr)
    })
}

/// Why one attempt to get a token from a secret version failed.
enum AttemptError {
    /// Bad input (a missing key, an unknown region): never retried with another version.
    Input(Diagnostic),
    /// The platform's answer.
    Platform(PlatformError),
}

/// The outcome of a rotation-aware open.
struct Rotated<T> {
    value: T,
    latest: i64,
    used: i64,
    warning: Option<Diagnostic>,
}

/// Runs `attempt` on the configured version (the latest when not pinned). When the platform
/// rejects the latest version's credential as invalid and fallback is on, tries the newest
/// live older version once, succeeding with a warning that names both.
async fn with_rotation_fallback<T, F, Fut>(
    ctx: &Context,
    budget: &Budget,
    src: &Source,
    fallback: bool,
    platform: &str,
    attempt: F,
) -> Result<Rotated<T>, Diagnostics>
where
    F: Fn(Arc<KvSecret>) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let latest = read(ctx, budget, src, src.version)
        .await
        .map_err(Diagnostics::from)?;
    let latest_version = latest.metadata.version;
    let first = match attempt(Arc::clone(&latest)).await {
        Ok(value) => {
            return Ok(Rotated {
                value,
                latest: latest_version,
                used: latest_version,
                warning: None,
            });
        }
        Err(AttemptError::Input(d)) => return Err(d.into()),
        Err(AttemptError::Platform(e)) => e,
    };
    let Some(code) = first
        .rejected_credential()
        .map(str::to_owned)
        .filter(|_| fallback && src.version.is_none())
    else {
        return Err(platform_diagnostic(&first, platform, src, latest_version).into());
    };
    let metadata = ctx
        .vault
        .kv_metadata(budget, &src.mount, &src.path)
        .await
        .map_err(|e| Diagnostics::from(vault_diagnostic(&e, src)))?;
    let Some(previous) = metadata.previous_live(latest_version) else {
        return Err(platform_diagnostic(&first, platform, src, latest_version).into());
    };
    tracing::info!(
        latest = latest_version,
        previous,
        "credential rejected; trying the previous version"
    );
    let older = read(ctx, budget, src, Some(previous))
        .await
        .map_err(Diagnostics::from)?;
    match attempt(older).await {
        Ok(value) => Ok(Rotated {
            value,
            latest: latest_version,
            used: previous,
            warning: Some(
                Diagnostic::warning(
                    "Used the previous credential version (rotation in progress?)",
                    format!(
                        "{platform} rejected the credential in version {latest_version} of {} ({code}), so version {previous} was used. If a rotation is under way, finish it (add the new credential on {platform}); if version {latest_version} is wrong, fix or delete it.",
                        src.display()
                    ),
                )
                .at_attr(PATH),
            ),
        }),
        Err(AttemptError::Input(d)) => Err(d.into()),
        Err(AttemptError::Platform(second)) => {
            let mut d = platform_diagnostic(&second, platform, src, previous);
            d.detail = format!(
                "Both the latest version ({latest_version}) and the previous live version ({previous}) of {} were refused. Latest: {first}. Previous: {second}.",
                src.display()
            );
            Err(d.into())
        }
    }
}

/// Seconds left and the RFC 3339 expiry time of a token.
fn expiry_values(expires_at: SystemTime) -> [(&'static str, Value); 2] {
    let left = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .as_secs();
    [
        (
            EXPIRES_IN,
            Value::from(i64::try_from(left).unwrap_or(i64::MAX)),
        ),
        (
            EXPIRES_AT,
            Value::from(humantime::format_rfc3339_seconds(expires_at).to_string()),
        ),
    ]
}

/// Private bytes of a token resource: a tag and the pool lease handle. Never a secret.
fn private_bytes(tag: u8, handle: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(tag);
    out.extend_from_slice(&handle.to_be_bytes());
    out
}

fn handle_of(tag: u8, private: &[u8]) -> Option<u64> {
    match private {
        [t, rest @ ..] if *t == tag => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// The configured value of an optional+computed attribute, else the resolved one (Terraform
/// requires a configured value to come back unchanged).
fn echo_or(config: &Config, name: &str, resolved: Value) -> Value {
    match config.get(name) {
        Value::Null => resolved,
        v => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_passes_terraforms_checks() {
        let shared = Arc::new(Shared::default());
        for r in ephemeral(&shared) {
            assert_eq!(r.schema().check(), Ok(()), "{}", r.type_name());
            assert!(r.type_name().starts_with("ccsecrets_"));
        }
        for r in data_sources(&shared) {
            assert_eq!(r.schema().check(), Ok(()), "{}", r.type_name());
        }
    }

    #[test]
    fn private_bytes_round_trip_and_reject_other_tags() {
        let p = private_bytes(b'G', 42);
        assert_eq!(handle_of(b'G', &p), Some(42));
        assert_eq!(handle_of(b'C', &p), None);
        assert_eq!(handle_of(b'G', b"junk"), None);
        assert_eq!(handle_of(b'G', &[]), None);
    }

    #[test]
    fn source_validation_is_pinned() {
        let c = Config::new(Value::object([
            (PATH, Value::from("a/{region}")),
            (MOUNT, Value::from("/")),
            (VERSION, Value::from(0)),
        ]));
        let d = validate_source(&c);
        let at: Vec<String> = d
            .iter()
            .map(|d| d.attribute.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(at, vec!["path", "mount", "version"]);
        assert!(
            validate_source(&Config::new(Value::object([(
                PATH,
                Value::from("g/{environment}/p")
            )])))
            .is_empty()
        );
        assert!(validate_source(&Config::new(Value::object([(PATH, Value::Unknown)]))).is_empty());
    }
}
