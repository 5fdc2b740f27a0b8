//! Snapshots of the state machine: a compact, versioned, checksummed file (or the
//! same bytes in memory for a non-restartable server).
//!
//! ```text
//! "TNDMSNAP" | format version u32 LE | key count u32 LE (a hint: 0 before it was
//!            written; loaders size the keyspace by it, the end record's count is checked)
//! record*    : len u32 LE | crc32c(len ‖ payload) u32 LE | payload
//!   payload 0: meta    = last log id, membership log id, membership
//!   payload 6: state   = last applied entry time (varint), count,   (from version 3:
//!                        removal floor (varint)×count                 right after meta)
//!   payload 1: key     = key, expire_at_ms (varint), [from version 3: key version (varint)],
//!                        value (store::codec)
//!   payload 3: script  = a cached script's source                  (version 2)
//!   payload 4: library = a function library (store::scripts)       (version 2)
//!   payload 5: limits  = the stripe's script limits                (version 2)
//!   payload 7: streams = stream node limits: max entries, max bytes (version 4)
//!   payload 8: users   = count, then each ACL user held as its `user <name> <rules>`
//!                        line, passwords as SHA-256 hashes (version 5; written
//!                        whether or not any user is held)
//!   payload 9: once    = the record of forwarded writes applied (`store::once`;
//!                        version 6, written whether or not it holds any)
//!   payload 10: prims  = client sessions, fenced locks (holder, FIFO waiters), groups
//!                         and the last fencing token (store::prims; version 6; written
//!                         whether or not any is held)
//!   payload 2: end     = number of key records; from version 2 also the
//!                        numbers of script and library records
//! ```
//! Version 1 (e66709c, no scripts) is still read: its scripts are none, its limits the
//! defaults. Versions 1 and 2 (written before WATCH was decided in apply) carry no key
//! versions, removal floors or entry time: they load with every key and floor at the
//! snapshot's index (as if everything had just been modified, which can only fail a
//! WATCH, never pass one wrongly) and time 0 (raised by the first entry applied).
//! Versions 1 to 3 hold no streams (no value of tag 5, no record 7): their stream node
//! limits are the defaults.
//! Versions 1 to 4 hold no users (no record 8): their users are none held, so the
//! default user is the configured one, as before users were replicated.
//! Versions 1 to 5 hold no record of forwarded writes (no record 9): it loads empty,
//! as before writes were tagged.
//! Versions 1 to 5 hold no sessions, locks or groups (no record 10): they load with
//! none, and fencing tokens start at 1.
//! Every record is checked on load; a bad one stops the load with the file and offset,
//! a missing end record says the file was cut short. A snapshot is written to a
//! temporary name, fsynced, then renamed, so a crash never leaves half a snapshot
//! under a valid name.

use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::codec::{encode_value, put_bytes, put_varint, Decoder};
use crate::store::db::Db;
use crate::store::scripts::{self, sha1_hex};
use crate::store::watch::{RemovedFloors, REMOVED_BUCKETS};

use super::record::{get_snapshot_meta, put_snapshot_meta};
use super::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"TNDMSNAP";
pub const FORMAT_VERSION: u32 = 6;
/// The first format, without scripts: still read.
const FORMAT_VERSION_NO_SCRIPTS: u32 = 1;
/// With scripts, before key versions, removal floors and the entry time: still read.
const FORMAT_VERSION_UNVERSIONED: u32 = 2;
/// With key versions, before streams: still read.
const FORMAT_VERSION_NO_STREAMS: u32 = 3;
/// With streams, before ACL users: still read.
const FORMAT_VERSION_NO_USERS: u32 = 4;
/// With users, before the record of forwarded writes: still read.
const FORMAT_VERSION_NO_ONCE: u32 = 5;
/// With ACL users, before sessions, locks and groups: still read.
const FORMAT_VERSION_NO_PRIMS: u32 = 5;
const KIND_META: u8 = 0;
const KIND_KEY: u8 = 1;
const KIND_END: u8 = 2;
const KIND_SCRIPT: u8 = 3;
const KIND_LIBRARY: u8 = 4;
const KIND_LIMITS: u8 = 5;
const KIND_STATE: u8 = 6;
const KIND_STREAM_LIMITS: u8 = 7;
const KIND_USERS: u8 = 8;
const KIND_ONCE: u8 = 9;
const KIND_PRIMS: u8 = 10;
/// Largest record: one key with its whole value (a big collection can pass 1 GiB);
/// the length field is 32 bits.
const RECORD_BYTES_MAX: usize = u32::MAX as usize;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {file}: offset {offset}: {why}")]
    Corrupt { file: String, offset: usize, why: String },
    #[error("snapshot {file}: {source}")]
    Io { file: String, source: std::io::Error },
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    // encode_to refuses larger payloads before they get here.
    let len = payload.len() as u32;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Serialises `db` with `meta` into bytes.
pub fn encode(db: &Db, meta: &SnapshotMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + db.len() * 64);
    let _ = encode_to(db, meta, &mut out);
    out
}

/// Serialises `db` with `meta` into `sink`, a record at a time (no whole-snapshot buffer).
pub fn encode_to(db: &Db, meta: &SnapshotMeta, sink: &mut impl Write) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&u32::try_from(db.len()).unwrap_or(u32::MAX).to_le_bytes());
    let mut payload = vec![KIND_META];
    put_snapshot_meta(&mut payload, meta);
    frame(&payload, &mut out);
    debug_assert!(meta.last_log_id.is_none_or(|l| l.index == db.index()), "a snapshot's data is at its meta's index");
    payload.clear();
    payload.push(KIND_STATE);
    put_varint(&mut payload, db.time_ms());
    let floors = db.removed_floors().as_slice();
    put_varint(&mut payload, floors.len() as u64);
    for floor in floors {
        put_varint(&mut payload, *floor);
    }
    frame(&payload, &mut out);
    let mut count = 0u64;
    for (key, item) in db.iter() {
        payload.clear();
        payload.push(KIND_KEY);
        put_bytes(&mut payload, key);
        put_varint(&mut payload, item.expire_at_ms);
        put_varint(&mut payload, u64::from(item.version()));
        encode_value(&item.value, &mut payload);
        if payload.len() > RECORD_BYTES_MAX {
            return Err(std::io::Error::other(format!(
                "key {:?} holds {} bytes: more than one snapshot record can",
                String::from_utf8_lossy(key),
                payload.len()
            )));
        }
        frame(&payload, &mut out);
        count += 1;
        if out.len() >= 64 * 1024 {
            sink.write_all(&out)?;
            out.clear();
        }
    }
    let (script_count, library_count) = encode_scripts(db, &mut payload, &mut out);
    payload.clear();
    payload.push(KIND_STREAM_LIMITS);
    put_varint(&mut payload, db.stream_limits.max_entries);
    put_varint(&mut payload, db.stream_limits.max_bytes);
    frame(&payload, &mut out);
    payload.clear();
    payload.push(KIND_USERS);
    let lines = db.acl.held_lines();
    put_varint(&mut payload, lines.len() as u64);
    for line in &lines {
        put_bytes(&mut payload, line.as_bytes());
    }
    frame(&payload, &mut out);
    payload.clear();
    payload.push(KIND_ONCE);
    db.once.encode(&mut payload);
    if payload.len() > RECORD_BYTES_MAX {
        return Err(std::io::Error::other("the record of forwarded writes is larger than one snapshot record can hold"));
    }
    frame(&payload, &mut out);
    payload.clear();
    payload.push(KIND_PRIMS);
    db.prims.encode(&mut payload);
    frame(&payload, &mut out);
    payload.clear();
    payload.push(KIND_END);
    put_varint(&mut payload, count);
    put_varint(&mut payload, script_count);
    put_varint(&mut payload, library_count);
    frame(&payload, &mut out);
    sink.write_all(&out)
}

