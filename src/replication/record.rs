//! Binary encodings of what the Raft log stores: log entries (our [`Entry`] inside
//! openraft's envelope), votes, log ids and memberships. Versioned by the log
//! segment header; decoding bounds every announced count by the bytes present.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use openraft::{BasicNode, EntryPayload};

use super::types::{LogId, Membership, RaftEntry, SnapshotMeta, StoredMembership, Vote};
use crate::store::codec::{put_bytes, put_varint, CodecError, Decoder};
use crate::store::watch::{Watch, WatchStamp};
use crate::store::{Entry, Op};

const PAYLOAD_BLANK: u8 = 0;
const PAYLOAD_NORMAL: u8 = 1;
const PAYLOAD_MEMBERSHIP: u8 = 2;
const OP_COMMAND: u8 = 0;
const OP_TRANSACTION: u8 = 1;
/// Added after format 1 was first written: older logs simply never contain it, so
/// they read as before; an older build refuses a log holding it (unknown op tag).
const OP_CHECKED_TRANSACTION: u8 = 2;
/// A forwarded write's tag, then the op it wraps (`store::once`).
const OP_ONCE: u8 = 3;

pub fn put_log_id(out: &mut Vec<u8>, id: &LogId) {
    put_varint(out, id.leader_id.term);
    put_varint(out, id.leader_id.node_id);
    put_varint(out, id.index);
}

pub fn get_log_id(d: &mut Decoder) -> Result<LogId, CodecError> {
    let term = d.varint("log id term")?;
    let node_id = d.varint("log id node")?;
    let index = d.varint("log id index")?;
    Ok(LogId { leader_id: openraft::alias::CommittedLeaderIdOf::<super::types::TypeConfig> { term, node_id }, index })
}

pub fn put_opt_log_id(out: &mut Vec<u8>, id: &Option<LogId>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            put_log_id(out, id);
        }
    }
}

pub fn get_opt_log_id(d: &mut Decoder) -> Result<Option<LogId>, CodecError> {
    match d.u8("log id presence")? {
        0 => Ok(None),
        _ => Ok(Some(get_log_id(d)?)),
    }
}

pub fn encode_vote(vote: &Vote) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, vote.leader_id.term);
    put_varint(&mut out, vote.leader_id.node_id);
    out.push(vote.committed as u8);
    out
}

pub fn decode_vote(d: &mut Decoder) -> Result<Vote, CodecError> {
    let term = d.varint("vote term")?;
    let node_id = d.varint("vote node")?;
    let committed = d.u8("vote committed")? != 0;
    Ok(Vote { leader_id: openraft::alias::LeaderIdOf::<super::types::TypeConfig> { term, node_id }, committed })
}

pub fn put_membership(out: &mut Vec<u8>, m: &Membership) {
    let configs = m.get_joint_config();
    put_varint(out, configs.len() as u64);
    for config in configs {
        put_varint(out, config.len() as u64);
        for id in config {
            put_varint(out, *id);
        }
    }
    let nodes: Vec<(&u64, &BasicNode)> = m.nodes().collect();
    put_varint(out, nodes.len() as u64);
    for (id, node) in nodes {
        put_varint(out, *id);
        put_bytes(out, node.addr.as_bytes());
    }
}

pub fn get_membership(d: &mut Decoder) -> Result<Membership, CodecError> {
    let config_count = d.count("membership configs", 1)?;
    let mut configs = Vec::with_capacity(config_count);
    for _ in 0..config_count {
        let n = d.count("membership config size", 1)?;
        let mut set = BTreeSet::new();
        for _ in 0..n {
            set.insert(d.varint("member id")?);
        }
        configs.push(set);
    }
    let node_count = d.count("membership nodes", 2)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..node_count {
        let id = d.varint("node id")?;
        let addr = String::from_utf8_lossy(d.bytes("node address")?).into_owned();
        nodes.insert(id, BasicNode { addr });
    }
    Membership::new(configs, nodes).map_err(|e| CodecError::Invalid { what: "membership", offset: d.offset(), why: e.to_string() })
}

