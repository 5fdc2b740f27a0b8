//! Forwarding from a mirror to its stripe's active (DESIGN.md §4, "plain client →
//! forward to the active, relay the reply"). A client connected to a mirror is served
//! transparently: its commands go over one connection to the active's client port,
//! opened lazily for that client, and every reply is relayed byte for byte.
//!
//! What belongs to the connection stays here (HELLO, AUTH, CLIENT, SUBSCRIBE, INFO…);
//! what belongs to the stripe's data runs on the active: reads, writes, PUBLISH, and
//! MULTI/EXEC/WATCH, so a transaction lives where it is applied. With `READONLY`,
//! reads are served here instead, possibly behind the active.
//!
//! An upstream that fails mid-command leaves the outcome of the writes in flight
//! unknown: each gets the unknown-outcome error (`server::errors`), reads get
//! `-TRYAGAIN`, and the next command looks the active up again. A transaction or
//! WATCH held on a lost upstream is never carried on silently over another one:
//! EXEC then answers `EXECABORT` (nil for a lost WATCH), as if it had failed on the
//! active.
//!
//! **Order.** A client's commands run on the active in the order it sent them, even
//! across a lost upstream. Commands whose replies stopped coming may still run on
//! the active, so a silent upstream is not closed: the next commands to the same
//! active go over it, after the replies it owes (`Upstream::owed`); one that cannot
//! carry more (cut mid-command) is closed for sending and new commands wait until
//! the active has ended it, i.e. has run everything it received. An upstream to a
//! server that is no longer the active is parked while it owes replies, and used in
//! the same way should that server be the active again. Commands sent to a *newer*
//! active need nothing more: whatever the old active may still commit was appended
//! in its term, and Raft commits an entry of an older term only as part of the new
//! active's log, before the new active's own entries (a stripe's log never lets an
//! older term's entry follow a newer term's).
//!
//! It knows nothing of Raft: where the active is comes from `Replica::active_at`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::connection::{blocking_timeout, Connection};
use super::core::write_wait;
use super::errors::lost_in_flight;
use super::upstream::{encode_command, relay_limits, Hello, Upstream, UpstreamError};
use crate::commands::{self, flags, CommandSpec, Handler};
use crate::limits;
use crate::protocol::reply::{Reply, QUEUED};
use crate::replication::replica::ActiveAt;

pub const ERR_NO_ACTIVE: &str = "CLUSTERDOWN no active server in this stripe right now (election in progress); nothing was applied; retry";
const ERR_EARLIER_STILL_RUNNING: &str = "TRYAGAIN the active has not finished this client's earlier commands; nothing was applied; retry";
const ERR_NOT_ACTIVE_EITHER: &str = "TRYAGAIN this request was forwarded to a server that is not the active of its stripe either; retry";
const ERR_TRANSACTION_LOST: &str = "EXECABORT Transaction discarded because the active changed while it was being queued.";
const ERR_TRANSACTION_FAILED: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Added to the active's own write bound before a silent upstream counts as failed:
/// the active answers a write it could not commit by then, and this covers the trip.
const REPLY_SLACK: Duration = Duration::from_secs(1);

/// Longest pause between attempts to reach an active that refused a connection.
const CONNECT_RETRY_MAX: Duration = Duration::from_millis(500);
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(20);

/// Bounds of a handshake with the active, so a stopped active cannot hold a client.
const HANDSHAKE_MIN: Duration = Duration::from_secs(1);

/// Server-level commands that act on the stripe's data or on a transaction, and so
/// run on the active. Every other server-level command is the connection's own.
/// (PUBLISH is not: every server delivers it to its own subscribers and passes it to
/// the stripe's other servers.)
const FORWARDED_SERVER_COMMANDS: &[&str] = &["multi", "exec", "discard", "watch", "unwatch"];

/// True when `spec` runs on the active when this server is a mirror. Reads stay here
/// on a `READONLY` connection; writes and blocking pops always go to the active.
pub fn forwards(spec: &CommandSpec, readonly: bool) -> bool {
    match spec.handler {
        Handler::Write(_) => true,
        Handler::Read(_) => !readonly || spec.has(flags::BLOCKING),
        Handler::Server => FORWARDED_SERVER_COMMANDS.contains(&spec.name),
    }
}

/// A command's name in lower case (names are short: a longer one is no command).
fn name_of(args: &[Bytes]) -> String {
    let name = args.first().map_or(&[][..], |n| &n[..n.len().min(32)]);
    String::from_utf8_lossy(name).to_ascii_lowercase()
}

