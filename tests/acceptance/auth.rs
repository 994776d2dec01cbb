//! Vault login methods end to end: AppRole, JWT/OIDC and Kubernetes with real Terraform and
//! OpenBao and no Vault token anywhere; then, in one in-process provider over gRPC, a login
//! token renewed past its TTL, replaced when it dies, and revoked at shutdown.

use std::path::Path;
use std::time::Duration;

use ccsecrets::framework::Value;
use ccsecrets_testkit::grpc::{InProcess, WireDiagnostic, open_with};
use ccsecrets_testkit::jwt::{JwtSigner, ci_claims};
use ccsecrets_testkit::kube::{DEFAULT_AUDIENCE, KubeStandin, ServiceAccount};
use ccsecrets_testkit::openbao::OpenBao;
use ccsecrets_testkit::terraform::{Run, Workdir, assert_no_secrets};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// OpenBao with a random password at `secret/<path>` for each of `paths`, and a policy
/// `reader` granting exactly `read` on those `secret/data/...` paths. Returns the passwords.
fn bao_with_secrets(paths: &[&str]) -> (OpenBao, Vec<String>) {
    let bao = OpenBao::start();
    let mut policy = String::new();
    let mut passwords = Vec::new();
    for p in paths {
        let pw = secret_value("pw");
        bao.kv_put(p, json!({ "password": pw }));
        policy.push_str(&format!(
            "path \"secret/data/{p}\" {{ capabilities = [\"read\"] }}\n"
        ));
        passwords.push(pw);
    }
    bao.policy("reader", &policy);
    (bao, passwords)
}

/// A token's data looked up by its accessor; `None` once it is revoked or expired.
fn lookup_accessor(bao: &OpenBao, accessor: &str) -> Option<serde_json::Value> {
    let (s, v) = bao.call(
        "POST",
        "auth/token/lookup-accessor",
        Some(json!({ "accessor": accessor })),
    );
    (s == 200).then(|| v["data"].clone())
}

/// The data of every live token that was issued by logging in at `auth/<mount>`.
fn login_tokens(bao: &OpenBao, mount: &str) -> Vec<serde_json::Value> {
    let (status, list) = bao.call("LIST", "auth/token/accessors", None);
    assert_eq!(status, 200, "list accessors: {list}");
    let login_path = format!("auth/{mount}/login");
    list["data"]["keys"]
        .as_array()
        .expect("accessor keys")
        .iter()
        .filter_map(|a| lookup_accessor(bao, a.as_str().unwrap_or_default()))
        .filter(|d| d["path"] == login_path.as_str())
        .collect()
}

fn assert_no_login_tokens(bao: &OpenBao, mount: &str, when: &str) {
    let live = login_tokens(bao, mount);
    assert!(
        live.is_empty(),
        "{when}: {} token(s) from auth/{mount}/login still live (not revoked): {live:?}",
        live.len()
    );
}

/// An AppRole role `ci` at `mount` with `reader` and a fixed role id; returns the role id.
fn approle_role(bao: &OpenBao, mount: &str, ttl: &str, max_ttl: &str) -> String {
    bao.enable_auth(mount, "approle");
    bao.write(
        &format!("auth/{mount}/role/ci"),
        json!({"token_policies": ["reader"], "token_ttl": ttl, "token_max_ttl": max_ttl}),
    );
    let role_id = format!("role-{}", fastrand::u32(..));
    bao.write(
        &format!("auth/{mount}/role/ci/role-id"),
        json!({ "role_id": role_id }),
    );
    role_id
}

/// A fresh secret id for role `ci`, good for 10 logins: its remaining uses count the logins.
fn approle_secret_id(bao: &OpenBao, mount: &str) -> String {
    let secret_id = secret_value("sid");
    bao.write(
        &format!("auth/{mount}/role/ci/custom-secret-id"),
        json!({ "secret_id": secret_id, "num_uses": 10 }),
    );
    secret_id
}

