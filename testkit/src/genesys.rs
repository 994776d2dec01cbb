//! A Genesys Cloud stand-in that behaves like the real login and API hosts: client-credentials
//! tokens with Basic auth, `invalid_client` for unknown ids and wrong secrets,
//! `unauthorized_client` for a client without the client-credentials grant, the per-client
//! limit on tokens created a minute answered as HTTP 400 `invalid_request` "rate limit
//! exceeded;" (no `Retry-After`), 300 API calls a minute per token answered with 429 and
//! `Retry-After`, 401 for bad tokens, token introspection and revocation (an API call: it
//! counts against the token's API limit, not the client's token limit). One server plays both
//! `login.` and `api.`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::standin::{Fault, Faults, Server, basic_auth, bearer, random_token, strict_form};

/// Routes faults can be scripted on.
pub mod route {
    /// `POST /oauth/token`
    pub const TOKEN: &str = "token";
    /// `GET /api/v2/...` (organizations/me, tokens/me)
    pub const API: &str = "api";
    /// `DELETE /api/v2/tokens/me` (revocation)
    pub const REVOKE: &str = "revoke";
}

#[derive(Debug, Clone)]
struct Client {
    secret: String,
    org_id: String,
    /// Whether the client may use the client-credentials grant.
    client_credentials: bool,
}

#[derive(Debug, Clone)]
struct Issued {
    client_id: String,
    org_id: String,
    revoked: bool,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    clients: HashMap<String, Client>,
    tokens: HashMap<String, Issued>,
    /// Every token request, by the client id it named (unknown ids included).
    requests: HashMap<String, Vec<Instant>>,
    valid_calls: HashMap<String, usize>,
    invalid_calls: usize,
    revocations: HashMap<String, usize>,
    lifetime: u64,
    /// Tokens a client may create within `login_window` (Genesys: 300 a minute,
    /// `client.credentials.token.rate.per.minute`).
    rate_limit: usize,
    login_window: Duration,
    /// When each client's tokens were created, oldest first (the rolling window's log).
    created: HashMap<String, std::collections::VecDeque<Instant>>,
    /// Token requests answered with the login rate limit, by client id.
    rate_limited: HashMap<String, usize>,
    /// API calls allowed per token within `api_window` (Genesys: 300 a minute).
    api_limit: usize,
    api_window: Duration,
    /// Recent API calls, by token.
    api_calls: HashMap<String, std::collections::VecDeque<Instant>>,
    /// API calls answered 429.
    throttled: usize,
}

/// The stand-in; stops when dropped.
#[derive(Debug)]
pub struct GenesysStandin {
    server: Server,
    state: Arc<Mutex<Inner>>,
    faults: Faults,
}

#[derive(Clone)]
struct App {
    state: Arc<Mutex<Inner>>,
    faults: Faults,
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"error": code, "description": description, "error_description": description}),
        ),
    )
        .into_response()
}

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"message": message, "code": code, "status": status.as_u16(), "contextId": "standin", "details": [], "errors": []})),
    )
        .into_response()
}

async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let creds = basic_auth(&headers);
    if let Some((id, _)) = &creds {
        app.state
            .lock()
            .expect("state")
            .requests
            .entry(id.clone())
            .or_default()
            .push(Instant::now());
    }
    if let Some(r) = app.faults.apply(route::TOKEN).await {
        return r;
    }
    let Some((id, secret)) = creds else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication required",
        );
    };
    let form = match strict_form(&body) {
        Ok(f) => f,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type not supported",
        );
    }
    let mut st = app.state.lock().expect("state");
    let Some(client) = st.clients.get(&id).cloned() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client not found",
        );
    };
    if client.secret != secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "authentication failed",
        );
    }
    if !client.client_credentials {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "client is not authorized to use the client credentials grant",
        );
    }
    // The limit counts tokens created in the last window (a rolling minute): refused requests
    // create nothing, and revocations are API calls on the token itself.
    let (limit, window, now) = (st.rate_limit, st.login_window, Instant::now());
    let created = st.created.entry(id.clone()).or_default();
    while created
        .front()
        .is_some_and(|c| now.duration_since(*c) >= window)
    {
        created.pop_front();
    }
    if created.len() >= limit {
        *st.rate_limited.entry(id).or_default() += 1;
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "rate limit exceeded; client.credentials.token.rate.per.minute",
        );
    }
    created.push_back(now);
    let token = random_token(64);
    let lifetime = st.lifetime;
    st.tokens.insert(
        token.clone(),
        Issued {
            client_id: id,
            org_id: client.org_id,
            revoked: false,
            expires: Instant::now() + Duration::from_secs(lifetime),
        },
    );
    axum::Json(json!({"access_token": token, "token_type": "bearer", "expires_in": lifetime}))
        .into_response()
}

