//! Installation as users get it: `cargo xtask release` packages and signs the provider,
//! a local HTTPS registry (or a filesystem mirror) serves it, the real `terraform init`
//! verifies and installs it, and the installed binary then plans against OpenBao.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use ccsecrets_testkit::openbao::{OpenBao, ROOT_TOKEN};
use ccsecrets_testkit::registry::{
    Gpg, Registry, SigningKey, h1_hash, host_platform, lock_hashes, mirror_cli_config, pack_mirror,
    zh_hash,
};
use ccsecrets_testkit::terraform::{Run, Workdir};
use serde_json::json;

use crate::support::{cli_bin, provider_bin, q, secret_value};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn artifact(kind: &str) -> String {
    format!("terraform-provider-ccsecrets_{VERSION}_{kind}")
}

/// One signed release of the test build, shared by the tests that run at the same time
/// (packaging the debug binary takes a while), removed when the last one is done.
struct Release {
    gpg: Gpg,
    /// The key that signed the release and that the registry announces.
    key: SigningKey,
    /// A second key of the same home, never announced.
    stranger: SigningKey,
    dist: tempfile::TempDir,
    /// The zip's `h1:` hash, from its contents.
    h1: String,
}

/// The host platform's zip in a dist directory.
fn zip_in(dist: &Path) -> PathBuf {
    dist.join(artifact(&format!("{}.zip", host_platform())))
}

impl Release {
    fn zip(&self) -> PathBuf {
        zip_in(self.dist.path())
    }

    fn build() -> Release {
        let gpg = Gpg::new();
        let key = gpg.generate_key("ccsecrets-release");
        let stranger = gpg.generate_key("ccsecrets-stranger");
        let dist = tempfile::Builder::new()
            .prefix("ccsecrets-dist")
            .tempdir()
            .expect("tempdir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["xtask", "release", "--binary"])
            .arg(provider_bin())
            .arg("--cli-binary")
            .arg(cli_bin())
            .arg("--out")
            .arg(dist.path())
            .args(["--key", &key.fingerprint])
            .env("GNUPGHOME", gpg.home())
            .env_remove("GPG_FINGERPRINT")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("run cargo xtask release");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo xtask release failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("binary ") && stdout.contains("zip "),
            "the release reports sizes:\n{stdout}"
        );
        Release {
            h1: h1_hash(&zip_in(dist.path())),
            gpg,
            key,
            stranger,
            dist,
        }
    }

    /// The shared release, built by the first caller.
    fn get() -> Arc<Release> {
        static SHARED: Mutex<Weak<Release>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = shared.upgrade() {
            return r;
        }
        let r = Arc::new(Release::build());
        *shared = Arc::downgrade(&r);
        r
    }

    /// A private copy of the dist directory, to tamper with.
    fn copy(&self) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("ccsecrets-dist")
            .tempdir()
            .expect("tempdir");
        for e in std::fs::read_dir(self.dist.path()).expect("read dist") {
            let p = e.expect("dist entry").path();
            std::fs::copy(&p, dir.path().join(p.file_name().expect("name"))).expect("copy");
        }
        dir
    }
}

/// A configuration that needs `source` and proves at plan time that the installed provider
/// read `secret` from OpenBao at `path` (a precondition compares the value).
fn config(source: &str, path: &str, secret: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    ccsecrets = {{
      source  = {source}
      version = {version}
    }}
  }}
}}

provider "ccsecrets" {{}}

ephemeral "ccsecrets_vault_secret" "probe" {{
  path = {path}
}}

resource "terraform_data" "probe" {{
  lifecycle {{
    precondition {{
      condition     = ephemeral.ccsecrets_vault_secret.probe.data["value"] == {secret}
      error_message = "The installed provider read another value."
    }}
  }}
}}
"#,
        source = q(source),
        version = q(VERSION),
        path = q(path),
        secret = q(secret)
    )
}

/// A workdir (no dev_overrides for ccsecrets) with a fresh secret in the shared OpenBao and
/// the configuration that checks it; and the secret's path.
fn workdir_reading_a_secret(source: &str) -> (Workdir, String) {
    let bao = OpenBao::shared();
    let path = format!("registry/{}", fastrand::u64(..));
    let secret = secret_value("probe");
    bao.kv_put(&path, json!({ "value": secret }));
    let mut wd = Workdir::new(&[]);
    wd.env("VAULT_ADDR", &bao.addr())
        .env("VAULT_TOKEN", ROOT_TOKEN);
    wd.file("main.tf", &config(source, &path, &secret));
    (wd, path)
}

