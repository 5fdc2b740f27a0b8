//! Upstreams: a client's connections to other servers' client ports, one per stripe
//! whose active serves some of its commands (a mirror's own active, or another
//! stripe's). Each is opened lazily for that client, shakes hands once (protocol,
//! password, a client name saying who forwards), and relays replies byte for byte.
//!
//! It keeps the client's order across failures: an upstream whose replies stopped
//! coming is kept, not closed, and owes those replies; the next commands go over the
//! same connection after them, so the active runs them in the order the client sent
//! them (see `Upstream::owed`). One to a server that is no longer the active is
//! parked while it owes replies, and used again should that server be the active
//! again. It knows nothing of routing or Raft.

use std::collections::HashMap;
use std::time::Duration;

use crate::replication::group_tls::{GroupStream, GroupTls};
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;

use crate::limits;
use crate::protocol::frame::{parse_frame, FrameError};
pub use crate::protocol::request::encode_command;
use crate::protocol::request::ParseLimits;
use crate::server::request::ONCE_COMMAND;
use crate::store::once::Tag;

/// The client name a forwarding connection gives itself on the active, followed by
/// the forwarding server's name: it shows in CLIENT LIST, and a server that is not
/// the active refuses to forward such a connection's commands once more (two mirrors
/// with stale views must not bounce a request between them).
pub const FORWARD_NAME_PREFIX: &str = "tandem-forward:";

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

/// Limits for replies relayed from the active (see the constants for why).
pub fn relay_limits(bulk_bytes_max: usize) -> ParseLimits {
    ParseLimits { bulk_bytes_max: bulk_bytes_max.max(limits::STRING_BYTES_MAX), args_max: RELAYED_COUNT_MAX }
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
    /// The server answered that it is not the active (any more) and applied nothing:
    /// the command and those after it go to the new active.
    #[error("the server is not the active any more")]
    Bounced,
    #[error("the client went away")]
    ClientGone,
}

/// One connection to the active's client port, on behalf of one client.
pub struct Upstream<S = GroupStream> {
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
    /// Reply bytes read and not yet relayed.
    buf: BytesMut,
    /// The active this connects to, by server name.
    pub active: String,
    /// The protocol the active speaks on this connection.
    pub resp3: bool,
    /// Which connection this is among the client's upstreams (a WATCH held on it
    /// is lost with it).
    pub generation: u64,
    /// Keys watched through this upstream are to be forgotten there: UNWATCH goes
    /// ahead of the next command sent.
    pub unwatch_pending: bool,
    /// Replies the active still owes for commands sent over this connection whose
    /// replies nobody waits for any more (the client was told their outcome is
    /// unknown). They arrive before the replies to anything sent later, and are
    /// dropped then: commands sent over one connection run on the active in order.
    owed: usize,
    /// A request was cut off mid-write: the active holds a partial command, so
    /// nothing more may be sent over this connection.
    torn: bool,
    /// A run over this connection failed: a MULTI or WATCH it opened on the active
    /// may still be open there, to be discarded before anything else is sent.
    pub dirty: bool,
    /// Bytes were written since the last flush. Over TLS a write may leave the end of
    /// a request in the session's buffer, which only a flush sends; over TCP a flush
    /// costs nothing.
    unflushed: bool,
}