/// A snapshot's meta: the last log id it covers and the membership it holds (in
/// snapshot files and in snapshots sent over the group port).
pub fn put_snapshot_meta(out: &mut Vec<u8>, meta: &SnapshotMeta) {
    put_opt_log_id(out, &meta.last_log_id);
    put_opt_log_id(out, meta.last_membership.log_id());
    put_membership(out, meta.last_membership.membership());
}

pub fn get_snapshot_meta(d: &mut Decoder) -> Result<SnapshotMeta, CodecError> {
    let last_log_id = get_opt_log_id(d)?;
    let membership_log_id = get_opt_log_id(d)?;
    let membership = get_membership(d)?;
    Ok(SnapshotMeta { last_log_id, last_membership: StoredMembership::new(membership_log_id, membership) })
}

pub fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    out.extend_from_slice(&entry.time_ms.to_le_bytes());
    out.extend_from_slice(&entry.seed.to_le_bytes());
    put_varint(out, entry.ops.len() as u64);
    for op in entry.ops.iter() {
        put_op(out, op);
    }
}

fn put_op(out: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Command(args) => {
            out.push(OP_COMMAND);
            put_args(out, args);
        }
        Op::Transaction(cmds) => {
            out.push(OP_TRANSACTION);
            put_commands(out, cmds);
        }
        Op::Checked { watches, cmds } => {
            out.push(OP_CHECKED_TRANSACTION);
            put_varint(out, watches.len() as u64);
            for w in watches {
                put_bytes(out, &w.key);
                put_varint(out, w.stamp.index);
                put_varint(out, w.stamp.time_ms);
            }
            put_commands(out, cmds);
        }
        Op::Once { tag, op } => {
            out.push(OP_ONCE);
            out.extend_from_slice(&tag.origin.to_le_bytes());
            put_varint(out, tag.seq);
            put_varint(out, tag.acked);
            put_varint(out, tag.window_ms);
            put_op(out, op);
        }
    }
}

fn put_commands(out: &mut Vec<u8>, cmds: &[Vec<Bytes>]) {
    put_varint(out, cmds.len() as u64);
    for args in cmds {
        put_args(out, args);
    }
}

fn get_commands(d: &mut Decoder) -> Result<Vec<Vec<Bytes>>, CodecError> {
    let m = d.count("transaction size", 1)?;
    let mut cmds = Vec::with_capacity(m.min(1024));
    for _ in 0..m {
        cmds.push(get_args(d)?);
    }
    Ok(cmds)
}

fn get_watches(d: &mut Decoder) -> Result<Vec<Watch>, CodecError> {
    let n = d.count("watched key count", 3)?;
    let mut watches = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let key = Bytes::copy_from_slice(d.bytes("watched key")?);
        let index = d.varint("watch index")?;
        let time_ms = d.varint("watch time")?;
        watches.push(Watch { key, stamp: WatchStamp { index, time_ms } });
    }
    Ok(watches)
}

fn put_args(out: &mut Vec<u8>, args: &[Bytes]) {
    put_varint(out, args.len() as u64);
    for arg in args {
        put_bytes(out, arg);
    }
}

fn get_args(d: &mut Decoder) -> Result<Vec<Bytes>, CodecError> {
    let n = d.count("argument count", 1)?;
    let mut args = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        args.push(Bytes::copy_from_slice(d.bytes("argument")?));
    }
    Ok(args)
}

pub fn get_entry(d: &mut Decoder) -> Result<Entry, CodecError> {
    let time_ms = d.u64_le("entry time")?;
    let seed = d.u64_le("entry seed")?;
    let n = d.count("op count", 2)?;
    let mut ops = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        ops.push(get_op(d, false)?);
    }
    Ok(Entry { time_ms, seed, ops: ops.into(), origins: None, summary: None })
}

