//! AWS Secrets Manager as the store, end to end: real Terraform, moto's server standing in
//! for AWS (Secrets Manager and STS, through the official SDK), the Genesys stand-in. Faults
//! moto cannot produce (throttling, access denied) come from a proxy in front of it.

use ccsecrets_testkit::aws::{self, Moto, ThrottlingProxy};
use ccsecrets_testkit::genesys::GenesysStandin;
use ccsecrets_testkit::terraform::{Workdir, assert_no_secrets};
use serde_json::json;

use crate::support::*;

/// Credentials for one Genesys OAuth client, held in moto.
struct AwsWorld {
    moto: &'static Moto,
    standin: GenesysStandin,
    name: String,
    client_id: String,
    client_secret: String,
    org_id: String,
}

impl AwsWorld {
    fn new(tags: &[(&str, &str)]) -> AwsWorld {
        aws::require_moto();
        let moto = Moto::shared();
        let standin = GenesysStandin::start();
        let client_id = format!("client-{}", fastrand::u32(..));
        let client_secret = secret_value("awssecret");
        let org_id = format!("org-{}", fastrand::u32(..));
        standin.add_client(&client_id, &client_secret, &org_id);
        let name = aws::unique_name("genesys/prod/pipeline");
        moto.create_secret(&name, &genesys_credential(&client_id, &client_secret), tags);
        AwsWorld {
            moto,
            standin,
            name,
            client_id,
            client_secret,
            org_id,
        }
    }

    /// A workdir whose provider finds moto through the AWS SDK's environment, static keys.
    fn workdir(&self, endpoint: &str) -> Workdir {
        let mut wd = workdir();
        for var in aws::CLEAR_ENV {
            wd.unset(var);
        }
        for (k, v) in aws::static_credentials_env(endpoint) {
            wd.env(k, &v);
        }
        wd.env(ccsecrets_testkit::consumer::API_URL_ENV, self.standin.url());
        wd
    }

    /// A configuration: `store` inside the provider block, a Genesys token at this secret
    /// with `extra` lines, used by the consumer.
    fn config(&self, store: &str, extra: &str) -> String {
        genesys_consumer_config(store, &self.name, self.standin.url(), extra)
    }

    /// Rotates to a credential Genesys refuses: `AWSCURRENT` moves to it, `AWSPREVIOUS` to the
    /// good one. Returns (good version, bad version).
    fn rotate_to_bad(&self) -> (String, String) {
        let good = self.current_version();
        let bad = self.moto.put_secret_value(
            &self.name,
            &genesys_credential(&self.client_id, "not-the-secret"),
        );
        (good, bad)
    }

    fn current_version(&self) -> String {
        self.moto
            .stages(&self.name)
            .into_iter()
            .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
            .map(|(id, _)| id)
            .expect("a current version")
    }
}

const STORE: &str = "  aws_secretsmanager {\n    region = \"us-east-1\"\n  }";

#[test]
fn aws_held_credentials_mint_a_token_that_reaches_the_consumer_and_nothing_leaks() {
    let w = AwsWorld::new(&[("environment", "prod")]);
    let mut wd = w.workdir(&w.moto.endpoint());
    // The committed example, pointed at moto's region, this secret and the stand-in.
    let hcl = example("stores/aws-secrets-manager/main.tf")
        .replace("region = \"eu-west-1\"", "region = \"us-east-1\"")
        .replace("\"genesys/{environment}/pipeline\"", &q(&w.name));
    store_example_round_trip(
        &mut wd,
        &hcl,
        &w.standin,
        &w.client_id,
        &w.org_id,
        std::slice::from_ref(&w.client_secret),
    );
}

