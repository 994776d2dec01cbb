//! Opening the configuration's blocks through the core's one mint pipeline, exactly as the
//! provider's ephemeral resources do, and checking them without minting (`check`).

use std::collections::BTreeMap;

use ccsecrets_core::mint::{self, Options, Output, Source};
use ccsecrets_core::platform::Platform;
use ccsecrets_core::platform::cxone::{self, Cxone, CxoneSettings};
use ccsecrets_core::platform::genesys::{Genesys, GenesysSettings};
use ccsecrets_core::store::StoreKind;
use ccsecrets_core::{Core, Problem};

use crate::config::{BlockKind, Located, TokenBlock};

/// What one block produced: its results under the vocabulary's words.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) outputs: BTreeMap<String, Output>,
    pub(crate) warnings: Vec<Located>,
    /// The pool lease, to release (revoke) this one token later.
    pub(crate) lease: Option<u64>,
    /// When the token expires (none for a plain secret).
    pub(crate) expires_at: Option<std::time::SystemTime>,
    /// The id of the secret version that produced it (Vault: the number as text).
    pub(crate) version: String,
}

impl Opened {
    /// The value of `field` (a word, or `data.KEY`), when it has one.
    pub(crate) fn field(&self, field: &str) -> Option<&Output> {
        match field.split_once('.') {
            Some(("data", key)) => match self.outputs.get("data") {
                Some(Output::Map(m)) => m.get(key),
                _ => None,
            },
            _ => self.outputs.get(field),
        }
    }
}

/// A block's version settings.
fn versions(block: &TokenBlock) -> mint::VersionSettings<'_> {
    mint::VersionSettings {
        version: block.int("version"),
        id: block.text("version_id"),
        stage: block.text("version_stage"),
    }
}

/// Where a block's secret is, for `environment`, checked against a kind of store.
fn block_source(
    block: &TokenBlock,
    environment: Option<&str>,
    store: StoreKind,
) -> Result<Source, Vec<Problem>> {
    Source::new(
        block.text("path").unwrap_or_default(),
        block.text("mount"),
        versions(block).pin(),
        environment,
    )
    .and_then(|src| src.for_store(store))
}

/// Checks a block as far as it can be without the store: the same validation as the
/// provider's, and the settings that apply to the configured kind of store.
pub(crate) fn validate(block: &TokenBlock, store: StoreKind) -> Vec<Located> {
    let mut problems: Vec<Problem> =
        mint::validate_source(block.text("path"), block.text("mount"), versions(block));
    problems.extend(mint::validate_reuse(
        block.int("reuse_min_remaining_percent"),
    ));
    if problems.is_empty() {
        // Any valid environment stands in for the real one: only the shape is checked here.
        if let Err(ps) = block_source(block, Some("x"), store) {
            problems.extend(ps);
        }
    }
    match block.kind {
        BlockKind::Genesys => match block.settings::<GenesysSettings>() {
            Ok(s) => problems.extend(s.validate()),
            Err(l) => return vec![l],
        },
        BlockKind::Cxone => match block.settings::<CxoneSettings>() {
            Ok(s) => problems.extend(s.validate()),
            Err(l) => return vec![l],
        },
        BlockKind::VaultSecret => {}
    }
    problems.into_iter().map(|p| block.locate(p)).collect()
}

/// Where a block's secret is, checked against the configured store.
pub(crate) fn source(core: &Core, block: &TokenBlock) -> Result<Source, Vec<Located>> {
    block_source(block, core.environment.as_deref(), core.store.store_kind())
        .map_err(|ps| ps.into_iter().map(|p| block.locate(p)).collect())
}

/// Opens one block: reads its secret and mints (or shares) its token.
pub(crate) async fn open(core: &Core, block: &TokenBlock) -> Result<Opened, Vec<Located>> {
    open_with(core, block, false).await
}

/// As [`open`]; `fresh` mints a new token even when one is held (the agent's refresh).
pub(crate) async fn open_with(
    core: &Core,
    block: &TokenBlock,
    fresh: bool,
) -> Result<Opened, Vec<Located>> {
    let src = source(core, block)?;
    let mut options = Options::from_settings(
        block.flag("rotation_fallback"),
        block.int("reuse_min_remaining_percent"),
    );
    if fresh {
        options.reuse_percent = 100;
    }
    match block.kind {
        BlockKind::Genesys => {
            let settings: GenesysSettings = block.settings().map_err(|l| vec![l])?;
            open_token::<Genesys>(core, block, &settings, &src, options).await
        }
        BlockKind::Cxone => {
            let settings: CxoneSettings = block.settings().map_err(|l| vec![l])?;
            open_token::<Cxone>(core, block, &settings, &src, options).await
        }
        BlockKind::VaultSecret => {
            let secret = mint::read(core, &core.budget(), &src, &src.pin)
                .await
                .map_err(|p| vec![block.locate(p)])?;
            let data = secret
                .data
                .entries()
                .iter()
                .map(|(k, v)| (k.clone(), Output::Secret(v.clone())))
                .collect();
            let outputs = mint::source_outputs(&src, &secret.metadata)
                .into_iter()
                .chain([
                    ("path", Output::Text(src.config_path.clone())),
                    ("data", Output::Map(data)),
                    ("data_json", Output::Secret(secret.data.json().clone())),
                    (
                        "created_time",
                        Output::Text(secret.metadata.created_time.clone()),
                    ),
                ])
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            Ok(Opened {
                outputs,
                warnings: Vec::new(),
                lease: None,
                expires_at: None,
                version: secret.metadata.id(),
            })
        }
    }
}

