//! The request pipeline (DESIGN.md §4), read top to bottom:
//!
//! ```text
//! frames → Request (parsed once) → admit → server command? run it here
//!                                        → route: Local    → batched with its neighbours → Core (log / linearizable read)
//!                                                 Forward  → batched per stripe → upstream to that stripe's active
//!                                                 Down     → wait for an active (bounded), route again
//!                                                 Moved / CrossSlot / Bounce → answered
//! ```
//!
//! Consecutive local store commands run together (one proposal, one read lock);
//! consecutive commands for one stripe's active go over its upstream together. A run
//! is settled before anything that must see its effects (a server command, a
//! command routed elsewhere), so replies keep the client's order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::admit::{admit, Admission, Memory};
use super::connection::Connection;
use super::core::Reads;
use super::errors::{read_reply, write_reply, ERR_DEPOSED_WHILE_BLOCKED, ERR_LEADERSHIP_FLAPPING, ERR_NOT_ACTIVE_EITHER};
use super::request::Request;
use crate::cluster::route::{route, Access, Keys, Route};
use crate::cluster::view::{Active, ClusterView};
use crate::protocol::reply::Reply;
use crate::store::Op;

/// Times one batch's commands may go back to routing (this server became the
/// active while they waited, an upstream broke before they were sent); more means
/// leadership is changing back and forth, and the client is told to retry.
pub(super) const REROUTES_MAX: usize = 4;

pub(in crate::server) const ERR_CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Where a request is served, once routing has settled.
pub(in crate::server) enum Place {
    Local,
    Forward(usize),
    Answer(Reply),
}

/// Commands waiting to run, in the client's order: a run of local store commands or
/// a run for one stripe's active (never both).
#[derive(Default)]
struct Pending {
    local: Vec<Request>,
    forward: Option<(usize, Vec<Request>)>,
    /// How often forwarded commands came back to be routed again.
    reroutes: usize,
}

impl Connection {
    /// Runs a batch of commands in order.
    pub(super) async fn run_batch(&mut self, batch: &mut Vec<Vec<Bytes>>) {
        let mut pending = Pending { local: std::mem::take(&mut self.spare.run), ..Pending::default() };
        let mut view = self.view_changes.borrow_and_update().clone();
        for args in batch.drain(..) {
            if self.session.closing {
                break;
            }
            // The view as it is now: a command that waited may have seen it change.
            if self.view_changes.has_changed().unwrap_or(false) {
                view = self.view_changes.borrow_and_update().clone();
            }
            let memory = Memory { settings: &self.shared.settings, log_bytes: self.shared.core.replica.log.memory_bytes() };
            match admit(&mut self.session, args, &memory, &self.shared.core, &view) {
                Admission::Run(request) => {
                    // CLIENT CACHING YES|NO holds for the next command (a transaction's
                    // commands up to EXEC), as in Redis.
                    // Only a tracking client ever has CLIENT CACHING set: nothing to
                    // look at for the others.
                    let consumes_caching = self.session.caching && !request.spec.name.starts_with("client|");
                    self.step(&mut pending, request, &view).await;
                    if consumes_caching && !self.session.txn.in_multi() {
                        self.session.caching = false;
                    }
                }
                Admission::Answer(reply) => {
                    // A refused command consumes CLIENT CACHING too (not a queued one).
                    if reply != crate::protocol::reply::QUEUED && !self.session.txn.in_multi() {
                        self.session.caching = false;
                    }
                    self.settle(&mut pending).await;
                    self.reply(reply);
                }
            }
        }
        self.settle(&mut pending).await;
        self.spare.keep_run(pending.local);
        if !self.session.tracked_reads.is_empty() {
            let keys = std::mem::take(&mut self.session.tracked_reads);
            self.shared.core.tracking.read_done(self.session.info.id, &keys);
        }
        if !self.session.untracked_reads.is_empty() {
            let keys = std::mem::take(&mut self.session.untracked_reads);
            self.shared.core.tracking.invalidate_for(&self.shared.clients, self.session.info.id, keys);
        }
    }

