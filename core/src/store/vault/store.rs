//! Vault/OpenBao KV v2 behind the store seam: reads shared through the cache, and every Vault
//! error explained in Vault's terms (the CLI command to try, the policy to grant).

use std::sync::Arc;

use async_trait::async_trait;

use super::{SecretCache, VaultClient, VaultError, VaultSettings};
use crate::error::{Field, Problem};
use crate::net::{self, Budget};
use crate::store::{Location, Metadata, Pin, Secret, SecretStore};

/// A configured Vault: one client (one login per process) and its shared reads.
#[derive(Debug)]
pub struct VaultStore {
    client: VaultClient,
    cache: SecretCache,
    id: String,
}

impl VaultStore {
    /// A store for these settings; fails only when the TLS settings cannot be used.
    pub fn new(settings: VaultSettings) -> Result<Self, String> {
        let id = format!(
            "vault|{}#{}",
            settings.address,
            settings.namespace.as_deref().unwrap_or("")
        );
        Ok(VaultStore {
            client: VaultClient::new(settings)?,
            cache: SecretCache::default(),
            id,
        })
    }

    /// The address, for logs.
    pub fn address(&self) -> &str {
        self.client.address()
    }
}

#[async_trait]
impl SecretStore for VaultStore {
    fn id(&self) -> &str {
        &self.id
    }

    async fn read(
        &self,
        budget: &Budget,
        at: &Location,
        pin: &Pin,
    ) -> Result<Arc<Secret>, Problem> {
        let version = match pin {
            Pin::Latest => None,
            Pin::Number(n) => Some(*n),
            other => {
                return Err(crate::mint::foreign_pin(
                    other,
                    crate::store::StoreKind::Vault,
                ));
            }
        };
        self.cache
            .read(&self.client, budget, &at.mount, &at.path, version)
            .await
            .map_err(|e| explain(&e, at))
    }

    async fn metadata(&self, budget: &Budget, at: &Location) -> Result<Metadata, Problem> {
        self.client
            .kv_metadata(budget, &at.mount, &at.path)
            .await
            .map_err(|e| explain(&e, at))
    }

    fn forget_reads(&self) {
        self.cache.clear();
    }

    async fn shutdown(&self) {
        self.client.shutdown().await;
    }
}

/// A Vault error as a problem that says what to check.
pub(crate) fn explain(e: &VaultError, at: &Location) -> Problem {
    let version_or_path = if at.pinned { "version" } else { "path" };
    let (mount, path) = (&at.mount, &at.path);
    match e.root() {
        VaultError::NotFound { .. } => Problem::error(
            "Secret not found in Vault",
            format!(
                "{e}. Check `mount` ({mount:?}) and `path` ({path:?}): the secret must be in a KV version 2 secrets engine, readable with `bao kv get -mount={mount} {path}`."
            ),
        )
        .at_attr(version_or_path),
        VaultError::NoMount { .. } => Problem::error(
            "Vault mount not found",
            format!("{e}. Check `mount`, and the namespace if you use one."),
        )
        .at_attr("mount"),
        VaultError::VersionGone { .. } => Problem::error(
            "Secret version not available",
            format!("{e}. Choose a live version, or undelete this one."),
        )
        .at_attr(version_or_path),
        VaultError::Forbidden { what, .. } => Problem::error(
            "Vault denied access",
            format!(
                "{e}. Check that the Vault token is valid and that its policy grants \"read\" on \"{what}\" (for example `path \"{what}\" {{ capabilities = [\"read\"] }}`)."
            ),
        )
        .at_attr("path"),
        other => explain_session(other, e),
    }
}

/// Problems of the Vault session itself (reachability, login), not of one secret.
pub(crate) fn explain_session(root: &VaultError, e: &VaultError) -> Problem {
    match root {
        VaultError::Unreachable { reason, .. } if reason == net::TIMED_OUT => Problem::error(
            "Vault did not answer in time",
            format!(
                "{e}. Check that Vault is healthy, or raise `timeout_seconds` (each request) and `open_timeout_seconds` (the whole open)."
            ),
        ),
        VaultError::Unreachable { .. } => Problem::error(
            "Cannot reach Vault",
            format!(
                "{e}. Check the vault `address` (or VAULT_ADDR), that Vault is running and reachable from this machine, and for TLS errors `ca_cert_file` (or VAULT_CACERT)."
            ),
        ),
        VaultError::Unavailable { sealed: true, .. } => Problem::error(
            "Vault is sealed",
            format!("{e}. Unseal Vault (or point at an unsealed node) and try again."),
        ),
        VaultError::Unavailable { .. } => Problem::error(
            "Vault is unavailable",
            format!("{e}. Retry later, or raise `max_retries` / `open_timeout_seconds`."),
        ),
        VaultError::NoToken => Problem::error(
            "No Vault token",
            "There is no way to authenticate to Vault. Set `token` in the vault block or the VAULT_TOKEN environment variable, log in with `bao login` / `vault login` (which writes ~/.vault-token), or configure an `auth_approle`, `auth_jwt` or `auth_kubernetes` block.",
        )
        .at(Field::root("vault")),
        VaultError::Login { method, .. } => Problem::error(
            "Vault login failed",
            format!(
                "{e}. Check the vault auth block: the role, the credential it reads, and that the auth method is enabled at that mount.{}",
                if *method == "kubernetes" {
                    " Vault reports every TokenReview refusal as \"permission denied\": check that the pod runs under a service account and namespace the role is bound to, that Vault reaches the auth method's kubernetes_host, and Vault's debug log for the reason."
                } else {
                    ""
                }
            ),
        ),
        VaultError::Deadline(_) => Problem::error(
            "Timed out waiting for Vault",
            format!("{e}. Check that Vault is up, or raise `open_timeout_seconds`."),
        ),
        VaultError::Cancelled => Problem::error("Interrupted", "Interrupted while reading from Vault."),
        _ => Problem::error("Unexpected response from Vault", format!("{e}.")),
    }
}
