//! The binary encoding of values: DUMP/RESTORE payloads now, snapshots of the whole
//! keyspace later (the [`Decoder`] reads one value at a time from a longer buffer).
//!
//! A value is a type tag followed by its elements; every length and count is an
//! unsigned LEB128 varint:
//!
//! ```text
//! Str   0  len bytes
//! List  1  count (len bytes)*
//! Hash  2  count (len field len value)*
//! Set   3  count (len member)*
//! ZSet  4  count (len member  f64-bits-LE)*
//! Strm  5  see `store::stream::codec` (DUMP version 2 on)
//! ```
//!
//! Containers are written in their insertion order and read back in it, so a decoded
//! value iterates exactly as the original did: SCAN cursors and seeded random picks
//! stay identical on every replica that restored the same bytes.
//!
//! A DUMP payload is `value ‖ version (u16 LE) ‖ CRC-64/Jones (u64 LE)`, the checksum
//! covering everything before it — the same layout Redis uses, with our own version.
//!
//! The decoder trusts nothing: every announced count and length is checked against
//! the bytes that remain before anything is allocated, varints must be minimal and
//! fit 64 bits, and anything that is not exactly one well-formed value is an error
//! naming what was expected and at which offset. It never panics.
//!
//! This module knows nothing of keys, TTLs or commands.

use super::value::{HashValue, ListValue, SetValue, Value, ZSet};

/// The version written in DUMP payloads. Version 2 added streams (tag 5); RESTORE
/// still accepts version 1 payloads, which cannot hold one.
pub const DUMP_VERSION: u16 = 2;
const DUMP_VERSION_OLDEST: u16 = 1;

/// Bytes after the value in a DUMP payload: version (2) and checksum (8).
const FOOTER_BYTES: usize = 10;

const TAG_STR: u8 = 0;
const TAG_LIST: u8 = 1;
const TAG_HASH: u8 = 2;
const TAG_SET: u8 = 3;
const TAG_ZSET: u8 = 4;
const TAG_STREAM: u8 = 5;

/// Elements reserved up front for a container, whatever its announced count: the
/// count is already bounded by the input's size, but a decoded element takes up to
/// 16 times the bytes of its encoding, so larger containers grow as elements really
/// decode (Redis likewise preallocates at most a fixed number).
const PREALLOC_ITEMS_MAX: usize = 4096;

/// The longest varint of a u64: 64 bits in 7-bit groups.
const VARINT_BYTES_MAX: usize = 10;

