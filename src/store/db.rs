//! The keyspace: keys → values, their expiry times, and what the active needs to pick
//! keys to expire or evict; beside it the scripts the stripe knows (script cache and
//! function libraries, [`Scripts`]), which are state too and travel with the data in
//! snapshots. `Db` holds state only; it reads no clock — every method
//! that depends on time takes `now_ms` from its caller (the entry's stamp, or the
//! reader's clock for reads that change nothing).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

use indexmap::IndexMap;

use super::scripts::Scripts;
use super::slots::{SlotIndex, SlotLinks};
use super::value::{Blob, Hasher, Value};

/// One key's value, its absolute expiry time and access metadata.
#[derive(Debug)]
pub struct Item {
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 means the key does not expire.
    pub expire_at_ms: u64,
    /// LRU clock (seconds, 24 bits) << 8 | LFU counter (8 bits). Local metadata for
    /// eviction: reads update it, so replicas differ here — it is not state, and it is
    /// never part of the digest or a snapshot's meaning.
    pub access: AtomicU32,
    /// Its neighbours among the keys of its slot (see `slots`).
    pub slot_links: SlotLinks,
}

impl Clone for Item {
    fn clone(&self) -> Self {
        Item {
            value: self.value.clone(),
            expire_at_ms: self.expire_at_ms,
            access: AtomicU32::new(self.access.load(Ordering::Relaxed)),
            slot_links: self.slot_links,
        }
    }
}

/// Starting LFU counter of a new key, as Redis (`LFU_INIT_VAL`): new keys are not
/// evicted before they had a chance to be read.
pub const LFU_INIT: u32 = 5;

impl Item {
    pub fn new(value: Value, now_ms: u64) -> Item {
        Item { value, expire_at_ms: 0, access: AtomicU32::new(pack_access(now_ms, LFU_INIT)), slot_links: SlotLinks::default() }
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms <= now_ms
    }

    /// Records a read or write: refresh the LRU clock, bump the LFU counter with
    /// Redis's logarithmic rule (probability 1/(counter·10+1)), driven by `chance`
    /// (any well-mixed number) so no randomness is drawn here.
    pub fn touch(&self, now_ms: u64, chance: u32) {
        let old = self.access.load(Ordering::Relaxed);
        let mut counter = old & 0xff;
        if counter < 255 {
            let base = counter.saturating_sub(LFU_INIT);
            let p = 1.0 / (base as f64 * 10.0 + 1.0);
            if (chance as f64 / u32::MAX as f64) < p {
                counter += 1;
            }
        }
        self.access.store(pack_access(now_ms, counter), Ordering::Relaxed);
    }

    pub fn idle_seconds(&self, now_ms: u64) -> u64 {
        let clock = (self.access.load(Ordering::Relaxed) >> 8) as u64;
        let now = (now_ms / 1000) & 0xff_ffff;
        (now + (1 << 24) - clock) & 0xff_ffff
    }

    /// The LFU counter decayed by one per idle minute (`lfu-decay-time 1`).
    pub fn lfu_counter(&self, now_ms: u64) -> u32 {
        let counter = self.access.load(Ordering::Relaxed) & 0xff;
        let decay = (self.idle_seconds(now_ms) / 60).min(255) as u32;
        counter.saturating_sub(decay)
    }
}

fn pack_access(now_ms: u64, counter: u32) -> u32 {
    ((((now_ms / 1000) & 0xff_ffff) as u32) << 8) | (counter & 0xff)
}

/// Per-key modification counters for WATCH, kept only for keys some client watches.
#[derive(Debug, Default)]
pub struct WatchTable {
    /// key → (version, number of watchers)
    keys: HashMap<Blob, (u64, usize)>,
    /// Bumped by FLUSHALL/FLUSHDB: every watch taken before it fails.
    flush_epoch: u64,
}

/// What EXEC compares: the key's version and the flush epoch when WATCH ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchStamp {
    version: u64,
    flush_epoch: u64,
}

