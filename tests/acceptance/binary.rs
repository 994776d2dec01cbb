//! The provider binary as a process: run by hand, `--version`, the handshake line, signals,
//! and debug mode serving real Terraform through `TF_REATTACH_PROVIDERS`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use ccsecrets_testkit::openbao::OpenBao;
use ccsecrets_testkit::terraform::Workdir;
use serde_json::json;

use crate::support::*;

const COOKIE: (&str, &str) = (
    "TF_PLUGIN_MAGIC_COOKIE",
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
);

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Kills the child when dropped, so a failing test never leaves a provider running.
struct Reaped(Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn run_by_hand_it_explains_itself_and_exits_1() {
    let out = Command::new(provider_bin())
        .env_remove(COOKIE.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("This binary is a plugin. These are not meant to be executed directly."),
        "{err}"
    );
    assert!(err.contains("--debug"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout, the handshake channel"
    );
}

#[test]
fn version_flag_reports_the_crate_version() {
    let out = Command::new(provider_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "terraform-provider-ccsecrets v{}",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn an_older_protocol_only_client_is_refused_clearly() {
    let out = Command::new(provider_bin())
        .env(COOKIE.0, COOKIE.1)
        .env("PLUGIN_PROTOCOL_VERSIONS", "4,5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("speaks only version 6 (Terraform >= 1.10 or OpenTofu >= 1.11 is required)"),
        "{err}"
    );
}

#[test]
fn handshake_line_carries_an_unpadded_der_certificate_and_sigint_is_ignored() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let client_pem = params.self_signed(&key).unwrap().pem();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Reaped(
        Command::new(provider_bin())
            .env(COOKIE.0, COOKIE.1)
            .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
            .env("PLUGIN_CLIENT_CERT", &client_pem)
            .env("PLUGIN_UNIX_SOCKET_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let fields: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(&fields[..3], ["1", "6", "unix"], "{line}");
    assert!(
        std::path::Path::new(fields[3]).starts_with(dir.path()),
        "socket in PLUGIN_UNIX_SOCKET_DIR: {line}"
    );
    assert_eq!(fields[4], "grpc");
    assert!(!fields[5].ends_with('='), "no padding");
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(fields[5])
        .expect("standard base64");
    assert_eq!(der[0], 0x30, "a DER certificate");
    // Ctrl-C reaches the whole process group; the plugin must survive it.
    signal(&child, "-INT");
    assert!(
        wait_exit(&mut child, Duration::from_millis(300)).is_none(),
        "SIGINT stopped the plugin"
    );
    // SIGTERM ends it cleanly, removing its socket directory.
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(3)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!std::path::Path::new(fields[3]).exists(), "socket removed");
}

#[test]
fn debug_mode_serves_terraform_through_reattach() {
    let bao = OpenBao::start();
    let value = secret_value("dbg");
    bao.kv_put("debug/s", json!({"v": value}));
    // In debug mode the provider runs in the developer's environment, not Terraform's.
    let mut child = Reaped(
        Command::new(provider_bin())
            .arg("--debug")
            .env("VAULT_ADDR", bao.addr())
            .env("VAULT_TOKEN", "root")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let reattach = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "debug mode printed no TF_REATTACH_PROVIDERS"
        );
        if let Some(v) = line.trim().strip_prefix("export TF_REATTACH_PROVIDERS='") {
            break v.trim_end_matches('\'').to_owned();
        }
    };
    let parsed: serde_json::Value = serde_json::from_str(&reattach).unwrap();
    assert_eq!(
        parsed["registry.terraform.io/ccsecrets/ccsecrets"]["Test"],
        true
    );

    // No dev_overrides: Terraform reaches the provider only through the reattach variable.
    let mut wd = Workdir::new(&[]);
    wd.env("TF_REATTACH_PROVIDERS", &reattach);
    wd.file(
        "main.tf",
        &format!(
            "{REQUIRED}\nephemeral \"ccsecrets_vault_secret\" \"s\" {{\n  path = \"debug/s\"\n}}\n\
             resource \"terraform_data\" \"use\" {{\n  provisioner \"local-exec\" {{\n    command = \"test \\\"$V\\\" = {value}\"\n    environment = {{ V = ephemeral.ccsecrets_vault_secret.s.data[\"v\"] }}\n  }}\n}}\n"
        ),
    );
    wd.apply().assert_ok();
    // Terraform leaves a Test reattached process running; it stops on SIGINT in debug mode.
    assert!(
        child.try_wait().unwrap().is_none(),
        "still serving after the run"
    );
    signal(&child, "-INT");
    assert!(wait_exit(&mut child, Duration::from_secs(3)).is_some_and(|s| s.success()));
}
