//! The keyspace's table: keys and items in one dense vector (their positions are
//! SCAN's cursor and the random picks of eviction, as before), found through an
//! open-addressing index of 4-byte slots, each holding the key's position and the
//! hash bits its home slot does not tell. A lookup reads one slot line, compares
//! hash bits there, and touches the entry whose bits match (in an index of 2^k
//! slots, 32 − k bits, so a stray match is rare): two memory reads where a map
//! with its index and entries apart (and a control-byte table in front) takes three
//! or four. A slot does not tell its home, so a growth and a removal's backward
//! shift hash again the keys they move. Removal is a swap-remove, as `IndexMap::swap_remove_index`: the last
//! entry takes the removed one's position.
//!
//! Linear probing with backward-shift deletion, so there are no tombstones and a
//! lookup of an absent key stops at the first empty slot. The index is kept at
//! most 3/4 full. Iteration follows the entries' order, which does not depend on
//! the hasher: every member iterates alike.

use std::hash::{BuildHasher, Hasher as _};

use super::value::Hasher;

/// A key of the keyspace: up to [`Key::INLINE_MAX`] bytes kept in place (no
/// allocation of its own, and compared where the entry already is), longer ones on
/// the heap. 24 bytes either way.
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; Key::INLINE_MAX] },
    Heap(Box<[u8]>),
}

impl Key {
    pub const INLINE_MAX: usize = 22;
}

impl From<&[u8]> for Key {
    fn from(key: &[u8]) -> Key {
        if key.len() <= Key::INLINE_MAX {
            let mut bytes = [0u8; Key::INLINE_MAX];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline { len: key.len() as u8, bytes }
        } else {
            Key::Heap(key.into())
        }
    }
}

impl From<Box<[u8]>> for Key {
    /// Keeps the allocation of a long key; copies a short one into place.
    fn from(key: Box<[u8]>) -> Key {
        if key.len() <= Key::INLINE_MAX {
            Key::from(&key[..])
        } else {
            Key::Heap(key)
        }
    }
}

impl From<Vec<u8>> for Key {
    fn from(key: Vec<u8>) -> Key {
        if key.len() <= Key::INLINE_MAX {
            Key::from(&key[..])
        } else {
            Key::Heap(key.into_boxed_slice())
        }
    }
}

