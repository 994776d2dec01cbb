//! `ccsecrets agent`: keeps every block's sinks holding a valid token for running services.
//! Mints, writes each sink atomically, refreshes at two thirds of the token's life (with
//! jitter), retires the replaced token after a grace period, keeps minting from the credential
//! read last while the store is down, never leaves an expired token in a sink, and on stop
//! revokes what it minted and removes its files.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ccsecrets_core::mint::Output;
use ccsecrets_core::store::holding::HoldingStore;
use ccsecrets_core::{Core, Field, Problem};
use nix::sys::signal::Signal;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::config::{BlockKind, Config, Located, TokenBlock};
use crate::exec::{EnvValue, Handover};
use crate::open::{self, Opened};

/// How long the agent may take to revoke and clean up once told to stop.
const STOP_BUDGET: Duration = Duration::from_secs(4);
/// A sink is emptied this long before its token expires when no fresh one could be had.
const EXPIRY_MARGIN: Duration = Duration::from_secs(1);
/// Longest wait between attempts after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The `agent` block, checked.
#[derive(Debug, Clone)]
pub(crate) struct AgentSettings {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) grace: Duration,
    pub(crate) reread: Duration,
    pub(crate) reload: Option<Signal>,
}

/// How a sink's file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Token,
    Json,
    Env,
}

/// One file kept holding a valid token.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    pub(crate) mode: u32,
}

/// Reads and checks the `agent` block and every block's sinks.
pub(crate) fn settings(config: &Config) -> Result<(AgentSettings, Vec<Vec<Sink>>), Vec<Located>> {
    let mut problems = Vec::new();
    let raw = config.agent.clone().unwrap_or_default();
    let at = |name: &str, p: Problem| config.locate(p.at(Field::root("agent").attr(name)));
    let listen = match raw.get("listen").and_then(Value::as_str) {
        None => None,
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                problems.push(at(
                    "listen",
                    Problem::error("Invalid listen", format!("`listen` must be an address and port, e.g. \"127.0.0.1:8765\"; {a:?} is not.")),
                ));
                None
            }
        },
    };
    let seconds = |name: &str, default: u64, problems: &mut Vec<Located>| match raw.get(name) {
        None => Duration::from_secs(default),
        Some(v) => match v.as_u64().filter(|s| (1..=86_400).contains(s)) {
            Some(s) => Duration::from_secs(s),
            None => {
                problems.push(at(
                    name,
                    Problem::error(
                        format!("Invalid {name}"),
                        format!("`{name}` must be a whole number of seconds from 1 to 86400."),
                    ),
                ));
                Duration::from_secs(default)
            }
        },
    };
    let grace = seconds("revoke_grace_seconds", 60, &mut problems);
    let reread = seconds("reread_seconds", 300, &mut problems);
    let reload = match raw.get("reload_signal").and_then(Value::as_str) {
        None => None,
        Some(name) => {
            let upper = name.trim().to_ascii_uppercase();
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            match full.parse::<Signal>() {
                Ok(sig) if !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) => Some(sig),
                _ => {
                    problems.push(at(
                        "reload_signal",
                        Problem::error(
                            "Invalid reload_signal",
                            format!(
                                "{name:?} is not a signal a command can handle, e.g. \"SIGHUP\"."
                            ),
                        ),
                    ));
                    None
                }
            }
        }
    };
    let mut all = Vec::new();
    let mut seen: BTreeMap<PathBuf, String> = BTreeMap::new();
    for b in &config.blocks {
        let mut sinks = Vec::new();
        for (raw, line) in &b.sinks {
            let here = |p: Problem| {
                let mut l = b.locate(p);
                if let Some(place) = l.place.as_mut() {
                    place.line = *line;
                }
                l
            };
            let file = raw.get("file").and_then(Value::as_str).unwrap_or_default();
            let format = match raw.get("format").and_then(Value::as_str).unwrap_or("token") {
                "token" if b.kind != BlockKind::VaultSecret => Format::Token,
                "json" => Format::Json,
                "env" => Format::Env,
                other => {
                    problems.push(here(
                        Problem::error("Invalid format", format!("`format` is \"token\" (token blocks only), \"json\" or \"env\"; not {other:?}."))
                            .at(Field::root("sink").attr("format")),
                    ));
                    continue;
                }
            };
            let mode = match u32::from_str_radix(
                raw.get("mode")
                    .and_then(Value::as_str)
                    .unwrap_or("0400")
                    .trim_start_matches("0o"),
                8,
            ) {
                Ok(m) if m <= 0o777 && m & 0o002 == 0 => m,
                _ => {
                    problems.push(here(
                        Problem::error("Invalid mode", "`mode` is octal permissions that others may not write, e.g. \"0400\" or \"0440\".")
                            .at(Field::root("sink").attr("mode")),
                    ));
                    continue;
                }
            };
            let path = PathBuf::from(file);
            if let Some(first) = seen.insert(path.clone(), b.title()) {
                problems.push(here(
                    Problem::error(
                        "Two sinks write one file",
                        format!("{first} already writes {file:?}."),
                    )
                    .at(Field::root("sink").attr("file")),
                ));
                continue;
            }
            sinks.push(Sink { path, format, mode });
        }
        all.push(sinks);
    }
    if problems.is_empty() {
        Ok((
            AgentSettings {
                listen,
                grace,
                reread,
                reload,
            },
            all,
        ))
    } else {
        Err(problems)
    }
}

