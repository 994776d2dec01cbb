//! Tokens shared within one process. Concurrent and repeated opens that need the same token
//! (same platform, store, secret version, keys and endpoints: a typed [`PoolKey`]) share one
//! token request and reuse the token while enough of its life is left. Each open holds a
//! lease; the token is revoked when the last lease is released, or at shutdown. A [`Pools`]
//! registry holds one pool per token type, so adding a platform adds no field anywhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use std::any::{Any, TypeId};

use async_trait::async_trait;

use crate::platform::{PlatformError, Target};

/// A token the pool can hold.
pub trait PooledToken: Send + Sync + 'static {
    /// When the platform stops accepting it.
    fn expires_at(&self) -> SystemTime;
    /// How long it was valid for when minted.
    fn lifetime(&self) -> Duration;
    /// Revokes it, or `None` when this token is not to be revoked (it is then kept for reuse
    /// until it nears expiry).
    fn revoke(&self) -> Option<BoxFuture<'static, Result<(), PlatformError>>>;
}

type Mint<T> = Shared<BoxFuture<'static, Result<Arc<T>, PlatformError>>>;

/// A token whose revocation failed or timed out: it stays valid until `expires_at` (the pool
/// keeps it and tries again when drained).
#[derive(Debug, Clone, PartialEq)]
pub struct Unrevoked {
    /// Why the revocation failed.
    pub error: PlatformError,
    /// When the token expires on its own.
    pub expires_at: SystemTime,
}

impl std::fmt::Display for Unrevoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}. The token stays valid until it expires at {}",
            self.error,
            crate::platform::rfc3339(self.expires_at)
        )
    }
}

enum Slot<T> {
    Minting(Mint<T>),
    Current(u64),
}

/// Which token a request gets: everything that must match for two opens to share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The store's identity ([`crate::store::SecretStore::id`]).
    pub store: String,
    /// The secret's mount.
    pub mount: String,
    /// The secret's path.
    pub path: String,
    /// The version whose credential is used.
    pub version: String,
    /// Endpoints, key names, revocation.
    pub target: Target,
}

struct Entry<T> {
    token: Arc<T>,
    users: usize,
    key: PoolKey,
}

struct State<T> {
    /// Tokens whose revocation failed or timed out: tried again at drain.
    unrevoked: Vec<Arc<T>>,
    slots: HashMap<PoolKey, Slot<T>>,
    tokens: HashMap<u64, Entry<T>>,
    /// Lease handle → token id.
    leases: HashMap<u64, u64>,
    next: u64,
}

/// A token lent to one open; release it with [`TokenPool::release`].
pub struct Lease<T> {
    /// The token.
    pub token: Arc<T>,
    /// The handle to release it with.
    pub handle: u64,
}

impl<T> std::fmt::Debug for Lease<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// The pool of one token type.
pub struct TokenPool<T> {
    state: Mutex<State<T>>,
}

impl<T> Default for TokenPool<T> {
    fn default() -> Self {
        TokenPool {
            state: Mutex::new(State {
                unrevoked: Vec::new(),
                slots: HashMap::new(),
                tokens: HashMap::new(),
                leases: HashMap::new(),
                // Start from a random point so handles from another process never match.
                next: fastrand::u64(1..u64::MAX / 2),
            }),
        }
    }
}

impl<T> std::fmt::Debug for TokenPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPool").finish_non_exhaustive()
    }
}

/// How much of a pooled token's life must be left for it to be handed out again, in percent
/// of its lifetime. A consumer such as the genesyscloud provider cannot refresh a token it
/// was given, so a late open must not receive one that is about to expire.
pub const DEFAULT_REUSE_PERCENT: u8 = 50;

/// The life a token must have left to be reused: `percent` of its lifetime.
fn margin(lifetime: Duration, percent: u8) -> Duration {
    lifetime.mul_f64(f64::from(percent.min(100)) / 100.0)
}

fn fresh<T: PooledToken>(token: &T, percent: u8) -> bool {
    token
        .expires_at()
        .duration_since(SystemTime::now())
        .is_ok_and(|left| left > margin(token.lifetime(), percent))
}

