//! Shared reads: within one configured provider, concurrent and repeated reads of the same
//! mount, path and version make one request. A failed read is shared by those waiting on it
//! and then forgotten, so the next open tries again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::{KvSecret, VaultClient, VaultError};
use crate::net::Budget;

type SharedRead = Shared<BoxFuture<'static, Result<Arc<KvSecret>, VaultError>>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    mount: String,
    path: String,
    version: Option<i64>,
}

/// Reads of one Vault client, shared.
#[derive(Default)]
pub(crate) struct SecretCache {
    reads: Mutex<HashMap<Key, SharedRead>>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache").finish_non_exhaustive()
    }
}

impl SecretCache {
    /// Reads `mount/path` at `version` (latest when `None`) through `client`, sharing the
    /// request with any identical read in flight or already done.
    pub(crate) async fn read(
        &self,
        client: &VaultClient,
        budget: &Budget,
        mount: &str,
        path: &str,
        version: Option<i64>,
    ) -> Result<Arc<KvSecret>, VaultError> {
        let key = Key {
            mount: mount.to_owned(),
            path: path.to_owned(),
            version,
        };
        let read = {
            let mut reads = self
                .reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match reads.get(&key) {
                Some(read) if !matches!(read.peek(), Some(Err(_))) => read.clone(),
                _ => {
                    let (client, budget, k) = (client.clone(), budget.clone(), key.clone());
                    let read = async move {
                        client
                            .kv_read(&budget, &k.mount, &k.path, k.version)
                            .await
                            .map(Arc::new)
                    }
                    .boxed()
                    .shared();
                    reads.insert(key, read.clone());
                    read
                }
            }
        };
        read.await
    }
}

impl SecretCache {
    /// Forgets every shared read.
    pub(crate) fn clear(&self) {
        self.reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}
