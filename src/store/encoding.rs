//! What `OBJECT ENCODING` reports, and the per-server settings it (and `OBJECT
//! FREQ`/`IDLETIME`) reads.
//!
//! A hash is kept packed or in a table (`store::hash`), and OBJECT ENCODING reports
//! which. Other values have one representation today (see [`super::value`]); for
//! them OBJECT ENCODING reports what Redis 7.0 would hold a value of this size and
//! content in under the configured thresholds (`zset-max-listpack-*`,
//! `set-max-intset-entries`), so clients and tests that look at it see Redis's
//! answers. That is computed from the value as it is now, whereas Redis converts once
//! and never back (a set that held a string and lost it stays `hashtable` there,
//! `intset` here); APPEND-style edits that leave Redis with a `raw` string are
//! likewise not remembered. A script that may write reads every encoding from the
//! content ([`LocalSettings::DETERMINISTIC`]): a hash's actual encoding depends on
//! this server's thresholds and history (a snapshot re-packs), not on the state. Redis 7.0's names are used (lists are
//! always `quicklist`, sets `intset` or `hashtable`): that is the version our
//! compatibility suite and differential tests run against.
//!
//! These settings belong to one server, are changed by CONFIG SET and are never part
//! of the state: nothing a write produces depends on them.

use super::value::Value;
use crate::commands::args::parse_i64;

/// Per-server settings that reads report but that never change what a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSettings {
    pub hash_listpack_entries: u64,
    pub hash_listpack_value_bytes: u64,
    pub zset_listpack_entries: u64,
    pub zset_listpack_value_bytes: u64,
    pub set_intset_entries: u64,
    /// An LFU `maxmemory-policy` is on: OBJECT FREQ answers, OBJECT IDLETIME refuses.
    pub lfu: bool,
    /// An LRU or LFU policy is on: Redis then shares no integer objects (REFCOUNT).
    pub lru_or_lfu: bool,
    /// Report a hash's encoding from its content under these thresholds, not the
    /// encoding it is in (for scripts that may write, whose result is state).
    pub by_content: bool,
}

impl LocalSettings {
    /// Redis's defaults.
    pub const REDIS_DEFAULTS: LocalSettings = LocalSettings {
        hash_listpack_entries: 128,
        hash_listpack_value_bytes: 64,
        zset_listpack_entries: 128,
        zset_listpack_value_bytes: 64,
        set_intset_entries: 512,
        lfu: false,
        lru_or_lfu: false,
        by_content: false,
    };

    /// What a script that may write reads: Redis's defaults, every encoding from the
    /// value's content. A script runs again on every member, and what it writes must
    /// not depend on one server's CONFIG or on how its values happen to be held.
    pub const DETERMINISTIC: LocalSettings = LocalSettings { by_content: true, ..LocalSettings::REDIS_DEFAULTS };
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings::REDIS_DEFAULTS
    }
}

/// Longest string Redis keeps in one allocation with its object header (`embstr`).
const EMBSTR_BYTES_MAX: usize = 44;

/// Redis shares the integers 0..=9999 between keys (`OBJ_SHARED_INTEGERS`).
const SHARED_INTEGERS: i64 = 10_000;

/// The reference count Redis reports for a shared object (`OBJ_SHARED_REFCOUNT`).
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// A string Redis would store as an integer: at most 20 bytes that read back as an
/// i64 exactly (no sign, no leading zeros, no spaces).
fn as_int_encoded(s: &[u8]) -> Option<i64> {
    if s.len() > 20 {
        return None;
    }
    parse_i64(s)
}

