//! Genesys Cloud: client-credentials tokens from `login.<domain>`, token introspection and
//! revocation on `api.<domain>`.

use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Net, Platform, PlatformError, Target, bearer, exchange, key_value, parse_token, regions,
    secret_text, url_setting,
};
use crate::error::Problem;
use crate::mint::Output;
use crate::net::{self, Budget, RetryPolicy};
use crate::pool::PooledToken;
use crate::store::{Location, Secret};

pub const PLATFORM: &str = "Genesys Cloud";

/// Where to ask: token endpoint base and API base.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Base of `/oauth/token`, e.g. `https://login.mypurecloud.com`.
    pub login: Url,
    /// Base of `/api/v2/...`, e.g. `https://api.mypurecloud.com`.
    pub api: Url,
}

impl Endpoints {
    /// The standard endpoints of a domain.
    pub fn for_domain(domain: &str) -> Result<Self, net::UrlError> {
        Ok(Endpoints {
            login: net::base_url(&format!("https://login.{domain}"))?,
            api: net::base_url(&format!("https://api.{domain}"))?,
        })
    }
}

/// A minted token.
pub struct GenesysToken {
    /// The token.
    pub access_token: SecretString,
    /// Its type, e.g. `bearer`.
    pub token_type: String,
    /// When it expires.
    pub expires_at: SystemTime,
    /// How long it was valid for when minted.
    pub lifetime: Duration,
    /// The organization the token belongs to, looked up once when a guard asks.
    organization: tokio::sync::OnceCell<String>,
    /// How to revoke it when its last user closes, if it is to be revoked.
    revoke_with: Option<(reqwest::Client, Url)>,
}

impl std::fmt::Debug for GenesysToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenesysToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PooledToken for GenesysToken {
    fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn revoke(&self) -> Option<BoxFuture<'static, Result<(), PlatformError>>> {
        let (http, api) = self.revoke_with.clone()?;
        let token = self.access_token.clone();
        Some(async move { revoke(&http, &api, &token).await }.boxed())
    }
}

/// The client credentials from Vault.
pub struct Credentials {
    /// The OAuth client id.
    pub client_id: SecretString,
    /// The OAuth client secret.
    pub client_secret: SecretString,
}

/// `POST <login>/oauth/token` with `grant_type=client_credentials` and Basic auth.
pub async fn mint(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    creds: &Credentials,
    revoke_on_release: bool,
    policy: &RetryPolicy,
    budget: &Budget,
) -> Result<GenesysToken, PlatformError> {
    let url = net::join(&endpoints.login, "/oauth/token");
    let sent = [&creds.client_id, &creds.client_secret];
    let body = exchange(PLATFORM, &url, policy, budget, &sent, || {
        http.post(url.clone())
            .basic_auth(
                creds.client_id.expose_secret(),
                Some(creds.client_secret.expose_secret()),
            )
            .form(&[("grant_type", "client_credentials")])
    })
    .await?;
    let token = parse_token(PLATFORM, &url, &body)?;
    // A client-credentials token lives 24 h unless the OAuth client says otherwise.
    let lifetime = super::lifetime(token.expires_in, 86_400);
    tracing::debug!(
        lifetime_s = lifetime.as_secs(),
        "minted a Genesys Cloud token"
    );
    Ok(GenesysToken {
        access_token: token.access_token,
        token_type: if token.token_type.is_empty() {
            "bearer".to_owned()
        } else {
            token.token_type
        },
        expires_at: super::expiry(lifetime),
        lifetime,
        organization: tokio::sync::OnceCell::new(),
        revoke_with: revoke_on_release.then(|| (http.clone(), endpoints.api.clone())),
    })
}

#[derive(serde::Deserialize)]
struct TokenInfo {
    organization: Option<Organization>,
}

#[derive(serde::Deserialize)]
struct Organization {
    #[serde(default)]
    id: String,
}

