//! One server's member of its stripe's Raft group: opens the data directory (or
//! runs in memory), starts openraft over our log store and state machine, makes a
//! fresh single-server stripe its own active, and turns proposals and linearizable
//! reads into Redis replies or errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::raft::ClientWriteResult;
use openraft::{BasicNode, Config, ReadPolicy, SnapshotPolicy};
use std::sync::atomic::{AtomicBool, AtomicU64};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use super::broadcast::Broadcaster;
use super::data_dir::DataDir;
use super::errors::{ReadError, SaveError, WriteError};
use super::group::{self, Group, Stop};
use super::log_store::{DiskHealth, LogStore};
use super::membership;
use super::network::GroupNetwork;
use super::snapshot_health::{self, SnapshotHealth};
use super::state_machine::{Notice, StateMachine};
use super::stripe::{Member, ServerState, StripeLayout};
use super::types::{Deliver, TypeConfig};
use crate::clock::EntryClock;
use crate::cluster::view::Active;
use crate::protocol::reply::Reply;
use crate::store::watch::WatchStamp;
use crate::store::{Op, OpsSummary, Store};

pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Entries applied between snapshots. Large: each snapshot copies the data under the
/// store lock, and openraft issue #2116 (purge racing apply) grows with purge frequency.
const SNAPSHOT_EVERY_ENTRIES: u64 = 100_000;
/// Entries kept behind a snapshot, so a lagging mirror catches up by log rather than
/// by a new snapshot, and purges stay far behind apply (openraft #1706, #2116).
const LOG_KEPT_BEHIND_SNAPSHOT: u64 = 500;
/// A voter keeps everything behind its snapshots: it purges only when the active's
/// hint says every data-holding member has the entries.
const VOTER_LOG_KEPT_BEHIND_SNAPSHOT: u64 = u64::MAX;
/// Purge in large steps: fewer purges, fewer chances to race apply.
pub const PURGE_BATCH_ENTRIES: u64 = 100;
/// Bytes of entries a data-holding server keeps behind its last snapshot, whatever
/// their number: `LOG_KEPT_BEHIND_SNAPSHOT` entries of a bulk load (up to
/// `ENTRY_BYTES_TARGET` each) would otherwise stay in memory and on disk, and be
/// read back and decoded by every restart though the snapshot holds them.
const LOG_BYTES_KEPT_BEHIND_SNAPSHOT: usize = 16 << 20;
/// A snapshot is also taken when the log held in memory passes this many bytes, so
/// large values do not pile up in the log between snapshots. A restartable snapshot
/// copies and writes the data, so it waits longer than a live one, which costs nothing:
/// a lone server purges small, often (each purge frees its entries in one go, and
/// 4 MB of small writes took 2-3 ms, a stall every half second at 40,000 SET/s).
pub const LOG_MEMORY_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;
pub const LOG_MEMORY_LIVE_SNAPSHOT_BYTES: usize = 256 * 1024;
/// Entries proposed and not yet applied. While this many are in flight, new writes
/// from every connection accumulate into the next entry (group commit at the
/// proposal level: one entry, one log record, one apply for many clients).
const ENTRIES_IN_FLIGHT_MAX: usize = 4;
/// Most ops gathered into one entry.
const OPS_PER_ENTRY_MAX: usize = 4096;
/// Most argument bytes gathered into one entry: far below the largest log record
/// (`log_file::RECORD_BYTES_MAX`), so a batch always fits in one record.
const ENTRY_BYTES_TARGET: usize = 64 * 1024 * 1024;
/// Largest single proposal (one connection's run of writes or one transaction):
/// anything larger could not be written as one log record and read back.
const PROPOSAL_BYTES_MAX: usize = 768 * 1024 * 1024;

