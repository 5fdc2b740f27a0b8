//! A sorted set's value, in one of two encodings that keep the very same member
//! order (insertion, with swap-remove: the order ZSCAN and ZRANDMEMBER index, and
//! DUMP and snapshots write), so which one a member uses is invisible:
//!
//! - **packed** while it holds at most [`PACKED_ENTRIES_MAX`] members of at most
//!   [`PACKED_MEMBER_MAX`] bytes (Redis's listpack defaults): every member in one
//!   allocation, each a varint `length << 1 | is-float`, its score (a zigzag varint
//!   when it is a whole number that fits, else the double's 8 bytes) and its bytes.
//!   Score-ordered reads sort the few members when asked.
//! - **table** past those: members by name (`IndexMap`) and by (score, member)
//!   (`BTreeSet`), as Redis's skiplist with its dict. A set never goes back to packed
//!   (as in Redis); loading a value from DUMP or a snapshot packs it again if it fits.
//!
//! A small sorted set of ten members cost 1.2 KB as a table: two copies of every
//! member, a hash index and a B-tree node. Packed it costs its bytes.

use std::collections::BTreeSet;
use std::ops::Bound;

use indexmap::IndexMap;

use super::hash::{put_len, read_len};
use super::set::{put_int, read_int};
use super::value::{Blob, Hasher, Score};

/// The most members a packed sorted set holds (Redis's `zset-max-listpack-entries`
/// default).
pub const PACKED_ENTRIES_MAX: usize = 128;

/// The longest member a packed sorted set holds (`zset-max-listpack-value`).
pub const PACKED_MEMBER_MAX: usize = 64;

/// Score-ordered members (score, member), in either direction.
pub type Sorted<'a> = Box<dyn DoubleEndedIterator<Item = (Score, &'a [u8])> + 'a>;

#[derive(Debug, Clone)]
pub struct ZSet(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// The members (see the module's notes); empty for none.
    Packed(Box<[u8]>),
    Table(Box<Table>),
}

#[derive(Debug, Clone, Default)]
struct Table {
    scores: IndexMap<Blob, f64, Hasher>,
    order: BTreeSet<(Score, Blob)>,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet(Repr::Packed(Box::default()))
    }
}

/// Equal when both hold the same members with the same scores, whatever their
/// encodings and order (as maps compare).
impl PartialEq for ZSet {
    fn eq(&self, other: &ZSet) -> bool {
        self.len() == other.len() && self.iter().all(|(m, s)| other.score(m).is_some_and(|o| o.to_bits() == s.to_bits()))
    }
}

/// A sorted set's members by index (see [`ZSet::indexed`]).
pub enum Indexed<'a> {
    Packed(Vec<(&'a [u8], f64)>),
    Table(&'a IndexMap<Blob, f64, Hasher>),
}

impl<'a> Indexed<'a> {
    pub fn get(&self, index: usize) -> Option<(&'a [u8], f64)> {
        match self {
            Indexed::Packed(all) => all.get(index).copied(),
            Indexed::Table(scores) => scores.get_index(index).map(|(m, s)| (&m[..], *s)),
        }
    }
}

/// A score kept as a zigzag varint: a whole number within ±2^53, where every
/// integer is a double exactly.
fn as_int(score: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    (score.fract() == 0.0 && score.abs() <= EXACT).then_some(score as i64)
}

/// Appends one packed member.
fn put_member(out: &mut Vec<u8>, member: &[u8], score: f64) {
    match as_int(score) {
        Some(int) => {
            put_len(out, member.len() << 1);
            put_int(out, int);
        }
        None => {
            put_len(out, (member.len() << 1) | 1);
            out.extend_from_slice(&score.to_le_bytes());
        }
    }
    out.extend_from_slice(member);
}

/// One member of a packed buffer and where its encoding lies.
#[derive(Clone, Copy)]
struct Packed<'a> {
    member: &'a [u8],
    score: f64,
    start: usize,
    end: usize,
}

/// The members of a packed buffer, in order. The buffer is only ever written by
/// `put_member`, so it is well formed.
struct PackedIter<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = Packed<'a>;

    fn next(&mut self) -> Option<Packed<'a>> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let head = read_len(self.bytes, &mut self.pos);
        let score = if head & 1 == 0 {
            read_int(self.bytes, &mut self.pos) as f64
        } else {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&self.bytes[self.pos..self.pos + 8]);
            self.pos += 8;
            f64::from_le_bytes(raw)
        };
        let len = head >> 1;
        let member = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Some(Packed { member, score, start, end: self.pos })
    }
}

