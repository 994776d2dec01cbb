//! The settings every front end shares (the provider block's attributes, the command line's
//! top level), with the Vault CLI's environment fallbacks, resolved into a [`Core`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Field, Problem};
use crate::mint::{Core, valid_environment};
use crate::net::{self, ClientOptions, RetryPolicy};
use crate::platform::Net;
use crate::pool::Pools;
use crate::store::SecretStore;
use crate::store::aws::{AwsSettings, AwsStore};
use crate::store::azure::{AzureSettings, AzureStore, CredentialKind};
use crate::store::vault::{AuthMethod, SecretSource, VaultSettings, VaultStore};

/// Defaults and limits of the numeric settings: (default, min, max, environment variable).
pub const TIMEOUT: (i64, i64, i64, &str) = (30, 1, 600, "CCSECRETS_TIMEOUT_SECONDS");
/// See [`TIMEOUT`].
pub const RETRIES: (i64, i64, i64, &str) = (3, 0, 10, "CCSECRETS_MAX_RETRIES");
/// See [`TIMEOUT`].
pub const OPEN_TIMEOUT: (i64, i64, i64, &str) = (120, 1, 3600, "CCSECRETS_OPEN_TIMEOUT_SECONDS");
/// The environment variable `environment` falls back to.
pub const ENVIRONMENT_ENV: &str = "CCSECRETS_ENVIRONMENT";
/// Where a pod's service account token is.
pub const KUBERNETES_JWT_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The top-level settings.
#[derive(Debug, Default, Deserialize)]
pub struct Settings {
    /// The environment this configuration deploys to.
    pub environment: Option<String>,
    /// Timeout of each request, seconds.
    pub timeout_seconds: Option<f64>,
    /// Retries of transient failures.
    pub max_retries: Option<f64>,
    /// Deadline of one whole open, seconds.
    pub open_timeout_seconds: Option<f64>,
    /// How to reach Vault.
    pub vault: Option<VaultBlock>,
    /// AWS Secrets Manager instead of Vault.
    pub aws_secretsmanager: Option<AwsBlock>,
    /// Azure Key Vault instead of Vault.
    pub azure_keyvault: Option<AzureBlock>,
}

/// The `aws_secretsmanager` block.
#[derive(Debug, Default, Deserialize)]
pub struct AwsBlock {
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// `AWS_PROFILE`.
    pub profile: Option<String>,
    /// A role to assume.
    pub role_arn: Option<String>,
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// `AWS_CA_BUNDLE`.
    pub ca_cert_file: Option<String>,
}

/// The `azure_keyvault` block.
#[derive(Debug, Default, Deserialize)]
pub struct AzureBlock {
    /// `AZURE_KEYVAULT_URL`.
    pub vault_url: Option<String>,
    /// How to sign in (default: chosen from what is configured).
    pub credential: Option<String>,
    /// `AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `AZURE_CLIENT_SECRET`.
    pub client_secret: Option<SecretString>,
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    pub federated_token_file: Option<String>,
    /// `AZURE_AUTHORITY_HOST`.
    pub authority_host: Option<String>,
    /// Extra CA certificates.
    pub ca_cert_file: Option<String>,
}

/// The `vault` block.
#[derive(Debug, Default, Deserialize)]
pub struct VaultBlock {
    /// `VAULT_ADDR`.
    pub address: Option<String>,
    /// `VAULT_TOKEN`.
    pub token: Option<SecretString>,
    /// A file holding a token.
    pub token_file: Option<String>,
    /// `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
    /// `VAULT_CACERT`.
    pub ca_cert_file: Option<String>,
    /// `VAULT_SKIP_VERIFY`.
    pub skip_tls_verify: Option<bool>,
    /// AppRole login.
    pub auth_approle: Option<AppRoleBlock>,
    /// JWT login.
    pub auth_jwt: Option<JwtBlock>,
    /// Kubernetes login.
    pub auth_kubernetes: Option<KubernetesBlock>,
}

