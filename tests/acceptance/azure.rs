//! Azure Key Vault as the store, end to end: real Terraform and the official Azure SDK for
//! Rust against the test kit's stand-in of Key Vault and Microsoft Entra ID (TLS with a
//! throwaway CA, the bearer challenge, api-version, paging, RBAC, throttling, the App Service
//! managed identity endpoint), a stand-in `az` for Azure CLI sign-in, and the Genesys stand-in.

use ccsecrets_testkit::azure::AzureStandin;
use ccsecrets_testkit::genesys::GenesysStandin;
use ccsecrets_testkit::terraform::{Workdir, assert_no_secrets};
use serde_json::json;

use crate::support::*;

/// Credentials for one Genesys OAuth client, held in the Key Vault stand-in, and an Entra
/// application allowed to read them.
struct AzureWorld {
    azure: AzureStandin,
    genesys: GenesysStandin,
    name: String,
    app_id: String,
    app_secret: String,
    client_id: String,
    client_secret: String,
    org_id: String,
}

impl AzureWorld {
    fn new(tags: &[(&str, &str)]) -> AzureWorld {
        let app_id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            fastrand::u32(..),
            fastrand::u64(..1 << 48)
        );
        let app_secret = secret_value("entra");
        let azure = AzureStandin::with_client(&app_id, &app_secret);
        let genesys = GenesysStandin::start();
        let client_id = format!("client-{}", fastrand::u32(..));
        let client_secret = secret_value("kvsecret");
        let org_id = format!("org-{}", fastrand::u32(..));
        genesys.add_client(&client_id, &client_secret, &org_id);
        let name = "genesys-prod-pipeline".to_owned();
        azure.set_secret(&name, &genesys_credential(&client_id, &client_secret), tags);
        AzureWorld {
            azure,
            genesys,
            name,
            app_id,
            app_secret,
            client_id,
            client_secret,
            org_id,
        }
    }

    /// A workdir whose provider signs in with the application's client secret from the
    /// environment (the usual AZURE_* variables).
    fn workdir(&self) -> Workdir {
        let mut wd = workdir();
        for var in [
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST",
            "AZURE_KEYVAULT_URL",
        ] {
            wd.unset(var);
        }
        wd.env("AZURE_TENANT_ID", self.azure.tenant())
            .env("AZURE_CLIENT_ID", &self.app_id)
            .env("AZURE_CLIENT_SECRET", &self.app_secret)
            .env(ccsecrets_testkit::consumer::API_URL_ENV, self.genesys.url());
        wd
    }

    /// The `azure_keyvault` block for this stand-in, with `extra` lines.
    fn store(&self, extra: &str) -> String {
        format!(
            "  azure_keyvault {{\n    vault_url      = {}\n    authority_host = {}\n    ca_cert_file   = {}\n{extra}\n  }}",
            q(&self.azure.vault_url()),
            q(&self.azure.authority_host()),
            q(&self.azure.ca_file().display().to_string())
        )
    }

    /// A configuration: `settings` inside the provider block, a Genesys token at `path` with
    /// `extra` lines, used by the consumer.
    fn config(&self, settings: &str, path: &str, extra: &str) -> String {
        genesys_consumer_config(settings, path, self.genesys.url(), extra)
    }

    fn simple(&self, extra: &str) -> String {
        self.config(&self.store(""), &self.name, extra)
    }
}

#[test]
fn key_vault_credentials_mint_a_token_that_reaches_the_consumer_and_nothing_leaks() {
    let w = AzureWorld::new(&[("environment", "prod")]);
    let mut wd = w.workdir();
    // The committed example (a default Vault configuration and an Azure alias), pointed at
    // the stand-ins.
    let hcl = example("stores/azure-key-vault/main.tf").replace(
        "vault_url = \"https://cc-prod.vault.azure.net\"",
        &format!(
            "vault_url = {}\n    authority_host = {}\n    ca_cert_file = {}",
            q(&w.azure.vault_url()),
            q(&w.azure.authority_host()),
            q(&w.azure.ca_file().display().to_string())
        ),
    );
    let places = store_example_round_trip(
        &mut wd,
        &hcl,
        &w.genesys,
        &w.client_id,
        &w.org_id,
        &[w.client_secret.clone(), w.app_secret.clone()],
    );
    // Entra ID's tokens are secrets too; the vault was read once per Terraform phase.
    assert!(
        w.azure.tokens_issued(&w.app_id) >= 1,
        "signed in with Entra ID"
    );
    assert_eq!(w.azure.reads(&w.name), 2, "one read per Terraform phase");
    assert_no_secrets(&places, &w.azure.issued_tokens());
}

