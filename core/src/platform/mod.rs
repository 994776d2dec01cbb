//! The platform seam: take the credential out of a secret, mint a token, revoke it, check its
//! identity (organization / tenant). Genesys Cloud and NICE CXone implement it; the fake
//! (feature `testing`) drives the pipeline's unit tests. Also: error classification and the
//! one request-with-retries helper both platforms use.

pub mod cxone;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod genesys;
pub mod regions;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use zeroize::Zeroizing;

use crate::error::Problem;
use crate::net::{self, Attempt, Budget, GaveUp, RetryPolicy};
use crate::pool::PooledToken;
use crate::store::{Location, Secret, VersionMetadata};

/// What every platform call needs: the HTTP client (TLS verified, no redirects, per-request
/// timeout) and the retry policy.
#[derive(Debug, Clone)]
pub struct Net {
    /// The client for platform calls.
    pub http: reqwest::Client,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

/// What decides which token a request gets, besides the secret's store, location and
/// version: part of the pool key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The endpoints the credential is sent to.
    pub endpoints: Vec<String>,
    /// The secret's keys the credential was taken from.
    pub keys: Vec<String>,
    /// Whether the token is revoked when its last user lets go.
    pub revoke: bool,
}

/// A contact-center platform.
#[async_trait]
pub trait Platform: Send + Sync + 'static {
    /// The platform's name in messages.
    const NAME: &'static str;
    /// The attribute holding the expected identity, and what the identity is called.
    const IDENTITY: (&'static str, &'static str);
    /// One resource's settings (typed configuration).
    type Settings: Send + Sync;
    /// A credential taken out of a secret, with where to send it.
    type Request: Send + Sync + 'static;
    /// A minted token.
    type Token: PooledToken;

    /// Takes the credential out of a secret. A missing key or an unusable endpoint is a
    /// problem pinned to the setting at fault; it is never retried with another version.
    fn request(
        settings: &Self::Settings,
        secret: &Secret,
        at: &Location,
    ) -> Result<Self::Request, Problem>;
    /// What, besides the secret version, decides which token the request gets.
    fn target(request: &Self::Request) -> Target;
    /// Mints a token.
    async fn mint(
        net: &Net,
        request: Arc<Self::Request>,
        budget: &Budget,
    ) -> Result<Self::Token, PlatformError>;
    /// The identity the settings expect the token to have, if they say.
    fn expected_identity(settings: &Self::Settings) -> Option<&str>;
    /// The platform's own results of an open, under the words of [`crate::vocabulary`] (the
    /// token, its type, endpoints, the key names used, the checked identity).
    fn outputs(
        request: &Self::Request,
        token: &Self::Token,
        identity: Option<&str>,
    ) -> Vec<(&'static str, crate::mint::Output)>;
    /// The token's identity (organization or tenant id).
    async fn identity(
        net: &Net,
        request: &Self::Request,
        token: &Self::Token,
        budget: &Budget,
    ) -> Result<String, PlatformError>;
}

/// The value of `key` in the secret, or a problem on `key_attr` naming the key and the keys
/// that do exist (never a value).
pub fn key_value(
    secret: &Secret,
    at: &Location,
    key: &str,
    key_attr: &str,
) -> Result<SecretString, Problem> {
    secret.data.non_empty(key).cloned().ok_or_else(|| {
        let keys: Vec<String> = secret.data.keys().map(|k| format!("{k:?}")).collect();
        Problem::error(
            "Key not found in secret",
            format!(
                "The secret at {at} ({}) has no non-empty key {key:?}. Its keys are: {}. Store the value under {key:?}, or set `{key_attr}` to the key that holds it.",
                secret.metadata.label(),
                if keys.is_empty() { "(none)".to_owned() } else { keys.join(", ") },
            ),
        )
        .at_attr(key_attr)
    })
}

