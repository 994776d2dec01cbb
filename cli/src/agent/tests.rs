//! A worker against the core's fakes (store and platform) on tokio's paused clock: refresh
//! timing, backoff, emptying before expiry, retried writes, and a dying worker.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccsecrets_core::Core;
use ccsecrets_core::mint::{self, Options, Output, Source};
use ccsecrets_core::net::RetryPolicy;
use ccsecrets_core::platform::Net;
use ccsecrets_core::platform::fake::{Behaviour, FakePlatform, FakeSettings, FakeToken};
use ccsecrets_core::pool::{PooledToken, Pools};
use ccsecrets_core::store::fake::FakeStore;
use ccsecrets_core::store::holding::HoldingStore;
use ccsecrets_core::store::{Pin, SecretStore};
use prometheus_client::metrics::counter::Counter;
use secrecy::SecretString;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::settings::{AgentSettings, Format, Sink};
use super::worker::{BlockState, FailureKind, Fresh, MintFailure, Minter, Worker};
use crate::exec::EnvValue;
use crate::open::Opened;

/// Mints [`FakePlatform`] tokens from a [`FakeStore`] through the core's pipeline.
struct FakeMinter {
    core: Core,
    settings: FakeSettings,
    store: Arc<HoldingStore>,
    /// The value of `VALUE` in the token's variables.
    value: Mutex<String>,
    /// Panics instead of minting.
    panic: bool,
}

impl Minter for FakeMinter {
    async fn mint(&self) -> Result<Fresh, MintFailure> {
        assert!(!self.panic, "a bug in the worker");
        self.core.store.forget_reads();
        let src = Source::new("g", None, Pin::Latest, None).unwrap();
        let options = Options {
            rotation_fallback: false,
            reuse_percent: 100,
        };
        match mint::mint::<FakePlatform>(&self.core, &self.settings, &src, options).await {
            Ok(m) => {
                let value = SecretString::from(m.lease.token.value.clone());
                let outputs = BTreeMap::from([("access_token".to_owned(), Output::Secret(value))]);
                let env = vec![(
                    "VALUE".to_owned(),
                    EnvValue::Plain(self.value.lock().unwrap().clone()),
                )];
                Ok(Fresh {
                    opened: Opened {
                        outputs,
                        warnings: Vec::new(),
                        lease: Some(m.lease.handle),
                        expires_at: Some(m.lease.token.expires_at()),
                        version: m.used.id(),
                    },
                    env,
                })
            }
            Err(p) => Err(MintFailure {
                kind: if self.store.reachable() {
                    FailureKind::platform
                } else {
                    FailureKind::store
                },
                lines: vec![p.to_string()],
            }),
        }
    }

    async fn release(&self, lease: u64) -> Result<(), String> {
        self.core
            .pools
            .get::<FakeToken>()
            .release(lease)
            .await
            .map_err(|e| e.to_string())
    }

    async fn changed(&self, _used: &str) -> bool {
        false
    }
}

struct Rig {
    behaviour: Arc<Behaviour>,
    minter: Arc<FakeMinter>,
    state: Arc<BlockState>,
    dir: tempfile::TempDir,
    stop: CancellationToken,
    tracker: TaskTracker,
    started: Instant,
}

impl Rig {
    /// A worker for tokens living `lifetime`, one sink per `(file, format)` under a temporary
    /// directory.
    fn new(lifetime: u64, sinks: &[(&str, Format)], panic: bool) -> (Rig, Worker<FakeMinter>) {
        let fake = Arc::new(FakeStore::default());
        fake.put("g", r#"{"client_secret":"s3cret"}"#);
        let store = Arc::new(HoldingStore::new(fake as Arc<dyn SecretStore>));
        let core = Core {
            store: Arc::clone(&store) as Arc<dyn SecretStore>,
            net: Net {
                http: reqwest::Client::new(),
                retry: RetryPolicy::default(),
            },
            environment: None,
            open_timeout: Duration::from_secs(5),
            cancel: CancellationToken::new(),
            pools: Arc::new(Pools::default()),
        };
        let behaviour = Arc::new(Behaviour::default());
        behaviour.accept("s3cret");
        *behaviour.lifetime.lock().unwrap() = Some(Duration::from_secs(lifetime));
        let minter = Arc::new(FakeMinter {
            core,
            settings: FakeSettings {
                behaviour: Arc::clone(&behaviour),
                expected: None,
            },
            store,
            value: Mutex::new("plain".to_owned()),
            panic,
        });
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(BlockState::new(
            "fake_token.app".to_owned(),
            Counter::default(),
            Counter::default(),
            Default::default(),
        ));
        let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Notices are not looked at here.
        std::mem::forget(rx);
        let worker = Worker {
            minter: Arc::clone(&minter),
            sinks: sinks
                .iter()
                .map(|(f, format)| Sink {
                    path: dir.path().join(f),
                    format: *format,
                    mode: 0o400,
                    dir_mode: 0o700,
                })
                .collect(),
            state: Arc::clone(&state),
            settings: AgentSettings {
                grace: Duration::from_secs(5),
                reread: Duration::from_secs(86_400),
                ..AgentSettings::default()
            },
            refreshed: tx,
            tracker: tracker.clone(),
            stop: stop.clone(),
        };
        let rig = Rig {
            behaviour,
            minter,
            state,
            dir,
            stop,
            tracker,
            started: Instant::now(),
        };
        (rig, worker)
    }

    fn start(lifetime: u64, sinks: &[(&str, Format)]) -> Rig {
        let (rig, worker) = Rig::new(lifetime, sinks, false);
        rig.tracker.spawn(worker.run());
        rig
    }

    /// Sleeps (virtually) until `secs` after the start.
    async fn at(&self, secs: f64) {
        tokio::time::sleep_until(self.started + Duration::from_secs_f64(secs)).await;
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join(file)).ok()
    }

