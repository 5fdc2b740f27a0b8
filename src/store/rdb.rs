//! Redis's RDB encoding of one value — the body of a DUMP payload made by Redis —
//! for RESTORE of payloads that came from Redis (a migration, or a client that
//! keeps DUMPs). Streams so far (RDB types 15, 19 and 21: Redis 5 to 7.2); any other
//! type is refused as bad data.
//!
//! A Redis stream is a radix tree of listpacks; each is decoded, checked, and its
//! entries re-packed into our nodes with the same boundaries and tombstones, so
//! that trimming afterwards removes what it would in Redis. The result then goes
//! through our own stream codec once more, whose checks (order, counts, owners of
//! pending entries) apply to it too.
//!
//! Like the rest of the decoders, it trusts nothing: every length is checked
//! against the bytes that remain, LZF output against its announced size, and any
//! inconsistency is an error, never a panic.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::codec::{CodecError, Decoder};
use super::stream::codec as stream_codec;
use super::stream::node::Node;
use super::stream::{Consumer, ConsumerGroup, Entries, Pending, Stream, StreamId};
use super::value::{Blob, Value};

const TYPE_STREAM_LISTPACKS: u8 = 15;
const TYPE_STREAM_LISTPACKS_2: u8 = 19;
const TYPE_STREAM_LISTPACKS_3: u8 = 21;

const STREAM_ITEM_FLAG_DELETED: i64 = 1;
const STREAM_ITEM_FLAG_SAMEFIELDS: i64 = 2;

/// The most an LZF-compressed string may expand to: a node's bytes at most.
const LZF_OUT_BYTES_MAX: usize = super::stream::NODE_BYTES_MAX;

/// Why an RDB body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdbError {
    #[error("RDB type {0} is not one Tandem reads (streams only)")]
    UnsupportedType(u8),
    #[error("RDB data cut short at offset {0}")]
    Truncated(usize),
    #[error("invalid RDB {what} at offset {offset}")]
    Invalid { what: &'static str, offset: usize },
    #[error("{0}")]
    Stream(#[from] CodecError),
}

/// Reads RDB lengths, strings and fixed-size numbers.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        let end = self.pos.checked_add(n).ok_or(RdbError::Truncated(self.pos))?;
        let bytes = self.buf.get(self.pos..end).ok_or(RdbError::Truncated(self.pos))?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, RdbError> {
        Ok(self.take(1)?[0])
    }

    fn invalid(&self, what: &'static str) -> RdbError {
        RdbError::Invalid { what, offset: self.pos }
    }

    /// A length, or (`Err(n)`) the special encoding `n` of a string.
    fn len_or_encoding(&mut self) -> Result<Result<u64, u8>, RdbError> {
        let first = self.u8()?;
        Ok(match first >> 6 {
            0 => Ok(u64::from(first & 0x3f)),
            1 => Ok((u64::from(first & 0x3f) << 8) | u64::from(self.u8()?)),
            2 if first == 0x80 => Ok(u64::from(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| self.invalid("length"))?))),
            2 if first == 0x81 => Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| self.invalid("length"))?)),
            2 => return Err(self.invalid("length")),
            _ => Err(first & 0x3f),
        })
    }

    fn len(&mut self) -> Result<u64, RdbError> {
        self.len_or_encoding()?.map_err(|_| self.invalid("length"))
    }

    /// A count of items that each take at least one byte.
    fn count(&mut self) -> Result<usize, RdbError> {
        let n = self.len()?;
        usize::try_from(n).ok().filter(|&n| n <= self.buf.len().saturating_sub(self.pos)).ok_or_else(|| self.invalid("count"))
    }

    /// A string: raw, an integer written as digits, or LZF-compressed.
    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.len_or_encoding()? {
            Ok(len) => {
                let len = usize::try_from(len).map_err(|_| self.invalid("string length"))?;
                Ok(self.take(len)?.to_vec())
            }
            Err(0) => Ok((self.u8()? as i8).to_string().into_bytes()),
            Err(1) => Ok(i16::from_le_bytes([self.u8()?, self.u8()?]).to_string().into_bytes()),
            Err(2) => {
                let raw: [u8; 4] = self.take(4)?.try_into().map_err(|_| self.invalid("integer"))?;
                Ok(i32::from_le_bytes(raw).to_string().into_bytes())
            }
            Err(3) => {
                let compressed = usize::try_from(self.len()?).map_err(|_| self.invalid("LZF length"))?;
                let plain = usize::try_from(self.len()?).map_err(|_| self.invalid("LZF length"))?;
                let offset = self.pos;
                let input = self.take(compressed)?;
                lzf_decompress(input, plain).ok_or(RdbError::Invalid { what: "LZF string", offset })
            }
            Err(_) => Err(self.invalid("string encoding")),
        }
    }

    fn ms_time(&mut self) -> Result<u64, RdbError> {
        let raw: [u8; 8] = self.take(8)?.try_into().map_err(|_| self.invalid("time"))?;
        Ok(u64::from_le_bytes(raw))
    }

    /// A 128-bit stream ID as the radix tree keys it: ms then seq, big endian.
    fn raw_id(&mut self) -> Result<StreamId, RdbError> {
        let raw = self.take(16)?;
        raw_id(raw).ok_or_else(|| self.invalid("stream ID"))
    }
}

