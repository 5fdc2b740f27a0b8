//! The state machine adapter for openraft: applies committed entries to the
//! deterministic [`Store`], answers the proposer through openraft's responder, and
//! hands keyspace events and ready keys to the server. Builds and installs
//! snapshots (see [`super::snapshot`]).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use openraft::alias::SnapshotOf;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use tokio::sync::mpsc;

use super::snapshot;
use super::snapshot_health::SnapshotHealth;
use super::types::{LogId, Response, SnapshotMeta, StoredMembership, TypeConfig};
use crate::protocol::reply::Reply;
use crate::store::db::Db;
use crate::store::{KeyEvent, Store};

/// What applying entries produced for the server: notifications to publish and keys
/// blocked clients may be waiting on.
#[derive(Debug, Default)]
pub struct Notice {
    pub events: Vec<KeyEvent>,
    pub ready_keys: Vec<Bytes>,
    /// Pub/sub messages applying produced (group events), in log order.
    pub messages: Vec<(Bytes, Bytes)>,
    /// Keys applying modified, in log order: CLIENT TRACKING's invalidations.
    pub touched: Vec<Touch>,
    /// Every key may have changed (FLUSHALL, a snapshot installed) at this index.
    pub touched_all: Option<u64>,
    /// Keys scripts of this server's clients read: (client, entry index, declared
    /// keys), in log order.
    pub script_reads: Vec<(u64, u64, Vec<Bytes>)>,
}

/// A key an entry modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// The entry's log index.
    pub index: u64,
    /// The client of this server that sent the op (0: another server's, or none).
    pub origin: u64,
    pub key: Bytes,
}

impl Notice {
    /// Adds what one entry's apply produced.
    fn add(&mut self, index: u64, applied: crate::store::Applied, origins: Option<&[u64]>) {
        self.events.extend(applied.events);
        self.ready_keys.extend(applied.ready_keys);
        self.messages.extend(applied.messages);
        let origin = |op: usize| origins.and_then(|o| o.get(op)).copied().unwrap_or(0);
        self.touched.extend(applied.touched.into_iter().map(|(op, key)| Touch { index, origin: origin(op), key }));
        if applied.touched_all {
            self.touched_all = Some(index);
        }
        self.script_reads.extend(applied.script_reads.into_iter().map(|(op, keys)| (origin(op), index, keys)).filter(|(o, _, _)| *o != 0));
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.ready_keys.is_empty()
            && self.messages.is_empty()
            && self.touched.is_empty()
            && self.touched_all.is_none()
            && self.script_reads.is_empty()
    }
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
    /// A snapshot decoded while opening the data directory, or as it was received from
    /// the active, installed without decoding twice.
    preloaded: Option<(Option<LogId>, Db)>,
}

pub struct Shared {
    pub store: Arc<Mutex<Store>>,
    meta: Mutex<Meta>,
    snapshot_dir: Option<PathBuf>,
    notices: mpsc::UnboundedSender<Notice>,
    /// The log's disk health: no snapshot is started while the disk refuses writes.
    health: Mutex<Option<Arc<super::log_store::DiskHealth>>>,
    /// Whether the last snapshot could be written (a failed one defers the next).
    snapshots: Arc<SnapshotHealth>,
    /// A voter's state machine: follows the log, applies no data.
    witness: std::sync::atomic::AtomicBool,
    /// The largest entry time applied (the store's), for the entry clock: published
    /// after every apply and install so the clock never stamps below it.
    applied_time_ms: Arc<AtomicU64>,
    /// The store's script status: an apply waits on it for a read-only script that
    /// holds the store on its blocking thread.
    scripts: Arc<crate::scripting::status::Status>,
    /// One script entry at a time goes to a blocking thread, the others waiting here in
    /// turn without a thread each (on the direct path several connections apply at once;
    /// the Raft path applies one entry at a time anyway).
    script_turn: tokio::sync::Mutex<()>,
}

impl Shared {
    /// The last snapshot written, or none (no log id: openraft takes it as no progress).
    fn current_snapshot(&self) -> SnapshotOf<TypeConfig, SnapshotData> {
        let meta = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        match &meta.current {
            Some((meta, data)) => SnapshotOf::<TypeConfig, SnapshotData> { meta: meta.clone(), snapshot: data.clone() },
            None => SnapshotOf::<TypeConfig, SnapshotData> {
                meta: SnapshotMeta { last_log_id: None, last_membership: meta.membership.clone() },
                snapshot: SnapshotData::Live,
            },
        }
    }
}

