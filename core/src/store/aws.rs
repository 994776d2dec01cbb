//! AWS Secrets Manager behind the store seam, through the official SDK (`aws-config` finds
//! credentials the way every AWS tool does: environment keys, shared config and credentials
//! files and profiles, SSO, web identity, container and instance credentials; an optional
//! role is assumed on top). The SDK is set up at the first read, not at start-up.
//!
//! A secret's `SecretString` is one JSON object with the same keys as a Vault KV secret. A
//! read is `GetSecretValue` plus `DescribeSecret` (its tags, for the environment guard); the
//! data source adds `ListSecretVersionIds`. The SDK retries throttling and 5xx answers with
//! its standard strategy (`max_retries`), each attempt cut at `timeout_seconds`, the whole
//! read at the open's deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use secrecy::SecretString;
use tokio::sync::OnceCell;

use super::shared::{SharedReads, boxed, chain, within};
use super::{Location, Metadata, Pin, Secret, SecretStore, StoreKind, VersionMetadata, json};
use crate::error::{Field, Problem};
use crate::net::{self, Budget};

/// The staging label of the current version.
pub const CURRENT: &str = "AWSCURRENT";
/// The staging label of the version before it.
pub const PREVIOUS: &str = "AWSPREVIOUS";
const STORE: &str = "AWS Secrets Manager";

/// How to reach AWS Secrets Manager (the `aws_secretsmanager` block, resolved).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// The region; `None` lets the SDK find it (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// The shared-config profile; `None` lets the SDK use `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
    /// A role to assume with the credentials found.
    pub role_arn: Option<String>,
    /// The Secrets Manager endpoint (checked: https, or http to loopback).
    pub endpoint: Option<url::Url>,
    /// Extra CA certificates (PEM) to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// Each attempt's timeout.
    pub timeout: Duration,
    /// Retries of throttling and transient failures.
    pub max_retries: u32,
}

/// A configured AWS Secrets Manager.
#[derive(Debug)]
pub struct AwsStore {
    settings: AwsSettings,
    client: OnceCell<(Client, String)>,
    reads: SharedReads<(String, Pin), Problem>,
    id: String,
}

impl AwsStore {
    /// A store for these settings. Nothing is loaded until the first read.
    pub fn new(settings: AwsSettings) -> Self {
        let id = format!(
            "aws|{}|{}|{}|{}",
            settings.region.as_deref().unwrap_or(""),
            settings.endpoint.as_ref().map_or("", url::Url::as_str),
            settings.profile.as_deref().unwrap_or(""),
            settings.role_arn.as_deref().unwrap_or("")
        );
        AwsStore {
            settings,
            client: OnceCell::new(),
            reads: SharedReads::default(),
            id,
        }
    }

    /// The client and its region, set up once.
    async fn client(&self) -> Result<&(Client, String), Problem> {
        self.client
            .get_or_try_init(|| async { connect(&self.settings).await })
            .await
    }
}

fn at_block(attr: &str) -> Field {
    Field::root("aws_secretsmanager").attr(attr)
}

/// The SDK's HTTP transport: this crate's client, with its limits and rules.
#[derive(Debug, Clone)]
struct Transport {
    client: reqwest::Client,
}

impl HttpClient for Transport {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        // The client's own timeouts (timeout_seconds) apply; the SDK's attempt timeout is the
        // same figure.
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Transport {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::new(send(self.client.clone(), request))
    }
}

fn refused(text: String) -> ConnectorError {
    ConnectorError::user(text.into())
}

