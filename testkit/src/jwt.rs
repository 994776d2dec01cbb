//! An ES256 (P-256) signer for test JWTs: a fresh key whose public half OpenBao's JWT auth
//! trusts (`jwt_validation_pubkeys`), and compact JWS tokens over arbitrary claims.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// A P-256 key that signs JWTs with ES256.
#[derive(Debug)]
pub struct JwtSigner {
    key: EcdsaKeyPair,
    kid: String,
}

impl JwtSigner {
    /// A signer with a freshly generated key.
    pub fn new() -> JwtSigner {
        JwtSigner {
            key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("generate a P-256 key"),
            kid: format!("test-{:08x}", fastrand::u32(..)),
        }
    }

    /// The public key as an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as OpenBao's
    /// `jwt_validation_pubkeys` takes it.
    pub fn public_key_pem(&self) -> String {
        let der = self
            .key
            .public_key()
            .as_der()
            .expect("encode the public key as SPKI DER");
        let b64 = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// A compact JWS (`header.claims.signature`, base64url without padding) over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // The FIXED algorithm gives JWS's 64-byte r||s form, not ASN.1 DER.
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("sign");
        assert_eq!(sig.as_ref().len(), 64, "ES256 signatures are r||s");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

impl Default for JwtSigner {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds since the Unix epoch, for `iat`, `nbf` and `exp`.
pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit in i64")
}

/// Claims of a CI job's OIDC token: `sub` and `aud` as given, issued now, valid for
/// `valid_for` seconds (negative: expired that long ago).
pub fn ci_claims(sub: &str, aud: &str, valid_for: i64) -> Value {
    let now = now();
    json!({
        "iss": "https://ci.example.com",
        "sub": sub,
        "aud": aud,
        "iat": now.min(now + valid_for) - 5,
        "nbf": now.min(now + valid_for) - 5,
        "exp": now + valid_for,
    })
}

/// Decodes the claims of a compact JWS without checking the signature (for tests that read
/// what they made).
pub fn claims_of(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn tokens_verify_with_the_published_key() {
        let s = JwtSigner::new();
        let jwt = s.sign(&ci_claims("repo:acme/app", "bao", 60));
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!jwt.contains('='), "no padding");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims_of(&jwt).unwrap()["aud"], "bao");
        // Verify against the key taken back out of the PEM.
        let pem = s.public_key_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let spki = STANDARD.decode(b64).unwrap();
        // SPKI of a P-256 key: 26 bytes of algorithm prefix, then the 65-byte point.
        assert_eq!(spki.len(), 91);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &spki[26..])
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("signature verifies");
        // A different key does not.
        let other = JwtSigner::new();
        let forged = other.sign(&ci_claims("x", "bao", 60));
        let fparts: Vec<&str> = forged.split('.').collect();
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &spki[26..])
                .verify(
                    format!("{}.{}", fparts[0], fparts[1]).as_bytes(),
                    &URL_SAFE_NO_PAD.decode(fparts[2]).unwrap()
                )
                .is_err()
        );
    }

    #[test]
    fn expired_claims_are_in_the_past() {
        let c = ci_claims("s", "a", -3600);
        assert!(c["exp"].as_i64().unwrap() < now() - 3000);
        assert!(c["iat"].as_i64().unwrap() < c["exp"].as_i64().unwrap());
    }
}