/// What one block's worker reports, for readiness, metrics and the supervised command.
#[derive(Debug, Default)]
pub(crate) struct BlockState {
    pub(crate) title: String,
    pub(crate) ready: AtomicBool,
    pub(crate) expires_at: Mutex<Option<SystemTime>>,
    pub(crate) mints: AtomicU64,
    pub(crate) revocations: AtomicU64,
    pub(crate) store_failures: AtomicU64,
    pub(crate) platform_failures: AtomicU64,
    pub(crate) env: Mutex<Vec<(String, EnvValue)>>,
}

/// Every worker's state, and the store's.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) blocks: Vec<Arc<BlockState>>,
    pub(crate) store: Arc<HoldingStore>,
}

impl Agent {
    pub(crate) fn ready(&self) -> bool {
        self.blocks.iter().all(|b| b.ready.load(Ordering::SeqCst))
    }

    /// The Prometheus text exposition. Names, counts and times only: never a value.
    pub(crate) fn metrics(&self) -> String {
        let now = SystemTime::now();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in rows {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        let per = |f: &dyn Fn(&BlockState) -> f64| -> Vec<(String, f64)> {
            self.blocks
                .iter()
                .map(|b| (format!("{{block=\"{}\"}}", b.title.replace('"', "'")), f(b)))
                .collect()
        };
        family(
            "ccsecrets_token_expiry_seconds",
            "gauge",
            "Seconds until the token in the block's sinks expires (0 when there is none).",
            per(&|b| {
                b.expires_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .and_then(|at| at.duration_since(now).ok())
                    .map_or(0.0, |d| d.as_secs_f64().floor())
            }),
        );
        family(
            "ccsecrets_ready",
            "gauge",
            "1 when the block's sinks hold a valid token.",
            per(&|b| f64::from(u8::from(b.ready.load(Ordering::SeqCst)))),
        );
        family(
            "ccsecrets_mints_total",
            "counter",
            "Tokens minted.",
            per(&|b| b.mints.load(Ordering::SeqCst) as f64),
        );
        family(
            "ccsecrets_revocations_total",
            "counter",
            "Replaced tokens revoked.",
            per(&|b| b.revocations.load(Ordering::SeqCst) as f64),
        );
        let failures: Vec<(String, f64)> = self
            .blocks
            .iter()
            .flat_map(|b| {
                let t = b.title.replace('"', "'");
                [
                    (
                        format!("{{block=\"{t}\",kind=\"store\"}}"),
                        b.store_failures.load(Ordering::SeqCst) as f64,
                    ),
                    (
                        format!("{{block=\"{t}\",kind=\"platform\"}}"),
                        b.platform_failures.load(Ordering::SeqCst) as f64,
                    ),
                ]
            })
            .collect();
        family(
            "ccsecrets_failures_total",
            "counter",
            "Failed refreshes, by what failed.",
            failures,
        );
        family(
            "ccsecrets_store_reachable",
            "gauge",
            "1 when the last store read succeeded.",
            vec![(String::new(), f64::from(u8::from(self.store.reachable())))],
        );
        out
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, created with
/// `mode`, synced, then renamed over the target (a reader sees the old or the new file, never
/// a partial one).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.ccsecrets-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits away: the mode asked for is the mode set.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn output_json(o: &Output) -> Value {
    match o {
        Output::Null => Value::Null,
        Output::Text(t) => Value::String(t.clone()),
        Output::Secret(s) => Value::String(s.expose_secret().to_owned()),
        Output::Number(n) => Value::from(*n),
        Output::Bool(b) => Value::Bool(*b),
        Output::Map(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), output_json(v))).collect())
        }
    }
}

