//! One client connection: its socket as frames, its session, its upstreams to other
//! servers, and the task that serves it — read, run every complete command through
//! the pipeline (`pipeline`), write all replies once per read, deliver pushed
//! messages. A protocol error ends this connection only.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use tokio::sync::watch;

use super::clients::ClientInfo;
use super::frames::{Frames, Read, QUERY_BUFFER_IDLE_RELEASE};
use super::session::Session;
use super::stream::ClientStream;
use super::transaction::Watch;
use super::upstream::Upstreams;
use super::Shared;
use crate::clock::wall_ms;
use crate::protocol::reply::Reply;

pub struct Connection {
    pub(super) shared: Arc<Shared>,
    pub(super) frames: Frames,
    pub(super) session: Session,
    pub(super) upstreams: Upstreams,
    /// Protected mode holds this connection (`protected::Admission::MembersOnly`):
    /// its first command must prove it is a server of the array, or it is refused.
    pub(super) protected: bool,
    /// The wait of this client's writes (see [`super::core::WriteTimer`]).
    pub(super) write_timer: super::core::WriteTimer,
    pub(super) spare: Spare,
    /// This connection's own receiver of the cluster view: a batch reads the view
    /// once and then only asks whether it changed (one load, where reading it each
    /// command took a lock and a reference count twice).
    pub(super) view_changes: watch::Receiver<Arc<crate::cluster::view::ClusterView>>,
}

/// The vectors of a turn (its parsed commands, its run of local ones), kept empty for
/// the next turn: a request at `-P 1` allocated and grew each anew, about 170 of a
/// GET's 6,100 instructions. Kept only while small, so that a connection idle after
/// one long pipeline does not hold its length.
#[derive(Default)]
pub(super) struct Spare {
    commands: Vec<Vec<Bytes>>,
    pub(super) run: Vec<super::request::Request>,
}

impl Spare {
    /// Entries a kept vector may have room for.
    const KEPT_MAX: usize = 64;

    fn keep_commands(&mut self, mut commands: Vec<Vec<Bytes>>) {
        if commands.capacity() <= Self::KEPT_MAX {
            commands.clear();
            self.commands = commands;
        }
    }

    pub(super) fn keep_run(&mut self, mut run: Vec<super::request::Request>) {
        if run.capacity() <= Self::KEPT_MAX {
            run.clear();
            self.run = run;
        }
    }
}

impl Connection {
    pub fn new(shared: Arc<Shared>, info: Arc<ClientInfo>, socket: ClientStream) -> Connection {
        let authed = Connection::default_logs_in(&shared);
        let frames = Frames::new(socket, info.query_buffer_bytes.clone());
        let view_changes = shared.view_changes();
        Connection {
            view_changes,
            shared,
            frames,
            session: Session::new(info, authed),
            upstreams: Upstreams::default(),
            protected: false,
            write_timer: super::core::WriteTimer::default(),
            spare: Spare::default(),
        }
    }

