//! The state machine adapter for openraft: applies committed entries to the
//! deterministic [`Store`], answers the proposer through openraft's responder, and
//! hands keyspace events and ready keys to the server. Builds and installs
//! snapshots (see [`super::snapshot`]).

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use openraft::alias::SnapshotOf;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use tokio::sync::mpsc;

use super::snapshot;
use super::types::{LogId, Response, SnapshotMeta, StoredMembership, TypeConfig};
use crate::store::db::Db;
use crate::store::{KeyEvent, Store};

/// What applying entries produced for the server: notifications to publish and keys
/// blocked clients may be waiting on.
#[derive(Debug, Default)]
pub struct Notice {
    pub events: Vec<KeyEvent>,
    pub ready_keys: Vec<Bytes>,
}

/// A snapshot's bytes: on disk for a restartable server, in memory otherwise.
#[derive(Debug, Clone)]
pub enum SnapshotData {
    File(PathBuf),
    Memory(Bytes),
    /// A stripe of one non-restartable server: no member can ever need the bytes (no
    /// mirror to send them to, nothing to reload after a restart), so the snapshot
    /// only marks how far the log may be purged and copies nothing.
    Live,
}

impl SnapshotData {
    fn load(&self) -> io::Result<(Bytes, String)> {
        match self {
            SnapshotData::File(path) => Ok((Bytes::from(std::fs::read(path)?), path.display().to_string())),
            SnapshotData::Memory(bytes) => Ok((bytes.clone(), "(in memory)".to_string())),
            SnapshotData::Live => Err(io::Error::other("a live snapshot has no bytes to load")),
        }
    }
}

#[derive(Default)]
struct Meta {
    applied: Option<LogId>,
    membership: StoredMembership,
    current: Option<(SnapshotMeta, SnapshotData)>,
    /// A snapshot decoded while opening the data directory, installed without decoding twice.
    preloaded: Option<(Option<LogId>, Db)>,
}

pub struct Shared {
    pub store: Arc<Mutex<Store>>,
    meta: Mutex<Meta>,
    snapshot_dir: Option<PathBuf>,
    notices: mpsc::UnboundedSender<Notice>,
}

#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

fn now_ms() -> u64 {
    crate::server::core::wall_ms()
}