#[test]
fn a_rejected_awscurrent_falls_back_to_awsprevious_with_a_warning_naming_both() {
    let w = AwsWorld::new(&[]);
    let (good, bad) = w.rotate_to_bad();
    let wd = w.workdir(&w.moto.endpoint());
    wd.file("main.tf", &w.config(STORE, ""));
    let plan = wd.plan();
    plan.assert_ok();
    let wanted = format!(
        "rejected the credential in version {bad} (AWSCURRENT) of {} (invalid_client), so version {good} (AWSPREVIOUS) was used",
        w.name
    );
    assert!(
        plan.folded().contains(&wanted),
        "no {wanted:?} in:\n{}",
        plan.output()
    );
    assert_eq!(w.standin.tokens_issued(&w.client_id), 1);

    // Pinned: the stage or the id is read as asked, without any fallback.
    wd.file(
        "main.tf",
        &w.config(STORE, "  version_stage = \"AWSPREVIOUS\""),
    );
    let run = wd.plan();
    run.assert_ok();
    assert!(
        !run.output().contains("Used the previous"),
        "{}",
        run.output()
    );
    wd.file(
        "main.tf",
        &w.config(STORE, &format!("  version_id = {}", q(&good))),
    );
    wd.plan().assert_ok();
    wd.file(
        "main.tf",
        &w.config(STORE, &format!("  version_id = {}", q(&bad))),
    );
    wd.plan()
        .assert_fails_with(&["Genesys Cloud rejected the credentials", &bad]);
    assert_eq!(w.standin.tokens_issued(&w.client_id), 3);
}

#[test]
fn vault_settings_with_aws_and_two_stores_are_errors_on_the_attribute() {
    let w = AwsWorld::new(&[]);
    let wd = w.workdir(&w.moto.endpoint());
    for (extra, wanted) in [
        (
            "  mount = \"secret\"",
            "`mount` does not apply to AWS Secrets Manager",
        ),
        (
            "  version = 2",
            "`version` does not apply to AWS Secrets Manager",
        ),
    ] {
        wd.file("main.tf", &w.config(STORE, extra));
        let run = wd.plan();
        run.assert_fails_with(&[wanted]);
        assert!(
            run.folded().contains(extra.trim()),
            "the diagnostic points at the attribute: {}",
            run.output()
        );
    }
    wd.file(
        "main.tf",
        &w.config(
            &format!("{STORE}\n  vault {{\n    address = \"http://127.0.0.1:1\"\n  }}"),
            "",
        ),
    );
    wd.plan().assert_fails_with(&[
        "More than one secret store",
        "`vault` and `aws_secretsmanager`",
    ]);
    assert_eq!(w.standin.token_requests(&w.client_id), 0);
}

#[test]
fn the_environment_tag_guards_aws_secrets_and_bad_values_are_explained() {
    let w = AwsWorld::new(&[("environment", "staging")]);
    let wd = w.workdir(&w.moto.endpoint());
    wd.file(
        "main.tf",
        &w.config(&format!("  environment = \"prod\"\n{STORE}"), ""),
    );
    wd.plan()
        .assert_fails_with(&["Secret belongs to another environment", "\"staging\""]);
    // A value that is not a JSON object: the shape is explained, the value never shown.
    let plain = aws::unique_name("plain");
    w.moto.create_secret(&plain, "hunter2-not-json", &[]);
    wd.file(
        "main.tf",
        &w.config(STORE, "").replace(&q(&w.name), &q(&plain)),
    );
    let run = wd.plan();
    run.assert_fails_with(&["Secret is not a JSON object", "plain text"]);
    assert!(!run.output().contains("hunter2"));
    // A missing secret names the store, the secret and the region.
    wd.file(
        "main.tf",
        &w.config(STORE, "")
            .replace(&q(&w.name), "\"no-such-secret\""),
    );
    wd.plan().assert_fails_with(&[
        "Secret not found in AWS Secrets Manager",
        "\"no-such-secret\"",
        "us-east-1",
    ]);
    assert_eq!(w.standin.token_requests(&w.client_id), 0);
}

#[test]
fn web_identity_through_sts_with_no_static_keys() {
    let w = AwsWorld::new(&[]);
    let role = w.moto.create_role(&aws::unique_name("cc-deploy"));
    // Plainly on loopback, then behind TLS with a private CA (AWS_CA_BUNDLE): STS is called
    // through the same client as Secrets Manager, so it trusts the same CA.
    for tls in [false, true] {
        let proxy = if tls {
            ThrottlingProxy::start_tls(&w.moto.endpoint())
        } else {
            ThrottlingProxy::start(&w.moto.endpoint())
        };
        let mut wd = w.workdir(&proxy.endpoint());
        for var in aws::CLEAR_ENV {
            wd.unset(var);
        }
        wd.file(
            "oidc-token",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmNjIn0.c2ln",
        );
        let token_file = wd.path().join("oidc-token");
        for (k, v) in aws::web_identity_env(&proxy.endpoint(), &role, &token_file) {
            wd.env(k, &v);
        }
        if tls {
            wd.env("AWS_CA_BUNDLE", &proxy.ca_file().display().to_string());
        }
        wd.file("main.tf", &w.config(STORE, ""));
        wd.plan().assert_ok();
        let calls = proxy.targets();
        assert_eq!(
            calls.first().map(String::as_str),
            Some("AssumeRoleWithWebIdentity"),
            "credentials came from STS first (tls: {tls}): {calls:?}"
        );
        assert_eq!(proxy.count("GetSecretValue"), 1, "{calls:?}");
        assert_eq!(proxy.count("DescribeSecret"), 1, "{calls:?}");
        if tls {
            // Without the CA, STS's certificate is refused, and the message says what to set.
            wd.unset("AWS_CA_BUNDLE");
            wd.plan().assert_fails_with(&[
                "No AWS credentials",
                "invalid peer certificate",
                "`ca_cert_file` or AWS_CA_BUNDLE",
            ]);
            assert_eq!(
                proxy.count("AssumeRoleWithWebIdentity"),
                1,
                "no request got through"
            );
        }
    }
    assert_eq!(w.standin.tokens_issued(&w.client_id), 2);
}

