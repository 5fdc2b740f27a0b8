//! One node of a stream: a run of consecutive entries packed into one byte buffer,
//! as Redis packs them into a listpack under one radix-tree key. Packing is what
//! keeps an entry small: no allocation per entry or per field, IDs stored as
//! deltas from the node's first ID, and field names omitted when they repeat the
//! node's first entry (the common case: every entry of a queue has the same fields).
//!
//! ```text
//! data   = header entry*
//! header = nfields (len field)*                   the "master" fields: the first entry's
//! entry  = flags:u8 ms_delta seq                  flags: 1 deleted, 2 same fields as master
//!          [nfields (len field len value)*]       when not "same fields"
//!          [(len value)*]                         when "same fields"
//! ```
//! Every number is an unsigned LEB128 varint. A deleted entry stays in place with
//! its flag set (a tombstone) until the whole node goes, as in Redis: how many
//! entries a node holds, dead or alive, decides when the next node starts and which
//! nodes an approximate trim removes, so the layout is part of the state every
//! replica must agree on — snapshots carry it byte for byte.
//!
//! The bytes are built only here, and [`Node::from_parts`] checks every byte of a
//! node read from a snapshot or a RESTORE payload before accepting it; readers still
//! never index blindly, so even a bug cannot make them panic.

use super::id::StreamId;
use crate::store::codec::{put_bytes, put_varint};

const FLAG_DELETED: u8 = 1;
const FLAG_SAME_FIELDS: u8 = 2;
const FLAGS_KNOWN: u8 = FLAG_DELETED | FLAG_SAME_FIELDS;

/// Largest node, whatever `stream-node-max-bytes` says (Redis's
/// STREAM_LISTPACK_MAX_SIZE); also the most field and value bytes one entry may hold.
pub const NODE_BYTES_MAX: usize = 1 << 30;

/// When a new node starts (Redis's `stream-node-max-entries` / `-bytes`). They are
/// part of the replicated state: changing them is a log entry, so every replica
/// cuts its nodes at the same entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    /// Entries (live and deleted) per node; 0 = no limit.
    pub max_entries: u64,
    /// Bytes per node; 0 = [`NODE_BYTES_MAX`].
    pub max_bytes: u64,
}

impl Default for NodeLimits {
    /// Redis's defaults.
    fn default() -> NodeLimits {
        NodeLimits { max_entries: 100, max_bytes: 4096 }
    }
}

impl NodeLimits {
    fn bytes_cap(&self) -> usize {
        match usize::try_from(self.max_bytes) {
            Ok(0) | Err(_) => NODE_BYTES_MAX,
            Ok(n) => n.min(NODE_BYTES_MAX),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Entries not deleted.
    live: u64,
    /// Tombstones still in `data`.
    deleted: u64,
    data: Vec<u8>,
}

/// Reads a varint at `*pos`, advancing it; `None` past the end or on more than 64 bits.
fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        n |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Reads a length-prefixed byte string at `*pos`, advancing it.
fn bytes<'a>(data: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(data, pos)?).ok()?;
    let end = pos.checked_add(len)?;
    let slice = data.get(*pos..end)?;
    *pos = end;
    Some(slice)
}

/// One entry as stored, dead or alive.
#[derive(Debug, Clone)]
pub struct RawEntry<'a> {
    pub id: StreamId,
    pub deleted: bool,
    /// Offset of the flags byte within the node.
    pub at: usize,
    pub fields: Fields<'a>,
}

/// An entry's field-value pairs, in the order they were added.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
    left: usize,
    /// Where the next master field name is read, for a "same fields" entry.
    master: Option<usize>,
}

