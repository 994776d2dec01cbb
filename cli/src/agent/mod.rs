//! `ccsecrets agent`: keeps every block's sinks holding a valid token for running services, and
//! optionally supervises one command. [`run`] is the supervisor: it binds and installs signal
//! handlers before anything is minted, tracks every task, and stops non-zero when a worker dies.

pub(crate) mod http;
pub(crate) mod settings;
pub(crate) mod sink;
pub(crate) mod worker;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ccsecrets_core::store::holding::HoldingStore;
use ccsecrets_core::{Core, Problem};
use nix::sys::signal::Signal;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Located, TokenBlock};
use crate::exec::{self, EnvValue, Handover};
use crate::{EXIT_CONFIG, EXIT_UNAVAILABLE, Failure, unplaced};
use http::Agent;
use settings::{OnRefresh, Sink};
use worker::{BlockMinter, FailureKind, Worker};

/// Exit status when a worker died (EX_SOFTWARE): the orchestrator should restart the agent.
const EXIT_SOFTWARE: u8 = 70;
/// How long `agent health` waits for an answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// `2026-01-01T00:00:00.000000Z  INFO ...`, one event a line.
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

/// Sets up the log: timestamps and levels on stderr; the level from `CCSECRETS_LOG` (e.g.
/// `debug`, or `info,ccsecrets_core=debug`; default `info`).
fn init_logging(format: LogFormat) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("CCSECRETS_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let base = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let result = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(base.with_filter(filter))
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(base.json().flatten_event(true).with_filter(filter))
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("ccsecrets agent: cannot set up the log: {e}");
    }
}

/// The command line's `agent` arguments.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) config: Option<PathBuf>,
    pub(crate) once: bool,
    pub(crate) command: Vec<String>,
    pub(crate) log_format: LogFormat,
}

/// Reads and checks everything `agent` would refuse, before anything touches the network.
fn prepare(
    args: &Args,
) -> Result<
    (
        crate::config::Config,
        settings::AgentSettings,
        Vec<Vec<Sink>>,
    ),
    Failure,
> {
    let config = crate::load(args.config.clone(), true)?;
    let (settings, sinks) = settings::settings(&config).map_err(Failure::config)?;
    let mut problems: Vec<Located> = exec::check_collisions(&config.blocks);
    for (b, s) in config.blocks.iter().zip(&sinks) {
        if s.is_empty() && args.command.is_empty() {
            problems.push(b.locate(Problem::error(
                "No sink",
                "Give the block a `sink { file = \"...\" }`, or run a command with `-- COMMAND` that takes its variables.",
            )));
        }
    }
    if config.blocks.is_empty() {
        problems.push(unplaced(Problem::error(
            "Nothing to keep fresh",
            "The configuration has no genesys_token, cxone_token or vault_secret block.",
        )));
    }
    if !problems.is_empty() {
        return Err(Failure::config(problems));
    }
    Ok((config, settings, sinks))
}

/// `check`'s part: the agent and sink settings, and that each sink's directory exists or can
/// be created.
pub(crate) fn validate(config: &crate::config::Config) -> Vec<Located> {
    match settings::settings(config) {
        Ok((_, sinks)) => settings::check_dirs(config, &sinks),
        Err(problems) => problems,
    }
}

