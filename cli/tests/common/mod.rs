//! What the command-line tests share: a command with a clean environment, the configuration a
//! Kubernetes example embeds, and a one-shot HTTP status probe.

// Each test binary uses some of these.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `program` in `dir`, with none of the caller's Vault, ccsecrets, Genesys, GitHub, AWS or Azure
/// variables,
/// the OpenBao root token, and `dir` as HOME (no `~/.vault-token` from the machine).
pub fn clean_command(program: &str, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if [
            "VAULT_",
            "BAO_",
            "CCSECRETS_",
            "GENESYSCLOUD_",
            "GITHUB_",
            "AWS_",
            "AZURE_",
            "IDENTITY_",
            "MSI_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
        {
            c.env_remove(k);
        }
    }
    c.env("VAULT_TOKEN", ccsecrets_testkit::openbao::ROOT_TOKEN)
        .env("HOME", dir)
        .stdin(Stdio::null());
    c
}

/// The `ccsecrets.hcl: |` entry of a Kubernetes ConfigMap, unindented.
pub fn embedded_config(yaml: &str) -> String {
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("ccsecrets.hcl: |"));
    let header = lines.next().expect("a ccsecrets.hcl entry");
    let indent = header.len() - header.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `GET path` on 127.0.0.1:`port`: the status, or `None` while nothing answers (refused,
/// closed, or no answer within 5 s).
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.get(9..12)?.parse().ok()
}
