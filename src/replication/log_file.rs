//! The on-disk Raft log of a restartable server: segment files of CRC-framed
//! records, appended in batches and made durable with one `fdatasync` per batch
//! (group commit). This module knows bytes and indexes, not Raft.
//!
//! Layout of `dir`:
//! ```text
//! log-00000000000000000001.seg   first index in the name
//! log-00000000000000081231.seg   the active segment (the last one)
//! ```
//! A segment starts with a 16-byte header (`TNDMLOG1`, format version, reserved);
//! then records: `len: u32 LE | crc32c(len ‖ payload): u32 LE | payload`, where
//! `payload = index: u64 LE ‖ body`. Indexes are consecutive across the log.
//!
//! Space ahead of the records is written with zeros before it is needed
//! ([`PREALLOCATE_BYTES`] at a time), so an append overwrites bytes the file already
//! has: its `fdatasync` flushes data alone, where an append that grows the file also
//! commits the file system's journal (its new size). On this project's disk that is a
//! third less time and system CPU per sync (BENCHMARKS.md). A segment is cut back to
//! its records when the next one starts. Reading stops at the first all-zero record
//! header that nothing valid follows: the records end there.
//!
//! Damage: a record cut short at the very end of the last segment's records (a torn
//! write from a crash: only zeros, or nothing, after it) is truncated with a warning.
//! Because records overwrite zeros in place, a crash during a sync may also keep a
//! later page of that write and lose an earlier one: a bad record with whole sectors
//! of zeros in it, valid records after it, and nothing written past
//! [`UNSYNCED_BYTES_MAX`] from it (appends sync at least that often) is such a tear,
//! truncated with a warning too. Any other bad record — a checksum mismatch with valid
//! records after it and no zeroed sector, zeros in a finished segment, damage further
//! back than the last write, a gap in indexes, a bad header — stops the open with an
//! error naming the file and offset. Nothing is ever skipped silently.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

const MAGIC: &[u8; 8] = b"TNDMLOG1";
pub const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: u64 = 16;
const RECORD_HEADER_BYTES: u64 = 8;
/// Largest record: an entry may carry values up to proto-max-bulk-len (512 MB) plus
/// framing; anything larger announced on disk is damage, not data.
pub const RECORD_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// A new segment starts once the active one passes this size, so purging after a
/// snapshot can delete whole files.
pub const SEGMENT_BYTES_TARGET: u64 = 64 * 1024 * 1024;
/// Zeros written ahead of the records when an append reaches the end of the file.
/// One file-system journal commit per this many bytes of log instead of one per sync;
/// the zeros are flushed by the sync of the append that wrote them (about 2 ms of disk
/// time here, once per MiB).
pub const PREALLOCATE_BYTES: u64 = 1024 * 1024;
/// The most record bytes written and not yet synced: a longer append is synced in
/// parts. Records overwrite zeros in place, so a crash during a sync may leave any of
/// its pages unwritten; such a tear lies within this many bytes, which is what tells
/// it from damage to records that were synced (see `read_segment`).
pub const UNSYNCED_BYTES_MAX: u64 = 1024 * 1024;
/// The unit in which a torn write leaves zeros: a disk sector.
const SECTOR_BYTES: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{file}: offset {offset}: {why}")]
    Corrupt { file: PathBuf, offset: u64, why: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_path_buf(), source }
}

/// One record read back: its index and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub index: u64,
    pub body: Bytes,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first_index: u64,
    /// Offset of each record in the file, for truncation: `offsets[i]` holds
    /// `first_index + i`.
    offsets: Vec<u64>,
    /// Bytes known durable (header + whole records).
    len: u64,
}

impl Segment {
    fn last_index(&self) -> Option<u64> {
        (!self.offsets.is_empty()).then(|| self.first_index + self.offsets.len() as u64 - 1)
    }
}

/// What opening the log found.
#[derive(Debug)]
pub struct Opened {
    pub log: LogFile,
    pub records: Vec<Record>,
    /// Set when a torn tail was cut: (file, offset, bytes dropped).
    pub torn_tail: Option<(PathBuf, u64, u64)>,
}

#[derive(Debug)]
pub struct LogFile {
    dir: PathBuf,
    segments: Vec<Segment>,
    active: Option<File>,
    /// The active segment's length on disk: its records, then zeros up to here.
    file_len: u64,
    /// Bytes of records written since the last sync (at most [`UNSYNCED_BYTES_MAX`]).
    unsynced: u64,
    /// Writing zeros ahead failed (the disk is nearly full): none until the next segment.
    zeros_refused: bool,
}