/// One op; a tagged one wraps exactly one untagged op.
fn get_op(d: &mut Decoder, tagged: bool) -> Result<Op, CodecError> {
    let offset = d.offset();
    Ok(match d.u8("op tag")? {
        OP_COMMAND => Op::Command(get_args(d)?),
        OP_TRANSACTION => Op::Transaction(get_commands(d)?),
        OP_CHECKED_TRANSACTION => {
            let watches = get_watches(d)?;
            Op::Checked { watches, cmds: get_commands(d)? }
        }
        OP_ONCE if !tagged => {
            let origin = d.u64_le("once origin")?;
            let seq = d.varint("once sequence")?;
            let acked = d.varint("once acknowledged")?;
            let window_ms = d.varint("once window")?;
            let tag = crate::store::once::Tag { origin, seq, acked, window_ms };
            Op::Once { tag, op: Box::new(get_op(d, true)?) }
        }
        tag => return Err(CodecError::Invalid { what: "op tag", offset, why: format!("unknown tag {tag}") }),
    })
}

/// A Raft log entry → bytes (the body of one log record; the index is framed outside).
pub fn encode_raft_entry(entry: &RaftEntry) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, entry.log_id.leader_id.term);
    put_varint(&mut out, entry.log_id.leader_id.node_id);
    match &entry.payload {
        EntryPayload::Blank => out.push(PAYLOAD_BLANK),
        EntryPayload::Normal(e) => {
            out.push(PAYLOAD_NORMAL);
            put_entry(&mut out, e);
        }
        EntryPayload::Membership(m) => {
            out.push(PAYLOAD_MEMBERSHIP);
            put_membership(&mut out, m);
        }
    }
    out
}

pub fn decode_raft_entry(index: u64, body: &[u8]) -> Result<RaftEntry, CodecError> {
    let mut d = Decoder::new(body);
    let term = d.varint("entry term")?;
    let node_id = d.varint("entry leader")?;
    let offset = d.offset();
    let payload = match d.u8("payload kind")? {
        PAYLOAD_BLANK => EntryPayload::Blank,
        PAYLOAD_NORMAL => EntryPayload::Normal(get_entry(&mut d)?),
        PAYLOAD_MEMBERSHIP => EntryPayload::Membership(get_membership(&mut d)?),
        kind => return Err(CodecError::Invalid { what: "payload kind", offset, why: format!("unknown kind {kind}") }),
    };
    d.finish()?;
    let log_id = LogId { leader_id: openraft::alias::CommittedLeaderIdOf::<super::types::TypeConfig> { term, node_id }, index };
    Ok(RaftEntry { log_id, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entry = Entry {
            time_ms: 17,
            seed: 99,
            ops: vec![
                Op::Command(vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")]),
                Op::Transaction(vec![vec![Bytes::from("INCR"), Bytes::from("n")]]),
                Op::Checked {
                    watches: vec![Watch { key: Bytes::from("w"), stamp: WatchStamp { index: 41, time_ms: 16 } }],
                    cmds: vec![vec![Bytes::from("SET"), Bytes::from("w"), Bytes::from("x")]],
                },
                Op::Once {
                    tag: crate::store::once::Tag { origin: u64::MAX - 3, seq: 9, acked: 7, window_ms: 120_000 },
                    op: Box::new(Op::Command(vec![Bytes::from("INCR"), Bytes::from("n")])),
                },
            ]
            .into(),
            origins: None,
            summary: None,
        };
        let leader_id = openraft::alias::CommittedLeaderIdOf::<super::super::types::TypeConfig> { term: 3, node_id: 2 };
        let raft = RaftEntry { log_id: LogId { leader_id, index: 42 }, payload: EntryPayload::Normal(entry.clone()) };
        let back = decode_raft_entry(42, &encode_raft_entry(&raft)).unwrap();
        assert_eq!(back.log_id, raft.log_id);
        match back.payload {
            EntryPayload::Normal(e) => assert_eq!(e, entry),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 7;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode_raft_entry(1, &bytes);
        }
    }
}
