//! `ccsecrets_cxone_token`: a NICE CXone access token minted with an access key and a
//! registered application's client credentials kept in Vault, plus the tenant's API endpoint.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::FutureExt;
use secrecy::ExposeSecret;

use super::attr::*;
use super::{
    AttemptError, Source, echo_or, expiry_values, handle_of, key_value, private_bytes,
    rotation_attributes, source_attributes, token_attributes, validate_source,
    with_rotation_fallback,
};
use crate::framework::{
    Attribute, Block, Config, Diagnostic, Diagnostics, EphemeralResource, Opened, Schema, Type,
    Value,
};
use crate::net;
use crate::platforms::cxone::{self, Credentials, CxoneToken, DEFAULT_ISSUER, PLATFORM};
use crate::platforms::pool::TokenPool;
use crate::provider::{Context, Shared};

const ACCESS_KEY_ID_KEY: &str = "access_key_id_key";
const ACCESS_KEY_SECRET_KEY: &str = "access_key_secret_key";
const CLIENT_ID_KEY: &str = "client_id_key";
const CLIENT_SECRET_KEY: &str = "client_secret_key";
const ISSUER: &str = "issuer";
const EXPECTED_TENANT_ID: &str = "expected_tenant_id";
const TENANT_ID: &str = "tenant_id";
const AREA: &str = "area";
const API_ENDPOINT: &str = "api_endpoint";
/// Private-bytes tag.
const TAG: u8 = b'C';

/// The four credential keys: (attribute, default key name).
const KEYS: [(&str, &str); 4] = [
    (ACCESS_KEY_ID_KEY, "access_key_id"),
    (ACCESS_KEY_SECRET_KEY, "access_key_secret"),
    (CLIENT_ID_KEY, "client_id"),
    (CLIENT_SECRET_KEY, "client_secret"),
];

pub(super) struct CxoneTokenResource {
    shared: Arc<Shared>,
}

impl CxoneTokenResource {
    pub(super) fn new(shared: &Arc<Shared>) -> Self {
        CxoneTokenResource {
            shared: Arc::clone(shared),
        }
    }

    fn pool(&self) -> &TokenPool<CxoneToken> {
        &self.shared.cxone
    }
}

fn schema() -> Schema {
    let mut attrs = source_attributes(
        "the access key and application credentials (keys `access_key_id`, `access_key_secret`, `client_id`, `client_secret`, optionally `issuer`)",
        "cxone/prod/pipeline",
    );
    for (name, default) in KEYS {
        attrs.push(Attribute::optional_computed(
            name,
            Type::String,
            format!(
                "Key of the secret that holds the {}. Default `{default}`.",
                default.replace('_', " ")
            ),
        ));
    }
    attrs.extend([
        Attribute::optional_computed(ISSUER, Type::String, format!("CXone authentication issuer (token endpoint `<issuer>/auth/token`), e.g. `https://cxone-gov.niceincontact.com` for FedRAMP. When not set, the secret's `issuer` key, else `{DEFAULT_ISSUER}`. https is required except to loopback hosts.")),
        Attribute::optional(EXPECTED_TENANT_ID, Type::String, "When set, the token's `tenantId` claim must equal it; otherwise the open fails. Guards against using one environment's access key in another."),
    ]);
    attrs.extend(rotation_attributes(PLATFORM));
    attrs.extend(token_attributes(PLATFORM));
    attrs.extend([
        Attribute::computed(
            TENANT_ID,
            Type::String,
            "The tenant id, from the token's `tenantId` claim.",
        ),
        Attribute::computed(
            AREA,
            Type::String,
            "The tenant's area (e.g. `na1`), from the cxone-configuration discovery document.",
        ),
        Attribute::computed(
            API_ENDPOINT,
            Type::String,
            "The tenant's API base URL (e.g. `https://api-na1.niceincontact.com`), from discovery.",
        ),
    ]);
    Schema::new(Block::new(
        "Mints a NICE CXone access token (OAuth password grant with an access key) from credentials stored in Vault, and discovers the tenant's API endpoint. The token is an ephemeral value, never written to plan or state. CXone documents no revocation for these tokens; they expire after their lifetime (one hour by default).",
        attrs,
    ))
}