#[test]
fn a_rejected_current_version_falls_back_to_the_newest_older_enabled_unexpired_one() {
    let w = AzureWorld::new(&[]);
    let good = w.azure.versions(&w.name)[0].clone();
    let expired = w.azure.set_secret(
        &w.name,
        &genesys_credential(&w.client_id, &w.client_secret),
        &[],
    );
    w.azure.set_expiry(&w.name, &expired, 1_600_000_000);
    let disabled = w.azure.set_secret(
        &w.name,
        &genesys_credential(&w.client_id, &w.client_secret),
        &[],
    );
    w.azure.set_enabled(&w.name, &disabled, false);
    let bad = w.azure.set_secret(
        &w.name,
        &genesys_credential(&w.client_id, "not-the-secret"),
        &[],
    );
    let wd = w.workdir();
    wd.file("main.tf", &w.simple(""));
    let run = wd.plan();
    run.assert_ok();
    for wanted in [
        "Used the previous credential version".to_owned(),
        format!(
            "rejected the credential in version {bad} of genesys-prod-pipeline (invalid_client), so version {good} was used"
        ),
    ] {
        assert!(
            run.folded().contains(&wanted),
            "no {wanted:?} in:\n{}",
            run.output()
        );
    }
    assert_eq!(w.genesys.tokens_issued(&w.client_id), 1);
    assert!(w.azure.list_pages(&w.name) >= 1, "the versions were listed");

    // Pinned: read as asked, no fallback; a disabled version has its own diagnostic.
    wd.file(
        "main.tf",
        &w.simple(&format!("  version_id = {}", q(&good))),
    );
    wd.plan().assert_ok();
    wd.file("main.tf", &w.simple(&format!("  version_id = {}", q(&bad))));
    wd.plan()
        .assert_fails_with(&["Genesys Cloud rejected the credentials", &bad]);
    wd.file(
        "main.tf",
        &w.simple(&format!("  version_id = {}", q(&disabled))),
    );
    wd.plan().assert_fails_with(&["Secret version is disabled"]);
    // Vault's and AWS's settings are errors on the attribute.
    for (extra, wanted) in [
        (
            "  version_stage = \"AWSPREVIOUS\"",
            "`version_stage` does not apply to Azure Key Vault",
        ),
        (
            "  mount = \"secret\"",
            "`mount` does not apply to Azure Key Vault",
        ),
    ] {
        wd.file("main.tf", &w.simple(extra));
        wd.plan().assert_fails_with(&[wanted]);
    }
    wd.file(
        "main.tf",
        &w.config(&w.store(""), "genesys/prod/pipeline", ""),
    );
    wd.plan()
        .assert_fails_with(&["Invalid secret name", "letters, digits and `-`"]);
}

