//! The secret-store seam: read a secret (latest, pinned, or the previous live version), read
//! its metadata, identify the store for pool keys. Vault/OpenBao KV v2 is the first store; an
//! in-memory fake (feature `testing`) drives the pipeline's unit tests.

#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod holding;
pub mod vault;

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Problem;
use crate::net::Budget;

pub use vault::kv::{
    KvMetadata as Metadata, KvSecret as Secret, SecretData, VersionMetadata, VersionState,
};

/// Where a secret lives in a store: a mount (Vault's KV engine path) and a path within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The KV v2 mount, without slashes at either end.
    pub mount: String,
    /// The secret's path within the mount, without slashes at either end.
    pub path: String,
    /// Whether the version was pinned in configuration (diagnostics then point at `version`).
    pub pinned: bool,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.mount, self.path)
    }
}

/// A secret store. Every method returns problems already explained in the store's own terms
/// (what to check, which permission is missing), pinned to the setting at fault.
#[async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug + 'static {
    /// Identifies the store (kind, address, namespace) in token pool keys.
    fn id(&self) -> &str;
    /// The store's name in messages, e.g. `Vault`.
    fn kind(&self) -> &'static str;
    /// Reads one version (the latest when `None`). Identical reads may be shared.
    async fn read(
        &self,
        budget: &Budget,
        at: &Location,
        version: Option<i64>,
    ) -> Result<Arc<Secret>, Problem>;
    /// Reads the secret's metadata: versions and custom metadata, never a value.
    async fn metadata(&self, budget: &Budget, at: &Location) -> Result<Metadata, Problem>;
    /// The newest live version older than `version`, if there is one.
    async fn previous(
        &self,
        budget: &Budget,
        at: &Location,
        version: i64,
    ) -> Result<Option<i64>, Problem> {
        Ok(self.metadata(budget, at).await?.previous_live(version))
    }
    /// Forgets reads shared so far, so the next read asks the store again (a long-running
    /// front end re-reads to pick up rotations; a Terraform run shares one read per secret).
    fn forget_reads(&self) {}
    /// Ends the store's session (revokes a login token).
    async fn shutdown(&self);
}
