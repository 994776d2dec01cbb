//! What an attacker with local access or a hostile endpoint tries: a reachable debug socket,
//! error text that echoes secrets or rewrites the terminal, an orphaned provider, endless
//! bodies, absurd numbers, hostile discovery documents, credentials in URLs, and a secret that
//! redirects its own credential. Real OpenBao, stand-ins in hostile modes, the real binary.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ccsecrets::framework::{self, Value};
use ccsecrets::server::proto::tfplugin6 as pb;
use ccsecrets_testkit::grpc::{InProcess, WireDiagnostic, connect_unix, open_with};
use ccsecrets_testkit::{Fault, cxone, genesys};
use serde_json::json;

use crate::grpc::{configured, genesys_config, provider_config, rt};
use crate::support::*;

const COOKIE: (&str, &str) = (
    "TF_PLUGIN_MAGIC_COOKIE",
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
);

fn all_text(d: &[WireDiagnostic]) -> String {
    d.iter()
        .map(|(_, s, detail, path)| format!("{s}\n{detail}\n{path}\n"))
        .collect()
}

fn assert_no_control_chars(text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reached a diagnostic: {text:?}"
    );
}

/// Item 1: Debug mode serves plain gRPC: its directory must be 0700 and its socket 0600 even under
/// a permissive umask.
#[test]
fn debug_socket_is_private_whatever_the_umask() {
    // Also: OpenTofu's provider address from the environment makes the reattach key.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" --debug")
        .arg(provider_bin())
        .env(
            "CCSECRETS_DEBUG_ADDRESS",
            "registry.opentofu.org/ccsecrets/ccsecrets",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let reattach = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no reattach line");
        if let Some(v) = line.trim().strip_prefix("export TF_REATTACH_PROVIDERS='") {
            break v.trim_end_matches('\'').to_owned();
        }
    };
    let parsed: serde_json::Value = serde_json::from_str(&reattach).unwrap();
    let socket = parsed["registry.opentofu.org/ccsecrets/ccsecrets"]["Addr"]["String"]
        .as_str()
        .unwrap()
        .to_owned();
    let socket = std::path::Path::new(&socket);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (dir_mode, sock_mode) = (mode(socket.parent().unwrap()), mode(socket));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(dir_mode, 0o700, "socket directory mode {dir_mode:o}");
    assert_eq!(sock_mode, 0o600, "socket mode {sock_mode:o}");
}

/// Item 2: A token endpoint's error text is untrusted: what was sent is redacted, control bytes
/// are gone, the platform's error code stays.
#[test]
fn platform_error_text_is_redacted_and_stripped() {
    let w = GenesysWorld::new("genesys/echo");
    let hostile = format!(
        "authentication failed for secret {} \u{1b}[2J\u{1b}]0;owned\u{7}\rError: all good",
        w.client_secret
    );
    w.standin.push_fault(
        genesys::route::TOKEN,
        Fault::Status(
            401,
            json!({"error": "invalid_client", "error_description": hostile}),
        ),
    );
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let r = p
            .open(
                "ccsecrets_genesys_token",
                Value::object([
                    ("path", Value::from("genesys/echo")),
                    ("region", Value::from("us-east-1")),
                    ("login_url", Value::from(w.standin.url())),
                    ("api_url", Value::from(w.standin.url())),
                    ("rotation_fallback", Value::from(false)),
                ]),
            )
            .await;
        let text = all_text(&r.diagnostics);
        assert!(
            text.contains("HTTP 401 invalid_client: authentication failed for secret [redacted]"),
            "{text}"
        );
        assert!(!text.contains(&w.client_secret), "{text}");
        assert_no_control_chars(&text);
        p.stop().await;
    });
}