/// The valid token of a request; API calls (not revocations) are counted. `Err` is the 401
/// to answer.
#[allow(clippy::result_large_err)] // the error is the HTTP response itself
fn authorize(app: &App, headers: &HeaderMap, count: bool) -> Result<(String, Issued), Response> {
    let mut st = app.state.lock().expect("state");
    let found = bearer(headers).and_then(|t| st.tokens.get(&t).cloned().map(|i| (t, i)));
    match found {
        Some((t, issued)) if !issued.revoked && issued.expires > Instant::now() => {
            // Every API call counts against the token's limit, revocation included.
            let (limit, window) = (st.api_limit, st.api_window);
            let now = Instant::now();
            let calls = st.api_calls.entry(t.clone()).or_default();
            while calls
                .front()
                .is_some_and(|c| now.duration_since(*c) >= window)
            {
                calls.pop_front();
            }
            if calls.len() >= limit {
                let wait = calls
                    .front()
                    .map_or(window, |c| window.saturating_sub(now.duration_since(*c)));
                st.throttled += 1;
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut r = api_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too.many.requests.retry.after",
                    &format!(
                        "Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"
                    ),
                );
                r.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, secs.max(1).into());
                return Err(r);
            }
            calls.push_back(now);
            if count {
                *st.valid_calls.entry(issued.client_id.clone()).or_default() += 1;
            }
            Ok((t, issued))
        }
        _ => {
            st.invalid_calls += 1;
            Err(api_error(
                StatusCode::UNAUTHORIZED,
                "bad.credentials",
                "Invalid login credentials.",
            ))
        }
    }
}

async fn organizations_me(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = app.faults.apply(route::API).await {
        return r;
    }
    match authorize(&app, &headers, true) {
        Ok((_, issued)) => axum::Json(json!({"id": issued.org_id, "name": format!("Org {}", issued.org_id), "state": "active"})).into_response(),
        Err(r) => r,
    }
}

async fn authorization_products(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = app.faults.apply(route::API).await {
        return r;
    }
    match authorize(&app, &headers, false) {
        Ok(_) => {
            axum::Json(json!({"entities": [{"id": "standin-product"}], "total": 1})).into_response()
        }
        Err(r) => r,
    }
}

async fn tokens_me(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = app.faults.apply(route::API).await {
        return r;
    }
    match authorize(&app, &headers, false) {
        Ok((_, issued)) => {
            let org = json!({"id": issued.org_id, "name": format!("Org {}", issued.org_id)});
            axum::Json(json!({
                "organization": org,
                "homeOrganization": org,
                "authorizedScope": ["organization:readonly"],
                "OAuthClient": {"id": issued.client_id, "name": "pipeline", "organization": {"id": issued.org_id}}
            }))
            .into_response()
        }
        Err(r) => r,
    }
}

async fn revoke_me(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = app.faults.apply(route::REVOKE).await {
        return r;
    }
    match authorize(&app, &headers, false) {
        Ok((t, issued)) => {
            let mut st = app.state.lock().expect("state");
            if let Some(i) = st.tokens.get_mut(&t) {
                i.revoked = true;
            }
            *st.revocations.entry(issued.client_id).or_default() += 1;
            StatusCode::OK.into_response()
        }
        Err(r) => r,
    }
}

impl GenesysStandin {
    /// Starts the stand-in with no clients, 24 h tokens and Genesys's 300/min login limit.
    pub fn start() -> GenesysStandin {
        let state = Arc::new(Mutex::new(Inner {
            lifetime: 86_399,
            rate_limit: 300,
            login_window: Duration::from_secs(60),
            api_limit: 300,
            api_window: Duration::from_secs(60),
            ..Inner::default()
        }));
        let faults = Faults::default();
        let app = App {
            state: Arc::clone(&state),
            faults: faults.clone(),
        };
        let router = Router::new()
            .route("/oauth/token", post(token))
            .route("/api/v2/organizations/me", get(organizations_me))
            .route(
                "/api/v2/authorization/products",
                get(authorization_products),
            )
            .route("/api/v2/tokens/me", get(tokens_me).delete(revoke_me))
            .with_state(app);
        GenesysStandin {
            server: Server::start(router),
            state,
            faults,
        }
    }

