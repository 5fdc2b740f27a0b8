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
//! An upstream that fails mid-command leaves the outcome of the commands in flight
//! unknown: each gets `-TRYAGAIN`, and the next command looks the active up again. A
//! transaction or WATCH held on a lost upstream is never carried on silently over
//! another one: EXEC then answers `EXECABORT` (nil for a lost WATCH), as if it had
//! failed on the active.
//!
//! It knows nothing of Raft: where the active is comes from `Replica::active_at`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::connection::Connection;
use super::core::write_wait;
use crate::commands::{self, flags, CommandSpec, Handler};
use crate::limits;
use crate::protocol::frame::{parse_frame, FrameError};
use crate::protocol::reply::{Reply, QUEUED};
use crate::protocol::request::ParseLimits;
use crate::replication::replica::ActiveAt;

/// The client name a forwarding connection gives itself on the active, followed by
/// the forwarding server's name: it shows in CLIENT LIST, and a server that is not
/// the active refuses to forward such a connection's commands once more (two mirrors
/// with stale views must not bounce a request between them).
pub const FORWARD_NAME_PREFIX: &str = "tandem-forward:";

pub const ERR_IN_FLIGHT: &str = "TRYAGAIN the active changed while this command was in flight; its outcome is unknown";
pub const ERR_NO_ACTIVE: &str = "CLUSTERDOWN no active server in this stripe right now (election in progress); retry";
const ERR_NOT_ACTIVE_EITHER: &str = "TRYAGAIN this request was forwarded to a server that is not the active of its stripe either; retry";
const ERR_TRANSACTION_LOST: &str = "EXECABORT Transaction discarded because the active changed while it was being queued.";
const ERR_TRANSACTION_FAILED: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Bytes reserved ahead of each read from the active: large replies arrive in few reads.
const RELAY_READ_BYTES: usize = 64 * 1024;

/// Largest reply relayed from the active. A value may be 512 MB
/// ([`limits::STRING_BYTES_MAX`]) and a reply may hold many; past this the upstream is
/// dropped rather than let one reply take the server's memory.
const RELAYED_REPLY_BYTES_MAX: usize = u32::MAX as usize;

/// Elements in one aggregate of a relayed reply. Replies (KEYS, LRANGE, HGETALL) may
/// hold more elements than a request may have arguments; the parser reserves at most
/// [`limits::ARGS_PREALLOC_MAX`] ahead of what has arrived whatever the count says,
/// so this only turns away counts no reply could have.
const RELAYED_COUNT_MAX: usize = u32::MAX as usize;

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

/// Limits for replies relayed from the active (see the constants for why).
pub fn relay_limits(bulk_bytes_max: usize) -> ParseLimits {
    ParseLimits { bulk_bytes_max: bulk_bytes_max.max(limits::STRING_BYTES_MAX), args_max: RELAYED_COUNT_MAX }
}

