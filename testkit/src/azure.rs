//! A strict stand-in of Azure Key Vault (the secrets REST API) and of Microsoft Entra ID's token
//! endpoint, served over HTTPS with a throwaway CA (the Azure SDK refuses authority hosts and
//! vaults that are not https).
//!
//! # Hosts
//!
//! One TLS server on `127.0.0.1:<port>` plays two hosts, told apart by the `Host` header (or
//! the HTTP/2 `:authority`), as the real services are:
//!
//! - **Entra ID** at [`AzureStandin::authority_host`], `https://127.0.0.1:<port>`: the token
//!   endpoint `POST /{tenant}/oauth2/v2.0/token`, what `azure_identity` calls when
//!   `AZURE_AUTHORITY_HOST` (or a custom cloud configuration's `authority_host`) is that URL.
//!   The same host serves the App Service managed identity endpoint, `GET /msi/token`
//!   ([`AzureStandin::identity_endpoint`]).
//! - **Key Vault** at [`AzureStandin::vault_url`],
//!   `https://ccsecrets-kv.vault.localhost:<port>`. The name is not in DNS: clients must map
//!   [`AzureStandin::vault_host`] to [`AzureStandin::addr`] themselves (reqwest's
//!   `ClientBuilder::resolve`, or RFC 6761's rule that `*.localhost` is loopback). Key Vault
//!   requires the `Host` header to name the vault, so a request sent to `127.0.0.1` with a
//!   `/secrets` path reaches the Entra host and gets a 404 that says so.
//!
//! # Why `https://vault.localhost`
//!
//! The vault's challenge announces `resource="https://vault.localhost"`, so the scope clients
//! request is `https://vault.localhost/.default` ([`SCOPE`]). The Key Vault SDK (authorizer.rs,
//! `verify_challenge_resource`, on by default) accepts a challenge only when
//! `request_host.ends_with(".{challenge_host}")`: the resource's host must be a parent domain of
//! the vault's host, as `vault.azure.net` is of `myvault.vault.azure.net`. No value passes for
//! a vault addressed as `127.0.0.1`, so the stand-in is a small "cloud" whose vault DNS suffix
//! is `vault.localhost`, in the image of `vault.azure.net` / `vault.azure.cn` /
//! `vault.usgovcloudapi.net`.
//!
//! # Strictness (each rule checked against the SDK sources or Microsoft's documentation)
//!
//! - Every Key Vault request needs an accepted `api-version` ([`API_VERSIONS`]), checked before
//!   authentication: 400 `BadParameter`.
//! - No bearer token: 401 `AKV10000` with the `WWW-Authenticate` challenge (the SDK's first
//!   request to a vault is always sent without a token, to get it). An unknown token: 401
//!   `AKV10046`; an expired one: 401 `IDX10223`; a token of another tenant: 401 `AKV10032`.
//!   Every 401 carries the challenge.
//! - Azure RBAC: reading a value needs `Key Vault Secrets User`
//!   ([`AzureStandin::grant_secrets_user`]); listing needs it or `Key Vault Reader`
//!   ([`AzureStandin::grant_reader`]); otherwise 403 `ForbiddenByRbac`, checked before the
//!   secret's existence, as the real service does. [`AzureStandin::add_client`] grants nothing;
//!   [`AzureStandin::with_client`] does.
//! - `GET /secrets/{name}` returns the *current* (most recently set) version, and if that one
//!   is disabled answers 403 `SecretDisabled` even when older versions are enabled. Names are
//!   1-127 characters of `[0-9a-zA-Z-]` (else 400) and case-insensitive, as Key Vault's are.
//! - `exp` and `nbf` are informational for secrets: Microsoft documents that "a secret's get
//!   operation will work for not-yet-valid and expired secrets", so the stand-in returns them
//!   (with the attributes set) and leaves the decision to the client.
//! - Lists are paged at 25 (`maxresults` 1-25, else 400), with a `nextLink` carrying
//!   `api-version`, `$skiptoken` and `maxresults`; versions are listed in version-id order,
//!   not creation order (use `attributes.created`).
//! - Entra ID checks tenant, content type, grant type, client, credential and scope, and
//!   answers with its documented error shape: `error`, `error_description` (`AADSTSnnnn: ...`,
//!   then `\r\n`-separated `Trace ID`, `Correlation ID` and `Timestamp` lines), `error_codes`,
//!   `timestamp`, `trace_id`, `correlation_id` and `error_uri`. It never echoes a secret or an
//!   assertion.
//! - [`AzureStandin::grant_reader`] gives an identity `list` without `get` (Key Vault Reader);
//!   [`AzureStandin::value_requests`] counts every request for a value, refused ones too, so a
//!   test can prove a value was never asked for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::jwt::{JwtSigner, now};
use crate::standin::{Fault, Faults, random_token, strict_form, uuid_v4};

/// Routes faults can be scripted on ([`AzureStandin::push_fault`]).
pub mod route {
    /// `POST /{tenant}/oauth2/v2.0/token` and the managed identity endpoint on the Entra host.
    pub const TOKEN: &str = "token";
    /// Every request to the Key Vault host.
    pub const VAULT: &str = "vault";
}

/// The DNS suffix of the stand-in's vaults (`<vault>.vault.localhost`).
pub const VAULT_DNS_SUFFIX: &str = "vault.localhost";

/// The resource the vault announces in its challenge.
pub const RESOURCE: &str = "https://vault.localhost";

/// The only scope the token endpoint accepts: [`RESOURCE`] + `/.default`, what the SDK derives
/// from the challenge.
pub const SCOPE: &str = "https://vault.localhost/.default";

/// The vault's name.
pub const VAULT_NAME: &str = "ccsecrets-kv";

/// The Key Vault data-plane `api-version`s accepted: the GA versions the Azure SDKs list
/// (2016-10-01, 7.0 to 7.6, 2025-07-01). `azure_security_keyvault_secrets` 1.0.1 sends
/// [`LATEST_API_VERSION`].
pub const API_VERSIONS: &[&str] = &[
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
];

/// The newest accepted `api-version`, the default of `azure_security_keyvault_secrets` 1.0.1.
pub const LATEST_API_VERSION: &str = "2025-07-01";

/// The audience Entra ID requires of a federated (workload identity) assertion.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const MAX_RESULTS: usize = 25;
const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";
const RECOVERABLE_DAYS: u32 = 90;
/// Clock skew Entra ID tolerates on an assertion's `nbf`.
const ASSERTION_SKEW: i64 = 300;

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: String,
    content_type: Option<String>,
    tags: BTreeMap<String, String>,
    enabled: bool,
    created: i64,
    updated: i64,
    exp: Option<i64>,
    nbf: Option<i64>,
}

#[derive(Debug)]
struct Secret {
    /// The name as first set (lookups are case-insensitive).
    name: String,
    /// In creation order; the last is the current version.
    versions: Vec<Version>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Federated {
    issuer: String,
    subject: String,
}

#[derive(Debug, Clone)]
struct Client {
    tenant: String,
    secret: Option<String>,
    federated: Vec<Federated>,
    object_id: String,
}

#[derive(Debug, Clone)]
struct Issued {
    tenant: String,
    client_id: String,
    object_id: String,
    expires: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Key Vault Secrets User: `getSecret/action` and `readMetadata/action`.
    SecretsUser,
    /// Key Vault Reader: `readMetadata/action` only.
    Reader,
}

/// One request the Key Vault host answered (the token itself is never recorded).
#[derive(Debug, Clone)]
pub struct VaultRequest {
    /// The HTTP method.
    pub method: String,
    /// The path and query as sent.
    pub path_and_query: String,
    /// The status answered.
    pub status: u16,
    /// Whether an `Authorization` header was present.
    pub had_token: bool,
    /// The client id of a valid token, if any.
    pub client_id: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `x-ms-client-request-id` header.
    pub client_request_id: Option<String>,
}

#[derive(Debug)]
struct Inner {
    tenants: Vec<String>,
    clients: HashMap<String, Client>,
    grants: HashMap<String, Role>,
    tokens: HashMap<String, Issued>,
    lifetime: u64,
    token_requests: HashMap<String, usize>,
    /// By lowercase name.
    secrets: BTreeMap<String, Secret>,
    requests: usize,
    reads: HashMap<String, usize>,
    /// Every `GET /secrets/{name}[/{version}]` by lowercase name, refused ones included.
    value_requests: HashMap<String, usize>,
    list_pages: HashMap<String, usize>,
    throttled: usize,
    challenges: usize,
    throttle_next: usize,
    fail_next: VecDeque<u16>,
    log: Vec<VaultRequest>,
    /// The managed identities of "this resource" for the App Service identity endpoint:
    /// the system-assigned one's client id, and the user-assigned ones'.
    system_identity: Option<String>,
    user_identities: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<Inner>,
    faults: Faults,
    vault_host: String,
    port: u16,
    tenant: String,
    /// The secret of the App Service identity endpoint (`IDENTITY_HEADER`).
    identity_header: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().expect("azure stand-in state")
    }

    fn vault_url(&self) -> String {
        format!("https://{}:{}", self.vault_host, self.port)
    }

