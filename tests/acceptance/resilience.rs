//! Faults, throttling and sharing, with real Terraform and real OpenBao: each test asserts the
//! outcome, the diagnostic text, and that nothing secret leaked.

use std::time::{Duration, Instant};

use ccsecrets_testkit::Fault;
use ccsecrets_testkit::genesys::{self, GenesysStandin};
use ccsecrets_testkit::openbao::OpenBao;
use ccsecrets_testkit::terraform::{Run, Workdir, assert_no_secrets};
use serde_json::json;

use crate::support::*;

/// Provider `settings`, one Genesys token at `path`, and a consumer that calls the stand-in
/// API with it at apply.
fn genesys_config(w: &GenesysWorld, settings: &str, path: &str) -> String {
    let consumer = format!(
        r#"resource "terraform_data" "use" {{
  provisioner "local-exec" {{
    command     = "curl -sSf -o /dev/null -H \"Authorization: Bearer $T\" {u}/api/v2/organizations/me"
    environment = {{ T = ephemeral.ccsecrets_genesys_token.t.access_token }}
  }}
}}
"#,
        u = w.standin.url()
    );
    w.token_config(settings, path, "", &consumer)
}

fn secrets(w: &GenesysWorld) -> Vec<String> {
    let mut s = w.standin.issued_tokens();
    s.push(w.client_secret.clone());
    s
}

fn no_leaks(w: &GenesysWorld, wd: &Workdir, runs: &[&Run]) {
    let mut places = wd.persisted();
    for r in runs {
        places.push((format!("terraform {:?}", r.args), r.output().into_bytes()));
    }
    assert_no_secrets(&places, &secrets(w));
}

/// Plans and applies with one fault scripted on the token endpoint; returns the runs.
fn survives_token_fault(fault: Fault, settings: &str) -> (GenesysWorld, Run, Run) {
    let w = GenesysWorld::new("genesys/f");
    w.standin.push_fault(genesys::route::TOKEN, fault);
    let wd = w.workdir();
    wd.file("main.tf", &genesys_config(&w, settings, "genesys/f"));
    let plan = wd.plan();
    plan.assert_ok();
    let apply = wd.apply_plan();
    apply.assert_ok();
    // The fault cost one extra request in the plan walk; the apply walk had none.
    assert_eq!(w.standin.token_requests(&w.client_id), 3);
    assert_eq!(
        w.standin.valid_calls(&w.client_id),
        1,
        "the consumer used a valid token"
    );
    assert_eq!(
        w.standin.live_tokens(&w.client_id),
        0,
        "every token was revoked"
    );
    no_leaks(&w, &wd, &[&plan, &apply]);
    (w, plan, apply)
}

#[test]
fn a_server_error_then_success_is_retried() {
    survives_token_fault(Fault::ServerError, "");
}

#[test]
fn the_genesys_login_rate_limit_then_success_is_retried() {
    survives_token_fault(Fault::LoginRateLimit, "");
}

#[test]
fn a_429_with_retry_after_is_honoured() {
    let started = Instant::now();
    let (_, plan, _) = survives_token_fault(Fault::TooManyRequests { retry_after: 2 }, "");
    assert!(
        plan.elapsed >= Duration::from_secs(2),
        "the plan waited {:?}, less than Retry-After",
        plan.elapsed
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_connection_reset_mid_response_is_retried() {
    survives_token_fault(Fault::Reset, "");
}

#[test]
fn a_response_slower_than_the_timeout_is_cut_off_and_retried() {
    let (_, plan, _) =
        survives_token_fault(Fault::Delay(Duration::from_secs(5)), "timeout_seconds = 1");
    assert!(
        plan.elapsed < Duration::from_secs(5),
        "the slow answer was not cut off: {:?}",
        plan.elapsed
    );
}

#[test]
fn a_platform_slower_than_the_timeout_every_time_fails_with_a_timeout_diagnostic() {
    let w = GenesysWorld::new("genesys/slow");
    for _ in 0..2 {
        w.standin
            .push_fault(genesys::route::TOKEN, Fault::Delay(Duration::from_secs(4)));
    }
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &genesys_config(&w, "timeout_seconds = 1\nmax_retries = 1", "genesys/slow"),
    );
    let plan = wd.plan();
    plan.assert_fails_with(&[
        "Error: Genesys Cloud did not answer in time",
        "the request timed out (gave up after 2 attempts)",
        "Raise `timeout_seconds`",
    ]);
    assert!(plan.elapsed < Duration::from_secs(8), "{:?}", plan.elapsed);
    no_leaks(&w, &wd, &[&plan]);
}

#[test]
fn the_whole_open_has_a_deadline_that_names_what_it_waited_for() {
    let w = GenesysWorld::new("genesys/deadline");
    for _ in 0..10 {
        w.standin.push_fault(
            genesys::route::TOKEN,
            Fault::TooManyRequests { retry_after: 1 },
        );
    }
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &genesys_config(
            &w,
            "open_timeout_seconds = 3\nmax_retries = 10",
            "genesys/deadline",
        ),
    );
    let plan = wd.plan();
    let u = w.standin.url();
    plan.assert_fails_with(&[
        "Error: Timed out waiting for Genesys Cloud",
        &format!("waiting for Genesys Cloud at {u}/oauth/token"),
        "is rate limiting requests (HTTP 429",
        "Raise `open_timeout_seconds`",
    ]);
    assert!(plan.elapsed < Duration::from_secs(10), "{:?}", plan.elapsed);
}

