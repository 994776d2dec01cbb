//! The deployment examples: every Kubernetes manifest passes `kubernetes-validate --strict`
//! against a current Kubernetes, the compose file shares a tmpfs volume between the agent and
//! the app, and the agent configuration each one carries is one the command line accepts.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes")
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no manifests in {}", examples().display());
    v
}

#[test]
fn kubernetes_manifests_validate_strictly() {
    for m in manifests() {
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "--kubernetes-version", "1.34.0"])
            .arg(&m)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run kubernetes-validate ({e}): install it with `pip install kubernetes-validate`")
            });
        assert!(
            out.status.success(),
            "{} does not validate:\n{}{}",
            m.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `ccsecrets token` on `cfg`: it reads and validates the whole file before it looks for
/// the block, so a valid file fails only with "No such block".
fn assert_config_valid(cfg: &Path, what: &str) {
    assert_config_valid_with(cfg, what, "genesys_token.app");
}

/// As [`assert_config_valid`], for a file whose blocks include `listed`.
fn assert_config_valid_with(cfg: &Path, what: &str, listed: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_ccsecrets"))
        .args(["token", "--config"])
        .arg(cfg)
        .arg("no-such-block")
        .env_remove("VAULT_ADDR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error: No such block") && err.contains(listed),
        "{what}: {err}"
    );
}

#[test]
fn the_compose_example_shares_a_tmpfs_volume_and_its_configuration_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/docker-compose");
    // PyYAML comes with kubernetes-validate.
    let check = r#"
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
vol = c["volumes"]["tokens"]["driver_opts"]
assert vol["type"] == "tmpfs", vol
mounts = {name: [m.split(":")[0] for m in s.get("volumes", [])] for name, s in c["services"].items()}
assert "tokens" in mounts["ccsecrets"] and "tokens" in mounts["app"], mounts
assert any(m.endswith(":ro") and m.startswith("tokens:") for m in c["services"]["app"]["volumes"])
print("ok")
"#;
    let out = Command::new("python3")
        .args(["-c", check])
        .arg(dir.join("compose.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "compose.yaml: {}{} (PyYAML: `pip install kubernetes-validate` brings it)",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_config_valid(
        &dir.join("ccsecrets.hcl"),
        "examples/docker-compose/ccsecrets.hcl",
    );
}

#[test]
fn the_agent_configuration_in_each_manifest_is_valid() {
    for m in manifests() {
        let yaml = std::fs::read_to_string(&m).unwrap();
        if !yaml.contains("ccsecrets.hcl: |") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("ccsecrets.hcl");
        std::fs::write(&cfg, common::embedded_config(&yaml)).unwrap();
        assert_config_valid(&cfg, &m.display().to_string());
    }
}

#[test]
fn the_command_line_store_example_is_valid() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/stores/ccsecrets-aws.hcl");
    assert_config_valid_with(
        &cfg,
        "examples/stores/ccsecrets-aws.hcl",
        "genesys_token.deploy",
    );
}

/// The first fenced block of `lang` after `heading` in a Markdown text.
fn fenced_after(markdown: &str, heading: &str, lang: &str) -> String {
    let from = markdown.find(heading).expect("the heading");
    let rest = &markdown[from..];
    let open = format!("```{lang}\n");
    let start = rest.find(&open).expect("a fenced block") + open.len();
    let len = rest[start..].find("```").expect("its end");
    rest[start..start + len].to_owned()
}

/// The command-line guide's example configuration, as written (only Vault's address is the
/// test server's), against a real OpenBao with the JWT login it shows: `check` passes, the
/// `token` example prints the secret's value, and every block name the guide's commands use
/// names exactly one block.
#[test]
fn the_command_line_guides_example_configuration_runs_as_written() {
    use ccsecrets_testkit::jwt::{JwtSigner, ci_claims};
    use ccsecrets_testkit::openbao::OpenBao;
    use serde_json::json;
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/guides/command-line.md"),
    )
    .unwrap();
    let example = fenced_after(&guide, "## The configuration file", "hcl");
    assert!(
        example.contains("https://vault.example.com:8200"),
        "{example}"
    );
    let bao = OpenBao::start();
    let signer = JwtSigner::new();
    bao.enable_auth("jwt", "jwt");
    bao.write(
        "auth/jwt/config",
        json!({ "jwt_validation_pubkeys": [signer.public_key_pem()] }),
    );
    bao.policy("deploy", "path \"secret/*\" { capabilities = [\"read\"] }");
    bao.write(
        "auth/jwt/role/cc-deploy-prod",
        json!({"role_type": "jwt", "bound_audiences": ["https://vault.example.com"],
               "user_claim": "sub", "token_policies": ["deploy"], "token_ttl": "5m"}),
    );
    bao.kv_put(
        "genesys/prod/pipeline",
        json!({"client_id": "id-1", "client_secret": "guide-secret-1"}),
    );
    bao.kv_put(
        "cxone/prod/pipeline",
        json!({"access_key_id": "AK1", "access_key_secret": "guide-secret-2",
               "client_id": "app", "client_secret": "guide-secret-3",
               "issuer": "https://cxone.niceincontact.com"}),
    );
    bao.kv_put(
        "contact-center/prod/webhook",
        json!({"signing_key": "guide-signing-key"}),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ccsecrets.hcl"),
        example.replace("https://vault.example.com:8200", &bao.addr()),
    )
    .unwrap();
    let jwt = signer.sign(&ci_claims(
        "repo:acme/deploy",
        "https://vault.example.com",
        600,
    ));
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ccsecrets"));
        c.current_dir(dir.path()).env("HOME", dir.path()).args(args);
        for (k, _) in std::env::vars() {
            if ["VAULT_", "BAO_", "CCSECRETS_", "GITHUB_"]
                .iter()
                .any(|p| k.starts_with(p))
            {
                c.env_remove(k);
            }
        }
        c.env("VAULT_ID_TOKEN", &jwt).output().unwrap()
    };
    let said = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let out = run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let out = run(&["token", "webhook", "--field", "data.signing_key"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "guide-signing-key\n");
    // Every `ccsecrets token|export|revoke NAME` of the guide resolves to one block.
    let mut names: Vec<String> = Vec::new();
    for (i, _) in guide.match_indices("ccsecrets ") {
        let words: Vec<&str> = guide[i..].split_whitespace().take(3).collect();
        if let [_, "token" | "export" | "revoke", name] = words.as_slice() {
            let name = name.trim_end_matches(['`', ')', ',', '.']);
            if !name.starts_with('-') && name != "NAME" && name != "[NAME...]" {
                names.push(name.to_owned());
            }
        }
    }
    assert!(
        names.contains(&"genesys_token.deploy".to_owned()),
        "{names:?}"
    );
    for name in names {
        let out = run(&["token", &name, "--field", "no_such_attribute"]);
        assert!(
            said(&out).contains("No such attribute"),
            "`{name}` in the guide: {}",
            said(&out)
        );
    }
}
