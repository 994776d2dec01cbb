//! The ccsecrets provider: its configuration schema, configuration read into the core's
//! typed settings (the environment fallbacks live there), and the list of what it offers.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ccsecrets_core::Core;
use ccsecrets_core::pool::Pools;
use ccsecrets_core::settings::Settings;
use tokio_util::sync::CancellationToken;

use crate::framework::{
    Config, DataSource, Diagnostic, Diagnostics, EphemeralResource, Provider, Schema, decode,
};
use crate::resources;
pub use crate::resources::Context;

/// State shared by every configuration of one provider process: the token pools (tokens must
/// be revocable at close and at shutdown, whatever configuration minted them) and the
/// configured cores, whose store sessions end at shutdown.
#[derive(Debug, Default)]
struct Shared {
    pools: Arc<Pools>,
    cancel: CancellationToken,
    cores: Mutex<Vec<Core>>,
}

/// The ccsecrets provider.
#[derive(Debug, Default)]
pub struct CcsecretsProvider {
    shared: Shared,
}

impl CcsecretsProvider {
    /// A provider with empty token pools.
    pub fn new() -> Self {
        Self::default()
    }
}

fn schema() -> Schema {
    Schema::new(resources::block_of(&ccsecrets_core::vocabulary::settings()))
}

#[async_trait]
impl Provider for CcsecretsProvider {
    type Context = Context;

    fn type_name(&self) -> &'static str {
        "ccsecrets"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        // Values not known yet (from variables during `terraform validate`) are checked at
        // configure, when they are.
        if !config.value().is_fully_known() {
            return Diagnostics::new();
        }
        match decode::<Settings>(config.value()) {
            Ok(settings) => settings.validate().into(),
            Err(e) => e.into(),
        }
    }

    async fn configure(
        &self,
        _terraform_version: &str,
        config: &Config,
    ) -> Result<(Context, Diagnostics), Diagnostics> {
        if !config.value().is_fully_known() {
            return Err(Diagnostic::error(
                "Provider configuration not known yet",
                "The ccsecrets provider block refers to values that are not known until apply (for example a resource attribute). Use values known at plan time: variables, locals or data sources.",
            )
            .into());
        }
        let settings: Settings = decode(config.value()).map_err(Diagnostics::from)?;
        let (core, warnings) = settings
            .resolve(Arc::clone(&self.shared.pools), self.shared.cancel.clone())
            .map_err(Diagnostics::from)?;
        self.shared
            .cores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(core.clone());
        Ok((Context { core }, warnings.into()))
    }

    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource<Context>>> {
        resources::ephemeral(&self.shared.pools)
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource<Context>>> {
        resources::data_sources(&self.shared.pools)
    }

    fn stop(&self) {
        self.shared.cancel.cancel();
    }

    async fn shutdown(&self) {
        let cores: Vec<Core> = std::mem::take(
            &mut *self
                .shared
                .cores
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let (failed, ()) = tokio::join!(self.shared.pools.drain(), async {
            futures_util::future::join_all(cores.iter().map(|c| c.store.shutdown())).await;
        });
        if failed > 0 {
            tracing::warn!(
                failed,
                "some tokens could not be revoked at shutdown; they expire on their own"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Value;

    #[test]
    fn schema_passes_terraforms_checks() {
        assert_eq!(schema().check(), Ok(()));
    }

    #[test]
    fn settings_fields_match_the_schema_one_to_one() {
        let s = schema();
        let mut attrs: Vec<&str> = s.block.attributes.iter().map(|a| a.name).collect();
        attrs.extend(s.block.blocks.iter().map(|b| b.type_name));
        let mut fields = crate::framework::field_names::<Settings>();
        attrs.sort_unstable();
        fields.sort_unstable();
        assert_eq!(fields, attrs);
    }

    #[test]
    fn validation_is_pinned_and_waits_for_unknowns() {
        let c = Config::new(Value::object([(
            "vault",
            Value::object([
                ("token", Value::from("t")),
                (
                    "auth_approle",
                    Value::object([
                        ("role_id", Value::from("r")),
                        ("secret_id", Value::from("s")),
                    ]),
                ),
            ]),
        )]));
        let d = CcsecretsProvider::new().validate(&c);
        let e = d.iter().next().unwrap();
        assert_eq!(e.summary, "More than one Vault authentication method");
        assert_eq!(
            e.attribute.as_ref().unwrap().to_string(),
            "vault.auth_approle"
        );
        let c = Config::new(Value::object([(
            "vault",
            Value::object([(
                "auth_jwt",
                Value::object([("role", Value::from("ci")), ("jwt", Value::Unknown)]),
            )]),
        )]));
        assert!(CcsecretsProvider::new().validate(&c).is_empty());
    }
}
