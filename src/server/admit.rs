//! Admission: the one place a parsed command is checked before it goes anywhere —
//! unknown command, arity, authentication, what a subscribed RESP2 client may run,
//! MULTI queueing, and the memory rule (DESIGN.md §4). What passes is routed and run;
//! what does not is answered here.

use bytes::Bytes;

use super::core::Core;
use super::request::Request;
use super::session::Session;
use super::settings::{EvictionPolicy, Settings};
use crate::commands::{self, args::ERR_OOM, flags, CommandSpec};
use crate::protocol::reply::{Reply, QUEUED};

/// What becomes of one command.
pub enum Admission {
    /// Route it and run it.
    Run(Request),
    /// Answered here (an error, or QUEUED inside MULTI).
    Answer(Reply),
}

/// Checks one command from `session`'s client, in Redis's order.
pub fn admit(session: &mut Session, args: Vec<Bytes>, memory: &Memory<'_>, core: &Core) -> Admission {
    let request = match Request::parse(args) {
        Ok(request) => request,
        Err((unknown, _)) => {
            session.txn.fail();
            return Admission::Answer(unknown);
        }
    };
    session.set_last_cmd(request.spec.name);
    // A call refused here is counted as rejected (INFO commandstats).
    let name = request.spec.name;
    let reject = |reply: Reply| {
        core.stats.rejected(name);
        Admission::Answer(reply)
    };
    if !request.arity_ok() {
        session.txn.fail();
        return reject(commands::wrong_args(request.spec.name));
    }
    let srv = request.srv();
    if !session.authed && !request.spec.has(flags::NO_AUTH) {
        return reject(Reply::err("NOAUTH Authentication required."));
    }
    if session.resp2_subscribed() && !srv.is_some_and(|s| s.allowed_subscribed()) {
        return reject(Reply::error(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            request.spec.name
        )));
    }
    // Past the busy threshold, a running script leaves room only for the commands
    // Redis allows then (SCRIPT KILL, FUNCTION KILL, QUIT…).
    if !request.spec.has(flags::ALLOW_BUSY) && core.scripts.busy() {
        return reject(core.busy_reply());
    }
    if session.txn.in_multi() && !srv.is_some_and(|s| s.runs_in_multi()) {
        if memory.refuses(request.spec) {
            session.txn.fail();
            return reject(Reply::err(ERR_OOM));
        }
        session.txn.push(request);
        return Admission::Answer(QUEUED);
    }
    Admission::Run(request)
}

/// The memory rule: a command that may grow the data (DENYOOM) meets a full
/// `data-storage` with eviction (the policy allows it) or `-OOM`.
pub struct Memory<'a> {
    pub settings: &'a Settings,
    /// Bytes the Raft log holds in memory: not data (snapshots and purges bound it).
    pub log_bytes: usize,
}

impl Memory<'_> {
    /// True when data memory is over `data-storage`.
    pub fn full(&self) -> bool {
        super::core::over_maxmemory(self.settings, self.log_bytes)
    }

    /// True when `spec` must make room before it runs here (evicting, or refused).
    pub fn needs_room(&self, spec: &CommandSpec) -> bool {
        spec.has(flags::DENYOOM) && self.full()
    }

    /// True when `spec` is refused now: memory is full and nothing may be evicted.
    pub fn refuses(&self, spec: &CommandSpec) -> bool {
        self.needs_room(spec) && self.settings.policy() == EvictionPolicy::NoEviction
    }
}
