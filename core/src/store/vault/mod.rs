//! The secret source: a Vault/OpenBao client for KV v2 reads, with token or login-method auth
//! (one login per process, renewed in the background, revoked at shutdown).
//! Tokens, login credentials and secret data stay in `secrecy` types throughout.

mod auth;
mod cache;
pub mod kv;
mod store;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use zeroize::Zeroizing;

use crate::net::{self, Attempt, Budget, GaveUp, RetryPolicy};

#[doc(hidden)]
pub use auth::fuzz_login;
pub use auth::{AuthMethod, SecretSource};
pub(crate) use cache::SecretCache;
pub(crate) use kv::{KvMetadata, KvSecret};
pub use store::VaultStore;

/// Everything that can go wrong talking to Vault. Messages never contain secret values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum VaultError {
    #[error("cannot reach Vault at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("Vault at {address} is unavailable (HTTP {status}{}): {message}", if *sealed { ", sealed" } else { "" })]
    Unavailable {
        address: String,
        status: u16,
        sealed: bool,
        message: String,
    },
    #[error("Vault at {address} denied access to {what}: {message}")]
    Forbidden {
        address: String,
        what: String,
        message: String,
    },
    #[error("no secret at {mount}/{path}{} in Vault at {address}", version.map(|v| format!(" (version {v})")).unwrap_or_default())]
    NotFound {
        address: String,
        mount: String,
        path: String,
        version: Option<i64>,
    },
    #[error("Vault at {address} has no secrets engine mounted at {mount:?}")]
    NoMount { address: String, mount: String },
    #[error("version {version} of {mount}/{path} in Vault at {address} has been {}", if *destroyed { "destroyed" } else { "deleted" })]
    VersionGone {
        address: String,
        mount: String,
        path: String,
        version: i64,
        destroyed: bool,
    },
    #[error("Vault at {address} answered HTTP {status} for {what}: {message}")]
    Http {
        address: String,
        what: String,
        status: u16,
        message: String,
    },
    #[error("unexpected response from Vault at {address} for {what}: {problem}")]
    BadResponse {
        address: String,
        what: String,
        problem: String,
    },
    #[error(
        "Vault at {address} answered {what} with a body larger than the {limit} limit; refusing it"
    )]
    TooLarge {
        address: String,
        what: String,
        limit: String,
    },
    #[error("no Vault token is configured")]
    NoToken,
    #[error("Vault login with the {method} method at auth/{mount} failed: {message}")]
    Login {
        method: &'static str,
        mount: String,
        message: String,
    },
    /// A transient error that persisted through every retry.
    #[error("{last} (gave up after {attempts} attempts)")]
    Retried {
        last: Box<VaultError>,
        attempts: u32,
    },
    /// The operation's deadline passed.
    #[error("{0}")]
    Deadline(String),
    #[error("interrupted")]
    Cancelled,
}

impl VaultError {
    fn from_gave_up(g: GaveUp<VaultError>) -> Self {
        match g {
            GaveUp::Error { error, attempts: 1 } => error,
            GaveUp::Error { error, attempts } => VaultError::Retried {
                last: Box::new(error),
                attempts,
            },
            GaveUp::Cancelled => VaultError::Cancelled,
            deadline @ GaveUp::Deadline { .. } => VaultError::Deadline(deadline.to_string()),
        }
    }

    /// The error behind any retries.
    pub(crate) fn root(&self) -> &VaultError {
        match self {
            VaultError::Retried { last, .. } => last.root(),
            other => other,
        }
    }
}

/// How to reach Vault, resolved from provider configuration and environment.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// Base address, e.g. `https://vault.example.com:8200`.
    pub address: Url,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// How to authenticate.
    pub auth: AuthMethod,
    /// Timeout and TLS settings.
    pub client: net::ClientOptions,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

/// Vault's error body: `{"errors": ["..."]}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

/// The first error message from a Vault error body, shortened; never the body itself.
pub fn error_message(body: &[u8]) -> String {
    error_message_without(body, &[])
}

/// [`error_message`], with any of `sent` (what the request carried, such as a login's
/// secret_id or JWT) redacted should the server echo it.
pub fn error_message_without(body: &[u8], sent: &[&str]) -> String {
    let msg = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.errors.into_iter().find(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "no error message".to_owned());
    // Go's multierror form: "1 error occurred:\n\t* permission denied\n\n".
    let msg = match msg.split_once("occurred:") {
        Some((head, rest))
            if head.trim_end().ends_with("error") || head.trim_end().ends_with("errors") =>
        {
            rest.replace("\n\t* ", "; ")
                .trim_start_matches(['\n', '\t', '*', ' ', ';'])
                .to_owned()
        }
        _ => msg,
    };
    net::untrusted_text(&msg, sent, 300)
}

