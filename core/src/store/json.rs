//! Secrets kept as one JSON object in a text value (AWS Secrets Manager's `SecretString`,
//! an Azure Key Vault secret's value): the same keys as a Vault KV secret.

use secrecy::{ExposeSecret, SecretString};

use super::SecretData;
use crate::error::Problem;

/// The keys a credential secret usually has, for the diagnostic's example.
const EXAMPLE: &str = r#"{"client_id": "...", "client_secret": "...", "region": "eu-west-1"}"#;

/// Parses a secret's text as a JSON object. A value that is not one gets a diagnostic that
/// says what shape is expected (never quoting the value).
pub(crate) fn object(text: &SecretString, store: &str, what: &str) -> Result<SecretData, Problem> {
    let trimmed = text.expose_secret().trim_start();
    let shape = match trimmed.as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<SecretData>(text.expose_secret()) {
            Ok(data) => return Ok(data),
            Err(e) => format!(
                "is not valid JSON (at line {}, column {})",
                e.line(),
                e.column()
            ),
        },
        None => "is empty".to_owned(),
        Some(b'[') => "is a JSON array".to_owned(),
        Some(b'"') => "is a JSON string".to_owned(),
        Some(_) => "is plain text, not JSON".to_owned(),
    };
    Err(Problem::error(
        "Secret is not a JSON object",
        format!(
            "The value of {what} in {store} {shape}. ccsecrets expects the secret's value to be one JSON object of text keys, as in Vault, e.g. {EXAMPLE} (the `*_key` attributes name other keys)."
        ),
    )
    .at_attr("path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_parse_and_other_shapes_are_named_without_the_value() {
        let ok = object(&SecretString::from(r#"{"client_id":"a","n":1}"#), "S", "x").unwrap();
        assert_eq!(ok.get("client_id").unwrap().expose_secret(), "a");
        for (text, shape) in [
            ("hunter2", "plain text"),
            ("[\"hunter2\"]", "JSON array"),
            ("\"hunter2\"", "JSON string"),
            ("", "is empty"),
            ("{\"client_secret\": \"hunter2\"", "not valid JSON"),
        ] {
            let p = object(&SecretString::from(text), "S", "x").unwrap_err();
            assert!(p.detail.contains(shape), "{text}: {}", p.detail);
            assert!(!p.detail.contains("hunter2"), "{}", p.detail);
        }
    }
}
