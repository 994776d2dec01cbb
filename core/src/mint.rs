//! The one mint pipeline every front end uses: read the secret → environment guard → take the
//! credential out → mint (shared in the pool) → on a rejected credential, the previous live
//! version once → identity check → a lease. Also where a resource's secret lives (`Source`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::error::Problem;
use crate::net::Budget;
use crate::platform::{self, Net, Platform, PlatformError};
use crate::pool::{Lease, PoolKey, PooledToken, Pools, TokenPool};
use crate::store::{Location, Pin, Secret, SecretStore, StoreKind, VersionMetadata};

/// The placeholder paths may contain.
pub const ENV_PLACEHOLDER: &str = "{environment}";
/// The custom metadata entry (or tag) the environment guard compares.
pub const ENV_METADATA_KEY: &str = "environment";
/// The KV mount when none is configured.
pub const DEFAULT_MOUNT: &str = "secret";

/// Everything minting needs, built once from the settings by any front end.
#[derive(Debug, Clone)]
pub struct Core {
    /// The configured secret store.
    pub store: Arc<dyn SecretStore>,
    /// The HTTP client and retry policy for platform calls.
    pub net: Net,
    /// The configured environment, if any.
    pub environment: Option<String>,
    /// The deadline of one whole open.
    pub open_timeout: Duration,
    /// Cancelled when the front end is told to stop.
    pub cancel: CancellationToken,
    /// Shared token pools (one process may hold several cores, e.g. provider aliases).
    pub pools: Arc<Pools>,
}

impl Core {
    /// A fresh budget for one open or read.
    pub fn budget(&self) -> Budget {
        Budget::new(self.open_timeout, self.cancel.clone())
    }

    /// The pool of a platform's tokens.
    pub fn pool<P: Platform>(&self) -> Arc<TokenPool<P::Token>> {
        self.pools.get::<P::Token>()
    }
}

/// True for a path segment that would walk out of where it stands (`.`, `..`, also
/// percent-encoded), which Vault's HTTP router would resolve.
fn dot_segment(segment: &str) -> bool {
    let decoded = segment.replace("%2e", ".").replace("%2E", ".");
    decoded == "." || decoded == ".."
}

fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(dot_segment) || path.to_ascii_lowercase().contains("%2f")
}

/// Checks `path`, `mount` and the version settings as far as they are known.
pub fn validate_source(
    path: Option<&str>,
    mount: Option<&str>,
    versions: VersionSettings<'_>,
) -> Vec<Problem> {
    let mut d = Vec::new();
    if let Some(path) = path {
        if path.trim_matches('/').trim().is_empty() {
            d.push(
                Problem::error(
                    "Invalid path",
                    "`path` must name a secret, e.g. `genesys/prod/pipeline`.",
                )
                .at_attr("path"),
            );
        } else if path.contains('{') && path.replace(ENV_PLACEHOLDER, "").contains('{') {
            d.push(
                Problem::error(
                    "Invalid path",
                    format!("The only placeholder `path` may contain is `{ENV_PLACEHOLDER}`."),
                )
                .at_attr("path"),
            );
        } else if has_dot_segment(path) {
            d.push(
                Problem::error(
                    "Invalid path",
                    "`path` may not contain `.` or `..` segments (or an encoded slash): the path in the configuration must be the path that is read.",
                )
                .at_attr("path"),
            );
        }
    }
    if let Some(m) = mount {
        if m.trim_matches('/').trim().is_empty() {
            d.push(
                Problem::error(
                    "Invalid mount",
                    "`mount` must name a KV version 2 mount, e.g. `secret`.",
                )
                .at_attr("mount"),
            );
        } else if has_dot_segment(m) {
            d.push(
                Problem::error(
                    "Invalid mount",
                    "`mount` may not contain `.` or `..` segments (or an encoded slash).",
                )
                .at_attr("mount"),
            );
        }
    }
    d.extend(versions.problems());
    d
}

/// A block's version settings as configured: `version` (Vault), `version_id` (AWS, Azure)
/// and `version_stage` (AWS) each choose the version read, so at most one may be set.
#[derive(Debug, Clone, Copy, Default)]
pub struct VersionSettings<'a> {
    /// `version`.
    pub version: Option<i64>,
    /// `version_id`.
    pub id: Option<&'a str>,
    /// `version_stage`.
    pub stage: Option<&'a str>,
}

