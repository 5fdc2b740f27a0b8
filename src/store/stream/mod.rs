//! The stream value: entries in ID order, packed into nodes (see [`node`]), the
//! stream's counters (last ID, entries ever added, the largest deleted ID) and its
//! consumer groups. What Redis's `stream` struct holds, with the same rules for
//! when nodes start and which an approximate trim removes, so that `~` trims and
//! `XINFO STREAM` agree with Redis.
//!
//! This module knows nothing of commands, replies or time: callers pass the
//! entry's time and the node limits, so applying the same commands gives the same
//! stream on every replica.

pub mod codec;
pub mod group;
pub mod id;
pub mod node;

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::store::value::Blob;
pub use group::{Consumer, ConsumerGroup, Pending};
pub use id::StreamId;
pub use node::{Fields, NodeLimits, NODE_BYTES_MAX};
use node::{Node, RawEntry};

/// How to trim: to a length, or below an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimTo {
    MaxLen(u64),
    MinId(StreamId),
}

/// A trim request (XTRIM, or XADD's MAXLEN/MINID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    pub to: TrimTo,
    /// `~`: remove whole nodes only.
    pub approx: bool,
    /// Most entries to remove; 0 = no limit.
    pub limit: u64,
}

/// Why an entry cannot be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("the ID is equal or smaller than the stream's last ID")]
    NotGreater,
    #[error("the entry's fields and values are too large for a node")]
    TooLarge,
}

/// The ID an XADD asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewId {
    /// `*`: from the entry's time.
    Auto,
    /// `<ms>-*`: the given time, the next free sequence.
    Ms(u64),
    /// `<ms>-<seq>`.
    Exact(StreamId),
}

/// One live entry.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub id: StreamId,
    pub fields: Fields<'a>,
}

/// A stream: its entries and its consumer groups, apart so that a group can change
/// while the entries are read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    pub entries: Entries,
    pub groups: BTreeMap<Blob, ConsumerGroup>,
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Bytes on the heap (MEMORY USAGE): nodes, groups, consumers, pending entries.
    pub fn memory_estimate(&self) -> usize {
        const GROUP_BYTES: usize = 96;
        const CONSUMER_BYTES: usize = 64;
        // One slot in the group's PEL and one in the consumer's.
        const PENDING_BYTES: usize = 80;
        let groups: usize = self
            .groups
            .iter()
            .map(|(name, g)| {
                let consumers: usize = g.consumers.keys().map(|c| c.len() + CONSUMER_BYTES).sum();
                let pending: usize = g.pending.values().map(|p| p.consumer.len() + PENDING_BYTES).sum();
                name.len() + GROUP_BYTES + consumers + pending
            })
            .sum();
        std::mem::size_of::<Stream>() + self.entries.heap_bytes() + groups
    }
}

/// The entries of a stream and its counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entries {
    /// Nodes by the ID of their first entry.
    nodes: BTreeMap<StreamId, Node>,
    /// Live entries.
    length: u64,
    last_id: StreamId,
    /// The first live entry's ID when the stream was last changed at its head
    /// (Redis's `first_id`, "recorded-first-entry-id").
    first_id: StreamId,
    max_deleted_id: StreamId,
    entries_added: u64,
}

impl Entries {
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    pub fn first_id(&self) -> StreamId {
        self.first_id
    }

    pub fn max_deleted_id(&self) -> StreamId {
        self.max_deleted_id
    }

    pub fn entries_added(&self) -> u64 {
        self.entries_added
    }

    /// Number of nodes (XINFO's `radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Nodes with their first IDs, in order (snapshots, digests).
    pub fn nodes(&self) -> impl Iterator<Item = (StreamId, u64, u64, &[u8])> {
        self.nodes.iter().map(|(id, n)| (*id, n.live(), n.deleted(), n.data()))
    }

    /// Bytes on the heap for the nodes.
    pub fn heap_bytes(&self) -> usize {
        // A B-tree slot per node with its share of the tree's overhead.
        const NODE_SLOT_BYTES: usize = 64;
        self.nodes.values().map(|n| n.heap_bytes() + NODE_SLOT_BYTES).sum()
    }

    /// Resolves the ID an XADD asked for, without adding anything.
    pub fn next_id(&self, wanted: NewId, now_ms: u64) -> Result<StreamId, AppendError> {
        let id = match wanted {
            NewId::Auto => StreamId::auto_after(self.last_id, now_ms).ok_or(AppendError::NotGreater)?,
            // The same millisecond: the next sequence, which must not carry over.
            NewId::Ms(ms) if ms == self.last_id.ms => StreamId::new(ms, self.last_id.seq.checked_add(1).ok_or(AppendError::NotGreater)?),
            NewId::Ms(ms) => StreamId::new(ms, 0),
            NewId::Exact(id) => id,
        };
        if id <= self.last_id {
            return Err(AppendError::NotGreater);
        }
        Ok(id)
    }