#[derive(Debug, Default)]
pub struct Db {
    keys: IndexMap<Blob, Item, Hasher>,
    /// (expire_at_ms, key) for every key with a TTL: the active expiry cycle takes the
    /// due ones in order instead of sampling.
    expires: BTreeSet<(u64, Blob)>,
    /// The keys of each hash slot.
    slots: SlotIndex,
    watch: WatchTable,
    /// Script cache, function libraries and script limits. FLUSHALL leaves them, as in Redis.
    pub scripts: Scripts,
}

impl Db {
    pub fn new() -> Db {
        Db::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn expires_count(&self) -> usize {
        self.expires.len()
    }

    /// The item under `key`, even if expired (callers decide).
    pub fn item(&self, key: &[u8]) -> Option<&Item> {
        self.keys.get(key)
    }

    /// The live value of `key` at `now_ms`: an expired key reads as absent (it is not
    /// removed here; removal is a write, decided by the active).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Item> {
        self.keys.get(key).filter(|item| !item.is_expired(now_ms))
    }

    /// Position of `key` in the keyspace (one hash lookup); positions stay valid
    /// until the next insertion or removal.
    pub fn index_of(&self, key: &[u8]) -> Option<usize> {
        self.keys.get_index_of(key)
    }

    pub fn item_at(&self, index: usize) -> Option<&Item> {
        self.keys.get_index(index).map(|(_, item)| item)
    }

    pub fn item_at_mut(&mut self, index: usize) -> Option<&mut Item> {
        self.keys.get_index_mut(index).map(|(_, item)| item)
    }

    /// Replaces the value at `index` (the position of `key`), dropping its TTL unless
    /// `keep_ttl`. One lookup saved over [`Db::insert`] when the caller already found it.
    pub fn replace_at(&mut self, index: usize, key: &[u8], value: Value, keep_ttl: bool, now_ms: u64) {
        let Some((_, item)) = self.keys.get_index_mut(index) else { return };
        item.value = value;
        item.touch(now_ms, u32::MAX);
        if !keep_ttl && item.expire_at_ms != 0 {
            let at = std::mem::replace(&mut item.expire_at_ms, 0);
            self.expires.remove(&(at, Blob::from(key)));
        }
    }

    /// Inserts a key known to be absent; its position.
    pub fn insert_new(&mut self, key: &[u8], value: Value, now_ms: u64) -> usize {
        let pos = self.keys.insert_full(Blob::from(key), Item::new(value, now_ms)).0;
        self.slots.link(&mut self.keys, pos);
        pos
    }

    /// Mutable access to a key's item, expired or not. Write paths call
    /// [`Db::remove_if_expired`] first.
    pub fn item_mut(&mut self, key: &[u8]) -> Option<&mut Item> {
        self.keys.get_mut(key)
    }

