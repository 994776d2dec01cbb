//! The ccsecrets provider: its configuration schema, how configuration (with the usual
//! environment-variable fallbacks) becomes a context, and the list of what it offers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::framework::{
    Attribute, Block, Config, DataSource, Diagnostic, Diagnostics, EphemeralResource, NestedBlock,
    Provider, Schema, Type,
};
use crate::net::{self, Budget, ClientOptions, RetryPolicy};
use crate::platforms::cxone::CxoneToken;
use crate::platforms::genesys::GenesysToken;
use crate::platforms::pool::TokenPool;
use crate::resources;
use crate::vault::{AuthMethod, SecretCache, SecretSource, VaultClient, VaultSettings};

/// Provider attribute and block names, used by the schema, configuration and docs alike.
pub(crate) mod names {
    pub(crate) const ENVIRONMENT: &str = "environment";
    pub(crate) const TIMEOUT_SECONDS: &str = "timeout_seconds";
    pub(crate) const MAX_RETRIES: &str = "max_retries";
    pub(crate) const OPEN_TIMEOUT_SECONDS: &str = "open_timeout_seconds";
    pub(crate) const VAULT: &str = "vault";
    pub(crate) const ADDRESS: &str = "address";
    pub(crate) const TOKEN: &str = "token";
    pub(crate) const TOKEN_FILE: &str = "token_file";
    pub(crate) const NAMESPACE: &str = "namespace";
    pub(crate) const CA_CERT_FILE: &str = "ca_cert_file";
    pub(crate) const SKIP_TLS_VERIFY: &str = "skip_tls_verify";
    pub(crate) const AUTH_APPROLE: &str = "auth_approle";
    pub(crate) const AUTH_JWT: &str = "auth_jwt";
    pub(crate) const AUTH_KUBERNETES: &str = "auth_kubernetes";
    pub(crate) const MOUNT: &str = "mount";
    pub(crate) const ROLE: &str = "role";
    pub(crate) const ROLE_ID: &str = "role_id";
    pub(crate) const SECRET_ID: &str = "secret_id";
    pub(crate) const SECRET_ID_FILE: &str = "secret_id_file";
    pub(crate) const JWT: &str = "jwt";
    pub(crate) const JWT_FILE: &str = "jwt_file";
    pub(crate) const JWT_ENV: &str = "jwt_env";
}
use names::*;

/// Defaults and limits of the numeric settings: (default, min, max, environment variable).
const TIMEOUT: (i64, i64, i64, &str) = (30, 1, 600, "CCSECRETS_TIMEOUT_SECONDS");
const RETRIES: (i64, i64, i64, &str) = (3, 0, 10, "CCSECRETS_MAX_RETRIES");
const OPEN_TIMEOUT: (i64, i64, i64, &str) = (120, 1, 3600, "CCSECRETS_OPEN_TIMEOUT_SECONDS");
const ENVIRONMENT_ENV: &str = "CCSECRETS_ENVIRONMENT";
const KUBERNETES_JWT_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Everything an operation needs, built by `configure`.
pub struct Context {
    pub(crate) vault: VaultClient,
    pub(crate) secrets: SecretCache,
    /// For platform calls: TLS always verified, no redirects, per-request timeout.
    pub(crate) http: reqwest::Client,
    pub(crate) retry: RetryPolicy,
    pub(crate) open_timeout: Duration,
    pub(crate) environment: Option<String>,
    pub(crate) cancel: CancellationToken,
    /// Identifies the Vault (address and namespace) in token pool keys.
    pub(crate) vault_id: String,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("vault", &self.vault)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A fresh budget for one open or read.
    pub(crate) fn budget(&self) -> Budget {
        Budget::new(self.open_timeout, self.cancel.clone())
    }
}

/// State shared by every configuration of one provider process: the token pools (tokens must
/// be revocable at close and at shutdown, whatever configuration minted them).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) genesys: TokenPool<GenesysToken>,
    pub(crate) cxone: TokenPool<CxoneToken>,
    cancel: CancellationToken,
    vaults: Mutex<Vec<VaultClient>>,
}

/// The ccsecrets provider.
#[derive(Debug, Default)]
pub struct CcsecretsProvider {
    shared: Arc<Shared>,
}

