//! The secret-store seam: read a secret (latest, pinned, or the previous live version), read
//! its metadata, identify the store for pool keys. Vault/OpenBao KV v2, AWS Secrets Manager
//! and Azure Key Vault implement it; an in-memory fake (feature `testing`) drives the
//! pipeline's unit tests.

pub mod aws;
pub mod azure;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod holding;
pub(crate) mod json;
pub(crate) mod shared;
pub mod vault;

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Problem;
use crate::net::Budget;

pub use vault::kv::{
    KvMetadata as Metadata, KvSecret as Secret, SecretData, VersionMetadata, VersionState,
};

/// Which kind of store is configured: decides which source settings apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Vault / OpenBao KV version 2: a mount, numbered versions.
    Vault,
    /// AWS Secrets Manager: names or ARNs, version ids and staging labels.
    AwsSecretsManager,
    /// Azure Key Vault: names and version ids.
    AzureKeyVault,
}

impl StoreKind {
    /// The store's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Vault => "Vault",
            StoreKind::AwsSecretsManager => "AWS Secrets Manager",
            StoreKind::AzureKeyVault => "Azure Key Vault",
        }
    }
}

/// Which version of a secret to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Pin {
    /// The latest (Vault), `AWSCURRENT` (AWS), the current version (Azure).
    #[default]
    Latest,
    /// A Vault KV version number.
    Number(i64),
    /// An AWS or Azure version id.
    Id(String),
    /// An AWS staging label.
    Stage(String),
}

impl Pin {
    /// Whether a version was chosen in configuration.
    pub fn is_pinned(&self) -> bool {
        !matches!(self, Pin::Latest)
    }

    /// The setting that chose it, for diagnostics.
    pub fn attr(&self) -> &'static str {
        match self {
            Pin::Latest => "path",
            Pin::Number(_) => "version",
            Pin::Id(_) => "version_id",
            Pin::Stage(_) => "version_stage",
        }
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pin::Latest => f.write_str("the current version"),
            Pin::Number(n) => write!(f, "version {n}"),
            Pin::Id(id) => write!(f, "version {id}"),
            Pin::Stage(stage) => write!(f, "the version labelled {stage}"),
        }
    }
}

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
        if self.mount.is_empty() {
            f.write_str(&self.path)
        } else {
            write!(f, "{}/{}", self.mount, self.path)
        }
    }
}

/// A secret store. Every method returns problems already explained in the store's own terms
/// (what to check, which permission is missing), pinned to the setting at fault.
#[async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug + 'static {
    /// Identifies the store (kind, address, namespace) in token pool keys.
    fn id(&self) -> &str;
    /// The store's name in messages, e.g. `Vault`.
    fn kind(&self) -> &'static str {
        self.store_kind().name()
    }
    /// Which kind of store this is (which source settings apply).
    fn store_kind(&self) -> StoreKind {
        StoreKind::Vault
    }
    /// Reads one version. Identical reads may be shared.
    async fn read(&self, budget: &Budget, at: &Location, pin: &Pin)
    -> Result<Arc<Secret>, Problem>;
    /// Reads the secret's metadata: versions and custom metadata, never a value.
    async fn metadata(&self, budget: &Budget, at: &Location) -> Result<Metadata, Problem>;
    /// The version to try when the credential in `current` is rejected: Vault's newest live
    /// version older than it, AWS's `AWSPREVIOUS`, Azure's newest older enabled, unexpired
    /// version.
    async fn previous(
        &self,
        budget: &Budget,
        at: &Location,
        current: &VersionMetadata,
    ) -> Result<Option<Pin>, Problem> {
        Ok(self
            .metadata(budget, at)
            .await?
            .previous_live(current.version)
            .map(Pin::Number))
    }
    /// Forgets reads shared so far, so the next read asks the store again (a long-running
    /// front end re-reads to pick up rotations; a Terraform run shares one read per secret).
    fn forget_reads(&self) {}
    /// Ends the store's session (revokes a login token).
    async fn shutdown(&self);
}