/// `ccsecrets agent`.
pub(crate) async fn run(args: Args, stop: CancellationToken) -> Result<u8, Failure> {
    init_logging(args.log_format);
    let (config, settings, sinks) = prepare(&args)?;
    // Bound and listening for signals before anything is minted: a probe gets an answer, and
    // a stop during the first mint is handled.
    let listener =
        match settings.listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Failure::plain(EXIT_CONFIG, "Cannot listen", format!("{addr}: {e}."))
            })?),
            None => None,
        };
    let mut signals = exec::Signals::new()
        .map_err(|e| Failure::plain(1, "Cannot install signal handlers", e.to_string()))?;
    for (file, fs) in sink::not_in_memory(&sinks.concat()) {
        tracing::warn!(sink = %file, filesystem = %fs, "the sink is not on a memory-backed file system (tmpfs, ramfs): its token is synced to disk");
    }
    let mut core = crate::core_of(&config, &stop)?;
    let store = Arc::new(HoldingStore::new(Arc::clone(&core.store)));
    core.store = store.clone();
    if args.once {
        return once(&core, &config, &sinks).await;
    }
    let agent = Arc::new(Agent::new(
        config
            .blocks
            .iter()
            .map(|b| format!("{}.{}", b.kind.name(), b.name))
            .collect(),
        Arc::clone(&store),
    ));
    let tracker = TaskTracker::new();
    let workers = stop.child_token();
    if let Some(listener) = listener {
        tracker.spawn(http::serve(
            listener,
            Arc::clone(&agent),
            tracker.clone(),
            workers.clone(),
        ));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (died_tx, mut died) = tokio::sync::mpsc::unbounded_channel::<String>();
    for ((b, s), st) in config.blocks.iter().zip(&sinks).zip(&agent.blocks) {
        let worker = Worker {
            minter: Arc::new(BlockMinter {
                core: core.clone(),
                block: b.clone(),
                store: Arc::clone(&store),
            }),
            sinks: s.clone(),
            state: Arc::clone(st),
            settings: settings.clone(),
            refreshed: tx.clone(),
            tracker: tracker.clone(),
            stop: workers.clone(),
        };
        supervise(worker, &tracker, died_tx.clone());
    }
    drop((tx, died_tx));
    let budget = settings.stop_timeout;
    let stopping = |what: &str| {
        tracing::info!("{what}; revoking and removing the sinks");
    };
    if args.command.is_empty() {
        let code = tokio::select! {
            sig = stop_signal(&mut signals) => { stopping(&format!("{sig} received")); 0 }
            () = stop.cancelled() => { stopping("the parent process is gone"); 0 }
            Some(title) = died.recv() => { stopping(&format!("the worker of {title} died")); EXIT_SOFTWARE }
        };
        wind_down(&core, &workers, &tracker, &sinks, budget).await;
        return Ok(code);
    }
    // Supervise: start the command once every block has a token.
    let started = loop {
        if agent.blocks.iter().all(|b| b.generation() > 0) {
            break Ok(());
        }
        tokio::select! {
            _ = rx.recv() => {}
            sig = stop_signal(&mut signals) => break Err((1, format!("Stopped by {sig} before every token was ready; the command was not started."))),
            () = stop.cancelled() => break Err((1, "The parent process is gone; the command was not started.".to_owned())),
            Some(title) = died.recv() => break Err((EXIT_SOFTWARE, format!("The worker of {title} died; the command was not started."))),
        }
    };
    if let Err((code, detail)) = started {
        wind_down(&core, &workers, &tracker, &sinks, budget).await;
        return Err(Failure::plain(code, "Interrupted", detail));
    }
    drop(signals);
    let on_refresh = settings
        .on_refresh
        .unwrap_or_else(|| default_on_refresh(&config.blocks));
    let result = command(
        &args.command,
        &agent,
        &config.blocks,
        on_refresh,
        rx,
        &mut died,
        &stop,
    )
    .await;
    wind_down(&core, &workers, &tracker, &sinks, budget).await;
    match result {
        Ok(status) => Ok(status),
        Err(e) => Err(Failure::plain(e.code, "Cannot run the command", e.message)),
    }
}

/// SIGTERM or SIGINT (other signals are ignored here).
async fn stop_signal(signals: &mut exec::Signals) -> Signal {
    loop {
        let sig = signals.next().await;
        if matches!(sig, Signal::SIGTERM | Signal::SIGINT) {
            return sig;
        }
    }
}

/// Spawns a worker, tracked; one that ends before it is told to stop (returns or panics)
/// marks its block not ready, empties its sinks, and is reported on `died`.
fn supervise<M: worker::Minter>(
    worker: Worker<M>,
    tracker: &TaskTracker,
    died: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let (state, sinks, stop) = (
        Arc::clone(&worker.state),
        worker.sinks.clone(),
        worker.stop.clone(),
    );
    let handle = tokio::spawn(worker.run());
    tracker.spawn(async move {
        let result = handle.await;
        if stop.is_cancelled() {
            return;
        }
        let why = match result {
            Ok(()) => "ended",
            Err(e) if e.is_panic() => "panicked",
            Err(_) => "was cancelled",
        };
        state.clear();
        state.fail(FailureKind::worker_exit);
        for s in &sinks {
            sink::remove(s).await;
        }
        tracing::error!(block = %state.title, failed = ?FailureKind::worker_exit, "the worker {why}; sinks removed; the agent stops");
        let _ = died.send(state.title.clone());
    });
}

