//! `ccsecrets_genesys_token`: a Genesys Cloud client-credentials token minted from an OAuth
//! client kept in Vault, shared within the provider process and revoked when the last block
//! using it closes.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::FutureExt;

use super::attr::*;
use super::{
    AttemptError, Source, echo_or, expiry_values, handle_of, key_value, platform_diagnostic,
    private_bytes, rotation_attributes, source_attributes, token_attributes, validate_source,
    with_rotation_fallback,
};
use crate::framework::{
    Attribute, Block, Config, Diagnostic, Diagnostics, EphemeralResource, Opened, Schema, Type,
    Value,
};
use crate::net;
use crate::platforms::genesys::{self, Credentials, Endpoints, GenesysToken, PLATFORM};
use crate::platforms::pool::TokenPool;
use crate::platforms::regions;
use crate::provider::{Context, Shared};
use crate::vault::KvSecret;

const CLIENT_ID_KEY: &str = "client_id_key";
const CLIENT_SECRET_KEY: &str = "client_secret_key";
const REGION: &str = "region";
const DOMAIN: &str = "domain";
const LOGIN_URL: &str = "login_url";
const API_URL: &str = "api_url";
const REVOKE_ON_CLOSE: &str = "revoke_on_close";
const EXPECTED_ORGANIZATION_ID: &str = "expected_organization_id";
const ORGANIZATION_ID: &str = "organization_id";
/// Private-bytes tag.
const TAG: u8 = b'G';

pub(super) struct GenesysTokenResource {
    pool: Arc<Shared>,
}

impl GenesysTokenResource {
    pub(super) fn new(shared: &Arc<Shared>) -> Self {
        GenesysTokenResource {
            pool: Arc::clone(shared),
        }
    }

    fn pool(&self) -> &TokenPool<GenesysToken> {
        &self.pool.genesys
    }
}

fn schema() -> Schema {
    let mut attrs = source_attributes(
        "the OAuth client (keys `client_id` and `client_secret`, optionally `region` or `domain`)",
        "genesys/prod/pipeline",
    );
    attrs.extend([
        Attribute::optional_computed(CLIENT_ID_KEY, Type::String, "Key of the secret that holds the OAuth client ID. Default `client_id`."),
        Attribute::optional_computed(CLIENT_SECRET_KEY, Type::String, "Key of the secret that holds the OAuth client secret. Default `client_secret`."),
        Attribute::optional_computed(REGION, Type::String, format!("Genesys Cloud region, named as the genesyscloud provider's `aws_region` (e.g. `us-east-1`). When neither `region` nor `domain` is set, the secret's `region` or `domain` key is used. One of: {}.", regions::region_names())),
        Attribute::optional_computed(DOMAIN, Type::String, "Genesys Cloud domain instead of a region, e.g. `mypurecloud.com` (tokens from `login.<domain>`, API at `api.<domain>`)."),
        Attribute::optional(LOGIN_URL, Type::String, "Override of the token endpoint's base URL (scheme, host, port; `/oauth/token` is appended), for gateways and tests. https is required except to loopback hosts."),
        Attribute::optional_computed(API_URL, Type::String, "Base URL of the Genesys Cloud API (`/api/v2/...` is appended): `https://api.<domain>` unless overridden. Used for revocation and the organization check."),
        Attribute::optional_computed(REVOKE_ON_CLOSE, Type::Bool, "Revoke the token (`DELETE /api/v2/tokens/me`) when the last block using it closes, or when Terraform ends the provider. Default `true`."),
        Attribute::optional(EXPECTED_ORGANIZATION_ID, Type::String, "When set, the organization of the minted token (from `GET /api/v2/tokens/me`) must have this id; otherwise the open fails and the token is released (revoked unless `revoke_on_close = false`). Guards against using one environment's credentials in another."),
    ]);
    attrs.extend(rotation_attributes(PLATFORM));
    attrs.extend(token_attributes(PLATFORM));
    attrs.push(Attribute::computed(
        ORGANIZATION_ID,
        Type::String,
        "The token's organization id, when `expected_organization_id` is set (null otherwise).",
    ));
    Schema::new(Block::new(
        "Mints a Genesys Cloud OAuth token (client-credentials grant) from an OAuth client stored in Vault. The token is handed to Terraform as an ephemeral value, typically to the genesyscloud provider's `access_token`, and never written to plan or state. Blocks that need the same token share one token request within one provider process (Terraform starts a new process for each plan and apply).",
        attrs,
    ))
}

