//! The agent's settings: the words of the `agent` and `sink` blocks (the command line's own,
//! not the core's), their typed `Deserialize` structs, and their checks pinned to file and line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ccsecrets_core::vocabulary::{Kind, Role, Term, Words};
use ccsecrets_core::{Field, Problem};
use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{BlockKind, Config, Located, TokenBlock};

/// Default of `stop_timeout_seconds`: well inside Kubernetes' default 30-second grace period.
pub(crate) const DEFAULT_STOP_TIMEOUT: u64 = 15;
/// Longest `stop_timeout_seconds`.
const MAX_STOP_TIMEOUT: u64 = 300;

/// The words of the top-level `agent` block.
pub(crate) fn words() -> Words {
    use Kind::{Number, String as Text};
    use Role::Optional;
    Words::new(
        "How `ccsecrets agent` runs: its health and metrics endpoint, how it refreshes and retires tokens, how it stops, and what it does to a supervised command.",
        vec![
            Term::new(
                "listen",
                Text,
                Optional,
                "Address of the health and metrics endpoint (`/healthz`, `/readyz`, `/metrics`), e.g. `127.0.0.1:8765`. Off when not set.",
            ),
            Term::new(
                "revoke_grace_seconds",
                Number,
                Optional,
                "How long a replaced token stays valid before it is revoked, so that readers that just read it can finish. 1 to 86400; default 60.",
            ),
            Term::new(
                "reread_seconds",
                Number,
                Optional,
                "How often the store is read again to pick up rotations, even when no token is due. 1 to 86400; default 300.",
            ),
            Term::new(
                "stop_timeout_seconds",
                Number,
                Optional,
                format!(
                    "How long the agent may take to stop once told to (an answer to a token request in flight, revocation, removing the sinks). 1 to {MAX_STOP_TIMEOUT}; default {DEFAULT_STOP_TIMEOUT}, well inside Kubernetes' default 30-second grace period."
                ),
            ),
            Term::new(
                "on_refresh",
                Text,
                Optional,
                "With `-- COMMAND`: what the command gets after each refresh. `restart` (stopped with SIGTERM, waited for, started again with fresh variables), `signal` (sent `reload_signal`; for commands that re-read the sink files) or `none`. Default: `signal` when `reload_signal` is set, else `restart` when the command takes a token variable, else `none`.",
            ),
            Term::new(
                "reload_signal",
                Text,
                Optional,
                "With `on_refresh = \"signal\"`: the signal sent to the command after each refresh. Default `SIGHUP`.",
            ),
        ],
    )
}

/// The words of a token block's `sink`.
pub(crate) fn sink_words() -> Words {
    use Kind::String as Text;
    use Role::{Optional, Required};
    Words::new(
        "A file the agent keeps holding a valid token: written atomically, refreshed before expiry, removed when no valid token can be had or the agent stops.",
        vec![
            Term::new(
                "file",
                Text,
                Required,
                "The file, best on a memory-backed volume (`emptyDir` with `medium: Memory`, a `tmpfs`); the agent warns at start when it is not. Missing parent directories are created.",
            ),
            Term::new(
                "format",
                Text,
                Optional,
                "`token` (the access token alone; the default), `json` (every attribute of the block), or `env` (`NAME='value'` lines of the block's `env` variables, safe to source: a value with a quote, line break or control character is refused).",
            ),
            Term::new(
                "mode",
                Text,
                Optional,
                "The file's permissions, in octal. Default `0400`.",
            ),
            Term::new(
                "dir_mode",
                Text,
                Optional,
                "The permissions of parent directories the agent creates, in octal. Default `0700`.",
            ),
        ],
    )
}

/// The `agent` block as written (every word optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentBlock {
    listen: Option<String>,
    revoke_grace_seconds: Option<f64>,
    reread_seconds: Option<f64>,
    stop_timeout_seconds: Option<f64>,
    on_refresh: Option<String>,
    reload_signal: Option<String>,
}

/// A `sink` block as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinkBlock {
    file: String,
    format: Option<String>,
    mode: Option<String>,
    dir_mode: Option<String>,
}

