//! `ccsecrets_genesys_token`: a Genesys Cloud client-credentials token minted from an OAuth
//! client kept in the secret store, shared within the provider process and revoked when the
//! last block using it closes.

use std::sync::Arc;

use async_trait::async_trait;
use ccsecrets_core::mint;
use ccsecrets_core::platform::genesys::{Genesys, GenesysSettings};
use ccsecrets_core::pool::Pools;
use ccsecrets_core::vocabulary;

use super::Context;
use super::{
    block_of, close_lease, handle_of, options, private_bytes, source, token_result, validate_reuse,
    validate_source,
};
use crate::framework::{Config, Diagnostics, EphemeralResource, Opened, Schema, decode};

/// Private-bytes tag.
const TAG: u8 = b'G';

pub(super) struct GenesysTokenResource {
    pools: Arc<Pools>,
}

impl GenesysTokenResource {
    pub(super) fn new(pools: &Arc<Pools>) -> Self {
        GenesysTokenResource {
            pools: Arc::clone(pools),
        }
    }
}

fn schema() -> Schema {
    Schema::new(block_of(&vocabulary::genesys_token()))
}

#[async_trait]
impl EphemeralResource<Context> for GenesysTokenResource {
    fn type_name(&self) -> &'static str {
        "ccsecrets_genesys_token"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        let mut d = validate_source(config);
        d.extend(validate_reuse(config));
        match decode::<GenesysSettings>(config.value()) {
            Ok(settings) => d.extend(settings.validate().into()),
            Err(e) => d.push(e),
        }
        d
    }

    async fn open(&self, ctx: &Context, config: &Config) -> Result<Opened, Diagnostics> {
        let settings: GenesysSettings = decode(config.value()).map_err(Diagnostics::from)?;
        let src = source(config, ctx)?;
        let options = options(config);
        let minted = mint::mint::<Genesys>(&ctx.core, &settings, &src, options)
            .await
            .map_err(Diagnostics::from)?;
        Ok(Opened {
            result: token_result(config, &minted, &src, options),
            private: Some(private_bytes(TAG, minted.lease.handle)),
            renew_at: None,
            warnings: minted.warnings.into(),
        })
    }

    async fn close(&self, private: &[u8]) -> Diagnostics {
        match handle_of(TAG, private) {
            Some(handle) => close_lease::<Genesys>(&self.pools, handle).await,
            None => Diagnostics::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Value;

    #[test]
    fn settings_fields_match_the_schema_attributes_one_to_one() {
        super::super::assert_fields_match::<GenesysSettings>(&schema());
    }

    #[test]
    fn validate_refuses_region_and_domain_together() {
        let cfg = Config::new(Value::object([
            ("path", Value::from("p")),
            ("region", Value::from("us-east-1")),
            ("domain", Value::from("mypurecloud.com")),
        ]));
        let d = GenesysTokenResource::new(&Arc::new(Pools::default())).validate(&cfg);
        let first = d.iter().next().unwrap();
        assert_eq!(first.summary, "Conflicting region and domain");
        assert_eq!(first.attribute.as_ref().unwrap().to_string(), "domain");
    }
}