    pub async fn run(mut self, shutdown: watch::Receiver<bool>) {
        let kill = self.session.info.kill.clone();
        let release = tokio::time::sleep(QUERY_BUFFER_IDLE_RELEASE);
        tokio::pin!(release);
        let mut last_input = Instant::now();
        let mut got_input = false;
        // What `timeout` counts from: the last time the loop did something for the
        // client (giving its read buffer back does not count).
        let mut idle_from = Instant::now();
        let first_command_due = tokio::time::sleep(Duration::from_millis(super::protected::FIRST_COMMAND_MS_MAX));
        tokio::pin!(first_command_due);
        // Shutdown kills every registered client; one registered after that is here.
        if *shutdown.borrow() {
            return;
        }
        while !self.session.closing {
            let idle_secs = self.shared.settings.timeout_secs.load(Ordering::Relaxed);
            let subscribed = self.session.subscribed();
            let idle = async {
                if idle_secs == 0 || subscribed {
                    std::future::pending::<()>().await
                }
                tokio::time::sleep_until(idle_from + Duration::from_secs(idle_secs)).await
            };
            let releasable = self.frames.can_release_input();
            let protected = self.protected;
            tokio::select! {
                // A kill or shutdown wins over pending input: CLIENT KILL is immediate.
                biased;
                raised = kill.raised(super::clients::CONTROL) => {
                    if raised & super::clients::KILLED != 0 {
                        break;
                    }
                    // The users changed: looked at below (`user_still_valid`).
                }
                read = self.frames.read() => match read {
                    Read::Closed => break,
                    Read::Data => {
                        got_input = true;
                        if !self.on_input().await {
                            break;
                        }
                    }
                },
                // One timer per connection, re-armed only when it fires (at most every
                // two seconds), not per request; looked at only when there is nothing
                // to read (after the read in this biased order: a poll of a timer is
                // no free look).
                _ = &mut release, if releasable => {
                    let idle_from = last_input + QUERY_BUFFER_IDLE_RELEASE;
                    if Instant::now() >= idle_from {
                        self.frames.release_input();
                    } else {
                        release.as_mut().reset(idle_from);
                    }
                    continue;
                }
                // Pushes after the client's input, as before: a steady stream of them
                // (a busy channel, MONITOR under load) must not keep its commands unread.
                _ = kill.raised(super::clients::PUSHED) => self.on_push(),
                _ = idle => break,
                _ = &mut first_command_due, if protected => {
                    self.refuse_protected();
                    break;
                }
            }
            idle_from = Instant::now();
            // The query buffer's idle time counts from when this input was served
            // (one look at the clock for both).
            if std::mem::take(&mut got_input) {
                last_input = idle_from;
            }
            if self.flush().await.is_err() {
                break;
            }
            // After the replies it was owed (ACL DELUSER of its own user included).
            if !self.user_still_valid() {
                break;
            }
        }
        let _ = self.flush().await;
        self.cleanup();
    }

    /// Whether this client's user (as the stripe's users are now) still exists and
    /// allows all its subscriptions: Redis closes a client whose user was deleted and
    /// a subscriber whose channels were revoked. Read again only when the users changed.
    fn user_still_valid(&mut self) -> bool {
        let epoch = self.shared.core.acl.epoch();
        if self.session.acl.forwarder || !self.session.authed || self.session.acl.valid_epoch == epoch {
            return true;
        }
        self.session.acl.valid_epoch = epoch;
        let requirepass = self.shared.settings.requirepass();
        let Some(user) = self.shared.core.acl.user(self.session.acl.name.as_bytes(), requirepass.as_deref()) else { return false };
        self.session.channels.iter().all(|c| crate::acl::channel_allowed(&user, c, false))
            && self.session.patterns.iter().all(|p| crate::acl::channel_allowed(&user, p, true))
            && self.session.shard_channels.iter().all(|c| crate::acl::channel_allowed(&user, c, false))
    }