#[test]
fn throttling_is_retried_and_access_denied_names_the_permission() {
    let w = AwsWorld::new(&[]);
    let proxy = ThrottlingProxy::start(&w.moto.endpoint());
    let wd = w.workdir(&proxy.endpoint());
    wd.file("main.tf", &w.config(STORE, ""));
    proxy.throttle_next_for("GetSecretValue", 2);
    wd.plan().assert_ok();
    assert_eq!(
        proxy.count("GetSecretValue"),
        3,
        "two throttled, one served"
    );
    assert_eq!(proxy.pending_faults(), 0);

    // A 503 is retried too.
    proxy.clear();
    proxy.fail_next_for("GetSecretValue", 1, 503);
    wd.plan().assert_ok();
    assert_eq!(proxy.count("GetSecretValue"), 2, "one 503, one served");

    // Retries are bounded by max_retries; what is left is named as throttling.
    proxy.clear();
    proxy.throttle_next_for("GetSecretValue", 10);
    wd.file(
        "main.tf",
        &w.config(&format!("  max_retries = 1\n{STORE}"), ""),
    );
    wd.plan()
        .assert_fails_with(&["AWS Secrets Manager is throttling requests", "max_retries"]);
    assert_eq!(proxy.count("GetSecretValue"), 2, "one try and one retry");

    proxy.clear();
    proxy.deny_next("GetSecretValue", 1);
    wd.file("main.tf", &w.config(STORE, ""));
    wd.plan().assert_fails_with(&[
        "AWS denied access",
        "secretsmanager:GetSecretValue",
        &w.name,
    ]);
    assert_eq!(
        proxy.count("GetSecretValue"),
        1,
        "access denied is not retried"
    );

    // Every SDK request goes through ccsecrets's client: an answer over the 1 MiB limit is
    // cut off and not retried.
    proxy.clear();
    proxy.inject(Some("GetSecretValue"), 1, aws::AwsFault::Oversize);
    wd.plan()
        .assert_fails_with(&["Answer from AWS too large", "1 MiB limit", "endpoint"]);
    assert_eq!(proxy.count("GetSecretValue"), 1, "not retried");
    assert_eq!(w.standin.tokens_issued(&w.client_id), 2);
}