async fn send(
    client: reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let url = url::Url::parse(request.uri()).map_err(|_| refused("invalid request URL".into()))?;
    if !net::request_allowed(&url) {
        return Err(refused(format!(
            "refusing plain http to {} (https is required except to loopback)",
            net::redact_url(url.as_str())
        )));
    }
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|_| refused("unsupported HTTP method".into()))?;
    let Some(body) = request.body().bytes() else {
        return Err(refused("streamed request bodies are not used".into()));
    };
    // Secrets Manager's answers (its JSON protocol names the operation in `X-Amz-Target`) may
    // carry a secret; credential answers (STS, SSO, container and instance endpoints) are small.
    let limit = if request
        .headers()
        .get("x-amz-target")
        .is_some_and(|t| t.starts_with("secretsmanager."))
    {
        net::AWS_BODY_LIMIT
    } else {
        net::SMALL_BODY_LIMIT
    };
    let mut req = client.request(method, url).body(body.to_vec());
    for (name, value) in request.headers() {
        // The connection sets these itself, to the same values (both are signed as such).
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            req = req.header(name, value);
        }
    }
    let resp = req.send().await.map_err(|e| {
        let text = net::describe_transport(&e).into();
        if e.is_timeout() {
            ConnectorError::timeout(text)
        } else if e.is_connect() {
            ConnectorError::io(text).never_connected()
        } else {
            ConnectorError::io(text)
        }
    })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = net::read_body(resp, limit).await.map_err(|e| match e {
        // Not retried: the same request would get the same answer.
        net::BodyError::TooLarge { .. } => ConnectorError::other(e.to_string().into(), None),
        net::BodyError::Transport(_) => ConnectorError::io(e.to_string().into()),
    })?;
    let status = status
        .try_into()
        .map_err(|_| ConnectorError::other("invalid HTTP status".into(), None))?;
    let mut response = HttpResponse::new(status, SdkBody::from(body.to_vec()));
    for (name, value) in &headers {
        // A header the SDK cannot hold (not UTF-8) is dropped, never a panic.
        if let Ok(value) = value.to_str() {
            let _ = response
                .headers_mut()
                .try_append(name.as_str().to_owned(), value.to_owned());
        }
    }
    Ok(response)
}

/// Loads the SDK configuration: region, credentials chain, optional role, endpoint.
async fn connect(s: &AwsSettings) -> Result<(Client, String), Problem> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(s.timeout.min(Duration::from_secs(10)))
        .operation_attempt_timeout(s.timeout)
        .build();
    let retry = RetryConfig::standard().with_max_attempts(s.max_retries.saturating_add(1));
    let client = net::http_client(&net::ClientOptions {
        timeout: s.timeout,
        ca_pem: s.ca_pem.clone(),
        ..net::ClientOptions::default()
    })
    .map_err(|e| {
        Problem::error("Cannot set up the HTTP client", format!("{e}."))
            .at(at_block("ca_cert_file"))
    })?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(Transport { client }))
        .timeout_config(timeouts)
        .retry_config(retry);
    if let Some(region) = &s.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &s.profile {
        loader = loader.profile_name(profile);
    }
    let base: SdkConfig = loader.load().await;
    let Some(region) = base.region().map(ToString::to_string) else {
        return Err(Problem::error(
            "No AWS region",
            "AWS Secrets Manager needs a region. Set `region` in the aws_secretsmanager block, or AWS_REGION, or a `region` in the AWS profile in use.",
        )
        .at(at_block("region")));
    };
    let mut config = aws_sdk_secretsmanager::config::Builder::from(&base);
    if let Some(role) = &s.role_arn {
        let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
            .session_name("ccsecrets")
            .configure(&base)
            .build()
            .await;
        config = config.credentials_provider(provider);
    }
    if let Some(endpoint) = &s.endpoint {
        config = config.endpoint_url(endpoint.as_str().trim_end_matches('/'));
    }
    tracing::debug!(region = %region, "AWS Secrets Manager client ready");
    Ok((Client::from_conf(config.build()), region))
}

fn time(t: Option<&DateTime>) -> String {
    t.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_default()
}

/// The text of a service's or the SDK's error, as untrusted text.
fn said<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    e: &SdkError<E, R>,
) -> (Option<String>, String) {
    let code = e.code().map(str::to_owned);
    let text = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        _ => chain(e),
    };
    let text = net::untrusted_text(&text, &[], 300);
    (code, text.trim_end_matches('.').to_owned())
}

