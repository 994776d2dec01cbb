//! Installing a released provider the way users do: a local HTTPS server speaking the Provider
//! Registry Protocol over a `dist/` directory, a throwaway GPG home for signing keys, the
//! packed filesystem-mirror layout, and Terraform's `h1:`/`zh:` lock-file hashes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::terraform::Workdir;

/// The platform Terraform runs on here, in its naming (`linux_amd64`).
pub fn host_platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{os}_{arch}")
}

/// A public signing key as a registry publishes it.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// The full fingerprint (what `gpg --local-user` takes).
    pub fingerprint: String,
    /// The long key ID, upper case, as `terraform init` prints it.
    pub key_id: String,
    /// `gpg --armor --export`.
    pub ascii_armor: String,
}

/// A throwaway `GNUPGHOME`; its gpg-agent is stopped when dropped.
#[derive(Debug)]
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    /// An empty GPG home. Panics with install instructions when gpg is missing.
    pub fn new() -> Gpg {
        let ok = crate::runs("gpg", "--version");
        assert!(
            ok,
            "gpg is required to sign test releases but was not found: install gnupg (apt-get install gnupg)"
        );
        // Short path: gpg-agent's socket lives here and socket paths are limited to ~100 bytes.
        let home = tempfile::Builder::new()
            .prefix("ccs-gpg")
            .tempdir_in("/tmp")
            .or_else(|_| tempfile::Builder::new().prefix("ccs-gpg").tempdir())
            .expect("GNUPGHOME tempdir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700))
                .expect("chmod GNUPGHOME");
        }
        Gpg { home }
    }

    /// The directory, for `GNUPGHOME`.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `gpg --batch <args>` in this home; panics with gpg's stderr on failure.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.home())
            .arg("--batch")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run gpg");
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A new RSA signing key without passphrase (RSA: older Terraform releases cannot read
    /// ed25519 keys).
    pub fn generate_key(&self, name: &str) -> SigningKey {
        let uid = format!("{name} <{name}@example.invalid>");
        self.run(&[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            &uid,
            "rsa2048",
            "sign",
            "never",
        ]);
        let listing = String::from_utf8(self.run(&[
            "--with-colons",
            "--list-secret-keys",
            &format!("={uid}"),
        ]))
        .expect("gpg output is UTF-8");
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| !f.is_empty()))
            .expect("gpg lists the new key's fingerprint")
            .to_owned();
        let ascii_armor = String::from_utf8(self.run(&["--armor", "--export", &fingerprint]))
            .expect("armored key is UTF-8");
        SigningKey {
            key_id: fingerprint[fingerprint.len() - 16..].to_uppercase(),
            fingerprint,
            ascii_armor,
        }
    }

    /// Writes a binary detached signature of `file` by `key` to `sig`.
    pub fn detach_sign(&self, key: &SigningKey, file: &Path, sig: &Path) {
        let (file, sig) = (file.display().to_string(), sig.display().to_string());
        self.run(&[
            "--yes",
            "--no-armor",
            "--local-user",
            &key.fingerprint,
            "--output",
            &sig,
            "--detach-sign",
            &file,
        ]);
    }
}

