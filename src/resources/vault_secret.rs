//! `ccsecrets_vault_secret`: the generic KV v2 read, as an ephemeral value.

use std::collections::BTreeMap;

use async_trait::async_trait;

use ccsecrets_core::{mint, vocabulary};

use super::Context;
use super::attr::*;
use super::{block_of, source, validate_source};
use crate::framework::{Config, Diagnostics, EphemeralResource, Opened, Schema, Value, prefill};

const DATA: &str = "data";
const DATA_JSON: &str = "data_json";

pub(super) struct VaultSecret;

fn schema() -> Schema {
    Schema::new(block_of(&vocabulary::vault_secret()))
}

#[async_trait]
impl EphemeralResource<Context> for VaultSecret {
    fn type_name(&self) -> &'static str {
        "ccsecrets_vault_secret"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        validate_source(config)
    }

    async fn open(&self, ctx: &Context, config: &Config) -> Result<Opened, Diagnostics> {
        let src = source(config, ctx)?;
        let secret = mint::read(&ctx.core, &ctx.core.budget(), &src, &src.pin)
            .await
            .map_err(Diagnostics::from)?;
        let data: BTreeMap<String, Value> = secret
            .data
            .entries()
            .iter()
            .map(|(k, v)| (k.clone(), Value::Secret(v.clone())))
            .collect();
        let metadata: BTreeMap<String, Value> = secret
            .metadata
            .custom_metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        let result = mint::source_outputs(&src, &secret.metadata)
            .into_iter()
            .map(|(name, o)| (name, super::value_of(o)))
            .chain([
                (DATA, Value::Map(data)),
                (DATA_JSON, Value::Secret(secret.data.json().clone())),
                (
                    CREATED_TIME,
                    Value::from(secret.metadata.created_time.clone()),
                ),
                (CUSTOM_METADATA, Value::Map(metadata)),
            ]);
        Ok(Opened {
            result: prefill(config, result),
            ..Opened::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fields_match_the_schema_attributes_one_to_one() {
        super::super::assert_fields_match::<mint::SecretSettings>(&schema());
    }
}
