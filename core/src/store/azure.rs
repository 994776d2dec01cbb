//! Azure Key Vault behind the store seam, through the official SDK
//! (`azure_security_keyvault_secrets`, credentials from `azure_identity`). Every request the
//! SDK makes, to Key Vault and to Microsoft Entra ID, goes through this crate's own HTTP
//! client ([`Transport`]): timeouts, the response size limit, https (plain http only to
//! loopback) and the configured CA apply as for Vault. The SDK is set up at the first read.
//!
//! A secret's value is one JSON object with the same keys as a Vault KV secret; its version's
//! tags carry the `environment` the guard compares.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{
    AccessToken, Secret as AzureSecret, TokenCredential, TokenRequestOptions,
};
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{
    AsyncRawResponse, ClientOptions, ExponentialRetryOptions, HttpClient, Request, RetryOptions,
    StatusCode, Transport,
};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_secrets::models::{
    SecretAttributes, SecretClientGetSecretOptions,
    SecretClientListSecretPropertiesVersionsOptions, SecretProperties,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures_util::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};

use super::shared::{SharedReads, boxed, chain, within};
use super::{
    Location, Metadata, Pin, Secret, SecretStore, StoreKind, VersionMetadata, VersionState, json,
};
use crate::error::{Field, Problem};
use crate::net::{self, Budget};

const STORE: &str = "Azure Key Vault";

/// How to sign in to Microsoft Entra ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A service principal's client secret.
    ClientSecret,
    /// Workload identity federation: a federated token file (GitHub Actions, AKS).
    WorkloadIdentity,
    /// The managed identity of the Azure resource it runs on.
    ManagedIdentity,
    /// The signed-in Azure CLI.
    AzureCli,
}

impl CredentialKind {
    /// The setting's value naming this kind.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::ClientSecret => "client_secret",
            CredentialKind::WorkloadIdentity => "workload_identity",
            CredentialKind::ManagedIdentity => "managed_identity",
            CredentialKind::AzureCli => "azure_cli",
        }
    }

    /// The kind a setting's value names.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            CredentialKind::ClientSecret,
            CredentialKind::WorkloadIdentity,
            CredentialKind::ManagedIdentity,
            CredentialKind::AzureCli,
        ]
        .into_iter()
        .find(|k| k.name() == raw)
    }
}

/// How to reach Azure Key Vault (the `azure_keyvault` block, resolved).
#[derive(Debug, Clone)]
pub struct AzureSettings {
    /// The vault, e.g. `https://cc-prod.vault.azure.net` (checked).
    pub vault_url: url::Url,
    /// How to sign in.
    pub credential: CredentialKind,
    /// The tenant (directory) id.
    pub tenant_id: Option<String>,
    /// The application (client) id; for a managed identity, a user-assigned one.
    pub client_id: Option<String>,
    /// The client secret (for [`CredentialKind::ClientSecret`]).
    pub client_secret: Option<SecretString>,
    /// The federated token file (for [`CredentialKind::WorkloadIdentity`]).
    pub federated_token_file: Option<PathBuf>,
    /// Entra ID's authority host, when not the public cloud's (`AZURE_AUTHORITY_HOST`).
    pub authority_host: Option<String>,
    /// Extra CA certificates (PEM) to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// Each request's timeout.
    pub timeout: Duration,
    /// Retries of throttling and transient failures.
    pub max_retries: u32,
}

/// What one store's sign-in requests carried that must never be shown, and Entra ID's last
/// refusal, as the transport saw them. Kept so that errors are explained with Entra ID's own
/// words (the shipped `azure_identity` cannot decode its error bodies) and redacted with what
/// was really sent, without reading the token file again.
#[derive(Debug, Default)]
struct SignInLog {
    /// Secrets that sign-in requests carried (client secret, federated assertion, the managed
    /// identity endpoint's header), the last few distinct ones.
    sent: std::sync::Mutex<Vec<SecretString>>,
    /// Entra ID's last refusal of a token request, in words fit to show.
    refusal: std::sync::Mutex<Option<String>>,
}

/// How many distinct secrets [`SignInLog`] keeps (a federated token file is rotated hourly).
const KEEP_SENT: usize = 4;

