//! Sink files: rendered in one of three formats, written atomically (temporary file, fsync,
//! rename) off the runtime threads, parent directories created, removed when stale.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ccsecrets_core::mint::Output;
use secrecy::ExposeSecret;
use serde_json::Value;
use zeroize::Zeroizing;

use super::settings::{Format, Sink, dir_of};
use crate::exec::EnvValue;
use crate::open::Opened;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, created with
/// `mode`, synced, then renamed over the target (a reader sees the old or the new file, never
/// a partial one). Missing parent directories are created with `dir_mode`. Blocking.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    dir_mode: u32,
) -> std::io::Result<()> {
    let dir = dir_of(path);
    if !dir.is_dir() {
        create_dirs(&dir, dir_mode)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.ccsecrets-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits away: the mode asked for is the mode set.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and its missing parents, each with exactly `mode` (whatever the umask).
fn create_dirs(dir: &Path, mode: u32) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .collect();
    for d in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(mode).create(d) {
            Ok(()) => std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))?,
            // Another writer made it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`write_atomic`] on a blocking thread.
pub(crate) async fn write(sink: &Sink, bytes: Zeroizing<Vec<u8>>) -> std::io::Result<()> {
    let (path, mode, dir_mode) = (sink.path.clone(), sink.mode, sink.dir_mode);
    tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, mode, dir_mode))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

/// Removes a sink's file (absent is fine), on a blocking thread.
pub(crate) async fn remove(sink: &Sink) {
    let path = sink.path.clone();
    let _ = tokio::task::spawn_blocking(move || remove_now(&path)).await;
}

/// Removes a file now (absent is fine).
pub(crate) fn remove_now(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(sink = %path.display(), error = %e, "cannot remove the sink");
        }
    }
}

fn output_json(o: &Output) -> Value {
    match o {
        Output::Null => Value::Null,
        Output::Text(t) => Value::String(t.clone()),
        Output::Secret(s) => Value::String(s.expose_secret().to_owned()),
        Output::Number(n) => Value::from(*n),
        Output::Bool(b) => Value::Bool(*b),
        Output::Map(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), output_json(v))).collect())
        }
    }
}

/// Why a sink's bytes cannot be made (names a variable, never a value).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unsafe(pub(crate) String);

/// A sink's bytes (zeroed when dropped). `env` lines are `NAME='value'`: read literally by
/// `sh`'s `.`, Docker's `env_file`, systemd's `EnvironmentFile` and dotenv libraries; a value
/// that would need escaping (a `'`, a line break or another control character) is refused.
pub(crate) fn render(
    format: Format,
    opened: &Opened,
    env: &[(String, EnvValue)],
) -> Result<Zeroizing<Vec<u8>>, Unsafe> {
    Ok(Zeroizing::new(match format {
        Format::Token => match opened.field("access_token") {
            Some(Output::Secret(s)) => s.expose_secret().as_bytes().to_vec(),
            _ => Vec::new(),
        },
        Format::Json => {
            let obj: serde_json::Map<String, Value> = opened
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), output_json(v)))
                .collect();
            let mut v =
                Zeroizing::new(serde_json::to_vec_pretty(&Value::Object(obj)).unwrap_or_default());
            v.push(b'\n');
            std::mem::take(&mut *v)
        }
        Format::Env => {
            let mut out = Zeroizing::new(Vec::new());
            for (k, v) in env {
                let value = match v {
                    EnvValue::Plain(p) => p.as_str(),
                    EnvValue::Secret(s) => s.expose_secret(),
                };
                if value.chars().any(|c| c == '\'' || c.is_control()) {
                    return Err(Unsafe(format!(
                        "the value of {k} has a quote, line break or control character, which an env file cannot hold safely"
                    )));
                }
                out.extend_from_slice(format!("{k}='").as_bytes());
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"'\n");
            }
            std::mem::take(&mut *out)
        }
    }))
}

/// The sinks that are not on a memory-backed file system (tmpfs, ramfs), as `(file, type)`:
/// the token is synced to that disk. Looks at the nearest existing ancestor.
pub(crate) fn not_in_memory(sinks: &[Sink]) -> Vec<(String, String)> {
    use nix::sys::statfs::{FsType, TMPFS_MAGIC, statfs};
    // ramfs (linux/magic.h); nix names only tmpfs.
    const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
    let mut out = Vec::new();
    for s in sinks {
        let dir = dir_of(&s.path);
        let mut probe = dir.as_path();
        let fs = loop {
            match statfs(probe) {
                Ok(st) => break Some(st.filesystem_type()),
                Err(_) => match probe.parent() {
                    Some(p) if !p.as_os_str().is_empty() => probe = p,
                    _ => break None,
                },
            }
        };
        if let Some(t) = fs {
            if t != TMPFS_MAGIC && t != RAMFS_MAGIC {
                out.push((s.path.display().to_string(), format!("{:#x}", t.0)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn opened() -> Opened {
        Opened {
            outputs: BTreeMap::new(),
            warnings: Vec::new(),
            lease: None,
            expires_at: None,
            version: "1".into(),
        }
    }

    #[test]
    fn env_lines_are_quoted_and_unsafe_values_refused() {
        let env = vec![
            ("A".to_owned(), EnvValue::Plain("x y;$(id)`z`".into())),
            ("B".to_owned(), EnvValue::Secret("tok".to_owned().into())),
        ];
        let out = render(Format::Env, &opened(), &env).unwrap();
        assert_eq!(&out[..], b"A='x y;$(id)`z`'\nB='tok'\n");
        // Sourced by a shell, nothing runs and nothing else is set.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("e");
        std::fs::write(&f, &out[..]).unwrap();
        let got = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". {}; printf '%s|%s' \"$A\" \"$B\"", f.display()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&got.stdout), "x y;$(id)`z`|tok");
        for bad in ["a'b", "a\nB=1", "a\rb", "a\u{0}b"] {
            let env = vec![("A".to_owned(), EnvValue::Secret(bad.to_owned().into()))];
            let e = render(Format::Env, &opened(), &env).unwrap_err();
            assert!(
                e.0.contains("the value of A") && !e.0.contains(bad),
                "{e:?}"
            );
        }
    }

    #[test]
    fn parents_are_created_with_the_dir_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/token");
        write_atomic(&p, b"t", 0o440, 0o750).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o440);
        assert_eq!(mode(&dir.path().join("a/b")), 0o750);
        assert_eq!(std::fs::read(&p).unwrap(), b"t");
    }
}
