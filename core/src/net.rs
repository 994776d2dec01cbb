//! What every outbound call shares: URL rules (plain HTTP only to loopback), HTTP clients with
//! timeouts, and bounded retries with full-jitter backoff (a slower one, near a rate limit's
//! window, while throttled) that honour `Retry-After`, a deadline and Terraform's interrupt.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;
use url::Url;
use zeroize::Zeroizing;

/// Why a base URL is not acceptable. The URL is shown redacted (no credentials, no query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{:?} is not a valid URL", redact_url(.0))]
    Invalid(String),
    #[error("{:?} uses {scheme:?}; only https (or http to a loopback address) is allowed", redact_url(.url))]
    Scheme { url: String, scheme: String },
    #[error(
        "{:?} uses plain http to a host that is not loopback; use https (plain http is allowed only to localhost, 127.0.0.0/8 and ::1)", redact_url(.0)
    )]
    PlainHttp(String),
    #[error(
        "{:?} must be a base URL (scheme, host and optional port and path) without query, fragment or credentials", redact_url(.0)
    )]
    NotBase(String),
}

/// A URL as it may be shown or logged: user name, password, query and fragment replaced by
/// `REDACTED`, control characters dropped. Text that does not parse as a URL is cut at the
/// first `@`, `?` or `#` for the same reason.
pub fn redact_url(raw: &str) -> String {
    let raw = raw.trim();
    let shown = match Url::parse(raw) {
        Ok(mut url) if url.has_host() => {
            if !url.username().is_empty() || url.password().is_some() {
                let _ = url.set_username("REDACTED");
                let _ = url.set_password(None);
            }
            if url.query().is_some() {
                url.set_query(Some("REDACTED"));
            }
            if url.fragment().is_some() {
                url.set_fragment(Some("REDACTED"));
            }
            url.to_string()
        }
        _ => {
            // Keep the scheme and host part only; anything after userinfo or a query may be a
            // credential.
            let cut = raw.find(['?', '#']).unwrap_or(raw.len());
            let head = &raw[..cut];
            let head = match head.rfind('@') {
                Some(at) => match head.find("://") {
                    Some(s) if s < at => format!("{}REDACTED@{}", &head[..s + 3], &head[at + 1..]),
                    _ => format!("REDACTED@{}", &head[at + 1..]),
                },
                None => head.to_owned(),
            };
            if cut < raw.len() {
                format!("{head}{}REDACTED", &raw[cut..=cut])
            } else {
                head
            }
        }
    };
    untrusted_text(&shown, &[], 300)
}

/// Text from a server (or anything else not ours) made safe to show: every value in `sent`
/// (what ccsecrets sent in that request: credentials, tokens), raw or percent-encoded, is
/// replaced by `[redacted]`; control characters (ESC, BEL, CR, ...) and line breaks become
/// spaces; runs of spaces collapse; the result is cut to `max_chars`.
pub fn untrusted_text(text: &str, sent: &[&str], max_chars: usize) -> String {
    let mut text = text.to_owned();
    for value in sent.iter().filter(|v| v.len() >= 4) {
        text = text.replace(value, "[redacted]");
        let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        if form != *value {
            text = text.replace(&form, "[redacted]");
            text = text.replace(&form.replace('+', "%20"), "[redacted]");
        }
    }
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_control() || is_invisible_format(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let one_line = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > max_chars {
        format!("{}…", one_line.chars().take(max_chars).collect::<String>())
    } else {
        one_line
    }
}

/// Unicode format characters that reorder or hide text on a terminal (bidi overrides,
/// zero-width characters).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// The IPv4 addresses the clouds serve instance credentials on over plain http: the AWS and
/// Azure instance metadata services, the ECS container credentials endpoint and the EKS Pod
/// Identity agent.
pub const METADATA_IPV4: [std::net::Ipv4Addr; 3] = [
    std::net::Ipv4Addr::new(169, 254, 169, 254),
    std::net::Ipv4Addr::new(169, 254, 170, 2),
    std::net::Ipv4Addr::new(169, 254, 170, 23),
];

/// True for exactly the addresses the clouds serve instance credentials on over plain http
/// ([`METADATA_IPV4`], and AWS's IPv6 metadata addresses `fd00:ec2::254` and `fd00:ec2::23`);
/// not the rest of the link-local range, where anything on the local link may answer.
pub fn is_metadata_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(_) => false,
        url::Host::Ipv4(ip) => METADATA_IPV4.contains(ip),
        url::Host::Ipv6(ip) => {
            let s = ip.segments();
            s[..7] == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0] && matches!(s[7], 0x254 | 0x23)
        }
    }
}

