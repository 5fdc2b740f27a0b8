//! What the rest of the server may know about the script running now, shared between
//! the [`super::Engine`] (which runs it, on whatever thread holds the store) and the
//! connections (which answer `-BUSY`, wait for it to end, or ask to kill it). Nothing
//! here is state: servers differ in it freely.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

/// The busy threshold's default (`busy-reply-threshold`, alias `lua-time-limit`): as
/// Redis, 5 s.
pub const BUSY_THRESHOLD_MS_DEFAULT: u64 = 5_000;

const IDLE: u8 = 0;
const EVAL: u8 = 1;
const FUNCTION: u8 = 2;

/// Whether a kill request was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    NotBusy,
    /// A function runs and SCRIPT KILL was asked, or the other way round.
    WrongKind,
    /// The script already wrote.
    Wrote,
    /// The script runs as part of the replicated log on a stripe with mirrors (or on a
    /// restartable server, which replays its log).
    Replicated,
}

#[derive(Debug)]
pub struct Status {
    started: Instant,
    /// IDLE, EVAL or FUNCTION.
    kind: AtomicU8,
    /// When the running script started, in ms since `started`.
    since_ms: AtomicU64,
    /// The running script runs in `apply` (a write script), not on the read path.
    replicated: AtomicBool,
    wrote: AtomicBool,
    kill: AtomicBool,
    /// Set by the server when this server is a stripe of one that never replays its log
    /// (not restartable): a write script can then be killed as in Redis.
    pub lone: AtomicBool,
    /// `busy-reply-threshold` in ms (the server shares it with CONFIG SET).
    pub busy_threshold_ms: std::sync::Arc<AtomicU64>,
    /// Signalled whenever a script ends, for connections waiting on the store.
    ended: tokio::sync::Notify,
    /// The running function's name or script's SHA-1; the command that runs it and the
    /// libraries and functions loaded then, for FUNCTION STATS (answered from here while
    /// the script holds the store).
    described: std::sync::Mutex<Described>,
    /// Script runs handed to a blocking thread and not finished: that thread may hold
    /// the store before its script has begun (and after it ended).
    off_thread: AtomicUsize,
    /// Signalled whenever one of those runs has finished (its thread let go of the
    /// store; an entry of many write scripts is one run).
    released: tokio::sync::Notify,
}

/// Locks `mutex` (the store) without blocking the runtime while a script's blocking
/// thread holds it: tries it, and while script runs are out on blocking threads sleeps
/// until one of them has let go of the store; otherwise (a script on this
/// thread, or with --threads a short entry elsewhere) waits for the script's end or
/// yields, and looks again. A write entry of many scripts holds the store from its
/// first script to its last: waking at each script's end and yielding in a loop
/// between them kept the runtime's thread busy for nothing, on the core the scripts
/// needed (EVALSHA `-P 16`). A script may run endlessly until SCRIPT KILL, which the
/// runtime stays free to read.
pub async fn lock_after_scripts<'a, T>(mutex: &'a std::sync::Mutex<T>, scripts: &Status) -> std::sync::MutexGuard<'a, T> {
    loop {
        // In a block of its own: no guard, not even `None`, lives across the await.
        {
            let attempt = match mutex.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(guard) = attempt {
                return guard;
            }
        }
        if scripts.off_thread() {
            scripts.wait_released(RELEASED_RECHECK).await;
        } else if scripts.running() {
            scripts.wait_ended().await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// How long a wait for the scripts' threads to let go of the store sleeps before it
/// looks again, if nothing wakes it first (a bound, not a poll: each run that finishes
/// wakes every waiter).
const RELEASED_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// A script run on a blocking thread (read scripts; write scripts in apply), counted
/// from before that thread can take the store until it has let go of it
/// ([`Status::off_thread`]).
pub struct OffThread(std::sync::Arc<Status>);

impl OffThread {
    /// Counts a run about to be handed to a blocking thread (call on the runtime,
    /// before spawning it).
    pub fn enter(status: &std::sync::Arc<Status>) -> OffThread {
        status.off_thread.fetch_add(1, Ordering::SeqCst);
        OffThread(status.clone())
    }
}

impl Drop for OffThread {
    fn drop(&mut self) {
        self.0.off_thread.fetch_sub(1, Ordering::SeqCst);
        self.0.released.notify_waiters();
    }
}

/// A script that runs, from [`Status::begin`] until this is dropped.
#[must_use = "the script ends when this is dropped"]
pub struct Running<'a>(&'a Status);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[derive(Debug, Default)]
struct Described {
    name: String,
    command: Vec<bytes::Bytes>,
    libraries: usize,
    functions: usize,
}

/// A running script: its function's name (or the script's SHA-1), the command that
/// called it, how long it has run, and how many libraries and functions were loaded.
#[derive(Debug, Clone)]
pub struct RunningScript {
    pub name: String,
    pub command: Vec<bytes::Bytes>,
    pub duration_ms: u64,
    /// A function (FCALL), not EVAL.
    pub function: bool,
    pub libraries: usize,
    pub functions: usize,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            started: Instant::now(),
            kind: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(0),
            replicated: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            lone: AtomicBool::new(false),
            busy_threshold_ms: std::sync::Arc::new(AtomicU64::new(BUSY_THRESHOLD_MS_DEFAULT)),
            ended: tokio::sync::Notify::new(),
            described: std::sync::Mutex::default(),
            off_thread: AtomicUsize::new(0),
            released: tokio::sync::Notify::new(),
        }
    }
}

