//! Lua scripting (EVAL, FCALL): the Lua 5.1 engine and everything a script can see.
//!
//! Owns one Lua VM per [`crate::store::Store`] ([`Engine`]), the sandbox that makes the
//! VM safe and deterministic ([`sandbox`]), the conversions between Lua values and
//! replies ([`convert`]), the instruction budget ([`budget`]), shebang and library
//! metadata parsing ([`shebang`]) and the libraries Redis loads besides Lua's own
//! (`cjson`, `cmsgpack`, `bit`, `struct`, in [`libs`]).
//!
//! What it does not own: which scripts exist (replicated state,
//! [`crate::store::scripts`]), the commands (EVAL, SCRIPT, FUNCTION, FCALL in
//! [`crate::commands::scripting`]), and how a command called from a script runs (the
//! [`Host`] the command layer passes in).
//!
//! # Determinism
//!
//! A write script runs inside `Store::apply` on every server of the stripe, so
//! everything it can observe must be equal everywhere: time and randomness come from
//! the log entry; the budget counts Lua instructions (not time); the garbage
//! collector is stopped while a script runs, so weak tables and memory errors do not
//! depend on a server's history; `tostring` of a table or function names it by a
//! per-script counter instead of its address; `collectgarbage`/`gcinfo` report
//! nothing; `setfenv`, `newproxy`, `print`, `os`, `io`, `debug`, `require` and
//! binary chunks are absent; global variables and library tables are read-only; the
//! `cjson` settings and the random generator are reset before every script; a
//! library's functions are made afresh (its chunk run again) for every FCALL, so no
//! upvalue carries state from one call to the next. Known limit: `pairs` over a table
//! keyed by tables or functions visits them in address order, which differs between
//! servers — a script whose writes depend on that order can make them diverge.
//!
//! # Bounds
//!
//! A script stops with an error on every server at the same instruction once it
//! passes its budget (a fixed charge per `redis.call` included), and when the Lua heap
//! grows past its memory bound. Writes it made before stopping stay applied, as in
//! Redis, which never rolls a script back.

thread_local! {
    /// Whether a script run on this thread called a read-only command since the last
    /// [`take_read_called`] (CLIENT TRACKING remembers a script's declared keys then,
    /// as Redis does).
    static READ_CALLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The commands scripts called on this thread, while [`record_calls`] is on: counted
/// per name for INFO commandstats, and kept (up to [`CALLS_SHOWN_MAX`]) for MONITOR.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Calls {
    /// Per command name (as stats count it), in first-call order.
    pub counts: Vec<(&'static str, CallCount)>,
    /// The calls' arguments, for MONITOR (only when asked for).
    pub shown: Vec<Vec<bytes::Bytes>>,
    /// The error codes the calls answered (refused ones too): counted in errorstats,
    /// as Redis counts an error at the call, caught by `redis.pcall` or not. One that
    /// the script returned as its own reply is taken out again ([`note_error_returned`]):
    /// the reply counts it.
    pub errors: Vec<String>,
    /// Their bytes.
    pub shown_bytes: usize,
}

/// What a script's calls of one command came to (INFO commandstats).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallCount {
    pub calls: u64,
    /// Calls that answered an error.
    pub failed: u64,
    /// Calls refused before they ran (OOM, NOREPLICAS, ACL, a write from a read-only
    /// script…): not counted as calls, as in Redis.
    pub rejected: u64,
}

/// At most this many calls, and this many bytes of their arguments, are kept for
/// MONITOR per client until its connection takes them; later ones are not shown.
pub const CALLS_SHOWN_MAX: usize = 10_000;
pub const CALLS_SHOWN_BYTES_MAX: usize = 1 << 20;

thread_local! {
    /// `None`: not recording; `Some((show, calls))`.
    static CALLS: std::cell::RefCell<Option<(bool, Calls)>> = const { std::cell::RefCell::new(None) };
}

/// Starts recording the commands scripts call on this thread (`show`: their arguments
/// too), or stops (`None`), returning what was recorded.
pub fn record_calls(show: Option<bool>) -> Calls {
    CALLS.with(|c| {
        let old = c.replace(show.map(|show| (show, Calls::default())));
        old.map(|(_, calls)| calls).unwrap_or_default()
    })
}

