//! Entry points for the fuzz targets in `fuzz/` and for the corpus smoke test: each feeds
//! untrusted bytes to one parser the way the core does, and panics when a promise the parser
//! makes is broken. Not an API.

use crate::net::Attempt;

/// Parses `data` as a platform token endpoint's body and error body, under every status class.
/// Error messages must stay single-line, whatever the body says.
pub fn platform_response(data: &[u8]) {
    let url = url::Url::parse("https://login.example.com/oauth/token").expect("static URL");
    if let Err(e) = crate::platform::parse_token("fuzz", &url, data) {
        assert_one_line(&e.to_string());
    }
    for status in [200, 400, 401, 429, 500, 503, 302] {
        match crate::platform::classify("fuzz", &url, status, data, None) {
            Attempt::Done(()) => {}
            Attempt::Retry { error, .. } | Attempt::Fail(error) => {
                assert_one_line(&error.to_string());
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::platform::cxone::tenant_id(&secrecy::SecretString::from(text));
    }
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
    assert_one_line(&message);
    assert!(
        message.chars().count() <= 301,
        "the error message is bounded"
    );
}

fn assert_one_line(message: &str) {
    assert!(
        !message.contains(['\n', '\r']),
        "a message from a server's body stays on one line: {message:?}"
    );
}