impl SignInLog {
    fn sent(&self) -> std::sync::MutexGuard<'_, Vec<SecretString>> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refusal(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers `value` as sent (once).
    fn remember(&self, value: SecretString) {
        if value.expose_secret().is_empty() {
            return;
        }
        let mut sent = self.sent();
        if sent
            .iter()
            .any(|s| s.expose_secret() == value.expose_secret())
        {
            return;
        }
        if sent.len() >= KEEP_SENT {
            sent.remove(0);
        }
        sent.push(value);
    }

    /// Remembers the secrets a sign-in request carries: a token request's `client_secret` and
    /// `client_assertion` form fields, the managed identity endpoint's `X-IDENTITY-HEADER`.
    fn remember_request(&self, request: &Request) {
        if let azure_core::http::Body::Bytes(bytes) = request.body() {
            for (key, value) in url::form_urlencoded::parse(bytes) {
                if key == "client_secret" || key == "client_assertion" {
                    self.remember(SecretString::from(value.into_owned()));
                }
            }
        }
        for (name, value) in request.headers().iter() {
            if name.as_str().eq_ignore_ascii_case("x-identity-header") {
                self.remember(SecretString::from(value.as_str().to_owned()));
            }
        }
    }

    /// Everything sent so far, plus the configured client secret.
    fn secrets(&self, configured: Option<&SecretString>) -> Vec<SecretString> {
        configured
            .cloned()
            .into_iter()
            .chain(self.sent().iter().cloned())
            .collect()
    }
}

/// Microsoft Entra ID's error body (`error`, `error_description`, `error_codes`, and
/// `timestamp`, `trace_id`, `correlation_id`, `error_uri`, which are not shown).
#[derive(serde::Deserialize)]
struct EntraErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// Entra ID's refusal of a token request in words fit to show: the HTTP status, the OAuth
/// error, and the first line of the description (which starts with the `AADSTS` code; the
/// lines after it are the trace id, correlation id and timestamp). Control characters are
/// stripped and anything in `sent` is redacted.
fn entra_refusal(status: u16, body: &[u8], sent: &[&str]) -> String {
    let Ok(parsed) = serde_json::from_slice::<EntraErrorBody>(body) else {
        return format!(
            "Microsoft Entra ID answered HTTP {status} to the sign-in, without its JSON error body"
        );
    };
    let error = parsed
        .error
        .map(|e| net::untrusted_text(&e, sent, 60))
        .filter(|e| !e.is_empty());
    let first_line = parsed
        .error_description
        .as_deref()
        .and_then(|d| d.split(['\r', '\n']).map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("");
    let mut description = net::untrusted_text(first_line, sent, 400);
    if let Some(code) = parsed.error_codes.first() {
        if !description.starts_with("AADSTS") {
            description = if description.is_empty() {
                format!("AADSTS{code}")
            } else {
                format!("AADSTS{code}: {description}")
            };
        }
    }
    let head = match error {
        Some(error) => format!("Microsoft Entra ID refused the sign-in (HTTP {status}, {error})"),
        None => format!("Microsoft Entra ID refused the sign-in (HTTP {status})"),
    };
    if description.is_empty() {
        head
    } else {
        format!("{head}: {description}")
    }
}

/// The SDK's HTTP transport: this crate's client, with its limits and rules.
#[derive(Debug)]
struct Http {
    client: reqwest::Client,
    /// The vault's host and port: answers from it may carry a secret; all others (Entra ID,
    /// the managed identity endpoints) are sign-in answers, read with the small cap.
    vault: (String, Option<u16>),
    log: Arc<SignInLog>,
}

fn transport_error(kind: ErrorKind, text: String) -> azure_core::Error {
    azure_core::Error::with_message(kind, text)
}

#[async_trait]
impl HttpClient for Http {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let url = request.url();
        // https everywhere, plain http only to loopback (App Service's identity endpoint) and
        // to the instance metadata service's link-local address (a VM's managed identity):
        // the same rule as every other request, plus the one address Azure serves over http.
        if !net::request_allowed(url) {
            return Err(transport_error(
                ErrorKind::Other,
                format!(
                    "refusing plain http to {} (https is required except to loopback)",
                    net::redact_url(url.as_str())
                ),
            ));
        }
        let to_vault = url.host_str().map(str::to_ascii_lowercase).as_deref()
            == Some(self.vault.0.as_str())
            && url.port_or_known_default() == self.vault.1;
        let token_request = !to_vault
            && request.method() == azure_core::http::Method::Post
            && url.path().ends_with("/oauth2/v2.0/token");
        if !to_vault {
            self.log.remember_request(request);
        }
        let method = reqwest::Method::from_bytes(request.method().as_ref().as_bytes())
            .map_err(|_| transport_error(ErrorKind::Other, "unsupported HTTP method".into()))?;
        let mut req = self.client.request(method, url.clone());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        req = match request.body() {
            azure_core::http::Body::Bytes(bytes) => req.body(bytes.clone()),
            azure_core::http::Body::SeekableStream(_) => {
                return Err(transport_error(
                    ErrorKind::Other,
                    "streamed request bodies are not used".into(),
                ));
            }
        };
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            transport_error(kind, net::describe_transport(&e))
        })?;
        let status = resp.status().as_u16();
        let headers: HashMap<HeaderName, HeaderValue> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from(k.as_str().to_owned()),
                    HeaderValue::from(v.to_str().ok()?.to_owned()),
                ))
            })
            .collect();
        let limit = if to_vault {
            net::AZURE_BODY_LIMIT
        } else {
            net::SMALL_BODY_LIMIT
        };
        let body = net::read_body(resp, limit)
            .await
            .map_err(|e| transport_error(ErrorKind::Io, e.to_string()))?;
        if token_request && !(200..300).contains(&status) {
            let sent = self.log.secrets(None);
            let sent: Vec<&str> = sent.iter().map(|s| s.expose_secret()).collect();
            *self.log.refusal() = Some(entra_refusal(status, &body, &sent));
        }
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(headers),
            body.to_vec(),
        ))
    }
}