/// True when losing the reply to `args` leaves unknown whether data changed: writes,
/// blocking pops and EXEC; not reads, nor MULTI/WATCH bookkeeping.
fn may_change_data(args: &[Bytes]) -> bool {
    match args.first().and_then(|n| commands::lookup(n)) {
        Some(spec) => match spec.handler {
            Handler::Read(_) => false,
            Handler::Write(_) => true,
            Handler::Server => spec.name == "exec",
        },
        None => false,
    }
}

/// How long a forwarded request waits for an active during an election, and for
/// the new active to answer a connection (DESIGN.md §6: twice the election time).
pub fn active_wait(election_time: Duration) -> Duration {
    election_time.saturating_mul(2)
}

/// A transaction opened on the active through this connection's upstream.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RemoteMulti {
    #[default]
    None,
    /// MULTI was sent: commands are queued on the active until EXEC or DISCARD.
    Open,
    /// The upstream that held the transaction is gone (or a WATCH it depended on is):
    /// commands are "queued" here and EXEC answers this.
    Doomed(Reply),
}

/// How a run over the upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The connection is gone or unusable: it is closed.
    Dead,
    /// The replies stopped coming (silence, another active, the client left): the
    /// connection is kept, owing them (see the module doc on order).
    Silent,
}

/// The state of one client's forwarding.
#[derive(Default)]
pub struct Forwarding {
    upstream: Option<Upstream>,
    /// An upstream to an earlier active that still owes replies (or was cut off
    /// mid-command): kept until that server is the active again or it ends.
    parked: Option<Upstream>,
    pub multi: RemoteMulti,
    /// WATCH was sent and not yet ended by EXEC, DISCARD or UNWATCH.
    pub watching: bool,
    /// Keys this client watched (here or on an upstream) can no longer be checked:
    /// its next EXEC answers nil, as if a watched key had changed.
    pub watch_lost: bool,
    /// The state before the commands of the run being forwarded, which change it as
    /// they are queued: after the run it is recomputed from what really got replies.
    before_run: Option<(RemoteMulti, bool, bool)>,
}

impl Forwarding {
    /// Lets the upstream go: a transaction or WATCH held there is lost with it. One
    /// that still owes replies is parked, not closed (see the module doc on order).
    pub fn drop_upstream(&mut self) {
        self.lose_remote_state();
        if let Some(mut upstream) = self.upstream.take() {
            if upstream.owed() > 0 || upstream.torn() {
                upstream.dirty = true;
                self.parked = Some(upstream);
            }
        }
    }

    /// Closes the upstream, which is gone or unusable.
    fn close_upstream(&mut self) {
        self.lose_remote_state();
        self.upstream = None;
    }

    /// A transaction or WATCH held on the active can no longer be relied on.
    fn lose_remote_state(&mut self) {
        if self.multi == RemoteMulti::Open {
            self.multi = RemoteMulti::Doomed(Reply::err(ERR_TRANSACTION_LOST));
        }
        if std::mem::take(&mut self.watching) {
            self.watch_lost = true;
        }
    }

    pub fn has_upstream(&self) -> bool {
        self.upstream.is_some()
    }

    /// Accounts for `name` being sent to the active (or having been answered by it).
    fn sent(&mut self, name: &str) {
        match name {
            "multi" if self.multi == RemoteMulti::None => self.multi = RemoteMulti::Open,
            "exec" | "discard" => self.ended(),
            "watch" => self.watching = true,
            "unwatch" => {
                self.watching = false;
                self.watch_lost = false;
            }
            _ => {}
        }
    }

    /// Accounts for `name` having failed in flight: the client learns an EXEC or
    /// DISCARD failed, so the transaction is over from its side.
    fn failed(&mut self, name: &str) {
        if matches!(name, "exec" | "discard") {
            self.ended();
        }
    }

    fn ended(&mut self) {
        self.multi = RemoteMulti::None;
        self.watching = false;
        self.watch_lost = false;
    }

    /// Queues a command into the run being forwarded.
    fn queue(&mut self, name: &str) {
        if self.before_run.is_none() {
            self.before_run = Some((self.multi.clone(), self.watching, self.watch_lost));
        }
        self.sent(name);
    }