/// How many logins `secret_id` has left.
fn uses_left(bao: &OpenBao, mount: &str, secret_id: &str) -> i64 {
    let v = bao.write(
        &format!("auth/{mount}/role/ci/secret-id/lookup"),
        json!({ "secret_id": secret_id }),
    );
    v["data"]["secret_id_num_uses"]
        .as_i64()
        .expect("secret_id_num_uses")
}

/// A configuration that logs in with `auth` (lines inside the provider's `vault` block), reads
/// `secret/app/db` as an ephemeral value, and at apply writes its password to `received.txt`.
/// `extra` is added at the top level (e.g. variable declarations).
fn login_config(bao: &OpenBao, auth: &str, extra: &str) -> String {
    format!(
        r#"{REQUIRED}
{extra}
provider "ccsecrets" {{
  vault {{
    address = {addr}
{auth}
  }}
}}

ephemeral "ccsecrets_vault_secret" "db" {{
  path = "app/db"
}}

resource "terraform_data" "use" {{
  provisioner "local-exec" {{
    command     = "printf %s \"$PASSWORD\" > received.txt"
    environment = {{ PASSWORD = ephemeral.ccsecrets_vault_secret.db.data["password"] }}
  }}
}}
"#,
        addr = q(&bao.addr())
    )
}

/// An input variable that is neither shown nor stored in the plan: how a CI passes a credential.
fn ephemeral_variable(name: &str) -> String {
    format!(
        "variable \"{name}\" {{\n  type      = string\n  sensitive = true\n  ephemeral = true\n}}\n"
    )
}

/// A workdir with `main.tf` and no Vault token anywhere: the Workdir drops inherited VAULT_*
/// variables and has an empty HOME (no ~/.vault-token), so only the login can authenticate.
fn login_workdir(main_tf: &str) -> Workdir {
    let wd = workdir();
    wd.file("main.tf", main_tf);
    wd
}

/// Plans, then applies the saved plan, with no Vault token anywhere. Checks that the secret
/// reached the provisioner and that no token from `auth/<mount>/login` outlives either run.
/// Returns everything a secret must not reach: persisted files and both runs' output.
fn plan_and_apply(
    wd: &Workdir,
    bao: &OpenBao,
    mount: &str,
    password: &str,
) -> Vec<(String, Vec<u8>)> {
    assert_no_login_tokens(bao, mount, "before the plan");
    let plan = wd.plan();
    plan.assert_ok();
    assert_no_login_tokens(bao, mount, "after terraform plan exited");
    let apply = wd.apply_plan();
    apply.assert_ok();
    assert_eq!(
        String::from_utf8(wd.read("received.txt")).unwrap(),
        password,
        "the provisioner received the secret read with the login token"
    );
    assert_no_login_tokens(bao, mount, "after terraform apply exited");
    let mut places = wd.persisted();
    places.push(("plan output".into(), plan.output().into_bytes()));
    places.push(("apply output".into(), apply.output().into_bytes()));
    places
}

/// Plans `wd`, which must fail with `wanted`; returns the run.
fn plan_fails(wd: &Workdir, wanted: &[&str]) -> Run {
    let run = wd.plan();
    run.assert_fails_with(wanted);
    run
}

fn output_of(run: &Run) -> Vec<(String, Vec<u8>)> {
    vec![("output".into(), run.output().into_bytes())]
}

// ---------------------------------------------------------------------------------------------
// AppRole

/// A second secret, opened by Terraform alongside `app/db`, that lands in `received-extra.txt`.
const EXTRA_SECRET: &str = r#"
ephemeral "ccsecrets_vault_secret" "extra" {
  path = "app/extra"
}

resource "terraform_data" "use_extra" {
  provisioner "local-exec" {
    command     = "printf %s \"$EXTRA\" > received-extra.txt"
    environment = { EXTRA = ephemeral.ccsecrets_vault_secret.extra.data["password"] }
  }
}
"#;