    fn authority(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

/// The Key Vault and Entra ID stand-in; stops when dropped. See the module documentation.
#[derive(Debug)]
pub struct AzureStandin {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    pki: tempfile::TempDir,
    /// Serves until dropped.
    _server: crate::standin::Server,
}

impl AzureStandin {
    /// Starts the stand-in: one tenant ([`AzureStandin::tenant`]), no clients, no secrets,
    /// tokens valid 3599 s.
    pub fn start() -> AzureStandin {
        let listener = crate::standin::loopback_listener();
        let addr = listener.local_addr().expect("local addr");
        let vault_host = format!("{VAULT_NAME}.{VAULT_DNS_SUFFIX}");
        let (ca_pem, tls) = crate::tls::throwaway_pki(
            "ccsecrets-testkit Azure stand-in CA",
            &[vault_host.as_str(), "localhost"],
            &[b"h2", b"http/1.1"],
        );
        let pki = tempfile::Builder::new()
            .prefix("ccsecrets-azure")
            .tempdir()
            .expect("tempdir for the stand-in CA");
        std::fs::write(pki.path().join("ca.pem"), &ca_pem).expect("write the CA");
        let tenant = uuid_v4();
        let shared = Arc::new(Shared {
            state: Mutex::new(Inner {
                tenants: vec![tenant.clone()],
                clients: HashMap::new(),
                grants: HashMap::new(),
                tokens: HashMap::new(),
                lifetime: 3599,
                token_requests: HashMap::new(),
                secrets: BTreeMap::new(),
                requests: 0,
                reads: HashMap::new(),
                value_requests: HashMap::new(),
                list_pages: HashMap::new(),
                throttled: 0,
                challenges: 0,
                throttle_next: 0,
                fail_next: VecDeque::new(),
                log: Vec::new(),
                system_identity: None,
                user_identities: Vec::new(),
            }),
            faults: Faults::default(),
            vault_host,
            port: addr.port(),
            tenant,
            identity_header: random_token(32),
        });
        let app = axum::Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(&shared));
        let server = crate::standin::Server::serve(listener, app, Some(tls));
        AzureStandin {
            shared,
            addr,
            ca_pem,
            pki,
            _server: server,
        }
    }

    /// Starts the stand-in with one client-secret application in the default tenant, granted
    /// `Key Vault Secrets User`.
    pub fn with_client(client_id: &str, secret: &str) -> AzureStandin {
        let kv = AzureStandin::start();
        let tenant = kv.tenant().to_owned();
        kv.add_client(&tenant, client_id, secret);
        kv.grant_secrets_user(client_id);
        kv
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    /// The vault URL, `https://ccsecrets-kv.vault.localhost:<port>` (no trailing slash): what a
    /// `SecretClient` is created with. Its host is not in DNS: map [`AzureStandin::vault_host`]
    /// to [`AzureStandin::addr`].
    pub fn vault_url(&self) -> String {
        self.shared.vault_url()
    }

    /// The vault's host name, `ccsecrets-kv.vault.localhost`.
    pub fn vault_host(&self) -> &str {
        &self.shared.vault_host
    }

    /// The socket address both hosts are served on (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Entra ID authority host, `https://127.0.0.1:<port>` (for `AZURE_AUTHORITY_HOST` or a
    /// custom cloud configuration).
    pub fn authority_host(&self) -> String {
        self.shared.authority()
    }

    /// The token endpoint of `tenant`: `<authority_host>/<tenant>/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.shared.authority())
    }

    /// The vault's tenant (a GUID): the default tenant, the one the challenge names.
    pub fn tenant(&self) -> &str {
        &self.shared.tenant
    }

    /// The PEM of the throwaway CA that signed the server certificate (valid for `localhost`,
    /// `127.0.0.1` and the vault host).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A file holding [`AzureStandin::ca_pem`], deleted with the stand-in.
    pub fn ca_file(&self) -> PathBuf {
        self.pki.path().join("ca.pem")
    }

    /// Registers a tenant (a GUID or a domain name); tokens of a tenant other than the vault's
    /// get 401 `AKV10032` from the vault.
    pub fn add_tenant(&self, tenant: &str) {
        let mut st = self.lock();
        if !st.tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant)) {
            st.tenants.push(tenant.to_owned());
        }
    }

    /// Registers an application of `tenant` (registered too if new) with a client secret, or
    /// replaces its secret. Grants nothing.
    pub fn add_client(&self, tenant: &str, client_id: &str, secret: &str) {
        self.with_client_of(tenant, client_id, |client| {
            client.secret = Some(secret.to_owned());
        });
    }

    /// Runs `f` on application `client_id`, registered (without credentials) in `tenant` if
    /// new, and moved to `tenant` if not; the tenant is registered too.
    fn with_client_of(&self, tenant: &str, client_id: &str, f: impl FnOnce(&mut Client)) {
        self.add_tenant(tenant);
        let mut st = self.lock();
        let client = st
            .clients
            .entry(client_id.to_owned())
            .or_insert_with(|| Client {
                tenant: tenant.to_owned(),
                secret: None,
                federated: Vec::new(),
                object_id: uuid_v4(),
            });
        client.tenant = tenant.to_owned();
        f(client);
    }

    /// Adds a federated identity credential to application `client_id` of `tenant` (created,
    /// without a secret, if new): assertions whose `iss` and `sub` are these and whose `aud`
    /// is [`TOKEN_EXCHANGE_AUDIENCE`] are accepted. Grants nothing.
    pub fn add_federated_client(&self, tenant: &str, client_id: &str, issuer: &str, subject: &str) {
        let record = Federated {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        };
        self.with_client_of(tenant, client_id, |client| {
            if !client.federated.contains(&record) {
                client.federated.push(record);
            }
        });
    }

    /// Assigns `Key Vault Secrets User` on the vault to `client_id`: it may read values and
    /// list.
    pub fn grant_secrets_user(&self, client_id: &str) {
        self.lock()
            .grants
            .insert(client_id.to_owned(), Role::SecretsUser);
    }

    /// Assigns `Key Vault Reader` on the vault to `client_id`: it may list (metadata) but not
    /// read values.
    pub fn grant_reader(&self, client_id: &str) {
        self.lock()
            .grants
            .insert(client_id.to_owned(), Role::Reader);
    }

    /// Removes `client_id`'s role assignment.
    pub fn revoke_grant(&self, client_id: &str) {
        self.lock().grants.remove(client_id);
    }

    /// Gives "this resource" (what the App Service identity endpoint serves) a managed
    /// identity of the default tenant with client id `client_id`: the system-assigned one, or
    /// a user-assigned one (requested with `client_id=`). Grants nothing.
    pub fn assign_managed_identity(&self, client_id: &str, system_assigned: bool) {
        let tenant = self.tenant().to_owned();
        self.with_client_of(&tenant, client_id, |_| {});
        let mut st = self.lock();
        if system_assigned {
            st.system_identity = Some(client_id.to_owned());
        } else if !st.user_identities.iter().any(|c| c == client_id) {
            st.user_identities.push(client_id.to_owned());
        }
    }

    /// The App Service managed identity endpoint (`IDENTITY_ENDPOINT`): `GET /msi/token` on
    /// the authority host, API version 2019-08-01.
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.shared.authority())
    }

    /// The endpoint's secret (`IDENTITY_HEADER`), required in `X-IDENTITY-HEADER`.
    pub fn identity_header(&self) -> &str {
        &self.shared.identity_header
    }

    /// Writes an `az` program into a new directory (put it first on `PATH`) that stands in for
    /// an Azure CLI signed in as `client_id` of the default tenant: `az account
    /// get-access-token -o json --scope <scope> [--tenant <tenant>]` prints a token the vault
    /// accepts, as the real CLI does (`accessToken`, `expiresOn`, `expires_on`, `tenant`,
    /// `tokenType`); another scope or tenant fails on stderr with exit 1, as the CLI does
    /// with an `AADSTS` error. [`AzureStandin::azure_cli_runs`] counts the tokens handed out.
    pub fn azure_cli(&self, client_id: &str) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("ccsecrets-az")
            .tempdir()
            .expect("tempdir for az");
        let (token, lifetime) = issue(&self.shared, client_id, false);
        let expires = now().saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
        let output = json!({
            "accessToken": token,
            "expiresOn": utc_iso(expires).replace('T', " ").trim_end_matches('Z'),
            "expires_on": expires,
            "subscription": uuid_v4(),
            "tenant": self.tenant(),
            "tokenType": "Bearer",
        });
        let tenant = self.tenant();
        let script = format!(
            r#"#!/bin/sh
# Stand-in of the Azure CLI, signed in to tenant {tenant}.
[ "$1 $2" = "account get-access-token" ] || {{ echo "ERROR: the stand-in az only runs 'account get-access-token'" >&2; exit 2; }}
shift 2
scope=""; tenant="{tenant}"; json=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o|--output) [ "$2" = json ] && json=1; shift 2 ;;
    --scope) scope="$2"; shift 2 ;;
    --resource) scope="$2/.default"; shift 2 ;;
    --tenant|-t) tenant="$2"; shift 2 ;;
    *) echo "ERROR: unrecognized arguments: $1" >&2; exit 2 ;;
  esac