/// Appends `args` as a RESP array of bulk strings.
pub fn encode_command(out: &mut BytesMut, args: &[Bytes]) {
    let mut int = itoa::Buffer::new();
    out.extend_from_slice(b"*");
    out.extend_from_slice(int.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.reserve(arg.len() + 16);
        out.extend_from_slice(b"$");
        out.extend_from_slice(int.format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A command's name in lower case (names are short: a longer one is no command).
fn name_of(args: &[Bytes]) -> String {
    let name = args.first().map_or(&[][..], |n| &n[..n.len().min(32)]);
    String::from_utf8_lossy(name).to_ascii_lowercase()
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the active closed the connection")]
    Closed,
    #[error("no reply from the active within {0:?}")]
    Timeout(Duration),
    #[error("the active's reply is not valid RESP: {0}")]
    Protocol(#[from] FrameError),
    #[error("the active's reply is over {RELAYED_REPLY_BYTES_MAX} bytes")]
    TooLarge,
    #[error("the active refused the forwarded connection: {0}")]
    Refused(String),
    #[error("another server became the active")]
    ActiveChanged,
    #[error("the client went away")]
    ClientGone,
}

/// One connection to the active's client port, on behalf of one client.
pub struct Upstream<S = TcpStream> {
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
    /// Reply bytes read and not yet relayed.
    buf: BytesMut,
    /// The active this connects to, by server name.
    pub active: String,
    /// The protocol the active speaks on this connection.
    pub resp3: bool,
}

impl Upstream<TcpStream> {
    /// Connects to the active at `addr` and shakes hands (see [`Upstream::handshake`]).
    pub async fn open(addr: &str, active: String, hello: &Hello<'_>, within: Duration) -> Result<Upstream, UpstreamError> {
        let stream = match tokio::time::timeout(within, TcpStream::connect(addr)).await {
            Ok(stream) => stream?,
            Err(_) => return Err(UpstreamError::Timeout(within)),
        };
        stream.set_nodelay(true)?;
        Upstream::handshake(stream, active, hello, within).await
    }
}

/// What a forwarding connection tells the active first.
pub struct Hello<'a> {
    pub resp3: bool,
    /// The active's `requirepass` (the stripe's servers share their config).
    pub password: Option<&'a str>,
    /// This server's name, for the connection's client name on the active.
    pub from: &'a str,
}

impl<S: AsyncRead + AsyncWrite> Upstream<S> {
    /// Sends `HELLO <2|3> [AUTH default <password>] SETNAME tandem-forward:<from>`
    /// and checks the answer: one round trip, protocol and authentication together.
    pub async fn handshake(stream: S, active: String, hello: &Hello<'_>, within: Duration) -> Result<Upstream<S>, UpstreamError> {
        let (reader, writer) = tokio::io::split(stream);
        let mut upstream = Upstream { reader, writer, buf: BytesMut::new(), active, resp3: hello.resp3 };
        let name: String = hello.from.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect::<String>();
        let mut args = vec![Bytes::from_static(b"HELLO"), Bytes::from_static(if hello.resp3 { b"3" } else { b"2" })];
        if let Some(password) = hello.password {
            args.extend([Bytes::from_static(b"AUTH"), Bytes::from_static(b"default"), Bytes::copy_from_slice(password.as_bytes())]);
        }
        args.extend([Bytes::from_static(b"SETNAME"), Bytes::from(format!("{FORWARD_NAME_PREFIX}{name}"))]);
        let mut request = BytesMut::new();
        encode_command(&mut request, &args);
        let mut reply = BytesMut::new();
        let mut relayed = 0;
        upstream.exchange(&request, 0, 1, &mut reply, &mut relayed, Some(within), &relay_limits(0)).await?;
        if matches!(reply.first(), Some(b'-' | b'!')) {
            let text = String::from_utf8_lossy(reply.get(1..).unwrap_or_default()).trim().to_string();
            return Err(UpstreamError::Refused(text));
        }
        Ok(upstream)
    }

    /// Sends `request` (encoded commands), reads `skip + replies` reply frames and
    /// appends the last `replies` of them to `out` unchanged, counting them in
    /// `relayed` as they complete (so a caller that drops this future knows how many
    /// the client got). Writing and reading interleave, so a long pipeline cannot
    /// deadlock with an active whose output is full. Out-of-band pushes are skipped:
    /// the upstream subscribes to nothing, so they are no reply.
    ///
    /// `idle`: the longest silence allowed (`None`: wait as long as it takes, for a
    /// blocking command without a timeout).
    #[allow(clippy::too_many_arguments)]
    pub async fn exchange(
        &mut self,
        request: &[u8],
        skip: usize,
        replies: usize,
        out: &mut BytesMut,
        relayed: &mut usize,
        idle: Option<Duration>,
        limits: &ParseLimits,
    ) -> Result<(), UpstreamError> {
        let mut written = 0;
        let mut frames = 0;
        loop {
            while frames < skip + replies {
                let Some((_, len)) = parse_frame(&self.buf, limits)? else { break };
                let push = self.buf.first() == Some(&b'>');
                let bytes = self.buf.split_to(len);
                if push {
                    continue;
                }
                if frames >= skip {
                    out.extend_from_slice(&bytes);
                    *relayed += 1;
                }
                frames += 1;
            }
            let rest = request.get(written..).unwrap_or_default();
            if frames == skip + replies && rest.is_empty() {
                return Ok(());
            }
            if self.buf.len() > RELAYED_REPLY_BYTES_MAX {
                return Err(UpstreamError::TooLarge);
            }
            self.buf.reserve(RELAY_READ_BYTES);
            let deadline = idle.and_then(|d| Instant::now().checked_add(d));
            let silence = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = self.writer.write(rest), if !rest.is_empty() => match n? {
                    0 => return Err(UpstreamError::Closed),
                    n => written += n,
                },
                n = self.reader.read_buf(&mut self.buf) => {
                    if n? == 0 {
                        return Err(UpstreamError::Closed);
                    }
                }
                _ = silence => return Err(UpstreamError::Timeout(idle.unwrap_or_default())),
            }
        }
    }

    /// False when the active has closed this connection while it sat idle (a command
    /// sent now would meet a reset, with its outcome unknown for no reason).
    pub fn alive(&mut self) -> bool {
        self.buf.reserve(RELAY_READ_BYTES);
        match self.reader.read_buf(&mut self.buf).now_or_never() {
            None => true,
            Some(Ok(n)) => n > 0,
            Some(Err(_)) => false,
        }
    }
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

/// The state of one client's forwarding.
#[derive(Default)]
pub struct Forwarding {
    upstream: Option<Upstream>,
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
    /// Drops the upstream: a transaction or WATCH held there is lost with it.
    pub fn drop_upstream(&mut self) {
        self.upstream = None;
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
    /// it, and the upstream dropped if it was `lost`.
    fn settle_run(&mut self, names: &[String], relayed: usize, lost: bool) {
        for (i, name) in names.iter().enumerate() {
            if i < relayed {
                self.sent(name);
            } else {
                self.failed(name);
            }
        }
        if lost {
            self.drop_upstream();
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
        let Some(spec) = args.first().and_then(|n| commands::lookup(n)).filter(|s| s.blocks(args)) else { continue };
        blocking = true;
        idle = match spec.wait_ms(args) {
            Ok(Some(0)) => None,
            Ok(Some(ms)) => idle.and_then(|d| d.checked_add(Duration::from_millis(ms))),
            // The active answers a bad timeout at once.
            Ok(None) | Err(_) => idle,
        };
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
        let plain = matches!(spec.handler, Handler::Read(_) | Handler::Write(_)) && !spec.blocks(args);
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
                self.forward.settle_run(&names, 0, true);
                for _ in &cmds {
                    self.reply(reply.clone());
                }
                return Vec::new();
            }
        }
        let active = self.forward.upstream.as_ref().map(|u| u.active.clone()).unwrap_or_default();
        let (relayed, outcome) = self.relay(&cmds).await;
        if let Err(e) = &outcome {
            tracing::debug!(client = self.info.id, error = %e, relayed, sent = cmds.len(), "forwarding to the active failed");
        }
        self.forward.settle_run(&names, relayed, outcome.is_err());
        if let Err(e) = &outcome {
            if let Some(wait) = self.resendable_wait(&cmds, relayed, e) {
                tracing::info!(client = self.info.id, error = %e, lost = %active, "the active was lost while a command waited: sending it to the new active");
                // As a write is re-sent after a failover (DESIGN.md §6): wait for the
                // successor for up to twice the election time, then route again.
                let replica = &self.shared.core.replica;
                replica.wait_for_active_other_than(&active, replica.election_time() * 2).await;
                return vec![wait];
            }
        }
        for _ in relayed..cmds.len() {
            self.reply(Reply::err(ERR_IN_FLIGHT));
        }
        Vec::new()
    }

    /// The waiting command to send again after its upstream was lost: when it is the
    /// only one left unanswered and its spec allows it (XREAD, XREADGROUP; see
    /// `WaitSpec::resend_after_failover`). Its wait starts again on the new active.
    fn resendable_wait(&self, cmds: &[Vec<Bytes>], relayed: usize, error: &UpstreamError) -> Option<Vec<Bytes>> {
        let lost = matches!(error, UpstreamError::Io(_) | UpstreamError::Closed | UpstreamError::Timeout(_) | UpstreamError::ActiveChanged);
        if !lost || self.closing || relayed + 1 != cmds.len() {
            return None;
        }
        let last = cmds.last()?;
        let spec = last.first().and_then(|n| commands::lookup(n))?;
        (spec.blocks(last) && spec.resend_after_failover()).then(|| last.clone())
    }

    /// Makes sure an upstream to the current active exists, waiting out an election
    /// for up to one election time.
    async fn settle_upstream(&mut self) -> Settled {
        let shared = self.shared.clone();
        let replica = &shared.core.replica;
        let mut at = replica.active_at();
        if matches!(at, ActiveAt::Unknown) {
            at = replica.wait_for_active(replica.election_time()).await;
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
        if let Some(upstream) = &mut self.forward.upstream {
            if upstream.active == name && upstream.alive() {
                return Settled::Upstream;
            }
            self.forward.drop_upstream();
        }
        if matches!(self.forward.multi, RemoteMulti::Doomed(_)) {
            return Settled::Again;
        }
        self.connect_upstream(name, client_addr).await
    }

    /// Opens an upstream to the active, trying again (the active may just have died
    /// and an election be on its way) for up to one election time.
    async fn connect_upstream(&mut self, mut name: String, mut addr: String) -> Settled {
        let shared = self.shared.clone();
        let replica = &shared.core.replica;
        let election = replica.election_time();
        let deadline = Instant::now() + election;
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
                    "CLUSTERDOWN the active of this stripe ({name} at {addr}) cannot be reached: {error}; retry"
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
        let skip = usize::from(upstream.resp3 != self.resp3);
        if skip == 1 {
            encode_command(&mut request, &[Bytes::from_static(b"HELLO"), Bytes::from_static(if self.resp3 { b"3" } else { b"2" })]);
            upstream.resp3 = self.resp3;
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
    use crate::protocol::request::parse_command;
    use tokio::io::{duplex, DuplexStream};

    fn cmd(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect()
    }

    fn request(cmds: &[Vec<Bytes>]) -> BytesMut {
        let mut out = BytesMut::new();
        for c in cmds {
            encode_command(&mut out, c);
        }
        out
    }

    /// Reads `count` commands off the fake active's side of the pipe.
    async fn read_commands(side: &mut DuplexStream, buf: &mut BytesMut, count: usize) -> Vec<Vec<Bytes>> {
        let mut got = Vec::new();
        while got.len() < count {
            while let Some(args) = parse_command(buf, &ParseLimits::default()).expect("a valid command") {
                got.push(args);
            }
            if got.len() < count {
                assert!(side.read_buf(buf).await.expect("read") > 0, "forwarder closed early");
            }
        }
        got
    }

    fn upstream(stream: DuplexStream) -> Upstream<DuplexStream> {
        let (reader, writer) = tokio::io::split(stream);
        Upstream { reader, writer, buf: BytesMut::new(), active: "server2".into(), resp3: false }
    }

    const IDLE: Option<Duration> = Some(Duration::from_secs(10));

    #[tokio::test]
    async fn replies_are_relayed_byte_for_byte_and_pushes_skipped() {
        let (near, mut far) = duplex(1 << 16);
        let mut up = upstream(near);
        let cmds = [cmd(&["GET", "k"]), cmd(&["HGETALL", "h"]), cmd(&["LRANGE", "l", "0", "-1"]), cmd(&["ZSCORE", "z", "m"])];
        let replies: &[&[u8]] = &[b"$5\r\nhello\r\n", b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*2\r\n_\r\n#t\r\n", b"*-1\r\n", b",3.5\r\n"];
        let active = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let got = read_commands(&mut far, &mut buf, 4).await;
            for (i, reply) in replies.iter().enumerate() {
                if i == 2 {
                    far.write_all(b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n").await.unwrap();
                }
                far.write_all(reply).await.unwrap();
            }
            got
        });
        let mut out = BytesMut::from(&b"+earlier\r\n"[..]);
        let mut relayed = 0;
        up.exchange(&request(&cmds), 0, 4, &mut out, &mut relayed, IDLE, &relay_limits(0)).await.expect("exchange");
        assert_eq!(relayed, 4);
        assert_eq!(&out[..], &[&b"+earlier\r\n"[..], &replies.concat()].concat()[..]);
        assert_eq!(active.await.unwrap(), cmds.to_vec());
    }

    #[tokio::test]
    async fn a_reply_trickling_in_byte_by_byte_is_relayed_whole() {
        let (near, mut far) = duplex(1 << 16);
        let mut up = upstream(near);
        let reply: &[u8] = b"*3\r\n$3\r\nfoo\r\n*1\r\n:42\r\n=7\r\ntxt:abc\r\n";
        let active = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            read_commands(&mut far, &mut buf, 1).await;
            for byte in reply {
                far.write_all(&[*byte]).await.unwrap();
                far.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            far
        });
        let mut out = BytesMut::new();
        let mut relayed = 0;
        up.exchange(&request(&[cmd(&["X"])]), 0, 1, &mut out, &mut relayed, IDLE, &relay_limits(0)).await.expect("exchange");
        assert_eq!(&out[..], reply);
        drop(active.await.unwrap());
    }

    #[tokio::test]
    async fn a_long_pipeline_through_a_narrow_pipe_does_not_deadlock() {
        // The fake active answers each command as it reads it, through a pipe far
        // smaller than the request: writing all before reading would hang.
        let (near, mut far) = duplex(256);
        let mut up = upstream(near);
        let cmds: Vec<Vec<Bytes>> = (0..2000).map(|i| cmd(&["SET", &format!("key:{i}"), "some value"])).collect();
        let active = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let mut seen = 0;
            while seen < 2000 {
                let got = read_commands(&mut far, &mut buf, 1).await;
                for _ in &got {
                    far.write_all(b"+OK\r\n").await.unwrap();
                }
                seen += got.len();
            }
            seen
        });
        let mut out = BytesMut::new();
        let mut relayed = 0;
        up.exchange(&request(&cmds), 0, cmds.len(), &mut out, &mut relayed, IDLE, &relay_limits(0)).await.expect("exchange");
        assert_eq!(relayed, 2000);
        assert_eq!(out.len(), 2000 * 5);
        assert_eq!(active.await.unwrap(), 2000);
    }

    #[tokio::test]
    async fn a_close_mid_reply_relays_only_whole_replies() {
        let (near, mut far) = duplex(1 << 16);
        let mut up = upstream(near);
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            read_commands(&mut far, &mut buf, 3).await;
            far.write_all(b":1\r\n$10\r\nhal").await.unwrap();
        });
        let mut out = BytesMut::new();
        let mut relayed = 0;
        let cmds = [cmd(&["INCR", "a"]), cmd(&["GET", "b"]), cmd(&["GET", "c"])];
        let outcome = up.exchange(&request(&cmds), 0, 3, &mut out, &mut relayed, IDLE, &relay_limits(0)).await;
        assert!(matches!(outcome, Err(UpstreamError::Closed)), "{outcome:?}");
        assert_eq!(relayed, 1);
        assert_eq!(&out[..], b":1\r\n");
    }

    #[tokio::test]
    async fn a_silent_active_times_out() {
        let (near, _far) = duplex(1 << 16);
        let mut up = upstream(near);
        let mut out = BytesMut::new();
        let mut relayed = 0;
        let idle = Some(Duration::from_millis(30));
        let outcome = up.exchange(&request(&[cmd(&["GET", "k"])]), 0, 1, &mut out, &mut relayed, idle, &relay_limits(0)).await;
        assert!(matches!(outcome, Err(UpstreamError::Timeout(_))), "{outcome:?}");
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn malformed_or_oversized_replies_are_refused() {
        for (reply, what) in [(&b"?x\r\n"[..], "unknown type"), (&b"$99999999999\r\n"[..], "bulk over the limit")] {
            let (near, mut far) = duplex(1 << 16);
            let mut up = upstream(near);
            far.write_all(reply).await.unwrap();
            let mut out = BytesMut::new();
            let mut relayed = 0;
            let outcome = up.exchange(&request(&[cmd(&["GET", "k"])]), 0, 1, &mut out, &mut relayed, IDLE, &relay_limits(0)).await;
            assert!(matches!(outcome, Err(UpstreamError::Protocol(_))), "{what}: {outcome:?}");
            assert!(out.is_empty(), "{what}");
        }
    }

    #[tokio::test]
    async fn skipped_replies_are_consumed_not_relayed() {
        let (near, mut far) = duplex(1 << 16);
        let mut up = upstream(near);
        far.write_all(b"%1\r\n$5\r\nproto\r\n:3\r\n$1\r\nv\r\n").await.unwrap();
        let mut out = BytesMut::new();
        let mut relayed = 0;
        up.exchange(&request(&[cmd(&["HELLO", "3"]), cmd(&["GET", "k"])]), 1, 1, &mut out, &mut relayed, IDLE, &relay_limits(0))
            .await
            .expect("exchange");
        assert_eq!(&out[..], b"$1\r\nv\r\n");
        assert_eq!(relayed, 1);
    }

    #[tokio::test]
    async fn the_handshake_sends_protocol_password_and_name() {
        let (near, mut far) = duplex(1 << 16);
        let active = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let got = read_commands(&mut far, &mut buf, 1).await;
            far.write_all(b"%1\r\n$5\r\nproto\r\n:3\r\n").await.unwrap();
            (got, far)
        });
        let hello = Hello { resp3: true, password: Some("s3cret"), from: "server 1" };
        let up = Upstream::handshake(near, "server2".into(), &hello, Duration::from_secs(10)).await.expect("handshake");
        assert!(up.resp3);
        let (got, _far) = active.await.unwrap();
        assert_eq!(got, vec![cmd(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "tandem-forward:server_1"])]);

        let (near, mut far) = duplex(1 << 16);
        far.write_all(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n").await.unwrap();
        let hello = Hello { resp3: false, password: Some("wrong"), from: "server1" };
        match Upstream::handshake(near, "server2".into(), &hello, Duration::from_secs(10)).await {
            Err(UpstreamError::Refused(text)) => assert!(text.starts_with("WRONGPASS"), "{text}"),
            other => panic!("expected a refusal, got {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn an_upstream_closed_while_idle_is_not_alive() {
        let (near, far) = duplex(1 << 16);
        let mut up = upstream(near);
        assert!(up.alive());
        drop(far);
        assert!(!up.alive());
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
        f.settle_run(&["multi".into()], 1, false);
        assert_eq!(f.multi, RemoteMulti::Open);
        f.queue("set");
        f.rollback();
        f.settle_run(&["set".into()], 0, true);
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
        f.settle_run(&["multi".into(), "set".into(), "exec".into(), "multi".into()], 0, true);
        assert_eq!(f.multi, RemoteMulti::None, "the client got errors for every command: no transaction is open");
        assert!(!f.has_upstream());
    }

    #[test]
    fn a_lost_watch_makes_the_next_exec_nil() {
        let mut f = Forwarding::default();
        f.queue("watch");
        f.rollback();
        f.settle_run(&["watch".into()], 1, false);
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
        f.settle_run(&["unwatch".into()], 1, false);
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

    #[test]
    fn commands_are_encoded_as_resp_arrays() {
        let mut out = BytesMut::new();
        encode_command(&mut out, &cmd(&["SET", "k", ""]));
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