/// Appends the script records; returns how many scripts and libraries were written.
fn encode_scripts(db: &Db, payload: &mut Vec<u8>, out: &mut Vec<u8>) -> (u64, u64) {
    let (mut script_count, mut library_count) = (0u64, 0u64);
    for source in db.scripts.sources() {
        payload.clear();
        payload.push(KIND_SCRIPT);
        put_bytes(payload, source);
        frame(payload, out);
        script_count += 1;
    }
    for library in db.scripts.libraries() {
        payload.clear();
        payload.push(KIND_LIBRARY);
        payload.extend_from_slice(&scripts::encode_library(library));
        frame(payload, out);
        library_count += 1;
    }
    payload.clear();
    payload.push(KIND_LIMITS);
    payload.extend_from_slice(&scripts::encode_limits(&db.scripts.limits));
    frame(payload, out);
    (script_count, library_count)
}

/// Moves a fully written and fsynced temporary snapshot into place as snapshot
/// `index` (rename, fsync dir) and removes older snapshots (never a newer one: the
/// log may already be purged behind it). Returns the path.
pub fn commit(dir: &Path, tmp: &Path, index: u64) -> Result<PathBuf, SnapshotError> {
    let path = dir.join(file_name(index));
    std::fs::rename(tmp, &path).map_err(|source| SnapshotError::Io { file: path.display().to_string(), source })?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|source| SnapshotError::Io { file: dir.display().to_string(), source })?;
    for old in list(dir) {
        // Zero-padded indexes: names sort as the indexes do.
        if old < path {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(path)
}

/// Reads a snapshot back from a buffer (version 6, or 1 to 5 as the module doc
/// says). `file` names it in errors; `now_ms` seeds access metadata. Copies `bytes`
/// once: a caller holding them as [`Bytes`] uses [`decode_bytes`].
pub fn decode(bytes: &[u8], file: &str, now_ms: u64) -> Result<(SnapshotMeta, Db), SnapshotError> {
    decode_bytes(Bytes::copy_from_slice(bytes), file, now_ms)
}

/// [`decode`] of a whole snapshot held as [`Bytes`] (a file read back, a snapshot in
/// memory): the keyspace is sized once, from a look at the record headers.
pub fn decode_bytes(bytes: Bytes, file: &str, now_ms: u64) -> Result<(SnapshotMeta, Db), SnapshotError> {
    // A file written before its header held the key count: counted from the headers.
    let hint = (header_keys_hint(&bytes) == 0).then(|| key_records_hint(&bytes));
    let total = bytes.len() as u64;
    decode_pieces(std::iter::once(bytes), total, hint, file, now_ms)
}

/// The key count the header holds (0: none, or not a snapshot).
fn header_keys_hint(bytes: &[u8]) -> usize {
    bytes.get(12..16).map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize)
}

/// Reads the snapshot file at `path` back, loading it while it is read: a thread
/// reads the file in pieces, the loading stages take each as it comes (a restart
/// no longer reads the whole file before the first key is loaded).
pub fn load_file(path: &Path, now_ms: u64) -> Result<(SnapshotMeta, Db), SnapshotError> {
    use std::io::Read;
    let name = path.display().to_string();
    let io = |source: std::io::Error| SnapshotError::Io { file: name.clone(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    let failed = std::sync::Mutex::new(None);
    let result = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(FILE_PIECES_AHEAD);
        let reading = std::thread::Builder::new().name("tandem-snapshot-file".into()).spawn_scoped(scope, || {
            let tx = tx;
            loop {
                let mut piece = Vec::with_capacity(FILE_PIECE_BYTES);
                match (&mut file).take(FILE_PIECE_BYTES as u64).read_to_end(&mut piece) {
                    Ok(0) => return,
                    // The loading stages stopped (a bad record): nothing more is wanted.
                    Ok(_) if tx.send(piece.into()).is_err() => return,
                    Ok(_) => {}
                    Err(e) => {
                        *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        return;
                    }
                }
            }
        });
        match reading {
            Ok(_) => decode_pieces(rx.into_iter(), total, None, &name, now_ms),
            // No thread to be had: the whole file first, then loaded.
            Err(_) => decode_bytes(std::fs::read(path).map_err(io)?.into(), &name, now_ms),
        }
    });
    // A read that failed cut the pieces short: its error is the one to report.
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(io(e)),
        None => result,
    }
}

/// A snapshot file is read in pieces of this size, at most this many ahead of the
/// loading.
const FILE_PIECE_BYTES: usize = 4 << 20;
const FILE_PIECES_AHEAD: usize = 4;

