//! Deterministic simulation of a stripe's Raft glue under `turmoil`: three members,
//! each our in-memory [`LogStore`] and our [`StateMachine`] over a [`Store`], talking
//! over simulated TCP with the group port's frames, handshake and messages
//! ([`transport`], [`wire`]), while one seed decides message latencies, election
//! timeouts, the workload and the faults: partitions, held links (delay and
//! reordering across connections), message loss and crashes. A crashed member
//! comes back empty, like a non-persistent server: a new node id that the active
//! adds as a learner and then swaps into the voters for the old id of the same host
//! (the path `membership` takes when a member lost its state).
//!
//! Invariants are checked between simulation steps (every step for the state
//! machines, every [`OBSERVE_EVERY_MS`] for the rest):
//! - **members keep running**: no member's Raft stops (a panic or storage error);
//! - **election safety**: every leader holds its own vote, and a quorum of each of
//!   its configs can have granted it (no live voter holds a lower vote);
//!   `leader_id_adv` allows several leaders in one term, one after the other, so
//!   leaders per term are counted, not limited;
//! - **log matching**: two logs with an entry of the same index and log id hold the
//!   same entry and the same predecessor (hence the same prefix);
//! - **committed entries agree** and **leader completeness**: a new leader holds
//!   every entry seen committed before it was elected;
//! - **state-machine safety**: members that applied the same index have the same
//!   [`Store::digest`] there;
//! - at the end, after healing: the members converge, every acknowledged write is
//!   in every member's data (and in the log at its index), no write refused with
//!   `ForwardToLeader` took effect, list appends keep the order of their
//!   acknowledgements, and the counter lies between acknowledged and attempted
//!   increments.
//!
//! What is not simulated: snapshots (built and written on blocking threads, which
//! simulated time cannot order; the log is never purged here), restartable logs (a
//! writer thread and fsync), and `network.rs`/`group.rs` themselves, which are tied
//! to tokio's sockets: this file has its own small client and server over
//! turmoil's sockets that use the same encodings and handshake.
//!
//! Determinism: turmoil's RNG (latencies, loss) comes from the seed; openraft's
//! (election timeouts) from [`runtime::SimRuntime`], the unit tests' runtime, which
//! also replaces tokio's watch channel (tokio picks its waiters' queue with an RNG
//! nobody can seed); entry seeds, node ids, the workload and the fault schedule
//! come from the seed. A crash cuts the host's links for its instant (see
//! [`Faults::crash`]). `sim_replays_a_seed_exactly` runs one seed twice and
//! compares every observation. The handshake's nonces stay random: they change
//! bytes, never sizes or timing.
//!
//! Run: `cargo test --lib sim`. More seeds: `TANDEM_SIM_SEEDS=1000 cargo test --lib
//! sim -- --nocapture` (seeds 0..N; `TANDEM_SIM_SEED_BASE` moves the start); one
//! seed: `TANDEM_SIM_SEED=42`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, VoteRequest, VoteResponse};
use openraft::storage::RaftStateMachine;
use openraft::{
    AsyncRuntime, BasicNode, ChangeMembers, Config, OptionalSend, RaftLogReader, RaftMetrics, RaftNetworkFactory, RaftNetworkV2,
    ServerState, SnapshotPolicy,
};
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use turmoil::net::{TcpListener, TcpStream};

pub(crate) mod runtime;

use runtime::SimRuntime as Runtime;

use super::log_store::LogStore;
use super::replica::Raft;
use super::state_machine::{SnapshotData, StateMachine};
use super::transport::{self, Identity, FRAME_BYTES_MAX};
use super::types::{LogId, RaftEntry, TypeConfig};
use super::wire::{self, Request, Response};
use crate::commands;
use crate::protocol::reply::Reply;
use crate::store::{Entry, Op, Store};

/// Members of the simulated stripe (hosts `m0`, `m1`, `m2`).
const HOSTS: usize = 3;
const GROUP_PORT: u16 = 7000;
/// The stripe's `election-time` in the simulation: short, so a few simulated
/// seconds see many elections. The Raft config derives from it as in `replica.rs`.
const ELECTION_TIME_MS: u64 = 400;
/// Invariants over logs and metrics are checked this often (state machines: every step).
const OBSERVE_EVERY_MS: u64 = 10;
/// The leader proposes one write this often, at most `WRITES_IN_FLIGHT` at a time.
const WRITE_EVERY_MS: u64 = 7;
const WRITES_IN_FLIGHT: usize = 4;
/// The active's membership duties (add a learner, promote it) run this often.
const DUTIES_EVERY_MS: u64 = 50;
/// A learner within this many entries of the leader's log is promoted.
const PROMOTE_LAG_MAX: u64 = 10;
/// As `network.rs`: a connection attempt gives up after this long, and appends wait
/// at least this long for an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const APPEND_TIMEOUT_MIN: Duration = Duration::from_millis(500);
/// A server connection that carries nothing for this long is closed (a lost segment
/// stalls a simulated TCP stream for good; the caller has long given up on it).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How one run goes: the length of the faulty phase and how hard it hits.
#[derive(Debug, Clone)]
struct Plan {
    /// Simulated time with writes and faults.
    faults_ms: u64,
    /// After healing: how long the members have to converge.
    converge_ms: u64,
    /// Chance per observation tick to start a network fault / crash a member.
    net_fault_per_tick: f64,
    crash_per_tick: f64,
}

impl Plan {
    fn ci() -> Plan {
        Plan { faults_ms: 6_000, converge_ms: 20_000, net_fault_per_tick: 0.05, crash_per_tick: 0.02 }
    }
}