done
[ -n "$json" ] || {{ echo "ERROR: the stand-in az needs -o json" >&2; exit 2; }}
[ "$tenant" = "{tenant}" ] || {{ echo "ERROR: AADSTS90002: Tenant '$tenant' not found. Run 'az login --tenant $tenant'." >&2; exit 1; }}
[ "$scope" = "{SCOPE}" ] || {{ echo "ERROR: AADSTS500011: The resource principal named ${{scope%/.default}} was not found in the tenant named {tenant}." >&2; exit 1; }}
echo 1 >> "$0.runs"
cat <<'JSON'
{output}
JSON
"#
        );
        let path = dir.path().join("az");
        std::fs::write(&path, script).expect("write az");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod az");
        }
        dir
    }

    /// How often the stand-in `az` in `dir` handed out its token.
    pub fn azure_cli_runs(dir: &std::path::Path) -> usize {
        std::fs::read_to_string(dir.join("az.runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Sets the lifetime (`expires_in`) of tokens minted from now on. Note the SDK refreshes a
    /// token that expires within 300 s, so shorter lifetimes mean a token request per call.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.lock().lifetime = secs;
    }

    /// Expires every token of `client_id` now (the vault answers 401 `IDX10223` to them).
    pub fn expire_tokens(&self, client_id: &str) {
        let now = Instant::now();
        for t in self.lock().tokens.values_mut() {
            if t.client_id == client_id {
                t.expires = now;
            }
        }
    }

    /// Token requests that named `client_id` (failed ones included).
    pub fn token_requests(&self, client_id: &str) -> usize {
        self.lock()
            .token_requests
            .get(client_id)
            .copied()
            .unwrap_or(0)
    }

    /// Tokens minted for `client_id`.
    pub fn tokens_issued(&self, client_id: &str) -> usize {
        self.lock()
            .tokens
            .values()
            .filter(|t| t.client_id == client_id)
            .count()
    }

    /// Every access token minted so far (for leak checks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }

    /// Sets a new version of secret `name` (created if new) with `value` and `tags`, enabled,
    /// without content type, expiry or not-before; it becomes the current version. Returns
    /// its version id (32 lowercase hex characters). Panics on a name Key Vault refuses.
    pub fn set_secret(&self, name: &str, value: &str, tags: &[(&str, &str)]) -> String {
        assert!(
            valid_name(name),
            "Key Vault refuses the secret name {name:?} (1-127 of [0-9a-zA-Z-])"
        );
        let id = version_id();
        let now = now();
        let mut st = self.lock();
        let secret = st
            .secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Secret {
                name: name.to_owned(),
                versions: Vec::new(),
            });
        secret.versions.push(Version {
            id: id.clone(),
            value: value.to_owned(),
            content_type: None,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            enabled: true,
            created: now,
            updated: now,
            exp: None,
            nbf: None,
        });
        id
    }

    fn update(&self, name: &str, version: &str, f: impl FnOnce(&mut Version)) {
        let mut st = self.lock();
        let v = st
            .secrets
            .get_mut(&name.to_ascii_lowercase())
            .and_then(|s| s.versions.iter_mut().find(|v| v.id == version))
            .unwrap_or_else(|| panic!("no version {version} of secret {name} in the stand-in"));
        f(v);
        v.updated = now();
    }

    /// Enables or disables a version (a disabled one answers 403 `SecretDisabled`).
    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) {
        self.update(name, version, |v| v.enabled = enabled);
    }

    /// Sets a version's creation time (`created`, Unix seconds), for instance to make two
    /// versions share a second, as versions set in quick succession do. The current version
    /// stays the one set last.
    pub fn set_created(&self, name: &str, version: &str, unix_secs: i64) {
        self.update(name, version, |v| v.created = unix_secs);
    }

    /// Sets a version's expiry (`exp`, Unix seconds). Informational: gets still succeed.
    pub fn set_expiry(&self, name: &str, version: &str, unix_secs: i64) {
        self.update(name, version, |v| v.exp = Some(unix_secs));
    }

    /// Sets a version's not-before (`nbf`, Unix seconds). Informational: gets still succeed.
    pub fn set_not_before(&self, name: &str, version: &str, unix_secs: i64) {
        self.update(name, version, |v| v.nbf = Some(unix_secs));
    }

    /// Replaces a version's tags.
    pub fn set_tags(&self, name: &str, version: &str, tags: &[(&str, &str)]) {
        let tags: BTreeMap<String, String> = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.update(name, version, |v| v.tags = tags);
    }

    /// Sets or clears a version's `contentType`.
    pub fn set_content_type(&self, name: &str, version: &str, content_type: Option<&str>) {
        self.update(name, version, |v| {
            v.content_type = content_type.map(str::to_owned);
        });
    }

    /// Deletes secret `name` with all its versions (gets answer 404 afterwards). Returns
    /// whether it existed.
    pub fn delete_secret(&self, name: &str) -> bool {
        self.lock()
            .secrets
            .remove(&name.to_ascii_lowercase())
            .is_some()
    }

    /// The version ids of secret `name`, oldest first (the last is the current one); empty if
    /// there is no such secret.
    pub fn versions(&self, name: &str) -> Vec<String> {
        self.lock()
            .secrets
            .get(&name.to_ascii_lowercase())
            .map(|s| s.versions.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Answers the next `n` Key Vault requests with 429, `Retry-After: 1` and Key Vault's
    /// `Throttled` body.
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttle_next += n;
    }

    /// Answers the next `n` Key Vault requests (after any throttled ones) with `status`, a
    /// 5xx.
    pub fn fail_next(&self, n: usize, status: u16) {
        assert!(
            (500..600).contains(&status),
            "fail_next takes a 5xx status, not {status}"
        );
        self.lock().fail_next.extend(std::iter::repeat_n(status, n));
    }

    /// Serves `fault` instead of the next answer on `route` (see [`route`]).
    pub fn push_fault(&self, route: &'static str, fault: Fault) {
        self.shared.faults.push(route, fault);
    }

    /// Key Vault requests so far (challenge probes, refused and throttled ones included).
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Values of secret `name` returned so far (case-insensitive).
    pub fn reads(&self, name: &str) -> usize {
        self.lock()
            .reads
            .get(&name.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Requests for a value of secret `name` so far (`GET /secrets/{name}` or
    /// `GET /secrets/{name}/{version}`), whatever the answer: refused ones (no `getSecret`
    /// permission, disabled, not found) count too. Proves that something never asked for a
    /// value.
    pub fn value_requests(&self, name: &str) -> usize {
        self.lock()
            .value_requests
            .get(&name.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Pages of `GET /secrets/{name}/versions` served so far.
    pub fn list_pages(&self, name: &str) -> usize {
        self.lock()
            .list_pages
            .get(&name.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Key Vault requests answered 429 so far.
    pub fn throttled(&self) -> usize {
        self.lock().throttled
    }

    /// Key Vault requests answered 401 (with a challenge) so far.
    pub fn challenges(&self) -> usize {
        self.lock().challenges
    }

    /// Every Key Vault request so far, oldest first.
    pub fn request_log(&self) -> Vec<VaultRequest> {
        self.lock().log.clone()
    }

    /// Writes a [`federated_assertion`] to a file (deleted with the stand-in), for
    /// `WorkloadIdentityCredential`'s token file (`AZURE_FEDERATED_TOKEN_FILE`).
    pub fn federated_token_file(&self, issuer: &str, subject: &str, ttl_secs: i64) -> PathBuf {
        let path = self
            .pki
            .path()
            .join(format!("federated-{}.jwt", random_token(12)));
        std::fs::write(&path, federated_assertion(issuer, subject, ttl_secs))
            .expect("write the federated token file");
        path
    }
}

/// A federated assertion as a Kubernetes or CI OIDC issuer would sign it: an ES256 JWT with
/// `iss`, `sub`, `aud` = [`TOKEN_EXCHANGE_AUDIENCE`], `iat`, `nbf` and `exp` = now +
/// `ttl_secs` (negative: expired). Signed by a throwaway key: the stand-in's token endpoint
/// checks the claims but, unlike Entra ID, does not fetch the issuer's keys to verify the
/// signature (it does refuse `alg: none` and an empty signature).
pub fn federated_assertion(issuer: &str, subject: &str, ttl_secs: i64) -> String {
    let now = now();
    JwtSigner::new().sign(&json!({
        "iss": issuer,
        "sub": subject,
        "aud": [TOKEN_EXCHANGE_AUDIENCE],
        "iat": now.min(now + ttl_secs) - 5,
        "nbf": now.min(now + ttl_secs) - 5,
        "exp": now + ttl_secs,
        "jti": random_token(16),
    }))
}

// ---------------------------------------------------------------------------------------------
// Dispatch

async fn dispatch(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = request_host(&uri, &headers);
    if host.eq_ignore_ascii_case(&s.vault_host) {
        vault(&s, &method, &uri, &headers, &body).await
    } else {
        entra(&s, &method, &uri, &headers, &body).await
    }
}

/// The host a request addressed (without the port): `Host`, else the HTTP/2 authority.
fn request_host(uri: &Uri, headers: &HeaderMap) -> String {
    let raw = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    if raw.starts_with('[') {
        return raw
            .split_once(']')
            .map_or(raw.clone(), |(h, _)| format!("{h}]"));
    }
    match raw.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_owned(),
        _ => raw,
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn query_pairs(uri: &Uri) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Entra ID

fn entra_error(s: &Shared, status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let (trace, correlation) = (uuid_v4(), uuid_v4());
    let ts = utc(now());
    let mut r = json_response(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("{}/error?code={code}", s.authority()),
        }),
    );
    no_store(&mut r);
    r
}

fn no_store(r: &mut Response) {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn missing_parameter(s: &Shared, name: &str) -> Response {
    entra_error(
        s,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

async fn entra(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "msi/token" {
        return managed_identity(s, method, uri, headers).await;
    }
    let tenant = match path.split('/').collect::<Vec<_>>().as_slice() {
        [t, "oauth2", "v2.0", "token"] if !t.is_empty() => (*t).to_owned(),
        _ => {
            let hint = if path.starts_with("secrets") {
                " Key Vault requests must be addressed to the vault's host name (Host header), not to the authority host."
            } else {
                ""
            };
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "error_description": format!("The stand-in's authority host serves only POST /{{tenant}}/oauth2/v2.0/token and GET /msi/token.{hint}")}),
            );
        }
    };
    let form_content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    let form = if form_content {
        strict_form(body)
    } else {
        Err("not application/x-www-form-urlencoded".to_owned())
    };
    let basic = crate::standin::basic_auth(headers);
    let named = basic
        .as_ref()
        .map(|(id, _)| id.clone())
        .or_else(|| form.as_ref().ok().and_then(|f| f.get("client_id").cloned()));
    if let Some(id) = named {
        *s.lock().token_requests.entry(id).or_default() += 1;
    }
    if let Some(r) = s.faults.apply(route::TOKEN).await {
        return r;
    }
    if method != Method::POST {
        return entra_error(
            s,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900561,
            &format!("The endpoint only accepts POST requests. Received a {method} request."),
        );
    }
    let known_tenant = s
        .lock()
        .tenants
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&tenant));
    if !known_tenant {
        return entra_error(
            s,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    }
    let Ok(form) = form else {
        // Entra reads parameters from a form body only: anything else lacks grant_type.
        return missing_parameter(s, "grant_type");
    };
    let Some(grant_type) = form.get("grant_type") else {
        return missing_parameter(s, "grant_type");
    };
    if grant_type != "client_credentials" {
        return entra_error(
            s,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    let client_id = match (&basic, form.get("client_id")) {
        (Some((b, _)), Some(f)) if b != f => {
            return entra_error(
                s,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50148,
                "The client_id in the Authorization header does not match the client_id in the request body.",
            );
        }
        (Some((b, _)), _) => b.clone(),
        (None, Some(f)) => f.clone(),
        (None, None) => return missing_parameter(s, "client_id"),
    };
    let Some(scope) = form.get("scope") else {
        return missing_parameter(s, "scope");
    };
    let client = {
        let st = s.lock();
        st.clients
            .get(&client_id)
            .filter(|c| c.tenant.eq_ignore_ascii_case(&tenant))
            .cloned()
    };
    let Some(client) = client else {
        return entra_error(
            s,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    let secret = basic
        .as_ref()
        .map(|(_, secret)| secret.clone())
        .or_else(|| form.get("client_secret").cloned());
    let assertion = form.get("client_assertion");
    let assertion_type = form.get("client_assertion_type");
    let federated = match (secret, assertion) {
        (Some(_), Some(_)) => {
            return entra_error(
                s,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90023,
                "Only one of 'client_secret' and 'client_assertion' may be presented.",
            );
        }
        (None, None) => {
            return entra_error(
                s,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        }
        (Some(secret), None) => {
            if client.secret.as_deref() != Some(secret.as_str()) {
                return entra_error(
                    s,
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                );
            }
            false
        }
        (None, Some(assertion)) => {
            if assertion_type.map(String::as_str) != Some(ASSERTION_TYPE) {
                return entra_error(
                    s,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    700023,
                    &format!("Invalid client_assertion_type: it must be '{ASSERTION_TYPE}'."),
                );
            }
            if let Err(r) = check_assertion(s, assertion, &client) {
                return r;
            }
            true
        }
    };
    if scope != SCOPE {
        let single = !scope.contains(' ');
        return match scope.strip_suffix("/.default") {
            Some(resource) if single => entra_error(
                s,
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                ),
            ),
            _ => entra_error(
                s,
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                &format!(
                    "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. Client credential flows must have a single scope value with /.default suffixed to the resource identifier."
                ),
            ),
        };
    }
    let (access, lifetime) = issue_in(s, &tenant, &client_id, federated);
    let mut r = json_response(
        StatusCode::OK,
        &json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access}),
    );
    no_store(&mut r);
    r
}

/// Mints an access token for Key Vault to `client_id` (a registered client) as Entra ID does,
/// and records it; returns it with its lifetime in seconds.
fn issue(s: &Shared, client_id: &str, federated: bool) -> (String, u64) {
    let tenant = s
        .lock()
        .clients
        .get(client_id)
        .map(|c| c.tenant.clone())
        .expect("a registered client");
    issue_in(s, &tenant, client_id, federated)
}

/// [`issue`], with the issuer naming `tenant` as the request did.
fn issue_in(s: &Shared, tenant: &str, client_id: &str, federated: bool) -> (String, u64) {
    let mut st = s.lock();
    let client = st
        .clients
        .get(client_id)
        .cloned()
        .expect("a registered client");
    let lifetime = st.lifetime;
    let now = now();
    let iss = format!("https://sts.windows.net/{tenant}/");
    let claims = json!({
        "aud": RESOURCE, "iss": iss, "iat": now, "nbf": now,
        "exp": now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        "aio": random_token(40), "appid": client_id, "appidacr": if federated { "2" } else { "1" },
        "idp": iss, "oid": client.object_id, "rh": random_token(20), "sub": client.object_id,
        "tid": tenant, "uti": random_token(22), "ver": "1.0",
    });
    let access = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(
            json!({"typ": "JWT", "alg": "RS256", "x5t": "standin", "kid": "standin"}).to_string()
        ),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(random_token(256))
    );
    st.tokens.insert(
        access.clone(),
        Issued {
            tenant: client.tenant.clone(),
            client_id: client_id.to_owned(),
            object_id: client.object_id,
            expires: Instant::now() + Duration::from_secs(lifetime),
        },
    );
    (access, lifetime)
}

/// The App Service managed identity endpoint (API version 2019-08-01), as Microsoft documents
/// it: `GET ?api-version=2019-08-01&resource=<resource>[&client_id=<id>]` with the
/// `X-IDENTITY-HEADER` secret; the answer has `access_token`, `expires_on` (unix seconds, as a
/// string), `resource`, `token_type` and `client_id`. The error statuses follow what the SDK
/// expects: 400 for an identity not assigned to the resource, 401 for a missing or wrong
/// secret header (error bodies here are the stand-in's own wording).
async fn managed_identity(s: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    let query = query_pairs(uri);
    let requested = query.get("client_id").cloned();
    let identity = {
        let st = s.lock();
        match &requested {
            Some(id) => st.user_identities.iter().find(|c| *c == id).cloned(),
            None => st.system_identity.clone(),
        }
    };
    if let Some(id) = requested.as_ref().or(identity.as_ref()) {
        *s.lock().token_requests.entry(id.clone()).or_default() += 1;
    }
    if let Some(r) = s.faults.apply(route::TOKEN).await {
        return r;
    }
    let error = |status: StatusCode, message: String| {
        json_response(
            status,
            &json!({"statusCode": status.as_u16(), "message": message}),
        )
    };
    if method != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported; use GET."),
        );
    }
    let secret = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if secret != Some(s.identity_header.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header is missing or wrong.".to_owned(),
        );
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return error(
            StatusCode::BAD_REQUEST,
            "The api-version must be 2019-08-01.".to_owned(),
        );
    }
    if query.get("resource").map(|r| r.trim_end_matches('/')) != Some(RESOURCE) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("The resource must be {RESOURCE}."),
        );
    }
    let Some(client_id) = identity else {
        return error(
            StatusCode::BAD_REQUEST,
            "No managed identity found for the requested identity.".to_owned(),
        );
    };
    let (access, lifetime) = issue(s, &client_id, false);
    let expires = now().saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "expires_on": expires.to_string(),
            "resource": RESOURCE,
            "token_type": "Bearer",
            "client_id": client_id,
        }),
    )
}