/// `--once`: every sink written once; the tokens are not revoked (they are for later).
async fn once(
    core: &Core,
    config: &crate::config::Config,
    sinks: &[Vec<Sink>],
) -> Result<u8, Failure> {
    let opened = crate::open_all(core, config).await?;
    for ((b, o), sinks) in config.blocks.iter().zip(&opened).zip(sinks) {
        let env: Vec<(String, EnvValue)> =
            exec::handover(std::slice::from_ref(b), std::slice::from_ref(o))
                .set
                .into_iter()
                .collect();
        for s in sinks {
            let bytes = sink::render(s.format, o, &env).map_err(|u| {
                Failure::plain(
                    EXIT_UNAVAILABLE,
                    "Cannot write a sink",
                    format!("{}: {}.", s.path.display(), u.0),
                )
            })?;
            sink::write(s, bytes).await.map_err(|e| {
                Failure::plain(
                    EXIT_UNAVAILABLE,
                    "Cannot write a sink",
                    format!("{}: {e}.", s.path.display()),
                )
            })?;
        }
    }
    core.store.shutdown().await;
    tracing::info!("wrote every sink once (--once: the tokens are not revoked)");
    Ok(0)
}

/// Stops the workers (waiting for them, bounded), removes the sinks, then revokes every token
/// the agent minted and ends the store session: all within `budget`.
async fn wind_down(
    core: &Core,
    workers: &CancellationToken,
    tracker: &TaskTracker,
    sinks: &[Vec<Sink>],
    budget: Duration,
) {
    let deadline = tokio::time::Instant::now() + budget;
    workers.cancel();
    tracker.close();
    if tokio::time::timeout(budget.mul_f64(0.6), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("the workers did not stop in time");
    }
    for s in sinks.iter().flatten() {
        sink::remove(s).await;
    }
    let done = async {
        let (failed, ()) = tokio::join!(core.pools.drain(), core.store.shutdown());
        if failed > 0 {
            tracing::error!(
                "{failed} token(s) could not be revoked; they stay valid until they expire"
            );
        }
    };
    if tokio::time::timeout_at(deadline, done).await.is_err() {
        tracing::error!(
            "revocation did not finish within the stop budget ({}s); some tokens may stay valid until they expire",
            budget.as_secs()
        );
    }
}

/// `restart` when a command takes a token from its environment, else `none`.
fn default_on_refresh(blocks: &[TokenBlock]) -> OnRefresh {
    if blocks
        .iter()
        .any(|b| b.env.iter().any(|v| v.field == "access_token"))
    {
        OnRefresh::Restart
    } else {
        OnRefresh::None
    }
}

/// The supervised command's environment: every block's current variables.
fn handover_of(agent: &Agent, blocks: &[TokenBlock]) -> Handover {
    let mut h = Handover::default();
    for (b, state) in blocks.iter().zip(&agent.blocks) {
        if b.kind == crate::config::BlockKind::Genesys {
            h.remove.extend(exec::GENESYS_CLIENT_VARS);
        }
        h.set.extend(state.env());
    }
    h
}