impl CcsecretsProvider {
    /// A provider with empty token pools.
    pub fn new() -> Self {
        Self::default()
    }
}

fn schema() -> Schema {
    let approle = Block::new(
        "Log in to Vault with AppRole: a `role_id` and a `secret_id` (from a value or a file).",
        vec![
            Attribute::optional(
                MOUNT,
                Type::String,
                "Path of the AppRole auth method. Default `approle`.",
            ),
            Attribute::required(ROLE_ID, Type::String, "The role ID."),
            Attribute::optional(
                SECRET_ID,
                Type::String,
                "The secret ID. Prefer `secret_id_file` so it stays out of configuration.",
            )
            .sensitive(),
            Attribute::optional(
                SECRET_ID_FILE,
                Type::String,
                "A file holding the secret ID (read at each login).",
            ),
        ],
    );
    let jwt = Block::new(
        "Log in to Vault with a signed JWT, for example the OIDC token of a GitHub Actions or GitLab CI job: no static secret anywhere. Give exactly one of `jwt`, `jwt_file` and `jwt_env`.",
        vec![
            Attribute::optional(
                MOUNT,
                Type::String,
                "Path of the JWT auth method. Default `jwt`.",
            ),
            Attribute::required(ROLE, Type::String, "The JWT auth role to log in with."),
            Attribute::optional(JWT, Type::String, "The JWT itself.").sensitive(),
            Attribute::optional(
                JWT_FILE,
                Type::String,
                "A file holding the JWT (read at each login).",
            ),
            Attribute::optional(
                JWT_ENV,
                Type::String,
                "The name of an environment variable holding the JWT (read at each login), e.g. one defined with GitLab CI's `id_tokens`, or one a GitHub Actions step filled with the job's OIDC token.",
            ),
        ],
    );
    let kubernetes = Block::new(
        "Log in to Vault with the pod's Kubernetes service account token.",
        vec![
            Attribute::optional(
                MOUNT,
                Type::String,
                "Path of the Kubernetes auth method. Default `kubernetes`.",
            ),
            Attribute::required(
                ROLE,
                Type::String,
                "The Kubernetes auth role to log in with.",
            ),
            Attribute::optional(
                JWT_FILE,
                Type::String,
                format!("The service account token file. Default `{KUBERNETES_JWT_FILE}`."),
            ),
        ],
    );
    let vault = Block::new(
        "How to reach and authenticate to Vault or OpenBao. Most attributes fall back to the environment variable the Vault CLI uses (`BAO_*` variables are accepted too). Configure at most one way to authenticate: `token`/`token_file`, or one `auth_*` block.",
        vec![
            Attribute::optional(ADDRESS, Type::String, "Vault address, e.g. `https://vault.example.com:8200`. Falls back to `VAULT_ADDR`. Plain `http` is accepted only for loopback addresses."),
            Attribute::optional(TOKEN, Type::String, "A Vault token. Falls back to the file in `token_file` when that is set, then to `VAULT_TOKEN` (or `BAO_TOKEN`), then to `~/.vault-token`. Not used when an `auth_*` block is set. Prefer a login method in automation.").sensitive(),
            Attribute::optional(TOKEN_FILE, Type::String, "A file holding a Vault token, as written by `vault login` / `bao login`. When set, it is used instead of `VAULT_TOKEN`; when not set, `VAULT_TOKEN` (or `BAO_TOKEN`) is used, then `~/.vault-token`."),
            Attribute::optional(NAMESPACE, Type::String, "Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`. Falls back to `VAULT_NAMESPACE`."),
            Attribute::optional(CA_CERT_FILE, Type::String, "A PEM file of CA certificates to trust for Vault's TLS certificate, in addition to the system ones. Falls back to `VAULT_CACERT`."),
            Attribute::optional(SKIP_TLS_VERIFY, Type::Bool, "Do not verify Vault's TLS certificate. Falls back to `VAULT_SKIP_VERIFY`. Only for experiments: a warning is shown whenever it is on."),
        ],
    )
    .with_block(NestedBlock::single(AUTH_APPROLE, approle))
    .with_block(NestedBlock::single(AUTH_JWT, jwt))
    .with_block(NestedBlock::single(AUTH_KUBERNETES, kubernetes));
    Schema::new(
        Block::new(
            "The ccsecrets provider reads contact-center platform credentials from Vault or OpenBao (KV version 2) and mints short-lived platform tokens as ephemeral resources, so no credential or token is ever written to plan or state.",
            vec![
                Attribute::optional(ENVIRONMENT, Type::String, format!("The environment this configuration deploys to, e.g. `prod`. Secret paths may use the placeholder `{{environment}}`, and a secret whose KV custom metadata has an `environment` entry that differs is refused. Letters, digits, `-`, `_` and `.` only. Falls back to `{ENVIRONMENT_ENV}`.")),
                Attribute::optional(TIMEOUT_SECONDS, Type::Number, format!("Timeout of each HTTP request, in seconds, between {} and {}. Default {}. Falls back to `{}`.", TIMEOUT.1, TIMEOUT.2, TIMEOUT.0, TIMEOUT.3)),
                Attribute::optional(MAX_RETRIES, Type::Number, format!("How many times a request is retried after a transient failure (connection errors, 5xx, a sealed Vault, rate limiting). Rejected credentials are never retried. Between {} and {}; default {}. Falls back to `{}`.", RETRIES.1, RETRIES.2, RETRIES.0, RETRIES.3)),
                Attribute::optional(OPEN_TIMEOUT_SECONDS, Type::Number, format!("Deadline of one whole open (Vault read and token request, with retries), in seconds, between {} and {}. Default {}. Falls back to `{}`.", OPEN_TIMEOUT.1, OPEN_TIMEOUT.2, OPEN_TIMEOUT.0, OPEN_TIMEOUT.3)),
            ],
        )
        .with_block(NestedBlock::single(VAULT, vault)),
    )
}