impl GenesysToken {
    /// The id of the organization the token belongs to (`GET /api/v2/tokens/me`), asked once.
    pub async fn organization_id(
        &self,
        http: &reqwest::Client,
        api: &Url,
        policy: &RetryPolicy,
        budget: &Budget,
    ) -> Result<String, PlatformError> {
        self.organization
            .get_or_try_init(|| async {
                let url = net::join(api, "/api/v2/tokens/me");
                let body = exchange(
                    PLATFORM,
                    &url,
                    policy,
                    budget,
                    &[&self.access_token],
                    || {
                        let req = http.get(url.clone());
                        match bearer(&self.access_token) {
                            Some(h) => req.header(reqwest::header::AUTHORIZATION, h),
                            None => req,
                        }
                    },
                )
                .await?;
                serde_json::from_slice::<TokenInfo>(&body)
                    .ok()
                    .and_then(|t| t.organization)
                    .map(|o| o.id)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| PlatformError::BadResponse {
                        platform: PLATFORM,
                        endpoint: url.as_str().to_owned(),
                        problem: "the token information has no organization.id".to_owned(),
                    })
            })
            .await
            .cloned()
    }
}

/// How long one revocation may keep trying (throttling and transient failures are retried,
/// honouring `Retry-After`): within the provider's 8 s for Close, so the answer says why.
pub const REVOKE_BUDGET: Duration = Duration::from_secs(7);

/// `DELETE <api>/api/v2/tokens/me`. A token the platform no longer accepts (401) counts as
/// revoked; a 429 or 5xx is retried within [`REVOKE_BUDGET`].
pub async fn revoke(
    http: &reqwest::Client,
    api: &Url,
    token: &SecretString,
) -> Result<(), PlatformError> {
    let url = net::join(api, "/api/v2/tokens/me");
    let budget = Budget::new(REVOKE_BUDGET, tokio_util::sync::CancellationToken::new());
    let waiting_for = format!("{PLATFORM} at {url} (revoking a token)");
    let outcome = net::retry(&RetryPolicy::default(), &budget, &waiting_for, |_| {
        let mut req = http.delete(url.clone());
        if let Some(h) = bearer(token) {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        let url = &url;
        async move {
            match req.send().await {
                Ok(resp) if resp.status().is_success() || resp.status().as_u16() == 401 => {
                    net::Attempt::Done(())
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let error = PlatformError::Unavailable {
                        platform: PLATFORM,
                        endpoint: url.as_str().to_owned(),
                        status,
                    };
                    let after = net::retry_after(resp.headers());
                    if status == 429 {
                        net::Attempt::Throttled { error, after }
                    } else if status >= 500 {
                        net::Attempt::Retry { error, after }
                    } else {
                        net::Attempt::Fail(error)
                    }
                }
                Err(e) => net::Attempt::Retry {
                    error: PlatformError::Unreachable {
                        platform: PLATFORM,
                        endpoint: url.as_str().to_owned(),
                        reason: net::describe_transport(&e),
                    },
                    after: None,
                },
            }
        }
    })
    .await
    .map_err(PlatformError::from_gave_up);
    if outcome.is_ok() {
        tracing::debug!("revoked a Genesys Cloud token");
    }
    outcome
}

/// Genesys Cloud behind the platform seam.
#[derive(Debug)]
pub struct Genesys;

/// The settings of one `genesys_token` block: the same names as its Terraform attributes.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct GenesysSettings {
    /// Path of the secret (may contain `{environment}`).
    #[serde(default)]
    pub path: String,
    /// KV mount.
    pub mount: Option<String>,
    /// Pinned KV version.
    pub version: Option<i64>,
    /// Pinned AWS or Azure version id.
    pub version_id: Option<String>,
    /// Pinned AWS staging label.
    pub version_stage: Option<String>,
    /// Try the previous version when the latest is rejected (default true).
    pub rotation_fallback: Option<bool>,
    /// Reuse a held token only while more than this share of its life is left (percent).
    pub reuse_min_remaining_percent: Option<i64>,
    /// Key of the client id (default `client_id`).
    pub client_id_key: Option<String>,
    /// Key of the client secret (default `client_secret`).
    pub client_secret_key: Option<String>,
    /// Region, as the genesyscloud provider's `aws_region`.
    pub region: Option<String>,
    /// Domain instead of a region.
    pub domain: Option<String>,
    /// Token endpoint base override.
    pub login_url: Option<String>,
    /// API base override.
    pub api_url: Option<String>,
    /// Revoke when the last user lets go (default true).
    pub revoke_on_close: Option<bool>,
    /// Refuse a token of another organization.
    pub expected_organization_id: Option<String>,
}