fn raw_id(raw: &[u8]) -> Option<StreamId> {
    let ms = u64::from_be_bytes(raw.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(raw.get(8..16)?.try_into().ok()?);
    Some(StreamId::new(ms, seq))
}

/// LZF decompression (Redis's lzf_d.c) into exactly `expected` bytes.
fn lzf_decompress(input: &[u8], expected: usize) -> Option<Vec<u8>> {
    if expected > LZF_OUT_BYTES_MAX {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(expected);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let run = input.get(i..i + ctrl + 1)?;
            out.extend_from_slice(run);
            i += ctrl + 1;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(i)?);
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(i)?) + 1;
            i += 1;
            let start = out.len().checked_sub(back)?;
            for k in 0..len + 2 {
                let byte = *out.get(start + k)?;
                out.push(byte);
            }
        }
        if out.len() > expected {
            return None;
        }
    }
    (out.len() == expected).then_some(out)
}

/// One listpack element.
#[derive(Debug, Clone, PartialEq)]
enum Element {
    Int(i64),
    Str(Vec<u8>),
}

impl Element {
    fn int(&self) -> Option<i64> {
        match self {
            Element::Int(n) => Some(*n),
            Element::Str(s) => std::str::from_utf8(s).ok()?.parse().ok(),
        }
    }

    fn bytes(self) -> Bytes {
        match self {
            Element::Int(n) => Bytes::from(n.to_string()),
            Element::Str(s) => Bytes::from(s),
        }
    }
}

/// Bytes a listpack entry's back-length takes, for an entry of `len` bytes.
fn backlen_bytes(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16383 => 2,
        16384..=2097151 => 3,
        2097152..=268435455 => 4,
        _ => 5,
    }
}