/// The member count a packed buffer starts with (4 bytes, little-endian).
const HEADER: usize = 4;

fn packed_len(bytes: &[u8]) -> usize {
    bytes.get(..HEADER).map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize)
}

fn packed_iter(bytes: &[u8]) -> PackedIter<'_> {
    PackedIter { bytes, pos: HEADER.min(bytes.len()) }
}

/// A packed buffer of `count` members whose encodings are `body`.
fn packed_from(count: usize, body: &[u8]) -> Box<[u8]> {
    if count == 0 {
        return Box::default();
    }
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(body);
    out.into_boxed_slice()
}

/// Whether a member of this length may be packed.
fn packable(member: &[u8]) -> bool {
    member.len() <= PACKED_MEMBER_MAX
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed(bytes) => packed_len(bytes),
            Repr::Table(t) => t.scores.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it is in its packed encoding.
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Packed(_))
    }

    fn find_packed<'a>(bytes: &'a [u8], member: &[u8]) -> Option<(usize, Packed<'a>)> {
        packed_iter(bytes).enumerate().find(|(_, p)| p.member == member)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.0 {
            Repr::Packed(bytes) => ZSet::find_packed(bytes, member).map(|(_, p)| p.score),
            Repr::Table(t) => t.scores.get(member).copied(),
        }
    }

    /// The members with their scores, in the set's order (insertion, swap-remove).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match &self.0 {
            Repr::Packed(bytes) => Box::new(packed_iter(bytes).map(|p| (p.member, p.score))),
            Repr::Table(t) => Box::new(t.scores.iter().map(|(m, s)| (&m[..], *s))),
        }
    }

    /// The member at `index` of the set's order, with its score.
    pub fn get_index(&self, index: usize) -> Option<(&[u8], f64)> {
        match &self.0 {
            Repr::Packed(bytes) => packed_iter(bytes).nth(index).map(|p| (p.member, p.score)),
            Repr::Table(t) => t.scores.get_index(index).map(|(m, s)| (&m[..], *s)),
        }
    }

    /// The members by their place in the set's order, for many lookups by index
    /// (ZSCAN, ZRANDMEMBER): a packed set is read once, not once per lookup.
    pub fn indexed(&self) -> Indexed<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Indexed::Packed(packed_iter(bytes).map(|p| (p.member, p.score)).collect()),
            Repr::Table(t) => Indexed::Table(&t.scores),
        }
    }

    /// The members by (score, member), ascending; `.rev()` for descending.
    pub fn sorted(&self) -> Sorted<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Box::new(ZSet::packed_sorted(bytes).into_iter()),
            Repr::Table(t) => Box::new(t.order.iter().map(|(s, m)| (*s, &m[..]))),
        }
    }

    fn packed_sorted(bytes: &[u8]) -> Vec<(Score, &[u8])> {
        let mut all: Vec<(Score, &[u8])> = packed_iter(bytes).map(|p| (Score(p.score), p.member)).collect();
        all.sort_unstable();
        all
    }

    /// The members between two (score, member) bounds, ascending. Bounds that cross
    /// select nothing.
    pub fn range(&self, low: Bound<(Score, Blob)>, high: Bound<(Score, Blob)>) -> Sorted<'_> {
        let crossed = match (&low, &high) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a >= b,
            _ => false,
        };
        if crossed {
            return Box::new(std::iter::empty());
        }
        match &self.0 {
            Repr::Table(t) => Box::new(t.order.range((low, high)).map(|(s, m)| (*s, &m[..]))),
            Repr::Packed(bytes) => {
                let above = move |e: &(Score, &[u8])| match &low {
                    Bound::Included((s, m)) => (e.0, e.1) >= (*s, &m[..]),
                    Bound::Excluded((s, m)) => (e.0, e.1) > (*s, &m[..]),
                    Bound::Unbounded => true,
                };
                let below = move |e: &(Score, &[u8])| match &high {
                    Bound::Included((s, m)) => (e.0, e.1) <= (*s, &m[..]),
                    Bound::Excluded((s, m)) => (e.0, e.1) < (*s, &m[..]),
                    Bound::Unbounded => true,
                };
                let picked: Vec<(Score, &[u8])> = ZSet::packed_sorted(bytes).into_iter().filter(|e| above(e) && below(e)).collect();
                Box::new(picked.into_iter())
            }
        }
    }

    /// The lowest (score, member).
    pub fn first(&self) -> Option<(Score, &[u8])> {
        match &self.0 {
            Repr::Packed(bytes) => packed_iter(bytes).map(|p| (Score(p.score), p.member)).min(),
            Repr::Table(t) => t.order.first().map(|(s, m)| (*s, &m[..])),
        }
    }

    /// The highest (score, member).
    pub fn last(&self) -> Option<(Score, &[u8])> {
        match &self.0 {
            Repr::Packed(bytes) => packed_iter(bytes).map(|p| (Score(p.score), p.member)).max(),
            Repr::Table(t) => t.order.last().map(|(s, m)| (*s, &m[..])),
        }
    }

    /// 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = Score(self.score(member)?);
        match &self.0 {
            Repr::Packed(bytes) => Some(packed_iter(bytes).filter(|p| (Score(p.score), p.member) < (score, member)).count()),
            // O(n): walks the order.
            Repr::Table(t) => Some(t.order.range(..(score, Blob::from(member))).count()),
        }
    }

    /// Sets `member`'s score; returns the previous score if it was present.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        // -0.0 and 0.0 compare equal for users but not under total_cmp: store one zero.
        let score = if score == 0.0 { 0.0 } else { score };
        if let Repr::Packed(bytes) = &mut self.0 {
            match ZSet::find_packed(bytes, member) {
                Some((_, p)) => {
                    let previous = p.score;
                    if previous.to_bits() != score.to_bits() {
                        let mut body = Vec::with_capacity(bytes.len() + 8);
                        body.extend_from_slice(&bytes[HEADER..p.start]);
                        put_member(&mut body, member, score);
                        body.extend_from_slice(&bytes[p.end..]);
                        *bytes = packed_from(packed_len(bytes), &body);
                    }
                    return Some(previous);
                }
                None if packed_len(bytes) < PACKED_ENTRIES_MAX && packable(member) => {
                    let mut body = Vec::with_capacity(bytes.len() + member.len() + 10);
                    body.extend_from_slice(bytes.get(HEADER..).unwrap_or_default());
                    put_member(&mut body, member, score);
                    *bytes = packed_from(packed_len(bytes) + 1, &body);
                    return None;
                }
                None => self.unpack(),
            }
        }
        let Repr::Table(t) = &mut self.0 else { unreachable!("unpacked above") };
        match t.scores.get_mut(member) {
            Some(old) => {
                let previous = *old;
                if previous.total_cmp(&score).is_ne() {
                    *old = score;
                    t.order.remove(&(Score(previous), Blob::from(member)));
                    t.order.insert((Score(score), Blob::from(member)));
                }
                Some(previous)
            }
            None => {
                t.scores.insert(Blob::from(member), score);
                t.order.insert((Score(score), Blob::from(member)));
                None
            }
        }
    }

    /// The table encoding of the same members, in the same order.
    fn unpack(&mut self) {
        if let Repr::Packed(bytes) = &self.0 {
            let mut table = Table::default();
            table.scores.reserve(packed_len(bytes) + 1);
            for p in packed_iter(bytes) {
                table.scores.insert(Blob::from(p.member), p.score);
                table.order.insert((Score(p.score), Blob::from(p.member)));
            }
            self.0 = Repr::Table(Box::new(table));
        }
    }

    /// Removes `member`; returns its score if it was present. The last member takes
    /// its place in the set's order (a swap-remove).
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.0 {
            Repr::Packed(bytes) => {
                let (_, found) = ZSet::find_packed(bytes, member)?;
                let last = packed_iter(bytes).last().expect("a member was found");
                let mut body = Vec::with_capacity(bytes.len());
                body.extend_from_slice(&bytes[HEADER..found.start]);
                if last.start != found.start {
                    body.extend_from_slice(&bytes[last.start..last.end]);
                    body.extend_from_slice(&bytes[found.end..last.start]);
                }
                let score = found.score;
                *bytes = packed_from(packed_len(bytes) - 1, &body);
                Some(score)
            }
            Repr::Table(t) => {
                let score = t.scores.swap_remove(member)?;
                t.order.remove(&(Score(score), Blob::from(member)));
                Some(score)
            }
        }
    }

    /// Bytes held outside the value's handle: the packed buffer, or an estimate of
    /// the table from up to `samples` members (two copies of each, and the slots
    /// that hold them).
    pub fn heap_bytes(&self, samples: usize) -> usize {
        match &self.0 {
            Repr::Packed(bytes) => bytes.len(),
            Repr::Table(t) => {
                const SLOT: usize = 24;
                let seen = t.scores.iter().take(samples).map(|(m, _)| 2 * m.len() + 3 * SLOT).sum::<usize>();
                let sampled = t.scores.len().min(samples);
                std::mem::size_of::<Table>() + (seen * t.scores.len()).checked_div(sampled).unwrap_or(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{RngCore, SeedableRng};

    /// A model: the table encoding alone (what every sorted set was before packing).
    fn table_of(z: &ZSet) -> Vec<(Vec<u8>, u64)> {
        z.iter().map(|(m, s)| (m.to_vec(), s.to_bits())).collect()
    }

    /// 16 bytes of handle, kept in the value as a hash's and a set's are.
    #[test]
    fn a_sorted_set_is_a_handle_of_16_bytes() {
        assert_eq!(std::mem::size_of::<ZSet>(), 16);
        assert_eq!(std::mem::size_of::<crate::store::value::Value>(), 24);
    }

    #[test]
    fn both_indexes_and_the_packed_form_agree() {
        let mut z = ZSet::new();
        assert_eq!(z.insert(b"a", 2.0), None);
        assert_eq!(z.insert(b"b", 1.0), None);
        assert_eq!(z.insert(b"a", 0.5), Some(2.0));
        assert_eq!(z.rank(b"a"), Some(0));
        assert_eq!(z.rank(b"b"), Some(1));
        assert_eq!(z.remove(b"a"), Some(0.5));
        assert_eq!(z.len(), 1);
        assert!(z.is_packed());
        assert_eq!(z.remove(b"b"), Some(1.0));
        assert!(z.is_empty());
        assert_eq!(z.first(), None);
    }

    /// Scores of every kind survive packing: whole numbers (small, negative, at 2^53),
    /// fractions, infinities, the least and the greatest doubles; -0 is kept as 0.
    #[test]
    fn every_score_reads_back_exactly() {
        let scores = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            127.0,
            1e15,
            9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            -9_007_199_254_740_992.0,
            0.5,
            -2.25,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            1e300,
        ];
        let mut z = ZSet::new();
        for (i, s) in scores.iter().enumerate() {
            z.insert(format!("m{i}").as_bytes(), *s);
        }
        assert!(z.is_packed());
        for (i, s) in scores.iter().enumerate() {
            let want = if *s == 0.0 { 0.0 } else { *s };
            assert_eq!(z.score(format!("m{i}").as_bytes()).map(f64::to_bits), Some(want.to_bits()), "score {s}");
        }
    }

    /// At random, a packed-capable set against one forced to the table encoding from
    /// the start: the same members, scores and order after every step, the same
    /// score order, ranks and ranges; it unpacks past the thresholds.
    #[test]
    fn the_packed_encoding_behaves_as_the_table() {
        for seed in 0..12u64 {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut z = ZSet::new();
            let mut model = ZSet::new();
            model.unpack();
            let distinct = [10u64, 100, 200][seed as usize % 3];
            for step in 0..3_000u32 {
                let n = rng.next_u64() % distinct;
                // Now and then a member too long to pack.
                let member = if rng.next_u64() % 200 == 0 { format!("{n:>70}") } else { format!("m{n}") };
                let score = match rng.next_u64() % 4 {
                    0 => (rng.next_u64() % 20) as f64,
                    1 => -((rng.next_u64() % 1000) as f64) / 8.0,
                    2 => f64::from_bits(rng.next_u64() >> 2),
                    _ => 3.0,
                };
                match rng.next_u64() % 3 {
                    0 => assert_eq!(z.remove(member.as_bytes()), model.remove(member.as_bytes())),
                    _ => assert_eq!(z.insert(member.as_bytes(), score), model.insert(member.as_bytes(), score)),
                }
                assert_eq!(table_of(&z), table_of(&model), "seed {seed} step {step}");
                if step % 50 == 0 {
                    assert!(z.sorted().eq(model.sorted()));
                    assert!(z.sorted().rev().eq(model.sorted().rev()));
                    assert_eq!(z.first(), model.first());
                    assert_eq!(z.last(), model.last());
                    assert_eq!(z.rank(member.as_bytes()), model.rank(member.as_bytes()));
                    let low = Bound::Included((Score(1.0), Blob::from(&b"m1"[..])));
                    let high = Bound::Excluded((Score(10.0), Blob::default()));
                    assert!(z.range(low.clone(), high.clone()).eq(model.range(low, high)));
                    assert!(z
                        .range(Bound::Excluded((Score(5.0), Blob::default())), Bound::Included((Score(1.0), Blob::default())))
                        .next()
                        .is_none());
                    assert_eq!(z.get_index(3), model.get_index(3));
                    assert_eq!(z.indexed().get(z.len() / 2), model.indexed().get(z.len() / 2));
                    assert!(z == model);
                }
            }
            if distinct > PACKED_ENTRIES_MAX as u64 {
                assert!(z.len() <= PACKED_ENTRIES_MAX || !z.is_packed(), "seed {seed}: more members than a packed set holds");
            }
        }
    }

    #[test]
    fn a_long_member_or_one_member_too_many_unpacks() {
        let mut z = ZSet::new();
        for i in 0..PACKED_ENTRIES_MAX {
            z.insert(format!("{i}").as_bytes(), i as f64);
        }
        assert!(z.is_packed());
        z.insert(b"one more", 0.0);
        assert!(!z.is_packed());
        assert_eq!(z.len(), PACKED_ENTRIES_MAX + 1);
        assert_eq!(z.get_index(0), Some((&b"0"[..], 0.0)));
        let mut z = ZSet::new();
        z.insert(b"a", 1.0);
        z.insert(&[b'x'; PACKED_MEMBER_MAX + 1], 2.0);
        assert!(!z.is_packed());
        assert_eq!(z.get_index(0), Some((&b"a"[..], 1.0)));
    }
}
