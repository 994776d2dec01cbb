//! NICE CXone: the password grant with an access key at `<issuer>/auth/token`, the tenant id
//! from the token's claims, and the API endpoint from the tenant's cxone-configuration.

use std::time::{Duration, SystemTime};

use base64::Engine;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use std::sync::Arc;

use async_trait::async_trait;

use super::{Net, Platform, PlatformError, Target, exchange, key_value, parse_token, url_setting};
use crate::error::Problem;
use crate::mint::Output;
use crate::net::{self, Budget, RetryPolicy};
use crate::pool::PooledToken;
use crate::store::{Location, Secret};

pub const PLATFORM: &str = "NICE CXone";

/// The global production issuer.
pub const DEFAULT_ISSUER: &str = "https://cxone.niceincontact.com";

/// The access key and the registered application's client credentials, from Vault.
pub struct Credentials {
    /// The access key id.
    pub access_key_id: SecretString,
    /// The access key secret.
    pub access_key_secret: SecretString,
    /// The registered application's client id.
    pub client_id: SecretString,
    /// The registered application's client secret.
    pub client_secret: SecretString,
}

/// A minted token with what discovery said about its tenant.
pub struct CxoneToken {
    /// The token.
    pub access_token: SecretString,
    /// Its type, e.g. `Bearer`.
    pub token_type: String,
    /// When it expires.
    pub expires_at: SystemTime,
    /// How long it was valid for when minted.
    pub lifetime: Duration,
    /// The `tenantId` claim.
    pub tenant_id: String,
    /// The tenant's area, from discovery.
    pub area: String,
    /// The tenant's API base, from discovery.
    pub api_endpoint: String,
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
pub fn tenant_id(jwt: &SecretString) -> Result<String, String> {
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

/// What discovery says of a tenant.
#[derive(Debug, serde::Deserialize)]
pub struct Discovery {
    /// The tenant's area, e.g. `na1`.
    #[serde(default)]
    pub area: String,
    /// The tenant's API base URL.
    #[serde(default)]
    pub api_endpoint: String,
}

/// Reads and checks a cxone-configuration document: `api_endpoint` must be an https base URL
/// (plain http only to loopback) and no field may hold control characters, since both are
/// handed on to other tools. The problem never quotes the document.
pub fn check_discovery(body: &[u8]) -> Result<Discovery, String> {
    let d: Discovery = serde_json::from_slice(body)
        .map_err(|_| "the cxone-configuration document is not valid JSON".to_owned())?;
    if d.api_endpoint.is_empty() {
        return Err("the cxone-configuration document has no api_endpoint".to_owned());
    }
    for (name, v) in [("api_endpoint", &d.api_endpoint), ("area", &d.area)] {
        if v.chars().any(|c| c.is_control()) || v.len() > 256 {
            return Err(format!(
                "the cxone-configuration document's {name} holds control characters or is too long; refusing it"
            ));
        }
    }
    net::base_url(&d.api_endpoint).map_err(|_| {
        "the cxone-configuration document's api_endpoint is not acceptable: it must be an https base URL (plain http only to loopback) without credentials or query".to_owned()
    })?;
    if !d.area.is_empty()
        && !d
            .area
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(
            "the cxone-configuration document's area is not a plain name; refusing it".to_owned(),
        );
    }
    Ok(d)
}

/// Mints a token: password grant, tenant id from the claims, then API discovery.
pub async fn mint(
    http: &reqwest::Client,
    issuer: &Url,
    creds: &Credentials,
    policy: &RetryPolicy,
    budget: &Budget,
) -> Result<CxoneToken, PlatformError> {
    let url = net::join(issuer, "/auth/token");
    let sent = [
        &creds.access_key_id,
        &creds.access_key_secret,
        &creds.client_id,
        &creds.client_secret,
    ];
    let body = exchange(PLATFORM, &url, policy, budget, &sent, || {
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
    let lifetime = super::lifetime(token.expires_in, 3_600);

    let mut discovery_url = net::join(issuer, "/.well-known/cxone-configuration");
    discovery_url
        .query_pairs_mut()
        .append_pair("tenantId", &tenant);
    let body = exchange(PLATFORM, &discovery_url, policy, budget, &[], || {
        http.get(discovery_url.clone())
    })
    .await?;
    let discovery = check_discovery(&body).map_err(|problem| PlatformError::BadResponse {
        platform: PLATFORM,
        endpoint: discovery_url.as_str().to_owned(),
        problem,
    })?;
    tracing::debug!(lifetime_s = lifetime.as_secs(), area = %discovery.area, "minted a NICE CXone token");
    Ok(CxoneToken {
        access_token: token.access_token,
        token_type: if token.token_type.is_empty() {
            "Bearer".to_owned()
        } else {
            token.token_type
        },
        expires_at: super::expiry(lifetime),
        lifetime,
        tenant_id: tenant,
        area: discovery.area,
        api_endpoint: discovery.api_endpoint,
    })
}

/// NICE CXone behind the platform seam.
#[derive(Debug)]
pub struct Cxone;

/// The four credential keys: (attribute, default key name).
pub const KEYS: [(&str, &str); 4] = [
    ("access_key_id_key", "access_key_id"),
    ("access_key_secret_key", "access_key_secret"),
    ("client_id_key", "client_id"),
    ("client_secret_key", "client_secret"),
];

/// The settings of one `cxone_token` block: the same names as its Terraform attributes.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CxoneSettings {
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
    /// Key of the access key id.
    pub access_key_id_key: Option<String>,
    /// Key of the access key secret.
    pub access_key_secret_key: Option<String>,
    /// Key of the client id.
    pub client_id_key: Option<String>,
    /// Key of the client secret.
    pub client_secret_key: Option<String>,
    /// Issuer (auth host).
    pub issuer: Option<String>,
    /// Refuse a token of another tenant.
    pub expected_tenant_id: Option<String>,
}

impl CxoneSettings {
    /// The key names, in [`KEYS`] order: (attribute, key name).
    pub fn keys(&self) -> [(&'static str, String); 4] {
        let given = [
            &self.access_key_id_key,
            &self.access_key_secret_key,
            &self.client_id_key,
            &self.client_secret_key,
        ];
        let mut i = 0;
        KEYS.map(|(attr, default)| {
            let v = given[i].clone().unwrap_or_else(|| default.to_owned());
            i += 1;
            (attr, v)
        })
    }

    /// Checks what can be checked without a secret.
    pub fn validate(&self) -> Vec<Problem> {
        let mut d = Vec::new();
        if let Err(e) = url_setting(self.issuer.as_deref(), "issuer") {
            d.push(e);
        }
        let given = [
            &self.access_key_id_key,
            &self.access_key_secret_key,
            &self.client_id_key,
            &self.client_secret_key,
        ];
        for ((name, _), v) in KEYS.iter().zip(given) {
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

/// A credential and where to send it.
#[derive(Debug)]
pub struct CxoneRequest {
    /// The access key and client credentials.
    pub credentials: Credentials,
    /// The issuer.
    pub issuer: Url,
    /// The key names used, in [`KEYS`] order.
    pub keys: [(&'static str, String); 4],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

/// The issuer: the setting, else the secret's `issuer` key, else the global default.
pub fn issuer_of(settings: &CxoneSettings, secret: &Secret, at: &Location) -> Result<Url, Problem> {
    if let Some(url) = url_setting(settings.issuer.as_deref(), "issuer")? {
        return Ok(url);
    }
    match secret.data.non_empty("issuer") {
        Some(raw) => {
            let url = net::base_url(raw.expose_secret()).map_err(|e| {
                Problem::error(
                    "Invalid issuer",
                    format!("The `issuer` key of the secret at {at}: {e}."),
                )
                .at_attr("path")
            })?;
            // A secret must not choose where its own credential is sent (see Genesys's
            // `domain`): only the public issuers are taken from a secret.
            if super::regions::known_cxone_issuer(&url).is_none() {
                return Err(Problem::error(
                    "Issuer from the secret is not a NICE CXone issuer",
                    format!(
                        "The `issuer` key of the secret at {at} is {:?}, which is not a public NICE CXone issuer ({}). Endpoints taken from a secret must be public ones; set `issuer` in the configuration to use any other.",
                        net::redact_url(url.as_str()),
                        super::regions::CXONE_ISSUERS.join(", ")
                    ),
                )
                .at_attr("path"));
            }
            Ok(url)
        }
        None => net::base_url(DEFAULT_ISSUER)
            .map_err(|e| Problem::error("Invalid issuer", e.to_string())),
    }
}

#[async_trait]
impl Platform for Cxone {
    const NAME: &'static str = PLATFORM;
    const IDENTITY: (&'static str, &'static str) = ("expected_tenant_id", "tenant");
    type Settings = CxoneSettings;
    type Request = CxoneRequest;
    type Token = CxoneToken;

    fn request(
        settings: &CxoneSettings,
        secret: &Secret,
        at: &Location,
    ) -> Result<CxoneRequest, Problem> {
        let keys = settings.keys();
        let value = |i: usize| key_value(secret, at, &keys[i].1, keys[i].0);
        let credentials = Credentials {
            access_key_id: value(0)?,
            access_key_secret: value(1)?,
            client_id: value(2)?,
            client_secret: value(3)?,
        };
        let issuer = issuer_of(settings, secret, at)?;
        Ok(CxoneRequest {
            credentials,
            issuer,
            keys,
        })
    }

    fn target(r: &CxoneRequest) -> Target {
        Target {
            endpoints: vec![r.issuer.to_string()],
            keys: r.keys.iter().map(|(_, k)| k.clone()).collect(),
            revoke: false,
        }
    }

    fn outputs(
        r: &CxoneRequest,
        token: &CxoneToken,
        _identity: Option<&str>,
    ) -> Vec<(&'static str, Output)> {
        let mut out: Vec<(&'static str, Output)> = r
            .keys
            .iter()
            .map(|(attr, key)| (*attr, Output::Text(key.clone())))
            .collect();
        out.extend([
            (
                "issuer",
                Output::Text(r.issuer.as_str().trim_end_matches('/').to_owned()),
            ),
            ("access_token", Output::Secret(token.access_token.clone())),
            ("token_type", Output::Text(token.token_type.clone())),
            ("tenant_id", Output::Text(token.tenant_id.clone())),
            ("area", Output::Text(token.area.clone())),
            ("api_endpoint", Output::Text(token.api_endpoint.clone())),
        ]);
        out
    }

    async fn mint(
        net: &Net,
        r: Arc<CxoneRequest>,
        budget: &Budget,
    ) -> Result<CxoneToken, PlatformError> {
        mint(&net.http, &r.issuer, &r.credentials, &net.retry, budget).await
    }

    fn expected_identity(settings: &CxoneSettings) -> Option<&str> {
        settings.expected_tenant_id.as_deref()
    }

    async fn identity(
        _net: &Net,
        _r: &CxoneRequest,
        token: &CxoneToken,
        _budget: &Budget,
    ) -> Result<String, PlatformError> {
        Ok(token.tenant_id.clone())
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

    #[test]
    fn a_secret_cannot_send_its_credential_to_an_unlisted_issuer() {
        let at = Location {
            mount: "secret".into(),
            path: "c".into(),
            pinned: false,
        };
        for hostile in [
            "https://attacker.example.com",
            "https://cxone.niceincontact.com.attacker.example",
            "https://cxone.niceincontact.com:8443",
            "https://cxone.niceincontact.com/evil",
            "http://127.0.0.1:8080",
        ] {
            let e = issuer_of(
                &CxoneSettings::default(),
                &secret(&format!(r#"{{"issuer":"{hostile}"}}"#)),
                &at,
            )
            .unwrap_err();
            assert_eq!(
                e.summary, "Issuer from the secret is not a NICE CXone issuer",
                "{hostile}"
            );
            assert_eq!(e.field, Some(crate::error::Field::root("path")));
        }
        let from_config = CxoneSettings {
            issuer: Some("http://127.0.0.1:8080".into()),
            ..CxoneSettings::default()
        };
        assert!(issuer_of(&from_config, &secret("{}"), &at).is_ok());
    }

    #[test]
    fn discovery_results_are_checked_before_they_are_handed_on() {
        let ok = check_discovery(
            br#"{"area":"na1","api_endpoint":"https://api-na1.niceincontact.com"}"#,
        )
        .unwrap();
        assert_eq!(ok.area, "na1");
        for (body, want) in [
            (
                r#"{"area":"na1","api_endpoint":"http://attacker.example.com:80/\r\nx"}"#,
                "control characters",
            ),
            (
                r#"{"area":"na1","api_endpoint":"http://attacker.example.com"}"#,
                "must be an https base URL",
            ),
            (
                r#"{"area":"\u001b[31mna1","api_endpoint":"https://api-na1.niceincontact.com"}"#,
                "area holds control characters",
            ),
            (
                r#"{"area":"na1 x","api_endpoint":"https://api-na1.niceincontact.com"}"#,
                "area is not a plain name",
            ),
            (
                r#"{"area":"na1","api_endpoint":"javascript:alert(1)"}"#,
                "not acceptable",
            ),
            (r#"{"area":"na1"}"#, "no api_endpoint"),
            ("not json", "not valid JSON"),
        ] {
            let e = check_discovery(body.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
            assert!(!e.contains("attacker"), "{e}");
        }
    }

    #[test]
    fn issuer_comes_from_setting_then_secret_then_default() {
        let at = Location {
            mount: "secret".into(),
            path: "c".into(),
            pinned: false,
        };
        let none = CxoneSettings::default();
        let with = CxoneSettings {
            issuer: Some("https://cxone-gov.niceincontact.com".into()),
            ..CxoneSettings::default()
        };
        assert_eq!(
            issuer_of(&with, &secret(r#"{"issuer":"https://x.example"}"#), &at)
                .unwrap()
                .host_str(),
            Some("cxone-gov.niceincontact.com")
        );
        assert_eq!(
            issuer_of(
                &none,
                &secret(r#"{"issuer":"https://nicecxone-sov1.eu"}"#),
                &at
            )
            .unwrap()
            .host_str(),
            Some("nicecxone-sov1.eu")
        );
        assert_eq!(
            issuer_of(&none, &secret("{}"), &at).unwrap().as_str(),
            "https://cxone.niceincontact.com/"
        );
        let e = issuer_of(&none, &secret(r#"{"issuer":"http://evil.example"}"#), &at).unwrap_err();
        assert_eq!(e.field.unwrap().to_string(), "path");
    }

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