/// Reads a snapshot of `total` bytes from `pieces` as they come (a snapshot being
/// received from the active: the loading keeps pace with the network), pieces of
/// any size. `keys_hint`: about how many key records it holds, if known; otherwise
/// the header's key count, if it has one (the keyspace is then sized once; else it
/// grows). The pieces ending before the end record is an error, as a cut file is.
pub fn decode_pieces(
    pieces: impl Iterator<Item = Bytes> + Send,
    total: u64,
    keys_hint: Option<usize>,
    file: &str,
    now_ms: u64,
) -> Result<(SnapshotMeta, Db), SnapshotError> {
    let corrupt = |offset: usize, why: String| SnapshotError::Corrupt { file: file.to_string(), offset, why };
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    let mut input = Pieces { rest: pieces, current: Bytes::new(), pos: 0, total };
    let header = match input.take(16) {
        Some(header) if &header[..8] == MAGIC => header,
        _ => return Err(corrupt(0, "not a Tandem snapshot (bad magic)".into())),
    };
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if !(FORMAT_VERSION_NO_SCRIPTS..=FORMAT_VERSION).contains(&version) {
        return Err(corrupt(
            8,
            format!("snapshot format version {version}, this build reads {FORMAT_VERSION_NO_SCRIPTS} to {FORMAT_VERSION}"),
        ));
    }
    let mut loading = Loading::new(version, now_ms);
    let mut keys_hint = keys_hint.or(Some(header_keys_hint(&header)).filter(|n| *n > 0));
    let versioned = loading.versioned;
    // Two stages on two threads: one checks each record and decodes the keys'
    // values (checksums, varints, allocations), the other inserts them into the
    // keyspace in the file's order (cache misses in a table of millions). A
    // restart and a new mirror's catch-up load at the pace of the slower one.
    let input = std::sync::Mutex::new(Some(input));
    let take_input = || input.lock().unwrap_or_else(|e| e.into_inner()).take();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(RECORD_BATCHES_IN_FLIGHT);
        let reader = std::thread::Builder::new().name("tandem-snapshot-read".into()).spawn_scoped(scope, move || {
            if let Some(input) = take_input() {
                read_records(input, versioned, |batch| tx.send(batch).is_ok());
            }
        });
        let batches: Box<dyn Iterator<Item = Vec<Record>>> = match reader {
            Ok(_) => Box::new(rx.into_iter()),
            Err(e) => {
                // No thread to be had (a process at its limits): both stages here.
                tracing::warn!(error = %e, "no thread to read the snapshot with: reading and loading it on one");
                let mut all = Vec::new();
                if let Some(input) = take_input() {
                    read_records(input, versioned, |batch| {
                        all.push(batch);
                        true
                    });
                }
                Box::new(all.into_iter())
            }
        };
        for batch in batches {
            // The keyspace is sized once the first records have checked out: the hint
            // (headers only, unchecked) is held to twice what a file of this size
            // holds at their average size, so a damaged file reserves little.
            if let (Some(hint), [first, .., last]) = (keys_hint, batch.as_slice()) {
                let average = ((last.pos() - first.pos()) / (batch.len() - 1)).max(1);
                loading.db.reserve(hint.min(2 * total / average));
                keys_hint = None;
            }
            let mut batch = std::collections::VecDeque::from(batch);
            while let Some(record) = batch.pop_front() {
                // The keyspace lookup of a key a few ahead starts loading now.
                if let Some(Record::Key { key, .. }) = batch.get(INSERT_PREFETCH_AHEAD - 1) {
                    loading.db.prefetch_load(&key.key, key.slot);
                }
                let pos = record.pos();
                let done = match record {
                    Record::Key { key, .. } => loading.take_key(key).map(|()| false).map_err(|why| corrupt(pos, why))?,
                    Record::Other { kind, payload, .. } => {
                        loading.record(kind, &mut Decoder::new(&payload)).map_err(|why| corrupt(pos, why))?
                    }
                    Record::Bad { why, .. } => return Err(corrupt(pos, why)),
                };
                if done {
                    let Loading { meta, db, .. } = loading;
                    let meta = meta.ok_or_else(|| corrupt(pos, "no meta record".into()))?;
                    return Ok((meta, db));
                }
            }
        }
        Err(corrupt(total, "cut short: no end record".into()))
    })
}

/// Records sent from the reading thread to the loading one at a time, and batches
/// of them on their way: enough to keep both busy, few enough to bound the memory
/// of decoded values waiting (a batch holds up to `RECORD_BATCH` keys).
const RECORD_BATCH: usize = 1024;
const RECORD_BATCHES_IN_FLIGHT: usize = 16;
/// How many keys ahead of the one inserted its keyspace slot is prefetched.
const INSERT_PREFETCH_AHEAD: usize = 8;

/// The most room reserved at once for a record spanning pieces.
const JOIN_RESERVE_MAX: usize = 8 << 20;

/// A snapshot's bytes as they come, in pieces of any size: a record within one
/// piece is taken from it without copying; one that spans pieces is copied whole.
struct Pieces<I> {
    rest: I,
    /// What is left of the piece being read.
    current: Bytes,
    /// The offset in the snapshot of `current`'s first byte.
    pos: usize,
    /// The snapshot's length: nothing is read beyond it.
    total: usize,
}

impl<I: Iterator<Item = Bytes>> Pieces<I> {
    /// The next `n` bytes; `None` when the snapshot ends before (its announced
    /// length, or the pieces).
    fn take(&mut self, n: usize) -> Option<Bytes> {
        self.take_with(n, Bytes::copy_from_slice)
    }

    /// Hands the next `n` bytes to `f`, borrowed from their piece when they lie
    /// within one (no copy, and no count on the piece's shared buffer: two threads
    /// counting on one buffer made a quarter of a restart's work); `None` when the
    /// snapshot ends before.
    fn take_with<R>(&mut self, n: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.pos.checked_add(n)? > self.total {
            return None;
        }
        while self.current.is_empty() && n > 0 {
            self.current = self.rest.next()?;
        }
        let result = if self.current.len() >= n {
            let result = f(&self.current[..n]);
            bytes::Buf::advance(&mut self.current, n);
            result
        } else {
            // Room within reason: a damaged length grows only as bytes come.
            let mut joined = Vec::with_capacity(n.min(JOIN_RESERVE_MAX));
            joined.extend_from_slice(&std::mem::take(&mut self.current));
            while joined.len() < n {
                let mut next = self.rest.next()?;
                joined.extend_from_slice(&next.split_to((n - joined.len()).min(next.len())));
                self.current = next;
            }
            f(&joined)
        };
        self.pos += n;
        Some(result)
    }
}

/// One record as the reading thread found it.
enum Record {
    /// A key record, checked and decoded.
    Key { pos: usize, key: KeyRecord },
    /// Any other record, checked; decoded where it is loaded (few and small).
    Other { pos: usize, kind: u8, payload: Bytes },
    /// Where the file stops making sense; nothing after it is read.
    Bad { pos: usize, why: String },
}

impl Record {
    fn pos(&self) -> usize {
        match self {
            Record::Key { pos, .. } | Record::Other { pos, .. } | Record::Bad { pos, .. } => *pos,
        }
    }
}

/// A key record's fields, decoded on the reading thread: the key copied out of the
/// snapshot's bytes into the keyspace's form, with its hash slot.
struct KeyRecord {
    key: crate::store::table::Key,
    slot: u16,
    expire_at_ms: u64,
    /// `None` in a snapshot written before key versions (they load at its index).
    version: Option<u32>,
    value: crate::store::value::Value,
}

/// The reading stage: checks every record's frame and checksum, decodes key
/// records, and hands them to `send` in batches until the end record or the first
/// bad one, or until `send` says no more are wanted. `input` is past the header.
fn read_records<I: Iterator<Item = Bytes>>(mut input: Pieces<I>, versioned: bool, mut send: impl FnMut(Vec<Record>) -> bool) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    loop {
        let pos = input.pos;
        let (record, more) = match next_record(&mut input, pos, versioned) {
            Err(why) => (Record::Bad { pos, why }, false),
            Ok(record) => {
                let more = !matches!(record, Record::Other { kind: KIND_END, .. });
                (record, more)
            }
        };
        batch.push(record);
        if !more {
            break;
        }
        if batch.len() == RECORD_BATCH && !send(std::mem::replace(&mut batch, Vec::with_capacity(RECORD_BATCH))) {
            // The loading stage stopped (a bad record): nothing more is wanted.
            return;
        }
    }
    send(batch);
}

/// The next record (at `pos`), once its length and checksum check out; a key
/// record decoded.
fn next_record<I: Iterator<Item = Bytes>>(input: &mut Pieces<I>, pos: usize, versioned: bool) -> Result<Record, String> {
    let (len, crc) = input
        .take_with(8, |h| (u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize, u32::from_le_bytes([h[4], h[5], h[6], h[7]])))
        .ok_or_else(|| "cut short: no end record".to_string())?;
    if len == 0 || len > RECORD_BYTES_MAX {
        return Err(format!("impossible record length {len}"));
    }
    input
        .take_with(len, |payload| {
            let actual = crc32c::crc32c_append(crc32c::crc32c(&(len as u32).to_le_bytes()), payload);
            if actual != crc {
                return Err(format!("checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"));
            }
            match payload[0] {
                KIND_KEY => decode_key(payload, versioned).map(|key| Record::Key { pos, key }),
                kind => Ok(Record::Other { pos, kind, payload: Bytes::copy_from_slice(&payload[1..]) }),
            }
        })
        .ok_or_else(|| format!("record of {len} bytes cut short"))?
}