impl<'a> Fields<'a> {
    /// Number of pairs still to come.
    pub fn len(&self) -> usize {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let field = match &mut self.master {
            Some(at) => bytes(self.data, at)?,
            None => bytes(self.data, &mut self.pos)?,
        };
        let value = bytes(self.data, &mut self.pos)?;
        Some((field, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

impl Node {
    /// A node whose first entry is `id` with `pairs` (field, value, field, value…).
    pub fn new(id: StreamId, pairs: &[bytes::Bytes]) -> Node {
        let fields = pairs.len() / 2;
        let mut data = Vec::with_capacity(16 + pairs.iter().map(|p| p.len() + 1).sum::<usize>() * 2);
        put_varint(&mut data, fields as u64);
        for field in pairs.iter().step_by(2) {
            put_bytes(&mut data, field);
        }
        let mut node = Node { live: 0, deleted: 0, data };
        node.push_entry(id, id, pairs, true);
        node
    }

    /// A node read back from a snapshot or DUMP payload, checked entry by entry:
    /// `master` is its first entry's ID, `live` and `deleted` its counts.
    pub fn from_parts(master: StreamId, live: u64, deleted: u64, data: Vec<u8>) -> Result<Node, String> {
        let node = Node { live, deleted, data };
        node.validate(master)?;
        Ok(node)
    }

    fn validate(&self, master: StreamId) -> Result<(), String> {
        let mut pos = 0;
        let master_fields = varint(&self.data, &mut pos).ok_or("no master field count")?;
        for _ in 0..master_fields {
            bytes(&self.data, &mut pos).ok_or("a master field is cut short")?;
        }
        // Every entry was added after every entry then live, so it is greater than
        // each live entry before it; a tombstone may be greater than entries after
        // it, even the node's first (XSETID may lower the last ID below deleted
        // entries, as in Redis), and an ID may repeat a tombstone's.
        let (mut live, mut deleted, mut previous, mut live_before) = (0u64, 0u64, None::<StreamId>, None::<StreamId>);
        while pos < self.data.len() {
            let flags = *self.data.get(pos).ok_or("cut short")?;
            if flags & !FLAGS_KNOWN != 0 {
                return Err(format!("unknown entry flags {flags:#x} at node offset {pos}"));
            }
            let entry = self.entry_at(master, pos).ok_or_else(|| format!("entry at node offset {pos} is cut short"))?;
            if previous.is_none() && entry.id != master {
                return Err(format!("first entry {} is not the node's ID {master}", entry.id));
            }
            if let Some(before) = live_before.filter(|before| *before >= entry.id) {
                return Err(format!("entry {} does not follow the live entry {before}", entry.id));
            }
            previous = Some(entry.id);
            if entry.deleted {
                deleted += 1;
            } else {
                live += 1;
                live_before = Some(entry.id);
            }
            let mut fields = entry.fields.clone();
            for _ in 0..entry.fields.len() {
                fields.next().ok_or_else(|| format!("entry {} is cut short", entry.id))?;
            }
            pos = fields.pos;
        }
        if previous.is_none() {
            return Err("a node without entries".into());
        }
        if (live, deleted) != (self.live, self.deleted) {
            return Err(format!("node counts {}/{} entries live/deleted, holds {live}/{deleted}", self.live, self.deleted));
        }
        Ok(())
    }

    pub fn live(&self) -> u64 {
        self.live
    }

    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes this node occupies on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity()
    }

    /// Whether an entry whose fields and values total `entry_bytes` still fits here
    /// (Redis's rule: a new node once the bytes would reach the limit, or the node
    /// holds the limit's number of entries, deleted ones included).
    pub fn has_room(&self, entry_bytes: usize, limits: &NodeLimits) -> bool {
        if self.data.len().saturating_add(entry_bytes) >= limits.bytes_cap() {
            return false;
        }
        limits.max_entries == 0 || self.live + self.deleted < limits.max_entries
    }

    /// Called when the next entry starts a new node: this one is complete.
    pub fn seal(&mut self) {
        self.data.shrink_to_fit();
    }

    /// Appends `id` (greater than every ID here) with `pairs`.
    pub fn append(&mut self, master: StreamId, id: StreamId, pairs: &[bytes::Bytes]) {
        let same = self.master_fields().eq(pairs.iter().step_by(2).map(|f| &f[..]));
        self.push_entry(master, id, pairs, same);
    }

    fn push_entry(&mut self, master: StreamId, id: StreamId, pairs: &[bytes::Bytes], same: bool) {
        let data = &mut self.data;
        data.push(if same { FLAG_SAME_FIELDS } else { 0 });
        // IDs in a node only grow: the deltas are non-negative except a sequence below
        // the master's under a later millisecond, so the sequence is stored whole.
        put_varint(data, id.ms.wrapping_sub(master.ms));
        put_varint(data, id.seq);
        if same {
            for value in pairs.iter().skip(1).step_by(2) {
                put_bytes(data, value);
            }
        } else {
            put_varint(data, (pairs.len() / 2) as u64);
            for item in pairs {
                put_bytes(data, item);
            }
        }
        self.live += 1;
    }

    /// The master field names: the first entry's fields.
    fn master_fields(&self) -> impl Iterator<Item = &[u8]> {
        let mut pos = 0;
        let count = varint(&self.data, &mut pos).unwrap_or(0);
        (0..count).map_while(move |_| bytes(&self.data, &mut pos))
    }

    /// Offset of the first entry (after the master fields).
    fn first_entry_at(&self) -> usize {
        let mut pos = 0;
        let count = varint(&self.data, &mut pos).unwrap_or(0);
        for _ in 0..count {
            if bytes(&self.data, &mut pos).is_none() {
                return self.data.len();
            }
        }
        pos
    }

    /// The entry whose flags byte is at `at`.
    pub fn entry_at(&self, master: StreamId, at: usize) -> Option<RawEntry<'_>> {
        let data = &self.data[..];
        let flags = *data.get(at)?;
        let mut pos = at + 1;
        let ms = master.ms.wrapping_add(varint(data, &mut pos)?);
        let seq = varint(data, &mut pos)?;
        let (left, master_at) = if flags & FLAG_SAME_FIELDS != 0 {
            let mut header = 0;
            let count = varint(data, &mut header)?;
            (count, Some(header))
        } else {
            (varint(data, &mut pos)?, None)
        };
        let fields = Fields { data, pos, left: usize::try_from(left).ok()?, master: master_at };
        Some(RawEntry { id: StreamId { ms, seq }, deleted: flags & FLAG_DELETED != 0, at, fields })
    }

    /// Every entry, tombstones included, in ID order.
    pub fn entries(&self, master: StreamId) -> NodeEntries<'_> {
        NodeEntries { node: self, master, pos: self.first_entry_at() }
    }

    /// Offsets of every entry, for walking the node backwards.
    pub fn offsets(&self, master: StreamId) -> Vec<usize> {
        let mut out = Vec::with_capacity(usize::try_from(self.live + self.deleted).unwrap_or(0).min(4096));
        out.extend(self.entries(master).map(|e| e.at));
        out
    }

    /// The last entry's ID, tombstones included (an approximate MINID trim looks at
    /// it, as Redis's does). Not always the largest: see [`Node::last_live_id`].
    pub fn last_id(&self, master: StreamId) -> StreamId {
        self.entries(master).last().map_or(master, |e| e.id)
    }

    /// The first live entry's ID.
    pub fn first_live_id(&self, master: StreamId) -> Option<StreamId> {
        self.entries(master).find(|e| !e.deleted).map(|e| e.id)
    }

    /// The last live entry's ID. Live entries only grow, through the whole stream;
    /// tombstones need not (XSETID may lower the last ID below a deleted entry and
    /// later entries take IDs below it), so readers skip them before comparing IDs.
    pub fn last_live_id(&self, master: StreamId) -> Option<StreamId> {
        self.entries(master).filter(|e| !e.deleted).last().map(|e| e.id)
    }

    /// Marks the live entry at `at` deleted.
    pub fn mark_deleted(&mut self, at: usize) {
        if let Some(flags) = self.data.get_mut(at) {
            if *flags & FLAG_DELETED == 0 {
                *flags |= FLAG_DELETED;
                self.live = self.live.saturating_sub(1);
                self.deleted += 1;
            }
        }
    }
}

/// Iterator over a node's entries (see [`Node::entries`]).
pub struct NodeEntries<'a> {
    node: &'a Node,
    master: StreamId,
    pos: usize,
}

