//! Nothing secret leaks: after `plan -out` and `apply` under `TF_LOG=trace`, neither the
//! credentials from Vault, the Vault token, nor any minted token appears in the state, the
//! saved plan, the trace log, or anything Terraform printed.

use ccsecrets_testkit::cxone::CxoneStandin;
use ccsecrets_testkit::terraform::assert_no_secrets;
use serde_json::json;

use crate::support::*;

#[test]
fn no_secret_reaches_state_plan_trace_log_or_output() {
    let w = GenesysWorld::new("genesys/prod/pipeline");
    let cx = CxoneStandin::start();
    let (key_id, key_secret) = ("AKIDLEAK+TEST==", format!("{}/+==", secret_value("akleak")));
    let (app_id, app_secret) = ("app-leak", secret_value("appleak"));
    cx.add_app(app_id, &app_secret);
    cx.add_access_key(key_id, &key_secret, "tenant-leak");
    w.bao.kv_put(
        "cxone/prod/pipeline",
        json!({"access_key_id": key_id, "access_key_secret": key_secret, "client_id": app_id, "client_secret": app_secret}),
    );
    let webhook_key = secret_value("whkey");
    w.bao.kv_put(
        "contact-center/prod/webhook",
        json!({"signing_key": webhook_key}),
    );
    // A real, random Vault token limited to what the configuration reads.
    w.bao.policy(
        "pipeline",
        "path \"secret/data/genesys/*\" { capabilities = [\"read\"] }\n\
         path \"secret/data/cxone/*\" { capabilities = [\"read\"] }\n\
         path \"secret/data/contact-center/*\" { capabilities = [\"read\"] }",
    );
    let vault_token = w.bao.token(&["pipeline"], "15m");

    let mut wd = w.workdir();
    wd.env("VAULT_TOKEN", &vault_token)
        .env("TF_LOG", "trace")
        .env("TF_LOG_PATH", "trace.log");
    // All three examples in one configuration, plus the provider block.
    wd.file("genesys.tf", &w.example("genesys/prod/pipeline"));
    wd.file(
        "cxone.tf",
        &inject(
            &example("ephemeral-resources/ccsecrets_cxone_token/ephemeral-resource.tf"),
            "ephemeral \"ccsecrets_cxone_token\" \"pipeline\"",
            &[("issuer", q(cx.url()))],
        ),
    );
    wd.file(
        "secret.tf",
        &example("ephemeral-resources/ccsecrets_vault_secret/ephemeral-resource.tf"),
    );

    let plan = wd.plan();
    plan.assert_ok();
    let apply = wd.apply_plan();
    apply.assert_ok();
    assert_eq!(w.standin.token_requests(&w.client_id), 2);
    assert_eq!(cx.valid_calls(key_id), 1, "the CXone script used its token");

    let log = wd.read("trace.log");
    assert!(
        log.len() > 10_000,
        "the trace log is missing or short ({} bytes)",
        log.len()
    );
    // The provider's own trace lines are there: the check below covers what it logs.
    let log_text = String::from_utf8_lossy(&log);
    assert!(
        log_text.contains("provider.terraform-provider-ccsecrets"),
        "no provider lines in the trace log"
    );
    assert!(
        log_text.contains("rpc=OpenEphemeralResource"),
        "no per-RPC lines from the provider"
    );

    let mut places = wd.persisted();
    places.extend([
        ("trace.log".to_owned(), log),
        ("plan stdout/stderr".to_owned(), plan.output().into_bytes()),
        (
            "apply stdout/stderr".to_owned(),
            apply.output().into_bytes(),
        ),
    ]);
    let mut secrets = vec![
        w.client_secret.clone(),
        key_secret,
        app_secret,
        webhook_key,
        vault_token,
    ];
    secrets.extend(w.standin.issued_tokens());
    secrets.extend(cx.issued_tokens());
    assert_eq!(
        secrets.len(),
        5 + 2 + 2,
        "two tokens per platform (plan and apply)"
    );
    assert_no_secrets(&places, &secrets);
}

#[test]
fn the_leak_check_itself_catches_a_leak() {
    // A control: the same check must fail when a secret is present, plain or base64-encoded.
    let secret = "s3cr3t-value-123".to_owned();
    for place in [
        "state has s3cr3t-value-123 in it".to_owned(),
        "b64: czNjcjN0LXZhbHVlLTEyMw==".to_owned(),
    ] {
        let caught = std::panic::catch_unwind(|| {
            assert_no_secrets(
                &[("place".to_owned(), place.clone().into_bytes())],
                std::slice::from_ref(&secret),
            );
        });
        assert!(caught.is_err(), "the leak in {place:?} was not caught");
    }
}