/// The measure of a proposal's size against the entry and proposal budgets.
fn proposal_bytes(summary: &OpsSummary) -> usize {
    summary.size.weighted(8, 0)
}
/// How long SAVE waits for its snapshot to be built and written.
const SAVE_WAIT: Duration = Duration::from_secs(600);
/// How long SAVE waits before asking again for its snapshot when no build ends
/// (see `snapshot_now`).
const SAVE_ASK_AGAIN: Duration = Duration::from_secs(1);
/// How long a fresh server waits to become its stripe's active before giving up.
const ACTIVE_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    DataDir(#[from] super::data_dir::DataDirError),
    #[error("{0}")]
    Log(#[from] super::log_file::LogError),
    #[error("{0}")]
    Snapshot(#[from] super::snapshot::SnapshotError),
    #[error("raft: {0}")]
    Raft(String),
}

/// How this server takes part in its stripe.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// The stripe from the config, and this member's name in it.
    pub layout: StripeLayout,
    pub name: String,
    /// `Some(dir)`: restartable (Fast Restart) with the log and snapshots under `dir`.
    pub data_dir: Option<std::path::PathBuf>,
    /// A voter: votes and keeps the log's tail, applies no data, never stays active.
    pub witness: bool,
    /// Serve the group port (a config file was given; the development topology has none).
    pub group_port: bool,
    /// Where to listen for the group port when it differs from the advertised
    /// `host:group-port` (a proxy or NAT in between).
    pub group_bind: Option<String>,
    /// In an array of several stripes, the hash slots this stripe owns (scripts may
    /// touch keys of these only); `None` for a stripe that is the whole database.
    pub local_slots: Option<Arc<[(u16, u16)]>>,
}

impl ReplicaOptions {
    /// The development topology's single member.
    pub fn single(layout: StripeLayout, data_dir: Option<std::path::PathBuf>) -> ReplicaOptions {
        let name = layout.founder().name.clone();
        ReplicaOptions { layout, name, data_dir, witness: false, group_port: false, group_bind: None, local_slots: None }
    }

    pub fn me(&self) -> &Member {
        self.layout.member(&self.name).expect("the member's name comes from the layout")
    }
}

/// One member of the stripe as this server sees it (the active sees replication progress).
#[derive(Debug, Clone)]
pub struct MemberView {
    pub name: String,
    pub node_id: u64,
    pub voting: bool,
    pub client_addr: Option<String>,
    /// Last log index known to be replicated to it (on the active only).
    pub matched: Option<u64>,
    /// How far it trails the active's last log index (on the active only).
    pub lag: Option<u64>,
}

/// What `ROLE`, `INFO replication` and `tandem status` show of this server.
#[derive(Debug, Clone)]
pub struct ReplicationView {
    pub state: ServerState,
    pub node_id: u64,
    pub term: u64,
    pub active: Option<String>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    /// The last log index purged here: the log held starts after it.
    pub purged_index: Option<u64>,
    pub members: Vec<MemberView>,
}

struct Proposal {
    ops: Vec<Op>,
    /// The client of this server that sent them (0: none), see `Entry::origins`.
    origin: u64,
    /// Its ops' size and script flag, counted once at submission (while they are in
    /// the cache: the entry carries their sum, see `Entry::summary`).
    summary: OpsSummary,
    reply: oneshot::Sender<Result<Vec<Reply>, WriteError>>,
}

pub struct Replica {
    pub clock: Arc<Mutex<EntryClock>>,
    proposals: mpsc::UnboundedSender<Proposal>,
    pub raft: Raft,
    pub log: LogStore,
    pub store: Arc<Mutex<Store>>,
    pub health: Arc<DiskHealth>,
    /// Whether this member's last snapshot could be written.
    pub snapshots: Arc<SnapshotHealth>,
    /// This member's identity in its stripe, its group port and its views.
    pub group: Arc<Group>,
    stop: watch::Receiver<Option<Stop>>,
    broadcaster: Option<Broadcaster>,
    published: Mutex<Option<mpsc::UnboundedReceiver<super::group::Published>>>,
    _data_dir: Option<DataDir>,
    /// The state machine writes are applied to directly, without the Raft log: set for
    /// a stripe whose only member is this in-memory server (see [`Replica::submit`]).
    direct: Option<StateMachine>,
}

fn raft_config(options: &ReplicaOptions) -> Result<Config, StartError> {
    // `election-time` bounds the whole election: openraft's leader lease equals the
    // maximum timeout, and a mirror votes for nobody before the lease of the active
    // it last heard has run out, so a failover takes about one lease plus one
    // timeout. Both are kept within half the configured time each.
    let election = options.layout.election_time_ms.max(200);
    let config = Config {
        cluster_name: format!("{}/{}", options.layout.cluster, options.layout.stripe),
        heartbeat_interval: (election / 10).max(20),
        election_timeout_min: election / 4,
        election_timeout_max: election / 2,
        enable_pre_vote: Some(true),
        // A voter purges only behind what every data-holding member has matched (the
        // active's hints, `membership::on_purge_hint`): its snapshots hold no data
        // and are never sent, so an entry it purged too early could never reach a
        // lagging mirror again. openraft purges up to `snapshot - keep` after *any*
        // snapshot it builds, whatever the policy, so on a voter `keep` is unbounded:
        // only the explicit `purge_log(hint)` purges.
        snapshot_policy: if options.witness { SnapshotPolicy::Never } else { SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES) },
        max_in_snapshot_log_to_keep: if options.witness { VOTER_LOG_KEPT_BEHIND_SNAPSHOT } else { LOG_KEPT_BEHIND_SNAPSHOT },
        purge_batch_size: PURGE_BATCH_ENTRIES,
        // A restarted leader must win an election: we do not persist the commit index.
        enable_leader_restore: Some(false),
        // A non-persistent server comes back empty: its log "reverts" by design.
        allow_log_reversion: Some(options.data_dir.is_none()),
        // Our proposals are already gathered into a few entries in flight: small
        // channels and batches lose nothing.
        api_channel_size: Some(1024),
        notification_channel_size: Some(1024),
        state_machine_channel_size: Some(256),
        api_batch_capacity: 64,
        ..Default::default()
    };
    config.validate().map_err(|e| StartError::Raft(e.to_string()))
}

