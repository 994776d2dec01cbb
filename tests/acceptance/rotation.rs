//! Rotation without downtime: while Vault already holds a credential the platform does not
//! accept yet, the previous live version is used once, with a warning naming both versions.

use serde_json::json;

use crate::support::*;

/// A token configuration whose provisioner records `version` and `credential_version`.
fn config(w: &GenesysWorld, path: &str, extra: &str) -> String {
    const VERSIONS: &str = r#"resource "terraform_data" "versions" {
  provisioner "local-exec" {
    command     = "echo \"$V $CV\" > versions.txt"
    environment = {
      V  = ephemeral.ccsecrets_genesys_token.t.version
      CV = ephemeral.ccsecrets_genesys_token.t.credential_version
    }
  }
}
"#;
    w.token_config("", path, extra, VERSIONS)
}

/// Version 1 holds the working client; version 2 a new secret the platform does not accept
/// yet (the "second secret created, written to Vault, not yet live" window).
fn mid_rotation() -> GenesysWorld {
    let w = GenesysWorld::new("genesys/rot");
    let v2 = w.bao.kv_put(
        "genesys/rot",
        json!({"client_id": w.client_id, "client_secret": "not-yet-accepted-secret"}),
    );
    assert_eq!(v2, 2);
    w
}

#[test]
fn rotation_in_progress_falls_back_to_the_previous_version_with_a_warning() {
    let w = mid_rotation();
    let wd = w.workdir();
    wd.file("main.tf", &config(&w, "genesys/rot", ""));
    let apply = wd.apply();
    apply.assert_ok();
    apply.assert_says(&[
        "Warning: Used the previous credential version (rotation in progress?)",
        "Genesys Cloud rejected the credential in version 2 of secret/genesys/rot (invalid_client), so version 1 was used",
    ]);
    assert_eq!(
        String::from_utf8(wd.read("versions.txt")).unwrap().trim(),
        "2 1",
        "version read 2, credential used 1"
    );
    assert_eq!(w.standin.live_tokens(&w.client_id), 0);
}

#[test]
fn both_versions_rejected_is_an_error_naming_both() {
    let w = mid_rotation();
    w.standin
        .add_client(&w.client_id, "a-third-secret", &w.org_id);
    let wd = w.workdir();
    wd.file("main.tf", &config(&w, "genesys/rot", ""));
    wd.plan().assert_fails_with(&[
        "Error: Genesys Cloud rejected the credentials",
        "Both the latest version (2) and the previous live version (1) of secret/genesys/rot were refused",
    ]);
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        2,
        "one try per version, no retries"
    );
}

#[test]
fn a_pinned_version_never_falls_back() {
    let w = mid_rotation();
    let wd = w.workdir();
    wd.file("main.tf", &config(&w, "genesys/rot", "  version = 2"));
    wd.plan().assert_fails_with(&[
        "Error: Genesys Cloud rejected the credentials",
        "(version 2)",
    ]);
    assert_eq!(w.standin.token_requests(&w.client_id), 1);
}

#[test]
fn fallback_can_be_turned_off() {
    let w = mid_rotation();
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &config(&w, "genesys/rot", "  rotation_fallback = false"),
    );
    wd.plan().assert_fails_with(&[
        "Error: Genesys Cloud rejected the credentials",
        "(version 2)",
    ]);
}

#[test]
fn deleted_previous_versions_are_skipped() {
    let w = mid_rotation();
    // Version 3 is also not live yet; version 2 was deleted: fall back to 1.
    w.bao.kv_put(
        "genesys/rot",
        json!({"client_id": w.client_id, "client_secret": "another-new-one"}),
    );
    w.bao.kv_delete_versions("genesys/rot", &[2]);
    let wd = w.workdir();
    wd.file("main.tf", &config(&w, "genesys/rot", ""));
    let apply = wd.apply();
    apply
        .assert_ok()
        .assert_says(&["version 3 of secret/genesys/rot (invalid_client), so version 1 was used"]);
    assert_eq!(
        String::from_utf8(wd.read("versions.txt")).unwrap().trim(),
        "3 1"
    );
}

#[test]
fn completed_rotation_uses_the_latest_without_a_warning() {
    let w = mid_rotation();
    // The platform now accepts the new secret (the old one is removed there).
    w.standin
        .add_client(&w.client_id, "not-yet-accepted-secret", &w.org_id);
    let wd = w.workdir();
    wd.file("main.tf", &config(&w, "genesys/rot", ""));
    let apply = wd.apply();
    apply.assert_ok();
    assert!(
        !apply
            .output()
            .contains("Warning: Used the previous credential version"),
        "{}",
        apply.output()
    );
    assert_eq!(
        String::from_utf8(wd.read("versions.txt")).unwrap().trim(),
        "2 2"
    );
}

#[test]
fn the_metadata_data_source_shows_a_rotation_in_the_plan_without_secrets_in_state() {
    let w = GenesysWorld::new("genesys/md");
    w.bao
        .kv_custom_metadata("genesys/md", json!({"owner": "cc-platform"}));
    let wd = w.workdir();
    let hcl = example("data-sources/ccsecrets_vault_secret_metadata/data-source.tf")
        .replace("\"genesys/prod/pipeline\"", "\"genesys/md\"");
    wd.file("versions.tf", REQUIRED);
    wd.file("md.tf", &hcl);
    wd.apply().assert_ok();
    let state = String::from_utf8(wd.read("terraform.tfstate")).unwrap();
    assert!(state.contains("\"current_version\": 1"), "{state}");
    assert!(state.contains("cc-platform"), "custom metadata in state");
    assert!(
        !state.contains(&w.client_secret) && !state.contains(&w.client_id),
        "no secret data in state"
    );
    // A rotation shows up in the next plan.
    w.bao.kv_put(
        "genesys/md",
        json!({"client_id": w.client_id, "client_secret": "rotated"}),
    );
    let plan = wd.run(&["plan", "-no-color", "-input=false"]);
    plan.assert_ok()
        .assert_says(&["pipeline_credential_version = 1 -> 2"]);
}
