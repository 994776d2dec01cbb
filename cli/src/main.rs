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
/// How long revocation may take once the command has ended.
const REVOKE_BUDGET: Duration = Duration::from_secs(10);

const AFTER_HELP: &str = "\
Configuration: --config FILE, else $CCSECRETS_CONFIG, else ./ccsecrets.hcl. It uses the Terraform
provider's words: the provider's settings and `vault { ... }` at the top level, and blocks
`genesys_token \"NAME\"`, `cxone_token \"NAME\"` and `vault_secret \"NAME\"` with the ephemeral
resources' attributes plus `env`. Vault settings fall back to VAULT_ADDR, VAULT_TOKEN, ... as in
Terraform.

Exit status: the command's own (128+N when it died of signal N); 2 for bad usage; 78 for a
configuration error; 69 when a token could not be had (store or platform); 126/127 when the
command cannot be run. Nothing is started when ccsecrets fails first.";

#[derive(Debug, Parser)]
#[command(name = "ccsecrets", version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint the tokens, run COMMAND with them in its environment, then revoke them.
    ///
    /// Signals (INT, TERM, HUP, QUIT) are forwarded to COMMAND; when it ends, every token
    /// ccsecrets minted is revoked and its exit status is ccsecrets's.
    Exec {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A Genesys Cloud token from the secret at PATH, default settings (repeatable).
        #[arg(long, value_name = "PATH")]
        genesys: Vec<String>,
        /// A NICE CXone token from the secret at PATH, default settings (repeatable).
        #[arg(long, value_name = "PATH")]
        cxone: Vec<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Print one value of block NAME (default: its access_token) and nothing else.
    ///
    /// A printed token is NOT revoked: whoever reads it uses it after ccsecrets has exited, so
    /// it lives until it expires. Prefer `ccsecrets exec`, which revokes when the command ends;
    /// `ccsecrets revoke` revokes a Genesys token read from stdin.
    Token {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The block's name, or TYPE.NAME (e.g. genesys_token.deploy) when names repeat.
        name: String,
        /// The attribute to print, e.g. region, expires_at, api_endpoint, data.KEY.
        #[arg(long, default_value = "access_token", value_name = "ATTRIBUTE")]
        field: String,
    },
    /// Revoke a Genesys Cloud token read from stdin.
    Revoke {
        /// The configuration file (for the block's region and API URL).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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
    Check {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
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
        /// The configuration file to take the address from.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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

fn report(problems: &[Located]) {
    let mut err = std::io::stderr().lock();
    for p in problems {
        let _ = writeln!(err, "ccsecrets: {p}\n");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let code = rt.block_on(run(cli.command));
    rt.shutdown_timeout(Duration::from_millis(200));
    ExitCode::from(code)
}

async fn run(command: Command) -> u8 {
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
            config,
            genesys,
            cxone,
            command,
        } => cmd_exec(config, &genesys, &cxone, &command, stop).await,
        Command::Token {
            config,
            name,
            field,
        } => cmd_token(config, &name, &field, stop).await,
        Command::Revoke {
            config,
            name,
            region,
            api_url,
        } => cmd_revoke(config, name.as_deref(), region, api_url).await,
        Command::Check { config } => cmd_check(config, stop).await,
        Command::Agent {
            action:
                Some(AgentAction::Health {
                    listen,
                    config: own,
                }),
            config,
            ..
        } => Ok(agent::health(listen, own.or(config)).await),
        Command::Agent {
            config,
            once,
            log_format,
            action: None,
            command,
        } => {
            let args = agent::Args {
                config,
                once,
                command,
                log_format,
            };
            agent::run(args, stop).await
        }
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            report(&f.problems);
            f.code
        }
    }
}

/// Reads the configuration (if any) and validates it all before anything touches the network.
fn load(flag: Option<PathBuf>, needs_file: bool) -> Result<Config, Failure> {
    let config = match config::which_file(flag.as_deref()) {
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

/// Opens every block, in order; on a failure, what was minted is revoked.
async fn open_all(core: &Core, config: &Config) -> Result<Vec<open::Opened>, Failure> {
    let mut opened = Vec::with_capacity(config.blocks.len());
    for b in &config.blocks {
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

async fn cmd_exec(
    config: Option<PathBuf>,
    genesys: &[String],
    cxone: &[String],
    command: &[String],
    stop: CancellationToken,
) -> Result<u8, Failure> {
    let shorthands = !genesys.is_empty() || !cxone.is_empty();
    let mut config = load(config, !shorthands)?;
    for p in genesys {
        config.add_shorthand(BlockKind::Genesys, "--genesys", p);
    }
    for p in cxone {
        config.add_shorthand(BlockKind::Cxone, "--cxone", p);
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
    // A stop signal while minting abandons it; nothing is started.
    let mut signals = exec::Signals::new()
        .map_err(|e| Failure::plain(1, "Cannot install signal handlers", e.to_string()))?;
    let opened = tokio::select! {
        r = open_all(&core, &config) => r?,
        sig = signals.next() => {
            stop.cancel();
            release_all(&core).await;
            return Err(Failure::plain(128 + sig as u8, "Interrupted", format!("Stopped by {sig} before the command started; it was not started.")));
        }
    };
    drop(signals);
    let masks = exec::github_masks(&exec::secrets(&opened));
    if !masks.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(masks.as_bytes()).and_then(|()| out.flush());
    }
    let handover = exec::handover(&config.blocks, &opened);
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
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Failure::plain(
            EXIT_CONFIG,
            "No such block",
            format!(
                "The configuration has no block named {name:?}. Blocks: {}.",
                config
                    .blocks
                    .iter()
                    .map(|b| format!("{}.{}", b.kind.name(), b.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        many => Err(Failure::plain(
            EXIT_CONFIG,
            "Ambiguous block name",
            format!(
                "{} blocks are named {name:?}; say which with TYPE.NAME, e.g. {}.{name}.",
                many.len(),
                many[0].kind.name()
            ),
        )),
    }
}

async fn cmd_token(
    config: Option<PathBuf>,
    name: &str,
    field: &str,
    stop: CancellationToken,
) -> Result<u8, Failure> {
    let config = load(config, true)?;
    let block = find_block(&config, name)?;
    let words = block.kind.words();
    let known = words.term(field).is_some()
        || (block.kind == BlockKind::VaultSecret && field.starts_with("data."));
    if !known {
        return Err(Failure::plain(
            EXIT_CONFIG,
            "No such attribute",
            format!(
                "A `{}` block has no attribute {field:?}. Attributes: {}.",
                block.kind.name(),
                words
                    .terms
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let core = core_of(&config, &stop)?;
    let result = open::open(&core, block).await;
    // The token stays valid for whoever reads it; only the store session ends here.
    core.store.shutdown().await;
    let opened = result.map_err(Failure::unavailable)?;
    report(&opened.warnings);
    let value: SecretString = match opened.field(field) {
        Some(Output::Secret(s)) => {
            let masks = exec::github_masks(std::slice::from_ref(s));
            print!("{masks}");
            s.clone()
        }
        Some(Output::Text(t)) => SecretString::from(t.clone()),
        Some(Output::Number(n)) => SecretString::from(n.to_string()),
        Some(Output::Bool(b)) => SecretString::from(b.to_string()),
        Some(Output::Null | Output::Map(_)) | None => {
            return Err(Failure::plain(
                EXIT_UNAVAILABLE,
                "No value",
                format!("{} has no value for {field:?}.", block.title()),
            ));
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", value.expose_secret()).and_then(|()| out.flush());
    Ok(0)
}

async fn cmd_revoke(
    config: Option<PathBuf>,
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
        let config = load(config, true)?;
        let block = find_block(&config, name)?;
        if block.kind != BlockKind::Genesys {
            return Err(Failure::plain(
                EXIT_CONFIG,
                "Not a Genesys Cloud block",
                format!(
                    "Only Genesys Cloud tokens can be revoked; {} is a {}.",
                    block.title(),
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
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line).map_err(|e| {
        Failure::plain(EXIT_CONFIG, "Cannot read the token", format!("stdin: {e}."))
    })?;
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

async fn cmd_check(config: Option<PathBuf>, stop: CancellationToken) -> Result<u8, Failure> {
    let config = load(config, true)?;
    let agent_problems = agent::validate(&config);
    if !agent_problems.is_empty() {
        return Err(Failure::config(agent_problems));
    }
    let core = core_of(&config, &stop)?;
    let mut problems = Vec::new();
    for b in &config.blocks {
        match open::check(&core, b).await {
            Ok(line) => eprintln!("ok: {line}"),
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
