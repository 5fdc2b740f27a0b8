//! One server's member of its stripe's Raft group: opens the data directory (or
//! runs in memory), starts openraft over our log store and state machine, makes a
//! fresh single-server stripe its own active, and turns proposals and linearizable
//! reads into Redis replies or errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Config, ReadPolicy, SnapshotPolicy};
use tokio::sync::mpsc;

use super::data_dir::DataDir;
use super::log_store::{DiskHealth, LogStore};
use super::network::NoNetwork;
use super::state_machine::{Notice, StateMachine};
use super::types::TypeConfig;
use crate::protocol::reply::Reply;
use crate::store::{Entry, Store};

pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Entries applied between snapshots. Large: each snapshot copies the data under the
/// store lock, and openraft issue #2116 (purge racing apply) grows with purge frequency.
const SNAPSHOT_EVERY_ENTRIES: u64 = 100_000;
/// Entries kept behind a snapshot, so a lagging mirror catches up by log rather than
/// by a new snapshot, and purges stay far behind apply (openraft #1706, #2116).
const LOG_KEPT_BEHIND_SNAPSHOT: u64 = 5_000;
/// Purge in large steps: fewer purges, fewer chances to race apply.
const PURGE_BATCH_ENTRIES: u64 = 1_000;
/// A snapshot is also taken when the log held in memory passes this many bytes, so
/// large values do not pile up in the log between snapshots.
pub const LOG_MEMORY_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;
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
    pub node_id: u64,
    pub group_addr: String,
    pub election_time_ms: u64,
    /// `Some(dir)`: restartable (Fast Restart) with the log and snapshots under `dir`.
    pub data_dir: Option<std::path::PathBuf>,
}

pub struct Replica {
    pub raft: Raft,
    pub log: LogStore,
    pub store: Arc<Mutex<Store>>,
    pub health: Arc<DiskHealth>,
    last_snapshot: Mutex<u64>,
    _data_dir: Option<DataDir>,
}

fn raft_config(options: &ReplicaOptions) -> Result<Config, StartError> {
    let election_max = options.election_time_ms.max(200);
    let config = Config {
        cluster_name: "tandem".into(),
        heartbeat_interval: (election_max / 6).max(20),
        election_timeout_min: election_max / 2,
        election_timeout_max: election_max,
        enable_pre_vote: Some(true),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: LOG_KEPT_BEHIND_SNAPSHOT,
        purge_batch_size: PURGE_BATCH_ENTRIES,
        // A restarted leader must win an election: we do not persist the commit index.
        enable_leader_restore: Some(false),
        // A non-persistent server comes back empty: its log "reverts" by design.
        allow_log_reversion: Some(options.data_dir.is_none()),
        ..Default::default()
    };
    config.validate().map_err(|e| StartError::Raft(e.to_string()))
}

impl Replica {
    /// Opens storage and starts the Raft member; returns with this server active (a
    /// stripe of one elects itself). `notices` receives what applying entries produced.
    pub async fn start(options: ReplicaOptions, notices: mpsc::UnboundedSender<Notice>) -> Result<Replica, StartError> {
        let store = Arc::new(Mutex::new(Store::new()));
        let (data_dir, log, snapshot_dir) = match &options.data_dir {
            Some(path) => {
                let dir = DataDir::open(path)?;
                let (log, report) = LogStore::open(&dir.raft_dir())?;
                if let Some(torn) = &report.torn_tail {
                    tracing::warn!(%torn, "log tail truncated");
                }
                tracing::info!(entries = report.entries, dir = %path.display(), "log opened");
                let snapshots = dir.snapshot_dir();
                (Some(dir), log, Some(snapshots))
            }
            None => (None, LogStore::in_memory(), None),
        };
        let health = log.health();
        let sm = StateMachine::new(store.clone(), snapshot_dir, notices)?;
        let config = Arc::new(raft_config(&options)?);
        let raft = Raft::new(options.node_id, config, NoNetwork, log.clone(), sm).await.map_err(|e| StartError::Raft(e.to_string()))?;
        if !raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))? {
            let members = BTreeMap::from([(options.node_id, BasicNode { addr: options.group_addr.clone() })]);
            raft.initialize(members).await.map_err(|e| StartError::Raft(e.to_string()))?;
        }
        raft.wait(Some(ACTIVE_DEADLINE))
            .state(openraft::ServerState::Leader, "this server becomes the active of its stripe")
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        // Serve nothing before every committed entry is applied (after a restart).
        raft.ensure_linearizable(ReadPolicy::ReadIndex).await.map_err(|e| StartError::Raft(e.to_string()))?;
        Ok(Replica { raft, log, store, health, last_snapshot: Mutex::new(crate::server::core::wall_ms() / 1000), _data_dir: data_dir })
    }

    /// Proposes `entry`; the replies once it is committed and applied.
    pub async fn propose(&self, entry: Entry) -> Result<Vec<Reply>, Reply> {
        if let Some(problem) = self.health.problem() {
            return Err(Reply::error(format!(
                "MISCONF Tandem cannot make writes durable ({problem}); writes are refused until the data directory accepts them again"
            )));
        }
        match self.raft.client_write(entry).await {
            Ok(response) => Ok(response.data.0),
            Err(e) => Err(write_error(e)),
        }
    }

    /// Waits until a read here would see every write acknowledged before it started.
    pub async fn linearize(&self) -> Result<(), Reply> {
        self.raft
            .ensure_linearizable(ReadPolicy::LeaseRead)
            .await
            .map(|_| ())
            .map_err(|e| Reply::error(format!("TRYAGAIN this server cannot serve a consistent read now: {e}")))
    }

    /// Asks for a snapshot when the in-memory log has grown past its budget; the
    /// purge that follows frees it.
    pub async fn snapshot_if_log_large(&self) {
        if self.log.memory_bytes() > LOG_MEMORY_SNAPSHOT_BYTES {
            let _ = self.raft.trigger().snapshot().await;
        }
    }

    /// Takes a snapshot covering everything applied so far and waits until it is built
    /// (and, when restartable, on disk).
    pub async fn snapshot_now(&self) -> Result<(), String> {
        let target = self.raft.metrics().borrow_watched().last_applied.map(|l| l.index);
        self.raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
        self.raft
            .wait(Some(Duration::from_secs(600)))
            .metrics(|m| m.snapshot.map(|s| s.index) >= target, "snapshot covers the last applied entry")
            .await
            .map_err(|e| e.to_string())?;
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = crate::server::core::wall_ms() / 1000;
        Ok(())
    }

    pub async fn snapshot_soon(&self) {
        let _ = self.raft.trigger().snapshot().await;
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = crate::server::core::wall_ms() / 1000;
    }

    pub fn last_snapshot_unix_secs(&self) -> u64 {
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_active(&self) -> bool {
        self.raft.is_leader()
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
    }
}

fn write_error(e: openraft::errors::RaftError<TypeConfig, openraft::errors::ClientWriteError<TypeConfig>>) -> Reply {
    use openraft::errors::{ClientWriteError, RaftError};
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            Reply::error(format!("TRYAGAIN this server is not the active of its stripe (active: {:?}); retry", f.leader_id))
        }
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
            Reply::err("TRYAGAIN the active changed before this write committed; its outcome is unknown")
        }
        other => Reply::error(format!("ERR write failed: {other}")),
    }
}