impl<T: PooledToken> TokenPool<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a lease on token `id`, which the caller has just seen in `state.tokens`.
    fn lend(state: &mut State<T>, id: u64) -> Lease<T> {
        let token = match state.tokens.get_mut(&id) {
            Some(entry) => {
                entry.users += 1;
                Arc::clone(&entry.token)
            }
            None => unreachable!("lend is only called for a token id present in the pool"),
        };
        state.next += 1;
        let handle = state.next;
        state.leases.insert(handle, id);
        Lease { token, handle }
    }

    /// Lends the token for `key`, minting it with `mint` unless one with more than
    /// `reuse_percent` of its lifetime left is held. Concurrent callers with the same key share
    /// one mint, and its failure.
    pub async fn acquire<F>(
        &self,
        key: &PoolKey,
        reuse_percent: u8,
        mint: F,
    ) -> Result<Lease<T>, PlatformError>
    where
        F: Fn() -> BoxFuture<'static, Result<T, PlatformError>>,
    {
        loop {
            let pending = {
                let mut state = self.lock();
                let slot = match state.slots.get(key) {
                    Some(Slot::Minting(m)) => Err(m.clone()),
                    Some(Slot::Current(id)) => Ok(Some(*id)),
                    None => Ok(None),
                };
                match slot {
                    Err(minting) => minting,
                    Ok(current) => {
                        let fresh_id = current.filter(|id| {
                            state
                                .tokens
                                .get(id)
                                .is_some_and(|e| fresh(&*e.token, reuse_percent))
                        });
                        if let Some(id) = fresh_id {
                            return Ok(Self::lend(&mut state, id));
                        }
                        // A stale token nobody uses (a non-revocable one kept for reuse) is
                        // forgotten as its successor is minted, so a long-running process does
                        // not keep every token it ever minted.
                        if let Some(old) = current {
                            if state.tokens.get(&old).is_some_and(|e| e.users == 0) {
                                state.tokens.remove(&old);
                            }
                        }
                        let m = std::panic::AssertUnwindSafe(mint())
                            .catch_unwind()
                            .map(|r| match r {
                                Ok(r) => r.map(Arc::new),
                                Err(_) => Err(PlatformError::Internal("the mint panicked".into())),
                            })
                            .boxed()
                            .shared();
                        state.slots.insert(key.clone(), Slot::Minting(m.clone()));
                        m
                    }
                }
            };
            if let Some(lease) = self.wait(key, pending).await? {
                return Ok(lease);
            }
        }
    }

    /// Waits for a mint and takes a lease on its token. `Ok(None)` means the token was
    /// already released and revoked by others: the caller should try again.
    async fn wait(
        &self,
        key: &PoolKey,
        pending: Mint<T>,
    ) -> Result<Option<Lease<T>>, PlatformError> {
        let result = pending.clone().await;
        let mut state = self.lock();
        let ours =
            matches!(state.slots.get(key), Some(Slot::Minting(m)) if Shared::ptr_eq(m, &pending));
        match result {
            Err(e) => {
                if ours {
                    state.slots.remove(key);
                }
                Err(e)
            }
            Ok(token) => {
                if ours {
                    state.next += 1;
                    let id = state.next;
                    state.tokens.insert(
                        id,
                        Entry {
                            token,
                            users: 0,
                            key: key.clone(),
                        },
                    );
                    state.slots.insert(key.clone(), Slot::Current(id));
                    return Ok(Some(Self::lend(&mut state, id)));
                }
                let id = match state.slots.get(key) {
                    Some(Slot::Current(id)) => Some(*id),
                    _ => None,
                };
                match id.filter(|id| {
                    state
                        .tokens
                        .get(id)
                        .is_some_and(|e| Arc::ptr_eq(&e.token, &token))
                }) {
                    Some(id) => Ok(Some(Self::lend(&mut state, id))),
                    None => Ok(None),
                }
            }
        }
    }

    /// Ends a lease. When it was the token's last, the token is revoked (if it is revocable);
    /// the returned error says why revocation failed. Unknown handles are ignored.
    pub async fn release(&self, handle: u64) -> Result<(), Unrevoked> {
        self.release_within(handle, Duration::MAX).await
    }

    /// As [`TokenPool::release`], but gives up waiting for the revocation after `limit`. A
    /// token whose revocation failed or timed out is kept and tried again by
    /// [`TokenPool::drain`].
    pub async fn release_within(&self, handle: u64, limit: Duration) -> Result<(), Unrevoked> {
        let (token, revoke) = {
            let mut state = self.lock();
            let Some(id) = state.leases.remove(&handle) else {
                return Ok(());
            };
            let Some(entry) = state.tokens.get_mut(&id) else {
                return Ok(());
            };
            entry.users = entry.users.saturating_sub(1);
            if entry.users > 0 {
                return Ok(());
            }
            match entry.token.revoke() {
                // Not revocable: keep it for reuse while it is the current one; forget it once
                // a successor has replaced it.
                None => {
                    let key = entry.key.clone();
                    if !matches!(state.slots.get(&key), Some(Slot::Current(c)) if *c == id) {
                        state.tokens.remove(&id);
                    }
                    return Ok(());
                }
                Some(revoke) => {
                    let key = entry.key.clone();
                    let token = Arc::clone(&entry.token);
                    state.tokens.remove(&id);
                    if matches!(state.slots.get(&key), Some(Slot::Current(c)) if *c == id) {
                        state.slots.remove(&key);
                    }
                    (token, revoke)
                }
            }
        };
        let outcome = match tokio::time::timeout(limit, revoke).await {
            Ok(r) => r,
            Err(_) => Err(PlatformError::Deadline(format!(
                "revoking the token took longer than {} s",
                limit.as_secs()
            ))),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(error) => {
                let expires_at = token.expires_at();
                self.lock().unrevoked.push(token);
                Err(Unrevoked { error, expires_at })
            }
        }
    }

    /// Takes every token out of the pool and revokes the revocable ones, concurrently.
    /// Returns how many revocations failed.
    pub async fn drain(&self) -> usize {
        let revocations: Vec<_> = {
            let mut state = self.lock();
            state.leases.clear();
            let mut tokens: Vec<Arc<T>> = state.tokens.drain().map(|(_, e)| e.token).collect();
            tokens.append(&mut state.unrevoked);
            // A mint that finished while nobody was left to take its token.
            for (_, slot) in state.slots.drain() {
                if let Slot::Minting(m) = slot {
                    if let Some(Ok(token)) = m.peek() {
                        tokens.push(Arc::clone(token));
                    }
                }
            }
            tokens.iter().filter_map(|t| t.revoke()).collect()
        };
        futures_util::future::join_all(revocations)
            .await
            .into_iter()
            .filter(Result::is_err)
            .count()
    }

    /// Tokens currently held (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().tokens.len()
    }
}