impl VersionSettings<'_> {
    /// The pin they choose (after [`validate_source`]).
    pub fn pin(&self) -> Pin {
        match (self.version, self.id, self.stage) {
            (Some(n), _, _) => Pin::Number(n),
            (_, Some(id), _) => Pin::Id(id.trim().to_owned()),
            (_, _, Some(stage)) => Pin::Stage(stage.trim().to_owned()),
            _ => Pin::Latest,
        }
    }

    fn problems(&self) -> Vec<Problem> {
        let VersionSettings {
            version,
            id: version_id,
            stage: version_stage,
        } = *self;
        let mut d = Vec::new();
        if version.is_some_and(|v| v < 1) {
            d.push(
                Problem::error("Invalid version", "`version` must be 1 or more.")
                    .at_attr("version"),
            );
        }
        for (attr, value) in [("version_id", version_id), ("version_stage", version_stage)] {
            if let Some(v) = value {
                if v.trim().is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
                    d.push(
                    Problem::error(
                        format!("Invalid {attr}"),
                        format!("`{attr}` must be a non-empty id of at most 256 characters without control characters."),
                    )
                    .at_attr(attr),
                );
                }
            }
        }
        let set: Vec<&str> = [
            ("version", version.is_some()),
            ("version_id", version_id.is_some()),
            ("version_stage", version_stage.is_some()),
        ]
        .iter()
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect();
        if set.len() > 1 {
            d.push(
            Problem::error(
                "Conflicting version settings",
                format!(
                    "Set at most one of `version` (Vault), `version_id` (AWS Secrets Manager, Azure Key Vault) and `version_stage` (AWS Secrets Manager); found {}.",
                    set.join(" and ")
                ),
            )
            .at_attr(set[1]),
        );
        }
        d
    }
}

/// A problem for a version setting the configured store does not have.
pub fn foreign_pin(pin: &Pin, store: StoreKind) -> Problem {
    let (attr, hint) = match (pin, store) {
        (Pin::Number(_), _) => (
            "version",
            "`version` is a Vault KV version number; choose a version here with `version_id`",
        ),
        (Pin::Stage(_), StoreKind::AzureKeyVault) => (
            "version_stage",
            "staging labels are AWS Secrets Manager's; choose a Key Vault version with `version_id`",
        ),
        (Pin::Stage(_) | Pin::Id(_), _) => (
            pin.attr(),
            "Vault numbers its versions; choose one with `version`",
        ),
        (Pin::Latest, _) => ("path", ""),
    };
    Problem::error(
        format!("`{attr}` does not apply to {}", store.name()),
        format!("This provider reads secrets from {}: {hint}.", store.name()),
    )
    .at_attr(attr)
}

/// Checks a source against the configured store: the settings it has, and the names it
/// accepts.
pub fn check_for_store(src: &Source, store: StoreKind) -> Vec<Problem> {
    let mut d = Vec::new();
    if store != StoreKind::Vault && src.mount_set {
        d.push(
            Problem::error(
                format!("`mount` does not apply to {}", store.name()),
                format!(
                    "`mount` names a Vault KV engine; this provider reads secrets from {}, where `path` alone names the secret. Remove `mount`.",
                    store.name()
                ),
            )
            .at_attr("mount"),
        );
    }
    let foreign = !matches!(
        (&src.pin, store),
        (Pin::Latest, _)
            | (Pin::Number(_), StoreKind::Vault)
            | (
                Pin::Id(_),
                StoreKind::AwsSecretsManager | StoreKind::AzureKeyVault
            )
            | (Pin::Stage(_), StoreKind::AwsSecretsManager)
    );
    if foreign {
        d.push(foreign_pin(&src.pin, store));
    }
    let path = &src.at.path;
    match store {
        StoreKind::Vault => {}
        StoreKind::AwsSecretsManager => {
            let ok = path.starts_with("arn:")
                || (path.len() <= 512
                    && path
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b)));
            if !ok {
                d.push(
                    Problem::error(
                        "Invalid secret name",
                        "In AWS Secrets Manager `path` is the secret's name (at most 512 letters, digits and `/_+=.@-`) or its ARN.",
                    )
                    .at_attr("path"),
                );
            }
        }
        StoreKind::AzureKeyVault => {
            let ok = (1..=127).contains(&path.len())
                && path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                d.push(
                    Problem::error(
                        "Invalid secret name",
                        "In Azure Key Vault `path` is the secret's name: 1 to 127 letters, digits and `-` (no `/`; with `{environment}`, e.g. `genesys-{environment}-pipeline`).",
                    )
                    .at_attr("path"),
                );
            }
        }
    }
    d
}

