//! This member's place in its stripe's group: its identity, the group port it
//! serves (Raft RPCs from peers, joins, `tandem status | stop | failover`), and the
//! views of the stripe that `ROLE`, `INFO` and `tandem status` show.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Instant as _};
use tokio::net::{TcpListener, TcpStream};

use super::group_tls::GroupStream;
use tokio::sync::watch;

use super::handshakes::{HandshakeSlots, Slot};
use super::replica::{MemberView, Raft, ReplicationView};
use super::state_machine::SnapshotData;
use super::stripe::{LocalView, Member, ServerState, StripeLayout, STANDBY_LAG_MAX};
use super::transport::{self, Identity, FRAME_BYTES_MAX};
use super::types::TypeConfig;
use super::wire::{self, MemberLag, Request, Response, StatusReport};

/// Removes a temporary file when dropped, unless it was moved away.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A group connection with no traffic for this long is closed (peers reconnect).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// This member of a stripe, as the group port and the server see it.
pub struct Group {
    pub raft: Raft,
    pub layout: StripeLayout,
    pub me: Member,
    pub node_id: u64,
    /// A voter: holds no data, never stays active.
    pub witness: bool,
    pub identity: Identity,
    pub snapshot_dir: Option<PathBuf>,
    /// This member's state machine: a snapshot decoded as it is received is handed to it.
    pub state_machine: super::state_machine::StateMachine,
    /// The active's commit index from its last append (`u64::MAX`: none heard yet).
    pub active_commit: AtomicU64,
    pub receiving_snapshot: AtomicBool,
    /// When the last append from an active arrived (ms since `started`).
    pub last_append_ms: AtomicU64,
    pub started: std::time::Instant,
    /// The term in which this member last saw itself lead, and when it first did.
    pub leading_since: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
    /// Set when the process should stop: `Some(reason)` for an error exit.
    pub stop: watch::Sender<Option<Stop>>,
    /// PUBLISHes made on other servers, for this server's subscribers.
    pub published: tokio::sync::mpsc::UnboundedSender<Published>,
    /// Answers other servers' management queries ([`Request::Management`]); set by the
    /// management module once this server serves clients (a voter has none).
    pub management: std::sync::OnceLock<ManagementHook>,
    /// Delivers another server's PUBLISH to this server's subscribers and counts
    /// them; set by the server once it serves clients (until then, and on a voter,
    /// messages go to `published` uncounted).
    pub publish_hook: std::sync::OnceLock<PublishHook>,
    /// The fingerprint of the array in this member's config (its `Status` says it,
    /// so servers of other stripes can tell a config that differs from theirs).
    pub array_fingerprint: std::sync::OnceLock<String>,
    /// The store's applied index, for a lone in-memory server whose writes skip the
    /// log (`Replica::submit`): the log's indexes stop at its start-up entries, so the
    /// view reports this one.
    pub direct_applied: Option<Arc<AtomicU64>>,
}

/// Delivers a message (channel, message, a shard channel's) to this server's
/// subscribers; how many got it.
pub type PublishHook = Arc<dyn Fn(&[u8], &[u8], bool) -> usize + Send + Sync>;

/// A message another server published: channel, message, and whether the channel is
/// a shard channel (SPUBLISH).
pub type Published = (bytes::Bytes, bytes::Bytes, bool);

/// Answers a management query (the management module's encoding) with its report.
pub type ManagementHook = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// `tandem stop` or `tandem shutdown` asked.
    Requested,
    /// The stripe refused this member; the reason is the process's error.
    Refused(String),
    /// Applying a write failed where no Raft core would stop by itself (a lone
    /// in-memory server's direct path); the reason is the process's error.
    Failed(String),
}

/// The identity a member or the CLI presents for `stripe`.
pub fn identity(layout: &StripeLayout, name: &str) -> Identity {
    Identity {
        cluster: layout.cluster.clone(),
        stripe: layout.stripe.clone(),
        name: name.to_string(),
        secret: layout.secret.clone().unwrap_or_default().into_bytes(),
        tls: super::group_tls::installed(),
    }
}