/// A pool whose tokens can be drained without knowing their type.
#[async_trait]
trait Drain: Send + Sync {
    async fn drain_all(&self) -> usize;
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

#[async_trait]
impl<T: PooledToken> Drain for TokenPool<T> {
    async fn drain_all(&self) -> usize {
        self.drain().await
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// One pool per token type, created on first use; drained together at shutdown.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<Vec<(TypeId, Arc<dyn Drain>)>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").finish_non_exhaustive()
    }
}

impl Pools {
    /// The pool of token type `T`.
    pub fn get<T: PooledToken>(&self) -> Arc<TokenPool<T>> {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = TypeId::of::<T>();
        let pool = match pools.iter().find(|(t, _)| *t == id) {
            Some((_, p)) => Arc::clone(p),
            None => {
                let p: Arc<dyn Drain> = Arc::new(TokenPool::<T>::default());
                pools.push((id, Arc::clone(&p)));
                p
            }
        };
        match pool.as_any().downcast::<TokenPool<T>>() {
            Ok(p) => p,
            // The entry for `TypeId::of::<T>()` is always a `TokenPool<T>`.
            Err(_) => Arc::new(TokenPool::default()),
        }
    }

    /// Revokes every revocable token of every pool; returns how many revocations failed.
    pub async fn drain(&self) -> usize {
        let pools: Vec<Arc<dyn Drain>> = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(_, p)| Arc::clone(p))
            .collect();
        futures_util::future::join_all(pools.iter().map(|p| p.drain_all()))
            .await
            .into_iter()
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        lifetime: Duration,
        expires_at: SystemTime,
        revocable: bool,
        revoked: Arc<AtomicUsize>,
    }

    impl PooledToken for Fake {
        fn expires_at(&self) -> SystemTime {
            self.expires_at
        }
        fn lifetime(&self) -> Duration {
            self.lifetime
        }
        fn revoke(&self) -> Option<BoxFuture<'static, Result<(), PlatformError>>> {
            let revoked = Arc::clone(&self.revoked);
            self.revocable.then(|| {
                async move {
                    revoked.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
                .boxed()
            })
        }
    }

