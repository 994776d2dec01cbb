//! How the client gets its Vault token: a static token, or one login per process with AppRole,
//! JWT/OIDC or Kubernetes, renewed in the background while it is in use and revoked at shutdown.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use url::Url;
use zeroize::Zeroizing;

use super::{
    Reply, VaultError, VaultSettings, error_message, error_message_without, json_body, token_header,
};
use crate::net::{self, Attempt, Budget, RetryPolicy};

/// Where a login credential comes from. Files and variables are read at each login, so a
/// rotated file (a projected Kubernetes token, a CI OIDC token) is picked up.
#[derive(Clone)]
pub enum SecretSource {
    /// The value itself.
    Value(SecretString),
    /// A file holding it.
    File(PathBuf),
    /// An environment variable holding it.
    Env(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("Value(..)"),
            SecretSource::File(p) => write!(f, "File({})", p.display()),
            SecretSource::Env(v) => write!(f, "Env({v})"),
        }
    }
}

impl SecretSource {
    fn load(&self) -> Result<SecretString, String> {
        let value = match self {
            SecretSource::Value(v) => return Ok(v.clone()),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(Zeroizing::new)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            SecretSource::Env(name) => std::env::var(name)
                .map(Zeroizing::new)
                .map_err(|_| format!("environment variable {name} is not set"))?,
        };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(match self {
                SecretSource::File(path) => format!("{} is empty", path.display()),
                _ => "the value is empty".to_owned(),
            });
        }
        Ok(SecretString::from(trimmed))
    }
}

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// A token given directly (attribute, environment or token file). Never revoked by us.
    Token(Option<SecretString>),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretSource,
    },
    Jwt {
        mount: String,
        role: String,
        jwt: SecretSource,
    },
    Kubernetes {
        mount: String,
        role: String,
        jwt: SecretSource,
    },
}

impl AuthMethod {
    fn name(&self) -> &'static str {
        match self {
            AuthMethod::Token(_) => "token",
            AuthMethod::AppRole { .. } => "approle",
            AuthMethod::Jwt { .. } => "jwt",
            AuthMethod::Kubernetes { .. } => "kubernetes",
        }
    }
}

/// The token in use.
struct Session {
    token: SecretString,
    /// Obtained by logging in (so ours to renew and revoke).
    login: bool,
    /// When the token stops working, if it expires.
    expires: Option<Instant>,
    /// The TTL Vault last granted (at login or renewal).
    lease: Duration,
}

impl Session {
    /// Whether the token can still be used for a request. Close to its expiry it is replaced
    /// by a new login instead; the margin stays below the third of the TTL that renewal (at
    /// 2/3 of the TTL) leaves, so a token that is being renewed is never replaced, even with
    /// a TTL of a few seconds.
    fn fresh(&self) -> bool {
        let margin = (self.lease / 4).min(Duration::from_secs(5));
        self.expires
            .is_none_or(|at| at.saturating_duration_since(Instant::now()) > margin)
    }
}

/// The longest lease believed: a `lease_duration` beyond a year is cut to a year, so no
/// instant arithmetic on it can overflow.
const MAX_LEASE: Duration = Duration::from_secs(365 * 24 * 3600);

/// A lease from Vault's `lease_duration`, clamped, and when it ends (`None`: never).
fn lease_of(lease_duration: u64) -> (Duration, Option<Instant>) {
    let lease = Duration::from_secs(lease_duration).min(MAX_LEASE);
    let now = Instant::now();
    (
        lease,
        (lease_duration > 0).then(|| now.checked_add(lease).unwrap_or(now)),
    )
}

/// When to renew a login token next: at two thirds of its lease, while renewal still gains
/// something (a lease capped by the token's max TTL shrinks to a few seconds).
fn renew_delay(lease: Duration, renewable: bool) -> Option<Duration> {
    (renewable && lease > Duration::from_secs(3)).then(|| lease.mul_f64(2.0 / 3.0))
}

/// What a login or renewal answer's numbers become (for the fuzz target): never a panic.
pub fn fuzz_login(body: &[u8]) {
    if let Some(auth) = serde_json::from_slice::<AuthBody>(body)
        .ok()
        .and_then(|b| b.auth)
    {
        let (lease, _) = lease_of(auth.lease_duration);
        assert!(lease <= MAX_LEASE);
        let _ = renew_delay(lease, auth.renewable);
    }
}

