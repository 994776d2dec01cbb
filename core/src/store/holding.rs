//! A store that keeps the last successful read of each secret, in memory and in secret types,
//! and serves it while the store cannot be read: a long-running front end (the agent) keeps
//! minting from the credential it holds when Vault is down, and picks up rotations again when
//! it is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Location, Metadata, Pin, Secret, SecretStore, StoreKind, VersionMetadata};
use crate::error::Problem;
use crate::net::Budget;

/// The reads held, by location and pinned version.
type Held = HashMap<(Location, Pin), Arc<Secret>>;

/// Wraps a store; see the module docs.
#[derive(Debug)]
pub struct HoldingStore {
    inner: Arc<dyn SecretStore>,
    held: Mutex<Held>,
    reachable: AtomicBool,
}

impl HoldingStore {
    /// Holds the reads of `inner`.
    pub fn new(inner: Arc<dyn SecretStore>) -> Self {
        HoldingStore {
            inner,
            held: Mutex::new(HashMap::new()),
            reachable: AtomicBool::new(true),
        }
    }

    /// Whether the last read reached the store.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::SeqCst)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SecretStore for HoldingStore {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn store_kind(&self) -> StoreKind {
        self.inner.store_kind()
    }

    async fn read(
        &self,
        budget: &Budget,
        at: &Location,
        pin: &Pin,
    ) -> Result<Arc<Secret>, Problem> {
        let key = (at.clone(), pin.clone());
        match self.inner.read(budget, at, pin).await {
            Ok(secret) => {
                self.reachable.store(true, Ordering::SeqCst);
                self.held().insert(key, Arc::clone(&secret));
                Ok(secret)
            }
            Err(problem) => {
                self.reachable.store(false, Ordering::SeqCst);
                let held = self.held().get(&key).cloned();
                match held {
                    Some(secret) => {
                        tracing::warn!(
                            secret = %at,
                            version = %secret.metadata.id(),
                            reason = %problem.summary,
                            "cannot read the store; using the credential read last"
                        );
                        Ok(secret)
                    }
                    None => Err(problem),
                }
            }
        }
    }

    async fn metadata(&self, budget: &Budget, at: &Location) -> Result<Metadata, Problem> {
        self.inner.metadata(budget, at).await
    }

    async fn previous(
        &self,
        budget: &Budget,
        at: &Location,
        current: &VersionMetadata,
    ) -> Result<Option<Pin>, Problem> {
        self.inner.previous(budget, at, current).await
    }

    fn forget_reads(&self) {
        self.inner.forget_reads();
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fake::FakeStore;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn a_held_read_is_served_while_the_store_is_down() {
        let fake = Arc::new(FakeStore::default());
        let at = Location {
            mount: "secret".into(),
            path: "p".into(),
            pinned: false,
        };
        fake.put("p", r#"{"client_secret":"s1"}"#);
        let store = HoldingStore::new(fake.clone());
        let budget = Budget::new(std::time::Duration::from_secs(5), CancellationToken::new());
        // Nothing held yet: a failure is a failure.
        fake.set_down(true);
        assert!(store.read(&budget, &at, &Pin::Latest).await.is_err());
        assert!(!store.reachable());
        fake.set_down(false);
        let first = store.read(&budget, &at, &Pin::Latest).await.unwrap();
        assert!(store.reachable());
        fake.set_down(true);
        let held = store.read(&budget, &at, &Pin::Latest).await.unwrap();
        assert!(Arc::ptr_eq(&first, &held));
        assert!(!store.reachable());
        // Back up: a rotation is picked up.
        fake.set_down(false);
        fake.put("p", r#"{"client_secret":"s2"}"#);
        let next = store.read(&budget, &at, &Pin::Latest).await.unwrap();
        assert_eq!(next.metadata.version, first.metadata.version + 1);
    }
}
