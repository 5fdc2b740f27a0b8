//! The values a key can hold and their containers. Collections are insertion-ordered
//! (`IndexMap`/`IndexSet`) so that iteration order depends only on the sequence of
//! operations applied — never on the hasher's random seed — which keeps replicas that
//! applied the same entries identical, SCAN cursors meaningful, and random picks O(1).

use std::collections::{BTreeSet, VecDeque};

use indexmap::IndexMap;

use crate::protocol::reply::Reply;
use crate::store::stream::Stream;

/// Keys, fields and members are owned byte strings: 16 bytes of handle, no spare capacity.
pub type Blob = Box<[u8]>;

/// The hasher for every map: fast, and seeded per process against collision attacks.
pub type Hasher = foldhash::fast::RandomState;

pub use crate::store::hash::HashValue;
pub use crate::store::set::SetValue;
pub type ListValue = VecDeque<crate::store::table::Key>;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// The value of one key. Large containers are boxed so the enum stays small: most
/// keys in a session store are strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    List(Box<ListValue>),
    /// Inline: its packed form is a handle and a count, no box in between.
    Hash(HashValue),
    /// Inline, as a hash.
    Set(SetValue),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
}

impl Value {
    /// The name TYPE replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    pub fn as_str(&self) -> Result<&Vec<u8>, Reply> {
        match self {
            Value::Str(s) => Ok(s),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_list(&self) -> Result<&ListValue, Reply> {
        match self {
            Value::List(l) => Ok(l),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_list_mut(&mut self) -> Result<&mut ListValue, Reply> {
        match self {
            Value::List(l) => Ok(l),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_hash(&self) -> Result<&HashValue, Reply> {
        match self {
            Value::Hash(h) => Ok(h),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_hash_mut(&mut self) -> Result<&mut HashValue, Reply> {
        match self {
            Value::Hash(h) => Ok(h),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_set(&self) -> Result<&SetValue, Reply> {
        match self {
            Value::Set(s) => Ok(s),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_set_mut(&mut self) -> Result<&mut SetValue, Reply> {
        match self {
            Value::Set(s) => Ok(s),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_zset(&self) -> Result<&ZSet, Reply> {
        match self {
            Value::ZSet(z) => Ok(z),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_zset_mut(&mut self) -> Result<&mut ZSet, Reply> {
        match self {
            Value::ZSet(z) => Ok(z),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_stream(&self) -> Result<&Stream, Reply> {
        match self {
            Value::Stream(s) => Ok(s),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    pub fn as_stream_mut(&mut self) -> Result<&mut Stream, Reply> {
        match self {
            Value::Stream(s) => Ok(s),
            _ => Err(Reply::err(WRONGTYPE)),
        }
    }

    /// True for a container with no elements: such a key must not exist. (An empty
    /// stream may: it keeps its last ID and groups, as in Redis.)
    pub fn is_empty_container(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            Value::Stream(_) => false,
        }
    }

    /// An estimate of the bytes this value occupies, for `MEMORY USAGE`. Collections
    /// are measured exactly up to `samples` elements and extrapolated beyond.
    pub fn memory_estimate(&self, samples: usize) -> usize {
        const SLOT: usize = 24;
        // List elements and hash fields of up to 22 bytes live in their 24-byte handle.
        let outside = |b: &[u8]| if b.len() <= crate::store::table::Key::INLINE_MAX { 0 } else { b.len() };
        fn scaled(total: usize, seen: usize, bytes: usize) -> usize {
            (bytes * total).checked_div(seen).unwrap_or(0)
        }
        match self {
            Value::Str(s) => s.capacity(),
            Value::List(l) => {
                let seen: usize = l.iter().take(samples).map(|e| outside(e) + SLOT).sum();
                scaled(l.len(), l.len().min(samples), seen)
            }
            Value::Hash(h) => h.heap_bytes(samples),
            Value::Set(s) => s.heap_bytes(samples),
            Value::ZSet(z) => {
                let seen: usize = z.scores.iter().take(samples).map(|(m, _)| 2 * m.len() + 3 * SLOT).sum();
                scaled(z.len(), z.len().min(samples), seen)
            }
            Value::Stream(s) => s.memory_estimate(),
        }
    }
}

/// A score with a total order. NaN never gets in: commands reject it first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A sorted set: members by name (for ZSCORE and ZSCAN) and by (score, member) for
/// ranges. Both always hold the same members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSet {
    pub scores: IndexMap<Blob, f64, Hasher>,
    pub order: BTreeSet<(Score, Blob)>,
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the previous score if it was present.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        // -0.0 and 0.0 compare equal for users but not under total_cmp: store one zero.
        let score = if score == 0.0 { 0.0 } else { score };
        match self.scores.get_mut(member) {
            Some(old) => {
                let previous = *old;
                if previous.total_cmp(&score).is_ne() {
                    *old = score;
                    self.order.remove(&(Score(previous), Blob::from(member)));
                    self.order.insert((Score(score), Blob::from(member)));
                }
                Some(previous)
            }
            None => {
                self.scores.insert(Blob::from(member), score);
                self.order.insert((Score(score), Blob::from(member)));
                None
            }
        }
    }

    /// Removes `member`; returns its score if it was present.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.swap_remove(member)?;
        self.order.remove(&(Score(score), Blob::from(member)));
        Some(score)
    }

    /// 0-based rank of `member` in ascending order. O(n): walks the order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let key = (Score(score), Blob::from(member));
        Some(self.order.range(..&key).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_stays_small() {
        // Most keys are strings: the enum must not grow past a Vec.
        assert!(std::mem::size_of::<Value>() <= 32, "Value is {} bytes", std::mem::size_of::<Value>());
    }

    #[test]
    fn zset_keeps_both_indexes_in_step() {
        let mut z = ZSet::new();
        assert_eq!(z.insert(b"a", 2.0), None);
        assert_eq!(z.insert(b"b", 1.0), None);
        assert_eq!(z.insert(b"a", 0.5), Some(2.0));
        assert_eq!(z.rank(b"a"), Some(0));
        assert_eq!(z.rank(b"b"), Some(1));
        assert_eq!(z.remove(b"a"), Some(0.5));
        assert_eq!(z.order.len(), 1);
        assert_eq!(z.scores.len(), 1);
    }
}