impl GenesysSettings {
    /// The key names: (client id, client secret).
    pub fn keys(&self) -> (String, String) {
        (
            self.client_id_key
                .clone()
                .unwrap_or_else(|| "client_id".to_owned()),
            self.client_secret_key
                .clone()
                .unwrap_or_else(|| "client_secret".to_owned()),
        )
    }

    /// Checks what can be checked without a secret.
    pub fn validate(&self) -> Vec<Problem> {
        let mut d = Vec::new();
        if self.region.is_some() && self.domain.is_some() {
            d.push(
                Problem::error(
                    "Conflicting region and domain",
                    "Set `region` or `domain`, not both.",
                )
                .at_attr("domain"),
            );
        }
        if let Some(r) = &self.region {
            if regions::domain_of(r).is_none() {
                d.push(
                    Problem::error(
                        "Unknown Genesys Cloud region",
                        unknown_region(r, "`region`"),
                    )
                    .at_attr("region"),
                );
            }
        }
        if let Some(dom) = &self.domain {
            if let Err(e) = regions::check_domain(dom) {
                d.push(Problem::error("Invalid domain", format!("{e}.")).at_attr("domain"));
            }
        }
        for (name, v) in [("login_url", &self.login_url), ("api_url", &self.api_url)] {
            if let Err(e) = url_setting(v.as_deref(), name) {
                d.push(e);
            }
        }
        for (name, v) in [
            ("client_id_key", &self.client_id_key),
            ("client_secret_key", &self.client_secret_key),
        ] {
            if v.as_deref().is_some_and(str::is_empty) {
                d.push(
                    Problem::error(
                        format!("Invalid {name}"),
                        format!("`{name}` must name a key of the secret."),
                    )
                    .at_attr(name),
                );
            }
        }
        d
    }
}

