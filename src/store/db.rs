//! The keyspace: keys → values, their expiry times, and what the active needs to pick
//! keys to expire or evict; beside it the scripts the stripe knows (script cache and
//! function libraries, [`Scripts`]), which are state too and travel with the data in
//! snapshots. `Db` holds state only; it reads no clock — every method
//! that depends on time takes `now_ms` from its caller (the entry's stamp, or the
//! reader's clock for reads that change nothing).
//!
//! It also holds what WATCH compares (see [`super::watch`]): the log index of the
//! entry being applied, each key's version (the low 32 bits of the index of its last
//! modification) and the removal floors. Every method that hands out a key mutably or removes one
//! records the modification, so no write can change a key without changing its
//! version.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use super::scripts::Scripts;
use super::slots::SlotIndex;
use super::stream::NodeLimits;
use super::table::{Key, KeyTable};
use super::value::{Blob, Value};
use super::watch::{self, RemovedFloors, WatchStamp};

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
    /// The low 32 bits of the log index of the entry that last modified this key
    /// (value or expiry): replicated state, equal on every member, kept in snapshots.
    /// 32 bits fit in what was padding, so versions cost no memory; they are compared
    /// within a window of the current index (`watch::modified_after`).
    version: u32,
}

impl Clone for Item {
    fn clone(&self) -> Self {
        Item {
            value: self.value.clone(),
            expire_at_ms: self.expire_at_ms,
            access: AtomicU32::new(self.access.load(Ordering::Relaxed)),
            version: self.version,
        }
    }
}

/// Starting LFU counter of a new key, as Redis (`LFU_INIT_VAL`): new keys are not
/// evicted before they had a chance to be read.
pub const LFU_INIT: u32 = 5;

impl Item {
    pub fn new(value: Value, now_ms: u64) -> Item {
        Item { value, expire_at_ms: 0, access: AtomicU32::new(pack_access(now_ms, LFU_INIT)), version: 0 }
    }

    /// The low 32 bits of the log index of the entry that last modified this key.
    pub fn version(&self) -> u32 {
        self.version
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

#[derive(Debug, Default)]
pub struct Db {
    keys: KeyTable<Key, Item>,
    /// (expire_at_ms, position) for every key with a TTL: the active expiry cycle takes
    /// the due ones in order instead of sampling. A position, not a copy of the key:
    /// 16 bytes a key with a TTL, where a copy cost its key's allocation too (a
    /// swap-remove that moves a key with a TTL puts its pair again).
    expires: BTreeSet<(u64, u32)>,
    /// The log index of the entry being applied (after it: the last one applied).
    /// Modifications are stamped with it.
    index: u64,
    /// The largest entry time applied: the keyspace's "now" never goes below it.
    time_ms: u64,
    /// Where keys that are gone were removed (WATCH on absent keys).
    removed: RemovedFloors,
    /// The keys of each hash slot.
    slots: SlotIndex,
    /// When stream nodes start (`stream-node-max-*`): state, set through the log.
    pub stream_limits: NodeLimits,
    /// Keys whose stream appeared, went or was replaced since the last
    /// [`Db::take_stream_changes`]: clients blocked on them must look again (a
    /// deleted stream ends an XREADGROUP wait, a renamed-in one may serve it).
    stream_changes: Vec<Blob>,
    /// Script cache, function libraries and script limits. FLUSHALL leaves them, as in Redis.
    pub scripts: Scripts,
    /// The stripe's ACL users (behind an `Arc`: connections read the published
    /// table without the store's lock; a change copies it once).
    pub acl: std::sync::Arc<crate::acl::Users>,
    /// Which forwarded writes were applied, with their replies (`store::once`).
    /// FLUSHALL leaves it: it is about writes, not keys.
    pub once: super::once::OnceRecord,
    /// Client sessions, fenced locks and groups (`super::prims`): state, in snapshots
    /// from format 6. FLUSHALL leaves them: they are no keys.
    pub prims: super::prims::Prims,
    /// Messages applying produced for pub/sub (group events) since the last
    /// [`Db::take_messages`]: not state, handed to the server after each command.
    pub messages: Vec<(bytes::Bytes, bytes::Bytes)>,
    /// Keys modified since the last [`Db::take_touched`], while a client of this
    /// server tracks keys (CLIENT TRACKING): what their invalidations are made of.
    /// Not state: each member records for its own clients; `None` records nothing.
    touched: Option<Touched>,
    /// When hashes are kept packed (this server's `hash-max-listpack-*`): not state,
    /// the encoding is invisible to commands (`store::hash`).
    pub hash_packing: super::hash::Packing,
    /// When sets are kept packed (this server's `set-max-intset-entries`): not state,
    /// as `hash_packing`.
    pub set_packing: super::set::SetPacking,
    /// The hash slots this server's stripe owns, in an array of several stripes
    /// (`None` otherwise): a script may touch keys of these slots only, as in Redis
    /// Cluster. Not state, but the same on every member: the slots follow from the
    /// array's configuration, which the members share.
    pub local_slots: Option<std::sync::Arc<[(u16, u16)]>>,
}

/// What applying modified, for client-side caching (see [`Db::touched`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    pub keys: Vec<bytes::Bytes>,
    /// Every key may have changed (FLUSHALL, FLUSHDB, a snapshot installed).
    pub all: bool,
}

impl Db {
    pub fn new() -> Db {
        Db::default()
    }

