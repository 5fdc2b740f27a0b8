//! The values a key can hold and their containers. Collections are insertion-ordered
//! (`IndexMap`/`IndexSet`) so that iteration order depends only on the sequence of
//! operations applied — never on the hasher's random seed — which keeps replicas that
//! applied the same entries identical, SCAN cursors meaningful, and random picks O(1).

use crate::protocol::reply::Reply;
use crate::store::stream::Stream;

/// Keys, fields and members are owned byte strings: 16 bytes of handle, no spare capacity.
pub type Blob = Box<[u8]>;

/// The hasher for every map: fast, and seeded per process against collision attacks.
pub type Hasher = foldhash::fast::RandomState;

pub use crate::store::hash::HashValue;
pub use crate::store::list::ListValue;
pub use crate::store::set::SetValue;
pub use crate::store::zset::ZSet;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// The value of one key. Large containers are boxed so the enum stays small: most
/// keys in a session store are strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    /// Inline, as a hash.
    List(ListValue),
    /// Inline: its packed form is a handle and a count, no box in between.
    Hash(HashValue),
    /// Inline, as a hash.
    Set(SetValue),
    /// Inline, as a hash.
    ZSet(ZSet),
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
        match self {
            Value::Str(s) => s.capacity(),
            Value::List(l) => l.heap_bytes(samples),
            Value::Hash(h) => h.heap_bytes(samples),
            Value::Set(s) => s.heap_bytes(samples),
            Value::ZSet(z) => z.heap_bytes(samples),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_stays_small() {
        // Most keys are strings: the enum must not grow past a Vec.
        assert!(std::mem::size_of::<Value>() <= 32, "Value is {} bytes", std::mem::size_of::<Value>());
    }
}
