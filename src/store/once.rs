//! Exactly-once writes for clients of mirrors (DESIGN.md §6, "transparent failover").
//!
//! A mirror tags each write it forwards with its client's *origin* (a random 64-bit
//! id drawn per client connection: ids never repeat) and a *sequence* number that
//! grows with each write of that client. When the upstream to the active is lost
//! before the reply, the mirror sends the write again, with the same tag, to the new
//! active (or the same one over a new connection). This record, part of the
//! replicated state (changed only in apply, kept in snapshots), makes the second
//! copy a no-op that answers what the first one answered:
//!
//! - a tagged write whose sequence is recorded answers the recorded reply and
//!   changes nothing;
//! - one at or below the origin's *acknowledged* sequence (the mirror has received
//!   every reply up to it, so only a late copy of an older send can carry it) or
//!   below the *floor* (replies dropped to stay within bounds) is not applied, and
//!   answers [`ERR_FORGOTTEN`];
//! - anything else applies, and its reply is recorded.
//!
//! Each tagged write also carries the mirror's acknowledged sequence: replies up to
//! it are dropped, so an origin holds only the replies of writes still in flight.
//! An origin unused for its reconnect window (`client-reconnect-window`, carried in
//! each tagged write so every member decides alike) is removed by the sweep that
//! runs in apply, from entry time only.
//!
//! Order: one client's writes travel in order over one upstream and a re-send
//! starts from the first unanswered one, so first applications happen in sequence
//! order; a copy left in flight on an old active can only commit before the new
//! active's own entries (Raft), where it is recorded first and the re-sent copy
//! answers its reply.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::codec::{put_bytes, put_varint, CodecError, Decoder};
use crate::protocol::reply::Reply;

/// Replies kept per origin at most: more writes in flight than a client's pipeline
/// holds (the oldest go, raising the floor).
pub const REPLIES_PER_ORIGIN_MAX: usize = 100_000;

/// Reply bytes kept per origin at most (a write's reply is usually a few bytes; GETDEL
/// or SET … GET of a large value is not).
pub const REPLY_BYTES_PER_ORIGIN_MAX: usize = 64 << 20;

/// Origins kept at most: more than any number of clients connected to mirrors.
pub const ORIGINS_MAX: usize = 1_000_000;

/// Nesting of a recorded reply at most (snapshot decoding stops deeper data).
const REPLY_DEPTH_MAX: usize = 64;

pub const ERR_FORGOTTEN: &str =
    "ERR this write was sent again after its first copy was answered, or after its reply was dropped; it was not applied again";

/// The tag a forwarded write carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub origin: u64,
    pub seq: u64,
    /// Every reply up to this sequence reached the mirror.
    pub acked: u64,
    /// The origin is forgotten this long after its last write.
    pub window_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Origin {
    acked: u64,
    /// Sequences at or below it that are not recorded were answered or dropped.
    floor: u64,
    expires_ms: u64,
    replies: VecDeque<(u64, Reply)>,
    bytes: usize,
}

/// What a tagged write does.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Apply,
    /// Already applied: this is its reply.
    Replay(Reply),
    /// Not applied now, nothing recorded to answer with.
    Forgotten,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnceRecord {
    origins: BTreeMap<u64, Origin>,
    /// (expires_ms, origin): what the sweep removes first.
    by_expiry: std::collections::BTreeSet<(u64, u64)>,
}

impl OnceRecord {
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    pub fn origins(&self) -> usize {
        self.origins.len()
    }