    /// The base URL (serves both `/oauth/token` and `/api/v2/...`).
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Registers an OAuth client of organization `org_id`.
    pub fn add_client(&self, id: &str, secret: &str, org_id: &str) {
        self.insert_client(id, secret, org_id, true);
    }

    /// Registers an OAuth client without the client-credentials grant (a code or implicit
    /// grant client): its token requests get 400 `unauthorized_client`.
    pub fn add_client_without_grant(&self, id: &str, secret: &str, org_id: &str) {
        self.insert_client(id, secret, org_id, false);
    }

    fn insert_client(&self, id: &str, secret: &str, org_id: &str, client_credentials: bool) {
        self.lock().clients.insert(
            id.to_owned(),
            Client {
                secret: secret.to_owned(),
                org_id: org_id.to_owned(),
                client_credentials,
            },
        );
    }

    /// Sets the API calls allowed per token within `window` (Genesys: 300 a minute), e.g. to
    /// measure throughput on a faster clock.
    pub fn set_api_limit(&self, calls: usize, window: Duration) {
        let mut st = self.lock();
        st.api_limit = calls;
        st.api_window = window;
    }

    /// API calls answered 429 so far.
    pub fn throttled_calls(&self) -> usize {
        self.lock().throttled
    }

    /// Sets the tokens one client may create a minute (Genesys: 300), e.g. for benchmarks
    /// that mint more than that on purpose.
    pub fn set_rate_limit(&self, per_minute: usize) {
        self.set_rate_limit_window(per_minute, Duration::from_secs(60));
    }

    /// Sets the tokens one client may create within a rolling `window` (Genesys: 300 in 60 s),
    /// e.g. to simulate a fleet on a faster clock.
    pub fn set_rate_limit_window(&self, tokens: usize, window: Duration) {
        let mut st = self.lock();
        st.rate_limit = tokens;
        st.login_window = window;
    }

    /// Token requests of `client_id` refused with the login rate limit so far.
    pub fn rate_limited(&self, client_id: &str) -> usize {
        self.lock()
            .rate_limited
            .get(client_id)
            .copied()
            .unwrap_or(0)
    }

    /// Sets the lifetime of tokens minted from now on.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.lock().lifetime = secs;
    }

    /// Serves `fault` instead of the next answer on `route`.
    pub fn push_fault(&self, route: &'static str, fault: Fault) {
        self.faults.push(route, fault);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().expect("stand-in state")
    }

    /// Token requests that named `client_id` (failed ones included).
    pub fn token_requests(&self, client_id: &str) -> usize {
        self.lock().requests.get(client_id).map_or(0, Vec::len)
    }

    /// Tokens minted for `client_id`.
    pub fn tokens_issued(&self, client_id: &str) -> usize {
        self.lock()
            .tokens
            .values()
            .filter(|t| t.client_id == client_id)
            .count()
    }

    /// Tokens of `client_id` that are neither revoked nor expired.
    pub fn live_tokens(&self, client_id: &str) -> usize {
        let now = Instant::now();
        self.lock()
            .tokens
            .values()
            .filter(|t| t.client_id == client_id && !t.revoked && t.expires > now)
            .count()
    }

    /// Consumer API calls (`GET /api/v2/organizations/me`) with a valid token of `client_id`;
    /// the provider's own introspection and revocation calls are not counted.
    pub fn valid_calls(&self, client_id: &str) -> usize {
        self.lock().valid_calls.get(client_id).copied().unwrap_or(0)
    }

    /// API calls made with a missing, unknown, revoked or expired token.
    pub fn invalid_calls(&self) -> usize {
        self.lock().invalid_calls
    }

    /// Revocations of tokens of `client_id`.
    pub fn revocations(&self, client_id: &str) -> usize {
        self.lock().revocations.get(client_id).copied().unwrap_or(0)
    }

    /// Every token minted so far (for leak checks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }
}

/// A fault to make the next token request fail with `invalid_client`.
pub fn invalid_client() -> Fault {
    Fault::Status(
        401,
        json!({"error": "invalid_client", "description": "authentication failed", "error_description": "authentication failed"}),
    )
}
