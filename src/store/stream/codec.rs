//! The binary encoding of a stream inside a value encoding (`store::codec`, tag 5):
//! DUMP payloads and snapshots. Nodes are kept byte for byte (their layout is state:
//! see [`super::node`]); groups, consumers and pending entries follow in order.
//!
//! ```text
//! stream   = last_id first_id max_deleted_id entries_added length
//!            nnodes (id live deleted len bytes)*
//!            ngroups group*
//! group    = len name last_id entries_read(0 = unknown, else n+1)
//!            nconsumers (len name seen_time_ms)*
//!            npending (id delivery_time_ms delivery_count len consumer)*
//! id       = ms seq
//! ```
//! Every number is a varint. The decoder checks what the stream's code relies on:
//! nodes in order and not overlapping, counts that add up, every pending entry
//! owned by an existing consumer, names and IDs in strictly increasing order.

use std::collections::{BTreeMap, BTreeSet};

use super::group::{Consumer, ConsumerGroup, Pending};
use super::id::StreamId;
use super::node::Node;
use super::{Entries, Stream};
use crate::store::codec::{put_bytes, put_varint, CodecError, Decoder};
use crate::store::value::Blob;

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_varint(out, id.ms);
    put_varint(out, id.seq);
}

/// Appends the encoding of `stream`.
pub fn encode(stream: &Stream, out: &mut Vec<u8>) {
    let entries = &stream.entries;
    put_id(out, entries.last_id());
    put_id(out, entries.first_id());
    put_id(out, entries.max_deleted_id());
    put_varint(out, entries.entries_added());
    put_varint(out, entries.len());
    put_varint(out, entries.node_count() as u64);
    for (id, live, deleted, data) in entries.nodes() {
        put_id(out, id);
        put_varint(out, live);
        put_varint(out, deleted);
        put_bytes(out, data);
    }
    put_varint(out, stream.groups.len() as u64);
    for (name, group) in &stream.groups {
        put_bytes(out, name);
        put_id(out, group.last_id);
        put_varint(out, group.entries_read.map_or(0, |n| n.saturating_add(1)));
        put_varint(out, group.consumers.len() as u64);
        for (name, consumer) in &group.consumers {
            put_bytes(out, name);
            put_varint(out, consumer.seen_time_ms);
        }
        put_varint(out, group.pending.len() as u64);
        for (id, pending) in &group.pending {
            put_id(out, *id);
            put_varint(out, pending.delivery_time_ms);
            put_varint(out, pending.delivery_count);
            put_bytes(out, &pending.consumer);
        }
    }
}

fn id(d: &mut Decoder, what: &'static str) -> Result<StreamId, CodecError> {
    Ok(StreamId { ms: d.varint(what)?, seq: d.varint(what)? })
}

fn invalid(what: &'static str, offset: usize, why: impl Into<String>) -> CodecError {
    CodecError::Invalid { what, offset, why: why.into() }
}

/// Reads one stream (after its tag).
pub fn decode(d: &mut Decoder) -> Result<Stream, CodecError> {
    let start = d.offset();
    let last_id = id(d, "a stream's last ID")?;
    let first_id = id(d, "a stream's first ID")?;
    let max_deleted_id = id(d, "a stream's largest deleted ID")?;
    let entries_added = d.varint("a stream's added-entries count")?;
    let length = d.varint("a stream's length")?;
    let nodes = decode_nodes(d, last_id, length)?;
    if entries_added < length {
        return Err(invalid("stream", start, format!("{entries_added} entries added but {length} present")));
    }
    let groups = decode_groups(d)?;
    let entries = Entries::from_parts(nodes, [last_id, first_id, max_deleted_id], [length, entries_added]);
    Ok(Stream { entries, groups })
}