#[test]
fn workload_identity_signs_in_with_a_federated_token_file() {
    let w = AzureWorld::new(&[]);
    let fed_app = "7d3f5c1a-0000-4000-8000-00000000f00d";
    let (issuer, subject) = (
        "https://token.actions.githubusercontent.com",
        "repo:cc/infra:environment:prod",
    );
    w.azure
        .add_federated_client(w.azure.tenant(), fed_app, issuer, subject);
    w.azure.grant_secrets_user(fed_app);
    let token_file = w.azure.federated_token_file(issuer, subject, 600);
    let mut wd = w.workdir();
    wd.unset("AZURE_CLIENT_SECRET")
        .env("AZURE_CLIENT_ID", fed_app)
        .env(
            "AZURE_FEDERATED_TOKEN_FILE",
            &token_file.display().to_string(),
        );
    wd.file("main.tf", &w.simple(""));
    wd.plan().assert_ok();
    assert_eq!(w.azure.tokens_issued(fed_app), 1);
    assert_eq!(
        w.azure.token_requests(&w.app_id),
        0,
        "no client secret was used"
    );
    assert_eq!(w.genesys.tokens_issued(&w.client_id), 1);

    // A token file for another subject is refused by Entra ID, and said so; the assertion
    // that was sent never shows.
    let wrong = w
        .azure
        .federated_token_file(issuer, "repo:cc/other:ref:refs/heads/main", 600);
    wd.env("AZURE_FEDERATED_TOKEN_FILE", &wrong.display().to_string());
    let run = wd.plan();
    run.assert_fails_with(&[
        "Azure sign-in failed",
        "Microsoft Entra ID refused the sign-in (HTTP 400, invalid_request): AADSTS70021",
    ]);
    let assertion = std::fs::read_to_string(&wrong).unwrap();
    let out = run.output();
    assert!(
        !out.contains(assertion.trim()) && !out.contains("invalid type"),
        "{out}"
    );
}