/// A response status and its body, which may hold secrets and is zeroed when dropped.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// A Vault client shared by every operation of one configured provider.
#[derive(Clone)]
pub(crate) struct VaultClient {
    inner: Arc<auth::Inner>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("address", &self.inner.address.as_str())
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    pub(crate) fn new(settings: VaultSettings) -> Result<Self, String> {
        let http = net::http_client(&settings.client)?;
        Ok(VaultClient {
            inner: Arc::new(auth::Inner::new(settings, http)),
        })
    }

    /// The address, for diagnostics.
    pub(crate) fn address(&self) -> &str {
        self.inner.address.as_str().trim_end_matches('/')
    }

    /// One HTTP exchange with retries on transient failures (connection errors, 5xx including
    /// a sealed or standby Vault's 503, 429). Returns any other status to the caller.
    pub(crate) async fn call(
        &self,
        budget: &Budget,
        method: Method,
        api_path: &str,
        query: Option<(&str, String)>,
        body: Option<Zeroizing<String>>,
        what: &str,
    ) -> Result<Reply, VaultError> {
        let waiting_for = format!("Vault at {} ({what})", self.address());
        let relogged = std::sync::atomic::AtomicBool::new(false);
        net::retry(&self.inner.retry, budget, &waiting_for, |_| {
            let method = method.clone();
            let body = body.clone();
            let query = query.clone();
            let relogged = &relogged;
            async move {
                let token = match self.inner.token(budget).await {
                    Ok(t) => t,
                    Err(e @ (VaultError::Unreachable { .. } | VaultError::Unavailable { .. })) => {
                        return Attempt::Retry {
                            error: e,
                            after: None,
                        };
                    }
                    Err(e) => return Attempt::Fail(e),
                };
                match self
                    .inner
                    .send(
                        method,
                        api_path,
                        query,
                        body,
                        Some(&token),
                        net::VAULT_KV_BODY_LIMIT,
                    )
                    .await
                {
                    Err(e @ VaultError::TooLarge { .. }) => Attempt::Fail(e),
                    Err(e) => Attempt::Retry {
                        error: e,
                        after: None,
                    },
                    Ok((reply, after)) => match reply.status.as_u16() {
                        429 | 412 | 500 | 502..=504 => Attempt::Retry {
                            error: self.inner.unavailable(&reply, &[]),
                            after,
                        },
                        // A login token may have expired or been revoked behind our back: log in
                        // again once before reporting the denial.
                        403 if !relogged.swap(true, std::sync::atomic::Ordering::SeqCst)
                            && self.inner.drop_login_session(&token).await =>
                        {
                            Attempt::Retry {
                                error: self.inner.forbidden(what, &reply.body),
                                after: Some(Duration::ZERO),
                            }
                        }
                        _ => Attempt::Done(reply),
                    },
                }
            }
        })
        .await
        .map_err(VaultError::from_gave_up)
    }

    /// Reads a KV v2 secret (the latest version when `version` is `None`).
    pub(crate) async fn kv_read(
        &self,
        budget: &Budget,
        mount: &str,
        path: &str,
        version: Option<i64>,
    ) -> Result<KvSecret, VaultError> {
        let what = format!("reading {mount}/{path}");
        let reply = self
            .call(
                budget,
                Method::GET,
                &format!("{}/data/{}", encode_path(mount), encode_path(path)),
                version.map(|v| ("version", v.to_string())),
                None,
                &what,
            )
            .await?;
        let parsed = serde_json::from_slice::<kv::ReadBody>(&reply.body);
        match reply.status.as_u16() {
            200 => {
                let data = parsed.ok().and_then(|b| b.data).ok_or_else(|| {
                    self.bad_response(&what, "the body is not a KV v2 read response")
                })?;
                let metadata = data.metadata.unwrap_or_default();
                match data.data {
                    Some(secret) => Ok(KvSecret {
                        data: secret,
                        metadata,
                    }),
                    None => Err(self.gone_or_missing(mount, path, version, Some(&metadata))),
                }
            }
            404 => {
                // A deleted or destroyed version answers 404 but still carries its metadata; a
                // missing mount answers "no handler for route".
                if error_message(&reply.body).contains("no handler for route") {
                    return Err(VaultError::NoMount {
                        address: self.address().to_owned(),
                        mount: mount.to_owned(),
                    });
                }
                let md = parsed.ok().and_then(|b| b.data).and_then(|d| d.metadata);
                Err(self.gone_or_missing(mount, path, version, md.as_ref()))
            }
            403 => Err(self
                .inner
                .forbidden(&format!("{mount}/data/{path}"), &reply.body)),
            status => Err(self.http_error(&what, status, &reply.body)),
        }
    }

