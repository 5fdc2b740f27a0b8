//! MULTI, EXEC, DISCARD, WATCH, UNWATCH over the session's transaction machine
//! (`server::transaction`): commands queue here; EXEC runs them where their keys
//! live — one entry of this server's stripe, or shipped whole to another active.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::cluster::route::{Access, Keys};
use crate::cluster::view::ClusterView;
use crate::protocol::reply::Reply;
use crate::server::admit::Memory;
use crate::server::connection::Connection;
use crate::server::errors::lost_in_flight;
use crate::server::forward::{active_lost, Exchange, Settled};
use crate::server::pipeline::Place;
use crate::server::request::{unless_sent, Request};
use crate::server::transaction::Watch;
use crate::store::once::Tag;

const ERR_EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// The keys of a whole transaction: one slot's stripe, or a cross-slot request.
fn transaction_keys(cmds: &[Request], view: &ClusterView) -> Keys {
    let mut first: Option<u16> = None;
    for request in cmds {
        match request.keys(view) {
            Keys::None => {}
            Keys::CrossSlot => return Keys::CrossSlot,
            Keys::Slot(slot) => match first {
                None => first = Some(slot),
                Some(f) if view.owner(f) != view.owner(slot) => return Keys::CrossSlot,
                Some(_) => {}
            },
        }
    }
    first.map_or(Keys::None, Keys::Slot)
}

impl Connection {
    pub(super) fn multi(&mut self) -> Reply {
        match self.session.txn.open() {
            Ok(()) => {
                self.session.info.in_multi.store(true, Ordering::Relaxed);
                Reply::ok()
            }
            Err(e) => Reply::err(e),
        }
    }

    pub(super) fn discard(&mut self) -> Reply {
        if self.session.txn.take().is_none() {
            return Reply::err("ERR DISCARD without MULTI");
        }
        self.session.info.in_multi.store(false, Ordering::Relaxed);
        self.unwatch_all();
        Reply::ok()
    }

    pub(super) fn unwatch(&mut self) -> Reply {
        self.unwatch_all();
        Reply::ok()
    }

    /// WATCH: taken where the keys live, like the writes EXEC will make. `None`
    /// when the reply was relayed from another server.
    pub(super) async fn watch(&mut self, request: &Request) -> Option<Reply> {
        if self.session.txn.in_multi() {
            return Some(Reply::err("ERR WATCH inside MULTI is not allowed"));
        }
        let keys = request.keys(&self.shared.view());
        Some(match self.place_keys(keys, Access::Write).await {
            Place::Answer(reply) => reply,
            Place::Local => self.watch_local(request).await,
            Place::Forward(stripe) => return self.watch_remote(stripe, request).await,
        })
    }

    /// WATCH on this server's store: the keys with a stamp of what this server has
    /// applied. A key watched twice keeps its first stamp, the stricter one.
    async fn watch_local(&mut self, request: &Request) -> Reply {
        match &mut self.session.txn.watch {
            Watch::None => self.session.txn.watch = Watch::Local(Vec::new()),
            Watch::Local(_) => {}
            // Keys watched elsewhere and here cannot be checked together.
            Watch::Remote { .. } | Watch::Lost => {
                self.unwatch_all();
                self.session.txn.watch = Watch::Lost;
                return Reply::ok();
            }
        }
        let stamp = match self.shared.core.watch_stamp().await {
            Ok(stamp) => stamp,
            Err(busy) => return busy,
        };
        if let Watch::Local(watched) = &mut self.session.txn.watch {
            for key in &request.args[1..] {
                if !watched.iter().any(|(k, _)| k == key) {
                    watched.push((key.clone(), stamp));
                }
            }
        }
        Reply::ok()
    }

