//! One client connection: read bytes, parse every complete command, run them (store
//! commands in batches under one lock; on a mirror, data commands forwarded to the
//! active in batches, see [`super::forward`]), write all replies once per read. Holds
//! the connection's own state: protocol version, authentication, MULTI queue, WATCHed
//! keys, subscriptions, READONLY. A protocol error ends this connection only.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::clients::ClientInfo;
use super::core::{wall_ms, Reads};
use super::forward::{Forwarding, Route};
use super::pubsub::Outbox;
use super::Shared;
use crate::commands::{self, flags, unknown_command, wrong_args, CommandSpec, Handler};
use crate::limits;
use crate::protocol::reply::{Reply, QUEUED};
use crate::protocol::request::{parse_command, ParseLimits};
use crate::store::db::WatchStamp;

const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Largest read: a client pipelining faster than its writes commit gets its
/// commands taken in bigger gulps, so one proposal carries more of them (a write's
/// commit takes a Raft round, not a memory write as in Redis).
const READ_GULP_MAX_BYTES: usize = 1024 * 1024;

/// Times one batch's forwarded commands may go back to routing: once when a
/// transaction is lost with its upstream, once when this server becomes the active;
/// more means leadership is changing back and forth, and the client is told to retry.
const REROUTES_MAX: usize = 4;

const ERR_LEADERSHIP_FLAPPING: &str = "TRYAGAIN the stripe's active keeps changing; retry";

const ERR_DEPOSED_WHILE_BLOCKED: &str = "TRYAGAIN this server stopped being the active of its stripe while the command waited; retry";

pub struct Connection {
    pub(super) shared: Arc<Shared>,
    pub(super) info: Arc<ClientInfo>,
    pub(super) socket: TcpStream,
    pub(super) inbuf: BytesMut,
    /// How much room the next read gets: doubles while reads fill it, back to
    /// `READ_CHUNK_BYTES` when one does not.
    read_room: usize,
    pub(super) out: BytesMut,
    pub(super) resp3: bool,
    pub(super) authed: bool,
    pub(super) multi: Option<Vec<Vec<Bytes>>>,
    pub(super) multi_failed: bool,
    pub(super) watches: Vec<(Bytes, WatchStamp)>,
    pub(super) channels: HashSet<Bytes>,
    pub(super) patterns: HashSet<Bytes>,
    pub(super) outbox: Outbox,
    inbox: mpsc::UnboundedReceiver<Reply>,
    pub(super) closing: bool,
    /// READONLY: on a mirror, reads are served here, possibly behind the active.
    pub(super) readonly: bool,
    /// This client is another server forwarding its clients' commands: this server
    /// never forwards them once more.
    pub(super) forwarded_in: bool,
    /// The upstream to the active and what this client holds there.
    pub(super) forward: Forwarding,
}