/// About how many key records `bytes` holds, from the record headers alone (no
/// checksums): the keyspace is sized once instead of growing on the way (the caller
/// holds it to what the first checked records suggest).
fn key_records_hint(bytes: &[u8]) -> usize {
    let mut pos = 16;
    let mut keys = 0;
    while let Some(header) = bytes.get(pos..pos + 9) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len == 0 {
            break;
        }
        keys += usize::from(header[8] == KIND_KEY);
        pos = pos.saturating_add(8 + len);
    }
    keys
}

/// A key record's payload (its kind first): key, expiry, version, value.
fn decode_key(payload: &[u8], versioned: bool) -> Result<KeyRecord, String> {
    let bad = |e: crate::store::codec::CodecError| e.to_string();
    let mut d = Decoder::new(&payload[1..]);
    let key = d.bytes("key").map_err(bad)?;
    let slot = crate::cluster::slot::key_slot(key);
    let key = crate::store::table::Key::from(key);
    let expire_at_ms = d.varint("expiry").map_err(bad)?;
    // Versions are the low 32 bits of a log index (see `store::db::Item`).
    let version = if versioned {
        let v = d.varint("key version").map_err(bad)?;
        Some(u32::try_from(v).map_err(|_| format!("key version {v} is over 32 bits"))?)
    } else {
        None
    };
    let value = d.value().map_err(bad)?;
    d.finish().map_err(bad)?;
    Ok(KeyRecord { key, slot, expire_at_ms, version, value })
}

/// A snapshot being read: what its records built so far and counted.
struct Loading {
    meta: Option<SnapshotMeta>,
    db: Db,
    now_ms: u64,
    keys: u64,
    script_records: u64,
    library_records: u64,
    with_scripts: bool,
    versioned: bool,
    with_streams: bool,
    with_users: bool,
    with_once: bool,
    with_prims: bool,
    /// Version 3: keys come only after the state record.
    state_read: bool,
}

impl Loading {
    fn new(version: u32, now_ms: u64) -> Loading {
        let versioned = version > FORMAT_VERSION_UNVERSIONED;
        Loading {
            meta: None,
            db: Db::new(),
            now_ms,
            keys: 0,
            script_records: 0,
            library_records: 0,
            with_scripts: version >= FORMAT_VERSION_UNVERSIONED,
            versioned,
            with_streams: version > FORMAT_VERSION_NO_STREAMS,
            with_users: version > FORMAT_VERSION_NO_USERS,
            with_once: version > FORMAT_VERSION_NO_ONCE,
            with_prims: version > FORMAT_VERSION_NO_PRIMS,
            state_read: !versioned,
        }
    }

    /// Takes one record; true at the end record, once the counts check out.
    fn record(&mut self, kind: u8, d: &mut Decoder) -> Result<bool, String> {
        let bad = |e: crate::store::codec::CodecError| e.to_string();
        let started = self.meta.is_some();
        match kind {
            KIND_META if !started => {
                let m = get_snapshot_meta(d).map_err(bad)?;
                let index = m.last_log_id.map_or(0, |l| l.index);
                // Versions 1 and 2: everything counts as modified at the snapshot's index.
                self.db.restore_state(index, 0, RemovedFloors::all_at(index));
                self.meta = Some(m);
            }
            KIND_STATE if started && !self.state_read => {
                let (time_ms, removed) = decode_state(d)?;
                self.db.restore_state(self.db.index(), time_ms, removed);
                self.state_read = true;
            }
            KIND_SCRIPT if started && self.with_scripts => {
                let source = d.bytes("script source").map_err(bad)?;
                d.finish().map_err(bad)?;
                let source = bytes::Bytes::copy_from_slice(source);
                self.db.scripts.add_script(sha1_hex(&source), source).map_err(|e| e.to_string())?;
                self.script_records += 1;
            }
            KIND_LIBRARY if started && self.with_scripts => {
                let library = scripts::decode_library(d).map_err(bad)?;
                d.finish().map_err(bad)?;
                self.db.scripts.add_libraries(vec![library], false).map_err(|e| e.to_string())?;
                self.library_records += 1;
            }
            KIND_LIMITS if started && self.with_scripts => {
                self.db.scripts.limits = scripts::decode_limits(d).map_err(bad)?;
                d.finish().map_err(bad)?;
            }
            KIND_STREAM_LIMITS if started && self.with_streams => {
                self.db.stream_limits.max_entries = d.varint("stream node max entries").map_err(bad)?;
                self.db.stream_limits.max_bytes = d.varint("stream node max bytes").map_err(bad)?;
                d.finish().map_err(bad)?;
            }
            KIND_USERS if started && self.with_users => {
                let count = d.count("users", 1).map_err(bad)?;
                let mut lines = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    let line = d.bytes("user").map_err(bad)?;
                    lines.push(std::str::from_utf8(line).map_err(|_| "a user line is not UTF-8".to_string())?.to_string());
                }
                d.finish().map_err(bad)?;
                let users = crate::acl::Users::from_held_lines(lines.iter().map(|l| l.as_str()))?;
                self.db.acl = std::sync::Arc::new(users);
            }
            KIND_ONCE if started && self.with_once => {
                self.db.once = crate::store::once::OnceRecord::decode(d).map_err(bad)?;
                d.finish().map_err(bad)?;
            }
            KIND_PRIMS if started && self.with_prims => {
                self.db.prims = crate::store::prims::Prims::decode(d).map_err(bad)?;
                d.finish().map_err(bad)?;
            }
            KIND_END if started && self.state_read => {
                self.end(d)?;
                return Ok(true);
            }
            kind => return Err(format!("unexpected record kind {kind}")),
        }
        Ok(false)
    }

    /// A decoded key record, in its place among the records.
    fn take_key(&mut self, key: KeyRecord) -> Result<(), String> {
        if self.meta.is_none() || !self.state_read {
            return Err(format!("unexpected record kind {KIND_KEY}"));
        }
        let version = key.version.unwrap_or(self.db.index() as u32);
        self.db.load(key.key, key.slot, key.value, key.expire_at_ms, version, self.now_ms);
        self.keys += 1;
        Ok(())
    }

    /// The end record: what the writer counted must be what was read.
    fn end(&self, d: &mut Decoder) -> Result<(), String> {
        let bad = |e: crate::store::codec::CodecError| e.to_string();
        let count = d.varint("key count").map_err(bad)?;
        if count != self.keys {
            return Err(format!("end record counts {count} keys, {} were read", self.keys));
        }
        if self.with_scripts {
            let scripts = d.varint("script count").map_err(bad)?;
            let libraries = d.varint("library count").map_err(bad)?;
            if (scripts, libraries) != (self.script_records, self.library_records) {
                return Err(format!(
                    "end record counts {scripts} scripts and {libraries} libraries, {} and {} were read",
                    self.script_records, self.library_records
                ));
            }
        }
        Ok(())
    }
}