#[test]
fn approle_secret_id_from_an_ephemeral_variable_logs_in_once_per_run_and_revokes() {
    let (bao, pw) = bao_with_secrets(&["app/db", "app/extra"]);
    let role_id = approle_role(&bao, "approle", "1h", "2h");
    let secret_id = approle_secret_id(&bao, "approle");
    let auth = format!(
        "    auth_approle {{\n      role_id   = {}\n      secret_id = var.secret_id\n    }}",
        q(&role_id)
    );
    let config = login_config(&bao, &auth, &ephemeral_variable("secret_id")) + EXTRA_SECRET;
    let mut wd = login_workdir(&config);
    wd.env("TF_VAR_secret_id", &secret_id);
    let places = plan_and_apply(&wd, &bao, "approle", &pw[0]);
    assert_eq!(
        String::from_utf8(wd.read("received-extra.txt")).unwrap(),
        pw[1]
    );
    // Two secrets opened side by side, one login per provider process: the plan's and the
    // apply's.
    assert_eq!(uses_left(&bao, "approle", &secret_id), 8);
    assert_no_secrets(&places, &[secret_id, pw[0].clone(), pw[1].clone()]);
}

#[test]
fn approle_secret_id_file_on_a_custom_mount() {
    let (bao, pw) = bao_with_secrets(&["app/db"]);
    let role_id = approle_role(&bao, "ci-approle", "1h", "2h");
    let secret_id = approle_secret_id(&bao, "ci-approle");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret-id");
    // As written by `bao write -field=secret_id ... > file`: with a trailing newline.
    std::fs::write(&file, format!("{secret_id}\n")).unwrap();
    let auth = format!(
        "    auth_approle {{\n      mount          = \"ci-approle\"\n      role_id        = {}\n      secret_id_file = {}\n    }}",
        q(&role_id),
        q(&file.display().to_string())
    );
    let wd = login_workdir(&login_config(&bao, &auth, ""));
    let places = plan_and_apply(&wd, &bao, "ci-approle", &pw[0]);
    assert_eq!(uses_left(&bao, "ci-approle", &secret_id), 8);
    assert_no_secrets(&places, &[secret_id, pw[0].clone()]);
}

#[test]
fn approle_wrong_or_missing_secret_id_fails_the_login_without_leaking_it() {
    let (bao, _) = bao_with_secrets(&["app/db"]);
    let role_id = approle_role(&bao, "approle", "1h", "2h");
    let secret_id = approle_secret_id(&bao, "approle");
    let wrong = secret_value("wrongsid");
    let auth = format!(
        "    auth_approle {{\n      role_id   = {}\n      secret_id = var.secret_id\n    }}",
        q(&role_id)
    );
    let mut wd = login_workdir(&login_config(&bao, &auth, &ephemeral_variable("secret_id")));
    wd.env("TF_VAR_secret_id", &wrong);
    let run = plan_fails(
        &wd,
        &[
            "Error: Vault login failed",
            "Vault login with the approle method at auth/approle failed: HTTP 400: invalid role or secret ID.",
            "Check the vault auth block",
        ],
    );
    assert_no_secrets(&output_of(&run), &[wrong, secret_id.clone()]);
    assert_eq!(
        uses_left(&bao, "approle", &secret_id),
        10,
        "no login succeeded"
    );
    assert_no_login_tokens(&bao, "approle", "after the failed login");

    // A secret id file that is not there: the provider says which file.
    let missing = wd.path().join("no-such-secret-id");
    let auth = format!(
        "    auth_approle {{\n      role_id        = {}\n      secret_id_file = {}\n    }}",
        q(&role_id),
        q(&missing.display().to_string())
    );
    let wd = login_workdir(&login_config(&bao, &auth, ""));
    plan_fails(
        &wd,
        &[
            "Error: Vault login failed",
            &format!(
                "Vault login with the approle method at auth/approle failed: cannot read {}: No such file or directory",
                missing.display()
            ),
        ],
    );
}

