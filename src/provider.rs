//! The ccsecrets provider: its configuration schema, configuration read into the core's
//! typed settings (the environment fallbacks live there), and the list of what it offers.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ccsecrets_core::Core;
use ccsecrets_core::pool::Pools;
use ccsecrets_core::settings::{
    ENVIRONMENT_ENV, KUBERNETES_JWT_FILE, OPEN_TIMEOUT, RETRIES, Settings, TIMEOUT,
};
use tokio_util::sync::CancellationToken;

use crate::framework::{
    Attribute, Block, Config, DataSource, Diagnostic, Diagnostics, EphemeralResource, NestedBlock,
    Provider, Schema, Type, decode,
};
use crate::resources;
pub use crate::resources::Context;

/// Provider attribute and block names, used by the schema, configuration and docs alike.
pub(crate) mod names {
    pub(crate) const ENVIRONMENT: &str = "environment";
    pub(crate) const TIMEOUT_SECONDS: &str = "timeout_seconds";
    pub(crate) const MAX_RETRIES: &str = "max_retries";
    pub(crate) const OPEN_TIMEOUT_SECONDS: &str = "open_timeout_seconds";
    pub(crate) const VAULT: &str = "vault";
    pub(crate) const ADDRESS: &str = "address";
    pub(crate) const TOKEN: &str = "token";
    pub(crate) const TOKEN_FILE: &str = "token_file";
    pub(crate) const NAMESPACE: &str = "namespace";
    pub(crate) const CA_CERT_FILE: &str = "ca_cert_file";
    pub(crate) const SKIP_TLS_VERIFY: &str = "skip_tls_verify";
    pub(crate) const AUTH_APPROLE: &str = "auth_approle";
    pub(crate) const AUTH_JWT: &str = "auth_jwt";
    pub(crate) const AUTH_KUBERNETES: &str = "auth_kubernetes";
    pub(crate) const MOUNT: &str = "mount";
    pub(crate) const ROLE: &str = "role";
    pub(crate) const ROLE_ID: &str = "role_id";
    pub(crate) const SECRET_ID: &str = "secret_id";
    pub(crate) const SECRET_ID_FILE: &str = "secret_id_file";
    pub(crate) const JWT: &str = "jwt";
    pub(crate) const JWT_FILE: &str = "jwt_file";
    pub(crate) const JWT_ENV: &str = "jwt_env";
}
use names::*;

/// State shared by every configuration of one provider process: the token pools (tokens must
/// be revocable at close and at shutdown, whatever configuration minted them) and the
/// configured cores, whose store sessions end at shutdown.
#[derive(Debug, Default)]
struct Shared {
    pools: Arc<Pools>,
    cancel: CancellationToken,
    cores: Mutex<Vec<Core>>,
}

/// The ccsecrets provider.
#[derive(Debug, Default)]
pub struct CcsecretsProvider {
    shared: Shared,
}

impl CcsecretsProvider {
    /// A provider with empty token pools.
    pub fn new() -> Self {
        Self::default()
    }
}

