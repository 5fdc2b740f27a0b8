//! CLIENT PAUSE / UNPAUSE: holds clients' commands until a deadline or an unpause.
//! `WRITE` holds what may change the data (writes, scripts that may write,
//! PUBLISH and PFCOUNT: Redis's may-replicate commands); `ALL` holds every command. Held clients count as blocked (INFO
//! `blocked_clients`), as in Redis. Only this server's clients are held: a pause is
//! not a stripe's state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::commands::{flags, CommandSpec};
use crate::scripting::shebang::script_header;
use crate::store::scripts::flag;

/// Whether a command is held by a `WRITE` pause: a write, except a script known not
/// to write. Only EVAL's flags are known before it runs (its shebang); EVALSHA's
/// and FCALL's are in the stripe's script store, so those are let through rather
/// than held on a guess (a read-only one held would wait for the whole pause).
pub fn held_by_write_pause(spec: &CommandSpec, args: &[bytes::Bytes]) -> bool {
    if spec.has(flags::NOT_PAUSED) {
        return false;
    }
    if !spec.has(flags::SCRIPT) {
        return spec.is_write() || spec.has(flags::MAY_REPLICATE);
    }
    if !spec.is_write() {
        return false;
    }
    // EVAL is the one script command whose source is its argument.
    spec.name == "eval" && args.get(1).is_some_and(|source| script_header(source).is_ok_and(|h| h.flags & flag::NO_WRITES == 0))
}

/// What a pause holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PauseMode {
    Write,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    until: Instant,
    mode: PauseMode,
}

pub struct Pause {
    state: watch::Sender<Option<State>>,
    /// Clients held now.
    held: AtomicUsize,
}

impl Default for Pause {
    fn default() -> Self {
        Pause { state: watch::Sender::new(None), held: AtomicUsize::new(0) }
    }
}

impl Pause {
    /// CLIENT PAUSE: holds `mode`'s commands for `duration`. A pause in force is
    /// never shortened nor weakened by a new one (Redis keeps the later deadline and
    /// the stronger mode).
    pub fn pause(&self, duration: Duration, mode: PauseMode) {
        let until = Instant::now() + duration;
        self.state.send_modify(|state| {
            *state = Some(match *state {
                Some(old) if old.until > Instant::now() => State { until: old.until.max(until), mode: old.mode.max(mode) },
                _ => State { until, mode },
            })
        });
    }

    /// CLIENT UNPAUSE.
    pub fn unpause(&self) {
        self.state.send_replace(None);
    }

    /// Clients held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether a command that `writes` (or any command, under `ALL`) is held now.
    pub fn holds(&self, writes: bool) -> bool {
        match *self.state.borrow() {
            Some(state) if state.until > Instant::now() => state.mode == PauseMode::All || writes,
            _ => false,
        }
    }

    /// Waits while a command that `writes` (or any, under `ALL`) is held.
    pub async fn wait(&self, writes: bool) {
        if !self.holds(writes) {
            return;
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        let mut changes = self.state.subscribe();
        loop {
            let until = match *changes.borrow_and_update() {
                Some(state) if state.until > Instant::now() && (state.mode == PauseMode::All || writes) => state.until,
                _ => break,
            };
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_pause_holds_writes_and_may_replicate_commands_not_reads_or_read_only_scripts() {
        let held = |words: &[&str]| {
            let args: Vec<bytes::Bytes> = words.iter().map(|w| bytes::Bytes::copy_from_slice(w.as_bytes())).collect();
            let spec = crate::commands::resolve(&args).expect("a known command");
            held_by_write_pause(spec, &args)
        };
        assert!(held(&["set", "k", "v"]));
        assert!(held(&["publish", "ch", "m"]));
        assert!(held(&["pfcount", "h"]));
        assert!(held(&["eval", "return 1", "0"]));
        assert!(held(&["eval", "#!lua\nreturn 1", "0"]));
        assert!(!held(&["get", "k"]));
        assert!(!held(&["eval", "#!lua flags=no-writes\nreturn 1", "0"]));
        assert!(!held(&["eval_ro", "return 1", "0"]));
        assert!(!held(&["script", "load", "return 1"]));
        assert!(!held(&["evalsha", "0123", "0"]), "its flags are unknown before it runs: let through");
    }

    #[tokio::test]
    async fn write_pause_holds_writes_until_unpause_and_never_reads() {
        let pause = std::sync::Arc::new(Pause::default());
        pause.pause(Duration::from_secs(60), PauseMode::Write);
        assert!(pause.holds(true));
        assert!(!pause.holds(false));
        pause.wait(false).await;
        let waiter = tokio::spawn({
            let pause = pause.clone();
            async move { pause.wait(true).await }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while pause.held() != 1 {
            assert!(Instant::now() < deadline, "the write was never held");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pause.unpause();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("released by unpause").expect("no panic");
        assert_eq!(pause.held(), 0);
    }

    #[tokio::test]
    async fn a_pause_ends_at_its_deadline_and_is_never_weakened() {
        let pause = Pause::default();
        pause.pause(Duration::from_millis(50), PauseMode::All);
        pause.pause(Duration::from_millis(10), PauseMode::Write);
        assert!(pause.holds(false), "ALL stays ALL");
        tokio::time::timeout(Duration::from_secs(5), pause.wait(false)).await.expect("released at the deadline");
        assert!(!pause.holds(true));
    }
}