/// A node id never used before in this stripe.
///
/// Ids must never be reused: Raft's votes and log positions are recorded against
/// node ids, so a member that lost its state (non-persistent restart, hot swap,
/// `clear-data`) and came back under an id it had used before could vote a second
/// time in a term it already voted in, or be counted as holding entries it no longer
/// has — two actives in one term, or a lost acknowledged write. The id is therefore
/// drawn from the operating system's randomness (`rand`'s thread generator, seeded
/// and reseeded from the OS), never from a clock, which can step back or repeat
/// across machines: 63 random bits make a repeat within a stripe's lifetime
/// vanishingly unlikely (a million ids: about one chance in 10^7). 63 bits, not 64,
/// so an id is also a positive RESP integer; never 0, which openraft's tests and
/// our logs read as "none".
fn fresh_node_id() -> u64 {
    loop {
        let id = rand::random::<u64>() >> 1;
        if id != 0 {
            return id;
        }
    }
}

impl Replica {
    /// Opens storage and starts the Raft member. A stripe of one makes itself active
    /// before this returns; a member of a larger stripe returns at once and joins its
    /// stripe in the background (see [`super::membership`]). `notices` receives what
    /// applying entries produced.
    pub async fn start(options: ReplicaOptions, notices: mpsc::UnboundedSender<Notice>) -> Result<Replica, StartError> {
        let position =
            options.layout.position(&options.name).ok_or_else(|| StartError::Raft(format!("{} is not in its stripe", options.name)))?;
        let store = Arc::new(Mutex::new(Store::new()));
        // Before anything is applied (the log replayed at start included): a script's
        // calls are checked against the stripe's slots on every apply alike.
        store.lock().unwrap_or_else(|e| e.into_inner()).db.local_slots = options.local_slots.clone();
        let (data_dir, log, snapshot_dir, node_id) = match &options.data_dir {
            Some(path) => {
                let dir = DataDir::open(path)?;
                let (log, report) = LogStore::open(&dir.raft_dir())?;
                if let Some(torn) = &report.torn_tail {
                    tracing::warn!(%torn, "log tail truncated");
                }
                tracing::info!(entries = report.entries, dir = %path.display(), "log opened");
                // Before node ids were stored, a stripe had one server, id 1.
                let legacy = (report.entries > 0).then_some(position as u64 + 1);
                let node_id = dir.node_id(|| legacy.unwrap_or_else(fresh_node_id))?;
                let snapshots = dir.snapshot_dir();
                (Some(dir), log, Some(snapshots), node_id)
            }
            // Nothing survives a restart, so this is a new member: a new id.
            None => (None, LogStore::in_memory(), None, if options.layout.is_single() { 1 } else { fresh_node_id() }),
        };
        let health = log.health();
        let sm = StateMachine::new(store.clone(), snapshot_dir.clone(), notices)?;
        let applied_time_ms = sm.applied_time_ms();
        sm.watch_disk(health.clone());
        let snapshots = sm.snapshot_health();
        sm.set_witness(options.witness);
        let config = Arc::new(raft_config(&options)?);
        let me = options.me().clone();
        let identity = group::identity(&options.layout, &me.name);
        let network = GroupNetwork { identity: identity.clone(), local_host: me.host.clone() };
        let state_machine = sm.clone();
        // A lone in-memory server: nobody else holds, needs or votes on its log, and
        // nothing of it survives a restart, so its writes skip the log (`submit`).
        let direct = (options.layout.is_single() && options.data_dir.is_none() && !options.witness).then(|| sm.clone());
        let direct_applied = direct.as_ref().map(|_| store.lock().unwrap_or_else(|e| e.into_inner()).applied_index.clone());
        let raft = Raft::new(node_id, config, network, log.clone(), sm).await.map_err(|e| StartError::Raft(e.to_string()))?;
        let (stop_tx, stop) = watch::channel(None);
        let (published_tx, published) = mpsc::unbounded_channel();
        let group = Arc::new(Group {
            raft: raft.clone(),
            layout: options.layout.clone(),
            me: me.clone(),
            node_id,
            witness: options.witness,
            identity,
            snapshot_dir,
            state_machine,
            active_commit: AtomicU64::new(u64::MAX),
            receiving_snapshot: AtomicBool::new(false),
            last_append_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            leading_since: std::sync::Mutex::new(None),
            stop: stop_tx,
            published: published_tx,
            management: std::sync::OnceLock::new(),
            publish_hook: std::sync::OnceLock::new(),
            array_fingerprint: std::sync::OnceLock::new(),
            direct_applied,
        });
        let broadcaster = (!options.layout.is_single() && !options.witness).then(|| Broadcaster::start(&options.layout, &me));
        // Without a secret the group port would obey anyone: a lone server then has none.
        if options.group_port && options.layout.secret.is_some() {
            let bind = options.group_bind.clone().unwrap_or_else(|| me.group_addr());
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .map_err(|e| StartError::Raft(format!("cannot listen on the group port {bind}: {e}")))?;
            tokio::spawn(group.clone().serve(listener));
        }
        if options.layout.is_single() {
            if !raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))? {
                let members = BTreeMap::from([(node_id, BasicNode { addr: me.group_addr() })]);
                raft.initialize(members).await.map_err(|e| StartError::Raft(e.to_string()))?;
            }
            raft.wait(Some(ACTIVE_DEADLINE))
                .state(openraft::ServerState::Leader, "this server becomes the active of its stripe")
                .await
                .map_err(|e| StartError::Raft(e.to_string()))?;
            // Serve nothing before every committed entry is applied (after a restart).
            raft.ensure_linearizable(ReadPolicy::ReadIndex).await.map_err(|e| StartError::Raft(e.to_string()))?;
            // A lone server's state changes are logged as a stripe member's are.
            membership::spawn_state_log(group.clone());
        } else {
            if options.layout.secret.is_none() {
                return Err(StartError::Raft("a stripe with more than one member needs cluster.secret".into()));
            }
            membership::spawn(group.clone());
        }
        if !options.witness {
            tokio::spawn(trim_log_behind_snapshots(raft.clone(), log.clone()));
            tokio::spawn(retry_failed_snapshots(raft.clone(), snapshots.clone()));
        }
        let clock = Arc::new(Mutex::new(EntryClock::new(applied_time_ms)));
        let (proposals, queue) = mpsc::unbounded_channel();
        tokio::spawn(batch_proposals(raft.clone(), clock.clone(), options.layout.clone(), queue));
        tracing::info!(server = %options.name, stripe = %options.layout.stripe, node_id, "member started");
        Ok(Replica {
            clock,
            proposals,
            raft,
            log,
            store,
            health,
            snapshots,
            group,
            stop,
            broadcaster,
            published: Mutex::new(Some(published)),
            _data_dir: data_dir,
            direct,
        })
    }

    /// The upper bound of the election timeout: how long a request waits for an active.
    pub fn election_time(&self) -> Duration {
        self.group.election_time()
    }

    /// Resolves when the stripe asks this process to stop (`tandem stop`, or a
    /// refusal to join): `Some(reason)` for a refusal. Also when this member's Raft
    /// core has stopped by itself (an internal error, a failed store), with the reason:
    /// a member without its core can neither vote nor apply, and a process that stayed
    /// up without one would hold its place in the stripe for good; one that exits
    /// with the reason is restarted by its supervisor and rejoins.
    pub async fn stop_requested(&self) -> Option<String> {
        let mut stop = self.stop.clone();
        let mut core = self.raft.server_metrics();
        let mut stop_open = true;
        loop {
            if let Some(s) = stop.borrow_and_update().clone() {
                return match s {
                    Stop::Requested => None,
                    Stop::Refused(why) | Stop::Failed(why) => Some(why),
                };
            }
            tokio::select! {
                changed = stop.changed(), if stop_open => stop_open = changed.is_ok(),
                changed = core.changed() => if changed.is_err() {
                    let why = match self.raft.with_raft_state(|_| ()).await {
                        Err(fatal) => super::explain::fatal(&fatal),
                        Ok(()) => "this server's Raft member stopped".to_string(),
                    };
                    tracing::error!(error = %why, "the Raft member stopped by itself: this process exits so that it can be restarted");
                    return Some(format!("{why}; the process exits so that it can be restarted"));
                },
            }
        }
    }

    /// Sends a PUBLISH (`shard`: an SPUBLISH) made here to the stripe's other servers
    /// (best effort).
    pub fn broadcast_publish(&self, channel: &bytes::Bytes, message: &bytes::Bytes, shard: bool) {
        if let Some(b) = &self.broadcaster {
            b.publish(channel, message, shard);
        }
    }

    /// As [`Replica::broadcast_publish`], with each server's count of receivers.
    pub fn broadcast_publish_counted(
        &self,
        channel: &bytes::Bytes,
        message: &bytes::Bytes,
        shard: bool,
    ) -> Vec<tokio::sync::oneshot::Receiver<u64>> {
        self.broadcaster.as_ref().map(|b| b.publish_counted(channel, message, shard)).unwrap_or_default()
    }

    /// PUBLISHes made on the stripe's other servers (taken once, by the server).
    pub fn take_published(&self) -> Option<mpsc::UnboundedReceiver<super::group::Published>> {
        self.published.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Where client requests for this stripe go right now.
    pub fn active_at(&self) -> Active {
        // Read the metrics in place (no await while borrowed). The server half: it
        // holds all this reads, and is what `keep_view` waits on (openraft sends it
        // before the whole metrics, so reading the whole could see the old active).
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow_watched();
        match m.current_leader {
            Some(id) if id == m.id && !self.group.witness => Active::Here,
            Some(id) => {
                let member = m.membership_config.membership().get_node(&id).and_then(|n| self.group.layout.by_group_addr(&n.addr));
                match member.and_then(|x| Some((x.name.clone(), x.client_addr()?))) {
                    Some((name, client_addr)) => Active::There { name, client_addr },
                    None => Active::Unknown,
                }
            }
            None => Active::Unknown,
        }
    }

    pub fn state(&self) -> ServerState {
        self.group.state()
    }

    /// This member and the stripe as it sees them.
    pub fn replication_view(&self) -> ReplicationView {
        self.group.view()
    }

    pub fn refuse_if_disk_trouble(&self) -> Result<(), WriteError> {
        match self.health.problem() {
            Some(problem) => Err(WriteError::DiskTrouble { problem }),
            None => Ok(()),
        }
    }

    /// Proposes `ops`, gathered with other connections' writes into shared entries;
    /// one reply per op once committed and applied.
    ///
    /// On a stripe whose only member is this in-memory server, the ops are applied at
    /// once as an entry of their own, at the index after the store's last: a Raft
    /// round there decides nothing (one voter, no log kept past a restart, no member
    /// to send it to) and cost about 39,000 instructions an entry (BENCHMARKS.md).
    /// Everything that reads the store sees the same as through the log: the entry's
    /// time and seed from the same clock, log-like indexes for WATCH and tracking,
    /// scripts applied off the runtime, the same notices. openraft's log stays at its
    /// start-up entries; the replication view reports the store's index.
    pub async fn submit(&self, ops: Vec<Op>, origin: u64) -> Result<Vec<Reply>, WriteError> {
        let summary = self.admissible(&ops)?;
        if let Some(sm) = &self.direct {
            let entry = self.direct_entry(ops.into(), origin, summary)?;
            return sm.apply_direct(entry).await.map_err(|e| self.direct_apply_failed(e));
        }
        let (reply, done) = oneshot::channel();
        self.proposals.send(Proposal { ops, origin, summary, reply }).map_err(|_| WriteError::Stopped)?;
        done.await.map_err(|_| WriteError::StoppedInFlight)?
    }

    /// [`Replica::submit`] of ops of no script on a lone in-memory server, applied on
    /// the store the caller holds (see `Core::write_now`). `None` where writes take
    /// the log. The entry is dropped before this returns: the caller's copy of `ops`
    /// is the only one left, unless the apply kept one.
    pub fn submit_locked(&self, ops: Arc<[Op]>, origin: u64, store: &mut Store) -> Option<Result<Vec<Reply>, WriteError>> {
        let sm = self.direct.as_ref()?;
        let entry = match self.admissible(&ops).and_then(|summary| self.direct_entry(ops, origin, summary)) {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        Some(sm.apply_direct_locked(entry, store).map_err(|e| self.direct_apply_failed(e)))
    }

    /// What refuses any write: disk trouble, a proposal over its bound. Its summary.
    fn admissible(&self, ops: &[Op]) -> Result<OpsSummary, WriteError> {
        self.refuse_if_disk_trouble()?;
        let summary = OpsSummary::of(ops);
        if proposal_bytes(&summary) > PROPOSAL_BYTES_MAX {
            return Err(WriteError::TooLarge { max_bytes: PROPOSAL_BYTES_MAX });
        }
        Ok(summary)
    }

    /// The entry of `ops` for the direct path: stamped by the entry clock.
    fn direct_entry(&self, ops: Arc<[Op]>, origin: u64, summary: OpsSummary) -> Result<crate::store::Entry, WriteError> {
        // After a failed apply, nothing more is applied before the process exits.
        if matches!(*self.stop.borrow(), Some(Stop::Failed(_))) {
            return Err(WriteError::Stopped);
        }
        let count = ops.len();
        let mut entry = self.clock.lock().unwrap_or_else(|e| e.into_inner()).entry(ops);
        if origin != 0 {
            entry.origins = Some(std::iter::repeat_n(origin, count).collect());
        }
        entry.summary = Some(summary);
        Ok(entry)
    }

    /// A failed direct apply may have left part of the entry in the store: as when a
    /// Raft core stops on one, the process exits with the reason, and the client is
    /// told the outcome is unknown.
    fn direct_apply_failed(&self, e: std::io::Error) -> WriteError {
        let why = format!("applying a write failed: {e}; the process exits so that it can be restarted");
        tracing::error!(error = %why, "the store could not apply a write");
        let _ = self.group.stop.send(Some(Stop::Failed(why)));
        WriteError::StoppedInFlight
    }

    /// True when writes here skip the Raft log (a lone in-memory server, see
    /// [`Replica::submit`]).
    pub fn applies_directly(&self) -> bool {
        self.direct.is_some()
    }

    /// Waits until a read here would see every write acknowledged before it started.
    ///
    /// A stripe whose only voter is this server needs no round: nobody else can have
    /// committed anything, and every write acknowledged here was applied before its
    /// reply (start-up applies everything committed before serving).
    pub async fn linearize(&self) -> Result<(), ReadError> {
        if self.sole_voter() {
            return Ok(());
        }
        self.raft.ensure_linearizable(ReadPolicy::LeaseRead).await.map(|_| ()).map_err(|e| ReadError::from_raft(e, &self.group.layout))
    }

    /// Whether a read here is linearizable now, with no round to wait for: this
    /// server is its stripe's only voter ([`Replica::linearize`]'s first case). A lone
    /// in-memory server, whose writes skip the log ([`Replica::submit`]), is that
    /// for its whole life, with no look at Raft's metrics (a lock and a walk of the
    /// membership), until it stops.
    pub fn linearizable_now(&self) -> bool {
        match self.direct {
            Some(_) => self.stop.borrow().is_none(),
            None => self.sole_voter(),
        }
    }

    /// What a WATCH run on this server (the active) records: the index of the last
    /// entry applied here and the time. EXEC's entry carries it and apply compares
    /// (see `store::watch`). Until the active has applied an entry of its own term it
    /// may not have applied everything committed before it took over, and a snapshot
    /// of the old format loaded on another member may number its keys above what this
    /// one applied: the stamp is then index 0, which only fails the transaction.
    pub fn watch_stamp(&self, store: &Store, time_ms: u64) -> WatchStamp {
        let current_term = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            m.last_applied.as_ref().is_some_and(|l| l.leader_id.term == m.current_term)
        };
        WatchStamp { index: if current_term { store.db.index() } else { 0 }, time_ms }
    }

    /// Asks for a snapshot when the in-memory log has grown past its budget; the
    /// purge that follows frees it.
    pub async fn snapshot_if_log_large(&self) {
        let live = self.live_snapshots();
        if live {
            // Nobody can need entries behind a live snapshot: purge all of them.
            let (snapshot, purged) = {
                let m = self.raft.metrics().borrow_watched().clone();
                (m.snapshot.map(|s| s.index), m.purged.map(|p| p.index))
            };
            if let Some(index) = snapshot.filter(|s| Some(*s) > purged) {
                let _ = self.raft.trigger().purge_log(index).await;
            }
        }
        let budget = if live { LOG_MEMORY_LIVE_SNAPSHOT_BYTES } else { LOG_MEMORY_SNAPSHOT_BYTES };
        if self.log.memory_bytes() > budget {
            let _ = self.raft.trigger().snapshot().await;
        }
    }

    /// True when a proposal here now will not meet an expired lease: this server is
    /// the stripe's only voter, or not the active at all (it is refused as such), or
    /// the active with a majority's acknowledgement within half an election time.
    pub fn lease_fresh(&self) -> bool {
        let half = self.election_time() / 2;
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let id = m.id;
        let sole = m.membership_config.membership().get_joint_config().iter().all(|c| c.len() == 1 && c.contains(&id));
        !m.state.is_leader() || sole || m.last_quorum_acked.as_ref().is_some_and(|t| openraft::Instant::elapsed(&**t) < half)
    }

    /// True while this server is the active and the stripe's only voter.
    fn sole_voter(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let id = m.id;
        m.state.is_leader() && m.membership_config.membership().get_joint_config().iter().all(|c| c.len() == 1 && c.contains(&id))
    }

    /// True for a lone non-restartable server, whose snapshots copy nothing.
    fn live_snapshots(&self) -> bool {
        if self._data_dir.is_some() {
            return false;
        }
        let m = self.raft.metrics().borrow_watched().membership_config.clone();
        m.membership().nodes().count() == 1
    }

    /// Takes a snapshot covering everything applied so far and waits until it is built
    /// (and, when restartable, on disk). openraft drops a request for a snapshot while
    /// one is being built, and that one may stop short of the last applied entry: the
    /// request is made again when a build ends short of it (or, should the request
    /// have been dropped for another reason, a disk refusing writes, every second).
    ///
    /// A SAVE starts a build at once even moments after a failed one, and answers with
    /// the failure of a build that started after it came (one already running may end
    /// either way: it is asked again). While the last build failed, a snapshot that
    /// covers everything is not enough: one more must succeed.
    pub async fn snapshot_now(&self) -> Result<(), SaveError> {
        let target = self.raft.metrics().borrow_watched().last_applied.map(|l| l.index);
        let covered = |m: &openraft::RaftMetrics<TypeConfig>| m.snapshot.map(|s| s.index) >= target;
        let deadline = tokio::time::Instant::now() + SAVE_WAIT;
        let mut ended = self.snapshots.ended();
        let first = self.snapshots.next_build();
        self.snapshots.retry_now();
        loop {
            // No build starts while the log's disk refuses writes: say so at once.
            if let Some(problem) = self.health.problem() {
                return Err(SaveError::Failed { problem });
            }
            let seen = {
                let m = self.raft.metrics();
                let m = m.borrow_watched();
                if covered(&m) && !self.snapshots.troubled() {
                    break;
                }
                m.snapshot
            };
            self.raft.trigger().snapshot().await.map_err(|_| SaveError::Stopped)?;
            let wait = SAVE_ASK_AGAIN.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let waiter = self.raft.wait(Some(wait));
            // Covered is enough only once no failure stands (else the build asked for
            // decides, through `ended`).
            let built = waiter.metrics(
                |m| (covered(m) && !self.snapshots.troubled()) || m.snapshot != seen,
                "a snapshot covers the last applied entry, or one was built",
            );
            tokio::pin!(built);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut built => break outcome,
                    Ok(()) = ended.changed() => {
                        let last = *ended.borrow_and_update();
                        if last.failed && last.build >= first {
                            let problem = self.snapshots.problem().unwrap_or_else(|| "see the server's log".into());
                            return Err(SaveError::Failed { problem });
                        }
                        // A success shows in the metrics (which openraft updates after
                        // this: looking again now would ask for a second build). A
                        // build older than this SAVE failed: another is asked for, at
                        // once, when the wait ends.
                        if last.failed {
                            self.snapshots.retry_now();
                        }
                    }
                }
            };
            match outcome {
                Ok(_) => {}
                Err(openraft::metrics::WaitError::Timeout(..)) if tokio::time::Instant::now() < deadline => {}
                Err(openraft::metrics::WaitError::Timeout(..)) => return Err(SaveError::TimedOut { secs: SAVE_WAIT.as_secs() }),
                Err(_) => return Err(SaveError::Stopped),
            }
        }
        self.snapshots.saved_now();
        Ok(())
    }

    pub async fn snapshot_soon(&self) {
        let _ = self.raft.trigger().snapshot().await;
    }

    /// When a snapshot was last written (LASTSAVE).
    pub fn last_snapshot_unix_secs(&self) -> u64 {
        self.snapshots.last_written_unix_secs()
    }

    pub fn is_active(&self) -> bool {
        self.group.is_active()
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
    }
}