fn decode_nodes(d: &mut Decoder, last_id: StreamId, length: u64) -> Result<BTreeMap<StreamId, Node>, CodecError> {
    // A node takes at least 6 bytes: its ID, two counts and a length.
    let count = d.count("a stream's node count", 6)?;
    let mut nodes = BTreeMap::new();
    // Nodes in order of their first IDs, each after every live entry before it; a
    // tombstone may lie past later nodes' IDs and past the last ID (see
    // `Node::last_live_id`), a live entry never does.
    let (mut live_total, mut previous_master, mut previous_live) = (0u64, None::<StreamId>, None::<StreamId>);
    for _ in 0..count {
        let offset = d.offset();
        let master = id(d, "a node's first ID")?;
        let live = d.varint("a node's live count")?;
        let deleted = d.varint("a node's deleted count")?;
        let data = d.bytes("a node's entries")?.to_vec();
        let node = Node::from_parts(master, live, deleted, data).map_err(|why| invalid("stream node", offset, why))?;
        // A node's first ID came after every live entry then; its live entries (which
        // may lie below its first ID, see `Entries::range`) after every earlier one.
        let first_live = node.first_live_id(master);
        if previous_master.is_some_and(|p| p >= master) || previous_live.is_some_and(|p| p >= master || first_live.is_some_and(|f| p >= f))
        {
            return Err(invalid("stream node", offset, format!("node {master} overlaps the node before it")));
        }
        let node_last = node.last_live_id(master);
        if let Some(node_last) = node_last.filter(|l| *l > last_id) {
            return Err(invalid("stream node", offset, format!("entry {node_last} is past the last ID {last_id}")));
        }
        previous_master = Some(master);
        previous_live = node_last.or(previous_live);
        live_total = live_total.saturating_add(live);
        nodes.insert(master, node);
    }
    if live_total != length {
        return Err(invalid("stream", d.offset(), format!("length {length}, but the nodes hold {live_total} entries")));
    }
    Ok(nodes)
}

fn decode_groups(d: &mut Decoder) -> Result<BTreeMap<Blob, ConsumerGroup>, CodecError> {
    let count = d.count("a stream's group count", 5)?;
    let mut groups = BTreeMap::new();
    for _ in 0..count {
        let offset = d.offset();
        let name = Blob::from(d.bytes("a group name")?);
        if groups.last_key_value().is_some_and(|(last, _): (&Blob, _)| *last >= name) {
            return Err(invalid("consumer group", offset, "names out of order"));
        }
        let group = decode_group(d, offset)?;
        groups.insert(name, group);
    }
    Ok(groups)
}

fn decode_group(d: &mut Decoder, offset: usize) -> Result<ConsumerGroup, CodecError> {
    let last_id = id(d, "a group's last ID")?;
    let entries_read = d.varint("a group's read counter")?.checked_sub(1);
    let mut group = ConsumerGroup::new(last_id, entries_read);
    let consumers = d.count("a group's consumer count", 2)?;
    for _ in 0..consumers {
        let name = Blob::from(d.bytes("a consumer name")?);
        let seen_time_ms = d.varint("a consumer's seen time")?;
        if group.consumers.last_key_value().is_some_and(|(last, _)| *last >= name) {
            return Err(invalid("consumer", offset, "names out of order"));
        }
        group.consumers.insert(name, Consumer { seen_time_ms, pending: BTreeSet::new() });
    }
    let pending = d.count("a group's pending count", 5)?;
    for _ in 0..pending {
        let id = id(d, "a pending entry's ID")?;
        let delivery_time_ms = d.varint("a delivery time")?;
        let delivery_count = d.varint("a delivery count")?;
        let consumer = Blob::from(d.bytes("a pending entry's consumer")?);
        if group.pending.last_key_value().is_some_and(|(last, _)| *last >= id) {
            return Err(invalid("pending entry", offset, "IDs out of order"));
        }
        let Some(owner) = group.consumers.get_mut(&consumer) else {
            return Err(invalid("pending entry", offset, format!("{id} names a consumer the group does not have")));
        };
        owner.pending.insert(id);
        group.pending.insert(id, Pending { delivery_time_ms, delivery_count, consumer });
    }
    group.check_consistency().map_err(|why| invalid("consumer group", offset, why))?;
    Ok(group)
}