impl Default for Gpg {
    fn default() -> Self {
        Gpg::new()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home())
            .args(["--kill", "all"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `zh:<sha256 hex>`: the hash of a provider package zip, as the lock file records it.
pub fn zh_hash(zip: &Path) -> String {
    let bytes = std::fs::read(zip).unwrap_or_else(|e| panic!("read {}: {e}", zip.display()));
    format!("zh:{:x}", Sha256::digest(bytes))
}

/// `h1:<base64>`: Go's dirhash "Hash1" of the zip's contents (sha256 over the sorted lines
/// `<sha256 hex of file>  <name>\n`), as the lock file records it.
pub fn h1_hash(zip: &Path) -> String {
    use base64::Engine;
    let file = std::fs::File::open(zip).unwrap_or_else(|e| panic!("open {}: {e}", zip.display()));
    let mut archive = zip::ZipArchive::new(file).expect("a zip archive");
    let mut lines = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("zip entry");
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().expect("entry name").into_owned();
        let mut h = Sha256::new();
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = entry.read(&mut buf).expect("read zip entry");
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        lines.push(format!("{:x}  {name}\n", h.finalize()));
    }
    lines.sort_by(|a, b| {
        a.split_once("  ")
            .map(|x| x.1)
            .cmp(&b.split_once("  ").map(|x| x.1))
    });
    let sum = Sha256::digest(lines.concat().as_bytes());
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(sum)
    )
}

/// The `hashes` a `.terraform.lock.hcl` records for `provider "<source>"`, in file order.
pub fn lock_hashes(lock_hcl: &str, source: &str) -> Vec<String> {
    let Some(start) = lock_hcl.find(&format!("provider \"{source}\" {{")) else {
        return Vec::new();
    };
    let block = &lock_hcl[start..];
    let block = &block[..block.find("\n}").unwrap_or(block.len())];
    block
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter_map(|l| l.strip_prefix('"')?.strip_suffix('"'))
        .filter(|h| h.starts_with("h1:") || h.starts_with("zh:"))
        .map(str::to_owned)
        .collect()
}

/// Copies every provider zip of `dist` into the packed filesystem-mirror layout
/// `<mirror>/<host>/<namespace>/<type>/<zip name>`.
pub fn pack_mirror(dist: &Path, mirror: &Path, host: &str, namespace: &str) {
    for p in packages(dist) {
        let dir = mirror.join(host).join(namespace).join(&p.type_name);
        std::fs::create_dir_all(&dir).expect("mirror dir");
        std::fs::copy(dist.join(&p.filename), dir.join(&p.filename)).expect("copy zip to mirror");
    }
}

/// A CLI configuration installing `sources` only from the filesystem mirror at `mirror`.
pub fn mirror_cli_config(mirror: &Path, sources: &[&str]) -> String {
    let list = serde_json::to_string(sources).expect("source list");
    format!(
        "provider_installation {{\n  filesystem_mirror {{\n    path    = {}\n    include = {list}\n  }}\n  direct {{\n    exclude = {list}\n  }}\n}}\n",
        serde_json::to_string(&mirror.display().to_string()).expect("path literal")
    )
}

/// One provider zip found in a dist directory.
#[derive(Debug, Clone)]
struct Package {
    type_name: String,
    version: String,
    os: String,
    arch: String,
    filename: String,
}

/// The `terraform-provider-<type>_<version>_<os>_<arch>.zip` files of `dist`.
fn packages(dist: &Path) -> Vec<Package> {
    let Ok(entries) = std::fs::read_dir(dist) else {
        return Vec::new();
    };
    let mut out: Vec<Package> = entries
        .filter_map(|e| {
            let filename = e.ok()?.file_name().into_string().ok()?;
            let stem = filename
                .strip_prefix("terraform-provider-")?
                .strip_suffix(".zip")?;
            let mut parts = stem.rsplitn(4, '_');
            let (arch, os, version, type_name) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            Some(Package {
                type_name: type_name.to_owned(),
                version: version.to_owned(),
                os: os.to_owned(),
                arch: arch.to_owned(),
                filename: filename.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.filename.cmp(&b.filename));
    out
}

#[derive(Debug)]
struct Shared {
    namespace: String,
    dist: PathBuf,
    keys: Vec<SigningKey>,
    base: String,
    requests: Mutex<Vec<String>>,
}

impl Shared {
    fn log(&self, method: &Method, uri: &Uri) {
        self.requests
            .lock()
            .expect("request log")
            .push(format!("{method} {}", uri.path()));
    }

    fn prefix(type_name: &str, version: &str) -> String {
        format!("terraform-provider-{type_name}_{version}_")
    }

    /// The protocols of a version, from its registry manifest (the public registry assumes
    /// 5.0 without one).
    fn protocols(&self, type_name: &str, version: &str) -> Value {
        let manifest = self.dist.join(format!(
            "{}manifest.json",
            Shared::prefix(type_name, version)
        ));
        std::fs::read(manifest)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(|m| m["metadata"]["protocol_versions"].clone())
            .filter(Value::is_array)
            .unwrap_or_else(|| json!(["5.0"]))
    }

    fn versions(&self, ns: &str, type_name: &str) -> Option<Value> {
        let pkgs: Vec<Package> = packages(&self.dist)
            .into_iter()
            .filter(|p| ns == self.namespace && p.type_name == type_name)
            .collect();
        if pkgs.is_empty() {
            return None;
        }
        let mut versions: Vec<&str> = pkgs.iter().map(|p| p.version.as_str()).collect();
        versions.dedup();
        let list: Vec<Value> = versions
            .iter()
            .map(|v| {
                let platforms: Vec<Value> = pkgs
                    .iter()
                    .filter(|p| p.version == *v)
                    .map(|p| json!({"os": p.os, "arch": p.arch}))
                    .collect();
                json!({"version": v, "protocols": self.protocols(type_name, v), "platforms": platforms})
            })
            .collect();
        Some(json!({ "versions": list }))
    }

    fn download(
        &self,
        ns: &str,
        type_name: &str,
        version: &str,
        os: &str,
        arch: &str,
    ) -> Option<Value> {
        let pkg = packages(&self.dist).into_iter().find(|p| {
            ns == self.namespace
                && p.type_name == type_name
                && p.version == version
                && p.os == os
                && p.arch == arch
        })?;
        let sums_name = format!("{}SHA256SUMS", Shared::prefix(type_name, version));
        // The published hash is the one SHA256SUMS lists, as on a real registry.
        let sums = std::fs::read_to_string(self.dist.join(&sums_name)).ok()?;
        let shasum = sums.lines().find_map(|l| {
            let (hash, name) = l.split_once("  ")?;
            (name == pkg.filename).then(|| hash.to_owned())
        })?;
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| {
                json!({"key_id": k.key_id, "ascii_armor": k.ascii_armor, "trust_signature": "",
                       "source": "ccsecrets-testkit", "source_url": null})
            })
            .collect();
        let url = |name: &str| format!("{}/files/{name}", self.base);
        Some(json!({
            "protocols": self.protocols(type_name, version),
            "os": os,
            "arch": arch,
            "filename": pkg.filename,
            "download_url": url(&pkg.filename),
            "shasums_url": url(&sums_name),
            "shasums_signature_url": url(&format!("{sums_name}.sig")),
            "shasum": shasum,
            "signing_keys": {"gpg_public_keys": keys},
        }))
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"errors": ["Not Found"]})),
    )
        .into_response()
}

