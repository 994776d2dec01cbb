//! What the command-line tests share: a command with a clean environment.

use std::path::Path;
use std::process::{Command, Stdio};

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