/// Checks a federated assertion's claims against `client`'s federated identity credentials.
#[allow(clippy::result_large_err)] // the error is the HTTP response itself
fn check_assertion(s: &Shared, assertion: &str, client: &Client) -> Result<(), Response> {
    let malformed = || {
        entra_error(
            s,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        )
    };
    let decode = |part: &str| -> Option<serde_json::Map<String, Value>> {
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).ok()?)
            .ok()?
            .as_object()
            .cloned()
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, p, sig] = parts.as_slice() else {
        return Err(malformed());
    };
    let (Some(header), Some(claims)) = (decode(h), decode(p)) else {
        return Err(malformed());
    };
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    if alg.eq_ignore_ascii_case("none") || sig.is_empty() {
        return Err(malformed());
    }
    let now = now();
    let exp = claims.get("exp").and_then(Value::as_i64);
    let nbf = claims.get("nbf").and_then(Value::as_i64);
    let in_window = exp.is_some_and(|e| e > now) && nbf.is_none_or(|n| n <= now + ASSERTION_SKEW);
    if !in_window {
        return Err(entra_error(
            s,
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
                utc_iso(now),
                nbf.map_or_else(|| "(none)".to_owned(), utc_iso),
                exp.map_or_else(|| "(none)".to_owned(), utc_iso),
            ),
        ));
    }
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (iss, sub) = (text("iss"), text("sub"));
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let matched = audiences.iter().any(|a| a == TOKEN_EXCHANGE_AUDIENCE)
        && client
            .federated
            .iter()
            .any(|f| f.issuer == iss && f.subject == sub);
    if !matched {
        return Err(entra_error(
            s,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                audiences.join(",")
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Key Vault

fn kv_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(inner) = inner {
        error["innererror"] = json!({"code": inner});
    }
    kv_response(status, &json!({ "error": error }))
}

fn kv_response(status: StatusCode, body: &Value) -> Response {
    let mut r = json_response(status, body);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-ms-keyvault-service-version",
        HeaderValue::from_static("1.9.2695.1"),
    );
    h.insert("x-ms-keyvault-region", HeaderValue::from_static("standin"));
    if let Ok(id) = HeaderValue::from_str(&uuid_v4()) {
        h.insert("x-ms-request-id", id);
    }
    r
}

fn bad_parameter(message: &str) -> Response {
    kv_error(StatusCode::BAD_REQUEST, "BadParameter", message, None)
}

fn unauthorized(s: &Shared, message: &str) -> Response {
    let mut r = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None);
    let challenge = format!(
        "Bearer authorization=\"{}/{}\", resource=\"{RESOURCE}\"",
        s.authority(),
        s.tenant
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

fn not_found(name_id: &str) -> Response {
    kv_error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {name_id} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

#[derive(Debug)]
struct Caller {
    client_id: String,
    object_id: String,
    tenant: String,
}

#[allow(clippy::result_large_err)] // the error is the HTTP response itself
fn authenticate(s: &Shared, headers: &HeaderMap) -> Result<Caller, Response> {
    let token = crate::standin::bearer(headers).filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(unauthorized(
            s,
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };
    let issued = s.lock().tokens.get(&token).cloned();
    let Some(issued) = issued else {
        return Err(unauthorized(
            s,
            "AKV10046: Unable to resolve the key used for signature validation.",
        ));
    };
    if issued.expires <= Instant::now() {
        return Err(unauthorized(s, "Error validating token: IDX10223"));
    }
    if !issued.tenant.eq_ignore_ascii_case(&s.tenant) {
        return Err(unauthorized(
            s,
            &format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{}/, found https://sts.windows.net/{}/.",
                s.tenant, issued.tenant
            ),
        ));
    }
    Ok(Caller {
        client_id: issued.client_id,
        object_id: issued.object_id,
        tenant: issued.tenant,
    })
}

/// 403 `ForbiddenByRbac` for `action` on `resource` (a path under the vault).
fn forbidden_by_rbac(caller: &Caller, action: &str, resource: &str) -> Response {
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss=https://sts.windows.net/{}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/{action}/action'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/ccsecrets-standin/providers/microsoft.keyvault/vaults/{}{resource}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {};location=standin\r\n",
        caller.client_id, caller.object_id, caller.tenant, VAULT_NAME, VAULT_NAME
    );
    kv_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &message,
        Some("ForbiddenByRbac"),
    )
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn attributes(v: &Version) -> Value {
    let mut a = json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
    });
    if let Some(exp) = v.exp {
        a["exp"] = exp.into();
    }
    if let Some(nbf) = v.nbf {
        a["nbf"] = nbf.into();
    }
    a
}

