//! What every outbound call shares: URL rules (plain HTTP only to loopback), HTTP clients with
//! timeouts, and bounded retries with full-jitter backoff that honour `Retry-After`, a
//! deadline for the whole operation, and Terraform's interrupt.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use url::Url;

/// Why a base URL is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} is not a valid URL")]
    Invalid(String),
    #[error("{url:?} uses {scheme:?}; only https (or http to a loopback address) is allowed")]
    Scheme { url: String, scheme: String },
    #[error(
        "{0:?} uses plain http to a host that is not loopback; use https (plain http is allowed only to localhost, 127.0.0.0/8 and ::1)"
    )]
    PlainHttp(String),
    #[error(
        "{0:?} must be a base URL (scheme, host and optional port and path) without query, fragment or credentials"
    )]
    NotBase(String),
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
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
}

/// Builds an HTTP client: no redirects (credentials must not follow them), timeouts on
/// connect and on the whole request, TLS verified unless the user turned it off.
pub fn http_client(opts: &ClientOptions) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
        .timeout(opts.timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!(
            "terraform-provider-ccsecrets/",
            env!("CARGO_PKG_VERSION")
        ));
    if let Some(pem) = &opts.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|_| "the CA file does not contain PEM certificates".to_owned())?;
        if certs.is_empty() {
            return Err("the CA file does not contain PEM certificates".to_owned());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if opts.skip_tls_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
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

/// Reads a `Retry-After` header: delay-seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Retry settings and the budget of one operation.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff ceiling; doubles each retry (full jitter picks uniformly below it).
    pub base_delay: Duration,
    /// Highest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
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
    let mut last = None;
    loop {
        n += 1;
        let outcome = tokio::select! {
            biased;
            () = budget.cancel.cancelled() => return Err(GaveUp::Cancelled),
            r = tokio::time::timeout(budget.remaining(), attempt(n)) => r,
        };
        let (error, after) = match outcome {
            Err(_elapsed) => {
                return Err(GaveUp::Deadline {
                    waiting_for: waiting_for.to_owned(),
                    elapsed: budget.started.elapsed(),
                    last,
                });
            }
            Ok(Attempt::Done(v)) => return Ok(v),
            Ok(Attempt::Fail(error)) => return Err(GaveUp::Error { error, attempts: n }),
            Ok(Attempt::Retry { error, after }) => (error, after),
        };
        if n > policy.max_retries {
            return Err(GaveUp::Error { error, attempts: n });
        }
        // Full jitter: uniform in [0, min(max, base * 2^(n-1))]. When the server said how long
        // to wait, wait that long plus a little jitter so waiters do not return in lockstep.
        let ceiling = policy
            .base_delay
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(policy.max_delay);
        let jitter = ceiling.mul_f64(fastrand::f64());
        let delay = after.map_or(jitter, |a| a + jitter.min(Duration::from_millis(250)));
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