/// A secret's non-empty text under `key`, trimmed (for non-secret settings kept beside the
/// credential, such as a region).
pub(crate) fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .non_empty(key)
        .map(|v| v.expose_secret().trim().to_owned())
}

/// A URL setting, checked: https, or plain http to loopback.
pub(crate) fn url_setting(raw: Option<&str>, name: &str) -> Result<Option<Url>, Problem> {
    raw.map(|raw| {
        net::base_url(raw)
            .map_err(|e| Problem::error(format!("Invalid {name}"), format!("{e}.")).at_attr(name))
    })
    .transpose()
}

/// The longest token life believed: Genesys Cloud's SCIM clients go up to 450 days. A longer
/// `expires_in` is cut to this, so no date arithmetic on it can overflow.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(38_880_000);

/// A token's lifetime from its `expires_in` (`default_secs` when absent), clamped to
/// [`MAX_TOKEN_LIFETIME`].
pub fn lifetime(expires_in: Option<i64>, default_secs: i64) -> Duration {
    net::clamp_secs(expires_in.unwrap_or(default_secs), MAX_TOKEN_LIFETIME)
}

/// When a token that lives `lifetime` from now expires, without overflow.
pub fn expiry(lifetime: Duration) -> std::time::SystemTime {
    let now = std::time::SystemTime::now();
    now.checked_add(lifetime).unwrap_or(now)
}

/// A time as RFC 3339 in UTC, to the second (how results report `expires_at`).
pub fn rfc3339(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A platform error as a problem naming the platform and the credential's source.
pub fn explain(
    e: &PlatformError,
    platform: &str,
    store: &str,
    at: &Location,
    version: &VersionMetadata,
) -> Problem {
    let origin = format!(
        "the credentials from {store} path {at} ({})",
        version.label()
    );
    match e.root() {
        PlatformError::Rejected { .. } if e.rejected_credential().is_some() => Problem::error(
            format!("{platform} rejected the credentials"),
            format!("{e}. {platform} refused {origin}. Check that the secret holds current credentials for this {platform} organization and region; if you are rotating them, see `rotation_fallback`."),
        )
        .at_attr("path"),
        PlatformError::Rejected { .. } => Problem::error(
            format!("{platform} refused the token request"),
            format!("{e}. The request used {origin}."),
        )
        .at_attr("path"),
        PlatformError::RateLimited { .. } => Problem::error(
            format!("{platform} is rate limiting token requests"),
            format!("{e}. Retries were exhausted; wait a minute, or raise `open_timeout_seconds` to wait longer."),
        ),
        PlatformError::Deadline(_) => Problem::error(
            format!("Timed out waiting for {platform}"),
            format!("{e}. Raise `open_timeout_seconds` if {platform} is slow, or check connectivity."),
        ),
        PlatformError::Unreachable { reason, .. } if reason == net::TIMED_OUT => Problem::error(
            format!("{platform} did not answer in time"),
            format!("{e}. Raise `timeout_seconds` if {platform} is slow, or check connectivity."),
        ),
        PlatformError::Unreachable { .. } => Problem::error(
            format!("Cannot reach {platform}"),
            format!("{e}. Check the region/endpoint settings and that this machine can reach it."),
        ),
        PlatformError::Cancelled => Problem::error("Interrupted", format!("Interrupted while waiting for {platform}.")),
        PlatformError::Internal(_) => Problem::error("Internal error", format!("{e}.")),
        _ => Problem::error(format!("Unexpected response from {platform}"), format!("{e}. The request used {origin}.")),
    }
}

/// What can go wrong talking to a platform. Messages never contain credentials or tokens.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlatformError {
    /// The platform refused the request (bad credentials, unauthorized grant, ...). Permanent.
    #[error("{platform} at {endpoint} refused the request: HTTP {status} {code}{}", describe(.description))]
    Rejected {
        platform: &'static str,
        endpoint: String,
        status: u16,
        code: String,
        description: String,
    },
    /// Throttled: Genesys's login rate limit (HTTP 400) or HTTP 429.
    #[error("{platform} at {endpoint} is rate limiting requests (HTTP {status}{})", describe(.description))]
    RateLimited {
        platform: &'static str,
        endpoint: String,
        status: u16,
        description: String,
    },
    #[error("{platform} at {endpoint} is unavailable (HTTP {status})")]
    Unavailable {
        platform: &'static str,
        endpoint: String,
        status: u16,
    },
    #[error("cannot reach {platform} at {endpoint}: {reason}")]
    Unreachable {
        platform: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error("unexpected response from {platform} at {endpoint}: {problem}")]
    BadResponse {
        platform: &'static str,
        endpoint: String,
        problem: String,
    },
    /// A transient error that persisted through every retry.
    #[error("{last} (gave up after {attempts} attempts)")]
    Retried {
        last: Box<PlatformError>,
        attempts: u32,
    },
    /// The operation's deadline passed.
    #[error("{0}")]
    Deadline(String),
    #[error("interrupted")]
    Cancelled,
    /// A bug: minting panicked. The pool turns the panic into this error so that one broken
    /// mint cannot take down the waiters sharing it or later opens of the same credential.
    #[error("internal error while minting a token ({0}); please report it")]
    Internal(String),
}