/// A configured Azure Key Vault.
pub struct AzureStore {
    clients: Arc<Clients>,
    reads: SharedReads<(String, Pin), Problem>,
    id: String,
}

/// The SDK client: built at the first use, and built afresh once when Key Vault refuses the
/// token it sent. azure_identity keeps serving a cached token until it nears its expiry, even
/// after the vault has refused it (a revoked sign-in, a rotated key), so without a fresh
/// credential a long-running agent would fail for up to an hour.
struct Clients {
    settings: AzureSettings,
    current: std::sync::Mutex<Option<Arc<SecretClient>>>,
    log: Arc<SignInLog>,
}

impl Clients {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<SecretClient>>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn client(&self) -> Result<Arc<SecretClient>, Problem> {
        let mut slot = self.slot();
        if let Some(client) = slot.as_ref() {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(connect(&self.settings, &self.log)?);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Drops `stale` (unless another caller has already replaced it).
    fn renew(&self, stale: &Arc<SecretClient>) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, stale)) {
            *slot = None;
        }
    }

    /// Runs `call` with the client; when Key Vault answers 401 (its token refused), once more
    /// with a client that signs in afresh. SDK errors become problems through `fail`.
    async fn call<T, F, Fut>(
        &self,
        call: F,
        fail: impl Fn(&azure_core::Error) -> Problem,
    ) -> Result<T, Problem>
    where
        F: Fn(Arc<SecretClient>) -> Fut,
        Fut: std::future::Future<Output = azure_core::Result<T>>,
    {
        let client = self.client()?;
        match call(Arc::clone(&client)).await {
            Err(e) if e.http_status() == Some(StatusCode::Unauthorized) => {
                self.renew(&client);
                call(self.client()?).await.map_err(|e| fail(&e))
            }
            r => r.map_err(|e| fail(&e)),
        }
    }

    /// The vault's URL as messages show it.
    fn vault(&self) -> String {
        net::redact_url(self.settings.vault_url.as_str())
    }

    /// SDK errors about the secret at `at` (version `pin`) as problems. What sign-in sent
    /// (the configured client secret, and what the transport saw leave: an assertion, an
    /// identity header) is redacted; it is looked up when an error happens, after sign-in.
    fn explain(&self, at: &Location, pin: &Pin) -> impl Fn(&azure_core::Error) -> Problem {
        let (at, pin, vault) = (at.clone(), pin.clone(), self.vault());
        let (log, secret) = (Arc::clone(&self.log), self.settings.client_secret.clone());
        move |e| explain(e, &at, &pin, &vault, &log.secrets(secret.as_ref()))
    }
}