/// The Raft config of a non-restartable member of a stripe of several, as
/// `replica::raft_config` makes it for `election-time = ELECTION_TIME_MS`.
fn raft_config() -> Arc<Config> {
    let election_max = ELECTION_TIME_MS;
    let config = Config {
        cluster_name: "sim/s0".into(),
        heartbeat_interval: (election_max / 6).max(20),
        election_timeout_min: election_max / 2,
        election_timeout_max: election_max,
        enable_pre_vote: Some(true),
        // As replica.rs (100 000 entries): never reached in a run, so no snapshot
        // is built (see the module docs).
        snapshot_policy: SnapshotPolicy::LogsSinceLast(100_000),
        max_in_snapshot_log_to_keep: 500,
        purge_batch_size: 100,
        enable_leader_restore: Some(false),
        allow_log_reversion: Some(true),
        api_channel_size: Some(1024),
        notification_channel_size: Some(1024),
        state_machine_channel_size: Some(256),
        api_batch_capacity: 64,
        ..Default::default()
    };
    Arc::new(config.validate().expect("the simulation's Raft config is valid"))
}

fn host_name(host: usize) -> String {
    format!("m{host}")
}

fn group_addr(host: usize) -> String {
    format!("{}:{GROUP_PORT}", host_name(host))
}

fn identity(host: usize) -> Identity {
    Identity { cluster: "sim".into(), stripe: "s0".into(), name: host_name(host), secret: b"simulated secret".to_vec(), tls: None }
}

fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------
// What the hosts share with the driver: who runs where, the workload, the history.

/// One running member: handles the checker reads between steps.
#[derive(Clone)]
struct Node {
    id: u64,
    raft: Raft,
    log: LogStore,
    sm: StateMachine,
    store: Arc<Mutex<Store>>,
}

#[derive(Default)]
struct HostSlot {
    /// Incarnations started so far (0: never started).
    started: u32,
    node: Option<Node>,
    /// Every node id this host has run as.
    ids: Vec<u64>,
}

/// What a write does; `n` makes every value unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Set,
    Append,
    Incr,
}

const LISTS: u64 = 3;

impl Kind {
    fn of(n: u64) -> Kind {
        match n % 4 {
            0 => Kind::Append,
            1 => Kind::Incr,
            _ => Kind::Set,
        }
    }