    /// Decides what the write tagged `tag` does at `now_ms`, after dropping the
    /// replies the mirror acknowledged.
    pub fn decide(&mut self, tag: &Tag, now_ms: u64) -> Decision {
        self.sweep(now_ms);
        let Some(origin) = self.origins.get_mut(&tag.origin) else { return Decision::Apply };
        if tag.acked > origin.acked {
            origin.acked = tag.acked;
            while origin.replies.front().is_some_and(|(s, _)| *s <= tag.acked) {
                if let Some((_, reply)) = origin.replies.pop_front() {
                    origin.bytes = origin.bytes.saturating_sub(reply_bytes(&reply));
                }
            }
            origin.floor = origin.floor.max(tag.acked);
        }
        if let Ok(at) = origin.replies.binary_search_by_key(&tag.seq, |(s, _)| *s) {
            return Decision::Replay(origin.replies[at].1.clone());
        }
        if tag.seq <= origin.floor {
            return Decision::Forgotten;
        }
        Decision::Apply
    }

    /// Records the reply of the write tagged `tag`, applied at `now_ms`.
    pub fn record(&mut self, tag: &Tag, reply: &Reply, now_ms: u64) {
        let expires_ms = now_ms.saturating_add(tag.window_ms);
        if !self.origins.contains_key(&tag.origin) && self.origins.len() >= ORIGINS_MAX {
            // Full: the origin closest to expiry goes first.
            if let Some(&(at, oldest)) = self.by_expiry.iter().next() {
                self.by_expiry.remove(&(at, oldest));
                self.origins.remove(&oldest);
            }
        }
        let origin = self.origins.entry(tag.origin).or_default();
        self.by_expiry.remove(&(origin.expires_ms, tag.origin));
        origin.expires_ms = expires_ms;
        self.by_expiry.insert((expires_ms, tag.origin));
        // Sequences are recorded in order (see the module doc); one out of order (a
        // write refused before, applied now) is inserted in place.
        let at = origin.replies.partition_point(|(s, _)| *s < tag.seq);
        origin.bytes += reply_bytes(reply);
        origin.replies.insert(at, (tag.seq, reply.clone()));
        while origin.replies.len() > REPLIES_PER_ORIGIN_MAX || (origin.bytes > REPLY_BYTES_PER_ORIGIN_MAX && origin.replies.len() > 1) {
            if let Some((seq, dropped)) = origin.replies.pop_front() {
                origin.bytes = origin.bytes.saturating_sub(reply_bytes(&dropped));
                origin.floor = origin.floor.max(seq);
            }
        }
    }

    /// Removes the origins whose window ended before `now_ms`.
    fn sweep(&mut self, now_ms: u64) {
        while let Some(&(at, origin)) = self.by_expiry.iter().next() {
            if at >= now_ms {
                break;
            }
            self.by_expiry.remove(&(at, origin));
            self.origins.remove(&origin);
        }
    }

    // --- snapshots ---

    /// Appends the record: count, then each origin with its replies.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.origins.len() as u64);
        for (id, origin) in &self.origins {
            out.extend_from_slice(&id.to_le_bytes());
            put_varint(out, origin.acked);
            put_varint(out, origin.floor);
            put_varint(out, origin.expires_ms);
            put_varint(out, origin.replies.len() as u64);
            for (seq, reply) in &origin.replies {
                put_varint(out, *seq);
                put_reply(out, reply);
            }
        }
    }

    pub fn decode(d: &mut Decoder) -> Result<OnceRecord, CodecError> {
        let mut record = OnceRecord::default();
        let count = d.count("once origins", 12)?;
        for _ in 0..count {
            let id = d.u64_le("once origin")?;
            let acked = d.varint("once acknowledged")?;
            let floor = d.varint("once floor")?;
            let expires_ms = d.varint("once expiry")?;
            let n = d.count("once replies", 2)?;
            let mut replies = VecDeque::with_capacity(n.min(1024));
            let mut bytes = 0;
            for _ in 0..n {
                let seq = d.varint("once sequence")?;
                let reply = get_reply(d, 0)?;
                bytes += reply_bytes(&reply);
                replies.push_back((seq, reply));
            }
            record.by_expiry.insert((expires_ms, id));
            record.origins.insert(id, Origin { acked, floor, expires_ms, replies, bytes });
        }
        Ok(record)
    }
}