/// Whether a request may go to `url`: https, or plain http to loopback or (for instance
/// credentials) to a cloud metadata address.
pub fn request_allowed(url: &Url) -> bool {
    url.scheme() == "https"
        || (url.scheme() == "http"
            && url
                .host()
                .is_some_and(|h| is_loopback_host(&h) || is_metadata_host(&h)))
}

/// Parses a base URL (for Vault, a token endpoint or an API), enforcing https except to
/// loopback hosts. The result has no trailing slash.
pub fn base_url(raw: &str) -> Result<Url, UrlError> {
    let url = Url::parse(raw.trim()).map_err(|_| UrlError::Invalid(raw.to_owned()))?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(UrlError::NotBase(raw.to_owned()));
    }
    let host = url
        .host()
        .ok_or_else(|| UrlError::Invalid(raw.to_owned()))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => return Err(UrlError::PlainHttp(raw.to_owned())),
        other => {
            return Err(UrlError::Scheme {
                url: raw.to_owned(),
                scheme: other.to_owned(),
            });
        }
    }
    Ok(url)
}

/// `base` with `suffix` appended to its path (`suffix` starts with `/`).
pub fn join(base: &Url, suffix: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}{suffix}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// How HTTP clients are built: TLS settings and the per-request timeout.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Each request's timeout (connect + response).
    pub timeout: Duration,
    /// Extra PEM CA bundle to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip certificate verification (explicit user choice only).
    pub skip_tls_verify: bool,
    /// Host names under `.localhost` to resolve to the loopback address, as RFC 6761 says
    /// they are (the system resolver may not know them).
    pub localhost_names: Vec<String>,
}

/// Builds an HTTP client: no redirects (credentials must not follow them), timeouts on
/// connect and on the whole request, TLS verified unless the user turned it off. Clients
/// without a CA file of their own share one TLS configuration whose system root
/// certificates are loaded once per process, at the first TLS handshake (reading and parsing
/// the system store costs milliseconds, which a short command run should not pay twice, or
/// at all when it speaks only to loopback).
pub fn http_client(opts: &ClientOptions) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
        .timeout(opts.timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("ccsecrets/", env!("CARGO_PKG_VERSION")));
    for name in &opts.localhost_names {
        if name == "localhost" || name.ends_with(".localhost") {
            builder = builder.resolve(
                name,
                std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
            );
        }
    }
    if opts.skip_tls_verify {
        builder = builder.danger_accept_invalid_certs(true);
    } else {
        builder = builder.tls_backend_preconfigured(tls_config(opts.ca_pem.as_deref())?);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The certificates of a CA file's PEM text; an error when it holds none or cannot be read
/// as PEM. Checked when settings are read, so a bad file is reported on its attribute before
/// any client is built.
pub fn ca_certificates(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let ders: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls::pki_types::pem::PemObject::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|_| "the CA file does not contain PEM certificates".to_owned())?;
    if ders.is_empty() {
        return Err("the CA file does not contain PEM certificates".to_owned());
    }
    Ok(ders)
}

