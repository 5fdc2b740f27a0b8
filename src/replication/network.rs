//! openraft's network over the group port: one connection per peer, opened on
//! demand with the secret handshake, every RPC bounded by openraft's time limit.
//! A peer that cannot be reached is `Unreachable` (openraft backs off); a
//! connection that breaks mid-RPC is dropped and reopened by the next RPC.

use std::future::Future;
use std::time::Duration;

use super::group_tls::GroupStream;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkFactory, RaftNetworkV2};

use super::state_machine::SnapshotData;
use super::transport::{self, Identity};
use super::types::TypeConfig;
use super::wire::{self, Request, Response};

/// An append is cut after this many bytes of entries (at least one entry is always
/// sent); the follower then reports how far it got and the rest follows.
const APPEND_BYTES_SOFT: usize = 8 * 1024 * 1024;
/// The slowest link an append is expected to cross: its time limit grows by the
/// time its bytes take at this rate, so one large entry is never cut off forever.
const LINK_BYTES_PER_SEC_MIN: u64 = 10 * 1024 * 1024;
/// Snapshots travel in pieces of this size.
const SNAPSHOT_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Each snapshot piece must reach the peer within this time.
const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection attempt gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Creates a [`Peer`] for each member openraft replicates to.
pub struct GroupNetwork {
    pub identity: Identity,
    /// Outgoing connections start from this host, so peers see which member calls.
    pub local_host: String,
}

pub struct Peer {
    target: u64,
    addr: String,
    identity: Identity,
    local_host: String,
    conn: Option<GroupStream>,
    /// A call is under way on `conn`. openraft times an RPC out by dropping its
    /// future, which can leave the request sent and its answer unread: if the next
    /// call found this still set, the connection would hand it the dropped call's
    /// answer (a heartbeat "acknowledged" by a member that had since moved to a new
    /// term, extending a deposed active's lease). Such a connection is never reused.
    in_flight: bool,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            identity: self.identity.clone(),
            local_host: self.local_host.clone(),
            conn: None,
            in_flight: false,
        }
    }
}

enum CallError {
    /// No connection could be made: openraft should back off.
    Unreachable(String),
    /// The connection broke or the peer answered nonsense.
    Network(String),
}

impl CallError {
    fn rpc(self) -> RPCError<TypeConfig> {
        match self {
            CallError::Unreachable(why) => RPCError::Unreachable(Unreachable::from_string(why)),
            CallError::Network(why) => RPCError::Network(NetworkError::from_string(why)),
        }
    }

    fn streaming(self) -> StreamingError<TypeConfig> {
        match self {
            CallError::Unreachable(why) => StreamingError::Unreachable(Unreachable::from_string(why)),
            CallError::Network(why) => StreamingError::Network(NetworkError::from_string(why)),
        }
    }
}