    fn args(self, n: u64) -> Vec<Bytes> {
        let s = |t: String| Bytes::from(t.into_bytes());
        match self {
            Kind::Set => vec![s("SET".into()), s(format!("key{n}")), s(format!("value{n}"))],
            Kind::Append => vec![s("RPUSH".into()), s(format!("list{}", n % LISTS)), s(format!("item{n}"))],
            Kind::Incr => vec![s("INCR".into()), s("counter".into())],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// No answer (the member crashed, or the run ended first).
    Pending,
    Acked {
        log_id: LogId,
        at_ms: u64,
    },
    /// `ForwardToLeader`: refused before it was appended; it must never take effect.
    Refused,
    /// Any other error: it may or may not take effect.
    Unknown(String),
}

#[derive(Debug, Clone)]
struct Write {
    n: u64,
    /// The node that proposed it.
    node: u64,
    invoked_ms: u64,
    outcome: Outcome,
}

struct ClusterState {
    hosts: Vec<HostSlot>,
    next_node_id: u64,
    /// Entry seeds and per-incarnation runtime seeds.
    rng: Xoshiro256PlusPlus,
    writes_open: bool,
    history: Vec<Write>,
    snapshot_sends: u64,
}

#[derive(Clone)]
struct Cluster(Arc<Mutex<ClusterState>>);

impl Cluster {
    fn new(seed: u64) -> Cluster {
        Cluster(Arc::new(Mutex::new(ClusterState {
            hosts: (0..HOSTS).map(|_| HostSlot::default()).collect(),
            next_node_id: 100,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed_c1a5_7e12_0001),
            writes_open: true,
            history: Vec::new(),
            snapshot_sends: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new incarnation of `host`: its node id (the first ones are 1, 2, 3; a
    /// restarted host gets a fresh one, as a non-persistent server does), whether it
    /// founds the stripe, and the seed of its Raft's randomness.
    fn start_incarnation(&self, host: usize) -> (u64, bool, u64) {
        let mut st = self.lock();
        let first = st.hosts[host].started == 0;
        let id = if first {
            host as u64 + 1
        } else {
            st.next_node_id += 1;
            st.next_node_id
        };
        let seed = st.rng.next_u64();
        let slot = &mut st.hosts[host];
        slot.started += 1;
        slot.ids.push(id);
        (id, first && host == 0, seed)
    }

    fn set_node(&self, host: usize, node: Node) {
        self.lock().hosts[host].node = Some(node);
    }

    fn crashed(&self, host: usize) {
        self.lock().hosts[host].node = None;
    }

    fn nodes(&self) -> Vec<(usize, Node)> {
        self.lock().hosts.iter().enumerate().filter_map(|(h, s)| s.node.clone().map(|n| (h, n))).collect()
    }

    /// The next write, recorded as invoked; `None` once the workload stopped.
    fn next_write(&self, node: u64) -> Option<(usize, Entry)> {
        let mut st = self.lock();
        if !st.writes_open {
            return None;
        }
        let n = st.history.len() as u64;
        let invoked_ms = now_ms();
        st.history.push(Write { n, node, invoked_ms, outcome: Outcome::Pending });
        let entry = Entry {
            time_ms: invoked_ms,
            seed: st.rng.next_u64(),
            ops: vec![Op::Command(Kind::of(n).args(n))].into(),
            origins: None,
            summary: None,
        };
        Some((n as usize, entry))
    }

    fn finish(&self, index: usize, outcome: Outcome) {
        if let Some(w) = self.lock().history.get_mut(index) {
            w.outcome = outcome;
        }
    }
}

// ---------------------------------------------------------------------------------
// The network adapter: openraft's RPCs as group-port messages over turmoil's TCP.

struct SimNetwork {
    identity: Identity,
    cluster: Cluster,
}

struct SimPeer {
    target: u64,
    addr: String,
    identity: Identity,
    cluster: Cluster,
    conn: Option<TcpStream>,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> SimPeer {
        SimPeer { target, addr: node.addr.clone(), identity: self.identity.clone(), cluster: self.cluster.clone(), conn: None }
    }
}

impl SimPeer {
    /// One request and its answer, as `network.rs` does it: a connection that
    /// cannot be opened or shaken hands with is `Unreachable` (openraft backs off),
    /// one that breaks is dropped (`Network`) and reopened by the next call.
    async fn call(&mut self, request: &[u8], timeout: Duration) -> Result<Response, RPCError<TypeConfig>> {
        if self.conn.is_none() {
            let opened = tokio::time::timeout(CONNECT_TIMEOUT, async {
                let mut stream = TcpStream::connect(self.addr.as_str()).await?;
                transport::handshake(&mut stream, &self.addr, &self.identity, self.target).await?;
                Ok::<_, std::io::Error>(stream)
            })
            .await;
            match opened {
                Ok(Ok(stream)) => self.conn = Some(stream),
                Ok(Err(e)) => return Err(unreachable(format!("member {} at {}: {e}", self.target, self.addr))),
                Err(_) => return Err(unreachable(format!("member {} at {}: connecting timed out", self.target, self.addr))),
            }
        }
        let stream = self.conn.as_mut().expect("connected above");
        let answer = match transport::call(stream, request, timeout).await {
            Ok(answer) => answer,
            Err(e) => {
                self.conn = None;
                return Err(RPCError::Network(NetworkError::from_string(format!("{}: {e}", self.addr))));
            }
        };
        match Response::decode(&answer) {
            Ok(Response::Error(why)) => Err(RPCError::Network(NetworkError::from_string(format!("{} answered: {why}", self.addr)))),
            Ok(response) => Ok(response),
            Err(e) => {
                self.conn = None;
                Err(RPCError::Network(NetworkError::from_string(format!("{} sent an unreadable answer: {e}", self.addr))))
            }
        }
    }

    fn unexpected(&self, what: &str) -> RPCError<TypeConfig> {
        RPCError::Network(NetworkError::from_string(format!("{} answered a {what} with something else", self.addr)))
    }
}

fn unreachable(why: String) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(why))
}

impl RaftNetworkV2<TypeConfig> for SimPeer {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let body = wire::encode_append(&rpc, rpc.entries.len());
        match self.call(&body, option.hard_ttl().max(APPEND_TIMEOUT_MIN)).await? {
            Response::AppendEntries(r) => Ok(r),
            _ => Err(self.unexpected("append")),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<TypeConfig>, option: RPCOption) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&Request::Vote(rpc).encode(), option.hard_ttl()).await? {
            Response::Vote(r) => Ok(r),
            _ => Err(self.unexpected("vote")),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&Request::PreVote(rpc).encode(), option.hard_ttl()).await? {
            Response::Vote(r) => Ok(r),
            _ => Err(self.unexpected("pre-vote")),
        }
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<TypeConfig>,
        _snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        // Never expected (nothing is purged); counted so a run that needs one says so.
        self.cluster.lock().snapshot_sends += 1;
        Err(StreamingError::Unreachable(Unreachable::from_string("snapshots are not simulated")))
    }
}

/// The server side of one group connection: the handshake, then Raft RPCs, as
/// `group.rs` serves them.
async fn serve_connection(raft: Raft, me: Identity, node_id: u64, mut socket: TcpStream) {
    match transport::accept_handshake(&mut socket, &me, node_id).await {
        Ok(caller) if caller.raft => {}
        _ => return,
    }
    loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, transport::read_frame(&mut socket, FRAME_BYTES_MAX)).await {
            Ok(Ok(Some(frame))) => frame,
            _ => return,
        };
        let fatal = |e: &dyn std::fmt::Display| Response::Error(format!("this member's Raft stopped: {e}"));
        let response = match Request::decode(&frame) {
            Ok(Request::AppendEntries(req)) => raft.append_entries(req).await.map_or_else(|e| fatal(&e), Response::AppendEntries),
            Ok(Request::Vote(req)) => raft.vote(req).await.map_or_else(|e| fatal(&e), Response::Vote),
            Ok(Request::PreVote(req)) => raft.pre_vote(req).await.map_or_else(|e| fatal(&e), Response::Vote),
            Ok(Request::TransferLeader(req)) => handle_transfer(&raft, req).await,
            Ok(other) => Response::Error(format!("not simulated: {other:?}")),
            Err(e) => Response::Error(format!("unreadable request: {e}")),
        };
        if transport::write_frame(&mut socket, &response.encode()).await.is_err() {
            return;
        }
    }
}

async fn handle_transfer(raft: &Raft, req: TransferLeaderRequest<TypeConfig>) -> Response {
    match raft.handle_transfer_leader(req).await {
        Ok(r) => Response::TransferLeader(r.map_err(|e| e.to_string())),
        Err(e) => Response::Error(format!("this member's Raft stopped: {e}")),
    }
}

// ---------------------------------------------------------------------------------
// A member: the host software turmoil starts (and starts again after a crash).

async fn member(cluster: Cluster, host: usize) -> turmoil::Result {
    let (node_id, founder, seed) = cluster.start_incarnation(host);
    // Every task openraft spawns from here on draws from this seed.
    Runtime::scope(seed, run_member(cluster, host, node_id, founder)).await
}

async fn run_member(cluster: Cluster, host: usize, node_id: u64, founder: bool) -> turmoil::Result {
    let store = Arc::new(Mutex::new(Store::new()));
    let (notices, _) = tokio::sync::mpsc::unbounded_channel();
    let sm = StateMachine::new(store.clone(), None, notices)?;
    let log = LogStore::in_memory();
    let me = identity(host);
    let network = SimNetwork { identity: me.clone(), cluster: cluster.clone() };
    let raft = Raft::new(node_id, raft_config(), network, log.clone(), sm.clone()).await?;
    let listener = TcpListener::bind(("0.0.0.0", GROUP_PORT)).await?;
    cluster.set_node(host, Node { id: node_id, raft: raft.clone(), log, sm, store });
    if founder {
        let members: BTreeMap<u64, BasicNode> = (0..HOSTS).map(|h| (h as u64 + 1, BasicNode { addr: group_addr(h) })).collect();
        raft.initialize(members).await?;
    }
    Runtime::spawn(propose(raft.clone(), cluster.clone(), node_id));
    Runtime::spawn(duties(raft.clone(), cluster.clone()));
    loop {
        let (socket, _) = listener.accept().await?;
        Runtime::spawn(serve_connection(raft.clone(), me.clone(), node_id, socket));
    }
}

fn metrics(raft: &Raft) -> RaftMetrics<TypeConfig> {
    raft.metrics().borrow_watched().clone()
}

/// The clients of this member: while it leads, one write every `WRITE_EVERY_MS`,
/// at most `WRITES_IN_FLIGHT` unanswered, each recorded with its outcome.
async fn propose(raft: Raft, cluster: Cluster, node: u64) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(WRITES_IN_FLIGHT));
    loop {
        tokio::time::sleep(Duration::from_millis(WRITE_EVERY_MS)).await;
        if metrics(&raft).state != ServerState::Leader {
            continue;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else { continue };
        let Some((index, entry)) = cluster.next_write(node) else { continue };
        let (raft, cluster) = (raft.clone(), cluster.clone());
        Runtime::spawn(async move {
            let outcome = match raft.client_write(entry).await {
                Ok(r) => Outcome::Acked { log_id: r.log_id, at_ms: now_ms() },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Outcome::Refused,
                Err(e) => Outcome::Unknown(e.to_string()),
            };
            cluster.finish(index, outcome);
            drop(permit);
        });
    }
}

