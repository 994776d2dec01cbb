//! `exec`: the command runs with the tokens in its environment; signals reach it; when it ends,
//! every token ccsecrets minted is revoked and its exit status becomes ccsecrets's.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ccsecrets_core::mint::Output;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::{ExposeSecret, SecretString};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config::{BlockKind, Config, Located, TokenBlock};
use crate::open::Opened;

/// Variables removed from the command's environment when a Genesys token is handed over: the
/// genesyscloud provider and the `gc` CLI would otherwise log in with them instead.
pub(crate) const GENESYS_CLIENT_VARS: [&str; 2] = [
    "GENESYSCLOUD_OAUTHCLIENT_ID",
    "GENESYSCLOUD_OAUTHCLIENT_SECRET",
];

/// How long the command gets to end after ccsecrets forwarded a stop signal, before it is
/// killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// A variable's value: secrets stay in secret types until the command is started.
#[derive(Debug, Clone)]
pub(crate) enum EnvValue {
    Plain(String),
    Secret(SecretString),
}

/// Variables holding the credentials ccsecrets may use to reach each kind of store (besides a
/// configured `jwt_env`): removed from the command's environment unless kept on purpose.
pub(crate) const VAULT_CREDENTIAL_VARS: [&str; 2] = ["VAULT_TOKEN", "BAO_TOKEN"];
/// See [`VAULT_CREDENTIAL_VARS`].
/// Static keys, session token, and what the SDK's default chain signs in with besides them:
/// the web identity token file and the container (ECS, EKS Pod Identity) authorization token.
pub(crate) const AWS_CREDENTIAL_VARS: [&str; 6] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];
/// The client secret, the federated token file, and the App Service managed identity's
/// secret header (`IDENTITY_HEADER`, formerly `MSI_SECRET`).
pub(crate) const AZURE_CREDENTIAL_VARS: [&str; 4] = [
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IDENTITY_HEADER",
    "MSI_SECRET",
];

/// The store credentials to remove from a command's environment for this configuration: the
/// variables of its kind of store and its `jwt_env` variable; none with
/// `pass_store_credentials = true`. Put them in [`Handover::remove`].
pub(crate) fn store_credential_vars(config: &Config) -> Vec<String> {
    use ccsecrets_core::store::StoreKind;
    if config.pass_store_credentials {
        return Vec::new();
    }
    let settings = &config.settings;
    let mut names: Vec<String> = match settings.store_kind() {
        StoreKind::Vault => VAULT_CREDENTIAL_VARS.map(str::to_owned).to_vec(),
        StoreKind::AwsSecretsManager => AWS_CREDENTIAL_VARS.map(str::to_owned).to_vec(),
        StoreKind::AzureKeyVault => AZURE_CREDENTIAL_VARS.map(str::to_owned).to_vec(),
    };
    if let Some(name) = settings
        .vault
        .as_ref()
        .and_then(|v| v.auth_jwt.as_ref())
        .and_then(|j| j.jwt_env.clone())
    {
        names.push(name);
    }
    names
}

/// Names to remove from the command's environment (each once).
#[derive(Debug, Default, Clone)]
pub(crate) struct Removed(Vec<String>);

impl Removed {
    /// Adds names (`&str` or `String`).
    pub(crate) fn extend<I, S>(&mut self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for n in names {
            let n = n.into();
            if !self.0.contains(&n) {
                self.0.push(n);
            }
        }
    }

    /// Drops the names kept on purpose (`--keep-env NAME`).
    pub(crate) fn keep(&mut self, kept: &[String]) {
        self.0.retain(|n| !kept.contains(n));
    }