/// A reply's size for the bounds (its payload bytes plus a little per element).
fn reply_bytes(reply: &Reply) -> usize {
    16 + match reply {
        Reply::Status(t) | Reply::Error(t) => t.len(),
        Reply::Bulk(b) | Reply::Verbatim(b) | Reply::BigNumber(b) => b.len(),
        // Counted as the plain array it is kept as: a member restored from a snapshot
        // recounts it that way, and every member's bounds must agree.
        Reply::Bulks(b) => b.iter().map(|item| 16 + item.len()).sum(),
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => items.iter().map(reply_bytes).sum(),
        Reply::Map(pairs) | Reply::Pairs(pairs) | Reply::Keyed(pairs) => pairs.iter().map(|(k, v)| reply_bytes(k) + reply_bytes(v)).sum(),
        _ => 0,
    }
}

const R_STATUS: u8 = 0;
const R_ERROR: u8 = 1;
const R_INT: u8 = 2;
const R_BULK: u8 = 3;
const R_NIL: u8 = 4;
const R_NIL_ARRAY: u8 = 5;
const R_ARRAY: u8 = 6;
const R_MAP: u8 = 7;
const R_PAIRS: u8 = 8;
const R_KEYED: u8 = 9;
const R_SET: u8 = 10;
const R_DOUBLE: u8 = 11;
const R_BOOL: u8 = 12;
const R_HUMAN_DOUBLE: u8 = 13;
const R_VERBATIM: u8 = 14;
const R_PUSH: u8 = 15;
const R_BIG_NUMBER: u8 = 16;

