//! The provider end to end with real Terraform and real OpenBao: tokens reach their
//! consumers, plan and apply each mint and revoke, and bad input gets a precise diagnostic.

use ccsecrets_testkit::Fault;
use ccsecrets_testkit::genesys;
use ccsecrets_testkit::openbao::OpenBao;
use ccsecrets_testkit::terraform::assert_no_secrets;
use serde_json::json;

use crate::support::*;

#[test]
fn genesys_token_reaches_the_genesyscloud_provider_and_is_revoked_after_each_phase() {
    let w = GenesysWorld::new("genesys/prod/pipeline");
    let wd = w.workdir();
    wd.file("genesys.tf", &w.example("genesys/prod/pipeline"));

    let validate = wd.run(&["validate", "-no-color"]);
    validate.assert_ok();
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        0,
        "validate never opens"
    );

    wd.plan().assert_ok();
    // The plan walk opened the token once, the consumer used it, and close revoked it.
    assert_eq!(w.standin.token_requests(&w.client_id), 1);
    assert!(
        w.standin.valid_calls(&w.client_id) >= 1,
        "the genesyscloud provider used the token"
    );
    assert_eq!(w.standin.revocations(&w.client_id), 1);
    assert_eq!(w.standin.live_tokens(&w.client_id), 0);

    wd.apply_plan().assert_ok();
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        2,
        "the apply walk mints its own token"
    );
    assert_eq!(w.standin.revocations(&w.client_id), 2);
    assert_eq!(w.standin.live_tokens(&w.client_id), 0);
    assert_eq!(w.standin.invalid_calls(), 0);

    // The consumer's data source landed in state: proof the token worked, without the token.
    let state = String::from_utf8(wd.read("terraform.tfstate")).unwrap();
    assert!(
        state.contains(&w.org_id),
        "state lacks the organization read with the token"
    );
    let mut secrets = w.standin.issued_tokens();
    secrets.push(w.client_secret.clone());
    assert_no_secrets(&wd.persisted(), &secrets);
}

#[test]
fn cxone_token_and_api_endpoint_reach_a_script_at_apply() {
    let w = CxoneWorld::new("cxone/prod/pipeline");
    let wd = w.workdir();
    with_provider_example(&wd, &w.bao);
    wd.file("cxone.tf", &w.example("cxone/prod/pipeline"));
    let apply = wd.apply();
    apply.assert_ok();
    // Plan walk and apply walk each minted one token; the provisioner called the API once.
    assert_eq!(w.standin.token_requests(&w.access_key_id), 2);
    assert_eq!(w.standin.valid_calls(&w.access_key_id), 1);
    assert_eq!(w.standin.invalid_calls(), 0);
    let mut secrets = w.standin.issued_tokens();
    secrets.extend([w.access_key_secret.clone(), w.client_secret.clone()]);
    assert_no_secrets(&wd.persisted(), &secrets);
    assert_no_secrets(
        &[("apply output".into(), apply.output().into_bytes())],
        &secrets,
    );
}

#[test]
fn vault_secret_example_hands_a_value_to_a_provisioner() {
    let bao = OpenBao::start();
    let signing_key = secret_value("sk");
    bao.kv_put(
        "contact-center/prod/webhook",
        json!({"signing_key": signing_key, "retries": 3}),
    );
    let wd = workdir();
    let mut wd = wd;
    wd.env("VAULT_TOKEN", "root");
    with_provider_example(&wd, &bao);
    wd.file(
        "secret.tf",
        &example("ephemeral-resources/ccsecrets_vault_secret/ephemeral-resource.tf"),
    );
    wd.apply().assert_ok();
    assert_no_secrets(&wd.persisted(), &[signing_key]);
}