/// Runs the command until it ends by itself (or is stopped), as `on_refresh` says.
async fn command(
    command: &[String],
    agent: &Agent,
    blocks: &[TokenBlock],
    on_refresh: OnRefresh,
    mut refreshed: tokio::sync::mpsc::UnboundedReceiver<()>,
    died: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    stop: &CancellationToken,
) -> Result<u8, exec::SpawnError> {
    // The first tokens' notices are not refreshes.
    while refreshed.try_recv().is_ok() {}
    let mut signals = exec::Signals::new().map_err(|e| exec::SpawnError {
        code: 1,
        message: format!("cannot install signal handlers: {e}"),
    })?;
    let restart = on_refresh == OnRefresh::Restart;
    let mut notices = Some(refreshed);
    let mut reload = match on_refresh {
        OnRefresh::Signal(sig) => notices.take().map(|rx| (sig, rx)),
        OnRefresh::Restart | OnRefresh::None => None,
    };
    let mut dead = false;
    loop {
        let handover = handover_of(agent, blocks);
        let masks = exec::github_masks(&secrets(&handover));
        if !masks.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(masks.as_bytes()).and_then(|()| err.flush());
        }
        let run_stop = stop.child_token();
        let run = exec::run(command, handover, run_stop.clone(), reload.take());
        tokio::pin!(run);
        let mut restarting = false;
        let mut stopping = false;
        let status = loop {
            tokio::select! {
                status = &mut run => break status?,
                _ = signals.next() => {
                    // exec::run forwards it; the command's end is the agent's.
                    stopping = true;
                }
                Some(()) = next_notice(&mut notices), if restart && !restarting && !stopping => {
                    tracing::info!("new token; restarting the command");
                    restarting = true;
                    run_stop.cancel();
                }
                Some(title) = died.recv(), if !dead => {
                    tracing::error!("the worker of {title} died; stopping the command");
                    dead = true;
                    run_stop.cancel();
                }
            }
        };
        if dead {
            return Ok(EXIT_SOFTWARE);
        }
        // A stop signal that came with the command's end is not missed.
        tokio::select! {
            biased;
            _ = signals.next() => stopping = true,
            () = std::future::ready(()) => {}
        }
        if restarting && !stopping && !stop.is_cancelled() {
            if let Some(rx) = notices.as_mut() {
                while rx.try_recv().is_ok() {}
            }
            continue;
        }
        return Ok(exec::exit_code(status));
    }
}

/// The next refresh notice (never, without a receiver).
async fn next_notice(rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The secret values handed to the command, for GitHub's log masking.
fn secrets(h: &Handover) -> Vec<SecretString> {
    h.set
        .values()
        .filter_map(|v| match v {
            EnvValue::Secret(s) => Some(s.clone()),
            EnvValue::Plain(_) => None,
        })
        .collect()
}

/// `ccsecrets agent health`: 0 when `/readyz` answers 200; otherwise a one-line reason and 1.
pub(crate) async fn health(listen: Option<String>, config: Option<PathBuf>) -> u8 {
    let fail = |why: String| {
        eprintln!("ccsecrets agent health: {why}");
        1
    };
    let addr = match listen {
        Some(a) => a,
        None => {
            let Some(file) = crate::config::which_file(config.as_deref()) else {
                return fail("no address: give --listen ADDR, or --config FILE with `agent { listen = ... }`".to_owned());
            };
            let c = match crate::config::load(&file) {
                Ok(c) => c,
                Err(p) => {
                    return fail(format!(
                        "cannot read {}: {}",
                        file.display(),
                        p.first()
                            .map(|l| l.problem.summary.clone())
                            .unwrap_or_default()
                    ));
                }
            };
            match c
                .agent
                .as_ref()
                .and_then(|a| a.get("listen"))
                .and_then(serde_json::Value::as_str)
            {
                Some(a) => a.to_owned(),
                None => {
                    return fail(format!(
                        "{} has no `agent {{ listen = ... }}`; give --listen ADDR",
                        file.display()
                    ));
                }
            }
        }
    };
    let Ok(mut addr) = addr.parse::<std::net::SocketAddr>() else {
        return fail(format!(
            "{addr:?} is not an address and port, e.g. 127.0.0.1:8765"
        ));
    };
    // An agent listening on every address answers on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(HEALTH_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot set up the HTTP client: {e}")),
    };
    match client.get(format!("http://{addr}/readyz")).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => 0,
        Ok(r) => fail(format!(
            "not ready: /readyz at {addr} answered {}",
            r.status().as_u16()
        )),
        Err(e) if e.is_timeout() => fail(format!(
            "no answer from {addr} within {}s",
            HEALTH_TIMEOUT.as_secs()
        )),
        Err(e) if e.is_connect() => fail(format!(
            "cannot connect to {addr} (is the agent running and listening there?)"
        )),
        Err(e) => fail(format!("cannot ask {addr}: {e}")),
    }
}
