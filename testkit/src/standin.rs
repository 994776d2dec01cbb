//! What the platform stand-ins share: an HTTP server on a loopback port, run on its own thread,
//! and scripted faults that replace the next answers of a route.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A fault to serve instead of the next normal answer on a route.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Any status with a JSON body.
    Status(u16, Value),
    /// HTTP 500 with a Genesys-style error body.
    ServerError,
    /// Genesys's login throttle: HTTP 400 `invalid_request`, "rate limit exceeded; ...".
    LoginRateLimit,
    /// HTTP 429 with `Retry-After: <seconds>`, Genesys's normalized body.
    TooManyRequests {
        /// Seconds to announce.
        retry_after: u64,
    },
    /// Answer normally, but only after this delay.
    Delay(Duration),
    /// HTTP 200 whose body is not JSON.
    Malformed,
    /// Send the headers and part of the body, then drop the connection.
    Reset,
    /// HTTP 200 with a body of this many bytes, streamed without a length (a hostile or broken
    /// server that never stops talking).
    Huge(usize),
}

impl Fault {
    /// The response for a fault that replaces the answer (`Delay` returns `None`).
    pub(crate) fn response(&self) -> Option<Response> {
        Some(match self {
            Fault::Status(code, body) => {
                (StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body.clone())).into_response()
            }
            Fault::ServerError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"message": "The server encountered an internal error", "code": "internal.server.error", "status": 500})),
            )
                .into_response(),
            Fault::LoginRateLimit => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "error": "invalid_request",
                    "description": "rate limit exceeded; please wait before retrying",
                    "error_description": "rate limit exceeded; please wait before retrying"
                })),
            )
                .into_response(),
            Fault::TooManyRequests { retry_after } => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({
                        "message": format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"),
                        "code": "too.many.requests.retry.after",
                        "status": 429,
                        "contextId": "standin",
                        "details": [],
                        "errors": []
                    })),
                )
                    .into_response();
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                r
            }
            Fault::Delay(_) => return None,
            Fault::Malformed => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"access_token\": <html>oops").into_response(),
            Fault::Huge(len) => {
                let chunk = Bytes::from(vec![b' '; 64 * 1024]);
                let (full, rest) = (len / chunk.len(), len % chunk.len());
                let mut chunks: Vec<Result<Bytes, std::io::Error>> =
                    std::iter::repeat_with(|| Ok(chunk.clone())).take(full).collect();
                chunks.push(Ok(chunk.slice(..rest)));
                let mut r = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
            Fault::Reset => {
                // Announce 4 KiB, send 16 bytes, then fail the body: the server aborts the
                // connection mid-response.
                let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::from_static(b"{\"access_token\":")),
                    Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "stand-in reset")),
                ];
                let mut r = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(4096));
                r
            }
        })
    }
}

/// Scripted faults per route, served first-in first-out.
#[derive(Debug, Default, Clone)]
pub(crate) struct Faults(Arc<Mutex<HashMap<&'static str, VecDeque<Fault>>>>);

impl Faults {
    pub(crate) fn push(&self, route: &'static str, fault: Fault) {
        self.0
            .lock()
            .expect("faults")
            .entry(route)
            .or_default()
            .push_back(fault);
    }

    /// Applies the next fault of `route`: `Some(response)` replaces the answer; a delay is
    /// slept here and the normal answer follows.
    pub(crate) async fn apply(&self, route: &'static str) -> Option<Response> {
        let next = self
            .0
            .lock()
            .expect("faults")
            .get_mut(route)
            .and_then(VecDeque::pop_front);
        match next {
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                None
            }
            Some(f) => f.response(),
            None => None,
        }
    }
}

/// An HTTP server on `127.0.0.1:<free port>` running on its own thread; stops when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A random version-4 UUID in its lowercase text form (request ids, object ids, tenants).
pub(crate) fn uuid_v4() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        8 + fastrand::u8(..4),
        fastrand::u16(..0x1000),
        fastrand::u64(..1 << 48)
    )
}

/// A non-blocking listener on a free loopback port.
pub(crate) fn loopback_listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.set_nonblocking(true).expect("nonblocking");
    listener
}

impl Server {
    /// Serves `app` over plain HTTP on a free loopback port, at `http://127.0.0.1:<port>`.
    /// Stops gracefully when dropped.
    pub(crate) fn start(app: axum::Router) -> Server {
        Self::serve(loopback_listener(), app, None)
    }

    /// [`Server::start`] over TLS with `tls`, at `https://localhost:<port>`.
    pub(crate) fn start_tls(
        app: axum::Router,
        tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> Server {
        Self::serve(loopback_listener(), app, Some(tls))
    }

    /// Serves `app` on `listener` (non-blocking), over TLS when `tls` is given. A TLS server
    /// stops without waiting for open connections: clients keep pooled ones, and a stand-in
    /// dropped inside a current-thread runtime would block the very thread that closes them.
    pub(crate) fn serve(
        listener: std::net::TcpListener,
        app: axum::Router,
        tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Server {
        let addr = listener.local_addr().expect("local addr");
        let url = match tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("stand-in runtime");
            rt.block_on(async move {
                let tcp = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                match tls {
                    None => {
                        let _ = axum::serve(tcp, app)
                            .with_graceful_shutdown(async {
                                let _ = rx.await;
                            })
                            .await;
                    }
                    Some(tls) => {
                        let listener = crate::tls::TlsListener::new(
                            tcp,
                            tokio_rustls::TlsAcceptor::from(tls),
                        );
                        tokio::select! {
                            _ = std::future::IntoFuture::into_future(axum::serve(listener, app)) => {}
                            _ = rx => {}
                        }
                    }
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Server {
            url,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `Basic` credentials of a request, decoded.
pub(crate) fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = raw
        .strip_prefix("Basic ")
        .or_else(|| raw.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The bearer token of a request.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    raw.strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .map(|t| t.trim().to_owned())
}

/// A random token-like string.
pub(crate) fn random_token(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(len)
        .collect()
}

/// Decodes an `application/x-www-form-urlencoded` body strictly: a raw `=` inside a value
/// (an unencoded access key ending in `==`) is refused, as a strict server would.
pub(crate) fn strict_form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_owned())?;
    let mut out = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("malformed pair {pair:?}"))?;
        if v.contains('=') {
            return Err(format!("unencoded '=' in the value of {k:?}"));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        out.insert(decode(k), decode(v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_form_decodes_and_refuses_raw_equals() {
        let f = strict_form(b"grant_type=password&username=AK%3D%3D&password=a%2Bb%2Fc").unwrap();
        assert_eq!(f["username"], "AK==");
        assert_eq!(f["password"], "a+b/c");
        assert!(
            strict_form(b"username=AK==")
                .unwrap_err()
                .contains("unencoded")
        );
    }
}