impl Peer {
    /// The connection for a new call: a fresh one when the last call on it never
    /// finished (see `in_flight`).
    async fn connection(&mut self) -> Result<&mut GroupStream, CallError> {
        if std::mem::take(&mut self.in_flight) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let stream = transport::connect(&self.addr, Some(&self.local_host), &self.identity, self.target, CONNECT_TIMEOUT)
                .await
                .map_err(|e| CallError::Unreachable(format!("member {} at {}: {e}", self.target, self.addr)))?;
            self.conn = Some(stream);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    async fn call(&mut self, body: &[u8], timeout: Duration) -> Result<Response, CallError> {
        let addr = self.addr.clone();
        self.connection().await?;
        self.in_flight = true;
        let Some(stream) = self.conn.as_mut() else { return Err(CallError::Network(format!("{addr}: no connection"))) };
        let answered = transport::call(stream, body, timeout).await;
        self.in_flight = false;
        let answer = match answered {
            Ok(answer) => answer,
            Err(e) => {
                self.conn = None;
                return Err(CallError::Network(format!("{addr}: {e}")));
            }
        };
        match Response::decode(&answer) {
            Ok(Response::Error(why)) => Err(CallError::Network(format!("{addr} answered: {why}"))),
            Ok(response) => Ok(response),
            Err(e) => {
                self.conn = None;
                Err(CallError::Network(format!("{addr} sent an unreadable answer: {e}")))
            }
        }
    }

    fn unexpected(&self, what: &str) -> CallError {
        CallError::Network(format!("{} answered a {what} with something else", self.addr))
    }

    async fn send_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
    ) -> Result<Response, CallError> {
        let (file, bytes, len) = match &snapshot.snapshot {
            SnapshotData::File(path) => {
                // Opened now: a newer snapshot replacing this file meanwhile does not
                // take it away from the send.
                let named = |e: std::io::Error| CallError::Network(format!("{}: {e}", path.display()));
                let file = std::fs::File::open(path).map_err(named)?;
                let len = file.metadata().map_err(named)?.len();
                (Some((file, path.clone())), bytes::Bytes::new(), len)
            }
            SnapshotData::Memory(b) => (None, b.clone(), b.len() as u64),
            SnapshotData::Live => {
                return Err(CallError::Network(
                    "this member holds no data to send (a voter's log tail, or a lone server's live snapshot); the member must catch up from the active".into(),
                ))
            }
        };
        // A file's pieces are read on a thread of their own, a few ahead of the
        // network; a snapshot in memory is sent from where it is.
        let mut pieces = match file {
            Some((file, path)) => read_pieces(file, path, len),
            None => {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let _ = tx.try_send(Ok(bytes));
                rx
            }
        };
        let begin = Request::SnapshotBegin { vote, meta: snapshot.meta.clone(), bytes: len }.encode();
        let addr = self.addr.clone();
        self.connection().await?;
        self.in_flight = true;
        let Some(stream) = self.conn.as_mut() else { return Err(CallError::Network(format!("{addr}: no connection"))) };
        let started = std::time::Instant::now();
        let result: std::io::Result<Vec<u8>> = async {
            use bytes::Buf;
            use tokio::io::AsyncWriteExt;
            tokio::time::timeout(SNAPSHOT_CHUNK_TIMEOUT, transport::write_frame(stream, &begin)).await.map_err(timed_out)??;
            let mut sent = 0u64;
            while let Some(piece) = pieces.recv().await {
                let mut piece = piece?;
                while !piece.is_empty() {
                    let body = piece.split_to(piece.len().min(SNAPSHOT_CHUNK_BYTES));
                    if sent + body.len() as u64 > len {
                        return Err(std::io::Error::other("the snapshot grew while it was sent"));
                    }
                    let mut header = [0u8; 5];
                    header[..4].copy_from_slice(&(1 + body.len() as u32).to_be_bytes());
                    header[4] = wire::CHUNK;
                    let frame_len = 5 + body.len();
                    let mut frame = Buf::chain(&header[..], body);
                    tokio::time::timeout(SNAPSHOT_CHUNK_TIMEOUT, stream.write_all_buf(&mut frame)).await.map_err(timed_out)??;
                    crate::management::metrics::global().record_group_frame("out", frame_len);
                    sent += (frame_len - 5) as u64;
                }
            }
            if sent != len {
                return Err(std::io::Error::other(format!("the snapshot has {sent} bytes to send, {len} were announced")));
            }
            transport::call(stream, &[wire::SNAPSHOT_END], SNAPSHOT_CHUNK_TIMEOUT * 4).await
        }
        .await;
        self.in_flight = false;
        match result {
            Ok(answer) => match Response::decode(&answer) {
                Ok(Response::Error(why)) => Err(CallError::Network(format!("{addr} refused the snapshot: {why}"))),
                Ok(r) => {
                    crate::management::metrics::global().record_snapshot("sent", len, started.elapsed());
                    Ok(r)
                }
                Err(e) => Err(CallError::Network(format!("{addr}: {e}"))),
            },
            Err(e) => {
                self.conn = None;
                Err(CallError::Network(format!("sending a snapshot to {addr}: {e}")))
            }
        }
    }
}

/// Reads the snapshot `file` (`len` bytes, named `path` in errors) in pieces on a
/// thread of its own, at most two pieces ahead of their sending; a read error ends
/// the pieces.
fn read_pieces(mut file: std::fs::File, path: std::path::PathBuf, len: u64) -> tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut left = len;
        while left > 0 {
            let mut piece = vec![0u8; SNAPSHOT_CHUNK_BYTES.min(left as usize)];
            if let Err(e) = file.read_exact(&mut piece) {
                let _ = tx.blocking_send(Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))));
                return;
            }
            left -= piece.len() as u64;
            // The receiver gone: the send was given up.
            if tx.blocking_send(Ok(piece.into())).is_err() {
                return;
            }
        }
    });
    rx
}

fn timed_out(_: tokio::time::error::Elapsed) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer stopped reading")
}

