//! One block's worker: mint, write every sink, refresh at two thirds of the token's life,
//! retire the replaced token after a grace period; failed mints and failed writes are retried
//! with backoff, and a sink is emptied rather than left holding a replaced or expiring token.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use ccsecrets_core::Core;
use ccsecrets_core::store::holding::HoldingStore;
use prometheus_client::encoding::EncodeLabelValue;
use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::settings::{AgentSettings, Sink};
use super::sink;
use crate::config::TokenBlock;
use crate::exec::EnvValue;
use crate::open::{self, Opened};

/// A sink is emptied this long before its token expires when no fresh one could be had (a
/// tenth of the life for short-lived tokens).
const EXPIRY_MARGIN: Duration = Duration::from_secs(1);
/// First wait after a failure (mint or write); it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What failed, for the failure counter and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the label values, as Prometheus shows them
pub(crate) enum FailureKind {
    store,
    platform,
    sink_write,
    worker_exit,
}

impl FailureKind {
    pub(crate) const ALL: [FailureKind; 4] = [
        FailureKind::store,
        FailureKind::platform,
        FailureKind::sink_write,
        FailureKind::worker_exit,
    ];
}

/// A token (or secret) just had, with the variables it gives a command.
#[derive(Debug)]
pub(crate) struct Fresh {
    pub(crate) opened: Opened,
    pub(crate) env: Vec<(String, EnvValue)>,
}

/// A mint that failed: what failed, and the problems (no values in them).
#[derive(Debug)]
pub(crate) struct MintFailure {
    pub(crate) kind: FailureKind,
    pub(crate) lines: Vec<String>,
}

/// Where a worker gets its tokens: the core's pipeline for a configured block, or the core's
/// fakes in unit tests.
pub(crate) trait Minter: Send + Sync + 'static {
    /// A new token (never a shared one), reading the store again.
    fn mint(&self) -> impl Future<Output = Result<Fresh, MintFailure>> + Send;
    /// Releases (revokes) one token.
    fn release(&self, lease: u64) -> impl Future<Output = Result<(), String>> + Send;
    /// Whether the secret's latest version differs from `used`.
    fn changed(&self, used: &str) -> impl Future<Output = bool> + Send;
}

/// A configured block, minted through the core's one pipeline.
#[derive(Debug)]
pub(crate) struct BlockMinter {
    pub(crate) core: Core,
    pub(crate) block: TokenBlock,
    pub(crate) store: Arc<HoldingStore>,
}

impl Minter for BlockMinter {
    async fn mint(&self) -> Result<Fresh, MintFailure> {
        // Every refresh reads the store again (a rotation is picked up; when the store is
        // down, the credential read last is used).
        self.core.store.forget_reads();
        match open::open_with(&self.core, &self.block, true).await {
            Ok(opened) => {
                let env = crate::exec::handover(
                    std::slice::from_ref(&self.block),
                    std::slice::from_ref(&opened),
                )
                .set
                .into_iter()
                .collect();
                Ok(Fresh { opened, env })
            }
            Err(problems) => Err(MintFailure {
                kind: if self.store.reachable() {
                    FailureKind::platform
                } else {
                    FailureKind::store
                },
                lines: problems.iter().map(|p| p.problem.to_string()).collect(),
            }),
        }
    }

    async fn release(&self, lease: u64) -> Result<(), String> {
        open::release(&self.core, self.block.kind, lease)
            .await
            .map_err(|e| e.to_string())
    }

