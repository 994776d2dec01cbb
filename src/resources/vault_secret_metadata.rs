//! `ccsecrets_vault_secret_metadata` (data source): a KV v2 secret's versions and custom
//! metadata, never its data, so plans can see rotations and drive `*_wo_version` arguments.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::attr::*;
use ccsecrets_core::mint;

use super::Context;
use super::{source, validate_source};
use crate::framework::{Attribute, Block, Config, DataSource, Diagnostics, Schema, Type, Value};

const CURRENT_VERSION: &str = "current_version";
const OLDEST_VERSION: &str = "oldest_version";
const UPDATED_TIME: &str = "updated_time";
const CURRENT_VERSION_ID: &str = "current_version_id";
const VERSION_STATES: &str = "version_states";
const VERSION_CREATED_TIMES: &str = "version_created_times";

pub(super) struct VaultSecretMetadata;

fn schema() -> Schema {
    Schema::new(Block::new(
        "Reads the metadata of a secret: its current version, its versions' states and dates, and its custom metadata (Vault) or tags (AWS Secrets Manager, Azure Key Vault), never its data. Safe to keep in state; use `current_version` (Vault) or `current_version_id` (any store) to drive a `*_wo_version` argument so a rotation shows up in the plan.",
        vec![
            Attribute::optional_computed(
                MOUNT,
                Type::String,
                "Mount path of the KV version 2 secrets engine. Default `secret`. Vault only (null with another store).",
            ),
            Attribute::required(
                PATH,
                Type::String,
                "Path of the secret within the mount; with AWS Secrets Manager its name or ARN, with Azure Key Vault its name. May contain `{environment}`, replaced by the provider's `environment`.",
            ),
            Attribute::computed(
                CURRENT_VERSION,
                Type::Number,
                "The newest version number (Vault; null with another store).",
            ),
            Attribute::computed(
                OLDEST_VERSION,
                Type::Number,
                "The oldest version still kept (Vault; null with another store).",
            ),
            Attribute::computed(
                CURRENT_VERSION_ID,
                Type::String,
                "The current version's id: the version labelled `AWSCURRENT` (AWS), the newest version (Azure), or Vault's current version number as text.",
            ),
            Attribute::computed(
                VERSION_STATES,
                Type::map_of_strings(),
                "Each version's state by id, comma-separated: AWS staging labels (`AWSCURRENT`, `AWSPREVIOUS`, custom ones); Azure `enabled` or `disabled`, plus `expired`; Vault `live`, `deleted` or `destroyed`.",
            ),
            Attribute::computed(
                VERSION_CREATED_TIMES,
                Type::map_of_strings(),
                "When each version was written (RFC 3339), by id, where the store lists it (AWS, Azure).",
            ),
            Attribute::computed(
                CREATED_TIME,
                Type::String,
                "When the secret was first written (RFC 3339).",
            ),
            Attribute::computed(
                UPDATED_TIME,
                Type::String,
                "When the secret was last written (RFC 3339).",
            ),
            Attribute::computed(
                CUSTOM_METADATA,
                Type::map_of_strings(),
                "The secret's KV custom metadata; with AWS Secrets Manager the secret's tags, with Azure Key Vault the current version's tags.",
            ),
        ],
    ))
}

#[async_trait]
impl DataSource<Context> for VaultSecretMetadata {
    fn type_name(&self) -> &'static str {
        "ccsecrets_vault_secret_metadata"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        validate_source(config)
    }

    async fn read(
        &self,
        ctx: &Context,
        config: &Config,
    ) -> Result<(Value, Diagnostics), Diagnostics> {
        let src = source(config, ctx)?;
        let md = ctx
            .core
            .store
            .metadata(&ctx.core.budget(), &src.at)
            .await
            .map_err(Diagnostics::from)?;
        mint::environment_guard(
            ctx.core.environment.as_deref(),
            &src.at,
            &md.custom_metadata,
        )
        .map_err(Diagnostics::from)?;
        let custom: BTreeMap<String, Value> = md
            .custom_metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        let vault = md.current_version_id.is_empty();
        let states: BTreeMap<String, Value> = md
            .versions
            .iter()
            .map(|(id, v)| {
                let state = if vault {
                    if v.destroyed {
                        "destroyed".to_owned()
                    } else if v.is_live() {
                        "live".to_owned()
                    } else {
                        "deleted".to_owned()
                    }
                } else {
                    v.stages.join(",")
                };
                (id.clone(), Value::from(state))
            })
            .collect();
        let created: BTreeMap<String, Value> = md
            .versions
            .iter()
            .filter(|(_, v)| !v.created_time.is_empty())
            .map(|(id, v)| (id.clone(), Value::from(v.created_time.clone())))
            .collect();
        let number = |n: i64| if vault { Value::from(n) } else { Value::Null };
        Ok((
            Value::object([
                (
                    MOUNT,
                    if vault {
                        Value::from(src.at.mount.clone())
                    } else {
                        Value::Null
                    },
                ),
                (PATH, Value::from(src.config_path.clone())),
                (CURRENT_VERSION, number(md.current_version)),
                (OLDEST_VERSION, number(md.oldest_version)),
                (
                    CURRENT_VERSION_ID,
                    Value::from(if vault {
                        md.current_version.to_string()
                    } else {
                        md.current_version_id.clone()
                    }),
                ),
                (VERSION_STATES, Value::Map(states)),
                (VERSION_CREATED_TIMES, Value::Map(created)),
                (CREATED_TIME, Value::from(md.created_time)),
                (UPDATED_TIME, Value::from(md.updated_time)),
                (CUSTOM_METADATA, Value::Map(custom)),
            ]),
            Diagnostics::new(),
        ))
    }
}
