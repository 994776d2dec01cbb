//! An in-memory secret store for unit tests: versions, deletions, custom metadata, and a
//! count of reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    Location, Metadata, Pin, Secret, SecretData, SecretStore, VersionMetadata, VersionState,
};
use crate::error::Problem;
use crate::net::Budget;

#[derive(Default)]
struct Entry {
    /// (data as JSON, deleted)
    versions: Vec<(String, bool)>,
    custom_metadata: BTreeMap<String, String>,
}

/// A store held in memory.
#[derive(Default)]
pub struct FakeStore {
    secrets: Mutex<BTreeMap<String, Entry>>,
    /// Reads served (secret versions, not metadata).
    pub reads: AtomicUsize,
    /// While set, every read fails as an unreachable store would.
    down: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for FakeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeStore")
    }
}

impl FakeStore {
    /// Adds a version of the secret at `path` (mount `secret`) holding the JSON object `data`.
    pub fn put(&self, path: &str, data: &str) -> i64 {
        let mut s = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = s.entry(path.to_owned()).or_default();
        e.versions.push((data.to_owned(), false));
        i64::try_from(e.versions.len()).unwrap_or(i64::MAX)
    }

    /// Sets a custom metadata entry of the secret at `path`.
    pub fn set_metadata(&self, path: &str, key: &str, value: &str) {
        let mut s = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.entry(path.to_owned())
            .or_default()
            .custom_metadata
            .insert(key.to_owned(), value.to_owned());
    }

    /// Soft-deletes one version.
    pub fn delete(&self, path: &str, version: i64) {
        let mut s = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = s.get_mut(path).and_then(|e| {
            e.versions
                .get_mut(usize::try_from(version - 1).unwrap_or(usize::MAX))
        }) {
            v.1 = true;
        }
    }

    /// Makes every read fail (or succeed again), as a store that is down.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Wraps the store for a core.
    pub fn shared(self) -> Arc<dyn SecretStore> {
        Arc::new(self)
    }
}

fn not_found(at: &Location) -> Problem {
    Problem::error("Secret not found in Vault", format!("no secret at {at}")).at_attr("path")
}

#[async_trait]
impl SecretStore for FakeStore {
    fn id(&self) -> &str {
        "fake"
    }

    fn kind(&self) -> &'static str {
        "fake"
    }

    async fn read(
        &self,
        _budget: &Budget,
        at: &Location,
        pin: &Pin,
    ) -> Result<Arc<Secret>, Problem> {
        let version = match pin {
            Pin::Number(n) => Some(*n),
            _ => None,
        };
        if self.down.load(Ordering::SeqCst) {
            return Err(Problem::error(
                "Cannot reach Vault",
                "the fake store is down",
            ));
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        let s = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = s.get(&at.path).ok_or_else(|| not_found(at))?;
        let n = version.unwrap_or(i64::try_from(e.versions.len()).unwrap_or(0));
        let (json, deleted) = usize::try_from(n - 1)
            .ok()
            .and_then(|i| e.versions.get(i))
            .ok_or_else(|| not_found(at))?;
        if *deleted {
            return Err(Problem::error(
                "Secret version not available",
                format!("version {n} of {at} has been deleted"),
            ));
        }
        let data: SecretData = serde_json::from_str(json)
            .map_err(|_| Problem::error("Unexpected response from Vault", "not a JSON object"))?;
        Ok(Arc::new(Secret {
            data,
            metadata: VersionMetadata {
                version: n,
                custom_metadata: e.custom_metadata.clone(),
                ..VersionMetadata::default()
            },
        }))
    }

    async fn metadata(&self, _budget: &Budget, at: &Location) -> Result<Metadata, Problem> {
        let s = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = s.get(&at.path).ok_or_else(|| not_found(at))?;
        Ok(Metadata {
            current_version: i64::try_from(e.versions.len()).unwrap_or(0),
            oldest_version: 1,
            custom_metadata: e.custom_metadata.clone(),
            versions: e
                .versions
                .iter()
                .enumerate()
                .map(|(i, (_, deleted))| {
                    (
                        (i + 1).to_string(),
                        VersionState {
                            deletion_time: if *deleted {
                                "2026-01-01T00:00:00Z".into()
                            } else {
                                String::new()
                            },
                            destroyed: false,
                            ..VersionState::default()
                        },
                    )
                })
                .collect(),
            ..Metadata::default()
        })
    }

    async fn shutdown(&self) {}
}