/// Go's strconv.ParseBool, which the Vault CLI uses for `VAULT_SKIP_VERIFY`.
fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The first non-empty environment variable among `names`.
fn env_any(names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|n| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| ((*n).to_owned(), v))
    })
}

fn home_file(name: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(name))
}

/// A bounded whole number from the attribute, else the environment, else the default.
fn number(
    config: &Config,
    name: &str,
    (default, min, max, env): (i64, i64, i64, &str),
) -> Result<i64, Diagnostic> {
    let (value, from_env) = match config.int(name)? {
        Some(v) => (v, false),
        None => match std::env::var(env).ok().filter(|v| !v.trim().is_empty()) {
            Some(raw) => (
                raw.trim().parse::<i64>().map_err(|_| {
                    Diagnostic::error(
                        format!("Invalid {env}"),
                        format!("The environment variable {env} must be a whole number (it sets `{name}`)."),
                    )
                })?,
                true,
            ),
            None => (default, false),
        },
    };
    if !(min..=max).contains(&value) {
        let d = Diagnostic::error(
            format!("Invalid {name}"),
            format!(
                "`{name}` must be between {min} and {max}; got {value}{}.",
                if from_env {
                    format!(" from {env}")
                } else {
                    String::new()
                }
            ),
        );
        return Err(if from_env { d } else { d.at(config.path(name)) });
    }
    Ok(value)
}

fn check_numbers(config: &Config, d: &mut Diagnostics) {
    for (name, limits) in [
        (TIMEOUT_SECONDS, TIMEOUT),
        (MAX_RETRIES, RETRIES),
        (OPEN_TIMEOUT_SECONDS, OPEN_TIMEOUT),
    ] {
        if let Some(n) = config.get(name).as_number() {
            let (_, min, max, _) = limits;
            match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => {}
                _ => d.push(
                    Diagnostic::error(
                        format!("Invalid {name}"),
                        format!("`{name}` must be a whole number between {min} and {max}."),
                    )
                    .at(config.path(name)),
                ),
            }
        }
    }
}

/// Checks an `auth_*` block: required values and "exactly one of" groups. Unknown values
/// count as set (they will be known at apply).
fn check_auth_block(block: &Config, block_name: &str, one_of: &[&str], d: &mut Diagnostics) {
    if one_of.is_empty() {
        return;
    }
    let set: Vec<&str> = one_of
        .iter()
        .copied()
        .filter(|n| {
            !block.is_null(n)
                && (block.is_unknown(n) || block.string(n).is_some() || block.secret(n).is_some())
        })
        .collect();
    if set.len() != 1 {
        let list = one_of
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let d0 = Diagnostic::error(
            format!("Invalid {block_name} block"),
            format!(
                "Set exactly one of {list} in the {block_name} block{}.",
                if set.is_empty() {
                    String::new()
                } else {
                    format!(" (found {})", set.join(" and "))
                }
            ),
        );
        d.push(match set.get(1) {
            Some(second) => d0.at(block.path(second)),
            None => d0.at(block.path(one_of[0])),
        });
    }
}