impl From<Key> for Box<[u8]> {
    /// The key's bytes in an allocation of their own (a long key's is kept).
    fn from(key: Key) -> Box<[u8]> {
        match key {
            Key::Inline { len, bytes } => bytes[..usize::from(len)].into(),
            Key::Heap(b) => b,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl std::ops::Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// An empty slot.
const EMPTY: u32 = 0;

/// The most slots an index has: a slot's low bits hold a position, its high bits
/// the rest of the key's hash, in 32 bits.
const SLOTS_MAX: usize = 1 << 31;

/// The most entries a table holds: the index stays at most 3/4 full.
const ENTRIES_MAX: usize = SLOTS_MAX / 4 * 3;

/// An entry holds no hash of its key: the slot that points at it holds the hash's
/// high bits, and a growth or a removal hashes the keys it places again. Four bytes
/// of hash would pad the keyspace's entries from 64 to 72 bytes.
#[derive(Debug, Clone)]
struct Entry<K, V> {
    key: K,
    value: V,
}

#[derive(Debug, Clone)]
pub struct KeyTable<K, V> {
    entries: Vec<Entry<K, V>>,
    /// A power of two long, or empty. With `mask` = length − 1, a slot is
    /// `(hash & !mask) | (position + 1)`, or [`EMPTY`]: its low bits hold the position
    /// (the index has more slots than entries), its high bits are the key's hash bits
    /// that its home slot (`hash & mask`) does not tell. Half the size of a slot with
    /// the whole hash beside the position, whose 8 bytes a key paid twice over at
    /// 3/4 load or less.
    slots: Vec<u32>,
    hasher: Hasher,
}

impl<K, V> Default for KeyTable<K, V> {
    fn default() -> Self {
        KeyTable { entries: Vec::new(), slots: Vec::new(), hasher: Hasher::default() }
    }
}

/// The number of slots that keeps `entries` at most 3/4 of the index (at least 8).
fn slots_for(entries: usize) -> usize {
    (entries.min(ENTRIES_MAX).saturating_mul(4) / 3 + 1).next_power_of_two().clamp(8, SLOTS_MAX)
}

impl<K: std::borrow::Borrow<[u8]>, V> KeyTable<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key's bytes alone, without the length prefix `Hash for [u8]` adds: the
    /// hasher's `write` already mixes the length into its seed.
    fn hash(&self, key: &[u8]) -> u32 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(key);
        hasher.finish() as u32
    }

    fn mask(&self) -> u32 {
        (self.slots.len() as u32).wrapping_sub(1)
    }

    /// The slot that names `position` for a key whose hash is `hash`.
    fn slot_of(&self, hash: u32, position: usize) -> u32 {
        (hash & !self.mask()) | (position as u32 + 1)
    }

    fn slot_position(&self, slot: u32) -> usize {
        (slot & self.mask()) as usize - 1
    }

    /// Whether `slot` may name a key whose hash is `hash` (the bits it holds agree).
    fn slot_matches(&self, slot: u32, hash: u32) -> bool {
        slot != EMPTY && (slot ^ hash) & !self.mask() == 0
    }

    /// The slot holding `key`'s position, if it is in the table; with the hash.
    fn find(&self, key: &[u8]) -> (u32, Option<usize>) {
        let hash = self.hash(key);
        if self.slots.is_empty() {
            return (hash, None);
        }
        let mask = self.mask();
        let mut at = (hash & mask) as usize;
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                return (hash, None);
            }
            if (slot ^ hash) & !mask == 0 && self.entries[(slot & mask) as usize - 1].key.borrow() == key {
                return (hash, Some(at));
            }
            at = (at + 1) & mask as usize;
        }
    }

    /// Asks the processor to start loading the slot where `key` would be found, so
    /// that a lookup made a little later does not wait for memory (a batch of
    /// commands announces its keys ahead of running them).
    pub fn prefetch_slot(&self, key: &[u8]) {
        if let Some(slot) = self.slots.get((self.hash(key) & self.mask()) as usize) {
            prefetch_read(slot);
        }
    }

    /// Starts loading the entry at `position` (a write to it is coming).
    pub fn prefetch_position(&self, position: usize) {
        if let Some(entry) = self.entries.get(position) {
            prefetch_read(entry);
        }
    }

    /// The entry `key`'s home slot names, when that slot's hash bits are `key`'s:
    /// the entry a lookup of `key` most likely ends at.
    fn home_entry(&self, key: &[u8]) -> Option<&Entry<K, V>> {
        let hash = self.hash(key);
        let slot = *self.slots.get((hash & self.mask()) as usize)?;
        self.slot_matches(slot, hash).then(|| self.entries.get(self.slot_position(slot))).flatten()
    }

    /// The next stage, once the slot is (likely) in the cache: starts loading the
    /// entry it names.
    pub fn prefetch_entry(&self, key: &[u8]) {
        if let Some(entry) = self.home_entry(key) {
            prefetch_read(entry);
        }
    }

    /// The last stage, once the entry is (likely) in the cache: starts loading the
    /// bytes of its key (an allocation of its own when longer than [`Key::INLINE_MAX`]),
    /// so the comparison does not wait.
    pub fn prefetch_key(&self, key: &[u8]) {
        if let Some(first) = self.home_entry(key).and_then(|entry| entry.key.borrow().first()) {
            prefetch_read(first);
        }
    }

    /// The value of the entry `key`'s home slot names, its key not compared: for
    /// starting loads inside the value (a hint may be about another key's value).
    pub fn home_value(&self, key: &[u8]) -> Option<&V> {
        self.home_entry(key).map(|entry| &entry.value)
    }

    pub fn get_index_of(&self, key: &[u8]) -> Option<usize> {
        self.find(key).1.map(|at| self.slot_position(self.slots[at]))
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_index_of(key).map(|i| &self.entries[i].value)
    }

    /// The position of `key` and its value, to change.
    pub fn get_full_mut(&mut self, key: &[u8]) -> Option<(usize, &mut V)> {
        let i = self.get_index_of(key)?;
        Some((i, &mut self.entries[i].value))
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let i = self.get_index_of(key)?;
        Some(&mut self.entries[i].value)
    }

    pub fn get_index(&self, index: usize) -> Option<(&K, &V)> {
        self.entries.get(index).map(|e| (&e.key, &e.value))
    }

    pub fn get_index_mut(&mut self, index: usize) -> Option<(&K, &mut V)> {
        self.entries.get_mut(index).map(|e| (&e.key, &mut e.value))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|e| (&e.key, &e.value))
    }

    pub fn keys(&self) -> Keys<'_, K, V> {
        Keys(self.entries.iter())
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|e| &e.value)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.find(key).1.is_some()
    }

    /// An empty table with room for `items` before its first growth.
    pub fn with_capacity(items: usize) -> Self {
        let mut table = KeyTable::default();
        table.entries.reserve(items);
        if items > 0 {
            table.slots = vec![EMPTY; slots_for(items)];
        }
        table
    }

    /// Makes room for `additional` more entries, so that inserting them does not
    /// grow the index on the way (each growth places every entry again).
    pub fn reserve(&mut self, additional: usize) {
        let wanted = self.entries.len().saturating_add(additional);
        self.entries.reserve(additional);
        let size = slots_for(wanted);
        if size > self.slots.len() {
            self.resize(size);
        }
    }

    /// Inserts `key` with `value` unless an equal key is there (which keeps its value);
    /// true if inserted. Makes the key from its bytes only when it is new.
    pub fn insert_absent(&mut self, key: &[u8], value: V) -> bool
    where
        K: for<'k> From<&'k [u8]>,
    {
        let (hash, found) = self.find(key);
        if found.is_some() {
            return false;
        }
        self.push_new(hash, K::from(key), value);
        true
    }

    /// Bytes of the entries and the index, as allocated (what lives outside a key or
    /// value is not counted).
    pub fn table_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry<K, V>>() + self.slots.capacity() * std::mem::size_of::<u32>()
    }

    /// [`KeyTable::insert_full`] without the position.
    pub fn insert(&mut self, key: impl Into<K>, value: V) -> Option<V> {
        self.insert_full(key.into(), value).1
    }

    /// Removes `key`; the last entry takes its position.
    pub fn swap_remove(&mut self, key: &[u8]) -> Option<V> {
        let at = self.find(key).1?;
        let index = self.slot_position(self.slots[at]);
        Some(self.remove_slot(at, index).1)
    }

    /// Inserts `key`, or replaces the value of an equal key already there (keeping
    /// its position and its key); returns the position and the old value.
    pub fn insert_full(&mut self, key: K, value: V) -> (usize, Option<V>) {
        let (hash, found) = self.find(key.borrow());
        if let Some(at) = found {
            let i = self.slot_position(self.slots[at]);
            return (i, Some(std::mem::replace(&mut self.entries[i].value, value)));
        }
        (self.push_new(hash, key, value), None)
    }

    /// Appends a key that is not in the table, whose hash is `hash`; its position.
    fn push_new(&mut self, hash: u32, key: K, value: V) -> usize {
        assert!(self.entries.len() < ENTRIES_MAX, "a table holds at most {ENTRIES_MAX} keys");
        let position = self.entries.len();
        self.entries.push(Entry { key, value });
        if (position + 1) * 4 > self.slots.len() * 3 {
            // The new entry is placed with the others.
            self.resize((self.slots.len() * 2).max(8));
        } else {
            self.place(hash, position);
        }
        position
    }

    /// Puts the slot naming `position` in the first empty slot from its home on.
    fn place(&mut self, hash: u32, position: usize) {
        let mask = self.mask() as usize;
        let slot = self.slot_of(hash, position);
        let mut at = hash as usize & mask;
        while self.slots[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.slots[at] = slot;
    }

    /// A new index of `size` slots (a power of two, more than the entries), every
    /// entry placed again from its key's hash (a slot keeps only part of the hash).
    fn resize(&mut self, size: usize) {
        self.slots = vec![EMPTY; size];
        for position in 0..self.entries.len() {
            self.place(self.hash_at(position), position);
        }
    }

    /// The hash of the key at `position`.
    fn hash_at(&self, position: usize) -> u32 {
        self.hash(self.entries[position].key.borrow())
    }

    /// The slot that points at `position`, whose key's hash is `hash`.
    fn slot_pointing_at(&self, hash: u32, position: usize) -> usize {
        let mask = self.mask() as usize;
        let mut at = hash as usize & mask;
        let wanted = self.slot_of(hash, position);
        while self.slots[at] != wanted {
            debug_assert!(self.slots[at] != EMPTY, "every entry has a slot");
            at = (at + 1) & mask;
        }
        at
    }

    /// Empties slot `at` and shifts back the slots after it that may move closer to
    /// their home, so that no probe sequence has a hole. A slot's home comes from its
    /// key's hash.
    fn vacate(&mut self, mut at: usize) {
        let mask = self.mask() as usize;
        let mut next = (at + 1) & mask;
        loop {
            let slot = self.slots[next];
            if slot == EMPTY {
                break;
            }
            let home = self.hash_at(self.slot_position(slot)) as usize & mask;
            // Moves back unless its home lies cyclically in (at, next].
            let stays = if at <= next { at < home && home <= next } else { at < home || home <= next };
            if !stays {
                self.slots[at] = slot;
                at = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[at] = EMPTY;
    }

    /// Removes the entry at `index`; the last entry takes its position.
    pub fn swap_remove_index(&mut self, index: usize) -> Option<(K, V)> {
        if index >= self.entries.len() {
            return None;
        }
        let at = self.slot_pointing_at(self.hash_at(index), index);
        Some(self.remove_slot(at, index))
    }

    /// Removes the entry at `index`, whose slot is `at`; the last entry takes its
    /// position.
    fn remove_slot(&mut self, at: usize, index: usize) -> (K, V) {
        self.vacate(at);
        let last = self.entries.len() - 1;
        if index != last {
            let moved_hash = self.hash_at(last);
            let moved_at = self.slot_pointing_at(moved_hash, last);
            self.slots[moved_at] = self.slot_of(moved_hash, index);
        }
        let removed = self.entries.swap_remove(index);
        if self.entries.is_empty() {
            self.slots = Vec::new();
        }
        (removed.key, removed.value)
    }
}

/// Equal when both hold the same keys with equal values, in any order (as maps
/// compare; members that applied the same entries also agree on the order).
impl<K: std::borrow::Borrow<[u8]>, V: PartialEq> PartialEq for KeyTable<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k.borrow()) == Some(v))
    }
}

