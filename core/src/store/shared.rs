//! Shared reads: within one configured store, concurrent and repeated reads of the same
//! secret and version make one request. A failed read is shared by those waiting on it and
//! then forgotten, so the next open tries again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::Secret;

type SharedRead<E> = Shared<BoxFuture<'static, Result<Arc<Secret>, E>>>;

/// Reads of one store, shared by key.
pub(crate) struct SharedReads<K, E> {
    reads: Mutex<HashMap<K, SharedRead<E>>>,
}

impl<K, E> Default for SharedReads<K, E> {
    fn default() -> Self {
        SharedReads {
            reads: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, E> std::fmt::Debug for SharedReads<K, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads").finish_non_exhaustive()
    }
}

impl<K, E> SharedReads<K, E>
where
    K: Eq + Hash + Clone,
    E: Clone + Send + Sync + 'static,
{
    /// The read under `key`: one in flight or done (unless it failed), else a new one that
    /// `start` begins.
    pub(crate) async fn read(
        &self,
        key: K,
        start: impl FnOnce() -> BoxFuture<'static, Result<Arc<Secret>, E>>,
    ) -> Result<Arc<Secret>, E> {
        let read = {
            let mut reads = self
                .reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match reads.get(&key) {
                Some(read) if !matches!(read.peek(), Some(Err(_))) => read.clone(),
                _ => {
                    let read = start().shared();
                    reads.insert(key, read.clone());
                    read
                }
            }
        };
        read.await
    }

    /// Forgets every shared read.
    pub(crate) fn clear(&self) {
        self.reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// Makes a boxed read from a future (keeps call sites short).
pub(crate) fn boxed<E>(
    f: impl std::future::Future<Output = Result<Arc<Secret>, E>> + Send + 'static,
) -> BoxFuture<'static, Result<Arc<Secret>, E>> {
    f.boxed()
}

/// Runs `f`, a store operation (`what`), within the budget's deadline and interrupt; `store`
/// and `reach` (what to check for connectivity) name the store in the messages.
pub(crate) async fn within<T>(
    budget: &crate::net::Budget,
    store: &str,
    reach: &str,
    what: &str,
    f: impl std::future::Future<Output = Result<T, crate::error::Problem>>,
) -> Result<T, crate::error::Problem> {
    use crate::error::Problem;
    tokio::select! {
        r = tokio::time::timeout(budget.remaining(), f) => r.unwrap_or_else(|_| Err(Problem::error(
            format!("Timed out waiting for {store}"),
            format!("{what} did not finish within the open's deadline. Check connectivity to {reach}, or raise `open_timeout_seconds`."),
        ))),
        () = budget.cancel.cancelled() => Err(Problem::error("Interrupted", format!("Interrupted while reading from {store}."))),
    }
}

/// An error and its causes as one line, each cause once (the SDKs put the service's own
/// words, such as an `AADSTS` description, in the causes; nothing is shown with `Debug`).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}
