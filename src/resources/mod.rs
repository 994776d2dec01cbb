//! Ephemeral resources and data sources, one file each, plus what they share: attribute
//! names, the KV source attributes, the environment guard, rotation fallback, and the one
//! place where Vault and platform errors become diagnostics.

mod cxone_token;
mod genesys_token;
mod vault_secret;
mod vault_secret_metadata;

use std::sync::Arc;
use std::time::Duration;

use ccsecrets_core::mint::{self, Options, Output, Source};
use ccsecrets_core::pool::Pools;
use ccsecrets_core::vocabulary::{Kind, Role, Words};

use crate::framework::{
    Attribute, Block, Config, DataSource, Diagnostic, Diagnostics, EphemeralResource, NestedBlock,
    Type, Value, prefill,
};

/// Everything an operation needs, built by the provider's `configure`: the core (store,
/// HTTP client, environment, deadlines, shared pools). Defined here so that resources never
/// import the provider: the provider lists resources, not the reverse.
#[derive(Debug)]
pub struct Context {
    pub(crate) core: ccsecrets_core::Core,
}

/// The ephemeral resources, in documentation order. Each gets the process's token pools, so
/// close and shutdown can release what any configuration minted.
pub(crate) fn ephemeral(pools: &Arc<Pools>) -> Vec<Arc<dyn EphemeralResource<Context>>> {
    vec![
        Arc::new(genesys_token::GenesysTokenResource::new(pools)),
        Arc::new(cxone_token::CxoneTokenResource::new(pools)),
        Arc::new(vault_secret::VaultSecret),
    ]
}

/// The data sources.
pub(crate) fn data_sources(_pools: &Arc<Pools>) -> Vec<Arc<dyn DataSource<Context>>> {
    vec![Arc::new(vault_secret_metadata::VaultSecretMetadata)]
}

/// Attribute names shared by several resources.
pub(crate) mod attr {
    pub(crate) const MOUNT: &str = "mount";
    pub(crate) const PATH: &str = "path";
    pub(crate) const VERSION: &str = "version";
    pub(crate) const VERSION_ID: &str = "version_id";
    pub(crate) const VERSION_STAGE: &str = "version_stage";
    pub(crate) const ROTATION_FALLBACK: &str = "rotation_fallback";
    pub(crate) const REUSE_PERCENT: &str = "reuse_min_remaining_percent";
    pub(crate) const CUSTOM_METADATA: &str = "custom_metadata";
    pub(crate) const CREATED_TIME: &str = "created_time";
}
use attr::*;

/// A block of the provider's schema from the core's words (the one vocabulary): names,
/// types, roles and descriptions are the command line's too.
pub(crate) fn block_of(words: &Words) -> Block {
    let attributes = words
        .terms
        .iter()
        .map(|t| {
            let ty = match t.kind {
                Kind::String => Type::String,
                Kind::Number => Type::Number,
                Kind::Bool => Type::Bool,
                Kind::StringMap => Type::map_of_strings(),
            };
            let a = match t.role {
                Role::Required => Attribute::required(t.name, ty, t.doc.clone()),
                Role::Optional => Attribute::optional(t.name, ty, t.doc.clone()),
                Role::Defaulted => Attribute::optional_computed(t.name, ty, t.doc.clone()),
                Role::Result => Attribute::computed(t.name, ty, t.doc.clone()),
            };
            if t.sensitive { a.sensitive() } else { a }
        })
        .collect();
    words.blocks.iter().fold(
        Block::new(words.doc.clone(), attributes),
        |b, (name, nested)| b.with_block(NestedBlock::single(name, block_of(nested))),
    )
}

/// The version settings of a configuration (a `version` that is not a whole number counts
/// as unset here; [`validate_source`] reports it).
fn versions(config: &Config) -> mint::VersionSettings<'_> {
    mint::VersionSettings {
        version: config.int(VERSION).ok().flatten(),
        id: config.get(VERSION_ID).as_str(),
        stage: config.get(VERSION_STAGE).as_str(),
    }
}

/// Checks `mount`, `path` and the version settings as far as they are known.
fn validate_source(config: &Config) -> Diagnostics {
    let mut d = Diagnostics::new();
    if let Err(e) = config.int(VERSION) {
        d.push(e);
    }
    d.extend(
        mint::validate_source(
            config.get(PATH).as_str(),
            config.get(MOUNT).as_str(),
            versions(config),
        )
        .into(),
    );
    d
}

/// Checks `reuse_min_remaining_percent`.
fn validate_reuse(config: &Config) -> Diagnostics {
    match config.int(REUSE_PERCENT) {
        Err(e) => e.into(),
        Ok(p) => mint::validate_reuse(p)
            .into_iter()
            .collect::<Vec<_>>()
            .into(),
    }
}