/// Every element of a listpack (header, elements, 0xFF end), checked.
fn listpack(lp: &[u8]) -> Option<Vec<Element>> {
    let total = usize::try_from(u32::from_le_bytes(lp.get(..4)?.try_into().ok()?)).ok()?;
    if total != lp.len() || lp.last() != Some(&0xff) {
        return None;
    }
    let mut pos = 6;
    let mut out = Vec::new();
    while *lp.get(pos)? != 0xff {
        let start = pos;
        let b = *lp.get(pos)?;
        let sint = |bits: u32, v: u64| -> i64 {
            let shift = 64 - bits;
            ((v << shift) as i64) >> shift
        };
        let le = |from: usize, n: usize| -> Option<u64> {
            let raw = lp.get(from..from + n)?;
            Some(raw.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
        };
        let (element, size) = match b {
            0x00..=0x7f => (Element::Int(i64::from(b)), 1),
            0x80..=0xbf => {
                let len = usize::from(b & 0x3f);
                (Element::Str(lp.get(pos + 1..pos + 1 + len)?.to_vec()), 1 + len)
            }
            0xc0..=0xdf => (Element::Int(sint(13, (u64::from(b & 0x1f) << 8) | u64::from(*lp.get(pos + 1)?))), 2),
            0xe0..=0xef => {
                let len = (usize::from(b & 0x0f) << 8) | usize::from(*lp.get(pos + 1)?);
                (Element::Str(lp.get(pos + 2..pos + 2 + len)?.to_vec()), 2 + len)
            }
            0xf0 => {
                let len = usize::try_from(le(pos + 1, 4)?).ok()?;
                (Element::Str(lp.get(pos + 5..pos + 5 + len)?.to_vec()), 5 + len)
            }
            0xf1 => (Element::Int(sint(16, le(pos + 1, 2)?)), 3),
            0xf2 => (Element::Int(sint(24, le(pos + 1, 3)?)), 4),
            0xf3 => (Element::Int(sint(32, le(pos + 1, 4)?)), 5),
            0xf4 => (Element::Int(le(pos + 1, 8)? as i64), 9),
            _ => return None,
        };
        pos = start.checked_add(size)?.checked_add(backlen_bytes(size))?;
        out.push(element);
    }
    (pos + 1 == lp.len()).then_some(out)
}

/// One listpack's entries as a node of ours (same entries, same tombstones).
fn node_from_listpack(master: StreamId, lp: &[u8]) -> Option<Node> {
    let mut elements = listpack(lp)?.into_iter();
    let mut next = || elements.next();
    let live = next()?.int()?;
    let deleted = next()?.int()?;
    let master_count = usize::try_from(next()?.int()?).ok()?;
    let master_fields: Vec<Bytes> = (0..master_count).map(|_| next().map(Element::bytes)).collect::<Option<_>>()?;
    if next()?.int()? != 0 {
        return None;
    }
    let mut node: Option<Node> = None;
    // The first entry is the node's ID; each entry follows every live one before it
    // (a tombstone may be greater than later entries: see `store::stream::node`).
    let (mut first, mut previous_live) = (true, None);
    while let Some(flags) = next() {
        let flags = flags.int()?;
        let ms = master.ms.wrapping_add(next()?.int()? as u64);
        let seq = master.seq.wrapping_add(next()?.int()? as u64);
        let id = StreamId::new(ms, seq);
        if previous_live.is_some_and(|p| p >= id) || (first && id != master) {
            return None;
        }
        first = false;
        if flags & STREAM_ITEM_FLAG_DELETED == 0 {
            previous_live = Some(id);
        }
        let pairs: Vec<Bytes> = if flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0 {
            master_fields.iter().map(|f| Some([f.clone(), next()?.bytes()])).collect::<Option<Vec<_>>>()?.concat()
        } else {
            let count = usize::try_from(next()?.int()?).ok()?;
            (0..count * 2).map(|_| next().map(Element::bytes)).collect::<Option<_>>()?
        };
        // The back-count of listpack elements that ends each entry.
        next()?.int()?;
        let node = match &mut node {
            Some(node) => {
                node.append(master, id, &pairs);
                node
            }
            None => node.insert(Node::new(id, &pairs)),
        };
        if flags & STREAM_ITEM_FLAG_DELETED != 0 {
            let at = node.entries(master).last()?.at;
            node.mark_deleted(at);
        }
    }
    let node = node?;
    (i64::try_from(node.live()).ok() == Some(live) && i64::try_from(node.deleted()).ok() == Some(deleted)).then_some(node)
}

/// Decodes the body of a Redis DUMP payload (type byte and value).
pub fn decode_value(body: &[u8]) -> Result<Value, RdbError> {
    let mut r = Reader { buf: body, pos: 0 };
    let kind = r.u8()?;
    if !matches!(kind, TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3) {
        return Err(RdbError::UnsupportedType(kind));
    }
    let stream = stream(&mut r, kind)?;
    if r.pos != body.len() {
        return Err(r.invalid("trailing bytes"));
    }
    // Our own codec's checks, once more, on what was built.
    let mut encoded = Vec::new();
    stream_codec::encode(&stream, &mut encoded);
    let mut d = Decoder::new(&encoded);
    let checked = stream_codec::decode(&mut d)?;
    d.finish()?;
    Ok(Value::Stream(Box::new(checked)))
}

fn stream(r: &mut Reader, kind: u8) -> Result<Stream, RdbError> {
    let listpacks = r.count()?;
    let mut nodes = BTreeMap::new();
    for _ in 0..listpacks {
        let key = r.string()?;
        let master = raw_id(&key).filter(|_| key.len() == 16).ok_or_else(|| r.invalid("stream node key"))?;
        let lp = r.string()?;
        let node = node_from_listpack(master, &lp).ok_or_else(|| r.invalid("stream listpack"))?;
        if nodes.insert(master, node).is_some() {
            return Err(r.invalid("stream node key"));
        }
    }
    let length = r.len()?;
    let last_id = StreamId::new(r.len()?, r.len()?);
    let (first_id, max_deleted, entries_added) = if kind == TYPE_STREAM_LISTPACKS {
        (None, StreamId::MIN, length)
    } else {
        (Some(StreamId::new(r.len()?, r.len()?)), StreamId::new(r.len()?, r.len()?), r.len()?)
    };
    let mut entries = Entries::from_parts(nodes, [last_id, first_id.unwrap_or_default(), max_deleted], [length, entries_added]);
    if first_id.is_none() {
        // Redis 5 and 6 kept no first ID: the first live entry's.
        let first = entries.first_live_id().unwrap_or_default();
        entries = Entries::from_parts(entries.into_nodes(), [last_id, first, max_deleted], [length, entries_added]);
    }
    let groups = groups(r, kind, &entries)?;
    Ok(Stream { entries, groups })
}

fn groups(r: &mut Reader, kind: u8, entries: &Entries) -> Result<BTreeMap<Blob, ConsumerGroup>, RdbError> {
    let count = r.count()?;
    let mut groups = BTreeMap::new();
    for _ in 0..count {
        let name = Blob::from(r.string()?);
        let last_id = StreamId::new(r.len()?, r.len()?);
        let entries_read = if kind == TYPE_STREAM_LISTPACKS {
            entries.entries_read_at(last_id)
        } else {
            // Redis writes its "unknown" (-1) as the largest length.
            Some(r.len()?).filter(|&n| n != u64::MAX)
        };
        let mut group = ConsumerGroup::new(last_id, entries_read);
        let pel = r.count()?;
        let mut unowned = BTreeMap::new();
        for _ in 0..pel {
            let id = r.raw_id()?;
            let delivery_time_ms = r.ms_time()?;
            let delivery_count = r.len()?;
            if unowned.insert(id, (delivery_time_ms, delivery_count)).is_some() {
                return Err(r.invalid("pending entry"));
            }
        }
        let consumers = r.count()?;
        for _ in 0..consumers {
            let name = Blob::from(r.string()?);
            let seen_time_ms = r.ms_time()?;
            if kind == TYPE_STREAM_LISTPACKS_3 {
                // Redis 7.2's active time: not kept (Tandem reports 7.0's fields).
                r.ms_time()?;
            }
            let mut consumer = Consumer { seen_time_ms, pending: Default::default() };
            for _ in 0..r.count()? {
                let id = r.raw_id()?;
                let (delivery_time_ms, delivery_count) = unowned.remove(&id).ok_or_else(|| r.invalid("consumer's pending entry"))?;
                group.pending.insert(id, Pending { delivery_time_ms, delivery_count, consumer: name.clone() });
                consumer.pending.insert(id);
            }
            if group.consumers.insert(name, consumer).is_some() {
                return Err(r.invalid("consumer name"));
            }
        }
        if !unowned.is_empty() {
            return Err(r.invalid("pending entry without a consumer"));
        }
        if groups.insert(name, group).is_some() {
            return Err(r.invalid("group name"));
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::crc64;

    /// The DUMP payload Redis's own test suite restores ("Loading from legacy
    /// (Redis <= v6.2.x, rdb_ver < 10) persistence", stream-cgroups.tcl): a Redis 5
    /// stream with two groups, after XDEL and XTRIM.
    const REDIS5_PAYLOAD: &[u8] = b"\x0F\x01\x10\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\xC3\x40\x4A\x40\x57\x16\x57\x00\x00\x00\x23\x00\x02\x01\x04\x01\x01\x01\x84\x64\x61\x74\x61\x05\x00\x01\x03\x01\x00\x20\x01\x03\x81\x61\x02\x04\x20\x0A\x00\x01\x40\x0A\x00\x62\x60\x0A\x00\x02\x40\x0A\x00\x63\x60\x0A\x40\x22\x01\x81\x64\x20\x0A\x40\x39\x20\x0A\x00\x65\x60\x0A\x00\x05\x40\x0A\x00\x66\x20\x0A\x00\xFF\x02\x06\x00\x02\x02\x67\x31\x05\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x3E\xF7\x83\x43\x7A\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x3E\xF7\x83\x43\x7A\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x3E\xF7\x83\x43\x7A\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x3E\xF7\x83\x43\x7A\x01\x00\x00\x01\x01\x03\x63\x31\x31\x3E\xF7\x83\x43\x7A\x01\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x02\x67\x32\x00\x00\x00\x00\x09\x00\x3D\x52\xEF\x68\x67\x52\x1D\xFA";

    fn body(payload: &[u8]) -> &[u8] {
        &payload[..payload.len() - 10]
    }

    #[test]
    fn the_payload_carries_redis_checksum_and_version() {
        let (rest, crc) = REDIS5_PAYLOAD.split_at(REDIS5_PAYLOAD.len() - 8);
        assert_eq!(crc64(rest).to_le_bytes(), crc);
        assert_eq!(&rest[rest.len() - 2..], &[9, 0]);
    }

    #[test]
    fn a_redis5_stream_with_groups_loads_as_redis_loads_it() {
        let Value::Stream(stream) = decode_value(body(REDIS5_PAYLOAD)).unwrap() else { panic!("not a stream") };
        let entries = &stream.entries;
        assert_eq!(entries.len(), 2);
        assert_eq!(entries.entries_added(), 2);
        assert_eq!(entries.max_deleted_id(), StreamId::MIN);
        assert_eq!(entries.last_id(), StreamId::new(6, 0));
        type Seen = (StreamId, Vec<(Vec<u8>, Vec<u8>)>);
        let live: Vec<Seen> = entries
            .range(StreamId::MIN, StreamId::MAX)
            .map(|e| (e.id, e.fields.map(|(f, v)| (f.to_vec(), v.to_vec())).collect()))
            .collect();
        assert_eq!(
            live,
            vec![
                (StreamId::new(5, 0), vec![(b"data".to_vec(), b"e".to_vec())]),
                (StreamId::new(6, 0), vec![(b"data".to_vec(), b"f".to_vec())])
            ]
        );
        let g1 = &stream.groups[&Blob::from(&b"g1"[..])];
        assert_eq!((g1.entries_read, entries.lag(g1)), (Some(1), Some(1)));
        assert_eq!(g1.pending.len(), 4);
        assert_eq!(g1.consumers[&Blob::from(&b"c11"[..])].pending.len(), 4);
        let g2 = &stream.groups[&Blob::from(&b"g2"[..])];
        assert_eq!((g2.entries_read, entries.lag(g2)), (Some(0), Some(2)));
    }

    #[test]
    fn damaged_redis_payloads_are_refused_and_never_panic() {
        let body = body(REDIS5_PAYLOAD);
        for cut in 0..body.len() {
            assert!(decode_value(&body[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..body.len() {
            for flip in [0x01u8, 0x10, 0x80] {
                let mut bad = body.to_vec();
                bad[i] ^= flip;
                let _ = decode_value(&bad);
            }
        }
        assert_eq!(decode_value(&[0, 1, b'x']), Err(RdbError::UnsupportedType(0)));
    }

    #[test]
    fn lzf_round_trips_literals_and_back_references() {
        // "abcabcabc": a literal run of 3, then a back reference of 6 bytes, 3 back.
        let compressed = [0x02, b'a', b'b', b'c', 0x80, 0x02];
        assert_eq!(lzf_decompress(&compressed, 9).as_deref(), Some(&b"abcabcabc"[..]));
        assert_eq!(lzf_decompress(&compressed, 8), None);
        assert_eq!(lzf_decompress(&[0x80, 0x05], 3), None, "a reference before the start");
    }
}
