//! The stripe's Raft log storage for openraft: entries in memory (the tail since the
//! last purge) for fast reads, and — for a restartable server — on disk through a
//! writer thread that batches appends into one write and one `fdatasync` (group
//! commit) before telling Raft they are durable. A non-restartable server runs the
//! same code with no writer: appends are "durable" at once, in memory.
//!
//! Disk trouble (full disk, failed fsync) never reaches Raft as a fatal error: the
//! writer keeps the batch, reports the trouble through [`DiskHealth`] (the server then
//! refuses new writes with -MISCONF), retries, and acknowledges once the batch is on
//! disk. Nothing is acknowledged before it is durable.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use super::log_file::{sync_dir, LogError, LogFile};
use super::record::{decode_raft_entry, decode_vote, encode_raft_entry, encode_vote, get_opt_log_id, put_opt_log_id};
use super::types::{LogId, RaftEntry, TypeConfig, Vote};
use crate::store::codec::Decoder;

/// How long the writer waits before retrying a write the disk refused.
const RETRY_MS: u64 = 100;

/// Whether the log's disk is accepting writes; shared with the server, which refuses
/// new writes while it is not.
#[derive(Debug, Default)]
pub struct DiskHealth {
    problem: Mutex<Option<String>>,
}

impl DiskHealth {
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, problem: Option<String>) {
        let mut slot = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        match (&*slot, &problem) {
            (None, Some(p)) => tracing::error!(problem = %p, "the log cannot be written: refusing writes until it can"),
            (Some(_), None) => tracing::info!("the log is writable again"),
            _ => {}
        }
        *slot = problem;
    }
}

#[derive(Default)]
struct State {
    /// Each entry with its [`entry_bytes`], counted once when it enters.
    entries: BTreeMap<u64, (RaftEntry, usize)>,
    vote: Option<Vote>,
    purged: Option<LogId>,
    /// Reserved in the meta format; not written yet: `save_committed` is not
    /// implemented (a restarted server re-elects itself and replays to the end).
    committed: Option<LogId>,
}

enum Job {
    Append { records: Vec<(u64, Vec<u8>)>, callback: IOFlushed<TypeConfig> },
    Truncate { since: u64, done: tokio::sync::oneshot::Sender<Result<(), String>> },
    Purge { upto: u64 },
}

struct Inner {
    /// Approximate bytes of the entries held in memory, so `data-storage` can bound the
    /// data alone and the log can be snapshotted and purged when it grows.
    bytes: std::sync::atomic::AtomicUsize,
    state: Mutex<State>,
    writer: Option<Mutex<mpsc::Sender<Job>>>,
    meta_path: Option<PathBuf>,
    health: Arc<DiskHealth>,
}

/// Entries a purge frees where it runs; more go to the lazy-free thread.
const PURGE_FREED_IN_PLACE_MAX: usize = 2048;

/// The log store handle; clones share everything (openraft clones readers).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

/// What opening a restartable log reports besides the store.
pub struct OpenReport {
    pub entries: usize,
    pub torn_tail: Option<String>,
}

impl LogStore {
    /// A log kept in memory only (restartable = false).
    pub fn in_memory() -> LogStore {
        LogStore {
            inner: Arc::new(Inner {
                bytes: Default::default(),
                state: Mutex::default(),
                writer: None,
                meta_path: None,
                health: Arc::default(),
            }),
        }
    }

    /// Opens the log under `dir` (creating it), reading every entry back; starts the
    /// writer thread. Corruption is an error naming file and offset.
    pub fn open(dir: &Path) -> Result<(LogStore, OpenReport), LogError> {
        let meta_path = dir.join("raft-meta");
        let (vote, purged, committed) = read_meta(&meta_path)?;
        let opened = LogFile::open(&dir.join("log"))?;
        let torn_tail = opened.torn_tail.as_ref().map(|(file, offset, dropped)| {
            format!(
                "{}: offset {offset}: torn tail of {dropped} bytes truncated (a write cut short by a crash, never acknowledged)",
                file.display()
            )
        });
        let mut entries = BTreeMap::new();
        for record in &opened.records {
            if purged.is_some_and(|p: LogId| record.index <= p.index) {
                continue;
            }
            let entry = decode_raft_entry(record.index, &record.body).map_err(|e| LogError::Corrupt {
                file: dir.join("log"),
                offset: 0,
                why: format!("record for index {} does not decode: {e}", record.index),
            })?;
            let bytes = entry_bytes(&entry);
            entries.insert(record.index, (entry, bytes));
        }
        let count = entries.len();
        let bytes: usize = entries.values().map(|(_, bytes)| bytes).sum();
        let (tx, rx) = mpsc::channel();
        let health = Arc::new(DiskHealth::default());
        let writer_health = health.clone();
        let log = opened.log;
        std::thread::Builder::new()
            .name("tandem-log-writer".into())
            .spawn(move || writer_loop(log, rx, writer_health))
            .map_err(|e| LogError::Io { path: dir.to_path_buf(), source: e })?;
        let state = State { entries, vote, purged, committed };
        let inner =
            Inner { bytes: bytes.into(), state: Mutex::new(state), writer: Some(Mutex::new(tx)), meta_path: Some(meta_path), health };
        Ok((LogStore { inner: Arc::new(inner) }, OpenReport { entries: count, torn_tail }))
    }

