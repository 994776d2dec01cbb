//! Entry points for the fuzz targets in `fuzz/` and for the corpus smoke test: each feeds
//! untrusted bytes to one parser the way the provider does. Not an API.

use crate::framework::{self, Provider};

/// Decodes `data` as a DynamicValue of every schema the provider has, as msgpack and JSON,
/// and re-encodes whatever decodes.
pub fn dynamic_value(data: &[u8]) {
    let provider = crate::provider();
    let mut blocks = vec![provider.schema().block];
    blocks.extend(provider.ephemeral_resources().iter().map(|r| r.schema().block));
    blocks.extend(provider.data_sources().iter().map(|r| r.schema().block));
    for block in &blocks {
        if let Ok(v) = framework::decode_msgpack(data, block) {
            // A decoded value must encode again (unknowns included).
            let _ = framework::encode_msgpack(&v, block);
        }
        let _ = framework::decode_json(data, block);
    }
}

/// Parses `data` as a platform token endpoint's body and error body, under every status class.
pub fn platform_response(data: &[u8]) {
    let url = url::Url::parse("https://login.example.com/oauth/token").expect("static URL");
    let _ = crate::platforms::parse_token("fuzz", &url, data);
    for status in [200, 400, 401, 429, 500, 503, 302] {
        let _ = crate::platforms::classify("fuzz", &url, status, data, None);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::platforms::cxone::tenant_id(&secrecy::SecretString::from(text));
    }
}

/// Parses `data` as Vault's KV v2 read, metadata and error bodies.
pub fn vault_response(data: &[u8]) {
    let _ = serde_json::from_slice::<crate::vault::kv::ReadBody>(data);
    if let Ok(md) = serde_json::from_slice::<crate::vault::kv::MetadataBody>(data) {
        if let Some(md) = md.data {
            let _ = md.previous_live(md.current_version);
        }
    }
    let _ = crate::vault::error_message(data);
}
