//! `/healthz`, `/readyz` and `/metrics` (Prometheus, through `prometheus-client`) on a
//! listener that caps concurrent connections and drops idle or slow ones.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::worker::{BlockState, FailureKind};
use ccsecrets_core::store::holding::HoldingStore;

/// Connections served at once; more are closed as soon as they are accepted.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole connection (one request: no keep-alive) ends after this.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BlockLabel {
    block: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabel {
    block: String,
    kind: FailureKind,
}

/// Every block's state and the metrics registry over it.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) blocks: Vec<Arc<BlockState>>,
    store: Arc<HoldingStore>,
    registry: Registry,
    ready: Family<BlockLabel, Gauge>,
    expiry: Family<BlockLabel, Gauge>,
    reachable: Gauge,
}

impl Agent {
    /// The blocks titled `titles`, their counters registered.
    pub(crate) fn new(titles: Vec<String>, store: Arc<HoldingStore>) -> Self {
        let mut registry = Registry::default();
        let mints = Family::<BlockLabel, Counter>::default();
        let revocations = Family::<BlockLabel, Counter>::default();
        let failures = Family::<FailureLabel, Counter>::default();
        let ready = Family::<BlockLabel, Gauge>::default();
        let expiry = Family::<BlockLabel, Gauge>::default();
        let reachable = Gauge::default();
        registry.register(
            "ccsecrets_token_expiry_seconds",
            "Seconds until the token in the block's sinks expires (0 when there is none)",
            expiry.clone(),
        );
        registry.register(
            "ccsecrets_ready",
            "1 when the block's sinks hold a valid token",
            ready.clone(),
        );
        registry.register("ccsecrets_mints", "Tokens minted", mints.clone());
        registry.register(
            "ccsecrets_revocations",
            "Replaced tokens revoked",
            revocations.clone(),
        );
        registry.register(
            "ccsecrets_failures",
            "Failures, by what failed: store, platform, sink_write, worker_exit",
            failures.clone(),
        );
        registry.register(
            "ccsecrets_store_reachable",
            "1 when the last store read succeeded",
            reachable.clone(),
        );
        let blocks = titles
            .into_iter()
            .map(|title| {
                let l = BlockLabel {
                    block: title.clone(),
                };
                let f = |kind| {
                    failures
                        .get_or_create(&FailureLabel {
                            block: title.clone(),
                            kind,
                        })
                        .clone()
                };
                let fails = FailureKind::ALL.map(f);
                let _ = ready.get_or_create(&l);
                let _ = expiry.get_or_create(&l);
                Arc::new(BlockState::new(
                    title.clone(),
                    mints.get_or_create(&l).clone(),
                    revocations.get_or_create(&l).clone(),
                    fails,
                ))
            })
            .collect();
        Agent {
            blocks,
            store,
            registry,
            ready,
            expiry,
            reachable,
        }
    }

    /// Whether every block's sinks hold a valid token.
    pub(crate) fn ready(&self) -> bool {
        self.blocks.iter().all(|b| b.ready())
    }

    /// The OpenMetrics text. Names, counts and times only: never a value.
    pub(crate) fn metrics(&self) -> String {
        for b in &self.blocks {
            let l = BlockLabel {
                block: b.title.clone(),
            };
            self.ready.get_or_create(&l).set(i64::from(b.ready()));
            self.expiry.get_or_create(&l).set(b.expiry_seconds());
        }
        self.reachable.set(i64::from(self.store.reachable()));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn answer(agent: &Agent, path: &str) -> Response<Full<Bytes>> {
    let (status, kind, body) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if agent.ready() => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_owned(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            agent.metrics(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Serves until `stop`: at most [`MAX_CONNECTIONS`] at once, each for one request, idle or
/// slow ones dropped.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    agent: Arc<Agent>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, or the peer gave up: wait a little, keep serving.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (agent, stop) = (Arc::clone(&agent), stop.clone());
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let r = answer(&agent, req.uri().path());
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn) => {}
                () = stop.cancelled() => {}
            }
            drop(slot);
        });
    }
}