fn describe(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

impl PlatformError {
    pub(crate) fn from_gave_up(g: GaveUp<PlatformError>) -> Self {
        match g {
            GaveUp::Error { error, attempts: 1 } => error,
            GaveUp::Error { error, attempts } => PlatformError::Retried {
                last: Box::new(error),
                attempts,
            },
            GaveUp::Cancelled => PlatformError::Cancelled,
            deadline @ GaveUp::Deadline { .. } => PlatformError::Deadline(deadline.to_string()),
        }
    }

    /// The error behind any retries.
    pub fn root(&self) -> &PlatformError {
        match self {
            PlatformError::Retried { last, .. } => last.root(),
            other => other,
        }
    }

    /// The OAuth error code when the platform refused the credentials themselves.
    pub fn rejected_credential(&self) -> Option<&str> {
        match self.root() {
            PlatformError::Rejected { code, .. }
                if matches!(code.as_str(), "invalid_client" | "invalid_grant") =>
            {
                Some(code)
            }
            _ => None,
        }
    }
}

/// The code and description of an error body. Genesys's token endpoint sends `error` with
/// both `description` and `error_description`; its API sends `code` and `message`; CXone's
/// model says `error` and `errorDescription`. The first non-empty of each wins.
#[derive(Default)]
struct ErrorInfo {
    code: String,
    description: String,
}

impl ErrorInfo {
    /// Reads the code and description as untrusted text: control characters gone, values
    /// that were sent in the request redacted, length capped.
    fn parse(body: &[u8], sent: &[&str]) -> Self {
        let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice::<serde_json::Value>(body)
        else {
            return ErrorInfo::default();
        };
        let first = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| obj.get(*n).and_then(serde_json::Value::as_str))
                .find(|s| !s.trim().is_empty())
                .map(|s| net::untrusted_text(s, sent, 200))
                .unwrap_or_default()
        };
        ErrorInfo {
            code: first(&["error", "code"]),
            description: first(&[
                "error_description",
                "errorDescription",
                "description",
                "message",
            ]),
        }
    }
}