/// What a supervised command gets after each refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnRefresh {
    /// Stopped and started again with fresh variables.
    Restart,
    /// Sent a signal; it re-reads the sink files.
    Signal(Signal),
    /// Nothing.
    None,
}

/// The `agent` block, checked.
#[derive(Debug, Clone)]
pub(crate) struct AgentSettings {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) grace: Duration,
    pub(crate) reread: Duration,
    pub(crate) stop_timeout: Duration,
    /// `None` when not set: decided from the command's variables.
    pub(crate) on_refresh: Option<OnRefresh>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            listen: None,
            grace: Duration::from_secs(60),
            reread: Duration::from_secs(300),
            stop_timeout: Duration::from_secs(DEFAULT_STOP_TIMEOUT),
            on_refresh: None,
        }
    }
}

/// How a sink's file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Token,
    Json,
    Env,
}

/// One file kept holding a valid token.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    pub(crate) mode: u32,
    pub(crate) dir_mode: u32,
}

fn octal(text: Option<&str>, default: u32) -> Option<u32> {
    match text {
        None => Some(default),
        Some(t) => u32::from_str_radix(t.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && m & 0o002 == 0),
    }
}

/// A signal a command can handle, from `"SIGHUP"` or `"hup"`.
fn signal(name: &str) -> Option<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>()
        .ok()
        .filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
}

/// Reads and checks the `agent` block and every block's sinks.
pub(crate) fn settings(config: &Config) -> Result<(AgentSettings, Vec<Vec<Sink>>), Vec<Located>> {
    let mut problems = Vec::new();
    let at = |name: &str, p: Problem| config.locate(p.at(Field::root("agent").attr(name)));
    let raw: AgentBlock =
        match serde_json::from_value(Value::Object(config.agent.clone().unwrap_or_default())) {
            Ok(b) => b,
            Err(_) => {
                return Err(vec![
                    config.locate(
                        Problem::error(
                            "Invalid agent block",
                            "The `agent` block's values do not have the expected types.",
                        )
                        .at(Field::root("agent")),
                    ),
                ]);
            }
        };
    let mut out = AgentSettings::default();
    if let Some(a) = &raw.listen {
        match a.parse::<SocketAddr>() {
            Ok(addr) => out.listen = Some(addr),
            Err(_) => problems.push(at(
                "listen",
                Problem::error(
                    "Invalid listen",
                    format!(
                        "`listen` must be an address and port, e.g. \"127.0.0.1:8765\"; {a:?} is not."
                    ),
                ),
            )),
        }
    }
    let mut seconds = |name: &str, v: Option<f64>, max: u64, into: &mut Duration| {
        if let Some(v) = v {
            if v.fract() == 0.0 && v >= 1.0 && v <= max as f64 {
                *into = Duration::from_secs_f64(v);
            } else {
                problems.push(at(
                    name,
                    Problem::error(
                        format!("Invalid {name}"),
                        format!("`{name}` must be a whole number of seconds from 1 to {max}."),
                    ),
                ));
            }
        }
    };
    seconds(
        "revoke_grace_seconds",
        raw.revoke_grace_seconds,
        86_400,
        &mut out.grace,
    );
    seconds(
        "reread_seconds",
        raw.reread_seconds,
        86_400,
        &mut out.reread,
    );
    seconds(
        "stop_timeout_seconds",
        raw.stop_timeout_seconds,
        MAX_STOP_TIMEOUT,
        &mut out.stop_timeout,
    );
    let reload = match raw.reload_signal.as_deref() {
        None => None,
        Some(name) => match signal(name) {
            Some(s) => Some(s),
            None => {
                problems.push(at(
                    "reload_signal",
                    Problem::error(
                        "Invalid reload_signal",
                        format!("{name:?} is not a signal a command can handle, e.g. \"SIGHUP\"."),
                    ),
                ));
                None
            }
        },
    };
    out.on_refresh = match raw.on_refresh.as_deref() {
        None => reload.map(OnRefresh::Signal),
        Some("restart") => Some(OnRefresh::Restart),
        Some("signal") => Some(OnRefresh::Signal(reload.unwrap_or(Signal::SIGHUP))),
        Some("none") => Some(OnRefresh::None),
        Some(other) => {
            problems.push(at(
                "on_refresh",
                Problem::error(
                    "Invalid on_refresh",
                    format!("`on_refresh` is \"restart\", \"signal\" or \"none\"; not {other:?}."),
                ),
            ));
            None
        }
    };
    if raw.reload_signal.is_some() && matches!(raw.on_refresh.as_deref(), Some("restart" | "none"))
    {
        problems.push(at(
            "reload_signal",
            Problem::error(
                "reload_signal without effect",
                "`reload_signal` is sent only with `on_refresh = \"signal\"`; remove one of them.",
            ),
        ));
    }
    let mut all = Vec::new();
    let mut seen: BTreeMap<PathBuf, String> = BTreeMap::new();
    for b in &config.blocks {
        let mut sinks = Vec::new();
        for (raw, line) in &b.sinks {
            match sink(b, raw, *line, &mut seen) {
                Ok(s) => sinks.push(s),
                Err(p) => problems.push(p),
            }
        }
        all.push(sinks);
    }
    if problems.is_empty() {
        Ok((out, all))
    } else {
        Err(problems)
    }
}