fn init(wd: &Workdir) -> Run {
    wd.run(&["init", "-no-color", "-input=false"])
}

/// The installed binary reports the released version and is executable.
fn assert_installed(wd: &Workdir, source: &str) {
    let bin: PathBuf = [
        Path::new(".terraform/providers"),
        Path::new(source),
        Path::new(VERSION),
        Path::new(&host_platform()),
        Path::new(&format!("terraform-provider-ccsecrets_v{VERSION}")),
    ]
    .iter()
    .fold(wd.path().to_owned(), |p, part| p.join(part));
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("terraform-provider-ccsecrets v{VERSION}")
    );
}

#[test]
fn release_installs_from_a_registry_with_its_signature_and_plans_against_openbao() {
    let r = Release::get();
    // The artifacts, as goreleaser lays them out.
    let mut names: Vec<String> = std::fs::read_dir(r.dist.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let zip_name = artifact(&format!("{}.zip", host_platform()));
    // The container image is built for linux/amd64 only, from a linux/amd64 binary.
    let image_name = format!("ccsecrets_{VERSION}_linux_amd64.oci.tar");
    let mut expected = vec![
        format!("ccsecrets_{VERSION}_{}.zip", host_platform()),
        artifact("SHA256SUMS"),
        artifact("SHA256SUMS.sig"),
        zip_name.clone(),
        artifact("manifest.json"),
    ];
    if host_platform() == "linux_amd64" {
        expected.insert(0, image_name.clone());
    }
    assert_eq!(names, expected);
    let sig = std::fs::read(r.dist.path().join(artifact("SHA256SUMS.sig"))).unwrap();
    assert!(
        sig[0] & 0x80 != 0,
        "the signature is binary OpenPGP (Terraform rejects armored ones)"
    );
    let zh = zh_hash(&r.zip());
    let sums = std::fs::read_to_string(r.dist.path().join(artifact("SHA256SUMS"))).unwrap();
    assert!(
        sums.contains(&format!("{}  {zip_name}\n", &zh[3..])),
        "SHA256SUMS lists the zip:\n{sums}"
    );
    if host_platform() == "linux_amd64" {
        assert!(
            sums.lines()
                .any(|l| l.ends_with(&format!("  {image_name}"))),
            "SHA256SUMS (the signed file) lists the image:\n{sums}"
        );
    }

    let registry = Registry::start("ccsecrets", r.dist.path(), std::slice::from_ref(&r.key));
    let source = registry.source("ccsecrets");
    let (mut wd, path) = workdir_reading_a_secret(&source);
    registry.trust(&mut wd);

    init(&wd).assert_ok().assert_says(&[
        &format!("Installing {source} v{VERSION}..."),
        &format!(
            "Installed {source} v{VERSION} (self-signed, key ID {})",
            r.key.key_id
        ),
        "Terraform has been successfully initialized!",
    ]);
    let requests = registry.requests();
    for wanted in [
        "GET /.well-known/terraform.json".to_owned(),
        "GET /v1/providers/ccsecrets/ccsecrets/versions".to_owned(),
        format!(
            "GET /v1/providers/ccsecrets/ccsecrets/{VERSION}/download/{}",
            host_platform().replace('_', "/")
        ),
        format!("GET /files/{}", artifact("SHA256SUMS")),
        format!("GET /files/{}", artifact("SHA256SUMS.sig")),
        format!("GET /files/{zip_name}"),
    ] {
        assert!(requests.contains(&wanted), "no {wanted:?} in {requests:#?}");
    }
    // h1: from the unpacked contents; zh: for every line of the signed SHA256SUMS (the zip
    // and the manifest), as for registry.terraform.io providers.
    let lock = String::from_utf8(wd.read(".terraform.lock.hcl")).unwrap();
    let mut zh_lines: Vec<String> = sums
        .lines()
        .map(|l| format!("zh:{}", l.split_once("  ").unwrap().0))
        .collect();
    zh_lines.sort();
    assert!(zh_lines.contains(&zh));
    let hashes = lock_hashes(&lock, &source);
    assert_eq!(
        hashes,
        [vec![r.h1.clone()], zh_lines].concat(),
        "lock file:\n{lock}"
    );
    assert_installed(&wd, &source);

    // The installed binary serves Terraform: the plan reads the seeded secret, and a
    // changed secret fails the precondition (so the check is not vacuous).
    wd.plan().assert_ok();
    OpenBao::shared().kv_put(&path, json!({ "value": "changed" }));
    wd.plan()
        .assert_fails_with(&["The installed provider read another value."]);
}

#[test]
fn a_tampered_zip_is_refused_by_init() {
    let r = Release::get();
    let dist = r.copy();
    let zip = zip_in(dist.path());
    let expected = zh_hash(&zip);
    let mut bytes = std::fs::read(&zip).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&zip, &bytes).unwrap();
    let tampered = zh_hash(&zip);

    let registry = Registry::start("ccsecrets", dist.path(), std::slice::from_ref(&r.key));
    let source = registry.source("ccsecrets");
    let mut wd = Workdir::new(&[]);
    registry.trust(&mut wd);
    wd.file("main.tf", &config(&source, "unused", "unused"));
    init(&wd).assert_fails_with(&[
        "Error: Failed to install provider",
        &format!(
            "Error while installing {source} v{VERSION}: archive has incorrect checksum {tampered} (expected {expected})"
        ),
    ]);
    assert!(
        !wd.path().join(".terraform.lock.hcl").exists(),
        "no lock file for a refused package"
    );
}