/// A sink's bytes (zeroed when dropped).
pub(crate) fn render(
    format: Format,
    opened: &Opened,
    env: &[(String, EnvValue)],
) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(match format {
        Format::Token => match opened.field("access_token") {
            Some(Output::Secret(s)) => s.expose_secret().as_bytes().to_vec(),
            _ => Vec::new(),
        },
        Format::Json => {
            let obj: serde_json::Map<String, Value> = opened
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), output_json(v)))
                .collect();
            let mut v = serde_json::to_vec_pretty(&Value::Object(obj)).unwrap_or_default();
            v.push(b'\n');
            v
        }
        Format::Env => env
            .iter()
            .flat_map(|(k, v)| {
                let value = match v {
                    EnvValue::Plain(p) => p.clone(),
                    EnvValue::Secret(s) => s.expose_secret().to_owned(),
                };
                format!("{k}={value}\n").into_bytes()
            })
            .collect(),
    })
}

fn log(title: &str, what: &str) {
    eprintln!("ccsecrets agent: {title}: {what}");
}

fn remove_sinks(sinks: &[Sink]) {
    for s in sinks {
        let _ = std::fs::remove_file(&s.path);
    }
}

/// One block, until `stop`: mint, write, wait, refresh; failures back off and never leave an
/// expired token in a sink.
#[allow(clippy::too_many_arguments)] // one worker's whole world, spawned once per block
pub(crate) async fn worker(
    core: Core,
    block: TokenBlock,
    sinks: Vec<Sink>,
    state: Arc<BlockState>,
    settings: AgentSettings,
    store: Arc<HoldingStore>,
    refreshed: tokio::sync::mpsc::UnboundedSender<()>,
    stop: CancellationToken,
) {
    let title = block.title();
    // (lease, when the sinks must be emptied, secret version) of the token in the sinks.
    let mut current: Option<(u64, SystemTime, String)> = None;
    let mut next_refresh = Duration::ZERO;
    let mut backoff = Duration::from_secs(1);
    let mut last_read = tokio::time::Instant::now();
    // Empties the sinks when their token is about to expire with no successor.
    let expire = |current: &mut Option<(u64, SystemTime, String)>| {
        remove_sinks(&sinks);
        state.ready.store(false, Ordering::SeqCst);
        *state
            .expires_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        log(
            &title,
            "the token expires before a new one could be had; sinks removed",
        );
        *current = None;
    };
    let until = |at: Option<SystemTime>| {
        at.map_or(Duration::MAX, |at| {
            at.duration_since(SystemTime::now()).unwrap_or_default()
        })
    };
    loop {
        // Every refresh reads the store again (a rotation is picked up; when the store is
        // down, the credential read last is used).
        core.store.forget_reads();
        let open = open::open_with(&core, &block, true);
        tokio::pin!(open);
        let result = loop {
            let deadline = current.as_ref().map(|(_, d, _)| *d);
            tokio::select! {
                r = &mut open => break r,
                () = tokio::time::sleep(until(deadline)), if deadline.is_some() => expire(&mut current),
                () = stop.cancelled() => return,
            }
        };
        let ok = match result {
            Ok(opened) => {
                last_read = tokio::time::Instant::now();
                let env = crate::exec::handover(
                    std::slice::from_ref(&block),
                    std::slice::from_ref(&opened),
                );
                let env: Vec<(String, EnvValue)> = env.set.into_iter().collect();
                let mut written = 0;
                for s in &sinks {
                    match write_atomic(&s.path, &render(s.format, &opened, &env), s.mode) {
                        Ok(()) => written += 1,
                        Err(e) => log(&title, &format!("cannot write {}: {e}", s.path.display())),
                    }
                }
                let expires = opened
                    .expires_at
                    .unwrap_or_else(|| SystemTime::now() + settings.reread);
                *state
                    .env
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = env;
                *state
                    .expires_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = opened.expires_at;
                state.mints.fetch_add(1, Ordering::SeqCst);
                state.ready.store(written == sinks.len(), Ordering::SeqCst);
                log(
                    &title,
                    &format!(
                        "new token from version {}, valid until {}; {written} sink(s) written",
                        opened.version,
                        ccsecrets_core::platform::rfc3339(expires)
                    ),
                );
                for w in &opened.warnings {
                    log(&title, &w.problem.to_string());
                }
                // Emptied shortly before expiry (a tenth of a short life), refreshed at two
                // thirds of it (±10%, so replicas do not mint in step).
                let life = until(Some(expires));
                let deadline = expires - EXPIRY_MARGIN.min(life / 10);
                next_refresh = life.mul_f64(2.0 / 3.0 * (0.9 + 0.2 * fastrand::f64()));
                let previous =
                    current.replace((opened.lease.unwrap_or(0), deadline, opened.version));
                if let (Some((lease, _, _)), Some(_)) = (previous, opened.lease) {
                    retire(&core, block.kind, lease, &settings, &state, &stop, &title);
                }
                let _ = refreshed.send(());
                true
            }
            Err(problems) => {
                if store.reachable() {
                    state.platform_failures.fetch_add(1, Ordering::SeqCst);
                } else {
                    state.store_failures.fetch_add(1, Ordering::SeqCst);
                }
                for p in &problems {
                    log(&title, &p.problem.to_string());
                }
                false
            }
        };
        // The next refresh, or after the backoff when this one failed.
        let refresh_in = match (ok, &current) {
            (true, Some(_)) => {
                backoff = Duration::from_secs(1);
                next_refresh
            }
            _ => {
                let b = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                b
            }
        };
        let refresh_at = tokio::time::Instant::now() + refresh_in;
        loop {
            let deadline = current.as_ref().map(|(_, d, _)| *d);
            let reread_at = last_read + settings.reread;
            tokio::select! {
                () = tokio::time::sleep_until(refresh_at) => break,
                () = tokio::time::sleep(until(deadline)), if deadline.is_some() => expire(&mut current),
                () = tokio::time::sleep_until(reread_at) => {
                    // Pick up a rotation between refreshes.
                    last_read = tokio::time::Instant::now();
                    if changed(&core, &block, current.as_ref().map(|(_, _, v)| v.as_str()), &store).await {
                        log(&title, "the secret changed; refreshing");
                        break;
                    }
                }
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Whether the secret's latest version differs from `used` (read from the store itself).
async fn changed(
    core: &Core,
    block: &TokenBlock,
    used: Option<&str>,
    store: &HoldingStore,
) -> bool {
    core.store.forget_reads();
    let Ok(src) = crate::open::source(core, block) else {
        return false;
    };
    match ccsecrets_core::mint::read(core, &core.budget(), &src, &src.pin).await {
        Ok(secret) => store.reachable() && used.is_some_and(|u| u != secret.metadata.id()),
        Err(_) => false,
    }
}

/// Revokes a replaced token after the grace period (at stop, the drain revokes it instead).
fn retire(
    core: &Core,
    kind: BlockKind,
    lease: u64,
    settings: &AgentSettings,
    state: &Arc<BlockState>,
    stop: &CancellationToken,
    title: &str,
) {
    let (core, grace, state, stop, title) = (
        core.clone(),
        settings.grace,
        Arc::clone(state),
        stop.clone(),
        title.to_owned(),
    );
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(grace) => {}
            () = stop.cancelled() => return,
        }
        match open::release(&core, kind, lease).await {
            Ok(()) => {
                state.revocations.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => log(&title, &format!("could not revoke the replaced token: {e}")),
        }
    });
}

/// Serves `/healthz`, `/readyz` and `/metrics` until `stop`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    agent: Arc<Agent>,
    stop: CancellationToken,
) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let ready = Arc::clone(&agent);
    let metrics = Arc::clone(&agent);
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics.metrics();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        text,
                    )
                }
            }),
        );
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
}

