//! The provider over its gRPC interface, in-process: schema, validation with unknown values,
//! result encoding, token sharing, revocation at shutdown when Close never comes, and
//! interruption. Real OpenBao and stand-ins; no Terraform.

use std::time::{Duration, Instant};

use ccsecrets::framework::Value;
use ccsecrets::server::proto::tfplugin6 as pb;
use ccsecrets_testkit::Fault;
use ccsecrets_testkit::genesys;
use ccsecrets_testkit::grpc::InProcess;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::*;

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn provider_config(addr: &str) -> Value {
    Value::object([
        ("max_retries", Value::from(10)),
        (
            "vault",
            Value::object([
                ("address", Value::from(addr)),
                ("token", Value::from("root")),
            ]),
        ),
    ])
}

/// A provider served in-process and configured for the OpenBao at `addr`.
pub async fn configured(addr: &str) -> InProcess {
    let mut p = InProcess::start().await;
    let d = p.configure(provider_config(addr)).await;
    assert!(d.is_empty(), "{d:?}");
    p
}

pub fn genesys_config(w: &GenesysWorld, path: &str) -> Value {
    Value::object([
        ("path", Value::from(path)),
        ("region", Value::from("us-east-1")),
        ("login_url", Value::from(w.standin.url())),
        ("api_url", Value::from(w.standin.url())),
    ])
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Secret(s) => s.expose_secret().to_owned(),
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn schema_and_metadata_are_complete_and_terraform_safe() {
    rt().block_on(async {
        let mut p = InProcess::start().await;
        let s = p
            .client
            .get_provider_schema(pb::get_provider_schema::Request {})
            .await
            .unwrap()
            .into_inner();
        assert!(s.server_capabilities.unwrap().get_provider_schema_optional);
        let mut eph: Vec<_> = s.ephemeral_resource_schemas.keys().cloned().collect();
        eph.sort();
        assert_eq!(
            eph,
            [
                "ccsecrets_cxone_token",
                "ccsecrets_genesys_token",
                "ccsecrets_vault_secret"
            ]
        );
        assert_eq!(
            s.data_source_schemas.keys().collect::<Vec<_>>(),
            ["ccsecrets_vault_secret_metadata"]
        );
        // Every block present and every type valid cty JSON: a None block or bad JSON crashes Terraform.
        let all = s
            .ephemeral_resource_schemas
            .values()
            .chain(s.data_source_schemas.values())
            .chain(s.provider.iter());
        for schema in all {
            let mut blocks = vec![schema.block.as_ref().expect("block")];
            while let Some(b) = blocks.pop() {
                for a in &b.attributes {
                    serde_json::from_slice::<serde_json::Value>(&a.r#type).expect("type JSON");
                    assert!(!a.description.is_empty(), "{} undocumented", a.name);
                    assert_ne!(a.description_kind, 0, "markdown descriptions");
                }
                for nb in &b.block_types {
                    blocks.push(nb.block.as_ref().expect("nested block"));
                }
            }
        }
        let md = p
            .client
            .get_metadata(pb::get_metadata::Request {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(md.ephemeral_resources.len(), 3);
        let f = p
            .client
            .get_functions(pb::get_functions::Request {})
            .await
            .unwrap()
            .into_inner();
        assert!(f.functions.is_empty() && f.diagnostics.is_empty());
        p.stop().await;
    });
}

#[test]
fn validation_accepts_unknown_values_and_pins_known_mistakes() {
    rt().block_on(async {
        let mut p = InProcess::start().await;
        // {"path": <unknown>, "version": <unknown>} exactly as go-cty sends it (fixext1 type 0).
        let mut raw = vec![0x82, 0xa4];
        raw.extend_from_slice(b"path");
        raw.extend_from_slice(&[0xd4, 0, 0, 0xa7]);
        raw.extend_from_slice(b"version");
        raw.extend_from_slice(&[0xd4, 0, 0]);
        assert_eq!(p.validate_raw("ccsecrets_genesys_token", raw).await, vec![]);
        // {"path": "", "version": 0}
        let mut raw = vec![0x82, 0xa4];
        raw.extend_from_slice(b"path");
        raw.extend_from_slice(&[0xa0, 0xa7]);
        raw.extend_from_slice(b"version");
        raw.push(0x00);
        let d = p.validate_raw("ccsecrets_vault_secret", raw).await;
        let paths: Vec<&str> = d.iter().map(|d| d.3.as_str()).collect();
        assert_eq!(paths, ["path", "version"], "{d:?}");
        // An unknown type is a diagnostic listing what exists, not a gRPC error.
        let d = p.validate_raw("ccsecrets_nope", vec![0x80]).await;
        assert!(d[0].2.contains("ccsecrets_genesys_token"), "{d:?}");
        p.stop().await;
    });
}

#[test]
fn open_before_configure_is_a_diagnostic() {
    rt().block_on(async {
        let mut p = InProcess::start().await;
        let r = p
            .open(
                "ccsecrets_vault_secret",
                Value::object([("path", Value::from("x"))]),
            )
            .await;
        assert_eq!(r.diagnostics[0].1, "Provider not configured");
        p.stop().await;
    });
}

#[test]
fn vault_secret_results_keep_types_and_metadata() {
    let bao = ccsecrets_testkit::openbao::OpenBao::start();
    bao.kv_put(
        "app/cfg",
        json!({"user": "u1", "port": 8443, "opts": {"tls": true}}),
    );
    bao.kv_custom_metadata("app/cfg", json!({"owner": "cc-platform"}));
    let v2 = bao.kv_put(
        "app/cfg",
        json!({"user": "u2", "port": 9443, "opts": {"tls": false}}),
    );
    rt().block_on(async {
        let mut p = InProcess::start().await;
        assert_eq!(p.configure(provider_config(&bao.addr())).await, vec![]);
        let r = p
            .open(
                "ccsecrets_vault_secret",
                Value::object([("path", Value::from("app/cfg"))]),
            )
            .await;
        assert_eq!(r.diagnostics, vec![]);
        let res = &r.result;
        assert_eq!(res.get("mount"), &Value::from("secret"));
        assert_eq!(res.get("version"), &Value::from(v2));
        assert_eq!(text(res.get("data").get("user")), "u2");
        assert_eq!(
            text(res.get("data").get("port")),
            "9443",
            "non-strings become JSON text"
        );
        let whole: serde_json::Value = serde_json::from_str(&text(res.get("data_json"))).unwrap();
        assert_eq!(
            whole["opts"]["tls"], false,
            "data_json keeps the original types"
        );
        assert_eq!(
            res.get("custom_metadata").get("owner"),
            &Value::from("cc-platform")
        );
        assert!(text(res.get("created_time")).ends_with('Z'));
        // A pinned older version.
        let r = p
            .open(
                "ccsecrets_vault_secret",
                Value::object([
                    ("path", Value::from("app/cfg")),
                    ("version", Value::from(1)),
                ]),
            )
            .await;
        assert_eq!(text(r.result.get("data").get("user")), "u1");
        assert!(r.private.is_none(), "nothing to release for a plain read");
        p.stop().await;
    });
}

#[test]
fn genesys_token_result_shares_one_token_and_close_revokes_it() {
    let w = GenesysWorld::new("genesys/g");
    let (token, expires_in) = rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let a = p
            .open("ccsecrets_genesys_token", genesys_config(&w, "genesys/g"))
            .await;
        let b = p
            .open("ccsecrets_genesys_token", genesys_config(&w, "genesys/g"))
            .await;
        assert_eq!(a.diagnostics, vec![]);
        let (ta, tb) = (
            text(a.result.get("access_token")),
            text(b.result.get("access_token")),
        );
        assert_eq!(ta, tb, "the second open reuses the first token");
        assert_eq!(a.result.get("region"), &Value::from("us-east-1"));
        assert_eq!(a.result.get("domain"), &Value::from("mypurecloud.com"));
        assert_eq!(a.result.get("token_type"), &Value::from("bearer"));
        assert_eq!(a.result.get("credential_version"), &Value::from(1));
        assert!(text(a.result.get("expires_at")).ends_with('Z'));
        let expires_in = a
            .result
            .get("expires_in")
            .as_number()
            .unwrap()
            .as_i64()
            .unwrap();
        // One close leaves the token with the other user; the second close revokes it.
        assert_eq!(p.close("ccsecrets_genesys_token", a.private).await, vec![]);
        let still = w.standin.live_tokens(&w.client_id);
        assert_eq!(p.close("ccsecrets_genesys_token", b.private).await, vec![]);
        p.stop().await;
        assert_eq!(still, 1);
        (ta, expires_in)
    });
    assert!((86_300..=86_399).contains(&expires_in), "{expires_in}");
    assert_eq!(w.standin.token_requests(&w.client_id), 1);
    assert_eq!(w.standin.live_tokens(&w.client_id), 0);
    assert!(w.standin.issued_tokens().contains(&token));
}

#[test]
fn close_returns_within_eight_seconds_when_the_revoke_hangs() {
    // OpenTofu fails a run whose CloseEphemeralResource takes more than 10 s.
    let w = GenesysWorld::new("genesys/slow");
    w.standin.push_fault(
        genesys::route::REVOKE,
        Fault::Delay(std::time::Duration::from_secs(15)),
    );
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let r = p
            .open(
                "ccsecrets_genesys_token",
                genesys_config(&w, "genesys/slow"),
            )
            .await;
        assert_eq!(r.diagnostics, vec![]);
        let started = std::time::Instant::now();
        let d = p.close("ccsecrets_genesys_token", r.private).await;
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(9),
            "close took {took:?}"
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].1, "Could not revoke the Genesys Cloud token");
        assert!(
            d[0].2.contains("gave up after 7.")
                && d[0].2.contains("s waiting for Genesys Cloud at")
                && d[0].2.contains("(revoking a token)"),
            "{d:?}"
        );
        assert!(
            d[0].2
                .contains("The token stays valid until it expires at 20"),
            "{d:?}"
        );
        p.stop().await;
    });
    // The stand-in's delayed revocation completes on its own; the token was kept and tried
    // again at shutdown rather than forgotten.
    assert!(w.standin.revocations(&w.client_id) >= 1);
}