/// An SDK error as a problem that names the secret, the store and what to check.
fn explain<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    e: &SdkError<E, R>,
    at: &Location,
    pin: &Pin,
    region: &str,
    action: &str,
) -> Problem {
    let (code, text) = said(e);
    let name = &at.path;
    let attr = if pin.is_pinned() { pin.attr() } else { "path" };
    match code.as_deref() {
        Some("ResourceNotFoundException") => Problem::error(
            "Secret not found in AWS Secrets Manager",
            format!(
                "{text}. No secret {name:?} ({pin}) in region {region}. Check `path` (the secret's name or ARN), the region, and `version_id`/`version_stage` if set."
            ),
        )
        .at_attr(attr),
        Some("AccessDeniedException") => Problem::error(
            "AWS denied access",
            format!(
                "{text}. The identity in use needs `secretsmanager:{action}` on secret {name:?} (ccsecrets calls `secretsmanager:GetSecretValue` and `secretsmanager:DescribeSecret` for a token, plus `secretsmanager:ListSecretVersionIds` for the metadata data source), and `kms:Decrypt` on the secret's key when it uses a customer managed KMS key."
            ),
        )
        .at_attr("path"),
        Some("DecryptionFailure") => Problem::error(
            "AWS could not decrypt the secret",
            format!(
                "{text}. The identity in use needs `kms:Decrypt` on the KMS key of secret {name:?}."
            ),
        )
        .at_attr("path"),
        Some("InvalidRequestException" | "InvalidParameterException") => Problem::error(
            "AWS Secrets Manager refused the request",
            format!(
                "{text}. Secret {name:?} ({pin}): check that it is not scheduled for deletion and that `version_id`/`version_stage` name an existing version."
            ),
        )
        .at_attr(attr),
        Some(
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch",
        ) => Problem::error(
            "AWS rejected the credentials",
            format!(
                "{text}. Check the AWS credentials in use (environment keys, AWS_PROFILE, web identity or instance role) and that they are not expired."
            ),
        ),
        Some("ThrottlingException" | "TooManyRequestsException") => Problem::error(
            "AWS Secrets Manager is throttling requests",
            format!("{text}. Retries were exhausted; try again later, or raise `max_retries`."),
        ),
        Some(_) => Problem::error(
            "AWS Secrets Manager refused the request",
            format!("{text}. Secret {name:?} in region {region}."),
        ),
        None => match e {
            SdkError::TimeoutError(_) => Problem::error(
                "AWS Secrets Manager did not answer in time",
                format!("{text}. Check connectivity to AWS, or raise `timeout_seconds`."),
            ),
            _ if text.contains("response body is larger than") => Problem::error(
                "Answer from AWS too large",
                format!(
                    "{text}. A secret is at most 64 KiB, so this answer did not come from Secrets Manager as it should: check `endpoint` (or AWS_ENDPOINT_URL*) and any proxy in between."
                ),
            ),
            _ if text.contains("credentials") || text.contains("credential provider") => {
                // STS or SSO behind a TLS-inspecting proxy fails here, not at Secrets Manager.
                let tls = if text.contains("invalid peer certificate") {
                    " The TLS certificate of the credential endpoint is not trusted: set `ca_cert_file` or AWS_CA_BUNDLE to the CA that signed it."
                } else {
                    ""
                };
                Problem::error(
                    "No AWS credentials",
                    format!(
                        "{text}. ccsecrets looks for AWS credentials as the AWS CLI does: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile in AWS_PROFILE or `profile` (shared config and credentials files, SSO), web identity (AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE), then container and instance credentials.{tls}"
                    ),
                )
                .at(Field::root("aws_secretsmanager"))
            }
            _ => Problem::error(
                "Cannot reach AWS Secrets Manager",
                format!(
                    "{text}. Check network access to Secrets Manager in region {region} (and `endpoint` or AWS_ENDPOINT_URL_SECRETS_MANAGER if you use a VPC endpoint), and for TLS errors `ca_cert_file` or AWS_CA_BUNDLE."
                ),
            ),
        },
    }
}

/// `DescribeSecret`: tags, stages by version, dates; never the value.
async fn describe(
    client: &Client,
    at: &Location,
    region: &str,
) -> Result<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput, Problem> {
    client
        .describe_secret()
        .secret_id(&at.path)
        .send()
        .await
        .map_err(|e| explain(&e, at, &Pin::Latest, region, "DescribeSecret"))
}

