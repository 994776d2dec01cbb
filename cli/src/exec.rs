//! `exec`: the command runs with the tokens in its environment; signals reach it; when it ends,
//! every token ccsecrets minted is revoked and its exit status becomes ccsecrets's.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitStatus;
use std::time::Duration;

use ccsecrets_core::mint::Output;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::{ExposeSecret, SecretString};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config::{BlockKind, Located, TokenBlock};
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
#[derive(Debug)]
pub(crate) enum EnvValue {
    Plain(String),
    Secret(SecretString),
}

/// What the command's environment gets.
#[derive(Debug, Default)]
pub(crate) struct Handover {
    pub(crate) set: BTreeMap<String, EnvValue>,
    pub(crate) remove: Vec<&'static str>,
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

/// When GitHub Actions runs us, asks the runner to mask each value in every later log line.
pub(crate) fn github_masks(values: &[SecretString]) -> String {
    if std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true") {
        return String::new();
    }
    values
        .iter()
        .flat_map(|v| {
            v.expose_secret()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("::add-mask::{l}\n"))
        .collect()
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
    for name in &handover.remove {
        cmd.env_remove(name);
    }
    for (name, value) in &handover.set {
        match value {
            EnvValue::Plain(v) => cmd.env(name, v),
            EnvValue::Secret(v) => cmd.env(name, v.expose_secret()),
        };
    }
    drop(handover);
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
            let _ = kill(pid, sig);
        }
    };
    // A terminal delivers Ctrl-C (SIGINT) and Ctrl-\ (SIGQUIT) to the whole foreground process
    // group, the command included: forwarding them again would make a second interrupt (which
    // Terraform, for one, takes as "exit now").
    let from_terminal = std::io::stdin().is_terminal();
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
    fn masks_only_under_github_actions() {
        let v = vec![SecretString::from("tok-1"), SecretString::from("a\nb")];
        // The test process may itself run under GitHub Actions: compare with the variable.
        let want = if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
            "::add-mask::tok-1\n::add-mask::a\n::add-mask::b\n"
        } else {
            ""
        };
        assert_eq!(github_masks(&v), want);
    }
}
