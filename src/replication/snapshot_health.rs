//! Whether this member's snapshots can be written. A snapshot that cannot be written
//! (a full disk, a failed fsync, a writer process that died) is not fatal: the log
//! keeps every entry it would have covered, the member reports the trouble, tries
//! again every [`RETRY`], and — as Redis does after a failed BGSAVE, unless
//! `stop-writes-on-bgsave-error` is `no` — the active refuses clients' writes until a
//! snapshot succeeds (without snapshots its log would grow without end).
//!
//! Each build is numbered when it starts, so that SAVE tells the outcome of a build
//! it asked for from that of one already running when it came.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long after a failed snapshot the next one is tried (Redis waits as long
/// before it retries a failed BGSAVE).
pub const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct State {
    /// Builds started so far; the number of the last one.
    started: u64,
    /// Why the last build that ended failed, and when; `None` once one succeeds.
    failed: Option<(String, Instant)>,
    /// Set by SAVE: the next build starts at once, not [`RETRY`] after a failure.
    retry_now: bool,
    /// When a snapshot was last written (Unix seconds; the start of the process
    /// before the first), for LASTSAVE.
    last_written_unix_secs: u64,
    /// Why the last snapshot received from the active could not be written here:
    /// reported only (a mirror that cannot catch up says why); cleared by an install.
    receive_failed: Option<String>,
}

/// The last build that ended: its number, and whether it failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ended {
    pub build: u64,
    pub failed: bool,
}

#[derive(Debug)]
pub struct SnapshotHealth {
    state: Mutex<State>,
    /// `state.failed.is_some()`, read on every client write without the lock.
    troubled: AtomicBool,
    ended: watch::Sender<Ended>,
}

impl Default for SnapshotHealth {
    fn default() -> SnapshotHealth {
        let state = State {
            started: 0,
            failed: None,
            retry_now: false,
            last_written_unix_secs: crate::clock::wall_ms() / 1000,
            receive_failed: None,
        };
        SnapshotHealth { state: Mutex::new(state), troubled: AtomicBool::new(false), ended: watch::Sender::new(Ended::default()) }
    }
}

impl SnapshotHealth {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the last snapshot failed (no later one has succeeded): one atomic load.
    pub fn troubled(&self) -> bool {
        self.troubled.load(Ordering::Acquire)
    }

    /// Why the last snapshot failed, while no later one has succeeded.
    pub fn problem(&self) -> Option<String> {
        self.state().failed.as_ref().map(|(why, _)| why.clone())
    }

    /// What INFO and the management API report: a failed build of this member's, or
    /// else a snapshot received from the active that could not be written.
    pub fn report(&self) -> Option<String> {
        let state = self.state();
        state.failed.as_ref().map(|(why, _)| why.clone()).or_else(|| state.receive_failed.clone())
    }

    /// When the next build may start after the last failure (`None`: no failure).
    pub fn retry_at(&self) -> Option<Instant> {
        self.state().failed.as_ref().map(|(_, at)| *at + RETRY)
    }

    /// A snapshot received from the active could not be written here.
    pub fn receive_failed(&self, problem: String) {
        tracing::error!(%problem, "the snapshot received from the active could not be written: the active sends it again");
        self.state().receive_failed = Some(problem);
    }

    /// A snapshot received from the active was written and installed.
    pub fn received(&self) {
        self.state().receive_failed = None;
    }

    /// Whether a build may start now (not while the last one failed less than
    /// [`RETRY`] ago, unless SAVE asked: that request is used up here).
    pub fn may_start(&self) -> bool {
        let mut state = self.state();
        if std::mem::take(&mut state.retry_now) {
            return true;
        }
        state.failed.as_ref().is_none_or(|(_, at)| at.elapsed() >= RETRY)
    }

    /// Numbers a build that starts now.
    pub fn start(&self) -> u64 {
        let mut state = self.state();
        state.started += 1;
        state.started
    }

    /// The number the next build to start will have.
    pub fn next_build(&self) -> u64 {
        self.state().started + 1
    }

    /// The next build starts at once (SAVE).
    pub fn retry_now(&self) {
        self.state().retry_now = true;
    }

    pub fn failed(&self, build: u64, problem: String) {
        tracing::error!(%problem, "the snapshot could not be written: the log keeps every write; tried again every {} s", RETRY.as_secs());
        {
            let mut state = self.state();
            state.failed = Some((problem, Instant::now()));
            self.troubled.store(true, Ordering::Release);
        }
        self.ended.send_replace(Ended { build, failed: true });
    }

    pub fn succeeded(&self, build: u64) {
        {
            let mut state = self.state();
            if state.failed.take().is_some() {
                tracing::info!("a snapshot was written again");
            }
            self.troubled.store(false, Ordering::Release);
            state.last_written_unix_secs = crate::clock::wall_ms() / 1000;
        }
        self.ended.send_replace(Ended { build, failed: false });
    }

    /// A snapshot holding every write applied so far exists now (SAVE found one).
    pub fn saved_now(&self) {
        self.state().last_written_unix_secs = crate::clock::wall_ms() / 1000;
    }

    /// When a snapshot was last written (Unix seconds).
    pub fn last_written_unix_secs(&self) -> u64 {
        self.state().last_written_unix_secs
    }

    /// Watches the last build that ended.
    pub fn ended(&self) -> watch::Receiver<Ended> {
        self.ended.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_defers_the_next_build_until_save_asks_or_one_succeeds() {
        let health = SnapshotHealth::default();
        assert!(health.may_start() && health.problem().is_none());
        let ended = health.ended();
        let build = health.start();
        assert_eq!(health.next_build(), build + 1);
        health.failed(build, "No space left on device".into());
        assert_eq!(*ended.borrow(), Ended { build, failed: true });
        assert_eq!(health.problem().as_deref(), Some("No space left on device"));
        assert!(health.troubled());
        assert!(!health.may_start(), "retried only after RETRY");
        health.retry_now();
        assert!(health.may_start(), "SAVE starts one at once");
        assert!(!health.may_start(), "once");
        let build = health.start();
        health.succeeded(build);
        assert!(health.problem().is_none() && !health.troubled() && health.may_start());
        assert_eq!(*ended.borrow(), Ended { build, failed: false });
    }
}