fn tags_of(tags: &[aws_sdk_secretsmanager::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// Reads one version and the secret's tags (two calls, side by side).
async fn read_once(
    client: Client,
    region: String,
    at: Location,
    pin: Pin,
) -> Result<Arc<Secret>, Problem> {
    let mut get = client.get_secret_value().secret_id(&at.path);
    match &pin {
        Pin::Id(id) => get = get.version_id(id),
        Pin::Stage(stage) => get = get.version_stage(stage),
        Pin::Latest | Pin::Number(_) => {}
    }
    let describe = client.describe_secret().secret_id(&at.path).send();
    let (value, described) = tokio::join!(get.send(), describe);
    let value = value.map_err(|e| explain(&e, &at, &pin, &region, "GetSecretValue"))?;
    let described = described.map_err(|e| explain(&e, &at, &pin, &region, "DescribeSecret"))?;
    let version_id = value.version_id().unwrap_or_default().to_owned();
    let what = format!("secret {:?} (version {version_id})", at.path);
    let Some(text) = value.secret_string() else {
        return Err(Problem::error(
            "Secret is not a JSON object",
            format!(
                "{what} in {STORE} holds binary data (SecretBinary). ccsecrets expects the secret string to be one JSON object of text keys, e.g. {{\"client_id\": \"...\", \"client_secret\": \"...\"}}."
            ),
        )
        .at_attr("path"));
    };
    let data = json::object(&SecretString::from(text.to_owned()), STORE, &what)?;
    let stages = value.version_stages().to_vec();
    let created_time = time(value.created_date());
    drop(value);
    Ok(Arc::new(Secret {
        data,
        metadata: VersionMetadata {
            version_id,
            stages,
            created_time,
            custom_metadata: tags_of(described.tags()),
            ..VersionMetadata::default()
        },
    }))
}

#[async_trait]
impl SecretStore for AwsStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn store_kind(&self) -> StoreKind {
        StoreKind::AwsSecretsManager
    }

    async fn read(
        &self,
        budget: &Budget,
        at: &Location,
        pin: &Pin,
    ) -> Result<Arc<Secret>, Problem> {
        within(budget, STORE, "AWS", "Reading the secret", async {
            let (client, region) = self.client().await?;
            let (client, region, at2, pin2) =
                (client.clone(), region.clone(), at.clone(), pin.clone());
            self.reads
                .read((at.path.clone(), pin.clone()), move || {
                    boxed(read_once(client, region, at2, pin2))
                })
                .await
        })
        .await
    }

    async fn metadata(&self, budget: &Budget, at: &Location) -> Result<Metadata, Problem> {
        within(
            budget,
            STORE,
            "AWS",
            "Reading the secret's metadata",
            async {
                let (client, region) = self.client().await?;
                let d = describe(client, at, region).await?;
                let mut versions = BTreeMap::new();
                let mut next: Option<String> = None;
                for _page in 0..20 {
                    let page = client
                        .list_secret_version_ids()
                        .secret_id(&at.path)
                        .max_results(100)
                        .set_next_token(next.take())
                        .send()
                        .await
                        .map_err(|e| {
                            explain(&e, at, &Pin::Latest, region, "ListSecretVersionIds")
                        })?;
                    for v in page.versions() {
                        if let Some(id) = v.version_id() {
                            versions.insert(
                                id.to_owned(),
                                super::VersionState {
                                    created_time: time(v.created_date()),
                                    stages: v.version_stages().to_vec(),
                                    ..super::VersionState::default()
                                },
                            );
                        }
                    }
                    // An empty token also ends the listing (some implementations send one).
                    next = page
                        .next_token()
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned);
                    if next.is_none() {
                        break;
                    }
                }
                let current_version_id = versions
                    .iter()
                    .find(|(_, v)| v.stages.iter().any(|s| s == CURRENT))
                    .map(|(id, _)| id.clone())
                    .unwrap_or_default();
                Ok(Metadata {
                    created_time: time(d.created_date()),
                    updated_time: time(d.last_changed_date()),
                    custom_metadata: tags_of(d.tags()),
                    versions,
                    current_version_id,
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
        within(budget, STORE, "AWS", "Looking up AWSPREVIOUS", async {
            let (client, region) = self.client().await?;
            let d = describe(client, at, region).await?;
            Ok(d.version_ids_to_stages().and_then(|m| {
                m.iter()
                    .find(|(id, stages)| {
                        **id != current.version_id && stages.iter().any(|s| s == PREVIOUS)
                    })
                    .map(|(id, _)| Pin::Id(id.clone()))
            }))
        })
        .await
    }

    fn forget_reads(&self) {
        self.reads.clear();
    }

    async fn shutdown(&self) {}
}