    /// Where to purge so that the entries kept at or below `snapshot` (which the
    /// snapshot covers) hold at most `keep_bytes`: the highest such entry whose
    /// bytes, with those after it up to `snapshot`, go over; `None` when they all fit.
    pub fn purge_point(&self, snapshot: u64, keep_bytes: usize) -> Option<u64> {
        let state = self.state();
        let mut kept = 0;
        for (index, (_, bytes)) in state.entries.range(..=snapshot).rev() {
            kept += bytes;
            if kept > keep_bytes {
                return Some(*index);
            }
        }
        None
    }

    /// Approximate bytes of log entries held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.inner.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn account(&self, removed: &BTreeMap<u64, (RaftEntry, usize)>) {
        let freed: usize = removed.values().map(|(_, bytes)| bytes).sum();
        let _ = self
            .inner
            .bytes
            .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |b| Some(b.saturating_sub(freed)));
    }

    pub fn health(&self) -> Arc<DiskHealth> {
        self.inner.health.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, job: Job) -> io::Result<()> {
        let Some(writer) = &self.inner.writer else { return Ok(()) };
        writer.lock().unwrap_or_else(|e| e.into_inner()).send(job).map_err(|_| io::Error::other("the log writer has stopped"))
    }

    /// Writes vote, purged and committed ids atomically and durably (rare: elections,
    /// purges). Done on a blocking thread so no runtime worker waits on fsync.
    async fn save_meta(&self) -> io::Result<()> {
        let Some(path) = self.inner.meta_path.clone() else { return Ok(()) };
        let bytes = {
            let st = self.state();
            encode_meta(&st.vote, &st.purged, &st.committed)
        };
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes)).await.map_err(io::Error::other)?
    }
}

/// The memory an entry holds: its arguments plus per-argument and per-entry overhead.
fn entry_bytes(entry: &RaftEntry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(e) => e.ops_bytes(32, 24) + 96,
        _ => 96,
    }
}

fn encode_meta(vote: &Option<Vote>, purged: &Option<LogId>, committed: &Option<LogId>) -> Vec<u8> {
    let mut body = Vec::new();
    match vote {
        None => body.push(0),
        Some(v) => {
            body.push(1);
            body.extend_from_slice(&encode_vote(v));
        }
    }
    put_opt_log_id(&mut body, purged);
    put_opt_log_id(&mut body, committed);
    let mut out = b"TNDMMETA".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

type Meta = (Option<Vote>, Option<LogId>, Option<LogId>);

fn read_meta(path: &Path) -> Result<Meta, LogError> {
    let corrupt = |offset: u64, why: String| LogError::Corrupt { file: path.to_path_buf(), offset, why };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, None, None)),
        Err(e) => return Err(LogError::Io { path: path.to_path_buf(), source: e }),
    };
    if bytes.len() < 16 || &bytes[..8] != b"TNDMMETA" {
        return Err(corrupt(0, "not a Tandem raft-meta file".into()));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let body =
        bytes.get(16..16 + len).ok_or_else(|| corrupt(16, format!("body of {len} bytes announced, {} present", bytes.len() - 16)))?;
    if crc32c::crc32c(body) != crc {
        return Err(corrupt(12, "checksum mismatch".into()));
    }
    let mut d = Decoder::new(body);
    let parse = |d: &mut Decoder| -> Result<Meta, crate::store::codec::CodecError> {
        let vote = match d.u8("vote presence")? {
            0 => None,
            _ => Some(decode_vote(d)?),
        };
        Ok((vote, get_opt_log_id(d)?, get_opt_log_id(d)?))
    };
    parse(&mut d).map_err(|e| corrupt(16, e.to_string()))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(())
}