    /// Undoes what the commands of the run being forwarded changed when they were
    /// queued: until they are answered, what they did is not known.
    fn rollback(&mut self) {
        if let Some((multi, watching, watch_lost)) = self.before_run.take() {
            (self.multi, self.watching, self.watch_lost) = (multi, watching, watch_lost);
        }
    }

    /// After a run (rolled back first): the state as the replies the client got make
    /// it; after a `failure`, what the upstream held is lost, and a dead upstream is
    /// closed while a silent one is kept, owing its replies.
    fn settle_run(&mut self, names: &[String], relayed: usize, failure: Option<Failure>) {
        for (i, name) in names.iter().enumerate() {
            if i < relayed {
                self.sent(name);
            } else {
                self.failed(name);
            }
        }
        match failure {
            None => {}
            Some(Failure::Dead) => self.close_upstream(),
            Some(Failure::Silent) => {
                self.lose_remote_state();
                if let Some(upstream) = &mut self.upstream {
                    upstream.dirty = true;
                }
            }
        }
    }

    /// The answer to a command while the transaction is doomed (or while MULTI starts
    /// one that a lost WATCH dooms). Mirrors what the active would answer while queueing.
    pub fn doomed_answer(&mut self, spec: Option<&'static CommandSpec>, args: &[Bytes]) -> Reply {
        if self.multi == RemoteMulti::None {
            // MULTI after a lost WATCH: EXEC must say a watched key may have changed.
            self.multi = RemoteMulti::Doomed(Reply::NilArray);
            self.watch_lost = false;
            return Reply::ok();
        }
        let known = spec.filter(|s| s.arity_ok(args.len()));
        match known.map(|s| s.name) {
            Some("exec") => {
                let outcome = match std::mem::take(&mut self.multi) {
                    RemoteMulti::Doomed(outcome) => outcome,
                    _ => Reply::NilArray,
                };
                self.ended();
                outcome
            }
            Some("discard") => {
                self.ended();
                Reply::ok()
            }
            Some("multi") => Reply::err("ERR MULTI calls can not be nested"),
            Some("watch") => Reply::err("ERR WATCH inside MULTI is not allowed"),
            Some(_) => QUEUED,
            None => {
                if let RemoteMulti::Doomed(outcome) = &mut self.multi {
                    if *outcome == Reply::NilArray {
                        *outcome = Reply::err(ERR_TRANSACTION_FAILED);
                    }
                }
                match spec {
                    Some(spec) => commands::wrong_args(spec.name),
                    None => commands::unknown_command(args),
                }
            }
        }
    }
}

/// Where one command goes.
pub(super) enum Route {
    /// A store command run here, batched with its neighbours.
    Store(&'static CommandSpec),
    /// To the active, batched with its neighbours.
    Forward,
    /// Answered by the doomed transaction's rules ([`Forwarding::doomed_answer`]).
    Doomed,
    /// Answered at once.
    Answer(Reply),
    /// Run here on its own ([`Connection::dispatch`]).
    Dispatch,
}

/// How a run of forwarded commands can go.
enum Settled {
    Upstream,
    /// Not to be forwarded after all (this server is the active now, or the upstream
    /// was lost with a transaction open): route the commands again.
    Again,
    /// Every command gets this error.
    Refused(Reply),
}

/// The longest silence from the active a run of commands allows, and whether it
/// holds a blocking command: the active's own bound for a write plus the trip, plus
/// each blocking command's timeout; no bound for one that blocks without a timeout
/// (the client going away or the active changing still end the wait).
pub fn run_idle(cmds: &[Vec<Bytes>], election_time: Duration) -> (Option<Duration>, bool) {
    let mut idle = Some(write_wait(election_time) + election_time + REPLY_SLACK);
    let mut blocking = false;
    for args in cmds {
        if args.first().and_then(|n| commands::lookup(n)).is_some_and(|s| s.has(flags::BLOCKING)) {
            blocking = true;
            idle = match blocking_timeout(args) {
                Ok(0) => None,
                Ok(ms) => idle.and_then(|d| d.checked_add(Duration::from_millis(ms))),
                // The active answers the bad timeout at once.
                Err(_) => idle,
            };
        }
    }
    (idle, blocking)
}

/// How often a connection waiting on the active checks that it still is the active.
pub fn active_check_period(election_time: Duration) -> Duration {
    (election_time / 4).clamp(Duration::from_millis(50), Duration::from_millis(500))
}

impl Connection {
    /// Where `args` goes. Decided per command: a server that stops being the active
    /// forwards the very next command, and one that becomes the active serves it.
    pub(super) fn route(&self, args: &[Bytes]) -> Route {
        let spec = args.first().and_then(|n| commands::lookup(n)).filter(|s| !s.has(flags::INTERNAL));
        let ends_session = matches!(spec.map(|s| s.name), Some("quit" | "reset"));
        match self.forward.multi {
            // Queued on the active like everything inside MULTI there, HELLO included.
            RemoteMulti::Open if !ends_session => return Route::Forward,
            RemoteMulti::Doomed(_) if !ends_session => return Route::Doomed,
            _ => {}
        }
        if self.multi.is_some() || !self.authed || self.resp2_subscribed() {
            return Route::Dispatch;
        }
        let Some(spec) = spec.filter(|s| s.arity_ok(args.len())) else { return Route::Dispatch };
        if !self.shared.core.replica.is_active() && forwards(spec, self.readonly || super::break_safety_stale_reads()) {
            if self.forwarded_in {
                return Route::Answer(Reply::err(ERR_NOT_ACTIVE_EITHER));
            }
            if spec.name == "multi" && (self.forward.watch_lost || !self.watches.is_empty()) {
                return Route::Doomed;
            }
            return Route::Forward;
        }
        let plain = matches!(spec.handler, Handler::Read(_) | Handler::Write(_)) && !spec.has(flags::BLOCKING);
        if plain {
            Route::Store(spec)
        } else {
            Route::Dispatch
        }
    }