#[test]
fn a_managed_identity_and_the_azure_cli_sign_in_with_no_secret_configured() {
    let w = AzureWorld::new(&[]);
    let (system, user) = (
        "5a5a5a5a-0000-4000-8000-0000000000a1",
        "5a5a5a5a-0000-4000-8000-0000000000a2",
    );
    w.azure.assign_managed_identity(system, true);
    w.azure.assign_managed_identity(user, false);
    w.azure.grant_secrets_user(system);
    w.azure.grant_secrets_user(user);
    // App Service (or Container Apps, Functions): the platform sets IDENTITY_ENDPOINT and
    // IDENTITY_HEADER, and with no client secret or token file the managed identity is chosen
    // by itself. Its endpoint is https here only because the stand-in serves TLS.
    let mut wd = w.workdir();
    wd.unset("AZURE_CLIENT_SECRET")
        .unset("AZURE_CLIENT_ID")
        .env("IDENTITY_ENDPOINT", &w.azure.identity_endpoint())
        .env("IDENTITY_HEADER", w.azure.identity_header());
    wd.file("main.tf", &w.simple(""));
    wd.plan().assert_ok();
    assert_eq!(
        w.azure.tokens_issued(system),
        1,
        "the system-assigned identity"
    );
    assert_eq!(
        w.azure.token_requests(&w.app_id),
        0,
        "no client secret used"
    );

    // A user-assigned identity, picked by its client id.
    wd.env("AZURE_CLIENT_ID", user);
    wd.plan().assert_ok();
    assert_eq!(w.azure.tokens_issued(user), 1);

    // An identity the resource does not have is a sign-in failure, not Key Vault's refusal.
    wd.env("AZURE_CLIENT_ID", "5a5a5a5a-0000-4000-8000-0000000000ff");
    let refused = wd.plan();
    refused.assert_fails_with(&[
        "Azure sign-in failed",
        "not been assigned to this resource",
        "user-assigned",
    ]);
    assert!(
        !refused.output().contains(w.azure.identity_header()),
        "the endpoint's secret header is never shown"
    );
    assert!(
        !refused.output().contains("non-transport error"),
        "the SDK's retry wording is dropped; the cause is what is shown"
    );

    // A laptop: nothing configured, so the signed-in Azure CLI is asked for a token.
    let az = w.azure.azure_cli(&w.app_id);
    let path = format!(
        "{}:{}",
        az.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    wd.unset("IDENTITY_ENDPOINT")
        .unset("IDENTITY_HEADER")
        .unset("AZURE_CLIENT_ID")
        .unset("AZURE_TENANT_ID")
        .env("PATH", &path);
    wd.plan().assert_ok();
    assert_eq!(AzureStandin::azure_cli_runs(az.path()), 1, "one az call");
    assert_eq!(
        w.azure.token_requests(&w.app_id),
        0,
        "no client secret used"
    );
    assert_eq!(w.genesys.tokens_issued(&w.client_id), 3);

    // `tenant_id` is passed on to the CLI; a tenant it is not signed in to fails with its words.
    wd.env("AZURE_TENANT_ID", "contoso.onmicrosoft.com");
    wd.plan()
        .assert_fails_with(&["Azure sign-in failed", "AADSTS90002", "az login"]);
}

#[test]
fn access_errors_throttling_and_the_tag_guard_are_explained() {
    let w = AzureWorld::new(&[("environment", "staging")]);
    let mut wd = w.workdir();
    wd.file(
        "main.tf",
        &w.config(
            &format!("  environment = \"prod\"\n{}", w.store("")),
            &w.name,
            "",
        ),
    );
    wd.plan()
        .assert_fails_with(&["Secret belongs to another environment", "\"staging\""]);

    // Throttled twice, then served.
    w.azure
        .set_tags(&w.name, &w.azure.versions(&w.name)[0], &[]);
    wd.file("main.tf", &w.simple(""));
    w.azure.throttle_next(2);
    wd.plan().assert_ok();
    assert_eq!(w.azure.throttled(), 2);
    // A 503 is retried too: the read is asked for twice.
    let reads = w.azure.reads(&w.name);
    w.azure.fail_next(1, 503);
    wd.plan().assert_ok();
    assert_eq!(
        w.azure.reads(&w.name),
        reads + 1,
        "one read served after the 503"
    );

    // Not found, and no role on the vault.
    wd.file("main.tf", &w.config(&w.store(""), "no-such-secret", ""));
    wd.plan()
        .assert_fails_with(&["Secret not found in Azure Key Vault", "\"no-such-secret\""]);
    w.azure.revoke_grant(&w.app_id);
    wd.file("main.tf", &w.simple(""));
    wd.plan()
        .assert_fails_with(&["Azure denied access", "Key Vault Secrets User"]);

    // A wrong client secret: Entra ID's refusal in its own words (HTTP status, AADSTS code,
    // the description's first line), not a JSON decoding error; never the secret itself, nor
    // the trace lines after the first.
    wd.env("AZURE_CLIENT_SECRET", "wrong-secret-value-123");
    let run = wd.plan();
    run.assert_fails_with(&[
        "Azure sign-in failed",
        "Microsoft Entra ID refused the sign-in (HTTP 401, invalid_client): AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID",
    ]);
    let out = run.output();
    for garble in [
        "invalid type",
        "Trace ID",
        "Correlation ID",
        "wrong-secret-value-123",
    ] {
        assert!(!out.contains(garble), "{garble:?} in {out}");
    }

    // An application of another tenant gets tokens the vault refuses (401): ccsecrets signs
    // in afresh once, and then reports the refusal instead of looping.
    let foreign = "0f0f0f0f-0000-4000-8000-00000000f0f0";
    w.azure
        .add_client("other-tenant", foreign, "foreign-secret-value");
    w.azure.grant_secrets_user(foreign);
    wd.env("AZURE_TENANT_ID", "other-tenant")
        .env("AZURE_CLIENT_ID", foreign)
        .env("AZURE_CLIENT_SECRET", "foreign-secret-value");
    let run = wd.plan();
    run.assert_fails_with(&["Azure Key Vault refused the sign-in", "vault's tenant"]);
    assert_eq!(
        w.azure.tokens_issued(foreign),
        2,
        "the first sign-in and one fresh one"
    );
    assert!(!run.output().contains("foreign-secret-value"));
    assert_eq!(w.genesys.tokens_issued(&w.client_id), 2);
}

#[test]
fn the_metadata_data_source_shows_key_vault_versions_states_and_tags() {
    let w = AzureWorld::new(&[("environment", "prod"), ("team", "cc")]);
    let first = w.azure.versions(&w.name)[0].clone();
    let second = w.azure.set_secret(
        &w.name,
        &genesys_credential(&w.client_id, "rotated"),
        &[("team", "cc")],
    );
    // Created a minute apart (set in one second, they would tie: the next test covers that).
    w.azure.set_created(&w.name, &first, 1_760_000_000);
    w.azure.set_created(&w.name, &second, 1_760_000_060);
    w.azure.set_enabled(&w.name, &first, false);
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &format!(
            "{REQUIRED}\nprovider \"ccsecrets\" {{\n{}\n}}\n\
             data \"ccsecrets_vault_secret_metadata\" \"m\" {{\n  path = {}\n}}\n\
             output \"m\" {{\n  value = data.ccsecrets_vault_secret_metadata.m\n}}\n",
            w.store(""),
            q(&w.name)
        ),
    );
    wd.apply().assert_ok();
    let out = wd.run(&["output", "-json", "m"]);
    out.assert_ok();
    let m: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(m["current_version_id"], json!(second));
    assert_eq!(m["version_states"][&second], json!("enabled"));
    assert_eq!(m["version_states"][&first], json!("disabled"));
    assert_eq!(m["custom_metadata"]["team"], json!("cc"));
    assert_eq!(m["mount"], serde_json::Value::Null);
    assert!(
        m["version_created_times"][&first]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{m}"
    );
    assert_no_secrets(
        &wd.persisted(),
        &[w.client_secret.clone(), "rotated".to_owned()],
    );
}