fn sink(
    b: &TokenBlock,
    raw: &serde_json::Map<String, Value>,
    line: usize,
    seen: &mut BTreeMap<PathBuf, String>,
) -> Result<Sink, Located> {
    let here = |attr: &str, p: Problem| {
        let mut l = b.locate(p.at(Field::root("sink").attr(attr)));
        if let Some(place) = l.place.as_mut() {
            place.line = line;
        }
        l
    };
    let s: SinkBlock = serde_json::from_value(Value::Object(raw.clone())).map_err(|_| {
        here(
            "file",
            Problem::error(
                "Invalid sink",
                "A `sink` block needs `file`, a path in quotes.",
            ),
        )
    })?;
    let format = match s.format.as_deref().unwrap_or("token") {
        "token" if b.kind != BlockKind::VaultSecret => Format::Token,
        "json" => Format::Json,
        "env" => Format::Env,
        other => {
            return Err(here(
                "format",
                Problem::error(
                    "Invalid format",
                    format!(
                        "`format` is \"token\" (token blocks only), \"json\" or \"env\"; not {other:?}."
                    ),
                ),
            ));
        }
    };
    let mode = octal(s.mode.as_deref(), 0o400).ok_or_else(|| {
        here(
            "mode",
            Problem::error(
                "Invalid mode",
                "`mode` is octal permissions that others may not write, e.g. \"0400\" or \"0440\".",
            ),
        )
    })?;
    let dir_mode = octal(s.dir_mode.as_deref(), 0o700).ok_or_else(|| {
        here(
            "dir_mode",
            Problem::error(
                "Invalid dir_mode",
                "`dir_mode` is octal permissions that others may not write, e.g. \"0700\" or \"0750\".",
            ),
        )
    })?;
    let path = PathBuf::from(&s.file);
    if s.file.is_empty() || path.file_name().is_none() {
        return Err(here(
            "file",
            Problem::error("Invalid file", format!("{:?} is not a file name.", s.file)),
        ));
    }
    if let Some(first) = seen.insert(path.clone(), b.title()) {
        return Err(here(
            "file",
            Problem::error(
                "Two sinks write one file",
                format!("{first} already writes {:?}.", s.file),
            ),
        ));
    }
    Ok(Sink {
        path,
        format,
        mode,
        dir_mode,
    })
}