/// A secret of exactly 1 MiB (OpenBao takes it; integrated storage's default entry limit is
/// 1 MiB) holding every character JSON escapes, read through `data_json` and `data` by real
/// Terraform: the value arrives byte for byte. Terraform hashes it, so it is never printed.
#[test]
fn a_1_mib_secret_is_read_byte_exact_through_data_json() {
    const SIZE: usize = 1024 * 1024;
    let bao = OpenBao::start();
    let marker = secret_value("big");
    let mut value = marker.clone();
    let specials = [
        "\"", "\\", "\n", "\r\n", "\t", "\u{1}", "<", ">", "&", "\u{2028}", "é", "€", "😀", "/",
    ];
    while value.len() < SIZE - 8 {
        if fastrand::u8(..4) == 0 {
            value.push_str(specials[fastrand::usize(..specials.len())]);
        } else {
            value.push(fastrand::alphanumeric());
        }
    }
    while value.len() < SIZE {
        value.push('x');
    }
    assert_eq!(value.len(), SIZE);
    bao.kv_put("big/blob", json!({"blob": value, "small": 1}));
    let wd = vault_workdir(&bao);
    wd.file(
        "main.tf",
        &format!(
            r#"{REQUIRED}
provider "ccsecrets" {{
  vault {{
    address = {}
  }}
}}

ephemeral "ccsecrets_vault_secret" "big" {{
  path = "big/blob"
}}

resource "terraform_data" "check" {{
  provisioner "local-exec" {{
    command = "printf '%s %s %s' \"$JSON\" \"$DATA\" \"$SMALL\" > got.txt"
    environment = {{
      JSON   = sha256(jsondecode(ephemeral.ccsecrets_vault_secret.big.data_json)["blob"])
      DATA   = sha256(ephemeral.ccsecrets_vault_secret.big.data["blob"])
      SMALL  = jsondecode(ephemeral.ccsecrets_vault_secret.big.data_json)["small"]
    }}
  }}
}}
"#,
            q(&bao.addr())
        ),
    );
    wd.apply().assert_ok();
    let got = String::from_utf8(wd.read("got.txt")).unwrap();
    let want_hash = ccsecrets_testkit::openbao::sha256_hex(value.as_bytes());
    assert_eq!(
        got,
        format!("{want_hash} {want_hash} 1"),
        "the value did not arrive byte for byte"
    );
    assert_no_secrets(&wd.persisted(), &[marker]);
}

#[test]
fn a_config_unknown_at_plan_is_opened_only_at_apply() {
    let w = GenesysWorld::new("genesys/late");
    let wd = w.workdir();
    wd.file("versions.tf", REQUIRED);
    // The path comes from a resource that does not exist until apply.
    wd.file(
        "main.tf",
        &format!(
            r#"
resource "terraform_data" "path" {{
  input = "genesys/late"
}}
ephemeral "ccsecrets_genesys_token" "t" {{
  path      = terraform_data.path.output
  region    = "us-east-1"
  login_url = {u}
  api_url   = {u}
}}
resource "terraform_data" "use" {{
  provisioner "local-exec" {{
    command     = "test -n \"$T\""
    environment = {{ T = ephemeral.ccsecrets_genesys_token.t.access_token }}
  }}
}}
"#,
            u = q(w.standin.url())
        ),
    );
    wd.plan().assert_ok();
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        0,
        "nothing to open while the path is unknown"
    );
    wd.apply_plan().assert_ok();
    assert_eq!(w.standin.token_requests(&w.client_id), 1);
    assert_eq!(w.standin.live_tokens(&w.client_id), 0);
}

/// One configuration of a token resource that must fail with the given texts.
fn genesys_failure(
    w: &GenesysWorld,
    resource_body: &str,
    wanted: &[&str],
) -> ccsecrets_testkit::terraform::Run {
    let wd = w.workdir();
    wd.file("versions.tf", REQUIRED);
    wd.file(
        "main.tf",
        &format!("ephemeral \"ccsecrets_genesys_token\" \"t\" {{\n{resource_body}\n}}\n"),
    );
    let run = wd.plan();
    run.assert_fails_with(wanted);
    assert_no_secrets(
        &[("plan output".into(), run.output().into_bytes())],
        std::slice::from_ref(&w.client_secret),
    );
    run
}

