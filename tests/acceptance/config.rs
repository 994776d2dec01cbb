//! Provider configuration and the less common failure paths, each with its diagnostic: Vault
//! address and TLS settings, unknown configuration, deleted versions, a Vault that never
//! answers, a refused grant, and a revocation that fails.

use std::time::Duration;

use ccsecrets_testkit::Fault;
use ccsecrets_testkit::genesys;
use serde_json::json;

use crate::support::*;

#[test]
fn vault_address_and_tls_settings_are_checked() {
    let w = GenesysWorld::new("genesys/c");
    // No address anywhere.
    let mut wd = w.workdir();
    wd.unset("VAULT_ADDR");
    wd.file("main.tf", &w.token_config("", "genesys/c", "", ""));
    wd.plan().assert_fails_with(&[
        "Error: No Vault address",
        "Set `address` in the `vault` block, or the VAULT_ADDR environment variable.",
    ]);

    // Plain http to a host that is not loopback, caught by validation.
    let wd = w.workdir();
    let settings = "  vault {\n    address = \"http://vault.example.com:8200\"\n  }";
    wd.file("main.tf", &w.token_config(settings, "genesys/c", "", ""));
    wd.run(&["validate", "-no-color"]).assert_fails_with(&[
        "Error: Invalid Vault address",
        "plain http to a host that is not loopback",
    ]);

    // A CA file that does not exist.
    let wd = w.workdir();
    let settings = "  vault {\n    ca_cert_file = \"/nonexistent/ca.pem\"\n  }";
    wd.file("main.tf", &w.token_config(settings, "genesys/c", "", ""));
    wd.plan().assert_fails_with(&[
        "Error: Cannot read the Vault CA file",
        "Reading /nonexistent/ca.pem failed",
    ]);

    // skip_tls_verify warns every run (here the https request to a plain-http server fails).
    let wd = w.workdir();
    let https = w.bao.addr().replace("http://", "https://");
    let settings = format!(
        "  max_retries = 0\n  vault {{\n    address = {}\n    skip_tls_verify = true\n  }}",
        q(&https)
    );
    wd.file("main.tf", &w.token_config(&settings, "genesys/c", "", ""));
    wd.plan().assert_fails_with(&[
        "Warning: Vault TLS verification is off",
        "anyone on the network path can read the credentials it fetches",
        "Error: Cannot reach Vault",
    ]);
    assert_eq!(w.standin.token_requests(&w.client_id), 0);
}

#[test]
fn provider_configuration_unknown_at_plan_is_explained() {
    let w = GenesysWorld::new("genesys/u");
    let wd = w.workdir();
    let settings = "  vault {\n    namespace = terraform_data.ns.output\n  }";
    let consumer = "resource \"terraform_data\" \"ns\" {\n  input = \"team\"\n}\n";
    wd.file(
        "main.tf",
        &w.token_config(settings, "genesys/u", "", consumer),
    );
    wd.plan().assert_fails_with(&[
        "Error: Provider configuration not known yet",
        "Use values known at plan time: variables, locals or data sources.",
    ]);
}

#[test]
fn a_deleted_pinned_version_is_reported_on_version() {
    let w = GenesysWorld::new("genesys/d");
    w.bao.kv_put(
        "genesys/d",
        json!({"client_id": w.client_id, "client_secret": w.client_secret}),
    );
    w.bao.kv_delete_versions("genesys/d", &[1]);
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &w.token_config("", "genesys/d", "  version = 1", ""),
    );
    wd.plan().assert_fails_with(&[
        "Error: Secret version not available",
        "version 1 of secret/genesys/d in Vault at",
        "has been deleted. Choose a live version, or undelete this one.",
        "on main.tf line 16, in ephemeral \"ccsecrets_genesys_token\" \"t\": 16: version = 1",
    ]);
}

/// A loopback address that accepts connections and never answers.
fn silent_vault() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    (l, addr)
}

#[test]
fn a_vault_that_never_answers_times_out_per_request_and_per_open() {
    let w = GenesysWorld::new("genesys/s");
    let (_listener, addr) = silent_vault();
    let mut wd = w.workdir();
    wd.env("VAULT_ADDR", &addr);
    wd.file(
        "main.tf",
        &w.token_config(
            "  timeout_seconds = 1\n  max_retries = 0",
            "genesys/s",
            "",
            "",
        ),
    );
    let plan = wd.plan();
    plan.assert_fails_with(&[
        "Error: Vault did not answer in time",
        &format!("cannot reach Vault at {addr}: the request timed out"),
        "raise `timeout_seconds`",
    ]);
    assert!(plan.elapsed < Duration::from_secs(10), "{:?}", plan.elapsed);

    // The whole open's deadline cuts a request that would still be allowed to wait.
    wd.file(
        "main.tf",
        &w.token_config("  open_timeout_seconds = 2", "genesys/s", "", ""),
    );
    let plan = wd.plan();
    plan.assert_fails_with(&[
        "Error: Timed out waiting for Vault",
        &format!("waiting for Vault at {addr} (reading secret/genesys/s)"),
    ]);
    assert!(plan.elapsed < Duration::from_secs(10), "{:?}", plan.elapsed);
}

#[test]
fn a_grant_the_platform_refuses_is_reported_with_its_code() {
    let w = GenesysWorld::new("genesys/g");
    w.standin.push_fault(
        genesys::route::TOKEN,
        Fault::Status(
            400,
            json!({"error": "unauthorized_client", "description": "client is not authorized to use the client_credential grant type",
                   "error_description": "client is not authorized to use the client_credential grant type"}),
        ),
    );
    let wd = w.workdir();
    wd.file("main.tf", &w.token_config("", "genesys/g", "", ""));
    wd.plan().assert_fails_with(&[
        "Error: Genesys Cloud refused the token request",
        "HTTP 400 unauthorized_client: client is not authorized to use the client_credential grant type",
        "The request used the credentials from Vault path secret/genesys/g (version 1)",
    ]);
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        1,
        "a refusal is not retried"
    );
}

#[test]
fn a_failed_revocation_is_a_warning_not_an_error() {
    let w = GenesysWorld::new("genesys/r");
    // A revocation retries a 5xx (three times): four failures make Close give up.
    for _ in 0..4 {
        w.standin
            .push_fault(genesys::route::REVOKE, Fault::ServerError);
    }
    let wd = w.workdir();
    wd.file("main.tf", &w.token_config("", "genesys/r", "", ""));
    let plan = wd.plan();
    plan.assert_ok().assert_says(&[
        "Warning: Could not revoke the Genesys Cloud token",
        "is unavailable (HTTP 500) (gave up after 4 attempts). The token stays valid until it expires at 20",
    ]);
    // The failed revocation left the token with the provider, whose shutdown tried again.
    assert_eq!(
        w.standin.revocations(&w.client_id),
        1,
        "revoked on the second try, at shutdown"
    );
    assert_eq!(w.standin.live_tokens(&w.client_id), 0);
}