impl Status {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// What FUNCTION STATS shows of the next script to run: the command that runs it
    /// and how many libraries and functions are loaded (called before the engine runs it).
    pub fn describe(&self, command: &[bytes::Bytes], libraries: usize, functions: usize) {
        let mut d = self.described();
        d.command = command.to_vec();
        (d.libraries, d.functions) = (libraries, functions);
    }

    fn described(&self) -> std::sync::MutexGuard<'_, Described> {
        self.described.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running script as FUNCTION STATS shows it; `None` when no script runs.
    pub fn running_script(&self) -> Option<RunningScript> {
        let kind = self.kind.load(Ordering::SeqCst);
        let duration_ms = self.running_ms()?;
        let d = self.described();
        let (name, command) = (d.name.clone(), d.command.clone());
        Some(RunningScript { name, command, duration_ms, function: kind == FUNCTION, libraries: d.libraries, functions: d.functions })
    }

    /// A script starts (called by the engine); it has ended when the guard is dropped,
    /// also when the run unwinds: a panic out of a host call must not leave every
    /// client answered -BUSY for good.
    pub fn begin(&self, function: bool, replicated: bool, name: &str) -> Running<'_> {
        self.kill.store(false, Ordering::SeqCst);
        self.wrote.store(false, Ordering::SeqCst);
        self.replicated.store(replicated, Ordering::SeqCst);
        self.since_ms.store(self.now_ms(), Ordering::SeqCst);
        let mut d = self.described();
        d.name.clear();
        d.name.push_str(name);
        drop(d);
        self.kind.store(if function { FUNCTION } else { EVAL }, Ordering::SeqCst);
        Running(self)
    }

    /// The script ended (the drop of [`Running`]).
    fn end(&self) {
        self.kind.store(IDLE, Ordering::SeqCst);
        // The command's arguments may share a large buffer: not kept past the script.
        let mut d = self.described();
        if !d.command.is_empty() {
            d.command = Vec::new();
        }
        drop(d);
        self.kill.store(false, Ordering::SeqCst);
        self.ended.notify_waiters();
    }

    /// The running script performed a write.
    pub fn wrote(&self) {
        self.wrote.store(true, Ordering::Relaxed);
    }

    pub fn running(&self) -> bool {
        self.kind.load(Ordering::SeqCst) != IDLE
    }

    /// True when a script runs, or a script's blocking thread is in flight (it may
    /// hold the store before its script has begun, or just after it ended): a command
    /// that locks the store on the runtime must first wait until this is false, without
    /// blocking. Checking only `running` let a MEMORY STATS that came in just as an
    /// endless EVAL_RO started lock the runtime until the script ended, and SCRIPT
    /// KILL could never be read.
    pub fn may_hold_store(&self) -> bool {
        self.running() || self.off_thread.load(Ordering::SeqCst) > 0
    }

    /// A script runs inside `apply` (a write script): the entries before and after it
    /// are committed and will apply once it ends.
    pub fn running_in_apply(&self) -> bool {
        self.running() && self.replicated.load(Ordering::SeqCst)
    }

    /// How long the running script has run, if one does.
    pub fn running_ms(&self) -> Option<u64> {
        self.running().then(|| self.now_ms().saturating_sub(self.since_ms.load(Ordering::SeqCst)))
    }

    /// True while a script has run past the busy threshold: other commands get `-BUSY`.
    pub fn busy(&self) -> bool {
        self.running_ms().is_some_and(|ms| ms >= self.busy_threshold_ms.load(Ordering::Relaxed))
    }

    /// The running script is a function (FCALL), not EVAL.
    pub fn is_function(&self) -> bool {
        self.kind.load(Ordering::SeqCst) == FUNCTION
    }

    pub fn name(&self) -> String {
        self.described().name.clone()
    }

    /// The engine's hook asks whether to stop the script.
    pub fn kill_requested(&self) -> bool {
        self.kill.load(Ordering::Relaxed)
    }

    /// SCRIPT KILL (`function == false`) or FUNCTION KILL. A script that runs in
    /// `apply` is killed only on a lone server that never replays its log: anywhere
    /// else the other servers (or the replay) would run it to its end and diverge.
    pub fn request_kill(&self, function: bool) -> KillOutcome {
        let kind = self.kind.load(Ordering::SeqCst);
        if kind == IDLE {
            return KillOutcome::NotBusy;
        }
        if (kind == FUNCTION) != function {
            return KillOutcome::WrongKind;
        }
        if self.replicated.load(Ordering::SeqCst) && !self.lone.load(Ordering::Relaxed) {
            return KillOutcome::Replicated;
        }
        if self.wrote.load(Ordering::SeqCst) {
            return KillOutcome::Wrote;
        }
        self.kill.store(true, Ordering::SeqCst);
        KillOutcome::Killed
    }

    /// The server is stopping: on a lone server that never replays its log, a running
    /// script is stopped even if it wrote (its data ends with the process; Redis's
    /// SHUTDOWN NOSAVE ends a busy script too), so a script without end cannot hold
    /// the stop up. Elsewhere the stripe's budget bounds every script.
    pub fn stop_for_shutdown(&self) {
        if self.lone.load(Ordering::Relaxed) && self.running() {
            self.kill.store(true, Ordering::SeqCst);
        }
    }

    /// Waits until no script runs, however long that takes (the blocking task, which
    /// has no client to answer `-BUSY` to).
    pub async fn wait_ended(&self) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.running_ms().is_none() {
                return;
            }
            ended.await;
        }
    }

    /// True while script runs handed to blocking threads have not finished.
    pub fn off_thread(&self) -> bool {
        self.off_thread.load(Ordering::SeqCst) > 0
    }

    /// Waits until a script run handed to a blocking thread finishes (its thread let
    /// go of the store) or none is out, or `within` has passed, or at most
    /// [`RELEASED_RECHECK`]: a script that begins meanwhile and runs past the busy
    /// threshold is answered `-BUSY` that much late at most.
    pub async fn wait_released(&self, within: std::time::Duration) {
        let released = self.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        if !self.off_thread() {
            return;
        }
        let _ = tokio::time::timeout(within.min(RELEASED_RECHECK), released).await;
    }

    /// How long until a script that runs now is past the busy threshold (the full
    /// threshold when none runs): how long a waiter may sleep before it must answer
    /// `-BUSY`.
    pub fn until_busy(&self) -> std::time::Duration {
        let threshold = self.busy_threshold_ms.load(Ordering::Relaxed);
        std::time::Duration::from_millis(threshold.saturating_sub(self.running_ms().unwrap_or(0)).max(1))
    }

    /// Waits until no script runs, or until the busy threshold has passed (then the
    /// caller answers `-BUSY`). Returns false when busy.
    pub async fn wait_idle(&self) -> bool {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let Some(ms) = self.running_ms() else { return true };
            let threshold = self.busy_threshold_ms.load(Ordering::Relaxed);
            if ms >= threshold {
                return false;
            }
            let left = std::time::Duration::from_millis(threshold - ms);
            let _ = tokio::time::timeout(left, ended).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replicated_script_is_killable_only_on_a_lone_server() {
        let s = Status::default();
        assert_eq!(s.request_kill(false), KillOutcome::NotBusy);
        let running = s.begin(false, true, "sha");
        assert_eq!(s.request_kill(false), KillOutcome::Replicated);
        s.lone.store(true, Ordering::Relaxed);
        assert_eq!(s.request_kill(true), KillOutcome::WrongKind);
        assert_eq!(s.request_kill(false), KillOutcome::Killed);
        assert!(s.kill_requested());
        drop(running);
        assert!(!s.running());
        let _running = s.begin(true, false, "f");
        s.wrote();
        assert_eq!(s.request_kill(true), KillOutcome::Wrote);
    }

    #[test]
    fn a_run_that_unwinds_still_ends_its_script() {
        let s = Status::default();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _running = s.begin(false, false, "sha");
            assert!(s.running());
            panic!("a host call failed");
        }));
        assert!(unwound.is_err());
        assert!(!s.running(), "a script whose run unwound must not count as running");
        assert_eq!(s.request_kill(false), KillOutcome::NotBusy);
    }
}