#[test]
fn missing_secret_names_the_mount_path_and_address() {
    let w = GenesysWorld::new("genesys/present");
    let addr = w.bao.addr();
    genesys_failure(
        &w,
        "path = \"genesys/absent\"\nregion = \"us-east-1\"",
        &[
            "Error: Secret not found in Vault",
            &format!("no secret at secret/genesys/absent in Vault at {addr}"),
            "bao kv get -mount=secret genesys/absent",
            "on main.tf line 2",
        ],
    );
    genesys_failure(
        &w,
        "path = \"genesys/present\"\nmount = \"kv\"\nregion = \"us-east-1\"",
        &[
            "Error: Vault mount not found",
            "has no secrets engine mounted at \"kv\"",
        ],
    );
    genesys_failure(
        &w,
        "path = \"genesys/present\"\nversion = 7\nregion = \"us-east-1\"",
        &["no secret at secret/genesys/present (version 7)"],
    );
}

#[test]
fn missing_key_names_the_key_and_the_keys_present_but_no_value() {
    let w = GenesysWorld::new("genesys/ok");
    w.bao.kv_put(
        "genesys/half",
        json!({"client_id": w.client_id, "clientSecret": w.client_secret}),
    );
    let run = genesys_failure(
        &w,
        "path = \"genesys/half\"\nregion = \"us-east-1\"",
        &[
            "Error: Key not found in secret",
            "has no non-empty key \"client_secret\"",
            "Its keys are: \"clientSecret\", \"client_id\"",
            "set `client_secret_key`",
        ],
    );
    assert!(
        !run.output().contains(&w.client_id),
        "the client id value must not be printed"
    );
    // The override attribute fixes it.
    let wd = w.workdir();
    wd.file("versions.tf", REQUIRED);
    wd.file(
        "main.tf",
        &format!(
            "ephemeral \"ccsecrets_genesys_token\" \"t\" {{\n path = \"genesys/half\"\n client_secret_key = \"clientSecret\"\n login_url = {u}\n api_url = {u}\n}}\n",
            u = q(w.standin.url())
        ),
    );
    wd.plan().assert_ok();
}

#[test]
fn rejected_credentials_name_platform_path_and_error_code_and_are_not_retried() {
    let w = GenesysWorld::new("genesys/bad");
    w.standin
        .add_client(&w.client_id, "a-different-secret", &w.org_id);
    let body = format!(
        "path = \"genesys/bad\"\nlogin_url = {u}\napi_url = {u}",
        u = q(w.standin.url())
    );
    genesys_failure(
        &w,
        &body,
        &[
            "Error: Genesys Cloud rejected the credentials",
            "HTTP 401 invalid_client: authentication failed",
            "the credentials from Vault path secret/genesys/bad (version 1)",
        ],
    );
    assert_eq!(
        w.standin.token_requests(&w.client_id),
        1,
        "a rejected credential is never retried"
    );
}

#[test]
fn vault_unreachable_and_forbidden_say_what_to_check() {
    let w = GenesysWorld::new("genesys/p");
    // Forbidden: a valid token whose policy does not cover the path.
    w.bao.policy(
        "elsewhere",
        "path \"secret/data/elsewhere/*\" { capabilities = [\"read\"] }",
    );
    let token = w.bao.token(&["elsewhere"], "10m");
    let mut wd = w.workdir();
    wd.env("VAULT_TOKEN", &token);
    wd.file("versions.tf", REQUIRED);
    wd.file("main.tf", "ephemeral \"ccsecrets_genesys_token\" \"t\" {\n path = \"genesys/p\"\n region = \"us-east-1\"\n}\n");
    let run = wd.plan();
    run.assert_fails_with(&[
        "Error: Vault denied access",
        "denied access to secret/data/genesys/p: permission denied",
        "its policy grants \"read\" on \"secret/data/genesys/p\"",
    ]);
    assert_no_secrets(&[("output".into(), run.output().into_bytes())], &[token]);

    // Unreachable: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wd = w.workdir();
    wd.file("versions.tf", REQUIRED);
    wd.file(
        "provider.tf",
        &format!("provider \"ccsecrets\" {{\n vault {{\n address = \"http://127.0.0.1:{port}\"\n }}\n max_retries = 1\n}}\n"),
    );
    wd.file("main.tf", "ephemeral \"ccsecrets_genesys_token\" \"t\" {\n path = \"genesys/p\"\n region = \"us-east-1\"\n}\n");
    wd.plan().assert_fails_with(&[
        "Error: Cannot reach Vault",
        &format!("cannot reach Vault at http://127.0.0.1:{port}: the connection failed"),
        "(gave up after 2 attempts)",
        "Check the vault `address` (or VAULT_ADDR)",
    ]);
}

