//! A real moto server (the AWS mock, `moto_server`) on a free loopback port, with admin helpers
//! for AWS Secrets Manager, IAM and STS that do not need the AWS SDK, and a
//! [`ThrottlingProxy`] to put in front of it: it forwards every request verbatim, counts the
//! calls per action and injects the AWS errors moto never returns (throttling, 5xx, access
//! denied).
//!
//! What moto 5.x does, checked against the running server (the store's tests rely on it):
//!
//! * Routing: moto picks the service from the credential scope of the `Authorization` header
//!   (`Credential=<key>/<date>/<region>/<service>/aws4_request`) and does not verify the
//!   signature. A request without the header is taken for S3, except the unsigned STS calls
//!   `AssumeRoleWithWebIdentity` and `AssumeRoleWithSAML`, which it recognises by `Action=` in
//!   the form body. Every region is a separate store: a secret created in `us-east-1` is not
//!   found through `eu-west-1`.
//! * Accounts: an unknown access key id (like [`ACCESS_KEY_ID`]) is account [`ACCOUNT_ID`];
//!   the temporary keys STS hands out belong to the account of the role ARN they were issued
//!   for, so a role in another account sees none of the secrets created here.
//! * `PutSecretValue` without `VersionStages` moves `AWSCURRENT` to the new version and
//!   `AWSPREVIOUS` to the version that was current; the version that was previous keeps no
//!   stage (moto still lists it, with `[]`, in `VersionIdsToStages` and in
//!   `ListSecretVersionIds`, where real AWS omits such deprecated versions unless asked). With
//!   `VersionStages` not containing `AWSCURRENT` (e.g. `["AWSPENDING"]`) the current version is
//!   left alone. `UpdateSecretVersionStage` moving `AWSCURRENT` also moves `AWSPREVIOUS` to the
//!   version it was removed from, and refuses (400 `InvalidParameterException`) to move it
//!   without `RemoveFromVersionId`.
//! * Reads: `GetSecretValue` honours `VersionId` and `VersionStage`; a pair whose version
//!   exists without that stage is 404 `InvalidRequestException`. A missing secret (or one
//!   force-deleted) or a missing stage is 404 `ResourceNotFoundException` "Secrets Manager
//!   can't find the specified secret."; a missing version id is 404
//!   `ResourceNotFoundException` "... can't find the specified secret value for VersionId:
//!   <id>"; a secret scheduled for deletion is 400 `InvalidRequestException`.
//!   `ListSecretVersionIds` answers `NextToken: ""` (an empty string, not absent), a
//!   `CreatedDate` that is the time of the listing, and HTTP 500 (HTML) for a missing secret.
//! * STS `AssumeRoleWithWebIdentity` checks nothing: the `WebIdentityToken` is ignored (any
//!   string, even none), the role need not exist in IAM, `RoleSessionName` is optional. It
//!   returns fresh `ASIA…` keys, a session token, an expiration `DurationSeconds` (default
//!   3600) ahead and `arn:aws:sts::<account of the role>:assumed-role/<role name>/<session>`.
//!   `AssumeRole` (signed) is the same. IAM roles are only needed for a realistic
//!   `AssumedRoleId` (see [`Moto::create_role`]).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::standin::Server;

/// The region of every helper here.
pub const REGION: &str = "us-east-1";

/// The account moto puts everything in (the default for any unknown access key).
pub const ACCOUNT_ID: &str = "123456789012";

/// An access key id for static credentials: moto accepts any.
pub const ACCESS_KEY_ID: &str = "testing";

/// The matching secret access key: moto does not verify signatures.
pub const SECRET_ACCESS_KEY: &str = "testing";

/// The principal named in the `AccessDeniedException`s the [`ThrottlingProxy`] makes up.
pub const DENIED_PRINCIPAL: &str = "arn:aws:sts::123456789012:assumed-role/ccsecrets/test";

/// Environment variables that make the AWS SDK pick other credentials than the ones a test
/// sets: clear them before setting [`static_credentials_env`] or [`web_identity_env`].
pub const CLEAR_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

fn moto_binary() -> String {
    std::env::var("CCSECRETS_MOTO").unwrap_or_else(|_| "moto_server".to_owned())
}

/// Panics with install instructions when `moto_server` is missing.
pub fn require_moto() {
    let ok = crate::runs(&moto_binary(), "--help");
    assert!(
        ok,
        "moto_server not found: install it with `python3 -m pip install 'moto[server]'`\n\
         (or point CCSECRETS_MOTO at a moto_server executable; tried `{}`)",
        moto_binary()
    );
}

/// A name nobody else uses on a shared server: `<prefix>-<10 random characters>`.
pub fn unique_name(prefix: &str) -> String {
    let tail: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(10)
        .collect();
    format!("{prefix}-{tail}")
}