fn segment_name(first_index: u64) -> String {
    format!("log-{first_index:020}.seg")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("log-")?.strip_suffix(".seg")?.parse().ok()
}

/// Creates `dir` (and missing parents) and fsyncs each new entry's parent, so the
/// directory itself survives a power loss.
pub fn create_dir_durably(dir: &Path) -> Result<(), LogError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(LogError::Io { path: dir.to_path_buf(), source: e }),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// fsyncs a directory so file creations and removals in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

impl LogFile {
    /// Opens (creating if needed) the log in `dir` and reads every record back.
    pub fn open(dir: &Path) -> Result<Opened, LogError> {
        create_dir_durably(dir)?;
        let mut firsts: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        let mut log =
            LogFile { dir: dir.to_path_buf(), segments: Vec::new(), active: None, file_len: 0, unsynced: 0, zeros_refused: false };
        let mut records = Vec::new();
        let mut torn_tail = None;
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let path = dir.join(segment_name(first));
            let last_segment = i + 1 == count;
            let expected_first = records.last().map(|r: &Record| r.index + 1);
            let (segment, torn) = read_segment(&path, first, expected_first, last_segment, &mut records)?;
            if torn.is_some() {
                torn_tail = torn;
            }
            log.segments.push(segment);
        }
        if let Some(last) = log.segments.last() {
            let file = OpenOptions::new().read(true).write(true).open(&last.path).map_err(io_err(&last.path))?;
            if let Some((_, offset, _)) = &torn_tail {
                file.set_len(*offset).map_err(io_err(&last.path))?;
                file.sync_all().map_err(io_err(&last.path))?;
            }
            log.file_len = file.metadata().map_err(io_err(&last.path))?.len();
            log.active = Some(file);
        }
        Ok(Opened { log, records, torn_tail })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the last record on disk.
    pub fn last_index(&self) -> Option<u64> {
        self.segments.iter().rev().find_map(|s| s.last_index())
    }

    /// Appends records (indexes must continue the log) without syncing. On an error
    /// the file is cut back to its last durable length, so a failed append (disk
    /// full) leaves no partial record behind and can simply be retried.
    pub fn append(&mut self, records: &[(u64, &[u8])]) -> Result<(), LogError> {
        let Some(&(first, _)) = records.first() else { return Ok(()) };
        if let Some(last) = self.last_index() {
            if first != last + 1 {
                return Err(LogError::Corrupt {
                    file: self.dir.clone(),
                    offset: 0,
                    why: format!("append at index {first} does not follow {last}"),
                });
            }
        }
        let roll = self.segments.last().is_none_or(|s| s.len >= SEGMENT_BYTES_TARGET);
        if roll {
            self.start_segment(first)?;
        }
        // At most UNSYNCED_BYTES_MAX of records wait for a sync: a longer batch is
        // written and synced in parts (what a torn write can have scrambled is bounded).
        let mut buf = Vec::new();
        let mut part = Vec::new();
        for (index, body) in records {
            let bytes = RECORD_HEADER_BYTES + 8 + body.len() as u64;
            if !part.is_empty() && self.unsynced + buf.len() as u64 + bytes > UNSYNCED_BYTES_MAX {
                self.write_records(&buf, &part)?;
                self.sync()?;
                buf.clear();
                part.clear();
            } else if part.is_empty() && self.unsynced > 0 && self.unsynced + bytes > UNSYNCED_BYTES_MAX {
                self.sync()?;
            }
            part.push(buf.len() as u64);
            encode_record(*index, body, &mut buf);
        }
        self.write_records(&buf, &part)
    }

