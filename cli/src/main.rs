//! `ccsecrets`: fresh, short-lived Genesys Cloud and NICE CXone tokens for CI steps and any
//! tool, from credentials kept in Vault/OpenBao, revoked as soon as the tool is done. The
//! same core, the same words and the same checks as the Terraform provider.

// A command-line tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Errors here end the process with a message for a person; their size does not matter.
#![allow(clippy::result_large_err)]

mod agent;
mod config;
mod exec;
mod open;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ccsecrets_core::mint::Output;
use ccsecrets_core::pool::Pools;
use ccsecrets_core::{Core, Problem};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use config::{BlockKind, Config, Located};

/// Exit status when the configuration is wrong (EX_CONFIG).
const EXIT_CONFIG: u8 = 78;
/// Exit status when a token could not be had: the store or the platform failed (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;
/// Printed values could not be written (sysexits EX_IOERR).
const EXIT_IOERR: u8 = 74;
/// How long revocation may take once the command has ended.
const REVOKE_BUDGET: Duration = Duration::from_secs(10);
/// After a stop signal, how long a token request already sent may take to be answered, so
/// that its token is revoked rather than abandoned (valid for its whole life).
const SETTLE_BUDGET: Duration = Duration::from_secs(5);

const AFTER_HELP: &str = "\
Stores: Vault or OpenBao (KV version 2), AWS Secrets Manager, or Azure Key Vault, configured as
in the Terraform provider.

Configuration: --config FILE, else $CCSECRETS_CONFIG, else ./ccsecrets.hcl. It uses the Terraform
provider's words: the provider's settings and one store block (`vault { ... }`,
`aws_secretsmanager { ... }` or `azure_keyvault { ... }`) at the top level, and blocks
`genesys_token \"NAME\"`, `cxone_token \"NAME\"` and `vault_secret \"NAME\"` with the ephemeral
resources' attributes plus `env`. Store settings fall back to the variables their own tools read
(VAULT_ADDR, VAULT_TOKEN, AWS_REGION, AZURE_CLIENT_ID, ...). The environment ({environment} in
paths): --environment, else $CCSECRETS_ENVIRONMENT, else the file's `environment`.

A command started by exec or agent gets the tokens but not the store's credentials: VAULT_TOKEN,
BAO_TOKEN and the `jwt_env` variable (Vault), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_WEB_IDENTITY_TOKEN_FILE and AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) (AWS),
AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE, IDENTITY_HEADER and MSI_SECRET (Azure), and, with
a genesys_token block, GENESYSCLOUD_OAUTHCLIENT_ID/SECRET are removed. Keep them with
`pass_store_credentials = true` in the file, or one by one with `exec --keep-env NAME`.

Under GitHub Actions (GITHUB_ACTIONS=true), every secret value is announced to the runner with an
`::add-mask::` line on stderr; --no-masks (or CCSECRETS_NO_MASKS=true) turns them off.

Exit status: the command's own (128+N when it died of signal N); 2 for bad usage; 78 for a
configuration error; 69 when a token could not be had (store or platform); 1 when `export
--format dotenv` refuses a value; 74 when `token` or `export` cannot write what it printed (the
tokens are revoked); 126/127 when the command cannot be run. Nothing is started when
ccsecrets fails first.";