/// A reply as the snapshot holds it: a tag, then its fields (every kind kept apart,
/// so it encodes to the same bytes as the first time in either protocol).
pub fn put_reply(out: &mut Vec<u8>, reply: &Reply) {
    let items = |out: &mut Vec<u8>, tag: u8, items: &[Reply]| {
        out.push(tag);
        put_varint(out, items.len() as u64);
        for item in items {
            put_reply(out, item);
        }
    };
    let pairs = |out: &mut Vec<u8>, tag: u8, pairs: &[(Reply, Reply)]| {
        out.push(tag);
        put_varint(out, pairs.len() as u64);
        for (k, v) in pairs {
            put_reply(out, k);
            put_reply(out, v);
        }
    };
    match reply {
        Reply::Status(t) => {
            out.push(R_STATUS);
            put_bytes(out, t.as_bytes());
        }
        Reply::Error(t) => {
            out.push(R_ERROR);
            put_bytes(out, t.as_bytes());
        }
        Reply::Int(n) => {
            out.push(R_INT);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Reply::Bulk(b) => {
            out.push(R_BULK);
            put_bytes(out, b);
        }
        Reply::Nil => out.push(R_NIL),
        // Never recorded (it is not a reply a client gets); kept as the null array.
        Reply::NilArray | Reply::WouldBlock => out.push(R_NIL_ARRAY),
        Reply::Array(v) => items(out, R_ARRAY, v),
        // Kept as the plain array it encodes as.
        Reply::Bulks(b) => items(out, R_ARRAY, &b.to_replies()),
        Reply::Set(v) => items(out, R_SET, v),
        Reply::Push(v) => items(out, R_PUSH, v),
        Reply::Map(p) => pairs(out, R_MAP, p),
        Reply::Pairs(p) => pairs(out, R_PAIRS, p),
        Reply::Keyed(p) => pairs(out, R_KEYED, p),
        Reply::Double(f) => {
            out.push(R_DOUBLE);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Reply::HumanDouble(f) => {
            out.push(R_HUMAN_DOUBLE);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Reply::Bool(b) => {
            out.push(R_BOOL);
            out.push(u8::from(*b));
        }
        Reply::Verbatim(b) => {
            out.push(R_VERBATIM);
            put_bytes(out, b);
        }
        Reply::BigNumber(b) => {
            out.push(R_BIG_NUMBER);
            put_bytes(out, b);
        }
    }
}

pub fn get_reply(d: &mut Decoder, depth: usize) -> Result<Reply, CodecError> {
    let offset = d.offset();
    if depth > REPLY_DEPTH_MAX {
        return Err(CodecError::Invalid { what: "recorded reply", offset, why: format!("nested deeper than {REPLY_DEPTH_MAX}") });
    }
    let text = |d: &mut Decoder| -> Result<std::borrow::Cow<'static, str>, CodecError> {
        let offset = d.offset();
        let b = d.bytes("reply text")?;
        String::from_utf8(b.to_vec()).map(std::borrow::Cow::Owned).map_err(|_| CodecError::Invalid {
            what: "reply text",
            offset,
            why: "not UTF-8".into(),
        })
    };
    let items = |d: &mut Decoder| -> Result<Vec<Reply>, CodecError> {
        let n = d.count("reply elements", 1)?;
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            v.push(get_reply(d, depth + 1)?);
        }
        Ok(v)
    };
    let pairs = |d: &mut Decoder| -> Result<Vec<(Reply, Reply)>, CodecError> {
        let n = d.count("reply pairs", 2)?;
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            v.push((get_reply(d, depth + 1)?, get_reply(d, depth + 1)?));
        }
        Ok(v)
    };
    let f64_of = |d: &mut Decoder| d.u64_le("reply double").map(f64::from_bits);
    Ok(match d.u8("reply tag")? {
        R_STATUS => Reply::Status(text(d)?),
        R_ERROR => Reply::Error(text(d)?),
        R_INT => Reply::Int(d.u64_le("reply integer")? as i64),
        R_BULK => Reply::Bulk(Bytes::copy_from_slice(d.bytes("reply bulk")?)),
        R_NIL => Reply::Nil,
        R_NIL_ARRAY => Reply::NilArray,
        R_ARRAY => Reply::Array(items(d)?),
        R_SET => Reply::Set(items(d)?),
        R_PUSH => Reply::Push(items(d)?),
        R_MAP => Reply::Map(pairs(d)?),
        R_PAIRS => Reply::Pairs(pairs(d)?),
        R_KEYED => Reply::Keyed(pairs(d)?),
        R_DOUBLE => Reply::Double(f64_of(d)?),
        R_HUMAN_DOUBLE => Reply::HumanDouble(f64_of(d)?),
        R_BOOL => Reply::Bool(d.u8("reply boolean")? != 0),
        R_VERBATIM => Reply::Verbatim(Bytes::copy_from_slice(d.bytes("reply verbatim")?)),
        R_BIG_NUMBER => Reply::BigNumber(Bytes::copy_from_slice(d.bytes("reply big number")?)),
        tag => return Err(CodecError::Invalid { what: "reply tag", offset, why: format!("unknown tag {tag}") }),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bulks_in_wire_form_count_as_the_plain_array_they_are_kept_as() {
        use crate::protocol::reply::BulkArray;
        let bulks: BulkArray = [&b"a"[..], b"", &[b'x'; 300][..]].into_iter().collect();
        let inside = |reply: Reply| Reply::Array(vec![Reply::Int(1), reply]);
        let wire = inside(Reply::Bulks(bulks.clone()));
        let plain = inside(Reply::Bulks(bulks).expanded());
        assert_eq!(super::reply_bytes(&wire), super::reply_bytes(&plain));
    }

    use super::*;

    fn tag(origin: u64, seq: u64, acked: u64) -> Tag {
        Tag { origin, seq, acked, window_ms: 1_000 }
    }

    #[test]
    fn a_write_sent_again_answers_its_first_reply_and_applies_once() {
        let mut r = OnceRecord::default();
        assert_eq!(r.decide(&tag(7, 1, 0), 10), Decision::Apply);
        r.record(&tag(7, 1, 0), &Reply::Int(1), 10);
        assert_eq!(r.decide(&tag(7, 1, 0), 11), Decision::Replay(Reply::Int(1)));
        assert_eq!(r.decide(&tag(7, 2, 0), 11), Decision::Apply, "the next write applies");
        assert_eq!(r.decide(&tag(8, 1, 0), 11), Decision::Apply, "another origin's first write applies");
    }

    #[test]
    fn acknowledged_replies_are_dropped_and_a_late_copy_of_them_is_not_applied() {
        let mut r = OnceRecord::default();
        for seq in 1..=3 {
            r.record(&tag(1, seq, 0), &Reply::Int(seq as i64), 10);
        }
        // The mirror got replies 1 and 2: only 3 is kept.
        assert_eq!(r.decide(&tag(1, 4, 2), 11), Decision::Apply);
        assert_eq!(r.origins[&1].replies.len(), 1);
        assert_eq!(r.decide(&tag(1, 2, 2), 11), Decision::Forgotten, "a late copy of an answered write");
        assert_eq!(r.decide(&tag(1, 3, 2), 11), Decision::Replay(Reply::Int(3)));
    }

    #[test]
    fn an_origin_is_forgotten_after_its_window_from_entry_time() {
        let mut r = OnceRecord::default();
        r.record(&tag(1, 1, 0), &Reply::ok(), 100);
        assert_eq!(r.decide(&tag(2, 1, 0), 1_100), Decision::Apply);
        assert_eq!(r.origins(), 1, "still within the window at its last millisecond");
        assert_eq!(r.decide(&tag(2, 1, 0), 1_101), Decision::Apply);
        assert!(r.is_empty(), "swept once the window ended");
    }

    #[test]
    fn the_replies_kept_per_origin_are_bounded_and_the_dropped_ones_are_not_applied_again() {
        let mut r = OnceRecord::default();
        let big = Reply::Bulk(Bytes::from(vec![b'x'; REPLY_BYTES_PER_ORIGIN_MAX / 2]));
        for seq in 1..=3 {
            r.record(&tag(1, seq, 0), &big, 10);
        }
        assert!(r.origins[&1].bytes <= REPLY_BYTES_PER_ORIGIN_MAX);
        assert_eq!(r.decide(&tag(1, 1, 0), 10), Decision::Forgotten);
        assert_eq!(r.decide(&tag(1, 3, 0), 10), Decision::Replay(big));
    }

    #[test]
    fn the_record_round_trips_through_its_snapshot_encoding() {
        let mut r = OnceRecord::default();
        let replies = [
            Reply::ok(),
            Reply::err("ERR nope"),
            Reply::Int(-5),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(vec![Reply::bulk(b"a"), Reply::Map(vec![(Reply::bulk(b"k"), Reply::Double(1.5))])]),
            Reply::Pairs(vec![(Reply::bulk(b"m"), Reply::HumanDouble(0.25))]),
            Reply::Keyed(vec![]),
            Reply::Set(vec![Reply::Bool(true)]),
            Reply::Verbatim(Bytes::from_static(b"txt:x")),
            Reply::BigNumber(Bytes::from_static(b"123")),
            Reply::Push(vec![]),
        ];
        for (i, reply) in replies.iter().enumerate() {
            r.record(&tag(3 + (i as u64 % 2), i as u64 + 1, 0), reply, 50 + i as u64);
        }
        let mut out = Vec::new();
        r.encode(&mut out);
        let mut d = Decoder::new(&out);
        let back = OnceRecord::decode(&mut d).unwrap();
        d.finish().unwrap();
        assert_eq!(back, r);
        // Cut short anywhere: an error, never a panic.
        for cut in 0..out.len() {
            let _ = OnceRecord::decode(&mut Decoder::new(&out[..cut]));
        }
    }
}