fn check_vault(vault: &Config, d: &mut Diagnostics) {
    if let Some(addr) = vault.string(ADDRESS) {
        if let Err(e) = net::base_url(&addr) {
            d.push(
                Diagnostic::error("Invalid Vault address", format!("{e}.")).at(vault.path(ADDRESS)),
            );
        }
    }
    if vault.bool(SKIP_TLS_VERIFY) == Some(true)
        && vault
            .string(ADDRESS)
            .is_some_and(|a| a.starts_with("http://"))
    {
        // Harmless but confusing: nothing to verify over plain http.
        d.push(Diagnostic::warning("skip_tls_verify has no effect", "The Vault address uses plain http to a loopback host, so there is no certificate to verify.").at(vault.path(SKIP_TLS_VERIFY)));
    }
    let token_given = !vault.is_null(TOKEN) || !vault.is_null(TOKEN_FILE);
    let blocks: Vec<&str> = [AUTH_APPROLE, AUTH_JWT, AUTH_KUBERNETES]
        .into_iter()
        .filter(|b| !vault.is_null(b))
        .collect();
    let methods = blocks.len() + usize::from(token_given);
    if methods > 1 {
        let mut found: Vec<String> = blocks.iter().map(|b| format!("`{b}`")).collect();
        if token_given {
            found.insert(0, "`token`/`token_file`".to_owned());
        }
        let at = blocks.last().copied().unwrap_or(TOKEN);
        d.push(
            Diagnostic::error(
                "More than one Vault authentication method",
                format!(
                    "Configure exactly one way to authenticate to Vault; found {}. Remove all but one.",
                    found.join(" and ")
                ),
            )
            .at(vault.path(at)),
        );
    }
    if let Some(b) = vault.block(AUTH_APPROLE) {
        check_auth_block(&b, AUTH_APPROLE, &[SECRET_ID, SECRET_ID_FILE], d);
    }
    if let Some(b) = vault.block(AUTH_JWT) {
        check_auth_block(&b, AUTH_JWT, &[JWT, JWT_FILE, JWT_ENV], d);
    }
}

fn check_environment(config: &Config, d: &mut Diagnostics) {
    if let Some(env) = config.string(ENVIRONMENT) {
        if !valid_environment(&env) {
            d.push(
                Diagnostic::error(
                    "Invalid environment",
                    "`environment` may use letters, digits, `-`, `_` and `.` only (it is substituted into secret paths).",
                )
                .at(config.path(ENVIRONMENT)),
            );
        }
    }
}