#[derive(Debug, Parser)]
#[command(name = "ccsecrets", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// The configuration file [default: $CCSECRETS_CONFIG, else ./ccsecrets.hcl].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The environment ({environment} in secret paths); overrides $CCSECRETS_ENVIRONMENT, which
    /// overrides the file's `environment`.
    #[arg(long, global = true, value_name = "NAME")]
    environment: Option<String>,
    /// Print no GitHub Actions `::add-mask::` lines.
    #[arg(long, global = true, env = "CCSECRETS_NO_MASKS", value_parser = clap::builder::BoolishValueParser::new())]
    no_masks: bool,
    #[command(subcommand)]
    command: Command,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// `NAME=value` lines, as `$GITHUB_ENV` and GitLab's `dotenv` reports read them (a value
    /// that cannot be written so safely is refused).
    Dotenv,
    /// One JSON object of names to values.
    Json,
    /// `export NAME='value'` lines, single-quoted, safe to `source` or `eval`.
    Shell,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint the tokens, run COMMAND with them in its environment, then revoke them.
    ///
    /// Signals (INT, TERM, HUP, QUIT) are forwarded to COMMAND's process group; a COMMAND that
    /// has not ended 10 s after a forwarded stop signal is killed with its group; COMMAND dies
    /// with ccsecrets, even if ccsecrets is killed. When it ends, every token ccsecrets minted
    /// is revoked and its exit status is ccsecrets's. COMMAND does not get the store's
    /// credentials (see below).
    Exec {
        /// A Genesys Cloud token from the secret at PATH, default settings (repeatable).
        #[arg(long, value_name = "PATH")]
        genesys: Vec<String>,
        /// The login base URL for --genesys blocks (a gateway or a stand-in).
        #[arg(long, value_name = "URL", env = "CCSECRETS_GENESYS_LOGIN_URL")]
        genesys_login_url: Option<String>,
        /// The API base URL for --genesys blocks (a gateway or a stand-in).
        #[arg(long, value_name = "URL", env = "CCSECRETS_GENESYS_API_URL")]
        genesys_api_url: Option<String>,
        /// A NICE CXone token from the secret at PATH, default settings (repeatable).
        #[arg(long, value_name = "PATH")]
        cxone: Vec<String>,
        /// Leave this store credential variable in COMMAND's environment (repeatable).
        #[arg(long, value_name = "NAME")]
        keep_env: Vec<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Print values of block NAME (default: its access_token), one per line, from one mint.
    ///
    /// With --json, every value of the block as one JSON object. A token printed this way is NOT
    /// revoked when ccsecrets exits: whoever reads it uses it later, so it lives until it
    /// expires (the expiry is printed on stderr). End a Genesys Cloud token early with
    /// `ccsecrets revoke NAME < token`. Prefer `ccsecrets exec`, which revokes when the command
    /// ends.
    Token {
        /// The block's name, or TYPE.NAME (e.g. genesys_token.deploy) when names repeat.
        name: String,
        /// An attribute to print, e.g. region, expires_at, api_endpoint, data.KEY (repeatable:
        /// one line each, all from the same token).
        #[arg(long, value_name = "ATTRIBUTE", conflicts_with = "json")]
        field: Vec<String>,
        /// Print every value of the block as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the variables of the blocks NAME... (default: every block) for later steps.
    ///
    /// One mint per block; the output is what `exec` would put in the command's environment.
    /// For `$GITHUB_ENV` (`--format dotenv >> "$GITHUB_ENV"`), GitLab `dotenv` reports, or
    /// `eval "$(ccsecrets export --format shell)"`. The tokens are NOT revoked when ccsecrets
    /// exits: they live until they expire (printed on stderr); end a Genesys Cloud token early
    /// with `ccsecrets revoke NAME < token`.
    Export {
        /// The blocks (NAME or TYPE.NAME); none means every block.
        names: Vec<String>,
        /// The output format.
        #[arg(long, value_enum, default_value = "dotenv")]
        format: Format,
    },
    /// Revoke a Genesys Cloud token read from stdin.
    Revoke {
        /// The genesys_token block whose region or api_url to use.
        name: Option<String>,
        /// The Genesys Cloud region (instead of a block), e.g. us-east-1.
        #[arg(long)]
        region: Option<String>,
        /// The Genesys Cloud API base URL (instead of a region).
        #[arg(long, value_name = "URL")]
        api_url: Option<String>,
    },
    /// Keep every block's sinks holding a valid token for running services.
    ///
    /// Refreshes at two thirds of each token's life, revokes replaced tokens after a grace
    /// period, keeps minting from the credential read last while the store is down, and on
    /// SIGTERM or SIGINT removes its files and revokes what it minted. With `-- COMMAND`, runs
    /// COMMAND once every sink is ready, with the blocks' variables, restarts or signals it
    /// after each refresh (`on_refresh`), and ends with it. `agent health` probes a running
    /// agent.
    #[command(subcommand_value_name = "ACTION", subcommand_help_heading = "Actions")]
    Agent {
        /// Write every sink once and exit (the tokens are not revoked: they are for later).
        #[arg(long)]
        once: bool,
        /// How log lines are written (level: CCSECRETS_LOG, e.g. debug; default info).
        #[arg(long, value_enum, default_value = "text", env = "CCSECRETS_LOG_FORMAT")]
        log_format: agent::LogFormat,
        #[command(subcommand)]
        action: Option<AgentAction>,
        /// A command to supervise.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Validate the configuration, sign in to the store, and check that each secret exists
    /// and has the keys it needs. Mints nothing and prints no value.
    Check,
    /// Print a shell completion script, e.g. `ccsecrets completions bash > /etc/bash_completion.d/ccsecrets`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The options every command takes.
#[derive(Debug, Clone)]
pub(crate) struct Globals {
    config: Option<PathBuf>,
    environment: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AgentAction {
    /// Exit 0 when a running agent is ready (its /readyz answers 200), else 1 with a one-line
    /// reason: a probe for containers without a shell.
    Health {
        /// The agent's address (default: the configuration's `agent { listen }`; an agent
        /// listening on every address is asked on loopback).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}

/// Why ccsecrets stops before (or instead of) running anything.
struct Failure {
    code: u8,
    problems: Vec<Located>,
}

impl Failure {
    fn config(problems: Vec<Located>) -> Self {
        Failure {
            code: EXIT_CONFIG,
            problems,
        }
    }

    fn unavailable(problems: Vec<Located>) -> Self {
        Failure {
            code: EXIT_UNAVAILABLE,
            problems,
        }
    }

    fn plain(code: u8, summary: &str, detail: impl Into<String>) -> Self {
        Failure {
            code,
            problems: vec![unplaced(Problem::error(summary, detail))],
        }
    }
}

fn unplaced(problem: Problem) -> Located {
    Located {
        problem,
        place: None,
        block: None,
    }
}

/// Prints problems on stderr, each once (the same error of several blocks is said once), with
/// control characters from the configuration escaped.
fn report(problems: &[Located]) {
    let mut err = std::io::stderr().lock();
    let mut said: Vec<(bool, &str, &str)> = Vec::new();
    for p in problems {
        let key = (
            p.problem.is_error(),
            p.problem.summary.as_str(),
            p.problem.detail.as_str(),
        );
        if said.contains(&key) {
            continue;
        }
        said.push(key);
        let text = p.to_string();
        let shown: String = text
            .lines()
            .map(config::escape_controls)
            .collect::<Vec<_>>()
            .join("\n");
        let _ = writeln!(err, "ccsecrets: {shown}\n");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.no_masks {
        exec::disable_masks();
    }
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory as _;
        let mut out = std::io::stdout().lock();
        clap_complete::generate(shell, &mut Cli::command(), "ccsecrets", &mut out);
        return ExitCode::SUCCESS;
    }
    let globals = Globals {
        config: cli.config,
        environment: cli.environment,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ccsecrets: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(globals, cli.command));
    rt.shutdown_timeout(Duration::from_millis(200));
    ExitCode::from(code)
}

async fn run(g: Globals, command: Command) -> u8 {
    // Stop (abandon waits, skip starting anything) when our parent dies or we are told to.
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        let parent_gone = ccsecrets_core::process::parent_exit();
        async move {
            parent_gone.await;
            stop.cancel();
        }
    });
    let result = match command {
        Command::Exec {
            genesys,
            genesys_login_url,
            genesys_api_url,
            cxone,
            keep_env,
            command,
        } => {
            let shorthands = Shorthands {
                genesys,
                cxone,
                genesys_login_url,
                genesys_api_url,
            };
            cmd_exec(&g, &shorthands, &keep_env, &command, stop).await
        }
        Command::Token { name, field, json } => cmd_token(&g, &name, &field, json, stop).await,
        Command::Export { names, format } => cmd_export(&g, &names, format, stop).await,
        Command::Revoke {
            name,
            region,
            api_url,
        } => cmd_revoke(&g, name.as_deref(), region, api_url).await,
        Command::Check => cmd_check(&g, stop).await,
        Command::Agent {
            action: Some(AgentAction::Health { listen }),
            ..
        } => Ok(agent::health(listen, g.config.clone()).await),
        Command::Agent {
            once,
            log_format,
            action: None,
            command,
        } => {
            let args = agent::Args {
                globals: g.clone(),
                once,
                command,
                log_format,
            };
            agent::run(args, stop).await
        }
        Command::Completions { .. } => Ok(0),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            report(&f.problems);
            f.code
        }
    }
}

/// Reads the configuration (if any), applies `--environment` / `CCSECRETS_ENVIRONMENT`, and
/// validates it all before anything touches the network.
fn load(g: &Globals, needs_file: bool) -> Result<Config, Failure> {
    let mut config = match config::which_file(g.config.as_deref()) {
        Some(path) => config::load(&path).map_err(Failure::config)?,
        None if needs_file => {
            return Err(Failure::plain(
                EXIT_CONFIG,
                "No configuration file",
                format!(
                    "Give one with --config FILE or {}, or create {} in this directory.",
                    config::CONFIG_ENV,
                    config::DEFAULT_FILE
                ),
            ));
        }
        None => Config::empty(),
    };
    apply_environment(&mut config, g.environment.as_deref())?;
    let mut problems: Vec<Located> = config
        .settings
        .validate()
        .into_iter()
        .map(|p| config.locate(p))
        .collect();
    for b in &config.blocks {
        problems.extend(open::validate(b, config.settings.store_kind()));
    }
    if problems.iter().any(|p| p.problem.is_error()) {
        return Err(Failure::config(problems));
    }
    report(&problems);
    Ok(config)
}

/// The environment, by precedence: `--environment`, else `CCSECRETS_ENVIRONMENT`, else the
/// file's `environment`.
fn apply_environment(config: &mut Config, flag: Option<&str>) -> Result<(), Failure> {
    let from_env = std::env::var(ccsecrets_core::settings::ENVIRONMENT_ENV)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let (value, source) = match (flag, from_env) {
        (Some(f), _) => (f.to_owned(), "--environment".to_owned()),
        (None, Some(e)) => (e, ccsecrets_core::settings::ENVIRONMENT_ENV.to_owned()),
        (None, None) => return Ok(()),
    };
    if !ccsecrets_core::mint::valid_environment(&value) {
        return Err(Failure::plain(
            EXIT_CONFIG,
            "Invalid environment",
            format!(
                "{source} {:?} may use letters, digits, `-`, `_` and `.` only, and may not be `.` or `..` (it is substituted into secret paths).",
                value
            ),
        ));
    }
    config.settings.environment = Some(value);
    Ok(())
}

/// Configuration problems that only show once the environment is known: a block's path that
/// needs an `environment` there is none of, a `jwt_env` variable that is not set. Checked
/// before anything is minted, so they end with 78 like every configuration error.
fn preflight(core: &Core, config: &Config, blocks: &[&config::TokenBlock]) -> Result<(), Failure> {
    let mut problems: Vec<Located> = Vec::new();
    for b in blocks {
        if let Err(ps) = open::source(core, b) {
            problems.extend(ps);
        }
    }
    if config.settings.store_kind() == ccsecrets_core::store::StoreKind::Vault {
        if let Some(jwt) = config
            .settings
            .vault
            .as_ref()
            .and_then(|v| v.auth_jwt.as_ref())
        {
            if let Some(name) = jwt
                .jwt_env
                .as_deref()
                .filter(|_| jwt.jwt.is_none() && jwt.jwt_file.is_none())
            {
                let set = std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
                if !set {
                    problems.push(config.locate(
                        Problem::error(
                            "JWT variable not set",
                            format!(
                                "`jwt_env` names the environment variable {}, which is not set or empty. In CI, make the job's OIDC token available under that name.",
                                config::escape_controls(name)
                            ),
                        )
                        .at(ccsecrets_core::Field::root("vault").attr("auth_jwt").attr("jwt_env")),
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::config(problems))
    }
}

fn core_of(config: &Config, stop: &CancellationToken) -> Result<Core, Failure> {
    let (core, warnings) = config
        .settings
        .resolve(Arc::new(Pools::default()), stop.clone())
        .map_err(|ps| Failure::config(ps.into_iter().map(|p| config.locate(p)).collect()))?;
    report(
        &warnings
            .into_iter()
            .map(|p| config.locate(p))
            .collect::<Vec<_>>(),
    );
    Ok(core)
}

/// Revokes what this process minted and ends the store session, within a budget.
async fn release_all(core: &Core) {
    let done = async {
        let (failed, ()) = tokio::join!(core.pools.drain(), core.store.shutdown());
        if failed > 0 {
            report(&[unplaced(Problem::warning(
                "Some tokens could not be revoked",
                format!("{failed} token(s) stay valid until they expire."),
            ))]);
        }
    };
    if tokio::time::timeout(REVOKE_BUDGET, done).await.is_err() {
        report(&[unplaced(Problem::warning(
            "Revocation did not finish in time",
            "Some tokens may stay valid until they expire.",
        ))]);
    }
}

/// Opens every block like [`open_all`]; a stop signal (INT, TERM, HUP, QUIT) meanwhile lets
/// a token request already sent be answered (within [`SETTLE_BUDGET`], then the rest is
/// abandoned) and revokes every token minted, so none outlives the interruption.
async fn open_interruptible(
    core: &Core,
    blocks: &[&config::TokenBlock],
    stop: &CancellationToken,
    what: &str,
) -> Result<Vec<open::Opened>, Failure> {
    let mut signals = exec::Signals::new()
        .map_err(|e| Failure::plain(1, "Cannot install signal handlers", e.to_string()))?;
    let open = open_all(core, blocks);
    tokio::pin!(open);
    let sig = tokio::select! {
        r = &mut open => return r,
        sig = signals.next() => sig,
    };
    // Not cancelled at once: a token request already sent is answered (its token is then
    // revoked below), which abandoning it would not stop the platform from issuing.
    if tokio::time::timeout(SETTLE_BUDGET, &mut open)
        .await
        .is_err()
    {
        stop.cancel();
    }
    release_all(core).await;
    Err(Failure::plain(
        128 + sig as u8,
        "Interrupted",
        format!("Stopped by {sig} {what}; every token minted was revoked."),
    ))
}

/// Opens every block, in order; on a failure, what was minted is revoked.
async fn open_all(
    core: &Core,
    blocks: &[&config::TokenBlock],
) -> Result<Vec<open::Opened>, Failure> {
    let mut opened = Vec::with_capacity(blocks.len());
    for b in blocks {
        match open::open(core, b).await {
            Ok(o) => {
                report(&o.warnings);
                opened.push(o);
            }
            Err(problems) => {
                release_all(core).await;
                return Err(Failure::unavailable(problems));
            }
        }
    }
    Ok(opened)
}

/// Writes GitHub mask lines (if any) to stderr.
fn print_masks(values: &[SecretString]) {
    let masks = exec::github_masks(values);
    if !masks.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(masks.as_bytes()).and_then(|()| err.flush());
    }
}

/// The `--genesys` / `--cxone` shorthands of `exec`.
#[derive(Debug)]
struct Shorthands {
    genesys: Vec<String>,
    cxone: Vec<String>,
    genesys_login_url: Option<String>,
    genesys_api_url: Option<String>,
}

async fn cmd_exec(
    g: &Globals,
    shorthands: &Shorthands,
    keep_env: &[String],
    command: &[String],
    stop: CancellationToken,
) -> Result<u8, Failure> {
    let any = !shorthands.genesys.is_empty() || !shorthands.cxone.is_empty();
    let mut config = load(g, !any)?;
    let urls: Vec<(&str, &str)> = [
        ("login_url", shorthands.genesys_login_url.as_deref()),
        ("api_url", shorthands.genesys_api_url.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    for p in &shorthands.genesys {
        config.add_shorthand(BlockKind::Genesys, "--genesys", p, &urls);
    }
    for p in &shorthands.cxone {
        config.add_shorthand(BlockKind::Cxone, "--cxone", p, &[]);
    }
    let mut problems: Vec<Located> = config
        .blocks
        .iter()
        .filter(|b| b.name.starts_with("--"))
        .flat_map(|b| open::validate(b, config.settings.store_kind()))
        .collect();
    problems.extend(exec::check_collisions(&config.blocks));
    if config.blocks.is_empty() {
        problems.push(unplaced(Problem::error(
            "Nothing to mint",
            "The configuration has no genesys_token, cxone_token or vault_secret block; add one, or use --genesys PATH / --cxone PATH.",
        )));
    }
    if !problems.is_empty() {
        return Err(Failure::config(problems));
    }
    let core = core_of(&config, &stop)?;
    let blocks: Vec<&config::TokenBlock> = config.blocks.iter().collect();
    preflight(&core, &config, &blocks)?;
    // A stop signal while minting ends it; nothing is started.
    let opened = open_interruptible(
        &core,
        &blocks,
        &stop,
        "before the command started; it was not started",
    )
    .await?;
    print_masks(&exec::secrets(&opened));
    let mut handover = exec::handover(&config.blocks, &opened);
    handover.remove.extend(exec::store_credential_vars(&config));
    handover.remove.keep(keep_env);
    drop(opened);
    let result = exec::run(command, handover, stop, None).await;
    release_all(&core).await;
    match result {
        Ok(status) => Ok(exec::exit_code(status)),
        Err(e) => Err(Failure::plain(e.code, "Cannot run the command", e.message)),
    }
}

/// The block a name refers to: `NAME` when unique, or `TYPE.NAME`.
fn find_block<'a>(config: &'a Config, name: &str) -> Result<&'a config::TokenBlock, Failure> {
    let matches: Vec<&config::TokenBlock> = config
        .blocks
        .iter()
        .filter(|b| b.name == name || format!("{}.{}", b.kind.name(), b.name) == name)
        .collect();
    let shown = config::escape_controls(name);
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Failure::plain(
            EXIT_CONFIG,
            "No such block",
            format!(
                "The configuration has no block named \"{shown}\". Blocks: {}.",
                config
                    .blocks
                    .iter()
                    .map(|b| format!("{}.{}", b.kind.name(), config::escape_controls(&b.name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        many => Err(Failure::plain(
            EXIT_CONFIG,
            "Ambiguous block name",
            format!(
                "{} blocks are named \"{shown}\"; say which with TYPE.NAME, e.g. {}.{shown}.",
                many.len(),
                many[0].kind.name()
            ),
        )),
    }
}

/// An output as JSON (secret values exposed: the caller prints them on purpose).
fn output_json(o: &Output) -> serde_json::Value {
    use serde_json::Value;
    match o {
        Output::Secret(s) => Value::String(s.expose_secret().to_owned()),
        Output::Text(t) => Value::String(t.clone()),
        Output::Number(n) => Value::from(*n),
        Output::Bool(b) => Value::Bool(*b),
        Output::Null => Value::Null,
        Output::Map(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), output_json(v))).collect())
        }
    }
}

/// On stderr: when a printed token expires, and that it stays valid until then.
fn say_not_revoked(block: &config::TokenBlock, opened: &open::Opened) {
    if opened.lease.is_none() {
        return;
    }
    let expires = match opened.outputs.get("expires_at") {
        Some(Output::Text(t)) => t.clone(),
        _ => "its expiry".to_owned(),
    };
    let how = if block.kind == BlockKind::Genesys {
        format!(
            "; end it early with `ccsecrets revoke {}.{} < token`",
            block.kind.name(),
            config::escape_controls(&block.name)
        )
    } else {
        String::new()
    };
    eprintln!(
        "ccsecrets: {}: the token expires at {expires} and is not revoked when ccsecrets exits{how}",
        config::escape_controls(&block.title())
    );
}

async fn cmd_token(
    g: &Globals,
    name: &str,
    fields: &[String],
    json: bool,
    stop: CancellationToken,
) -> Result<u8, Failure> {
    let config = load(g, true)?;
    let block = find_block(&config, name)?;
    let words = block.kind.words();
    let default = ["access_token".to_owned()];
    // --json prints every value the block has, whatever its kind: no field to check.
    let fields = if json {
        &[][..]
    } else if fields.is_empty() {
        &default[..]
    } else {
        fields
    };
    for field in fields {
        let known = words.term(field).is_some()
            || (block.kind == BlockKind::VaultSecret && field.starts_with("data."));
        if !known {
            return Err(Failure::plain(
                EXIT_CONFIG,
                "No such attribute",
                format!(
                    "A `{}` block has no attribute \"{}\". Attributes: {}.",
                    block.kind.name(),
                    config::escape_controls(field),
                    words
                        .terms
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let core = core_of(&config, &stop)?;
    preflight(&core, &config, &[block])?;
    let result = open_interruptible(&core, &[block], &stop, "before anything was printed").await;
    // The token stays valid for whoever reads it; only the store session ends here.
    core.store.shutdown().await;
    let opened = result?
        .pop()
        .ok_or_else(|| Failure::plain(EXIT_UNAVAILABLE, "No value", "The block was not opened."))?;
    print_masks(&exec::secrets(std::slice::from_ref(&opened)));
    let mut text = zeroize::Zeroizing::new(String::new());
    if json {
        let object: serde_json::Map<String, serde_json::Value> = opened
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), output_json(v)))
            .collect();
        text.push_str(&serde_json::Value::Object(object).to_string());
        text.push('\n');
    } else {
        for field in fields {
            match opened.field(field) {
                Some(Output::Secret(s)) => text.push_str(s.expose_secret()),
                Some(Output::Text(t)) => text.push_str(t),
                Some(Output::Number(n)) => text.push_str(&n.to_string()),
                Some(Output::Bool(b)) => text.push_str(&b.to_string()),
                Some(Output::Null | Output::Map(_)) | None => {
                    release_all(&core).await;
                    return Err(Failure::plain(
                        EXIT_UNAVAILABLE,
                        "No value",
                        format!(
                            "{} has no value for \"{}\"; nothing was printed{}.",
                            config::escape_controls(&block.title()),
                            config::escape_controls(field),
                            if opened.lease.is_some() {
                                " and the token was revoked"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
            text.push('\n');
        }
    }
    write_or_revoke(&core, &text).await?;
    say_not_revoked(block, &opened);
    Ok(0)
}

/// Writes printed values to stdout. When that fails (`> /dev/full`, a closed pipe), nobody got
/// the tokens: they are revoked and ccsecrets fails instead of reporting success.
async fn write_or_revoke(core: &Core, text: &str) -> Result<(), Failure> {
    let written = {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|()| out.flush())
    };
    if let Err(e) = written {
        release_all(core).await;
        return Err(Failure::plain(
            EXIT_IOERR,
            "Cannot write the output",
            format!("stdout: {e}; the tokens were revoked."),
        ));
    }
    Ok(())
}

/// A value that `NAME=value` carries unchanged to every reader (`$GITHUB_ENV`, GitLab dotenv,
/// docker/compose env files, python-dotenv, a POSIX shell's `set -a; . file`): no quotes,
/// spaces, `#`, `$`, backslashes, control characters, nor what a shell would pipe, redirect,
/// background or tilde-expand (`|`, `<`, `>`, `&`, `~`).
fn dotenv_safe(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/+=@,%^*!?[]{}".contains(c))
}

/// `value` in single quotes for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

async fn cmd_export(
    g: &Globals,
    names: &[String],
    format: Format,
    stop: CancellationToken,
) -> Result<u8, Failure> {
    let config = load(g, true)?;
    let blocks: Vec<&config::TokenBlock> = if names.is_empty() {
        config.blocks.iter().collect()
    } else {
        let mut v: Vec<&config::TokenBlock> = Vec::new();
        for n in names {
            let b = find_block(&config, n)?;
            if !v.iter().any(|x| std::ptr::eq(*x, b)) {
                v.push(b);
            }
        }
        v
    };
    let owned: Vec<config::TokenBlock> = blocks.iter().map(|b| (*b).clone()).collect();
    let mut problems = exec::check_collisions(&owned);
    if blocks.is_empty() {
        problems.push(unplaced(Problem::error(
            "Nothing to export",
            "The configuration has no genesys_token, cxone_token or vault_secret block.",
        )));
    }
    if !problems.is_empty() {
        return Err(Failure::config(problems));
    }
    let core = core_of(&config, &stop)?;
    preflight(&core, &config, &blocks)?;
    let opened = open_interruptible(&core, &blocks, &stop, "before anything was printed").await?;
    let handover = exec::handover(&owned, &opened);
    let mut text = zeroize::Zeroizing::new(String::new());
    let mut object = serde_json::Map::new();
    for (name, value) in &handover.set {
        let value = match value {
            exec::EnvValue::Plain(v) => v.as_str(),
            exec::EnvValue::Secret(v) => v.expose_secret(),
        };
        match format {
            Format::Dotenv if !dotenv_safe(value) => {
                release_all(&core).await;
                return Err(Failure::plain(
                    1,
                    "Value cannot be written as dotenv",
                    format!(
                        "The value of {name} holds characters (quotes, spaces, `#`, `$`, `&`, `|`, `<`, `>`, `~`, backslashes or line breaks) that dotenv readers do not agree on; nothing was printed and the tokens were revoked. Use --format json or --format shell."
                    ),
                ));
            }
            Format::Dotenv => {
                text.push_str(name);
                text.push('=');
                text.push_str(value);
                text.push('\n');
            }
            Format::Shell => {
                text.push_str("export ");
                text.push_str(name);
                text.push('=');
                text.push_str(&shell_quote(value));
                text.push('\n');
            }
            Format::Json => {
                object.insert(name.clone(), serde_json::Value::String(value.to_owned()));
            }
        }
    }
    if format == Format::Json {
        text.push_str(&serde_json::Value::Object(object).to_string());
        text.push('\n');
    }
    drop(handover);
    // The tokens stay valid for the later steps; only the store session ends here.
    core.store.shutdown().await;
    print_masks(&exec::secrets(&opened));
    write_or_revoke(&core, &text).await?;
    for (b, o) in blocks.iter().zip(&opened) {
        say_not_revoked(b, o);
    }
    Ok(0)
}

async fn cmd_revoke(
    g: &Globals,
    name: Option<&str>,
    region: Option<String>,
    api_url: Option<String>,
) -> Result<u8, Failure> {
    use ccsecrets_core::platform::genesys;
    let mut settings = genesys::GenesysSettings {
        region,
        api_url,
        ..Default::default()
    };
    if let Some(name) = name {
        let config = load(g, true)?;
        let block = find_block(&config, name)?;
        if block.kind != BlockKind::Genesys {
            return Err(Failure::plain(
                EXIT_CONFIG,
                "Not a Genesys Cloud block",
                format!(
                    "Only Genesys Cloud tokens can be revoked; {} is a {}.",
                    config::escape_controls(&block.title()),
                    block.kind.name()
                ),
            ));
        }
        let from: genesys::GenesysSettings =
            block.settings().map_err(|l| Failure::config(vec![l]))?;
        settings.region = settings.region.or(from.region);
        settings.domain = from.domain;
        settings.api_url = settings.api_url.or(from.api_url);
    }
    let api = genesys::api_base(&settings).map_err(|p| Failure::config(vec![unplaced(p)]))?;
    // One line, bounded: a token is a few KiB; `< /dev/zero` or a wrong file must not hang.
    const TOKEN_LIMIT: u64 = 64 * 1024;
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::BufRead::read_line(
        &mut std::io::Read::take(std::io::stdin().lock(), TOKEN_LIMIT + 1),
        &mut line,
    )
    .map_err(|e| Failure::plain(EXIT_CONFIG, "Cannot read the token", format!("stdin: {e}.")))?;
    if line.len() as u64 > TOKEN_LIMIT {
        return Err(Failure::plain(
            EXIT_CONFIG,
            "Cannot read the token",
            "stdin: the first line is longer than 64 KiB; give the token alone on one line.",
        ));
    }
    let token = SecretString::from(line.trim().to_owned());
    drop(line);
    if token.expose_secret().is_empty() {
        return Err(Failure::plain(
            EXIT_CONFIG,
            "No token",
            "Give the token to revoke on stdin, e.g. `ccsecrets revoke --region us-east-1 < token`.",
        ));
    }
    let http = ccsecrets_core::net::http_client(&ccsecrets_core::net::ClientOptions {
        timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .map_err(|e| Failure::plain(1, "Cannot set up the HTTP client", e))?;
    genesys::revoke(&http, &api, &token).await.map_err(|e| {
        Failure::plain(
            EXIT_UNAVAILABLE,
            "Could not revoke the token",
            format!("{e}."),
        )
    })?;
    eprintln!(
        "ccsecrets: revoked the token at {}",
        api.as_str().trim_end_matches('/')
    );
    Ok(0)
}

async fn cmd_check(g: &Globals, stop: CancellationToken) -> Result<u8, Failure> {
    let config = load(g, true)?;
    let agent_problems = agent::validate(&config);
    if !agent_problems.is_empty() {
        return Err(Failure::config(agent_problems));
    }
    let core = core_of(&config, &stop)?;
    let blocks: Vec<&config::TokenBlock> = config.blocks.iter().collect();
    preflight(&core, &config, &blocks)?;
    let mut problems = Vec::new();
    for b in &config.blocks {
        match open::check(&core, b).await {
            Ok(line) => eprintln!("ok: {}", config::escape_controls(&line)),
            Err(p) => problems.extend(p),
        }
    }
    core.store.shutdown().await;
    if problems.is_empty() {
        eprintln!("ccsecrets: the configuration is valid and every secret has the keys it needs");
        Ok(0)
    } else {
        Err(Failure::unavailable(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dotenv_value_reads_back_the_same_when_a_posix_shell_sources_it() {
        // Every character dotenv output lets through, in one value, sourced the way a job
        // loads a dotenv file into its shell (`set -a; . file`).
        let allowed: String = (0x20u8..0x7f)
            .map(char::from)
            .filter(|c| dotenv_safe(&c.to_string()))
            .collect();
        let value = format!("{allowed}:{allowed}");
        assert!(dotenv_safe(&value));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars.env");
        std::fs::write(&file, format!("X={value}\n")).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("set -a; . \"$1\"; printf '%s' \"$X\"")
            .arg("sh")
            .arg(&file)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), value, "{out:?}");
        // What a shell would run, redirect, background or expand.
        for bad in ["a|b", "a&b", "a<b", "a>b", "~/x", "a;b", "a b", "$x", "`x`"] {
            assert!(!dotenv_safe(bad), "{bad}");
        }
    }
}