impl Connection {
    pub fn new(shared: Arc<Shared>, info: Arc<ClientInfo>, socket: TcpStream) -> Connection {
        let (tx, inbox) = mpsc::unbounded_channel();
        let outbox = Outbox { tx, queued_bytes: Arc::new(AtomicUsize::new(0)), kill: info.kill.clone() };
        let authed = shared.settings.requirepass().is_none();
        Connection {
            shared,
            info,
            socket,
            inbuf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            read_room: READ_CHUNK_BYTES,
            out: BytesMut::with_capacity(READ_CHUNK_BYTES),
            resp3: false,
            authed,
            multi: None,
            multi_failed: false,
            watches: Vec::new(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            outbox,
            inbox,
            closing: false,
            readonly: false,
            forwarded_in: false,
            forward: Forwarding::default(),
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let kill = self.info.kill.clone();
        while !self.closing {
            let idle_secs = self.shared.settings.timeout_secs.load(Ordering::Relaxed);
            let idle = async {
                if idle_secs == 0 || !self.channels.is_empty() || !self.patterns.is_empty() {
                    std::future::pending::<()>().await
                }
                tokio::time::sleep(Duration::from_secs(idle_secs)).await
            };
            self.inbuf.reserve(self.read_room);
            let room = self.inbuf.capacity() - self.inbuf.len();
            tokio::select! {
                // A kill or shutdown wins over pending input: CLIENT KILL is immediate.
                biased;
                _ = kill.notified() => break,
                _ = shutdown.changed() => break,
                read = self.socket.read_buf(&mut self.inbuf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        self.read_room =
                            if n >= room { (self.read_room * 2).min(READ_GULP_MAX_BYTES) } else { READ_CHUNK_BYTES };
                        if !self.on_input().await {
                            break;
                        }
                    }
                },
                Some(msg) = self.inbox.recv() => self.on_push(msg),
                _ = idle => break,
            }
            if !self.out.is_empty() && self.flush().await.is_err() {
                break;
            }
        }
        let _ = self.flush().await;
        self.cleanup();
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.socket.write_all(&self.out).await?;
        self.out.clear();
        if self.out.capacity() > 4 * 1024 * 1024 {
            // Don't keep a huge buffer around after one big reply.
            self.out = BytesMut::with_capacity(READ_CHUNK_BYTES);
        }
        Ok(())
    }

    fn on_push(&mut self, msg: Reply) {
        msg.encode(&mut self.out, self.resp3);
        // Drain what else is queued, so a burst is written in one go.
        while let Ok(msg) = self.inbox.try_recv() {
            msg.encode(&mut self.out, self.resp3);
        }
        // Everything queued is now in the output buffer.
        self.outbox.queued_bytes.store(0, Ordering::Relaxed);
    }

    /// Parses and runs every complete command in the input buffer, and those that
    /// arrived while a blocking or forwarded command was waiting. False when the
    /// connection must close (protocol error, QUIT, oversized input).
    async fn on_input(&mut self) -> bool {
        loop {
            let (batch, fatal) = self.parse_batch();
            if self.inbuf.len() > limits::QUERY_BUFFER_BYTES_MAX {
                tracing::warn!(client = self.info.id, "closing client: query buffer over its limit");
                return false;
            }
            let ran = !batch.is_empty();
            if ran {
                self.info.last_active_ms.store(wall_ms(), Ordering::Relaxed);
                self.shared.commands_processed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.run_batch(batch).await;
            }
            if let Some(e) = fatal {
                Reply::error(format!("ERR Protocol error: {e}")).encode(&mut self.out, self.resp3);
                return false;
            }
            if self.closing || !ran || self.inbuf.is_empty() {
                return !self.closing;
            }
            if self.flush().await.is_err() {
                return false;
            }
        }
    }

    /// Every complete command in the input buffer, and the protocol error that ended
    /// parsing, if one did.
    fn parse_batch(&mut self) -> (Vec<Vec<Bytes>>, Option<crate::protocol::request::ProtocolError>) {
        let limits =
            ParseLimits { bulk_bytes_max: self.shared.settings.bulk_bytes_max.load(Ordering::Relaxed), args_max: limits::ARGS_MAX };
        let mut batch: Vec<Vec<Bytes>> = Vec::new();
        loop {
            match parse_command(&mut self.inbuf, &limits) {
                Ok(Some(args)) if args.is_empty() => continue,
                Ok(Some(args)) => batch.push(args),
                Ok(None) => return (batch, None),
                Err(e) => return (batch, Some(e)),
            }
        }
    }

    /// Runs commands in order. Consecutive plain store commands run together under one
    /// lock, consecutive forwarded ones go to the active together; anything else
    /// (connection state, blocking, MULTI) runs on its own.
    async fn run_batch(&mut self, batch: Vec<Vec<Bytes>>) {
        let mut queue: VecDeque<Vec<Bytes>> = batch.into();
        let mut local: Vec<(&'static CommandSpec, Vec<Bytes>)> = Vec::new();
        let mut forwarded: Vec<Vec<Bytes>> = Vec::new();
        let mut reroutes = 0;
        loop {
            if self.closing {
                break;
            }
            let route = queue.front().map(|args| self.route(args));
            if !matches!(route, Some(Route::Forward)) && !forwarded.is_empty() {
                // Routing may depend on what the forwarded run did: route again after it.
                let again = self.forward_run(&mut forwarded).await;
                if !again.is_empty() {
                    reroutes += 1;
                }
                if reroutes > REROUTES_MAX {
                    for _ in &again {
                        self.reply(Reply::err(ERR_LEADERSHIP_FLAPPING));
                    }
                    continue;
                }
                for args in again.into_iter().rev() {
                    queue.push_front(args);
                }
                continue;
            }
            let (Some(route), Some(args)) = (route, queue.pop_front()) else { break };
            match route {
                Route::Forward => {
                    self.execute_run(&mut local).await;
                    self.queue_forward(&args);
                    forwarded.push(args);
                }
                Route::Store(spec) => {
                    self.leave_upstream_if_active();
                    local.push((spec, args));
                }
                Route::Doomed => {
                    self.execute_run(&mut local).await;
                    self.doomed(&args);
                }
                Route::Answer(reply) => {
                    self.execute_run(&mut local).await;
                    self.reply(reply);
                }
                Route::Dispatch => {
                    self.execute_run(&mut local).await;
                    self.leave_upstream_if_active();
                    self.dispatch(args).await;
                }
            }
        }
        self.execute_run(&mut local).await;
    }

    /// RESP2 clients with subscriptions may only run pub/sub commands (RESP3 ones may
    /// run anything: pushes are told apart from replies by their type).
    pub(super) fn resp2_subscribed(&self) -> bool {
        !self.resp3 && (!self.channels.is_empty() || !self.patterns.is_empty())
    }

    async fn execute_run(&mut self, run: &mut Vec<(&'static CommandSpec, Vec<Bytes>)>) {
        if run.is_empty() {
            return;
        }
        if let Some((spec, _)) = run.last() {
            self.set_last_cmd(spec.name);
        }
        // Only a READONLY client on a mirror reads without the linearizability check:
        // everyone else's read on a server that is not (or no longer) the active is
        // refused by that check.
        let stale = self.readonly || super::break_safety_stale_reads();
        let reads = if stale && !self.shared.core.replica.is_active() { Reads::Stale } else { Reads::Linearizable };
        let replies = self.shared.core.execute(run, &self.shared.settings, reads).await;
        for reply in &replies {
            reply.encode(&mut self.out, self.resp3);
        }
        run.clear();
    }

    pub(super) fn set_last_cmd(&self, name: &'static str) {
        *self.info.last_cmd.lock().unwrap_or_else(|e| e.into_inner()) = name;
    }

    pub(super) fn reply(&mut self, reply: Reply) {
        reply.encode(&mut self.out, self.resp3);
    }

    /// Runs here one command that could not join a batch.
    pub(super) async fn dispatch(&mut self, args: Vec<Bytes>) {
        let Some(spec) = args.first().and_then(|n| commands::lookup(n)).filter(|s| !s.has(flags::INTERNAL)) else {
            if self.multi.is_some() {
                self.multi_failed = true;
            }
            return self.reply(unknown_command(&args));
        };
        self.set_last_cmd(spec.name);
        if !spec.arity_ok(args.len()) {
            if self.multi.is_some() {
                self.multi_failed = true;
            }
            return self.reply(wrong_args(spec.name));
        }
        if !self.authed && !spec.has(flags::NO_AUTH) {
            return self.reply(Reply::err("NOAUTH Authentication required."));
        }
        if self.resp2_subscribed() && !allowed_while_subscribed(spec.name) {
            return self.reply(Reply::error(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            )));
        }
        if let Some(queue) = &mut self.multi {
            if !matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset") {
                if spec.has(flags::DENYOOM)
                    && super::core::over_maxmemory(&self.shared.settings, self.shared.core.replica.log.memory_bytes())
                    && self.shared.settings.policy() == super::settings::EvictionPolicy::NoEviction
                {
                    self.multi_failed = true;
                    return self.reply(Reply::err(commands::args::ERR_OOM));
                }
                queue.push(args);
                return self.reply(QUEUED);
            }
        }
        match spec.handler {
            Handler::Server => self.server_command(spec, args).await,
            Handler::Write(_) if spec.has(flags::BLOCKING) => self.blocking_command(spec, args).await,
            Handler::Read(_) | Handler::Write(_) => {
                let mut run = vec![(spec, args)];
                self.execute_run(&mut run).await;
            }
        }
    }

    /// A blocking command: served now if a key has data, else wait for one to get it,
    /// for the timeout (its last argument, or the one before for BLMOVE-style).
    async fn blocking_command(&mut self, spec: &'static CommandSpec, args: Vec<Bytes>) {
        let timeout_ms = match blocking_timeout(&args) {
            Ok(ms) => ms,
            Err(e) => return self.reply(e),
        };
        let keys: Vec<Bytes> = spec.keys(&args).into_iter().cloned().collect();
        let (id, mut rx) = self.shared.blocker.block(args, keys);
        // Let the client see replies to what it pipelined before this command.
        if self.flush().await.is_err() {
            self.shared.blocker.cancel(id);
            self.closing = true;
            return;
        }
        self.info.blocked.store(true, Ordering::Relaxed);
        let deadline = async {
            if timeout_ms == 0 {
                std::future::pending::<()>().await
            }
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await
        };
        tokio::pin!(deadline);
        let kill = self.info.kill.clone();
        // A server that stops being the active can serve the waiter no more: the
        // client is told to retry (it is then forwarded to the new active).
        let period = super::forward::active_check_period(self.shared.core.replica.election_time());
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let reply = loop {
            tokio::select! {
                reply = &mut rx => break reply.unwrap_or(Reply::NilArray),
                _ = &mut deadline => break self.give_up(id, rx).await,
                _ = check.tick() => {
                    if !self.shared.core.replica.is_active() {
                        match self.give_up(id, rx).await {
                            // Served after all: a served blocking command never answers a null array.
                            Reply::NilArray => break Reply::err(ERR_DEPOSED_WHILE_BLOCKED),
                            served => break served,
                        }
                    }
                }
                _ = kill.notified() => {
                    self.closing = true;
                    break self.give_up(id, rx).await;
                }
                read = self.socket.read_buf(&mut self.inbuf) => {
                    if matches!(read, Ok(0) | Err(_)) || self.inbuf.len() > limits::QUERY_BUFFER_BYTES_MAX {
                        self.closing = true;
                        break self.give_up(id, rx).await;
                    }
                }
            }
        };
        self.info.blocked.store(false, Ordering::Relaxed);
        self.reply(reply);
    }

    /// Stops waiting: unless the command was served in the meantime (its reply then
    /// arrives anyway), the answer is the null array.
    async fn give_up(&self, id: u64, rx: tokio::sync::oneshot::Receiver<Reply>) -> Reply {
        self.shared.blocker.cancel(id);
        rx.await.unwrap_or(Reply::NilArray)
    }

    fn cleanup(&mut self) {
        if !self.watches.is_empty() {
            let mut store = self.shared.core.store();
            for (key, _) in self.watches.drain(..) {
                store.db.unwatch(&key);
            }
        }
        for channel in self.channels.drain() {
            self.shared.pubsub.unsubscribe(&channel, self.info.id);
        }
        for pattern in self.patterns.drain() {
            self.shared.pubsub.punsubscribe(&pattern, self.info.id);
        }
    }
}

fn allowed_while_subscribed(name: &str) -> bool {
    matches!(name, "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ssubscribe" | "sunsubscribe" | "ping" | "quit" | "reset")
}

/// The timeout argument of a blocking command in ms (where it is: see
/// [`commands::blocking_timeout_arg`]).
pub(super) fn blocking_timeout(args: &[Bytes]) -> Result<u64, Reply> {
    let arg = commands::blocking_timeout_arg(args).ok_or(Reply::err(commands::args::ERR_SYNTAX))?;
    commands::args::timeout_arg(arg)
}