/// The `auth` part of a login or renew response.
#[derive(serde::Deserialize)]
struct AuthBody {
    auth: Option<AuthInfo>,
}

#[derive(serde::Deserialize)]
struct AuthInfo {
    client_token: SecretString,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

pub(super) struct Inner {
    pub(super) address: Url,
    namespace: Option<String>,
    http: reqwest::Client,
    pub(super) retry: RetryPolicy,
    auth: AuthMethod,
    session: Mutex<Option<Session>>,
    renewer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    pub(super) fn new(settings: VaultSettings, http: reqwest::Client) -> Self {
        Inner {
            address: settings.address,
            namespace: settings.namespace,
            http,
            retry: settings.retry,
            auth: settings.auth,
            session: Mutex::new(None),
            renewer: std::sync::Mutex::new(None),
        }
    }

    fn address(&self) -> String {
        self.address.as_str().trim_end_matches('/').to_owned()
    }

    /// Sends one request. Transport failures become `Unreachable`.
    pub(super) async fn send(
        &self,
        method: Method,
        api_path: &str,
        query: Option<(&str, String)>,
        body: Option<Zeroizing<String>>,
        token: Option<&SecretString>,
        limit: usize,
    ) -> Result<(Reply, Option<Duration>), VaultError> {
        let url = net::join(&self.address, &format!("/v1/{api_path}"));
        let mut req = self
            .http
            .request(method, url)
            .header("X-Vault-Request", "true");
        if let Some((k, v)) = query {
            req = req.query(&[(k, v)]);
        }
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(h) = token.and_then(token_header) {
            req = req.header("X-Vault-Token", h);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.as_bytes().to_vec());
        }
        let unreachable = |e: reqwest::Error| VaultError::Unreachable {
            address: self.address(),
            reason: net::describe_transport(&e),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let after = net::retry_after(resp.headers());
        let body = net::read_body(resp, limit).await.map_err(|e| match e {
            net::BodyError::TooLarge { limit } => VaultError::TooLarge {
                address: self.address(),
                what: format!("/v1/{api_path}"),
                limit: net::human_size(limit),
            },
            net::BodyError::Transport(reason) => VaultError::Unreachable {
                address: self.address(),
                reason,
            },
        })?;
        Ok((Reply { status, body }, after))
    }

    /// A 5xx or 429 reply as an error; `sent` is redacted from the server's words.
    pub(super) fn unavailable(&self, reply: &Reply, sent: &[&str]) -> VaultError {
        let message = error_message_without(&reply.body, sent);
        VaultError::Unavailable {
            address: self.address(),
            status: reply.status.as_u16(),
            sealed: message.to_ascii_lowercase().contains("sealed"),
            message,
        }
    }

    pub(super) fn forbidden(&self, what: &str, body: &[u8]) -> VaultError {
        VaultError::Forbidden {
            address: self.address(),
            what: what.to_owned(),
            message: error_message(body),
        }
    }

    /// The token to use now, logging in (once, under the lock) if needed.
    pub(super) async fn token(
        self: &Arc<Self>,
        budget: &Budget,
    ) -> Result<SecretString, VaultError> {
        let mut session = self.session.lock().await;
        if let Some(s) = session.as_ref().filter(|s| s.fresh()) {
            return Ok(s.token.clone());
        }
        let new = match &self.auth {
            AuthMethod::Token(Some(t)) => Session {
                token: t.clone(),
                login: false,
                expires: None,
                lease: Duration::ZERO,
            },
            AuthMethod::Token(None) => return Err(VaultError::NoToken),
            _ => self.login(budget).await?,
        };
        let token = new.token.clone();
        let renew_in = new.expires.filter(|_| new.login).map(|at| {
            at.saturating_duration_since(Instant::now())
                .mul_f64(2.0 / 3.0)
        });
        *session = Some(new);
        drop(session);
        if let Some(delay) = renew_in {
            self.schedule_renewal(delay);
        }
        Ok(token)
    }