/// `auth_approle`.
#[derive(Debug, Default, Deserialize)]
pub struct AppRoleBlock {
    /// Auth mount (default `approle`).
    pub mount: Option<String>,
    /// The role id.
    pub role_id: Option<String>,
    /// The secret id.
    pub secret_id: Option<SecretString>,
    /// A file holding the secret id.
    pub secret_id_file: Option<String>,
}

/// `auth_jwt`.
#[derive(Debug, Default, Deserialize)]
pub struct JwtBlock {
    /// Auth mount (default `jwt`).
    pub mount: Option<String>,
    /// The role.
    pub role: Option<String>,
    /// The JWT.
    pub jwt: Option<SecretString>,
    /// A file holding the JWT.
    pub jwt_file: Option<String>,
    /// An environment variable holding the JWT.
    pub jwt_env: Option<String>,
}

/// `auth_kubernetes`.
#[derive(Debug, Default, Deserialize)]
pub struct KubernetesBlock {
    /// Auth mount (default `kubernetes`).
    pub mount: Option<String>,
    /// The role.
    pub role: Option<String>,
    /// The service account token file.
    pub jwt_file: Option<String>,
}

fn vpath(name: &str) -> Field {
    Field::root("vault").attr(name)
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

/// Exactly one of a group of sources in an auth block.
fn exactly_one(block: &str, given: &[(&str, bool)], d: &mut Vec<Problem>) {
    let set: Vec<&str> = given.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    if set.len() == 1 {
        return;
    }
    let list = given
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let p = Problem::error(
        format!("Invalid {block} block"),
        format!(
            "Set exactly one of {list} in the {block} block{}.",
            if set.is_empty() {
                String::new()
            } else {
                format!(" (found {})", set.join(" and "))
            }
        ),
    );
    let at = set.get(1).copied().unwrap_or(given[0].0);
    d.push(p.at(vpath(block).attr(at)));
}

impl Settings {
    /// The store these settings configure (Vault unless another store's block is set).
    pub fn store_kind(&self) -> crate::store::StoreKind {
        use crate::store::StoreKind;
        if self.aws_secretsmanager.is_some() {
            StoreKind::AwsSecretsManager
        } else if self.azure_keyvault.is_some() {
            StoreKind::AzureKeyVault
        } else {
            StoreKind::Vault
        }
    }

    /// Checks what can be checked without the environment or the network.
    pub fn validate(&self) -> Vec<Problem> {
        let mut d = Vec::new();
        for (name, value, (_, min, max, _)) in [
            ("timeout_seconds", self.timeout_seconds, TIMEOUT),
            ("max_retries", self.max_retries, RETRIES),
            (
                "open_timeout_seconds",
                self.open_timeout_seconds,
                OPEN_TIMEOUT,
            ),
        ] {
            if let Some(v) = value {
                if v.fract() != 0.0 || v < min as f64 || v > max as f64 {
                    d.push(
                        Problem::error(
                            format!("Invalid {name}"),
                            format!("`{name}` must be a whole number between {min} and {max}."),
                        )
                        .at_attr(name),
                    );
                }
            }
        }
        if let Some(env) = &self.environment {
            if !valid_environment(env) {
                d.push(
                    Problem::error(
                        "Invalid environment",
                        "`environment` may use letters, digits, `-`, `_` and `.` only, and may not be `.` or `..` (it is substituted into secret paths).",
                    )
                    .at_attr("environment"),
                );
            }
        }
        if let Some(v) = &self.vault {
            v.validate(&mut d);
        }
        let stores: Vec<&str> = [
            ("vault", self.vault.is_some()),
            ("aws_secretsmanager", self.aws_secretsmanager.is_some()),
            ("azure_keyvault", self.azure_keyvault.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| n)
        .collect();
        for second in stores.iter().skip(1) {
            d.push(
                Problem::error(
                    "More than one secret store",
                    format!(
                        "A provider configuration reads from one store, but this one configures {}. Keep one, and use a provider alias for the other.",
                        stores.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" and ")
                    ),
                )
                .at(Field::root(second)),
            );
        }
        if let Some(a) = &self.aws_secretsmanager {
            a.validate(&mut d);
        }
        if let Some(a) = &self.azure_keyvault {
            a.validate(&mut d);
        }
        d
    }

    /// Resolves the settings (with environment fallbacks) into a core. Warnings come back
    /// beside it; errors are pinned where they can be.
    pub fn resolve(
        &self,
        pools: Arc<Pools>,
        cancel: CancellationToken,
    ) -> Result<(Core, Vec<Problem>), Vec<Problem>> {
        let d = self.validate();
        if d.iter().any(Problem::is_error) {
            return Err(d);
        }
        let mut warnings = d;
        let one = |p: Problem| vec![p];
        let timeout = Duration::from_secs(
            number(self.timeout_seconds, "timeout_seconds", TIMEOUT)
                .map_err(one)?
                .unsigned_abs(),
        );
        let retries = number(self.max_retries, "max_retries", RETRIES).map_err(one)?;
        let open_timeout = Duration::from_secs(
            number(
                self.open_timeout_seconds,
                "open_timeout_seconds",
                OPEN_TIMEOUT,
            )
            .map_err(one)?
            .unsigned_abs(),
        );
        let environment = self
            .environment
            .clone()
            .or_else(|| env_any(&[ENVIRONMENT_ENV]).map(|(_, v)| v.trim().to_owned()));
        if let Some(env) = environment.as_deref().filter(|e| !valid_environment(e)) {
            return Err(one(Problem::error(
                "Invalid environment",
                format!(
                    "{ENVIRONMENT_ENV}={env:?} may use letters, digits, `-`, `_` and `.` only."
                ),
            )));
        }
        let retry = RetryPolicy {
            max_retries: u32::try_from(retries).unwrap_or(3),
            ..RetryPolicy::default()
        };
        let store: Arc<dyn SecretStore> = if let Some(a) = &self.aws_secretsmanager {
            let store = AwsStore::new(a.resolve(timeout, retry.max_retries).map_err(one)?);
            tracing::info!(
                store = "aws",
                environment = environment.as_deref().unwrap_or(""),
                "configured"
            );
            Arc::new(store)
        } else if let Some(a) = &self.azure_keyvault {
            let settings = a.resolve(timeout, retry.max_retries).map_err(one)?;
            tracing::info!(store = "azure", vault = %settings.vault_url, environment = environment.as_deref().unwrap_or(""), "configured");
            Arc::new(AzureStore::new(settings))
        } else {
            let empty = VaultBlock::default();
            let vault = self.vault.as_ref().unwrap_or(&empty);
            let settings = vault.resolve(&retry, timeout, &mut warnings).map_err(one)?;
            let store = VaultStore::new(settings).map_err(|e| {
                one(
                    Problem::error("Cannot set up the Vault client", format!("{e}."))
                        .at(vpath("ca_cert_file")),
                )
            })?;
            tracing::info!(vault = %store.address(), environment = environment.as_deref().unwrap_or(""), "configured");
            Arc::new(store)
        };
        let http = net::http_client(&ClientOptions {
            timeout,
            ..ClientOptions::default()
        })
        .map_err(|e| {
            one(Problem::error(
                "Cannot set up the HTTP client",
                format!("{e}."),
            ))
        })?;
        Ok((
            Core {
                store,
                net: Net { http, retry },
                environment,
                open_timeout,
                cancel,
                pools,
            },
            warnings,
        ))
    }
}

/// A bounded whole number from the setting, else the environment, else the default.
fn number(
    value: Option<f64>,
    name: &str,
    (default, min, max, env): (i64, i64, i64, &str),
) -> Result<i64, Problem> {
    let (value, from_env) = match value {
        #[allow(clippy::cast_possible_truncation)]
        Some(v) => (v as i64, false),
        None => match std::env::var(env).ok().filter(|v| !v.trim().is_empty()) {
            Some(raw) => (
                raw.trim().parse::<i64>().map_err(|_| {
                    Problem::error(
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
        let p = Problem::error(
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
        return Err(if from_env { p } else { p.at_attr(name) });
    }
    Ok(value)
}

fn mount_or(mount: &Option<String>, default: &str) -> String {
    mount
        .as_deref()
        .map_or_else(|| default.to_owned(), |m| m.trim_matches('/').to_owned())
}

fn source(
    value: &Option<SecretString>,
    file: &Option<String>,
    env: Option<&Option<String>>,
) -> Option<SecretSource> {
    if let Some(v) = value {
        return Some(SecretSource::Value(v.clone()));
    }
    if let Some(f) = file {
        return Some(SecretSource::File(PathBuf::from(f)));
    }
    env.and_then(Option::clone).map(SecretSource::Env)
}

/// A token file's content, trimmed; `None` when it is empty.
fn read_token_file(path: &std::path::Path) -> std::io::Result<Option<SecretString>> {
    let raw = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
    let t = raw.trim();
    Ok((!t.is_empty()).then(|| SecretString::from(t)))
}

impl VaultBlock {
    fn validate(&self, d: &mut Vec<Problem>) {
        if let Some(addr) = &self.address {
            if let Err(e) = net::base_url(addr) {
                d.push(
                    Problem::error("Invalid Vault address", format!("{e}.")).at(vpath("address")),
                );
            }
        }
        if self.skip_tls_verify == Some(true)
            && self
                .address
                .as_deref()
                .is_some_and(|a| a.starts_with("http://"))
        {
            d.push(Problem::warning("skip_tls_verify has no effect", "The Vault address uses plain http to a loopback host, so there is no certificate to verify.").at(vpath("skip_tls_verify")));
        }
        let token_given = self.token.is_some() || self.token_file.is_some();
        let blocks: Vec<&str> = [
            ("auth_approle", self.auth_approle.is_some()),
            ("auth_jwt", self.auth_jwt.is_some()),
            ("auth_kubernetes", self.auth_kubernetes.is_some()),
        ]
        .into_iter()
        .filter(|(_, s)| *s)
        .map(|(n, _)| n)
        .collect();
        if blocks.len() + usize::from(token_given) > 1 {
            let mut found: Vec<String> = blocks.iter().map(|b| format!("`{b}`")).collect();
            if token_given {
                found.insert(0, "`token`/`token_file`".to_owned());
            }
            d.push(
                Problem::error(
                    "More than one Vault authentication method",
                    format!("Configure exactly one way to authenticate to Vault; found {}. Remove all but one.", found.join(" and ")),
                )
                .at(vpath(blocks.last().copied().unwrap_or("token"))),
            );
        }
        if let Some(b) = &self.auth_approle {
            exactly_one(
                "auth_approle",
                &[
                    ("secret_id", b.secret_id.is_some()),
                    ("secret_id_file", b.secret_id_file.is_some()),
                ],
                d,
            );
            if b.role_id.is_none() {
                d.push(
                    Problem::error("Invalid auth_approle block", "Set `role_id`.")
                        .at(vpath("auth_approle").attr("role_id")),
                );
            }
        }
        if let Some(b) = &self.auth_jwt {
            exactly_one(
                "auth_jwt",
                &[
                    ("jwt", b.jwt.is_some()),
                    ("jwt_file", b.jwt_file.is_some()),
                    ("jwt_env", b.jwt_env.is_some()),
                ],
                d,
            );
            if b.role.is_none() {
                d.push(
                    Problem::error("Invalid auth_jwt block", "Set `role`.")
                        .at(vpath("auth_jwt").attr("role")),
                );
            }
        }
        if let Some(b) = &self.auth_kubernetes {
            if b.role.is_none() {
                d.push(
                    Problem::error("Invalid auth_kubernetes block", "Set `role`.")
                        .at(vpath("auth_kubernetes").attr("role")),
                );
            }
        }
    }

    /// The auth method: an `auth_*` block, else a token from the setting, the token file,
    /// the environment or `~/.vault-token`.
    fn auth_method(&self) -> Result<AuthMethod, Problem> {
        let missing = |block: &str, what: &str, at: &str| {
            Problem::error(format!("Invalid {block} block"), format!("Set {what}."))
                .at(vpath(block).attr(at))
        };
        if let Some(b) = &self.auth_approle {
            return Ok(AuthMethod::AppRole {
                mount: mount_or(&b.mount, "approle"),
                role_id: b
                    .role_id
                    .clone()
                    .ok_or_else(|| missing("auth_approle", "`role_id`", "role_id"))?,
                secret_id: source(&b.secret_id, &b.secret_id_file, None).ok_or_else(|| {
                    missing(
                        "auth_approle",
                        "`secret_id` or `secret_id_file`",
                        "secret_id",
                    )
                })?,
            });
        }
        if let Some(b) = &self.auth_jwt {
            return Ok(AuthMethod::Jwt {
                mount: mount_or(&b.mount, "jwt"),
                role: b
                    .role
                    .clone()
                    .ok_or_else(|| missing("auth_jwt", "`role`", "role"))?,
                jwt: source(&b.jwt, &b.jwt_file, Some(&b.jwt_env)).ok_or_else(|| {
                    missing("auth_jwt", "one of `jwt`, `jwt_file` or `jwt_env`", "jwt")
                })?,
            });
        }
        if let Some(b) = &self.auth_kubernetes {
            return Ok(AuthMethod::Kubernetes {
                mount: mount_or(&b.mount, "kubernetes"),
                role: b
                    .role
                    .clone()
                    .ok_or_else(|| missing("auth_kubernetes", "`role`", "role"))?,
                jwt: SecretSource::File(PathBuf::from(
                    b.jwt_file
                        .clone()
                        .unwrap_or_else(|| KUBERNETES_JWT_FILE.to_owned()),
                )),
            });
        }
        if let Some(t) = &self.token {
            return Ok(AuthMethod::Token(Some(t.clone())));
        }
        // Configuration beats the environment: an explicit token file, then VAULT_TOKEN, then
        // the file the Vault CLI writes.
        if let Some(file) = &self.token_file {
            return match read_token_file(&PathBuf::from(file)) {
                Ok(Some(t)) => Ok(AuthMethod::Token(Some(t))),
                Ok(None) => Err(format!("{file} is empty")),
                Err(e) => Err(format!("reading {file} failed: {e}")),
            }
            .map_err(|why| {
                Problem::error("Cannot read the Vault token file", format!("{why}."))
                    .at(vpath("token_file"))
            });
        }
        if let Some((_, t)) = env_any(&["VAULT_TOKEN", "BAO_TOKEN"]) {
            return Ok(AuthMethod::Token(Some(SecretString::from(t.trim()))));
        }
        let from_home = home_file(".vault-token").and_then(|f| read_token_file(&f).ok().flatten());
        Ok(AuthMethod::Token(from_home))
    }

    fn resolve(
        &self,
        retry: &RetryPolicy,
        timeout: Duration,
        d: &mut Vec<Problem>,
    ) -> Result<VaultSettings, Problem> {
        let (address, from) = match &self.address {
            Some(a) => (a.clone(), None),
            None => match env_any(&["VAULT_ADDR", "BAO_ADDR"]) {
                Some((var, a)) => (a, Some(var)),
                None => {
                    return Err(Problem::error(
                        "No Vault address",
                        "Set `address` in the `vault` block, or the VAULT_ADDR environment variable.",
                    )
                    .at(vpath("address")));
                }
            },
        };
        let address = net::base_url(&address).map_err(|e| {
            let p = Problem::error(
                "Invalid Vault address",
                match &from {
                    Some(var) => format!("{e} (from {var})."),
                    None => format!("{e}."),
                },
            );
            if from.is_some() {
                p
            } else {
                p.at(vpath("address"))
            }
        })?;
        let namespace = self
            .namespace
            .clone()
            .or_else(|| env_any(&["VAULT_NAMESPACE", "BAO_NAMESPACE"]).map(|(_, v)| v));
        let ca_file = self
            .ca_cert_file
            .clone()
            .or_else(|| env_any(&["VAULT_CACERT", "BAO_CACERT"]).map(|(_, v)| v));
        let ca_pem = match ca_file {
            Some(f) => Some(std::fs::read(&f).map_err(|e| {
                Problem::error(
                    "Cannot read the Vault CA file",
                    format!("Reading {f} failed: {e}."),
                )
                .at(vpath("ca_cert_file"))
            })?),
            None => None,
        };
        let skip = match self.skip_tls_verify {
            Some(b) => b,
            None => match env_any(&["VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY"]) {
                Some((var, raw)) => parse_bool(&raw).ok_or_else(|| {
                    Problem::error(
                        format!("Invalid {var}"),
                        format!("{var} must be true or false (or 1/0); got {raw:?}."),
                    )
                })?,
                None => false,
            },
        };
        if skip {
            d.push(
                Problem::warning(
                    "Vault TLS verification is off",
                    format!("ccsecrets will not check the TLS certificate of {address}: anyone on the network path can read the credentials it fetches. Use `ca_cert_file` instead."),
                )
                .at(vpath("skip_tls_verify")),
            );
        }
        Ok(VaultSettings {
            address,
            namespace,
            auth: self.auth_method()?,
            client: ClientOptions {
                timeout,
                ca_pem,
                skip_tls_verify: skip,
                ..ClientOptions::default()
            },
            retry: retry.clone(),
        })
    }
}

fn aws_path(name: &str) -> Field {
    Field::root("aws_secretsmanager").attr(name)
}

fn azure_path(name: &str) -> Field {
    Field::root("azure_keyvault").attr(name)
}

/// A URL setting or its environment fallback, checked (https, or http to loopback).
fn url_or_env(
    value: &Option<String>,
    vars: &[&str],
    at: Field,
    what: &str,
) -> Result<Option<url::Url>, Problem> {
    let (raw, from) = match value {
        Some(v) => (v.clone(), None),
        None => match env_any(vars) {
            Some((var, v)) => (v, Some(var)),
            None => return Ok(None),
        },
    };
    net::base_url(raw.trim()).map(Some).map_err(|e| {
        let p = Problem::error(
            format!("Invalid {what}"),
            match &from {
                Some(var) => format!("{e} (from {var})."),
                None => format!("{e}."),
            },
        );
        if from.is_some() { p } else { p.at(at) }
    })
}

impl AwsBlock {
    fn validate(&self, d: &mut Vec<Problem>) {
        if let Some(e) = &self.endpoint {
            if let Err(e) = net::base_url(e) {
                d.push(
                    Problem::error("Invalid endpoint", format!("{e}.")).at(aws_path("endpoint")),
                );
            }
        }
        if let Some(r) = &self.region {
            if r.is_empty()
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                d.push(
                    Problem::error(
                        "Invalid region",
                        "`region` must be an AWS region name such as `eu-west-1`.",
                    )
                    .at(aws_path("region")),
                );
            }
        }
        if let Some(r) = &self.role_arn {
            if !r.starts_with("arn:") || !r.contains(":role/") {
                d.push(
                    Problem::error("Invalid role_arn", "`role_arn` must be an IAM role ARN such as `arn:aws:iam::123456789012:role/cc-deploy`.")
                        .at(aws_path("role_arn")),
                );
            }
        }
    }

    fn resolve(&self, timeout: Duration, max_retries: u32) -> Result<AwsSettings, Problem> {
        // The SDK reads these itself; they are read here too so that plain http is refused
        // unless it goes to loopback.
        let endpoint = url_or_env(
            &self.endpoint,
            &["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"],
            aws_path("endpoint"),
            "endpoint",
        )?;
        url_or_env(
            &None,
            &["AWS_ENDPOINT_URL_STS"],
            aws_path("endpoint"),
            "STS endpoint",
        )?;
        Ok(AwsSettings {
            region: self.region.clone(),
            profile: self.profile.clone(),
            role_arn: self.role_arn.clone(),
            endpoint,
            ca_pem: read_ca(
                self.ca_cert_file
                    .clone()
                    .or_else(|| env_any(&["AWS_CA_BUNDLE"]).map(|(_, v)| v.trim().to_owned()))
                    .as_deref(),
                aws_path("ca_cert_file"),
            )?,
            timeout,
            max_retries,
        })
    }
}

/// The CA file `file` (if any), read and checked to hold certificates; a failure is pinned
/// to `at`.
fn read_ca(file: Option<&str>, at: Field) -> Result<Option<Vec<u8>>, Problem> {
    let Some(f) = file else {
        return Ok(None);
    };
    let pem = std::fs::read(f).map_err(|e| {
        Problem::error(
            "Cannot read the CA file",
            format!("Reading {f} failed: {e}."),
        )
        .at(at.clone())
    })?;
    net::ca_certificates(&pem)
        .map_err(|e| Problem::error("Invalid CA file", format!("{f}: {e}.")).at(at))?;
    Ok(Some(pem))
}

impl AzureBlock {
    fn validate(&self, d: &mut Vec<Problem>) {
        if let Some(u) = &self.vault_url {
            if let Err(e) = net::base_url(u) {
                d.push(
                    Problem::error("Invalid vault_url", format!("{e}."))
                        .at(azure_path("vault_url")),
                );
            }
        }
        if let Some(c) = &self.credential {
            if CredentialKind::parse(c).is_none() {
                d.push(
                    Problem::error(
                        "Invalid credential",
                        "`credential` must be one of `client_secret`, `workload_identity`, `managed_identity` or `azure_cli` (or unset, to choose from what is configured).",
                    )
                    .at(azure_path("credential")),
                );
            }
        }
        if let Some(h) = &self.authority_host {
            if !h.starts_with("https://") {
                d.push(
                    Problem::error("Invalid authority_host", "`authority_host` must be an https URL, e.g. `https://login.microsoftonline.us`.")
                        .at(azure_path("authority_host")),
                );
            }
        }
    }

    fn resolve(&self, timeout: Duration, max_retries: u32) -> Result<AzureSettings, Problem> {
        let vault_url = url_or_env(&self.vault_url, &["AZURE_KEYVAULT_URL"], azure_path("vault_url"), "vault_url")?
            .ok_or_else(|| {
                Problem::error(
                    "No Key Vault URL",
                    "Set `vault_url` in the azure_keyvault block (e.g. `https://cc-prod.vault.azure.net`), or AZURE_KEYVAULT_URL.",
                )
                .at(azure_path("vault_url"))
            })?;
        let pick = |v: &Option<String>, var: &str| {
            v.clone()
                .or_else(|| env_any(&[var]).map(|(_, v)| v.trim().to_owned()))
        };
        let tenant_id = pick(&self.tenant_id, "AZURE_TENANT_ID");
        let client_id = pick(&self.client_id, "AZURE_CLIENT_ID");
        let client_secret = self
            .client_secret
            .clone()
            .or_else(|| env_any(&["AZURE_CLIENT_SECRET"]).map(|(_, v)| SecretString::from(v)));
        let federated_token_file =
            pick(&self.federated_token_file, "AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from);
        let credential = match self.credential.as_deref().and_then(CredentialKind::parse) {
            Some(k) => k,
            None if client_secret.is_some() => CredentialKind::ClientSecret,
            None if federated_token_file.is_some() => CredentialKind::WorkloadIdentity,
            None if env_any(&["IDENTITY_ENDPOINT", "MSI_ENDPOINT"]).is_some() => {
                CredentialKind::ManagedIdentity
            }
            None => CredentialKind::AzureCli,
        };
        let ca_pem = read_ca(self.ca_cert_file.as_deref(), azure_path("ca_cert_file"))?;
        Ok(AzureSettings {
            vault_url,
            credential,
            tenant_id,
            client_id,
            client_secret,
            federated_token_file,
            authority_host: pick(&self.authority_host, "AZURE_AUTHORITY_HOST"),
            ca_pem,
            timeout,
            max_retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Settings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn one_store_per_configuration_and_each_blocks_values_are_checked() {
        let d = settings(
            r#"{"vault":{},"aws_secretsmanager":{"region":"eu-west-1"},"azure_keyvault":{"vault_url":"https://v.vault.azure.net"}}"#,
        )
        .validate();
        let at: Vec<String> = d
            .iter()
            .filter(|p| p.summary == "More than one secret store")
            .map(|p| p.field.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(at, ["aws_secretsmanager", "azure_keyvault"]);
        let d = settings(
            r#"{"aws_secretsmanager":{"region":"EU West","endpoint":"http://sm.example.com","role_arn":"cc-deploy"}}"#,
        )
        .validate();
        let at: Vec<String> = d
            .iter()
            .map(|p| p.field.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            at,
            [
                "aws_secretsmanager.endpoint",
                "aws_secretsmanager.region",
                "aws_secretsmanager.role_arn"
            ]
        );
        let d = settings(
            r#"{"azure_keyvault":{"vault_url":"http://v.vault.azure.net","credential":"default","authority_host":"http://login"}}"#,
        )
        .validate();
        let at: Vec<String> = d
            .iter()
            .map(|p| p.field.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            at,
            [
                "azure_keyvault.vault_url",
                "azure_keyvault.credential",
                "azure_keyvault.authority_host"
            ]
        );
        assert_eq!(settings("{}").store_kind(), crate::store::StoreKind::Vault);
    }

    #[test]
    fn the_azure_credential_follows_what_is_configured() {
        let resolve = |json: &str| {
            settings(json)
                .azure_keyvault
                .unwrap()
                .resolve(Duration::from_secs(5), 1)
        };
        let base = r#""vault_url":"https://v.vault.azure.net","tenant_id":"t","client_id":"c""#;
        let s = resolve(&format!(
            r#"{{"azure_keyvault":{{{base},"client_secret":"x"}}}}"#
        ))
        .unwrap();
        assert_eq!(s.credential, CredentialKind::ClientSecret);
        let s = resolve(&format!(
            r#"{{"azure_keyvault":{{{base},"federated_token_file":"/f"}}}}"#
        ))
        .unwrap();
        assert_eq!(s.credential, CredentialKind::WorkloadIdentity);
        let s = resolve(&format!(
            r#"{{"azure_keyvault":{{{base},"client_secret":"x","credential":"azure_cli"}}}}"#
        ))
        .unwrap();
        assert_eq!(s.credential, CredentialKind::AzureCli, "explicit wins");
        let e = resolve(r#"{"azure_keyvault":{}}"#).unwrap_err();
        assert_eq!(e.summary, "No Key Vault URL");
    }

    #[test]
    fn two_auth_methods_are_refused_on_the_second() {
        let d =
            settings(r#"{"vault":{"token":"t","auth_approle":{"role_id":"r","secret_id":"s"}}}"#)
                .validate();
        assert_eq!(d[0].summary, "More than one Vault authentication method");
        assert!(
            d[0].detail
                .contains("`token`/`token_file` and `auth_approle`"),
            "{}",
            d[0].detail
        );
        assert_eq!(
            d[0].field.as_ref().unwrap().to_string(),
            "vault.auth_approle"
        );
    }

    #[test]
    fn jwt_block_needs_exactly_one_source() {
        let d = settings(r#"{"vault":{"auth_jwt":{"role":"ci","jwt":"a","jwt_file":"/f"}}}"#)
            .validate();
        assert!(
            d[0].detail
                .contains("exactly one of `jwt`, `jwt_file`, `jwt_env`"),
            "{}",
            d[0].detail
        );
        assert_eq!(
            d[0].field.as_ref().unwrap().to_string(),
            "vault.auth_jwt.jwt_file"
        );
    }

    #[test]
    fn bad_numbers_environments_and_addresses_are_pinned() {
        let d = settings(r#"{"timeout_seconds":0,"max_retries":1.5,"environment":"..","vault":{"address":"http://vault.example.com"}}"#).validate();
        let at: Vec<String> = d
            .iter()
            .map(|d| d.field.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            at,
            vec![
                "timeout_seconds",
                "max_retries",
                "environment",
                "vault.address"
            ]
        );
        assert!(settings(r#"{"environment":"prod/eu"}"#).validate().len() == 1);
        assert!(
            settings(r#"{"environment":"prod.eu-1"}"#)
                .validate()
                .is_empty()
        );
    }

    #[test]
    fn go_parse_bool() {
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
