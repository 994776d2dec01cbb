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

pub(super) struct VaultSecretMetadata;

fn schema() -> Schema {
    Schema::new(Block::new(
        "Reads the metadata of a KV version 2 secret: its current version, times and custom metadata, never its data. Safe to keep in state; use `current_version` to drive a `*_wo_version` argument so a rotation shows up in the plan.",
        vec![
            Attribute::optional_computed(
                MOUNT,
                Type::String,
                "Mount path of the KV version 2 secrets engine. Default `secret`.",
            ),
            Attribute::required(
                PATH,
                Type::String,
                "Path of the secret within the mount. May contain `{environment}`, replaced by the provider's `environment`.",
            ),
            Attribute::computed(CURRENT_VERSION, Type::Number, "The newest version number."),
            Attribute::computed(
                OLDEST_VERSION,
                Type::Number,
                "The oldest version still kept.",
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
                "The secret's KV custom metadata.",
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
        Ok((
            Value::object([
                (MOUNT, Value::from(src.at.mount.clone())),
                (PATH, Value::from(src.config_path.clone())),
                (CURRENT_VERSION, Value::from(md.current_version)),
                (OLDEST_VERSION, Value::from(md.oldest_version)),
                (CREATED_TIME, Value::from(md.created_time)),
                (UPDATED_TIME, Value::from(md.updated_time)),
                (CUSTOM_METADATA, Value::Map(custom)),
            ]),
            Diagnostics::new(),
        ))
    }
}