/// Item 3: Terraform killed with SIGKILL: the provider notices its parent is gone, revokes its
/// tokens and the Vault login, and exits by itself.
#[test]
fn an_orphaned_provider_revokes_and_exits() {
    let w = GenesysWorld::new("genesys/orphan");
    let login = w.bao.token(&["default", "root"], "1h");
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for Terraform: a shell that starts the plugin and is then killed.
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" & echo \"pid $!\"; wait")
        .arg(provider_bin())
        .env(COOKIE.0, COOKIE.1)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env("PLUGIN_UNIX_SOCKET_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(parent.stdout.take().unwrap());
    let (mut pid, mut socket) = (None, None);
    while pid.is_none() || socket.is_none() {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no handshake");
        if let Some(p) = line.trim().strip_prefix("pid ") {
            pid = Some(p.parse::<u32>().unwrap());
        } else if line.starts_with("1|6|unix|") {
            socket = Some(line.split('|').nth(3).unwrap().to_owned());
        }
    }
    let (pid, socket) = (pid.unwrap(), socket.unwrap());
    let alive = move || std::path::Path::new(&format!("/proc/{pid}")).exists();
    rt().block_on(async {
        let mut client = connect_unix(std::path::Path::new(&socket)).await;
        let config = Value::object([(
            "vault",
            Value::object([
                ("address", Value::from(w.bao.addr())),
                ("token", Value::from(login.as_str())),
            ]),
        )]);
        let block = framework::Provider::schema(&ccsecrets::provider()).block;
        let reply = client
            .configure_provider(pb::configure_provider::Request {
                terraform_version: "1.11.4".into(),
                config: Some(pb::DynamicValue {
                    msgpack: framework::encode_msgpack(&config, &block).unwrap(),
                    json: vec![],
                }),
                client_capabilities: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(reply.diagnostics.is_empty(), "{:?}", reply.diagnostics);
        let r = open_with(
            &mut client,
            "ccsecrets_genesys_token",
            genesys_config(&w, "genesys/orphan"),
        )
        .await;
        assert_eq!(r.diagnostics, vec![]);
    });
    assert_eq!(w.standin.live_tokens(&w.client_id), 1);
    // SIGKILL the parent: no Shutdown, no Close, no SIGTERM ever reaches the provider.
    let _ = parent.kill();
    let _ = parent.wait();
    let started = Instant::now();
    while alive() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    if alive() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("the orphaned provider was still running after {took:?}");
    }
    assert!(took < Duration::from_secs(8), "exited after {took:?}");
    assert_eq!(
        w.standin.live_tokens(&w.client_id),
        0,
        "the token was revoked"
    );
    assert_eq!(w.standin.revocations(&w.client_id), 1);
    // The provider's own Vault token was static here; it must still work (not ours to revoke).
    assert!(w.bao.lookup(&login).is_some());
}

/// Item 4: Bodies are read with a cap: an endless token response and an oversized KV secret fail
/// with a diagnostic naming the endpoint and the limit.
#[test]
fn oversized_bodies_are_refused_with_their_limit() {
    let w = GenesysWorld::new("genesys/huge");
    w.bao
        .kv_put("big/secret", json!({"blob": "x".repeat(9 * 1024 * 1024)}));
    w.standin
        .push_fault(genesys::route::TOKEN, Fault::Huge(64 << 20));
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let r = p
            .open("ccsecrets_genesys_token", genesys_config(&w, "genesys/huge"))
            .await;
        let text = all_text(&r.diagnostics);
        assert!(
            text.contains(&format!(
                "unexpected response from Genesys Cloud at {}/oauth/token: the response body is larger than the 64 KiB limit for this request",
                w.standin.url()
            )),
            "{text}"
        );
        assert_eq!(
            w.standin.token_requests(&w.client_id),
            1,
            "not retried"
        );
        let r = p
            .open(
                "ccsecrets_vault_secret",
                Value::object([("path", Value::from("big/secret"))]),
            )
            .await;
        let text = all_text(&r.diagnostics);
        assert!(
            text.contains("/v1/secret/data/big/secret with a body larger than the 8 MiB limit"),
            "{text}"
        );
        p.stop().await;
    });
}