/// The writer thread: takes jobs in order; consecutive appends are written together
/// and covered by one fdatasync; their callbacks fire only after it succeeded.
fn writer_loop(mut log: LogFile, rx: mpsc::Receiver<Job>, health: Arc<DiskHealth>) {
    let mut pending: Option<Job> = None;
    loop {
        let job = match pending.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Append { records, callback } => {
                let mut batch = vec![(records, callback)];
                loop {
                    match rx.try_recv() {
                        Ok(Job::Append { records, callback }) => batch.push((records, callback)),
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                write_batch(&mut log, batch, &health);
            }
            Job::Truncate { since, done } => {
                let result = log.truncate_from(since).map_err(|e| e.to_string());
                let _ = done.send(result);
            }
            Job::Purge { upto } => {
                if let Err(e) = log.purge_upto(upto) {
                    tracing::warn!(error = %e, "purging log segments failed; they stay on disk and are skipped");
                }
            }
        }
    }
}

/// Appends waiting to be written: their records and the callback that acknowledges them.
type Batch = Vec<(Vec<(u64, Vec<u8>)>, IOFlushed<TypeConfig>)>;

fn write_batch(log: &mut LogFile, batch: Batch, health: &DiskHealth) {
    let records: Vec<(u64, &[u8])> = batch.iter().flat_map(|(recs, _)| recs.iter().map(|(i, b)| (*i, &b[..]))).collect();
    loop {
        let result = (|| {
            if let (Some(&(first, _)), Some(last)) = (records.first(), log.last_index()) {
                if first > last + 1 {
                    // Everything before `first` was replaced by a snapshot from the active.
                    log.clear()?;
                }
            }
            log.append(&records)?;
            log.sync()
        })();
        match result {
            Ok(()) => {
                health.set(None);
                break;
            }
            Err(e) => {
                health.set(Some(e.to_string()));
                // Whatever of the batch reached the file is not known durable (a failed
                // fsync may have dropped it): cut it off and write the batch again.
                if let Some(&(first, _)) = records.first() {
                    let _ = log.truncate_from(first);
                }
                std::thread::sleep(Duration::from_millis(RETRY_MS));
            }
        }
    }
    for (_, callback) in batch {
        callback.io_completed(Ok(()));
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<RaftEntry>, io::Error> {
        Ok(self.state().entries.range(range).map(|(_, (e, _))| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.state().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let st = self.state();
        let last = st.entries.values().next_back().map(|(e, _)| e.log_id).or(st.purged);
        Ok(LogState { last_purged_log_id: st.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.state().vote = Some(*vote);
        self.save_meta().await
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = RaftEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let durable = self.inner.writer.is_some();
        let mut records = Vec::new();
        {
            let mut st = self.state();
            let mut added = 0;
            for entry in entries {
                if durable {
                    records.push((entry.log_id.index, encode_raft_entry(&entry)));
                }
                let bytes = entry_bytes(&entry);
                added += bytes;
                st.entries.insert(entry.log_id.index, (entry, bytes));
            }
            self.inner.bytes.fetch_add(added, std::sync::atomic::Ordering::Relaxed);
        }
        if durable {
            self.send(Job::Append { records, callback })?;
        } else {
            callback.io_completed(Ok(()));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), io::Error> {
        let since = last.map_or(0, |l| l.index + 1);
        let removed = self.state().entries.split_off(&since);
        self.account(&removed);
        if self.inner.writer.is_some() {
            let (done, wait) = tokio::sync::oneshot::channel();
            self.send(Job::Truncate { since, done })?;
            wait.await.map_err(io::Error::other)?.map_err(io::Error::other)?;
        }
        Ok(())
    }

    async fn purge(&mut self, upto: LogId) -> Result<(), io::Error> {
        let removed = {
            let mut st = self.state();
            let keep = st.entries.split_off(&(upto.index + 1));
            st.purged = Some(upto);
            std::mem::replace(&mut st.entries, keep)
        };
        self.account(&removed);
        // Freeing tens of thousands of entries here would stall the Raft core, and
        // every write behind it, for milliseconds (about 0.1 ms a thousand).
        if removed.len() > PURGE_FREED_IN_PLACE_MAX {
            crate::store::lazyfree::free_elsewhere(Box::new(removed));
        }
        // The purge point is durable before any segment disappears.
        self.save_meta().await?;
        self.send(Job::Purge { upto: upto.index })
    }
}