    /// Before a command runs here: when this server has become the active, what an
    /// upstream held for this client is gone.
    pub(super) fn leave_upstream_if_active(&mut self) {
        if (self.forward.has_upstream() || self.forward.watching) && self.shared.core.replica.is_active() {
            self.forward.drop_upstream();
        }
    }

    /// Before a command is queued for the active: keys watched here while this server
    /// was the active cannot be checked there.
    pub(super) fn queue_forward(&mut self, args: &[Bytes]) {
        if !self.watches.is_empty() {
            self.unwatch_all();
            self.forward.watch_lost = true;
        }
        self.forward.queue(&name_of(args));
    }

    /// Answers a command while a forwarded transaction is doomed.
    pub(super) fn doomed(&mut self, args: &[Bytes]) {
        if !self.watches.is_empty() {
            self.unwatch_all();
            self.forward.watch_lost = true;
        }
        let spec = args.first().and_then(|n| commands::lookup(n)).filter(|s| !s.has(flags::INTERNAL));
        let reply = self.forward.doomed_answer(spec, args);
        self.reply(reply);
    }

    /// Sends a run of commands to the active and relays the replies. Returns commands
    /// that must be routed again (see [`Settled::Again`]), in order.
    pub(super) async fn forward_run(&mut self, run: &mut Vec<Vec<Bytes>>) -> Vec<Vec<Bytes>> {
        if run.is_empty() {
            return Vec::new();
        }
        let cmds = std::mem::take(run);
        let names: Vec<String> = cmds.iter().map(|a| name_of(a)).collect();
        if let Some(spec) = cmds.last().and_then(|a| a.first()).and_then(|n| commands::lookup(n)) {
            self.set_last_cmd(spec.name);
        }
        self.forward.rollback();
        match self.settle_upstream().await {
            Settled::Upstream => {}
            Settled::Again => return cmds,
            Settled::Refused(reply) => {
                // Nothing was sent; an upstream still owing replies is kept.
                self.forward.settle_run(&names, 0, Some(Failure::Silent));
                for _ in &cmds {
                    self.reply(reply.clone());
                }
                return Vec::new();
            }
        }
        let (relayed, outcome) = self.relay(&cmds).await;
        let failure = outcome.as_ref().err().map(|e| {
            tracing::debug!(client = self.info.id, error = %e, relayed, sent = cmds.len(), "forwarding to the active failed");
            match e {
                UpstreamError::Timeout(_) | UpstreamError::ActiveChanged | UpstreamError::ClientGone => Failure::Silent,
                _ => Failure::Dead,
            }
        });
        self.forward.settle_run(&names, relayed, failure);
        for args in cmds.get(relayed..).unwrap_or_default() {
            self.reply(lost_in_flight(may_change_data(args)));
        }
        Vec::new()
    }