async fn open_token<P: Platform>(
    core: &Core,
    block: &TokenBlock,
    settings: &P::Settings,
    src: &Source,
    options: Options,
) -> Result<Opened, Vec<Located>> {
    let minted = mint::mint::<P>(core, settings, src, options)
        .await
        .map_err(|p| vec![block.locate(p)])?;
    let mut outputs: BTreeMap<String, Output> = block
        .attrs
        .iter()
        .filter_map(|(k, v)| {
            let o = match v {
                serde_json::Value::String(s) => Output::Text(s.clone()),
                serde_json::Value::Bool(b) => Output::Bool(*b),
                serde_json::Value::Number(n) => Output::Number(n.as_i64()?),
                _ => return None,
            };
            Some((k.clone(), o))
        })
        .collect();
    for (name, o) in mint::token_outputs(&minted, src, options) {
        outputs.entry(name.to_owned()).or_insert(o);
    }
    Ok(Opened {
        outputs,
        warnings: minted
            .warnings
            .into_iter()
            .map(|p| block.locate(p))
            .collect(),
        lease: Some(minted.lease.handle),
        expires_at: Some(ccsecrets_core::pool::PooledToken::expires_at(
            &*minted.lease.token,
        )),
        version: minted.used.id(),
    })
}

/// Releases one token: revoked now when it is revocable and nobody else holds it.
pub(crate) async fn release(
    core: &Core,
    kind: BlockKind,
    lease: u64,
) -> Result<(), ccsecrets_core::pool::Unrevoked> {
    match kind {
        BlockKind::Genesys => {
            core.pools
                .get::<<Genesys as Platform>::Token>()
                .release(lease)
                .await
        }
        BlockKind::Cxone => {
            core.pools
                .get::<<Cxone as Platform>::Token>()
                .release(lease)
                .await
        }
        BlockKind::VaultSecret => Ok(()),
    }
}

/// `check`: reads each block's secret (values stay in memory, in secret types, and are never
/// printed) and checks that the keys the block needs are there. Mints nothing.
pub(crate) async fn check(core: &Core, block: &TokenBlock) -> Result<String, Vec<Located>> {
    let src = source(core, block)?;
    let secret = mint::read(core, &core.budget(), &src, &src.pin)
        .await
        .map_err(|p| vec![block.locate(p)])?;
    let needed: Vec<(String, &str)> = match block.kind {
        BlockKind::Genesys => {
            let s: GenesysSettings = block.settings().map_err(|l| vec![l])?;
            let (id, secret_key) = s.keys();
            vec![(id, "client_id_key"), (secret_key, "client_secret_key")]
        }
        BlockKind::Cxone => {
            let s: CxoneSettings = block.settings().map_err(|l| vec![l])?;
            s.keys()
                .into_iter()
                .map(|(attr, key)| (key, attr))
                .collect()
        }
        BlockKind::VaultSecret => block
            .env
            .iter()
            .filter_map(|e| e.field.strip_prefix("data.").map(|k| (k.to_owned(), "env")))
            .collect(),
    };
    let missing: Vec<Located> = needed
        .iter()
        .filter(|(key, _)| secret.data.non_empty(key).is_none())
        .map(|(key, attr)| {
            let mut p = ccsecrets_core::platform::key_value(&secret, &src.at, key, attr)
                .err()
                .unwrap_or_else(|| Problem::error("Key not found in secret", key.clone()));
            if *attr == "env" {
                p = p.at_attr("env");
            }
            block.locate(p)
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    if block.kind == BlockKind::Cxone {
        // The issuer the secret may name is checked as the open would.
        let s: CxoneSettings = block.settings().map_err(|l| vec![l])?;
        cxone::issuer_of(&s, &secret, &src.at).map_err(|p| vec![block.locate(p)])?;
    }
    Ok(format!(
        "{}: {} {} has the keys it needs ({})",
        block.title(),
        src.at,
        secret.metadata.label(),
        needed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