fn schema() -> Schema {
    let approle = Block::new(
        "Log in to Vault with AppRole: a `role_id` and a `secret_id` (from a value or a file).",
        vec![
            Attribute::optional(
                MOUNT,
                Type::String,
                "Path of the AppRole auth method. Default `approle`.",
            ),
            Attribute::required(ROLE_ID, Type::String, "The role ID."),
            Attribute::optional(
                SECRET_ID,
                Type::String,
                "The secret ID. Prefer `secret_id_file` so it stays out of configuration.",
            )
            .sensitive(),
            Attribute::optional(
                SECRET_ID_FILE,
                Type::String,
                "A file holding the secret ID (read at each login).",
            ),
        ],
    );
    let jwt = Block::new(
        "Log in to Vault with a signed JWT, for example the OIDC token of a GitHub Actions or GitLab CI job: no static secret anywhere. Give exactly one of `jwt`, `jwt_file` and `jwt_env`.",
        vec![
            Attribute::optional(
                MOUNT,
                Type::String,
                "Path of the JWT auth method. Default `jwt`.",
            ),
            Attribute::required(ROLE, Type::String, "The JWT auth role to log in with."),
            Attribute::optional(JWT, Type::String, "The JWT itself.").sensitive(),
            Attribute::optional(
                JWT_FILE,
                Type::String,
                "A file holding the JWT (read at each login).",
            ),
            Attribute::optional(
                JWT_ENV,
                Type::String,
                "The name of an environment variable holding the JWT (read at each login), e.g. one defined with GitLab CI's `id_tokens`, or one a GitHub Actions step filled with the job's OIDC token.",
            ),
        ],
    );
    let kubernetes = Block::new(
        "Log in to Vault with the pod's Kubernetes service account token.",
        vec![
            Attribute::optional(
                MOUNT,
                Type::String,
                "Path of the Kubernetes auth method. Default `kubernetes`.",
            ),
            Attribute::required(
                ROLE,
                Type::String,
                "The Kubernetes auth role to log in with.",
            ),
            Attribute::optional(
                JWT_FILE,
                Type::String,
                format!("The service account token file. Default `{KUBERNETES_JWT_FILE}`."),
            ),
        ],
    );
    let vault = Block::new(
        "How to reach and authenticate to Vault or OpenBao. Most attributes fall back to the environment variable the Vault CLI uses (`BAO_*` variables are accepted too). Configure at most one way to authenticate: `token`/`token_file`, or one `auth_*` block.",
        vec![
            Attribute::optional(ADDRESS, Type::String, "Vault address, e.g. `https://vault.example.com:8200`. Falls back to `VAULT_ADDR`. Plain `http` is accepted only for loopback addresses."),
            Attribute::optional(TOKEN, Type::String, "A Vault token. Falls back to the file in `token_file` when that is set, then to `VAULT_TOKEN` (or `BAO_TOKEN`), then to `~/.vault-token`. Not used when an `auth_*` block is set. Prefer a login method in automation.").sensitive(),
            Attribute::optional(TOKEN_FILE, Type::String, "A file holding a Vault token, as written by `vault login` / `bao login`. When set, it is used instead of `VAULT_TOKEN`; when not set, `VAULT_TOKEN` (or `BAO_TOKEN`) is used, then `~/.vault-token`."),
            Attribute::optional(NAMESPACE, Type::String, "Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`. Falls back to `VAULT_NAMESPACE`."),
            Attribute::optional(CA_CERT_FILE, Type::String, "A PEM file of CA certificates to trust for Vault's TLS certificate, in addition to the system ones. Falls back to `VAULT_CACERT`."),
            Attribute::optional(SKIP_TLS_VERIFY, Type::Bool, "Do not verify Vault's TLS certificate. Falls back to `VAULT_SKIP_VERIFY`. Only for experiments: a warning is shown whenever it is on."),
        ],
    )
    .with_block(NestedBlock::single(AUTH_APPROLE, approle))
    .with_block(NestedBlock::single(AUTH_JWT, jwt))
    .with_block(NestedBlock::single(AUTH_KUBERNETES, kubernetes));
    Schema::new(
        Block::new(
            "The ccsecrets provider reads contact-center platform credentials from Vault or OpenBao (KV version 2) and mints short-lived platform tokens as ephemeral resources, so no credential or token is ever written to plan or state.",
            vec![
                Attribute::optional(ENVIRONMENT, Type::String, format!("The environment this configuration deploys to, e.g. `prod`. Secret paths may use the placeholder `{{environment}}`, and a secret whose KV custom metadata has an `environment` entry that differs is refused. Letters, digits, `-`, `_` and `.` only. Falls back to `{ENVIRONMENT_ENV}`.")),
                Attribute::optional(TIMEOUT_SECONDS, Type::Number, format!("Timeout of each HTTP request, in seconds, between {} and {}. Default {}. Falls back to `{}`.", TIMEOUT.1, TIMEOUT.2, TIMEOUT.0, TIMEOUT.3)),
                Attribute::optional(MAX_RETRIES, Type::Number, format!("How many times a request is retried after a transient failure (connection errors, 5xx, a sealed Vault, rate limiting). Rejected credentials are never retried. Between {} and {}; default {}. Falls back to `{}`.", RETRIES.1, RETRIES.2, RETRIES.0, RETRIES.3)),
                Attribute::optional(OPEN_TIMEOUT_SECONDS, Type::Number, format!("Deadline of one whole open (Vault read and token request, with retries), in seconds, between {} and {}. Default {}. Falls back to `{}`.", OPEN_TIMEOUT.1, OPEN_TIMEOUT.2, OPEN_TIMEOUT.0, OPEN_TIMEOUT.3)),
            ],
        )
        .with_block(NestedBlock::single(VAULT, vault)),
    )
}

