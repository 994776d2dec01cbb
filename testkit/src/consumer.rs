//! A stand-in for the `genesyscloud` provider, the consumer of ccsecrets tokens: its provider
//! block takes `access_token` and `aws_region` like the real one, checks the token against
//! the Genesys stand-in's `GET /api/v2/organizations/me` when configured, and offers the data
//! source `genesyscloud_organizations_me`. Built on ccsecrets' own framework.

use std::sync::Arc;

use async_trait::async_trait;
use ccsecrets::framework::{
    Attribute, Block, Config, DataSource, Diagnostic, Diagnostics, EphemeralResource, Provider,
    Schema, Type, Value,
};
use secrecy::ExposeSecret;

/// The variable that tells the stand-in consumer where the Genesys stand-in API is (the real
/// provider derives it from `aws_region`).
pub const API_URL_ENV: &str = "GENESYSCLOUD_STANDIN_API_URL";

/// The consumer provider.
#[derive(Debug, Default)]
pub struct GenesysCloudConsumer;

/// What configure set up: where the API is and the token to call it with.
pub struct Org {
    base: String,
    token: secrecy::SecretString,
}

impl std::fmt::Debug for Org {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Org")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `GET <base><path>` with the token, as JSON; a failure as the real provider would word it.
async fn get_json(
    base: &str,
    path: &str,
    token: &secrecy::SecretString,
) -> Result<serde_json::Value, String> {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("GET {path} answered {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

#[async_trait]
impl Provider for GenesysCloudConsumer {
    type Context = Org;

    fn type_name(&self) -> &'static str {
        "genesyscloud"
    }

    fn schema(&self) -> Schema {
        Schema::new(Block::new(
            "Stand-in genesyscloud provider.",
            vec![
                // Not sensitive: the real provider's schema does not mark it either.
                Attribute::optional("access_token", Type::String, "Access token."),
                Attribute::optional("aws_region", Type::String, "Region."),
                Attribute::optional("oauthclient_id", Type::String, "Client id."),
                Attribute::optional("oauthclient_secret", Type::String, "Client secret.")
                    .sensitive(),
            ],
        ))
    }

    async fn configure(
        &self,
        _tf: &str,
        config: &Config,
    ) -> Result<(Org, Diagnostics), Diagnostics> {
        let fail = |detail: String| {
            Diagnostics::from(Diagnostic::error(
                "Failed to authenticate with Genesys Cloud",
                detail,
            ))
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        // As the real provider: each attribute, else its GENESYSCLOUD_* variable.
        let region = config
            .string("aws_region")
            .map(|r| r.to_owned())
            .or_else(|| env("GENESYSCLOUD_REGION"))
            .ok_or_else(|| fail("aws_region is not set".into()))?;
        if ccsecrets_core::platform::regions::domain_of(&region).is_none() {
            return Err(fail(format!(
                "aws_region {region:?} is not a Genesys Cloud region"
            )));
        }
        let base =
            std::env::var(API_URL_ENV).map_err(|_| fail(format!("{API_URL_ENV} is not set")))?;
        // A non-empty token (HCL or environment) wins over client credentials, silently.
        let token = match config
            .string("access_token")
            .map(|t| t.to_owned())
            .or_else(|| env("GENESYSCLOUD_ACCESS_TOKEN"))
        {
            Some(t) => secrecy::SecretString::from(t),
            None => {
                let id = config
                    .string("oauthclient_id")
                    .map(|t| t.to_owned())
                    .or_else(|| env("GENESYSCLOUD_OAUTHCLIENT_ID"));
                let secret = config
                    .secret("oauthclient_secret")
                    .map(|s| s.expose_secret().to_owned())
                    .or_else(|| env("GENESYSCLOUD_OAUTHCLIENT_SECRET"));
                let (Some(id), Some(secret)) = (id, secret) else {
                    return Err(fail("no access_token and no client credentials".into()));
                };
                let resp = reqwest::Client::new()
                    .post(format!("{base}/oauth/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(fail(format!("login answered {}", resp.status())));
                }
                let v: serde_json::Value = resp.json().await.map_err(|e| fail(e.to_string()))?;
                secrecy::SecretString::from(
                    v["access_token"].as_str().unwrap_or_default().to_owned(),
                )
            }
        };
        // What the real provider does at configure.
        for path in ["/api/v2/organizations/me", "/api/v2/authorization/products"] {
            get_json(&base, path, &token).await.map_err(fail)?;
        }
        Ok((Org { base, token }, Diagnostics::new()))
    }

    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource<Org>>> {
        Vec::new()
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource<Org>>> {
        vec![Arc::new(OrganizationsMe)]
    }
}

struct OrganizationsMe;

#[async_trait]
impl DataSource<Org> for OrganizationsMe {
    fn type_name(&self) -> &'static str {
        "genesyscloud_organizations_me"
    }

    fn schema(&self) -> Schema {
        Schema::new(Block::new(
            "The organization of the token.",
            vec![
                Attribute::computed("id", Type::String, "Organization id."),
                Attribute::computed("name", Type::String, "Organization name."),
            ],
        ))
    }

    /// Calls the API on every read, as the real data source does: a token revoked too early
    /// fails here.
    async fn read(&self, org: &Org, _config: &Config) -> Result<(Value, Diagnostics), Diagnostics> {
        let v = get_json(&org.base, "/api/v2/organizations/me", &org.token)
            .await
            .map_err(|e| {
                Diagnostics::from(Diagnostic::error("Failed to read the organization", e))
            })?;
        Ok((
            Value::object([
                (
                    "id",
                    Value::from(v["id"].as_str().unwrap_or_default().to_owned()),
                ),
                (
                    "name",
                    Value::from(v["name"].as_str().unwrap_or_default().to_owned()),
                ),
            ]),
            Diagnostics::new(),
        ))
    }
}