fn valid_environment(env: &str) -> bool {
    !env.is_empty()
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn secret_source(
    block: &Config,
    value: &str,
    file: &str,
    env: Option<&str>,
) -> Option<SecretSource> {
    if let Some(v) = block.secret(value) {
        return Some(SecretSource::Value(v));
    }
    if let Some(f) = block.string(file) {
        return Some(SecretSource::File(PathBuf::from(f)));
    }
    env.and_then(|e| block.string(e)).map(SecretSource::Env)
}

fn mount_of(block: &Config, default: &str) -> String {
    block
        .string(MOUNT)
        .map_or_else(|| default.to_owned(), |m| m.trim_matches('/').to_owned())
}

/// Resolves the auth method: an `auth_*` block, else a token from the attribute, the
/// environment or the token file.
fn auth_method(vault: Option<&Config>) -> Result<AuthMethod, Diagnostic> {
    if let Some(v) = vault {
        if let Some(b) = v.block(AUTH_APPROLE) {
            let missing = || {
                Diagnostic::error(
                    "Invalid auth_approle block",
                    "Set `secret_id` or `secret_id_file`.",
                )
                .at(b.path(SECRET_ID))
            };
            return Ok(AuthMethod::AppRole {
                mount: mount_of(&b, "approle"),
                role_id: b.string(ROLE_ID).ok_or_else(|| {
                    Diagnostic::error("Invalid auth_approle block", "Set `role_id`.")
                        .at(b.path(ROLE_ID))
                })?,
                secret_id: secret_source(&b, SECRET_ID, SECRET_ID_FILE, None)
                    .ok_or_else(missing)?,
            });
        }
        if let Some(b) = v.block(AUTH_JWT) {
            let missing = || {
                Diagnostic::error(
                    "Invalid auth_jwt block",
                    "Set one of `jwt`, `jwt_file` or `jwt_env`.",
                )
                .at(b.path(JWT))
            };
            return Ok(AuthMethod::Jwt {
                mount: mount_of(&b, "jwt"),
                role: b.string(ROLE).ok_or_else(|| {
                    Diagnostic::error("Invalid auth_jwt block", "Set `role`.").at(b.path(ROLE))
                })?,
                jwt: secret_source(&b, JWT, JWT_FILE, Some(JWT_ENV)).ok_or_else(missing)?,
            });
        }
        if let Some(b) = v.block(AUTH_KUBERNETES) {
            return Ok(AuthMethod::Kubernetes {
                mount: mount_of(&b, "kubernetes"),
                role: b.string(ROLE).ok_or_else(|| {
                    Diagnostic::error("Invalid auth_kubernetes block", "Set `role`.")
                        .at(b.path(ROLE))
                })?,
                jwt: SecretSource::File(PathBuf::from(
                    b.string(JWT_FILE)
                        .unwrap_or_else(|| KUBERNETES_JWT_FILE.to_owned()),
                )),
            });
        }
        if let Some(t) = v.secret(TOKEN) {
            return Ok(AuthMethod::Token(Some(t)));
        }
    }
    // Configuration beats the environment: an explicit token file, then VAULT_TOKEN, then the
    // file the Vault CLI writes.
    if let Some(file) = vault.and_then(|v| v.string(TOKEN_FILE)) {
        let path = PathBuf::from(&file);
        return match read_token_file(&path) {
            Ok(Some(t)) => Ok(AuthMethod::Token(Some(t))),
            Ok(None) => Err(format!("{file} is empty")),
            Err(e) => Err(format!("reading {file} failed: {e}")),
        }
        .map_err(|why| {
            Diagnostic::error("Cannot read the Vault token file", format!("{why}."))
                .at(crate::framework::AttributePath::root(VAULT).attr(TOKEN_FILE))
        });
    }
    if let Some((_, t)) = env_any(&["VAULT_TOKEN", "BAO_TOKEN"]) {
        return Ok(AuthMethod::Token(Some(secrecy::SecretString::from(
            t.trim(),
        ))));
    }
    let from_home = home_file(".vault-token").and_then(|f| read_token_file(&f).ok().flatten());
    Ok(AuthMethod::Token(from_home))
}

/// A token file's content, trimmed; `None` when it is empty.
fn read_token_file(path: &std::path::Path) -> std::io::Result<Option<secrecy::SecretString>> {
    let raw = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
    let t = raw.trim();
    Ok((!t.is_empty()).then(|| secrecy::SecretString::from(t)))
}

fn vault_settings(
    vault: Option<&Config>,
    retry: &RetryPolicy,
    timeout: Duration,
    d: &mut Diagnostics,
) -> Result<VaultSettings, Diagnostic> {
    let vpath = |name: &str| crate::framework::AttributePath::root(VAULT).attr(name);
    let attr = |name: &str| vault.and_then(|v| v.string(name));
    let (address, from) = match attr(ADDRESS) {
        Some(a) => (a, None),
        None => match env_any(&["VAULT_ADDR", "BAO_ADDR"]) {
            Some((var, a)) => (a, Some(var)),
            None => {
                return Err(Diagnostic::error(
                    "No Vault address",
                    "Set `address` in the provider's `vault` block, or the VAULT_ADDR environment variable.",
                )
                .at(vpath(ADDRESS)));
            }
        },
    };
    let address = net::base_url(&address).map_err(|e| {
        let d = Diagnostic::error(
            "Invalid Vault address",
            match &from {
                Some(var) => format!("{e} (from {var})."),
                None => format!("{e}."),
            },
        );
        if from.is_some() {
            d
        } else {
            d.at(vpath(ADDRESS))
        }
    })?;
    let namespace =
        attr(NAMESPACE).or_else(|| env_any(&["VAULT_NAMESPACE", "BAO_NAMESPACE"]).map(|(_, v)| v));
    let ca_file =
        attr(CA_CERT_FILE).or_else(|| env_any(&["VAULT_CACERT", "BAO_CACERT"]).map(|(_, v)| v));
    let ca_pem = match ca_file {
        Some(f) => Some(std::fs::read(&f).map_err(|e| {
            Diagnostic::error(
                "Cannot read the Vault CA file",
                format!("Reading {f} failed: {e}."),
            )
            .at(vpath(CA_CERT_FILE))
        })?),
        None => None,
    };
    let skip = match vault.and_then(|v| v.bool(SKIP_TLS_VERIFY)) {
        Some(b) => b,
        None => match env_any(&["VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY"]) {
            Some((var, raw)) => parse_bool(&raw).ok_or_else(|| {
                Diagnostic::error(
                    format!("Invalid {var}"),
                    format!("{var} must be true or false (or 1/0); got {raw:?}."),
                )
            })?,
            None => false,
        },
    };
    if skip {
        d.push(
            Diagnostic::warning(
                "Vault TLS verification is off",
                format!("The provider will not check the TLS certificate of {address}: anyone on the network path can read the credentials it fetches. Use `ca_cert_file` instead."),
            )
            .at(vpath(SKIP_TLS_VERIFY)),
        );
    }
    Ok(VaultSettings {
        address,
        namespace,
        auth: auth_method(vault)?,
        client: ClientOptions {
            timeout,
            ca_pem,
            skip_tls_verify: skip,
        },
        retry: retry.clone(),
    })
}

#[async_trait]
impl Provider for CcsecretsProvider {
    type Context = Context;

    fn type_name(&self) -> &'static str {
        "ccsecrets"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        let mut d = Diagnostics::new();
        check_numbers(config, &mut d);
        check_environment(config, &mut d);
        if let Some(vault) = config.block(VAULT) {
            check_vault(&vault, &mut d);
        }
        d
    }

    async fn configure(
        &self,
        _terraform_version: &str,
        config: &Config,
    ) -> Result<(Context, Diagnostics), Diagnostics> {
        let mut d = self.validate(config);
        if d.has_errors() {
            return Err(d);
        }
        if !config.value().is_fully_known() {
            return Err(Diagnostic::error(
                "Provider configuration not known yet",
                "The ccsecrets provider block refers to values that are not known until apply (for example a resource attribute). Use values known at plan time: variables, locals or data sources.",
            )
            .into());
        }
        let timeout = Duration::from_secs(
            number(config, TIMEOUT_SECONDS, TIMEOUT)
                .map_err(Diagnostics::from)?
                .unsigned_abs(),
        );
        let retries = number(config, MAX_RETRIES, RETRIES).map_err(Diagnostics::from)?;
        let open_timeout = Duration::from_secs(
            number(config, OPEN_TIMEOUT_SECONDS, OPEN_TIMEOUT)
                .map_err(Diagnostics::from)?
                .unsigned_abs(),
        );
        let environment = config
            .string(ENVIRONMENT)
            .or_else(|| env_any(&[ENVIRONMENT_ENV]).map(|(_, v)| v.trim().to_owned()));
        if let Some(env) = environment.as_deref().filter(|e| !valid_environment(e)) {
            d.push(Diagnostic::error(
                "Invalid environment",
                format!(
                    "{ENVIRONMENT_ENV}={env:?} may use letters, digits, `-`, `_` and `.` only."
                ),
            ));
            return Err(d);
        }
        let retry = RetryPolicy {
            max_retries: u32::try_from(retries).unwrap_or(3),
            ..RetryPolicy::default()
        };
        let vault_block = config.block(VAULT);
        let settings =
            vault_settings(vault_block.as_ref(), &retry, timeout, &mut d).map_err(|e| {
                let mut all = d.clone();
                all.push(e);
                all
            })?;
        let vault_id = format!(
            "{}#{}",
            settings.address,
            settings.namespace.as_deref().unwrap_or("")
        );
        let vault = VaultClient::new(settings).map_err(|e| {
            Diagnostics::from(
                Diagnostic::error("Cannot set up the Vault client", format!("{e}."))
                    .at(crate::framework::AttributePath::root(VAULT).attr(CA_CERT_FILE)),
            )
        })?;
        let http = net::http_client(&ClientOptions {
            timeout,
            ..ClientOptions::default()
        })
        .map_err(|e| {
            Diagnostics::from(Diagnostic::error(
                "Cannot set up the HTTP client",
                format!("{e}."),
            ))
        })?;
        self.shared
            .vaults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(vault.clone());
        tracing::info!(vault = %vault.address(), environment = environment.as_deref().unwrap_or(""), "provider configured");
        Ok((
            Context {
                vault,
                secrets: SecretCache::default(),
                http,
                retry,
                open_timeout,
                environment,
                cancel: self.shared.cancel.clone(),
                vault_id,
            },
            d,
        ))
    }

    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource<Context>>> {
        resources::ephemeral(&self.shared)
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource<Context>>> {
        resources::data_sources(&self.shared)
    }

    fn stop(&self) {
        self.shared.cancel.cancel();
    }

    async fn shutdown(&self) {
        let vaults: Vec<VaultClient> = std::mem::take(
            &mut *self
                .shared
                .vaults
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let (g, c, ()) = tokio::join!(
            self.shared.genesys.drain(),
            self.shared.cxone.drain(),
            async {
                futures_util::future::join_all(vaults.iter().map(VaultClient::shutdown)).await;
            }
        );
        if g + c > 0 {
            tracing::warn!(
                failed = g + c,
                "some tokens could not be revoked at shutdown; they expire on their own"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Value;

    fn cfg(v: Value) -> Config {
        Config::new(v)
    }

    #[test]
    fn schema_passes_terraforms_checks() {
        assert_eq!(schema().check(), Ok(()));
    }

    #[test]
    fn two_auth_methods_are_refused_on_the_second() {
        let c = cfg(Value::object([(
            VAULT,
            Value::object([
                (TOKEN, Value::from("t")),
                (
                    AUTH_APPROLE,
                    Value::object([(ROLE_ID, Value::from("r")), (SECRET_ID, Value::from("s"))]),
                ),
            ]),
        )]));
        let d = CcsecretsProvider::new().validate(&c);
        let e = d.iter().next().unwrap();
        assert_eq!(e.summary, "More than one Vault authentication method");
        assert!(
            e.detail.contains("`token`/`token_file` and `auth_approle`"),
            "{}",
            e.detail
        );
        assert_eq!(
            e.attribute.as_ref().unwrap().to_string(),
            "vault.auth_approle"
        );
    }

    #[test]
    fn jwt_block_needs_exactly_one_source() {
        let c = cfg(Value::object([(
            VAULT,
            Value::object([(
                AUTH_JWT,
                Value::object([
                    (ROLE, Value::from("ci")),
                    (JWT, Value::from("a")),
                    (JWT_FILE, Value::from("/f")),
                ]),
            )]),
        )]));
        let d = CcsecretsProvider::new().validate(&c);
        let e = d.iter().next().unwrap();
        assert!(
            e.detail
                .contains("exactly one of `jwt`, `jwt_file`, `jwt_env`"),
            "{}",
            e.detail
        );
        assert_eq!(
            e.attribute.as_ref().unwrap().to_string(),
            "vault.auth_jwt.jwt_file"
        );
        // Unknown counts as set: no complaint during validation.
        let c = cfg(Value::object([(
            VAULT,
            Value::object([(
                AUTH_JWT,
                Value::object([(ROLE, Value::from("ci")), (JWT, Value::Unknown)]),
            )]),
        )]));
        assert!(CcsecretsProvider::new().validate(&c).is_empty());
    }

    #[test]
    fn bad_numbers_and_addresses_are_pinned() {
        let c = cfg(Value::object([
            (TIMEOUT_SECONDS, Value::from(0)),
            (ENVIRONMENT, Value::from("prod/eu")),
            (
                VAULT,
                Value::object([(ADDRESS, Value::from("http://vault.example.com"))]),
            ),
        ]));
        let d = CcsecretsProvider::new().validate(&c);
        let at: Vec<String> = d
            .iter()
            .map(|d| d.attribute.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(at, vec!["timeout_seconds", "environment", "vault.address"]);
    }

    #[test]
    fn go_parse_bool() {
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