/// The active's part of `membership`, reduced to what the simulation needs: a host
/// that came back under a new node id is added as a learner, and once it holds the
/// log it replaces that host's old id among the voters in one joint change; a
/// learner whose host crashed again is removed.
async fn duties(raft: Raft, cluster: Cluster) {
    loop {
        tokio::time::sleep(Duration::from_millis(DUTIES_EVERY_MS)).await;
        let m = metrics(&raft);
        let membership = m.membership_config.membership().clone();
        if m.state != ServerState::Leader || membership.get_joint_config().len() > 1 {
            continue;
        }
        let hosts: Vec<(Option<u64>, Vec<u64>)> =
            cluster.lock().hosts.iter().map(|s| (s.node.as_ref().map(|n| n.id), s.ids.clone())).collect();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        let current: BTreeSet<u64> = hosts.iter().filter_map(|(id, _)| *id).collect();
        let stale: BTreeSet<u64> = learners.iter().copied().filter(|id| !current.contains(id)).collect();
        if !stale.is_empty() {
            let _ = raft.change_membership(ChangeMembers::RemoveNodes(stale), false).await;
            continue;
        }
        for (host, (id, old_ids)) in hosts.iter().enumerate() {
            let Some(id) = *id else { continue };
            if voters.contains(&id) {
                continue;
            }
            if !learners.contains(&id) {
                let _ = raft.add_learner(id, BasicNode { addr: group_addr(host) }, false).await;
                break;
            }
            let matched = m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten()).map(|l| l.index);
            let last = m.last_log_index.unwrap_or(0);
            if matched.is_some_and(|i| i + PROMOTE_LAG_MAX >= last) {
                let mut next: BTreeSet<u64> = voters.iter().copied().filter(|v| !old_ids.contains(v)).collect();
                next.insert(id);
                let _ = raft.change_membership(ChangeMembers::ReplaceAllVoters(next), false).await;
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The checker: invariants over what the members hold, between steps.

/// A violated invariant, with what the run saw last.
#[derive(Debug)]
struct Violation(String);

type Checked<T = ()> = Result<T, Violation>;

fn violation<T>(what: String) -> Checked<T> {
    Err(Violation(what))
}

/// What the trace records of one member at one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberLine {
    host: usize,
    id: u64,
    state: String,
    term: u64,
    last_log: Option<u64>,
    committed: Option<u64>,
    applied: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TraceLine {
    at_ms: u64,
    members: Vec<MemberLine>,
}

impl std::fmt::Display for TraceLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>6} ms", self.at_ms)?;
        for m in &self.members {
            write!(
                f,
                " | m{} id={} {} t{} log={:?} commit={:?} applied={:?}",
                m.host, m.id, m.state, m.term, m.last_log, m.committed, m.applied
            )?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Checker {
    /// Log matching: every (index, log id) seen in any log, with its entry and predecessor.
    seen: HashMap<(u64, u64, u64), (RaftEntry, Option<LogId>)>,
    /// Entries seen committed on some member, by index.
    committed: BTreeMap<u64, LogId>,
    /// State-machine safety: the digest first seen at each applied index.
    digests: HashMap<u64, (LogId, u64, u64)>,
    last_digested: HashMap<u64, Option<LogId>>,
    /// Leaderships (term, node) already checked for completeness.
    leaderships: BTreeSet<(u64, u64)>,
    leaders_per_term: BTreeMap<u64, BTreeSet<u64>>,
    trace: Vec<TraceLine>,
}

fn key(id: &LogId) -> (u64, u64) {
    (id.leader_id.term, id.leader_id.node_id)
}

/// The log id a log holds at `index` (logs here have no holes).
fn held(entries: &[RaftEntry], index: u64) -> Option<LogId> {
    let first = entries.first()?.log_id.index;
    index.checked_sub(first).and_then(|i| entries.get(i as usize)).map(|e| e.log_id)
}

fn entries_of(node: &Node) -> Vec<RaftEntry> {
    let mut reader = node.log.clone();
    // The in-memory log answers at once: nothing in it awaits.
    reader.try_get_log_entries(..).now_or_never().expect("the in-memory log never waits").expect("the in-memory log never fails")
}

impl Checker {
    /// State-machine safety: run after every step; digests only what changed.
    fn observe_state_machines(&mut self, nodes: &[(usize, Node)]) -> Checked {
        for (host, node) in nodes {
            let mut sm = node.sm.clone();
            let (applied, _) = sm.applied_state().now_or_never().expect("applied_state never waits").expect("applied_state never fails");
            if self.last_digested.get(&node.id) == Some(&applied) {
                continue;
            }
            self.last_digested.insert(node.id, applied);
            let Some(applied) = applied else { continue };
            // Between steps no member runs: the store holds exactly the entries up to `applied`.
            let digest = node.store.lock().unwrap_or_else(|e| e.into_inner()).digest();
            match self.digests.get(&applied.index) {
                Some((id, d, other)) if (*id, *d) != (applied, digest) => {
                    return violation(format!(
                        "state-machine safety: m{host} (node {}) applied {applied} with digest {digest:#x}, node {other} applied {id} with digest {d:#x}",
                        node.id
                    ))
                }
                Some(_) => {}
                None => {
                    self.digests.insert(applied.index, (applied, digest, node.id));
                }
            }
        }
        Ok(())
    }

    /// Everything else, every `OBSERVE_EVERY_MS`.
    fn observe(&mut self, at_ms: u64, nodes: &[(usize, Node)]) -> Checked {
        let views: Vec<(usize, &Node, RaftMetrics<TypeConfig>, Vec<RaftEntry>)> =
            nodes.iter().map(|(h, n)| (*h, n, metrics(&n.raft), entries_of(n))).collect();
        self.trace.push(TraceLine {
            at_ms,
            members: views
                .iter()
                .map(|(host, n, m, _)| MemberLine {
                    host: *host,
                    id: n.id,
                    state: format!("{:?}", m.state),
                    term: m.current_term,
                    last_log: m.last_log_index,
                    committed: m.local_committed.map(|l| l.index),
                    applied: m.last_applied.map(|l| l.index),
                })
                .collect(),
        });
        for (host, n, m, entries) in &views {
            if let Err(e) = &m.running_state {
                return violation(format!("m{host} (node {}): its Raft stopped: {e}", n.id));
            }
            self.check_log_matching(*host, n.id, entries)?;
        }
        for (host, n, m, entries) in &views {
            if m.state == ServerState::Leader {
                self.check_leader(*host, n.id, m, entries, &views)?;
            }
        }
        for (host, n, m, entries) in &views {
            self.merge_committed(*host, n.id, m, entries)?;
        }
        Ok(())
    }

    fn check_log_matching(&mut self, host: usize, id: u64, entries: &[RaftEntry]) -> Checked {
        let mut prev: Option<LogId> = None;
        for (i, entry) in entries.iter().enumerate() {
            if entry.log_id.index != entries[0].log_id.index + i as u64 {
                return violation(format!("m{host} (node {id}): a hole in the log before index {}", entry.log_id.index));
            }
            match self.seen.get(&(entry.log_id.index, entry.log_id.leader_id.term, entry.log_id.leader_id.node_id)) {
                Some((e, p)) if e != entry || *p != prev => {
                    return violation(format!(
                        "log matching: m{host} (node {id}) holds {} after {prev:?}; another log holds {} after {p:?} with the same log id",
                        entry.log_id, e.log_id
                    ))
                }
                Some(_) => {}
                None => {
                    self.seen
                        .insert((entry.log_id.index, entry.log_id.leader_id.term, entry.log_id.leader_id.node_id), (entry.clone(), prev));
                }
            }
            prev = Some(entry.log_id);
        }
        Ok(())
    }

    /// Election safety and leader completeness for a member that says it leads.
    fn check_leader(
        &mut self,
        host: usize,
        id: u64,
        m: &RaftMetrics<TypeConfig>,
        entries: &[RaftEntry],
        views: &[(usize, &Node, RaftMetrics<TypeConfig>, Vec<RaftEntry>)],
    ) -> Checked {
        let vote = m.vote.leader_id;
        if vote.node_id != id || !m.vote.committed {
            return violation(format!(
                "election safety: m{host} (node {id}) leads with the vote {} that is not its own committed vote",
                m.vote
            ));
        }
        let leadership = (vote.term, vote.node_id);
        self.leaders_per_term.entry(vote.term).or_default().insert(id);
        // Votes only grow: a live voter whose vote is below the leader's never granted it.
        let live: HashMap<u64, (u64, u64)> =
            views.iter().map(|(_, n, vm, _)| (n.id, (vm.vote.leader_id.term, vm.vote.leader_id.node_id))).collect();
        for config in m.membership_config.membership().get_joint_config() {
            let could_grant = config.iter().filter(|v| live.get(v).is_none_or(|granted| *granted >= leadership)).count();
            if could_grant * 2 <= config.len() {
                return violation(format!(
                    "election safety: m{host} leads as {leadership:?} but only {could_grant} of the voters {config:?} can have granted it (live votes: {live:?})"
                ));
            }
        }
        if !self.leaderships.insert(leadership) {
            return Ok(());
        }
        // First seen leading: it was elected after the previous observation, so it must
        // hold every entry seen committed until then under an earlier leader.
        for (index, committed) in &self.committed {
            if key(committed) >= leadership {
                continue;
            }
            let held = held(entries, *index);
            if held != Some(*committed) {
                return violation(format!(
                    "leader completeness: m{host} (node {id}) leads as {leadership:?} but holds {held:?} at index {index}, where {committed} was committed"
                ));
            }
        }
        Ok(())
    }

    fn merge_committed(&mut self, host: usize, id: u64, m: &RaftMetrics<TypeConfig>, entries: &[RaftEntry]) -> Checked {
        let Some(upto) = m.local_committed else { return Ok(()) };
        for entry in entries.iter().take_while(|e| e.log_id.index <= upto.index) {
            let known = *self.committed.entry(entry.log_id.index).or_insert(entry.log_id);
            if known != entry.log_id {
                return violation(format!(
                    "committed entries disagree: m{host} (node {id}) has {} committed at index {}, another member had {known}",
                    entry.log_id, entry.log_id.index
                ));
            }
        }
        Ok(())
    }

    fn recent(&self, lines: usize) -> String {
        let mut out = String::new();
        for line in &self.trace[self.trace.len().saturating_sub(lines)..] {
            let _ = writeln!(out, "  {line}");
        }
        out
    }
}

// ---------------------------------------------------------------------------------
// Faults and the driver.

#[derive(Debug, Clone, Copy)]
enum NetFault {
    /// One host cut off from the others.
    Isolate(usize),
    /// Messages between two hosts held back, then delivered at once.
    Hold(usize, usize),
    /// Messages from one host to another dropped, the other way delivered.
    OneWay(usize, usize),
    /// Each message breaks its link with this chance in a thousand (the simulated
    /// TCP stream then stalls until the caller gives up on it).
    Loss(u32),
}

impl NetFault {
    fn name(self) -> &'static str {
        match self {
            NetFault::Isolate(_) => "isolate",
            NetFault::Hold(..) => "hold",
            NetFault::OneWay(..) => "one-way",
            NetFault::Loss(_) => "loss",
        }
    }
}

struct Faults {
    rng: Xoshiro256PlusPlus,
    net: Option<(NetFault, u64)>,
    /// A crashed host and when it restarts.
    down: Option<(usize, u64)>,
    log: Vec<String>,
    /// Faults started, by kind.
    counts: BTreeMap<&'static str, usize>,
}

impl Faults {
    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.rng.next_u64() % (hi - lo + 1)
    }

    /// The host a fault hits: the leader half of the time (its faults are the
    /// interesting ones), else any host.
    fn victim(&mut self, cluster: &Cluster) -> usize {
        let leader = cluster.nodes().into_iter().find(|(_, n)| metrics(&n.raft).state == ServerState::Leader).map(|(h, _)| h);
        match leader {
            Some(h) if self.chance(0.5) => h,
            _ => self.between(0, HOSTS as u64 - 1) as usize,
        }
    }

    fn note(&mut self, at_ms: u64, what: String) {
        self.log.push(format!("{at_ms:>6} ms {what}"));
    }

    /// Ends faults that are over and maybe starts new ones.
    fn tick(&mut self, sim: &mut turmoil::Sim, cluster: &Cluster, plan: &Plan, at_ms: u64) {
        if let Some((fault, until)) = self.net {
            if at_ms >= until {
                end_net_fault(sim, fault);
                self.note(at_ms, format!("end {fault:?}"));
                self.net = None;
            }
        } else if self.chance(plan.net_fault_per_tick) {
            let a = self.victim(cluster);
            let b = (a + 1 + self.between(0, HOSTS as u64 - 2) as usize) % HOSTS;
            let (fault, lasts_ms) = match self.rng.next_u64() % 4 {
                0 => (NetFault::Isolate(a), self.between(200, 2_000)),
                1 => (NetFault::Hold(a, b), self.between(20, 600)),
                2 => (NetFault::OneWay(a, b), self.between(100, 1_500)),
                _ => (NetFault::Loss(10 + self.between(0, 40) as u32), self.between(200, 1_500)),
            };
            let until = at_ms + lasts_ms;
            start_net_fault(sim, fault);
            self.note(at_ms, format!("start {fault:?} until {until} ms"));
            self.net = Some((fault, until));
            *self.counts.entry(fault.name()).or_default() += 1;
        }
        if let Some((host, restart_at)) = self.down {
            if at_ms >= restart_at {
                sim.bounce(host_name(host));
                self.note(at_ms, format!("restart m{host}"));
                self.down = None;
            }
        } else if whole(cluster) && self.chance(plan.crash_per_tick) {
            let host = self.victim(cluster);
            self.crash(sim, host);
            cluster.crashed(host);
            let restart_at = at_ms + self.between(50, 1_500);
            self.note(at_ms, format!("crash m{host}, restart at {restart_at} ms"));
            self.down = Some((host, restart_at));
            *self.counts.entry("crash").or_default() += 1;
        }
    }

    /// Crashes `host` like a power cut: its links are cut for the instant of the
    /// crash, so it sends no FIN or RST on the way down and what it had in flight is
    /// lost. (tokio drops a runtime's tasks in an order set by task ids, which come
    /// from a process-wide counter; the messages their sockets would send on drop
    /// would then reach turmoil's seeded latency draws in an order no seed decides.)
    fn crash(&mut self, sim: &mut turmoil::Sim, host: usize) {
        let others = || (0..HOSTS).filter(move |o| *o != host).map(host_name);
        others().for_each(|o| sim.partition(host_name(host), o));
        sim.crash(host_name(host));
        others().for_each(|o| sim.repair(host_name(host), o));
        if let Some((fault, _)) = self.net {
            start_net_fault(sim, fault);
        }
    }

    fn heal(&mut self, sim: &mut turmoil::Sim, at_ms: u64) {
        if let Some((fault, _)) = self.net.take() {
            end_net_fault(sim, fault);
        }
        if let Some((host, _)) = self.down.take() {
            sim.bounce(host_name(host));
        }
        self.note(at_ms, "heal: every link repaired, every host up, writes stop".into());
    }
}

fn start_net_fault(sim: &mut turmoil::Sim, fault: NetFault) {
    match fault {
        NetFault::Isolate(h) => (0..HOSTS).filter(|o| *o != h).for_each(|o| sim.partition(host_name(h), host_name(o))),
        NetFault::Hold(a, b) => sim.hold(host_name(a), host_name(b)),
        NetFault::OneWay(a, b) => sim.partition_oneway(host_name(a), host_name(b)),
        NetFault::Loss(per_mille) => sim.set_fail_rate(per_mille as f64 / 1000.0),
    }
}

fn end_net_fault(sim: &mut turmoil::Sim, fault: NetFault) {
    match fault {
        NetFault::Isolate(h) => (0..HOSTS).filter(|o| *o != h).for_each(|o| sim.repair(host_name(h), host_name(o))),
        NetFault::Hold(a, b) => sim.release(host_name(a), host_name(b)),
        NetFault::OneWay(a, b) => sim.repair_oneway(host_name(a), host_name(b)),
        NetFault::Loss(_) => sim.set_fail_rate(0.0),
    }
}

/// Every host runs, there is a leader, and every member knows as committed a
/// membership whose voters are exactly the hosts' current node ids: any one member
/// may crash without leaving the others unable to elect (it comes back as a new
/// node). A member that crashes before the others hold the stripe's first
/// membership leaves them unformed for good, as it would a real non-persistent
/// stripe (only a founder that finds no initialised member forms one again).
fn whole(cluster: &Cluster) -> bool {
    let nodes = cluster.nodes();
    if nodes.len() < HOSTS {
        return false;
    }
    let ids: BTreeSet<u64> = nodes.iter().map(|(_, n)| n.id).collect();
    let all = nodes.iter().map(|(_, n)| metrics(&n.raft)).collect::<Vec<_>>();
    all.iter().any(|m| m.state == ServerState::Leader)
        && all.iter().all(|m| {
            let config = &m.membership_config;
            let membership = config.membership();
            membership.get_joint_config().len() == 1
                && membership.voter_ids().collect::<BTreeSet<_>>() == ids
                && membership.learner_ids().next().is_none()
                && config.log_id().is_some_and(|at| m.local_committed.is_some_and(|c| c.index >= at.index))
        })
}

/// Converged: one leader, every host a voter under its current id, every member
/// has applied the leader's whole log, and no write is waiting for an answer.
fn converged(cluster: &Cluster) -> bool {
    let nodes = cluster.nodes();
    // A write still waiting on a running member will be answered; one whose member
    // crashed never will.
    let pending = cluster.lock().history.iter().any(|w| w.outcome == Outcome::Pending && nodes.iter().any(|(_, n)| n.id == w.node));
    if pending || !whole(cluster) {
        return false;
    }
    let Some(last) = nodes.iter().map(|(_, n)| metrics(&n.raft)).find(|m| m.state == ServerState::Leader).and_then(|m| m.last_log_index)
    else {
        return false;
    };
    nodes.iter().all(|(_, n)| metrics(&n.raft).last_applied.map(|l| l.index) == Some(last))
}

/// What a run reports: its trace (for replay), and counts for the summary.
struct Report {
    trace: Vec<TraceLine>,
    history: Vec<(u64, String)>,
    summary: String,
}

/// Runs one seed: faults and writes for `plan.faults_ms`, then healing and
/// convergence, checking invariants throughout. `Err` explains a violation.
fn run(seed: u64, plan: &Plan) -> Result<Report, String> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .simulation_duration(Duration::from_millis(plan.faults_ms + plan.converge_ms + 1_000))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(25))
        .build();
    let cluster = Cluster::new(seed);
    for host in 0..HOSTS {
        let cluster = cluster.clone();
        sim.host(host_name(host), move || member(cluster.clone(), host));
    }
    let mut faults = Faults {
        rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xfa17_5eed),
        net: None,
        down: None,
        log: Vec::new(),
        counts: BTreeMap::new(),
    };
    let mut checker = Checker::default();
    let fail = |checker: &Checker, faults: &Faults, at_ms: u64, why: String| {
        let recent_faults: Vec<&String> = faults.log.iter().rev().take(12).rev().collect();
        format!(
            "seed {seed}: at {at_ms} ms: {why}\nlast observations:\n{}faults:\n{}",
            checker.recent(15),
            recent_faults.iter().map(|l| format!("  {l}\n")).collect::<String>()
        )
    };
    let end_ms = plan.faults_ms + plan.converge_ms;
    let mut healed = false;
    let mut at_ms = 0;
    loop {
        sim.step().map_err(|e| fail(&checker, &faults, at_ms, format!("a host failed: {e}")))?;
        at_ms = sim.elapsed().as_millis() as u64;
        let nodes = cluster.nodes();
        checker.observe_state_machines(&nodes).map_err(|v| fail(&checker, &faults, at_ms, v.0))?;
        if at_ms % OBSERVE_EVERY_MS != 0 {
            continue;
        }
        checker.observe(at_ms, &nodes).map_err(|v| fail(&checker, &faults, at_ms, v.0))?;
        if at_ms < plan.faults_ms {
            faults.tick(&mut sim, &cluster, plan, at_ms);
        } else if !healed {
            faults.heal(&mut sim, at_ms);
            cluster.lock().writes_open = false;
            healed = true;
        } else if converged(&cluster) {
            break;
        } else if at_ms >= end_ms {
            return Err(fail(&checker, &faults, at_ms, "the stripe did not converge after healing".into()));
        }
    }
    let nodes = cluster.nodes();
    check_final(&cluster, &nodes, &checker).map_err(|v| fail(&checker, &faults, at_ms, v.0))?;
    let history: Vec<(u64, String)> = cluster.lock().history.iter().map(|w| (w.n, format!("{:?}", w.outcome))).collect();
    Ok(Report { summary: summary(seed, at_ms, &cluster, &checker, &faults), trace: checker.trace, history })
}

