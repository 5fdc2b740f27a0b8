//! One client connection: read bytes, parse every complete command, run them (store
//! commands in batches under one lock), write all replies once per read. Holds the
//! connection's own state: protocol version, authentication, MULTI queue, WATCHed
//! keys, subscriptions. A protocol error ends this connection only.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::clients::ClientInfo;
use super::core::wall_ms;
use super::pubsub::Outbox;
use super::Shared;
use crate::commands::{self, flags, unknown_command, wrong_args, CommandSpec, Handler};
use crate::limits;
use crate::protocol::reply::{Reply, QUEUED};
use crate::protocol::request::{parse_command, ParseLimits};
use crate::store::db::WatchStamp;

const READ_CHUNK_BYTES: usize = 16 * 1024;

pub struct Connection {
    pub(super) shared: Arc<Shared>,
    pub(super) info: Arc<ClientInfo>,
    socket: TcpStream,
    inbuf: BytesMut,
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
            tokio::select! {
                // A kill or shutdown wins over pending input: CLIENT KILL is immediate.
                biased;
                _ = kill.notified() => break,
                _ = shutdown.changed() => break,
                read = self.socket.read_buf(&mut self.inbuf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
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

    async fn flush(&mut self) -> std::io::Result<()> {
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

    /// Parses and runs every complete command in the input buffer. False when the
    /// connection must close (protocol error, QUIT, oversized input).
    async fn on_input(&mut self) -> bool {
        let limits =
            ParseLimits { bulk_bytes_max: self.shared.settings.bulk_bytes_max.load(Ordering::Relaxed), args_max: limits::ARGS_MAX };
        let mut batch: Vec<Vec<Bytes>> = Vec::new();
        let mut fatal = None;
        loop {
            match parse_command(&mut self.inbuf, &limits) {
                Ok(Some(args)) if args.is_empty() => continue,
                Ok(Some(args)) => batch.push(args),
                Ok(None) => break,
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            }
        }
        if self.inbuf.len() > limits::QUERY_BUFFER_BYTES_MAX {
            tracing::warn!(client = self.info.id, "closing client: query buffer over its limit");
            return false;
        }
        if !batch.is_empty() {
            self.info.last_active_ms.store(wall_ms(), Ordering::Relaxed);
            self.shared.commands_processed.fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.run_batch(batch).await;
        }
        if let Some(e) = fatal {
            Reply::error(format!("ERR Protocol error: {e}")).encode(&mut self.out, self.resp3);
            return false;
        }
        !self.closing
    }

    /// Runs commands in order. Consecutive plain store commands run together under one
    /// lock; anything else (connection state, blocking, MULTI) runs on its own.
    async fn run_batch(&mut self, batch: Vec<Vec<Bytes>>) {
        let mut run: Vec<(&'static CommandSpec, Vec<Bytes>)> = Vec::new();
        for args in batch {
            if self.closing {
                break;
            }
            match self.plain_store_command(&args) {
                Some(spec) => run.push((spec, args)),
                None => {
                    self.execute_run(&mut run).await;
                    self.dispatch(args).await;
                }
            }
        }
        self.execute_run(&mut run).await;
    }

    /// The command's spec if it can join a batch: a known store command with the right
    /// arity, not blocking, outside MULTI, on an authenticated, unsubscribed client.
    fn plain_store_command(&self, args: &[Bytes]) -> Option<&'static CommandSpec> {
        if self.multi.is_some() || !self.authed || self.resp2_subscribed() {
            return None;
        }
        let spec = commands::lookup(args.first()?)?;
        let plain = matches!(spec.handler, Handler::Read(_) | Handler::Write(_))
            && !spec.has(flags::BLOCKING | flags::INTERNAL)
            && spec.arity_ok(args.len());
        plain.then_some(spec)
    }

    /// RESP2 clients with subscriptions may only run pub/sub commands (RESP3 ones may
    /// run anything: pushes are told apart from replies by their type).
    fn resp2_subscribed(&self) -> bool {
        !self.resp3 && (!self.channels.is_empty() || !self.patterns.is_empty())
    }

    async fn execute_run(&mut self, run: &mut Vec<(&'static CommandSpec, Vec<Bytes>)>) {
        if run.is_empty() {
            return;
        }
        if let Some((spec, _)) = run.last() {
            self.set_last_cmd(spec.name);
        }
        let replies = self.shared.core.execute(run, &self.shared.settings).await;
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

    /// Runs one command that could not join a batch.
    async fn dispatch(&mut self, args: Vec<Bytes>) {
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
        let reply = loop {
            tokio::select! {
                reply = &mut rx => break reply.unwrap_or(Reply::NilArray),
                _ = &mut deadline => break self.give_up(id, rx).await,
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

/// The timeout argument of a blocking command in ms: the last argument for BLPOP,
/// BRPOP, BLMOVE and BRPOPLPUSH alike.
fn blocking_timeout(args: &[Bytes]) -> Result<u64, Reply> {
    let last = args.last().ok_or(Reply::err(commands::args::ERR_SYNTAX))?;
    commands::args::timeout_arg(last)
}