/// Runs a voter until `shutdown` turns true or the stripe asks it to stop.
pub async fn run_voter(options: ReplicaOptions, mut shutdown: watch::Receiver<bool>) -> Result<(), StartError> {
    let (notices, _) = mpsc::unbounded_channel();
    let replica = Replica::start(options, notices).await?;
    tracing::info!(voter = %replica.group.me.name, node_id = replica.group.node_id, "voter ready");
    let refused = tokio::select! {
        why = replica.stop_requested() => why,
        _ = shutdown.wait_for(|s| *s) => None,
    };
    replica.shutdown().await;
    match refused {
        Some(why) => Err(StartError::Raft(why)),
        None => Ok(()),
    }
}

/// After a failed snapshot, tries again [`snapshot_health::RETRY`] after each failure
/// until one is written: clients' writes are refused meanwhile, so no new entry would
/// ask for one. A failure before this task first looks is seen too.
async fn retry_failed_snapshots(raft: Raft, health: Arc<SnapshotHealth>) {
    let mut ended = health.ended();
    loop {
        if let Some(at) = health.retry_at() {
            tokio::time::sleep_until(at.into()).await;
            if health.problem().is_some() {
                ended.mark_unchanged();
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
                // Its outcome, or (a build deferred for the log's disk, or dropped
                // for one already running) another look after a while.
                let _ = tokio::time::timeout(snapshot_health::RETRY, ended.changed()).await;
                continue;
            }
        }
        if ended.changed().await.is_err() {
            return;
        }
    }
}