/// Where to ask for the token, and what to report.
#[derive(Debug)]
struct Resolved {
    endpoints: Endpoints,
    region: Option<String>,
    domain: Option<String>,
}

fn url_attr(config: &Config, name: &str) -> Result<Option<url::Url>, Diagnostic> {
    config
        .string(name)
        .map(|raw| {
            net::base_url(&raw).map_err(|e| {
                Diagnostic::error(format!("Invalid {name}"), format!("{e}.")).at(config.path(name))
            })
        })
        .transpose()
}

fn unknown_region(region: &str, from: &str) -> String {
    format!(
        "{region:?} ({from}) is not a Genesys Cloud region. Valid regions: {}.",
        regions::region_names()
    )
}

/// Region and domain from the attributes, else from the secret; URL overrides on top.
fn resolve(config: &Config, secret: &KvSecret, src: &Source) -> Result<Resolved, Diagnostic> {
    let login_override = url_attr(config, LOGIN_URL)?;
    let api_override = url_attr(config, API_URL)?;
    let secret_text = |key: &str| {
        use secrecy::ExposeSecret;
        secret
            .data
            .non_empty(key)
            .map(|v| v.expose_secret().trim().to_owned())
    };
    let from_secret = format!("key of the secret at {}", src.display());
    let (region, domain) = if let Some(r) = config.string(REGION) {
        let (name, domain) = regions::domain_of(&r).ok_or_else(|| {
            Diagnostic::error(
                "Unknown Genesys Cloud region",
                unknown_region(&r, "`region`"),
            )
            .at(config.path(REGION))
        })?;
        (Some(name.to_owned()), Some(domain.to_owned()))
    } else if let Some(d) = config.string(DOMAIN) {
        let d = regions::check_domain(&d).map_err(|e| {
            Diagnostic::error("Invalid domain", format!("{e}.")).at(config.path(DOMAIN))
        })?;
        (regions::region_of(&d).map(str::to_owned), Some(d))
    } else if let Some(r) = secret_text(REGION) {
        let (name, domain) = regions::domain_of(&r).ok_or_else(|| {
            Diagnostic::error(
                "Unknown Genesys Cloud region",
                unknown_region(&r, &format!("the `region` {from_secret}")),
            )
            .at(config.path(PATH))
        })?;
        (Some(name.to_owned()), Some(domain.to_owned()))
    } else if let Some(d) = secret_text(DOMAIN) {
        let d = regions::check_domain(&d).map_err(|e| {
            Diagnostic::error(
                "Invalid domain",
                format!("The `domain` {from_secret}: {e}."),
            )
            .at(config.path(PATH))
        })?;
        (regions::region_of(&d).map(str::to_owned), Some(d))
    } else {
        (None, None)
    };
    let standard = domain
        .as_deref()
        .map(Endpoints::for_domain)
        .transpose()
        .map_err(|e| {
            Diagnostic::error("Invalid domain", format!("{e}.")).at(config.path(DOMAIN))
        })?;
    let (login, api) = match (login_override, api_override, standard) {
        (Some(l), Some(a), _) => (l, a),
        (l, a, Some(std)) => (l.unwrap_or(std.login), a.unwrap_or(std.api)),
        (l, a, None) => {
            let missing = if l.is_none() { REGION } else { API_URL };
            return Err(Diagnostic::error(
                "No Genesys Cloud region",
                format!(
                    "Set `region` (e.g. \"us-east-1\") or `domain`, or store a `region` or `domain` key in the secret at {}{}.",
                    src.display(),
                    if l.is_some() || a.is_some() { "; or set both `login_url` and `api_url`" } else { "" }
                ),
            )
            .at(config.path(missing)));
        }
    };
    Ok(Resolved {
        endpoints: Endpoints { login, api },
        region,
        domain,
    })
}