    /// CLIENT TRACKING: remembers the keys `request` reads before it runs (see
    /// `server::tracking`). A script's declared keys are remembered once it calls a
    /// read-only command (`Tracking::remember`, where it runs), as in Redis; on a
    /// server that is not the active, where the script's run is not seen, always.
    /// Keys of another stripe never reach this server's apply: they are invalidated
    /// right after the reply (the client does not keep them), never left stale.
    pub(super) fn track_reads(&mut self, spec: &crate::commands::CommandSpec, args: &[Bytes]) {
        let Some(tracking) = &self.session.tracking else { return };
        let view = self.shared.view();
        let script = spec.has(crate::commands::flags::SCRIPT);
        if !spec.has(crate::commands::flags::READONLY) && !script {
            return;
        }
        let (keys, elsewhere): (Vec<Bytes>, Vec<Bytes>) =
            spec.keys(args).into_iter().cloned().partition(|k| view.owner(crate::cluster::slot::key_slot(k)) == view.local);
        // In any mode (BCAST too: it reports this stripe's keys only).
        self.session.untracked_reads.extend(elsewhere);
        if keys.is_empty() || (script && view.local_is_active()) || !tracking.remembers(self.session.caching) {
            return;
        }
        let max_keys = self.shared.settings.param("tracking-table-max-keys").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1_000_000);
        // 0 means no limit, as in Redis.
        let max_keys = if max_keys == 0 { usize::MAX } else { max_keys };
        self.shared.core.tracking.reading(&self.shared.clients, self.session.info.id, &keys, max_keys);
        self.session.tracked_reads.extend(keys);
    }

    /// One admitted command: run here now (server commands, blocking pops), joined to
    /// the pending run it belongs to, or answered. `view`: the cluster view as it is now.
    async fn step(&mut self, pending: &mut Pending, request: Request, view: &ClusterView) {
        if request.spec.has(crate::commands::flags::SESSION_CONTROL) {
            self.settle(pending).await;
            return self.session_control(request).await;
        }
        self.track_reads(request.spec, &request.args);
        if let Some(srv) = request.srv() {
            self.settle(pending).await;
            // Store commands are counted with their run; these one by one.
            crate::management::metrics::global().record_command(request.spec);
            return self.server_command(srv, request).await;
        }
        // A plain client sees one database: a multi-key command over several stripes
        // is split and joined, a keyless one about the whole database asks every
        // stripe; ACL's writes reach every stripe for every client. (Another server
        // forwarding to this one has done that already.)
        if view.is_array() && !self.session.forwarded_in {
            let keys = request.keys(view);
            let split = super::split::splittable(request.spec.name).filter(|_| !self.session.slot_routing && keys == Keys::CrossSlot);
            if let Some((how, per_key)) = split {
                self.settle(pending).await;
                crate::management::metrics::global().record_command(request.spec);
                return self.split_command(request, how, per_key).await;
            }
            let whole = super::split::whole_array_for(request.spec.name, self.session.slot_routing);
            if let Some(how) = whole.filter(|_| keys == Keys::None && request.arity_ok()) {
                self.settle(pending).await;
                crate::management::metrics::global().record_command(request.spec);
                // Routed as a plain client's parts (a slot-routing client's ACL write
                // too: not MOVED away, but sent on to each stripe's active).
                let slot_routing = std::mem::replace(&mut self.session.slot_routing, false);
                let refused = match super::split::users_write(request.spec.name) {
                    true => self.users_write_refused_elsewhere(&request).await,
                    false => None,
                };
                match refused {
                    Some(refused) => self.reply(refused),
                    None => self.whole_array_command(request, how).await,
                }
                self.session.slot_routing = slot_routing;
                return;
            }
        }
        match self.place(&request, view).await {
            Place::Answer(reply) => {
                self.settle(pending).await;
                self.reply(request.unless_sent(reply));
            }
            Place::Local if request.spec.blocks(&request.args) => {
                self.settle(pending).await;
                self.record_blocking(&request);
                let args = request.args.clone();
                let started = std::time::Instant::now();
                let waited = self.blocking_command(request).await;
                // Logged once answered (before its reply is flushed), with the time it
                // ran, not the time it waited, as Redis logs a blocked command.
                self.slowlog_blocking(&args, started.elapsed().saturating_sub(waited));
            }
            Place::Local => {
                if pending.forward.is_some() {
                    self.settle(pending).await;
                }
                pending.local.push(request);
            }
            Place::Forward(stripe) => {
                if !pending.local.is_empty() || pending.forward.as_ref().is_some_and(|(s, _)| *s != stripe) {
                    self.settle(pending).await;
                }
                pending.forward.get_or_insert_with(|| (stripe, Vec::new())).1.push(request);
            }
        }
    }

    /// Runs what is pending. Forwarded commands that could not be sent (this server
    /// became the active, an upstream broke before they left) are routed again at
    /// once, ahead of anything later; past [`REROUTES_MAX`] they are answered instead.
    async fn settle(&mut self, pending: &mut Pending) {
        if !pending.local.is_empty() {
            self.execute_run(&mut pending.local).await;
            pending.local.clear();
        }
        let Some((stripe, run)) = pending.forward.take() else { return };
        let back = self.forward_run(stripe, run).await;
        if !back.is_empty() {
            self.reroute(pending, back).await;
        }
    }

    /// Routes again what a forwarded run gave back, then settles it ([`Connection::settle`]).
    /// Boxed: it steps and settles again (a recursion), and only here, so that the run
    /// of every request does not pay for a boxed future (one allocation and a copy of
    /// the whole future, some kilobytes, per run).
    fn reroute<'a>(
        &'a mut self,
        pending: &'a mut Pending,
        back: Vec<Request>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            pending.reroutes += 1;
            if pending.reroutes > REROUTES_MAX {
                for request in &back {
                    self.reply(request.unless_sent(Reply::err(ERR_LEADERSHIP_FLAPPING)));
                }
                return;
            }
            for request in back {
                let view = self.shared.view();
                self.step(pending, request, &view).await;
            }
            self.settle(pending).await;
        })
    }

    /// Routes a data command, waiting out an election (bounded) when its stripe has
    /// no active.
    /// `view` is the cluster view the command was admitted under.
    pub(super) async fn place(&mut self, request: &Request, view: &ClusterView) -> Place {
        let access = if request.spec.blocks(&request.args) {
            Access::Blocking
        } else if request.spec.is_write() {
            Access::Write
        } else {
            Access::Read
        };
        let keys = request.keys(view);
        self.place_keys_in(keys, access, view).await
    }

    /// Routes what touches `keys` (see [`Connection::place`]).
    pub(in crate::server) async fn place_keys(&mut self, keys: Keys, access: Access) -> Place {
        let view = self.shared.view();
        self.place_keys_in(keys, access, &view).await
    }

    /// [`Connection::place_keys`] starting from `view`; a wait for an election reads
    /// the view again.
    async fn place_keys_in(&mut self, keys: Keys, access: Access, view: &ClusterView) -> Place {
        let client = self.session.client(super::break_safety_stale_reads());
        // Servers that disagree on which stripe owns a slot would both take a key.
        if let Some(why) = self.shared.array_mismatch.reason() {
            return Place::Answer(Reply::error(format!(
                "CLUSTERDOWN {why}: this server serves no slot until every server's config lists the same stripes, in the same order, with the same servers"
            )));
        }
        // The view read again after waiting for an election.
        let mut fresh: Option<Arc<ClusterView>> = None;
        loop {
            let view = fresh.as_deref().unwrap_or(view);
            match route(keys, access, client, view) {
                Route::Local => {
                    // This server is (again) the active: what an upstream to its own
                    // stripe held for this client is gone.
                    if view.local_is_active() {
                        self.upstreams.drop_stripe(view.local);
                    }
                    return Place::Local;
                }
                Route::Forward(stripe) => return Place::Forward(stripe),
                Route::Moved { slot, stripe } => {
                    return Place::Answer(match view.active(stripe) {
                        Active::There { name, client_addr } => {
                            let addr = self.shared.cluster_addr_of(stripe, name).unwrap_or_else(|| client_addr.clone());
                            Reply::error(format!("MOVED {slot} {addr}"))
                        }
                        _ => self.shared.no_active(stripe),
                    })
                }
                Route::CrossSlot => return Place::Answer(Reply::err(ERR_CROSSSLOT)),
                Route::Bounce => return Place::Answer(Reply::err(ERR_NOT_ACTIVE_EITHER)),
                Route::Down(stripe) if fresh.is_none() => {
                    self.shared.wait_for_active(stripe, self.shared.active_wait()).await;
                    fresh = Some(self.shared.view());
                }
                Route::Down(stripe) => return Place::Answer(self.shared.no_active(stripe)),
            }
        }
    }

    /// Runs consecutive local store commands: writes as one proposal, reads after one
    /// linearizability check (none for a READONLY client's reads on a mirror).
    pub(super) async fn execute_run(&mut self, run: &mut [Request]) {
        let stale = self.session.readonly || super::break_safety_stale_reads();
        let reads = if stale && !self.shared.view().local_is_active() { Reads::Stale } else { Reads::Linearizable };
        let memory = Memory { settings: &self.shared.settings, log_bytes: self.shared.core.replica.log.memory_bytes() };
        let started = std::time::Instant::now();
        let core = &self.shared.core;
        let now = core.read_now(run, reads).or_else(|| core.write_now(run, &memory, self.session.info.id));
        let replies = match now {
            Some(replies) => replies,
            None => core.execute(run, &memory, reads, self.session.info.id, &mut self.write_timer).await,
        };
        self.record_run(run, &replies, started.elapsed());
        for (request, reply) in run.iter().zip(replies) {
            self.reply(request.unless_sent(reply));
        }
    }

    /// A blocking command on the active: served now if a key has data, else wait for
    /// one to get it, for the timeout its spec reads.
    /// Runs a blocking command; returns how long it waited blocked.
    async fn blocking_command(&mut self, request: Request) -> Duration {
        let spec = request.spec;
        let timeout_ms = match spec.wait_ms(&request.args) {
            Ok(ms) => ms.unwrap_or(0),
            Err(e) => {
                self.reply(e);
                return Duration::ZERO;
            }
        };
        // A wait sent to a new active right after a failover waits for it to take
        // writes rather than failing.
        let writable = std::time::Instant::now();
        if let Err(e) = self.wait_writable().await {
            self.reply(e);
            return writable.elapsed();
        }
        let not_writable = writable.elapsed();
        if spec.is_write() && !self.shared.core.enough_mirrors(&self.shared.settings) {
            self.reply(Reply::err(crate::commands::scripting::ERR_NOREPLICAS));
            return not_writable;
        }
        if let Some(refusal) = spec.is_write().then(|| self.shared.core.snapshot_refusal(&self.shared.settings)).flatten() {
            self.reply(refusal);
            return not_writable;
        }
        let keys = spec.wait_keys(&request.args);
        let prepared = {
            let store = self.shared.core.store_async().await;
            // Stamped once the store is free (after any script that held it).
            store.map(|store| spec.prepare_wait(&store.db, self.shared.core.stamp(), &request.args))
        };
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(busy) => {
                self.reply(busy);
                return not_writable;
            }
        };
        // The first attempt goes through the log from here, like any command, so it
        // is ordered by its arrival against other clients' commands; only a command
        // that must wait goes to the blocking task (which tries once more).
        let first = match self.shared.core.propose(vec![Op::command(&prepared.first)]).await {
            Ok(mut replies) => replies.pop().unwrap_or(Reply::NilArray),
            Err(e) => write_reply(&e),
        };
        if first != Reply::WouldBlock {
            self.reply(first);
            return not_writable;
        }
        let woken = prepared.woken.clone();
        let (id, mut rx) = self.shared.blocker.block(self.session.info.id, prepared.woken, keys);
        // Let the client see replies to what it pipelined before this command.
        if self.flush().await.is_err() {
            self.shared.blocker.cancel(id);
            self.session.closing = true;
            return not_writable;
        }
        let blocked = std::time::Instant::now();
        self.session.info.blocked.store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = async {
            if timeout_ms == 0 {
                std::future::pending::<()>().await
            }
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await
        };
        tokio::pin!(deadline);
        let kill = self.session.info.kill.clone();
        // A server that stops being the active can serve the waiter no more: the
        // client is told to retry (it is then forwarded to the new active).
        let mut view = self.shared.view_changes();
        let reply = loop {
            tokio::select! {
                reply = &mut rx => break reply.unwrap_or(Reply::NilArray),
                _ = &mut deadline => break self.give_up(id, rx).await,
                changed = view.changed() => {
                    let deposed = changed.is_err() || !view.borrow_and_update().local_is_active();
                    if deposed {
                        match self.give_up(id, rx).await {
                            // A mirror forwarded it: closing tells the mirror it was not
                            // served, and the mirror sends it to the new active.
                            Reply::NilArray if self.session.forwarded_in && spec.resend_after_failover() => {
                                self.session.closing = true;
                                self.session.info.blocked.store(false, std::sync::atomic::Ordering::Relaxed);
                                return not_writable + blocked.elapsed();
                            }
                            // Served after all: a served blocking command never answers a null array.
                            Reply::NilArray => break Reply::err(ERR_DEPOSED_WHILE_BLOCKED),
                            served => break served,
                        }
                    }
                }
                _ = kill.notified() => {
                    self.session.closing = true;
                    break self.give_up(id, rx).await;
                }
                ok = self.frames.read_while_waiting() => {
                    if !ok {
                        self.session.closing = true;
                        break self.give_up(id, rx).await;
                    }
                }
            }
        };
        let waited = not_writable + blocked.elapsed();
        let reply = self.withdraw_unserved(spec, &woken, reply).await;
        self.session.info.blocked.store(false, std::sync::atomic::Ordering::Relaxed);
        self.reply(reply);
        waited
    }

    /// Waits, for up to one election time, until this server may take writes as the
    /// active: a newly elected active refuses them until a quorum has confirmed its
    /// leadership (openraft's lease), and a mirror may send a wait right then.
    async fn wait_writable(&self) -> Result<(), Reply> {
        let deadline = tokio::time::Instant::now() + self.shared.active_wait();
        let mut pause = Duration::from_millis(10);
        loop {
            match self.shared.core.replica.linearize().await {
                Ok(()) => return Ok(()),
                Err(e) if !self.shared.view().local_is_active() || tokio::time::Instant::now() + pause > deadline => {
                    return Err(read_reply(&e))
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    /// A wait that ended unserved (timeout, the client gone, CLIENT UNBLOCK, the
    /// server deposed) and is replicated state (a lock's FIFO queue) is withdrawn by
    /// an entry: its reply says whether the lock was granted meanwhile (the token, which
    /// is then the answer) or not (nil; CLIENT UNBLOCK's error stays). A server that is
    /// no longer the active cannot withdraw: the session's wait then ends with its
    /// window, or when the client asks again.
    async fn withdraw_unserved(&self, spec: &crate::commands::CommandSpec, woken: &[Bytes], reply: Reply) -> Reply {
        let Some(withdraw) = spec.wait.and_then(|w| w.withdraw) else { return reply };
        let unserved = matches!(reply, Reply::NilArray | Reply::Error(_));
        if !unserved || !self.shared.view().local_is_active() {
            return reply;
        }
        match self.shared.core.propose(vec![Op::command(&withdraw(woken))]).await {
            Ok(mut replies) => match replies.pop() {
                Some(Reply::Int(token)) => Reply::Int(token),
                _ if reply == Reply::NilArray => Reply::Nil,
                _ => reply,
            },
            Err(_) => reply,
        }
    }

    /// Stops waiting: unless the command was served in the meantime (its reply then
    /// arrives anyway), the answer is the null array.
    async fn give_up(&self, id: u64, rx: tokio::sync::oneshot::Receiver<Reply>) -> Reply {
        self.shared.blocker.cancel(id);
        rx.await.unwrap_or(Reply::NilArray)
    }
}