    /// Writes encoded records (`starts`: where each begins in `buf`) after the active
    /// segment's last, and zeros ahead of them when they pass the file's end.
    fn write_records(&mut self, buf: &[u8], starts: &[u64]) -> Result<(), LogError> {
        let (segment, file) = match (self.segments.last_mut(), self.active.as_mut()) {
            (Some(s), Some(f)) => (s, f),
            _ => return Err(LogError::Corrupt { file: self.dir.clone(), offset: 0, why: "no active segment".into() }),
        };
        let written = file.seek(SeekFrom::Start(segment.len)).and_then(|_| file.write_all(buf));
        if let Err(e) = written {
            // Leave no partial record behind: the next append starts clean.
            let _ = file.set_len(segment.len);
            self.file_len = segment.len;
            return Err(LogError::Io { path: segment.path.clone(), source: e });
        }
        let end = segment.len + buf.len() as u64;
        if end > self.file_len {
            self.file_len = match self.zeros_refused {
                true => end,
                false => preallocate(file, end).unwrap_or_else(|| {
                    // Less than that is free: the file grows with its records again
                    // until the next segment, rather than fill the disk for a moment
                    // at every append (and fail other writers on it meanwhile).
                    self.zeros_refused = true;
                    end
                }),
            };
        }
        segment.offsets.extend(starts.iter().map(|start| segment.len + start));
        segment.len = end;
        self.unsynced += buf.len() as u64;
        Ok(())
    }

    /// Makes every appended record durable (one fdatasync for the whole batch).
    pub fn sync(&mut self) -> Result<(), LogError> {
        match (&self.active, self.segments.last()) {
            (Some(file), Some(seg)) => {
                let started = std::time::Instant::now();
                let synced = file.sync_data().map_err(io_err(&seg.path));
                crate::management::metrics::global().record_fsync(started.elapsed());
                if synced.is_ok() {
                    self.unsynced = 0;
                }
                synced
            }
            _ => Ok(()),
        }
    }

    fn start_segment(&mut self, first_index: u64) -> Result<(), LogError> {
        if let Some(file) = &self.active {
            if let Some(seg) = self.segments.last() {
                // The finished segment keeps its records only (its zeros are space
                // the next segment gets instead).
                file.set_len(seg.len).and_then(|_| file.sync_all()).map_err(io_err(&seg.path))?;
            }
        }
        let path = self.dir.join(segment_name(first_index));
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).map_err(io_err(&path))?;
        let mut header = Vec::with_capacity(HEADER_BYTES as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        if let Err(e) = file.write_all(&header).and_then(|_| file.sync_data()) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(LogError::Io { path, source: e });
        }
        sync_dir(&self.dir)?;
        self.segments.push(Segment { path, first_index, offsets: Vec::new(), len: HEADER_BYTES });
        self.active = Some(file);
        self.file_len = HEADER_BYTES;
        self.unsynced = 0;
        self.zeros_refused = false;
        Ok(())
    }

    /// Removes every record with index ≥ `since` (a new leader overwrote them).
    pub fn truncate_from(&mut self, since: u64) -> Result<(), LogError> {
        // Whole segments at or after `since` go; the one holding `since` is cut.
        while self.segments.last().is_some_and(|last| last.first_index >= since) {
            if let Some(seg) = self.segments.pop() {
                self.active = None;
                std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            }
        }
        if let Some(seg) = self.segments.last_mut() {
            let keep = (since - seg.first_index) as usize;
            if keep < seg.offsets.len() {
                let cut = seg.offsets[keep];
                seg.offsets.truncate(keep);
                seg.len = cut;
            }
            let file = OpenOptions::new().read(true).write(true).open(&seg.path).map_err(io_err(&seg.path))?;
            file.set_len(seg.len).map_err(io_err(&seg.path))?;
            file.sync_all().map_err(io_err(&seg.path))?;
            self.active = Some(file);
            self.file_len = seg.len;
        }
        self.unsynced = 0;
        sync_dir(&self.dir)
    }

    /// Deletes segments whose every record has index ≤ `upto` (covered by a
    /// snapshot). The active segment is kept; readers skip purged indexes.
    pub fn purge_upto(&mut self, upto: u64) -> Result<(), LogError> {
        let mut removed = false;
        while self.segments.len() > 1 {
            let next_first = self.segments[1].first_index;
            if next_first > upto + 1 {
                break;
            }
            // Delete first, forget after: a failed delete leaves the log as it was.
            std::fs::remove_file(&self.segments[0].path).map_err(io_err(&self.segments[0].path))?;
            self.segments.remove(0);
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Removes every segment (the log restarts at `next_index` on the next append,
    /// after a snapshot installed from the active replaced everything).
    pub fn clear(&mut self) -> Result<(), LogError> {
        self.active = None;
        for seg in self.segments.drain(..) {
            std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
        }
        sync_dir(&self.dir)
    }
}

/// Writes zeros after `end` (the records' end, which has passed the file's end) up to
/// [`PREALLOCATE_BYTES`] beyond it, and returns the file's new length; `None` when
/// that did not fit (a full disk), after cutting the file back to the records (a zero
/// tail is no damage either way), so the space left goes to records and a full disk
/// is met where it was before.
fn preallocate(file: &mut File, end: u64) -> Option<u64> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = end;
    let target = end + PREALLOCATE_BYTES;
    while at < target {
        let n = (target - at).min(ZEROS.len() as u64) as usize;
        if file.write_all(&ZEROS[..n]).is_err() {
            let _ = file.set_len(end);
            return None;
        }
        at += n as u64;
    }
    Some(target)
}

fn encode_record(index: u64, body: &[u8], out: &mut Vec<u8>) {
    let len = (8 + body.len()) as u32;
    let mut crc = crc32c::crc32c(&len.to_le_bytes());
    let index_bytes = index.to_le_bytes();
    crc = crc32c::crc32c_append(crc, &index_bytes);
    crc = crc32c::crc32c_append(crc, body);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&index_bytes);
    out.extend_from_slice(body);
}

