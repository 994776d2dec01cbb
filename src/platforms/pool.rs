//! Tokens shared within one provider process. Concurrent and repeated opens that need the same
//! token (same platform, credential source and version, and endpoint) share one token request
//! and reuse the token while it has a safety margin of life left. Each open holds a lease;
//! the token is revoked when the last lease is released, or at shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::PlatformError;

/// A token the pool can hold.
pub(crate) trait PooledToken: Send + Sync + 'static {
    /// When the platform stops accepting it.
    fn expires_at(&self) -> SystemTime;
    /// How long it was valid for when minted.
    fn lifetime(&self) -> Duration;
    /// Revokes it, or `None` when this token is not to be revoked (it is then kept for reuse
    /// until it nears expiry).
    fn revoke(&self) -> Option<BoxFuture<'static, Result<(), PlatformError>>>;
}

type Mint<T> = Shared<BoxFuture<'static, Result<Arc<T>, PlatformError>>>;

enum Slot<T> {
    Minting(Mint<T>),
    Current(u64),
}

struct Entry<T> {
    token: Arc<T>,
    users: usize,
    key: String,
}

struct State<T> {
    slots: HashMap<String, Slot<T>>,
    tokens: HashMap<u64, Entry<T>>,
    /// Lease handle → token id.
    leases: HashMap<u64, u64>,
    next: u64,
}

/// A token lent to one open; release it with [`TokenPool::release`].
pub(crate) struct Lease<T> {
    pub(crate) token: Arc<T>,
    pub(crate) handle: u64,
}

impl<T> std::fmt::Debug for Lease<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// The pool of one token type.
pub(crate) struct TokenPool<T> {
    state: Mutex<State<T>>,
}

impl<T> Default for TokenPool<T> {
    fn default() -> Self {
        TokenPool {
            state: Mutex::new(State {
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

/// A token is reused only while it has more than this much life left: a tenth of its
/// lifetime, at least a minute, but never more than half of it.
fn margin(lifetime: Duration) -> Duration {
    (lifetime / 10)
        .max(Duration::from_secs(60))
        .min(lifetime / 2)
}

fn fresh<T: PooledToken>(token: &T) -> bool {
    token
        .expires_at()
        .duration_since(SystemTime::now())
        .is_ok_and(|left| left > margin(token.lifetime()))
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

    /// Lends the token for `key`, minting it with `mint` if there is none fresh. Concurrent
    /// callers with the same key share one mint, and its failure.
    pub(crate) async fn acquire<F>(&self, key: &str, mint: F) -> Result<Lease<T>, PlatformError>
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
                        let fresh_id = current
                            .filter(|id| state.tokens.get(id).is_some_and(|e| fresh(&*e.token)));
                        if let Some(id) = fresh_id {
                            return Ok(Self::lend(&mut state, id));
                        }
                        let m = mint().map(|r| r.map(Arc::new)).boxed().shared();
                        state.slots.insert(key.to_owned(), Slot::Minting(m.clone()));
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
    async fn wait(&self, key: &str, pending: Mint<T>) -> Result<Option<Lease<T>>, PlatformError> {
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
                            key: key.to_owned(),
                        },
                    );
                    state.slots.insert(key.to_owned(), Slot::Current(id));
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
    pub(crate) async fn release(&self, handle: u64) -> Result<(), PlatformError> {
        let revoke = {
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
                // Not revocable: keep it for reuse while it is fresh.
                None => return Ok(()),
                Some(revoke) => {
                    let key = entry.key.clone();
                    state.tokens.remove(&id);
                    if matches!(state.slots.get(&key), Some(Slot::Current(c)) if *c == id) {
                        state.slots.remove(&key);
                    }
                    revoke
                }
            }
        };
        revoke.await
    }

    /// Takes every token out of the pool and revokes the revocable ones, concurrently.
    /// Returns how many revocations failed.
    pub(crate) async fn drain(&self) -> usize {
        let revocations: Vec<_> = {
            let mut state = self.lock();
            state.leases.clear();
            let mut tokens: Vec<Arc<T>> = state.tokens.drain().map(|(_, e)| e.token).collect();
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
                pool.acquire(key, mint).await.unwrap().handle
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
        let (a, b) = tokio::join!(
            pool.acquire("k", minter(&c, DAY, true, true)),
            pool.acquire("k", minter(&c, DAY, true, true)),
        );
        assert!(a.is_err() && b.is_err());
        assert_eq!(c.minted.load(Ordering::SeqCst), 1);
        assert!(
            pool.acquire("k", minter(&c, DAY, true, false))
                .await
                .is_ok()
        );
        assert_eq!(c.minted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn tokens_near_expiry_are_not_reused() {
        let pool = TokenPool::<Fake>::default();
        let c = counters();
        // 90 s lifetime: the margin is 45 s (half), so a fresh one is reused...
        let first = pool
            .acquire("k", minter(&c, Duration::from_secs(90), true, false))
            .await
            .unwrap();
        let second = pool
            .acquire("k", minter(&c, Duration::from_secs(90), true, false))
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
        let short = pool.acquire("s", m()).await.unwrap();
        let again = pool.acquire("s", m()).await.unwrap();
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
            .acquire("k", minter(&c, DAY, false, false))
            .await
            .unwrap();
        pool.release(a.handle).await.unwrap();
        let b = pool
            .acquire("k", minter(&c, DAY, false, false))
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&a.token, &b.token));
        assert_eq!(c.minted.load(Ordering::SeqCst), 1);
        assert_eq!(c.revoked.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn drain_revokes_everything_still_held() {
        let pool = TokenPool::<Fake>::default();
        let c = counters();
        let _a = pool
            .acquire("a", minter(&c, DAY, true, false))
            .await
            .unwrap();
        let _b = pool
            .acquire("b", minter(&c, DAY, true, false))
            .await
            .unwrap();
        let _n = pool
            .acquire("n", minter(&c, DAY, false, false))
            .await
            .unwrap();
        assert_eq!(pool.drain().await, 0);
        assert_eq!(c.revoked.load(Ordering::SeqCst), 2);
        assert_eq!(pool.held(), 0);
    }

    #[test]
    fn margin_is_a_tenth_at_least_a_minute_at_most_half() {
        assert_eq!(margin(DAY), Duration::from_secs(8640));
        assert_eq!(margin(Duration::from_secs(300)), Duration::from_secs(60));
        assert_eq!(margin(Duration::from_secs(60)), Duration::from_secs(30));
    }
}