#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

fn now_ms() -> u64 {
    crate::clock::wall_ms()
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
            // Leftovers of snapshot writers cut short by a crash: never valid snapshots.
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "writing" || e == "tmp") {
                    let _ = std::fs::remove_file(&path);
                }
            }
            if let Some(path) = snapshot::list(dir).pop() {
                let (snap_meta, db) = snapshot::load_file(&path, now_ms())?;
                tracing::info!(file = %path.display(), keys = db.len(), last_log_id = ?snap_meta.last_log_id, "snapshot loaded");
                meta.preloaded = Some((snap_meta.last_log_id, db));
                meta.current = Some((snap_meta, SnapshotData::File(path)));
            }
        }
        let scripts = store.lock().unwrap_or_else(|e| e.into_inner()).script_status();
        Ok(StateMachine {
            shared: Arc::new(Shared {
                scripts,
                store,
                meta: Mutex::new(meta),
                snapshot_dir,
                notices,
                health: Mutex::new(None),
                snapshots: Arc::default(),
                witness: Default::default(),
                applied_time_ms: Arc::new(AtomicU64::new(0)),
                script_turn: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The largest entry time applied here, kept current (for [`crate::clock::EntryClock`]).
    pub fn applied_time_ms(&self) -> Arc<AtomicU64> {
        self.shared.applied_time_ms.clone()
    }

    fn publish_applied_time(&self, time_ms: u64) {
        self.shared.applied_time_ms.fetch_max(time_ms, Ordering::AcqRel);
    }

    /// Applies one data entry to the store and adds what it produced to `notice`; its
    /// replies. `index` is the entry's log index, or `None` for the index after the
    /// store's last, taken under the store lock (the direct path, [`Self::apply_direct`]).
    /// With `publish`, `notice` is sent before the store is let go, so that notices
    /// leave in the order of the entries even when several connections apply.
    ///
    /// A script may run long: it is applied on a blocking thread so the runtime
    /// (heartbeats, clients) keeps going; connections that need the store meanwhile
    /// wait for it without blocking (`Core::store_async`).
    async fn apply_data(&self, index: Option<u64>, e: crate::store::Entry, notice: &mut Notice, publish: bool) -> io::Result<Vec<Reply>> {
        let next = move |store: &Store| index.unwrap_or_else(|| store.db.index() + 1);
        let notices = publish.then(|| self.shared.notices.clone());
        let finish = move |index: u64, applied: crate::store::Applied, origins: Option<&[u64]>, notice: &mut Notice| {
            finish_entry(index, applied, origins, notice, notices.as_ref())
        };
        if e.runs_script() {
            let _turn = self.shared.script_turn.lock().await;
            let store = self.shared.store.clone();
            let off_thread = crate::scripting::status::OffThread::enter(&self.shared.scripts);
            let mut owned = std::mem::take(notice);
            let (replies, time_ms, owned) = tokio::task::spawn_blocking(move || {
                let _off_thread = off_thread;
                let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
                let index = next(&store);
                store.record_script_calls = true;
                let applied = store.apply_at(index, &e);
                store.record_script_calls = false;
                let replies = finish(index, applied, e.origins.as_deref(), &mut owned);
                (replies, store.db.time_ms(), owned)
            })
            .await
            .map_err(io::Error::other)?;
            *notice = owned;
            self.publish_applied_time(time_ms);
            Ok(replies)
        } else {
            let mut store = self.store_lock().await;
            let index = next(&store);
            let applied = self.apply_locked(&mut store, index, &e)?;
            let replies = finish(index, applied, e.origins.as_deref(), notice);
            drop(store);
            Ok(replies)
        }
    }

    /// Applies an entry of no script to the store the caller holds, at `index`.
    fn apply_locked(&self, store: &mut Store, index: u64, e: &crate::store::Entry) -> io::Result<crate::store::Applied> {
        // A panic here (a bug in a command) must stop the process as a failed
        // apply does, not only the connection that sent the write: caught, it
        // leaves the store unpoisoned and is returned as the apply's error.
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.apply_at(index, e)))
            .map_err(|_| io::Error::other(format!("applying the entry at index {index} panicked")))?;
        self.publish_applied_time(store.db.time_ms());
        Ok(applied)
    }

    /// Applies `entry` now, at the index after the store's last, without a Raft log:
    /// for a stripe whose only member is this in-memory server, where nobody else
    /// holds, needs or could vote on the log (see `Replica::submit`). Everything else
    /// is as an entry applied from the log: scripts off the runtime, the applied time,
    /// the notices; the entry's ops are dropped here, while they are still in cache.
    pub async fn apply_direct(&self, entry: crate::store::Entry) -> io::Result<Vec<Reply>> {
        if break_safety_fail_apply(&entry) {
            return Err(io::Error::other("TANDEM_BREAK_SAFETY=fail-apply: this entry's apply fails"));
        }
        self.apply_data(None, entry, &mut Notice::default(), true).await
    }

    /// [`Self::apply_direct`] of an entry of no script, on the store the caller holds
    /// (taken without waiting, see `Core::write_now`): the same apply, index, applied
    /// time and notices, with no task in between. Notices are sent before the store
    /// is let go, as `apply_data` sends them. The caller keeps the ops (it gives their
    /// arguments back to its requests).
    pub fn apply_direct_locked(&self, entry: crate::store::Entry, store: &mut Store) -> io::Result<Vec<Reply>> {
        debug_assert!(!entry.runs_script(), "a script's entry is applied off the runtime");
        if break_safety_fail_apply(&entry) {
            return Err(io::Error::other("TANDEM_BREAK_SAFETY=fail-apply: this entry's apply fails"));
        }
        let index = store.db.index() + 1;
        let applied = self.apply_locked(store, index, &entry)?;
        Ok(finish_entry(index, applied, entry.origins.as_deref(), &mut Notice::default(), Some(&self.shared.notices)))
    }

    /// Whether the last snapshot could be written.
    pub fn snapshot_health(&self) -> Arc<SnapshotHealth> {
        self.shared.snapshots.clone()
    }

    /// Defers snapshots while `health` reports disk trouble.
    pub fn watch_disk(&self, health: Arc<super::log_store::DiskHealth>) {
        *self.shared.health.lock().unwrap_or_else(|e| e.into_inner()) = Some(health);
    }

    /// Hands over `db`, decoded from a snapshot received for `id` while it arrived:
    /// installing that snapshot then takes it instead of decoding the bytes again.
    pub fn preload(&self, id: Option<LogId>, db: Db) {
        self.meta().preloaded = Some((id, db));
    }

    /// Drops a database preloaded for `id` that no install took (openraft refused the
    /// snapshot): it is not kept in memory for nothing.
    pub fn discard_preloaded(&self, id: Option<LogId>) {
        let stale = {
            let mut m = self.meta();
            match &m.preloaded {
                Some((held, _)) if *held == id => m.preloaded.take(),
                _ => None,
            }
        };
        drop(stale);
    }

    /// Makes this a voter's state machine: entries advance it, data is not kept.
    pub fn set_witness(&self, witness: bool) {
        self.shared.witness.store(witness, std::sync::atomic::Ordering::Relaxed);
    }

    fn witness(&self) -> bool {
        self.shared.witness.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn store(&self) -> Arc<Mutex<Store>> {
        self.shared.store.clone()
    }

    fn meta(&self) -> MutexGuard<'_, Meta> {
        self.shared.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store, for what runs on the runtime: a read-only script's blocking thread
    /// may hold it for as long as the script runs (endlessly, until SCRIPT KILL), so
    /// this waits without blocking the runtime, which must go on reading SCRIPT KILL
    /// and serving everyone else. (Locking it outright wedged the whole server: an
    /// endless EVAL_RO and one SET from another client, and not even PING was answered.)
    async fn store_lock(&self) -> MutexGuard<'_, Store> {
        crate::scripting::status::lock_after_scripts(&self.shared.store, &self.shared.scripts).await
    }
}

/// Where a snapshot's data comes from.
enum Source {
    /// A lone non-restartable server: nothing to copy (see [`SnapshotData::Live`]).
    Live,
    /// A copy taken under the store lock (boxed: a Db is large beside the others).
    Copy(Box<Db>),
    /// A child process forked under the store lock is writing the data to `tmp`.
    Forked { pid: i32, tmp: PathBuf },
}

/// Builds a snapshot from the data as it was when the builder was created.
pub struct Builder {
    source: Source,
    meta: SnapshotMeta,
    shared: Arc<Shared>,
    /// This build's number ([`SnapshotHealth::start`]).
    build: u64,
    /// openraft asked for it at start-up (its log is purged past any snapshot): a
    /// failure must then stop the start, not be reported as no progress.
    forced: bool,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let meta = self.meta.clone();
        let dir = self.shared.snapshot_dir.clone();
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let source = std::mem::replace(&mut self.source, Source::Live);
        let encode_meta = meta.clone();
        let started = std::time::Instant::now();
        let built = tokio::task::spawn_blocking(move || -> io::Result<SnapshotData> {
            match (source, dir) {
                (Source::Live, _) => Ok(SnapshotData::Live),
                (Source::Forked { pid, tmp }, Some(dir)) => {
                    let committed = wait_child(pid).and_then(|()| {
                        snapshot::commit(&dir, &tmp, index).map(SnapshotData::File).map_err(|e| io::Error::other(e.to_string()))
                    });
                    if committed.is_err() {
                        // Half written, on a disk that may be full: give its space back
                        // to the log.
                        let _ = std::fs::remove_file(&tmp);
                    }
                    committed
                }
                (Source::Copy(db), Some(dir)) => {
                    let bytes = snapshot::encode(&db, &encode_meta);
                    snapshot::save(&dir, index, &bytes).map(SnapshotData::File).map_err(|e| io::Error::other(e.to_string()))
                }
                (Source::Copy(db), None) => Ok(SnapshotData::Memory(Bytes::from(snapshot::encode(&db, &encode_meta)))),
                (Source::Forked { .. }, None) => Err(io::Error::other("a forked snapshot needs a snapshot directory")),
            }
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        let data = match built {
            Ok(data) => data,
            Err(e) => {
                self.shared.snapshots.failed(self.build, e.to_string());
                crate::management::metrics::global().record_snapshot("failed", 0, started.elapsed());
                if self.forced {
                    return Err(e);
                }
                // Not an error to openraft, which would stop this member for good: the
                // log keeps every entry the snapshot would have covered. The snapshot
                // reported is the last one written (openraft takes it as no progress).
                return Ok(self.shared.current_snapshot());
            }
        };
        self.shared.snapshots.succeeded(self.build);
        {
            let mut shared = self.shared.meta.lock().unwrap_or_else(|e| e.into_inner());
            let newer = shared.current.as_ref().is_none_or(|(held, _)| held.last_log_id <= meta.last_log_id);
            if newer {
                shared.current = Some((meta.clone(), data.clone()));
            } else {
                // A newer snapshot was installed from the active while this one was
                // built: it stays the current one (its commit removed older files).
                drop(shared);
                if let SnapshotData::File(path) = &data {
                    let _ = std::fs::remove_file(path);
                }
                tracing::info!(index, "snapshot built behind one installed meanwhile: dropped");
                return Ok(self.shared.current_snapshot());
            }
        }
        let bytes = match &data {
            SnapshotData::File(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
            SnapshotData::Memory(b) => b.len() as u64,
            SnapshotData::Live => 0,
        };
        if matches!(data, SnapshotData::Live) {
            // A lone server's marker for purging its log (up to ten a second under
            // writes): neither a snapshot an operator would count nor news.
            tracing::debug!(index, "live snapshot taken");
        } else {
            crate::management::metrics::global().record_snapshot("built", bytes, started.elapsed());
            tracing::info!(index, "snapshot built");
        }
        Ok(SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot: data })
    }
}

/// The exit code of a snapshot child that failed other than by an OS error (OS
/// errors are their own numbers, all below it).
const CHILD_FAILED_OTHERWISE: i32 = 255;

/// Waits for the snapshot child; an error unless it wrote and fsynced the file.
fn wait_child(pid: i32) -> io::Result<()> {
    let mut status = 0;
    loop {
        // SAFETY: waiting on our own child's pid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let code = if libc::WIFEXITED(status) { Some(libc::WEXITSTATUS(status)) } else { None };
    match code {
        Some(0) => Ok(()),
        // The child's exit code is the OS error that stopped it (see `fork_writer`).
        Some(errno) if (1..CHILD_FAILED_OTHERWISE).contains(&errno) => {
            let e = io::Error::from_raw_os_error(errno);
            Err(io::Error::new(e.kind(), format!("writing the snapshot: {e}")))
        }
        Some(code) => Err(io::Error::other(format!("the snapshot writer process failed (exit code {code})"))),
        None if libc::WIFSIGNALED(status) => {
            Err(io::Error::other(format!("the snapshot writer process was killed by signal {}", libc::WTERMSIG(status))))
        }
        None => Err(io::Error::other(format!("the snapshot writer process failed (wait status {status})"))),
    }
}

/// Forks a child that writes the snapshot of `db` to `tmp` (fsynced) and exits.
/// Runs under the store lock: the child sees the data as of this instant, in its
/// copy-on-write pages, while the parent goes on applying. `None` if fork failed.
fn fork_writer(db: &Db, meta: &SnapshotMeta, tmp: &std::path::Path) -> Option<i32> {
    // SAFETY: the child only encodes memory it already has, writes one file and
    // calls _exit: no locks of other threads are taken (the allocator, jemalloc or
    // glibc, re-initialises its locks in the child through its fork handlers), no
    // destructors or runtime code run.
    let parent = unsafe { libc::getpid() };
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return (pid > 0).then_some(pid);
    }
    unsafe {
        // Die with the server: a kill -9 of it must not leave a writer holding its port.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // The server may have died before the line above took effect.
        if libc::getppid() != parent {
            libc::_exit(CHILD_FAILED_OTHERWISE);
        }
        // Drop every inherited descriptor (client and group ports, the data lock).
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    let written = (|| -> io::Result<()> {
        let file = std::fs::File::create(tmp)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        snapshot::encode_to(db, meta, &mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    // The parent learns why from the exit code: the OS error, when there is one.
    let code = match &written {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().filter(|&n| (1..CHILD_FAILED_OTHERWISE).contains(&n)).unwrap_or(CHILD_FAILED_OTHERWISE),
    };
    // SAFETY: end the child without running anything of the parent's.
    unsafe { libc::_exit(code) }
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
        let witness = self.witness();
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            if let EntryPayload::Normal(e) = &entry.payload {
                if break_safety_fail_apply(e) {
                    return Err(io::Error::other(
                        "TANDEM_BREAK_SAFETY=fail-apply: this entry's apply fails (a test of a stopped Raft core)",
                    ));
                }
            }
            let replies = match entry.payload {
                EntryPayload::Normal(e) if !witness => self.apply_data(Some(index), e, &mut notice, false).await?,
                payload => {
                    if let EntryPayload::Membership(m) = payload {
                        self.meta().membership = StoredMembership::new(Some(entry.log_id), m);
                    }
                    // WATCH stamps and key versions count log indexes, these too.
                    if !witness {
                        self.store_lock().await.skip_to(index);
                    }
                    Vec::new()
                }
            };
            self.meta().applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responder.send(Response(replies));
            }
        }
        if !notice.is_empty() {
            let _ = self.shared.notices.send(notice);
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        let trouble = self.shared.health.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|h| h.problem());
        // Forced (at start-up, openraft unwraps the builder): never deferred.
        if let Some(problem) = trouble.filter(|_| !force) {
            tracing::warn!(%problem, "snapshot deferred: the disk refuses writes");
            return None;
        }
        if !force && !self.shared.snapshots.may_start() {
            tracing::debug!("snapshot deferred: the last one failed moments ago");
            return None;
        }
        let mut builder = self.get_snapshot_builder().await;
        builder.forced = force;
        Some(builder)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let (alone, snap_meta) = {
            let meta = self.meta();
            let membership = meta.membership.membership();
            let alone = membership.get_joint_config().iter().all(|c| c.len() == 1) && membership.nodes().count() == 1;
            (alone, SnapshotMeta { last_log_id: meta.applied, last_membership: meta.membership.clone() })
        };
        // The view is taken under the store lock, between applies: consistent.
        let started = std::time::Instant::now();
        let source = match &self.shared.snapshot_dir {
            _ if self.witness() => Source::Live,
            None if alone => Source::Live,
            None => Source::Copy(Box::new(self.store_lock().await.db.data_clone())),
            Some(dir) => {
                let index = snap_meta.last_log_id.map_or(0, |l| l.index);
                let tmp = dir.join(format!("snapshot-{index:020}.writing"));
                let _ = super::log_file::create_dir_durably(dir);
                let store = self.store_lock().await;
                match fork_writer(&store.db, &snap_meta, &tmp) {
                    Some(pid) => Source::Forked { pid, tmp },
                    None => Source::Copy(Box::new(store.db.data_clone())),
                }
            }
        };
        // Writes wait for this step only: the stall BENCHMARKS.md reports (a live
        // snapshot takes no view: nothing to report).
        if !matches!(source, Source::Live) {
            tracing::info!(
                stall_ms = started.elapsed().as_millis() as u64,
                forked = matches!(source, Source::Forked { .. }),
                "snapshot view taken"
            );
        }
        Builder { source, meta: snap_meta, shared: self.shared.clone(), build: self.shared.snapshots.start(), forced: false }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, data: SnapshotData) -> Result<(), io::Error> {
        if matches!(data, SnapshotData::Live) || self.witness() {
            // Our own live snapshot: the data is already here. A voter keeps no data,
            // not even the bytes it was sent.
            let mut m = self.meta();
            m.applied = meta.last_log_id;
            m.membership = meta.last_membership.clone();
            m.current = Some((meta.clone(), SnapshotData::Live));
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
                snapshot::decode_bytes(bytes, &name, now_ms()).map_err(|e| io::Error::other(e.to_string()))?.1
            }
        };
        // A snapshot received from the active is kept like one built here.
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let data = match (&data, &self.shared.snapshot_dir) {
            (SnapshotData::Memory(bytes), Some(dir)) => {
                snapshot::save(dir, index, bytes).map(SnapshotData::File).map_err(|e| io::Error::other(e.to_string()))?
            }
            // Received into a temporary file: it takes its place only now that
            // openraft has accepted it (a refused one must not replace ours).
            (SnapshotData::File(tmp), Some(dir)) if tmp.extension().is_some_and(|e| e == "writing") => {
                snapshot::commit(dir, tmp, index).map(SnapshotData::File).map_err(|e| io::Error::other(e.to_string()))?
            }
            _ => data,
        };
        {
            let mut store = self.store_lock().await;
            store.db.replace_data(db);
            store.publish_acl();
            self.publish_applied_time(store.db.time_ms());
            // Every key may differ now: clients tracking keys drop what they cached.
            store.applied_index.store(store.db.index(), std::sync::atomic::Ordering::Release);
            if store.db.take_touched().all {
                let _ = self.shared.notices.send(Notice { touched_all: Some(store.db.index()), ..Notice::default() });
            }
        }
        let written = matches!(data, SnapshotData::File(_));
        {
            let mut m = self.meta();
            m.applied = meta.last_log_id;
            m.membership = meta.last_membership.clone();
            m.current = Some((meta.clone(), data));
        }
        if written {
            // A snapshot of everything up to here is on disk: whatever failed before
            // (a receive, a build of this member's) is behind it.
            self.shared.snapshots.received();
            self.shared.snapshots.succeeded(0);
        }
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

/// An applied entry's replies; what else it produced is added to `notice`, which is
/// sent to `notices` when given and not empty (before the caller lets the store go, so
/// that notices leave in the order of the entries).
fn finish_entry(
    index: u64,
    mut applied: crate::store::Applied,
    origins: Option<&[u64]>,
    notice: &mut Notice,
    notices: Option<&mpsc::UnboundedSender<Notice>>,
) -> Vec<Reply> {
    let replies = std::mem::take(&mut applied.replies);
    notice.add(index, applied, origins);
    if let Some(notices) = notices.filter(|_| !notice.is_empty()) {
        let _ = notices.send(std::mem::take(notice));
    }
    replies
}

/// Debug builds only, for the test of a member whose Raft core stops by itself
/// (`tests/fast_restart.rs`): with `TANDEM_BREAK_SAFETY=fail-apply`, applying a `SET` of
/// the key `tandem-test:fail-apply` fails as a broken store would.
fn break_safety_fail_apply(entry: &crate::store::Entry) -> bool {
    #[cfg(debug_assertions)]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let on = *ON.get_or_init(|| std::env::var("TANDEM_BREAK_SAFETY").is_ok_and(|v| v == "fail-apply"));
        on && entry
            .ops
            .iter()
            .any(|op| matches!(op, crate::store::Op::Command(args) if args.get(1).is_some_and(|k| &k[..] == b"tandem-test:fail-apply")))
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = entry;
        false
    }
}