    /// Reads the metadata of a KV v2 secret: versions and custom metadata, no secret values.
    pub(crate) async fn kv_metadata(
        &self,
        budget: &Budget,
        mount: &str,
        path: &str,
    ) -> Result<KvMetadata, VaultError> {
        let what = format!("reading the metadata of {mount}/{path}");
        let reply = self
            .call(
                budget,
                Method::GET,
                &format!("{}/metadata/{}", encode_path(mount), encode_path(path)),
                None,
                None,
                &what,
            )
            .await?;
        match reply.status.as_u16() {
            200 => serde_json::from_slice::<kv::MetadataBody>(&reply.body)
                .ok()
                .and_then(|b| b.data)
                .ok_or_else(|| {
                    self.bad_response(&what, "the body is not a KV v2 metadata response")
                }),
            404 if error_message(&reply.body).contains("no handler for route") => {
                Err(VaultError::NoMount {
                    address: self.address().to_owned(),
                    mount: mount.to_owned(),
                })
            }
            404 => Err(VaultError::NotFound {
                address: self.address().to_owned(),
                mount: mount.to_owned(),
                path: path.to_owned(),
                version: None,
            }),
            403 => Err(self
                .inner
                .forbidden(&format!("{mount}/metadata/{path}"), &reply.body)),
            status => Err(self.http_error(&what, status, &reply.body)),
        }
    }

    /// Revokes the login token (if this client logged in) and stops renewing it.
    pub(crate) async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    fn gone_or_missing(
        &self,
        mount: &str,
        path: &str,
        version: Option<i64>,
        md: Option<&kv::VersionMetadata>,
    ) -> VaultError {
        match md {
            Some(md) if md.destroyed || !md.deletion_time.is_empty() => VaultError::VersionGone {
                address: self.address().to_owned(),
                mount: mount.to_owned(),
                path: path.to_owned(),
                version: if md.version > 0 {
                    md.version
                } else {
                    version.unwrap_or(0)
                },
                destroyed: md.destroyed,
            },
            _ => VaultError::NotFound {
                address: self.address().to_owned(),
                mount: mount.to_owned(),
                path: path.to_owned(),
                version,
            },
        }
    }

    fn bad_response(&self, what: &str, problem: &str) -> VaultError {
        VaultError::BadResponse {
            address: self.address().to_owned(),
            what: what.to_owned(),
            problem: problem.to_owned(),
        }
    }

    fn http_error(&self, what: &str, status: u16, body: &[u8]) -> VaultError {
        VaultError::Http {
            address: self.address().to_owned(),
            what: what.to_owned(),
            status,
            message: error_message(body),
        }
    }
}

