//! ccsecrets: a Terraform/OpenTofu provider that reads contact-center platform credentials from
//! Vault/OpenBao and mints short-lived Genesys Cloud and NICE CXone tokens as ephemeral
//! resources, so that no credential or token is written to `.tfvars`, plan or state.
//!
//! Layers, in the one direction data flows: [`server`] (wire protocol) → [`framework`]
//! (protocol-agnostic provider API) ← `resources` (thin adapters) → `ccsecrets_core` (secret
//! stores, platforms, the token pool and the one mint pipeline).

pub mod framework;
#[doc(hidden)]
pub mod fuzzing;
mod provider;
mod resources;
pub mod server;

pub use provider::{CcsecretsProvider, Context};

/// The provider's registry address, used in debug mode's reattach instructions and in docs.
pub const REGISTRY_ADDRESS: &str = "registry.terraform.io/ccsecrets/ccsecrets";

/// The provider as Terraform runs it.
pub fn provider() -> CcsecretsProvider {
    CcsecretsProvider::new()
}
