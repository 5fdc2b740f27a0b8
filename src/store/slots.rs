//! The keys of each hash slot: a doubly linked list per slot, threaded through the
//! keyspace's items by position, so a slot's keys are counted in O(1) and listed
//! without a scan (CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT, and moving a slot to
//! another stripe). Eight bytes per key; every change of a key's position (insert,
//! swap-remove) is mirrored here in O(1).

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
    head: Vec<u32>,
    count: Vec<u32>,
}

impl Default for SlotIndex {
    fn default() -> Self {
        SlotIndex { head: vec![NIL; usize::from(SLOTS)], count: vec![0; usize::from(SLOTS)] }
    }
}

fn links(keys: &mut Keys, pos: u32) -> &mut SlotLinks {
    &mut keys.get_index_mut(pos as usize).expect("a linked position is in the keyspace").1.slot_links
}

impl SlotIndex {
    /// The index of `keys` as they are (after a snapshot is loaded wholesale).
    pub fn build(keys: &mut Keys) -> SlotIndex {
        let mut index = SlotIndex::default();
        for pos in 0..keys.len() {
            index.link(keys, pos);
        }
        index
    }

    pub fn count(&self, slot: u16) -> usize {
        self.count.get(usize::from(slot)).map_or(0, |c| *c as usize)
    }

    /// Up to `max` keys of `slot` (newest first).
    pub fn keys<'a>(&self, keys: &'a Keys, slot: u16, max: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut at = self.head.get(usize::from(slot)).copied().unwrap_or(NIL);
        while at != NIL && out.len() < max {
            let Some((key, item)) = keys.get_index(at as usize) else { break };
            out.push(&**key);
            at = item.slot_links.next;
        }
        out
    }

    /// The position of the key last linked into `slot`, if it has keys.
    pub fn head(&self, slot: u16) -> Option<usize> {
        self.head.get(usize::from(slot)).filter(|h| **h != NIL).map(|h| *h as usize)
    }

    /// Adds the key at `pos` (just inserted) to its slot's list.
    pub fn link(&mut self, keys: &mut Keys, pos: usize) {
        let Some((key, _)) = keys.get_index(pos) else { return };
        let slot = key_slot(key);
        self.link_in(keys, pos, slot)
    }

    /// [`SlotIndex::link`] of a key whose slot is known (`slot` must be its slot).
    pub fn link_in(&mut self, keys: &mut Keys, pos: usize, slot: u16) {
        debug_assert!(keys.get_index(pos).is_some_and(|(key, _)| key_slot(key) == slot));
        let slot = usize::from(slot);
        let pos = pos as u32;
        let old_head = self.head[slot];
        *links(keys, pos) = SlotLinks { prev: NIL, next: old_head };
        if old_head != NIL {
            links(keys, old_head).prev = pos;
        }
        self.head[slot] = pos;
        self.count[slot] += 1;
    }

    /// Takes the key at `pos` out of its slot's list, before it is swap-removed.
    pub fn unlink(&mut self, keys: &mut Keys, pos: usize) {
        let Some((key, item)) = keys.get_index(pos) else { return };
        let slot = usize::from(key_slot(key));
        let SlotLinks { prev, next } = item.slot_links;
        if prev != NIL {
            links(keys, prev).next = next;
        } else {
            self.head[slot] = next;
        }
        if next != NIL {
            links(keys, next).prev = prev;
        }
        self.count[slot] -= 1;
    }

    /// The item that was last moved to `to` by a swap-remove (it was at `from`):
    /// its neighbours, or its slot's head, point at its new position.
    pub fn moved(&mut self, keys: &mut Keys, from: usize, to: usize) {
        let Some((key, item)) = keys.get_index(to) else { return };
        let slot = usize::from(key_slot(key));
        let (from, to) = (from as u32, to as u32);
        let SlotLinks { prev, next } = item.slot_links;
        if prev != NIL {
            links(keys, prev).next = to;
        } else if self.head[slot] == from {
            self.head[slot] = to;
        }
        if next != NIL {
            links(keys, next).prev = to;
        }
    }

    /// Checks every list against the keyspace (tests and debug assertions).
    pub fn check(&self, keys: &Keys) -> Result<(), String> {
        let mut seen = 0usize;
        for slot in 0..SLOTS {
            let mut at = self.head[usize::from(slot)];
            let mut prev = NIL;
            let mut n = 0u32;
            while at != NIL {
                let (key, item) = keys.get_index(at as usize).ok_or(format!("slot {slot}: position {at} is past the keyspace"))?;
                if key_slot(key) != slot {
                    return Err(format!("slot {slot}: holds a key of slot {}", key_slot(key)));
                }
                if item.slot_links.prev != prev {
                    return Err(format!("slot {slot}: position {at} has a wrong back link"));
                }
                prev = at;
                at = item.slot_links.next;
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