/// The keys of a table, in its order.
pub struct Keys<'a, K, V>(std::slice::Iter<'a, Entry<K, V>>);

impl<'a, K, V> Iterator for Keys<'a, K, V> {
    type Item = &'a K;

    fn next(&mut self) -> Option<&'a K> {
        self.0.next().map(|e| &e.key)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

#[inline(always)]
pub(crate) fn prefetch_read<T>(at: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((at as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use rand_core::{RngCore, SeedableRng};

    type Blob = Box<[u8]>;

    /// `reserve` places what is there again and leaves room: the reserved number of
    /// inserts never grows the index, and every key is still found.
    #[test]
    fn reserve_keeps_every_key_and_room_for_the_reserved() {
        let mut table: KeyTable<Blob, u64> = KeyTable::default();
        for i in 0..100u64 {
            table.insert(format!("k{i}").into_bytes().into_boxed_slice(), i);
        }
        table.reserve(10_000);
        let slots = table.slots.len();
        for i in 100..10_100u64 {
            table.insert(format!("k{i}").into_bytes().into_boxed_slice(), i);
        }
        assert_eq!(table.slots.len(), slots, "the reserved inserts grew the index");
        assert!((0..10_100u64).all(|i| table.get(format!("k{i}").as_bytes()) == Some(&i)));
        table.reserve(0);
        assert_eq!(table.slots.len(), slots, "reserving nothing more changes nothing");
    }

    /// Every operation the keyspace uses, at random, against IndexMap (the table this
    /// one replaced): the same positions, values and order after each step.
    #[test]
    fn behaves_as_an_index_map_with_swap_remove() {
        for seed in 0..20u64 {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut table: KeyTable<Blob, u64> = KeyTable::default();
            let mut model: IndexMap<Blob, u64> = IndexMap::new();
            // Few distinct keys for some seeds (many replacements and removals), many for others.
            let distinct = [8u64, 64, 1000, 20_000][seed as usize % 4];
            for step in 0..20_000u64 {
                let key: Blob = format!("k{}", rng.next_u64() % distinct).into_bytes().into();
                match rng.next_u64() % 10 {
                    0..=4 => assert_eq!(table.insert_full(key.clone(), step), model.insert_full(key, step), "seed {seed} step {step}"),
                    5..=6 => {
                        let at = model.get_index_of(&key);
                        assert_eq!(table.get_index_of(&key), at);
                        if let Some(i) = at {
                            assert_eq!(table.swap_remove_index(i), model.swap_remove_index(i));
                        }
                    }
                    7 if !model.is_empty() => {
                        let i = (rng.next_u64() % model.len() as u64) as usize;
                        assert_eq!(table.swap_remove_index(i), model.swap_remove_index(i));
                    }
                    _ => {
                        assert_eq!(table.get(&key), model.get(&key));
                        if let Some(v) = table.get_mut(&key) {
                            *v += 1;
                            *model.get_mut(&key).unwrap() += 1;
                        }
                    }
                }
                assert_eq!(table.len(), model.len());
            }
            let ours: Vec<_> = table.iter().collect();
            let theirs: Vec<_> = model.iter().collect();
            assert_eq!(ours, theirs, "seed {seed}: same entries in the same order");
            for (i, (k, _)) in model.iter().enumerate() {
                assert_eq!(table.get_index_of(k), Some(i));
            }
            assert_eq!(table.swap_remove_index(model.len()), None);
        }
    }

    /// What one key costs in the keyspace's entries: its key (inline up to 22 bytes)
    /// and its item, nothing beside them (the index adds a slot of 4 bytes).
    #[test]
    fn a_keyspace_entry_is_its_key_and_its_item() {
        assert_eq!(std::mem::size_of::<Entry<Key, crate::store::db::Item>>(), 64);
    }

    #[test]
    fn keys_up_to_22_bytes_stay_in_place_and_read_back_alike() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        for len in [0usize, 1, 21, 22, 23, 100] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let key = Key::from(&bytes[..]);
            assert_eq!(&*key, &bytes[..]);
            assert_eq!(matches!(key, Key::Inline { .. }), len <= Key::INLINE_MAX, "len {len}");
        }
        let mut table: KeyTable<Key, u8> = KeyTable::default();
        table.insert_full(Key::from(&b"short"[..]), 1);
        table.insert_full(Key::from(&[7u8; 40][..]), 2);
        assert_eq!(table.get(b"short"), Some(&1));
        assert_eq!(table.get(&[7u8; 40]), Some(&2));
        assert_eq!(table.get(b"shor"), None);
    }

    /// The map operations a hash's fields use (HSET/HDEL/HEXISTS, loading a snapshot,
    /// comparing replicas' values), against IndexMap at random, fields both inline and
    /// on the heap.
    #[test]
    fn serves_as_a_hash_of_fields() {
        for seed in 0..8u64 {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut table: KeyTable<Key, u64> = KeyTable::with_capacity((seed * 100) as usize);
            let mut model: IndexMap<Blob, u64> = IndexMap::new();
            for step in 0..5_000u64 {
                let n = rng.next_u64() % 300;
                let field: Vec<u8> = if n % 3 == 0 { format!("{n:>40}") } else { format!("f{n}") }.into_bytes();
                match rng.next_u64() % 4 {
                    0 | 1 => assert_eq!(table.insert(&field[..], step), model.insert(field.clone().into(), step)),
                    2 => assert_eq!(table.swap_remove(&field), model.swap_remove(&field[..])),
                    _ => assert_eq!(table.contains_key(&field), model.contains_key(&field[..])),
                }
            }
            let keys: Vec<&[u8]> = table.keys().map(|k| &**k).collect();
            let model_keys: Vec<&[u8]> = model.keys().map(|k| &**k).collect();
            assert_eq!(keys, model_keys, "seed {seed}");
            assert!(table.values().eq(model.values()));
            // Equal with the same fields in another order; unequal with one value changed.
            let mut reversed: KeyTable<Key, u64> = KeyTable::default();
            for (k, v) in table.iter().collect::<Vec<_>>().into_iter().rev() {
                reversed.insert(k.clone(), *v);
            }
            assert!(table == reversed);
            if let Some((k, _)) = table.get_index(0) {
                let k = k.clone();
                *reversed.get_mut(&k).unwrap() += 1;
                assert!(table != reversed);
            }
        }
        assert_eq!(Key::from(vec![1u8; 30]), Key::from(&[1u8; 30][..]));
        assert_eq!(Key::from(Box::<[u8]>::from(&b"ab"[..])), Key::from(&b"ab"[..]));
        assert!(matches!(Key::from(Box::<[u8]>::from(&b"ab"[..])), Key::Inline { .. }));
    }

    #[test]
    fn empties_and_refills() {
        let mut table: KeyTable<Blob, u32> = KeyTable::default();
        assert_eq!(table.get(b"a"), None);
        table.prefetch_slot(b"a");
        table.prefetch_entry(b"a");
        table.prefetch_key(b"a");
        for round in 0..3 {
            for i in 0..1000u32 {
                assert_eq!(table.insert_full(format!("{i}").into_bytes().into(), i + round).1, None);
            }
            while !table.is_empty() {
                table.swap_remove_index(0);
            }
            assert_eq!(table.get(b"5"), None);
        }
    }
}