    /// Removes `key` if it has expired at `now_ms`; true if it did.
    pub fn remove_if_expired(&mut self, key: &[u8], now_ms: u64) -> bool {
        match self.keys.get(key) {
            Some(item) if item.is_expired(now_ms) => {
                self.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Stores `value` under `key` with no TTL, replacing any previous value and TTL.
    pub fn insert(&mut self, key: &[u8], value: Value, now_ms: u64) {
        // One lookup when the key exists; a new key is hashed again by the insert.
        match self.keys.get_mut(key) {
            Some(item) => {
                item.value = value;
                if item.expire_at_ms != 0 {
                    let at = std::mem::replace(&mut item.expire_at_ms, 0);
                    self.expires.remove(&(at, Blob::from(key)));
                }
                item.touch(now_ms, u32::MAX);
            }
            None => {
                self.insert_new(key, value, now_ms);
            }
        }
    }

    /// Replaces the value of an existing key, keeping its TTL; inserts otherwise.
    pub fn insert_keep_ttl(&mut self, key: &[u8], value: Value, now_ms: u64) {
        match self.keys.get_mut(key) {
            Some(item) => item.value = value,
            None => {
                self.insert_new(key, value, now_ms);
            }
        }
    }

    /// Removes `key`; returns its item.
    pub fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let pos = self.keys.get_index_of(key)?;
        self.slots.unlink(&mut self.keys, pos);
        let last = self.keys.len() - 1;
        let (_, item) = self.keys.swap_remove_index(pos)?;
        if pos != last {
            self.slots.moved(&mut self.keys, last, pos);
        }
        if item.expire_at_ms != 0 {
            self.expires.remove(&(item.expire_at_ms, Blob::from(key)));
        }
        Some(item)
    }

    /// Sets an absolute expiry (ms) on an existing key; false if the key is absent.
    pub fn set_expire(&mut self, key: &[u8], at_ms: u64) -> bool {
        let Some(item) = self.keys.get_mut(key) else { return false };
        if item.expire_at_ms != 0 {
            self.expires.remove(&(item.expire_at_ms, Blob::from(key)));
        }
        item.expire_at_ms = at_ms;
        if at_ms != 0 {
            self.expires.insert((at_ms, Blob::from(key)));
        }
        true
    }

    /// Removes the TTL of `key`; true if it had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        match self.keys.get_mut(key) {
            Some(item) if item.expire_at_ms != 0 => {
                let at = std::mem::replace(&mut item.expire_at_ms, 0);
                self.expires.remove(&(at, Blob::from(key)));
                true
            }
            _ => false,
        }
    }

    /// Keys whose expiry is at or before `now_ms`, oldest first, at most `max`.
    pub fn due_keys(&self, now_ms: u64, max: usize) -> Vec<Blob> {
        self.expires.iter().take_while(|(at, _)| *at <= now_ms).take(max).map(|(_, k)| k.clone()).collect()
    }

    /// The key with the nearest expiry among all volatile keys (volatile-ttl).
    pub fn expires_iter(&self) -> impl Iterator<Item = (u64, &Blob)> {
        self.expires.iter().map(|(at, k)| (*at, k))
    }

    /// Key and item at position `index` of the insertion order (SCAN, random picks).
    pub fn get_index(&self, index: usize) -> Option<(&Blob, &Item)> {
        self.keys.get_index(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Blob, &Item)> {
        self.keys.iter()
    }

    /// How many keys hash to `slot`.
    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.slots.count(slot)
    }

    /// Up to `max` keys that hash to `slot`.
    pub fn keys_in_slot(&self, slot: u16, max: usize) -> Vec<&Blob> {
        self.slots.keys(&self.keys, slot, max)
    }

    /// Checks the slot index against the keyspace (tests).
    pub fn check_slot_index(&self) -> Result<(), String> {
        self.slots.check(&self.keys)
    }

    /// Removes every key. Watches are invalidated by the flush epoch.
    pub fn clear(&mut self) {
        self.keys = IndexMap::default();
        self.expires = BTreeSet::new();
        self.slots = SlotIndex::default();
        self.watch.flush_epoch += 1;
        for (version, _) in self.watch.keys.values_mut() {
            *version += 1;
        }
    }

    /// A copy of the data (keys, values, expiry) for a snapshot; watches are not data.
    pub fn data_clone(&self) -> Db {
        Db {
            keys: self.keys.clone(),
            expires: self.expires.clone(),
            slots: self.slots.clone(),
            watch: WatchTable::default(),
            scripts: self.scripts.clone(),
        }
    }

    /// Replaces all data with `other`'s (a snapshot was installed). Every watch fails.
    pub fn replace_data(&mut self, other: Db) {
        self.keys = other.keys;
        self.expires = other.expires;
        self.slots = other.slots;
        self.scripts = other.scripts;
        self.watch.flush_epoch += 1;
        for (version, _) in self.watch.keys.values_mut() {
            *version += 1;
        }
    }

    /// Inserts a key read from a snapshot with its expiry (0 = none).
    pub fn load(&mut self, key: &[u8], value: Value, expire_at_ms: u64, now_ms: u64) {
        self.insert(key, value, now_ms);
        if expire_at_ms != 0 {
            self.set_expire(key, expire_at_ms);
        }
    }

    // --- WATCH ---