impl StateMachine {
    /// A state machine over `store`. With `snapshot_dir`, the newest valid snapshot in
    /// it becomes the current one (a damaged one is an error naming file and offset).
    pub fn new(
        store: Arc<Mutex<Store>>,
        snapshot_dir: Option<PathBuf>,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Result<StateMachine, snapshot::SnapshotError> {
        let mut meta = Meta::default();
        if let Some(dir) = &snapshot_dir {
            if let Some(path) = snapshot::list(dir).pop() {
                let bytes =
                    std::fs::read(&path).map_err(|source| snapshot::SnapshotError::Io { file: path.display().to_string(), source })?;
                let (snap_meta, db) = snapshot::decode(&bytes, &path.display().to_string(), now_ms())?;
                tracing::info!(file = %path.display(), keys = db.len(), last_log_id = ?snap_meta.last_log_id, "snapshot loaded");
                meta.preloaded = Some((snap_meta.last_log_id, db));
                meta.current = Some((snap_meta, SnapshotData::File(path)));
            }
        }
        Ok(StateMachine { shared: Arc::new(Shared { store, meta: Mutex::new(meta), snapshot_dir, notices }) })
    }

    pub fn store(&self) -> Arc<Mutex<Store>> {
        self.shared.store.clone()
    }

    fn meta(&self) -> MutexGuard<'_, Meta> {
        self.shared.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store_lock(&self) -> MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds a snapshot from a copy of the data taken when the builder was created.
pub struct Builder {
    /// `None`: a live snapshot (see [`SnapshotData::Live`]).
    db: Option<Db>,
    meta: SnapshotMeta,
    shared: Arc<Shared>,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let meta = self.meta.clone();
        let Some(db) = self.db.take() else {
            self.shared.meta.lock().unwrap_or_else(|e| e.into_inner()).current = Some((meta.clone(), SnapshotData::Live));
            return Ok(SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot: SnapshotData::Live });
        };
        let dir = self.shared.snapshot_dir.clone();
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let encode_meta = meta.clone();
        let data = tokio::task::spawn_blocking(move || -> io::Result<SnapshotData> {
            let bytes = snapshot::encode(&db, &encode_meta);
            match dir {
                Some(dir) => snapshot::save(&dir, index, &bytes).map(SnapshotData::File).map_err(|e| io::Error::other(e.to_string())),
                None => Ok(SnapshotData::Memory(Bytes::from(bytes))),
            }
        })
        .await
        .map_err(io::Error::other)??;
        self.shared.meta.lock().unwrap_or_else(|e| e.into_inner()).current = Some((meta.clone(), data.clone()));
        tracing::info!(index, "snapshot built");
        Ok(SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot: data })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let meta = self.meta();
        Ok((meta.applied, meta.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut notice = Notice::default();
        while let Some((entry, responder)) = entries.try_next().await? {
            let replies = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(e) => {
                    let applied = self.store_lock().apply(&e);
                    notice.events.extend(applied.events);
                    notice.ready_keys.extend(applied.ready_keys);
                    applied.replies
                }
                EntryPayload::Membership(m) => {
                    self.meta().membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            };
            self.meta().applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responder.send(Response(replies));
            }
        }
        if !notice.events.is_empty() || !notice.ready_keys.is_empty() {
            let _ = self.shared.notices.send(notice);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let meta = self.meta();
        let membership = meta.membership.membership();
        let alone = membership.get_joint_config().iter().all(|c| c.len() == 1) && membership.nodes().count() == 1;
        // The copy is taken under the store lock, between applies: a consistent view.
        let started = std::time::Instant::now();
        let db = if self.shared.snapshot_dir.is_none() && alone { None } else { Some(self.store_lock().db.data_clone()) };
        if let Some(db) = &db {
            // Writes wait for this copy: the figure BENCHMARKS.md reports as the snapshot stall.
            tracing::info!(keys = db.len(), copy_ms = started.elapsed().as_millis() as u64, "snapshot copy taken");
        }
        let snap_meta = SnapshotMeta { last_log_id: meta.applied, last_membership: meta.membership.clone() };
        Builder { db, meta: snap_meta, shared: self.shared.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, data: SnapshotData) -> Result<(), io::Error> {
        if matches!(data, SnapshotData::Live) {
            // Our own live snapshot: the data is already here.
            let mut m = self.meta();
            m.applied = meta.last_log_id;
            m.membership = meta.last_membership.clone();
            m.current = Some((meta.clone(), data));
            return Ok(());
        }
        let preloaded = {
            let mut m = self.meta();
            match m.preloaded.take() {
                Some((id, db)) if id == meta.last_log_id => Some(db),
                _ => None,
            }
        };
        let db = match preloaded {
            Some(db) => db,
            None => {
                let (bytes, name) = data.load()?;
                snapshot::decode(&bytes, &name, now_ms()).map_err(|e| io::Error::other(e.to_string()))?.1
            }
        };
        // A snapshot received from the active is kept like one built here.
        let data = match (&data, &self.shared.snapshot_dir) {
            (SnapshotData::Memory(bytes), Some(dir)) => {
                let index = meta.last_log_id.map_or(0, |l| l.index);
                snapshot::save(dir, index, bytes).map(SnapshotData::File).map_err(|e| io::Error::other(e.to_string()))?
            }
            _ => data,
        };
        self.store_lock().db.replace_data(db);
        let mut m = self.meta();
        m.applied = meta.last_log_id;
        m.membership = meta.last_membership.clone();
        m.current = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        Ok(self
            .meta()
            .current
            .as_ref()
            .map(|(meta, data)| SnapshotOf::<TypeConfig, SnapshotData> { meta: meta.clone(), snapshot: data.clone() }))
    }
}