/// How many of `req`'s entries fit in one append frame (at least one).
fn entries_that_fit(req: &AppendEntriesRequest<TypeConfig>) -> usize {
    let mut bytes = 0usize;
    for (i, entry) in req.entries.iter().enumerate() {
        bytes += entry_size_hint(entry);
        if i > 0 && bytes > APPEND_BYTES_SOFT {
            return i;
        }
    }
    req.entries.len()
}

fn entry_size_hint(entry: &super::types::RaftEntry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(e) => 64 + e.ops_bytes(4, 0),
        _ => 256,
    }
}

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let count = entries_that_fit(&rpc);
        let body = wire::encode_append(&rpc, count);
        let transfer = Duration::from_millis(body.len() as u64 * 1000 / LINK_BYTES_PER_SEC_MIN);
        match self.call(&body, option.hard_ttl().max(Duration::from_millis(500)) + transfer).await.map_err(CallError::rpc)? {
            Response::AppendEntries(AppendEntriesResponse::Success) if count < rpc.entries.len() => {
                Ok(AppendEntriesResponse::PartialSuccess(wire::last_sent(&rpc, count)))
            }
            Response::AppendEntries(r) => Ok(r),
            _ => Err(self.unexpected("append").rpc()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<TypeConfig>, option: RPCOption) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&Request::Vote(rpc).encode(), option.hard_ttl()).await.map_err(CallError::rpc)? {
            Response::Vote(r) => Ok(r),
            _ => Err(self.unexpected("vote").rpc()),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&Request::PreVote(rpc).encode(), option.hard_ttl()).await.map_err(CallError::rpc)? {
            Response::Vote(r) => Ok(r),
            _ => Err(self.unexpected("pre-vote").rpc()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let outcome = {
            let send = self.send_snapshot(vote, snapshot);
            tokio::select! {
                closed = cancel => Err(closed),
                r = send => Ok(r),
            }
        };
        let response = match outcome {
            Err(closed) => {
                self.conn = None;
                return Err(StreamingError::Closed(closed));
            }
            Ok(r) => r.map_err(CallError::streaming)?,
        };
        match response {
            Response::Snapshot(r) => Ok(r),
            _ => Err(self.unexpected("snapshot").streaming()),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&Request::TransferLeader(req).encode(), option.hard_ttl().max(Duration::from_secs(1)))
            .await
            .map_err(CallError::rpc)?
        {
            Response::TransferLeader(Ok(())) => Ok(Ok(())),
            Response::TransferLeader(Err(why)) => {
                Err(RPCError::Network(NetworkError::from_string(format!("{} refused: {why}", self.addr))))
            }
            _ => Err(self.unexpected("leadership transfer").rpc()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity { cluster: "c".into(), stripe: "A".into(), name: "n".into(), secret: b"s".to_vec(), tls: None }
    }

    /// A member that answers the n-th request with `Done { message: n }`, the first
    /// one only after `hold` (long enough for its caller to give up).
    async fn numbering_member(hold: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let mut n = 0u32;
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                if transport::accept_handshake(&mut socket, &identity(), 7).await.is_err() {
                    continue;
                }
                while let Ok(Some(_)) = transport::read_frame(&mut socket, 1 << 20).await {
                    n += 1;
                    if n == 1 {
                        tokio::time::sleep(hold).await;
                    }
                    let answer = Response::Done { ok: true, message: n.to_string() }.encode();
                    if transport::write_frame(&mut socket, &answer).await.is_err() {
                        break;
                    }
                }
            }
        });
        addr
    }

    fn answer(response: Result<Response, CallError>) -> String {
        match response {
            Ok(Response::Done { message, .. }) => message,
            Ok(_) => "another response".into(),
            Err(CallError::Network(e) | CallError::Unreachable(e)) => format!("error: {e}"),
        }
    }

    #[tokio::test]
    async fn a_call_dropped_by_its_caller_never_hands_its_answer_to_the_next() {
        let addr = numbering_member(Duration::from_millis(300)).await;
        let mut peer = Peer { target: 7, addr, identity: identity(), local_host: "127.0.0.1".into(), conn: None, in_flight: false };
        let body = Request::Probe.encode();
        // openraft gives up on an RPC by dropping its future, as this timeout does.
        let dropped = tokio::time::timeout(Duration::from_millis(50), peer.call(&body, Duration::from_secs(5))).await;
        assert!(dropped.is_err(), "the first call must still be waiting when dropped");
        // The first answer ("1") arrives on the old connection later; the next call
        // must get its own answer, not that one.
        let second = answer(peer.call(&body, Duration::from_secs(5)).await);
        assert_eq!(second, "2", "the next call got the dropped call's answer");
    }
}