#[test]
fn approle_token_denied_by_its_policy_is_still_revoked() {
    let (bao, _) = bao_with_secrets(&["app/other"]);
    let role_id = approle_role(&bao, "approle", "1h", "2h");
    let secret_id = approle_secret_id(&bao, "approle");
    let auth = format!(
        "    auth_approle {{\n      role_id   = {}\n      secret_id = var.secret_id\n    }}",
        q(&role_id)
    );
    let mut wd = login_workdir(&login_config(&bao, &auth, &ephemeral_variable("secret_id")));
    wd.env("TF_VAR_secret_id", &secret_id);
    // The role's policy covers app/other, not app/db.
    let run = plan_fails(
        &wd,
        &[
            "Error: Vault denied access",
            &format!(
                "Vault at {} denied access to secret/data/app/db: permission denied",
                bao.addr()
            ),
        ],
    );
    assert!(
        uses_left(&bao, "approle", &secret_id) < 10,
        "the provider did log in"
    );
    // A denial may make the provider log in again (the token might have died), but every
    // token it obtained must be revoked.
    assert_no_login_tokens(&bao, "approle", "after the denied read");
    assert_no_secrets(&output_of(&run), &[secret_id]);
}

// ---------------------------------------------------------------------------------------------
// JWT / OIDC

const JWT_AUDIENCE: &str = "bao-ci";

/// OpenBao with `auth/jwt` trusting `signer`, and a role `ci` bound to the audience.
fn jwt_world(signer: &JwtSigner) -> (OpenBao, String) {
    let (bao, pw) = bao_with_secrets(&["app/db"]);
    bao.enable_auth("jwt", "jwt");
    bao.write(
        "auth/jwt/config",
        json!({ "jwt_validation_pubkeys": [signer.public_key_pem()] }),
    );
    bao.write(
        "auth/jwt/role/ci",
        json!({"role_type": "jwt", "bound_audiences": [JWT_AUDIENCE], "user_claim": "sub",
               "token_policies": ["reader"], "token_ttl": "1h"}),
    );
    (bao, pw.into_iter().next().unwrap())
}

fn jwt_block(source: &str) -> String {
    format!("    auth_jwt {{\n      role = \"ci\"\n      {source}\n    }}")
}