#[test]
fn a_signature_by_a_key_the_registry_does_not_announce_is_refused() {
    let r = Release::get();
    let dist = r.copy();
    let sums = dist.path().join(artifact("SHA256SUMS"));
    r.gpg.detach_sign(
        &r.stranger,
        &sums,
        &dist.path().join(artifact("SHA256SUMS.sig")),
    );

    let registry = Registry::start("ccsecrets", dist.path(), std::slice::from_ref(&r.key));
    let source = registry.source("ccsecrets");
    let mut wd = Workdir::new(&[]);
    registry.trust(&mut wd);
    wd.file("main.tf", &config(&source, "unused", "unused"));
    init(&wd).assert_fails_with(&[
        "Error: Failed to install provider",
        &format!(
            "Error while installing {source} v{VERSION}: authentication signature from unknown issuer"
        ),
    ]);

    // The same files pass once the registry announces that key: the signature itself is sound.
    let announced = Registry::start("ccsecrets", dist.path(), std::slice::from_ref(&r.stranger));
    let mut wd = Workdir::new(&[]);
    announced.trust(&mut wd);
    wd.file(
        "main.tf",
        &config(&announced.source("ccsecrets"), "unused", "unused"),
    );
    init(&wd)
        .assert_ok()
        .assert_says(&[&format!("(self-signed, key ID {})", r.stranger.key_id)]);
}

#[test]
fn release_installs_from_a_filesystem_mirror_and_plans_against_openbao() {
    let r = Release::get();
    let host = "registry.example.com";
    let source = format!("{host}/ccsecrets/ccsecrets");
    let mirror = tempfile::Builder::new()
        .prefix("ccsecrets-mirror")
        .tempdir()
        .unwrap();
    pack_mirror(r.dist.path(), mirror.path(), host, "ccsecrets");
    assert!(zip_in(&mirror.path().join(&source)).is_file());

    let (mut wd, _) = workdir_reading_a_secret(&source);
    wd.file("mirror.tfrc", &mirror_cli_config(mirror.path(), &[&source]));
    let cli = wd.path().join("mirror.tfrc").display().to_string();
    wd.env("TF_CLI_CONFIG_FILE", &cli);

    init(&wd).assert_ok().assert_says(&[
        &format!("Installed {source} v{VERSION} (unauthenticated)"),
        "Terraform has been successfully initialized!",
    ]);
    // A mirror has no SHA256SUMS to vouch for the zip: Terraform records only the h1: it
    // computed from the contents, which is the release's.
    let lock = String::from_utf8(wd.read(".terraform.lock.hcl")).unwrap();
    assert_eq!(
        lock_hashes(&lock, &source),
        std::slice::from_ref(&r.h1),
        "lock file:\n{lock}"
    );
    assert_installed(&wd, &source);

    wd.plan().assert_ok();
}
