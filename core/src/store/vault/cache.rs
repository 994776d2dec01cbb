//! Vault's shared reads (see [`crate::store::shared`]), keyed by mount, path and version.

use std::sync::Arc;

use super::{KvSecret, VaultClient, VaultError};
use crate::net::Budget;
use crate::store::shared::{SharedReads, boxed};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    mount: String,
    path: String,
    version: Option<i64>,
}

/// Reads of one Vault client, shared.
#[derive(Debug, Default)]
pub(crate) struct SecretCache {
    reads: SharedReads<Key, VaultError>,
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
        let (client, budget, k) = (client.clone(), budget.clone(), key.clone());
        self.reads
            .read(key, move || {
                boxed(async move {
                    client
                        .kv_read(&budget, &k.mount, &k.path, k.version)
                        .await
                        .map(Arc::new)
                })
            })
            .await
    }

    /// Forgets every shared read.
    pub(crate) fn clear(&self) {
        self.reads.clear();
    }
}