impl AzureStore {
    /// A store for these settings. Nothing is set up until the first read.
    pub fn new(settings: AzureSettings) -> Self {
        let id = format!(
            "azure|{}|{}|{}",
            settings.vault_url,
            settings.tenant_id.as_deref().unwrap_or(""),
            settings.client_id.as_deref().unwrap_or("")
        );
        AzureStore {
            clients: Arc::new(Clients {
                settings,
                current: std::sync::Mutex::new(None),
                log: Arc::default(),
            }),
            reads: SharedReads::default(),
            id,
        }
    }
}

impl std::fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureStore")
            .field("settings", &self.clients.settings)
            .field("ready", &self.clients.slot().is_some())
            .finish_non_exhaustive()
    }
}

fn at_block(attr: &str) -> Field {
    Field::root("azure_keyvault").attr(attr)
}

fn client_options(s: &AzureSettings, http: &Arc<Http>) -> ClientOptions {
    let mut options = ClientOptions {
        transport: Some(Transport::new(Arc::clone(http) as Arc<dyn HttpClient>)),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            max_retries: s.max_retries,
            ..ExponentialRetryOptions::default()
        }),
        ..ClientOptions::default()
    };
    if let Some(host) = &s.authority_host {
        let mut cloud = azure_core::cloud::CustomConfiguration::default();
        cloud.authority_host = host.clone();
        options.cloud = Some(Arc::new(cloud.into()));
    }
    options
}

fn setup_problem(e: &azure_core::Error, attr: &str) -> Problem {
    Problem::error(
        "Cannot set up the Azure sign-in",
        format!("{}.", net::untrusted_text(&e.to_string(), &[], 300)),
    )
    .at(at_block(attr))
}

/// Builds the credential and the client; the transport records sign-in traffic in `log`.
fn connect(s: &AzureSettings, log: &Arc<SignInLog>) -> Result<SecretClient, Problem> {
    let client = net::http_client(&net::ClientOptions {
        timeout: s.timeout,
        ca_pem: s.ca_pem.clone(),
        skip_tls_verify: false,
        localhost_names: s
            .vault_url
            .host_str()
            .filter(|h| h.ends_with(".localhost"))
            .map(str::to_owned)
            .into_iter()
            .collect(),
    })
    .map_err(|e| {
        Problem::error("Cannot set up the HTTP client", format!("{e}."))
            .at(at_block("ca_cert_file"))
    })?;
    let http = Arc::new(Http {
        client,
        vault: (
            s.vault_url
                .host_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            s.vault_url.port_or_known_default(),
        ),
        log: Arc::clone(log),
    });
    let options = client_options(s, &http);
    let credential: Arc<dyn TokenCredential> = match s.credential {
        CredentialKind::ClientSecret => {
            let (Some(tenant), Some(client_id), Some(secret)) =
                (&s.tenant_id, &s.client_id, &s.client_secret)
            else {
                return Err(Problem::error(
                    "Incomplete Azure client secret sign-in",
                    "Signing in with a client secret needs `tenant_id`, `client_id` and `client_secret` (or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET).",
                )
                .at(at_block("credential")));
            };
            ClientSecretCredential::new(
                tenant,
                client_id.clone(),
                AzureSecret::new(secret.expose_secret().to_owned()),
                Some(ClientSecretCredentialOptions {
                    client_options: options.clone(),
                }),
            )
            .map_err(|e| setup_problem(&e, "tenant_id"))?
        }
        CredentialKind::WorkloadIdentity => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: options.clone(),
                },
                client_id: s.client_id.clone(),
                tenant_id: s.tenant_id.clone(),
                token_file_path: s.federated_token_file.clone(),
            }))
            .map_err(|e| setup_problem(&e, "federated_token_file"))?
        }
        CredentialKind::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: s.client_id.clone().map(UserAssignedId::ClientId),
                client_options: options.clone(),
            }))
            .map_err(|e| setup_problem(&e, "credential"))?
        }
        CredentialKind::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: s.tenant_id.clone(),
            ..AzureCliCredentialOptions::default()
        }))
        .map_err(|e| setup_problem(&e, "credential"))?,
    };
    SecretClient::new(
        s.vault_url.as_str(),
        Arc::new(SignIn {
            credential,
            log: Arc::clone(log),
        }),
        Some(SecretClientOptions {
            client_options: options,
            ..SecretClientOptions::default()
        }),
    )
    .map_err(|e| {
        Problem::error(
            "Invalid vault_url",
            format!("{}.", net::untrusted_text(&e.to_string(), &[], 300)),
        )
        .at(at_block("vault_url"))
    })
}