#[test]
fn the_metadata_data_source_never_asks_for_a_value_and_needs_only_list() {
    let w = AzureWorld::new(&[("environment", "prod")]);
    let first = w.azure.versions(&w.name)[0].clone();
    let second = w.azure.set_secret(
        &w.name,
        &genesys_credential(&w.client_id, "rotated"),
        &[("environment", "prod"), ("team", "cc")],
    );
    let third = w.azure.set_secret(
        &w.name,
        &genesys_credential(&w.client_id, "rotated-again"),
        &[("environment", "prod"), ("team", "ops")],
    );
    // The two newest versions were created within the same second: the greater version id
    // counts as the newer (the documented tie-break), wherever the list puts it.
    let created = 1_760_000_000;
    w.azure.set_created(&w.name, &first, created - 60);
    w.azure.set_created(&w.name, &second, created);
    w.azure.set_created(&w.name, &third, created);
    let (newer, older) = if second > third {
        (&second, &third)
    } else {
        (&third, &second)
    };
    let team = if *newer == second { "cc" } else { "ops" };
    // An identity allowed to list versions but not to get values (Key Vault Reader).
    w.azure.grant_reader(&w.app_id);
    let wd = w.workdir();
    wd.file(
        "main.tf",
        &format!(
            "{REQUIRED}\nprovider \"ccsecrets\" {{\n{}\n}}\n\
             data \"ccsecrets_vault_secret_metadata\" \"m\" {{\n  path = {}\n}}\n\
             output \"m\" {{\n  value = data.ccsecrets_vault_secret_metadata.m\n}}\n",
            w.store(""),
            q(&w.name)
        ),
    );
    wd.apply().assert_ok();
    assert_eq!(
        w.azure.value_requests(&w.name),
        0,
        "the data source asked Key Vault for a value"
    );
    assert!(w.azure.list_pages(&w.name) >= 1);
    let out = wd.run(&["output", "-json", "m"]);
    out.assert_ok();
    let m: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(m["current_version_id"], json!(newer), "{m}");
    assert_eq!(m["custom_metadata"]["team"], json!(team), "{m}");
    assert_eq!(m["custom_metadata"]["environment"], json!("prod"), "{m}");
    for v in [&first, older, newer] {
        assert_eq!(m["version_states"][v], json!("enabled"), "{m}");
    }
    assert_eq!(
        m["version_created_times"][newer], m["version_created_times"][older],
        "{m}"
    );
    assert_eq!(m["created_time"], m["version_created_times"][&first], "{m}");
    assert_no_secrets(
        &wd.persisted(),
        &[
            w.client_secret.clone(),
            "rotated".to_owned(),
            "rotated-again".to_owned(),
        ],
    );
}