#[test]
fn renew_hands_back_the_private_bytes_so_close_still_releases() {
    // OpenTofu gives Close the private bytes of the latest Renew, even an empty one.
    let w = GenesysWorld::new("genesys/renew");
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let r = p
            .open(
                "ccsecrets_genesys_token",
                genesys_config(&w, "genesys/renew"),
            )
            .await;
        assert_eq!(r.diagnostics, vec![]);
        let renewed = p
            .client
            .renew_ephemeral_resource(pb::renew_ephemeral_resource::Request {
                type_name: "ccsecrets_genesys_token".into(),
                private: r.private.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(renewed.diagnostics.is_empty(), "{:?}", renewed.diagnostics);
        assert_eq!(renewed.private, r.private);
        let d = p.close("ccsecrets_genesys_token", renewed.private).await;
        assert_eq!(d, vec![]);
        assert_eq!(
            w.standin.live_tokens(&w.client_id),
            0,
            "released through the renewed bytes"
        );
        p.stop().await;
    });
}

#[test]
fn tokens_whose_close_never_came_are_revoked_at_shutdown() {
    let w = GenesysWorld::new("genesys/s");
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let r = p
            .open("ccsecrets_genesys_token", genesys_config(&w, "genesys/s"))
            .await;
        assert_eq!(r.diagnostics, vec![]);
        assert_eq!(w.standin.live_tokens(&w.client_id), 1);
        // Terraform skips Close when a dependent failed; Shutdown must clean up.
        p.stop().await;
    });
    assert_eq!(w.standin.live_tokens(&w.client_id), 0);
    assert_eq!(w.standin.revocations(&w.client_id), 1);
}

#[test]
fn stop_provider_interrupts_a_retry_wait_promptly() {
    let w = GenesysWorld::new("genesys/i");
    for _ in 0..20 {
        w.standin.push_fault(
            genesys::route::TOKEN,
            Fault::TooManyRequests { retry_after: 30 },
        );
    }
    rt().block_on(async {
        let mut p = InProcess::start().await;
        p.configure(Value::object([
            ("max_retries", Value::from(10)),
            ("open_timeout_seconds", Value::from(300)),
            (
                "vault",
                Value::object([
                    ("address", Value::from(w.bao.addr())),
                    ("token", Value::from("root")),
                ]),
            ),
        ]))
        .await;
        let mut stopper = p.client.clone();
        let started = Instant::now();
        let (r, _) = tokio::join!(
            p.open("ccsecrets_genesys_token", genesys_config(&w, "genesys/i")),
            async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                stopper
                    .stop_provider(pb::stop_provider::Request {})
                    .await
                    .unwrap()
            }
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.diagnostics[0].1, "Interrupted", "{:?}", r.diagnostics);
        p.stop().await;
    });
}
