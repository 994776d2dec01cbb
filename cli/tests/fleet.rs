//! A fleet of replicas sharing one OAuth client under Genesys's login rate limit, at the core
//! (each replica its own HTTP client and token pool, as separate processes have): every
//! replica gets its token with few refused requests, and stopping revokes every token.

#![allow(clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ccsecrets_core::net::{self, Budget, ClientOptions, RetryPolicy};
use ccsecrets_core::platform::genesys::{self, Credentials, Endpoints, GenesysToken};
use ccsecrets_core::platform::{PlatformError, Target};
use ccsecrets_core::pool::{PoolKey, TokenPool};
use ccsecrets_testkit::genesys::GenesysStandin;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

type Minting = Pin<Box<dyn Future<Output = Result<GenesysToken, PlatformError>> + Send>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_throttled_start_stopping_revokes_every_token() {
    const REPLICAS: usize = 9;
    let standin = GenesysStandin::start();
    standin.add_client("fleet", "fleet-secret-0123456789", "org-fleet");
    // Three tokens per 2-second window: three batches, the last two waiting out the limit.
    // The clock is 30 times Genesys's; the backoff is scaled the same way (its ceiling is the
    // window, as the default's 60 s is Genesys's minute).
    let window = Duration::from_secs(2);
    standin.set_rate_limit_window(3, window);
    let policy = RetryPolicy {
        throttle_base: window / 2,
        throttle_max: window,
        throttle_retries: 30,
        ..RetryPolicy::default()
    };
    let base = net::base_url(standin.url()).unwrap();
    let endpoints = Endpoints {
        login: base.clone(),
        api: base,
    };
    let creds = Arc::new(Credentials {
        client_id: SecretString::from("fleet"),
        client_secret: SecretString::from("fleet-secret-0123456789"),
    });
    let key = PoolKey {
        store: "vault".into(),
        mount: "secret".into(),
        path: "genesys/fleet".into(),
        version: "1".into(),
        target: Target {
            endpoints: vec![standin.url().to_owned()],
            keys: vec!["client_id".into(), "client_secret".into()],
            revoke: true,
        },
    };
    let replicas: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let (endpoints, creds, policy, key) = (
                endpoints.clone(),
                Arc::clone(&creds),
                policy.clone(),
                key.clone(),
            );
            tokio::spawn(async move {
                let http = net::http_client(&ClientOptions {
                    timeout: Duration::from_secs(10),
                    ..ClientOptions::default()
                })
                .unwrap();
                let pool = Arc::new(TokenPool::<GenesysToken>::default());
                let budget = Budget::new(Duration::from_secs(120), CancellationToken::new());
                let lease = pool
                    .acquire(&key, 50, || -> Minting {
                        let (http, endpoints, creds, policy, budget) = (
                            http.clone(),
                            endpoints.clone(),
                            Arc::clone(&creds),
                            policy.clone(),
                            budget.clone(),
                        );
                        Box::pin(async move {
                            genesys::mint(&http, &endpoints, &creds, true, &policy, &budget).await
                        })
                    })
                    .await
                    .unwrap();
                (pool, lease.handle)
            })
        })
        .collect();
    let mut pools = Vec::new();
    for r in replicas {
        pools.push(r.await.unwrap());
    }
    assert_eq!(standin.tokens_issued("fleet"), REPLICAS);
    assert_eq!(standin.live_tokens("fleet"), REPLICAS);
    let refused = standin.rate_limited("fleet");
    assert!(refused > 0, "the limit was never reached");
    assert!(
        refused <= 5 * REPLICAS,
        "{refused} refused token requests for {REPLICAS} replicas"
    );
    // Stop: every replica drains its pool at once, as each agent does on SIGTERM.
    let drains: Vec<_> = pools
        .iter()
        .map(|(pool, _)| {
            let pool = Arc::clone(pool);
            tokio::spawn(async move { pool.drain().await })
        })
        .collect();
    for d in drains {
        assert_eq!(d.await.unwrap(), 0, "a revocation failed");
    }
    assert_eq!(standin.revocations("fleet"), REPLICAS);
    assert_eq!(standin.live_tokens("fleet"), 0);
    assert_eq!(standin.invalid_calls(), 0);
    drop(pools);
    tokio::task::spawn_blocking(move || drop(standin))
        .await
        .unwrap();
}