/// Stops the workers, revokes every token the agent minted, ends the store session and
/// removes the sinks, within [`STOP_BUDGET`].
pub(crate) async fn wind_down(core: &Core, stop: &CancellationToken, sinks: &[Vec<Sink>]) {
    stop.cancel();
    let done = async {
        let (failed, ()) = tokio::join!(core.pools.drain(), core.store.shutdown());
        if failed > 0 {
            eprintln!(
                "ccsecrets agent: {failed} token(s) could not be revoked; they stay valid until they expire"
            );
        }
    };
    if tokio::time::timeout(STOP_BUDGET, done).await.is_err() {
        eprintln!(
            "ccsecrets agent: revocation did not finish in time; some tokens may stay valid until they expire"
        );
    }
    for s in sinks {
        remove_sinks(s);
    }
}

/// The supervised command's environment: every block's current variables.
pub(crate) fn handover_of(agent: &Agent, blocks: &[TokenBlock]) -> Handover {
    let mut h = Handover::default();
    for (b, state) in blocks.iter().zip(&agent.blocks) {
        if b.kind == BlockKind::Genesys {
            h.remove.extend(crate::exec::GENESYS_CLIENT_VARS);
        }
        for (k, v) in state
            .env
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let v = match v {
                EnvValue::Plain(p) => EnvValue::Plain(p.clone()),
                EnvValue::Secret(s) => EnvValue::Secret(s.clone()),
            };
            h.set.insert(k.clone(), v);
        }
    }
    h
}