    /// Starts watching `key` for one client; returns the stamp EXEC compares.
    pub fn watch(&mut self, key: &[u8]) -> WatchStamp {
        let entry = self.watch.keys.entry(Blob::from(key)).or_insert((0, 0));
        entry.1 += 1;
        WatchStamp { version: entry.0, flush_epoch: self.watch.flush_epoch }
    }

    /// One client stops watching `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(entry) = self.watch.keys.get_mut(key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.watch.keys.remove(key);
            }
        }
    }

    /// True if `key` has not been modified since `stamp` was taken.
    pub fn watch_holds(&self, key: &[u8], stamp: WatchStamp) -> bool {
        stamp.flush_epoch == self.watch.flush_epoch && self.watch.keys.get(key).is_some_and(|(v, _)| *v == stamp.version)
    }

    /// Records a modification of `key` for WATCH (Redis's signalModifiedKey).
    pub fn signal_modified(&mut self, key: &[u8]) {
        if self.watch.keys.is_empty() {
            return;
        }
        if let Some(entry) = self.watch.keys.get_mut(key) {
            entry.0 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.as_bytes().to_vec())
    }

    #[test]
    fn expired_key_reads_as_absent_but_stays_until_removed() {
        let mut db = Db::new();
        db.insert(b"k", s("v"), 1000);
        db.set_expire(b"k", 2000);
        assert!(db.get(b"k", 1999).is_some());
        assert!(db.get(b"k", 2000).is_none());
        assert_eq!(db.len(), 1);
        assert_eq!(db.due_keys(2000, 10), vec![Blob::from(&b"k"[..])]);
        assert!(db.remove_if_expired(b"k", 2000));
        assert_eq!(db.len(), 0);
        assert_eq!(db.expires_count(), 0);
    }

    #[test]
    fn insert_clears_ttl_and_keep_ttl_keeps_it() {
        let mut db = Db::new();
        db.insert(b"k", s("v"), 0);
        db.set_expire(b"k", 5000);
        db.insert_keep_ttl(b"k", s("w"), 0);
        assert_eq!(db.item(b"k").unwrap().expire_at_ms, 5000);
        db.insert(b"k", s("x"), 0);
        assert_eq!(db.item(b"k").unwrap().expire_at_ms, 0);
        assert_eq!(db.expires_count(), 0);
    }

    #[test]
    fn the_slot_index_follows_inserts_and_swap_removes() {
        use rand_core::{RngCore, SeedableRng};
        let seed = 17;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut db = Db::new();
        // Few distinct hash tags, so slots hold several keys each and removals hit
        // heads, middles and tails of lists, and the last position moves often.
        for step in 0..20_000 {
            let key = format!("{{t{}}}k{}", rng.next_u32() % 7, rng.next_u32() % 300);
            if rng.next_u32() % 3 == 0 {
                db.remove(key.as_bytes());
            } else {
                db.insert(key.as_bytes(), s("v"), 0);
            }
            if step % 997 == 0 {
                db.check_slot_index().unwrap_or_else(|e| panic!("seed {seed}, step {step}: {e}"));
            }
        }
        db.check_slot_index().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let slot = crate::cluster::slot::key_slot(b"t3");
        let listed = db.keys_in_slot(slot, usize::MAX);
        assert_eq!(listed.len(), db.count_in_slot(slot));
        let expected = db.iter().filter(|(k, _)| crate::cluster::slot::key_slot(k) == slot).count();
        assert_eq!(listed.len(), expected);
        db.clear();
        assert_eq!(db.count_in_slot(slot), 0);
        db.check_slot_index().unwrap();
    }

    #[test]
    fn watch_fails_after_modification_or_flush() {
        let mut db = Db::new();
        let stamp = db.watch(b"k");
        assert!(db.watch_holds(b"k", stamp));
        db.signal_modified(b"k");
        assert!(!db.watch_holds(b"k", stamp));
        let stamp = db.watch(b"k");
        db.clear();
        assert!(!db.watch_holds(b"k", stamp));
    }
}
