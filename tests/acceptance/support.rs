//! Shared pieces of the acceptance tests: the binaries under test, the committed examples
//! (used as fixtures so they cannot rot), and per-test fixtures.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ccsecrets_testkit::cxone::CxoneStandin;
use ccsecrets_testkit::genesys::GenesysStandin;
use ccsecrets_testkit::openbao::OpenBao;
use ccsecrets_testkit::terraform::Workdir;
use serde_json::json;

/// The provider binary cargo built for this test run.
pub fn provider_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-ccsecrets"))
}

/// The stand-in `genesyscloud` consumer provider, built once per test run (it lives in the
/// testkit crate, next to the provider binary).
pub fn consumer_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            ccsecrets_testkit::workspace_bin(
                "ccsecrets-testkit",
                "terraform-provider-genesyscloud",
                &provider_bin(),
                false,
            )
        })
        .clone()
}

/// The `ccsecrets` command line, built once per test run (another package of the workspace;
/// it lands next to the provider binary).
pub fn cli_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            ccsecrets_testkit::workspace_bin("ccsecrets-cli", "ccsecrets", &provider_bin(), false)
        })
        .clone()
}

/// A Terraform working directory with ccsecrets and the consumer served by dev_overrides.
pub fn workdir() -> Workdir {
    Workdir::new(&[
        ("ccsecrets/ccsecrets", provider_bin().as_path()),
        ("mypurecloud/genesyscloud", consumer_bin().as_path()),
    ])
}