/// A credential and where to send it, with what the result reports.
#[derive(Debug)]
pub struct GenesysRequest {
    /// The client credentials.
    pub credentials: Credentials,
    /// Token and API endpoints.
    pub endpoints: Endpoints,
    /// The region name, when known.
    pub region: Option<String>,
    /// The domain, when known.
    pub domain: Option<String>,
    /// The key names used.
    pub keys: (String, String),
    /// Revoke at release.
    pub revoke: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

fn unknown_region(region: &str, from: &str) -> String {
    format!(
        "{region:?} ({from}) is not a Genesys Cloud region. Valid regions: {}.",
        regions::region_names()
    )
}

/// The API base URL the settings alone give (`api_url`, else the region's or domain's API
/// host), for revoking a token without reading its secret.
pub fn api_base(settings: &GenesysSettings) -> Result<Url, Problem> {
    if let Some(url) = url_setting(settings.api_url.as_deref(), "api_url")? {
        return Ok(url);
    }
    let domain = if let Some(r) = &settings.region {
        regions::domain_of(r)
            .ok_or_else(|| {
                Problem::error(
                    "Unknown Genesys Cloud region",
                    unknown_region(r, "`region`"),
                )
                .at_attr("region")
            })?
            .1
            .to_owned()
    } else if let Some(d) = &settings.domain {
        regions::check_domain(d)
            .map_err(|e| Problem::error("Invalid domain", format!("{e}.")).at_attr("domain"))?
    } else {
        return Err(Problem::error(
            "No Genesys Cloud region",
            "Say where the token was minted: a region (e.g. \"us-east-1\"), a domain, or an API URL.",
        )
        .at_attr("region"));
    };
    Endpoints::for_domain(&domain)
        .map(|e| e.api)
        .map_err(|e| Problem::error("Invalid domain", format!("{e}.")).at_attr("domain"))
}

/// Region and domain from the settings, else from the secret; URL overrides on top.
pub fn resolve(
    settings: &GenesysSettings,
    secret: &Secret,
    at: &Location,
) -> Result<(Endpoints, Option<String>, Option<String>), Problem> {
    let login_override = url_setting(settings.login_url.as_deref(), "login_url")?;
    let api_override = url_setting(settings.api_url.as_deref(), "api_url")?;
    let from_secret = format!("key of the secret at {at}");
    let (region, domain) = if let Some(r) = &settings.region {
        let (name, domain) = regions::domain_of(r).ok_or_else(|| {
            Problem::error(
                "Unknown Genesys Cloud region",
                unknown_region(r, "`region`"),
            )
            .at_attr("region")
        })?;
        (Some(name.to_owned()), Some(domain.to_owned()))
    } else if let Some(d) = &settings.domain {
        let d = regions::check_domain(d)
            .map_err(|e| Problem::error("Invalid domain", format!("{e}.")).at_attr("domain"))?;
        (regions::region_of(&d).map(str::to_owned), Some(d))
    } else if let Some(r) = secret_text(secret, "region") {
        let (name, domain) = regions::domain_of(&r).ok_or_else(|| {
            Problem::error(
                "Unknown Genesys Cloud region",
                unknown_region(&r, &format!("the `region` {from_secret}")),
            )
            .at_attr("path")
        })?;
        (Some(name.to_owned()), Some(domain.to_owned()))
    } else if let Some(d) = secret_text(secret, "domain") {
        let d = regions::check_domain(&d).map_err(|e| {
            Problem::error(
                "Invalid domain",
                format!("The `domain` {from_secret}: {e}."),
            )
            .at_attr("path")
        })?;
        // A secret must not choose where its own credential is sent: someone who can write the
        // path but not read it would otherwise receive the credential. Only the public region
        // domains are taken from a secret.
        let Some(region) = regions::region_of(&d) else {
            return Err(Problem::error(
                "Domain from the secret is not a Genesys Cloud region",
                format!(
                    "The `domain` {from_secret} is {d:?}, which is not the domain of a Genesys Cloud region. Endpoints taken from a secret must be public region domains; set `domain` (or `login_url` and `api_url`) in the configuration to use any other."
                ),
            )
            .at_attr("path"));
        };
        (Some(region.to_owned()), Some(d))
    } else {
        (None, None)
    };
    let standard = domain
        .as_deref()
        .map(Endpoints::for_domain)
        .transpose()
        .map_err(|e| Problem::error("Invalid domain", format!("{e}.")).at_attr("domain"))?;
    let (login, api) = match (login_override, api_override, standard) {
        (Some(l), Some(a), _) => (l, a),
        (l, a, Some(std)) => (l.unwrap_or(std.login), a.unwrap_or(std.api)),
        (l, a, None) => {
            let missing = if l.is_none() { "region" } else { "api_url" };
            return Err(Problem::error(
                "No Genesys Cloud region",
                format!(
                    "Set `region` (e.g. \"us-east-1\") or `domain`, or store a `region` or `domain` key in the secret at {at}{}.",
                    if l.is_some() || a.is_some() { "; or set both `login_url` and `api_url`" } else { "" }
                ),
            )
            .at_attr(missing));
        }
    };
    Ok((Endpoints { login, api }, region, domain))
}

#[async_trait]
impl Platform for Genesys {
    const NAME: &'static str = PLATFORM;
    const IDENTITY: (&'static str, &'static str) = ("expected_organization_id", "organization");
    type Settings = GenesysSettings;
    type Request = GenesysRequest;
    type Token = GenesysToken;

