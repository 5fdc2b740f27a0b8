//! Feeds bytes to the snapshot decoder, the way a damaged or hostile snapshot file
//! (or one received from another member) would reach it.
//!
//! Half the inputs are taken as they are; the other half are cut into records and
//! framed with correct lengths and checksums, so the fuzzer reaches the record
//! decoders behind the CRC. Checked: decoding never panics; a snapshot that decodes
//! encodes again to bytes that decode to the same data (same digest) and the same
//! meta.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem::replication::snapshot;
use tandem::store::digest;

fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => frame_records(rest),
        _ => data.to_vec(),
    };
    let Ok((meta, db)) = snapshot::decode(&bytes, "fuzz", 0) else { return };
    let again = snapshot::encode(&db, &meta);
    let (meta2, db2) = match snapshot::decode(&again, "re-encoded", 0) {
        Ok(back) => back,
        Err(e) => panic!("a decoded snapshot did not survive a round trip: {e}"),
    };
    assert_eq!(digest(&db), digest(&db2), "data changed on a round trip");
    assert_eq!(meta.last_log_id, meta2.last_log_id);
    assert_eq!(format!("{:?}", meta.last_membership), format!("{:?}", meta2.last_membership));
});

/// The snapshot header, then `data` cut at 0xFF bytes into record payloads, each
/// framed with its length and CRC-32C as the encoder does.
fn frame_records(data: &[u8]) -> Vec<u8> {
    let mut out = b"TNDMSNAP".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for payload in data.split(|&b| b == 0xFF).filter(|p| !p.is_empty()) {
        let len = payload.len() as u32;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}