    /// Adds an entry with `pairs` (field, value, …; an even, non-zero number).
    pub fn append(&mut self, wanted: NewId, pairs: &[Bytes], now_ms: u64, limits: &NodeLimits) -> Result<StreamId, AppendError> {
        let id = self.next_id(wanted, now_ms)?;
        let entry_bytes = pairs.iter().try_fold(0usize, |sum, p| sum.checked_add(p.len())).unwrap_or(usize::MAX);
        if entry_bytes > NODE_BYTES_MAX {
            return Err(AppendError::TooLarge);
        }
        match self.nodes.last_entry() {
            Some(mut tail) if tail.get().has_room(entry_bytes, limits) => {
                let master = *tail.key();
                tail.get_mut().append(master, id, pairs);
            }
            tail => {
                if let Some(mut tail) = tail {
                    tail.get_mut().seal();
                }
                self.nodes.insert(id, Node::new(id, pairs));
            }
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    /// Live entries from `start` to `end` inclusive, in ID order.
    pub fn range(&self, start: StreamId, end: StreamId) -> Range<'_> {
        // As Redis's iterator seeks: the last node whose first ID is at or below
        // `start`, else the first node; then on until a live entry passes `end` (a
        // node's entries may lie below its first ID once that one is deleted and
        // XSETID lowered the last ID, so no node is skipped by its key alone).
        let nodes = match self.nodes.range(..=start).next_back().or_else(|| self.nodes.first_key_value()) {
            Some((from, _)) if start <= end => self.nodes.range(*from..),
            _ => self.nodes.range(StreamId::MAX..StreamId::MAX),
        };
        Range { nodes, current: None, start, end, done: false }
    }

    /// Live entries from `end` down to `start` inclusive.
    pub fn range_rev(&self, start: StreamId, end: StreamId) -> RangeRev<'_> {
        // Redis's seek backwards: the last node whose first ID is at or below `end`,
        // else the last node.
        let nodes = match self.nodes.range(..=end).next_back().or_else(|| self.nodes.last_key_value()) {
            Some((from, _)) if start <= end => self.nodes.range(..=*from),
            _ => self.nodes.range(StreamId::MAX..StreamId::MAX),
        };
        RangeRev { nodes: nodes.rev(), current: None, start, end, done: false }
    }

    /// The live entry `id`.
    pub fn get(&self, id: StreamId) -> Option<Entry<'_>> {
        self.range(id, id).next()
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// The first and last live IDs.
    pub fn first_live_id(&self) -> Option<StreamId> {
        self.range(StreamId::MIN, StreamId::MAX).next().map(|e| e.id)
    }

    pub fn last_live_id(&self) -> Option<StreamId> {
        self.range_rev(StreamId::MIN, StreamId::MAX).next().map(|e| e.id)
    }

    /// The live entry `id`, as stored, with its node's first ID.
    fn locate(&self, id: StreamId) -> Option<(StreamId, RawEntry<'_>)> {
        // As `range(id, id)`: tombstones and entries below `id` are passed over, and
        // the first live entry at or past it decides.
        let (from, _) = self.nodes.range(..=id).next_back().or_else(|| self.nodes.first_key_value())?;
        for (master, node) in self.nodes.range(*from..) {
            for entry in node.entries(*master) {
                if entry.deleted || entry.id < id {
                    continue;
                }
                return (entry.id == id).then_some((*master, entry));
            }
        }
        None
    }

