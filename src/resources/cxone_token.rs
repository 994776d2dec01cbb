//! `ccsecrets_cxone_token`: a NICE CXone access token minted with an access key and a
//! registered application's client credentials kept in the secret store, plus the tenant's
//! API endpoint.

use std::sync::Arc;

use async_trait::async_trait;
use ccsecrets_core::mint;
use ccsecrets_core::platform::cxone::{Cxone, CxoneSettings};
use ccsecrets_core::pool::Pools;
use ccsecrets_core::vocabulary;

use super::Context;
use super::{
    block_of, close_lease, handle_of, options, private_bytes, source, token_result, validate_reuse,
    validate_source,
};
use crate::framework::{Config, Diagnostics, EphemeralResource, Opened, Schema, decode};

/// Private-bytes tag.
const TAG: u8 = b'C';

pub(super) struct CxoneTokenResource {
    pools: Arc<Pools>,
}

impl CxoneTokenResource {
    pub(super) fn new(pools: &Arc<Pools>) -> Self {
        CxoneTokenResource {
            pools: Arc::clone(pools),
        }
    }
}

fn schema() -> Schema {
    Schema::new(block_of(&vocabulary::cxone_token()))
}

#[async_trait]
impl EphemeralResource<Context> for CxoneTokenResource {
    fn type_name(&self) -> &'static str {
        "ccsecrets_cxone_token"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        let mut d = validate_source(config);
        d.extend(validate_reuse(config));
        match decode::<CxoneSettings>(config.value()) {
            Ok(settings) => d.extend(settings.validate().into()),
            Err(e) => d.push(e),
        }
        d
    }

    async fn open(&self, ctx: &Context, config: &Config) -> Result<Opened, Diagnostics> {
        let settings: CxoneSettings = decode(config.value()).map_err(Diagnostics::from)?;
        let src = source(config, ctx)?;
        let options = options(config);
        let minted = mint::mint::<Cxone>(&ctx.core, &settings, &src, options)
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
        // Not revocable: releasing only lets the pool know no block uses it any more.
        match handle_of(TAG, private) {
            Some(handle) => close_lease::<Cxone>(&self.pools, handle).await,
            None => Diagnostics::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fields_match_the_schema_attributes_one_to_one() {
        super::super::assert_fields_match::<CxoneSettings>(&schema());
    }
}
