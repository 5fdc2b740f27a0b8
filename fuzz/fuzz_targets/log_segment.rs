//! Feeds bytes to the Raft log's reader as the bytes of a segment file found at
//! start-up (a crash, a bad disk or a hostile file), then decodes every record it
//! accepts as a log entry.
//!
//! Half the inputs are taken as they are; the other half are cut into records and
//! framed with correct lengths, indexes and checksums, so the fuzzer reaches the
//! entry decoder behind the CRC. Checked: opening never panics; the records it
//! returns have consecutive indexes; decoding an entry never panics, and an entry
//! that decodes encodes again to a body that decodes to the same entry.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem::replication::log_file::LogFile;
use tandem::replication::record::{decode_raft_entry, encode_raft_entry};

/// One scratch directory per fuzzing process, in memory when /dev/shm exists.
fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = std::path::PathBuf::from(base).join(format!("tandem-fuzz-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => frame_records(rest),
        _ => data.to_vec(),
    };
    let dir = scratch();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("scratch directory");
    std::fs::write(dir.join(format!("log-{:020}.seg", 0)), &bytes).expect("write the segment");
    let Ok(opened) = LogFile::open(dir) else { return };
    for pair in opened.records.windows(2) {
        assert_eq!(pair[1].index, pair[0].index + 1, "records out of order");
    }
    for record in &opened.records {
        if let Ok(entry) = decode_raft_entry(record.index, &record.body) {
            let body = encode_raft_entry(&entry);
            let again = decode_raft_entry(record.index, &body).expect("an encoded entry decodes");
            assert_eq!(encode_raft_entry(&again), body, "entry changed on a round trip");
        }
    }
});

/// A segment header, then `data` cut at 0xFF bytes into record bodies, framed with
/// length, CRC-32C and consecutive indexes from 0, as the writer does.
fn frame_records(data: &[u8]) -> Vec<u8> {
    let mut out = b"TNDMLOG1".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for (i, body) in data.split(|&b| b == 0xFF).enumerate() {
        let index = i as u64;
        let len = (8 + body.len()) as u32;
        let mut crc = crc32c::crc32c(&len.to_le_bytes());
        crc = crc32c::crc32c_append(crc, &index.to_le_bytes());
        crc = crc32c::crc32c_append(crc, body);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}