    fn request(
        settings: &GenesysSettings,
        secret: &Secret,
        at: &Location,
    ) -> Result<GenesysRequest, Problem> {
        let keys = settings.keys();
        let credentials = Credentials {
            client_id: key_value(secret, at, &keys.0, "client_id_key")?,
            client_secret: key_value(secret, at, &keys.1, "client_secret_key")?,
        };
        let (endpoints, region, domain) = resolve(settings, secret, at)?;
        Ok(GenesysRequest {
            credentials,
            endpoints,
            region,
            domain,
            keys,
            revoke: settings.revoke_on_close.unwrap_or(true),
        })
    }

    fn target(r: &GenesysRequest) -> Target {
        Target {
            endpoints: vec![r.endpoints.login.to_string(), r.endpoints.api.to_string()],
            keys: vec![r.keys.0.clone(), r.keys.1.clone()],
            revoke: r.revoke,
        }
    }

    fn outputs(
        r: &GenesysRequest,
        token: &GenesysToken,
        identity: Option<&str>,
    ) -> Vec<(&'static str, Output)> {
        vec![
            ("client_id_key", Output::Text(r.keys.0.clone())),
            ("client_secret_key", Output::Text(r.keys.1.clone())),
            ("region", Output::text(r.region.clone())),
            ("domain", Output::text(r.domain.clone())),
            (
                "api_url",
                Output::Text(r.endpoints.api.as_str().trim_end_matches('/').to_owned()),
            ),
            ("revoke_on_close", Output::Bool(r.revoke)),
            ("access_token", Output::Secret(token.access_token.clone())),
            ("token_type", Output::Text(token.token_type.clone())),
            ("organization_id", Output::text(identity.map(str::to_owned))),
        ]
    }

    async fn mint(
        net: &Net,
        r: Arc<GenesysRequest>,
        budget: &Budget,
    ) -> Result<GenesysToken, PlatformError> {
        mint(
            &net.http,
            &r.endpoints,
            &r.credentials,
            r.revoke,
            &net.retry,
            budget,
        )
        .await
    }

    fn expected_identity(settings: &GenesysSettings) -> Option<&str> {
        settings.expected_organization_id.as_deref()
    }

    async fn identity(
        net: &Net,
        r: &GenesysRequest,
        token: &GenesysToken,
        budget: &Budget,
    ) -> Result<String, PlatformError> {
        token
            .organization_id(&net.http, &r.endpoints.api, &net.retry, budget)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SecretData, VersionMetadata};

    fn secret(json: &str) -> Secret {
        Secret {
            data: serde_json::from_str::<SecretData>(json).unwrap(),
            metadata: VersionMetadata::default(),
        }
    }

    fn at() -> Location {
        Location {
            mount: "secret".into(),
            path: "g".into(),
            pinned: false,
        }
    }

    fn cfg(f: impl FnOnce(&mut GenesysSettings)) -> GenesysSettings {
        let mut s = GenesysSettings {
            path: "g".into(),
            ..GenesysSettings::default()
        };
        f(&mut s);
        s
    }