    /// The names.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// What the command's environment gets.
#[derive(Debug, Default)]
pub(crate) struct Handover {
    pub(crate) set: BTreeMap<String, EnvValue>,
    pub(crate) remove: Removed,
}

/// Two blocks that would set the same variable: an error naming both. Checked before anything
/// is minted.
pub(crate) fn check_collisions(blocks: &[TokenBlock]) -> Vec<Located> {
    let mut seen: BTreeMap<&str, &TokenBlock> = BTreeMap::new();
    let mut problems = Vec::new();
    for b in blocks {
        for v in &b.env {
            match seen.get(v.name.as_str()) {
                Some(first) => problems.push(b.locate(
                    ccsecrets_core::Problem::error(
                        "Two blocks set the same variable",
                        format!(
                            "{} and {} both set {}. Give one of them an `env` attribute with other names.",
                            first.title(),
                            b.title(),
                            v.name
                        ),
                    )
                    .at_attr("env"),
                )),
                None => {
                    seen.insert(&v.name, b);
                }
            }
        }
    }
    problems
}

/// The command's environment from the opened blocks.
pub(crate) fn handover(blocks: &[TokenBlock], opened: &[Opened]) -> Handover {
    let mut h = Handover::default();
    for (b, o) in blocks.iter().zip(opened) {
        if b.kind == BlockKind::Genesys {
            h.remove.extend(GENESYS_CLIENT_VARS);
        }
        for v in &b.env {
            let value = match o.field(&v.field) {
                Some(Output::Secret(s)) => EnvValue::Secret(s.clone()),
                Some(Output::Text(t)) => EnvValue::Plain(t.clone()),
                Some(Output::Number(n)) => EnvValue::Plain(n.to_string()),
                Some(Output::Bool(x)) => EnvValue::Plain(x.to_string()),
                // No value (e.g. no region for a custom domain): the variable is not set.
                Some(Output::Null | Output::Map(_)) | None => continue,
            };
            h.set.insert(v.name.clone(), value);
        }
    }
    h
}

/// Every secret value of the opened blocks, for GitHub's log masking.
pub(crate) fn secrets(opened: &[Opened]) -> Vec<SecretString> {
    fn walk(o: &Output, out: &mut Vec<SecretString>) {
        match o {
            Output::Secret(s) => out.push(s.clone()),
            Output::Map(m) => m.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for o in opened {
        o.outputs.values().for_each(|v| walk(v, &mut out));
    }
    out
}

/// Set when masks are turned off (`--no-masks`, `CCSECRETS_NO_MASKS`).
static MASKS_OFF: AtomicBool = AtomicBool::new(false);

/// Turns GitHub mask lines off for this process.
pub(crate) fn disable_masks() {
    MASKS_OFF.store(true, Ordering::Relaxed);
}

/// A workflow command's data escaped as the runner unescapes it (`actions/runner`,
/// `ActionCommand.UnescapeData`: `%0D` to CR, `%0A` to LF, `%25` to `%`).
fn escape_command_data(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// When GitHub Actions runs us (and masks are not turned off), `::add-mask::` lines that ask
/// the runner to mask each value in every later log line: the whole value and, for a value of
/// several lines, each line too (the runner masks line by line). Write them to stderr: the
/// runner reads commands from both streams, and stdout belongs to the command.
pub(crate) fn github_masks(values: &[SecretString]) -> String {
    if MASKS_OFF.load(Ordering::Relaxed) || std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true")
    {
        return String::new();
    }
    let mut seen: Vec<&str> = Vec::new();
    for v in values {
        let v = v.expose_secret();
        seen.push(v);
        if v.contains(['\r', '\n']) {
            seen.extend(v.split(['\r', '\n']));
        }
    }
    let mut out = String::new();
    let mut done: Vec<&str> = Vec::new();
    for v in seen {
        if v.trim().is_empty() || done.contains(&v) {
            continue;
        }
        done.push(v);
        out.push_str("::add-mask::");
        out.push_str(&escape_command_data(v));
        out.push('\n');
    }
    out
}

/// How the command ended, as ccsecrets's own exit status.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
        _ => 1,
    }
}

/// Why the command could not run, with the shell's exit status for it.
#[derive(Debug)]
pub(crate) struct SpawnError {
    pub(crate) code: u8,
    pub(crate) message: String,
}

/// Runs the command to its end with the handover applied, forwarding stop signals. Returns
/// its exit status, or why it could not start.
pub(crate) async fn run(
    command: &[String],
    handover: Handover,
    stop: CancellationToken,
    mut reload: Option<(Signal, tokio::sync::mpsc::UnboundedReceiver<()>)>,
) -> Result<ExitStatus, SpawnError> {
    let (program, args) = command.split_first().ok_or(SpawnError {
        code: 2,
        message: "no command given after `--`".to_owned(),
    })?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    for name in handover.remove.iter() {
        cmd.env_remove(name);
    }
    for (name, value) in &handover.set {
        match value {
            EnvValue::Plain(v) => cmd.env(name, v),
            EnvValue::Secret(v) => cmd.env(name, v.expose_secret()),
        };
    }
    drop(handover);
    // From a terminal, the command stays in the terminal's foreground process group: it reads
    // the terminal (a group in the background would be stopped by SIGTTIN) and the terminal's
    // Ctrl-C reaches it. Elsewhere (CI, scripts) it leads a group of its own, so signals and
    // the grace-period kill reach everything it started.
    let from_terminal = std::io::stdin().is_terminal();
    let own_group = !from_terminal;
    if own_group {
        cmd.process_group(0);
    }
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => 127,
            _ => 126,
        };
        SpawnError {
            code,
            message: format!("cannot run {program:?}: {e}"),
        }
    })?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(Pid::from_raw);
    let forward = |sig: Signal| {
        if let Some(pid) = pid {
            // The group's id is the command's pid; a negative pid signals the whole group.
            let target = if own_group {
                Pid::from_raw(-pid.as_raw())
            } else {
                pid
            };
            if kill(target, sig).is_err() {
                let _ = kill(pid, sig);
            }
        }
    };
    // A terminal delivers Ctrl-C (SIGINT) and Ctrl-\ (SIGQUIT) to the whole foreground process
    // group, the command included: forwarding them again would make a second interrupt (which
    // Terraform, for one, takes as "exit now").
    let mut signals = Signals::new().map_err(|e| SpawnError {
        code: 1,
        message: format!("cannot install signal handlers: {e}"),
    })?;
    let mut stopping = false;
    loop {
        tokio::select! {
            status = child.wait() => {
                return status.map_err(|e| SpawnError { code: 1, message: format!("waiting for the command failed: {e}") });
            }
            sig = signals.next() => {
                let terminal_made = from_terminal && matches!(sig, Signal::SIGINT | Signal::SIGQUIT);
                if !terminal_made {
                    forward(sig);
                }
                if matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) {
                    stopping = true;
                }
            }
            Some(()) = async {
                match reload.as_mut() {
                    Some((_, rx)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((sig, _)) = &reload {
                    forward(*sig);
                }
            }
            () = stop.cancelled(), if !stopping => {
                // ccsecrets's own parent is gone: stop the command as a supervisor would.
                forward(Signal::SIGTERM);
                stopping = true;
            }
            () = tokio::time::sleep(STOP_GRACE), if stopping => {
                forward(Signal::SIGKILL);
            }
        }
    }
}