impl std::fmt::Debug for TokenBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBody")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A token endpoint's success body. Extra fields (refresh and id tokens) are ignored, so
/// they are never held.
#[derive(serde::Deserialize)]
pub struct TokenBody {
    /// The token.
    pub access_token: SecretString,
    /// Its type, e.g. `bearer`.
    #[serde(default)]
    pub token_type: String,
    /// Seconds of life.
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// Classifies a platform reply: success bodies are returned; throttling, 5xx and transport
/// failures are retried; everything else is a permanent refusal. `sent` holds the values sent
/// in the request, which are redacted from any text the reply carries.
pub fn classify(
    platform: &'static str,
    endpoint: &Url,
    status: u16,
    body: &[u8],
    after: Option<Duration>,
    sent: &[&str],
) -> Attempt<(), PlatformError> {
    let endpoint = endpoint.as_str().to_owned();
    let err = ErrorInfo::parse(body, sent);
    let description = err.description;
    // Genesys signals login throttling as 400 invalid_request "rate limit exceeded; ...".
    let login_throttle = status == 400
        && err.code == "invalid_request"
        && description
            .to_ascii_lowercase()
            .starts_with("rate limit exceeded");
    match status {
        200..=299 => Attempt::Done(()),
        // Waited out on the throttle schedule, which a fleet sharing one client needs.
        429 | 400 if status == 429 || login_throttle => Attempt::Throttled {
            error: PlatformError::RateLimited {
                platform,
                endpoint,
                status,
                description,
            },
            after,
        },
        500 | 502..=599 => Attempt::Retry {
            error: PlatformError::Unavailable {
                platform,
                endpoint,
                status,
            },
            after,
        },
        400..=499 | 501 => Attempt::Fail(PlatformError::Rejected {
            platform,
            endpoint,
            status,
            code: if err.code.is_empty() {
                "(no error code)".to_owned()
            } else {
                err.code
            },
            description,
        }),
        _ => Attempt::Fail(PlatformError::BadResponse {
            platform,
            endpoint,
            problem: format!("unexpected HTTP status {status}"),
        }),
    }
}

/// One request with retries; returns the body of a 2xx reply (zeroed on drop), read up to
/// [`net::SMALL_BODY_LIMIT`]. `sent` holds the secret values the request carries, so that an
/// error text echoing them is redacted.
pub(crate) async fn exchange<F>(
    platform: &'static str,
    endpoint: &Url,
    policy: &RetryPolicy,
    budget: &Budget,
    sent: &[&SecretString],
    build: F,
) -> Result<Zeroizing<Vec<u8>>, PlatformError>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let waiting_for = format!("{platform} at {endpoint}");
    net::retry(policy, budget, &waiting_for, |_| {
        let req = build();
        async move {
            let unreachable = |e: reqwest::Error| PlatformError::Unreachable {
                platform,
                endpoint: endpoint.as_str().to_owned(),
                reason: net::describe_transport(&e),
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Attempt::Retry {
                        error: unreachable(e),
                        after: None,
                    };
                }
            };
            let status = resp.status().as_u16();
            let after = net::retry_after(resp.headers());
            let body = match net::read_body(resp, net::SMALL_BODY_LIMIT).await {
                Ok(b) => b,
                Err(e @ net::BodyError::TooLarge { .. }) => {
                    return Attempt::Fail(PlatformError::BadResponse {
                        platform,
                        endpoint: endpoint.as_str().to_owned(),
                        problem: e.to_string(),
                    });
                }
                Err(net::BodyError::Transport(reason)) => {
                    return Attempt::Retry {
                        error: PlatformError::Unreachable {
                            platform,
                            endpoint: endpoint.as_str().to_owned(),
                            reason,
                        },
                        after: None,
                    };
                }
            };
            let sent: Vec<&str> = sent.iter().map(|s| s.expose_secret()).collect();
            match classify(platform, endpoint, status, &body, after, &sent) {
                Attempt::Done(()) => Attempt::Done(body),
                Attempt::Retry { error, after } => Attempt::Retry { error, after },
                Attempt::Throttled { error, after } => Attempt::Throttled { error, after },
                Attempt::Fail(e) => Attempt::Fail(e),
            }
        }
    })
    .await
    .map_err(PlatformError::from_gave_up)
}

