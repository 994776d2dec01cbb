//! Real consumers and strict platforms: a client without the client-credentials grant, a
//! throttled revocation, short-lived tokens, a late open, CXone's two answers to a bad access
//! key, and the per-token API limit the genesyscloud provider runs into.

use std::time::{Duration, Instant};

use ccsecrets::framework::Value;
use ccsecrets_testkit::Fault;
use ccsecrets_testkit::cxone;
use ccsecrets_testkit::genesys;
use serde_json::json;

use crate::grpc::{configured, genesys_config, rt};
use crate::support::*;

#[test]
fn a_client_without_the_client_credentials_grant_is_refused_once() {
    let w = GenesysWorld::new("genesys/nogrant");
    let (id, secret) = ("client-nogrant", secret_value("nogrant"));
    w.standin.add_client_without_grant(id, &secret, "org-x");
    w.bao.kv_put(
        "genesys/nogrant",
        json!({"client_id": id, "client_secret": secret}),
    );
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let r = p
            .open(
                "ccsecrets_genesys_token",
                genesys_config(&w, "genesys/nogrant"),
            )
            .await;
        assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
        let (_, summary, detail, path) = &r.diagnostics[0];
        assert_eq!(summary, "Genesys Cloud refused the token request");
        assert!(detail.contains("HTTP 400 unauthorized_client: client is not authorized to use the client credentials grant"), "{detail}");
        assert_eq!(path, "path");
        p.stop().await;
    });
    // Not a rejected credential: no retry, no rotation fallback.
    assert_eq!(w.standin.token_requests(id), 1);
}

#[test]
fn a_throttled_revocation_waits_as_told_and_succeeds() {
    let w = GenesysWorld::new("genesys/throttle");
    w.standin.push_fault(
        genesys::route::REVOKE,
        Fault::TooManyRequests { retry_after: 1 },
    );
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let r = p
            .open(
                "ccsecrets_genesys_token",
                genesys_config(&w, "genesys/throttle"),
            )
            .await;
        assert_eq!(r.diagnostics, vec![]);
        let started = Instant::now();
        let d = p.close("ccsecrets_genesys_token", r.private).await;
        assert_eq!(d, vec![]);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "honoured Retry-After"
        );
        assert_eq!(w.standin.live_tokens(&w.client_id), 0);
        p.stop().await;
    });
}

#[test]
fn a_short_lived_token_warns_with_its_lifetime_in_terraform() {
    let w = GenesysWorld::new("genesys/short");
    w.standin.set_token_lifetime(300);
    let wd = w.workdir();
    wd.file("main.tf", &w.token_config("", "genesys/short", "", ""));
    wd.plan().assert_ok().assert_says(&[
        "Warning: Short-lived Genesys Cloud token",
        "The token lives 300 seconds.",
        "accessTokenValiditySeconds",
    ]);
}

#[test]
fn a_late_open_gets_a_fresh_token_not_one_about_to_expire() {
    let w = GenesysWorld::new("genesys/late");
    w.standin.set_token_lifetime(4);
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let text = |v: &Value| match v {
            Value::Secret(s) => secrecy::ExposeSecret::expose_secret(s).to_owned(),
            other => panic!("{other:?}"),
        };
        let first = p
            .open(
                "ccsecrets_genesys_token",
                genesys_config(&w, "genesys/late"),
            )
            .await;
        let soon = p
            .open(
                "ccsecrets_genesys_token",
                genesys_config(&w, "genesys/late"),
            )
            .await;
        assert_eq!(
            text(first.result.get("access_token")),
            text(soon.result.get("access_token")),
            "shared while fresh"
        );
        // Past half its life (the default reuse_min_remaining_percent of 50): a new one.
        tokio::time::sleep(Duration::from_millis(2300)).await;
        let late = p
            .open(
                "ccsecrets_genesys_token",
                genesys_config(&w, "genesys/late"),
            )
            .await;
        assert_ne!(
            text(first.result.get("access_token")),
            text(late.result.get("access_token"))
        );
        assert_eq!(w.standin.tokens_issued(&w.client_id), 2);
        p.stop().await;
    });
}

#[test]
fn a_bad_cxone_access_key_is_rejected_whether_401_or_400_and_falls_back() {
    let w = CxoneWorld::new("cxone/rot");
    // The latest version holds a wrong access key secret; the previous one is good.
    let good = json!({"access_key_id": w.access_key_id, "access_key_secret": w.access_key_secret,
                      "client_id": w.client_id, "client_secret": w.client_secret});
    let mut bad = good.clone();
    bad["access_key_secret"] = json!("wrong-secret==");
    w.bao.kv_put("cxone/rot", bad);
    rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let config = Value::object([
            ("path", Value::from("cxone/rot")),
            ("issuer", Value::from(w.standin.url())),
        ]);
        // 401 invalid_grant (the stand-in's answer), then 400 invalid_grant (a fault).
        let r = p.open("ccsecrets_cxone_token", config.clone()).await;
        assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
        assert!(
            r.diagnostics[0].2.contains("rejected the credential in version 2 of secret/cxone/rot (invalid_grant), so version 1 was used"),
            "{:?}",
            r.diagnostics
        );
        assert_eq!(r.diagnostics[0].1, "Used the previous credential version (rotation in progress?)");
        assert_eq!(r.result.get("credential_version"), &Value::from(1));
        w.standin.push_fault(
            cxone::route::TOKEN,
            Fault::Status(400, json!({"error": "invalid_grant", "errorDescription": "Invalid access key"})),
        );
        let fresh = Value::object([
            ("path", Value::from("cxone/rot")),
            ("issuer", Value::from(w.standin.url())),
            ("reuse_min_remaining_percent", Value::from(100)),
        ]);
        let r = p.open("ccsecrets_cxone_token", fresh).await;
        assert_eq!(r.diagnostics[0].1, "Used the previous credential version (rotation in progress?)", "{:?}", r.diagnostics);
        p.stop().await;
    });
}

#[test]
fn the_genesys_api_limits_calls_per_token_with_429_and_retry_after() {
    let w = GenesysWorld::new("genesys/limit");
    w.standin.set_api_limit(3, Duration::from_secs(2));
    let token = rt().block_on(async {
        let mut p = configured(&w.bao.addr()).await;
        let mut config = genesys_config(&w, "genesys/limit");
        if let Value::Map(m) = &mut config {
            m.insert("revoke_on_close".into(), Value::from(false));
        }
        let r = p.open("ccsecrets_genesys_token", config).await;
        p.stop().await;
        match r.result.get("access_token") {
            Value::Secret(s) => secrecy::ExposeSecret::expose_secret(s).to_owned(),
            other => panic!("{other:?}"),
        }
    });
    rt().block_on(async {
        let http = reqwest::Client::new();
        let call = || {
            http.get(format!("{}/api/v2/organizations/me", w.standin.url()))
                .bearer_auth(&token)
                .send()
        };
        for _ in 0..3 {
            assert_eq!(call().await.unwrap().status().as_u16(), 200);
        }
        let throttled = call().await.unwrap();
        assert_eq!(throttled.status().as_u16(), 429);
        let after: u64 = throttled.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&after), "{after}");
        tokio::time::sleep(Duration::from_secs(after)).await;
        assert_eq!(call().await.unwrap().status().as_u16(), 200);
    });
    assert_eq!(w.standin.throttled_calls(), 1);
}
