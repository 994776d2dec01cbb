//! `ccsecrets_cxone_token`: a NICE CXone access token minted with an access key and a
//! registered application's client credentials kept in the secret store, plus the tenant's
//! API endpoint.

use std::sync::Arc;

use async_trait::async_trait;
use ccsecrets_core::mint;
use ccsecrets_core::platform::cxone::{Cxone, CxoneSettings, DEFAULT_ISSUER, KEYS, PLATFORM};
use ccsecrets_core::pool::Pools;

use super::Context;
use super::attr::*;
use super::{
    close_lease, expiry_values, handle_of, options, private_bytes, rotation_attributes, source,
    source_attributes, source_results, token_attributes, validate_reuse, validate_source,
};
use crate::framework::{
    Attribute, Block, Config, Diagnostics, EphemeralResource, Opened, Schema, Type, Value, decode,
    prefill,
};

const ISSUER: &str = "issuer";
const EXPECTED_TENANT_ID: &str = "expected_tenant_id";
const TENANT_ID: &str = "tenant_id";
const AREA: &str = "area";
const API_ENDPOINT: &str = "api_endpoint";
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
    let mut attrs = source_attributes(
        "the access key and application credentials (keys `access_key_id`, `access_key_secret`, `client_id`, `client_secret`, optionally `issuer`)",
        "cxone/prod/pipeline",
    );
    for (name, default) in KEYS {
        attrs.push(Attribute::optional_computed(
            name,
            Type::String,
            format!(
                "Key of the secret that holds the {}. Default `{default}`.",
                default.replace('_', " ")
            ),
        ));
    }
    attrs.extend([
        Attribute::optional_computed(ISSUER, Type::String, format!("CXone authentication issuer (token endpoint `<issuer>/auth/token`), e.g. `https://cxone-gov.niceincontact.com` for FedRAMP. When not set, the secret's `issuer` key, else `{DEFAULT_ISSUER}`. https is required except to loopback hosts.")),
        Attribute::optional(EXPECTED_TENANT_ID, Type::String, "When set, the token's `tenantId` claim must equal it; otherwise the open fails. Guards against using one environment's access key in another."),
    ]);
    attrs.extend(rotation_attributes(PLATFORM));
    attrs.extend(token_attributes(PLATFORM));
    attrs.extend([
        Attribute::computed(
            TENANT_ID,
            Type::String,
            "The tenant id, from the token's `tenantId` claim.",
        ),
        Attribute::computed(
            AREA,
            Type::String,
            "The tenant's area (e.g. `na1`), from the cxone-configuration discovery document.",
        ),
        Attribute::computed(
            API_ENDPOINT,
            Type::String,
            "The tenant's API base URL (e.g. `https://api-na1.niceincontact.com`), from discovery.",
        ),
    ]);
    Schema::new(Block::new(
        "Mints a NICE CXone access token (OAuth password grant with an access key) from credentials stored in Vault, and discovers the tenant's API endpoint. The token is an ephemeral value, never written to plan or state. CXone documents no revocation for these tokens; they expire after their lifetime (one hour by default).",
        attrs,
    ))
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
        let (token, r) = (&minted.lease.token, &minted.request);
        let mut computed: Vec<(&str, Value)> =
            source_results(&src, options, minted.latest, minted.used).into();
        computed.extend(
            r.keys
                .iter()
                .map(|(attr, key)| (*attr, Value::from(key.clone()))),
        );
        computed.extend([
            (
                ISSUER,
                Value::from(r.issuer.as_str().trim_end_matches('/').to_owned()),
            ),
            (ACCESS_TOKEN, Value::Secret(token.access_token.clone())),
            (TOKEN_TYPE, Value::from(token.token_type.clone())),
            (TENANT_ID, Value::from(token.tenant_id.clone())),
            (AREA, Value::from(token.area.clone())),
            (API_ENDPOINT, Value::from(token.api_endpoint.clone())),
        ]);
        computed.extend(expiry_values(token.expires_at));
        Ok(Opened {
            result: prefill(config, computed),
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
