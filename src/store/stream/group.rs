//! Consumer groups: where a group has read up to, the entries it delivered and not
//! yet acknowledged (the pending entries list, PEL), and its consumers.
//!
//! Delivery times are state: they come from the log entry's time (`WriteCtx.now_ms`)
//! so every replica records the same ones. Idle times are computed from them at the
//! reader's time (XPENDING, XINFO).
//!
//! Groups, consumers and PELs are ordered maps, as Redis's radix trees: replies list
//! them in name and ID order.

use std::collections::{BTreeMap, BTreeSet};

use super::id::StreamId;
use crate::store::value::Blob;

/// One delivered, unacknowledged entry (Redis's streamNACK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// When it was last delivered (ms since the epoch, from the entry's time).
    pub delivery_time_ms: u64,
    pub delivery_count: u64,
    /// The consumer that owns it.
    pub consumer: Blob,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// When it last read or claimed (ms since the epoch, from the entry's time).
    pub seen_time_ms: u64,
    /// The IDs it owns in the group's PEL.
    pub pending: BTreeSet<StreamId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// The last ID delivered to any consumer (`>` reads after it).
    pub last_id: StreamId,
    /// How many entries of the stream the group has read, when known.
    pub entries_read: Option<u64>,
    pub pending: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Blob, Consumer>,
}

impl ConsumerGroup {
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> ConsumerGroup {
        ConsumerGroup { last_id, entries_read, pending: BTreeMap::new(), consumers: BTreeMap::new() }
    }

    /// The consumer `name`, created (seen now) if absent; true if it was created.
    /// An existing one is marked seen now, as Redis's streamLookupConsumer does.
    pub fn consumer(&mut self, name: &[u8], now_ms: u64) -> (&mut Consumer, bool) {
        let mut created = false;
        let consumer = self.consumers.entry(Blob::from(name)).or_insert_with(|| {
            created = true;
            Consumer { seen_time_ms: now_ms, pending: BTreeSet::new() }
        });
        consumer.seen_time_ms = now_ms;
        (consumer, created)
    }

    /// Creates the consumer `name` (seen now) unless it exists; true if it did.
    /// An existing consumer is left as it is (XGROUP CREATECONSUMER).
    pub fn create_consumer(&mut self, name: &[u8], now_ms: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(Blob::from(name), Consumer { seen_time_ms: now_ms, pending: BTreeSet::new() });
        true
    }

    /// Records `id` as delivered now to `consumer` (which must exist): a new pending
    /// entry, or one taken over from whoever had it with its count reset to 1.
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now_ms: u64) {
        let pending = Pending { delivery_time_ms: now_ms, delivery_count: 1, consumer: Blob::from(consumer) };
        if let Some(old) = self.pending.insert(id, pending) {
            if let Some(owner) = self.consumers.get_mut(&old.consumer) {
                owner.pending.remove(&id);
            }
        }
        if let Some(owner) = self.consumers.get_mut(consumer) {
            owner.pending.insert(id);
        }
    }

    /// Removes `id` from the PEL and its owner's; true if it was pending.
    pub fn acknowledge(&mut self, id: StreamId) -> bool {
        let Some(old) = self.pending.remove(&id) else { return false };
        if let Some(owner) = self.consumers.get_mut(&old.consumer) {
            owner.pending.remove(&id);
        }
        true
    }

    /// Gives the pending `id` to `consumer` (which must exist), keeping its count.
    pub fn reassign(&mut self, id: StreamId, consumer: &[u8]) {
        let Some(entry) = self.pending.get_mut(&id) else { return };
        if *entry.consumer == *consumer {
            return;
        }
        let old = std::mem::replace(&mut entry.consumer, Blob::from(consumer));
        if let Some(owner) = self.consumers.get_mut(&old) {
            owner.pending.remove(&id);
        }
        if let Some(owner) = self.consumers.get_mut(consumer) {
            owner.pending.insert(id);
        }
    }

    /// Deletes a consumer and its pending entries; how many it had.
    pub fn remove_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pending {
            self.pending.remove(id);
        }
        Some(consumer.pending.len())
    }

    /// Checks what a decoder cannot see entry by entry: every pending entry belongs
    /// to an existing consumer that lists it, and consumers list nothing else.
    pub fn check_consistency(&self) -> Result<(), String> {
        for (id, entry) in &self.pending {
            let listed = self.consumers.get(&entry.consumer).is_some_and(|c| c.pending.contains(id));
            if !listed {
                return Err(format!("pending entry {id} names a consumer that does not list it"));
            }
        }
        let listed: usize = self.consumers.values().map(|c| c.pending.len()).sum();
        if listed != self.pending.len() {
            return Err(format!("consumers list {listed} pending entries, the group {}", self.pending.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_moves_ownership_and_ack_clears_both_lists() {
        let mut group = ConsumerGroup::new(StreamId::MIN, Some(0));
        group.consumer(b"a", 10);
        group.consumer(b"b", 10);
        let id = StreamId::new(1, 0);
        group.deliver(id, b"a", 20);
        group.deliver(id, b"b", 30);
        assert!(group.consumers[&Blob::from(&b"a"[..])].pending.is_empty());
        assert_eq!(group.pending[&id].consumer, Blob::from(&b"b"[..]));
        assert!(group.check_consistency().is_ok());
        assert!(group.acknowledge(id));
        assert!(!group.acknowledge(id));
        assert!(group.consumers[&Blob::from(&b"b"[..])].pending.is_empty());
    }

    #[test]
    fn removing_a_consumer_drops_its_pending_entries() {
        let mut group = ConsumerGroup::new(StreamId::MIN, None);
        group.consumer(b"a", 1);
        group.deliver(StreamId::new(1, 0), b"a", 1);
        group.deliver(StreamId::new(2, 0), b"a", 1);
        assert_eq!(group.remove_consumer(b"a"), Some(2));
        assert!(group.pending.is_empty());
        assert_eq!(group.remove_consumer(b"a"), None);
    }
}