impl Upstream<GroupStream> {
    /// Connects to the active whose client address is `addr` (over TLS to its
    /// tls-port when group ports use TLS: [`GroupTls::connect_to_server`]) and shakes
    /// hands (see [`Upstream::handshake`]).
    pub async fn open(addr: &str, active: String, hello: &Hello<'_>, within: Duration) -> Result<Upstream, UpstreamError> {
        let stream = match GroupTls::connect_to_server(addr, within).await {
            Ok(stream) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(UpstreamError::Timeout(within)),
            Err(e) => return Err(e.into()),
        };
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
    fn new(stream: S, active: String, resp3: bool) -> Upstream<S> {
        let (reader, writer) = tokio::io::split(stream);
        Upstream {
            reader,
            writer,
            buf: BytesMut::new(),
            active,
            resp3,
            generation: 0,
            unwatch_pending: false,
            owed: 0,
            torn: false,
            dirty: false,
            unflushed: false,
        }
    }

    /// Sends `HELLO <2|3> [AUTH default <password>] SETNAME tandem-forward:<from>`
    /// and checks the answer: one round trip, protocol and authentication together.
    pub async fn handshake(stream: S, active: String, hello: &Hello<'_>, within: Duration) -> Result<Upstream<S>, UpstreamError> {
        let mut upstream = Upstream::new(stream, active, hello.resp3);
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

    /// Replies owed for commands sent earlier (see the field).
    pub fn owed(&self) -> usize {
        self.owed
    }

    /// True when nothing more may be sent over this connection (see the field).
    pub fn torn(&self) -> bool {
        self.torn
    }

    /// Sends `request` (encoded commands), reads the replies owed from earlier runs
    /// and `skip + replies` more, and appends the last `replies` of them to `out`
    /// unchanged, counting them in `relayed` as they complete (so a caller that drops
    /// this future knows how many the client got, and the upstream how many it is
    /// still owed). Writing and reading interleave, so a long pipeline cannot
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
        debug_assert!(!self.torn, "nothing is sent after a torn request");
        let mut unrelayed = self.owed + skip;
        self.owed += skip + replies;
        self.torn = !request.is_empty();
        let mut written = 0;
        loop {
            while self.owed > 0 {
                let Some((_, len)) = parse_frame(&self.buf, limits)? else { break };
                let push = self.buf.first() == Some(&b'>');
                let bytes = self.buf.split_to(len);
                if push {
                    continue;
                }
                self.owed -= 1;
                if unrelayed > 0 {
                    unrelayed -= 1;
                } else if super::errors::is_bounce(&bytes) {
                    return Err(UpstreamError::Bounced);
                } else {
                    out.extend_from_slice(&bytes);
                    *relayed += 1;
                }
            }
            let rest = request.get(written..).unwrap_or_default();
            if rest.is_empty() {
                self.torn = false;
                if self.owed == 0 {
                    // Nothing to read back: the flush alone cannot wait on the active.
                    if std::mem::take(&mut self.unflushed) {
                        self.writer.flush().await?;
                    }
                    return Ok(());
                }
            }
            self.read_or_write(rest, &mut written, idle).await?;
        }
    }

    /// Waits (at most `idle` of silence) for the next bytes from the active, writing
    /// what is left of the request meanwhile.
    async fn read_or_write(&mut self, rest: &[u8], written: &mut usize, idle: Option<Duration>) -> Result<(), UpstreamError> {
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
        // What goes out meanwhile: the rest of the request, then (over TLS) a flush of
        // what the session still holds; raced with the read, since the active may be
        // sending replies to earlier commands all the while.
        let writer = &mut self.writer;
        let unflushed = self.unflushed;
        let send = async move {
            if !rest.is_empty() {
                writer.write(rest).await.map(Some)
            } else if unflushed {
                writer.flush().await.map(|()| None)
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            sent = send => match sent? {
                Some(0) => Err(UpstreamError::Closed),
                Some(n) => {
                    *written += n;
                    self.unflushed = true;
                    Ok(())
                }
                None => {
                    self.unflushed = false;
                    Ok(())
                }
            },
            n = self.reader.read_buf(&mut self.buf) => match n? {
                0 => Err(UpstreamError::Closed),
                _ => Ok(()),
            },
            _ = silence => Err(UpstreamError::Timeout(idle.unwrap_or_default())),
        }
    }

    /// Ends a connection that can carry nothing more (torn) but whose commands the
    /// active may still be running: closes the sending side, so the active ends the
    /// connection once it has run what it received, and waits for that end (true),
    /// or for `within` of silence (false: the active may still run them).
    pub async fn close_and_wait(&mut self, within: Duration) -> bool {
        let _ = self.writer.shutdown().await;
        loop {
            self.buf.clear();
            self.buf.reserve(RELAY_READ_BYTES);
            match tokio::time::timeout(within, self.reader.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
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

/// A client's upstreams, by stripe (its position in the cluster view).
#[derive(Default)]
pub struct Upstreams {
    by_stripe: HashMap<usize, Upstream>,
    /// Per stripe, an upstream to a server that stopped being the active while it
    /// still owed replies (or was torn): that server may still run what it received,
    /// so should it be the active again, the client's next commands go over this
    /// connection, after those (see the module doc).
    parked: HashMap<usize, Upstream>,
    /// Generations handed out: every upstream opened gets a new one.
    opened: u64,
    /// This client's writes as the stripes record them (`store::once`): a random
    /// origin drawn on first use, the last sequence given, and per stripe the
    /// sequence up to which every reply has come back.
    origin: u64,
    last_seq: u64,
    acked: HashMap<usize, u64>,
}

impl Upstreams {
    /// A new tag for a write this client forwards (`store::once`); the active fills
    /// in the window, the acknowledged sequence is added when it is sent.
    pub fn next_tag(&mut self) -> Tag {
        while self.origin == 0 {
            // Random, so that no two clients of any server, before or after a
            // restart, ever share an origin.
            self.origin = rand::random();
        }
        self.last_seq += 1;
        Tag { origin: self.origin, seq: self.last_seq, acked: 0, window_ms: 0 }
    }

    /// Every reply up to `seq` from `stripe` has come back.
    pub fn acknowledge(&mut self, stripe: usize, seq: u64) {
        let acked = self.acked.entry(stripe).or_default();
        *acked = (*acked).max(seq);
    }

    /// `TANDEM.ONCE <origin> <seq> <acked> <args…>` for a write to `stripe`.
    pub fn wrap(&self, stripe: usize, tag: &Tag, args: &[Bytes]) -> Vec<Bytes> {
        let acked = self.acked.get(&stripe).copied().unwrap_or(0);
        let mut wrapped = Vec::with_capacity(args.len() + 4);
        wrapped.push(Bytes::from_static(ONCE_COMMAND.as_bytes()));
        wrapped.push(Bytes::from(tag.origin.to_string()));
        wrapped.push(Bytes::from(tag.seq.to_string()));
        wrapped.push(Bytes::from(acked.to_string()));
        wrapped.extend(args.iter().cloned());
        wrapped
    }

    pub fn get_mut(&mut self, stripe: usize) -> Option<&mut Upstream> {
        self.by_stripe.get_mut(&stripe)
    }

    /// Keeps `upstream` as the one to `stripe`, replacing any other.
    pub fn insert(&mut self, stripe: usize, mut upstream: Upstream) -> u64 {
        self.opened += 1;
        upstream.generation = self.opened;
        self.by_stripe.insert(stripe, upstream);
        self.opened
    }

    /// Stops using the upstream to `stripe`: what it held (a WATCH) is lost with it.
    /// One that still owes replies is parked, not closed (see the module doc).
    pub fn drop_stripe(&mut self, stripe: usize) {
        // Asked for every request served locally: an empty map is not hashed into.
        if self.by_stripe.is_empty() {
            return;
        }
        if let Some(mut upstream) = self.by_stripe.remove(&stripe) {
            if upstream.owed() > 0 || upstream.torn() {
                upstream.dirty = true;
                self.parked.insert(stripe, upstream);
            }
        }
    }

    /// Closes the upstream to `stripe`: it is gone or unusable, and the active runs
    /// nothing more of it.
    pub fn close_stripe(&mut self, stripe: usize) {
        self.by_stripe.remove(&stripe);
    }

    /// The replies of a run over the upstream to `stripe` stopped coming (silence,
    /// another active, the client left): the connection is kept, owing them, and
    /// what it held for the client (a WATCH, a MULTI) counts as lost — it gets a new
    /// generation, and what may still be open on the active is discarded first.
    pub fn failed_silently(&mut self, stripe: usize) {
        if let Some(upstream) = self.by_stripe.get_mut(&stripe) {
            upstream.dirty = true;
            upstream.unwatch_pending = false;
            self.opened += 1;
            upstream.generation = self.opened;
        }
    }

    /// Brings back the upstream parked for `stripe` if it connects to `active` (that
    /// server is the active again), in place of any current one.
    pub fn unpark(&mut self, stripe: usize, active: &str) {
        if self.parked.get(&stripe).is_some_and(|u| u.active == active) {
            if let Some(upstream) = self.parked.remove(&stripe) {
                self.insert(stripe, upstream);
            }
        }
    }

    pub fn clear(&mut self) {
        self.by_stripe.clear();
        self.parked.clear();
    }

    /// The generation of the upstream to `stripe`, if one is open.
    pub fn generation(&self, stripe: usize) -> Option<u64> {
        self.by_stripe.get(&stripe).map(|u| u.generation)
    }

    pub fn is_empty(&self) -> bool {
        self.by_stripe.is_empty()
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
        Upstream::new(stream, "server2".into(), false)
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

    /// A stream that, like a TLS session, keeps what is written until flushed.
    struct HoldsUntilFlushed {
        inner: DuplexStream,
        held: Vec<u8>,
    }

    impl AsyncRead for HoldsUntilFlushed {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for HoldsUntilFlushed {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.held.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
            while !self.held.is_empty() {
                let this = &mut *self;
                match std::pin::Pin::new(&mut this.inner).poll_write(cx, &this.held) {
                    std::task::Poll::Ready(Ok(n)) => drop(this.held.drain(..n)),
                    other => return other.map(|r| r.map(|_| ())),
                }
            }
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn a_request_a_session_holds_until_flushed_reaches_the_active() {
        let (near, mut far) = duplex(1 << 16);
        let mut up = Upstream::new(HoldsUntilFlushed { inner: near, held: Vec::new() }, "server2".into(), false);
        let active = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let got = read_commands(&mut far, &mut buf, 1).await;
            far.write_all(b"+OK\r\n").await.unwrap();
            got
        });
        let (mut out, mut relayed) = (BytesMut::new(), 0);
        let set = [cmd(&["SET", "k", "v"])];
        up.exchange(&request(&set), 0, 1, &mut out, &mut relayed, IDLE, &relay_limits(0)).await.expect("the request went out");
        assert_eq!(&out[..], b"+OK\r\n");
        assert_eq!(active.await.unwrap(), set.to_vec());
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

    #[tokio::test]
    async fn replies_owed_by_a_timed_out_run_are_dropped_before_the_next_runs() {
        let (near, mut far) = duplex(1 << 16);
        let mut up = upstream(near);
        let mut out = BytesMut::new();
        let mut relayed = 0;
        let old = [cmd(&["INCR", "k"]), cmd(&["INCR", "k"])];
        let silent = Some(Duration::from_millis(30));
        let outcome = up.exchange(&request(&old), 0, 2, &mut out, &mut relayed, silent, &relay_limits(0)).await;
        assert!(matches!(outcome, Err(UpstreamError::Timeout(_))), "{outcome:?}");
        assert_eq!((up.owed(), up.torn()), (2, false), "both replies are owed; the request went out whole");
        let active = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let got = read_commands(&mut far, &mut buf, 3).await;
            far.write_all(b":1\r\n:2\r\n+OK\r\n").await.unwrap();
            (got, far)
        });
        let new = [cmd(&["SET", "k", "100"])];
        up.exchange(&request(&new), 0, 1, &mut out, &mut relayed, IDLE, &relay_limits(0)).await.expect("exchange");
        assert_eq!(&out[..], b"+OK\r\n", "only the new command's reply is relayed");
        assert_eq!(up.owed(), 0);
        let (got, _far) = active.await.unwrap();
        assert_eq!(got, [&old[..], &new[..]].concat(), "the new command went after the old ones, on the same connection");
    }

    #[tokio::test]
    async fn a_request_cut_off_mid_write_tears_the_upstream() {
        let (near, _far) = duplex(64);
        let mut up = upstream(near);
        let mut out = BytesMut::new();
        let mut relayed = 0;
        let big = [cmd(&["SET", "k", &"v".repeat(4096)])];
        let outcome = up.exchange(&request(&big), 0, 1, &mut out, &mut relayed, Some(Duration::from_millis(30)), &relay_limits(0)).await;
        assert!(matches!(outcome, Err(UpstreamError::Timeout(_))), "{outcome:?}");
        assert!(up.torn(), "the active holds a partial command: nothing more may follow it");
    }

    #[tokio::test]
    async fn closing_a_torn_upstream_waits_for_the_active_to_end_it() {
        let (near, mut far) = duplex(1 << 16);
        let mut up = upstream(near);
        let active = tokio::spawn(async move {
            // The active runs what it received, answers, then sees the end and closes.
            let mut buf = BytesMut::new();
            while far.read_buf(&mut buf).await.expect("read") > 0 {}
            far.write_all(b"+OK\r\n").await.unwrap();
        });
        assert!(up.close_and_wait(Duration::from_secs(10)).await);
        active.await.unwrap();
        let (near, _far) = duplex(1 << 16);
        let mut silent = upstream(near);
        assert!(!silent.close_and_wait(Duration::from_millis(30)).await, "an active that never ends it");
    }

    /// An upstream over a real socket (what `Upstreams` holds), and the fake
    /// active's end of it.
    async fn tcp_upstream(active: &str) -> (Upstream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (Upstream::new(GroupStream::Plain(near), active.into(), false), far)
    }

    #[tokio::test]
    async fn an_upstream_owing_replies_is_parked_and_comes_back_only_to_its_active() {
        let mut ups = Upstreams::default();
        let (mut owing, _far) = tcp_upstream("server2").await;
        let mut out = BytesMut::new();
        let mut relayed = 0;
        let silent = Some(Duration::from_millis(30));
        let outcome = owing.exchange(&request(&[cmd(&["INCR", "k"])]), 0, 1, &mut out, &mut relayed, silent, &relay_limits(0)).await;
        assert!(matches!(outcome, Err(UpstreamError::Timeout(_))), "{outcome:?}");
        ups.insert(0, owing);
        // server2 lost the role: the upstream still owes INCR's reply, so it is kept.
        ups.drop_stripe(0);
        assert_eq!(ups.generation(0), None);
        ups.unpark(0, "server3");
        assert_eq!(ups.generation(0), None, "a parked upstream never carries commands to another active");
        ups.unpark(0, "server2");
        let back = ups.get_mut(0).expect("server2 is the active again: its upstream comes back");
        assert_eq!(back.owed(), 1);
        assert!(back.dirty, "what it held is discarded on the active before anything else");
        // One that owes nothing is simply closed.
        let (idle, _far) = tcp_upstream("server2").await;
        ups.insert(1, idle);
        ups.drop_stripe(1);
        ups.unpark(1, "server2");
        assert_eq!(ups.generation(1), None);
    }

    #[tokio::test]
    async fn a_silent_failure_keeps_the_upstream_but_not_what_it_held() {
        let mut ups = Upstreams::default();
        let (up, _far) = tcp_upstream("server2").await;
        let generation = ups.insert(0, up);
        ups.get_mut(0).unwrap().unwatch_pending = true;
        ups.failed_silently(0);
        let kept = ups.get_mut(0).expect("kept, to carry the client's next commands after those in flight");
        assert!(kept.dirty);
        assert_ne!(kept.generation, generation, "a WATCH held on it (by generation) counts as lost");
        ups.close_stripe(0);
        assert_eq!(ups.generation(0), None);
    }

    #[test]
    fn commands_are_encoded_as_resp_arrays() {
        let mut out = BytesMut::new();
        encode_command(&mut out, &cmd(&["SET", "k", ""]));
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
