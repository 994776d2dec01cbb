//! `cargo xtask demo`: the local end-to-end demo. Starts an OpenBao dev server, seeds a Genesys
//! Cloud OAuth client into it, starts the Genesys Cloud stand-in, runs `terraform apply` on
//! `examples/quickstart` (the token flows into a genesyscloud provider), and shows that the
//! state holds neither the client secret nor the token.

use std::path::{Path, PathBuf};
use std::process::Command;

use ccsecrets_testkit::genesys::GenesysStandin;
use ccsecrets_testkit::openbao::{OpenBao, ROOT_TOKEN};
use ccsecrets_testkit::terraform::{Workdir, assert_no_secrets};
use serde_json::json;

use crate::prereq;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn step(text: &str) {
    println!("\n==> {text}");
}

pub(crate) fn run() -> Result<(), String> {
    prereq::ensure_bao()?;
    prereq::ensure_terraform()?;

    step("Building the provider, the command line and the stand-in genesyscloud provider");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "--quiet",
            "-p",
            "terraform-provider-ccsecrets",
            "-p",
            "ccsecrets-testkit",
            "-p",
            "ccsecrets-cli",
            "--bins",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err("cargo build failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("debug");

    step("Starting an OpenBao dev server and the Genesys Cloud stand-in");
    let bao = OpenBao::start();
    let genesys = GenesysStandin::start();
    let (client_id, client_secret) = ("demo-pipeline-client", "demo-secret-4f1c9a2b7e");
    genesys.add_client(client_id, client_secret, "org-demo-0001");
    println!("    OpenBao:             {}", bao.addr());
    println!(
        "    Genesys stand-in:    {} (plays login.<domain> and api.<domain>)",
        genesys.url()
    );

    step("Storing the OAuth client in OpenBao (the only place it lives)");
    let version = bao.kv_put(
        "genesys/demo/pipeline",
        json!({"client_id": client_id, "client_secret": client_secret, "region": "us-east-1"}),
    );
    println!(
        "    bao kv put -mount=secret genesys/demo/pipeline client_id=... client_secret=... region=us-east-1   (version {version})"
    );

    step("terraform plan -out=tfplan && terraform apply tfplan, on examples/quickstart");
    let mut wd = Workdir::new(&[
        (
            "ccsecrets/ccsecrets",
            &target.join("terraform-provider-ccsecrets"),
        ),
        (
            "mypurecloud/genesyscloud",
            &target.join("terraform-provider-genesyscloud"),
        ),
    ]);
    let quickstart = std::fs::read_to_string(root().join("examples/quickstart/main.tf"))
        .map_err(|e| e.to_string())?;
    wd.file("main.tf", &quickstart);
    wd.env("VAULT_ADDR", &bao.addr())
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .env("TF_VAR_genesys_login_url", genesys.url())
        .env("TF_VAR_genesys_api_url", genesys.url())
        .env(ccsecrets_testkit::consumer::API_URL_ENV, genesys.url());
    println!("    (working directory: {})", wd.path().display());
    for (what, run) in [("plan", wd.plan()), ("apply", wd.apply_plan())] {
        println!("{}", run.stdout.trim_end());
        if !run.ok() {
            eprintln!("{}", run.stderr);
            return Err(format!("terraform {what} failed"));
        }
    }

    step("What the platform saw");
    println!(
        "    token requests:           {}  (one for the plan, one for the apply)",
        genesys.token_requests(client_id)
    );
    println!(
        "    API calls with the token: {}  (the genesyscloud provider at each configure, and its data source)",
        genesys.valid_calls(client_id)
    );
    println!(
        "    tokens revoked:           {}  (each closed as soon as Terraform was done with it)",
        genesys.revocations(client_id)
    );
    println!(
        "    tokens still valid:       {}",
        genesys.live_tokens(client_id)
    );

    step("Checking that no secret reached the state or the plan");
    let mut secrets = genesys.issued_tokens();
    secrets.push(client_secret.to_owned());
    let persisted = wd.persisted();
    assert_no_secrets(&persisted, &secrets);
    let bytes: usize = persisted.iter().map(|(_, b)| b.len()).sum();
    println!(
        "    searched {bytes} bytes ({}) for the client secret and the {} tokens minted: none found.",
        persisted
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        secrets.len() - 1
    );

    step("The same without Terraform: ccsecrets exec -- <a script that calls the API>");
    let config = wd.path().join("ccsecrets.hcl");
    std::fs::write(
        &config,
        format!(
            "vault {{\n  address = \"{}\"\n}}\ngenesys_token \"demo\" {{\n  path      = \"genesys/demo/pipeline\"\n  login_url = \"{g}\"\n  api_url   = \"{g}\"\n}}\n",
            bao.addr(),
            g = genesys.url()
        ),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "    ccsecrets.hcl:\n{}",
        std::fs::read_to_string(&config)
            .unwrap_or_default()
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    );
    let script = format!(
        "curl -sf -H \"Authorization: Bearer $GENESYSCLOUD_ACCESS_TOKEN\" {}/api/v2/organizations/me && echo && echo \"(region $GENESYSCLOUD_REGION)\"",
        genesys.url()
    );
    println!("    ccsecrets exec -- sh -c '<curl with $GENESYSCLOUD_ACCESS_TOKEN>'");
    let before = genesys.revocations(client_id);
    let out = Command::new(target.join("ccsecrets"))
        .args(["exec", "--config"])
        .arg(&config)
        .args(["--", "sh", "-c", &script])
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .output()
        .map_err(|e| format!("cannot run ccsecrets: {e}"))?;
    print!(
        "{}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| format!("    | {l}\n"))
            .collect::<String>()
    );
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return Err("ccsecrets exec failed".into());
    }
    println!(
        "    exit status {}; tokens revoked by ccsecrets after the command: {}; tokens still valid: {}",
        out.status.code().unwrap_or(-1),
        genesys.revocations(client_id) - before,
        genesys.live_tokens(client_id)
    );
    let mut all = genesys.issued_tokens();
    all.push(client_secret.to_owned());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secrets(
        &[("ccsecrets output".to_owned(), printed.into_bytes())],
        &all,
    );
    println!(
        "\nDone. The OAuth client secret lives only in OpenBao; neither Terraform nor the command ever stored it or a token."
    );
    Ok(())
}