/// Percent-encodes each segment of a Vault path, keeping the slashes between them.
fn encode_path(path: &str) -> String {
    path.trim_matches('/')
        .split('/')
        .map(|seg| {
            url::form_urlencoded::byte_serialize(seg.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Exposes a secret for building one request body; the body is zeroed when dropped.
fn json_body(value: serde_json::Value) -> Zeroizing<String> {
    Zeroizing::new(value.to_string())
}

/// A token as a header value that HTTP tooling will not print.
fn token_header(token: &SecretString) -> Option<reqwest::header::HeaderValue> {
    let mut v = reqwest::header::HeaderValue::from_str(token.expose_secret()).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(
            encode_path("genesys/prod/pipeline"),
            "genesys/prod/pipeline"
        );
        assert_eq!(encode_path("/a b/c?d/"), "a%20b/c%3Fd");
    }

    #[test]
    fn a_login_credential_echoed_by_the_server_is_redacted() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln";
        let body = format!(r#"{{"errors":["error validating token: {jwt} is not trusted"]}}"#);
        let shown = error_message_without(body.as_bytes(), &[jwt]);
        assert_eq!(shown, "error validating token: [redacted] is not trusted");
        // URL-encoded echoes too (a secret_id with characters a form encodes).
        let secret_id = "s3cr/et+id=";
        let encoded: String = url::form_urlencoded::byte_serialize(secret_id.as_bytes()).collect();
        let body = format!(r#"{{"errors":["invalid secret_id {encoded}"]}}"#);
        assert_eq!(
            error_message_without(body.as_bytes(), &[secret_id]),
            "invalid secret_id [redacted]"
        );
    }

    #[test]
    fn error_message_takes_the_first_error_and_never_the_raw_body() {
        assert_eq!(
            error_message(br#"{"errors":["permission denied"]}"#),
            "permission denied"
        );
        assert_eq!(error_message(br#"{"errors":["", "a\n  b"]}"#), "a b");
        assert_eq!(
            error_message(br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#),
            "permission denied"
        );
        assert_eq!(
            error_message(b"<html>secret-ish</html>"),
            "no error message"
        );
        assert!(
            error_message(format!(r#"{{"errors":["{}"]}}"#, "x".repeat(500)).as_bytes())
                .ends_with('…')
        );
    }

    #[test]
    fn errors_read_well() {
        let e = VaultError::NotFound {
            address: "http://127.0.0.1:8200".into(),
            mount: "secret".into(),
            path: "genesys/prod".into(),
            version: Some(3),
        };
        assert_eq!(
            e.to_string(),
            "no secret at secret/genesys/prod (version 3) in Vault at http://127.0.0.1:8200"
        );
        let e = VaultError::Unavailable {
            address: "http://v".into(),
            status: 503,
            sealed: true,
            message: "Vault is sealed".into(),
        };
        assert_eq!(
            e.to_string(),
            "Vault at http://v is unavailable (HTTP 503, sealed): Vault is sealed"
        );
    }

    /// A "Vault" that answers any request with HTTP 200 and a 1.5 GiB body: announced (refused
    /// before reading), or streamed without a length (reading stops at the cap). Returns its
    /// URL, the bytes it managed to send and how many requests it saw.
    async fn hostile_vault(
        announce: bool,
    ) -> (
        Url,
        Arc<std::sync::atomic::AtomicUsize>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const HUGE: usize = 1536 * 1024 * 1024;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let (sent, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (sent2, requests2) = (Arc::clone(&sent), Arc::clone(&requests));
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let (sent, requests) = (Arc::clone(&sent2), Arc::clone(&requests2));
                tokio::spawn(async move {
                    let mut req = [0u8; 4096];
                    let _ = s.read(&mut req).await;
                    requests.fetch_add(1, Ordering::SeqCst);
                    let head = if announce {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {HUGE}\r\n\r\n"
                        )
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".to_owned()
                    };
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b' '; 64 * 1024];
                    while sent.load(Ordering::SeqCst) < HUGE {
                        if s.write_all(&chunk).await.is_err() {
                            return;
                        }
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                    }
                });
            }
        });
        (url, sent, requests)
    }

    #[tokio::test]
    async fn a_hostile_1_5_gib_answer_fails_at_the_cap_without_reading_it() {
        use std::sync::atomic::Ordering;
        for announce in [true, false] {
            let (address, sent, requests) = hostile_vault(announce).await;
            let client = VaultClient::new(VaultSettings {
                address,
                namespace: None,
                auth: AuthMethod::Token(Some(SecretString::from("hvs.test-token"))),
                client: net::ClientOptions {
                    timeout: Duration::from_secs(60),
                    ..net::ClientOptions::default()
                },
                retry: RetryPolicy::default(),
            })
            .unwrap();
            let budget = Budget::new(
                Duration::from_secs(120),
                tokio_util::sync::CancellationToken::new(),
            );
            let e = client
                .kv_read(&budget, "secret", "big", None)
                .await
                .unwrap_err();
            assert!(
                matches!(&e, VaultError::TooLarge { limit, .. } if limit == "8 MiB"),
                "{e}"
            );
            assert!(
                e.to_string().ends_with(
                    "answered /v1/secret/data/big with a body larger than the 8 MiB limit; refusing it"
                ),
                "{e}"
            );
            assert_eq!(requests.load(Ordering::SeqCst), 1, "not retried");
            // Reading stopped at the cap: what the server got out is the cap plus what the
            // sockets buffer, far from 1.5 GiB (and nothing at all past the head when the
            // length was announced).
            let got_out = sent.load(Ordering::SeqCst);
            assert!(
                got_out < 64 << 20,
                "{got_out} bytes were sent (announce: {announce})"
            );
        }
    }
}