/// A committed file under `examples/`.
pub fn example(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Inserts attribute lines at the top of the block whose header is `header` (e.g.
/// `ephemeral "ccsecrets_genesys_token" "pipeline"`). Override files cannot reach ephemeral
/// blocks, so tests add their endpoint overrides this way and keep the rest verbatim.
pub fn inject(hcl: &str, header: &str, attrs: &[(&str, String)]) -> String {
    let at = hcl
        .find(&format!("{header} {{"))
        .unwrap_or_else(|| panic!("no block {header} in:\n{hcl}"));
    let line_end = at + hcl[at..].find('\n').expect("block header line");
    let lines: String = attrs
        .iter()
        .map(|(k, v)| format!("  {k} = {v}\n"))
        .collect();
    format!("{}\n{lines}{}", &hcl[..line_end], &hcl[line_end + 1..])
}

/// An HCL string literal.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string literal")
}

/// The provider block of `examples/provider/provider.tf` pointed at a test Vault, as an
/// override file (override files do apply to provider blocks).
pub fn vault_override(bao: &OpenBao) -> String {
    format!(
        "provider \"ccsecrets\" {{\n  vault {{\n    address = {}\n  }}\n}}\n",
        q(&bao.addr())
    )
}

/// A workdir whose Terraform finds `bao` through VAULT_ADDR and VAULT_TOKEN.
pub fn vault_workdir(bao: &OpenBao) -> Workdir {
    let mut wd = workdir();
    wd.env("VAULT_ADDR", &bao.addr())
        .env("VAULT_TOKEN", ccsecrets_testkit::openbao::ROOT_TOKEN);
    wd
}

/// Adds `examples/provider/provider.tf` (required_providers and the provider block), with its
/// Vault address overridden to `bao`.
pub fn with_provider_example(wd: &Workdir, bao: &OpenBao) {
    wd.file("provider.tf", &example("provider/provider.tf"));
    wd.file("vault_override.tf", &vault_override(bao));
}

/// The `required_providers` a hand-written test configuration needs.
pub const REQUIRED: &str = "terraform {\n  required_providers {\n    ccsecrets = { source = \"ccsecrets/ccsecrets\" }\n  }\n}\n";

/// A Genesys credential as a store holds it outside Vault: one JSON object.
pub fn genesys_credential(client_id: &str, client_secret: &str) -> String {
    serde_json::json!({"client_id": client_id, "client_secret": client_secret}).to_string()
}

/// A whole configuration for a store other than the environment's Vault: `settings` inside
/// `provider "ccsecrets"`, a Genesys token `t` at `path` (region us-east-1, endpoints at
/// `standin_url`) with `extra` attribute lines, handed to the genesyscloud consumer, which
/// reads the organization with it.
pub fn genesys_consumer_config(
    settings: &str,
    path: &str,
    standin_url: &str,
    extra: &str,
) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    ccsecrets = {{ source = \"ccsecrets/ccsecrets\" }}\n    genesyscloud = {{ source = \"mypurecloud/genesyscloud\" }}\n  }}\n}}\n\
         provider \"ccsecrets\" {{\n{settings}\n}}\n\n\
         ephemeral \"ccsecrets_genesys_token\" \"t\" {{\n  path      = {path}\n  region    = \"us-east-1\"\n  login_url = {u}\n  api_url   = {u}\n{extra}\n}}\n\n\
         provider \"genesyscloud\" {{\n  access_token = ephemeral.ccsecrets_genesys_token.t.access_token\n  aws_region   = ephemeral.ccsecrets_genesys_token.t.region\n}}\n\n\
         data \"genesyscloud_organizations_me\" \"current\" {{}}\n",
        path = q(path),
        u = q(standin_url)
    )
}

/// A random credential-looking string; the CXone-style ones end in "==" and hold "+" and "/"
/// so that form encoding is exercised.
pub fn secret_value(prefix: &str) -> String {
    let body: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(24)
        .collect();
    format!("{prefix}-{body}")
}

/// A Genesys Cloud world: OpenBao with the OAuth client at `path`, and the stand-in.
pub struct GenesysWorld {
    pub bao: OpenBao,
    pub standin: GenesysStandin,
    pub client_id: String,
    pub client_secret: String,
    pub org_id: String,
}

impl GenesysWorld {
    /// Seeds `path` with a fresh OAuth client known to the stand-in.
    pub fn new(path: &str) -> GenesysWorld {
        Self::with_bao(OpenBao::start(), path)
    }

    /// The same with a given OpenBao server.
    pub fn with_bao(bao: OpenBao, path: &str) -> GenesysWorld {
        let standin = GenesysStandin::start();
        let client_id = format!("client-{}", fastrand::u32(..));
        let client_secret = secret_value("gcsecret");
        let org_id = format!("org-{}", fastrand::u32(..));
        standin.add_client(&client_id, &client_secret, &org_id);
        bao.kv_put(
            path,
            json!({"client_id": client_id, "client_secret": client_secret}),
        );
        GenesysWorld {
            bao,
            standin,
            client_id,
            client_secret,
            org_id,
        }
    }

    /// A workdir with VAULT_ADDR, VAULT_TOKEN and the consumer's API URL set.
    pub fn workdir(&self) -> Workdir {
        let mut wd = vault_workdir(&self.bao);
        wd.env(ccsecrets_testkit::consumer::API_URL_ENV, self.standin.url());
        wd
    }

    /// A whole configuration: `settings` inside `provider "ccsecrets"`, the token
    /// `ephemeral "ccsecrets_genesys_token" "t"` at `path` (region us-east-1, endpoints at the
    /// stand-in) with `extra` attribute lines, then `consumer` (the resources that use it).
    pub fn token_config(&self, settings: &str, path: &str, extra: &str, consumer: &str) -> String {
        format!(
            "{REQUIRED}\nprovider \"ccsecrets\" {{\n{settings}\n}}\n\n\
             ephemeral \"ccsecrets_genesys_token\" \"t\" {{\n  path      = {path}\n  region    = \"us-east-1\"\n  login_url = {u}\n  api_url   = {u}\n{extra}\n}}\n\n{consumer}",
            path = q(path),
            u = q(self.standin.url())
        )
    }

    /// `login_url` and `api_url` lines pointing at the stand-in.
    pub fn endpoints(&self) -> Vec<(&'static str, String)> {
        vec![
            ("login_url", q(self.standin.url())),
            ("api_url", q(self.standin.url())),
        ]
    }

    /// The Genesys example, pointed at this world's stand-in and `path`.
    pub fn example(&self, path: &str) -> String {
        let hcl = example("ephemeral-resources/ccsecrets_genesys_token/ephemeral-resource.tf")
            .replace("\"genesys/prod/pipeline\"", &q(path));
        inject(
            &hcl,
            "ephemeral \"ccsecrets_genesys_token\" \"pipeline\"",
            &self.endpoints(),
        )
    }
}

/// A NICE CXone world: OpenBao with an access key and app credentials at `path`, and the
/// stand-in.
pub struct CxoneWorld {
    pub bao: OpenBao,
    pub standin: CxoneStandin,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub client_id: String,
    pub client_secret: String,
    #[allow(dead_code)]
    pub tenant_id: String,
}

impl CxoneWorld {
    pub fn new(path: &str) -> CxoneWorld {
        let bao = OpenBao::start();
        let standin = CxoneStandin::start();
        // Real access keys end in "==" (and may hold + and /): they must be form-encoded.
        let access_key_id = format!("AKID{}==", secret_value("k").replace('-', "+"));
        let access_key_secret = format!("{}/x+y==", secret_value("aks"));
        let client_id = format!("app-{}", fastrand::u32(..));
        let client_secret = secret_value("appsecret");
        let tenant_id = format!("11eb{:08x}-0000-4000-8000-0242ac110002", fastrand::u32(..));
        standin.add_app(&client_id, &client_secret);
        standin.add_access_key(&access_key_id, &access_key_secret, &tenant_id);
        bao.kv_put(
            path,
            json!({"access_key_id": access_key_id, "access_key_secret": access_key_secret,
                   "client_id": client_id, "client_secret": client_secret}),
        );
        CxoneWorld {
            bao,
            standin,
            access_key_id,
            access_key_secret,
            client_id,
            client_secret,
            tenant_id,
        }
    }

    pub fn workdir(&self) -> Workdir {
        vault_workdir(&self.bao)
    }

    /// The CXone example, pointed at this world's stand-in and `path`.
    pub fn example(&self, path: &str) -> String {
        let hcl = example("ephemeral-resources/ccsecrets_cxone_token/ephemeral-resource.tf")
            .replace("\"cxone/prod/pipeline\"", &q(path));
        inject(
            &hcl,
            "ephemeral \"ccsecrets_cxone_token\" \"pipeline\"",
            &[("issuer", q(self.standin.url()))],
        )
    }
}

/// Runs a committed store example (`hcl`, whose `pipeline` token block is pointed here at
/// `genesys`) with `plan -out` and `apply` under `TF_LOG=trace`, and checks the outcome every
/// store must give: each phase mints one token for `client_id` and revokes it, the consumer
/// reads `org_id` into state, and neither state, the saved plan, the trace log nor the output
/// holds an issued Genesys token or any of `secrets`. Returns those places, for scans of
/// secrets only known after the run.
pub fn store_example_round_trip(
    wd: &mut Workdir,
    hcl: &str,
    genesys: &GenesysStandin,
    client_id: &str,
    org_id: &str,
    secrets: &[String],
) -> Vec<(String, Vec<u8>)> {
    use ccsecrets_testkit::terraform::assert_no_secrets;
    wd.env("TF_LOG", "trace").env("TF_LOG_PATH", "trace.log");
    let endpoints = [
        ("login_url", q(genesys.url())),
        ("api_url", q(genesys.url())),
    ];
    wd.file(
        "main.tf",
        &inject(
            hcl,
            "ephemeral \"ccsecrets_genesys_token\" \"pipeline\"",
            &endpoints,
        ),
    );
    let plan = wd.plan();
    plan.assert_ok();
    let apply = wd.apply_plan();
    apply.assert_ok();
    assert_eq!(
        genesys.token_requests(client_id),
        2,
        "plan and apply each mint"
    );
    assert!(
        genesys.valid_calls(client_id) >= 2,
        "the consumer used them"
    );
    assert_eq!(genesys.live_tokens(client_id), 0, "both were revoked");
    let state = String::from_utf8(wd.read("terraform.tfstate")).expect("state is text");
    assert!(state.contains(org_id), "the consumer read the org");

    let log = wd.read("trace.log");
    assert!(
        String::from_utf8_lossy(&log).contains("rpc=OpenEphemeralResource"),
        "the trace log has the provider's lines"
    );
    let mut places = wd.persisted();
    places.extend([
        ("trace.log".to_owned(), log),
        ("plan output".to_owned(), plan.output().into_bytes()),
        ("apply output".to_owned(), apply.output().into_bytes()),
    ]);
    let mut all = genesys.issued_tokens();
    assert_eq!(all.len(), 2);
    all.extend_from_slice(secrets);
    assert_no_secrets(&places, &all);
    places
}