impl<'a> Iterator for NodeEntries<'a> {
    type Item = RawEntry<'a>;

    fn next(&mut self) -> Option<RawEntry<'a>> {
        if self.pos >= self.node.data.len() {
            return None;
        }
        let entry = self.node.entry_at(self.master, self.pos)?;
        let mut fields = entry.fields.clone();
        for _ in 0..entry.fields.len() {
            fields.next()?;
        }
        self.pos = fields.pos;
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pairs(items: &[&str]) -> Vec<Bytes> {
        items.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    /// An entry as the tests compare it: ID, deleted, fields.
    type Seen = (String, bool, Vec<(String, String)>);

    fn collect(node: &Node, master: StreamId) -> Vec<Seen> {
        node.entries(master)
            .map(|e| {
                let fields =
                    e.fields.map(|(f, v)| (String::from_utf8_lossy(f).into_owned(), String::from_utf8_lossy(v).into_owned())).collect();
                (e.id.to_string(), e.deleted, fields)
            })
            .collect()
    }

    #[test]
    fn entries_with_the_master_fields_store_only_values() {
        let master = StreamId::new(100, 5);
        let mut node = Node::new(master, &pairs(&["name", "a", "age", "1"]));
        let one = node.data().len();
        node.append(master, StreamId::new(100, 6), &pairs(&["name", "b", "age", "2"]));
        let same = node.data().len() - one;
        node.append(master, StreamId::new(101, 0), &pairs(&["other", "c"]));
        assert!(same < node.data().len() - one - same, "a same-fields entry must be smaller");
        let all = collect(&node, master);
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].2, vec![("name".into(), "b".into()), ("age".into(), "2".into())]);
        assert_eq!(all[2], ("101-0".into(), false, vec![("other".into(), "c".into())]));
        assert_eq!(node.last_id(master), StreamId::new(101, 0));
    }

    #[test]
    fn a_later_millisecond_with_a_smaller_sequence_round_trips() {
        let master = StreamId::new(5, u64::MAX);
        let mut node = Node::new(master, &pairs(&["f", "v"]));
        node.append(master, StreamId::new(6, 0), &pairs(&["f", "w"]));
        let ids: Vec<_> = node.entries(master).map(|e| e.id).collect();
        assert_eq!(ids, vec![master, StreamId::new(6, 0)]);
    }

    #[test]
    fn tombstones_stay_and_are_counted() {
        let master = StreamId::new(1, 0);
        let mut node = Node::new(master, &pairs(&["f", "v"]));
        node.append(master, StreamId::new(2, 0), &pairs(&["f", "v"]));
        let at = node.entries(master).nth(1).unwrap().at;
        node.mark_deleted(at);
        node.mark_deleted(at);
        assert_eq!((node.live(), node.deleted()), (1, 1));
        assert!(node.entries(master).nth(1).unwrap().deleted);
        assert_eq!(node.last_id(master), StreamId::new(2, 0));
        assert!(Node::from_parts(master, 1, 1, node.data().to_vec()).is_ok());
    }

    #[test]
    fn room_follows_entry_and_byte_limits() {
        let master = StreamId::new(1, 0);
        let node = Node::new(master, &pairs(&["f", "v"]));
        assert!(node.has_room(2, &NodeLimits::default()));
        assert!(!node.has_room(2, &NodeLimits { max_entries: 1, max_bytes: 0 }));
        assert!(node.has_room(2, &NodeLimits { max_entries: 0, max_bytes: 0 }));
        assert!(!node.has_room(4096, &NodeLimits::default()));
    }

    #[test]
    fn damaged_nodes_are_refused() {
        let master = StreamId::new(1, 0);
        let mut node = Node::new(master, &pairs(&["f", "v"]));
        node.append(master, StreamId::new(2, 0), &pairs(&["g", "w"]));
        let data = node.data().to_vec();
        assert!(Node::from_parts(master, 2, 0, data.clone()).is_ok());
        assert!(Node::from_parts(master, 1, 0, data.clone()).is_err(), "wrong counts");
        assert!(Node::from_parts(StreamId::new(0, 9), 2, 0, data.clone()).is_err(), "wrong master");
        for cut in 0..data.len() {
            assert!(Node::from_parts(master, 2, 0, data[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        let mut flags = data.clone();
        let at = node.entries(master).nth(1).unwrap().at;
        flags[at] = 0x80;
        assert!(Node::from_parts(master, 2, 0, flags).is_err());
        // IDs must grow: an entry equal to the master is refused.
        let mut twice = Node::new(master, &pairs(&["f", "v"]));
        twice.append(master, master, &pairs(&["f", "v"]));
        assert!(Node::from_parts(master, 2, 0, twice.data().to_vec()).is_err());
    }
}