#[test]
fn malformed_platform_responses_are_reported_not_retried() {
    let w = GenesysWorld::new("genesys/m");
    w.standin
        .push_fault(genesys::route::TOKEN, Fault::Malformed);
    let body = format!(
        "path = \"genesys/m\"\nlogin_url = {u}\napi_url = {u}",
        u = q(w.standin.url())
    );
    genesys_failure(
        &w,
        &body,
        &[
            "Error: Unexpected response from Genesys Cloud",
            "the token response is not valid JSON",
        ],
    );
    assert_eq!(w.standin.token_requests(&w.client_id), 1);
}

#[test]
fn region_and_url_mistakes_are_caught_before_any_request() {
    let w = GenesysWorld::new("genesys/r");
    genesys_failure(
        &w,
        "path = \"genesys/r\"\nregion = \"us-east-9\"",
        &[
            "Error: Unknown Genesys Cloud region",
            "\"us-east-9\" (`region`) is not a Genesys Cloud region",
            "us-east-1, us-east-2",
        ],
    );
    genesys_failure(
        &w,
        "path = \"genesys/r\"\nregion = \"us-east-1\"\nlogin_url = \"http://login.example.com\"",
        &[
            "Error: Invalid login_url",
            "plain http to a host that is not loopback",
        ],
    );
    genesys_failure(
        &w,
        "path = \"genesys/r\"\nregion = \"us-east-1\"\ndomain = \"mypurecloud.com\"",
        &["Error: Conflicting region and domain"],
    );
    assert_eq!(w.standin.token_requests(&w.client_id), 0);
}

#[test]
fn cxone_rejected_application_credentials() {
    let w = CxoneWorld::new("cxone/p");
    w.standin.add_app("unused", "unused");
    w.bao.kv_put(
        "cxone/wrong",
        json!({"access_key_id": w.access_key_id, "access_key_secret": w.access_key_secret,
               "client_id": "no-such-app", "client_secret": w.client_secret}),
    );
    let wd = w.workdir();
    wd.file("versions.tf", REQUIRED);
    wd.file(
        "main.tf",
        &format!("ephemeral \"ccsecrets_cxone_token\" \"t\" {{\n path = \"cxone/wrong\"\n issuer = {}\n}}\n", q(w.standin.url())),
    );
    let run = wd.plan();
    run.assert_fails_with(&[
        "Error: NICE CXone rejected the credentials",
        "HTTP 401 invalid_client: Client authentication failed",
        "Vault path secret/cxone/wrong (version 1)",
    ]);
    assert_no_secrets(
        &[("output".into(), run.output().into_bytes())],
        &[w.access_key_secret.clone(), w.client_secret.clone()],
    );
}

#[test]
fn vault_token_sources_token_file_beats_env_then_home_file_then_none() {
    let w = GenesysWorld::new("genesys/t");
    let config = |settings: &str| w.token_config(settings, "genesys/t", "", "");
    // ~/.vault-token (as `bao login` writes it), with no VAULT_TOKEN.
    let mut wd = w.workdir();
    wd.unset("VAULT_TOKEN");
    std::fs::write(wd.path().join("home/.vault-token"), "root\n").unwrap();
    wd.file("main.tf", &config(""));
    wd.plan().assert_ok();

    // An explicit token_file wins over a wrong VAULT_TOKEN.
    let mut wd = w.workdir();
    wd.env("VAULT_TOKEN", "s.wrong-token-from-the-environment");
    std::fs::write(wd.path().join("tok"), "root").unwrap();
    let file = wd.path().join("tok").display().to_string();
    wd.file(
        "main.tf",
        &config(&format!("  vault {{\n    token_file = {}\n  }}", q(&file))),
    );
    wd.plan().assert_ok();

    // Nothing at all: a diagnostic that lists the ways to authenticate.
    let mut wd = w.workdir();
    wd.unset("VAULT_TOKEN");
    wd.file("main.tf", &config(""));
    wd.plan().assert_fails_with(&[
        "Error: No Vault token",
        "log in with `bao login` / `vault login`",
        "`auth_jwt`",
    ]);
    assert_eq!(w.standin.token_requests(&w.client_id), 2);
}