    /// WATCH on the upstream to `stripe`'s active, which holds it until EXEC.
    async fn watch_remote(&mut self, stripe: usize, request: &Request) -> Option<Reply> {
        match &self.session.txn.watch {
            Watch::None => {}
            Watch::Remote { stripe: s, generation } if *s == stripe && self.upstreams.generation(stripe) == Some(*generation) => {}
            _ => {
                self.unwatch_all();
                self.session.txn.watch = Watch::Lost;
                return Some(Reply::ok());
            }
        }
        match self.settle_upstream(stripe).await {
            Settled::Upstream => {}
            // This server became the active meanwhile: watch here (keys watched on
            // the old active cannot be checked here: `watch_local` makes them lost).
            Settled::Again => return Some(self.watch_local(request).await),
            Settled::Refused(reply) => return Some(reply),
        }
        let generation = self.upstreams.generation(stripe);
        if matches!(self.session.txn.watch, Watch::Remote { generation: g, .. } if Some(g) != generation) {
            self.session.txn.watch = Watch::Lost;
            return Some(Reply::ok());
        }
        let cmds: [&[Bytes]; 1] = [&request.args];
        let before = self.frames.out.len();
        let (relayed, outcome) =
            self.relay(stripe, Exchange { cmds: &cmds, relay_last: 1, idle: Some(self.relay_idle()), blocking: false }).await;
        if outcome.is_err() || relayed == 0 {
            match &outcome {
                Err(e) => self.lose_upstream(stripe, e),
                Ok(()) => self.upstreams.close_stripe(stripe),
            }
            self.session.txn.watch = Watch::Lost;
            self.frames.out.truncate(before);
            return Some(lost_in_flight(false));
        }
        // The relayed reply is already in the output: it is the client's answer.
        if let Some(generation) = generation {
            self.session.txn.watch = Watch::Remote { stripe, generation };
        }
        None
    }

    /// EXEC; `None` when the reply was relayed from another server.
    pub(super) async fn exec(&mut self, once: Option<Tag>) -> Option<Reply> {
        let Some(queue) = self.session.txn.take() else { return Some(Reply::err("ERR EXEC without MULTI")) };
        self.session.info.in_multi.store(false, Ordering::Relaxed);
        if let Some(why) = queue.refused_exec {
            self.unwatch_all();
            return Some(crate::server::transaction::exec_refused(why));
        }
        if queue.failed {
            self.unwatch_all();
            return Some(Reply::err(ERR_EXECABORT));
        }
        for request in &queue.cmds {
            self.track_reads(request.spec, &request.args);
        }
        let keys = transaction_keys(&queue.cmds, &self.shared.view());
        match self.place_keys(keys, Access::Write).await {
            Place::Answer(reply) => {
                self.unwatch_all();
                Some(reply)
            }
            Place::Local => Some(self.exec_local(queue.cmds, once).await),
            Place::Forward(stripe) => self.exec_remote(stripe, queue.cmds, once).await,
        }
    }