#[test]
fn a_rejected_credential_is_never_retried_even_with_retries_left() {
    let w = GenesysWorld::new("genesys/ic");
    w.standin
        .push_fault(genesys::route::TOKEN, genesys::invalid_client());
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &genesys_config(&w, "max_retries = 5", "genesys/ic"),
    );
    let plan = wd.plan();
    plan.assert_fails_with(&[
        "Error: Genesys Cloud rejected the credentials",
        "invalid_client",
    ]);
    assert_eq!(w.standin.token_requests(&w.client_id), 1);
}

#[test]
fn openbao_not_running_fails_within_the_deadline_naming_the_address() {
    let mut bao = OpenBao::start();
    let addr = bao.addr();
    bao.stop();
    let standin = GenesysStandin::start();
    let mut wd = workdir();
    wd.env("VAULT_ADDR", &addr).env("VAULT_TOKEN", "root");
    wd.file(
        "main.tf",
        &format!(
            "{REQUIRED}\nprovider \"ccsecrets\" {{\n  open_timeout_seconds = 20\n}}\nephemeral \"ccsecrets_genesys_token\" \"t\" {{\n  path = \"g\"\n  login_url = {u}\n  api_url = {u}\n}}\n",
            u = q(standin.url())
        ),
    );
    let started = Instant::now();
    wd.plan().assert_fails_with(&[
        "Error: Cannot reach Vault",
        &format!("cannot reach Vault at {addr}: the connection failed"),
        "(gave up after 4 attempts)",
        "that Vault is running and reachable from this machine",
    ]);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_sealed_openbao_unsealed_during_the_retry_window_succeeds() {
    let w = GenesysWorld::new("genesys/sealed");
    w.bao.seal();
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &genesys_config(
            &w,
            "max_retries = 10\nopen_timeout_seconds = 60",
            "genesys/sealed",
        ),
    );
    let plan = std::thread::scope(|s| {
        let plan = s.spawn(|| wd.plan());
        std::thread::sleep(Duration::from_millis(1500));
        w.bao.unseal();
        plan.join().unwrap()
    });
    plan.assert_ok();
    assert!(
        plan.elapsed >= Duration::from_millis(1200),
        "{:?}",
        plan.elapsed
    );
    assert_eq!(w.standin.token_requests(&w.client_id), 1);
    no_leaks(&w, &wd, &[&plan]);
}

#[test]
fn a_sealed_openbao_that_stays_sealed_gets_a_sealed_diagnostic() {
    let w = GenesysWorld::new("genesys/s2");
    w.bao.seal();
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &genesys_config(&w, "max_retries = 1", "genesys/s2"),
    );
    wd.plan().assert_fails_with(&[
        "Error: Vault is sealed",
        "is unavailable (HTTP 503, sealed): Vault is sealed (gave up after 2 attempts)",
        "Unseal Vault",
    ]);
}