/// The directory a sink is written in.
pub(crate) fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Checks, without changing anything, that each sink's directory exists or can be created:
/// its nearest existing ancestor is a directory the agent may write in.
pub(crate) fn check_dirs(config: &Config, sinks: &[Vec<Sink>]) -> Vec<Located> {
    use nix::unistd::{AccessFlags, access};
    let mut problems = Vec::new();
    for (b, list) in config.blocks.iter().zip(sinks) {
        for (s, (_, line)) in list.iter().zip(&b.sinks) {
            let dir = dir_of(&s.path);
            let mut probe = dir.as_path();
            let reason = loop {
                match std::fs::metadata(probe) {
                    Ok(m) if !m.is_dir() => {
                        break Some(format!("{} is not a directory", probe.display()));
                    }
                    Ok(_) => {
                        break access(probe, AccessFlags::W_OK | AccessFlags::X_OK)
                            .err()
                            .map(|e| format!("cannot write in {}: {}", probe.display(), e.desc()));
                    }
                    Err(_) => match probe.parent() {
                        Some(p) if !p.as_os_str().is_empty() => probe = p,
                        _ => break None,
                    },
                }
            };
            if let Some(reason) = reason {
                let mut l = b.locate(
                    Problem::error(
                        "Sink directory unusable",
                        format!(
                            "{} cannot be written: {reason}. Mount the volume there, or choose another `file`.",
                            s.path.display()
                        ),
                    )
                    .at(Field::root("sink").attr("file")),
                );
                if let Some(place) = l.place.as_mut() {
                    place.line = *line;
                }
                problems.push(l);
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccsecrets_core::vocabulary::field_names;

    fn settable(w: &Words) -> Vec<&'static str> {
        let mut v: Vec<&str> = w
            .terms
            .iter()
            .filter(|t| t.settable())
            .map(|t| t.name)
            .collect();
        v.sort_unstable();
        v
    }

    fn fields<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
        let mut v = field_names::<T>();
        v.sort_unstable();
        v
    }

    #[test]
    fn the_structs_read_exactly_the_words() {
        assert_eq!(fields::<AgentBlock>(), settable(&words()));
        assert_eq!(fields::<SinkBlock>(), settable(&sink_words()));
        for w in [words(), sink_words()] {
            assert!(w.terms.iter().all(|t| t.doc.ends_with('.')));
        }
    }

    fn read(text: &str) -> Result<(AgentSettings, Vec<Vec<Sink>>), Vec<String>> {
        let c = crate::config::parse("c.hcl", text)
            .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        settings(&c).map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_and_choices() {
        let (a, s) = read(
            "genesys_token \"a\" {\n  path = \"p\"\n  sink {\n    file = \"/run/x/t\"\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(a.stop_timeout, Duration::from_secs(15));
        assert_eq!(a.on_refresh, None);
        assert_eq!(s[0][0].mode, 0o400);
        assert_eq!(s[0][0].dir_mode, 0o700);
        let (a, _) = read("agent {\n  reload_signal = \"hup\"\n}\n").unwrap();
        assert_eq!(a.on_refresh, Some(OnRefresh::Signal(Signal::SIGHUP)));
        let (a, _) =
            read("agent {\n  on_refresh = \"restart\"\n  stop_timeout_seconds = 20\n}\n").unwrap();
        assert_eq!(a.on_refresh, Some(OnRefresh::Restart));
        assert_eq!(a.stop_timeout, Duration::from_secs(20));
    }

    #[test]
    fn mistakes_are_pinned() {
        let e = read(
            "agent {\n  listen = \"x\"\n  stop_timeout_seconds = 0\n  on_refresh = \"reboot\"\n}\n",
        )
        .unwrap_err();
        assert!(
            e[0].contains("line 2") && e[0].contains("Invalid listen"),
            "{e:?}"
        );
        assert!(
            e[1].contains("line 3") && e[1].contains("from 1 to 300"),
            "{e:?}"
        );
        assert!(
            e[2].contains("line 4") && e[2].contains("Invalid on_refresh"),
            "{e:?}"
        );
        let e =
            read("agent {\n  on_refresh = \"none\"\n  reload_signal = \"HUP\"\n}\n").unwrap_err();
        assert!(e[0].contains("without effect"), "{e:?}");
        let e = read(
            "genesys_token \"a\" {\n  path = \"p\"\n  sink {\n    file = \"t\"\n    dir_mode = \"0777\"\n  }\n}\n",
        )
        .unwrap_err();
        assert!(
            e[0].contains("line 3") && e[0].contains("`sink.dir_mode`"),
            "{e:?}"
        );
    }
}