fn summary(seed: u64, at_ms: u64, cluster: &Cluster, checker: &Checker, faults: &Faults) -> String {
    let st = cluster.lock();
    let count = |f: fn(&Outcome) -> bool| st.history.iter().filter(|w| f(&w.outcome)).count();
    let acked = count(|o| matches!(o, Outcome::Acked { .. }));
    let refused = count(|o| matches!(o, Outcome::Refused));
    let multi = checker.leaders_per_term.values().filter(|l| l.len() > 1).count();
    format!(
        "seed {seed}: {} writes ({acked} acked, {refused} refused, {} unknown), faults {:?}, {} leaderships ({multi} terms with several), \
         {} entries committed, {} ms simulated, {} snapshot sends",
        st.history.len(),
        st.history.len() - acked - refused,
        faults.counts,
        checker.leaderships.len(),
        checker.committed.len(),
        at_ms,
        st.snapshot_sends
    )
}

fn read(store: &Store, args: &[&str]) -> Reply {
    let spec = commands::lookup(args[0].as_bytes()).expect("a known read command");
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
    store.read(spec, &args, 0, &mut Xoshiro256PlusPlus::seed_from_u64(0))
}

/// After convergence: equal data everywhere, no acknowledged write lost, no refused
/// write applied, list order and the counter consistent with the history.
fn check_final(cluster: &Cluster, nodes: &[(usize, Node)], checker: &Checker) -> Checked {
    let history = cluster.lock().history.clone();
    let digests: BTreeSet<u64> = nodes.iter().map(|(_, n)| n.store.lock().unwrap_or_else(|e| e.into_inner()).digest()).collect();
    if digests.len() != 1 {
        return violation(format!("the converged members hold different data: digests {digests:x?}"));
    }
    let (host, node) = &nodes[0];
    let store = node.store.lock().unwrap_or_else(|e| e.into_inner());
    let entries = entries_of(node);
    let lists: Vec<Vec<u64>> = (0..LISTS).map(|l| list_items(&store, l)).collect();
    let position: HashMap<u64, usize> = lists.iter().flat_map(|l| l.iter().enumerate().map(|(i, n)| (*n, i))).collect();
    for w in &history {
        let present = match Kind::of(w.n) {
            Kind::Set => Some(read(&store, &["GET", &format!("key{}", w.n)]) == Reply::bulk(format!("value{}", w.n).as_bytes())),
            Kind::Append => Some(position.contains_key(&w.n)),
            Kind::Incr => None,
        };
        match (&w.outcome, present) {
            (Outcome::Acked { log_id, .. }, Some(false)) => {
                return violation(format!("write {} was acknowledged ({log_id}) but is not in m{host}'s data", w.n))
            }
            (Outcome::Refused, Some(true)) => return violation(format!("write {} was refused (ForwardToLeader) but took effect", w.n)),
            _ => {}
        }
        if let Outcome::Acked { log_id, .. } = &w.outcome {
            if held(&entries, log_id.index) != Some(*log_id) {
                return violation(format!("write {} was acknowledged as {log_id}, which is not in the final log", w.n));
            }
        }
    }
    for (index, committed) in &checker.committed {
        if held(&entries, *index) != Some(*committed) {
            return violation(format!(
                "{committed} was seen committed but the final log holds {:?} at index {index}",
                held(&entries, *index)
            ));
        }
    }
    check_lists(&history, &lists)?;
    check_counter(&history, &store)
}

