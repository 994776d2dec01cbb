//! A NICE CXone stand-in: the password grant at `/auth/token` (registered application in Basic
//! auth, access key as username/password, strictly form-encoded), JWT access tokens carrying
//! `tenantId`, the cxone-configuration discovery document, and an API call to prove use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use crate::standin::{Fault, Faults, Server, basic_auth, bearer, random_token, strict_form};

/// Routes faults can be scripted on.
pub mod route {
    /// `POST /auth/token`
    pub const TOKEN: &str = "token";
    /// `GET /.well-known/cxone-configuration`
    pub const DISCOVERY: &str = "discovery";
}

#[derive(Debug, Clone)]
struct AccessKey {
    secret: String,
    tenant_id: String,
}

#[derive(Debug, Default)]
struct Inner {
    apps: HashMap<String, String>,
    keys: HashMap<String, AccessKey>,
    tokens: HashMap<String, (String, Instant)>,
    requests: HashMap<String, usize>,
    valid_calls: HashMap<String, usize>,
    invalid_calls: usize,
}

/// The stand-in; stops when dropped.
#[derive(Debug)]
pub struct CxoneStandin {
    server: Server,
    state: Arc<Mutex<Inner>>,
    faults: Faults,
}

#[derive(Clone)]
struct App {
    state: Arc<Mutex<Inner>>,
    faults: Faults,
    url: Arc<Mutex<String>>,
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "errorDescription": description})),
    )
        .into_response()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn jwt(claims: &Value) -> String {
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_token(32));
    format!(
        "{}.{}.{sig}",
        b64(&json!({"alg": "RS256", "typ": "JWT", "kid": "standin"})),
        b64(claims)
    )
}

async fn token(
    State(app): State<App>,
    version: axum::http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Reported of the real endpoint: `/auth/token` fails over HTTP/2.
    if version != axum::http::Version::HTTP_11 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "HTTP/1.1 is required",
        );
    }
    let form = strict_form(&body);
    if let Some(user) = form.as_ref().ok().and_then(|f| f.get("username")) {
        *app.state
            .lock()
            .expect("state")
            .requests
            .entry(user.clone())
            .or_default() += 1;
    }
    if let Some(r) = app.faults.apply(route::TOKEN).await {
        return r;
    }
    let form = match form {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let client = basic_auth(&headers).or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    let st = app.state.lock().expect("state");
    match client {
        Some((id, secret)) if st.apps.get(&id) == Some(&secret) => {}
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed",
            );
        }
    }
    if form.get("grant_type").map(String::as_str) != Some("password") {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Grant type is not supported",
        );
    }
    let (Some(user), Some(pass)) = (form.get("username"), form.get("password")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "username and password are required",
        );
    };
    let key = match st.keys.get(user) {
        Some(k) if &k.secret == pass => k.clone(),
        // Reported of the real service: a bad access key is 401 invalid_grant (a 400 is also
        // seen; scripts push that as a fault).
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "Invalid access key",
            );
        }
    };
    drop(st);
    let issuer = app.url.lock().expect("url").clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = json!({
        "iss": issuer, "sub": format!("user:{user}"), "aud": "standin-app", "iat": now, "exp": now + 3600,
        "tenantId": key.tenant_id, "tenant": "standin", "area": "na1", "icBUId": 4600001, "icClusterId": "B32", "icDomain": "niceincontact.com"
    });
    let access = jwt(&claims);
    app.state.lock().expect("state").tokens.insert(
        access.clone(),
        (user.clone(), Instant::now() + Duration::from_secs(3600)),
    );
    axum::Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": jwt(&json!({"typ": "refresh", "tenantId": key.tenant_id})),
        "id_token": jwt(&claims),
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"
    }))
    .into_response()
}

async fn discovery(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(r) = app.faults.apply(route::DISCOVERY).await {
        return r;
    }
    let Some(tenant) = q.get("tenantId") else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "tenantId is required",
        );
    };
    let known = app
        .state
        .lock()
        .expect("state")
        .keys
        .values()
        .any(|k| &k.tenant_id == tenant);
    if !known {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "tenant not found"})),
        )
            .into_response();
    }
    let url = app.url.lock().expect("url").clone();
    axum::Json(json!({
        "private": false, "area": "na1", "cluster": "B32", "domain": "niceincontact.com",
        "acdDomain": "nice-incontact.com", "uhDomain": "nice-incontact.com",
        "ui_endpoint": url, "auth_endpoint": url, "api_endpoint": url, "tenantId": tenant
    }))
    .into_response()
}

async fn server_time(State(app): State<App>, headers: HeaderMap) -> Response {
    let mut st = app.state.lock().expect("state");
    let found = bearer(&headers).and_then(|t| st.tokens.get(&t).cloned());
    match found {
        Some((user, exp)) if exp > Instant::now() => {
            *st.valid_calls.entry(user).or_default() += 1;
            axum::Json(json!({"ServerTime": "2026-11-25T00:00:00.000Z"})).into_response()
        }
        _ => {
            st.invalid_calls += 1;
            error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is invalid or expired",
            )
        }
    }
}

impl CxoneStandin {
    /// Starts the stand-in with no applications or access keys.
    pub fn start() -> CxoneStandin {
        let state = Arc::new(Mutex::new(Inner::default()));
        let faults = Faults::default();
        let url = Arc::new(Mutex::new(String::new()));
        let app = App {
            state: Arc::clone(&state),
            faults: faults.clone(),
            url: Arc::clone(&url),
        };
        let router = Router::new()
            .route("/auth/token", post(token))
            .route("/.well-known/cxone-configuration", get(discovery))
            .route("/inContactAPI/services/v25.0/server-time", get(server_time))
            .with_state(app);
        let server = Server::start(router);
        *url.lock().expect("url") = server.url().to_owned();
        CxoneStandin {
            server,
            state,
            faults,
        }
    }

    /// The issuer URL.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Registers an application (client credentials).
    pub fn add_app(&self, client_id: &str, client_secret: &str) {
        self.lock()
            .apps
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    /// Registers an access key of `tenant_id`.
    pub fn add_access_key(&self, id: &str, secret: &str, tenant_id: &str) {
        self.lock().keys.insert(
            id.to_owned(),
            AccessKey {
                secret: secret.to_owned(),
                tenant_id: tenant_id.to_owned(),
            },
        );
    }

    /// Serves `fault` instead of the next answer on `route`.
    pub fn push_fault(&self, route: &'static str, fault: Fault) {
        self.faults.push(route, fault);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().expect("stand-in state")
    }

    /// Token requests for access key `id`.
    pub fn token_requests(&self, id: &str) -> usize {
        self.lock().requests.get(id).copied().unwrap_or(0)
    }

    /// API calls with a valid token of access key `id`.
    pub fn valid_calls(&self, id: &str) -> usize {
        self.lock().valid_calls.get(id).copied().unwrap_or(0)
    }

    /// API calls with a bad token.
    pub fn invalid_calls(&self) -> usize {
        self.lock().invalid_calls
    }

    /// Every token minted so far (for leak checks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }
}
