//! Process discipline every front end shares: notice when the process that started us is gone
//! (killed, crashed), so that nothing we hold outlives it unrevoked.

use std::time::Duration;

/// How often [`parent_exit`] looks at the parent process id.
pub const PARENT_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Resolves when the process that is this process's parent now (at the call) is gone: the
/// kernel then re-parents us (to init or a subreaper), which changes the parent process id.
/// Never resolves when the parent was already init (nothing to watch). Polling keeps this
/// portable and free of `unsafe`.
pub fn parent_exit() -> impl std::future::Future<Output = ()> + Send + 'static {
    let original = std::os::unix::process::parent_id();
    async move {
        if original <= 1 {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval(PARENT_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != original {
                return;
            }
        }
    }
}