/// Notes one command a script called (when recording), and its error if it failed.
pub fn note_call(name: &'static str, args: &[bytes::Bytes], error: Option<&str>) {
    CALLS.with(|c| {
        let mut c = c.borrow_mut();
        let Some((show, calls)) = c.as_mut() else { return };
        calls.count(name, CallCount { calls: 1, failed: u64::from(error.is_some()), rejected: 0 });
        calls.errors.extend(error.map(|e| crate::protocol::reply::error_code(e).to_string()));
        let bytes: usize = args.iter().map(|a| a.len()).sum();
        if *show && calls.shown.len() < CALLS_SHOWN_MAX && calls.shown_bytes + bytes <= CALLS_SHOWN_BYTES_MAX {
            calls.shown.push(args.to_vec());
            calls.shown_bytes += bytes;
        }
    })
}

/// Notes one command a script called that was refused before it ran (when recording).
pub fn note_rejected(name: &'static str, error: &str) {
    CALLS.with(|c| {
        if let Some((_, calls)) = c.borrow_mut().as_mut() {
            calls.count(name, CallCount { calls: 0, failed: 0, rejected: 1 });
            calls.errors.push(crate::protocol::reply::error_code(error).to_string());
        }
    })
}

/// The script answered with an error a call of it answered (raised by `redis.call`,
/// or the table `redis.pcall` gave, returned): that error is counted once, as the
/// script's reply, not again as the call's.
pub fn note_error_returned(text: &str) {
    let code = crate::protocol::reply::error_code(text);
    CALLS.with(|c| {
        if let Some((_, calls)) = c.borrow_mut().as_mut() {
            if let Some(at) = calls.errors.iter().rposition(|e| e == code) {
                calls.errors.remove(at);
            }
        }
    })
}

impl Calls {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Adds `more` to `name`'s count.
    fn count(&mut self, name: &'static str, more: CallCount) {
        match self.counts.iter_mut().find(|(n, _)| std::ptr::eq(*n, name)) {
            Some((_, c)) => {
                c.calls += more.calls;
                c.failed += more.failed;
                c.rejected += more.rejected;
            }
            None => self.counts.push((name, more)),
        }
    }

    pub fn extend(&mut self, other: Calls) {
        for (name, more) in other.counts {
            self.count(name, more);
        }
        self.errors.extend(other.errors);
        for args in other.shown {
            let bytes: usize = args.iter().map(|a| a.len()).sum();
            if self.shown.len() >= CALLS_SHOWN_MAX || self.shown_bytes + bytes > CALLS_SHOWN_BYTES_MAX {
                break;
            }
            self.shown.push(args);
            self.shown_bytes += bytes;
        }
    }
}

/// Notes that the running script called a read-only command.
pub fn note_read_called() {
    READ_CALLED.with(|c| c.set(true));
}

/// Whether a script called a read-only command since the last call (and resets it).
pub fn take_read_called() -> bool {
    READ_CALLED.with(|c| c.replace(false))
}

pub mod budget;
pub mod convert;
pub mod engine;
pub mod libs;
pub mod sandbox;
pub mod shebang;
pub mod status;

pub use engine::{Engine, FunctionCall, RunOptions, ScriptCall};
pub use status::Status;

use bytes::Bytes;

use crate::protocol::reply::Reply;

/// What runs a command a script calls (`redis.call`/`redis.pcall`): the command layer,
/// which knows the command table, the keyspace and the rules for scripts.
pub trait Host {
    /// Runs `args` (name first) for the script; errors come back as error replies.
    fn call(&mut self, args: &[Bytes]) -> Reply;
    /// Whether a command the script called so far changed the data (a script that
    /// wrote can no longer be killed).
    fn wrote(&self) -> bool;
    /// `redis.acl_check_cmd`: whether the script's ACL user may run `args` (name
    /// first); `None` when no such command exists.
    fn acl_permits(&self, args: &[Bytes]) -> Option<bool>;
}

/// Redis's reply when no script runs (SCRIPT KILL, FUNCTION KILL).
pub const ERR_NOT_BUSY: &str = "NOTBUSY No scripts in execution right now.";
/// Redis's reply to other commands while an EVAL script runs past the busy threshold.
pub const ERR_BUSY_EVAL: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// The same while a function runs.
pub const ERR_BUSY_FUNCTION: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
/// A script that already wrote cannot be killed (Redis's text).
pub const ERR_UNKILLABLE_WROTE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
/// A write script runs on every server of the stripe: killing it on one would make
/// them diverge. It stops at its instruction budget instead.
pub const ERR_UNKILLABLE_REPLICATED: &str = "UNKILLABLE The script runs on every server of the stripe as part of the replicated log; killing it on one server would make the servers diverge. It stops by itself at the stripe's instruction budget (TANDEM.SCRIPTLIMITS).";