/// Reads one segment, appending its records. Returns the segment and, for a torn
/// tail in the last segment, (file, offset, bytes dropped).
#[allow(clippy::type_complexity)]
fn read_segment(
    path: &Path,
    first_index: u64,
    expected_first: Option<u64>,
    last_segment: bool,
    records: &mut Vec<Record>,
) -> Result<(Segment, Option<(PathBuf, u64, u64)>), LogError> {
    let corrupt = |offset: u64, why: String| LogError::Corrupt { file: path.to_path_buf(), offset, why };
    let mut data = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut data)).map_err(io_err(path))?;
    let data = Bytes::from(data);
    let file_len = data.len() as u64;
    if file_len < HEADER_BYTES {
        if last_segment {
            // Crashed while creating the segment (its header is written and synced before
            // any record): nothing in it was ever acknowledged. Rewrite its header.
            let mut header = Vec::with_capacity(HEADER_BYTES as usize);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            header.extend_from_slice(&0u32.to_le_bytes());
            std::fs::write(path, &header).and_then(|_| File::open(path)?.sync_all()).map_err(io_err(path))?;
            let seg = Segment { path: path.to_path_buf(), first_index, offsets: Vec::new(), len: HEADER_BYTES };
            return Ok((seg, Some((path.to_path_buf(), HEADER_BYTES, file_len))));
        }
        return Err(corrupt(0, format!("segment header is {file_len} bytes, expected {HEADER_BYTES}")));
    }
    if &data[..8] != MAGIC {
        return Err(corrupt(0, "not a Tandem log segment (bad magic)".into()));
    }
    let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if version != FORMAT_VERSION {
        return Err(corrupt(8, format!("log format version {version}, this build reads {FORMAT_VERSION}")));
    }
    if let Some(expected) = expected_first {
        if first_index != expected {
            return Err(corrupt(0, format!("segment starts at index {first_index}, the previous one ended before {expected}")));
        }
    }
    let mut seg = Segment { path: path.to_path_buf(), first_index, offsets: Vec::new(), len: HEADER_BYTES };
    let mut offset = HEADER_BYTES;
    while offset < file_len {
        let torn = |why: &str| -> Result<(Segment, Option<(PathBuf, u64, u64)>), LogError> { Err(corrupt(offset, why.to_string())) };
        let next_index = first_index + seg.offsets.len() as u64;
        // A bad record at the end of the last segment is a torn write only if nothing
        // valid follows it; a valid record after it means damage, never a cut.
        let tail = |seg: Segment, why: &str| -> Result<(Segment, Option<(PathBuf, u64, u64)>), LogError> {
            let written = written_end(&data, offset);
            match later_valid_record(&data, offset as usize, next_index) {
                Some(at) if !torn_in_place(&data, offset, at as u64, written) => {
                    Err(corrupt(offset, format!("{why}, yet a valid record follows at offset {at}")))
                }
                _ => Ok((seg, Some((path.to_path_buf(), offset, written - offset)))),
            }
        };
        // A bad record in the last segment with valid ones after it: a write torn in
        // place (see `torn_in_place`), or damage.
        let bad = |seg: Segment, why: String| -> Result<(Segment, Option<(PathBuf, u64, u64)>), LogError> {
            let written = written_end(&data, offset);
            match later_valid_record(&data, offset as usize, next_index) {
                Some(at) if last_segment && torn_in_place(&data, offset, at as u64, written) => {
                    Ok((seg, Some((path.to_path_buf(), offset, written - offset))))
                }
                _ => Err(corrupt(offset, why)),
            }
        };
        let remaining = file_len - offset;
        let at = offset as usize;
        // Zeros to the end: space written ahead of the records, which end here (a
        // finished segment was cut back to its records: zeros there are damage).
        if last_segment && data[at..].iter().all(|&b| b == 0) {
            break;
        }
        if remaining < RECORD_HEADER_BYTES {
            if last_segment {
                return tail(seg, "record header cut short");
            }
            return torn("record header cut short");
        }
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as u64;
        let crc = u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        let end = offset + RECORD_HEADER_BYTES + len;
        // An empty header, then bytes that are no record: a write torn after the
        // zeros ahead of the records were overwritten in part.
        if last_segment && len == 0 && crc == 0 {
            return tail(seg, "an empty record header before the end of the file");
        }
        if !(8..=RECORD_BYTES_MAX).contains(&len) || end > file_len {
            if last_segment && ((end > file_len && len <= RECORD_BYTES_MAX) || data[at..].iter().all(|&b| b == 0)) {
                return tail(seg, &format!("record length {len} runs past the end of the file"));
            }
            return bad(seg, format!("record length {len} is impossible here ({remaining} bytes left in the file)"));
        }
        let payload = data.slice(at + 8..end as usize);
        let actual = crc32c::crc32c_append(crc32c::crc32c(&(len as u32).to_le_bytes()), &payload);
        if actual != crc {
            if last_segment && data[end as usize..].iter().all(|&b| b == 0) {
                return tail(seg, "checksum mismatch in the last record");
            }
            return bad(seg, format!("checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"));
        }
        let index = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes checked by len >= 8"));
        let expected = first_index + seg.offsets.len() as u64;
        if index != expected {
            return torn(&format!("record holds index {index}, expected {expected}"));
        }
        seg.offsets.push(offset);
        records.push(Record { index, body: payload.slice(8..) });
        offset = end;
        seg.len = offset;
    }
    Ok((seg, None))
}