/// Where the configured secret is, resolved for this provider's environment.
fn source(config: &Config, ctx: &Context) -> Result<Source, Diagnostics> {
    let d = validate_source(config);
    if d.has_errors() {
        return Err(d);
    }
    Source::new(
        config.get(PATH).as_str().unwrap_or_default(),
        config.get(MOUNT).as_str(),
        versions(config).pin(),
        ctx.core.environment.as_deref(),
    )
    .and_then(|src| src.for_store(ctx.core.store.store_kind()))
    .map_err(Diagnostics::from)
}

/// The token-open options of a configuration.
fn options(config: &Config) -> Options {
    Options::from_settings(
        config.bool(ROTATION_FALLBACK),
        config.int(REUSE_PERCENT).ok().flatten(),
    )
}

/// A core output as a Terraform value.
fn value_of(output: Output) -> Value {
    match output {
        Output::Null => Value::Null,
        Output::Text(t) => Value::from(t),
        Output::Secret(s) => Value::Secret(s),
        Output::Number(n) => Value::from(n),
        Output::Bool(b) => Value::from(b),
        Output::Map(m) => Value::Map(m.into_iter().map(|(k, v)| (k, value_of(v))).collect()),
    }
}

/// The result of a token open: the configuration echoed back, with every word the core
/// reports filled in where the configuration left it null.
fn token_result<P: ccsecrets_core::platform::Platform>(
    config: &Config,
    minted: &mint::Minted<P>,
    src: &Source,
    options: Options,
) -> Value {
    prefill(
        config,
        mint::token_outputs(minted, src, options)
            .into_iter()
            .map(|(name, o)| (name, value_of(o))),
    )
}

/// Private bytes of a token resource: a tag and the pool lease handle. Never a secret.
fn private_bytes(tag: u8, handle: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(tag);
    out.extend_from_slice(&handle.to_be_bytes());
    out
}

fn handle_of(tag: u8, private: &[u8]) -> Option<u64> {
    match private {
        [t, rest @ ..] if *t == tag => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// Close must finish well within OpenTofu's 10-second limit, whatever the platform does.
const CLOSE_LIMIT: Duration = Duration::from_secs(8);

/// Releases a token lease at close. A revocation that fails or takes longer than
/// [`CLOSE_LIMIT`] leaves the token with the pool, which tries again at shutdown.
async fn close_lease<P: ccsecrets_core::platform::Platform>(
    pools: &Pools,
    handle: u64,
) -> Diagnostics {
    match pools
        .get::<P::Token>()
        .release_within(handle, CLOSE_LIMIT)
        .await
    {
        Ok(()) => Diagnostics::new(),
        Err(e) => Diagnostic::warning(
            format!("Could not revoke the {} token", P::NAME),
            format!("{e}. The provider tries to revoke it again when Terraform ends it."),
        )
        .into(),
    }
}

/// Test helper: the typed settings `T` read exactly the schema's configurable attributes.
#[cfg(test)]
fn assert_fields_match<T: serde::de::DeserializeOwned>(schema: &crate::framework::Schema) {
    let mut fields = crate::framework::field_names::<T>();
    let mut attrs: Vec<&str> = schema
        .block
        .attributes
        .iter()
        .filter(|a| a.optional || a.required)
        .map(|a| a.name)
        .collect();
    fields.sort_unstable();
    attrs.sort_unstable();
    assert_eq!(
        fields, attrs,
        "settings fields vs configurable schema attributes"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_passes_terraforms_checks() {
        let pools = Arc::new(Pools::default());
        for r in ephemeral(&pools) {
            assert_eq!(r.schema().check(), Ok(()), "{}", r.type_name());
            assert!(r.type_name().starts_with("ccsecrets_"));
        }
        for r in data_sources(&pools) {
            assert_eq!(r.schema().check(), Ok(()), "{}", r.type_name());
        }
    }

    #[test]
    fn private_bytes_round_trip_and_reject_other_tags() {
        let p = private_bytes(b'G', 42);
        assert_eq!(handle_of(b'G', &p), Some(42));
        assert_eq!(handle_of(b'C', &p), None);
        assert_eq!(handle_of(b'G', b"junk"), None);
        assert_eq!(handle_of(b'G', &[]), None);
    }

    #[test]
    fn source_validation_is_pinned() {
        let c = Config::new(Value::object([
            (PATH, Value::from("a/{region}")),
            (MOUNT, Value::from("/")),
            (VERSION, Value::from(0)),
        ]));
        let d = validate_source(&c);
        let at: Vec<String> = d
            .iter()
            .map(|d| d.attribute.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(at, vec!["path", "mount", "version"]);
        assert!(
            validate_source(&Config::new(Value::object([(
                PATH,
                Value::from("g/{environment}/p")
            )])))
            .is_empty()
        );
        assert!(validate_source(&Config::new(Value::object([(PATH, Value::Unknown)]))).is_empty());
    }
}