/// Makes the command die (SIGKILL) when ccsecrets dies, even by SIGKILL: `PR_SET_PDEATHSIG`,
/// set in the child between fork and exec. The signal follows the thread that forked, so
/// spawn from a thread that lives as long as ccsecrets waits for the command (the main
/// thread, or a runtime worker).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed. It makes two system calls, prctl(2) and getppid(2), both
    // async-signal-safe, through nix's thin wrappers; it allocates nothing, takes no lock and
    // touches no state shared with the parent (`parent` is a copied integer; the errors are
    // built from a raw errno, without allocating).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // ccsecrets died between fork and prctl: the signal will never come.
            if u32::try_from(nix::unistd::getppid().as_raw()).ok() != Some(parent) {
                return Err(std::io::Error::from(nix::errno::Errno::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut tokio::process::Command) {}

/// The stop signals ccsecrets forwards.
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    pub(crate) async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.hup.recv() => Signal::SIGHUP,
            _ = self.quit.recv() => Signal::SIGQUIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_status_passes_through_and_signals_become_128_plus_n() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }

    #[test]
    fn mask_data_is_escaped_as_the_runner_unescapes_it() {
        assert_eq!(escape_command_data("a%0Db\r\n%"), "a%250Db%0D%0A%25");
        // The runner's UnescapeData, in its order, gives the value back.
        let unescape = |s: &str| {
            s.replace("%0D", "\r")
                .replace("%0A", "\n")
                .replace("%25", "%")
        };
        for v in ["%0A", "x%25y", "a\r\nb%", "%%0D0D", "plain"] {
            assert_eq!(unescape(&escape_command_data(v)), v);
        }
    }
}