#[test]
fn a_private_ca_is_trusted_from_aws_ca_bundle_or_ca_cert_file_and_nothing_else() {
    // Secrets Manager behind TLS with a private CA: a TLS-inspecting proxy or a private
    // endpoint, as corporate networks have.
    let w = AwsWorld::new(&[]);
    let proxy = ThrottlingProxy::start_tls(&w.moto.endpoint());
    assert!(proxy.endpoint().starts_with("https://localhost:"));
    let ca = proxy.ca_file().display().to_string();
    let mut wd = w.workdir(&proxy.endpoint());
    wd.file("main.tf", &w.config(STORE, ""));
    // Not trusted by default: no request gets through, and the message says why.
    wd.plan().assert_fails_with(&[
        "Cannot reach AWS Secrets Manager",
        "invalid peer certificate",
        "`ca_cert_file` or AWS_CA_BUNDLE",
    ]);
    assert_eq!(proxy.count("GetSecretValue"), 0);

    // AWS_CA_BUNDLE, as the AWS CLI reads it.
    wd.env("AWS_CA_BUNDLE", &ca);
    wd.plan().assert_ok();
    assert_eq!(proxy.count("GetSecretValue"), 1);

    // Or the block's `ca_cert_file`.
    wd.unset("AWS_CA_BUNDLE");
    let with_file = |file: &str| {
        format!(
            "  aws_secretsmanager {{\n    region       = \"us-east-1\"\n    ca_cert_file = {}\n  }}",
            q(file)
        )
    };
    wd.file("main.tf", &w.config(&with_file(&ca), ""));
    wd.plan().assert_ok();
    assert_eq!(proxy.count("GetSecretValue"), 2);

    // A file that holds no certificate cannot be trusted: an error on the attribute.
    wd.file("not-a-ca.pem", "just text\n");
    let not_pem = wd.path().join("not-a-ca.pem").display().to_string();
    wd.file("main.tf", &w.config(&with_file(&not_pem), ""));
    let run = wd.plan();
    run.assert_fails_with(&["Invalid CA file", "does not contain PEM certificates"]);
    assert!(run.folded().contains("ca_cert_file"), "{}", run.output());

    // A file that cannot be read is an error on the attribute.
    wd.file("main.tf", &w.config(&with_file("/nonexistent/ca.pem"), ""));
    let run = wd.plan();
    run.assert_fails_with(&["Cannot read the CA file", "/nonexistent/ca.pem"]);
    assert!(run.folded().contains("ca_cert_file"), "{}", run.output());
    assert_eq!(w.standin.tokens_issued(&w.client_id), 2);
}

#[test]
fn the_metadata_data_source_shows_aws_versions_stages_and_tags() {
    let w = AwsWorld::new(&[("environment", "prod"), ("team", "cc")]);
    let (good, bad) = w.rotate_to_bad();
    let wd = w.workdir(&w.moto.endpoint());
    wd.file(
        "main.tf",
        &format!(
            "{REQUIRED}\nprovider \"ccsecrets\" {{\n{STORE}\n}}\n\
             data \"ccsecrets_vault_secret_metadata\" \"m\" {{\n  path = {}\n}}\n\
             output \"m\" {{\n  value = data.ccsecrets_vault_secret_metadata.m\n}}\n",
            q(&w.name)
        ),
    );
    wd.apply().assert_ok();
    let out = wd.run(&["output", "-json", "m"]);
    out.assert_ok();
    let m: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(m["current_version_id"], json!(bad));
    assert_eq!(m["version_states"][&bad], json!("AWSCURRENT"));
    assert_eq!(m["version_states"][&good], json!("AWSPREVIOUS"));
    assert_eq!(m["custom_metadata"]["team"], json!("cc"));
    assert_eq!(m["mount"], serde_json::Value::Null);
    assert_eq!(m["current_version"], serde_json::Value::Null);
    assert!(
        m["created_time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{m}"
    );
    assert_no_secrets(&wd.persisted(), std::slice::from_ref(&w.client_secret));
}

#[test]
fn a_profile_from_the_shared_files_and_an_assumed_role() {
    let w = AwsWorld::new(&[]);
    let proxy = ThrottlingProxy::start(&w.moto.endpoint());
    let mut wd = w.workdir(&proxy.endpoint());
    // No keys in the environment: they come from the profile in the shared files.
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        wd.unset(var);
    }
    wd.file(
        "aws/credentials",
        "[default]\naws_access_key_id = wrongkey\naws_secret_access_key = wrong\n\n[cc-deploy]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    );
    wd.file("aws/config", "[profile cc-deploy]\nregion = us-east-1\n");
    let dir = wd.path().join("aws");
    wd.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        &dir.join("credentials").display().to_string(),
    )
    .env("AWS_CONFIG_FILE", &dir.join("config").display().to_string());
    let role = w.moto.create_role(&aws::unique_name("cc-read"));
    // The region comes from the profile (nothing else names one, so a run that did not read
    // the profile fails with "No AWS region"); the role is assumed on top of its keys.
    wd.file(
        "main.tf",
        &w.config(
            &format!(
                "  aws_secretsmanager {{\n    profile  = \"cc-deploy\"\n    role_arn = {}\n  }}",
                q(&role)
            ),
            "",
        ),
    );
    wd.plan().assert_ok();
    assert_eq!(w.standin.tokens_issued(&w.client_id), 1);
    let calls = proxy.targets();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("AssumeRole"),
        "the role was assumed first: {calls:?}"
    );
    assert_eq!(proxy.count("GetSecretValue"), 1, "{calls:?}");
}