/// Whether `environment` may be substituted into paths: letters, digits, `-`, `_`, `.`, and
/// not a dot segment.
pub fn valid_environment(env: &str) -> bool {
    !env.is_empty()
        && !dot_segment(env)
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The settings of a block that reads a secret as it is (`vault_secret`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SecretSettings {
    /// Path of the secret (may contain `{environment}`).
    #[serde(default)]
    pub path: String,
    /// KV mount.
    pub mount: Option<String>,
    /// Pinned KV version.
    pub version: Option<i64>,
    /// Pinned AWS or Azure version id.
    pub version_id: Option<String>,
    /// Pinned AWS staging label.
    pub version_stage: Option<String>,
}

/// Where a resource's secret is, with the environment placeholder resolved.
#[derive(Debug, Clone)]
pub struct Source {
    /// Mount and resolved path.
    pub at: Location,
    /// The path as configured (echoed in results).
    pub config_path: String,
    /// The version chosen in configuration, if any.
    pub pin: Pin,
    /// Whether `mount` was set (a Vault-only setting).
    pub mount_set: bool,
}

impl Source {
    /// Resolves and checks a source.
    pub fn new(
        path: &str,
        mount: Option<&str>,
        pin: Pin,
        environment: Option<&str>,
    ) -> Result<Self, Vec<Problem>> {
        let versions = match &pin {
            Pin::Latest => VersionSettings::default(),
            Pin::Number(n) => VersionSettings {
                version: Some(*n),
                ..VersionSettings::default()
            },
            Pin::Id(id) => VersionSettings {
                id: Some(id),
                ..VersionSettings::default()
            },
            Pin::Stage(stage) => VersionSettings {
                stage: Some(stage),
                ..VersionSettings::default()
            },
        };
        let d = validate_source(Some(path), mount, versions);
        if !d.is_empty() {
            return Err(d);
        }
        let resolved = if path.contains(ENV_PLACEHOLDER) {
            let Some(env) = environment else {
                return Err(vec![Problem::error(
                    "No environment for the path",
                    format!("`path` uses `{ENV_PLACEHOLDER}`, but no `environment` is configured (set it in the provider block or configuration file, or with CCSECRETS_ENVIRONMENT)."),
                )
                .at_attr("path")]);
            };
            path.replace(ENV_PLACEHOLDER, env)
        } else {
            path.to_owned()
        };
        Ok(Source {
            at: Location {
                mount: mount.map_or_else(
                    || DEFAULT_MOUNT.to_owned(),
                    |m| m.trim_matches('/').to_owned(),
                ),
                path: resolved.trim_matches('/').to_owned(),
                pinned: pin.is_pinned(),
            },
            config_path: path.to_owned(),
            pin,
            mount_set: mount.is_some(),
        })
    }
}

impl Source {
    /// The source checked against the configured store; outside Vault there is no mount.
    pub fn for_store(mut self, store: StoreKind) -> Result<Self, Vec<Problem>> {
        let d = check_for_store(&self, store);
        if !d.is_empty() {
            return Err(d);
        }
        if store != StoreKind::Vault {
            self.at.mount.clear();
        }
        Ok(self)
    }
}

/// Refuses a secret whose metadata names another environment (fail closed).
pub fn environment_guard(
    environment: Option<&str>,
    at: &Location,
    metadata: &BTreeMap<String, String>,
) -> Result<(), Problem> {
    let (Some(ours), Some(theirs)) = (environment, metadata.get(ENV_METADATA_KEY)) else {
        return Ok(());
    };
    if ours == theirs {
        return Ok(());
    }
    Err(Problem::error(
        "Secret belongs to another environment",
        format!(
            "The secret at {at} is marked environment {theirs:?} in its custom metadata, but this configuration is for environment {ours:?}. Refusing to use it. Fix the path, or the configured `environment`."
        ),
    )
    .at_attr("path"))
}

/// Checks the source against the configured store (the first problem).
pub fn check_store(core: &Core, src: &Source) -> Result<(), Problem> {
    match check_for_store(src, core.store.store_kind())
        .into_iter()
        .next()
    {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// Reads one version of the source, then applies the environment guard.
pub async fn read(
    core: &Core,
    budget: &Budget,
    src: &Source,
    pin: &Pin,
) -> Result<Arc<Secret>, Problem> {
    check_store(core, src)?;
    let secret = core.store.read(budget, &src.at, pin).await?;
    environment_guard(
        core.environment.as_deref(),
        &src.at,
        &secret.metadata.custom_metadata,
    )?;
    Ok(secret)
}

/// How a token open is to behave, beyond the platform's own settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Try the previous live version once when the latest's credential is rejected.
    pub rotation_fallback: bool,
    /// A pooled token is reused only while more than this share (percent) of its life is left.
    pub reuse_percent: u8,
}

impl Options {
    /// The options a block's `rotation_fallback` and `reuse_min_remaining_percent` settings
    /// ask for (defaults when absent; a percent outside 0..=100 is clamped, after
    /// [`validate_reuse`] had its say).
    pub fn from_settings(rotation_fallback: Option<bool>, reuse_percent: Option<i64>) -> Self {
        Options {
            rotation_fallback: rotation_fallback.unwrap_or(true),
            reuse_percent: reuse_percent
                .and_then(|p| u8::try_from(p.clamp(0, 100)).ok())
                .unwrap_or(crate::pool::DEFAULT_REUSE_PERCENT),
        }
    }
}

/// Checks `reuse_min_remaining_percent`.
pub fn validate_reuse(reuse_percent: Option<i64>) -> Option<Problem> {
    reuse_percent.filter(|p| !(0..=100).contains(p)).map(|_| {
        Problem::error(
            "Invalid reuse_min_remaining_percent",
            "`reuse_min_remaining_percent` must be a whole number from 0 to 100.",
        )
        .at_attr("reuse_min_remaining_percent")
    })
}

/// A token lent to one open, with what the result reports.
#[derive(Debug)]
pub struct Minted<P: Platform> {
    /// The lease (release it when done).
    pub lease: Lease<P::Token>,
    /// The request that produced it (endpoints, region, ...).
    pub request: Arc<P::Request>,
    /// The latest version (or the pinned one).
    pub latest: VersionMetadata,
    /// The version whose credential produced the token.
    pub used: VersionMetadata,
    /// The checked identity, when the settings expect one.
    pub identity: Option<String>,
    /// Warnings for the user (a rotation fallback, a short-lived token).
    pub warnings: Vec<Problem>,
}

enum Failure {
    Input(Problem),
    Platform(PlatformError),
}

async fn attempt<P: Platform>(
    core: &Core,
    pool: &TokenPool<P::Token>,
    settings: &P::Settings,
    secret: &Secret,
    at: &Location,
    budget: &Budget,
    reuse_percent: u8,
) -> Result<(Lease<P::Token>, Arc<P::Request>), Failure> {
    let request = Arc::new(P::request(settings, secret, at).map_err(Failure::Input)?);
    let key = PoolKey {
        store: core.store.id().to_owned(),
        mount: at.mount.clone(),
        path: at.path.clone(),
        version: secret.metadata.id(),
        target: P::target(&request),
    };
    let (net, r, b) = (core.net.clone(), Arc::clone(&request), budget.clone());
    let lease = pool
        .acquire(&key, reuse_percent, move || {
            let (net, r, b) = (net.clone(), Arc::clone(&r), b.clone());
            async move { P::mint(&net, r, &b).await }.boxed()
        })
        .await
        .map_err(Failure::Platform)?;
    Ok((lease, request))
}

/// Mints (or shares) a token for `settings` from `src`.
pub async fn mint<P: Platform>(
    core: &Core,
    settings: &P::Settings,
    src: &Source,
    options: Options,
) -> Result<Minted<P>, Problem> {
    let pool = core.pool::<P>();
    let budget = core.budget();
    let latest = read(core, &budget, src, &src.pin).await?;
    let latest_v = latest.metadata.clone();
    let go = |secret: Arc<Secret>| {
        let (pool, budget) = (&pool, &budget);
        async move {
            attempt::<P>(
                core,
                pool,
                settings,
                &secret,
                &src.at,
                budget,
                options.reuse_percent,
            )
            .await
        }
    };
    let first = match go(Arc::clone(&latest)).await {
        Ok((lease, request)) => {
            return finish(
                core,
                &pool,
                settings,
                src,
                &budget,
                lease,
                request,
                latest_v.clone(),
                latest_v,
                vec![],
            )
            .await;
        }
        Err(Failure::Input(p)) => return Err(p),
        Err(Failure::Platform(e)) => e,
    };
    let refused = || platform::explain(&first, P::NAME, core.store.kind(), &src.at, &latest_v);
    let Some(code) = first
        .rejected_credential()
        .map(str::to_owned)
        .filter(|_| options.rotation_fallback && !src.pin.is_pinned())
    else {
        return Err(refused());
    };
    let Some(previous) = core.store.previous(&budget, &src.at, &latest_v).await? else {
        return Err(refused());
    };
    tracing::info!(
        latest = %latest_v.id(),
        previous = %previous,
        "credential rejected; trying the previous version"
    );
    let older = read(core, &budget, src, &previous).await?;
    let older_v = older.metadata.clone();
    let (latest_l, older_l) = (latest_v.label(), older_v.label());
    match go(older).await {
        Ok((lease, request)) => {
            let warning = Problem::warning(
                "Used the previous credential version (rotation in progress?)",
                format!(
                    "{} rejected the credential in {latest_l} of {} ({code}), so {older_l} was used. If a rotation is under way, finish it (add the new credential on {}); if {latest_l} is wrong, fix or delete it.",
                    P::NAME, src.at, P::NAME
                ),
            )
            .at_attr("path");
            finish(
                core,
                &pool,
                settings,
                src,
                &budget,
                lease,
                request,
                latest_v,
                older_v,
                vec![warning],
            )
            .await
        }
        Err(Failure::Input(p)) => Err(p),
        Err(Failure::Platform(second)) => {
            let mut p = platform::explain(&second, P::NAME, core.store.kind(), &src.at, &older_v);
            p.detail = format!(
                "Both the latest version ({}) and the previous live version ({}) of {} were refused. Latest: {first}. Previous: {second}.",
                latest_l.trim_start_matches("version "),
                older_l.trim_start_matches("version "),
                src.at
            );
            Err(p)
        }
    }
}

/// A result value, as every front end hands it on (a Terraform value, an environment
/// variable, a line on stdout).
#[derive(Clone)]
pub enum Output {
    /// Not known or not applicable.
    Null,
    /// Plain text.
    Text(String),
    /// A secret (a token, a secret's value).
    Secret(secrecy::SecretString),
    /// A whole number.
    Number(i64),
    /// true or false.
    Bool(bool),
    /// A map (a secret's key/value pairs, custom metadata).
    Map(BTreeMap<String, Output>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Null => f.write_str("null"),
            Output::Text(t) => write!(f, "{t:?}"),
            Output::Secret(_) => f.write_str("(sensitive)"),
            Output::Number(n) => write!(f, "{n}"),
            Output::Bool(b) => write!(f, "{b}"),
            Output::Map(m) => f.debug_map().entries(m).finish(),
        }
    }
}

impl Output {
    /// Text, or null when absent.
    pub fn text(value: Option<String>) -> Self {
        value.map_or(Output::Null, Output::Text)
    }

    /// A number, or null when absent.
    pub fn number(value: Option<i64>) -> Self {
        value.map_or(Output::Null, Output::Number)
    }
}

/// Where a secret was read and which version: `mount` and `version` (Vault's, null for other
/// stores), `version_id` and `version_stage` (as configured).
pub fn source_outputs(src: &Source, read: &VersionMetadata) -> Vec<(&'static str, Output)> {
    let vault = read.number().is_some();
    let stage = match &src.pin {
        Pin::Stage(s) => Output::Text(s.clone()),
        _ => Output::Null,
    };
    vec![
        (
            "mount",
            if vault {
                Output::Text(src.at.mount.clone())
            } else {
                Output::Null
            },
        ),
        ("version", Output::number(read.number())),
        ("version_id", Output::Text(read.id())),
        ("version_stage", stage),
    ]
}

/// The results of a token open, under the words of [`crate::vocabulary`]: where the secret
/// was read, which version produced the token, the platform's own results, and the expiry.
pub fn token_outputs<P: Platform>(
    minted: &Minted<P>,
    src: &Source,
    options: Options,
) -> Vec<(&'static str, Output)> {
    let mut out = source_outputs(src, &minted.latest);
    out.extend([
        ("rotation_fallback", Output::Bool(options.rotation_fallback)),
        (
            "reuse_min_remaining_percent",
            Output::Number(i64::from(options.reuse_percent)),
        ),
        ("credential_version", Output::number(minted.used.number())),
        ("credential_version_id", Output::Text(minted.used.id())),
    ]);
    out.extend(P::outputs(
        &minted.request,
        &minted.lease.token,
        minted.identity.as_deref(),
    ));
    let expires_at = minted.lease.token.expires_at();
    let left = expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .as_secs();
    out.extend([
        (
            "expires_in",
            Output::Number(i64::try_from(left).unwrap_or(i64::MAX)),
        ),
        ("expires_at", Output::Text(platform::rfc3339(expires_at))),
    ]);
    out
}

/// Tokens that live less than this get a warning: a consumer that cannot refresh them may
/// see them expire in the middle of a long run.
pub const SHORT_LIFETIME: Duration = Duration::from_secs(3600);

#[allow(clippy::too_many_arguments)]
async fn finish<P: Platform>(
    core: &Core,
    pool: &TokenPool<P::Token>,
    settings: &P::Settings,
    src: &Source,
    budget: &Budget,
    lease: Lease<P::Token>,
    request: Arc<P::Request>,
    latest: VersionMetadata,
    used: VersionMetadata,
    mut warnings: Vec<Problem>,
) -> Result<Minted<P>, Problem> {
    let identity = match P::expected_identity(settings) {
        None => None,
        Some(expected) => match P::identity(&core.net, &request, &lease.token, budget).await {
            Ok(actual) if actual.eq_ignore_ascii_case(expected.trim()) => Some(actual),
            other => {
                // Not ours to hand out: give the lease back, which revokes it if no other block
                // holds it, and say what really happened to it.
                let released = pool.release(lease.handle).await;
                let fate = match released {
                    Err(unrevoked) => format!(
                        "Revoking the token failed: {}.",
                        unrevoked.to_string().trim_end_matches('.')
                    ),
                    Ok(()) if !P::target(&request).revoke => {
                        "The token was not handed out (it stays valid until it expires).".to_owned()
                    }
                    // Beside this lease, the pool still holds it: another block of this run
                    // uses the same token.
                    Ok(()) if Arc::strong_count(&lease.token) > 1 => {
                        "The token was not handed out; another block still uses it, and it is revoked when that block closes.".to_owned()
                    }
                    Ok(()) => "The token was revoked.".to_owned(),
                };
                let (field, noun) = P::IDENTITY;
                return Err(match other {
                    Ok(actual) => Problem::error(
                        format!("Token belongs to another {} {noun}", P::NAME),
                        format!(
                            "The credentials at {} ({}) minted a token for {noun} {actual}, but `{field}` is {expected}. {fate} Check that the path points at this environment's credentials.",
                            src.at,
                            used.label(),
                        ),
                    )
                    .at_attr(field),
                    Err(e) => platform::explain(&e, P::NAME, core.store.kind(), &src.at, &used),
                });
            }
        },
    };
    let lifetime = lease.token.lifetime();
    if lifetime < SHORT_LIFETIME {
        warnings.push(short_lived::<P>(lifetime));
    }
    Ok(Minted {
        lease,
        request,
        latest,
        used,
        identity,
        warnings,
    })
}

fn short_lived<P: Platform>(lifetime: Duration) -> Problem {
    Problem::warning(
        format!("Short-lived {} token", P::NAME),
        format!(
            "The token lives {} seconds. A consumer that was handed it cannot renew it (the genesyscloud provider does not refresh an `access_token`), so a run longer than that fails with HTTP 401 part-way. Raise the OAuth client's token duration (Genesys Cloud: the client's `accessTokenValiditySeconds`, up to 172800) if runs can take that long.",
            lifetime.as_secs()
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::net::RetryPolicy;
    use crate::platform::fake::{Behaviour, FakePlatform, FakeSettings};
    use crate::store::fake::FakeStore;

    fn core(store: FakeStore, environment: Option<&str>) -> (Core, Arc<FakeStore>) {
        let store = Arc::new(store);
        let core = Core {
            store: Arc::clone(&store) as Arc<dyn SecretStore>,
            net: Net {
                http: reqwest::Client::new(),
                retry: RetryPolicy::default(),
            },
            environment: environment.map(str::to_owned),
            open_timeout: Duration::from_secs(5),
            cancel: CancellationToken::new(),
            pools: Arc::new(Pools::default()),
        };
        (core, store)
    }

    fn settings(b: &Arc<Behaviour>) -> FakeSettings {
        FakeSettings {
            behaviour: Arc::clone(b),
            expected: None,
        }
    }

    const OPTS: Options = Options {
        rotation_fallback: true,
        reuse_percent: 50,
    };

    fn src(path: &str) -> Source {
        Source::new(path, None, Pin::Latest, Some("prod")).unwrap()
    }

    #[tokio::test]
    async fn rotation_falls_back_once_to_the_previous_live_version_with_a_warning() {
        let store = FakeStore::default();
        store.put("g", r#"{"client_secret":"old"}"#);
        store.put("g", r#"{"client_secret":"deleted"}"#);
        store.delete("g", 2);
        store.put("g", r#"{"client_secret":"new"}"#);
        let (core, _) = core(store, None);
        let b = Arc::new(Behaviour::default());
        b.accept("old");
        let m = mint::<FakePlatform>(&core, &settings(&b), &src("g"), OPTS)
            .await
            .unwrap();
        assert_eq!(
            (m.latest.version, m.used.version),
            (3, 1),
            "deleted version 2 is skipped"
        );
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0]
                .detail
                .contains("version 3 of secret/g (invalid_client), so version 1 was used"),
            "{}",
            m.warnings[0].detail
        );
        assert_eq!(b.mints.load(Ordering::SeqCst), 2);

        // Off, or pinned: no fallback, the rejection is the error, pinned to `path`.
        let off = Options {
            rotation_fallback: false,
            ..OPTS
        };
        let e = mint::<FakePlatform>(&core, &settings(&b), &src("g"), off)
            .await
            .unwrap_err();
        assert_eq!(e.summary, "Fake rejected the credentials");
        assert_eq!(e.field.unwrap().to_string(), "path");
        let pinned = Source::new("g", None, Pin::Number(3), None).unwrap();
        assert!(
            mint::<FakePlatform>(&core, &settings(&b), &pinned, OPTS)
                .await
                .is_err()
        );

        // Both refused: one error naming both versions (once the pooled token is gone).
        b.reject("old");
        assert_eq!(core.pools.drain().await, 0);
        let e = mint::<FakePlatform>(&core, &settings(&b), &src("g"), OPTS)
            .await
            .unwrap_err();
        assert!(
            e.detail
                .contains("Both the latest version (3) and the previous live version (1)"),
            "{}",
            e.detail
        );
    }

    #[tokio::test]
    async fn the_environment_guard_fails_closed() {
        let store = FakeStore::default();
        store.put("g", r#"{"client_secret":"s"}"#);
        store.set_metadata("g", ENV_METADATA_KEY, "staging");
        let (core, _) = core(store, Some("prod"));
        let b = Arc::new(Behaviour::default());
        b.accept("s");
        let e = mint::<FakePlatform>(&core, &settings(&b), &src("g"), OPTS)
            .await
            .unwrap_err();
        assert_eq!(e.summary, "Secret belongs to another environment");
        assert_eq!(
            b.mints.load(Ordering::SeqCst),
            0,
            "nothing is minted from a refused secret"
        );
        // No environment configured, or a matching one: allowed.
        let (mut c2, _) = (core.clone(), ());
        c2.environment = Some("staging".into());
        assert!(
            mint::<FakePlatform>(&c2, &settings(&b), &src("g"), OPTS)
                .await
                .is_ok()
        );
        c2.environment = None;
        assert!(
            mint::<FakePlatform>(&c2, &settings(&b), &src("g"), OPTS)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn opens_share_one_token_until_half_its_life_is_gone_and_the_last_release_revokes() {
        let store = FakeStore::default();
        store.put("g", r#"{"client_secret":"s"}"#);
        let (core, _) = core(store, None);
        let b = Arc::new(Behaviour::default());
        b.accept("s");
        let one = mint::<FakePlatform>(&core, &settings(&b), &src("g"), OPTS)
            .await
            .unwrap();
        let two = mint::<FakePlatform>(&core, &settings(&b), &src("g"), OPTS)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&one.lease.token, &two.lease.token));
        assert_eq!(b.mints.load(Ordering::SeqCst), 1);
        let pool = core.pool::<FakePlatform>();
        pool.release(one.lease.handle).await.unwrap();
        assert_eq!(b.revoked.load(Ordering::SeqCst), 0, "still in use");
        pool.release(two.lease.handle).await.unwrap();
        assert_eq!(b.revoked.load(Ordering::SeqCst), 1);
        // Demanding more than the whole life left never reuses.
        let strict = Options {
            reuse_percent: 100,
            ..OPTS
        };
        let a = mint::<FakePlatform>(&core, &settings(&b), &src("g"), strict)
            .await
            .unwrap();
        let c = mint::<FakePlatform>(&core, &settings(&b), &src("g"), strict)
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&a.lease.token, &c.lease.token));
        assert_eq!(core.pools.drain().await, 0);
        assert_eq!(b.revoked.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_token_of_another_identity_is_refused_and_its_fate_told_as_it_is() {
        let store = FakeStore::default();
        store.put("g", r#"{"client_secret":"s"}"#);
        let (core, _) = core(store, None);
        let b = Arc::new(Behaviour::default());
        b.accept("s");
        *b.identity.lock().unwrap() = "org-a".into();
        let s = FakeSettings {
            behaviour: Arc::clone(&b),
            expected: Some("ORG-A".into()),
        };
        let held = mint::<FakePlatform>(&core, &s, &src("g"), OPTS)
            .await
            .unwrap();
        assert_eq!(held.identity.as_deref(), Some("org-a"));
        let s = FakeSettings {
            behaviour: Arc::clone(&b),
            expected: Some("org-b".into()),
        };
        // The token is shared with the block that still holds it: not revoked, and said so.
        let e = mint::<FakePlatform>(&core, &s, &src("g"), OPTS)
            .await
            .unwrap_err();
        assert_eq!(e.summary, "Token belongs to another Fake organization");
        assert_eq!(e.field.unwrap().to_string(), "expected_identity");
        assert!(
            e.detail
                .contains("another block still uses it, and it is revoked when that block closes"),
            "{}",
            e.detail
        );
        assert_eq!(b.revoked.load(Ordering::SeqCst), 0);
        core.pool::<FakePlatform>()
            .release(held.lease.handle)
            .await
            .unwrap();
        assert_eq!(b.revoked.load(Ordering::SeqCst), 1);

        // A token of its own: revoked, and said so.
        let e = mint::<FakePlatform>(&core, &s, &src("g"), OPTS)
            .await
            .unwrap_err();
        assert!(e.detail.contains("The token was revoked."), "{}", e.detail);
        assert_eq!(b.revoked.load(Ordering::SeqCst), 2);

        // A revocation that fails is reported as failed, with when the token expires.
        b.revoke_fails.store(true, Ordering::SeqCst);
        let e = mint::<FakePlatform>(&core, &s, &src("g"), OPTS)
            .await
            .unwrap_err();
        assert!(!e.detail.contains("The token was revoked."), "{}", e.detail);
        assert!(
            e.detail.contains(
                "Revoking the token failed: cannot reach Fake at http://127.0.0.1:1/revoke: the connection failed. The token stays valid until it expires at "
            ),
            "{}",
            e.detail
        );
        assert_eq!(b.revoked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lived_tokens_warn_with_their_lifetime() {
        let store = FakeStore::default();
        store.put("g", r#"{"client_secret":"s"}"#);
        let (core, _) = core(store, None);
        let b = Arc::new(Behaviour::default());
        b.accept("s");
        *b.lifetime.lock().unwrap() = Some(Duration::from_secs(300));
        let m = mint::<FakePlatform>(&core, &settings(&b), &src("g"), OPTS)
            .await
            .unwrap();
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0]
                .detail
                .starts_with("The token lives 300 seconds."),
            "{}",
            m.warnings[0].detail
        );
    }

    #[test]
    fn one_version_setting_at_most_and_each_fits_its_store() {
        let v = |version, id, stage| VersionSettings { version, id, stage };
        let attrs = |d: Vec<Problem>| -> Vec<(String, String)> {
            d.into_iter()
                .map(|p| {
                    (
                        p.summary,
                        p.field.map(|f| f.to_string()).unwrap_or_default(),
                    )
                })
                .collect()
        };
        assert_eq!(
            attrs(validate_source(None, None, v(Some(2), Some("abc"), None))),
            [(
                "Conflicting version settings".to_owned(),
                "version_id".to_owned()
            )]
        );
        assert_eq!(
            attrs(validate_source(
                None,
                None,
                v(None, Some(" "), Some("AWS\u{1b}"))
            )),
            [
                ("Invalid version_id".to_owned(), "version_id".to_owned()),
                (
                    "Invalid version_stage".to_owned(),
                    "version_stage".to_owned()
                ),
                (
                    "Conflicting version settings".to_owned(),
                    "version_stage".to_owned()
                ),
            ]
        );
        assert_eq!(v(None, Some(" id "), None).pin(), Pin::Id("id".into()));
        assert_eq!(
            v(None, None, Some("AWSPREVIOUS")).pin(),
            Pin::Stage("AWSPREVIOUS".into())
        );
        assert_eq!(v(None, None, None).pin(), Pin::Latest);

        // Against the store: Vault-only settings elsewhere, and each store's names.
        let src = |path: &str, mount: Option<&str>, pin: Pin| {
            Source::new(path, mount, pin, None).unwrap()
        };
        let fits = |s: Source, k: StoreKind| {
            s.for_store(k)
                .map(|s| s.at.mount)
                .map_err(|d| d.into_iter().map(|p| p.summary).collect::<Vec<_>>())
        };
        assert_eq!(
            fits(src("g/p", None, Pin::Latest), StoreKind::AwsSecretsManager),
            Ok(String::new())
        );
        assert_eq!(
            fits(src("g/p", None, Pin::Latest), StoreKind::Vault),
            Ok("secret".into())
        );
        assert_eq!(
            fits(
                src("g/p", Some("kv"), Pin::Number(2)),
                StoreKind::AzureKeyVault
            ),
            Err(vec![
                "`mount` does not apply to Azure Key Vault".to_owned(),
                "`version` does not apply to Azure Key Vault".to_owned(),
                "Invalid secret name".to_owned(),
            ])
        );
        assert_eq!(
            fits(
                src("g", None, Pin::Stage("AWSCURRENT".into())),
                StoreKind::Vault
            ),
            Err(vec!["`version_stage` does not apply to Vault".to_owned()])
        );
        assert_eq!(
            fits(
                src(
                    "arn:aws:secretsmanager:eu-west-1:1:secret:g-AbCdEf",
                    None,
                    Pin::Id("x".into())
                ),
                StoreKind::AwsSecretsManager
            ),
            Ok(String::new())
        );
        assert_eq!(
            fits(src("g p", None, Pin::Latest), StoreKind::AwsSecretsManager),
            Err(vec!["Invalid secret name".to_owned()])
        );
    }

    #[test]
    fn sources_refuse_dot_segments_and_resolve_the_placeholder() {
        for (path, mount) in [
            ("../../secret/data/other/app", None),
            ("a/%2e%2E/b", None),
            ("a/./b", None),
            ("a%2Fb", None),
            ("ok", Some("nonexistent/..")),
        ] {
            let d = Source::new(path, mount, Pin::Latest, None).unwrap_err();
            assert!(d[0].summary.starts_with("Invalid"), "{path}: {d:?}");
        }
        assert!(!valid_environment(".."));
        assert!(!valid_environment("."));
        assert!(valid_environment("prod.eu"));
        let s = Source::new(
            "/g/{environment}/p/",
            Some("/kv/"),
            Pin::Latest,
            Some("prod"),
        )
        .unwrap();
        assert_eq!(s.at.to_string(), "kv/g/prod/p");
        assert_eq!(s.config_path, "/g/{environment}/p/");
        let d = Source::new("g/{environment}", None, Pin::Latest, None).unwrap_err();
        assert_eq!(d[0].summary, "No environment for the path");
        let d = validate_source(
            Some("a/{region}"),
            Some("/"),
            VersionSettings {
                version: Some(0),
                ..VersionSettings::default()
            },
        );
        let at: Vec<String> = d
            .iter()
            .map(|p| p.field.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(at, vec!["path", "mount", "version"]);
    }
}