    /// Notes `key` if `value` is a stream (see `stream_changes`).
    fn note_stream(changes: &mut Vec<Blob>, key: &[u8], value: &Value) {
        if matches!(value, Value::Stream(_)) {
            changes.push(Blob::from(key));
        }
    }

    /// Notes a modified key for client-side caching (see `touched`).
    fn note_touched(touched: &mut Option<Touched>, key: &[u8]) {
        if let Some(t) = touched {
            t.keys.push(bytes::Bytes::copy_from_slice(key));
        }
    }

    /// Starts (or stops) recording modified keys for CLIENT TRACKING.
    pub fn record_touched(&mut self, on: bool) {
        match (on, self.touched.is_some()) {
            (true, false) => self.touched = Some(Touched::default()),
            (false, true) => self.touched = None,
            _ => {}
        }
    }

    pub fn recording_touched(&self) -> bool {
        self.touched.is_some()
    }

    /// What was modified since the last call (nothing when not recording).
    pub fn take_touched(&mut self) -> Touched {
        self.touched.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Keys whose stream appeared, went or was replaced since the last call.
    pub fn take_stream_changes(&mut self) -> Vec<Blob> {
        std::mem::take(&mut self.stream_changes)
    }

    /// Makes room for `additional` more keys (a snapshot about to be loaded).
    pub fn reserve(&mut self, additional: usize) {
        self.keys.reserve(additional);
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

    /// Starts loading what a lookup of `key` reads, in three stages to be called a
    /// few commands apart (see `store::table`): harmless for a key that is absent
    /// or for an argument that is no key.
    pub fn prefetch_slot(&self, key: &[u8]) {
        self.keys.prefetch_slot(key)
    }

    pub fn prefetch_entry(&self, key: &[u8]) {
        self.keys.prefetch_entry(key)
    }

    /// The last stage also starts loading a string value's bytes (their own
    /// allocation), which GET, INCR or APPEND read next.
    pub fn prefetch_key(&self, key: &[u8]) {
        self.keys.prefetch_key(key);
        if let Some(first) = self.keys.home_value(key).and_then(|item| item.value.as_str().ok()).and_then(|s| s.first()) {
            super::table::prefetch_read(first);
        }
    }

    /// Two more stages for a command on a field of a hash or a member of a set
    /// (`HSET key field …`, `SADD key member …`): once the key's entry is likely in
    /// the cache, the field's slot in the value's table; then the field's entry.
    /// Harmless when `key` holds neither or is absent.
    pub fn prefetch_field_slot(&self, key: &[u8], field: &[u8]) {
        match self.keys.home_value(key).map(|item| &item.value) {
            Some(Value::Hash(hash)) => hash.prefetch_slot(field),
            Some(Value::Set(set)) => set.prefetch_slot(field),
            _ => {}
        }
    }

    pub fn prefetch_field_entry(&self, key: &[u8], field: &[u8]) {
        match self.keys.home_value(key).map(|item| &item.value) {
            Some(Value::Hash(hash)) => hash.prefetch_entry(field),
            Some(Value::Set(set)) => set.prefetch_entry(field),
            _ => {}
        }
    }

    pub fn item_at(&self, index: usize) -> Option<&Item> {
        self.keys.get_index(index).map(|(_, item)| item)
    }

    /// Mutable access to the item at `index`: counts as a modification of its key.
    pub fn item_at_mut(&mut self, index: usize) -> Option<&mut Item> {
        let version = self.index as u32;
        let (key, item) = self.keys.get_index_mut(index)?;
        Db::note_touched(&mut self.touched, key);
        item.version = version;
        Some(item)
    }

    /// Replaces the value at `index` (the position of `key`), dropping its TTL unless
    /// `keep_ttl`. One lookup saved over [`Db::insert`] when the caller already found it.
    pub fn replace_at(&mut self, index: usize, key: &[u8], value: Value, keep_ttl: bool, now_ms: u64) {
        let version = self.index as u32;
        let Some((_, item)) = self.keys.get_index_mut(index) else { return };
        Db::note_touched(&mut self.touched, key);
        Db::note_stream(&mut self.stream_changes, key, &item.value);
        Db::note_stream(&mut self.stream_changes, key, &value);
        item.value = value;
        item.version = version;
        item.touch(now_ms, u32::MAX);
        if !keep_ttl && item.expire_at_ms != 0 {
            let at = std::mem::replace(&mut item.expire_at_ms, 0);
            self.expires.remove(&(at, index as u32));
        }
    }

    /// A decoded value (RESTORE, a snapshot's key) encoded by its content under this
    /// server's thresholds, as Redis encodes what it loads. (RENAME, COPY and MOVE
    /// keep a value's encoding, as in Redis.)
    pub fn fitted(&self, mut value: Value) -> Value {
        match &mut value {
            Value::Hash(hash) => hash.repack(self.hash_packing),
            Value::Set(set) => set.repack(self.set_packing),
            _ => {}
        }
        value
    }

    /// Inserts a key known to be absent; its position.
    pub fn insert_new(&mut self, key: &[u8], value: Value, now_ms: u64) -> usize {
        Db::note_touched(&mut self.touched, key);
        Db::note_stream(&mut self.stream_changes, key, &value);
        let pos = self.keys.insert_full(Key::from(key), self.new_item(value, now_ms)).0;
        self.slots.link(&self.keys, pos);
        pos
    }

    fn new_item(&self, value: Value, now_ms: u64) -> Item {
        Item { version: self.index as u32, ..Item::new(value, now_ms) }
    }

    /// Mutable access to a key's item, expired or not: counts as a modification of
    /// the key. Write paths call [`Db::remove_if_expired`] first.
    pub fn item_mut(&mut self, key: &[u8]) -> Option<&mut Item> {
        let version = self.index as u32;
        let item = self.keys.get_mut(key)?;
        Db::note_touched(&mut self.touched, key);
        item.version = version;
        Some(item)
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
        let version = self.index as u32;
        match self.keys.get_full_mut(key) {
            Some((pos, item)) => {
                Db::note_touched(&mut self.touched, key);
                Db::note_stream(&mut self.stream_changes, key, &item.value);
                Db::note_stream(&mut self.stream_changes, key, &value);
                item.value = value;
                item.version = version;
                if item.expire_at_ms != 0 {
                    let at = std::mem::replace(&mut item.expire_at_ms, 0);
                    self.expires.remove(&(at, pos as u32));
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
        let version = self.index as u32;
        match self.keys.get_mut(key) {
            Some(item) => {
                Db::note_touched(&mut self.touched, key);
                Db::note_stream(&mut self.stream_changes, key, &item.value);
                Db::note_stream(&mut self.stream_changes, key, &value);
                item.value = value;
                item.version = version;
            }
            None => {
                self.insert_new(key, value, now_ms);
            }
        }
    }

    /// Removes `key`; returns its item.
    pub fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let pos = self.keys.get_index_of(key)?;
        self.slots.unlink(&self.keys, pos);
        let last = self.keys.len() - 1;
        let (_, item) = self.keys.swap_remove_index(pos)?;
        if item.expire_at_ms != 0 {
            self.expires.remove(&(item.expire_at_ms, pos as u32));
        }
        if pos != last {
            self.slots.moved(&self.keys, last, pos);
            let moved_expiry = self.keys.get_index(pos).map_or(0, |(_, moved)| moved.expire_at_ms);
            if moved_expiry != 0 {
                self.expires.remove(&(moved_expiry, last as u32));
                self.expires.insert((moved_expiry, pos as u32));
            }
        }
        Db::note_stream(&mut self.stream_changes, key, &item.value);
        Db::note_touched(&mut self.touched, key);
        self.removed.removed(key, self.index);
        Some(item)
    }

    /// Sets an absolute expiry (ms) on an existing key; false if the key is absent.
    pub fn set_expire(&mut self, key: &[u8], at_ms: u64) -> bool {
        let version = self.index as u32;
        let Some((pos, item)) = self.keys.get_full_mut(key) else { return false };
        Db::note_touched(&mut self.touched, key);
        item.version = version;
        if item.expire_at_ms != 0 {
            self.expires.remove(&(item.expire_at_ms, pos as u32));
        }
        item.expire_at_ms = at_ms;
        if at_ms != 0 {
            self.expires.insert((at_ms, pos as u32));
        }
        true
    }

    /// Removes the TTL of `key`; true if it had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        let version = self.index as u32;
        match self.keys.get_full_mut(key) {
            Some((pos, item)) if item.expire_at_ms != 0 => {
                Db::note_touched(&mut self.touched, key);
                item.version = version;
                let at = std::mem::replace(&mut item.expire_at_ms, 0);
                self.expires.remove(&(at, pos as u32));
                true
            }
            _ => false,
        }
    }

    /// Keys whose expiry is at or before `now_ms`, oldest first (then by position),
    /// at most `max`.
    pub fn due_keys(&self, now_ms: u64, max: usize) -> Vec<Blob> {
        self.expires_iter().take_while(|(at, _)| *at <= now_ms).take(max).map(|(_, k)| Blob::from(k)).collect()
    }

    /// The volatile keys, nearest expiry first (volatile-ttl).
    pub fn expires_iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.expires.iter().filter_map(|(at, pos)| self.keys.get_index(*pos as usize).map(|(key, _)| (*at, &**key)))
    }

    /// Key and item at position `index` of the insertion order (SCAN, random picks).
    pub fn get_index(&self, index: usize) -> Option<(&[u8], &Item)> {
        self.keys.get_index(index).map(|(key, item)| (&**key, item))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Item)> {
        self.keys.iter().map(|(key, item)| (&**key, item))
    }

    /// How many keys hash to `slot`.
    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.slots.count(slot)
    }

    /// Up to `max` keys that hash to `slot`. The first call builds the per-slot
    /// lists, kept from then on (see `slots`).
    pub fn keys_in_slot(&mut self, slot: u16, max: usize) -> Vec<&[u8]> {
        if max == 0 || self.slots.count(slot) == 0 {
            return Vec::new();
        }
        self.slots.list(&self.keys);
        self.slots.keys(&self.keys, slot, max)
    }

    /// Checks the slot index against the keyspace (tests).
    pub fn check_slot_index(&self) -> Result<(), String> {
        self.slots.check(&self.keys)
    }

    /// Removes every key (each counts as removed now, for WATCH; a key that did not
    /// exist is not touched, as in Redis: a WATCH on it survives FLUSHALL).
    pub fn clear(&mut self) {
        self.clear_with(false)
    }

    /// FLUSHALL/FLUSHDB ASYNC: as [`Db::clear`], the old keyspace freed on the
    /// background thread ([`super::lazyfree`]).
    pub fn clear_async(&mut self) {
        self.clear_with(true)
    }

    fn clear_with(&mut self, lazy: bool) {
        for (key, item) in self.keys.iter() {
            Db::note_stream(&mut self.stream_changes, key, &item.value);
            self.removed.removed(key, self.index);
        }
        let keys = std::mem::take(&mut self.keys);
        let expires = std::mem::take(&mut self.expires);
        let slots = std::mem::take(&mut self.slots);
        if lazy && !keys.is_empty() {
            let count = keys.len() as u64;
            super::lazyfree::free_all(Box::new((keys, expires, slots)), count);
        }
        if let Some(t) = &mut self.touched {
            t.all = true;
        }
    }

    /// A copy of the replicated state (keys, values, expiry, versions, floors, index
    /// and time) for a snapshot.
    pub fn data_clone(&self) -> Db {
        Db {
            keys: self.keys.clone(),
            expires: self.expires.clone(),
            index: self.index,
            time_ms: self.time_ms,
            removed: self.removed.clone(),
            slots: self.slots.counts(),
            stream_limits: self.stream_limits,
            stream_changes: Vec::new(),
            scripts: self.scripts.clone(),
            acl: self.acl.clone(),
            once: self.once.clone(),
            prims: self.prims.clone(),
            messages: Vec::new(),
            touched: None,
            hash_packing: self.hash_packing,
            set_packing: self.set_packing,
            local_slots: self.local_slots.clone(),
        }
    }

    /// The pub/sub messages applying produced since the last call.
    pub fn take_messages(&mut self) -> Vec<(bytes::Bytes, bytes::Bytes)> {
        std::mem::take(&mut self.messages)
    }

    /// Replaces all state with `other`'s (a snapshot was installed).
    /// Recording for CLIENT TRACKING goes on, and says every key may have changed.
    pub fn replace_data(&mut self, other: Db) {
        let recording = self.touched.is_some();
        let packing = self.hash_packing;
        let set_packing = self.set_packing;
        let local_slots = self.local_slots.take();
        *self = other;
        self.local_slots = local_slots;
        if packing != self.hash_packing || set_packing != self.set_packing {
            // Loaded under the default thresholds: encoded again under this server's.
            self.hash_packing = packing;
            self.set_packing = set_packing;
            for index in 0..self.keys.len() {
                match self.keys.get_index_mut(index) {
                    Some((_, Item { value: Value::Hash(hash), .. })) => hash.repack(packing),
                    Some((_, Item { value: Value::Set(set), .. })) => set.repack(set_packing),
                    _ => {}
                }
            }
        }
        if recording {
            self.touched = Some(Touched { keys: Vec::new(), all: true });
        }
    }

    /// Inserts a key read from a snapshot with its expiry (0 = none) and version; the
    /// key comes in the keyspace's form with its hash slot (both made by a snapshot's
    /// reading thread, off the inserting one).
    pub fn load(&mut self, key: Key, slot: u16, value: Value, expire_at_ms: u64, version: u32, now_ms: u64) {
        let value = self.fitted(value);
        Db::note_touched(&mut self.touched, &key);
        Db::note_stream(&mut self.stream_changes, &key, &value);
        // One lookup per key (a restart loads millions): the item goes in whole.
        let item = Item { version, expire_at_ms, ..Item::new(value, now_ms) };
        let (position, old) = self.keys.insert_full(key, item);
        match old {
            None => self.slots.link_in(&self.keys, position, slot),
            // A key given twice: the later one wins, as a second SET would, in the
            // place (and the links among its slot's keys) of the first.
            Some(old) => {
                if old.expire_at_ms != 0 {
                    self.expires.remove(&(old.expire_at_ms, position as u32));
                }
            }
        }
        if expire_at_ms != 0 {
            self.expires.insert((expire_at_ms, position as u32));
        }
    }

    /// Starts loading what [`Db::load`] of `key` (in `slot`) will touch: the
    /// keyspace slot it goes in and, while the per-slot lists are kept, the item its
    /// slot's list links it to.
    pub fn prefetch_load(&self, key: &[u8], slot: u16) {
        self.keys.prefetch_slot(key);
        if let Some(head) = self.slots.head(slot) {
            self.keys.prefetch_position(head);
        }
    }

    // --- what the state machine's clock and WATCH need ---

    /// The log index of the entry being applied, or of the last one applied.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Starts applying the entry at `index` (or records that a non-data entry there
    /// was applied): modifications from now on carry it.
    pub fn set_index(&mut self, index: u64) {
        debug_assert!(index >= self.index, "log indexes only grow: {index} after {}", self.index);
        self.index = index;
    }

    /// The largest entry time applied.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// The time to apply an entry stamped `entry_ms` at: never below one already
    /// applied, whatever the clock of the active that stamped it said.
    pub fn advance_time(&mut self, entry_ms: u64) -> u64 {
        self.time_ms = self.time_ms.max(entry_ms);
        self.time_ms
    }

    pub fn removed_floors(&self) -> &RemovedFloors {
        &self.removed
    }

    /// Restores what a snapshot recorded besides the keys: the time and the floors.
    pub fn restore_state(&mut self, index: u64, time_ms: u64, removed: RemovedFloors) {
        self.index = index;
        self.time_ms = time_ms;
        self.removed = removed;
    }

    /// True if `key` was not modified, removed, or expired since `stamp` was taken
    /// (at `now_ms`, the time of the entry that asks).
    pub fn unchanged_since(&self, key: &[u8], stamp: WatchStamp, now_ms: u64) -> bool {
        let item = self.keys.get(key).map(|item| (item.version, item.expire_at_ms));
        watch::unchanged(item, self.removed.floor(key), stamp, self.index, now_ms)
    }

    /// True if `key` is absent, or was modified by an entry after `index`.
    pub fn modified_after(&self, key: &[u8], index: u64) -> bool {
        self.keys.get(key).is_none_or(|item| watch::modified_after(item.version, index, self.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.as_bytes().to_vec())
    }

    #[test]
    fn a_key_loaded_twice_keeps_one_place_the_later_value_and_ttl() {
        let mut db = Db::new();
        let mut load = |key: &[u8], value, expire_at_ms, version| {
            db.load(Key::from(key), crate::cluster::slot::key_slot(key), value, expire_at_ms, version, 0)
        };
        load(b"a", s("1"), 5000, 7);
        load(b"b", s("2"), 0, 8);
        load(b"a", s("3"), 0, 9);
        load(b"b", s("4"), 6000, 10);
        assert_eq!(db.len(), 2);
        assert_eq!(db.item(b"a").map(|i| (i.expire_at_ms, i.version())), Some((0, 9)));
        assert_eq!(db.item(b"b").map(|i| (i.expire_at_ms, i.version())), Some((6000, 10)));
        assert_eq!(db.due_keys(u64::MAX, 10), vec![Blob::from(&b"b"[..])]);
        db.check_slot_index().expect("the slot index lists each key once");
        let slot = crate::cluster::slot::key_slot(b"a");
        assert_eq!(db.count_in_slot(slot), 1);
        db.remove(b"a");
        assert_eq!(db.count_in_slot(slot), 0);
        db.check_slot_index().expect("the slot index after a removal");
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
            if step == 5_000 {
                // The lists start here, built from the keyspace as it is (only the
                // counts were kept before).
                db.check_slot_index().unwrap_or_else(|e| panic!("seed {seed}, counts alone: {e}"));
                assert!(!db.keys_in_slot(crate::cluster::slot::key_slot(b"t0"), 1).is_empty());
            }
            if step % 997 == 0 {
                db.check_slot_index().unwrap_or_else(|e| panic!("seed {seed}, step {step}: {e}"));
            }
        }
        db.check_slot_index().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let slot = crate::cluster::slot::key_slot(b"t3");
        let listed = db.keys_in_slot(slot, usize::MAX).len();
        assert_eq!(listed, db.count_in_slot(slot));
        let expected = db.iter().filter(|(k, _)| crate::cluster::slot::key_slot(k) == slot).count();
        assert_eq!(listed, expected);
        db.clear();
        assert_eq!(db.count_in_slot(slot), 0);
        db.check_slot_index().unwrap();
    }

    #[test]
    fn every_modification_and_removal_is_stamped_with_the_entry_index() {
        let mut db = Db::new();
        db.set_index(3);
        db.insert(b"k", s("v"), 0);
        db.insert(b"gone", s("v"), 0);
        let stamp = WatchStamp { index: 3, time_ms: 0 };
        assert!(db.unchanged_since(b"k", stamp, 0));
        assert!(db.unchanged_since(b"absent", stamp, 0));
        db.set_index(4);
        db.set_expire(b"k", 10_000);
        assert!(!db.unchanged_since(b"k", stamp, 0), "a new TTL is a modification");
        db.remove(b"gone");
        assert!(!db.unchanged_since(b"gone", stamp, 0), "a removal is a modification");
        let stamp = WatchStamp { index: 4, time_ms: 0 };
        db.set_index(5);
        let _ = db.item_mut(b"k");
        assert!(!db.unchanged_since(b"k", stamp, 0), "mutable access counts as a modification");
        let stamp = WatchStamp { index: 5, time_ms: 0 };
        db.set_index(6);
        db.clear();
        assert!(!db.unchanged_since(b"k", stamp, 0), "FLUSHALL removes every key");
        assert!(db.unchanged_since(b"never-there", stamp, 0), "FLUSHALL does not touch keys that did not exist (Redis)");
    }

    /// The expiry index names keys by position: every removal's swap moves a key, and
    /// a moved key with a TTL must be found at its new place. At random, against the
    /// items themselves: each pair names a key of that expiry, one pair per volatile
    /// key, and the due keys are the volatile keys in order of expiry.
    #[test]
    fn the_expiry_index_follows_keys_that_swap_removes_move() {
        use rand_core::{RngCore, SeedableRng};
        for seed in 0..4u64 {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut db = Db::new();
            for step in 0..20_000u32 {
                let key = format!("k{}", rng.next_u32() % 500);
                let at = u64::from(1 + rng.next_u32() % 50);
                match rng.next_u32() % 8 {
                    0 | 1 => {
                        db.remove(key.as_bytes());
                    }
                    2 => db.insert(key.as_bytes(), s("v"), 0),
                    3 => db.insert_keep_ttl(key.as_bytes(), s("w"), 0),
                    4 => {
                        db.persist(key.as_bytes());
                    }
                    5 => {
                        if let Some(index) = db.index_of(key.as_bytes()) {
                            db.replace_at(index, key.as_bytes(), s("x"), rng.next_u32() % 2 == 0, 0);
                        }
                    }
                    _ => {
                        if !db.set_expire(key.as_bytes(), at) {
                            db.insert(key.as_bytes(), s("v"), 0);
                            db.set_expire(key.as_bytes(), at);
                        }
                    }
                }
                if step % 500 == 0 || step == 19_999 {
                    let mut volatile: Vec<(u64, usize)> = (0..db.len())
                        .filter_map(|i| db.item_at(i).filter(|item| item.expire_at_ms != 0).map(|item| (item.expire_at_ms, i)))
                        .collect();
                    volatile.sort();
                    assert_eq!(db.expires_count(), volatile.len(), "seed {seed} step {step}");
                    let listed: Vec<(u64, Vec<u8>)> = db.expires_iter().map(|(at, key)| (at, key.to_vec())).collect();
                    let expected: Vec<(u64, Vec<u8>)> =
                        volatile.iter().map(|(at, i)| (*at, db.get_index(*i).map(|(k, _)| k.to_vec()).unwrap_or_default())).collect();
                    assert_eq!(listed, expected, "seed {seed} step {step}");
                    let due = db.due_keys(25, usize::MAX);
                    assert_eq!(due.len(), volatile.iter().filter(|(at, _)| *at <= 25).count());
                }
            }
        }
    }

    #[test]
    fn a_version_costs_no_memory_per_key() {
        // Value (24) + expiry (8) + access (4) = 36, padded to 40: the 32-bit
        // version fills the padding (a key's slot links live beside the keyspace).
        assert_eq!(std::mem::size_of::<Item>(), 40);
    }

    #[test]
    fn time_never_goes_back() {
        let mut db = Db::new();
        assert_eq!(db.advance_time(1_000), 1_000);
        assert_eq!(db.advance_time(400), 1_000);
        assert_eq!(db.time_ms(), 1_000);
    }
}