#[async_trait]
impl EphemeralResource<Context> for GenesysTokenResource {
    fn type_name(&self) -> &'static str {
        "ccsecrets_genesys_token"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        let mut d = validate_source(config);
        if config.string(REGION).is_some() && config.string(DOMAIN).is_some() {
            d.push(
                Diagnostic::error(
                    "Conflicting region and domain",
                    "Set `region` or `domain`, not both.",
                )
                .at(config.path(DOMAIN)),
            );
        }
        if let Some(r) = config.string(REGION) {
            if regions::domain_of(&r).is_none() {
                d.push(
                    Diagnostic::error(
                        "Unknown Genesys Cloud region",
                        unknown_region(&r, "`region`"),
                    )
                    .at(config.path(REGION)),
                );
            }
        }
        if let Some(dom) = config.string(DOMAIN) {
            if let Err(e) = regions::check_domain(&dom) {
                d.push(
                    Diagnostic::error("Invalid domain", format!("{e}.")).at(config.path(DOMAIN)),
                );
            }
        }
        for name in [LOGIN_URL, API_URL] {
            if let Err(e) = url_attr(config, name) {
                d.push(e);
            }
        }
        for name in [CLIENT_ID_KEY, CLIENT_SECRET_KEY] {
            if config.get(name).as_str().is_some_and(str::is_empty) {
                d.push(
                    Diagnostic::error(
                        format!("Invalid {name}"),
                        format!("`{name}` must name a key of the secret."),
                    )
                    .at(config.path(name)),
                );
            }
        }
        d
    }

    async fn open(&self, ctx: &Context, config: &Config) -> Result<Opened, Diagnostics> {
        let src = Source::from_config(config, ctx)?;
        let budget = ctx.budget();
        let id_key = config
            .string(CLIENT_ID_KEY)
            .unwrap_or_else(|| "client_id".to_owned());
        let secret_key = config
            .string(CLIENT_SECRET_KEY)
            .unwrap_or_else(|| "client_secret".to_owned());
        let revoke = config.bool(REVOKE_ON_CLOSE).unwrap_or(true);
        let fallback = config.bool(ROTATION_FALLBACK).unwrap_or(true);

        let rotated = with_rotation_fallback(ctx, &budget, &src, fallback, PLATFORM, |secret| {
            let (src, id_key, secret_key, budget) = (&src, &id_key, &secret_key, &budget);
            async move {
                let creds = Credentials {
                    client_id: key_value(&secret, src, id_key, CLIENT_ID_KEY)
                        .map_err(AttemptError::Input)?,
                    client_secret: key_value(&secret, src, secret_key, CLIENT_SECRET_KEY)
                        .map_err(AttemptError::Input)?,
                };
                let resolved = resolve(config, &secret, src).map_err(AttemptError::Input)?;
                let key = format!(
                    "{}|{}|{}|v{}|{id_key}|{secret_key}|{}|{}|revoke={revoke}",
                    ctx.vault_id,
                    src.mount,
                    src.path,
                    secret.metadata.version,
                    resolved.endpoints.login,
                    resolved.endpoints.api
                );
                let (http, endpoints, policy, budget) = (
                    ctx.http.clone(),
                    resolved.endpoints.clone(),
                    ctx.retry.clone(),
                    budget.clone(),
                );
                let creds = Arc::new(creds);
                let lease = self
                    .pool()
                    .acquire(&key, move || {
                        let (http, endpoints, policy, budget, creds) = (
                            http.clone(),
                            endpoints.clone(),
                            policy.clone(),
                            budget.clone(),
                            Arc::clone(&creds),
                        );
                        async move {
                            genesys::mint(&http, &endpoints, &creds, revoke, &policy, &budget).await
                        }
                        .boxed()
                    })
                    .await
                    .map_err(AttemptError::Platform)?;
                Ok((lease, resolved))
            }
        })
        .await?;
        let (lease, resolved) = rotated.value;
        let token = &lease.token;

        let organization = match config.string(EXPECTED_ORGANIZATION_ID) {
            None => None,
            Some(expected) => {
                let checked = token
                    .organization_id(&ctx.http, &resolved.endpoints.api, &ctx.retry, &budget)
                    .await;
                match checked {
                    Ok(actual) if actual.eq_ignore_ascii_case(expected.trim()) => Some(actual),
                    other => {
                        // Not ours to hand out: give the lease back, which revokes it if unused.
                        let _ = self.pool().release(lease.handle).await;
                        return Err(match other {
                            Ok(actual) => Diagnostic::error(
                                "Token belongs to another Genesys Cloud organization",
                                format!(
                                    "The credentials at {} (version {}) minted a token for organization {actual}, but `expected_organization_id` is {expected}. {} Check that the path points at this environment's OAuth client.",
                                    src.display(),
                                    rotated.used,
                                    if revoke {
                                        "The token was revoked."
                                    } else {
                                        "The token was not handed out (with `revoke_on_close = false` it stays valid until it expires)."
                                    }
                                ),
                            )
                            .at(config.path(EXPECTED_ORGANIZATION_ID))
                            .into(),
                            Err(e) => platform_diagnostic(&e, PLATFORM, &src, rotated.used).into(),
                        });
                    }
                }
            }
        };

        let mut result: Vec<(&str, Value)> = src.result_values(rotated.latest).into();
        result.extend([
            (CLIENT_ID_KEY, Value::from(id_key)),
            (CLIENT_SECRET_KEY, Value::from(secret_key)),
            (
                REGION,
                echo_or(config, REGION, Value::opt_string(resolved.region)),
            ),
            (
                DOMAIN,
                echo_or(config, DOMAIN, Value::opt_string(resolved.domain)),
            ),
            (LOGIN_URL, config.get(LOGIN_URL).clone()),
            (
                API_URL,
                echo_or(
                    config,
                    API_URL,
                    Value::from(
                        resolved
                            .endpoints
                            .api
                            .as_str()
                            .trim_end_matches('/')
                            .to_owned(),
                    ),
                ),
            ),
            (REVOKE_ON_CLOSE, Value::from(revoke)),
            (
                EXPECTED_ORGANIZATION_ID,
                config.get(EXPECTED_ORGANIZATION_ID).clone(),
            ),
            (ROTATION_FALLBACK, Value::from(fallback)),
            (CREDENTIAL_VERSION, Value::from(rotated.used)),
            (ACCESS_TOKEN, Value::Secret(token.access_token.clone())),
            (TOKEN_TYPE, Value::from(token.token_type.clone())),
            (ORGANIZATION_ID, Value::opt_string(organization)),
        ]);
        result.extend(expiry_values(token.expires_at));
        Ok(Opened {
            result: Value::object(result),
            private: Some(private_bytes(TAG, lease.handle)),
            renew_at: None,
            warnings: rotated.warning.into_iter().collect(),
        })
    }

    async fn close(&self, private: &[u8]) -> Diagnostics {
        let Some(handle) = handle_of(TAG, private) else {
            return Diagnostics::new();
        };
        match self.pool().release(handle).await {
            Ok(()) => Diagnostics::new(),
            Err(e) => Diagnostic::warning(
                "Could not revoke the Genesys Cloud token",
                format!("{e}. The token stays valid until it expires."),
            )
            .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::SecretData;

    fn secret(json: &str) -> KvSecret {
        KvSecret {
            data: serde_json::from_str::<SecretData>(json).unwrap(),
            metadata: Default::default(),
        }
    }

    fn src() -> Source {
        Source {
            mount: "secret".into(),
            config_path: "g".into(),
            path: "g".into(),
            version: None,
        }
    }

    fn cfg(pairs: &[(&'static str, &str)]) -> Config {
        Config::new(Value::object(
            pairs.iter().map(|(k, v)| (*k, Value::from(*v))),
        ))
    }

    #[test]
    fn region_attribute_wins_and_is_case_insensitive() {
        let r = resolve(
            &cfg(&[(REGION, "EU-West-1")]),
            &secret(r#"{"region":"us-east-1"}"#),
            &src(),
        )
        .unwrap();
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.endpoints.login.as_str(), "https://login.mypurecloud.ie/");
        assert_eq!(r.endpoints.api.as_str(), "https://api.mypurecloud.ie/");
    }

    #[test]
    fn secret_keys_are_the_fallback() {
        let r = resolve(&cfg(&[]), &secret(r#"{"region":"ap-southeast-2"}"#), &src()).unwrap();
        assert_eq!(r.domain.as_deref(), Some("mypurecloud.com.au"));
        let r = resolve(
            &cfg(&[]),
            &secret(r#"{"domain":"usw2.pure.cloud"}"#),
            &src(),
        )
        .unwrap();
        assert_eq!(r.region.as_deref(), Some("us-west-2"));
        // An unlisted domain works, with no region to report.
        let r = resolve(&cfg(&[(DOMAIN, "example.org")]), &secret("{}"), &src()).unwrap();
        assert_eq!((r.region, r.domain.as_deref()), (None, Some("example.org")));
    }

    #[test]
    fn overrides_replace_the_standard_endpoints() {
        let r = resolve(
            &cfg(&[
                (LOGIN_URL, "http://127.0.0.1:9/gw"),
                (API_URL, "http://127.0.0.1:9/api"),
            ]),
            &secret("{}"),
            &src(),
        )
        .unwrap();
        assert_eq!(r.endpoints.login.as_str(), "http://127.0.0.1:9/gw");
        let r = resolve(
            &cfg(&[(REGION, "us-east-1"), (LOGIN_URL, "http://localhost:1")]),
            &secret("{}"),
            &src(),
        )
        .unwrap();
        assert_eq!(r.endpoints.api.as_str(), "https://api.mypurecloud.com/");
    }

    #[test]
    fn resolution_failures_are_pinned_and_list_the_regions() {
        let e = resolve(&cfg(&[(REGION, "us-east-9")]), &secret("{}"), &src()).unwrap_err();
        assert_eq!(e.attribute.unwrap().to_string(), "region");
        assert!(e.detail.contains("us-east-1, us-east-2"), "{}", e.detail);
        let e = resolve(&cfg(&[]), &secret(r#"{"region":"mars-1"}"#), &src()).unwrap_err();
        assert_eq!(e.attribute.unwrap().to_string(), "path");
        assert!(
            e.detail
                .contains("the `region` key of the secret at secret/g"),
            "{}",
            e.detail
        );
        let e = resolve(&cfg(&[]), &secret("{}"), &src()).unwrap_err();
        assert_eq!(e.summary, "No Genesys Cloud region");
        let e = resolve(
            &cfg(&[(LOGIN_URL, "http://example.com")]),
            &secret("{}"),
            &src(),
        )
        .unwrap_err();
        assert_eq!(e.attribute.unwrap().to_string(), "login_url");
    }

    #[test]
    fn validate_refuses_region_and_domain_together() {
        let d = GenesysTokenResource::new(&Arc::new(Shared::default())).validate(&cfg(&[
            (PATH, "p"),
            (REGION, "us-east-1"),
            (DOMAIN, "mypurecloud.com"),
        ]));
        assert_eq!(
            d.iter().next().unwrap().summary,
            "Conflicting region and domain"
        );
    }
}