/// The state record (version 3): the last applied entry time and the removal floors.
fn decode_state(d: &mut Decoder) -> Result<(u64, RemovedFloors), String> {
    let time_ms = d.varint("entry time").map_err(|e| e.to_string())?;
    let count = d.count("removal floors", 1).map_err(|e| e.to_string())?;
    if count != REMOVED_BUCKETS {
        return Err(format!("{count} removal floors, expected {REMOVED_BUCKETS}"));
    }
    let floors = (0..count).map(|_| d.varint("removal floor")).collect::<Result<Vec<u64>, _>>().map_err(|e| e.to_string())?;
    d.finish().map_err(|e| e.to_string())?;
    let removed = RemovedFloors::from_vec(floors).ok_or_else(|| "removal floors".to_string())?;
    Ok((time_ms, removed))
}

/// The file name of the snapshot covering up to `index`.
pub fn file_name(index: u64) -> String {
    format!("snapshot-{index:020}.snap")
}

/// Writes `bytes` as snapshot `index` in `dir` (temp, fsync, rename, fsync dir) and
/// removes older snapshots. Returns the path.
pub fn save(dir: &Path, index: u64, bytes: &[u8]) -> Result<PathBuf, SnapshotError> {
    let tmp = dir.join(file_name(index)).with_extension("tmp");
    let io = |source| SnapshotError::Io { file: tmp.display().to_string(), source };
    super::log_file::create_dir_durably(dir)
        .map_err(|e| SnapshotError::Io { file: dir.display().to_string(), source: std::io::Error::other(e.to_string()) })?;
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all())).map_err(io);
    let committed = written.and_then(|()| commit(dir, &tmp, index));
    if committed.is_err() {
        // Half written, on a disk that may be full: its space goes back to the log.
        let _ = std::fs::remove_file(&tmp);
    }
    committed
}