/// One request to the member at `addr` on a fresh connection.
pub async fn request(me: &Identity, local_host: Option<&str>, addr: &str, req: &Request, timeout: Duration) -> std::io::Result<Response> {
    let mut stream = transport::connect(addr, local_host, me, 0, timeout).await?;
    let answer = transport::call(&mut stream, &req.encode(), timeout).await?;
    Response::decode(&answer).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

impl Group {
    /// A snapshot received from the active that this member's disk would not take:
    /// reported (INFO, the management API) so that a mirror that cannot catch up says
    /// why; it refuses nothing. The active sends it again.
    fn disk_refused_snapshot(&self, e: std::io::Error) -> std::io::Error {
        self.state_machine.snapshot_health().receive_failed(format!("writing a snapshot received from the active: {e}"));
        e
    }

    pub fn metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    pub fn election_time(&self) -> Duration {
        Duration::from_millis(self.layout.election_time_ms.max(200))
    }

    /// The config member behind a Raft node, by its group address.
    pub fn member_named_by(&self, node: &BasicNode) -> Option<&Member> {
        self.layout.by_group_addr(&node.addr)
    }

    pub fn name_of(&self, m: &openraft::RaftMetrics<TypeConfig>, id: u64) -> String {
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| self.member_named_by(n).map_or_else(|| n.addr.clone(), |x| x.name.clone()))
            .unwrap_or_else(|| format!("node {id}"))
    }

    pub fn local_view(&self) -> LocalView {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let active_commit = self.active_commit.load(Ordering::Relaxed);
        let last_append_ms = self.last_append_ms.load(Ordering::Relaxed);
        let silent_ms = (self.started.elapsed().as_millis() as u64).saturating_sub(last_append_ms);
        let election_ms = self.election_time().as_millis() as u64;
        LocalView {
            running: m.running_state.is_ok() && m.state != openraft::ServerState::Shutdown,
            initialized: membership.nodes().count() > 0,
            voting: membership.get_joint_config().iter().any(|c| c.contains(&m.id)),
            member: membership.get_node(&m.id).is_some(),
            leader: m.state == openraft::ServerState::Leader,
            quorum_lost: self.quorum_lost(&m),
            candidate: m.state == openraft::ServerState::Candidate,
            // A mirror that has not heard its active for an election time does not
            // know it any more, whatever Raft's vote still says.
            leader_known: m.current_leader.is_some() && (m.state == openraft::ServerState::Leader || silent_ms < election_ms),
            active_commit: (active_commit != u64::MAX).then_some(active_commit),
            applied: m.last_applied.map(|l| l.index),
            receiving_snapshot: self.receiving_snapshot.load(Ordering::Relaxed),
            // 0: no append from an active since this process started.
            heard_within_failover: last_append_ms > 0 && silent_ms < election_ms.saturating_mul(2),
        }
    }

    pub fn state(&self) -> ServerState {
        self.local_view().state()
    }

    /// True when this member leads but no quorum of the stripe's voters has
    /// acknowledged it for an election time: it can commit nothing (ACTIVE-SUSPENDED).
    ///
    /// The rule, from Raft's own view: openraft records when a quorum last answered
    /// the leader (`last_quorum_acked`, renewed by every heartbeat round, one every
    /// tenth of the election time). The leader's lease is half the election time;
    /// once a whole election time has passed without a quorum's answer, the lease has
    /// run out, a successor may already be elected, and heartbeats have failed ten
    /// times in a row: no load spike that still lets the stripe work looks like that.
    /// A leader that no quorum has answered yet counts from when this member first
    /// saw itself lead in this term. A stripe whose only voter is this member always
    /// has its quorum.
    fn quorum_lost(&self, m: &openraft::RaftMetrics<TypeConfig>) -> bool {
        let mut since = self.leading_since.lock().unwrap_or_else(|e| e.into_inner());
        if m.state != openraft::ServerState::Leader {
            *since = None;
            return false;
        }
        let sole_voter = m.membership_config.membership().get_joint_config().iter().all(|c| c.len() == 1 && c.contains(&m.id));
        if sole_voter {
            return false;
        }
        let first_seen = match *since {
            Some((term, at)) if term == m.current_term => at,
            _ => {
                let now = std::time::Instant::now();
                *since = Some((m.current_term, now));
                now
            }
        };
        let silent_for = match &m.last_quorum_acked {
            Some(acked) => acked.into_inner().elapsed(),
            None => first_seen.elapsed(),
        };
        silent_for >= self.election_time()
    }

    pub fn is_active(&self) -> bool {
        !self.witness && self.raft.is_leader()
    }

    /// On the active: data-holding voting members other than this one that are caught
    /// up (PASSIVE-STANDBY), best first, with their lag.
    pub fn standbys(&self) -> Vec<(u64, String, u64)> {
        let m = self.metrics();
        let Some(replication) = m.replication.as_ref() else { return Vec::new() };
        let last = m.last_log_index.unwrap_or(0);
        let membership = m.membership_config.membership();
        let mut out: Vec<(u64, String, u64)> = membership
            .nodes()
            .filter(|(id, _)| **id != m.id && membership.get_joint_config().iter().all(|c| c.contains(id)))
            .filter_map(|(id, node)| {
                let member = self.member_named_by(node)?;
                if member.is_voter() {
                    return None;
                }
                let matched = replication.get(id).cloned().flatten()?.index;
                let lag = last.saturating_sub(matched);
                // A mirror that stopped answering is no standby, however caught up it was.
                let heard = m.heartbeat.as_ref()?.get(id).cloned().flatten()?.into_inner();
                (lag <= STANDBY_LAG_MAX && heard.elapsed() < self.election_time()).then(|| (*id, member.name.clone(), lag))
            })
            .collect();
        out.sort_by_key(|(_, _, lag)| *lag);
        out
    }

    /// This member and the stripe as it sees them (ROLE, INFO, `tandem status`).
    pub fn view(&self) -> ReplicationView {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let direct = self.direct_applied.as_ref().map(|a| a.load(Ordering::Acquire));
        let last = m.last_log_index.max(direct);
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let member = self.member_named_by(node);
                let matched =
                    if *id == m.id { last } else { m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten().map(|l| l.index)) };
                MemberView {
                    name: member.map_or_else(|| node.addr.clone(), |x| x.name.clone()),
                    node_id: *id,
                    voting: membership.get_joint_config().iter().any(|c| c.contains(id)),
                    client_addr: member.and_then(|x| x.client_addr()),
                    matched,
                    lag: m.state.is_leader().then(|| last.unwrap_or(0).saturating_sub(matched.unwrap_or(0))),
                }
            })
            .collect();
        ReplicationView {
            state: self.state(),
            node_id: m.id,
            term: m.current_term,
            active: m.current_leader.map(|id| self.name_of(&m, id)),
            commit_index: m.local_committed.map(|l| l.index).max(direct),
            applied_index: m.last_applied.map(|l| l.index).max(direct),
            last_log_index: last,
            purged_index: m.purged.map(|p| p.index),
            members,
        }
    }

    pub fn status(&self) -> StatusReport {
        let view = self.view();
        StatusReport {
            name: self.me.name.clone(),
            stripe: self.layout.stripe.clone(),
            voter: self.witness,
            state: view.state.name().to_string(),
            light: view.state.light().to_string(),
            node_id: view.node_id,
            term: view.term,
            active: view.active.unwrap_or_default(),
            commit_index: view.commit_index,
            applied_index: view.applied_index,
            last_log_index: view.last_log_index,
            purged_index: view.purged_index,
            members: view
                .members
                .into_iter()
                .map(|x| MemberLag { name: x.name, node_id: x.node_id, voting: x.voting, lag: x.lag })
                .collect(),
            array: self.array_fingerprint.get().cloned().unwrap_or_default(),
        }
    }

    /// Serves the group port until the process ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        if let Some(tls) = &self.identity.tls {
            tls.reload_on_sighup();
        }
        let handshakes = HandshakeSlots::new(self.layout.members.iter().map(|m| m.host.as_str()));
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "group port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(handshake) = handshakes.try_take(peer.ip()) else {
                tracing::debug!(%peer, "group port: too many connections from this address before their handshake; refused");
                continue;
            };
            let group = self.clone();
            tokio::spawn(async move {
                if let Err(e) = group.serve_connection(socket, handshake).await {
                    tracing::debug!(%peer, error = %e, "group connection closed");
                }
            });
        }
    }

    async fn serve_connection(self: Arc<Self>, socket: TcpStream, handshake: Slot) -> std::io::Result<()> {
        let _ = socket.set_nodelay(true);
        let mut socket = match &self.identity.tls {
            None => GroupStream::Plain(socket),
            Some(tls) => {
                let peer = socket.peer_addr()?;
                // Within the handshake's time, holding the address's handshake place.
                tokio::time::timeout(transport::HANDSHAKE_TIMEOUT, tls.accept(socket, peer))
                    .await
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the TLS handshake timed out"))??
            }
        };
        let accepted = transport::accept_handshake(&mut socket, &self.identity, self.node_id).await;
        drop(handshake);
        let caller = match accepted {
            Ok(caller) => caller,
            Err(e) => {
                // Callers still trying an earlier node id at this address are expected
                // until the active replaces it; strangers are worth a warning.
                if e.to_string().contains("this member is now node") {
                    tracing::debug!(peer = ?socket.peer_addr().ok(), error = %e, "group port: refused a connection");
                } else {
                    tracing::warn!(peer = ?socket.peer_addr().ok(), error = %e, "group port: refused a connection");
                }
                return Err(e);
            }
        };
        loop {
            let frame = match tokio::time::timeout(IDLE_TIMEOUT, transport::read_frame(&mut socket, FRAME_BYTES_MAX)).await {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) | Err(_) => return Ok(()),
                Ok(Err(e)) => return Err(e),
            };
            let request = match Request::decode(&frame) {
                Ok(r) => r,
                Err(e) => {
                    let _ = transport::write_frame(&mut socket, &Response::Error(format!("unreadable request: {e}")).encode()).await;
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} sent an unreadable request: {e}", caller.name),
                    ));
                }
            };
            let raft_rpc = matches!(
                request,
                Request::AppendEntries(_)
                    | Request::Vote(_)
                    | Request::PreVote(_)
                    | Request::SnapshotBegin { .. }
                    | Request::TransferLeader(_)
            );
            if raft_rpc && !caller.raft {
                let why = "Raft messages need a connection addressed to this member's node id";
                transport::write_frame(&mut socket, &Response::Error(why.into()).encode()).await?;
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
            }
            let mut then_stop = false;
            let procedure = matches!(request, Request::Stop { .. } | Request::Failover { .. });
            let response = match request {
                Request::SnapshotBegin { vote, meta, bytes } => self.receive_snapshot(&mut socket, vote, meta, bytes).await?,
                Request::Stop { force } => {
                    let (response, stop) = super::membership::stop(&self, force).await;
                    then_stop = stop;
                    response
                }
                other => self.handle(other).await,
            };
            if let (true, Response::Done { ok: false, message }) = (procedure, &response) {
                // The console's event log shows what this member refused, whoever asked.
                crate::management::events::record(crate::management::events::EventKind::Refusal, None, None, message.clone());
            }
            transport::write_frame(&mut socket, &response.encode()).await?;
            if then_stop {
                let _ = self.stop.send(Some(Stop::Requested));
            }
        }
    }

    async fn handle(&self, request: Request) -> Response {
        let fatal = |e: &dyn std::fmt::Display| Response::Error(format!("this member's Raft stopped: {e}"));
        match request {
            Request::AppendEntries(req) => {
                let commit = req.leader_commit;
                match self.raft.append_entries(req).await {
                    Ok(r) => {
                        // Only an append Raft took (not one from a deposed active,
                        // answered with the higher vote) says the active is heard.
                        if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)) {
                            if let Some(commit) = commit {
                                self.active_commit.store(commit.index, Ordering::Relaxed);
                            }
                            self.last_append_ms.store(self.started.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
                        }
                        Response::AppendEntries(r)
                    }
                    Err(e) => fatal(&e),
                }
            }
            Request::Vote(req) => match self.raft.vote(req).await {
                Ok(r) => Response::Vote(r),
                Err(e) => fatal(&e),
            },
            Request::PreVote(req) => match self.raft.pre_vote(req).await {
                Ok(r) => Response::Vote(r),
                Err(e) => fatal(&e),
            },
            Request::TransferLeader(req) => match self.raft.handle_transfer_leader(req).await {
                Ok(r) => Response::TransferLeader(r.map_err(|e| e.to_string())),
                Err(e) => fatal(&e),
            },
            Request::Probe => {
                let m = self.metrics();
                Response::Probe {
                    initialized: m.membership_config.membership().nodes().count() > 0,
                    node_id: self.node_id,
                    is_active: self.is_active(),
                    active: m.current_leader.map(|id| self.name_of(&m, id)),
                    data_storage_bytes: self.me.data_storage_bytes,
                }
            }
            Request::Join { node_id, name, data_storage_bytes } => {
                super::membership::on_join(self, node_id, &name, data_storage_bytes).await
            }
            Request::Status => Response::Status(self.status()),
            Request::Failover { to } => super::membership::failover(self, to.as_deref()).await,
            Request::PurgeHint { index } => {
                super::membership::on_purge_hint(self, index).await;
                Response::Done { ok: true, message: String::new() }
            }
            Request::Publish { channel, message, shard } => match self.publish_hook.get() {
                Some(deliver) => Response::Published { receivers: deliver(&channel, &message, shard) as u64 },
                None => {
                    let _ = self.published.send((channel.into(), message.into(), shard));
                    Response::Done { ok: true, message: String::new() }
                }
            },
            Request::Management { query } => match self.management.get() {
                Some(answer) => Response::Management(answer(&query)),
                None => Response::Error(format!("{} serves no management reports", self.me.name)),
            },
            Request::SnapshotBegin { .. } | Request::Stop { .. } => Response::Error("internal: handled by the connection".into()),
        }
    }

    /// Receives a snapshot from the active, loading it (and, when restartable,
    /// writing it to the data directory) as its pieces arrive, then installs it. What
    /// goes wrong is logged as a warning: the active only sees the connection close.
    async fn receive_snapshot(
        &self,
        socket: &mut GroupStream,
        vote: super::types::Vote,
        meta: super::types::SnapshotMeta,
        bytes: u64,
    ) -> std::io::Result<Response> {
        self.receiving_snapshot.store(true, Ordering::Relaxed);
        let result = self.receive_snapshot_inner(socket, vote, meta, bytes).await;
        self.receiving_snapshot.store(false, Ordering::Relaxed);
        match &result {
            Err(e) => tracing::warn!(error = %e, "receiving a snapshot from the active failed; the connection is closed"),
            Ok(Response::Error(why)) => tracing::warn!(why = %why, "a snapshot from the active was refused"),
            Ok(_) => {}
        }
        result
    }

    async fn receive_snapshot_inner(
        &self,
        socket: &mut GroupStream,
        vote: super::types::Vote,
        meta: super::types::SnapshotMeta,
        bytes: u64,
    ) -> std::io::Result<Response> {
        let index = meta.last_log_id.map_or(0, |l| l.index);
        tracing::info!(index, bytes, "receiving a snapshot from the active");
        let started = std::time::Instant::now();
        // Loaded as it arrives: each piece goes to the loading stages (threads of
        // their own) and, when restartable, to a file in the data directory written
        // on another thread at the disk's pace (the pieces are shared, not copied).
        // A name of its own: two receives never share a file; whatever is left on
        // any early return is removed by the guard (and at start-up, by extension).
        let tmp = self.snapshot_dir.as_ref().map(|dir| dir.join(format!("received-{index:020}-{:016x}.writing", rand::random::<u64>())));
        let _cleanup = RemoveOnDrop(tmp.clone());
        // Set on any return: a writer or loader still at work on a receive that
        // failed stops at its next piece instead of finishing for nothing.
        let gave_up = Arc::new(AtomicBool::new(false));
        let _give_up = SetOnDrop(gave_up.clone());
        let mut writer = match (&self.snapshot_dir, &tmp) {
            (Some(dir), Some(tmp)) if !self.witness => {
                super::log_file::create_dir_durably(dir).map_err(|e| std::io::Error::other(e.to_string()))?;
                Some(PieceWriter::start(tmp.clone(), gave_up.clone()))
            }
            _ => None,
        };
        let (to_loader, arriving) = std::sync::mpsc::channel::<bytes::Bytes>();
        let loading = (!self.witness).then(|| {
            let gave_up = gave_up.clone();
            tokio::task::spawn_blocking(move || {
                let pieces = arriving.into_iter().take_while(|_| !gave_up.load(Ordering::Relaxed));
                super::snapshot::decode_pieces(pieces, bytes, None, "the snapshot received", crate::clock::wall_ms())
            })
        });
        // A member that keeps no data directory keeps the bytes themselves.
        let mut kept = Vec::new();
        let keep = self.snapshot_dir.is_none() && !self.witness;
        let on_piece = |piece: bytes::Bytes| {
            // A writer that stopped (a disk error) ends the receive: its error is
            // the one reported.
            if writer.as_ref().is_some_and(|w| !w.write(piece.clone())) {
                return false;
            }
            let _ = to_loader.send(piece.clone());
            if keep {
                kept.push(piece);
            }
            true
        };
        let received = match receive_pieces(socket, bytes, self.witness, on_piece).await {
            Ok(received) => received,
            Err(e) => {
                // A writer that stopped says why (the disk), rather than the stream.
                if let Some(w) = writer.take().filter(|w| w.stopped()) {
                    w.finish().await.map_err(|e| self.disk_refused_snapshot(e))?;
                }
                return Err(e);
            }
        };
        // Every piece is in: the loading stages see the end of them.
        drop(to_loader);
        let received_ms = started.elapsed().as_millis() as u64;
        let data = match loading {
            // A voter keeps no data: it only counted the bytes.
            None => SnapshotData::Live,
            Some(loading) => {
                let decoded = loading.await.map_err(std::io::Error::other)?;
                if let Some(writer) = writer {
                    writer.finish().await.map_err(|e| self.disk_refused_snapshot(e))?;
                }
                match decoded {
                    Ok((_, db)) => self.state_machine.preload(meta.last_log_id, db),
                    Err(e) => return Ok(Response::Error(format!("the snapshot received cannot be loaded: {e}"))),
                }
                match tmp {
                    Some(tmp) => SnapshotData::File(tmp),
                    None => SnapshotData::Memory(kept.concat().into()),
                }
            }
        };
        tracing::info!(index, received, received_ms, ms = started.elapsed().as_millis() as u64, "snapshot received and loaded");
        let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot: data };
        let last_log_id = snapshot.meta.last_log_id;
        let response = match self.raft.install_full_snapshot(vote, snapshot).await {
            Ok(r) => Response::Snapshot(r),
            Err(e) => Response::Error(format!("installing the snapshot failed: {e}")),
        };
        // Refused (a newer vote, an older snapshot): what was decoded is not kept.
        self.state_machine.discard_preloaded(last_log_id);
        crate::management::metrics::global().record_snapshot("received", bytes, started.elapsed());
        tracing::info!(index, bytes, ms = started.elapsed().as_millis() as u64, "snapshot installed");
        Ok(response)
    }
}