/// Where the bytes written end, not before `from`: after the last byte that is not
/// a zero written ahead of the records (what a torn tail's report counts as dropped).
fn written_end(data: &[u8], from: u64) -> u64 {
    data.iter().rposition(|&b| b != 0).map_or(from, |p| p as u64 + 1).max(from)
}

/// Whether a bad record at `bad`, with a valid one after it at `valid`, is a write
/// torn by a crash during its sync rather than damage to synced records: records
/// overwrite zeros in place, so the disk may have kept later pages of the last write
/// and not earlier ones. That leaves whole sectors of zeros in the bad stretch (or an
/// all-zero record header, for a gap shorter than a sector), and every byte written
/// (`written`: the end of the last non-zero one) within the [`UNSYNCED_BYTES_MAX`]
/// that may wait for a sync. A flipped bit leaves no zeros, and damage further back
/// than the last write has more than that after it: both stay errors.
fn torn_in_place(data: &[u8], bad: u64, valid: u64, written: u64) -> bool {
    if written - bad > UNSYNCED_BYTES_MAX {
        return false;
    }
    let zero = |from: u64, to: u64| data[from as usize..to as usize].iter().all(|&b| b == 0);
    if bad + RECORD_HEADER_BYTES <= valid && zero(bad, bad + RECORD_HEADER_BYTES) {
        return true;
    }
    let mut sector = bad.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    while sector + SECTOR_BYTES <= valid {
        if zero(sector, sector + SECTOR_BYTES) {
            return true;
        }
        sector += SECTOR_BYTES;
    }
    false
}

/// The offset of a well-formed record (plausible length, an index at or after
/// `next_index`, matching checksum) starting after `from`, if any.
fn later_valid_record(data: &[u8], from: usize, next_index: u64) -> Option<usize> {
    scan_for_record(data.get(from..)?, next_index).0.map(|at| from + at)
}

