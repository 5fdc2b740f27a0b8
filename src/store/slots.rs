//! The keys of each hash slot: a count per slot, kept always, and once the keys of a
//! slot are first asked for (CLUSTER GETKEYSINSLOT; later, moving a slot to another
//! stripe), a doubly linked list per slot through the keyspace's positions, so a
//! slot's keys are listed without a scan. The lists cost eight bytes per key in a
//! vector beside the keyspace, paid only by a server that was asked: a key's
//! neighbours are not in its item (an item of 48 bytes where 40 do). Every change of a
//! key's position (insert, swap-remove) is mirrored here in O(1).

use super::db::Item;
use super::table::{Key, KeyTable};
use crate::cluster::slot::{key_slot, SLOTS};

/// "No item": the end of a list.
pub const NIL: u32 = u32::MAX;

/// An item's neighbours in its slot's list (positions in the keyspace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLinks {
    pub prev: u32,
    pub next: u32,
}

impl Default for SlotLinks {
    fn default() -> Self {
        SlotLinks { prev: NIL, next: NIL }
    }
}

type Keys = KeyTable<Key, Item>;

#[derive(Debug, Clone)]
pub struct SlotIndex {
    count: Vec<u32>,
    /// Each slot's newest key; empty while the lists are not kept.
    head: Vec<u32>,
    /// By keyspace position: the key's neighbours in its slot's list (while kept).
    links: Vec<SlotLinks>,
}

impl Default for SlotIndex {
    fn default() -> Self {
        SlotIndex { count: vec![0; usize::from(SLOTS)], head: Vec::new(), links: Vec::new() }
    }
}

impl SlotIndex {
    /// Whether the per-slot lists are kept (they are once asked for).
    pub fn listed(&self) -> bool {
        !self.head.is_empty()
    }

    /// The counts alone, the lists left out (a copy for a snapshot, which holds no
    /// positions).
    pub fn counts(&self) -> SlotIndex {
        SlotIndex { count: self.count.clone(), head: Vec::new(), links: Vec::new() }
    }

    /// Builds the lists of `keys` as they are and keeps them from now on: one pass
    /// over the keyspace, once.
    pub fn list(&mut self, keys: &Keys) {
        if self.listed() {
            return;
        }
        self.head = vec![NIL; usize::from(SLOTS)];
        self.links = Vec::with_capacity(keys.len());
        for (pos, (key, _)) in keys.iter().enumerate() {
            self.push_link(pos as u32, usize::from(key_slot(key)));
        }
    }

    /// Makes the key at `pos`, the last position, the head of `slot`'s list.
    fn push_link(&mut self, pos: u32, slot: usize) {
        let old_head = self.head[slot];
        self.links.push(SlotLinks { prev: NIL, next: old_head });
        if old_head != NIL {
            self.links[old_head as usize].prev = pos;
        }
        self.head[slot] = pos;
    }

    pub fn count(&self, slot: u16) -> usize {
        self.count.get(usize::from(slot)).map_or(0, |c| *c as usize)
    }