    /// The transaction as one entry of this server's stripe.
    async fn exec_local(&mut self, cmds: Vec<Request>, once: Option<Tag>) -> Reply {
        let watches = match std::mem::take(&mut self.session.txn.watch) {
            Watch::None => Vec::new(),
            Watch::Local(watches) => watches,
            // Watched on a server that is not this one any more: the keys may have
            // changed unseen, so the transaction fails as if they had.
            watch @ (Watch::Remote { .. } | Watch::Lost) => {
                self.session.txn.watch = watch;
                self.unwatch_all();
                return Reply::NilArray;
            }
        };
        // The users may have changed since the commands were queued: Redis checks
        // each again at EXEC and answers a refused one instead of running it.
        let refusals: Vec<Option<Reply>> = cmds.iter().map(|r| self.acl_refusal_at_exec(r)).collect();
        let cmds: Vec<Request> = cmds.into_iter().zip(&refusals).filter(|(_, refused)| refused.is_none()).map(|(r, _)| r).collect();
        let memory = Memory { settings: &self.shared.settings, log_bytes: self.shared.core.replica.log.memory_bytes() };
        let started = std::time::Instant::now();
        let result = self.shared.core.execute_transaction(&cmds, &watches, &memory, once, self.session.info.id).await;
        self.session.txn.watch = Watch::Local(watches);
        self.unwatch_local();
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => return e,
        };
        let Reply::Array(mut replies) = reply else { return reply };
        // Server commands inside the transaction ran as placeholders: serve them now.
        // INFO, CONFIG, MEMORY and CLUSTER read the store in place: first no script's
        // thread may be in flight (see `Core::scripts_quiet`); nothing awaits after.
        use crate::commands::Srv;
        let reads_store = |srv: Srv| matches!(srv, Srv::Info | Srv::Config | Srv::Memory | Srv::Cluster);
        let quiet = match cmds.iter().any(|r| r.srv().is_some_and(reads_store)) {
            true => self.shared.core.scripts_quiet().await,
            false => Ok(()),
        };
        for (request, slot) in cmds.iter().zip(replies.iter_mut()) {
            if let Some(srv) = request.srv() {
                *slot = match &quiet {
                    Err(busy) if reads_store(srv) => busy.clone(),
                    _ => self.inline_server_reply(srv, &request.args),
                };
            }
        }
        self.record_transaction(&cmds, &replies, started.elapsed());
        if refusals.iter().all(Option::is_none) {
            return Reply::Array(replies);
        }
        let mut ran = replies.into_iter();
        Reply::Array(refusals.into_iter().map(|refused| refused.unwrap_or_else(|| ran.next().unwrap_or(Reply::Nil))).collect())
    }

    /// Redis's EXEC-time ACL check of a queued command: `None` when it may run.
    fn acl_refusal_at_exec(&self, request: &Request) -> Option<Reply> {
        if self.session.acl.forwarder {
            return None;
        }
        let requirepass = self.shared.settings.requirepass();
        let user = self.shared.core.acl.user(self.session.acl.name.as_bytes(), requirepass.as_deref())?;
        let denied = crate::acl::check(&user, request.spec, &request.args).err()?;
        let name = crate::acl::command_name(request.spec, &request.args);
        let entry = crate::acl::log::Entry::new(
            denied.reason(),
            "multi",
            denied.object(&name, &request.args),
            self.session.acl.name.clone(),
            self.session.info.line(0),
        );
        self.shared.core.acl.record(entry, crate::clock::wall_ms(), self.shared.settings.acllog_max_len());
        let reason = match denied {
            crate::acl::Denied::Command => "no permission to execute the command or subcommand",
            crate::acl::Denied::Key(_) => "no permission to touch the specified keys",
            crate::acl::Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        };
        Some(Reply::error(format!(
            "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}"
        )))
    }

    /// The transaction shipped whole (MULTI, the commands, EXEC) to `stripe`'s active,
    /// over the upstream that holds its WATCH if it has one; only EXEC's reply is the
    /// client's. Without WATCH, EXEC goes tagged (`store::once`) and, should the
    /// active be lost before its reply, the transaction goes to the new one, where it
    /// applies at most once in all. With WATCH it cannot: the watch was held by the
    /// lost connection.
    async fn exec_remote(&mut self, stripe: usize, cmds: Vec<Request>, once: Option<Tag>) -> Option<Reply> {
        let watched = match std::mem::take(&mut self.session.txn.watch) {
            Watch::None => None,
            Watch::Remote { stripe: s, generation } if s == stripe => Some(generation),
            watch => {
                self.session.txn.watch = watch;
                self.unwatch_all();
                return Some(Reply::NilArray);
            }
        };
        let tag = match watched {
            None => Some(once.unwrap_or_else(|| self.upstreams.next_tag())),
            Some(_) => once,
        };
        let mut sent = false;
        for _ in 0..=crate::server::pipeline::REROUTES_MAX {
            match self.settle_upstream(stripe).await {
                Settled::Upstream => {}
                Settled::Again if watched.is_none() => return Some(unless_sent(sent, true, self.exec_local(cmds, tag).await)),
                Settled::Again => return Some(Reply::NilArray),
                Settled::Refused(reply) => return Some(unless_sent(sent, true, reply)),
            }
            if watched.is_some_and(|g| self.upstreams.generation(stripe) != Some(g)) {
                // The upstream that held the WATCH is gone: a watched key may have changed.
                return Some(Reply::NilArray);
            }
            let multi = [Bytes::from_static(b"MULTI")];
            let exec = [Bytes::from_static(b"EXEC")];
            let tagged_exec = tag.map(|t| self.upstreams.wrap(stripe, &t, &exec));
            let mut all: Vec<&[Bytes]> = Vec::with_capacity(cmds.len() + 2);
            all.push(&multi);
            all.extend(cmds.iter().map(|r| &r.args[..]));
            all.push(tagged_exec.as_deref().unwrap_or(&exec));
            let active = self.upstreams.get_mut(stripe).map(|u| u.active.clone()).unwrap_or_default();
            let (relayed, outcome) =
                self.relay(stripe, Exchange { cmds: &all, relay_last: 1, idle: Some(self.relay_idle()), blocking: false }).await;
            if outcome.is_ok() && relayed == 1 {
                if let Some(t) = tag {
                    self.upstreams.acknowledge(stripe, t.seq);
                }
                return None;
            }
            match &outcome {
                Err(e) => self.lose_upstream(stripe, e),
                Ok(()) => self.upstreams.close_stripe(stripe),
            }
            let again = watched.is_none() && !self.session.closing && outcome.as_ref().is_err_and(active_lost);
            if !again {
                return Some(lost_in_flight(true));
            }
            sent = true;
            self.shared.wait_for_new_active(stripe, &active, self.shared.active_wait()).await;
        }
        Some(lost_in_flight(true))
    }
}