/// Item 5: Absurd numbers from a platform never panic, and never poison the shared mint.
#[test]
fn absurd_expiry_numbers_are_clamped() {
    let w = GenesysWorld::new("genesys/numbers");
    for expires_in in [
        json!(9_223_372_036_854_775_807_i64),
        json!(300_000_000_000_i64),
    ] {
        w.standin.push_fault(
            genesys::route::TOKEN,
            Fault::Status(
                200,
                json!({"access_token": "hostile-token", "token_type": "bearer", "expires_in": expires_in}),
            ),
        );
    }
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        for _ in 0..2 {
            let mut config = genesys_config(&w, "genesys/numbers");
            if let Value::Map(m) = &mut config {
                // A fresh token each time: nothing is reused.
                m.insert("reuse_min_remaining_percent".into(), Value::from(100));
                m.insert("revoke_on_close".into(), Value::from(false));
            }
            let r = p.open("ccsecrets_genesys_token", config).await;
            assert_eq!(r.diagnostics, vec![]);
            let at = r.result.get("expires_at").clone();
            let Value::String(at) = at else {
                panic!("{at:?}")
            };
            // Clamped to 450 days: a year in the 2020s or 2030s, not year 9999 or a panic.
            assert!(at.starts_with("20"), "{at}");
        }
        // The next open, against the normal stand-in, works: the slot was not poisoned.
        let r = p
            .open(
                "ccsecrets_genesys_token",
                genesys_config(&w, "genesys/numbers"),
            )
            .await;
        assert_eq!(r.diagnostics, vec![]);
        p.stop().await;
    });
}

/// Item 7: CXone discovery answers are validated before they reach Terraform.
#[test]
fn hostile_discovery_documents_fail_closed() {
    let w = CxoneWorld::new("cxone/disco");
    for doc in [
        json!({"area": "na1", "api_endpoint": "http://attacker.example.com:80/\r\nx"}),
        json!({"area": "\u{1b}[31mna1", "api_endpoint": "https://api-na1.niceincontact.com"}),
    ] {
        w.standin
            .push_fault(cxone::route::DISCOVERY, Fault::Status(200, doc));
    }
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        for _ in 0..2 {
            let r = p
                .open(
                    "ccsecrets_cxone_token",
                    Value::object([
                        ("path", Value::from("cxone/disco")),
                        ("issuer", Value::from(w.standin.url())),
                    ]),
                )
                .await;
            let text = all_text(&r.diagnostics);
            assert!(
                text.contains(&format!(
                    "unexpected response from NICE CXone at {}/.well-known/cxone-configuration?tenantId=",
                    w.standin.url()
                )),
                "{text}"
            );
            assert!(!text.contains("attacker"), "{text}");
            assert_no_control_chars(&text);
            assert_eq!(r.result, Value::Null);
        }
        p.stop().await;
    });
}

/// Item 8: Credentials in URLs are never echoed.
#[test]
fn urls_with_credentials_are_shown_redacted() {
    rt().block_on(async {
        let mut p = InProcess::start().await;
        let d = p
            .configure(Value::object([(
                "vault",
                Value::object([
                    (
                        "address",
                        Value::from("https://admin:hunter2pw@vault.example.com"),
                    ),
                    ("token", Value::from("root")),
                ]),
            )]))
            .await;
        let text = all_text(&d);
        assert!(text.contains("Invalid Vault address"), "{text}");
        assert!(text.contains("REDACTED@vault.example.com"), "{text}");
        assert!(!text.contains("hunter2pw"), "{text}");
        p.stop().await;
    });
    let w = GenesysWorld::new("genesys/urls");
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let mut config = genesys_config(&w, "genesys/urls");
        if let Value::Map(m) = &mut config {
            m.insert(
                "login_url".into(),
                Value::from("https://login.example.com/?api_key=s3cr3tkey"),
            );
        }
        let r = p.open("ccsecrets_genesys_token", config).await;
        let text = all_text(&r.diagnostics);
        assert!(text.contains("Invalid login_url"), "{text}");
        assert!(!text.contains("s3cr3tkey"), "{text}");
        p.stop().await;
    });
}