fn found(v: Option<Value>) -> Response {
    v.map_or_else(not_found, |v| axum::Json(v).into_response())
}

/// A Provider Registry Protocol server on `https://localhost:<port>`, serving the provider
/// packages of one `dist/` directory under one namespace; stops when dropped.
#[derive(Debug)]
pub struct Registry {
    host: String,
    shared: Arc<Shared>,
    pki: tempfile::TempDir,
    /// Serves until dropped.
    _server: crate::standin::Server,
}

impl Registry {
    /// Serves the packages in `dist` as `<namespace>/<type>`, announcing `keys` as their
    /// signing keys. Files are read per request, so `dist` may change under a running server.
    pub fn start(namespace: &str, dist: &Path, keys: &[SigningKey]) -> Registry {
        let pki = tempfile::Builder::new()
            .prefix("ccsecrets-registry")
            .tempdir()
            .expect("tempdir");
        let (ca_pem, tls) = crate::tls::throwaway_pki(
            "ccsecrets-testkit throwaway CA",
            &["localhost"],
            &[b"http/1.1"],
        );
        std::fs::write(pki.path().join("ca.pem"), ca_pem).expect("write CA");

        let listener = crate::standin::loopback_listener();
        let port = listener.local_addr().expect("local addr").port();
        let host = format!("localhost:{port}");
        let shared = Arc::new(Shared {
            namespace: namespace.to_owned(),
            dist: dist.to_owned(),
            keys: keys.to_vec(),
            base: format!("https://{host}"),
            requests: Mutex::default(),
        });
        let app = router(shared.clone());
        let server = crate::standin::Server::serve(listener, app, Some(tls));
        Registry {
            host,
            shared,
            pki,
            _server: server,
        }
    }