/// Names of the JWT auth's entity aliases (one per distinct `sub` that logged in).
fn jwt_alias_names(bao: &OpenBao) -> Vec<String> {
    let (_, mounts) = bao.call("GET", "sys/auth", None);
    let accessor = mounts["data"]["jwt/"]["accessor"]
        .as_str()
        .expect("jwt mount accessor")
        .to_owned();
    let (_, aliases) = bao.call("LIST", "identity/entity-alias/id", None);
    let mut names: Vec<String> = aliases["data"]["key_info"]
        .as_object()
        .map(|m| {
            m.values()
                .filter(|a| a["mount_accessor"] == accessor.as_str())
                .filter_map(|a| a["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn jwt_from_an_ephemeral_variable_logs_in_and_revokes() {
    let signer = JwtSigner::new();
    let (bao, pw) = jwt_world(&signer);
    let jwt = signer.sign(&ci_claims("repo:acme/app", JWT_AUDIENCE, 600));
    let mut wd = login_workdir(&login_config(
        &bao,
        &jwt_block("jwt = var.ci_jwt"),
        &ephemeral_variable("ci_jwt"),
    ));
    wd.env("TF_VAR_ci_jwt", &jwt);
    let places = plan_and_apply(&wd, &bao, "jwt", &pw);
    assert_eq!(jwt_alias_names(&bao), vec!["repo:acme/app".to_owned()]);
    assert_no_secrets(&places, &[jwt, pw]);
}

#[test]
fn jwt_file_is_read_at_each_login() {
    let signer = JwtSigner::new();
    let (bao, pw) = jwt_world(&signer);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oidc-token");
    let first = signer.sign(&ci_claims("job-1", JWT_AUDIENCE, 600));
    std::fs::write(&file, &first).unwrap();
    let wd = login_workdir(&login_config(
        &bao,
        &jwt_block(&format!("jwt_file = {}", q(&file.display().to_string()))),
        "",
    ));
    assert_no_login_tokens(&bao, "jwt", "before the plan");
    let plan = wd.plan();
    plan.assert_ok();
    assert_no_login_tokens(&bao, "jwt", "after terraform plan exited");
    assert_eq!(jwt_alias_names(&bao), vec!["job-1".to_owned()]);
    // A CI runner refreshes the token file between steps: the apply logs in with the new one.
    let second = signer.sign(&ci_claims("job-2", JWT_AUDIENCE, 600));
    std::fs::write(&file, format!("{second}\n")).unwrap();
    let apply = wd.apply_plan();
    apply.assert_ok();
    assert_eq!(String::from_utf8(wd.read("received.txt")).unwrap(), pw);
    assert_no_login_tokens(&bao, "jwt", "after terraform apply exited");
    assert_eq!(
        jwt_alias_names(&bao),
        vec!["job-1".to_owned(), "job-2".to_owned()]
    );
    let mut places = wd.persisted();
    places.push(("plan output".into(), plan.output().into_bytes()));
    places.push(("apply output".into(), apply.output().into_bytes()));
    assert_no_secrets(&places, &[first, second, pw]);
}

#[test]
fn jwt_from_an_environment_variable_of_the_terraform_process() {
    let signer = JwtSigner::new();
    let (bao, pw) = jwt_world(&signer);
    let jwt = signer.sign(&ci_claims("repo:acme/app", JWT_AUDIENCE, 600));
    let mut wd = login_workdir(&login_config(
        &bao,
        &jwt_block("jwt_env = \"CI_OIDC_TOKEN\""),
        "",
    ));
    wd.env("CI_OIDC_TOKEN", &jwt);
    let places = plan_and_apply(&wd, &bao, "jwt", &pw);
    assert_no_secrets(&places, &[jwt, pw]);
}

#[test]
fn jwt_refusals_name_the_problem_without_leaking_the_token() {
    let signer = JwtSigner::new();
    let (bao, _) = jwt_world(&signer);
    let detail = "Vault login with the jwt method at auth/jwt failed: HTTP 400:";
    let cases: [(&str, String, &str, String); 4] = [
        (
            "wrong audience",
            "ci".into(),
            "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience",
            signer.sign(&ci_claims("repo:acme/app", "someone-else", 600)),
        ),
        (
            "expired",
            "ci".into(),
            "error validating token: invalid expiration time (exp) claim: token is expired",
            signer.sign(&ci_claims("repo:acme/app", JWT_AUDIENCE, -3600)),
        ),
        (
            "unknown role",
            "nosuch".into(),
            "role \"nosuch\" could not be found",
            signer.sign(&ci_claims("repo:acme/app", JWT_AUDIENCE, 600)),
        ),
        (
            "signed by a key OpenBao does not trust",
            "ci".into(),
            "error validating token: error verifying token signature: no known key successfully validated the token signature",
            JwtSigner::new().sign(&ci_claims("repo:acme/app", JWT_AUDIENCE, 600)),
        ),
    ];
    for (case, role, message, jwt) in cases {
        let auth = format!(
            "    auth_jwt {{\n      role    = {}\n      jwt_env = \"CI_OIDC_TOKEN\"\n    }}",
            q(&role)
        );
        let mut wd = login_workdir(&login_config(&bao, &auth, ""));
        wd.env("CI_OIDC_TOKEN", &jwt);
        let run = wd.plan();
        assert!(!run.ok(), "{case}: the plan should fail");
        run.assert_says(&["Error: Vault login failed", &format!("{detail} {message}.")]);
        assert_no_secrets(&output_of(&run), &[jwt]);
    }
    // The variable is not set at all.
    let wd = login_workdir(&login_config(
        &bao,
        &jwt_block("jwt_env = \"CI_OIDC_TOKEN\""),
        "",
    ));
    plan_fails(
        &wd,
        &[
            "Error: Vault login failed",
            "Vault login with the jwt method at auth/jwt failed: environment variable CI_OIDC_TOKEN is not set.",
        ],
    );
    assert_no_login_tokens(&bao, "jwt", "after the refused logins");
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// OpenBao with `auth/kubernetes` pointed at `kube`, and a role `deployer` for the service
/// account `apps/deployer`.
fn kubernetes_world(kube: &KubeStandin) -> (OpenBao, String) {
    let (bao, pw) = bao_with_secrets(&["app/db"]);
    bao.enable_auth("kubernetes", "kubernetes");
    // The CA is required with disable_local_ca_jwt but unused over http (FINDINGS §6).
    bao.write(
        "auth/kubernetes/config",
        json!({"kubernetes_host": kube.url(), "disable_local_ca_jwt": true, "kubernetes_ca_cert": "x"}),
    );
    bao.write(
        "auth/kubernetes/role/deployer",
        json!({"bound_service_account_names": ["deployer"], "bound_service_account_namespaces": ["apps"],
               "token_policies": ["reader"], "token_ttl": "1h"}),
    );
    (bao, pw.into_iter().next().unwrap())
}

fn kubernetes_block(jwt_file: &Path) -> String {
    format!(
        "    auth_kubernetes {{\n      role     = \"deployer\"\n      jwt_file = {}\n    }}",
        q(&jwt_file.display().to_string())
    )
}

#[test]
fn kubernetes_service_account_token_logs_in_through_a_token_review() {
    let kube = KubeStandin::start();
    let (bao, pw) = kubernetes_world(&kube);
    let sa = ServiceAccount::new("apps", "deployer");
    let sa_jwt = kube.issue(&sa);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, &sa_jwt).unwrap();
    let wd = login_workdir(&login_config(&bao, &kubernetes_block(&file), ""));
    let places = plan_and_apply(&wd, &bao, "kubernetes", &pw);
    // One review per login: the plan's and the apply's, each vouching for our account.
    let reviews = kube.reviews();
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    for r in &reviews {
        assert_eq!(r.token, sa_jwt);
        assert_eq!(r.account.as_ref(), Some(&sa));
        assert_eq!(r.audiences, vec![DEFAULT_AUDIENCE.to_owned()]);
        // With no reviewer JWT configured, OpenBao authenticates with the token under review.
        assert_eq!(r.bearer.as_deref(), Some(sa_jwt.as_str()));
    }
    assert_no_secrets(&places, &[sa_jwt, pw]);
}

#[test]
fn kubernetes_token_the_cluster_rejects_fails_the_login() {
    let kube = KubeStandin::start();
    let (bao, _) = kubernetes_world(&kube);
    let sa = ServiceAccount::new("apps", "deployer");
    // Well-formed and for the right account, but the API server does not know it (a deleted pod).
    let sa_jwt = kube.issue(&sa);
    kube.invalidate(&sa_jwt);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, &sa_jwt).unwrap();
    let wd = login_workdir(&login_config(&bao, &kubernetes_block(&file), ""));
    let run = plan_fails(
        &wd,
        &[
            "Error: Vault login failed",
            "Vault login with the kubernetes method at auth/kubernetes failed: HTTP 403: permission denied.",
        ],
    );
    let reviews = kube.reviews();
    assert_eq!(reviews.len(), 1, "a refused login is not retried");
    assert_eq!(reviews[0].token, sa_jwt);
    assert_eq!(reviews[0].account, None);
    assert_no_login_tokens(&bao, "kubernetes", "after the refused login");
    assert_no_secrets(&output_of(&run), &[sa_jwt]);
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn a_token_and_a_login_method_together_are_refused_by_validate() {
    let wd = workdir();
    wd.file(
        "main.tf",
        &format!(
            r#"{REQUIRED}
provider "ccsecrets" {{
  vault {{
    address = "http://127.0.0.1:8200"
    token   = "s.not-used-at-all"
    auth_approle {{
      role_id        = "r"
      secret_id_file = "/dev/null"
    }}
  }}
}}

ephemeral "ccsecrets_vault_secret" "db" {{
  path = "app/db"
}}
"#
        ),
    );
    wd.run(&["validate", "-no-color"]).assert_fails_with(&[
        "Error: More than one Vault authentication method",
        "Configure exactly one way to authenticate to Vault; found `token`/`token_file` and `auth_approle`. Remove all but one.",
        "in provider \"ccsecrets\"",
    ]);
}

// ---------------------------------------------------------------------------------------------
// One provider process over time: the provider served in-process and driven over tfplugin6
// gRPC (the test kit's client), so the test controls how long the process lives. OpenBao is
// queried between steps, outside the async runtime.

/// A provider process in this one, configured to log in with AppRole role `ci`.
struct Process {
    rt: tokio::runtime::Runtime,
    p: InProcess,
}

impl Process {
    fn start(bao: &OpenBao, role_id: &str, secret_id: &str) -> Process {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut p = rt.block_on(InProcess::start());
        let config = Value::object([(
            "vault",
            Value::object([
                ("address", Value::from(bao.addr())),
                (
                    "auth_approle",
                    Value::object([
                        ("role_id", Value::from(role_id)),
                        ("secret_id", Value::from(secret_id)),
                    ]),
                ),
            ]),
        )]);
        assert_eq!(rt.block_on(p.configure(config)), vec![]);
        Process { rt, p }
    }

    /// Opens a vault_secret at `secret/<path>`: its password, or the diagnostics.
    fn read_password(&mut self, path: &str) -> Result<String, Vec<WireDiagnostic>> {
        let config = Value::object([("path", Value::from(path))]);
        let r = self
            .rt
            .block_on(self.p.open("ccsecrets_vault_secret", config));
        if !r.diagnostics.is_empty() {
            return Err(r.diagnostics);
        }
        let password = r.result.get("data").get("password").to_secret().unwrap();
        Ok(password.expose_secret().to_owned())
    }

    /// Opens a vault_secret at each of `paths` at the same time, on separate connections.
    fn read_passwords_at_once(&self, paths: &[&str]) -> Vec<Result<String, Vec<WireDiagnostic>>> {
        let opens = paths.iter().map(|path| {
            let mut client = self.p.client.clone();
            let config = Value::object([("path", Value::from(*path))]);
            async move {
                let r = open_with(&mut client, "ccsecrets_vault_secret", config).await;
                if !r.diagnostics.is_empty() {
                    return Err(r.diagnostics);
                }
                let password = r.result.get("data").get("password").to_secret().unwrap();
                Ok(password.expose_secret().to_owned())
            }
        });
        self.rt.block_on(futures_util::future::join_all(opens))
    }

    /// Shuts the process down as Terraform does, and waits for its cleanup.
    fn stop(self) {
        let Process { rt, p } = self;
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), p.stop()).await })
            .expect("the provider wound down in time");
    }
}

