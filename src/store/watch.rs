//! What WATCH compares, as replicated state: every key carries the log index of the
//! entry that last modified it ([`super::db::Item::version`]), and keys that are gone
//! leave their removal index in [`RemovedFloors`]. A WATCH takes a [`WatchStamp`]
//! (the index the watching server had applied, and its time); the EXEC entry carries
//! the stamps, and `Store::apply` decides there, identically on every member, whether
//! any watched key changed since (Redis's `signalModifiedKey`, made exact under
//! replication).
//!
//! A false "changed" only fails a transaction the client retries; a false
//! "unchanged" would be the bug, so every approximation here errs towards "changed".
//!
//! The stamp is taken on the server the WATCH ran on (the active; a mirror forwards
//! WATCH), and it is a log index, which means the same on every member. So nothing
//! depends on what that server had applied when EXEC arrived: a write that timed out
//! at its client but is still in flight, or one committed by another active while
//! this one was deposed and not yet applied here after it was re-elected, precedes
//! the EXEC entry in the log, applies before it, and carries a higher index than the
//! stamp. A stale stamp (a deposed active that had not applied everything) is lower
//! than the truth, which can only fail the transaction.

/// Buckets of removal floors. Each holds the index of the latest removal of any key
/// hashing to it: 32 KB per store, and a watch on an absent key fails only when a
/// key of the same bucket (1 in 4096) was removed since.
pub const REMOVED_BUCKETS: usize = 4096;

/// What a WATCH saw: the index of the last entry its server had applied and the
/// time it read at. A key is unchanged since the stamp when no entry after `index`
/// modified or removed it, and it did not expire between `time_ms` and the EXEC
/// entry's time (Redis fails EXEC for a watched key that expired in between).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchStamp {
    pub index: u64,
    pub time_ms: u64,
}

/// A watched key and its stamp, as an EXEC entry carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub key: bytes::Bytes,
    pub stamp: WatchStamp,
}

/// The latest removal index per bucket of keys (see [`REMOVED_BUCKETS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedFloors {
    floors: Vec<u64>,
}

impl Default for RemovedFloors {
    fn default() -> Self {
        RemovedFloors::all_at(0)
    }
}

impl RemovedFloors {
    /// Every bucket at `index`: as if every key had been removed then (FLUSHALL, or
    /// a snapshot that carries no floors).
    pub fn all_at(index: u64) -> RemovedFloors {
        RemovedFloors { floors: vec![index; REMOVED_BUCKETS] }
    }

    /// From decoded floors; `None` unless there is exactly one per bucket.
    pub fn from_vec(floors: Vec<u64>) -> Option<RemovedFloors> {
        (floors.len() == REMOVED_BUCKETS).then_some(RemovedFloors { floors })
    }

    pub fn as_slice(&self) -> &[u64] {
        &self.floors
    }

    /// The index of the latest removal that may have been of `key`.
    pub fn floor(&self, key: &[u8]) -> u64 {
        self.floors.get(bucket(key)).copied().unwrap_or(u64::MAX)
    }

    /// Records that `key` was removed by the entry at `index`.
    pub fn removed(&mut self, key: &[u8], index: u64) {
        if let Some(floor) = self.floors.get_mut(bucket(key)) {
            *floor = (*floor).max(index);
        }
    }

    /// Records that every key was removed at `index`.
    pub fn all_removed(&mut self, index: u64) {
        for floor in &mut self.floors {
            *floor = (*floor).max(index);
        }
    }
}

/// The bucket of `key`: FNV-1a, fixed and seedless, because every member must put a
/// key in the same bucket (std's hasher is seeded per process).
fn bucket(key: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % REMOVED_BUCKETS as u64) as usize
}

/// Entries a comparison of 32-bit versions can span: a WATCH held longer than this
/// (in entries applied) counts as broken, whatever its keys did.
const VERSION_WINDOW: u64 = 1 << 31;

/// True if a key whose version (the low 32 bits of the index of its last
/// modification) is `version` was modified by an entry after `index`, judged while
/// the entry at `current` applies. Exact for every modification after `index`; a key
/// last modified more than 2^32 - (current - index) entries ago may read as modified
/// (a false "changed", never a false "unchanged").
pub fn modified_after(version: u32, index: u64, current: u64) -> bool {
    let window = current.saturating_sub(index);
    if window >= VERSION_WINDOW {
        return true;
    }
    let since = u64::from(version.wrapping_sub(index as u32));
    since >= 1 && since <= window
}

/// True if `key` (`None`: absent) is unchanged since `stamp`, while the entry at
/// `current` applies at `now_ms`.
pub fn unchanged(item: Option<(u32, u64)>, floor: u64, stamp: WatchStamp, current: u64, now_ms: u64) -> bool {
    match item {
        Some((version, expire_at_ms)) => {
            let expired_since = expire_at_ms != 0 && stamp.time_ms < expire_at_ms && expire_at_ms <= now_ms;
            !modified_after(version, stamp.index, current) && !expired_since
        }
        None => floor <= stamp.index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: WatchStamp = WatchStamp { index: 10, time_ms: 1_000 };

    const NOW: u64 = 12;

    #[test]
    fn a_present_key_is_unchanged_until_an_entry_after_the_stamp_touches_it() {
        assert!(unchanged(Some((10, 0)), 0, STAMP, NOW, 2_000));
        assert!(unchanged(Some((3, 0)), 99, STAMP, NOW, 2_000), "removals of other keys do not matter to a present key");
        assert!(!unchanged(Some((11, 0)), 0, STAMP, NOW, 2_000));
    }

    #[test]
    fn a_key_that_expired_between_watch_and_exec_changed() {
        assert!(!unchanged(Some((5, 1_500)), 0, STAMP, NOW, 2_000), "live at WATCH, expired at EXEC");
        assert!(unchanged(Some((5, 1_500)), 0, STAMP, NOW, 1_400), "still live at EXEC");
        assert!(unchanged(Some((5, 900)), 0, STAMP, NOW, 2_000), "already expired at WATCH: absent both times");
    }

    #[test]
    fn an_absent_key_changed_when_its_bucket_saw_a_removal_after_the_stamp() {
        assert!(unchanged(None, 10, STAMP, NOW, 2_000));
        assert!(!unchanged(None, 11, STAMP, NOW, 2_000));
    }

    #[test]
    fn versions_of_32_bits_compare_exactly_across_the_wrap() {
        let index = u64::from(u32::MAX) - 1;
        for modified_at in [index + 1, index + 2, index + 3] {
            assert!(modified_after(modified_at as u32, index, index + 3), "modified at {modified_at}");
        }
        for modified_at in [index, index - 1, index - 1_000_000] {
            assert!(!modified_after(modified_at as u32, index, index + 3), "modified at {modified_at}");
        }
        assert!(modified_after(5, 10, 10 + VERSION_WINDOW), "a WATCH held too long counts as broken");
    }

    #[test]
    fn floors_only_grow_and_flush_raises_them_all() {
        let mut floors = RemovedFloors::default();
        floors.removed(b"k", 7);
        floors.removed(b"k", 5);
        assert_eq!(floors.floor(b"k"), 7);
        floors.all_removed(9);
        assert_eq!(floors.floor(b"k"), 9);
        assert_eq!(floors.floor(b"other"), 9);
        assert!(RemovedFloors::from_vec(vec![0; 3]).is_none());
    }
}