/// The chosen credential, its HTTP failures reported as sign-in failures: a managed identity
/// endpoint's 400 ("identity not assigned") would otherwise read as Key Vault's own answer.
/// When Entra ID refused a token request, its own words (read by the transport) replace the
/// SDK's: `azure_identity` 1.0 fails to decode every documented Entra error body (it borrows
/// `error_description`, which always holds escaped `\r\n`), and says "invalid type: string".
#[derive(Debug)]
struct SignIn {
    credential: Arc<dyn TokenCredential>,
    log: Arc<SignInLog>,
}

#[async_trait]
impl TokenCredential for SignIn {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.log.refusal().take();
        self.credential
            .get_token(scopes, options)
            .await
            .map_err(|e| {
                if let Some(refusal) = self.log.refusal().take() {
                    azure_core::Error::with_message(ErrorKind::Credential, refusal)
                } else if matches!(e.kind(), ErrorKind::HttpResponse { .. }) {
                    azure_core::Error::with_error(ErrorKind::Credential, e, "signing in failed")
                } else {
                    e
                }
            })
    }
}

/// An SDK error as a problem that names the secret, the vault and what to check.
fn explain(
    e: &azure_core::Error,
    at: &Location,
    pin: &Pin,
    vault: &str,
    sent: &[SecretString],
) -> Problem {
    let sent: Vec<&str> = sent.iter().map(|s| s.expose_secret()).collect();
    let full = chain(e);
    // The SDK's retry policy puts this before any error it does not retry; the cause follows.
    let full = full
        .strip_prefix("non-transport error occurred which will not be retried: ")
        .unwrap_or(&full);
    let text = net::untrusted_text(full, &sent, 400);
    let text = text.trim_end_matches('.');
    let name = &at.path;
    let attr = if pin.is_pinned() { pin.attr() } else { "path" };
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let code = error_code.as_deref().unwrap_or("");
            match u16::from(*status) {
                404 => Problem::error(
                    "Secret not found in Azure Key Vault",
                    format!(
                        "{text}. No secret {name:?} ({pin}) in {vault}. Check `path` (the secret's name) and `version_id` if set."
                    ),
                )
                .at_attr(attr),
                403 if text.contains("disabled") || code.contains("Disabled") => Problem::error(
                    "Secret version is disabled",
                    format!(
                        "{text}. {pin} of secret {name:?} in {vault} is disabled. Enable it, or choose an enabled version with `version_id`."
                    ),
                )
                .at_attr(attr),
                403 => Problem::error(
                    "Azure denied access",
                    format!(
                        "{text}. The identity in use needs the `Key Vault Secrets User` role on {vault} (or on secret {name:?}); with the access policy permission model, a policy granting secret `Get` and `List`."
                    ),
                )
                .at_attr("path"),
                401 => Problem::error(
                    "Azure Key Vault refused the sign-in",
                    format!(
                        "{text}. Check that the identity belongs to the vault's tenant and that its token is for Key Vault."
                    ),
                )
                .at(Field::root("azure_keyvault")),
                429 => Problem::error(
                    "Azure Key Vault is throttling requests",
                    format!("{text}. Retries were exhausted; try again later, or raise `max_retries`."),
                ),
                s if s >= 500 => Problem::error(
                    "Azure Key Vault is unavailable",
                    format!("{text}. Retry later, or raise `max_retries` / `open_timeout_seconds`."),
                ),
                _ => Problem::error(
                    "Azure Key Vault refused the request",
                    format!("{text}. Secret {name:?} in {vault}."),
                )
                .at_attr(attr),
            }
        }
        ErrorKind::Credential => Problem::error(
            "Azure sign-in failed",
            format!(
                "{text}. Check the azure_keyvault block's `credential` and what it needs: a client secret (tenant_id, client_id, client_secret / AZURE_CLIENT_SECRET), workload identity (AZURE_FEDERATED_TOKEN_FILE, tenant_id, client_id), a managed identity (assigned to this resource; `client_id` picks a user-assigned one), or a signed-in Azure CLI (`az login`)."
            ),
        )
        .at(Field::root("azure_keyvault")),
        ErrorKind::Io | ErrorKind::Connection => Problem::error(
            "Cannot reach Azure Key Vault",
            format!(
                "{text}. Check `vault_url` ({vault}), network access to it and to Microsoft Entra ID, and `ca_cert_file` for TLS errors."
            ),
        ),
        _ => Problem::error(
            "Unexpected answer from Azure Key Vault",
            format!("{text}. Secret {name:?} in {vault}."),
        ),
    }
}