/// On a data-holding server: after each snapshot, purges the log behind it down to
/// [`LOG_BYTES_KEPT_BEHIND_SNAPSHOT`] (openraft keeps a number of entries, whatever
/// their size). A mirror lagging further than that would get the snapshot, which
/// holds the data (a voter's does not: voters never run this); but so that a mirror
/// that fell behind during a bulk load (reconnecting, receiving a snapshot) is not
/// sent one snapshot after another, the active never trims past what every other
/// member has matched: while one lags, openraft's own purge rule alone applies.
async fn trim_log_behind_snapshots(raft: Raft, log: LogStore) {
    // Woken when a snapshot is built or installed, not by every entry (Raft's whole
    // metrics change with each one; this is the snapshot's own progress).
    let mut snapshots = raft.watch_snapshot_progress();
    let metrics = raft.metrics();
    let mut seen = None;
    // Held back by a lagging member: looked at again every second.
    let mut held_back = false;
    loop {
        let snapshot = snapshots.get().map(|s| s.index);
        if snapshot != seen || held_back {
            seen = snapshot;
            held_back = false;
            if let Some(wanted) = snapshot.and_then(|s| log.purge_point(s, LOG_BYTES_KEPT_BEHIND_SNAPSHOT)) {
                let (purged, followers_floor) = {
                    let m = metrics.borrow_watched();
                    let floor = m.replication.as_ref().map(|r| {
                        r.iter().filter(|(id, _)| **id != m.id).map(|(_, matched)| matched.map_or(0, |l| l.index)).min().unwrap_or(u64::MAX)
                    });
                    (m.purged.map(|p| p.index), floor)
                };
                let upto = followers_floor.map_or(wanted, |floor| wanted.min(floor));
                held_back = upto < wanted;
                if Some(upto) > purged {
                    if let Err(e) = raft.trigger().purge_log(upto).await {
                        tracing::debug!(error = %e, "trimming the log behind the snapshot");
                    }
                }
            }
        }
        let known = seen;
        let next = snapshots.wait_until(move |s| s.map(|l| l.index) != known);
        if held_back {
            // Not on every commit: once a second, unless a snapshot comes first.
            tokio::select! {
                changed = next => if changed.is_err() { return },
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        } else if next.await.is_err() {
            return;
        }
    }
}

/// Gathers proposals into entries: at most `ENTRIES_IN_FLIGHT_MAX` entries wait for
/// commit at a time; everything submitted meanwhile joins the next one.
async fn batch_proposals(raft: Raft, clock: Arc<Mutex<EntryClock>>, layout: StripeLayout, mut queue: mpsc::UnboundedReceiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(ENTRIES_IN_FLIGHT_MAX));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        let mut ops_count = batch[0].ops.len();
        let mut summary = batch[0].summary;
        while ops_count < OPS_PER_ENTRY_MAX && proposal_bytes(&summary) < ENTRY_BYTES_TARGET {
            match queue.try_recv() {
                Ok(p) => {
                    ops_count += p.ops.len();
                    summary += p.summary;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        // The ops are moved once, from the proposals into the entry's shared slice
        // (a `Vec` turned into an `Arc<[Op]>` is copied again, and a batch of a
        // pipelined run is thousands of ops read back from memory).
        let mut ops: Arc<[std::mem::MaybeUninit<Op>]> = Arc::new_uninit_slice(ops_count);
        let slots = Arc::get_mut(&mut ops).expect("a slice just made has no other owner");
        let mut filled = 0;
        let mut waiters = Vec::with_capacity(batch.len());
        let mut origins: Option<Vec<u64>> = None;
        for p in batch {
            if p.origin != 0 {
                origins.get_or_insert_with(|| vec![0; filled]);
            }
            if let Some(origins) = &mut origins {
                origins.extend(std::iter::repeat_n(p.origin, p.ops.len()));
            }
            waiters.push((p.ops.len(), p.reply));
            for op in p.ops {
                slots[filled].write(op);
                filled += 1;
            }
        }
        assert_eq!(filled, ops_count, "every op of the batch was counted");
        // SAFETY: `ops_count` is the sum of the proposals' op counts (the batch is
        // not touched after it is counted), so the loop above initialised every
        // slot, as the assertion checks before this is reached.
        let ops = unsafe { ops.assume_init() };
        let mut entry = clock.lock().unwrap_or_else(|e| e.into_inner()).entry(ops);
        entry.origins = origins.map(Into::into);
        // What the proposals counted is what the entry holds (checked in debug builds:
        // the count reads every op again, which is what carrying it saves).
        debug_assert_eq!(summary, crate::store::OpsSummary::of(&entry.ops), "an entry's summary is its ops'");
        entry.summary = Some(summary);
        let layout = layout.clone();
        let responder = Deliver::new(move |result: ClientWriteResult<TypeConfig>| {
            drop(permit);
            match result {
                Ok(response) => {
                    let mut replies = response.data.0.into_iter();
                    for (n, reply) in waiters {
                        let _ = reply.send(Ok(replies.by_ref().take(n).collect()));
                    }
                }
                Err(e) => {
                    let e = WriteError::from_raft(openraft::errors::RaftError::APIError(e), &layout);
                    for (_, reply) in waiters {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
        if let Err(fatal) = raft.client_write_ff(entry, Some(responder)).await {
            // The core is gone. The entry never reached it, but its responder went
            // with it: dropped, it closed the waiters' channels, and they answer
            // that the member stopped with the write in flight (outcome unknown:
            // more than the truth, never less).
            tracing::error!(error = %fatal, "the stripe's Raft member stopped; writes are refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 7 of issue 9: node ids came from the wall clock (ms << 8), so two
    /// drawn in the same millisecond, or after the clock stepped back, repeated.
    #[test]
    fn issue_9_fresh_node_ids_are_random_never_zero_and_never_repeat() {
        let ids: std::collections::HashSet<u64> = (0..10_000).map(|_| fresh_node_id()).collect();
        assert_eq!(ids.len(), 10_000, "node ids repeated");
        assert!(!ids.contains(&0));
        assert!(ids.iter().all(|id| *id <= i64::MAX as u64), "an id must stay a positive RESP integer");
    }
}