/// The TLS configuration of a client: the shared one, or one that also trusts `ca_pem`.
fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: std::sync::Arc<dyn rustls::client::danger::ServerCertVerifier> = match ca_pem {
        None => {
            static SHARED: std::sync::OnceLock<std::sync::Arc<LazyPlatformVerifier>> =
                std::sync::OnceLock::new();
            SHARED
                .get_or_init(|| {
                    std::sync::Arc::new(LazyPlatformVerifier {
                        provider: std::sync::Arc::clone(&provider),
                        inner: std::sync::OnceLock::new(),
                    })
                })
                .clone()
        }
        Some(pem) => {
            let ders = ca_certificates(pem)?;
            std::sync::Arc::new(
                rustls_platform_verifier::Verifier::new_with_extra_roots(
                    ders,
                    std::sync::Arc::clone(&provider),
                )
                .map_err(|e| format!("cannot use the CA file: {e}"))?,
            )
        }
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // One request per connection at most in flight: HTTP/1.1 is all we need, and some token
    // endpoints are reported to fail over HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The platform's certificate verifier, created (and the system roots loaded) at the first
/// handshake that needs it.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
    inner: std::sync::OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn get(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(std::sync::Arc::clone(&self.provider))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl rustls::client::danger::ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.get()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What [`describe_transport`] says of a request that ran out of time.
pub const TIMED_OUT: &str = "the request timed out";

/// A short, secret-free description of a transport error, for diagnostics.
pub fn describe_transport(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    if e.is_timeout() {
        TIMED_OUT.to_owned()
    } else if e.is_connect() {
        let lower = cause.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            format!("the TLS handshake failed ({cause})")
        } else {
            format!("the connection failed ({cause})")
        }
    } else if e.is_body() || e.is_decode() {
        format!("the response was cut off or unreadable ({cause})")
    } else {
        format!("the request failed ({cause})")
    }
}

/// The longest wait a `Retry-After` header is taken at its word for; longer asks are cut to
/// this (the operation's deadline then decides).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Reads a `Retry-After` header: delay-seconds or an HTTP date, at most [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .min(MAX_RETRY_AFTER),
    )
}

/// A count of seconds from outside (a token's `expires_in`, a lease), as a duration no longer
/// than `max`. Negative counts are zero.
pub fn clamp_secs(secs: i64, max: Duration) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(max)
}

/// The most a token, identity, login or revocation response may hold.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;
/// The most a Vault/OpenBao KV v2 read (a secret's data or its metadata) may hold. Integrated
/// storage, the recommended backend, keeps entries up to 1 MiB by default and operators raise
/// `max_entry_size`; other backends take more; JSON escaping can make the answer up to six
/// times the value (`\u00XX`). 8 MiB reads any such secret and still bounds memory.
pub const VAULT_KV_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// The most an AWS Secrets Manager answer may hold: a value is at most 64 KiB (384 KiB if every
/// byte were escaped), and `DescribeSecret` / `ListSecretVersionIds` list up to 100 versions
/// with their staging labels and 50 tags.
pub const AWS_BODY_LIMIT: usize = 1024 * 1024;
/// The most an Azure Key Vault answer may hold: a value is at most 25 KiB (150 KiB if every
/// character were escaped), and a version-list page has up to 25 versions with up to 15 tags
/// each.
pub const AZURE_BODY_LIMIT: usize = 1024 * 1024;

/// Why a response body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the limit (announced or as it arrived); reading stopped there.
    #[error("the response body is larger than the {} limit for this request", human_size(*.limit))]
    TooLarge { limit: usize },
    /// The connection failed while the body arrived.
    #[error("{0}")]
    Transport(String),
}

/// A byte count as people read it (`64 KiB`, `1 MiB`).
pub fn human_size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads a response body once, into a buffer that is zeroed when dropped, and stops as soon as
/// it would exceed `limit` bytes. The buffer grows by copying into a new zeroing buffer, so no
/// copy of the bytes is freed without being zeroed.
pub async fn read_body(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, BodyError> {
    let announced = resp.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(BodyError::TooLarge { limit });
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(
        usize::try_from(announced)
            .unwrap_or(limit)
            .max(1024)
            .min(limit),
    ));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Transport(describe_transport(&e)))?
    {
        let needed = buf.len().saturating_add(chunk.len());
        if needed > limit {
            return Err(BodyError::TooLarge { limit });
        }
        if needed > buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                needed.max(buf.capacity().saturating_mul(2)).min(limit),
            ));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Retry settings and the budget of one operation.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries of transient failures after the first attempt. 0 turns every retry off,
    /// throttled ones included.
    pub max_retries: u32,
    /// First backoff ceiling; doubles each retry (full jitter picks uniformly below it).
    pub base_delay: Duration,
    /// Highest backoff ceiling.
    pub max_delay: Duration,
    /// First backoff ceiling while throttled ([`Attempt::Throttled`] without `Retry-After`);
    /// doubles each throttled retry.
    pub throttle_base: Duration,
    /// Highest ceiling while throttled: about the limit's window, so that the replicas of a
    /// fleet sharing one quota spread their retries over it instead of spending it on
    /// refusals.
    pub throttle_max: Duration,
    /// Throttled answers waited out, at most (within the operation's deadline).
    pub throttle_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            // Genesys counts tokens created per client and minute.
            throttle_base: Duration::from_secs(30),
            throttle_max: Duration::from_secs(60),
            throttle_retries: 8,
        }
    }
}

