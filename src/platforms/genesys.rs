//! Genesys Cloud: client-credentials tokens from `login.<domain>`, token introspection and
//! revocation on `api.<domain>`.

use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::pool::PooledToken;
use super::{PlatformError, bearer, exchange, parse_token};
use crate::net::{self, Budget, RetryPolicy};

pub(crate) const PLATFORM: &str = "Genesys Cloud";

/// Where to ask: token endpoint base and API base.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// Base of `/oauth/token`, e.g. `https://login.mypurecloud.com`.
    pub(crate) login: Url,
    /// Base of `/api/v2/...`, e.g. `https://api.mypurecloud.com`.
    pub(crate) api: Url,
}

impl Endpoints {
    /// The standard endpoints of a domain.
    pub(crate) fn for_domain(domain: &str) -> Result<Self, net::UrlError> {
        Ok(Endpoints {
            login: net::base_url(&format!("https://login.{domain}"))?,
            api: net::base_url(&format!("https://api.{domain}"))?,
        })
    }
}

/// A minted token.
pub(crate) struct GenesysToken {
    pub(crate) access_token: SecretString,
    pub(crate) token_type: String,
    pub(crate) expires_at: SystemTime,
    pub(crate) lifetime: Duration,
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
pub(crate) struct Credentials {
    pub(crate) client_id: SecretString,
    pub(crate) client_secret: SecretString,
}

/// `POST <login>/oauth/token` with `grant_type=client_credentials` and Basic auth.
pub(crate) async fn mint(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    creds: &Credentials,
    revoke_on_release: bool,
    policy: &RetryPolicy,
    budget: &Budget,
) -> Result<GenesysToken, PlatformError> {
    let url = net::join(&endpoints.login, "/oauth/token");
    let body = exchange(PLATFORM, &url, policy, budget, || {
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
    let lifetime = Duration::from_secs(token.expires_in.unwrap_or(86_400).unsigned_abs());
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
        expires_at: SystemTime::now() + lifetime,
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
    pub(crate) async fn organization_id(
        &self,
        http: &reqwest::Client,
        api: &Url,
        policy: &RetryPolicy,
        budget: &Budget,
    ) -> Result<String, PlatformError> {
        self.organization
            .get_or_try_init(|| async {
                let url = net::join(api, "/api/v2/tokens/me");
                let body = exchange(PLATFORM, &url, policy, budget, || {
                    let req = http.get(url.clone());
                    match bearer(&self.access_token) {
                        Some(h) => req.header(reqwest::header::AUTHORIZATION, h),
                        None => req,
                    }
                })
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

/// `DELETE <api>/api/v2/tokens/me`. A token the platform no longer accepts (401) counts as
/// revoked.
pub(crate) async fn revoke(
    http: &reqwest::Client,
    api: &Url,
    token: &SecretString,
) -> Result<(), PlatformError> {
    let url = net::join(api, "/api/v2/tokens/me");
    let mut req = http.delete(url.clone());
    if let Some(h) = bearer(token) {
        req = req.header(reqwest::header::AUTHORIZATION, h);
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() || resp.status().as_u16() == 401 => {
            tracing::debug!("revoked a Genesys Cloud token");
            Ok(())
        }
        Ok(resp) => Err(PlatformError::Unavailable {
            platform: PLATFORM,
            endpoint: url.as_str().to_owned(),
            status: resp.status().as_u16(),
        }),
        Err(e) => Err(PlatformError::Unreachable {
            platform: PLATFORM,
            endpoint: url.as_str().to_owned(),
            reason: net::describe_transport(&e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