/// Environment for the AWS SDK with static credentials, region [`REGION`], and every service
/// at `endpoint` (a [`Moto`] or a [`ThrottlingProxy`]). Clear [`CLEAR_ENV`] first.
pub fn static_credentials_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// Environment for the AWS SDK's web-identity credentials: role `role_arn`, the token in
/// `token_file`, region [`REGION`], and every service (STS included: the SDK's web-identity
/// provider reads `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`) at `endpoint`. Clear
/// [`CLEAR_ENV`] first, or static keys win.
pub fn web_identity_env(
    endpoint: &str,
    role_arn: &str,
    token_file: &std::path::Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ROLE_ARN", role_arn.to_owned()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_SESSION_NAME", "ccsecrets-test".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

fn admin_http() -> &'static reqwest::blocking::Client {
    static HTTP: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .expect("http client")
    })
}

/// The `Authorization` header moto routes by: a SigV4 credential scope for `service` in
/// `region`, with a signature it does not check.
fn fake_sigv4(region: &str, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260101/{region}/{service}/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature=0"
    )
}

/// A raw Secrets Manager call (JSON 1.1 protocol) at `endpoint` in [`REGION`]: `action` is
/// e.g. `"GetSecretValue"`. Returns the status and the JSON body (null when not JSON).
pub fn secretsmanager_call(endpoint: &str, action: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) = secretsmanager_call_full(endpoint, REGION, action, body);
    (status, body)
}

