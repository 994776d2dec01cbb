//! The protocol-agnostic provider framework: values, schemas, diagnostics, the msgpack codec
//! and the traits a provider, its ephemeral resources and data sources implement.
//! It knows nothing of gRPC, Vault, Genesys or CXone.

mod codec;
mod config;
mod decode;
mod diag;
mod schema;
mod value;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

pub use codec::{CodecError, decode_json, decode_msgpack, encode_msgpack};
pub use config::Config;
pub use decode::{decode, field_names};
pub use diag::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity};
pub use schema::{Attribute, Block, NestedBlock, Nesting, Schema, Type};
pub use value::{Number, Value};

/// A result pre-filled from the configuration: every configured value comes back unchanged
/// (Terraform requires it), and each `(name, value)` the resource computed fills an attribute
/// the configuration left null. A resource sets only what it computes.
pub fn prefill<'a>(config: &Config, computed: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let mut map = match config.value() {
        Value::Map(m) => m.clone(),
        _ => std::collections::BTreeMap::new(),
    };
    for (name, value) in computed {
        let slot = map.entry(name.to_owned()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
    Value::Map(map)
}

/// What a successful open hands back to Terraform.
#[derive(Debug, Default)]
pub struct Opened {
    /// The result object: the configuration echoed back with computed attributes filled in.
    pub result: Value,
    /// Opaque bytes Terraform keeps in memory and hands to renew and close.
    /// They must never contain a secret: use a handle into provider-held state.
    pub private: Option<Vec<u8>>,
    /// When Terraform should call renew; `None` means never.
    pub renew_at: Option<SystemTime>,
    /// Warnings to show alongside the result.
    pub warnings: Diagnostics,
}

/// What a successful renew hands back.
#[derive(Debug, Default)]
pub struct Renewed {
    /// Replacement private bytes (Terraform still passes open's bytes to close).
    pub private: Option<Vec<u8>>,
    /// When to renew next; `None` stops renewals.
    pub renew_at: Option<SystemTime>,
}

/// An ephemeral resource: something opened for the duration of a Terraform phase and never
/// written to plan or state. `C` is the provider's configured context.
#[async_trait]
pub trait EphemeralResource<C>: Send + Sync {
    /// Full type name, including the provider prefix (e.g. `ccsecrets_genesys_token`).
    fn type_name(&self) -> &'static str;

    /// The configuration and result schema.
    fn schema(&self) -> Schema;

    /// Checks a configuration that may still contain unknown values.
    fn validate(&self, _config: &Config) -> Diagnostics {
        Diagnostics::new()
    }

    /// Produces the result. Errors mean nothing was opened: Terraform will not call close, so
    /// anything acquired before the failure must be released here.
    async fn open(&self, ctx: &C, config: &Config) -> Result<Opened, Diagnostics>;

    /// Extends whatever open acquired. Only called when open set `renew_at`.
    async fn renew(&self, _ctx: &C, _private: &[u8]) -> Result<Renewed, Diagnostics> {
        Ok(Renewed::default())
    }

    /// Releases what open acquired. Receives open's private bytes. Terraform does not always
    /// call it, so a provider must also release at shutdown.
    async fn close(&self, _private: &[u8]) -> Diagnostics {
        Diagnostics::new()
    }
}

/// A data source: read during planning, stored in state. Must never return a secret.
#[async_trait]
pub trait DataSource<C>: Send + Sync {
    /// Full type name, including the provider prefix.
    fn type_name(&self) -> &'static str;

    /// The configuration and result schema.
    fn schema(&self) -> Schema;

    /// Checks a configuration that may still contain unknown values.
    fn validate(&self, _config: &Config) -> Diagnostics {
        Diagnostics::new()
    }

    /// Reads the data. Warnings go alongside the state value.
    async fn read(&self, ctx: &C, config: &Config) -> Result<(Value, Diagnostics), Diagnostics>;
}

/// A provider: its configuration schema, how configuration becomes a context, and the list of
/// what it offers.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// What `configure` produces and every operation receives.
    type Context: Send + Sync + 'static;

    /// The provider type name, e.g. `ccsecrets`.
    fn type_name(&self) -> &'static str;

    /// The provider block schema.
    fn schema(&self) -> Schema;

    /// Checks a provider configuration that may still contain unknown values.
    fn validate(&self, _config: &Config) -> Diagnostics {
        Diagnostics::new()
    }

    /// Turns configuration into a context. Warnings go alongside a success.
    async fn configure(
        &self,
        terraform_version: &str,
        config: &Config,
    ) -> Result<(Self::Context, Diagnostics), Diagnostics>;

    /// The ephemeral resources this provider offers.
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource<Self::Context>>>;

    /// The data sources this provider offers.
    fn data_sources(&self) -> Vec<Arc<dyn DataSource<Self::Context>>> {
        Vec::new()
    }

    /// The user interrupted Terraform: abandon waits and retries in progress.
    fn stop(&self) {}

    /// The process is about to end: release everything still held. Must finish quickly;
    /// Terraform kills the process two seconds after asking it to stop.
    async fn shutdown(&self) {}
}