    /// `localhost:<port>`, the host part of provider source addresses.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `<host>/<namespace>/<type>`.
    pub fn source(&self, type_name: &str) -> String {
        format!("{}/{}/{type_name}", self.host, self.shared.namespace)
    }

    /// The PEM file of the CA that signed the server certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.pki.path().join("ca.pem")
    }

    /// Makes Terraform in `wd` (and only there) trust the server certificate.
    pub fn trust(&self, wd: &mut Workdir) {
        wd.env("SSL_CERT_FILE", &self.ca_file().display().to_string());
    }

    /// Every request so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().expect("request log").clone()
    }
}

fn router(shared: Arc<Shared>) -> axum::Router {
    type S = State<Arc<Shared>>;
    axum::Router::new()
        .route(
            "/.well-known/terraform.json",
            get(|State(s): S, m: Method, u: Uri| async move {
                s.log(&m, &u);
                axum::Json(json!({"providers.v1": "/v1/providers/"}))
            }),
        )
        .route(
            "/v1/providers/{ns}/{type}/versions",
            get(
                |State(s): S, m: Method, u: Uri, UrlPath((ns, ty)): UrlPath<(String, String)>| async move {
                    s.log(&m, &u);
                    found(s.versions(&ns, &ty))
                },
            ),
        )
        .route(
            "/v1/providers/{ns}/{type}/{version}/download/{os}/{arch}",
            get(
                |State(s): S,
                 m: Method,
                 u: Uri,
                 UrlPath((ns, ty, v, os, arch)): UrlPath<(String, String, String, String, String)>| async move {
                    s.log(&m, &u);
                    found(s.download(&ns, &ty, &v, &os, &arch))
                },
            ),
        )
        .route(
            "/files/{name}",
            get(|State(s): S, m: Method, u: Uri, UrlPath(name): UrlPath<String>| async move {
                s.log(&m, &u);
                if name.contains('/') || name.starts_with('.') {
                    return not_found();
                }
                match tokio::fs::read(s.dist.join(&name)).await {
                    Ok(bytes) => {
                        ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
                    }
                    Err(_) => not_found(),
                }
            }),
        )
        .fallback(|State(s): S, m: Method, u: Uri| async move {
            s.log(&m, &u);
            not_found()
        })
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_hashes_of_one_provider_block() {
        let lock = r#"
provider "localhost:1/a/b" {
  version = "0.1.0"
  hashes = [
    "h1:AAA=",
    "zh:0011",
  ]
}

provider "localhost:1/a/c" {
  hashes = [
    "h1:BBB=",
  ]
}
"#;
        assert_eq!(lock_hashes(lock, "localhost:1/a/b"), ["h1:AAA=", "zh:0011"]);
        assert_eq!(lock_hashes(lock, "localhost:1/a/c"), ["h1:BBB="]);
        assert!(lock_hashes(lock, "localhost:1/a/d").is_empty());
    }

    #[test]
    fn dist_file_names_parse_into_packages() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "terraform-provider-ccsecrets_0.1.0_linux_amd64.zip",
            "terraform-provider-ccsecrets_0.1.0_darwin_arm64.zip",
            "terraform-provider-ccsecrets_0.1.0_SHA256SUMS",
            "terraform-provider-ccsecrets_0.1.0_manifest.json",
        ] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let p = packages(dir.path());
        let got: Vec<_> = p
            .iter()
            .map(|p| format!("{} {} {} {}", p.type_name, p.version, p.os, p.arch))
            .collect();
        assert_eq!(
            got,
            [
                "ccsecrets 0.1.0 darwin arm64",
                "ccsecrets 0.1.0 linux amd64"
            ]
        );
    }
}