/// Why bytes are not a valid encoding. Offsets count from the start of the input
/// given to the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("expected {expected} at offset {offset}: {needed} bytes needed, {remaining} remain")]
    Truncated { expected: &'static str, offset: usize, needed: usize, remaining: usize },
    #[error("expected {expected} at offset {offset}: not a minimal varint of at most 64 bits")]
    BadVarint { expected: &'static str, offset: usize },
    #[error("expected {expected} at offset {offset}: {announced} announced, but only {remaining} bytes remain")]
    LengthTooLarge { expected: &'static str, offset: usize, announced: u64, remaining: usize },
    #[error("expected a type tag (0-5) at offset {offset}, found {found}")]
    UnknownTag { offset: usize, found: u8 },
    #[error("expected a non-empty {kind} at offset {offset}: empty containers are never stored")]
    EmptyContainer { kind: &'static str, offset: usize },
    #[error("expected distinct {expected} at offset {offset}, found a duplicate")]
    Duplicate { expected: &'static str, offset: usize },
    #[error("expected a score at offset {offset}, found NaN")]
    NanScore { offset: usize },
    #[error("invalid {what} at offset {offset}: {why}")]
    Invalid { what: &'static str, offset: usize, why: String },
    #[error("expected the end of input at offset {offset}, found {trailing} more bytes")]
    TrailingBytes { offset: usize, trailing: usize },
    #[error("expected a payload of at least {FOOTER_BYTES} bytes (version and checksum), found {len}")]
    PayloadTooShort { len: usize },
    #[error("expected payload format version {supported}, found {found}")]
    Version { found: u16, supported: u16 },
    #[error("expected checksum {stored:#018x} (stored at offset {offset}), computed {computed:#018x}")]
    Checksum { stored: u64, computed: u64, offset: usize },
}

// --- encoding ---

/// Appends `n` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends the encoding of `value`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Str(s) => {
            out.push(TAG_STR);
            put_bytes(out, s);
        }
        Value::List(list) => {
            out.push(TAG_LIST);
            put_varint(out, list.len() as u64);
            list.iter().for_each(|e| put_bytes(out, e));
        }
        Value::Hash(hash) => {
            out.push(TAG_HASH);
            put_varint(out, hash.len() as u64);
            for (field, v) in hash.iter() {
                put_bytes(out, field);
                put_bytes(out, v);
            }
        }
        Value::Set(set) => {
            out.push(TAG_SET);
            put_varint(out, set.len() as u64);
            set.iter().for_each(|m| put_bytes(out, &m));
        }
        Value::ZSet(zset) => {
            out.push(TAG_ZSET);
            put_varint(out, zset.len() as u64);
            for (member, score) in zset.iter() {
                put_bytes(out, member);
                out.extend_from_slice(&score.to_bits().to_le_bytes());
            }
        }
        Value::Stream(stream) => {
            out.push(TAG_STREAM);
            super::stream::codec::encode(stream, out);
        }
    }
}

/// The DUMP payload of `value`: encoding, version, checksum.
pub fn dump_payload(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out.extend_from_slice(&DUMP_VERSION.to_le_bytes());
    let checksum = crc64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

// --- decoding ---

/// Decodes exactly one value: trailing bytes are an error.
pub fn decode_value(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut decoder = Decoder::new(bytes);
    let value = decoder.value()?;
    decoder.finish()?;
    Ok(value)
}

/// Checks a DUMP payload's checksum, then its version; returns the value's bytes.
/// The checksum comes first so that any corruption, version bytes included, reads
/// as corruption.
pub fn verify_dump(payload: &[u8]) -> Result<&[u8], CodecError> {
    let too_short = CodecError::PayloadTooShort { len: payload.len() };
    if payload.len() < FOOTER_BYTES {
        return Err(too_short);
    }
    let (body, stored) = payload.split_last_chunk::<8>().ok_or(too_short.clone())?;
    let stored = u64::from_le_bytes(*stored);
    let computed = crc64(body);
    if stored != computed {
        return Err(CodecError::Checksum { stored, computed, offset: body.len() });
    }
    let (value, version) = body.split_last_chunk::<2>().ok_or(too_short)?;
    let found = u16::from_le_bytes(*version);
    if !(DUMP_VERSION_OLDEST..=DUMP_VERSION).contains(&found) {
        return Err(CodecError::Version { found, supported: DUMP_VERSION });
    }
    Ok(value)
}

/// Verifies and decodes a DUMP payload.
pub fn restore_payload(payload: &[u8]) -> Result<Value, CodecError> {
    decode_value(verify_dump(payload)?)
}

/// The RDB versions of Redis DUMP payloads RESTORE reads (Redis 5.0 wrote 9, 7.0
/// 10, 7.2 11). They cannot be taken for ours, which are 1 and 2.
const REDIS_RDB_VERSIONS: std::ops::RangeInclusive<u16> = 9..=11;

/// Why RESTORE refuses a payload: its envelope (checksum, version), or its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    #[error("{0}")]
    Payload(CodecError),
    #[error("{0}")]
    Data(String),
}

/// A DUMP payload of ours, or one made by Redis (see [`super::rdb`]), as a value.
pub fn restore_dump(payload: &[u8]) -> Result<Value, DumpError> {
    match verify_dump(payload) {
        Ok(body) => decode_value(body).map_err(|e| DumpError::Data(e.to_string())),
        Err(CodecError::Version { found, .. }) if REDIS_RDB_VERSIONS.contains(&found) => {
            let body = payload.get(..payload.len() - FOOTER_BYTES).unwrap_or_default();
            super::rdb::decode_value(body).map_err(|e| DumpError::Data(e.to_string()))
        }
        Err(e) => Err(DumpError::Payload(e)),
    }
}

/// Reads encoded items from a buffer, front to back, checking each against what
/// remains. Snapshots read many values (and keys, TTLs) from one `Decoder`.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf, pos: 0 }
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Ok if every byte was consumed.
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(CodecError::TrailingBytes { offset: self.pos, trailing }),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, expected: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n);
        let Some(bytes) = end.and_then(|end| self.buf.get(self.pos..end)) else {
            return Err(CodecError::Truncated { expected, offset: self.pos, needed: n, remaining: self.remaining() });
        };
        self.pos += n;
        Ok(bytes)
    }

    pub fn u8(&mut self, expected: &'static str) -> Result<u8, CodecError> {
        let bytes = self.take(1, expected)?;
        Ok(bytes.first().copied().unwrap_or_default())
    }

    pub fn u64_le(&mut self, expected: &'static str) -> Result<u64, CodecError> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8, expected)?);
        Ok(u64::from_le_bytes(raw))
    }

    /// A minimal LEB128 varint of at most 64 bits.
    pub fn varint(&mut self, expected: &'static str) -> Result<u64, CodecError> {
        let start = self.pos;
        let bad = CodecError::BadVarint { expected, offset: start };
        let mut n: u64 = 0;
        for i in 0..VARINT_BYTES_MAX {
            let byte = self.u8(expected).map_err(|_| self.truncated_varint(expected, start))?;
            let group = (byte & 0x7f) as u64;
            // The tenth byte holds bit 63 only.
            if i == VARINT_BYTES_MAX - 1 && group > 1 {
                return Err(bad);
            }
            n |= group << (7 * i);
            if byte & 0x80 == 0 {
                // A zero final group after the first byte is an overlong encoding.
                if i > 0 && group == 0 {
                    return Err(bad);
                }
                return Ok(n);
            }
        }
        Err(bad)
    }

    fn truncated_varint(&self, expected: &'static str, start: usize) -> CodecError {
        CodecError::Truncated { expected, offset: start, needed: self.pos - start + 1, remaining: self.pos - start }
    }

    /// A count or length announced by the input, refused unless the remaining bytes
    /// can hold that many items of at least `item_bytes_min` each — so a hostile
    /// count can never make us allocate more than the input's size would justify.
    pub fn count(&mut self, expected: &'static str, item_bytes_min: usize) -> Result<usize, CodecError> {
        let offset = self.pos;
        let announced = self.varint(expected)?;
        let remaining = self.remaining();
        let fits = usize::try_from(announced).ok().filter(|&n| n.checked_mul(item_bytes_min.max(1)).is_some_and(|b| b <= remaining));
        fits.ok_or(CodecError::LengthTooLarge { expected, offset, announced, remaining })
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self, expected: &'static str) -> Result<&'a [u8], CodecError> {
        let len = self.count(expected, 1)?;
        self.take(len, expected)
    }

    /// One encoded value.
    pub fn value(&mut self) -> Result<Value, CodecError> {
        let offset = self.pos;
        match self.u8("a type tag")? {
            TAG_STR => Ok(Value::Str(self.bytes("string bytes")?.to_vec())),
            TAG_LIST => self.list().map(Value::List),
            TAG_HASH => self.hash().map(Value::Hash),
            TAG_SET => self.set().map(Value::Set),
            TAG_ZSET => self.zset().map(Value::ZSet),
            TAG_STREAM => super::stream::codec::decode(self).map(|s| Value::Stream(Box::new(s))),
            found => Err(CodecError::UnknownTag { offset, found }),
        }
    }

    /// A container's element count: at least one, each element at least
    /// `item_bytes_min` long.
    fn container_len(&mut self, kind: &'static str, item_bytes_min: usize) -> Result<usize, CodecError> {
        let offset = self.pos;
        match self.count(kind, item_bytes_min)? {
            0 => Err(CodecError::EmptyContainer { kind, offset }),
            n => Ok(n),
        }
    }

    fn list(&mut self) -> Result<ListValue, CodecError> {
        let len = self.container_len("list length", 1)?;
        let mut elements = Vec::with_capacity(len.min(PREALLOC_ITEMS_MAX));
        for _ in 0..len {
            elements.push(self.bytes("list element")?);
        }
        Ok(elements.into_iter().collect())
    }

    fn hash(&mut self) -> Result<HashValue, CodecError> {
        let len = self.container_len("hash length", 2)?;
        let mut pairs = Vec::with_capacity(len.min(PREALLOC_ITEMS_MAX));
        let mut offsets = Vec::with_capacity(len.min(PREALLOC_ITEMS_MAX));
        for _ in 0..len {
            offsets.push(self.pos);
            let field = self.bytes("hash field")?;
            pairs.push((field, self.bytes("hash value")?));
        }
        // Packed by Redis's default thresholds when it fits (`store::hash`); the
        // keyspace encodes it again under its own (`Db::fitted`).
        HashValue::from_pairs(pairs.iter().copied(), super::hash::Packing::DEFAULT)
            .map_err(|i| CodecError::Duplicate { expected: "hash fields", offset: offsets[i] })
    }

    fn set(&mut self) -> Result<SetValue, CodecError> {
        let len = self.container_len("set length", 1)?;
        let mut set = super::set::Table::with_capacity(len.min(PREALLOC_ITEMS_MAX));
        for _ in 0..len {
            let offset = self.pos;
            if !set.insert_absent(self.bytes("set member")?, ()) {
                return Err(CodecError::Duplicate { expected: "set members", offset });
            }
        }
        // Packed by Redis's default thresholds when it fits (`store::set`); the
        // keyspace encodes it again under its own (`Db::fitted`).
        Ok(SetValue::from_table(set, super::set::SetPacking::DEFAULT))
    }

    fn zset(&mut self) -> Result<ZSet, CodecError> {
        // A member is at least its length byte, a score exactly 8 bytes.
        let len = self.container_len("sorted set length", 9)?;
        let mut zset = ZSet::new();
        for _ in 0..len {
            let offset = self.pos;
            let member = self.bytes("sorted set member")?;
            let score_offset = self.pos;
            let score = f64::from_bits(self.u64_le("a score")?);
            if score.is_nan() {
                return Err(CodecError::NanScore { offset: score_offset });
            }
            if zset.insert(member, score).is_some() {
                return Err(CodecError::Duplicate { expected: "sorted set members", offset });
            }
        }
        Ok(zset)
    }
}