    async fn login(&self, budget: &Budget) -> Result<Session, VaultError> {
        let method = self.auth.name();
        // The login's credential, kept to redact it should the server echo it in an error.
        let (mount, body, sent) = match &self.auth {
            AuthMethod::Token(_) => return Err(VaultError::NoToken),
            AuthMethod::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let secret_id = secret_id
                    .load()
                    .map_err(|message| self.login_error(mount, message))?;
                let body =
                    serde_json::json!({"role_id": role_id, "secret_id": secret_id.expose_secret()});
                (mount, json_body(body), secret_id)
            }
            AuthMethod::Jwt { mount, role, jwt } | AuthMethod::Kubernetes { mount, role, jwt } => {
                let jwt = jwt
                    .load()
                    .map_err(|message| self.login_error(mount, message))?;
                (
                    mount,
                    json_body(serde_json::json!({"role": role, "jwt": jwt.expose_secret()})),
                    jwt,
                )
            }
        };
        let path = format!("auth/{}/login", mount.trim_matches('/'));
        let waiting_for = format!("Vault at {} (logging in with {method})", self.address());
        let sent = &sent;
        let reply = net::retry(&self.retry, budget, &waiting_for, |_| {
            let body = body.clone();
            let path = path.as_str();
            async move {
                match self
                    .send(
                        Method::POST,
                        path,
                        None,
                        Some(body),
                        None,
                        net::SMALL_BODY_LIMIT,
                    )
                    .await
                {
                    Err(e @ VaultError::TooLarge { .. }) => Attempt::Fail(e),
                    Err(e) => Attempt::Retry {
                        error: e,
                        after: None,
                    },
                    Ok((reply, after))
                        if matches!(reply.status.as_u16(), 429 | 500 | 502..=504) =>
                    {
                        Attempt::Retry {
                            error: self.unavailable(&reply, &[sent.expose_secret()]),
                            after,
                        }
                    }
                    Ok((reply, _)) => Attempt::Done(reply),
                }
            }
        })
        .await
        .map_err(VaultError::from_gave_up)?;
        if reply.status != StatusCode::OK {
            return Err(self.login_error(
                mount,
                format!(
                    "HTTP {}: {}",
                    reply.status.as_u16(),
                    error_message_without(&reply.body, &[sent.expose_secret()])
                ),
            ));
        }
        let auth = serde_json::from_slice::<AuthBody>(&reply.body)
            .ok()
            .and_then(|b| b.auth)
            .ok_or_else(|| {
                self.login_error(mount, "the response has no auth.client_token".to_owned())
            })?;
        tracing::info!(method, mount = %mount, ttl_s = auth.lease_duration, renewable = auth.renewable, "logged in to Vault");
        let (lease, expires) = lease_of(auth.lease_duration);
        Ok(Session {
            token: auth.client_token,
            login: true,
            expires,
            lease,
        })
    }

    fn login_error(&self, mount: &str, message: String) -> VaultError {
        VaultError::Login {
            method: self.auth.name(),
            mount: mount.to_owned(),
            message,
        }
    }

    /// Forgets the login session if it still holds `denied` (the token a request was refused
    /// with) so the next request logs in again, revoking that token: a denial may come from a
    /// policy rather than a dead token, and a live token we no longer track would outlive the
    /// run. When concurrent requests are denied at once, only the first drops the session; the
    /// others retry with the new login. False for static tokens.
    pub(super) async fn drop_login_session(&self, denied: &SecretString) -> bool {
        use secrecy::ExposeSecret;
        let dropped = {
            let mut session = self.session.lock().await;
            match session.take() {
                Some(s) if s.login && s.token.expose_secret() == denied.expose_secret() => s,
                Some(s) if s.login => {
                    // Already replaced by a newer login: retry with that one.
                    *session = Some(s);
                    return true;
                }
                other => {
                    *session = other;
                    return false;
                }
            }
        };
        // Already dead is the common case: a failure here is expected and quiet.
        match self.revoke(&dropped.token).await {
            Ok(()) => tracing::info!("revoked the Vault login token before logging in again"),
            Err(e) => tracing::debug!(error = %e, "revoking the dropped Vault login token failed"),
        }
        true
    }