/// Writes a received snapshot's pieces to a file on a blocking thread, in order,
/// as they arrive; `finish` waits for the last and the fsync. The queue is not
/// bounded: its pieces are the ones the receiver holds anyway. Once `gave_up` is
/// set (the receive failed), the thread stops at its next piece.
struct PieceWriter {
    pieces: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Direct writes go in blocks of this alignment (of memory, offset and length).
const DIRECT_ALIGN: usize = 4096;
/// Bytes gathered before one direct write.
const DIRECT_WRITE_BYTES: usize = 4 << 20;

impl PieceWriter {
    fn start(path: PathBuf, gave_up: Arc<AtomicBool>) -> PieceWriter {
        let (pieces, queue) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
        let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
            write_pieces(&path, queue, true, &gave_up).map_err(named)
        });
        PieceWriter { pieces, done }
    }

    /// Queues `piece`; false once the writer has stopped (its error comes from
    /// `finish`).
    fn write(&self, piece: bytes::Bytes) -> bool {
        self.pieces.send(piece).is_ok()
    }

    /// True once the writing thread has ended before being told to finish (an error).
    fn stopped(&self) -> bool {
        self.pieces.is_closed()
    }

    async fn finish(self) -> std::io::Result<()> {
        drop(self.pieces);
        self.done.await.map_err(std::io::Error::other)?
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Where `write_pieces` is writing.
enum PieceFile {
    /// `O_DIRECT`: whole aligned blocks gathered in `buffer[start..]`.
    Direct {
        file: std::fs::File,
        buffer: Vec<u8>,
        start: usize,
        filled: usize,
        written: u64,
    },
    Buffered(std::fs::File),
}

impl PieceFile {
    fn write(&mut self, path: &std::path::Path, mut piece: bytes::Bytes) -> std::io::Result<()> {
        use std::io::Write;
        loop {
            match self {
                PieceFile::Buffered(file) => return file.write_all(&piece),
                PieceFile::Direct { file, buffer, start, filled, written } => {
                    if piece.is_empty() {
                        return Ok(());
                    }
                    let block = &mut buffer[*start..*start + DIRECT_WRITE_BYTES];
                    let n = piece.len().min(DIRECT_WRITE_BYTES - *filled);
                    block[*filled..*filled + n].copy_from_slice(&piece.split_to(n));
                    *filled += n;
                    if *filled < DIRECT_WRITE_BYTES {
                        continue;
                    }
                    match file.write_all(block) {
                        Ok(()) => {
                            *written += DIRECT_WRITE_BYTES as u64;
                            *filled = 0;
                        }
                        // Some filesystems take O_DIRECT at open and refuse the
                        // writes: from the first, everything goes through the cache.
                        Err(e) if *written == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                            let mut plain = std::fs::OpenOptions::new().write(true).truncate(true).open(path)?;
                            plain.write_all(block)?;
                            *self = PieceFile::Buffered(plain);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Writes what is gathered (the tail that fills no block through the cache)
    /// and fsyncs.
    fn finish(self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            PieceFile::Buffered(file) => file.sync_all(),
            PieceFile::Direct { mut file, buffer, start, filled, .. } => {
                let block = &buffer[start..start + filled];
                let whole = filled / DIRECT_ALIGN * DIRECT_ALIGN;
                file.write_all(&block[..whole])?;
                if whole < filled {
                    // The same file opened again without O_DIRECT, after the direct
                    // writes completed.
                    let mut tail = std::fs::OpenOptions::new().append(true).open(path)?;
                    tail.write_all(&block[whole..])?;
                    tail.sync_all()?;
                }
                file.sync_all()
            }
        }
    }
}

/// Writes what arrives on `queue` to a new file at `path`, then fsyncs it. Whole
/// aligned blocks bypass the page cache (`O_DIRECT`, with `try_direct`) where the
/// filesystem allows: measured here, a gigabyte written through the page cache and
/// fsynced took 2.9 s, written direct 0.6 s, and the copy into the cache competed
/// with the loading for the cores. The tail that fills no block, and every byte
/// where direct writes are refused, go through the page cache. Stops, with an
/// error, at the first piece after `gave_up` is set.
fn write_pieces(
    path: &std::path::Path,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>,
    try_direct: bool,
    gave_up: &AtomicBool,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = if try_direct { libc::O_DIRECT } else { 0 };
    let mut out = match std::fs::OpenOptions::new().write(true).create_new(true).custom_flags(flags).open(path) {
        Ok(file) if try_direct => {
            // An aligned window of a plain buffer: no unsafe allocation needed.
            let buffer = vec![0u8; DIRECT_WRITE_BYTES + DIRECT_ALIGN];
            let start = (DIRECT_ALIGN - buffer.as_ptr() as usize % DIRECT_ALIGN) % DIRECT_ALIGN;
            PieceFile::Direct { file, buffer, start, filled: 0, written: 0 }
        }
        Ok(file) => PieceFile::Buffered(file),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists || !try_direct => return Err(e),
        Err(_) => {
            // Refused for O_DIRECT, perhaps after creating the file: it is ours (it
            // did not exist), so it goes before the plain attempt.
            let _ = std::fs::remove_file(path);
            PieceFile::Buffered(std::fs::OpenOptions::new().write(true).create_new(true).open(path)?)
        }
    };
    while let Some(piece) = queue.blocking_recv() {
        if gave_up.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the receive was given up"));
        }
        out.write(path, piece)?;
    }
    out.finish(path)
}

/// A snapshot piece (or its end) must arrive within this time.
const SNAPSHOT_PIECE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most room reserved for a piece before its bytes arrive (the active sends
/// 4 MB pieces; a larger announced one grows as it comes).
const PIECE_RESERVE_MAX: usize = 8 << 20;

/// Reads a snapshot's pieces up to its end frame, handing each to `on_piece` as it
/// arrives (which says whether to go on), or only counts them on a voter
/// (`count_only`). Returns how many bytes arrived, all `bytes` of them. Anything
/// else — the connection's errors, a frame out of place, more or fewer bytes than
/// announced, `on_piece` giving up — is an error: the sender is then mid-stream,
/// so the connection is closed rather than answered.
async fn receive_pieces(
    socket: &mut GroupStream,
    bytes: u64,
    count_only: bool,
    mut on_piece: impl FnMut(bytes::Bytes) -> bool,
) -> std::io::Result<u64> {
    use tokio::io::AsyncReadExt;
    let refused = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let closed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the connection closed inside a snapshot")
        }
        _ => e,
    };
    let mut received = 0u64;
    loop {
        let end = tokio::time::timeout(SNAPSHOT_PIECE_TIMEOUT, async {
            let mut header = [0u8; 5];
            socket.read_exact(&mut header).await.map_err(closed)?;
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            if len > FRAME_BYTES_MAX {
                return Err(refused(format!("a frame of {len} bytes is larger than the limit of {FRAME_BYTES_MAX}")));
            }
            crate::management::metrics::global().record_group_frame("in", 4 + len);
            let rest = len.saturating_sub(1) as u64;
            match (len, header[4]) {
                (0, _) => Err(refused("an empty frame inside a snapshot".into())),
                (_, wire::CHUNK) if received + rest > bytes => {
                    Err(refused(format!("the snapshot is longer than the {bytes} bytes announced")))
                }
                (_, wire::CHUNK) => {
                    let mut piece = (&mut *socket).take(rest);
                    if count_only {
                        tokio::io::copy(&mut piece, &mut tokio::io::sink()).await?;
                    } else {
                        // Room for what is announced, within reason: the rest grows
                        // as it actually arrives.
                        let mut buf = bytes::BytesMut::with_capacity((rest as usize).min(PIECE_RESERVE_MAX));
                        while piece.limit() > 0 {
                            if piece.read_buf(&mut buf).await? == 0 {
                                return Err(closed(std::io::ErrorKind::UnexpectedEof.into()));
                            }
                        }
                        if !on_piece(buf.freeze()) {
                            return Err(refused("the snapshot's pieces could not be kept".into()));
                        }
                    }
                    if piece.limit() > 0 {
                        return Err(closed(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                    received += rest;
                    Ok(false)
                }
                (1, wire::SNAPSHOT_END) => Ok(true),
                _ => Err(refused("unexpected frame inside a snapshot".into())),
            }
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the snapshot stopped arriving"))??;
        if end && received == bytes {
            return Ok(received);
        }
        if end {
            return Err(refused(format!("the snapshot has {received} bytes, {bytes} were announced")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of odd sizes (across the direct-write blocks, a tail that fills no
    /// block) are written whole and in order, direct and through the page cache
    /// (where a filesystem refuses direct writes), on disk and on tmpfs.
    #[test]
    fn a_received_snapshot_is_written_byte_for_byte_direct_or_not() {
        let sizes = [1usize, 4095, DIRECT_WRITE_BYTES + 3, 10, DIRECT_ALIGN, 2 * DIRECT_WRITE_BYTES - 7, 5];
        let mut all = Vec::new();
        let mut pieces = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let piece: Vec<u8> = (0..*size).map(|j| (j * 31 + i * 7) as u8).collect();
            all.extend_from_slice(&piece);
            pieces.push(bytes::Bytes::from(piece));
        }
        let disk = std::env::temp_dir();
        let shm = std::path::PathBuf::from("/dev/shm");
        for (dir, direct) in [(&disk, true), (&disk, false), (&shm, true)].into_iter().filter(|(d, _)| d.is_dir()) {
            let path = dir.join(format!("pieces-{:016x}.writing", rand::random::<u64>()));
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            for piece in &pieces {
                tx.send(piece.clone()).unwrap();
            }
            drop(tx);
            write_pieces(&path, rx, direct, &AtomicBool::new(false)).unwrap();
            let written = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(written.len(), all.len(), "{}", dir.display());
            assert!(written == all, "{}: the bytes differ", dir.display());
            // An existing file is never written over.
            std::fs::write(&path, b"x").unwrap();
            let (_, rx) = tokio::sync::mpsc::unbounded_channel();
            assert!(write_pieces(&path, rx, direct, &AtomicBool::new(false)).is_err());
            std::fs::remove_file(&path).unwrap();
        }
    }

    /// A writer whose receive was given up stops at its next piece, with an error.
    #[test]
    fn a_writer_given_up_stops() {
        let path = std::env::temp_dir().join(format!("pieces-{:016x}.writing", rand::random::<u64>()));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(bytes::Bytes::from_static(b"piece")).unwrap();
        drop(tx);
        assert!(write_pieces(&path, rx, true, &AtomicBool::new(true)).is_err());
        let _ = std::fs::remove_file(&path);
    }

    /// Frames of a snapshot as the active sends them (`len` counts the kind byte).
    fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = ((1 + body.len()) as u32).to_be_bytes().to_vec();
        out.push(kind);
        out.extend_from_slice(body);
        out
    }

    /// What the receiving side makes of `stream` for a snapshot announced at
    /// `announced` bytes: the bytes it kept, or its error.
    async fn receive(stream: Vec<u8>, announced: u64, keep: bool) -> std::io::Result<Vec<u8>> {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = tokio::spawn(async move {
            let mut out = TcpStream::connect(addr).await.unwrap();
            // The receiver may close early: what it did not read is not an error here.
            let _ = out.write_all(&stream).await;
        });
        let (socket, _) = listener.accept().await.unwrap();
        let mut socket = GroupStream::Plain(socket);
        let mut kept = Vec::new();
        let result = receive_pieces(&mut socket, announced, false, |piece| {
            kept.extend_from_slice(&piece);
            keep
        })
        .await;
        drop(socket);
        let _ = sender.await;
        result.map(|n| {
            assert_eq!(n as usize, kept.len());
            kept
        })
    }

    /// The snapshot stream from the active: pieces arrive whole and in order; a
    /// stream that lies about its length, holds an empty or foreign frame, stops
    /// early, or whose pieces cannot be kept is an error (the connection is then
    /// closed), never a snapshot.
    #[tokio::test]
    async fn a_snapshot_stream_is_taken_whole_or_refused() {
        let mut good = frame(wire::CHUNK, b"hello ");
        good.extend(frame(wire::CHUNK, b"world"));
        good.extend(frame(wire::SNAPSHOT_END, b""));
        assert_eq!(receive(good.clone(), 11, true).await.unwrap(), b"hello world");

        let refused = |r: std::io::Result<Vec<u8>>| r.expect_err("must be refused").to_string();
        assert!(refused(receive(good.clone(), 10, true).await).contains("longer than the 10 bytes announced"));
        assert!(refused(receive(good.clone(), 12, true).await).contains("11 bytes, 12 were announced"));
        assert!(refused(receive(good.clone(), 11, false).await).contains("could not be kept"));
        let mut empty = frame(wire::CHUNK, b"hello");
        empty.extend([0, 0, 0, 0, wire::CHUNK]);
        assert!(refused(receive(empty, 5, true).await).contains("empty frame"));
        let mut foreign = frame(wire::CHUNK, b"hello");
        foreign.extend(frame(wire::CHUNK + 1, b"x"));
        assert!(refused(receive(foreign, 5, true).await).contains("unexpected frame"));
        let cut = frame(wire::CHUNK, b"hello")[..7].to_vec();
        assert!(refused(receive(cut, 5, true).await).contains("closed inside a snapshot"));
    }
}