    /// Deletes the live entry `id` (XDEL); false if there is none. The node goes
    /// when its last live entry does.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((master, at)) = self.locate(id).map(|(m, e)| (m, e.at)) else {
            return false;
        };
        let Some(node) = self.nodes.get_mut(&master) else { return false };
        if node.live() == 1 {
            self.nodes.remove(&master);
        } else {
            node.mark_deleted(at);
        }
        self.length -= 1;
        if id > self.max_deleted_id {
            self.max_deleted_id = id;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if id == self.first_id {
            self.first_id = self.first_live_id().unwrap_or_default();
        }
        true
    }

    /// Trims from the head (Redis's streamTrim); the number of entries removed.
    pub fn trim(&mut self, trim: &Trim) -> u64 {
        let mut removed = 0u64;
        while let Some(mut first) = self.nodes.first_entry() {
            if matches!(trim.to, TrimTo::MaxLen(max) if self.length <= max) {
                break;
            }
            let master = *first.key();
            let live = first.get().live();
            if trim.limit != 0 && removed.saturating_add(live) > trim.limit {
                break;
            }
            let whole = match trim.to {
                TrimTo::MaxLen(max) => self.length - live >= max,
                TrimTo::MinId(min) => first.get().last_id(master) < min,
            };
            if whole {
                first.remove();
                self.length -= live;
                removed += live;
                continue;
            }
            if trim.approx {
                break;
            }
            let node = first.get_mut();
            let doomed: Vec<(usize, StreamId, bool)> = node.entries(master).map(|e| (e.at, e.id, e.deleted)).collect();
            for (at, id, deleted) in doomed {
                let stop = match trim.to {
                    TrimTo::MaxLen(max) => self.length <= max,
                    TrimTo::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                if !deleted {
                    node.mark_deleted(at);
                    self.length -= 1;
                    removed += 1;
                }
            }
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if removed > 0 {
            self.first_id = self.first_live_id().unwrap_or_default();
        }
        removed
    }

    /// XSETID: sets the last ID and, when given, the counters. The caller checks
    /// the ID against the stream's entries.
    pub fn set_ids(&mut self, last_id: StreamId, entries_added: Option<u64>, max_deleted_id: Option<StreamId>) {
        self.last_id = last_id;
        if let Some(n) = entries_added {
            self.entries_added = n;
        }
        if let Some(id) = max_deleted_id.filter(|id| !id.is_zero()) {
            self.max_deleted_id = id;
        }
    }

    /// Whether a tombstone may lie between `start` and `end` (Redis's
    /// streamRangeHasTombstones, which knows only the largest deleted ID).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() || self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// How many entries were ever added up to `id`, when that can be known (Redis's
    /// streamEstimateDistanceFromFirstEverEntry).
    pub fn entries_read_at(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.length),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.length + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// A group's lag: entries not yet delivered to it, when that can be known. It
    /// can be negative, as in Redis, after XSETID lowered the entries-added count.
    pub fn lag(&self, group: &ConsumerGroup) -> Option<i64> {
        let lag = |read: u64| (i128::from(self.entries_added) - i128::from(read)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        if self.entries_added == 0 {
            return Some(0);
        }
        if let Some(read) = group.entries_read {
            if !self.range_has_tombstones(group.last_id, StreamId::MAX) {
                return Some(lag(read));
            }
        }
        self.entries_read_at(group.last_id).map(lag)
    }

    /// Advances `group` past `id` as a delivery does, keeping its read counter
    /// when it can be kept (Redis's streamReplyWithRange with a group).
    pub fn advance_group(&self, group: &mut ConsumerGroup, id: StreamId) {
        if id <= group.last_id {
            return;
        }
        if group.entries_read.is_some() && !self.range_has_tombstones(id, StreamId::MAX) {
            group.entries_read = group.entries_read.map(|n| n + 1);
        } else if self.entries_added != 0 {
            group.entries_read = self.entries_read_at(id);
        }
        group.last_id = id;
    }

    /// The nodes, giving the entries up (to rebuild them with other counters).
    pub(crate) fn into_nodes(self) -> BTreeMap<StreamId, Node> {
        self.nodes
    }

    /// Rebuilds entries from decoded parts; [`codec`] checks them first.
    pub(crate) fn from_parts(nodes: BTreeMap<StreamId, Node>, meta: [StreamId; 3], counts: [u64; 2]) -> Entries {
        let [last_id, first_id, max_deleted_id] = meta;
        let [length, entries_added] = counts;
        Entries { nodes, length, last_id, first_id, max_deleted_id, entries_added }
    }
}

/// Forward iterator over live entries (see [`Stream::range`]).
pub struct Range<'a> {
    nodes: std::collections::btree_map::Range<'a, StreamId, Node>,
    current: Option<node::NodeEntries<'a>>,
    start: StreamId,
    end: StreamId,
    /// Past `end`: nothing more to return.
    done: bool,
}

impl<'a> Iterator for Range<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        while !self.done {
            if let Some(entries) = &mut self.current {
                // As Redis's iterator: tombstones and entries before `start` are
                // passed over before the end is checked, for a tombstone may be
                // greater than the live entries after it.
                for raw in entries.by_ref() {
                    if raw.deleted || raw.id < self.start {
                        continue;
                    }
                    if raw.id > self.end {
                        self.done = true;
                        return None;
                    }
                    return Some(Entry { id: raw.id, fields: raw.fields });
                }
            }
            let (master, node) = self.nodes.next()?;
            self.current = Some(node.entries(*master));
        }
        None
    }
}

/// Backward iterator over live entries (see [`Stream::range_rev`]).
pub struct RangeRev<'a> {
    nodes: std::iter::Rev<std::collections::btree_map::Range<'a, StreamId, Node>>,
    /// The node being walked, its first ID and the offsets still to visit.
    current: Option<(&'a Node, StreamId, Vec<usize>)>,
    start: StreamId,
    end: StreamId,
    /// Past `start`: nothing more to return.
    done: bool,
}

impl<'a> Iterator for RangeRev<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        while !self.done {
            if let Some((node, master, offsets)) = &mut self.current {
                while let Some(at) = offsets.pop() {
                    let Some(raw) = node.entry_at(*master, at) else { continue };
                    if raw.deleted || raw.id > self.end {
                        continue;
                    }
                    if raw.id < self.start {
                        self.done = true;
                        return None;
                    }
                    return Some(Entry { id: raw.id, fields: raw.fields });
                }
            }
            let (master, node) = self.nodes.next()?;
            self.current = Some((node, *master, node.offsets(*master)));
        }
        None
    }
}