#[test]
fn openbao_stopped_between_plan_and_apply_fails_the_apply_clearly() {
    let mut w = GenesysWorld::new("genesys/gone");
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &genesys_config(
            &w,
            "max_retries = 2\nopen_timeout_seconds = 15",
            "genesys/gone",
        ),
    );
    wd.plan().assert_ok();
    let addr = w.bao.addr();
    w.bao.stop();
    let apply = wd.apply_plan();
    apply.assert_fails_with(&[
        "Error: Cannot reach Vault",
        &format!("cannot reach Vault at {addr}"),
    ]);
    assert!(apply.elapsed < Duration::from_secs(15));
    assert_eq!(w.standin.live_tokens(&w.client_id), 0);
    no_leaks(&w, &wd, &[&apply]);
}

#[test]
fn cxone_server_errors_and_429_are_retried() {
    let w = CxoneWorld::new("cxone/r");
    w.standin
        .push_fault(ccsecrets_testkit::cxone::route::TOKEN, Fault::ServerError);
    w.standin.push_fault(
        ccsecrets_testkit::cxone::route::DISCOVERY,
        Fault::TooManyRequests { retry_after: 1 },
    );
    let wd = w.workdir();
    with_provider_example(&wd, &w.bao);
    wd.file("cxone.tf", &w.example("cxone/r"));
    let plan = wd.plan();
    plan.assert_ok();
    assert_eq!(w.standin.token_requests(&w.access_key_id), 2);
    let mut s = w.standin.issued_tokens();
    s.extend([w.access_key_secret.clone(), w.client_secret.clone()]);
    let mut places = wd.persisted();
    places.push(("plan".into(), plan.output().into_bytes()));
    assert_no_secrets(&places, &s);
}

#[test]
fn a_hundred_instances_over_two_credentials_share_two_tokens_per_phase() {
    // OpenBao's audit log records every request: it shows how many reads the provider made.
    let w = GenesysWorld::with_bao(
        ccsecrets_testkit::openbao::OpenBao::with_audit_log(),
        "genesys/a",
    );
    let reads = |path: &str| w.bao.requests("read", path);
    let client_b = format!("client-b-{}", fastrand::u32(..));
    let secret_b = secret_value("gcsecret-b");
    w.standin.add_client(&client_b, &secret_b, "org-b");
    w.bao.kv_put(
        "genesys/b",
        json!({"client_id": client_b, "client_secret": secret_b}),
    );
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &format!(
            r#"{REQUIRED}
ephemeral "ccsecrets_genesys_token" "t" {{
  count     = 100
  path      = count.index % 2 == 0 ? "genesys/a" : "genesys/b"
  region    = "us-east-1"
  login_url = {u}
  api_url   = {u}
}}

resource "terraform_data" "use_every_token" {{
  provisioner "local-exec" {{
    command     = "n=0; for t in $TOKENS; do curl -sSf -o /dev/null -H \"Authorization: Bearer $t\" {raw}/api/v2/organizations/me || exit 1; n=$((n+1)); done; test $n -eq 100"
    environment = {{ TOKENS = join(" ", ephemeral.ccsecrets_genesys_token.t[*].access_token) }}
  }}
}}
"#,
            u = q(w.standin.url()),
            raw = w.standin.url()
        ),
    );
    let plan = wd.plan();
    plan.assert_ok();
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        1,
        "one token request per credential in the plan walk"
    );
    assert_eq!(w.standin.token_requests(&client_b), 1);
    assert_eq!(
        reads("secret/data/genesys/a"),
        1,
        "one Vault read per secret in the plan walk"
    );
    assert_eq!(reads("secret/data/genesys/b"), 1);
    let apply = wd.apply_plan();
    apply.assert_ok();
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        2,
        "and one more in the apply walk"
    );
    assert_eq!(w.standin.token_requests(&client_b), 2);
    assert_eq!(
        reads("secret/data/genesys/a"),
        2,
        "and one more in the apply walk"
    );
    // Every one of the 100 instances handed a valid token to the consumer.
    assert_eq!(
        w.standin.valid_calls(&w.client_id) + w.standin.valid_calls(&client_b),
        100
    );
    assert_eq!(w.standin.invalid_calls(), 0);
    assert_eq!(
        w.standin.live_tokens(&w.client_id) + w.standin.live_tokens(&client_b),
        0,
        "all revoked"
    );
    assert_eq!(w.standin.revocations(&w.client_id), 2);
    let mut s = secrets(&w);
    s.push(secret_b);
    let mut places = wd.persisted();
    places.extend([
        ("plan".into(), plan.output().into_bytes()),
        ("apply".into(), apply.output().into_bytes()),
    ]);
    assert_no_secrets(&places, &s);
}