fn list_items(store: &Store, list: u64) -> Vec<u64> {
    let Reply::Array(items) = read(store, &["LRANGE", &format!("list{list}"), "0", "-1"]).expanded() else { return Vec::new() };
    items
        .iter()
        .filter_map(|r| match r {
            Reply::Bulk(b) => std::str::from_utf8(b).ok().and_then(|s| s.strip_prefix("item")).and_then(|n| n.parse().ok()),
            _ => None,
        })
        .collect()
}

/// Every item appended at most once, only items that were written, and an item
/// acknowledged before another was invoked comes first in its list.
fn check_lists(history: &[Write], lists: &[Vec<u64>]) -> Checked {
    for (l, items) in lists.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for n in items {
            if !seen.insert(*n) || history.get(*n as usize).is_none_or(|w| Kind::of(w.n) != Kind::Append) {
                return violation(format!("list{l} holds item{n} more than once or without a write of it"));
            }
        }
        for (i, a) in items.iter().enumerate() {
            for b in &items[..i] {
                // b precedes a in the list: a must not have been acknowledged before b was invoked.
                if let Outcome::Acked { at_ms, .. } = history[*a as usize].outcome {
                    if at_ms < history[*b as usize].invoked_ms {
                        return violation(format!("list{l}: item{a} was acknowledged before item{b} was invoked, yet comes after it"));
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_counter(history: &[Write], store: &Store) -> Checked {
    let incrs = history.iter().filter(|w| Kind::of(w.n) == Kind::Incr);
    let acked = incrs.clone().filter(|w| matches!(w.outcome, Outcome::Acked { .. })).count() as i64;
    let possible = incrs.filter(|w| w.outcome != Outcome::Refused).count() as i64;
    let value = match read(store, &["GET", "counter"]) {
        Reply::Bulk(b) => std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()).unwrap_or(-1),
        _ => 0,
    };
    if value < acked || value > possible {
        return violation(format!("the counter is {value}; {acked} increments were acknowledged and at most {possible} could apply"));
    }
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The seeds to run: `TANDEM_SIM_SEED` alone, or `TANDEM_SIM_SEEDS` (default 8)
/// from `TANDEM_SIM_SEED_BASE` (default 0).
fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("TANDEM_SIM_SEED") {
        return vec![seed];
    }
    let base = env_u64("TANDEM_SIM_SEED_BASE").unwrap_or(0);
    (base..base + env_u64("TANDEM_SIM_SEEDS").unwrap_or(8)).collect()
}

#[test]
fn sim_seeds_keep_raft_invariants_under_faults() {
    let plan = Plan::ci();
    let mut failures = Vec::new();
    for seed in seeds() {
        let started = std::time::Instant::now();
        match run(seed, &plan) {
            Ok(report) => println!("{} ({} ms real)", report.summary, started.elapsed().as_millis()),
            Err(why) => {
                println!("FAILED {why}");
                failures.push(seed);
            }
        }
    }
    assert!(failures.is_empty(), "invariants violated for seeds {failures:?} (replay one with TANDEM_SIM_SEED=<seed>)");
}

#[test]
fn sim_replays_a_seed_exactly() {
    let plan = Plan { faults_ms: 3_000, ..Plan::ci() };
    let seed = 3;
    let first = run(seed, &plan).unwrap_or_else(|why| panic!("{why}"));
    let second = run(seed, &plan).unwrap_or_else(|why| panic!("{why}"));
    assert!(first.trace.len() > 100, "the trace has {} observations", first.trace.len());
    if let Some((a, b)) = first.trace.iter().zip(&second.trace).find(|(a, b)| a != b) {
        panic!("seed {seed} diverged on replay:\n  first:  {a}\n  second: {b}");
    }
    assert_eq!(first.trace.len(), second.trace.len(), "seed {seed}: the replay ran for a different time");
    assert_eq!(first.history, second.history, "seed {seed}: the replay's writes had other outcomes");
}