/// The name OBJECT ENCODING replies with for `value` under `limits`.
pub fn encoding_name(value: &Value, limits: &LocalSettings) -> &'static str {
    let fits = |len: usize, max: u64| u64::try_from(len).is_ok_and(|l| l <= max);
    match value {
        // Changed in place (APPEND, SETRANGE): room to grow, as Redis's `raw` sds.
        // Not state (a restart or snapshot loads it exact), so scripts go by content.
        Value::Str(s) if !limits.by_content && s.capacity() > s.len() => "raw",
        Value::Str(s) if as_int_encoded(s).is_some() => "int",
        Value::Str(s) if s.len() <= EMBSTR_BYTES_MAX => "embstr",
        Value::Str(_) => "raw",
        Value::List(_) => "quicklist",
        Value::Hash(h) if limits.by_content => {
            let small = fits(h.len(), limits.hash_listpack_entries)
                && h.iter()
                    .all(|(f, v)| fits(f.len(), limits.hash_listpack_value_bytes) && fits(v.len(), limits.hash_listpack_value_bytes));
            if small {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Hash(h) if h.is_packed() => "listpack",
        Value::Hash(_) => "hashtable",
        // Scripts that may write go by content; otherwise the set's own history
        // decides, as Redis converts an intset once and never back (`store::set`).
        Value::Set(s) if limits.by_content => {
            if fits(s.len(), limits.set_intset_entries) && s.iter().all(|m| parse_i64(&m).is_some()) {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::Set(s) if s.is_intset(usize::try_from(limits.set_intset_entries).unwrap_or(usize::MAX)) => "intset",
        Value::Set(_) => "hashtable",
        // Reported by content under this server's thresholds, as before the packed
        // encoding: `store::zset` packs by Redis's default thresholds whatever they
        // are set to here (the encoding is invisible but for memory).
        Value::ZSet(z) => {
            if fits(z.len(), limits.zset_listpack_entries) && z.iter().all(|(m, _)| fits(m.len(), limits.zset_listpack_value_bytes)) {
                "listpack"
            } else {
                "skiplist"
            }
        }
        Value::Stream(_) => "stream",
    }
}

/// What OBJECT REFCOUNT replies: Redis shares small integers unless an LRU or LFU
/// policy needs per-key access data; everything else has one reference.
pub fn refcount(value: &Value, limits: &LocalSettings) -> i64 {
    match value {
        Value::Str(s) if !limits.lru_or_lfu && as_int_encoded(s).is_some_and(|n| (0..SHARED_INTEGERS).contains(&n)) => SHARED_REFCOUNT,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::value::{HashValue, SetValue, ZSet};

    fn string(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec())
    }

    #[test]
    fn strings_are_int_embstr_or_raw_by_content_and_length() {
        let limits = LocalSettings::default();
        assert_eq!(encoding_name(&string("12345"), &limits), "int");
        assert_eq!(encoding_name(&string("-9223372036854775808"), &limits), "int");
        assert_eq!(encoding_name(&string("012"), &limits), "embstr");
        assert_eq!(encoding_name(&string(&"a".repeat(44)), &limits), "embstr");
        assert_eq!(encoding_name(&string(&"a".repeat(45)), &limits), "raw");
    }

    #[test]
    fn containers_follow_the_thresholds() {
        let mut limits = LocalSettings::default();
        // A hash reports the encoding it is in (`store::hash` converts it).
        let mut hash = HashValue::default();
        hash.insert(b"f", b"v", crate::store::hash::Packing::DEFAULT);
        assert_eq!(encoding_name(&Value::Hash(hash.clone()), &limits), "listpack");
        hash.insert(b"f", &[b'v'; 65], crate::store::hash::Packing::DEFAULT);
        assert_eq!(encoding_name(&Value::Hash(hash.clone()), &limits), "hashtable");
        // Scripts read it from the content: a table that fits again reads `listpack`.
        hash.insert(b"f", b"v", crate::store::hash::Packing::DEFAULT);
        assert_eq!(encoding_name(&Value::Hash(hash.clone()), &limits), "hashtable");
        assert_eq!(encoding_name(&Value::Hash(hash), &LocalSettings::DETERMINISTIC), "listpack");

        let packing = crate::store::set::SetPacking::DEFAULT;
        let mut set = SetValue::default();
        set.insert(b"1", packing);
        let ints = Value::Set(set.clone());
        assert_eq!(encoding_name(&ints, &limits), "intset");
        set.insert(b"a", packing);
        assert_eq!(encoding_name(&Value::Set(set.clone()), &limits), "hashtable");
        // A set that held a string stays `hashtable`, as in Redis; scripts read the
        // content.
        set.swap_remove(b"a");
        assert_eq!(encoding_name(&Value::Set(set.clone()), &limits), "hashtable");
        assert_eq!(encoding_name(&Value::Set(set), &LocalSettings::DETERMINISTIC), "intset");

        let mut z = ZSet::new();
        z.insert(b"m", 1.0);
        let z = Value::ZSet(z);
        assert_eq!(encoding_name(&z, &limits), "listpack");
        limits.zset_listpack_value_bytes = 0;
        assert_eq!(encoding_name(&z, &limits), "skiplist");
        assert_eq!(encoding_name(&Value::List(Default::default()), &limits), "quicklist");
    }

    #[test]
    fn small_integers_are_shared_unless_lru_or_lfu() {
        let mut limits = LocalSettings::default();
        assert_eq!(refcount(&string("9999"), &limits), SHARED_REFCOUNT);
        assert_eq!(refcount(&string("10000"), &limits), 1);
        assert_eq!(refcount(&string("-1"), &limits), 1);
        limits.lru_or_lfu = true;
        assert_eq!(refcount(&string("1"), &limits), 1);
    }
}