/// A secret item or bundle: `id`, `attributes`, and `tags` / `contentType` when set.
fn item(id: String, v: &Version) -> Value {
    let mut out = json!({"id": id, "attributes": attributes(v)});
    if !v.tags.is_empty() {
        out["tags"] = json!(v.tags);
    }
    if let Some(ct) = &v.content_type {
        out["contentType"] = json!(ct);
    }
    out
}

fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status.as_u16() {
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "InternalServerError",
    };
    kv_error(
        status,
        code,
        "The server encountered an error while processing the request (stand-in fault).",
        None,
    )
}

async fn vault(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut record = VaultRequest {
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        status: 0,
        had_token: headers.contains_key(header::AUTHORIZATION),
        client_id: None,
        user_agent: text("user-agent"),
        client_request_id: text("x-ms-client-request-id"),
    };
    let response = vault_answer(s, method, uri, headers, body, &mut record).await;
    record.status = response.status().as_u16();
    let mut st = s.lock();
    if record.status == 401 {
        st.challenges += 1;
    }
    st.log.push(record);
    response
}

async fn vault_answer(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    record: &mut VaultRequest,
) -> Response {
    {
        let mut st = s.lock();
        st.requests += 1;
        if st.throttle_next > 0 {
            st.throttle_next -= 1;
            st.throttled += 1;
            let mut r = kv_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                None,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        if let Some(status) = st.fail_next.pop_front() {
            return server_error(status);
        }
    }
    if let Some(r) = s.faults.apply(route::VAULT).await {
        return r;
    }
    let query = query_pairs(uri);
    match query.get("api-version") {
        None => {
            return bad_parameter(
                "The request URI contains an invalid or missing api-version query parameter.",
            );
        }
        Some(v) if !API_VERSIONS.contains(&v.as_str()) => {
            return bad_parameter(&format!(
                "The specified version ({v}) is not recognized. Consider using the latest supported version ({LATEST_API_VERSION})."
            ));
        }
        Some(_) => {}
    }
    if method != Method::GET {
        return kv_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadParameter",
            &format!("The stand-in serves only GET on /secrets, not {method}."),
            None,
        );
    }
    if !body.is_empty() {
        return bad_parameter("A GET request must not have a body.");
    }
    let caller = match authenticate(s, headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    record.client_id = Some(caller.client_id.clone());

    let path = uri.path().trim_start_matches('/');
    let rest = match path.strip_prefix("secrets") {
        Some("") => "",
        Some(r) if r.starts_with('/') => &r[1..],
        _ => {
            return kv_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!(
                    "The stand-in serves only /secrets; /{path} is not a Key Vault secrets path."
                ),
                None,
            );
        }
    };
    let segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let role = s.lock().grants.get(&caller.client_id).copied();
    match segments.as_slice() {
        [] => {
            if role.is_none() {
                return forbidden_by_rbac(&caller, "readMetadata", "/secrets");
            }
            list(s, &query, None)
        }
        [name] | [name, ""] => get(s, &caller, role, name, None),
        [name, "versions"] => {
            if !valid_name(name) {
                return bad_parameter(&format!("The request URI contains an invalid name: {name}"));
            }
            if role.is_none() {
                return forbidden_by_rbac(&caller, "readMetadata", &format!("/secrets/{name}"));
            }
            list(s, &query, Some(name))
        }
        [name, version] | [name, version, ""] => get(s, &caller, role, name, Some(version)),
        _ => bad_parameter(&format!(
            "The request URI /{path} is not a valid Key Vault secrets path."
        )),
    }
}

fn get(
    s: &Shared,
    caller: &Caller,
    role: Option<Role>,
    name: &str,
    version: Option<&str>,
) -> Response {
    *s.lock()
        .value_requests
        .entry(name.to_ascii_lowercase())
        .or_default() += 1;
    if !valid_name(name) {
        return bad_parameter(&format!("The request URI contains an invalid name: {name}"));
    }
    if role != Some(Role::SecretsUser) {
        let resource = format!("/secrets/{name}");
        return forbidden_by_rbac(caller, "getSecret", &resource);
    }
    let name_id = match version {
        Some(v) => format!("{name}/{v}"),
        None => name.to_owned(),
    };
    let mut st = s.lock();
    let key = name.to_ascii_lowercase();
    let Some(secret) = st.secrets.get(&key) else {
        return not_found(&name_id);
    };
    let found = match version {
        None => secret.versions.last(),
        Some(v) => secret
            .versions
            .iter()
            .find(|x| x.id.eq_ignore_ascii_case(v)),
    };
    let Some(v) = found else {
        return not_found(&name_id);
    };
    if !v.enabled {
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        );
    }
    let mut bundle = item(
        format!("{}/secrets/{}/{}", s.vault_url(), secret.name, v.id),
        v,
    );
    bundle["value"] = json!(v.value);
    *st.reads.entry(key).or_default() += 1;
    drop(st);
    kv_response(StatusCode::OK, &bundle)
}

/// The marker a `$skiptoken` carries: the scope of the list and the last key served.
fn skiptoken(scope: &str, marker: &str) -> String {
    URL_SAFE_NO_PAD.encode(
        json!({"NextMarker": format!("2!{}!{}", marker.len(), STANDARD.encode(marker)), "TargetLocation": 0, "Scope": scope})
            .to_string(),
    )
}

fn parse_skiptoken(token: &str, scope: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    if v.get("Scope")?.as_str()? != scope {
        return None;
    }
    let marker = v.get("NextMarker")?.as_str()?;
    let (len, b64) = marker.strip_prefix("2!")?.split_once('!')?;
    let decoded = String::from_utf8(STANDARD.decode(b64).ok()?).ok()?;
    (decoded.len().to_string() == len).then_some(decoded)
}