/// Snapshot files in `dir`, newest last.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".snap")))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scripts::{FunctionInfo, Library};
    use crate::store::value::Value;
    use crate::store::watch::WatchStamp;
    use crate::store::{Entry, Op, Store};
    use bytes::Bytes;

    fn meta() -> SnapshotMeta {
        SnapshotMeta::default()
    }

    /// Positions of the records after the header (each record's first byte).
    fn record_starts(bytes: &[u8]) -> Vec<usize> {
        let mut pos = 16;
        let mut starts = Vec::new();
        while let Some(h) = bytes.get(pos..pos + 4) {
            starts.push(pos);
            pos += 8 + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        }
        starts
    }

    /// Many batches of keys (the reading thread sends them `RECORD_BATCH` at a
    /// time): every key, its TTL, its version and the keyspace's order come back;
    /// a damaged record in a later batch is reported at its own offset, and a file
    /// cut short anywhere is refused, never loaded in part.
    #[test]
    fn a_snapshot_of_many_batches_loads_in_order_and_damage_anywhere_is_refused() {
        let mut store = Store::new();
        let ops: Vec<Op> = (0..RECORD_BATCH * 3 + 17)
            .map(|i| {
                let key = Bytes::from(format!("key:{i}"));
                if i % 7 == 0 {
                    Op::Command(vec![
                        Bytes::from_static(b"SET"),
                        key,
                        Bytes::from(format!("v{i}")),
                        Bytes::from_static(b"PX"),
                        Bytes::from_static(b"100000"),
                    ])
                } else {
                    Op::Command(vec![Bytes::from_static(b"SET"), key, Bytes::from(format!("v{i}"))])
                }
            })
            .collect();
        store.apply(&Entry { time_ms: 1000, seed: 1, ops: ops.into(), origins: None, summary: None });
        let bytes = encode(&store.db, &meta());
        let (_, back) = decode(&bytes, "test", 0).unwrap();
        assert_eq!(crate::store::digest(&back), crate::store::digest(&store.db));
        assert_eq!(back.expires_count(), store.db.expires_count());
        let order = |db: &Db| db.iter().map(|(k, i)| (k.to_vec(), i.version())).collect::<Vec<_>>();
        assert_eq!(order(&back), order(&store.db));
        back.check_slot_index().unwrap();

        let starts = record_starts(&bytes);
        let victim = starts[RECORD_BATCH * 2 + 5];
        let mut damaged = bytes.clone();
        damaged[victim + 12] ^= 0x40;
        match decode(&damaged, "test", 0) {
            Err(SnapshotError::Corrupt { offset, why, .. }) => {
                assert_eq!(offset, victim);
                assert!(why.contains("checksum mismatch"), "{why}");
            }
            other => panic!("a damaged record must be refused, got {:?}", other.map(|(_, db)| db.len())),
        }
        for cut in [victim, victim + 3, bytes.len() - 1, *starts.last().unwrap()] {
            assert!(decode(&bytes[..cut], "test", 0).is_err(), "cut at {cut} of {} must be refused", bytes.len());
        }
    }

    /// The reading stage alone (what a load with no second thread runs inline):
    /// every key record once, in order, ending at the end record; and it stops at
    /// once when the loading stage wants no more.
    #[test]
    fn the_reading_stage_hands_over_every_record_once_and_stops_when_told() {
        let mut db = Db::new();
        for i in 0..(RECORD_BATCH * 2 + 3) {
            db.insert(format!("k{i}").as_bytes(), Value::Str(b"v".to_vec()), 0);
        }
        let bytes = encode(&db, &meta());
        let mut batches = Vec::new();
        read_records(past_header(&bytes, usize::MAX), true, |batch| {
            batches.push(batch);
            true
        });
        let records: Vec<Record> = batches.into_iter().flatten().collect();
        let keys: Vec<&[u8]> =
            records.iter().filter_map(|r| if let Record::Key { key, .. } = r { Some(&key.key[..]) } else { None }).collect();
        assert_eq!(keys, db.iter().map(|(k, _)| k).collect::<Vec<_>>());
        assert!(matches!(records.last(), Some(Record::Other { kind: KIND_END, .. })));
        assert!(!records.iter().any(|r| matches!(r, Record::Bad { .. })));
        let mut handed = 0;
        read_records(past_header(&bytes, usize::MAX), true, |_| {
            handed += 1;
            false
        });
        assert_eq!(handed, 1, "a refused batch ends the reading");
    }

    /// `bytes` as pieces of `size` bytes (the last shorter), read past the header.
    fn past_header(bytes: &[u8], size: usize) -> Pieces<std::vec::IntoIter<Bytes>> {
        let pieces: Vec<Bytes> = bytes.chunks(size.min(bytes.len()).max(1)).map(Bytes::copy_from_slice).collect();
        let mut input = Pieces { rest: pieces.into_iter(), current: Bytes::new(), pos: 0, total: bytes.len() };
        input.take(16).unwrap();
        input
    }

    /// A snapshot received in pieces (as a new mirror loads it while it arrives):
    /// whatever the pieces' size, records spanning two or more of them included,
    /// the same keyspace loads as from the whole file; damage in a record that spans
    /// pieces is reported at that record's offset; pieces that stop early, or more
    /// bytes than announced, are refused.
    #[test]
    fn a_snapshot_read_in_pieces_of_any_size_loads_as_the_whole_file_does() {
        let mut db = Db::new();
        for i in 0..(RECORD_BATCH + 300) {
            let value = if i % 5 == 0 { vec![b'x'; 300 + i] } else { format!("v{i}").into_bytes() };
            db.insert(format!("key:{i}").as_bytes(), Value::Str(value), if i % 3 == 0 { 10_000 + i as u64 } else { 0 });
        }
        let bytes = encode(&db, &meta());
        // The header holds the key count, so a loader that cannot look ahead sizes
        // the keyspace once.
        assert_eq!(header_keys_hint(&bytes), db.len());
        let pieces = |size: usize| -> Vec<Bytes> { bytes.chunks(size).map(Bytes::copy_from_slice).collect() };
        let (_, whole) = decode(&bytes, "whole", 0).unwrap();
        let order = |db: &Db| db.iter().map(|(k, i)| (k.to_vec(), i.version())).collect::<Vec<_>>();
        for size in [1, 7, 100, 333, 4093, bytes.len()] {
            let (_, back) = decode_pieces(pieces(size).into_iter(), bytes.len() as u64, None, "pieces", 0).unwrap();
            assert_eq!(crate::store::digest(&back), crate::store::digest(&whole), "pieces of {size}");
            assert_eq!(order(&back), order(&whole), "pieces of {size}");
            assert_eq!(back.expires_count(), whole.expires_count());
            back.check_slot_index().unwrap();
        }

        // A record spanning a piece boundary, damaged: refused at its own offset.
        let starts = record_starts(&bytes);
        let size = 4093;
        // In the second batch of records, so found by the reading thread later on.
        let (victim, next) = starts[RECORD_BATCH + 10..]
            .windows(2)
            .map(|w| (w[0], w[1]))
            .find(|(start, end)| start / size != (end - 1) / size)
            .expect("a record spanning two pieces");
        let mut damaged = bytes.clone();
        damaged[next - 1] ^= 0x01;
        let pieces_of_damaged: Vec<Bytes> = damaged.chunks(size).map(Bytes::copy_from_slice).collect();
        match decode_pieces(pieces_of_damaged.into_iter(), damaged.len() as u64, None, "pieces", 0) {
            Err(SnapshotError::Corrupt { offset, why, .. }) => {
                assert_eq!(offset, victim);
                assert!(why.contains("checksum mismatch"), "{why}");
            }
            other => panic!("a damaged record must be refused, got {:?}", other.map(|(_, db)| db.len())),
        }

        // The pieces stop early (the connection closed): never loaded in part.
        let mut cut = pieces(size);
        cut.truncate(cut.len() / 2);
        assert!(decode_pieces(cut.into_iter(), bytes.len() as u64, None, "pieces", 0).is_err());
        // Announced shorter than the bytes: nothing beyond the announcement is read.
        let short = (bytes.len() - 5) as u64;
        assert!(decode_pieces(pieces(size).into_iter(), short, None, "pieces", 0).is_err());
    }

    #[test]
    fn scripts_libraries_and_limits_travel_in_snapshots() {
        let mut db = Db::new();
        db.insert(b"k", Value::Str(b"v".to_vec()), 0);
        let source = bytes::Bytes::from_static(b"return 1");
        db.scripts.add_script(sha1_hex(&source), source).unwrap();
        let library = Library {
            name: "lib".into(),
            engine: "LUA".into(),
            code: bytes::Bytes::from_static(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)"),
            functions: vec![FunctionInfo { name: "f".into(), description: Some("d".into()), flags: 1 }],
        };
        db.scripts.add_libraries(vec![library], false).unwrap();
        db.scripts.limits.instructions_max = 12345;
        let bytes = encode(&db, &meta());
        let (_, back) = decode(&bytes, "test", 0).unwrap();
        assert_eq!(back.scripts, db.scripts);
        assert_eq!(crate::store::digest(&back), crate::store::digest(&db));
    }

    #[test]
    fn a_version_1_snapshot_is_still_read() {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION_NO_SCRIPTS.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let mut payload = vec![KIND_META];
        put_snapshot_meta(&mut payload, &meta());
        frame(&payload, &mut out);
        payload.clear();
        payload.push(KIND_KEY);
        put_bytes(&mut payload, b"k");
        put_varint(&mut payload, 0);
        encode_value(&Value::Str(b"v".to_vec()), &mut payload);
        frame(&payload, &mut out);
        payload.clear();
        payload.push(KIND_END);
        put_varint(&mut payload, 1);
        frame(&payload, &mut out);
        let (_, db) = decode(&out, "v1", 0).unwrap();
        assert_eq!(db.len(), 1);
        assert_eq!(db.scripts.script_count(), 0);
        assert_eq!(db.scripts.limits, crate::store::scripts::ScriptLimits::default());
        assert_eq!(db.stream_limits, crate::store::stream::NodeLimits::default());
    }

    /// A snapshot in format 2 (scripts, no streams) as main's 94af45b writes it
    /// (written by the safety-replication build at 48e0afb, whose snapshot code is
    /// 94af45b's), taken after `SET plain v`, `SET ttl v PX 3600000000`, `HSET h f v`,
    /// `SCRIPT LOAD "return 'fixture'"` and `FUNCTION LOAD` of library `fixlib`.
    const FORMAT_2_SNAPSHOT: &[u8] = include_bytes!("../../tests/fixtures/snapshot-format-2-94af45b.snap");

    #[test]
    fn a_format_2_snapshot_loads_its_keys_and_scripts_with_default_stream_limits() {
        assert_eq!(FORMAT_2_SNAPSHOT[8..12], FORMAT_VERSION_UNVERSIONED.to_le_bytes());
        let (meta, db) = decode(FORMAT_2_SNAPSHOT, "fixture", 0).unwrap();
        assert!(meta.last_log_id.is_some());
        assert_eq!(db.len(), 3);
        assert!(matches!(&db.item(b"plain").unwrap().value, Value::Str(v) if v.as_slice() == b"v"));
        assert!(db.item(b"ttl").is_some_and(|item| item.expire_at_ms != 0));
        assert!(db.item(b"h").is_some());
        assert_eq!(db.scripts.script(&sha1_hex(b"return 'fixture'")).map(|s| &s[..]), Some(&b"return 'fixture'"[..]));
        assert!(db.scripts.function("fixf").is_some_and(|(library, _)| library.name == "fixlib"));
        assert_eq!(db.stream_limits, crate::store::stream::NodeLimits::default());
        // Written again, it is the current format and reads back the same.
        let (_, again) = decode(&encode(&db, &meta), "again", 0).unwrap();
        assert_eq!(crate::store::digest(&again), crate::store::digest(&db));
    }

    #[test]
    fn streams_and_their_node_limits_round_trip() {
        use crate::store::{Entry, Op, Store};
        let mut store = Store::new();
        let args = |parts: &[&str]| parts.iter().map(|p| bytes::Bytes::copy_from_slice(p.as_bytes())).collect::<Vec<_>>();
        let mut ops = vec![Op::Command(args(&["tandem.stream-node-limits", "3", "0"]))];
        for i in 0..10 {
            ops.push(Op::Command(args(&["xadd", "s", "*", "n", &i.to_string()])));
        }
        ops.push(Op::Command(args(&["xgroup", "create", "s", "g", "0"])));
        ops.push(Op::Command(args(&["xreadgroup", "group", "g", "c", "count", "4", "streams", "s", ">"])));
        store.apply(&Entry { time_ms: 1_000, seed: 1, ops: ops.into(), origins: None, summary: None });
        let bytes = encode(&store.db, &meta());
        let (_, back) = decode(&bytes, "test", 0).unwrap();
        assert_eq!(back.stream_limits, store.db.stream_limits);
        assert_eq!(crate::store::digest(&back), crate::store::digest(&store.db));
    }

    /// A snapshot in format 3 (key versions, floors and time; no streams), written by
    /// the safety-apply build at 3124c9c (main's format 3 writer) after `SET plain v`,
    /// `SET ttl v PX 3600000000`, `HSET h f v`, `SET gone v`, `DEL gone`,
    /// `SCRIPT LOAD "return 'fixture'"` and `FUNCTION LOAD` of library `fixlib`.
    const FORMAT_3_SNAPSHOT: &[u8] = include_bytes!("../../tests/fixtures/snapshot-format-3-safety-apply-3124c9c.snap");

    #[test]
    fn a_format_3_snapshot_keeps_its_versions_and_gets_default_stream_limits() {
        assert_eq!(FORMAT_3_SNAPSHOT[8..12], FORMAT_VERSION_NO_STREAMS.to_le_bytes());
        let (meta, db) = decode(FORMAT_3_SNAPSHOT, "fixture", 0).unwrap();
        assert_eq!(meta.last_log_id.map(|l| l.index), Some(db.index()));
        assert_eq!(db.len(), 3);
        assert!(db.time_ms() > 0, "the entry time travels from format 3 on");
        let version = |key: &[u8]| db.item(key).unwrap().version();
        assert!(version(b"plain") < version(b"ttl") && version(b"ttl") < version(b"h"), "each key keeps its own version");
        let after_h = WatchStamp { index: u64::from(version(b"h")), time_ms: db.time_ms() };
        assert!(db.unchanged_since(b"plain", after_h, db.time_ms()));
        assert!(!db.unchanged_since(b"gone", after_h, db.time_ms()), "deleted after the stamp");
        assert_eq!(db.scripts.script(&sha1_hex(b"return 'fixture'")).map(|s| &s[..]), Some(&b"return 'fixture'"[..]));
        assert!(db.scripts.function("fixf").is_some());
        assert_eq!(db.stream_limits, crate::store::stream::NodeLimits::default());
        let (_, again) = decode(&encode(&db, &meta), "again", 0).unwrap();
        assert_eq!(crate::store::digest(&again), crate::store::digest(&db));
    }

    /// A snapshot in format 4 (streams, no users), written by main at cc0ef9a (the
    /// last build before ACL users) after `SET plain v` and `HSET h f v`.
    const FORMAT_4_SNAPSHOT: &[u8] = include_bytes!("../../tests/fixtures/snapshot-format-4-cc0ef9a.snap");

    #[test]
    fn a_format_4_snapshot_loads_with_no_users_held() {
        assert_eq!(FORMAT_4_SNAPSHOT[8..12], FORMAT_VERSION_NO_USERS.to_le_bytes());
        let (meta, db) = decode(FORMAT_4_SNAPSHOT, "fixture", 0).unwrap();
        assert_eq!(db.len(), 2);
        assert!(db.acl.pristine(), "no users held: the default user is the configured one");
        let (_, again) = decode(&encode(&db, &meta), "again", 0).unwrap();
        assert_eq!(crate::store::digest(&again), crate::store::digest(&db));
    }

    #[test]
    fn users_travel_in_snapshots_and_have_no_place_before_format_5() {
        let mut st = Store::new();
        apply(&mut st, 1_000, &["acl", "setuser", "app", "on", ">pw", "+@read", "-keys", "~app:*", "%W~w*", "&ch", "(+set ~s*)"]);
        apply(&mut st, 1_000, &["acl", "setuser", "default", "off"]);
        let mut bytes = encode(&st.db, &meta_at(st.db.index()));
        let (_, back) = decode(&bytes, "v5", 0).unwrap();
        assert_eq!(back.acl, st.db.acl, "users, passwords, patterns and selectors come back");
        assert_eq!(crate::store::digest(&back), crate::store::digest(&st.db));
        bytes[8..12].copy_from_slice(&FORMAT_VERSION_NO_USERS.to_le_bytes());
        let err = decode(&bytes, "v4", 0).unwrap_err().to_string();
        assert!(err.contains("unexpected record kind 8"), "{err}");
    }

    #[test]
    fn forwarded_writes_travel_in_snapshots_and_have_no_place_before_format_6() {
        let mut st = Store::new();
        let tag = crate::store::once::Tag { origin: 42, seq: 1, acked: 0, window_ms: 60_000 };
        let incr = Op::Command(vec![Bytes::from_static(b"incr"), Bytes::from_static(b"n")]);
        st.apply(&Entry {
            time_ms: 1_000,
            seed: 1,
            ops: vec![Op::Once { tag, op: Box::new(incr.clone()) }].into(),
            origins: None,
            summary: None,
        });
        let mut bytes = encode(&st.db, &meta_at(st.db.index()));
        let (_, mut back) = decode(&bytes, "v6", 0).unwrap();
        assert_eq!(back.once, st.db.once);
        // After the snapshot, a copy sent again is still answered and not applied.
        assert_eq!(back.once.decide(&tag, 2_000), crate::store::once::Decision::Replay(crate::protocol::reply::Reply::Int(1)));
        bytes[8..12].copy_from_slice(&FORMAT_VERSION_NO_ONCE.to_le_bytes());
        let err = decode(&bytes, "v5", 0).unwrap_err().to_string();
        assert!(err.contains("unexpected record kind 9"), "{err}");
    }

    /// A snapshot in format 5 (ACL users, no sessions, locks or groups), written by
    /// main at 7bf8ab5 (the last build before them) after `SET plain v`, `HSET h f v`
    /// and `ACL SETUSER app on >pw +@read ~app:*`.
    const FORMAT_5_SNAPSHOT: &[u8] = include_bytes!("../../tests/fixtures/snapshot-format-5-7bf8ab5.snap");

    #[test]
    fn a_format_5_snapshot_loads_with_no_sessions_locks_or_groups() {
        assert_eq!(FORMAT_5_SNAPSHOT[8..12], FORMAT_VERSION_NO_PRIMS.to_le_bytes());
        let (meta, db) = decode(FORMAT_5_SNAPSHOT, "fixture", 0).unwrap();
        assert_eq!(db.len(), 2);
        assert!(!db.acl.pristine(), "its users come back");
        assert!(db.prims.is_empty(), "no sessions, locks or groups; tokens start at 1");
        let (_, again) = decode(&encode(&db, &meta), "again", 0).unwrap();
        assert_eq!(crate::store::digest(&again), crate::store::digest(&db));
        assert_eq!(again.prims, db.prims);
        assert!(db.once.is_empty(), "no forwarded writes recorded");
    }

    #[test]
    fn sessions_locks_groups_and_the_last_token_travel_in_snapshots() {
        let mut st = Store::new();
        apply(&mut st, 1_000, &["tandem.session", "open", "id", "a", "window", "5000"]);
        apply(&mut st, 1_000, &["tandem.session", "open", "id", "b", "window", "5000"]);
        apply(&mut st, 1_000, &["tandem.lock", "l1", "ttl", "900", "session", "a"]);
        apply(&mut st, 1_000, &["tandem.lock", "l1", "queue", "700", "session", "b"]);
        apply(&mut st, 1_000, &["tandem.lock", "l2", "session", "b"]);
        apply(&mut st, 1_000, &["tandem.group", "join", "g", "m1", "host:1", "session", "a"]);
        apply(&mut st, 1_000, &["tandem.group", "join", "g", "m2", "session", "b"]);
        let bytes = encode(&st.db, &meta_at(st.db.index()));
        let (_, back) = decode(&bytes, "v6", 0).unwrap();
        assert_eq!(back.prims, st.db.prims);
        assert_eq!(back.prims.last_token, 2);
        assert_eq!(crate::store::digest(&back), crate::store::digest(&st.db));
        // The next token after a restart continues from the snapshot's.
        let mut restarted = Store::new();
        restarted.db = back;
        let reply = restarted.apply(&Entry {
            time_ms: 1_001,
            seed: 1,
            ops: vec![Op::Command(["tandem.unlock", "l2", "2"].iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())].into(),
            origins: None,
            summary: None,
        });
        assert_eq!(reply.replies, vec![crate::protocol::reply::Reply::Int(1)]);
        let mut bytes = bytes;
        bytes[8..12].copy_from_slice(&FORMAT_VERSION_NO_PRIMS.to_le_bytes());
        let err = decode(&bytes, "v5", 0).unwrap_err().to_string();
        assert!(err.contains("unexpected record kind 9"), "{err}");
    }

    #[test]
    fn a_stream_limits_record_has_no_place_before_format_4() {
        let mut st = Store::new();
        apply(&mut st, 1_000, &["tandem.stream-node-limits", "3", "0"]);
        let mut bytes = encode(&st.db, &meta_at(st.db.index()));
        assert!(decode(&bytes, "v4", 0).is_ok());
        bytes[8..12].copy_from_slice(&FORMAT_VERSION_NO_STREAMS.to_le_bytes());
        let err = decode(&bytes, "v3", 0).unwrap_err().to_string();
        assert!(err.contains("unexpected record kind 7"), "{err}");
    }

    fn meta_at(index: u64) -> SnapshotMeta {
        let leader_id = openraft::alias::CommittedLeaderIdOf::<super::super::types::TypeConfig> { term: 1, node_id: 1 };
        SnapshotMeta { last_log_id: Some(super::super::types::LogId { leader_id, index }), last_membership: Default::default() }
    }

    fn apply(st: &mut Store, time_ms: u64, cmd: &[&str]) {
        let args = cmd.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect();
        st.apply(&Entry { time_ms, seed: 1, ops: vec![Op::Command(args)].into(), origins: None, summary: None });
    }

    #[test]
    fn versions_floors_and_time_survive_a_snapshot_so_every_member_decides_alike() {
        let mut st = Store::new();
        apply(&mut st, 5_000, &["set", "old", "v"]);
        let stamp = WatchStamp { index: st.db.index(), time_ms: 5_000 };
        apply(&mut st, 9_000, &["set", "new", "v"]);
        apply(&mut st, 7_000, &["set", "gone", "v"]);
        apply(&mut st, 7_000, &["del", "gone"]);
        let bytes = encode(&st.db, &meta_at(st.db.index()));
        let (_, db) = decode(&bytes, "test", 0).unwrap();
        assert_eq!(db.index(), st.db.index());
        assert_eq!(db.time_ms(), 9_000, "the largest entry time applied");
        for key in ["old", "new", "gone", "never"] {
            assert_eq!(db.unchanged_since(key.as_bytes(), stamp, 9_000), st.db.unchanged_since(key.as_bytes(), stamp, 9_000), "{key}");
        }
        assert!(db.unchanged_since(b"old", stamp, 9_000));
        assert!(!db.unchanged_since(b"new", stamp, 9_000));
        assert!(!db.unchanged_since(b"gone", stamp, 9_000));
    }

    /// A snapshot written by e66709c (format 1: no versions, floors or time), taken
    /// after `SET plain v`, `SET ttl v PX 3600000000` and `HSET h f v`.
    const E66709C_SNAPSHOT: &[u8] = include_bytes!("../../tests/fixtures/snapshot-format-1-e66709c.snap");

    #[test]
    fn a_format_1_snapshot_loads_with_everything_modified_at_its_index() {
        let (meta, db) = decode(E66709C_SNAPSHOT, "fixture", 0).unwrap();
        let index = meta.last_log_id.map(|l| l.index).unwrap();
        assert_eq!(db.len(), 3);
        assert_eq!(db.index(), index);
        assert!(db.item(b"ttl").is_some_and(|item| item.expire_at_ms != 0));
        let before = WatchStamp { index: index - 1, time_ms: 0 };
        let at = WatchStamp { index, time_ms: 0 };
        for key in ["plain", "ttl", "h", "absent"] {
            assert!(!db.unchanged_since(key.as_bytes(), before, 0), "{key}: a WATCH from before the snapshot fails");
            assert!(db.unchanged_since(key.as_bytes(), at, 0), "{key}: a WATCH from after it holds");
        }
    }

    /// A version-2 snapshot as main's scripting build (94af45b) writes it: scripts, no
    /// key versions, floors or time.
    #[test]
    fn a_version_2_snapshot_loads_its_scripts_with_everything_modified_at_its_index() {
        let index = 41;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION_UNVERSIONED.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let mut payload = vec![KIND_META];
        put_snapshot_meta(&mut payload, &meta_at(index));
        frame(&payload, &mut out);
        payload.clear();
        payload.push(KIND_KEY);
        put_bytes(&mut payload, b"k");
        put_varint(&mut payload, 0);
        encode_value(&Value::Str(b"v".to_vec()), &mut payload);
        frame(&payload, &mut out);
        let source = Bytes::from_static(b"return 1");
        let mut with_script = Db::new();
        with_script.scripts.add_script(sha1_hex(&source), source).unwrap();
        let (scripts, libraries) = encode_scripts(&with_script, &mut payload, &mut out);
        payload.clear();
        payload.push(KIND_END);
        put_varint(&mut payload, 1);
        put_varint(&mut payload, scripts);
        put_varint(&mut payload, libraries);
        frame(&payload, &mut out);
        let (_, db) = decode(&out, "v2", 0).unwrap();
        assert_eq!(db.len(), 1);
        assert_eq!(db.scripts, with_script.scripts);
        assert_eq!(db.index(), index);
        let before = WatchStamp { index: index - 1, time_ms: 0 };
        let at = WatchStamp { index, time_ms: 0 };
        for key in ["k", "absent"] {
            assert!(!db.unchanged_since(key.as_bytes(), before, 0), "{key}: a WATCH from before the snapshot fails");
            assert!(db.unchanged_since(key.as_bytes(), at, 0), "{key}: a WATCH from after it holds");
        }
    }
}