    /// Up to `max` keys of `slot` (newest first); none while the lists are not kept
    /// ([`SlotIndex::list`] first).
    pub fn keys<'a>(&self, keys: &'a Keys, slot: u16, max: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut at = self.head.get(usize::from(slot)).copied().unwrap_or(NIL);
        while at != NIL && out.len() < max {
            let Some((key, _)) = keys.get_index(at as usize) else { break };
            out.push(&**key);
            at = self.links[at as usize].next;
        }
        out
    }

    /// The position of the key last linked into `slot`, if it has keys and the lists
    /// are kept.
    pub fn head(&self, slot: u16) -> Option<usize> {
        self.head.get(usize::from(slot)).filter(|h| **h != NIL).map(|h| *h as usize)
    }

    /// Adds the key at `pos` (just inserted, the last position) to its slot.
    pub fn link(&mut self, keys: &Keys, pos: usize) {
        let Some((key, _)) = keys.get_index(pos) else { return };
        let slot = key_slot(key);
        self.link_in(keys, pos, slot)
    }

    /// [`SlotIndex::link`] of a key whose slot is known (`slot` must be its slot).
    pub fn link_in(&mut self, keys: &Keys, pos: usize, slot: u16) {
        debug_assert!(keys.get_index(pos).is_some_and(|(key, _)| key_slot(key) == slot));
        let slot = usize::from(slot);
        self.count[slot] += 1;
        if !self.listed() {
            return;
        }
        debug_assert_eq!(pos, self.links.len(), "a new key takes the last position");
        self.push_link(pos as u32, slot);
    }

    /// Takes the key at `pos` out of its slot, before it is swap-removed from `keys`
    /// (the lists' last position takes its place, as the keyspace's will).
    pub fn unlink(&mut self, keys: &Keys, pos: usize) {
        let Some((key, _)) = keys.get_index(pos) else { return };
        let slot = usize::from(key_slot(key));
        self.count[slot] -= 1;
        if !self.listed() {
            return;
        }
        let SlotLinks { prev, next } = self.links[pos];
        if prev != NIL {
            self.links[prev as usize].next = next;
        } else {
            self.head[slot] = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.links.swap_remove(pos);
    }

    /// The key that was last moved to `to` by a swap-remove (it was at `from`): its
    /// neighbours, or its slot's head, point at its new position.
    pub fn moved(&mut self, keys: &Keys, from: usize, to: usize) {
        if !self.listed() {
            return;
        }
        let Some((key, _)) = keys.get_index(to) else { return };
        let slot = usize::from(key_slot(key));
        let (from, to) = (from as u32, to as u32);
        let SlotLinks { prev, next } = self.links[to as usize];
        if prev != NIL {
            self.links[prev as usize].next = to;
        } else if self.head[slot] == from {
            self.head[slot] = to;
        }
        if next != NIL {
            self.links[next as usize].prev = to;
        }
    }

    /// Checks the counts, and every list while they are kept, against the keyspace
    /// (tests and debug assertions).
    pub fn check(&self, keys: &Keys) -> Result<(), String> {
        let mut counted = vec![0u32; usize::from(SLOTS)];
        for (key, _) in keys.iter() {
            counted[usize::from(key_slot(key))] += 1;
        }
        if let Some(slot) = (0..usize::from(SLOTS)).find(|s| counted[*s] != self.count[*s]) {
            return Err(format!("slot {slot}: counted {} but holds {}", self.count[slot], counted[slot]));
        }
        if !self.listed() {
            return Ok(());
        }
        if self.links.len() != keys.len() {
            return Err(format!("{} links for {} keys", self.links.len(), keys.len()));
        }
        let mut seen = 0usize;
        for slot in 0..SLOTS {
            let mut at = self.head[usize::from(slot)];
            let mut prev = NIL;
            let mut n = 0u32;
            while at != NIL {
                let (key, _) = keys.get_index(at as usize).ok_or(format!("slot {slot}: position {at} is past the keyspace"))?;
                if key_slot(key) != slot {
                    return Err(format!("slot {slot}: holds a key of slot {}", key_slot(key)));
                }
                if self.links[at as usize].prev != prev {
                    return Err(format!("slot {slot}: position {at} has a wrong back link"));
                }
                prev = at;
                at = self.links[at as usize].next;
                n += 1;
                if n as usize > keys.len() {
                    return Err(format!("slot {slot}: the list loops"));
                }
            }
            if n != self.count[usize::from(slot)] {
                return Err(format!("slot {slot}: counted {} but lists {n}", self.count[usize::from(slot)]));
            }
            seen += n as usize;
        }
        if seen != keys.len() {
            return Err(format!("the lists hold {seen} keys, the keyspace {}", keys.len()));
        }
        Ok(())
    }
}