/// The one live login token of `auth/approle/login`.
fn the_login_token(bao: &OpenBao) -> serde_json::Value {
    let live = login_tokens(bao, "approle");
    assert_eq!(live.len(), 1, "exactly one login token: {live:?}");
    live.into_iter().next().unwrap()
}

#[test]
fn login_token_is_renewed_past_its_ttl_then_revoked_at_shutdown() {
    let (bao, pw) = bao_with_secrets(&["app/one", "app/two"]);
    // Tokens live 4 s unless renewed, up to a minute.
    let role_id = approle_role(&bao, "approle", "4s", "60s");
    let secret_id = approle_secret_id(&bao, "approle");
    let mut p = Process::start(&bao, &role_id, &secret_id);
    assert_eq!(
        uses_left(&bao, "approle", &secret_id),
        10,
        "configure does not log in"
    );

    assert_eq!(p.read_password("app/one").as_deref(), Ok(pw[0].as_str()));
    assert_eq!(uses_left(&bao, "approle", &secret_id), 9);
    let token = the_login_token(&bao);
    let accessor = token["accessor"].as_str().unwrap().to_owned();
    assert!(token["ttl"].as_i64().unwrap() <= 4, "{token}");

    // Well past two TTLs: only renewals keep the token alive.
    std::thread::sleep(Duration::from_secs(9));
    let renewed = lookup_accessor(&bao, &accessor).expect("the login token is still alive");
    let created = renewed["creation_time"].as_i64().unwrap();
    let last_renewal = renewed["last_renewal_time"]
        .as_i64()
        .expect("the token was renewed");
    assert!(
        last_renewal >= created + 4,
        "renewed after its first TTL would have ended: {renewed}"
    );

    // Still the same token, no second login.
    assert_eq!(p.read_password("app/two").as_deref(), Ok(pw[1].as_str()));
    assert_eq!(uses_left(&bao, "approle", &secret_id), 9, "no second login");
    assert_eq!(the_login_token(&bao)["accessor"], accessor.as_str());

    p.stop();
    assert!(
        lookup_accessor(&bao, &accessor).is_none(),
        "the login token was revoked at shutdown"
    );
    assert_no_login_tokens(&bao, "approle", "after shutdown");
}