    struct Counters {
        minted: Arc<AtomicUsize>,
        revoked: Arc<AtomicUsize>,
    }

    fn minter(
        c: &Counters,
        life: Duration,
        revocable: bool,
        fail: bool,
    ) -> impl Fn() -> BoxFuture<'static, Result<Fake, PlatformError>> + use<> {
        minter_left(c, life, life, revocable, fail)
    }

    /// A minter of tokens with `life` lifetime of which only `left` remains.
    fn minter_left(
        c: &Counters,
        life: Duration,
        left: Duration,
        revocable: bool,
        fail: bool,
    ) -> impl Fn() -> BoxFuture<'static, Result<Fake, PlatformError>> + use<> {
        let (minted, revoked) = (Arc::clone(&c.minted), Arc::clone(&c.revoked));
        move || {
            let (minted, revoked) = (Arc::clone(&minted), Arc::clone(&revoked));
            async move {
                minted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                if fail {
                    return Err(PlatformError::Rejected {
                        platform: "p",
                        endpoint: "e".into(),
                        status: 401,
                        code: "invalid_client".into(),
                        description: String::new(),
                    });
                }
                Ok(Fake {
                    lifetime: life,
                    expires_at: SystemTime::now() + left,
                    revocable,
                    revoked,
                })
            }
            .boxed()
        }
    }

    fn counters() -> Counters {
        Counters {
            minted: Arc::new(AtomicUsize::new(0)),
            revoked: Arc::new(AtomicUsize::new(0)),
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    fn k(name: &str) -> PoolKey {
        PoolKey {
            store: "s".into(),
            mount: "m".into(),
            path: name.into(),
            version: "1".into(),
            target: Target {
                endpoints: vec![],
                keys: vec![],
                revoke: true,
            },
        }
    }

    #[tokio::test]
    async fn concurrent_opens_share_one_mint_and_revoke_once_at_the_last_release() {
        let pool = Arc::new(TokenPool::<Fake>::default());
        let c = counters();
        let mut tasks = Vec::new();
        for i in 0..100 {
            let pool = Arc::clone(&pool);
            let mint = minter(&c, DAY, true, false);
            let key = if i % 2 == 0 { "a" } else { "b" };
            tasks.push(tokio::spawn(async move {
                pool.acquire(&k(key), 50, mint).await.unwrap().handle
            }));
        }
        let mut handles = Vec::new();
        for t in tasks {
            handles.push(t.await.unwrap());
        }
        assert_eq!(c.minted.load(Ordering::SeqCst), 2, "one mint per key");
        assert_eq!(pool.held(), 2);
        let last = handles.pop().unwrap();
        for h in handles {
            pool.release(h).await.unwrap();
        }
        assert_eq!(
            c.revoked.load(Ordering::SeqCst),
            1,
            "the key whose leases all ended"
        );
        pool.release(last).await.unwrap();
        assert_eq!(c.revoked.load(Ordering::SeqCst), 2);
        assert_eq!(pool.held(), 0);
        // Releasing twice or an unknown handle is harmless.
        pool.release(last).await.unwrap();
        pool.release(12345).await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_mint_is_shared_and_not_remembered() {
        let pool = Arc::new(TokenPool::<Fake>::default());
        let c = counters();
        let key = k("k");
        let (a, b) = tokio::join!(
            pool.acquire(&key, 50, minter(&c, DAY, true, true)),
            pool.acquire(&key, 50, minter(&c, DAY, true, true)),
        );
        assert!(a.is_err() && b.is_err());
        assert_eq!(c.minted.load(Ordering::SeqCst), 1);
        assert!(
            pool.acquire(&k("k"), 50, minter(&c, DAY, true, false))
                .await
                .is_ok()
        );
        assert_eq!(c.minted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_mint_fails_its_waiters_and_does_not_poison_the_slot() {
        let pool = Arc::new(TokenPool::<Fake>::default());
        let c = counters();
        let key = k("k");
        let boom = || -> BoxFuture<'static, Result<Fake, PlatformError>> {
            async { panic!("hostile number") }.boxed()
        };
        let (a, b) = tokio::join!(pool.acquire(&key, 50, boom), pool.acquire(&key, 50, boom));
        for r in [a, b] {
            let e = r.unwrap_err();
            assert!(matches!(e, PlatformError::Internal(_)), "{e}");
        }
        // The next open mints afresh.
        assert!(
            pool.acquire(&key, 50, minter(&c, DAY, true, false))
                .await
                .is_ok()
        );
        assert_eq!(c.minted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn tokens_near_expiry_are_not_reused() {
        let pool = TokenPool::<Fake>::default();
        let c = counters();
        // 90 s lifetime: the margin is 45 s (half), so a fresh one is reused...
        let first = pool
            .acquire(
                &k("k"),
                50,
                minter(&c, Duration::from_secs(90), true, false),
            )
            .await
            .unwrap();
        let second = pool
            .acquire(
                &k("k"),
                50,
                minter(&c, Duration::from_secs(90), true, false),
            )
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first.token, &second.token));
        // ...but one with 30 s left is not.
        let m = || {
            minter_left(
                &c,
                Duration::from_secs(90),
                Duration::from_secs(30),
                true,
                false,
            )
        };
        let short = pool.acquire(&k("s"), 50, m()).await.unwrap();
        let again = pool.acquire(&k("s"), 50, m()).await.unwrap();
        assert!(!Arc::ptr_eq(&short.token, &again.token));
        assert_eq!(c.minted.load(Ordering::SeqCst), 3);
        // The superseded token is still revoked when its own lease ends.
        pool.release(short.handle).await.unwrap();
        assert_eq!(c.revoked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn non_revocable_tokens_are_kept_for_reuse() {
        let pool = TokenPool::<Fake>::default();
        let c = counters();
        let a = pool
            .acquire(&k("k"), 50, minter(&c, DAY, false, false))
            .await
            .unwrap();
        pool.release(a.handle).await.unwrap();
        let b = pool
            .acquire(&k("k"), 50, minter(&c, DAY, false, false))
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&a.token, &b.token));
        assert_eq!(c.minted.load(Ordering::SeqCst), 1);
        assert_eq!(c.revoked.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn stale_non_revocable_tokens_are_forgotten_once_replaced() {
        let pool = TokenPool::<Fake>::default();
        let c = counters();
        let short = Duration::from_secs(90);
        let a = pool
            .acquire(&k("k"), 50, minter(&c, short, false, false))
            .await
            .unwrap();
        pool.release(a.handle).await.unwrap();
        // Asking for more life than it has left mints a successor; the old one goes.
        let b = pool
            .acquire(&k("k"), 100, minter(&c, short, false, false))
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&a.token, &b.token));
        assert_eq!(pool.held(), 1);
        // Replaced while still lent: forgotten when its last user lets go.
        let d = pool
            .acquire(&k("k"), 100, minter(&c, short, false, false))
            .await
            .unwrap();
        assert_eq!(pool.held(), 2);
        pool.release(b.handle).await.unwrap();
        assert_eq!(pool.held(), 1);
        pool.release(d.handle).await.unwrap();
        assert_eq!(pool.held(), 1, "the current one is kept for reuse");
        assert_eq!(c.revoked.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn drain_revokes_everything_still_held() {
        let pool = TokenPool::<Fake>::default();
        let c = counters();
        let _a = pool
            .acquire(&k("a"), 50, minter(&c, DAY, true, false))
            .await
            .unwrap();
        let _b = pool
            .acquire(&k("b"), 50, minter(&c, DAY, true, false))
            .await
            .unwrap();
        let _n = pool
            .acquire(&k("n"), 50, minter(&c, DAY, false, false))
            .await
            .unwrap();
        assert_eq!(pool.drain().await, 0);
        assert_eq!(c.revoked.load(Ordering::SeqCst), 2);
        assert_eq!(pool.held(), 0);
    }

    #[test]
    fn margin_is_the_given_share_of_the_lifetime() {
        assert_eq!(margin(DAY, 50), Duration::from_secs(43_200));
        assert_eq!(
            margin(Duration::from_secs(300), 10),
            Duration::from_secs(30)
        );
        assert_eq!(margin(Duration::from_secs(60), 0), Duration::ZERO);
        assert_eq!(
            margin(Duration::from_secs(60), 200),
            Duration::from_secs(60)
        );
    }
}
