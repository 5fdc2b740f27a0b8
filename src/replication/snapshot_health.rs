//! Whether this member's last snapshot could be written. A snapshot that cannot be
//! written (a full disk, a failed fsync, a writer process that died) is not fatal:
//! the log keeps every entry it would have covered, the member reports the trouble,
//! and — as Redis does after a failed BGSAVE — refuses new writes until a snapshot
//! succeeds (without snapshots the log would grow without end), retrying every
//! [`RETRY`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long after a failed snapshot the next one is tried (Redis waits as long
/// before it retries a failed BGSAVE).
pub const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct State {
    /// Why the last snapshot failed, and when; `None` once one succeeds.
    failed: Option<(String, Instant)>,
    /// Set by SAVE: the next snapshot is tried at once, not after [`RETRY`].
    retry_now: bool,
}

#[derive(Debug)]
pub struct SnapshotHealth {
    state: Mutex<State>,
    /// Failed snapshots so far: SAVE and the retry task wait on it.
    failures: watch::Sender<u64>,
}

impl Default for SnapshotHealth {
    fn default() -> SnapshotHealth {
        SnapshotHealth { state: Mutex::default(), failures: watch::Sender::new(0) }
    }
}

impl SnapshotHealth {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the last snapshot failed, while no later one has succeeded.
    pub fn problem(&self) -> Option<String> {
        self.state().failed.as_ref().map(|(why, _)| why.clone())
    }

    /// Whether a snapshot should wait: the last one failed less than [`RETRY`] ago
    /// and no one asked for one since.
    pub fn deferring(&self) -> bool {
        let state = self.state();
        !state.retry_now && state.failed.as_ref().is_some_and(|(_, at)| at.elapsed() < RETRY)
    }

    /// The next snapshot is tried at once (SAVE).
    pub fn retry_now(&self) {
        self.state().retry_now = true;
    }

    pub fn failed(&self, problem: String) {
        tracing::error!(%problem, "the snapshot could not be written: the log keeps every write; writes are refused until a snapshot succeeds (retried every {}s)", RETRY.as_secs());
        *self.state() = State { failed: Some((problem, Instant::now())), retry_now: false };
        self.failures.send_modify(|n| *n += 1);
    }

    pub fn succeeded(&self) {
        let mut state = self.state();
        if state.failed.take().is_some() {
            tracing::info!("a snapshot was written again: writes are accepted");
        }
        state.retry_now = false;
    }

    /// Watches the count of failed snapshots.
    pub fn failures(&self) -> watch::Receiver<u64> {
        self.failures.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_defers_the_next_snapshot_until_asked_or_succeeded() {
        let health = SnapshotHealth::default();
        assert!(!health.deferring() && health.problem().is_none());
        let failures = health.failures();
        health.failed("No space left on device".into());
        assert_eq!(*failures.borrow(), 1);
        assert_eq!(health.problem().as_deref(), Some("No space left on device"));
        assert!(health.deferring());
        health.retry_now();
        assert!(!health.deferring(), "SAVE tries at once");
        health.failed("again".into());
        assert!(health.deferring(), "a new failure waits again");
        health.succeeded();
        assert!(health.problem().is_none() && !health.deferring());
    }
}
