//! A Kubernetes TokenReview stand-in for OpenBao's `kubernetes` auth method: it vouches for the
//! service-account tokens registered in it and rejects every other, recording each review.
//! Plus service-account-shaped JWTs (OpenBao reads their claims but does not check the
//! signature: the TokenReview answer is what counts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::jwt::{JwtSigner, now};
use crate::standin::{Server, bearer};

/// The path OpenBao posts reviews to.
pub const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// The audience of a projected service-account token (and so of the review OpenBao sends).
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc";

/// A service account the stand-in vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid (must match the token's uid claim).
    pub uid: String,
}

impl ServiceAccount {
    /// A service account with a random uid.
    pub fn new(namespace: &str, name: &str) -> ServiceAccount {
        ServiceAccount {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: crate::standin::uuid_v4(),
        }
    }

    /// `system:serviceaccount:<namespace>:<name>`.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// A projected service-account token for this account (audience
    /// `https://kubernetes.default.svc`, valid for an hour), signed by a throwaway key.
    pub fn token(&self) -> String {
        let now = now();
        JwtSigner::new().sign(&json!({
            "aud": [DEFAULT_AUDIENCE],
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "kubernetes.io": {
                "namespace": self.namespace,
                "serviceaccount": {"name": self.name, "uid": self.uid},
            },
            "sub": self.username(),
        }))
    }
}

/// One TokenReview the stand-in answered.
#[derive(Debug, Clone)]
pub struct Review {
    /// `spec.token`.
    pub token: String,
    /// `spec.audiences` (empty when absent).
    pub audiences: Vec<String>,
    /// The bearer token the reviewer authenticated with.
    pub bearer: Option<String>,
    /// The account it vouched for, `None` when it answered `authenticated: false`.
    pub account: Option<ServiceAccount>,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: HashMap<String, ServiceAccount>,
    reviews: Vec<Review>,
}

/// The stand-in; stops when dropped.
#[derive(Debug)]
pub struct KubeStandin {
    server: Server,
    state: Arc<Mutex<Inner>>,
}

async fn token_review(
    State(state): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "message": "the body is not a TokenReview", "reason": "BadRequest", "code": 400})),
        )
            .into_response();
    };
    let token = req["spec"]["token"].as_str().unwrap_or_default().to_owned();
    let audiences: Vec<String> = req["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut st = state.lock().expect("stand-in state");
    let account = st.tokens.get(&token).cloned();
    st.reviews.push(Review {
        token,
        audiences: audiences.clone(),
        bearer: bearer(&headers),
        account: account.clone(),
    });
    let status = match account {
        Some(sa) => {
            let mut s = json!({
                "authenticated": true,
                "user": {
                    "username": sa.username(),
                    "uid": sa.uid,
                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", sa.namespace), "system:authenticated"],
                },
            });
            // OpenBao insists that the review echoes the audiences it asked about.
            if !audiences.is_empty() {
                s["audiences"] = json!(audiences);
            }
            s
        }
        None => json!({
            "authenticated": false,
            "user": {},
            "error": "[invalid bearer token, token lookup failed]",
        }),
    };
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": req["spec"],
            "status": status,
        })),
    )
        .into_response()
}

impl KubeStandin {
    /// Starts a stand-in that knows no tokens.
    pub fn start() -> KubeStandin {
        let state = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route(TOKEN_REVIEW_PATH, post(token_review))
            .with_state(Arc::clone(&state));
        KubeStandin {
            server: Server::start(router),
            state,
        }
    }

    /// The API server URL, for `kubernetes_host`.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Makes a token for `account` and vouches for it; returns the token.
    pub fn issue(&self, account: &ServiceAccount) -> String {
        let token = account.token();
        self.lock().tokens.insert(token.clone(), account.clone());
        token
    }

    /// Stops vouching for `token` (as when its pod is deleted).
    pub fn invalidate(&self, token: &str) {
        self.lock().tokens.remove(token);
    }

    /// Every review answered so far, oldest first.
    pub fn reviews(&self) -> Vec<Review> {
        self.lock().reviews.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().expect("stand-in state")
    }
}