    /// Writes out the replies and pushes queued for the client, unless it is killed
    /// first: a client that stops reading (a subscriber that fell behind) holds the
    /// write, and CLIENT KILL, its output queue's limit and shutdown must still close
    /// it. A flush that can finish at once always does (a killed client still gets
    /// what the socket takes without waiting).
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        let flush = self.frames.flush();
        tokio::pin!(flush);
        loop {
            tokio::select! {
                biased;
                done = &mut flush => return done,
                // A change of users is looked at after the turn (`user_still_valid`).
                // Pushes queued meanwhile stay raised for the loop.
                raised = self.session.info.kill.raised(super::clients::CONTROL) => {
                    if raised & super::clients::KILLED != 0 {
                        return Err(std::io::Error::other("the client was killed while its output waited to be sent"));
                    }
                }
            }
        }
    }

    /// Writes what is queued in the inbox (told by [`super::clients::PUSHED`]): a
    /// burst is written in one go.
    fn on_push(&mut self) {
        while let Ok(msg) = self.session.inbox.try_recv() {
            self.reply(msg);
        }
        // Everything queued is now in the output buffer.
        self.session.outbox.queued_bytes.store(0, Ordering::Relaxed);
    }

    /// Parses and runs every complete command in the input buffer, and those that
    /// arrived while a blocking or forwarded command was waiting. False when the
    /// connection must close (protocol error, QUIT, oversized input).
    async fn on_input(&mut self) -> bool {
        loop {
            if self.protected && self.frames.inbuf.len() > super::protected::FIRST_COMMAND_BYTES_MAX {
                self.refuse_protected();
                return false;
            }
            // The batch's vector is the last turn's, kept (see `Spare`).
            let mut batch = std::mem::take(&mut self.spare.commands);
            let fatal = self.frames.parse_all(&mut batch, &self.shared.settings.bulk_bytes_max);
            if self.frames.over_query_limit() {
                tracing::warn!(client = self.session.info.id, "closing client: query buffer over its limit");
                return false;
            }
            if self.protected && (!batch.is_empty() || fatal.is_some()) {
                let token = self.shared.settings.forward_token.as_deref();
                if !batch.first().is_some_and(|first| super::protected::proves_member(first, token)) {
                    self.refuse_protected();
                    return false;
                }
                self.protected = false;
            }
            let ran = !batch.is_empty();
            if ran {
                self.session.info.last_active_ms.store(wall_ms(), Ordering::Relaxed);
                self.shared.commands_processed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.run_batch(&mut batch).await;
            }
            self.spare.keep_commands(batch);
            if let Some(e) = fatal {
                self.reply(Reply::error(format!("ERR Protocol error: {e}")));
                return false;
            }
            if self.session.closing || !ran || self.frames.inbuf.is_empty() {
                return !self.session.closing;
            }
            if self.flush().await.is_err() {
                return false;
            }
        }
    }

    /// Protected mode's refusal: Redis's `-DENIED` text, raw (it is no command's reply),
    /// counted as a rejected connection as Redis counts it; the caller closes.
    fn refuse_protected(&mut self) {
        self.frames.out.extend_from_slice(super::protected::DENIED.as_bytes());
        self.shared.clients.rejected_connections.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(client = self.session.info.id, "protected mode: a client from another host refused");
    }

    /// Encodes `reply` for the client's protocol into the output buffer, unless
    /// the client said CLIENT REPLY OFF or SKIP (pushes are sent all the same). Every error reply is counted
    /// (INFO errorstats), sent or not, as Redis counts it.
    pub(super) fn reply(&mut self, reply: Reply) {
        if let Reply::Error(text) = &reply {
            self.shared.core.stats.error_reply(text);
        }
        if !matches!(reply, Reply::Push(_)) {
            if let Some(name) = self.session.blocking_call.take() {
                if matches!(reply, Reply::Error(_)) {
                    self.shared.core.stats.failed_later(name);
                }
            }
        }
        // Pushes (pub/sub messages and confirmations) are no command's reply: CLIENT
        // REPLY OFF does not silence them (Redis 7's rule).
        let push = matches!(reply, Reply::Push(_));
        if self.session.reply_off && !push {
            return;
        }
        if self.session.replies_to_skip > 0 && !push {
            self.session.replies_to_skip -= 1;
            return;
        }
        reply.encode(&mut self.frames.out, self.session.resp3);
    }

    /// Forgets keys watched on this server's store.
    pub(super) fn unwatch_local(&mut self) {
        // Stamps are plain values (the store keeps no per-watch state): nothing to
        // release but the list.
        if let Watch::Local(_) = self.session.txn.watch {
            self.session.txn.watch = Watch::None;
        }
    }

    /// Forgets every watched key: here, or on the upstream that holds them.
    pub(super) fn unwatch_all(&mut self) {
        match &self.session.txn.watch {
            Watch::Local(_) => self.unwatch_local(),
            Watch::Remote { stripe, generation } => {
                if let Some(upstream) = self.upstreams.get_mut(*stripe).filter(|u| u.generation == *generation) {
                    upstream.unwatch_pending = true;
                }
                self.session.txn.watch = Watch::None;
            }
            Watch::None | Watch::Lost => self.session.txn.watch = Watch::None,
        }
    }

    fn cleanup(&mut self) {
        self.unwatch_local();
        // The session lives on for its reconnect window; this server renews it no more.
        self.detach();
        let id = self.session.info.id;
        self.shared.monitors.remove(id);
        // Calls its scripts made that it never took (it closed before their reply);
        // if a script holds the store now, `Store::keep_script_calls`'s bound applies.
        if let Ok(mut store) = self.shared.core.replica.store.try_lock() {
            store.script_calls.remove(&id);
        }
        if self.session.tracking.take().is_some() {
            self.shared.core.tracking.disable(id);
        }
        for channel in self.session.channels.drain() {
            self.shared.pubsub.unsubscribe(&channel, id);
        }
        for pattern in self.session.patterns.drain() {
            self.shared.pubsub.punsubscribe(&pattern, id);
        }
        for channel in self.session.shard_channels.drain() {
            self.shared.pubsub.sunsubscribe(&channel, id);
        }
    }
}