#[test]
fn login_token_past_its_max_ttl_is_replaced_by_a_new_login() {
    let (bao, pw) = bao_with_secrets(&["app/one", "app/two"]);
    // Renewable only up to 6 s in all.
    let role_id = approle_role(&bao, "approle", "4s", "6s");
    let secret_id = approle_secret_id(&bao, "approle");
    let mut p = Process::start(&bao, &role_id, &secret_id);
    assert_eq!(p.read_password("app/one").as_deref(), Ok(pw[0].as_str()));
    let first = the_login_token(&bao)["accessor"]
        .as_str()
        .unwrap()
        .to_owned();

    std::thread::sleep(Duration::from_secs(8));
    assert!(
        lookup_accessor(&bao, &first).is_none(),
        "the first token reached its max TTL"
    );
    assert_eq!(p.read_password("app/two").as_deref(), Ok(pw[1].as_str()));
    assert_eq!(uses_left(&bao, "approle", &secret_id), 8, "one new login");
    let second = the_login_token(&bao)["accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);

    p.stop();
    assert_no_login_tokens(&bao, "approle", "after shutdown");
}

#[test]
fn login_token_revoked_behind_the_providers_back_is_replaced_at_the_next_read() {
    let (bao, pw) = bao_with_secrets(&["app/one", "app/two"]);
    let role_id = approle_role(&bao, "approle", "1h", "2h");
    let secret_id = approle_secret_id(&bao, "approle");
    let mut p = Process::start(&bao, &role_id, &secret_id);
    assert_eq!(p.read_password("app/one").as_deref(), Ok(pw[0].as_str()));
    let first = the_login_token(&bao)["accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    bao.write("auth/token/revoke-accessor", json!({ "accessor": first }));

    assert_eq!(p.read_password("app/two").as_deref(), Ok(pw[1].as_str()));
    assert_eq!(uses_left(&bao, "approle", &secret_id), 8);
    assert_ne!(the_login_token(&bao)["accessor"], first.as_str());

    p.stop();
    assert_no_login_tokens(&bao, "approle", "after shutdown");
}

#[test]
fn concurrent_first_reads_share_one_login() {
    let paths = [
        "app/1", "app/2", "app/3", "app/4", "app/5", "app/6", "app/7", "app/8",
    ];
    let (bao, pw) = bao_with_secrets(&paths);
    let role_id = approle_role(&bao, "approle", "1h", "2h");
    let secret_id = approle_secret_id(&bao, "approle");
    let p = Process::start(&bao, &role_id, &secret_id);
    let got = p.read_passwords_at_once(&paths);
    let want: Vec<Result<String, Vec<WireDiagnostic>>> = pw.into_iter().map(Ok).collect();
    assert_eq!(got, want);
    assert_eq!(
        uses_left(&bao, "approle", &secret_id),
        9,
        "one login for all"
    );
    the_login_token(&bao);
    p.stop();
    assert_no_login_tokens(&bao, "approle", "after shutdown");
}
