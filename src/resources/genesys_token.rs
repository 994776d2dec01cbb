//! `ccsecrets_genesys_token`: a Genesys Cloud client-credentials token minted from an OAuth
//! client kept in the secret store, shared within the provider process and revoked when the
//! last block using it closes.

use std::sync::Arc;

use async_trait::async_trait;
use ccsecrets_core::mint;
use ccsecrets_core::platform::genesys::{Genesys, GenesysSettings, PLATFORM};
use ccsecrets_core::platform::regions;
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

const CLIENT_ID_KEY: &str = "client_id_key";
const CLIENT_SECRET_KEY: &str = "client_secret_key";
const REGION: &str = "region";
const DOMAIN: &str = "domain";
const LOGIN_URL: &str = "login_url";
const API_URL: &str = "api_url";
const REVOKE_ON_CLOSE: &str = "revoke_on_close";
const EXPECTED_ORGANIZATION_ID: &str = "expected_organization_id";
const ORGANIZATION_ID: &str = "organization_id";
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
    let mut attrs = source_attributes(
        "the OAuth client (keys `client_id` and `client_secret`, optionally `region` or `domain`)",
        "genesys/prod/pipeline",
    );
    attrs.extend([
        Attribute::optional_computed(CLIENT_ID_KEY, Type::String, "Key of the secret that holds the OAuth client ID. Default `client_id`."),
        Attribute::optional_computed(CLIENT_SECRET_KEY, Type::String, "Key of the secret that holds the OAuth client secret. Default `client_secret`."),
        Attribute::optional_computed(REGION, Type::String, format!("Genesys Cloud region, named as the genesyscloud provider's `aws_region` (e.g. `us-east-1`). When neither `region` nor `domain` is set, the secret's `region` or `domain` key is used. One of: {}.", regions::region_names())),
        Attribute::optional_computed(DOMAIN, Type::String, "Genesys Cloud domain instead of a region, e.g. `mypurecloud.com` (tokens from `login.<domain>`, API at `api.<domain>`)."),
        Attribute::optional(LOGIN_URL, Type::String, "Override of the token endpoint's base URL (scheme, host, port; `/oauth/token` is appended), for gateways and tests. https is required except to loopback hosts."),
        Attribute::optional_computed(API_URL, Type::String, "Base URL of the Genesys Cloud API (`/api/v2/...` is appended): `https://api.<domain>` unless overridden. Used for revocation and the organization check."),
        Attribute::optional_computed(REVOKE_ON_CLOSE, Type::Bool, "Revoke the token (`DELETE /api/v2/tokens/me`) when the last block using it closes, or when Terraform ends the provider. Default `true`."),
        Attribute::optional(EXPECTED_ORGANIZATION_ID, Type::String, "When set, the organization of the minted token (from `GET /api/v2/tokens/me`) must have this id; otherwise the open fails and the token is released (revoked unless `revoke_on_close = false`). Guards against using one environment's credentials in another."),
    ]);
    attrs.extend(rotation_attributes(PLATFORM));
    attrs.extend(token_attributes(PLATFORM));
    attrs.push(Attribute::computed(
        ORGANIZATION_ID,
        Type::String,
        "The token's organization id, when `expected_organization_id` is set (null otherwise).",
    ));
    Schema::new(Block::new(
        "Mints a Genesys Cloud OAuth token (client-credentials grant) from an OAuth client stored in Vault. The token is handed to Terraform as an ephemeral value, typically to the genesyscloud provider's `access_token`, and never written to plan or state. Blocks that need the same token share one token request within one provider process (Terraform starts a new process for each plan and apply).",
        attrs,
    ))
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
        let (token, r) = (&minted.lease.token, &minted.request);
        let mut computed: Vec<(&str, Value)> =
            source_results(&src, options, minted.latest, minted.used).into();
        computed.extend([
            (CLIENT_ID_KEY, Value::from(r.keys.0.clone())),
            (CLIENT_SECRET_KEY, Value::from(r.keys.1.clone())),
            (REGION, Value::opt_string(r.region.clone())),
            (DOMAIN, Value::opt_string(r.domain.clone())),
            (
                API_URL,
                Value::from(r.endpoints.api.as_str().trim_end_matches('/').to_owned()),
            ),
            (REVOKE_ON_CLOSE, Value::from(r.revoke)),
            (ACCESS_TOKEN, Value::Secret(token.access_token.clone())),
            (TOKEN_TYPE, Value::from(token.token_type.clone())),
            (ORGANIZATION_ID, Value::opt_string(minted.identity.clone())),
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
        match handle_of(TAG, private) {
            Some(handle) => close_lease::<Genesys>(&self.pools, handle).await,
            None => Diagnostics::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fields_match_the_schema_attributes_one_to_one() {
        super::super::assert_fields_match::<GenesysSettings>(&schema());
    }

    #[test]
    fn validate_refuses_region_and_domain_together() {
        let cfg = Config::new(Value::object([
            (PATH, Value::from("p")),
            (REGION, Value::from("us-east-1")),
            (DOMAIN, Value::from("mypurecloud.com")),
        ]));
        let d = GenesysTokenResource::new(&Arc::new(Pools::default())).validate(&cfg);
        let first = d.iter().next().unwrap();
        assert_eq!(first.summary, "Conflicting region and domain");
        assert_eq!(first.attribute.as_ref().unwrap().to_string(), "domain");
    }
}
