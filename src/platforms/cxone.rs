//! NICE CXone: the password grant with an access key at `<issuer>/auth/token`, the tenant id
//! from the token's claims, and the API endpoint from the tenant's cxone-configuration.

use std::time::{Duration, SystemTime};

use base64::Engine;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::pool::PooledToken;
use super::{PlatformError, exchange, parse_token};
use crate::net::{self, Budget, RetryPolicy};

pub(crate) const PLATFORM: &str = "NICE CXone";

/// The global production issuer.
pub(crate) const DEFAULT_ISSUER: &str = "https://cxone.niceincontact.com";

/// The access key and the registered application's client credentials, from Vault.
pub(crate) struct Credentials {
    pub(crate) access_key_id: SecretString,
    pub(crate) access_key_secret: SecretString,
    pub(crate) client_id: SecretString,
    pub(crate) client_secret: SecretString,
}

/// A minted token with what discovery said about its tenant.
pub(crate) struct CxoneToken {
    pub(crate) access_token: SecretString,
    pub(crate) token_type: String,
    pub(crate) expires_at: SystemTime,
    pub(crate) lifetime: Duration,
    pub(crate) tenant_id: String,
    pub(crate) area: String,
    pub(crate) api_endpoint: String,
}

impl std::fmt::Debug for CxoneToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CxoneToken")
            .field("tenant_id", &self.tenant_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PooledToken for CxoneToken {
    fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// CXone documents no revocation endpoint for access-key tokens; they expire (1 h).
    fn revoke(&self) -> Option<BoxFuture<'static, Result<(), PlatformError>>> {
        None
    }
}

/// The `tenantId` claim of a JWT access token. The signature is not checked: the token came
/// straight from the issuer over TLS, and only the platform can judge it.
pub(crate) fn tenant_id(jwt: &SecretString) -> Result<String, String> {
    let payload = jwt
        .expose_secret()
        .split('.')
        .nth(1)
        .ok_or("the access token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the access token's claims are not base64url")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "the access token's claims are not JSON")?;
    claims
        .get("tenantId")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "the access token has no tenantId claim".to_owned())
}

#[derive(serde::Deserialize)]
struct Discovery {
    #[serde(default)]
    area: String,
    #[serde(default)]
    api_endpoint: String,
}

/// Mints a token: password grant, tenant id from the claims, then API discovery.
pub(crate) async fn mint(
    http: &reqwest::Client,
    issuer: &Url,
    creds: &Credentials,
    policy: &RetryPolicy,
    budget: &Budget,
) -> Result<CxoneToken, PlatformError> {
    let url = net::join(issuer, "/auth/token");
    let body = exchange(PLATFORM, &url, policy, budget, || {
        // The form encoder percent-encodes the access key: its trailing "=" must arrive as %3D.
        http.post(url.clone())
            .basic_auth(
                creds.client_id.expose_secret(),
                Some(creds.client_secret.expose_secret()),
            )
            .form(&[
                ("grant_type", "password"),
                ("username", creds.access_key_id.expose_secret()),
                ("password", creds.access_key_secret.expose_secret()),
            ])
    })
    .await?;
    let token = parse_token(PLATFORM, &url, &body)?;
    let tenant = tenant_id(&token.access_token).map_err(|problem| PlatformError::BadResponse {
        platform: PLATFORM,
        endpoint: url.as_str().to_owned(),
        problem,
    })?;
    let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3_600).unsigned_abs());

    let mut discovery_url = net::join(issuer, "/.well-known/cxone-configuration");
    discovery_url
        .query_pairs_mut()
        .append_pair("tenantId", &tenant);
    let body = exchange(PLATFORM, &discovery_url, policy, budget, || {
        http.get(discovery_url.clone())
    })
    .await?;
    let discovery: Discovery =
        serde_json::from_slice(&body).map_err(|_| PlatformError::BadResponse {
            platform: PLATFORM,
            endpoint: discovery_url.as_str().to_owned(),
            problem: "the cxone-configuration document is not valid JSON".to_owned(),
        })?;
    if discovery.api_endpoint.is_empty() {
        return Err(PlatformError::BadResponse {
            platform: PLATFORM,
            endpoint: discovery_url.as_str().to_owned(),
            problem: "the cxone-configuration document has no api_endpoint".to_owned(),
        });
    }
    tracing::debug!(lifetime_s = lifetime.as_secs(), area = %discovery.area, "minted a NICE CXone token");
    Ok(CxoneToken {
        access_token: token.access_token,
        token_type: if token.token_type.is_empty() {
            "Bearer".to_owned()
        } else {
            token.token_type
        },
        expires_at: SystemTime::now() + lifetime,
        lifetime,
        tenant_id: tenant,
        area: discovery.area,
        api_endpoint: discovery.api_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> SecretString {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        SecretString::from(format!("{}.{}.sig", enc(r#"{"alg":"RS256"}"#), enc(claims)))
    }

    #[test]
    fn tenant_id_comes_from_the_claims() {
        let t = jwt(r#"{"tenantId":"11eb0a4c-7f0e-4b2b-9a38-0242ac110002","area":"na1"}"#);
        assert_eq!(
            tenant_id(&t).unwrap(),
            "11eb0a4c-7f0e-4b2b-9a38-0242ac110002"
        );
    }

    #[test]
    fn tenant_id_failures_are_clear() {
        let cases = [
            (SecretString::from("opaque"), "not a JWT"),
            (SecretString::from("a.!!!.c"), "not base64url"),
            (jwt("not json"), "not JSON"),
            (jwt(r#"{"sub":"x"}"#), "no tenantId"),
            (jwt(r#"{"tenantId":""}"#), "no tenantId"),
        ];
        for (t, want) in cases {
            assert!(tenant_id(&t).unwrap_err().contains(want), "{want}");
        }
    }
}