/// Item 9: A secret that names its own endpoint gets only the public ones.
#[test]
fn a_secret_cannot_redirect_its_own_credential() {
    let w = GenesysWorld::new("genesys/redirect");
    w.bao.kv_put(
        "genesys/redirect",
        json!({"client_id": w.client_id, "client_secret": w.client_secret, "domain": "attacker.example.com"}),
    );
    let cx = CxoneWorld::new("cxone/redirect");
    cx.bao.kv_put(
        "cxone/redirect",
        json!({"access_key_id": cx.access_key_id, "access_key_secret": cx.access_key_secret,
               "client_id": "app", "client_secret": cx.client_secret, "issuer": "https://attacker.example.com"}),
    );
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let r = p
            .open(
                "ccsecrets_genesys_token",
                Value::object([("path", Value::from("genesys/redirect"))]),
            )
            .await;
        assert_eq!(
            r.diagnostics[0].1,
            "Domain from the secret is not a Genesys Cloud region"
        );
        p.stop().await;
        let mut p = configured(&cx.bao.addr()).await;
        let r = p
            .open(
                "ccsecrets_cxone_token",
                Value::object([("path", Value::from("cxone/redirect"))]),
            )
            .await;
        assert_eq!(
            r.diagnostics[0].1,
            "Issuer from the secret is not a NICE CXone issuer"
        );
        p.stop().await;
    });
    assert_eq!(w.standin.token_requests(&w.client_id), 0);
}

/// Item 6: `.` and `..` (also percent-encoded) never walk out of the configured mount or path.
#[test]
fn dot_segments_are_refused_in_mount_path_and_environment() {
    let bao = ccsecrets_testkit::openbao::OpenBao::start();
    bao.kv_put("other/app", json!({"k": secret_value("other")}));
    rt().block_on(async {
        let mut p = InProcess::start().await;
        p.configure(provider_config(&bao.addr())).await;
        for (mount, path, field) in [
            ("nonexistent", "../../secret/data/other/app", "path"),
            ("secret", "other/%2e%2e/other/app", "path"),
            ("secret/../secret", "other/app", "mount"),
        ] {
            let r = p
                .open(
                    "ccsecrets_vault_secret",
                    Value::object([("mount", Value::from(mount)), ("path", Value::from(path))]),
                )
                .await;
            assert_eq!(r.result, Value::Null, "{mount} {path}");
            assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
            assert!(
                r.diagnostics[0].1.starts_with("Invalid"),
                "{:?}",
                r.diagnostics
            );
            assert_eq!(r.diagnostics[0].3, field);
        }
        p.stop().await;
        let mut p = InProcess::start().await;
        let mut config = provider_config(&bao.addr());
        if let Value::Map(m) = &mut config {
            m.insert("environment".into(), Value::from(".."));
        }
        let d = p.configure(config).await;
        assert!(
            d.iter().any(|(_, _, _, path)| path == "environment"),
            "{d:?}"
        );
        p.stop().await;
    });
}

/// TLS is verified: a server whose certificate no trusted root vouches for is refused, the
/// same server is accepted once its CA is given (`ca_cert_file`), and only an explicit
/// `skip_tls_verify` accepts it unverified.
#[test]
fn tls_is_verified_unless_the_ca_is_given_or_verification_is_off() {
    use ccsecrets_core::net::{ClientOptions, http_client};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let server_config = rustls_server_config(cert.der().to_vec(), key.serialize_der());
    rt().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}/", listener.local_addr().unwrap().port());
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 2048];
                        let _ = tls.read(&mut buf).await;
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                            .await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let options = |ca: Option<Vec<u8>>, skip: bool| ClientOptions {
            timeout: Duration::from_secs(5),
            ca_pem: ca,
            skip_tls_verify: skip,
            ..ClientOptions::default()
        };
        let refused = http_client(&options(None, false))
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap_err();
        let reason = ccsecrets_core::net::describe_transport(&refused);
        assert!(reason.contains("TLS handshake failed"), "{reason}");
        for (ca, skip) in [(Some(cert.pem().into_bytes()), false), (None, true)] {
            let resp = http_client(&options(ca, skip))
                .unwrap()
                .get(&url)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
        }
    });
}

fn rustls_server_config(cert: Vec<u8>, key: Vec<u8>) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![rustls::pki_types::CertificateDer::from(cert)],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
    )
    .unwrap()
}