    /// Makes sure an upstream to the current active exists, waiting out an election
    /// and the new active's first moments for up to [`active_wait`] in all.
    async fn settle_upstream(&mut self) -> Settled {
        let shared = self.shared.clone();
        let replica = &shared.core.replica;
        let deadline = Instant::now() + active_wait(replica.election_time());
        let mut at = replica.active_at();
        if matches!(at, ActiveAt::Unknown) {
            at = replica.wait_for_active(deadline.saturating_duration_since(Instant::now())).await;
        }
        if replica.is_active() {
            self.forward.drop_upstream();
            return Settled::Again;
        }
        let ActiveAt::There { name, client_addr } = at else {
            self.forward.drop_upstream();
            return if matches!(self.forward.multi, RemoteMulti::Doomed(_)) {
                Settled::Again
            } else {
                Settled::Refused(Reply::err(ERR_NO_ACTIVE))
            };
        };
        if let Some(settled) = self.earlier_upstream(&name).await {
            return settled;
        }
        if matches!(self.forward.multi, RemoteMulti::Doomed(_)) {
            return Settled::Again;
        }
        self.connect_upstream(name, client_addr, deadline).await
    }

    /// Deals with the upstreams this client already has, so that what it sent earlier
    /// runs on `active` before anything it sends now: `Some(Upstream)` to go on over
    /// the current one, `Some(Refused)` while `active` may still be running earlier
    /// commands, `None` when a new upstream may be opened.
    async fn earlier_upstream(&mut self, active: &str) -> Option<Settled> {
        let forward = &mut self.forward;
        // An upstream parked when `active` lost the role earlier comes back.
        let current = forward.upstream.as_ref().is_some_and(|u| u.active == active);
        let earlier = if current { None } else { forward.parked.take_if(|u| u.active == active) };
        if forward.upstream.as_ref().is_some_and(|u| u.active != active) {
            forward.drop_upstream();
        }
        if let Some(earlier) = earlier {
            forward.upstream = Some(earlier);
        }
        let upstream = forward.upstream.as_mut()?;
        if !upstream.alive() {
            // The active ended the connection: it runs nothing more of it.
            forward.close_upstream();
            return None;
        }
        if !upstream.torn() {
            return Some(Settled::Upstream);
        }
        let election = self.shared.core.replica.election_time();
        if !upstream.close_and_wait(write_wait(election) + election + REPLY_SLACK).await {
            return Some(Settled::Refused(Reply::err(ERR_EARLIER_STILL_RUNNING)));
        }
        forward.close_upstream();
        None
    }

