//! Snapshots of the state machine: a compact, versioned, checksummed file (or the
//! same bytes in memory for a non-restartable server).
//!
//! ```text
//! "TNDMSNAP" | format version u32 LE | reserved u32
//! record*    : len u32 LE | crc32c(len ‖ payload) u32 LE | payload
//!   payload 0: meta  = last log id, membership log id, membership
//!   payload 1: key     = key, expire_at_ms (varint), value (store::codec)
//!   payload 3: script  = a cached script's source                  (version 2)
//!   payload 4: library = a function library (store::scripts)       (version 2)
//!   payload 5: limits  = the stripe's script limits                (version 2)
//!   payload 2: end     = number of key records; from version 2 also the
//!                        numbers of script and library records
//! ```
//! Version 1 (no scripts) is still read: its scripts are none, its limits the defaults.
//! Every record is checked on load; a bad one stops the load with the file and offset,
//! a missing end record says the file was cut short. A snapshot is written to a
//! temporary name, fsynced, then renamed, so a crash never leaves half a snapshot
//! under a valid name.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::codec::{encode_value, put_bytes, put_varint, Decoder};
use crate::store::db::Db;
use crate::store::scripts::{self, sha1_hex};

use super::record::{get_snapshot_meta, put_snapshot_meta};
use super::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"TNDMSNAP";
pub const FORMAT_VERSION: u32 = 2;
/// The first format, without scripts: still read.
const FORMAT_VERSION_NO_SCRIPTS: u32 = 1;
const KIND_META: u8 = 0;
const KIND_KEY: u8 = 1;
const KIND_END: u8 = 2;
const KIND_SCRIPT: u8 = 3;
const KIND_LIBRARY: u8 = 4;
const KIND_LIMITS: u8 = 5;
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
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut payload = vec![KIND_META];
    put_snapshot_meta(&mut payload, meta);
    frame(&payload, &mut out);
    let mut count = 0u64;
    for (key, item) in db.iter() {
        payload.clear();
        payload.push(KIND_KEY);
        put_bytes(&mut payload, key);
        put_varint(&mut payload, item.expire_at_ms);
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

/// Reads a snapshot back. `file` names it in errors; `now_ms` seeds access metadata.
pub fn decode(bytes: &[u8], file: &str, now_ms: u64) -> Result<(SnapshotMeta, Db), SnapshotError> {
    let corrupt = |offset: usize, why: String| SnapshotError::Corrupt { file: file.to_string(), offset, why };
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(corrupt(0, "not a Tandem snapshot (bad magic)".into()));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION && version != FORMAT_VERSION_NO_SCRIPTS {
        return Err(corrupt(
            8,
            format!("snapshot format version {version}, this build reads {FORMAT_VERSION_NO_SCRIPTS} and {FORMAT_VERSION}"),
        ));
    }
    let mut pos = 16;
    let mut meta: Option<SnapshotMeta> = None;
    let mut db = Db::new();
    let mut keys = 0u64;
    let (mut script_records, mut library_records) = (0u64, 0u64);
    let with_scripts = version >= FORMAT_VERSION;
    loop {
        let header = bytes.get(pos..pos + 8).ok_or_else(|| corrupt(pos, "cut short: no end record".into()))?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > RECORD_BYTES_MAX {
            return Err(corrupt(pos, format!("impossible record length {len}")));
        }
        let payload = bytes.get(pos + 8..pos + 8 + len).ok_or_else(|| corrupt(pos, format!("record of {len} bytes cut short")))?;
        let actual = crc32c::crc32c_append(crc32c::crc32c(&(len as u32).to_le_bytes()), payload);
        if actual != crc {
            return Err(corrupt(pos, format!("checksum mismatch (stored {crc:#010x}, computed {actual:#010x})")));
        }
        let mut d = Decoder::new(&payload[1..]);
        let bad = |e: crate::store::codec::CodecError| corrupt(pos, e.to_string());
        match payload[0] {
            KIND_META if meta.is_none() => {
                meta = Some(get_snapshot_meta(&mut d).map_err(bad)?);
            }
            KIND_KEY if meta.is_some() => {
                let key = d.bytes("key").map_err(bad)?;
                let expire_at_ms = d.varint("expiry").map_err(bad)?;
                let value = d.value().map_err(bad)?;
                d.finish().map_err(bad)?;
                db.load(key, value, expire_at_ms, now_ms);
                keys += 1;
            }
            KIND_SCRIPT if meta.is_some() && with_scripts => {
                let source = d.bytes("script source").map_err(bad)?;
                d.finish().map_err(bad)?;
                let source = bytes::Bytes::copy_from_slice(source);
                db.scripts.add_script(sha1_hex(&source), source).map_err(|e| corrupt(pos, e.to_string()))?;
                script_records += 1;
            }
            KIND_LIBRARY if meta.is_some() && with_scripts => {
                let library = scripts::decode_library(&mut d).map_err(bad)?;
                d.finish().map_err(bad)?;
                db.scripts.add_libraries(vec![library], false).map_err(|e| corrupt(pos, e.to_string()))?;
                library_records += 1;
            }
            KIND_LIMITS if meta.is_some() && with_scripts => {
                db.scripts.limits = scripts::decode_limits(&mut d).map_err(bad)?;
                d.finish().map_err(bad)?;
            }
            KIND_END if meta.is_some() => {
                let count = d.varint("key count").map_err(bad)?;
                if count != keys {
                    return Err(corrupt(pos, format!("end record counts {count} keys, {keys} were read")));
                }
                if with_scripts {
                    let scripts = d.varint("script count").map_err(bad)?;
                    let libraries = d.varint("library count").map_err(bad)?;
                    if (scripts, libraries) != (script_records, library_records) {
                        return Err(corrupt(
                            pos,
                            format!(
                                "end record counts {scripts} scripts and {libraries} libraries, {script_records} and {library_records} were read"
                            ),
                        ));
                    }
                }
                let meta = meta.ok_or_else(|| corrupt(pos, "no meta record".into()))?;
                return Ok((meta, db));
            }
            kind => return Err(corrupt(pos, format!("unexpected record kind {kind}"))),
        }
        pos += 8 + len;
    }
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
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io)?;
    commit(dir, &tmp, index)
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

    fn meta() -> SnapshotMeta {
        SnapshotMeta::default()
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
    }
}