    fn mints(&self) -> usize {
        self.behaviour.mints.load(Ordering::SeqCst)
    }

    async fn finish(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_two_thirds_of_the_life_and_retires_the_old_token_after_the_grace() {
    let rig = Rig::start(30, &[("token", Format::Token)]);
    rig.at(0.5).await;
    assert!(rig.state.ready());
    assert_eq!(rig.read("token").as_deref(), Some("token-0"));
    // Two thirds of 30 s, ±10%: between 18 and 22 s.
    rig.at(17.9).await;
    assert_eq!(rig.mints(), 1);
    rig.at(22.1).await;
    assert_eq!(rig.mints(), 2);
    assert_eq!(rig.read("token").as_deref(), Some("token-1"));
    assert_eq!(
        rig.behaviour.revoked.load(Ordering::SeqCst),
        0,
        "not before the grace"
    );
    rig.at(27.2).await;
    assert_eq!(rig.behaviour.revoked.load(Ordering::SeqCst), 1);
    assert_eq!(rig.state.revocations.get(), 1);
    assert_eq!(rig.state.mints.get(), 2);
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn failed_refreshes_back_off_and_the_sink_is_emptied_before_expiry() {
    let rig = Rig::start(30, &[("token", Format::Token)]);
    rig.at(0.5).await;
    assert!(rig.state.ready());
    rig.behaviour.reject("s3cret");
    // Refresh at 18-22 s fails; retries 1, 2, 4 s later; the token expires at 30 s and the
    // sink is emptied a second before.
    rig.at(28.8).await;
    assert_eq!(rig.read("token").as_deref(), Some("token-0"), "still valid");
    let tries = rig.mints() - 1;
    assert!(
        (3..=4).contains(&tries),
        "{tries} attempts in 7-11 s: 1, 2, 4 s apart"
    );
    rig.at(29.1).await;
    assert_eq!(rig.read("token"), None, "emptied before expiry");
    assert!(!rig.state.ready());
    assert!(rig.state.failures(FailureKind::platform) >= 3);
    assert_eq!(rig.state.failures(FailureKind::store), 0);
    // The platform takes the credential again: the next attempt (8 s after the last) succeeds.
    rig.behaviour.accept("s3cret");
    rig.at(40.0).await;
    assert!(rig.state.ready());
    assert!(rig.read("token").is_some_and(|t| t != "token-0"));
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_retried_after_about_a_second() {
    // The sink's directory cannot be made: a file stands in its way.
    let (rig, worker) = Rig::new(600, &[("blocked/token", Format::Token)], false);
    std::fs::write(rig.dir.path().join("blocked"), "x").unwrap();
    rig.tracker.spawn(worker.run());
    rig.at(0.5).await;
    assert!(!rig.state.ready());
    assert_eq!(rig.state.failures(FailureKind::sink_write), 1);
    std::fs::remove_file(rig.dir.path().join("blocked")).unwrap();
    rig.at(1.5).await;
    assert!(
        rig.state.ready(),
        "retried a second later, not at the next refresh"
    );
    assert_eq!(rig.read("blocked/token").as_deref(), Some("token-0"));
    assert_eq!(rig.mints(), 1, "the same token, written again");
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_cannot_take_the_new_token_does_not_keep_the_old_one() {
    let rig = Rig::start(30, &[("token", Format::Token), ("vars.env", Format::Env)]);
    rig.at(0.5).await;
    assert_eq!(rig.read("vars.env").as_deref(), Some("VALUE='plain'\n"));
    // The next token's variables cannot be written safely.
    *rig.minter.value.lock().unwrap() = "it's".to_owned();
    rig.at(22.1).await;
    assert_eq!(rig.read("token").as_deref(), Some("token-1"));
    assert_eq!(
        rig.read("vars.env"),
        None,
        "the replaced token's file is gone"
    );
    assert!(!rig.state.ready());
    assert!(rig.state.failures(FailureKind::sink_write) >= 1);
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_dies_empties_its_sinks_and_is_reported() {
    let (rig, worker) = Rig::new(600, &[("token", Format::Token)], true);
    std::fs::write(rig.dir.path().join("token"), "left over").unwrap();
    let (tx, mut died) = tokio::sync::mpsc::unbounded_channel();
    super::supervise(worker, &rig.tracker, tx);
    let title = tokio::time::timeout(Duration::from_secs(5), died.recv())
        .await
        .unwrap();
    assert_eq!(title.as_deref(), Some("fake_token.app"));
    assert!(!rig.state.ready());
    assert_eq!(rig.state.failures(FailureKind::worker_exit), 1);
    assert_eq!(rig.read("token"), None);
    rig.finish().await;
}

#[tokio::test(start_paused = true)]
async fn stop_ends_the_worker_at_once() {
    let rig = Rig::start(600, &[("token", Format::Token)]);
    rig.at(0.5).await;
    rig.stop.cancel();
    rig.tracker.close();
    tokio::time::timeout(Duration::from_secs(1), rig.tracker.wait())
        .await
        .unwrap();
    assert_eq!(
        rig.read("token").as_deref(),
        Some("token-0"),
        "removing the sinks is the supervisor's job"
    );
}