/// `GET /secrets` (`name` none) or `GET /secrets/{name}/versions`, paged.
fn list(s: &Shared, query: &HashMap<String, String>, name: Option<&str>) -> Response {
    let page_size = match query.get("maxresults") {
        None => MAX_RESULTS,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=MAX_RESULTS).contains(&n) => n,
            _ => {
                return bad_parameter(&format!(
                    "Invalid value '{m}' for maxresults: it must be an integer between 1 and {MAX_RESULTS}."
                ));
            }
        },
    };
    let scope = match name {
        Some(n) => format!("versions:{}", n.to_ascii_lowercase()),
        None => "secrets".to_owned(),
    };
    let after = match query.get("$skiptoken") {
        None => None,
        Some(t) => match parse_skiptoken(t, &scope) {
            Some(m) => Some(m),
            None => {
                return bad_parameter("The value of the $skiptoken query parameter is not valid.");
            }
        },
    };
    let vault_url = s.vault_url();
    let mut st = s.lock();
    // (sort key, item)
    let mut all: Vec<(String, Value)> = match name {
        Some(n) => {
            let Some(secret) = st.secrets.get(&n.to_ascii_lowercase()) else {
                return not_found(n);
            };
            secret
                .versions
                .iter()
                .map(|v| {
                    (
                        v.id.clone(),
                        item(format!("{vault_url}/secrets/{}/{}", secret.name, v.id), v),
                    )
                })
                .collect()
        }
        None => st
            .secrets
            .iter()
            .filter_map(|(key, secret)| {
                let current = secret.versions.last()?;
                Some((
                    key.clone(),
                    item(format!("{vault_url}/secrets/{}", secret.name), current),
                ))
            })
            .collect(),
    };
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let remaining: Vec<(String, Value)> = all
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let more = remaining.len() > page_size;
    let page: Vec<(String, Value)> = remaining.into_iter().take(page_size).collect();
    let next_link = match page.last() {
        Some((last, _)) if more => {
            let api_version = query
                .get("api-version")
                .map_or(LATEST_API_VERSION, String::as_str);
            let path = match name {
                Some(n) => format!("/secrets/{n}/versions"),
                None => "/secrets".to_owned(),
            };
            Value::String(format!(
                "{vault_url}{path}?api-version={api_version}&$skiptoken={}&maxresults={page_size}",
                skiptoken(&scope, last)
            ))
        }
        _ => Value::Null,
    };
    if let Some(n) = name {
        *st.list_pages.entry(n.to_ascii_lowercase()).or_default() += 1;
    }
    drop(st);
    let values: Vec<Value> = page.into_iter().map(|(_, v)| v).collect();
    kv_response(
        StatusCode::OK,
        &json!({"value": values, "nextLink": next_link}),
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A random GUID-shaped string (version 4 layout).
/// A Key Vault version id: 32 lowercase hex characters.
fn version_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split_time(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2024-05-01 12:00:00Z`, Entra ID's timestamp format.
fn utc(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = split_time(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

/// `2024-05-01T12:00:00.0000000+00:00`, as Entra ID prints assertion times.
fn utc_iso(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = split_time(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.0000000+00:00")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::blocking::Client as Http;

    fn http(kv: &AzureStandin) -> Http {
        Http::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(kv.ca_pem().as_bytes()).unwrap()])
            .resolve(kv.vault_host(), kv.addr())
            .build()
            .unwrap()
    }

    fn token_form(
        kv: &AzureStandin,
        http: &Http,
        tenant: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let r = http.post(kv.token_url(tenant)).form(form).send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap())
    }

    fn token(kv: &AzureStandin, http: &Http, client_id: &str, secret: &str) -> String {
        let (status, body) = token_form(
            kv,
            http,
            kv.tenant(),
            &[
                ("client_id", client_id),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
                ("scope", SCOPE),
            ],
        );
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn get(http: &Http, url: &str, token: Option<&str>) -> (u16, HeaderMap, Value) {
        let mut req = http.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.json().unwrap_or(Value::Null))
    }

    fn url(kv: &AzureStandin, path: &str) -> String {
        format!("{}{path}?api-version={LATEST_API_VERSION}", kv.vault_url())
    }

    #[test]
    fn a_tokenless_request_gets_the_challenge_the_sdk_accepts() {
        let kv = AzureStandin::start();
        let http = http(&kv);
        let (status, headers, body) = get(&http, &url(&kv, "/secrets/db/"), None);
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "Unauthorized");
        assert_eq!(
            body["error"]["message"],
            "AKV10000: Request is missing a Bearer or PoP token."
        );
        let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            challenge,
            format!(
                "Bearer authorization=\"{}/{}\", resource=\"https://vault.localhost\"",
                kv.authority_host(),
                kv.tenant()
            )
        );
        // The SDK's verify_challenge_resource rule.
        let resource_host = url::Url::parse(RESOURCE)
            .unwrap()
            .host_str()
            .unwrap()
            .to_owned();
        assert!(kv.vault_host().ends_with(&format!(".{resource_host}")));
        assert_eq!(kv.challenges(), 1);
        assert_eq!(kv.requests(), 1);
        let log = kv.request_log();
        assert!(!log[0].had_token && log[0].status == 401);
        // The vault is not served on the authority host.
        let (status, _, body) = get(
            &http,
            &format!(
                "{}/secrets/db?api-version={LATEST_API_VERSION}",
                kv.authority_host()
            ),
            None,
        );
        assert_eq!(status, 404);
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("Host header")
        );
        assert_eq!(kv.requests(), 1);
        // h2 is negotiated over ALPN; the vault is then told apart by `:authority`.
        let r = http.get(url(&kv, "/secrets/db")).send().unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(kv.requests(), 2);
    }

    #[test]
    fn a_client_secret_token_reads_the_current_version_and_the_rest_is_strict() {
        let kv = AzureStandin::with_client("app-1", "s3cret");
        let http = http(&kv);
        let v1 = kv.set_secret("genesys-prod", "old", &[]);
        let v2 = kv.set_secret("genesys-prod", "{\"client_id\":\"x\"}", &[("env", "prod")]);
        kv.set_content_type("genesys-prod", &v2, Some("application/json"));
        assert_eq!(v2.len(), 32);
        assert!(
            v2.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(kv.versions("genesys-prod"), [v1.clone(), v2.clone()]);

        let (status, body) = token_form(
            &kv,
            &http,
            kv.tenant(),
            &[
                ("client_id", "app-1"),
                ("client_secret", "s3cret"),
                ("grant_type", "client_credentials"),
                ("scope", SCOPE),
            ],
        );
        assert_eq!(status, 200);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        let t = body["access_token"].as_str().unwrap();
        assert_eq!(kv.token_requests("app-1"), 1);
        assert_eq!(kv.tokens_issued("app-1"), 1);

        let (status, headers, bundle) = get(&http, &url(&kv, "/secrets/genesys-prod/"), Some(t));
        assert_eq!(status, 200, "{bundle}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(bundle["value"], "{\"client_id\":\"x\"}");
        assert_eq!(
            bundle["id"],
            format!("{}/secrets/genesys-prod/{v2}", kv.vault_url())
        );
        assert_eq!(bundle["contentType"], "application/json");
        assert_eq!(bundle["tags"]["env"], "prod");
        let attrs = &bundle["attributes"];
        assert_eq!(attrs["enabled"], true);
        assert!(attrs["created"].as_i64().unwrap() > 1_600_000_000);
        assert!(attrs["updated"].is_i64());
        assert_eq!(attrs["recoveryLevel"], "Recoverable+Purgeable");
        assert!(attrs.get("exp").is_none());
        // Without the trailing slash, another case, and a pinned version.
        let (status, _, b) = get(&http, &url(&kv, "/secrets/GENESYS-prod"), Some(t));
        assert_eq!((status, b["value"].clone()), (200, bundle["value"].clone()));
        let (status, _, b) = get(
            &http,
            &url(&kv, &format!("/secrets/genesys-prod/{v1}")),
            Some(t),
        );
        assert_eq!((status, b["value"].as_str()), (200, Some("old")));
        assert!(b.get("tags").is_none() && b.get("contentType").is_none());
        assert_eq!(kv.reads("genesys-prod"), 3);

        // Expired and not-yet-valid versions are still returned, with their attributes.
        let (exp, nbf) = (now() - 60, now() + 60);
        kv.set_expiry("genesys-prod", &v2, exp);
        kv.set_not_before("genesys-prod", &v2, nbf);
        let (status, _, b) = get(&http, &url(&kv, "/secrets/genesys-prod"), Some(t));
        assert_eq!(status, 200);
        assert_eq!(b["attributes"]["exp"], exp);
        assert_eq!(b["attributes"]["nbf"], nbf);

        // A disabled current version is refused even though an older one is enabled.
        kv.set_enabled("genesys-prod", &v2, false);
        let (status, _, b) = get(&http, &url(&kv, "/secrets/genesys-prod"), Some(t));
        assert_eq!(status, 403);
        assert_eq!(b["error"]["code"], "Forbidden");
        assert_eq!(b["error"]["innererror"]["code"], "SecretDisabled");
        assert_eq!(
            b["error"]["message"],
            "Operation get is not allowed on a disabled secret."
        );
        let (status, _, _) = get(
            &http,
            &url(&kv, &format!("/secrets/genesys-prod/{v1}")),
            Some(t),
        );
        assert_eq!(status, 200);

        // Unknown names and versions, bad names.
        let (status, _, b) = get(&http, &url(&kv, "/secrets/nope"), Some(t));
        assert_eq!(status, 404);
        assert_eq!(b["error"]["code"], "SecretNotFound");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("A secret with (name/id) nope was not found in this key vault.")
        );
        let missing = version_id();
        let (status, _, b) = get(
            &http,
            &url(&kv, &format!("/secrets/genesys-prod/{missing}")),
            Some(t),
        );
        assert_eq!(status, 404);
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("genesys-prod/{missing}"))
        );
        let (status, _, b) = get(&http, &url(&kv, "/secrets/bad_name"), Some(t));
        assert_eq!(status, 400);
        assert_eq!(b["error"]["code"], "BadParameter");
        let long = "a".repeat(128);
        let (status, _, _) = get(&http, &url(&kv, &format!("/secrets/{long}")), Some(t));
        assert_eq!(status, 400);

        // Unknown and expired tokens, and tokens of another tenant, are refused with the challenge.
        let (status, headers, b) = get(&http, &url(&kv, "/secrets/genesys-prod"), Some("forged"));
        assert_eq!(status, 401);
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("AKV10046")
        );
        kv.expire_tokens("app-1");
        let (status, _, b) = get(
            &http,
            &url(&kv, &format!("/secrets/genesys-prod/{v1}")),
            Some(t),
        );
        assert_eq!(status, 401);
        assert_eq!(b["error"]["message"], "Error validating token: IDX10223");
        kv.add_client("other-tenant", "app-2", "pw");
        kv.grant_secrets_user("app-2");
        let (status, body) = token_form(
            &kv,
            &http,
            "other-tenant",
            &[
                ("client_id", "app-2"),
                ("client_secret", "pw"),
                ("grant_type", "client_credentials"),
                ("scope", SCOPE),
            ],
        );
        assert_eq!(status, 200);
        let (status, _, b) = get(
            &http,
            &url(&kv, &format!("/secrets/genesys-prod/{v1}")),
            body["access_token"].as_str(),
        );
        assert_eq!(status, 401);
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("AKV10032: Invalid issuer.")
        );
    }

    #[test]
    fn the_token_endpoint_refuses_like_entra_and_never_echoes_the_secret() {
        let kv = AzureStandin::with_client("app-1", "s3cret-value");
        let http = http(&kv);
        let tenant = kv.tenant().to_owned();
        let base = |secret: &'static str| {
            vec![
                ("client_id", "app-1"),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
                ("scope", SCOPE),
            ]
        };
        let (status, b) = token_form(&kv, &http, &tenant, &base("wrong-guess"));
        assert_eq!(status, 401);
        assert_eq!(b["error"], "invalid_client");
        assert_eq!(b["error_codes"], json!([7000215]));
        let d = b["error_description"].as_str().unwrap();
        assert!(
            d.starts_with("AADSTS7000215: Invalid client secret provided."),
            "{d}"
        );
        // Microsoft's documented shape: these seven fields, the description's first line, then
        // `\r\n`-separated trace id, correlation id and timestamp, which repeat the fields.
        let mut keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "correlation_id",
                "error",
                "error_codes",
                "error_description",
                "error_uri",
                "timestamp",
                "trace_id"
            ]
        );
        let (trace, correlation, ts) = (
            b["trace_id"].as_str().unwrap(),
            b["correlation_id"].as_str().unwrap(),
            b["timestamp"].as_str().unwrap(),
        );
        assert!(
            d.ends_with(&format!(
                "\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"
            )),
            "{d}"
        );
        assert_eq!(d.matches("\r\n").count(), 3, "{d}");
        assert_eq!(
            b["error_uri"],
            json!(format!("{}/error?code=7000215", kv.authority_host()))
        );
        assert!(!b.to_string().contains("wrong-guess"));

        let mut f = base("s3cret-value");
        f[0] = ("client_id", "nobody");
        let (status, b) = token_form(&kv, &http, &tenant, &f);
        assert_eq!(
            (status, b["error"].as_str()),
            (400, Some("unauthorized_client"))
        );
        assert_eq!(b["error_codes"], json!([700016]));
        assert!(!b.to_string().contains("s3cret-value"));

        let (status, b) = token_form(&kv, &http, "no-such-tenant", &base("s3cret-value"));
        assert_eq!(
            (status, b["error"].as_str()),
            (400, Some("invalid_request"))
        );
        assert!(
            b["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS90002: Tenant 'no-such-tenant' not found.")
        );

        let mut f = base("s3cret-value");
        f[3] = ("scope", "https://vault.azure.net/.default");
        let (status, b) = token_form(&kv, &http, &tenant, &f);
        assert_eq!(
            (status, b["error"].as_str()),
            (400, Some("invalid_resource"))
        );
        assert_eq!(b["error_codes"], json!([500011]));
        f[3] = ("scope", "https://vault.localhost");
        let (status, b) = token_form(&kv, &http, &tenant, &f);
        assert_eq!((status, b["error"].as_str()), (400, Some("invalid_scope")));
        assert_eq!(b["error_codes"], json!([70011]));

        let mut f = base("s3cret-value");
        f[2] = ("grant_type", "password");
        let (status, b) = token_form(&kv, &http, &tenant, &f);
        assert_eq!(
            (status, b["error"].as_str()),
            (400, Some("unsupported_grant_type"))
        );

        // JSON instead of a form: Entra finds no grant_type.
        let r = http
            .post(kv.token_url(&tenant))
            .json(&json!({"client_id": "app-1", "client_secret": "s3cret-value", "grant_type": "client_credentials", "scope": SCOPE}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let b: Value = r.json().unwrap();
        assert_eq!(b["error_codes"], json!([900144]));

        // Failed requests count too; no token was minted by them.
        assert_eq!(kv.token_requests("app-1"), 5);
        assert_eq!(kv.tokens_issued("app-1"), 0);
        token(&kv, &http, "app-1", "s3cret-value");
        assert_eq!(kv.tokens_issued("app-1"), 1);
    }

    #[test]
    fn a_federated_assertion_gets_a_token_when_it_matches() {
        let kv = AzureStandin::start();
        let http = http(&kv);
        let tenant = kv.tenant().to_owned();
        let (iss, sub) = (
            "https://oidc.example.com",
            "system:serviceaccount:ci:minter",
        );
        kv.add_federated_client(&tenant, "wi-app", iss, sub);
        kv.grant_secrets_user("wi-app");
        let form = |assertion: &str| -> (u16, Value) {
            token_form(
                &kv,
                &http,
                &tenant,
                &[
                    ("client_assertion", assertion),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_id", "wi-app"),
                    ("grant_type", "client_credentials"),
                    ("scope", SCOPE),
                ],
            )
        };
        let (status, b) = form(&federated_assertion(iss, sub, 600));
        assert_eq!(status, 200, "{b}");
        let t = b["access_token"].as_str().unwrap().to_owned();
        let claims = crate::jwt::claims_of(&t).unwrap();
        assert_eq!(claims["aud"], RESOURCE);
        assert_eq!(claims["appid"], "wi-app");
        assert_eq!(claims["tid"], tenant.as_str());
        kv.set_secret("cx", "v", &[]);
        let (status, _, _) = get(&http, &url(&kv, "/secrets/cx"), Some(&t));
        assert_eq!(status, 200);

        let (status, b) = form(&federated_assertion(
            iss,
            "system:serviceaccount:ci:other",
            600,
        ));
        assert_eq!(
            (status, b["error"].as_str()),
            (400, Some("invalid_request"))
        );
        assert_eq!(b["error_codes"], json!([70021]));
        assert!(
            b["error_description"]
                .as_str()
                .unwrap()
                .contains("Assertion Subject: 'system:serviceaccount:ci:other'")
        );
        let (status, b) = form(&federated_assertion(iss, sub, -60));
        assert_eq!((status, b["error_codes"].clone()), (400, json!([700024])));
        let (status, b) = form("not-a-jwt");
        assert_eq!((status, b["error_codes"].clone()), (400, json!([50027])));
        // A secret is no credential for an application that has none.
        let (status, b) = token_form(
            &kv,
            &http,
            &tenant,
            &[
                ("client_id", "wi-app"),
                ("client_secret", "x"),
                ("grant_type", "client_credentials"),
                ("scope", SCOPE),
            ],
        );
        assert_eq!((status, b["error_codes"].clone()), (401, json!([7000215])));
        let path = kv.federated_token_file(iss, sub, 600);
        let (status, _) = form(std::fs::read_to_string(path).unwrap().trim());
        assert_eq!(status, 200);
        assert_eq!(kv.token_requests("wi-app"), 6);
    }

    #[test]
    fn the_managed_identity_endpoint_needs_its_header_and_an_assigned_identity() {
        let kv = AzureStandin::start();
        let http = http(&kv);
        kv.assign_managed_identity("mi-system", true);
        kv.assign_managed_identity("mi-user", false);
        kv.grant_secrets_user("mi-system");
        kv.set_secret("genesys-prod", r#"{"client_id":"a"}"#, &[]);
        let ask = |query: &str, header: Option<&str>| {
            let mut req = http.get(format!("{}?{query}", kv.identity_endpoint()));
            if let Some(h) = header {
                req = req.header("X-IDENTITY-HEADER", h);
            }
            let r = req.send().unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().unwrap_or(Value::Null),
            )
        };
        let good = format!("api-version=2019-08-01&resource={RESOURCE}");
        let secret = kv.identity_header().to_owned();
        assert_eq!(ask(&good, None).0, 401, "the header is required");
        assert_eq!(ask(&good, Some("wrong")).0, 401);
        assert_eq!(
            ask(
                &format!("api-version=2017-09-01&resource={RESOURCE}"),
                Some(&secret)
            )
            .0,
            400
        );
        assert_eq!(
            ask(
                "api-version=2019-08-01&resource=https://management.azure.com/",
                Some(&secret)
            )
            .0,
            400
        );
        assert_eq!(
            ask(&format!("{good}&client_id=mi-unknown"), Some(&secret)).0,
            400,
            "an identity not assigned to the resource"
        );
        let (status, body) = ask(&good, Some(&secret));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["client_id"], "mi-system");
        assert_eq!(body["resource"], RESOURCE);
        assert_eq!(body["token_type"], "Bearer");
        let expires: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
        assert!(expires > now());
        let system_token = body["access_token"].as_str().unwrap().to_owned();
        let (status, _, _) = get(
            &http,
            &url(&kv, "/secrets/genesys-prod"),
            Some(&system_token),
        );
        assert_eq!(status, 200, "the system identity holds the role");
        let (status, body) = ask(&format!("{good}&client_id=mi-user"), Some(&secret));
        assert_eq!(status, 200, "{body}");
        let user_token = body["access_token"].as_str().unwrap().to_owned();
        let (status, _, _) = get(&http, &url(&kv, "/secrets/genesys-prod"), Some(&user_token));
        assert_eq!(status, 403, "the user-assigned identity has no role");
        assert_eq!(
            kv.token_requests("mi-system"),
            5,
            "failed requests count too"
        );
        assert_eq!(kv.token_requests("mi-unknown"), 1);
    }

    #[test]
    fn the_stand_in_az_hands_out_a_token_the_vault_accepts() {
        let kv = AzureStandin::with_client("app-1", "pw");
        let http = http(&kv);
        kv.set_secret("genesys-prod", r#"{"client_id":"a"}"#, &[]);
        let az = kv.azure_cli("app-1");
        // `az account get-access-token -o json --scope <scope>`, plus `extra`.
        let run = |scope: &str, extra: &[&str]| {
            std::process::Command::new(az.path().join("az"))
                .args([
                    "account",
                    "get-access-token",
                    "-o",
                    "json",
                    "--scope",
                    scope,
                ])
                .args(extra)
                .output()
                .unwrap()
        };
        let out = run(SCOPE, &[]);
        assert!(out.status.success());
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        let token = body["accessToken"].as_str().unwrap();
        assert!(body["expires_on"].as_i64().unwrap() > now());
        let (status, _, _) = get(&http, &url(&kv, "/secrets/genesys-prod"), Some(token));
        assert_eq!(status, 200);
        for (scope, extra, code) in [
            (
                "https://management.azure.com/.default",
                &[][..],
                "AADSTS500011",
            ),
            (SCOPE, &["--tenant", "other"][..], "AADSTS90002"),
        ] {
            let out = run(scope, extra);
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains(code));
        }
        assert_eq!(AzureStandin::azure_cli_runs(az.path()), 1);
    }

    #[test]
    fn the_api_version_is_required_and_checked() {
        let kv = AzureStandin::with_client("app-1", "pw");
        let http = http(&kv);
        kv.set_secret("s", "v", &[]);
        let t = token(&kv, &http, "app-1", "pw");
        let (status, _, b) = get(&http, &format!("{}/secrets/s", kv.vault_url()), Some(&t));
        assert_eq!(status, 400);
        assert_eq!(b["error"]["code"], "BadParameter");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("api-version")
        );
        let (status, _, b) = get(
            &http,
            &format!("{}/secrets/s?api-version=7.6-preview.2", kv.vault_url()),
            Some(&t),
        );
        assert_eq!(status, 400);
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("(7.6-preview.2) is not recognized")
        );
        for v in ["7.4", "7.5", "7.6", "2025-07-01"] {
            let (status, _, _) = get(
                &http,
                &format!("{}/secrets/s?api-version={v}", kv.vault_url()),
                Some(&t),
            );
            assert_eq!(status, 200, "api-version {v}");
        }
    }

    #[test]
    fn reading_needs_a_role_assignment() {
        let kv = AzureStandin::start();
        let http = http(&kv);
        let tenant = kv.tenant().to_owned();
        kv.add_client(&tenant, "app-1", "pw");
        let v = kv.set_secret("s", "v", &[]);
        let t = token(&kv, &http, "app-1", "pw");
        let (status, _, b) = get(&http, &url(&kv, "/secrets/s"), Some(&t));
        assert_eq!(status, 403);
        assert_eq!(b["error"]["code"], "Forbidden");
        assert_eq!(b["error"]["innererror"]["code"], "ForbiddenByRbac");
        let m = b["error"]["message"].as_str().unwrap();
        assert!(m.starts_with("Caller is not authorized to perform action on resource."));
        assert!(m.contains("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'"));
        assert!(m.contains("appid=app-1;"));
        // Before existence: a missing secret is 403 too.
        let (status, _, _) = get(&http, &url(&kv, "/secrets/missing"), Some(&t));
        assert_eq!(status, 403);
        kv.grant_reader("app-1");
        let (status, _, _) = get(&http, &url(&kv, "/secrets/s/versions"), Some(&t));
        assert_eq!(status, 200);
        let (status, _, _) = get(&http, &url(&kv, &format!("/secrets/s/{v}")), Some(&t));
        assert_eq!(status, 403);
        kv.grant_secrets_user("app-1");
        let (status, _, _) = get(&http, &url(&kv, "/secrets/s"), Some(&t));
        assert_eq!(status, 200);
        kv.revoke_grant("app-1");
        let (status, _, b) = get(&http, &url(&kv, "/secrets/s/versions"), Some(&t));
        assert_eq!(status, 403);
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("secrets/readMetadata/action")
        );
        assert_eq!(kv.reads("s"), 1);
        assert_eq!(
            kv.value_requests("s"),
            3,
            "refused value requests count too"
        );
        assert_eq!(kv.value_requests("missing"), 1);
    }

    #[test]
    fn versions_are_paged_with_a_next_link_the_sdk_can_follow() {
        let kv = AzureStandin::with_client("app-1", "pw");
        let http = http(&kv);
        let t = token(&kv, &http, "app-1", "pw");
        let mut made: Vec<String> = (0..30)
            .map(|i| kv.set_secret("many", &format!("v{i}"), &[("n", &i.to_string())]))
            .collect();
        let mut seen = Vec::new();
        let mut next = Some(url(&kv, "/secrets/many/versions"));
        let mut pages = 0;
        while let Some(u) = next.take() {
            let (status, _, b) = get(&http, &u, Some(&t));
            assert_eq!(status, 200, "{b}");
            pages += 1;
            for item in b["value"].as_array().unwrap() {
                assert!(item.get("value").is_none(), "lists carry no values");
                assert!(item["attributes"]["created"].is_i64());
                assert!(item["tags"]["n"].is_string());
                let id = item["id"].as_str().unwrap();
                let prefix = format!("{}/secrets/many/", kv.vault_url());
                seen.push(id.strip_prefix(&prefix).unwrap().to_owned());
            }
            if let Some(link) = b["nextLink"].as_str() {
                assert_eq!(b["value"].as_array().unwrap().len(), 25);
                assert!(link.contains("$skiptoken=") && link.contains("api-version=2025-07-01"));
                // What the SDK does: parse, then set api-version again (re-encoding the query).
                let mut l = url::Url::parse(link).unwrap();
                let pairs: Vec<(String, String)> = l
                    .query_pairs()
                    .into_owned()
                    .filter(|(k, _)| k != "api-version")
                    .collect();
                l.query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs)
                    .append_pair("api-version", LATEST_API_VERSION);
                next = Some(l.to_string());
            }
        }
        assert_eq!(pages, 2);
        assert_eq!(kv.list_pages("many"), 2);
        made.sort();
        assert_eq!(seen, made, "every version once, in version-id order");

        let (status, _, b) = get(
            &http,
            &format!("{}&maxresults=10", url(&kv, "/secrets/many/versions")),
            Some(&t),
        );
        assert_eq!(status, 200);
        assert_eq!(b["value"].as_array().unwrap().len(), 10);
        assert!(b["nextLink"].as_str().unwrap().contains("maxresults=10"));
        let (status, _, _) = get(
            &http,
            &format!("{}&maxresults=26", url(&kv, "/secrets/many/versions")),
            Some(&t),
        );
        assert_eq!(status, 400);
        let (status, _, _) = get(
            &http,
            &format!("{}&$skiptoken=garbage", url(&kv, "/secrets/many/versions")),
            Some(&t),
        );
        assert_eq!(status, 400);
        let (status, _, b) = get(&http, &url(&kv, "/secrets/none/versions"), Some(&t));
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (404, Some("SecretNotFound"))
        );
        let (status, _, b) = get(&http, &url(&kv, "/secrets"), Some(&t));
        assert_eq!(status, 200);
        assert_eq!(
            b["value"][0]["id"],
            format!("{}/secrets/many", kv.vault_url())
        );
        assert!(b["nextLink"].is_null());
    }

    #[test]
    fn throttling_and_server_errors_are_scripted() {
        let kv = AzureStandin::with_client("app-1", "pw");
        let http = http(&kv);
        kv.set_secret("s", "v", &[]);
        let t = token(&kv, &http, "app-1", "pw");
        kv.throttle_next(2);
        kv.fail_next(1, 503);
        for _ in 0..2 {
            let (status, headers, b) = get(&http, &url(&kv, "/secrets/s"), Some(&t));
            assert_eq!(status, 429);
            assert_eq!(headers[header::RETRY_AFTER], "1");
            assert_eq!(b["error"]["code"], "Throttled");
            assert!(
                b["error"]["message"]
                    .as_str()
                    .unwrap()
                    .ends_with("Reason: VaultRequestTypeLimitReached")
            );
        }
        let (status, _, b) = get(&http, &url(&kv, "/secrets/s"), Some(&t));
        assert_eq!(
            (status, b["error"]["code"].as_str()),
            (503, Some("ServiceUnavailable"))
        );
        let (status, _, _) = get(&http, &url(&kv, "/secrets/s"), Some(&t));
        assert_eq!(status, 200);
        assert_eq!(kv.throttled(), 2);
        assert_eq!(kv.requests(), 4);
        assert_eq!(kv.reads("s"), 1);
        kv.push_fault(route::TOKEN, Fault::ServerError);
        let r = http
            .post(kv.token_url(kv.tenant()))
            .form(&[("client_id", "app-1")])
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 500);
    }

    #[test]
    fn timestamps_format_like_entra() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_666_913_962), "2022-10-27 23:39:22Z");
        assert_eq!(utc_iso(951_782_400), "2000-02-29T00:00:00.0000000+00:00");
    }
}
