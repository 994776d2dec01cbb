//! An in-memory platform for unit tests: accepts the secrets it is told to, mints tokens of a
//! chosen lifetime, counts mints and revocations.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};

use super::{Net, Platform, PlatformError, Target, key_value};
use crate::error::Problem;
use crate::net::Budget;
use crate::pool::PooledToken;
use crate::store::{Location, Secret};

/// What the fake platform does, shared between a test and the tokens it mints.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Client secrets the platform accepts; any other is `invalid_client`.
    pub accepted: Mutex<BTreeSet<String>>,
    /// Lifetime of minted tokens (default one day).
    pub lifetime: Mutex<Option<Duration>>,
    /// The identity of minted tokens.
    pub identity: Mutex<String>,
    /// Token requests made.
    pub mints: AtomicUsize,
    /// Tokens revoked.
    pub revoked: AtomicUsize,
    /// When set, revocations fail (the platform is unreachable) and are not counted.
    pub revoke_fails: std::sync::atomic::AtomicBool,
}

impl Behaviour {
    /// Accepts `secret` from now on.
    pub fn accept(&self, secret: &str) {
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(secret.to_owned());
    }
    /// Stops accepting `secret`.
    pub fn reject(&self, secret: &str) {
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(secret);
    }
}

/// The fake platform.
#[derive(Debug)]
pub struct FakePlatform;

/// Settings of a fake token block.
#[derive(Debug, Clone)]
pub struct FakeSettings {
    /// What the platform does.
    pub behaviour: Arc<Behaviour>,
    /// Expected identity.
    pub expected: Option<String>,
}

/// A fake credential.
#[derive(Debug)]
pub struct FakeRequest {
    secret: SecretString,
    behaviour: Arc<Behaviour>,
}

/// A fake token.
#[derive(Debug)]
pub struct FakeToken {
    /// The token value.
    pub value: String,
    expires_at: SystemTime,
    lifetime: Duration,
    behaviour: Arc<Behaviour>,
}

impl PooledToken for FakeToken {
    fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
    fn lifetime(&self) -> Duration {
        self.lifetime
    }
    fn revoke(&self) -> Option<BoxFuture<'static, Result<(), PlatformError>>> {
        let b = Arc::clone(&self.behaviour);
        Some(
            async move {
                if b.revoke_fails.load(Ordering::SeqCst) {
                    return Err(PlatformError::Unreachable {
                        platform: "Fake",
                        endpoint: "http://127.0.0.1:1/revoke".into(),
                        reason: "the connection failed".into(),
                    });
                }
                b.revoked.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            .boxed(),
        )
    }
}

#[async_trait]
impl Platform for FakePlatform {
    const NAME: &'static str = "Fake";
    const IDENTITY: (&'static str, &'static str) = ("expected_identity", "organization");
    type Settings = FakeSettings;
    type Request = FakeRequest;
    type Token = FakeToken;

    fn request(
        settings: &FakeSettings,
        secret: &Secret,
        at: &Location,
    ) -> Result<FakeRequest, Problem> {
        Ok(FakeRequest {
            secret: key_value(secret, at, "client_secret", "client_secret_key")?,
            behaviour: Arc::clone(&settings.behaviour),
        })
    }

    fn target(_r: &FakeRequest) -> Target {
        Target {
            endpoints: vec!["fake".into()],
            keys: vec!["client_secret".into()],
            revoke: true,
        }
    }

    fn outputs(
        _r: &FakeRequest,
        token: &FakeToken,
        identity: Option<&str>,
    ) -> Vec<(&'static str, crate::mint::Output)> {
        use crate::mint::Output;
        vec![
            (
                "access_token",
                Output::Secret(SecretString::from(token.value.clone())),
            ),
            ("identity", Output::text(identity.map(str::to_owned))),
        ]
    }

    async fn mint(
        _net: &Net,
        r: Arc<FakeRequest>,
        _budget: &Budget,
    ) -> Result<FakeToken, PlatformError> {
        let n = r.behaviour.mints.fetch_add(1, Ordering::SeqCst);
        let ok = r
            .behaviour
            .accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(r.secret.expose_secret());
        if !ok {
            return Err(PlatformError::Rejected {
                platform: "Fake",
                endpoint: "fake".into(),
                status: 401,
                code: "invalid_client".into(),
                description: "authentication failed".into(),
            });
        }
        let lifetime = r
            .behaviour
            .lifetime
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .unwrap_or(Duration::from_secs(86_400));
        Ok(FakeToken {
            value: format!("token-{n}"),
            expires_at: SystemTime::now() + lifetime,
            lifetime,
            behaviour: Arc::clone(&r.behaviour),
        })
    }

    fn expected_identity(settings: &FakeSettings) -> Option<&str> {
        settings.expected.as_deref()
    }

    async fn identity(
        _net: &Net,
        r: &FakeRequest,
        _token: &FakeToken,
        _budget: &Budget,
    ) -> Result<String, PlatformError> {
        Ok(r.behaviour
            .identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }
}
