//! Admission: the one place a parsed command is checked before it goes anywhere —
//! unknown command, arity, authentication, what a subscribed RESP2 client may run,
//! MULTI queueing, and the memory rule (DESIGN.md §4). What passes is routed and run;
//! what does not is answered here.

use bytes::Bytes;

use super::core::Core;
use super::request::Request;
use super::session::Session;
use super::settings::{EvictionPolicy, Settings};
use crate::cluster::view::ClusterView;
use crate::commands::{self, args::ERR_OOM, flags, scripting, CommandSpec};
use crate::protocol::reply::{Reply, QUEUED};

/// What becomes of one command.
pub enum Admission {
    /// Route it and run it.
    Run(Request),
    /// Answered here (an error, or QUEUED inside MULTI).
    Answer(Reply),
}

/// Checks one command from `session`'s client, in Redis's order.
pub fn admit(session: &mut Session, args: Vec<Bytes>, memory: &Memory<'_>, core: &Core, view: &ClusterView) -> Admission {
    let parsed = match session.forwarded_in {
        true => Request::parse_forwarded(args, memory.settings.client_reconnect_window_ms.load(std::sync::atomic::Ordering::Relaxed)),
        false => Request::parse(args),
    };
    let request = match parsed {
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
    let mut request = request;
    if let Some(refused) = acl(session, &mut request, core, memory.settings) {
        session.txn.fail();
        return Admission::Answer(refused);
    }
    if request.spec.has(flags::SESSION_BOUND) {
        let window_ms = memory.settings.client_reconnect_window_ms.load(std::sync::atomic::Ordering::Relaxed);
        super::sessions::bind(session, &mut request, core, window_ms, view);
    }
    if session.resp2_subscribed() && !srv.is_some_and(|s| s.allowed_subscribed()) {
        return reject(Reply::error(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            request.spec.name
        )));
    }
    // Past the busy threshold, a running script leaves room only for the commands
    // Redis allows then (SCRIPT KILL, FUNCTION KILL, QUIT…).
    // Refused there, a command inside MULTI dooms the transaction; EXEC itself ends it
    // with EXECABORT naming the reason (the EXEC path discards it and its WATCH).
    if !request.spec.has(flags::ALLOW_BUSY) && core.scripts.busy() {
        if session.txn.in_multi() && request.spec.name == "exec" {
            // Counted once, as EXEC's failed call, when it answers.
            session.txn.refuse_exec(core.busy_reply());
            return Admission::Run(request);
        }
        session.txn.fail();
        return reject(core.busy_reply());
    }
    if session.txn.in_multi() && !srv.is_some_and(|s| s.runs_in_multi()) {
        // The connection attaches to what TANDEM.SESSION's reply says: it must see it;
        // SAVE waits for a snapshot, which a transaction must not hold up (Redis's
        // no-multi commands).
        if request.spec.has(flags::SESSION_CONTROL) || request.spec.has(flags::NO_MULTI) {
            session.txn.fail();
            return reject(Reply::err("ERR Command not allowed inside a transaction"));
        }
        if memory.refuses(request.spec) {
            session.txn.fail();
            return reject(Reply::err(ERR_OOM));
        }
        // A transaction runs in one stripe: what would span stripes is refused now.
        if let Some(refusal) = super::split::refused_in_multi(&request, session, view) {
            session.txn.fail();
            return Admission::Answer(refusal);
        }
        session.txn.push(request);
        return Admission::Answer(QUEUED);
    }
    Admission::Run(request)
}

/// The ACL rule: the session's user (read again whenever the stripe's users
/// changed) must be allowed the command, its keys and its channels. A refusal is
/// logged (ACL LOG) and answered with Redis's `-NOPERM`. A connection whose user was
/// deleted is closed, as Redis does.
fn acl(session: &mut Session, request: &mut Request, core: &Core, settings: &Settings) -> Option<Reply> {
    if session.acl.forwarder {
        return None;
    }
    let epoch = core.acl.epoch();
    if session.acl.epoch != epoch {
        match core.acl.user(session.acl.name.as_bytes(), settings.requirepass().as_deref()) {
            Some(user) => {
                session.acl.unrestricted = crate::acl::unrestricted(&user);
                session.acl.user = Some(user);
                session.acl.epoch = epoch;
            }
            None if session.authed => {
                session.closing = true;
                return Some(Reply::err("ERR the user of this connection was deleted"));
            }
            None => return None,
        }
    }
    if session.acl.unrestricted {
        return None;
    }
    let user = session.acl.user.as_ref()?;
    // A script command arriving wrapped (`TANDEM.ASUSER`) is checked as what it wraps,
    // and only for the user it is.
    let wrapped = scripting::is_as_user(request.spec);
    if wrapped && request.args.get(1).is_none_or(|u| u[..] != *session.acl.name.as_bytes()) {
        return Some(Reply::error(crate::acl::Denied::Command.error(request.spec.name)));
    }
    let (spec, args) = match wrapped {
        true => match commands::resolve(&request.args[2..]) {
            Some(inner) => (inner, &request.args[2..]),
            None => return None,
        },
        false => (request.spec, &request.args[..]),
    };
    // A fenced command is checked as itself too: FENCED runs it.
    let checked = crate::acl::check(user, spec, args).and_then(|()| match commands::tandem::fenced_inner(spec, args) {
        Some(inner) => commands::resolve(inner).map_or(Ok(()), |inner_spec| crate::acl::check(user, inner_spec, inner)),
        None => Ok(()),
    });
    let Err(denied) = checked else {
        if let Some(refused) = crate::acl::sort_option_refused(user, spec, args) {
            return Some(Reply::err(refused));
        }
        if spec.has(flags::SCRIPT) && !wrapped {
            // Its calls are checked in apply, against this user as the stripe has it.
            let read_only = !spec.is_write();
            let args = scripting::as_user(&session.acl.name, &request.args, read_only);
            let name = if read_only { scripting::AS_USER_RO } else { scripting::AS_USER };
            request.spec = commands::lookup(name.as_bytes())?;
            request.args = args;
        }
        return None;
    };
    let name = crate::acl::command_name(spec, args);
    let context = if session.txn.in_multi() { "multi" } else { "toplevel" };
    let entry = crate::acl::log::Entry::new(
        denied.reason(),
        context,
        denied.object(&name, &request.args),
        session.acl.name.clone(),
        session.info.line(0),
    );
    core.acl.record(entry, crate::clock::wall_ms(), settings.acllog_max_len());
    Some(Reply::error(denied.error(&name)))
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
