//! Entry points for the fuzz targets in `fuzz/` and for the corpus smoke test: each feeds
//! untrusted bytes to one parser the way the core does, and panics when a promise the parser
//! makes is broken. Not an API.

use crate::net::Attempt;

/// Feeds `data` to everything a platform's answer goes through: a token endpoint's body and
/// what minting does with its numbers (lifetime, expiry, its RFC 3339 form), error bodies
/// under every status class (single line, no control characters, never a value that was
/// sent), a `Retry-After` header, a CXone discovery document, and a JWT's claims.
pub fn platform_response(data: &[u8]) {
    use crate::platform::{self, cxone};
    let url = url::Url::parse("https://login.example.com/oauth/token").expect("static URL");
    match platform::parse_token("fuzz", &url, data) {
        Err(e) => assert_clean(&e.to_string(), &[]),
        Ok(token) => {
            for default in [86_400, 3_600] {
                let life = platform::lifetime(token.expires_in, default);
                assert!(life <= platform::MAX_TOKEN_LIFETIME);
                assert!(!platform::rfc3339(platform::expiry(life)).is_empty());
            }
        }
    }
    const SENT: &str = "fuzz-sent-secret";
    for status in [200, 400, 401, 429, 500, 503, 302] {
        match platform::classify("fuzz", &url, status, data, None, &[SENT]) {
            Attempt::Done(()) => {}
            Attempt::Retry { error, after } | Attempt::Throttled { error, after } => {
                assert_clean(&error.to_string(), &[SENT]);
                assert!(after.is_none());
            }
            Attempt::Fail(error) => assert_clean(&error.to_string(), &[SENT]),
        }
    }
    if let Ok(v) = reqwest::header::HeaderValue::from_bytes(data) {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, v);
        if let Some(after) = crate::net::retry_after(&h) {
            assert!(after <= crate::net::MAX_RETRY_AFTER);
        }
    }
    match cxone::check_discovery(data) {
        Ok(d) => {
            crate::net::base_url(&d.api_endpoint).expect("a checked api_endpoint is a base URL");
            assert!(!d.area.chars().any(char::is_control));
        }
        Err(e) => assert_clean(&e, &[]),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cxone::tenant_id(&secrecy::SecretString::from(text));
        assert_clean(&crate::net::redact_url(text), &[]);
    }
}

/// Feeds `data` to a Vault login or renewal answer: the lease numbers must never overflow.
pub fn vault_login(data: &[u8]) {
    crate::store::vault::fuzz_login(data);
}

/// Parses `data` as Vault's KV v2 read, metadata and error bodies.
pub fn vault_response(data: &[u8]) {
    use secrecy::ExposeSecret;
    if let Ok(read) = serde_json::from_slice::<crate::store::vault::kv::ReadBody>(data) {
        if let Some(secret) = read.data.and_then(|d| d.data) {
            // The whole-object JSON (`data_json`) must be JSON again.
            serde_json::from_str::<serde_json::Value>(secret.json().expose_secret())
                .expect("the secret's JSON text parses");
        }
    }
    if let Ok(md) = serde_json::from_slice::<crate::store::vault::kv::MetadataBody>(data) {
        if let Some(md) = md.data {
            let _ = md.previous_live(md.current_version);
        }
    }
    let message = crate::store::vault::error_message(data);
    assert_clean(&message, &[]);
    assert!(
        message.chars().count() <= 301,
        "the error message is bounded"
    );
}

/// A message built from a server's text: one line, no control characters, no value that was
/// sent.
fn assert_clean(message: &str, sent: &[&str]) {
    assert!(
        !message.chars().any(char::is_control),
        "a message from a server's body has no control characters: {message:?}"
    );
    for s in sent {
        assert!(
            !message.contains(s),
            "a sent value is redacted: {message:?}"
        );
    }
}