impl RetryPolicy {
    /// The wait before throttled retry `n` (1-based): with `Retry-After`, that long (at most
    /// [`MAX_RETRY_AFTER`]) plus up to half as long again, at most the ceiling, so that callers
    /// told the same moment do not return in step; without, full jitter: uniform below a
    /// ceiling that doubles from `throttle_base` up to `throttle_max`.
    pub fn throttle_delay(&self, n: u32, after: Option<Duration>) -> Duration {
        let ceiling = self
            .throttle_base
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.throttle_max);
        match after {
            Some(a) => {
                let a = a.min(MAX_RETRY_AFTER);
                a.saturating_add((a / 2).min(ceiling).mul_f64(fastrand::f64()))
            }
            None => ceiling.mul_f64(fastrand::f64()),
        }
    }

    /// The wait before transient retry `n` (1-based): full jitter, uniform below a ceiling
    /// that doubles from `base_delay` up to `max_delay`; with `Retry-After`, that long plus a
    /// little jitter.
    pub fn transient_delay(&self, n: u32, after: Option<Duration>) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max_delay);
        let jitter = ceiling.mul_f64(fastrand::f64());
        after.map_or(jitter, |a| {
            a.min(MAX_RETRY_AFTER)
                .saturating_add(jitter.min(Duration::from_millis(250)))
        })
    }
}

/// The budget of one operation: when it must be done, and the interrupt that ends it early.
#[derive(Debug, Clone)]
pub struct Budget {
    pub started: Instant,
    pub deadline: Instant,
    pub cancel: CancellationToken,
}

impl Budget {
    pub fn new(total: Duration, cancel: CancellationToken) -> Self {
        let started = Instant::now();
        Budget {
            started,
            deadline: started + total,
            cancel,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What one attempt concluded.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// Success.
    Done(T),
    /// A transient failure: try again (after at least `after`, when the server said so).
    Retry { error: E, after: Option<Duration> },
    /// Over a rate limit (Genesys's login throttle, HTTP 429): wait it out on the slower
    /// throttle schedule (after at least `after`, when the server said so).
    Throttled { error: E, after: Option<Duration> },
    /// A failure that retrying cannot fix.
    Fail(E),
}

/// Why a retried operation gave up.
#[derive(Debug, Clone, PartialEq)]
pub enum GaveUp<E> {
    /// A permanent error, or the last transient one once retries ran out.
    Error { error: E, attempts: u32 },
    /// The operation's deadline passed while waiting on `waiting_for`.
    Deadline {
        waiting_for: String,
        elapsed: Duration,
        last: Option<E>,
    },
    /// Terraform was interrupted.
    Cancelled,
}

impl<E: fmt::Display> fmt::Display for GaveUp<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GaveUp::Error { error, attempts: 1 } => write!(f, "{error}"),
            GaveUp::Error { error, attempts } => {
                write!(f, "{error} (gave up after {attempts} attempts)")
            }
            GaveUp::Deadline {
                waiting_for,
                elapsed,
                last,
            } => {
                write!(
                    f,
                    "gave up after {:.1} s waiting for {waiting_for}",
                    elapsed.as_secs_f64()
                )?;
                if let Some(last) = last {
                    write!(f, "; last error: {last}")?;
                }
                Ok(())
            }
            GaveUp::Cancelled => f.write_str("Terraform was interrupted"),
        }
    }
}