    /// Opens an upstream to the active, trying again until `deadline` (the active may
    /// just have died and an election be on its way).
    async fn connect_upstream(&mut self, mut name: String, mut addr: String, deadline: Instant) -> Settled {
        let shared = self.shared.clone();
        let replica = &shared.core.replica;
        let election = replica.election_time();
        let mut pause = CONNECT_RETRY_FIRST;
        let password = shared.settings.requirepass();
        loop {
            let hello = Hello { resp3: self.resp3, password: password.as_deref(), from: &shared.server_name };
            let error = match Upstream::open(&addr, name.clone(), &hello, election.max(HANDSHAKE_MIN)).await {
                Ok(upstream) => {
                    tracing::debug!(client = self.info.id, active = %name, %addr, "forwarding to the active");
                    self.forward.upstream = Some(upstream);
                    return Settled::Upstream;
                }
                Err(UpstreamError::Refused(text)) => {
                    return Settled::Refused(Reply::error(format!(
                        "ERR the active {name} refused this server's forwarded connection: {text}"
                    )));
                }
                Err(e) => e,
            };
            let now = Instant::now();
            if now + pause >= deadline {
                return Settled::Refused(Reply::error(format!(
                    "CLUSTERDOWN the active of this stripe ({name} at {addr}) cannot be reached: {error}; nothing was applied; retry"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(CONNECT_RETRY_MAX);
            if replica.is_active() {
                return Settled::Again;
            }
            match replica.wait_for_active(deadline.saturating_duration_since(Instant::now())).await {
                ActiveAt::There { name: n, client_addr } => (name, addr) = (n, client_addr),
                ActiveAt::Here => return Settled::Again,
                ActiveAt::Unknown => return Settled::Refused(Reply::err(ERR_NO_ACTIVE)),
            }
        }
    }

    /// Sends `cmds` over the upstream and relays their replies into the output
    /// buffer, while watching for CLIENT KILL, for the client going away (during a
    /// blocking command) and for another server becoming the active. Returns how many
    /// replies were relayed, and why the rest were not.
    async fn relay(&mut self, cmds: &[Vec<Bytes>]) -> (usize, Result<(), UpstreamError>) {
        let election = self.shared.core.replica.election_time();
        let (idle, blocking) = run_idle(cmds, election);
        // Let the client see replies to what it pipelined before a blocking command.
        if blocking && self.flush().await.is_err() {
            self.closing = true;
            return (0, Err(UpstreamError::ClientGone));
        }
        let Some(upstream) = self.forward.upstream.as_mut() else { return (0, Err(UpstreamError::Closed)) };
        let mut request = BytesMut::new();
        let mut skip = 0;
        if std::mem::take(&mut upstream.dirty) {
            // A failed run may have left a transaction or WATCH open there: end both
            // (DISCARD without MULTI is an error reply, skipped like the rest).
            encode_command(&mut request, &[Bytes::from_static(b"DISCARD")]);
            encode_command(&mut request, &[Bytes::from_static(b"UNWATCH")]);
            skip += 2;
        }
        if upstream.resp3 != self.resp3 {
            encode_command(&mut request, &[Bytes::from_static(b"HELLO"), Bytes::from_static(if self.resp3 { b"3" } else { b"2" })]);
            upstream.resp3 = self.resp3;
            skip += 1;
        }
        for args in cmds {
            encode_command(&mut request, args);
        }
        let limits = relay_limits(self.shared.settings.bulk_bytes_max.load(std::sync::atomic::Ordering::Relaxed));
        let active = upstream.active.clone();
        let kill = self.info.kill.clone();
        let mut check = tokio::time::interval_at(Instant::now() + active_check_period(election), active_check_period(election));
        self.info.blocked.store(blocking, std::sync::atomic::Ordering::Relaxed);
        let mut relayed = 0;
        let outcome = {
            let exchange = upstream.exchange(&request, skip, cmds.len(), &mut self.out, &mut relayed, idle, &limits);
            tokio::pin!(exchange);
            loop {
                tokio::select! {
                    biased;
                    _ = kill.notified() => {
                        self.closing = true;
                        break Err(UpstreamError::ClientGone);
                    }
                    outcome = &mut exchange => break outcome,
                    _ = check.tick() => {
                        let replica = &self.shared.core.replica;
                        let moved = match replica.active_at() {
                            ActiveAt::There { name, .. } => name != active,
                            ActiveAt::Here => true,
                            ActiveAt::Unknown => false,
                        };
                        if moved || replica.is_active() {
                            break Err(UpstreamError::ActiveChanged);
                        }
                    }
                    read = self.socket.read_buf(&mut self.inbuf), if blocking => {
                        if matches!(read, Ok(0) | Err(_)) || self.inbuf.len() > limits::QUERY_BUFFER_BYTES_MAX {
                            self.closing = true;
                            break Err(UpstreamError::ClientGone);
                        }
                    }
                }
            }
        };
        self.info.blocked.store(false, std::sync::atomic::Ordering::Relaxed);
        (relayed, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect()
    }

    fn spec(name: &str) -> &'static CommandSpec {
        commands::lookup(name.as_bytes()).expect("a known command")
    }

    #[test]
    fn data_and_transactions_go_to_the_active_connection_state_stays() {
        for name in ["get", "set", "dbsize", "hgetall", "blpop", "brpoplpush", "flushall", "multi", "exec", "discard", "watch", "unwatch"] {
            assert!(forwards(spec(name), false), "{name} is forwarded");
        }
        for name in [
            "hello",
            "auth",
            "ping",
            "echo",
            "quit",
            "reset",
            "select",
            "client",
            "info",
            "config",
            "command",
            "subscribe",
            "psubscribe",
            "unsubscribe",
            "punsubscribe",
            "publish",
            "pubsub",
            "save",
            "bgsave",
            "lastsave",
            "time",
            "memory",
            "role",
            "readonly",
            "readwrite",
        ] {
            assert!(!forwards(spec(name), false), "{name} is served locally");
        }
    }

    #[test]
    fn readonly_keeps_reads_local_and_still_forwards_writes() {
        for name in ["get", "dbsize", "hgetall", "scan", "exists", "ttl"] {
            assert!(!forwards(spec(name), true), "{name} is read locally");
        }
        for name in ["set", "del", "expire", "blpop", "multi", "watch"] {
            assert!(forwards(spec(name), true), "{name} is still forwarded");
        }
    }

    #[test]
    fn a_lost_transaction_is_answered_execabort_and_its_commands_queued() {
        let mut f = Forwarding::default();
        f.queue("multi");
        f.rollback();
        f.settle_run(&["multi".into()], 1, None);
        assert_eq!(f.multi, RemoteMulti::Open);
        f.queue("set");
        f.rollback();
        f.settle_run(&["set".into()], 0, Some(Failure::Dead));
        assert_eq!(f.multi, RemoteMulti::Doomed(Reply::err(ERR_TRANSACTION_LOST)));
        assert_eq!(f.doomed_answer(Some(spec("incr")), &cmd(&["INCR", "k"])), QUEUED);
        assert_eq!(f.doomed_answer(Some(spec("multi")), &cmd(&["MULTI"])), Reply::err("ERR MULTI calls can not be nested"));
        assert_eq!(f.doomed_answer(Some(spec("exec")), &cmd(&["EXEC"])), Reply::err(ERR_TRANSACTION_LOST));
        assert_eq!(f.multi, RemoteMulti::None);
    }

    #[test]
    fn a_multi_whose_own_reply_was_lost_opens_nothing() {
        let mut f = Forwarding::default();
        f.queue("multi");
        f.queue("set");
        f.queue("exec");
        assert_eq!(f.multi, RemoteMulti::None, "EXEC queued after MULTI ends it");
        f.queue("multi");
        assert_eq!(f.multi, RemoteMulti::Open);
        f.rollback();
        f.settle_run(&["multi".into(), "set".into(), "exec".into(), "multi".into()], 0, Some(Failure::Dead));
        assert_eq!(f.multi, RemoteMulti::None, "the client got errors for every command: no transaction is open");
        assert!(!f.has_upstream());
    }

    #[test]
    fn a_lost_watch_makes_the_next_exec_nil() {
        let mut f = Forwarding::default();
        f.queue("watch");
        f.rollback();
        f.settle_run(&["watch".into()], 1, None);
        assert!(f.watching);
        f.drop_upstream();
        assert!(f.watch_lost && !f.watching);
        assert_eq!(f.doomed_answer(Some(spec("multi")), &cmd(&["MULTI"])), Reply::ok());
        assert_eq!(f.doomed_answer(Some(spec("set")), &cmd(&["SET", "k", "v"])), QUEUED);
        assert_eq!(f.doomed_answer(Some(spec("exec")), &cmd(&["EXEC"])), Reply::NilArray);
        assert!(!f.watch_lost);
        assert_eq!(f.multi, RemoteMulti::None);
    }

    #[test]
    fn a_bad_command_in_a_doomed_transaction_makes_exec_abort() {
        let mut f = Forwarding { watch_lost: true, ..Forwarding::default() };
        assert_eq!(f.doomed_answer(Some(spec("multi")), &cmd(&["MULTI"])), Reply::ok());
        assert!(f.doomed_answer(None, &cmd(&["NOSUCH"])).is_error());
        assert!(f.doomed_answer(Some(spec("get")), &cmd(&["GET"])).is_error());
        assert_eq!(f.doomed_answer(Some(spec("exec")), &cmd(&["EXEC"])), Reply::err(ERR_TRANSACTION_FAILED));
    }

    #[test]
    fn unwatch_forgets_a_lost_watch() {
        let mut f = Forwarding { watch_lost: true, ..Forwarding::default() };
        f.queue("unwatch");
        f.rollback();
        f.settle_run(&["unwatch".into()], 1, None);
        assert!(!f.watch_lost);
    }

    #[test]
    fn a_blocking_command_extends_the_wait_by_its_timeout_or_lifts_it() {
        let election = Duration::from_secs(1);
        let base = write_wait(election) + election + REPLY_SLACK;
        assert_eq!(run_idle(&[cmd(&["GET", "k"]), cmd(&["SET", "k", "v"])], election), (Some(base), false));
        assert_eq!(run_idle(&[cmd(&["BLPOP", "l", "2.5"])], election), (Some(base + Duration::from_millis(2500)), true));
        assert_eq!(run_idle(&[cmd(&["GET", "k"]), cmd(&["BRPOP", "l", "0"])], election), (None, true));
        assert_eq!(run_idle(&[cmd(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "1e300"])], election), (Some(base), true));
    }
}