#[async_trait]
impl Provider for CcsecretsProvider {
    type Context = Context;

    fn type_name(&self) -> &'static str {
        "ccsecrets"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Config) -> Diagnostics {
        // Values not known yet (from variables during `terraform validate`) are checked at
        // configure, when they are.
        if !config.value().is_fully_known() {
            return Diagnostics::new();
        }
        match decode::<Settings>(config.value()) {
            Ok(settings) => settings.validate().into(),
            Err(e) => e.into(),
        }
    }

    async fn configure(
        &self,
        _terraform_version: &str,
        config: &Config,
    ) -> Result<(Context, Diagnostics), Diagnostics> {
        if !config.value().is_fully_known() {
            return Err(Diagnostic::error(
                "Provider configuration not known yet",
                "The ccsecrets provider block refers to values that are not known until apply (for example a resource attribute). Use values known at plan time: variables, locals or data sources.",
            )
            .into());
        }
        let settings: Settings = decode(config.value()).map_err(Diagnostics::from)?;
        let (core, warnings) = settings
            .resolve(Arc::clone(&self.shared.pools), self.shared.cancel.clone())
            .map_err(Diagnostics::from)?;
        self.shared
            .cores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(core.clone());
        Ok((Context { core }, warnings.into()))
    }

    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource<Context>>> {
        resources::ephemeral(&self.shared.pools)
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource<Context>>> {
        resources::data_sources(&self.shared.pools)
    }

    fn stop(&self) {
        self.shared.cancel.cancel();
    }

    async fn shutdown(&self) {
        let cores: Vec<Core> = std::mem::take(
            &mut *self
                .shared
                .cores
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let (failed, ()) = tokio::join!(self.shared.pools.drain(), async {
            futures_util::future::join_all(cores.iter().map(|c| c.store.shutdown())).await;
        });
        if failed > 0 {
            tracing::warn!(
                failed,
                "some tokens could not be revoked at shutdown; they expire on their own"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Value;

    #[test]
    fn schema_passes_terraforms_checks() {
        assert_eq!(schema().check(), Ok(()));
    }

    #[test]
    fn settings_fields_match_the_schema_one_to_one() {
        let s = schema();
        let mut attrs: Vec<&str> = s.block.attributes.iter().map(|a| a.name).collect();
        attrs.extend(s.block.blocks.iter().map(|b| b.type_name));
        let mut fields = crate::framework::field_names::<Settings>();
        attrs.sort_unstable();
        fields.sort_unstable();
        assert_eq!(fields, attrs);
    }

    #[test]
    fn validation_is_pinned_and_waits_for_unknowns() {
        let c = Config::new(Value::object([(
            VAULT,
            Value::object([
                (TOKEN, Value::from("t")),
                (
                    AUTH_APPROLE,
                    Value::object([(ROLE_ID, Value::from("r")), (SECRET_ID, Value::from("s"))]),
                ),
            ]),
        )]));
        let d = CcsecretsProvider::new().validate(&c);
        let e = d.iter().next().unwrap();
        assert_eq!(e.summary, "More than one Vault authentication method");
        assert_eq!(
            e.attribute.as_ref().unwrap().to_string(),
            "vault.auth_approle"
        );
        let c = Config::new(Value::object([(
            VAULT,
            Value::object([(
                AUTH_JWT,
                Value::object([(ROLE, Value::from("ci")), (JWT, Value::Unknown)]),
            )]),
        )]));
        assert!(CcsecretsProvider::new().validate(&c).is_empty());
    }
}
