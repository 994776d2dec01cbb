//! No cross-environment leakage: the `{environment}` placeholder, the custom-metadata guard,
//! and the organization / tenant checks, each passing and refusing.

use serde_json::json;

use crate::support::*;

/// A Genesys token configuration whose provisioner writes the non-secret results to
/// `results.txt`.
fn config(w: &GenesysWorld, settings: &str, path: &str, extra: &str) -> String {
    const RESULTS: &str = r#"resource "terraform_data" "results" {
  provisioner "local-exec" {
    command     = "echo \"$ORG $CV\" > results.txt"
    environment = {
      ORG = coalesce(ephemeral.ccsecrets_genesys_token.t.organization_id, "none")
      CV  = ephemeral.ccsecrets_genesys_token.t.credential_version
    }
  }
}
"#;
    w.token_config(settings, path, extra, RESULTS)
}

#[test]
fn environment_placeholder_reads_this_environments_secret() {
    let w = GenesysWorld::new("genesys/prod/pipeline");
    w.bao
        .kv_custom_metadata("genesys/prod/pipeline", json!({"environment": "prod"}));
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &config(
            &w,
            "environment = \"prod\"",
            "genesys/{environment}/pipeline",
            "",
        ),
    );
    wd.apply().assert_ok();
    assert_eq!(w.standin.token_requests(&w.client_id), 2);
    // The same configuration with the environment from CCSECRETS_ENVIRONMENT.
    let mut wd = w.workdir();
    wd.env("CCSECRETS_ENVIRONMENT", "prod");
    wd.file(
        "main.tf",
        &config(&w, "", "genesys/{environment}/pipeline", ""),
    );
    wd.plan().assert_ok();
}

#[test]
fn placeholder_without_an_environment_is_an_error_on_path() {
    let w = GenesysWorld::new("genesys/prod/pipeline");
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &config(&w, "", "genesys/{environment}/pipeline", ""),
    );
    wd.plan().assert_fails_with(&[
        "Error: No environment for the path",
        "`path` uses `{environment}`, but no `environment` is configured",
        "on main.tf line 12",
    ]);
}

#[test]
fn a_secret_marked_for_another_environment_is_refused() {
    let w = GenesysWorld::new("genesys/shared/pipeline");
    w.bao.kv_custom_metadata(
        "genesys/shared/pipeline",
        json!({"environment": "prod", "owner": "cc-platform"}),
    );
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &config(
            &w,
            "environment = \"staging\"",
            "genesys/shared/pipeline",
            "",
        ),
    );
    wd.plan().assert_fails_with(&[
        "Error: Secret belongs to another environment",
        "The secret at secret/genesys/shared/pipeline is marked environment \"prod\" in its custom metadata, but this configuration is for environment \"staging\"",
    ]);
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        0,
        "fail closed: no token was even requested"
    );
    // Same secret, matching environment: allowed.
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &config(&w, "environment = \"prod\"", "genesys/shared/pipeline", ""),
    );
    wd.plan().assert_ok();
}

#[test]
fn expected_organization_passes_and_a_mismatch_revokes_the_token() {
    let w = GenesysWorld::new("genesys/org");
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &config(
            &w,
            "",
            "genesys/org",
            &format!("  expected_organization_id = {}", q(&w.org_id)),
        ),
    );
    wd.apply().assert_ok();
    let results = String::from_utf8(wd.read("results.txt")).unwrap();
    assert_eq!(
        results.trim(),
        format!("{} 1", w.org_id),
        "organization_id and credential_version"
    );

    let wd = w.workdir();
    wd.file(
        "main.tf",
        &config(
            &w,
            "",
            "genesys/org",
            "  expected_organization_id = \"org-of-production\"",
        ),
    );
    wd.plan().assert_fails_with(&[
        "Error: Token belongs to another Genesys Cloud organization",
        &format!("minted a token for organization {}, but `expected_organization_id` is org-of-production. The token was revoked.", w.org_id),
    ]);
    assert_eq!(
        w.standin.live_tokens(&w.client_id),
        0,
        "the refused token is revoked"
    );
}

#[test]
fn expected_tenant_passes_and_a_mismatch_is_refused() {
    let w = CxoneWorld::new("cxone/t");
    let wd = w.workdir();
    with_provider_example(&wd, &w.bao);
    let hcl = w.example("cxone/t");
    wd.file(
        "cxone.tf",
        &inject(
            &hcl,
            "ephemeral \"ccsecrets_cxone_token\" \"pipeline\"",
            &[("expected_tenant_id", q(&w.tenant_id))],
        ),
    );
    wd.plan().assert_ok();

    let wd = w.workdir();
    with_provider_example(&wd, &w.bao);
    wd.file(
        "cxone.tf",
        &inject(
            &hcl,
            "ephemeral \"ccsecrets_cxone_token\" \"pipeline\"",
            &[("expected_tenant_id", q("tenant-of-production"))],
        ),
    );
    wd.plan().assert_fails_with(&[
        "Error: Token belongs to another NICE CXone tenant",
        &format!(
            "minted a token for tenant {}, but `expected_tenant_id` is tenant-of-production",
            w.tenant_id
        ),
    ]);
}