    async fn changed(&self, used: &str) -> bool {
        self.core.store.forget_reads();
        let Ok(src) = open::source(&self.core, &self.block) else {
            return false;
        };
        match ccsecrets_core::mint::read(&self.core, &self.core.budget(), &src, &src.pin).await {
            Ok(secret) => self.store.reachable() && used != secret.metadata.id(),
            Err(_) => false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one block's worker reports, for readiness, metrics and the supervised command.
#[derive(Debug, Default)]
pub(crate) struct BlockState {
    /// `genesys_token.app`.
    pub(crate) title: String,
    ready: AtomicBool,
    expires_at: Mutex<Option<SystemTime>>,
    env: Mutex<Vec<(String, EnvValue)>>,
    /// Tokens had so far.
    generation: AtomicU64,
    pub(crate) mints: Counter,
    pub(crate) revocations: Counter,
    failures: [Counter; 4],
}

impl BlockState {
    pub(crate) fn new(
        title: String,
        mints: Counter,
        revocations: Counter,
        failures: [Counter; 4],
    ) -> Self {
        BlockState {
            title,
            mints,
            revocations,
            failures,
            ..Default::default()
        }
    }

    /// Whether every sink holds a valid token.
    pub(crate) fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Seconds until the token in the sinks expires (0 when there is none).
    pub(crate) fn expiry_seconds(&self) -> i64 {
        lock(&self.expires_at)
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    /// How many tokens the block has had.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The variables of the current token, for a command.
    pub(crate) fn env(&self) -> Vec<(String, EnvValue)> {
        lock(&self.env).clone()
    }

    /// Counts one failure of `kind`.
    pub(crate) fn fail(&self, kind: FailureKind) {
        if let Some(c) = self.failures.get(kind as usize) {
            c.inc();
        }
    }

    /// Failures of `kind` so far.
    #[cfg(test)]
    pub(crate) fn failures(&self, kind: FailureKind) -> u64 {
        self.failures.get(kind as usize).map_or(0, Counter::get)
    }

    /// Marks the block not ready, with no token.
    pub(crate) fn clear(&self) {
        self.ready.store(false, Ordering::SeqCst);
        *lock(&self.expires_at) = None;
    }
}

/// The token in the sinks.
#[derive(Debug)]
struct Held {
    lease: Option<u64>,
    /// When the sinks must be emptied (shortly before expiry); `None` for a plain secret.
    empty_at: Option<Instant>,
    fresh: Fresh,
}

/// Doubling waits after failures. A mint's waits are jittered (uniform in the upper half of
/// the ceiling), so replicas that failed together (a store or platform outage) do not come
/// back in step; a local write's are not.
#[derive(Debug)]
struct Backoff {
    ceiling: Duration,
    jitter: bool,
}

impl Backoff {
    fn new(jitter: bool) -> Self {
        Backoff {
            ceiling: FIRST_BACKOFF,
            jitter,
        }
    }
    fn next(&mut self) -> Duration {
        let c = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(MAX_BACKOFF);
        if self.jitter {
            c.mul_f64(0.5 + fastrand::f64() / 2.0)
        } else {
            c
        }
    }
    fn reset(&mut self) {
        self.ceiling = FIRST_BACKOFF;
    }
}

/// One block's worker; [`Worker::run`] until `stop`.
#[derive(Debug)]
pub(crate) struct Worker<M> {
    pub(crate) minter: Arc<M>,
    pub(crate) sinks: Vec<Sink>,
    pub(crate) state: Arc<BlockState>,
    pub(crate) settings: AgentSettings,
    /// Told after each new token.
    pub(crate) refreshed: tokio::sync::mpsc::UnboundedSender<()>,
    /// Where retirements are tracked.
    pub(crate) tracker: TaskTracker,
    pub(crate) stop: CancellationToken,
}

impl<M: Minter> Worker<M> {
    /// Runs until `stop`. Returns only then (a return before is a worker that died).
    pub(crate) async fn run(self) {
        let title = self.state.title.clone();
        let mut held: Option<Held> = None;
        // Sinks still to be written with the held token.
        let mut pending: Vec<usize> = Vec::new();
        let mut mint_backoff = Backoff::new(true);
        let mut write_backoff = Backoff::new(false);
        let mut refresh_at = Instant::now();
        let mut retry_at: Option<Instant> = None;
        let mut reread_at = Instant::now() + self.settings.reread;
        // Warnings already logged, by summary (a warning about the token's life is not
        // repeated at every refresh).
        let mut warned: HashSet<String> = HashSet::new();
        let far = || Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            let empty_at = held.as_ref().and_then(|h| h.empty_at);
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = sleep_until(empty_at.unwrap_or_else(far)), if empty_at.is_some() => {
                    self.expire(&mut held, &mut pending).await;
                }
                () = sleep_until(refresh_at) => {
                    let minted = self.mint_once(&mut held, &mut pending).await;
                    let Some(result) = minted else { return };
                    match result {
                        Ok(fresh) => {
                            mint_backoff.reset();
                            write_backoff.reset();
                            reread_at = Instant::now() + self.settings.reread;
                            for w in &fresh.opened.warnings {
                                if warned.insert(w.problem.summary.clone()) {
                                    tracing::warn!(block = %title, "{}", w.problem);
                                }
                            }
                            refresh_at = self.take(fresh, &mut held, &mut pending).await;
                            retry_at = (!pending.is_empty()).then(|| Instant::now() + write_backoff.next());
                        }
                        Err(f) => {
                            self.state.fail(f.kind);
                            let what = match f.kind {
                                FailureKind::store => "the secret store",
                                _ => "the platform",
                            };
                            for line in &f.lines {
                                tracing::error!(block = %title, failed = ?f.kind, "cannot get a new token from {what}: {line}");
                            }
                            refresh_at = Instant::now() + mint_backoff.next();
                        }
                    }
                }
                () = sleep_until(retry_at.unwrap_or_else(far)), if retry_at.is_some() => {
                    if let Some(h) = &held {
                        pending = self.write_sinks(&h.fresh, &pending).await;
                    }
                    if pending.is_empty() {
                        retry_at = None;
                        write_backoff.reset();
                        if held.is_some() {
                            self.state.ready.store(true, Ordering::SeqCst);
                            tracing::info!(block = %title, "every sink written");
                        }
                    } else {
                        retry_at = Some(Instant::now() + write_backoff.next());
                    }
                }
                () = sleep_until(reread_at) => {
                    // Pick up a rotation between refreshes.
                    reread_at = Instant::now() + self.settings.reread;
                    if let Some(h) = &held {
                        if self.minter.changed(&h.fresh.opened.version).await {
                            tracing::info!(block = %title, "the secret changed; refreshing");
                            refresh_at = Instant::now();
                        }
                    }
                }
            }
        }
    }

    /// One mint, while the held token may expire. `None` when told to stop: a mint in flight
    /// is waited for (within half the stop budget) and its token released.
    async fn mint_once(
        &self,
        held: &mut Option<Held>,
        pending: &mut Vec<usize>,
    ) -> Option<Result<Fresh, MintFailure>> {
        let mint = self.minter.mint();
        tokio::pin!(mint);
        loop {
            let empty_at = held.as_ref().and_then(|h| h.empty_at);
            tokio::select! {
                r = &mut mint => return Some(r),
                () = sleep_until(empty_at.unwrap_or_else(Instant::now)), if empty_at.is_some() => {
                    self.expire(held, pending).await;
                }
                () = self.stop.cancelled() => break,
            }
        }
        let title = &self.state.title;
        tracing::info!(block = %title, "stopping while a token request is in flight; waiting for its answer to revoke it");
        match tokio::time::timeout(self.settings.stop_timeout / 2, mint).await {
            Ok(Ok(fresh)) => {
                if let Some(lease) = fresh.opened.lease {
                    match self.minter.release(lease).await {
                        Ok(()) => {
                            tracing::info!(block = %title, "the token answered while stopping was revoked")
                        }
                        Err(e) => {
                            tracing::error!(block = %title, "could not revoke the token answered while stopping: {e}")
                        }
                    }
                }
            }
            Ok(Err(_)) => {}
            Err(_) => {
                tracing::error!(block = %title, "no answer to the token request in flight within the stop budget; if one comes, that token stays valid until it expires")
            }
        }
        None
    }

    /// Takes a new token: writes the sinks, retires the one it replaces; returns when to
    /// refresh.
    async fn take(
        &self,
        fresh: Fresh,
        held: &mut Option<Held>,
        pending: &mut Vec<usize>,
    ) -> Instant {
        let title = &self.state.title;
        let now = Instant::now();
        let life = fresh
            .opened
            .expires_at
            .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default());
        // Emptied shortly before expiry (a tenth of a short life), refreshed at two thirds of
        // it (±10%, so replicas do not mint in step). A plain secret is read again every
        // `reread` instead.
        let empty_at = life.map(|l| now + l.saturating_sub(EXPIRY_MARGIN.min(l / 10)));
        let refresh_at = match life {
            Some(l) => now + l.mul_f64(2.0 / 3.0 * (0.9 + 0.2 * fastrand::f64())),
            None => now + self.settings.reread,
        };
        let all: Vec<usize> = (0..self.sinks.len()).collect();
        *pending = self.write_sinks(&fresh, &all).await;
        self.state.ready.store(pending.is_empty(), Ordering::SeqCst);
        *lock(&self.state.expires_at) = fresh.opened.expires_at;
        lock(&self.state.env).clone_from(&fresh.env);
        self.state.mints.inc();
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        tracing::info!(
            block = %title,
            version = %fresh.opened.version,
            valid_until = %fresh.opened.expires_at.map(ccsecrets_core::platform::rfc3339).unwrap_or_else(|| "-".into()),
            sinks_written = self.sinks.len() - pending.len(),
            sinks = self.sinks.len(),
            "new token"
        );
        let lease = fresh.opened.lease;
        let previous = held.replace(Held {
            lease,
            empty_at,
            fresh,
        });
        if let Some(old) = previous.and_then(|p| p.lease) {
            if lease.is_some() && lease != Some(old) {
                self.retire(old);
            }
        }
        let _ = self.refreshed.send(());
        refresh_at
    }

    /// Writes the sinks `which` with `fresh`; returns those that failed (their old file is
    /// removed: it holds a replaced token).
    async fn write_sinks(&self, fresh: &Fresh, which: &[usize]) -> Vec<usize> {
        let mut failed = Vec::new();
        for &i in which {
            let Some(s) = self.sinks.get(i) else { continue };
            let result = match sink::render(s.format, &fresh.opened, &fresh.env) {
                Ok(bytes) => sink::write(s, bytes).await.map_err(|e| e.to_string()),
                Err(u) => Err(u.0),
            };
            if let Err(e) = result {
                self.state.fail(FailureKind::sink_write);
                self.state.ready.store(false, Ordering::SeqCst);
                tracing::error!(block = %self.state.title, sink = %s.path.display(), failed = ?FailureKind::sink_write, "cannot write the sink: {e}; retrying");
                sink::remove(s).await;
                failed.push(i);
            }
        }
        failed
    }

    /// The held token is about to expire with no successor: the sinks are emptied.
    async fn expire(&self, held: &mut Option<Held>, pending: &mut Vec<usize>) {
        // Not ready before a file goes: a probe never sees ready with a sink missing.
        self.state.clear();
        for s in &self.sinks {
            sink::remove(s).await;
        }
        pending.clear();
        tracing::error!(block = %self.state.title, "the token expires before a new one could be had; sinks removed, not ready");
        if let Some(lease) = held.take().and_then(|h| h.lease) {
            let _ = self.minter.release(lease).await;
        }
    }

    /// Revokes a replaced token after the grace period (at stop, the drain revokes it instead).
    fn retire(&self, lease: u64) {
        let (minter, grace, state, stop) = (
            Arc::clone(&self.minter),
            self.settings.grace,
            Arc::clone(&self.state),
            self.stop.clone(),
        );
        self.tracker.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                () = stop.cancelled() => return,
            }
            match minter.release(lease).await {
                Ok(()) => {
                    state.revocations.inc();
                }
                Err(e) => tracing::error!(block = %state.title, "could not revoke the replaced token: {e}"),
            };
        });
    }
}