    #[test]
    fn region_setting_wins_and_is_case_insensitive() {
        let (e, region, _) = resolve(
            &cfg(|s| s.region = Some("EU-West-1".into())),
            &secret(r#"{"region":"us-east-1"}"#),
            &at(),
        )
        .unwrap();
        assert_eq!(region.as_deref(), Some("eu-west-1"));
        assert_eq!(e.login.as_str(), "https://login.mypurecloud.ie/");
        assert_eq!(e.api.as_str(), "https://api.mypurecloud.ie/");
    }

    #[test]
    fn secret_keys_are_the_fallback() {
        let (_, _, domain) = resolve(
            &cfg(|_| {}),
            &secret(r#"{"region":"ap-southeast-2"}"#),
            &at(),
        )
        .unwrap();
        assert_eq!(domain.as_deref(), Some("mypurecloud.com.au"));
        let (_, region, _) = resolve(
            &cfg(|_| {}),
            &secret(r#"{"domain":"usw2.pure.cloud"}"#),
            &at(),
        )
        .unwrap();
        assert_eq!(region.as_deref(), Some("us-west-2"));
        // An unlisted domain from configuration works, with no region to report.
        let (_, region, domain) = resolve(
            &cfg(|s| s.domain = Some("example.org".into())),
            &secret("{}"),
            &at(),
        )
        .unwrap();
        assert_eq!((region, domain.as_deref()), (None, Some("example.org")));
    }

    #[test]
    fn a_secret_cannot_send_its_credential_to_an_unlisted_domain() {
        let e = resolve(
            &cfg(|_| {}),
            &secret(r#"{"domain":"attacker.example.com"}"#),
            &at(),
        )
        .unwrap_err();
        assert_eq!(
            e.summary,
            "Domain from the secret is not a Genesys Cloud region"
        );
        assert!(
            e.detail
                .contains("set `domain` (or `login_url` and `api_url`) in the configuration"),
            "{}",
            e.detail
        );
        assert_eq!(e.field, Some(crate::error::Field::root("path")));
        // The same domain from configuration is the user's choice.
        assert!(
            resolve(
                &cfg(|s| s.domain = Some("attacker.example.com".into())),
                &secret(r#"{"domain":"attacker.example.com"}"#),
                &at(),
            )
            .is_ok()
        );
    }

    #[test]
    fn overrides_replace_the_standard_endpoints() {
        let (e, _, _) = resolve(
            &cfg(|s| {
                s.login_url = Some("http://127.0.0.1:9/gw".into());
                s.api_url = Some("http://127.0.0.1:9/api".into());
            }),
            &secret("{}"),
            &at(),
        )
        .unwrap();
        assert_eq!(e.login.as_str(), "http://127.0.0.1:9/gw");
        let (e, _, _) = resolve(
            &cfg(|s| {
                s.region = Some("us-east-1".into());
                s.login_url = Some("http://localhost:1".into());
            }),
            &secret("{}"),
            &at(),
        )
        .unwrap();
        assert_eq!(e.api.as_str(), "https://api.mypurecloud.com/");
    }

    #[test]
    fn resolution_failures_are_pinned_and_list_the_regions() {
        let e = resolve(
            &cfg(|s| s.region = Some("us-east-9".into())),
            &secret("{}"),
            &at(),
        )
        .unwrap_err();
        assert_eq!(e.field.unwrap().to_string(), "region");
        assert!(e.detail.contains("us-east-1, us-east-2"), "{}", e.detail);
        let e = resolve(&cfg(|_| {}), &secret(r#"{"region":"mars-1"}"#), &at()).unwrap_err();
        assert_eq!(e.field.unwrap().to_string(), "path");
        assert!(
            e.detail
                .contains("the `region` key of the secret at secret/g"),
            "{}",
            e.detail
        );
        let e = resolve(&cfg(|_| {}), &secret("{}"), &at()).unwrap_err();
        assert_eq!(e.summary, "No Genesys Cloud region");
        let e = resolve(
            &cfg(|s| s.login_url = Some("http://example.com".into())),
            &secret("{}"),
            &at(),
        )
        .unwrap_err();
        assert_eq!(e.field.unwrap().to_string(), "login_url");
    }

    #[test]
    fn validate_refuses_region_and_domain_together() {
        let d = cfg(|s| {
            s.region = Some("us-east-1".into());
            s.domain = Some("mypurecloud.com".into());
        })
        .validate();
        assert_eq!(d[0].summary, "Conflicting region and domain");
    }

    #[test]
    fn endpoints_for_a_domain() {
        let e = Endpoints::for_domain("usw2.pure.cloud").unwrap();
        assert_eq!(e.login.as_str(), "https://login.usw2.pure.cloud/");
        assert_eq!(e.api.as_str(), "https://api.usw2.pure.cloud/");
        assert_eq!(
            net::join(&e.login, "/oauth/token").as_str(),
            "https://login.usw2.pure.cloud/oauth/token"
        );
    }
}