// --- checksum ---

/// CRC-64/Jones (reflected polynomial 0xad93d23594c935a9, init 0, no final xor):
/// the CRC Redis puts in DUMP payloads and RDB files, strong enough for multi-GB
/// snapshots where a 32-bit CRC starts to see collisions.
///
/// Computed bit by bit rather than with a lookup table: it needs no dependency and
/// no 2 KiB table constant that could itself be mistyped, and eight shift/xor steps
/// per byte are ample for DUMP payloads. Snapshots, if they need more speed, can
/// switch to slicing-by-8 behind the same interface — the test vector pins the result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Crc64(u64);

/// The bit-reversed Jones polynomial, for the reflected (LSB-first) loop.
const CRC64_JONES_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

impl Crc64 {
    pub fn new() -> Crc64 {
        Crc64(0)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.0;
        for &byte in bytes {
            crc ^= byte as u64;
            for _ in 0..8 {
                // All ones when the low bit is set: branch-free conditional xor.
                let mask = (crc & 1).wrapping_neg();
                crc = (crc >> 1) ^ (CRC64_JONES_REFLECTED & mask);
            }
        }
        self.0 = crc;
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The CRC-64/Jones of `bytes`.
pub fn crc64(bytes: &[u8]) -> u64 {
    let mut crc = Crc64::new();
    crc.update(bytes);
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Value> {
        let list: ListValue = ["a", "", "a", "zzz"].iter().map(|s| s.as_bytes()).collect();
        let mut hash = HashValue::default();
        hash.insert(b"f2", b"v2", crate::store::hash::Packing::DEFAULT);
        hash.insert(b"f1", b"", crate::store::hash::Packing::DEFAULT);
        let mut set = SetValue::default();
        for m in ["x", "1", "", "long member"] {
            set.insert(m.as_bytes(), crate::store::set::SetPacking::DEFAULT);
        }
        let mut zset = ZSet::new();
        for (m, s) in [("b", 2.5), ("a", -1.0), ("inf", f64::INFINITY), ("ninf", f64::NEG_INFINITY), ("zero", 0.0)] {
            zset.insert(m.as_bytes(), s);
        }
        vec![
            Value::Str(Vec::new()),
            Value::Str(b"hello".to_vec()),
            Value::Str((0..=255u8).cycle().take(1000).collect()),
            Value::List(list),
            Value::Hash(hash),
            Value::Set(set),
            Value::ZSet(zset),
        ]
    }

    fn encoded(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(value, &mut out);
        out
    }

    #[test]
    fn every_type_round_trips_in_insertion_order() {
        for value in samples() {
            let bytes = encoded(&value);
            let back = decode_value(&bytes).unwrap();
            assert_eq!(back, value);
            // IndexMap equality ignores order; equal re-encodings prove it survived.
            assert_eq!(encoded(&back), bytes, "{value:?}");
        }
    }

    #[test]
    fn every_type_round_trips_through_a_dump_payload() {
        for value in samples() {
            let payload = dump_payload(&value);
            assert_eq!(restore_payload(&payload).unwrap(), value);
        }
    }

    #[test]
    fn large_counts_and_lengths_use_multi_byte_varints() {
        let elements: Vec<Vec<u8>> = (0..300).map(|i| vec![b'x'; i]).collect();
        let value = Value::List(elements.iter().map(|e| &e[..]).collect());
        assert_eq!(decode_value(&encoded(&value)).unwrap(), value);
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for n in [0, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut d = Decoder::new(&out);
            assert_eq!(d.varint("n").unwrap(), n);
            assert!(d.finish().is_ok());
        }
    }

    #[test]
    fn overlong_or_oversized_varints_are_refused() {
        let overlong = [0x80, 0x00];
        assert!(matches!(Decoder::new(&overlong).varint("n"), Err(CodecError::BadVarint { offset: 0, .. })));
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(matches!(Decoder::new(&too_big).varint("n"), Err(CodecError::BadVarint { .. })));
        let endless = [0xff; 11];
        assert!(matches!(Decoder::new(&endless).varint("n"), Err(CodecError::BadVarint { .. })));
        let cut = [0x80, 0x80];
        assert!(matches!(Decoder::new(&cut).varint("n"), Err(CodecError::Truncated { offset: 0, .. })));
    }

    #[test]
    fn every_truncation_of_every_type_is_an_error() {
        for value in samples() {
            let bytes = encoded(&value);
            for cut in 0..bytes.len() {
                assert!(decode_value(&bytes[..cut]).is_err(), "{value:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn truncated_string_names_what_and_where() {
        let err = decode_value(&[TAG_STR, 5, b'a', b'b']).unwrap_err();
        assert_eq!(err, CodecError::LengthTooLarge { expected: "string bytes", offset: 1, announced: 5, remaining: 2 });
        assert_eq!(err.to_string(), "expected string bytes at offset 1: 5 announced, but only 2 bytes remain");
        assert_eq!(decode_value(&[]).unwrap_err(), CodecError::Truncated { expected: "a type tag", offset: 0, needed: 1, remaining: 0 });
    }

    #[test]
    fn huge_announced_lengths_are_refused_before_allocating() {
        for tag in [TAG_STR, TAG_LIST, TAG_HASH, TAG_SET, TAG_ZSET] {
            let mut bytes = vec![tag];
            put_varint(&mut bytes, u64::MAX);
            bytes.extend_from_slice(b"abc");
            assert!(matches!(decode_value(&bytes), Err(CodecError::LengthTooLarge { announced: u64::MAX, .. })), "tag {tag}");
        }
        // A zset count that would fit one-byte elements but not 9-byte ones.
        let bytes = [TAG_ZSET, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(decode_value(&bytes), Err(CodecError::LengthTooLarge { .. })));
    }

    #[test]
    fn garbage_never_panics_and_is_mostly_refused() {
        // A fixed-seed xorshift stream: replayable, no dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| (next() % 7) as u8).collect();
            if let Ok(value) = decode_value(&bytes) {
                // Whatever is accepted is a value that survives its own round trip.
                assert_eq!(decode_value(&encoded(&value)).unwrap(), value);
            }
            assert!(restore_payload(&bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn unknown_tags_and_trailing_bytes_are_refused() {
        assert_eq!(decode_value(&[9]).unwrap_err(), CodecError::UnknownTag { offset: 0, found: 9 });
        assert_eq!(decode_value(&[TAG_STR, 1, b'a', 0]).unwrap_err(), CodecError::TrailingBytes { offset: 3, trailing: 1 });
    }

    #[test]
    fn empty_containers_duplicates_and_nan_are_refused() {
        assert!(matches!(decode_value(&[TAG_LIST, 0]), Err(CodecError::EmptyContainer { .. })));
        assert!(matches!(decode_value(&[TAG_SET, 2, 1, b'a', 1, b'a']), Err(CodecError::Duplicate { offset: 4, .. })));
        assert!(matches!(decode_value(&[TAG_HASH, 2, 1, b'f', 0, 1, b'f', 0]), Err(CodecError::Duplicate { .. })));
        let mut zset = vec![TAG_ZSET, 1, 1, b'm'];
        zset.extend_from_slice(&f64::NAN.to_bits().to_le_bytes());
        assert_eq!(decode_value(&zset).unwrap_err(), CodecError::NanScore { offset: 4 });
        // Lists may repeat elements.
        assert!(decode_value(&[TAG_LIST, 2, 1, b'a', 1, b'a']).is_ok());
    }

    #[test]
    fn any_flipped_byte_in_a_payload_fails_the_checksum() {
        let payload = dump_payload(&samples()[4]);
        for i in 0..payload.len() {
            let mut bad = payload.clone();
            bad[i] ^= 0x01;
            assert!(matches!(restore_payload(&bad), Err(CodecError::Checksum { .. })), "byte {i}");
        }
    }

    #[test]
    fn another_version_with_a_valid_checksum_is_refused() {
        let mut payload = Vec::new();
        encode_value(&Value::Str(b"v".to_vec()), &mut payload);
        payload.extend_from_slice(&11u16.to_le_bytes());
        let crc = crc64(&payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(restore_payload(&payload).unwrap_err(), CodecError::Version { found: 11, supported: DUMP_VERSION });
    }

    #[test]
    fn short_payloads_are_refused() {
        for len in 0..FOOTER_BYTES {
            assert_eq!(restore_payload(&vec![0; len]).unwrap_err(), CodecError::PayloadTooShort { len });
        }
    }

    #[test]
    fn crc64_matches_the_jones_check_value() {
        // The catalogue check value of CRC-64/Jones (as Redis's crc64 test asserts).
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        let mut incremental = Crc64::new();
        incremental.update(b"1234");
        incremental.update(b"56789");
        assert_eq!(incremental.finish(), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(b""), 0);
    }
}