/// The same in any region, with the response headers too.
pub fn secretsmanager_call_full(
    endpoint: &str,
    region: &str,
    action: &str,
    body: &Value,
) -> (u16, HeaderMap, Value) {
    let resp = admin_http()
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .header(header::AUTHORIZATION, fake_sigv4(region, "secretsmanager"))
        .header("X-Amz-Target", format!("secretsmanager.{action}"))
        .header("X-Amz-Date", "20260101T000000Z")
        .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .unwrap_or_else(|e| panic!("secretsmanager.{action}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A raw query-protocol call (STS, IAM) at `endpoint`: signed for `service` in [`REGION`] when
/// `service` is given, unsigned (as the SDK sends `AssumeRoleWithWebIdentity`) when `None`.
/// Returns the status and the XML body.
pub fn query_call(endpoint: &str, service: Option<&str>, params: &[(&str, &str)]) -> (u16, String) {
    let mut req = admin_http()
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .form(params);
    if let Some(service) = service {
        req = req
            .header(header::AUTHORIZATION, fake_sigv4(REGION, service))
            .header("X-Amz-Date", "20260101T000000Z");
    }
    let resp = req.send().expect("query-protocol call");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

/// The text of the first `<tag>…</tag>` of an XML answer.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + len].to_owned())
}

/// Temporary credentials from moto's STS.
#[derive(Debug, Clone)]
pub struct StsCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// ISO 8601, e.g. `2026-01-01T01:00:00.123456Z`.
    pub expiration: String,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub assumed_role_arn: String,
}

impl StsCredentials {
    fn parse(xml: &str) -> StsCredentials {
        let get = |tag: &str| xml_value(xml, tag).unwrap_or_else(|| panic!("no <{tag}> in {xml}"));
        StsCredentials {
            access_key_id: get("AccessKeyId"),
            secret_access_key: get("SecretAccessKey"),
            session_token: get("SessionToken"),
            expiration: get("Expiration"),
            assumed_role_arn: get("Arn"),
        }
    }
}

/// A running `moto_server`, stopped when dropped. The data lives in memory only.
#[derive(Debug)]
pub struct Moto {
    child: Option<Child>,
    /// The watchdog shell kills the server when this pipe closes, so a server never outlives
    /// the test process, even one that is killed.
    lifeline: Option<ChildStdin>,
    port: u16,
    /// The last lines the server wrote on stderr (its request log: methods and paths only).
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// A port in 20000..32000 that is free now (ports in the ephemeral range collide with client
/// sockets).
fn free_port() -> u16 {
    loop {
        let port = fastrand::u16(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Stderr lines kept for a startup failure's panic message.
const STDERR_LINES: usize = 40;

impl Moto {
    /// Starts a fresh server (0.5 to 1 s) and waits until it answers.
    pub fn start() -> Moto {
        require_moto();
        for _attempt in 0..5 {
            let port = free_port();
            // sh waits for moto (so its exit tells that moto died) while a background
            // reader kills moto when the lifeline (sh's stdin, kept on fd 3) closes.
            let mut child = Command::new("sh")
                .args([
                    "-c",
                    "exec 3<&0; \"$0\" \"$@\" </dev/null 3<&- & pid=$!; \
                     { read _ignored <&3; kill $pid 2>/dev/null; } & \
                     wait $pid",
                    &moto_binary(),
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start moto_server");
            let stderr_pipe = child.stderr.take().expect("piped stderr");
            let stderr = Arc::new(Mutex::new(VecDeque::new()));
            let lines = Arc::clone(&stderr);
            // Drain stderr (the request log) so moto never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                    let mut l = lines.lock().expect("stderr lines");
                    if l.len() == STDERR_LINES {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            });
            let mut moto = Moto {
                lifeline: child.stdin.take(),
                child: Some(child),
                port,
                stderr,
            };
            match moto.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return moto,
                Err(exited) if exited && moto.stderr_text().contains("in use") => continue,
                Err(_) => {
                    // Let the reader thread catch the last lines.
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "moto_server did not start on port {port}; its stderr:\n{}",
                        moto.stderr_text()
                    );
                }
            }
        }
        panic!("moto_server did not start after 5 attempts (ports in use)");
    }

    /// One server shared by every test of the process. Use [`unique_name`]s, and do not
    /// [`Moto::reset`] it.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    /// Waits until the server answers; `Err(true)` when it exited, `Err(false)` on timeout.
    fn wait_ready(&mut self, within: Duration) -> Result<(), bool> {
        let deadline = Instant::now() + within;
        let probe = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .expect("http client");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().ok().flatten().is_some()
            {
                std::thread::sleep(Duration::from_millis(50));
                return Err(true);
            }
            let ok = probe
                .get(format!("{}/moto-api/", self.endpoint()))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(false)
    }

    fn stderr_text(&self) -> String {
        let lines = self.stderr.lock().expect("stderr lines");
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// `http://127.0.0.1:PORT`: the endpoint for every service (set it as the SDK's endpoint
    /// URL).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forgets everything in every service (`POST /moto-api/reset`). Not on [`Moto::shared`].
    pub fn reset(&self) {
        let resp = admin_http()
            .post(format!("{}/moto-api/reset", self.endpoint()))
            .send()
            .expect("moto reset");
        assert!(resp.status().is_success(), "moto reset: {}", resp.status());
    }

    /// A raw Secrets Manager call in [`REGION`]: status and JSON body.
    pub fn secretsmanager(&self, action: &str, body: Value) -> (u16, Value) {
        secretsmanager_call(&self.endpoint(), action, &body)
    }

    /// A Secrets Manager call asserted to succeed; its JSON answer. The panic message names
    /// the action and moto's error (`__type` and message), never the request.
    fn sm_ok(&self, action: &str, body: Value) -> Value {
        let (status, v) = self.secretsmanager(action, body);
        assert_eq!(status, 200, "secretsmanager.{action}: HTTP {status} {v}");
        v
    }

    /// Creates secret `name` with string `value` and `tags`; returns its ARN (moto appends
    /// `-` and 6 random characters to the name) and the version id of the value (`AWSCURRENT`).
    pub fn create_secret(
        &self,
        name: &str,
        value: &str,
        tags: &[(&str, &str)],
    ) -> (String, String) {
        let v = self.sm_ok(
            "CreateSecret",
            json!({ "Name": name, "SecretString": value, "Tags": tag_list(tags) }),
        );
        (str_field(&v, "ARN"), str_field(&v, "VersionId"))
    }

    /// Creates secret `name` with a binary value; returns its ARN and version id.
    pub fn create_secret_binary(&self, name: &str, value: &[u8]) -> (String, String) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        let v = self.sm_ok("CreateSecret", json!({ "Name": name, "SecretBinary": b64 }));
        (str_field(&v, "ARN"), str_field(&v, "VersionId"))
    }

    /// Puts a new value; returns its version id. Moto (like AWS) moves `AWSCURRENT` to it and
    /// `AWSPREVIOUS` to the version that was current.
    pub fn put_secret_value(&self, name: &str, value: &str) -> String {
        let v = self.sm_ok(
            "PutSecretValue",
            json!({ "SecretId": name, "SecretString": value }),
        );
        str_field(&v, "VersionId")
    }

    /// Puts a new value with exactly these staging labels (e.g. `["AWSPENDING"]`: the current
    /// version stays current); returns its version id.
    pub fn put_secret_value_with_stages(&self, name: &str, value: &str, stages: &[&str]) -> String {
        let v = self.sm_ok(
            "PutSecretValue",
            json!({ "SecretId": name, "SecretString": value, "VersionStages": stages }),
        );
        str_field(&v, "VersionId")
    }

    /// `UpdateSecretVersionStage`: attaches `stage` to `move_to_version` and/or detaches it
    /// from `remove_from_version` (moving `AWSCURRENT` needs both; `AWSPREVIOUS` follows).
    pub fn update_version_stage(
        &self,
        name: &str,
        stage: &str,
        move_to_version: Option<&str>,
        remove_from_version: Option<&str>,
    ) {
        let mut body = json!({ "SecretId": name, "VersionStage": stage });
        if let Some(v) = move_to_version {
            body["MoveToVersionId"] = json!(v);
        }
        if let Some(v) = remove_from_version {
            body["RemoveFromVersionId"] = json!(v);
        }
        self.sm_ok("UpdateSecretVersionStage", body);
    }

    /// Adds or replaces tags.
    pub fn tag(&self, name: &str, tags: &[(&str, &str)]) {
        self.sm_ok(
            "TagResource",
            json!({ "SecretId": name, "Tags": tag_list(tags) }),
        );
    }

    /// Removes tags by key.
    pub fn untag(&self, name: &str, keys: &[&str]) {
        self.sm_ok(
            "UntagResource",
            json!({ "SecretId": name, "TagKeys": keys }),
        );
    }

    /// `DescribeSecret`: `ARN`, `Name`, `Tags` (absent when none), `VersionIdsToStages`,
    /// `DeletedDate` (null unless scheduled for deletion), `CreatedDate`, ...
    pub fn describe(&self, name: &str) -> Value {
        self.sm_ok("DescribeSecret", json!({ "SecretId": name }))
    }

    /// The stages of every version, from [`Moto::describe`]: `(version id, stages)` sorted by
    /// version id, versions without a stage included (with no stages).
    pub fn stages(&self, name: &str) -> Vec<(String, Vec<String>)> {
        let d = self.describe(name);
        d["VersionIdsToStages"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(id, stages)| {
                        let stages = stages
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|s| s.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (id.clone(), stages)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A raw `GetSecretValue` (status and body), with an optional version id and stage.
    pub fn get_secret_value(
        &self,
        name: &str,
        version_id: Option<&str>,
        version_stage: Option<&str>,
    ) -> (u16, Value) {
        let mut body = json!({ "SecretId": name });
        if let Some(v) = version_id {
            body["VersionId"] = json!(v);
        }
        if let Some(s) = version_stage {
            body["VersionStage"] = json!(s);
        }
        self.secretsmanager("GetSecretValue", body)
    }

    /// `ListSecretVersionIds`: `Versions` with `VersionId`, `VersionStages` and a `CreatedDate`
    /// that moto sets to the time of the listing.
    pub fn list_secret_version_ids(&self, name: &str) -> Value {
        self.sm_ok(
            "ListSecretVersionIds",
            json!({ "SecretId": name, "IncludeDeprecated": true }),
        )
    }

    /// Deletes a secret: scheduled for deletion in 30 days (reads then fail with
    /// `InvalidRequestException`) or, with `force`, gone at once (`ResourceNotFoundException`).
    pub fn delete_secret(&self, name: &str, force: bool) {
        let mut body = json!({ "SecretId": name });
        if force {
            body["ForceDeleteWithoutRecovery"] = json!(true);
        }
        self.sm_ok("DeleteSecret", body);
    }

    /// Cancels a scheduled deletion.
    pub fn restore_secret(&self, name: &str) {
        self.sm_ok("RestoreSecret", json!({ "SecretId": name }));
    }

    /// Creates IAM role `name` trusting web identities (moto's STS does not need it, but then
    /// the `AssumedRoleId` carries the role's real id); returns its ARN,
    /// `arn:aws:iam::123456789012:role/<name>`.
    pub fn create_role(&self, name: &str) -> String {
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT_ID}:oidc-provider/ccsecrets.test")},
                "Action": "sts:AssumeRoleWithWebIdentity"
            }]
        })
        .to_string();
        let (status, xml) = query_call(
            &self.endpoint(),
            Some("iam"),
            &[
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", &trust),
            ],
        );
        assert_eq!(status, 200, "iam.CreateRole: HTTP {status} {xml}");
        xml_value(&xml, "Arn").unwrap_or_else(|| panic!("no <Arn> in {xml}"))
    }

    /// `AssumeRoleWithWebIdentity`, unsigned as the SDK sends it. Moto ignores `token`.
    pub fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &str,
    ) -> StsCredentials {
        let (status, xml) = query_call(
            &self.endpoint(),
            None,
            &[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", role_arn),
                ("RoleSessionName", session_name),
                ("WebIdentityToken", token),
            ],
        );
        assert_eq!(
            status, 200,
            "sts.AssumeRoleWithWebIdentity: HTTP {status} {xml}"
        );
        StsCredentials::parse(&xml)
    }

    /// `AssumeRole` (signed with the static test key).
    pub fn assume_role(&self, role_arn: &str, session_name: &str) -> StsCredentials {
        let (status, xml) = query_call(
            &self.endpoint(),
            Some("sts"),
            &[
                ("Action", "AssumeRole"),
                ("Version", "2011-06-15"),
                ("RoleArn", role_arn),
                ("RoleSessionName", session_name),
            ],
        );
        assert_eq!(status, 200, "sts.AssumeRole: HTTP {status} {xml}");
        StsCredentials::parse(&xml)
    }

    /// Stops the server (its data is lost).
    pub fn stop(&mut self) {
        // Closing the lifeline makes the watchdog kill the server; sh then exits.
        drop(self.lifeline.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tag_list(tags: &[(&str, &str)]) -> Value {
    tags.iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect()
}

fn str_field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

/// An AWS error the [`ThrottlingProxy`] answers instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsFault {
    /// HTTP 400 `ThrottlingException` "Rate exceeded" (query protocol: `Throttling`).
    Throttle,
    /// This 5xx status: 500 `InternalServiceError`, 503 `ServiceUnavailable`, others
    /// `InternalFailure` (query protocol: `InternalFailure` / `ServiceUnavailable`).
    Fail(u16),
    /// HTTP 400 `AccessDeniedException` naming [`DENIED_PRINCIPAL`], the action and the
    /// `SecretId` (query protocol: HTTP 403 `AccessDenied`).
    Deny,
    /// HTTP 200 with a 2 MiB body: what a misbehaving proxy or endpoint might send, which a
    /// client must cut off at its size limit.
    Oversize,
}

#[derive(Debug)]
struct Rule {
    /// `None`: any request with an action.
    action: Option<String>,
    remaining: usize,
    fault: AwsFault,
}

#[derive(Debug)]
struct ProxyState {
    target: String,
    client: reqwest::Client,
    /// One entry per request, in arrival order.
    log: Mutex<Vec<String>>,
    rules: Mutex<Vec<Rule>>,
}

/// Largest request body forwarded.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A loopback HTTP proxy in front of an AWS endpoint (normally a [`Moto`]): it forwards every
/// request verbatim (method, path, query, headers, `Host` included, body) and returns the
/// answer verbatim, except for the faults scripted with [`ThrottlingProxy::throttle_next`],
/// [`ThrottlingProxy::fail_next`], [`ThrottlingProxy::deny_next`]. It records the action of
/// every request (`X-Amz-Target` for JSON-protocol services, `Action=` in the form body or
/// query for STS and IAM), answered by a fault or not. It logs nothing. Stops when dropped.
#[derive(Debug)]
pub struct ThrottlingProxy {
    server: Server,
    state: Arc<ProxyState>,
    /// For a TLS proxy: the directory holding its CA's `ca.pem`.
    pki: Option<tempfile::TempDir>,
}

impl ThrottlingProxy {
    /// Starts a proxy forwarding to `target` (e.g. [`Moto::endpoint`]).
    pub fn start(target: &str) -> ThrottlingProxy {
        Self::serve(target, false)
    }

    /// [`ThrottlingProxy::start`] over TLS, with a certificate for `localhost` from a throwaway
    /// CA ([`ThrottlingProxy::ca_file`]): what a TLS-inspecting proxy or a private endpoint
    /// looks like to a client.
    pub fn start_tls(target: &str) -> ThrottlingProxy {
        Self::serve(target, true)
    }

    /// The PEM file of the TLS proxy's CA.
    ///
    /// # Panics
    /// When the proxy was started without TLS.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.pki
            .as_ref()
            .expect("a proxy started with start_tls")
            .path()
            .join("ca.pem")
    }

    fn serve(target: &str, tls: bool) -> ThrottlingProxy {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("proxy http client");
        let state = Arc::new(ProxyState {
            target: target.trim_end_matches('/').to_owned(),
            client,
            log: Mutex::new(Vec::new()),
            rules: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        if !tls {
            return ThrottlingProxy {
                server: Server::start(app),
                state,
                pki: None,
            };
        }
        let (ca_pem, config) = crate::tls::throwaway_pki(
            "ccsecrets-testkit AWS proxy CA",
            &["localhost"],
            &[b"http/1.1"],
        );
        let pki = tempfile::Builder::new()
            .prefix("ccsecrets-aws-proxy")
            .tempdir()
            .expect("tempdir for the proxy CA");
        std::fs::write(pki.path().join("ca.pem"), ca_pem).expect("write the CA");
        ThrottlingProxy {
            server: Server::start_tls(app, config),
            state,
            pki: Some(pki),
        }
    }

    /// `http://127.0.0.1:PORT` (`https://localhost:PORT` with TLS): use it as the SDK's
    /// endpoint URL.
    pub fn endpoint(&self) -> String {
        self.server.url().to_owned()
    }

    /// Answers the next `n` requests that name `action` (e.g. `"GetSecretValue"`), or any
    /// action when `None`, with `fault`. Rules apply first-in first-out; requests without an
    /// action (e.g. `/moto-api/`) are always forwarded.
    pub fn inject(&self, action: Option<&str>, n: usize, fault: AwsFault) {
        if n == 0 {
            return;
        }
        self.state.rules.lock().expect("rules").push(Rule {
            action: action.map(str::to_owned),
            remaining: n,
            fault,
        });
    }

    /// Answers the next `n` AWS requests, whatever their action, with HTTP 400
    /// `ThrottlingException` (`{"__type":"ThrottlingException","message":"Rate exceeded"}`,
    /// `x-amzn-ErrorType: ThrottlingException`; STS gets its XML `Throttling`). Mind that an
    /// SDK client with web-identity credentials calls `AssumeRoleWithWebIdentity` first: use
    /// [`ThrottlingProxy::throttle_next_for`] to throttle only the Secrets Manager call.
    pub fn throttle_next(&self, n: usize) {
        self.inject(None, n, AwsFault::Throttle);
    }

    /// Throttles only the next `n` requests for `action` (e.g. `"GetSecretValue"`).
    pub fn throttle_next_for(&self, action: &str, n: usize) {
        self.inject(Some(action), n, AwsFault::Throttle);
    }

    /// Answers the next `n` AWS requests, whatever their action, with `status` (500
    /// `InternalServiceError`, 503 `ServiceUnavailable`).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.inject(None, n, AwsFault::Fail(status));
    }

    /// Fails only the next `n` requests for `action` with `status`.
    pub fn fail_next_for(&self, action: &str, n: usize, status: u16) {
        self.inject(Some(action), n, AwsFault::Fail(status));
    }

    /// Answers the next `n` requests for `action` with HTTP 400 `AccessDeniedException` (moto
    /// itself does not enforce IAM).
    pub fn deny_next(&self, action: &str, n: usize) {
        self.inject(Some(action), n, AwsFault::Deny);
    }

    /// How many scripted faults have not been served yet.
    pub fn pending_faults(&self) -> usize {
        let rules = self.state.rules.lock().expect("rules");
        rules.iter().map(|r| r.remaining).sum()
    }

    /// How many requests named `action` (e.g. `"GetSecretValue"`, `"AssumeRoleWithWebIdentity"`)
    /// arrived, faulted ones included.
    pub fn count(&self, action: &str) -> usize {
        let log = self.state.log.lock().expect("log");
        log.iter().filter(|a| *a == action).count()
    }

    /// The action of every request in arrival order (`"<METHOD> <path>"` for a request
    /// without one).
    pub fn targets(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }

    /// Forgets the recorded requests and the pending faults.
    pub fn clear(&self) {
        self.state.log.lock().expect("log").clear();
        self.state.rules.lock().expect("rules").clear();
    }
}

/// How a request speaks to AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `X-Amz-Target: <service>.<Action>`, JSON body.
    Json,
    /// `Action=<Action>` in a form body or the query string; XML answers.
    Query,
}

/// The action of a request and its protocol.
fn action_of(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Option<(String, Protocol)> {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let action = target.rsplit('.').next().unwrap_or(target);
        return Some((action.to_owned(), Protocol::Json));
    }
    let form_action = |bytes: &[u8]| {
        url::form_urlencoded::parse(bytes)
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.into_owned())
    };
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let action = (is_form || !body.is_empty() && !body.starts_with(b"{"))
        .then(|| form_action(body))
        .flatten()
        .or_else(|| query.and_then(|q| form_action(q.as_bytes())))?;
    Some((action, Protocol::Query))
}

/// A form (or query) parameter of a query-protocol request.
fn form_param(body: &[u8], query: Option<&str>, key: &str) -> Option<String> {
    let find = |bytes: &[u8]| {
        url::form_urlencoded::parse(bytes)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    find(body).or_else(|| query.and_then(|q| find(q.as_bytes())))
}

fn request_id() -> String {
    crate::standin::uuid_v4()
}

fn fault_response(
    fault: AwsFault,
    protocol: Protocol,
    action: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let (status, code, message) = match (fault, protocol) {
        (AwsFault::Oversize, _) => {
            let mut r = (StatusCode::OK, " ".repeat(2 << 20)).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            return r;
        }
        (AwsFault::Throttle, Protocol::Json) => {
            (400, "ThrottlingException", "Rate exceeded".to_owned())
        }
        (AwsFault::Throttle, Protocol::Query) => (400, "Throttling", "Rate exceeded".to_owned()),
        (AwsFault::Fail(503), Protocol::Json) => (
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.".to_owned(),
        ),
        (AwsFault::Fail(503), Protocol::Query) => (
            503,
            "ServiceUnavailable",
            "Service is unable to handle request.".to_owned(),
        ),
        (AwsFault::Fail(500), Protocol::Json) => (
            500,
            "InternalServiceError",
            "An error occurred on the server side.".to_owned(),
        ),
        (AwsFault::Fail(status), _) => (
            status,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure."
                .to_owned(),
        ),
        (AwsFault::Deny, Protocol::Json) => {
            let service = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.split_once('.'))
                .map_or("secretsmanager", |(s, _)| s)
                .to_owned();
            let resource = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["SecretId"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "*".to_owned());
            (
                400,
                "AccessDeniedException",
                format!(
                    "User: {DENIED_PRINCIPAL} is not authorized to perform: {service}:{action} \
                     on resource: {resource} because no identity-based policy allows the \
                     {service}:{action} action"
                ),
            )
        }
        (AwsFault::Deny, Protocol::Query) => {
            let message = if action == "AssumeRoleWithWebIdentity" {
                "Not authorized to perform sts:AssumeRoleWithWebIdentity".to_owned()
            } else {
                let resource = form_param(body, query, "RoleArn").unwrap_or_else(|| "*".to_owned());
                format!(
                    "User: {DENIED_PRINCIPAL} is not authorized to perform: sts:{action} on \
                     resource: {resource}"
                )
            };
            (403, "AccessDenied", message)
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let id = request_id();
    let mut resp = match protocol {
        Protocol::Json => {
            let mut r = (
                status,
                json!({ "__type": code, "message": message }).to_string(),
            )
                .into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            if let Ok(v) = HeaderValue::from_str(code) {
                h.insert("x-amzn-ErrorType", v);
            }
            r
        }
        Protocol::Query => {
            let kind = if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            };
            let xml = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
                 <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    \
                 <Message>{}</Message>\n  </Error>\n  <RequestId>{id}</RequestId>\n\
                 </ErrorResponse>\n",
                xml_escape(&message)
            );
            let mut r = (status, xml).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Hop-by-hop headers (and `Content-Length`, which the forwarding side recomputes).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

async fn forward(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let query = parts.uri.query();
    let action = action_of(&parts.headers, query, &body);
    let entry = match &action {
        Some((a, _)) => a.clone(),
        None => format!("{} {}", parts.method, parts.uri.path()),
    };
    state.log.lock().expect("log").push(entry);
    if let Some((action, protocol)) = &action {
        let fault = {
            let mut rules = state.rules.lock().expect("rules");
            let pos = rules
                .iter()
                .position(|r| r.action.as_ref().is_none_or(|a| a == action));
            pos.map(|i| {
                rules[i].remaining -= 1;
                let fault = rules[i].fault;
                if rules[i].remaining == 0 {
                    rules.remove(i);
                }
                fault
            })
        };
        if let Some(fault) = fault {
            return fault_response(fault, *protocol, action, &parts.headers, query, &body);
        }
    }
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = state.client.request(
        parts.method.clone(),
        format!("{}{path_and_query}", state.target),
    );
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            upstream = upstream.header(name.clone(), value.clone());
        }
    }
    let answer = match upstream.body(Bytes::clone(&body)).send().await {
        Ok(a) => a,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("ThrottlingProxy: upstream unreachable: {}", e.without_url()),
            )
                .into_response();
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("ThrottlingProxy: upstream answer cut: {}", e.without_url()),
            )
                .into_response();
        }
    };
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_type(v: &Value) -> &str {
        v["__type"].as_str().unwrap_or_default()
    }

    #[test]
    fn secret_versions_stages_tags_and_deletion() {
        let moto = Moto::shared();
        let name = unique_name("ccsecrets/lifecycle");
        let (arn, v1) = moto.create_secret(&name, "one", &[("team", "cx"), ("env", "test")]);
        assert!(
            arn.starts_with(&format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}-"
            )),
            "{arn}"
        );
        let v2 = moto.put_secret_value(&name, "two");
        let d = moto.describe(&name);
        assert_eq!(d["VersionIdsToStages"][&v1], json!(["AWSPREVIOUS"]));
        assert_eq!(d["VersionIdsToStages"][&v2], json!(["AWSCURRENT"]));
        assert_eq!(d["Tags"].as_array().map(Vec::len), Some(2));

        // A pending version leaves the current one alone; moving AWSCURRENT moves AWSPREVIOUS.
        let v3 = moto.put_secret_value_with_stages(&name, "three", &["AWSPENDING"]);
        assert_eq!(
            moto.get_secret_value(&name, None, None).1["SecretString"],
            "two"
        );
        moto.update_version_stage(&name, "AWSCURRENT", Some(&v3), Some(&v2));
        let mut expected = vec![
            (v1.clone(), vec![]),
            (v2.clone(), vec!["AWSPREVIOUS".to_owned()]),
            (v3, vec!["AWSPENDING".to_owned(), "AWSCURRENT".to_owned()]),
        ];
        expected.sort();
        assert_eq!(moto.stages(&name), expected);
        let (status, v) = moto.get_secret_value(&name, None, Some("AWSPREVIOUS"));
        assert_eq!((status, v["SecretString"].as_str()), (200, Some("two")));
        let (status, v) = moto.get_secret_value(&name, Some(&v1), None);
        assert_eq!((status, v["SecretString"].as_str()), (200, Some("one")));
        let (status, v) = moto.get_secret_value(&name, Some(&v1), Some("AWSCURRENT"));
        assert_eq!((status, error_type(&v)), (404, "InvalidRequestException"));
        let versions = moto.list_secret_version_ids(&name);
        assert_eq!(versions["Versions"].as_array().map(Vec::len), Some(3));

        moto.tag(&name, &[("owner", "me")]);
        moto.untag(&name, &["team", "env"]);
        assert_eq!(
            moto.describe(&name)["Tags"],
            json!([{"Key": "owner", "Value": "me"}])
        );

        moto.delete_secret(&name, false);
        let (status, v) = moto.get_secret_value(&name, None, None);
        assert_eq!((status, error_type(&v)), (400, "InvalidRequestException"));
        moto.restore_secret(&name);
        moto.delete_secret(&name, true);
        let (status, v) = moto.get_secret_value(&name, None, None);
        assert_eq!((status, error_type(&v)), (404, "ResourceNotFoundException"));

        let bin = unique_name("ccsecrets/bin");
        moto.create_secret_binary(&bin, &[0, 1, 2]);
        assert_eq!(
            moto.get_secret_value(&bin, None, None).1["SecretBinary"],
            "AAEC"
        );
    }

    #[test]
    fn a_started_server_resets_and_stops_on_drop() {
        let moto = Moto::start();
        let endpoint = moto.endpoint();
        moto.create_secret("ccsecrets/reset", "x", &[]);
        moto.reset();
        let (status, v) = moto.get_secret_value("ccsecrets/reset", None, None);
        assert_eq!((status, error_type(&v)), (404, "ResourceNotFoundException"));
        drop(moto);
        assert!(
            admin_http()
                .get(format!("{endpoint}/moto-api/"))
                .send()
                .is_err()
        );
    }

    #[test]
    fn sts_web_identity_ignores_the_token() {
        let moto = Moto::shared();
        let role = moto.create_role(&unique_name("ccsecrets-role"));
        assert!(
            role.starts_with(&format!("arn:aws:iam::{ACCOUNT_ID}:role/")),
            "{role}"
        );
        let creds = moto.assume_role_with_web_identity(&role, "s1", "not-a-jwt");
        assert!(creds.access_key_id.starts_with("ASIA"), "{creds:?}");
        assert!(!creds.session_token.is_empty());
        let role_name = role.rsplit('/').next().unwrap_or_default();
        assert_eq!(
            creds.assumed_role_arn,
            format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/s1")
        );
        // Not even an existing role is needed.
        let other = moto.assume_role("arn:aws:iam::123456789012:role/nowhere", "s2");
        assert!(other.assumed_role_arn.ends_with("assumed-role/nowhere/s2"));
    }

    #[test]
    fn proxy_forwards_counts_and_injects_faults() {
        let moto = Moto::shared();
        let proxy = ThrottlingProxy::start(&moto.endpoint());
        let name = unique_name("ccsecrets/proxied");
        moto.create_secret(&name, "value", &[]);
        let ep = proxy.endpoint();
        let get = json!({ "SecretId": name });

        proxy.throttle_next(2);
        for _ in 0..2 {
            let (status, headers, v) =
                secretsmanager_call_full(&ep, REGION, "GetSecretValue", &get);
            assert_eq!(status, 400);
            assert_eq!(
                v,
                json!({"__type": "ThrottlingException", "message": "Rate exceeded"})
            );
            assert_eq!(headers["x-amzn-errortype"], "ThrottlingException");
            assert_eq!(headers[header::CONTENT_TYPE], "application/x-amz-json-1.1");
        }
        let (status, v) = secretsmanager_call(&ep, "GetSecretValue", &get);
        assert_eq!((status, v["SecretString"].as_str()), (200, Some("value")));

        // Moto's own errors pass through verbatim.
        let (status, headers, v) = secretsmanager_call_full(
            &ep,
            REGION,
            "GetSecretValue",
            &json!({"SecretId": "nope-x"}),
        );
        assert_eq!((status, error_type(&v)), (404, "ResourceNotFoundException"));
        assert_eq!(headers["x-amzn-errortype"], "ResourceNotFoundException");

        proxy.deny_next("GetSecretValue", 1);
        let (status, _) = secretsmanager_call(&ep, "DescribeSecret", &get);
        assert_eq!(status, 200);
        let (status, v) = secretsmanager_call(&ep, "GetSecretValue", &get);
        assert_eq!((status, error_type(&v)), (400, "AccessDeniedException"));
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("secretsmanager:GetSecretValue on resource: ") && msg.contains(&name),
            "{msg}"
        );

        proxy.fail_next(1, 503);
        proxy.fail_next_for("GetSecretValue", 1, 500);
        proxy.throttle_next_for("DescribeSecret", 1);
        let (status, v) = secretsmanager_call(&ep, "GetSecretValue", &get);
        assert_eq!((status, error_type(&v)), (503, "ServiceUnavailable"));
        let (status, v) = secretsmanager_call(&ep, "GetSecretValue", &get);
        assert_eq!((status, error_type(&v)), (500, "InternalServiceError"));
        assert_eq!(proxy.pending_faults(), 1);
        let (status, v) = secretsmanager_call(&ep, "DescribeSecret", &get);
        assert_eq!((status, error_type(&v)), (400, "ThrottlingException"));
        assert_eq!(proxy.pending_faults(), 0);

        // STS through the proxy is counted by its form Action; a throttle answers in XML.
        let params = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", "arn:aws:iam::123456789012:role/proxied"),
            ("RoleSessionName", "p"),
            ("WebIdentityToken", "t"),
        ];
        proxy.throttle_next(1);
        let (status, xml) = query_call(&ep, None, &params);
        assert_eq!(
            (status, xml_value(&xml, "Code").as_deref()),
            (400, Some("Throttling"))
        );
        let (status, xml) = query_call(&ep, None, &params);
        assert_eq!(status, 200, "{xml}");
        assert!(xml_value(&xml, "AccessKeyId").is_some());

        assert_eq!(proxy.count("GetSecretValue"), 7);
        assert_eq!(proxy.count("DescribeSecret"), 2);
        assert_eq!(proxy.count("AssumeRoleWithWebIdentity"), 2);
        assert_eq!(proxy.count("ListSecretVersionIds"), 0);
        assert_eq!(
            proxy.targets(),
            [
                "GetSecretValue",
                "GetSecretValue",
                "GetSecretValue",
                "GetSecretValue",
                "DescribeSecret",
                "GetSecretValue",
                "GetSecretValue",
                "GetSecretValue",
                "DescribeSecret",
                "AssumeRoleWithWebIdentity",
                "AssumeRoleWithWebIdentity",
            ]
        );
        proxy.clear();
        assert!(proxy.targets().is_empty());
    }
}