/// Tries every offset after the first of `tail` as a record's start; the first that
/// holds a well-formed record, and the bytes checksummed directly to find out. Each
/// candidate's checksum comes from `RangeCrc` in constant time, so the scan is linear
/// in the tail's length even when every offset looks like a long record's header.
fn scan_for_record(tail: &[u8], next_index: u64) -> (Option<usize>, u64) {
    let crcs = super::crc_range::RangeCrc::new(tail);
    let mut at = 1;
    while at + 16 <= tail.len() {
        let len = u32::from_le_bytes([tail[at], tail[at + 1], tail[at + 2], tail[at + 3]]);
        let end = at + 8 + len as usize;
        if len >= 8 && end <= tail.len() {
            let index = u64::from_le_bytes(tail[at + 8..at + 16].try_into().expect("8 bytes"));
            if index >= next_index && index - next_index < 1 << 32 {
                let stored = u32::from_le_bytes([tail[at + 4], tail[at + 5], tail[at + 6], tail[at + 7]]);
                if crcs.append(crc32c::crc32c(&len.to_le_bytes()), at + 8, end) == Some(stored) {
                    return (Some(at), crcs.bytes_hashed());
                }
            }
        }
        at += 1;
    }
    (None, crcs.bytes_hashed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_length_with_valid_records_after_it_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 5);
        drop(log);
        let seg = last_segment(dir.path());
        let mut data = std::fs::read(&seg).unwrap();
        // Make the second record's length point past the end of the file.
        let second = HEADER_BYTES as usize + 8 + 8 + 7;
        data[second + 3] = 0x10;
        std::fs::write(&seg, &data).unwrap();
        let err = LogFile::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a valid record follows"), "{err}");
    }

    /// Finding 7 of issue 9: the search for a valid record after a bad one was
    /// quadratic. In this tail every eighth offset announces a 512 KB record with a
    /// plausible index and a wrong checksum: checked candidate by candidate that is
    /// half a megabyte per candidate, over 10^11 bytes in all. Linear work is at most
    /// the tail once, plus two checkpoint strides (128 bytes) per offset tried.
    #[test]
    fn issue_9_a_garbage_tail_is_searched_in_linear_time() {
        let record_bytes: u32 = 512 << 10;
        let mut tail = Vec::with_capacity(4 << 20);
        while tail.len() < 4 << 20 {
            // Read at an offset ≡ 0 (mod 8): length 512 KB, checksum 0, and (the next
            // 8 bytes) an index of 512 K.
            tail.extend_from_slice(&record_bytes.to_le_bytes());
            tail.extend_from_slice(&[0, 0, 0, 0]);
        }
        let (found, hashed) = scan_for_record(&tail, 1);
        assert_eq!(found, None);
        let long_candidates = (tail.len() - record_bytes as usize) / 8;
        let quadratic = long_candidates as u64 * u64::from(record_bytes);
        let linear = tail.len() as u64 * (1 + 128);
        assert!(quadratic > 100 * linear, "the tail must tell the two apart");
        assert!(hashed <= linear, "{hashed} bytes checksummed for a tail of {} bytes", tail.len());
        // A genuine record hidden in such a tail is still found.
        let at = tail.len() / 2 + 3;
        let mut record = Vec::new();
        encode_record(5, b"hidden", &mut record);
        tail[at..at + record.len()].copy_from_slice(&record);
        assert_eq!(scan_for_record(&tail, 1).0, Some(at));
        assert_eq!(later_valid_record(&tail, 0, 6), None, "an index before the damaged one is no later record");
    }

    #[test]
    fn a_segment_cut_before_its_header_gets_a_new_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 3);
        let end = records_end(&log);
        drop(log);
        // A crash right after creating the next segment, before its header (the first
        // was cut back to its records before that).
        OpenOptions::new().write(true).open(last_segment(dir.path())).unwrap().set_len(end).unwrap();
        std::fs::write(dir.path().join(segment_name(4)), b"TND").unwrap();
        let opened = LogFile::open(dir.path()).unwrap();
        assert_eq!(opened.records.len(), 3);
        let mut log = opened.log;
        append(&mut log, 4, 2);
        drop(log);
        assert_eq!(LogFile::open(dir.path()).unwrap().records.len(), 5);
    }

    fn bodies(records: &[Record]) -> Vec<(u64, Vec<u8>)> {
        records.iter().map(|r| (r.index, r.body.to_vec())).collect()
    }

    fn append(log: &mut LogFile, from: u64, n: u64) {
        let bodies: Vec<Vec<u8>> = (from..from + n).map(|i| format!("entry-{i}").into_bytes()).collect();
        let recs: Vec<(u64, &[u8])> = (from..from + n).zip(bodies.iter()).map(|(i, b)| (i, &b[..])).collect();
        log.append(&recs).unwrap();
        log.sync().unwrap();
    }

    fn last_segment(dir: &Path) -> PathBuf {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        names.pop().unwrap()
    }

    #[test]
    fn records_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 10);
        append(&mut log, 11, 5);
        drop(log);
        let opened = LogFile::open(dir.path()).unwrap();
        assert!(opened.torn_tail.is_none());
        assert_eq!(opened.records.len(), 15);
        assert_eq!(bodies(&opened.records)[14], (15, b"entry-15".to_vec()));
    }

    /// A log in a new directory with records 1..=`n`, closed.
    fn closed_log_of(n: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, n);
        dir
    }

    /// Writes `bytes` at `offset` of the last segment in `dir` (damage, or a torn write).
    fn overwrite(dir: &Path, offset: u64, bytes: &[u8]) {
        let file = OpenOptions::new().write(true).open(last_segment(dir)).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, bytes, offset).unwrap();
    }

    /// The end of the records of the active segment, while `log` is open.
    fn records_end(log: &LogFile) -> u64 {
        log.segments.last().unwrap().len
    }

    #[test]
    fn torn_tail_is_truncated_with_a_report() {
        // The last record's final three bytes never reached the disk: zeros written
        // ahead are still there (this build), or the file ends there (a file that
        // grew with each append).
        for zeros_ahead in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = LogFile::open(dir.path()).unwrap().log;
            append(&mut log, 1, 3);
            let end = records_end(&log);
            drop(log);
            let seg = last_segment(dir.path());
            let file = OpenOptions::new().write(true).open(&seg).unwrap();
            match zeros_ahead {
                true => std::os::unix::fs::FileExt::write_all_at(&file, &[0; 3], end - 3).unwrap(),
                false => file.set_len(end - 3).unwrap(),
            }
            let opened = LogFile::open(dir.path()).unwrap();
            assert_eq!(opened.records.len(), 2, "zeros ahead: {zeros_ahead}");
            let (_, _, dropped) = opened.torn_tail.unwrap();
            assert_eq!(dropped, 8 + 8 + 7 - 3, "zeros ahead: {zeros_ahead}");
            // The log keeps working after the cut.
            let mut log = opened.log;
            append(&mut log, 3, 1);
            drop(log);
            assert_eq!(LogFile::open(dir.path()).unwrap().records.len(), 3);
        }
    }

    #[test]
    fn appends_overwrite_zeros_written_ahead_and_reopen_finds_the_records_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 3);
        let seg = last_segment(dir.path());
        let len = std::fs::metadata(&seg).unwrap().len();
        assert_eq!(len, records_end(&log) + PREALLOCATE_BYTES, "zeros are written ahead");
        append(&mut log, 4, 100);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len, "appends within the zeros do not grow the file");
        drop(log);
        let opened = LogFile::open(dir.path()).unwrap();
        assert!(opened.torn_tail.is_none(), "zeros ahead are no damage: {:?}", opened.torn_tail);
        assert_eq!(opened.records.len(), 103);
        let mut log = opened.log;
        append(&mut log, 104, 1);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len, "after a reopen the zeros are used");
        // Past the zeros, the next append writes more of them.
        let big = vec![7u8; PREALLOCATE_BYTES as usize];
        log.append(&[(105, &big[..])]).unwrap();
        log.sync().unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), records_end(&log) + PREALLOCATE_BYTES);
        drop(log);
        let opened = LogFile::open(dir.path()).unwrap();
        assert!(opened.torn_tail.is_none());
        assert_eq!(opened.records.last().map(|r| (r.index, r.body.len())), Some((105, big.len())));
    }

    #[test]
    fn a_finished_segment_keeps_its_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        let body = vec![1u8; 4 << 20];
        let count = SEGMENT_BYTES_TARGET / body.len() as u64 + 1;
        for index in 1..=count + 1 {
            log.append(&[(index, &body[..])]).unwrap();
        }
        log.sync().unwrap();
        assert_eq!(log.segments.len(), 2);
        let first = &log.segments[0];
        assert_eq!(std::fs::metadata(&first.path).unwrap().len(), first.len, "no zeros after a finished segment's records");
        drop(log);
        assert_eq!(LogFile::open(dir.path()).unwrap().records.len() as u64, count + 1);
    }

    /// Zeros over records that valid ones follow: within the last write's bound, a
    /// write torn in place by a crash during its sync (the disk kept a later page and
    /// not an earlier one); further back, damage.
    #[test]
    fn zeros_then_valid_records_are_a_torn_write_near_the_end_and_damage_further_back() {
        let dir = closed_log_of(5);
        let second = HEADER_BYTES + 8 + 8 + 7;
        overwrite(dir.path(), second, &[0; 8 + 8 + 7]);
        let opened = LogFile::open(dir.path()).unwrap();
        assert_eq!(opened.records.len(), 1);
        assert_eq!(opened.torn_tail.as_ref().map(|t| (t.1, t.2)), Some((second, 4 * (8 + 8 + 7))));
        let mut log = opened.log;
        append(&mut log, 2, 1);
        drop(log);
        assert_eq!(LogFile::open(dir.path()).unwrap().records.len(), 2);

        // The same zeros with more than UNSYNCED_BYTES_MAX of records after them.
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 5);
        let body = vec![3u8; 64 * 1024];
        for index in 6..6 + 20 {
            log.append(&[(index, &body[..])]).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        overwrite(dir.path(), second, &[0; 8 + 8 + 7]);
        let err = LogFile::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a valid record follows"), "{err}");
    }

    #[test]
    fn a_flipped_byte_with_valid_records_after_it_is_damage_even_near_the_end() {
        let dir = closed_log_of(5);
        let second = HEADER_BYTES + 8 + 8 + 7;
        overwrite(dir.path(), second + 12, b"X");
        let err = LogFile::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn an_empty_record_header_then_bytes_that_are_no_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 3);
        let end = records_end(&log);
        drop(log);
        // A later page of a torn write holds part of a record: no record starts there.
        overwrite(dir.path(), end + 4096, &[0xab; 100]);
        let opened = LogFile::open(dir.path()).unwrap();
        assert_eq!(opened.records.len(), 3);
        assert_eq!(opened.torn_tail.as_ref().map(|t| (t.1, t.2)), Some((end, 4096 + 100)));
    }

    #[test]
    fn zeros_at_the_end_of_a_finished_segment_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 3);
        drop(log);
        // A second segment after the first (as a roll makes it).
        let first = last_segment(dir.path());
        let mut log = LogFile::open(dir.path()).unwrap().log;
        log.start_segment(4).unwrap();
        append(&mut log, 4, 2);
        drop(log);
        let file = OpenOptions::new().write(true).open(&first).unwrap();
        let len = file.metadata().unwrap().len();
        std::os::unix::fs::FileExt::write_all_at(&file, &[0; 8 + 8 + 7], len - (8 + 8 + 7)).unwrap();
        let err = LogFile::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("offset 62: record length 0 is impossible"), "{err}");
    }

    #[test]
    fn a_long_append_is_synced_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        let body = vec![5u8; 100 * 1024];
        let records: Vec<(u64, &[u8])> = (1..=30).map(|i| (i, &body[..])).collect();
        log.append(&records).unwrap();
        assert!(log.unsynced <= UNSYNCED_BYTES_MAX, "{} bytes wait for a sync", log.unsynced);
        assert!(log.unsynced > 0);
        log.sync().unwrap();
        assert_eq!(log.unsynced, 0);
        drop(log);
        let opened = LogFile::open(dir.path()).unwrap();
        assert!(opened.torn_tail.is_none());
        assert_eq!(opened.records.len(), 30);
    }

    #[test]
    fn flipped_byte_mid_log_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 3);
        drop(log);
        let seg = last_segment(dir.path());
        let mut data = std::fs::read(&seg).unwrap();
        let second_record = HEADER_BYTES as usize + 8 + 8 + 7;
        data[second_record + 10] ^= 0x40;
        std::fs::write(&seg, &data).unwrap();
        let err = LogFile::open(dir.path()).unwrap_err();
        match err {
            LogError::Corrupt { file, offset, why } => {
                assert_eq!(file, seg);
                assert_eq!(offset, second_record as u64);
                assert!(why.contains("checksum"), "{why}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn truncate_and_purge_keep_the_log_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 10);
        log.truncate_from(6).unwrap();
        assert_eq!(log.last_index(), Some(5));
        append(&mut log, 6, 2);
        log.purge_upto(3).unwrap();
        drop(log);
        let opened = LogFile::open(dir.path()).unwrap();
        assert_eq!(opened.records.iter().map(|r| r.index).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    }

    #[test]
    fn append_that_does_not_follow_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap().log;
        append(&mut log, 1, 2);
        assert!(log.append(&[(5, b"x")]).is_err());
    }
}