    fn schedule_renewal(self: &Arc<Self>, delay: Duration) {
        let weak: Weak<Inner> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut delay = delay;
            loop {
                tokio::time::sleep(delay).await;
                let Some(inner) = weak.upgrade() else { return };
                match inner.renew().await {
                    Some(next) => delay = next,
                    None => return,
                }
            }
        });
        if let Some(old) = self
            .renewer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(task)
        {
            old.abort();
        }
    }

    /// Renews the login token; returns when to renew next, or `None` to stop (the next
    /// request then logs in again once the token expires).
    async fn renew(&self) -> Option<Duration> {
        let token = {
            let s = self.session.lock().await;
            s.as_ref().filter(|s| s.login)?.token.clone()
        };
        let res = self
            .send(
                Method::POST,
                "auth/token/renew-self",
                None,
                Some(json_body(serde_json::json!({}))),
                Some(&token),
                net::SMALL_BODY_LIMIT,
            )
            .await;
        let info = match res {
            Ok((reply, _)) if reply.status == StatusCode::OK => {
                serde_json::from_slice::<AuthBody>(&reply.body)
                    .ok()
                    .and_then(|b| b.auth)
            }
            Ok((reply, _)) => {
                tracing::warn!(
                    status = reply.status.as_u16(),
                    "renewing the Vault login token failed; will log in again when it expires"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the Vault login token failed; will log in again when it expires");
                None
            }
        }?;
        tracing::debug!(ttl_s = info.lease_duration, "renewed the Vault login token");
        let mut s = self.session.lock().await;
        // The session may have been replaced by a new login while renewing the old token.
        let session = s
            .as_mut()
            .filter(|s| s.token.expose_secret() == token.expose_secret())?;
        (session.lease, session.expires) = lease_of(info.lease_duration);
        renew_delay(session.lease, info.renewable)
    }

    pub(super) async fn shutdown(&self) {
        if let Some(task) = self
            .renewer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        let session = self.session.lock().await.take();
        if let Some(s) = session.filter(|s| s.login) {
            match self.revoke(&s.token).await {
                Ok(()) => tracing::info!("revoked the Vault login token"),
                Err(e) => tracing::warn!(error = %e, "revoking the Vault login token failed"),
            }
        }
    }

    /// Revokes a login token with revoke-self, within a second.
    async fn revoke(&self, token: &SecretString) -> Result<(), String> {
        let revoke = self.send(
            Method::POST,
            "auth/token/revoke-self",
            None,
            Some(json_body(serde_json::json!({}))),
            Some(token),
            net::SMALL_BODY_LIMIT,
        );
        match tokio::time::timeout(Duration::from_secs(1), revoke).await {
            Ok(Ok((reply, _))) if reply.status.is_success() => Ok(()),
            Ok(Ok((reply, _))) => Err(format!(
                "HTTP {}: {}",
                reply.status.as_u16(),
                error_message(&reply.body)
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_clamped_and_renewed_at_two_thirds() {
        let (lease, expires) = lease_of(u64::MAX);
        assert_eq!(lease, MAX_LEASE);
        assert!(expires.is_some());
        let (lease, expires) = lease_of(0);
        assert_eq!((lease, expires), (Duration::ZERO, None));
        let (lease, _) = lease_of(3600);
        assert_eq!(renew_delay(lease, true), Some(Duration::from_secs(2400)));
        assert_eq!(renew_delay(lease, false), None);
        // A lease shrunk by the max TTL is not renewed again: a new login follows.
        assert_eq!(renew_delay(Duration::from_secs(3), true), None);
        assert_eq!(
            renew_delay(MAX_LEASE, true),
            Some(MAX_LEASE.mul_f64(2.0 / 3.0))
        );
    }

    #[test]
    fn a_session_is_fresh_until_its_margin() {
        let s = |left: u64, lease: u64| Session {
            token: SecretString::from("t"),
            login: true,
            expires: Some(Instant::now() + Duration::from_secs(left)),
            lease: Duration::from_secs(lease),
        };
        assert!(s(3600, 3600).fresh());
        assert!(s(6, 3600).fresh(), "margin is at most 5 s");
        assert!(!s(4, 3600).fresh());
        assert!(!s(2, 12).fresh(), "margin is a quarter of a short lease");
        assert!(s(4, 12).fresh());
    }
}