fn unix(t: Option<&OffsetDateTime>) -> Option<i64> {
    t.map(|t| t.unix_timestamp())
}

fn rfc3339(t: Option<&OffsetDateTime>) -> String {
    t.map(azure_core::time::to_rfc3339).unwrap_or_default()
}

/// The version in a Key Vault id `https://<vault>/secrets/<name>/<version>`.
fn version_of(id: Option<&str>) -> String {
    id.and_then(|id| id.split('?').next())
        .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
        .unwrap_or_default()
        .to_owned()
}

fn tags(t: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    t.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// A version's states, as the data source reports them.
fn states(a: Option<&SecretAttributes>, now: i64) -> Vec<String> {
    let mut out = vec![if a.and_then(|a| a.enabled).unwrap_or(true) {
        "enabled".to_owned()
    } else {
        "disabled".to_owned()
    }];
    if unix(a.and_then(|a| a.expires.as_ref())).is_some_and(|exp| exp <= now) {
        out.push("expired".to_owned());
    }
    out
}

async fn read_once(clients: Arc<Clients>, at: Location, pin: Pin) -> Result<Arc<Secret>, Problem> {
    let version = match &pin {
        Pin::Id(id) => Some(id.clone()),
        _ => None,
    };
    let secret = clients
        .call(
            |client| {
                let (name, version) = (at.path.clone(), version.clone());
                async move {
                    client
                        .get_secret(
                            &name,
                            Some(SecretClientGetSecretOptions {
                                secret_version: version,
                                ..SecretClientGetSecretOptions::default()
                            }),
                        )
                        .await
                        .and_then(|r| r.into_model())
                }
            },
            clients.explain(&at, &pin),
        )
        .await?;
    let version_id = version_of(secret.id.as_deref());
    let what = format!("secret {:?} (version {version_id})", at.path);
    let value = SecretString::from(secret.value.clone().unwrap_or_default());
    let data = json::object(&value, STORE, &what)?;
    let attributes = secret.attributes.as_ref();
    Ok(Arc::new(Secret {
        data,
        metadata: VersionMetadata {
            version_id,
            created_time: rfc3339(attributes.and_then(|a| a.created.as_ref())),
            custom_metadata: tags(secret.tags.as_ref()),
            ..VersionMetadata::default()
        },
    }))
}

/// Every version's properties (never a value), following the pager within the budget.
async fn versions(
    client: Arc<SecretClient>,
    name: String,
) -> azure_core::Result<Vec<SecretProperties>> {
    let mut pager = client.list_secret_properties_versions(
        &name,
        Some(SecretClientListSecretPropertiesVersionsOptions::default()),
    )?;
    let mut out = Vec::new();
    while let Some(item) = pager.try_next().await? {
        out.push(item);
        if out.len() > 10_000 {
            break;
        }
    }
    Ok(out)
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// When a listed version was created (unix seconds; 0 when not said).
fn created(p: &SecretProperties) -> i64 {
    unix(p.attributes.as_ref().and_then(|a| a.created.as_ref())).unwrap_or(0)
}

/// A listed version's id.
fn id_of(p: &SecretProperties) -> String {
    version_of(p.id.as_deref())
}

/// The order of a secret's versions, oldest to newest: by creation time, and, for versions
/// created within the same second (Key Vault gives whole seconds and lists versions in no
/// documented order), by version id, the greater id counting as the newer. The tie-break is
/// arbitrary but fixed, so every run and every tool names the same current version.
fn age(p: &SecretProperties) -> (i64, String) {
    (created(p), id_of(p).to_ascii_lowercase())
}

/// The current version: the newest in [`age`] order, taken from the version list alone (never a
/// read of a value, so an identity allowed only to list gets the same answer).
fn newest(list: &[SecretProperties]) -> Option<&SecretProperties> {
    list.iter().max_by_key(|p| age(p))
}

/// What the messages ask to check when the store is slow to answer.
const REACH: &str = "the vault and Microsoft Entra ID";

impl AzureStore {
    /// Every version's properties of the secret at `at`.
    async fn list(&self, at: &Location) -> Result<Vec<SecretProperties>, Problem> {
        self.clients
            .call(
                |client| versions(client, at.path.clone()),
                self.clients.explain(at, &Pin::Latest),
            )
            .await
    }
}

#[async_trait]
impl SecretStore for AzureStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn store_kind(&self) -> StoreKind {
        StoreKind::AzureKeyVault
    }

    async fn read(
        &self,
        budget: &Budget,
        at: &Location,
        pin: &Pin,
    ) -> Result<Arc<Secret>, Problem> {
        within(budget, STORE, REACH, "Reading the secret", async {
            let (clients, at2, pin2) = (Arc::clone(&self.clients), at.clone(), pin.clone());
            self.reads
                .read((at.path.clone(), pin.clone()), move || {
                    boxed(read_once(clients, at2, pin2))
                })
                .await
        })
        .await
    }

    async fn metadata(&self, budget: &Budget, at: &Location) -> Result<Metadata, Problem> {
        within(
            budget,
            STORE,
            REACH,
            "Listing the secret's versions",
            async {
                let list = self.list(at).await?;
                let now = now();
                let current = newest(&list);
                let oldest = list.iter().min_by_key(|p| created(p));
                let updated = list
                    .iter()
                    .filter_map(|p| p.attributes.as_ref().and_then(|a| a.updated))
                    .max();
                Ok(Metadata {
                    created_time: rfc3339(
                        oldest.and_then(|p| p.attributes.as_ref().and_then(|a| a.created.as_ref())),
                    ),
                    updated_time: rfc3339(updated.as_ref()),
                    custom_metadata: tags(current.and_then(|p| p.tags.as_ref())),
                    current_version_id: current.map(id_of).unwrap_or_default(),
                    versions: list
                        .iter()
                        .map(|p| {
                            let a = p.attributes.as_ref();
                            (
                                id_of(p),
                                VersionState {
                                    created_time: rfc3339(a.and_then(|a| a.created.as_ref())),
                                    stages: states(a, now),
                                    ..VersionState::default()
                                },
                            )
                        })
                        .collect(),
                    ..Metadata::default()
                })
            },
        )
        .await
    }

    async fn previous(
        &self,
        budget: &Budget,
        at: &Location,
        current: &VersionMetadata,
    ) -> Result<Option<Pin>, Problem> {
        within(
            budget,
            STORE,
            REACH,
            "Looking for the previous version",
            async {
                let list = self.list(at).await?;
                let now = now();
                // The version read was Key Vault's current one, the newest: every other version
                // created no later is older, even within the same second. Among those, the
                // newest in `age` order is taken.
                let current_created = list
                    .iter()
                    .find(|p| id_of(p) == current.version_id)
                    .map_or(i64::MAX, created);
                Ok(list
                    .iter()
                    .filter(|p| id_of(p) != current.version_id)
                    .filter(|p| created(p) <= current_created)
                    .filter(|p| {
                        let a = p.attributes.as_ref();
                        a.and_then(|a| a.enabled).unwrap_or(true)
                            && unix(a.and_then(|a| a.expires.as_ref())).is_none_or(|e| e > now)
                            && unix(a.and_then(|a| a.not_before.as_ref())).is_none_or(|n| n <= now)
                    })
                    .max_by_key(|p| age(p))
                    .map(|p| Pin::Id(id_of(p))))
            },
        )
        .await
    }

    fn forget_reads(&self) {
        self.reads.clear();
    }

    async fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_come_from_the_secret_id() {
        assert_eq!(
            version_of(Some(
                "https://v.vault.azure.net/secrets/g-prod/0123abcd?api-version=7.5"
            )),
            "0123abcd"
        );
        assert_eq!(version_of(Some("https://v/secrets/g/abc/")), "abc");
        assert_eq!(version_of(None), "");
    }

    #[test]
    fn what_was_sent_to_sign_in_never_shows_in_an_error() {
        let store = AzureStore::new(AzureSettings {
            vault_url: url::Url::parse("https://cc-prod.vault.azure.net").unwrap(),
            credential: CredentialKind::WorkloadIdentity,
            tenant_id: None,
            client_id: None,
            client_secret: Some(SecretString::from("client-secret-value")),
            federated_token_file: None,
            authority_host: None,
            ca_pem: None,
            timeout: Duration::from_secs(5),
            max_retries: 0,
        });
        // The transport saw a token request carrying a federated assertion leave (the token
        // file is not read again to find it).
        let assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmNjIn0.c2lnbmF0dXJl";
        let mut request = Request::new(
            url::Url::parse("https://login.microsoftonline.com/t/oauth2/v2.0/token").unwrap(),
            azure_core::http::Method::Post,
        );
        request.set_body(format!(
            "client_assertion={assertion}&client_assertion_type=urn%3Aietf&client_id=c&grant_type=client_credentials"
        ));
        store.clients.log.remember_request(&request);
        let at = Location {
            mount: String::new(),
            path: "genesys-prod".into(),
            pinned: false,
        };
        let e = azure_core::Error::with_message(
            ErrorKind::Credential,
            format!(
                "AADSTS700213: no match for assertion {assertion} nor secret client-secret-value"
            ),
        );
        let shown = store.clients.explain(&at, &Pin::Latest)(&e).to_string();
        assert!(shown.contains("AADSTS700213"), "{shown}");
        assert!(
            !shown.contains(assertion) && !shown.contains("client-secret-value"),
            "{shown}"
        );
        let log = format!("{:?}", store.clients.log);
        assert!(!log.contains(assertion), "{log}");
    }

    /// Entra ID's documented error body: the description's first line, with the `AADSTS` code,
    /// then `\r\n`-separated trace id, correlation id and timestamp.
    fn entra_body(description: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("{description}\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-12-07 23:10:12Z"),
            "error_codes": [7000215],
            "timestamp": "2026-12-07 23:10:12Z",
            "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
            "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
            "error_uri": "https://login.microsoftonline.com/error?code=7000215"
        }))
        .unwrap()
    }

    #[test]
    fn entra_refusals_show_the_status_the_code_and_the_first_line() {
        let body = entra_body(
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the value.",
        );
        assert_eq!(
            entra_refusal(401, &body, &[]),
            "Microsoft Entra ID refused the sign-in (HTTP 401, invalid_client): AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the value."
        );
        // Control characters are stripped, what was sent is redacted, a description without
        // its code gets it from `error_codes`.
        let body = entra_body("bad \u{1b}[31msecret s3cr3t-value\u{7}");
        assert_eq!(
            entra_refusal(400, &body, &["s3cr3t-value"]),
            "Microsoft Entra ID refused the sign-in (HTTP 400, invalid_client): AADSTS7000215: bad [31msecret [redacted]"
        );
        assert_eq!(
            entra_refusal(502, b"<html>Bad Gateway</html>", &[]),
            "Microsoft Entra ID answered HTTP 502 to the sign-in, without its JSON error body"
        );
    }

    fn listed(id: &str, created: i64) -> SecretProperties {
        serde_json::from_value(serde_json::json!({
            "id": format!("https://v.vault.azure.net/secrets/s/{id}"),
            "attributes": {"enabled": true, "created": created, "updated": created}
        }))
        .unwrap()
    }

    #[test]
    fn the_current_version_is_the_newest_and_ties_go_to_the_greater_id() {
        let list = vec![
            listed("0b", 200),
            listed("ff", 100),
            listed("0a", 200),
            listed("1c", 150),
        ];
        assert_eq!(newest(&list).map(id_of).as_deref(), Some("0b"));
        let mut reversed = list.clone();
        reversed.reverse();
        assert_eq!(newest(&reversed).map(id_of).as_deref(), Some("0b"));
        assert!(age(&list[2]) < age(&list[0]));
        assert_eq!(newest(&[]).map(id_of), None);
    }

    #[test]
    fn credential_kinds_round_trip() {
        for k in [
            CredentialKind::ClientSecret,
            CredentialKind::WorkloadIdentity,
            CredentialKind::ManagedIdentity,
            CredentialKind::AzureCli,
        ] {
            assert_eq!(CredentialKind::parse(k.name()), Some(k));
        }
        assert_eq!(CredentialKind::parse("default"), None);
    }
}