/// Parses a token endpoint's success body.
pub fn parse_token(
    platform: &'static str,
    endpoint: &Url,
    body: &[u8],
) -> Result<TokenBody, PlatformError> {
    let bad = |problem: &str| PlatformError::BadResponse {
        platform,
        endpoint: endpoint.as_str().to_owned(),
        problem: problem.to_owned(),
    };
    let token: TokenBody = serde_json::from_slice(body).map_err(|e| {
        bad(&if e.is_data() {
            "the token response lacks a string access_token".to_owned()
        } else {
            format!(
                "the token response is not valid JSON (line {} column {})",
                e.line(),
                e.column()
            )
        })
    })?;
    if token.access_token.expose_secret().trim().is_empty() {
        return Err(bad("the token response has an empty access_token"));
    }
    if token.expires_in.is_some_and(|e| e <= 0) {
        return Err(bad("the token response has a non-positive expires_in"));
    }
    Ok(token)
}

/// A bearer header value that HTTP tooling will not print.
pub(crate) fn bearer(token: &SecretString) -> Option<reqwest::header::HeaderValue> {
    let mut v =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://login.mypurecloud.com/oauth/token").unwrap()
    }

    fn kind(a: Attempt<(), PlatformError>) -> String {
        match a {
            Attempt::Done(()) => "done".into(),
            Attempt::Retry { error, .. } => format!("retry: {error}"),
            Attempt::Throttled { error, .. } => format!("throttled: {error}"),
            Attempt::Fail(error) => format!("fail: {error}"),
        }
    }

    #[test]
    fn classification_follows_the_platforms() {
        let p = "Genesys Cloud";
        let cases: [(u16, &str, &str); 8] = [
            (200, "{}", "done"),
            (
                401,
                r#"{"error":"invalid_client","description":"authentication failed","error_description":"authentication failed"}"#,
                "fail: Genesys Cloud at https://login.mypurecloud.com/oauth/token refused the request: HTTP 401 invalid_client: authentication failed",
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"rate limit exceeded; retry later"}"#,
                "throttled: Genesys Cloud at https://login.mypurecloud.com/oauth/token is rate limiting requests (HTTP 400: rate limit exceeded; retry later)",
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"missing grant"}"#,
                "fail: ",
            ),
            (
                429,
                r#"{"message":"x","code":"too.many.requests.retry.after","status":429}"#,
                "throttled: ",
            ),
            (
                503,
                "<html>",
                "retry: Genesys Cloud at https://login.mypurecloud.com/oauth/token is unavailable (HTTP 503)",
            ),
            (501, "", "fail: "),
            (302, "", "fail: unexpected response"),
        ];
        for (status, body, want) in cases {
            let got = kind(classify(p, &url(), status, body.as_bytes(), None, &[]));
            assert!(
                got.starts_with(want) || got.contains(want),
                "{status}: {got}"
            );
        }
    }

    #[test]
    fn rejected_credentials_are_recognised() {
        let r = |code: &str| PlatformError::Rejected {
            platform: "x",
            endpoint: "e".into(),
            status: 401,
            code: code.into(),
            description: String::new(),
        };
        assert_eq!(
            r("invalid_client").rejected_credential(),
            Some("invalid_client")
        );
        assert_eq!(
            r("invalid_grant").rejected_credential(),
            Some("invalid_grant")
        );
        assert_eq!(r("unauthorized_client").rejected_credential(), None);
    }

    #[test]
    fn token_parsing_rejects_malformed_bodies_without_echoing_them() {
        let u = url();
        assert!(
            parse_token(
                "p",
                &u,
                br#"{"access_token":"t","token_type":"bearer","expires_in":86399}"#
            )
            .is_ok()
        );
        for body in [
            &b"not json"[..],
            br#"{"token":"secret-ish"}"#,
            br#"{"access_token":""}"#,
            br#"{"access_token":"t","expires_in":0}"#,
            br#"{"access_token":5}"#,
        ] {
            let e = parse_token("p", &u, body).err().unwrap().to_string();
            assert!(!e.contains("secret-ish"), "{e}");
            assert!(e.starts_with("unexpected response from p"), "{e}");
        }
    }
}