/// Runs `attempt` until it is done, fails permanently, runs out of retries, the budget's
/// deadline passes, or Terraform interrupts. Each attempt is itself cut off at the deadline.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    budget: &Budget,
    waiting_for: &str,
    mut attempt: F,
) -> Result<T, GaveUp<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let mut n = 0u32;
    let (mut transient, mut throttled) = (0u32, 0u32);
    let throttle_retries = if policy.max_retries == 0 {
        0
    } else {
        policy.throttle_retries
    };
    let mut last = None;
    loop {
        n += 1;
        let outcome = tokio::select! {
            biased;
            () = budget.cancel.cancelled() => return Err(GaveUp::Cancelled),
            r = tokio::time::timeout(budget.remaining(), attempt(n)) => r,
        };
        let (error, after, delay) = match outcome {
            Err(_elapsed) => {
                return Err(GaveUp::Deadline {
                    waiting_for: waiting_for.to_owned(),
                    elapsed: budget.started.elapsed(),
                    last,
                });
            }
            Ok(Attempt::Done(v)) => return Ok(v),
            Ok(Attempt::Fail(error)) => return Err(GaveUp::Error { error, attempts: n }),
            Ok(Attempt::Retry { error, after }) => {
                transient += 1;
                if transient > policy.max_retries {
                    return Err(GaveUp::Error { error, attempts: n });
                }
                (error, after, policy.transient_delay(transient, after))
            }
            Ok(Attempt::Throttled { error, after }) => {
                throttled += 1;
                if throttled > throttle_retries {
                    return Err(GaveUp::Error { error, attempts: n });
                }
                (error, after, policy.throttle_delay(throttled, after))
            }
        };
        if delay >= budget.remaining() {
            return Err(GaveUp::Deadline {
                waiting_for: match after {
                    Some(a) => {
                        format!("{waiting_for} (the server asked to wait {} s)", a.as_secs())
                    }
                    None => waiting_for.to_owned(),
                },
                elapsed: budget.started.elapsed(),
                last: Some(error),
            });
        }
        tracing::debug!(
            waiting_for,
            attempt = n,
            delay_ms = delay.as_millis() as u64,
            "retrying"
        );
        last = Some(error);
        tokio::select! {
            biased;
            () = budget.cancel.cancelled() => return Err(GaveUp::Cancelled),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn plain_http_only_to_loopback_and_metadata_addresses() {
        for ok in [
            "https://secretsmanager.eu-west-1.amazonaws.com/",
            "http://127.0.0.1:5000/",
            "http://localhost:8200/",
            "http://[::1]:80/",
            "http://169.254.169.254/latest/api/token",
            "http://169.254.170.2/v2/credentials/x",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::254]/latest/api/token",
            "http://[fd00:ec2::23]/v1/credentials",
        ] {
            assert!(request_allowed(&Url::parse(ok).unwrap()), "{ok}");
        }
        for refused in [
            "http://secretsmanager.eu-west-1.amazonaws.com/",
            "http://10.0.0.1/",
            "http://[fd00:ec2::1]/",
            "http://169.254.169.254.example.com/",
            "http://169.254.1.1/",
            "http://169.254.169.253/",
            "http://169.254.170.3/",
            "ftp://127.0.0.1/",
        ] {
            assert!(!request_allowed(&Url::parse(refused).unwrap()), "{refused}");
        }
    }

    #[test]
    fn base_url_rules() {
        for ok in [
            "https://vault.example.com:8200",
            "http://127.0.0.1:8200",
            "http://127.9.9.9",
            "http://localhost:1234/prefix",
            "http://[::1]:80",
            "HTTPS://Login.MyPureCloud.com",
        ] {
            assert!(base_url(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("http://vault.example.com", "plain http"),
            ("http://10.0.0.1:8200", "plain http"),
            ("http://localhost.evil.com", "plain http"),
            ("ftp://x", "uses \"ftp\""),
            ("https://user:pw@x", "base URL"),
            ("https://x/?a=b", "base URL"),
            ("not a url", "not a valid URL"),
            ("", "not a valid URL"),
        ];
        for (bad, want) in cases {
            let e = base_url(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn urls_are_shown_without_credentials_or_queries() {
        let cases = [
            (
                "https://admin:pw@vault.example.com:8200",
                "https://REDACTED@vault.example.com:8200/",
            ),
            (
                "https://login.example.com/x?api_key=s3cret#frag",
                "https://login.example.com/x?REDACTED#REDACTED",
            ),
            ("https://vault.example.com", "https://vault.example.com/"),
            ("vault:pw@host?k=v", "REDACTED@host?REDACTED"),
            ("http://user:pw@[bad", "http://REDACTED@[bad"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact_url(raw), want, "{raw}");
        }
        for bad in [
            "https://admin:pw@vault.example.com",
            "https://x/?api_key=s3cret",
        ] {
            let e = base_url(bad).unwrap_err().to_string();
            assert!(!e.contains("pw@") && !e.contains("s3cret"), "{e}");
        }
        let e = base_url("http://user:hunter22@[::1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter22"), "{e}");
    }

    #[test]
    fn untrusted_text_loses_control_bytes_and_sent_values() {
        let secret = "sEcr3t/x+y==";
        let text = format!(
            "bad secret {secret} (form: {}) \u{1b}[2J\u{7}\rfake line\u{202e}",
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        let got = untrusted_text(&text, &[secret], 200);
        assert_eq!(
            got,
            "bad secret [redacted] (form: [redacted]) [2J fake line"
        );
        assert_eq!(
            untrusted_text(&"x".repeat(500), &[], 10),
            format!("{}…", "x".repeat(10))
        );
    }

    #[test]
    fn numbers_from_outside_are_clamped() {
        let max = Duration::from_secs(100);
        assert_eq!(clamp_secs(i64::MAX, max), max);
        assert_eq!(clamp_secs(-5, max), Duration::ZERO);
        assert_eq!(clamp_secs(7, max), Duration::from_secs(7));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            u64::MAX.to_string().parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        for bad in [
            &b"not a certificate"[..],
            b"-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n",
        ] {
            let e = http_client(&ClientOptions {
                timeout: Duration::from_secs(1),
                ca_pem: Some(bad.to_vec()),
                skip_tls_verify: false,
                ..ClientOptions::default()
            })
            .unwrap_err();
            assert_eq!(e, "the CA file does not contain PEM certificates");
        }
    }

    /// Serves one raw HTTP response on a loopback port.
    async fn serve_once(head: &'static str, body_len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).await;
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b'a'; 16 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(chunk.len());
                if s.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        url
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_their_limit() {
        let http = http_client(&ClientOptions {
            timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        })
        .unwrap();
        // Announced too large: refused before reading.
        let url = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n", 0).await;
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(
            read_body(resp, SMALL_BODY_LIMIT)
                .await
                .unwrap_err()
                .to_string(),
            "the response body is larger than the 64 KiB limit for this request"
        );
        // Not announced (close-delimited), 8 MiB: reading stops at the limit.
        let url = serve_once("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 8 << 20).await;
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(
            read_body(resp, AWS_BODY_LIMIT).await.unwrap_err(),
            BodyError::TooLarge {
                limit: AWS_BODY_LIMIT
            }
        );
        // Within the limit, without a length: read whole.
        let url = serve_once("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 100_000).await;
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(
            read_body(resp, AWS_BODY_LIMIT).await.unwrap().len(),
            100_000
        );
    }

    #[test]
    fn join_appends_to_the_base_path() {
        let b = base_url("http://127.0.0.1:1/gw/").unwrap();
        assert_eq!(
            join(&b, "/oauth/token").as_str(),
            "http://127.0.0.1:1/gw/oauth/token"
        );
        let b = base_url("https://login.mypurecloud.com").unwrap();
        assert_eq!(
            join(&b, "/oauth/token").as_str(),
            "https://login.mypurecloud.com/oauth/token"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        h.insert(reqwest::header::RETRY_AFTER, soon.parse().unwrap());
        let got = retry_after(&h).unwrap();
        assert!(
            got > Duration::from_secs(27) && got <= Duration::from_secs(30),
            "{got:?}"
        );
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            ..RetryPolicy::default()
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let budget = Budget::new(Duration::from_secs(5), CancellationToken::new());
        let got: Result<u32, GaveUp<&str>> = retry(&fast(), &budget, "x", |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Attempt::Retry {
                        error: "busy",
                        after: None,
                    }
                } else {
                    Attempt::Done(n)
                }
            }
        })
        .await;
        assert_eq!(got, Ok(3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let budget = Budget::new(Duration::from_secs(5), CancellationToken::new());
        let got: Result<(), _> = retry(&fast(), &budget, "x", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Attempt::Fail("invalid_client") }
        })
        .await;
        assert_eq!(
            got,
            Err(GaveUp::Error {
                error: "invalid_client",
                attempts: 1
            })
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let budget = Budget::new(Duration::from_secs(5), CancellationToken::new());
        let got: Result<(), _> = retry(&fast(), &budget, "x", |_| async {
            Attempt::Retry {
                error: "busy",
                after: None,
            }
        })
        .await;
        assert_eq!(
            got,
            Err(GaveUp::Error {
                error: "busy",
                attempts: 4
            })
        );
    }

    #[tokio::test]
    async fn retry_after_beyond_the_deadline_gives_up_at_once() {
        let budget = Budget::new(Duration::from_secs(1), CancellationToken::new());
        let started = Instant::now();
        let got: Result<(), _> = retry(&fast(), &budget, "the token endpoint", |_| async {
            Attempt::Retry {
                error: "429",
                after: Some(Duration::from_secs(60)),
            }
        })
        .await;
        assert!(started.elapsed() < Duration::from_millis(500));
        let e = got.unwrap_err().to_string();
        assert!(e.contains("the server asked to wait 60 s"), "{e}");
        assert!(e.contains("last error: 429"), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_attempt_is_cut_off_at_the_deadline() {
        let budget = Budget::new(Duration::from_millis(50), CancellationToken::new());
        let got: Result<(), GaveUp<&str>> =
            retry(&fast(), &budget, "Vault at http://x", |_| async {
                std::future::pending::<()>().await;
                Attempt::Done(())
            })
            .await;
        let e = got.unwrap_err().to_string();
        assert!(
            e.starts_with("gave up after 0.") && e.contains("waiting for Vault at http://x"),
            "{e}"
        );
    }

    /// When each attempt of a retried operation started, on tokio's (paused) clock.
    async fn attempt_times(
        policy: &RetryPolicy,
        budget: &Budget,
        answer: impl Fn(u32) -> Attempt<(), &'static str>,
    ) -> (Vec<Duration>, Result<(), GaveUp<&'static str>>) {
        let start = Instant::now();
        let times = std::sync::Mutex::new(Vec::new());
        let got = retry(policy, budget, "the token endpoint", |n| {
            times.lock().unwrap().push(start.elapsed());
            let a = answer(n);
            async move { a }
        })
        .await;
        (times.into_inner().unwrap(), got)
    }

    fn throttled(after: Option<Duration>) -> Attempt<(), &'static str> {
        Attempt::Throttled {
            error: "rate limit exceeded",
            after,
        }
    }

    #[test]
    fn throttle_waits_are_full_jitter_under_a_ceiling_near_the_window() {
        let p = RetryPolicy::default();
        for n in 1..=10u32 {
            let ceiling = (Duration::from_secs(30) * 2u32.pow(n.min(8) - 1)).min(p.throttle_max);
            let waits: Vec<Duration> = (0..2000).map(|_| p.throttle_delay(n, None)).collect();
            let (lo, hi) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
            // Uniform over [0, ceiling): some near zero, some near the ceiling, none above.
            assert!(*hi < ceiling, "retry {n}: {hi:?} >= {ceiling:?}");
            assert!(*hi > ceiling.mul_f64(0.9), "retry {n}: {hi:?}");
            assert!(*lo < ceiling.mul_f64(0.1), "retry {n}: {lo:?}");
            let mean = waits.iter().sum::<Duration>() / 2000;
            assert!(
                mean > ceiling.mul_f64(0.4) && mean < ceiling.mul_f64(0.6),
                "retry {n}: mean {mean:?} of a ceiling of {ceiling:?}"
            );
        }
        assert_eq!(p.throttle_max, Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_retries_are_bounded_and_spread_over_the_window() {
        let budget = Budget::new(Duration::from_secs(3600), CancellationToken::new());
        let p = RetryPolicy::default();
        let (times, got) = attempt_times(&p, &budget, |_| throttled(None)).await;
        // The first attempt and `throttle_retries` more, then the throttle's own error.
        assert_eq!(times.len(), 1 + p.throttle_retries as usize);
        assert_eq!(
            got,
            Err(GaveUp::Error {
                error: "rate limit exceeded",
                attempts: 1 + p.throttle_retries
            })
        );
        for (i, pair) in times.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            let ceiling = if i == 0 { 30 } else { 60 };
            assert!(gap < Duration::from_secs(ceiling), "wait {i}: {gap:?}");
        }
        // Not a burst: nine requests spread over minutes, not seconds.
        assert!(times[8] > Duration::from_secs(60), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_waits_honour_retry_after() {
        let budget = Budget::new(Duration::from_secs(3600), CancellationToken::new());
        let (times, got) = attempt_times(&RetryPolicy::default(), &budget, |n| {
            if n < 4 {
                throttled(Some(Duration::from_secs(20)))
            } else {
                Attempt::Done(())
            }
        })
        .await;
        assert_eq!(got, Ok(()));
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // Never before the server said; spread over at most half as long again.
            assert!(
                gap >= Duration::from_secs(20) && gap <= Duration::from_secs(30),
                "{gap:?}"
            );
        }
        let p = RetryPolicy::default();
        for _ in 0..1000 {
            let d = p.throttle_delay(1, Some(Duration::from_secs(2)));
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(3),
                "{d:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_waits_end_at_the_operations_deadline() {
        let budget = Budget::new(Duration::from_secs(120), CancellationToken::new());
        let (times, got) =
            attempt_times(&RetryPolicy::default(), &budget, |_| throttled(None)).await;
        assert!(
            *times.last().unwrap() < Duration::from_secs(120),
            "{times:?}"
        );
        let e = got.unwrap_err().to_string();
        assert!(
            e.contains("waiting for the token endpoint; last error: rate limit exceeded"),
            "{e}"
        );
        // A handful of requests in two minutes, however the jitter fell.
        assert!(times.len() <= 9, "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_and_transient_retries_are_counted_apart_and_zero_turns_both_off() {
        let budget = Budget::new(Duration::from_secs(3600), CancellationToken::new());
        // Three transient failures (all of `max_retries`), then two throttled answers, then
        // success: the throttle does not use up the transient retries, nor the reverse.
        let (times, got) = attempt_times(&RetryPolicy::default(), &budget, |n| match n {
            1..=3 => Attempt::Retry {
                error: "503",
                after: None,
            },
            4 | 5 => throttled(None),
            _ => Attempt::Done(()),
        })
        .await;
        assert_eq!((times.len(), got), (6, Ok(())));
        let off = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        let (times, got) = attempt_times(&off, &budget, |_| throttled(None)).await;
        assert_eq!(times, vec![Duration::ZERO]);
        assert_eq!(
            got,
            Err(GaveUp::Error {
                error: "rate limit exceeded",
                attempts: 1
            })
        );
    }

    #[tokio::test]
    async fn interrupt_ends_the_wait() {
        let cancel = CancellationToken::new();
        let budget = Budget::new(Duration::from_secs(30), cancel.clone());
        cancel.cancel();
        let got: Result<(), GaveUp<&str>> = retry(&fast(), &budget, "x", |_| async {
            std::future::pending::<()>().await;
            Attempt::Done(())
        })
        .await;
        assert_eq!(got, Err(GaveUp::Cancelled));
    }
}
