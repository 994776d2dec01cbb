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

/// What configure learned: the organization the token belongs to.
#[derive(Debug)]
pub struct Org {
    id: String,
    name: String,
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
                Attribute::optional("access_token", Type::String, "Access token.").sensitive(),
                Attribute::optional("aws_region", Type::String, "Region."),
                Attribute::optional("oauthclient_id", Type::String, "Client id (unused here)."),
                Attribute::optional(
                    "oauthclient_secret",
                    Type::String,
                    "Client secret (unused here).",
                )
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
        // As the real provider: the attribute, else GENESYSCLOUD_ACCESS_TOKEN (a non-empty
        // token wins over client credentials); the region likewise from GENESYSCLOUD_REGION.
        let token = config
            .secret("access_token")
            .or_else(|| {
                std::env::var("GENESYSCLOUD_ACCESS_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty())
                    .map(secrecy::SecretString::from)
            })
            .ok_or_else(|| fail("access_token is not set".into()))?;
        let region = config
            .string("aws_region")
            .map(|r| r.to_owned())
            .or_else(|| std::env::var("GENESYSCLOUD_REGION").ok());
        if region.is_none() {
            return Err(fail("aws_region is not set".into()));
        }
        let base =
            std::env::var(API_URL_ENV).map_err(|_| fail(format!("{API_URL_ENV} is not set")))?;
        let resp = reqwest::Client::new()
            .get(format!("{base}/api/v2/organizations/me"))
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!(
                "GET /api/v2/organizations/me answered {}",
                resp.status()
            )));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| fail(e.to_string()))?;
        Ok((
            Org {
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                name: v["name"].as_str().unwrap_or_default().to_owned(),
            },
            Diagnostics::new(),
        ))
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

    async fn read(&self, org: &Org, _config: &Config) -> Result<(Value, Diagnostics), Diagnostics> {
        Ok((
            Value::object([
                ("id", Value::from(org.id.clone())),
                ("name", Value::from(org.name.clone())),
            ]),
            Diagnostics::new(),
        ))
    }
}