fn issuer_of(
    config: &Config,
    secret: &crate::vault::KvSecret,
    src: &Source,
) -> Result<url::Url, Diagnostic> {
    if let Some(raw) = config.string(ISSUER) {
        return net::base_url(&raw).map_err(|e| {
            Diagnostic::error("Invalid issuer", format!("{e}.")).at(config.path(ISSUER))
        });
    }
    match secret.data.non_empty(ISSUER) {
        Some(raw) => net::base_url(raw.expose_secret()).map_err(|e| {
            Diagnostic::error(
                "Invalid issuer",
                format!("The `issuer` key of the secret at {}: {e}.", src.display()),
            )
            .at(config.path(PATH))
        }),
        None => net::base_url(DEFAULT_ISSUER)
            .map_err(|e| Diagnostic::error("Invalid issuer", e.to_string())),
    }
}

#[async_trait]
impl EphemeralResource<Context> for CxoneTokenResource {
    fn type_name(&self) -> &'static str {
        "ccsecrets_cxone_token"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        let mut d = validate_source(config);
        if let Some(raw) = config.string(ISSUER) {
            if let Err(e) = net::base_url(&raw) {
                d.push(
                    Diagnostic::error("Invalid issuer", format!("{e}.")).at(config.path(ISSUER)),
                );
            }
        }
        for (name, _) in KEYS {
            if config.get(name).as_str().is_some_and(str::is_empty) {
                d.push(
                    Diagnostic::error(
                        format!("Invalid {name}"),
                        format!("`{name}` must name a key of the secret."),
                    )
                    .at(config.path(name)),
                );
            }
        }
        d
    }

    async fn open(&self, ctx: &Context, config: &Config) -> Result<Opened, Diagnostics> {
        let src = Source::from_config(config, ctx)?;
        let budget = ctx.budget();
        let keys: Vec<(&str, String)> = KEYS
            .iter()
            .map(|(attr, default)| {
                (
                    *attr,
                    config.string(attr).unwrap_or_else(|| (*default).to_owned()),
                )
            })
            .collect();
        let fallback = config.bool(ROTATION_FALLBACK).unwrap_or(true);

        let rotated = with_rotation_fallback(ctx, &budget, &src, fallback, PLATFORM, |secret| {
            let (src, keys, budget) = (&src, &keys, &budget);
            async move {
                let value = |i: usize| {
                    key_value(&secret, src, &keys[i].1, keys[i].0).map_err(AttemptError::Input)
                };
                let creds = Arc::new(Credentials {
                    access_key_id: value(0)?,
                    access_key_secret: value(1)?,
                    client_id: value(2)?,
                    client_secret: value(3)?,
                });
                let issuer = issuer_of(config, &secret, src).map_err(AttemptError::Input)?;
                let names: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
                let key = format!(
                    "{}|{}|{}|v{}|{}|{issuer}",
                    ctx.vault_id,
                    src.mount,
                    src.path,
                    secret.metadata.version,
                    names.join(",")
                );
                let (http, policy, budget, iss) = (
                    ctx.http.clone(),
                    ctx.retry.clone(),
                    budget.clone(),
                    issuer.clone(),
                );
                let lease = self
                    .pool()
                    .acquire(&key, move || {
                        let (http, policy, budget, iss, creds) = (
                            http.clone(),
                            policy.clone(),
                            budget.clone(),
                            iss.clone(),
                            Arc::clone(&creds),
                        );
                        async move { cxone::mint(&http, &iss, &creds, &policy, &budget).await }
                            .boxed()
                    })
                    .await
                    .map_err(AttemptError::Platform)?;
                Ok((lease, issuer))
            }
        })
        .await?;
        let (lease, issuer) = rotated.value;
        let token = &lease.token;

        if let Some(expected) = config.string(EXPECTED_TENANT_ID) {
            if !token.tenant_id.eq_ignore_ascii_case(expected.trim()) {
                let _ = self.pool().release(lease.handle).await;
                return Err(Diagnostic::error(
                    "Token belongs to another NICE CXone tenant",
                    format!(
                        "The credentials at {} (version {}) minted a token for tenant {}, but `expected_tenant_id` is {expected}. The token was not used. Check that the path points at this environment's access key.",
                        src.display(),
                        rotated.used,
                        token.tenant_id
                    ),
                )
                .at(config.path(EXPECTED_TENANT_ID))
                .into());
            }
        }

        let mut result: Vec<(&str, Value)> = src.result_values(rotated.latest).into();
        result.extend(keys.into_iter().map(|(attr, key)| (attr, Value::from(key))));
        result.extend([
            (
                ISSUER,
                echo_or(
                    config,
                    ISSUER,
                    Value::from(issuer.as_str().trim_end_matches('/').to_owned()),
                ),
            ),
            (EXPECTED_TENANT_ID, config.get(EXPECTED_TENANT_ID).clone()),
            (ROTATION_FALLBACK, Value::from(fallback)),
            (CREDENTIAL_VERSION, Value::from(rotated.used)),
            (ACCESS_TOKEN, Value::Secret(token.access_token.clone())),
            (TOKEN_TYPE, Value::from(token.token_type.clone())),
            (TENANT_ID, Value::from(token.tenant_id.clone())),
            (AREA, Value::from(token.area.clone())),
            (API_ENDPOINT, Value::from(token.api_endpoint.clone())),
        ]);
        result.extend(expiry_values(token.expires_at));
        Ok(Opened {
            result: Value::object(result),
            private: Some(private_bytes(TAG, lease.handle)),
            renew_at: None,
            warnings: rotated.warning.into_iter().collect(),
        })
    }

    async fn close(&self, private: &[u8]) -> Diagnostics {
        if let Some(handle) = handle_of(TAG, private) {
            // Not revocable: releasing only lets the pool know no block uses it any more.
            let _ = self.pool().release(handle).await;
        }
        Diagnostics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{KvSecret, SecretData};

    fn secret(json: &str) -> KvSecret {
        KvSecret {
            data: serde_json::from_str::<SecretData>(json).unwrap(),
            metadata: Default::default(),
        }
    }

    fn src() -> Source {
        Source {
            mount: "secret".into(),
            config_path: "c".into(),
            path: "c".into(),
            version: None,
        }
    }

    #[test]
    fn issuer_comes_from_attribute_then_secret_then_default() {
        let none = Config::new(Value::object::<_, &str>([]));
        let with = Config::new(Value::object([(
            ISSUER,
            Value::from("https://cxone-gov.niceincontact.com"),
        )]));
        assert_eq!(
            issuer_of(&with, &secret(r#"{"issuer":"https://x.example"}"#), &src())
                .unwrap()
                .host_str(),
            Some("cxone-gov.niceincontact.com")
        );
        assert_eq!(
            issuer_of(
                &none,
                &secret(r#"{"issuer":"https://nicecxone-sov1.eu"}"#),
                &src()
            )
            .unwrap()
            .host_str(),
            Some("nicecxone-sov1.eu")
        );
        assert_eq!(
            issuer_of(&none, &secret("{}"), &src()).unwrap().as_str(),
            "https://cxone.niceincontact.com/"
        );
        let e = issuer_of(
            &none,
            &secret(r#"{"issuer":"http://evil.example"}"#),
            &src(),
        )
        .unwrap_err();
        assert_eq!(e.attribute.unwrap().to_string(), "path");
    }
}
