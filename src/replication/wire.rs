//! The messages of the group port: openraft's RPCs between the members of a stripe,
//! and the requests of `tandem status | stop | failover` and of members joining.
//! Each message is one frame body (see [`super::transport`]): a kind byte, then
//! fields in the log's encodings ([`super::record`]). Decoding bounds every count by
//! the bytes present and never panics.

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, VoteRequest, VoteResponse};

use super::record::{
    decode_raft_entry, decode_vote, encode_raft_entry, encode_vote, get_opt_log_id, get_snapshot_meta, put_opt_log_id, put_snapshot_meta,
};
use super::types::{LogId, SnapshotMeta, TypeConfig, Vote};
use crate::store::codec::{put_bytes, put_varint, CodecError, Decoder};

/// One member's report for `tandem status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    pub name: String,
    pub stripe: String,
    pub voter: bool,
    pub state: String,
    pub light: String,
    pub node_id: u64,
    pub term: u64,
    pub active: String,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    /// The last log index this member has purged (its log starts after it).
    pub purged_index: Option<u64>,
    /// On the active: each member's name, node id, voting flag and lag behind its log.
    pub members: Vec<MemberLag>,
    /// What this member's config says the array is (its stripes in order and their
    /// servers), as a fingerprint; empty from a member that does not say.
    pub array: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberLag {
    pub name: String,
    pub node_id: u64,
    pub voting: bool,
    pub lag: Option<u64>,
}

/// What a member asks another over the group port.
#[derive(Debug)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// A snapshot follows in `Chunk` frames totalling `bytes`, then `SnapshotEnd`.
    SnapshotBegin {
        vote: Vote,
        meta: SnapshotMeta,
        bytes: u64,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// Are you part of a formed stripe, and who is its active?
    Probe,
    /// A new member (a first start with an empty data directory, or a restarted
    /// non-persistent server) asks the active to be added.
    Join {
        node_id: u64,
        name: String,
        data_storage_bytes: u64,
    },
    Status,
    Failover {
        to: Option<String>,
    },
    Stop {
        force: bool,
    },
    /// To a voter: every data-holding voter has the log up to `index`.
    PurgeHint {
        index: u64,
    },
    /// A PUBLISH (or, `shard`, an SPUBLISH) made on another server, for this
    /// server's subscribers.
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
        shard: bool,
    },
    /// A management report of this server (its details, clients or events) for
    /// another server's management API; the query and its answer are the management
    /// module's own encoding (`management::peer`), opaque here.
    Management {
        query: Vec<u8>,
    },
}

/// The answer to a [`Request`].
#[derive(Debug)]
pub enum Response {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    /// `Ok` or the reason the target refused the leadership.
    TransferLeader(Result<(), String>),
    Probe {
        initialized: bool,
        node_id: u64,
        is_active: bool,
        active: Option<String>,
        data_storage_bytes: u64,
    },
    Done {
        ok: bool,
        message: String,
    },
    Status(StatusReport),
    /// The answer to [`Request::Management`].
    Management(Vec<u8>),
    /// The answer to [`Request::Publish`]: how many of the member's clients got it.
    Published {
        receivers: u64,
    },
    /// The request could not be served (the reason, for logs and the CLI).
    Error(String),
}

const REQ_APPEND: u8 = 1;
const REQ_VOTE: u8 = 2;
const REQ_PRE_VOTE: u8 = 3;
const REQ_SNAPSHOT: u8 = 4;
const REQ_TRANSFER: u8 = 5;
const REQ_PROBE: u8 = 6;
const REQ_JOIN: u8 = 7;
const REQ_STATUS: u8 = 8;
const REQ_FAILOVER: u8 = 9;
const REQ_STOP: u8 = 10;
const REQ_PURGE_HINT: u8 = 11;
const REQ_PUBLISH: u8 = 12;
const REQ_MANAGEMENT: u8 = 13;
const REQ_SHARD_PUBLISH: u8 = 14;
/// A piece of a snapshot; its body is raw bytes.
pub const CHUNK: u8 = 20;
pub const SNAPSHOT_END: u8 = 21;

const RESP_APPEND: u8 = 101;
const RESP_VOTE: u8 = 102;
const RESP_SNAPSHOT: u8 = 103;
const RESP_TRANSFER: u8 = 104;
const RESP_PROBE: u8 = 105;
const RESP_DONE: u8 = 106;
const RESP_STATUS: u8 = 107;
const RESP_ERROR: u8 = 108;
const RESP_MANAGEMENT: u8 = 109;
const RESP_PUBLISHED: u8 = 110;

const APPEND_SUCCESS: u8 = 0;
const APPEND_PARTIAL: u8 = 1;
const APPEND_CONFLICT: u8 = 2;
const APPEND_HIGHER_VOTE: u8 = 3;

fn put_vote(out: &mut Vec<u8>, vote: &Vote) {
    out.extend_from_slice(&encode_vote(vote));
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn get_str(d: &mut Decoder, what: &'static str) -> Result<String, CodecError> {
    let offset = d.offset();
    let bytes = d.bytes(what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::Invalid { what, offset, why: "not UTF-8".into() })
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_varint(out, v);
        }
    }
}

fn get_opt_u64(d: &mut Decoder, what: &'static str) -> Result<Option<u64>, CodecError> {
    Ok(match d.u8(what)? {
        0 => None,
        _ => Some(d.varint(what)?),
    })
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(b as u8);
}

fn get_bool(d: &mut Decoder, what: &'static str) -> Result<bool, CodecError> {
    Ok(d.u8(what)? != 0)
}

fn put_vote_request(out: &mut Vec<u8>, r: &VoteRequest<TypeConfig>) {
    put_vote(out, &r.vote);
    put_opt_log_id(out, &r.last_log_id);
    put_bool(out, r.leadership_transfer);
}

fn get_vote_request(d: &mut Decoder) -> Result<VoteRequest<TypeConfig>, CodecError> {
    let vote = decode_vote(d)?;
    let last_log_id = get_opt_log_id(d)?;
    let leadership_transfer = get_bool(d, "leadership transfer")?;
    let mut r = VoteRequest::new(vote, last_log_id);
    r.leadership_transfer = leadership_transfer;
    Ok(r)
}

/// Encodes an append of `req.entries[..count]`.
pub fn encode_append(req: &AppendEntriesRequest<TypeConfig>, count: usize) -> Vec<u8> {
    let mut out = vec![REQ_APPEND];
    put_vote(&mut out, &req.vote);
    put_opt_log_id(&mut out, &req.prev_log_id);
    put_opt_log_id(&mut out, &req.leader_commit);
    put_varint(&mut out, count as u64);
    for entry in &req.entries[..count] {
        put_varint(&mut out, entry.log_id.index);
        put_bytes(&mut out, &encode_raft_entry(entry));
    }
    out
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::AppendEntries(req) => return encode_append(req, req.entries.len()),
            Request::Vote(r) => {
                out.push(REQ_VOTE);
                put_vote_request(&mut out, r);
            }
            Request::PreVote(r) => {
                out.push(REQ_PRE_VOTE);
                put_vote_request(&mut out, r);
            }
            Request::SnapshotBegin { vote, meta, bytes } => {
                out.push(REQ_SNAPSHOT);
                put_vote(&mut out, vote);
                put_snapshot_meta(&mut out, meta);
                put_varint(&mut out, *bytes);
            }
            Request::TransferLeader(r) => {
                out.push(REQ_TRANSFER);
                put_vote(&mut out, r.from_leader());
                put_varint(&mut out, *r.to_node_id());
                put_opt_log_id(&mut out, &r.last_log_id().cloned());
            }
            Request::Probe => out.push(REQ_PROBE),
            Request::Join { node_id, name, data_storage_bytes } => {
                out.push(REQ_JOIN);
                put_varint(&mut out, *node_id);
                put_str(&mut out, name);
                put_varint(&mut out, *data_storage_bytes);
            }
            Request::Status => out.push(REQ_STATUS),
            Request::Failover { to } => {
                out.push(REQ_FAILOVER);
                put_bool(&mut out, to.is_some());
                put_str(&mut out, to.as_deref().unwrap_or(""));
            }
            Request::Stop { force } => {
                out.push(REQ_STOP);
                put_bool(&mut out, *force);
            }
            Request::PurgeHint { index } => {
                out.push(REQ_PURGE_HINT);
                put_varint(&mut out, *index);
            }
            Request::Publish { channel, message, shard } => {
                out.push(if *shard { REQ_SHARD_PUBLISH } else { REQ_PUBLISH });
                put_bytes(&mut out, channel);
                put_bytes(&mut out, message);
            }
            Request::Management { query } => {
                out.push(REQ_MANAGEMENT);
                put_bytes(&mut out, query);
            }
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Request, CodecError> {
        let mut d = Decoder::new(body);
        let kind = d.u8("request kind")?;
        let request = match kind {
            REQ_APPEND => {
                let vote = decode_vote(&mut d)?;
                let prev_log_id = get_opt_log_id(&mut d)?;
                let leader_commit = get_opt_log_id(&mut d)?;
                let count = d.count("entries", 2)?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let index = d.varint("entry index")?;
                    entries.push(decode_raft_entry(index, d.bytes("entry")?)?);
                }
                Request::AppendEntries(AppendEntriesRequest { vote, prev_log_id, entries, leader_commit })
            }
            REQ_VOTE => Request::Vote(get_vote_request(&mut d)?),
            REQ_PRE_VOTE => Request::PreVote(get_vote_request(&mut d)?),
            REQ_SNAPSHOT => {
                let vote = decode_vote(&mut d)?;
                let meta = get_snapshot_meta(&mut d)?;
                Request::SnapshotBegin { vote, meta, bytes: d.varint("snapshot bytes")? }
            }
            REQ_TRANSFER => {
                let vote = decode_vote(&mut d)?;
                let to = d.varint("transfer target")?;
                let last = get_opt_log_id(&mut d)?;
                Request::TransferLeader(TransferLeaderRequest::new(vote, to, last))
            }
            REQ_PROBE => Request::Probe,
            REQ_JOIN => Request::Join {
                node_id: d.varint("node id")?,
                name: get_str(&mut d, "name")?,
                data_storage_bytes: d.varint("data storage")?,
            },
            REQ_STATUS => Request::Status,
            REQ_FAILOVER => {
                let named = get_bool(&mut d, "failover target presence")?;
                let to = get_str(&mut d, "failover target")?;
                Request::Failover { to: named.then_some(to) }
            }
            REQ_STOP => Request::Stop { force: get_bool(&mut d, "force")? },
            REQ_PURGE_HINT => Request::PurgeHint { index: d.varint("purge index")? },
            REQ_PUBLISH | REQ_SHARD_PUBLISH => Request::Publish {
                channel: d.bytes("channel")?.to_vec(),
                message: d.bytes("message")?.to_vec(),
                shard: kind == REQ_SHARD_PUBLISH,
            },
            REQ_MANAGEMENT => Request::Management { query: d.bytes("management query")?.to_vec() },
            other => return Err(CodecError::Invalid { what: "request kind", offset: 0, why: format!("unknown kind {other}") }),
        };
        d.finish()?;
        Ok(request)
    }
}

fn put_status(out: &mut Vec<u8>, s: &StatusReport) {
    put_str(out, &s.name);
    put_str(out, &s.stripe);
    put_bool(out, s.voter);
    put_str(out, &s.state);
    put_str(out, &s.light);
    put_varint(out, s.node_id);
    put_varint(out, s.term);
    put_str(out, &s.active);
    put_opt_u64(out, s.commit_index);
    put_opt_u64(out, s.applied_index);
    put_opt_u64(out, s.last_log_index);
    put_opt_u64(out, s.purged_index);
    put_varint(out, s.members.len() as u64);
    for m in &s.members {
        put_str(out, &m.name);
        put_varint(out, m.node_id);
        put_bool(out, m.voting);
        put_opt_u64(out, m.lag);
    }
    put_str(out, &s.array);
}

fn get_status(d: &mut Decoder) -> Result<StatusReport, CodecError> {
    let mut s = StatusReport {
        name: get_str(d, "name")?,
        stripe: get_str(d, "stripe")?,
        voter: get_bool(d, "voter")?,
        state: get_str(d, "state")?,
        light: get_str(d, "light")?,
        node_id: d.varint("node id")?,
        term: d.varint("term")?,
        active: get_str(d, "active")?,
        commit_index: get_opt_u64(d, "commit index")?,
        applied_index: get_opt_u64(d, "applied index")?,
        last_log_index: get_opt_u64(d, "last log index")?,
        purged_index: get_opt_u64(d, "purged index")?,
        members: Vec::new(),
        array: String::new(),
    };
    let count = d.count("members", 4)?;
    for _ in 0..count {
        s.members.push(MemberLag {
            name: get_str(d, "member name")?,
            node_id: d.varint("member id")?,
            voting: get_bool(d, "member voting")?,
            lag: get_opt_u64(d, "member lag")?,
        });
    }
    // Absent from a member of an earlier version.
    if d.remaining() > 0 {
        s.array = get_str(d, "array")?;
    }
    Ok(s)
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::AppendEntries(r) => {
                out.push(RESP_APPEND);
                match r {
                    AppendEntriesResponse::Success => out.push(APPEND_SUCCESS),
                    AppendEntriesResponse::PartialSuccess(id) => {
                        out.push(APPEND_PARTIAL);
                        put_opt_log_id(&mut out, id);
                    }
                    AppendEntriesResponse::Conflict => out.push(APPEND_CONFLICT),
                    AppendEntriesResponse::HigherVote(v) => {
                        out.push(APPEND_HIGHER_VOTE);
                        put_vote(&mut out, v);
                    }
                }
            }
            Response::Vote(r) => {
                out.push(RESP_VOTE);
                put_vote(&mut out, &r.vote);
                put_bool(&mut out, r.vote_granted);
                put_opt_log_id(&mut out, &r.last_log_id);
            }
            Response::Snapshot(r) => {
                out.push(RESP_SNAPSHOT);
                put_vote(&mut out, &r.vote);
            }
            Response::TransferLeader(r) => {
                out.push(RESP_TRANSFER);
                put_bool(&mut out, r.is_ok());
                put_str(&mut out, r.as_ref().err().map_or("", |e| e.as_str()));
            }
            Response::Probe { initialized, node_id, is_active, active, data_storage_bytes } => {
                out.push(RESP_PROBE);
                put_bool(&mut out, *initialized);
                put_varint(&mut out, *node_id);
                put_bool(&mut out, *is_active);
                put_bool(&mut out, active.is_some());
                put_str(&mut out, active.as_deref().unwrap_or(""));
                put_varint(&mut out, *data_storage_bytes);
            }
            Response::Done { ok, message } => {
                out.push(RESP_DONE);
                put_bool(&mut out, *ok);
                put_str(&mut out, message);
            }
            Response::Status(s) => {
                out.push(RESP_STATUS);
                put_status(&mut out, s);
            }
            Response::Error(message) => {
                out.push(RESP_ERROR);
                put_str(&mut out, message);
            }
            Response::Management(answer) => {
                out.push(RESP_MANAGEMENT);
                put_bytes(&mut out, answer);
            }
            Response::Published { receivers } => {
                out.push(RESP_PUBLISHED);
                put_varint(&mut out, *receivers);
            }
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Response, CodecError> {
        let mut d = Decoder::new(body);
        let kind = d.u8("response kind")?;
        let response = match kind {
            RESP_APPEND => Response::AppendEntries(match d.u8("append outcome")? {
                APPEND_SUCCESS => AppendEntriesResponse::Success,
                APPEND_PARTIAL => AppendEntriesResponse::PartialSuccess(get_opt_log_id(&mut d)?),
                APPEND_CONFLICT => AppendEntriesResponse::Conflict,
                APPEND_HIGHER_VOTE => AppendEntriesResponse::HigherVote(decode_vote(&mut d)?),
                other => return Err(CodecError::Invalid { what: "append outcome", offset: 1, why: format!("unknown outcome {other}") }),
            }),
            RESP_VOTE => {
                let vote = decode_vote(&mut d)?;
                let vote_granted = get_bool(&mut d, "vote granted")?;
                let last_log_id = get_opt_log_id(&mut d)?;
                Response::Vote(VoteResponse { vote, vote_granted, last_log_id })
            }
            RESP_SNAPSHOT => Response::Snapshot(SnapshotResponse::new(decode_vote(&mut d)?)),
            RESP_TRANSFER => {
                let ok = get_bool(&mut d, "transfer outcome")?;
                let why = get_str(&mut d, "transfer refusal")?;
                Response::TransferLeader(if ok { Ok(()) } else { Err(why) })
            }
            RESP_PROBE => {
                let initialized = get_bool(&mut d, "initialized")?;
                let node_id = d.varint("node id")?;
                let is_active = get_bool(&mut d, "is active")?;
                let known = get_bool(&mut d, "active known")?;
                let active = get_str(&mut d, "active")?;
                let data_storage_bytes = d.varint("data storage")?;
                Response::Probe { initialized, node_id, is_active, active: known.then_some(active), data_storage_bytes }
            }
            RESP_DONE => Response::Done { ok: get_bool(&mut d, "done")?, message: get_str(&mut d, "message")? },
            RESP_STATUS => Response::Status(get_status(&mut d)?),
            RESP_ERROR => Response::Error(get_str(&mut d, "error")?),
            RESP_MANAGEMENT => Response::Management(d.bytes("management answer")?.to_vec()),
            RESP_PUBLISHED => Response::Published { receivers: d.varint("receivers")? },
            other => return Err(CodecError::Invalid { what: "response kind", offset: 0, why: format!("unknown kind {other}") }),
        };
        d.finish()?;
        Ok(response)
    }
}

/// The log id of the last of the first `count` entries of an append.
pub fn last_sent(req: &AppendEntriesRequest<TypeConfig>, count: usize) -> Option<LogId> {
    count.checked_sub(1).map(|i| req.entries[i].log_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Entry, Op};
    use bytes::Bytes;
    use openraft::EntryPayload;

    fn log_id(term: u64, node: u64, index: u64) -> LogId {
        LogId { leader_id: openraft::alias::CommittedLeaderIdOf::<TypeConfig> { term, node_id: node }, index }
    }

    fn vote(term: u64, node: u64) -> Vote {
        Vote { leader_id: openraft::alias::LeaderIdOf::<TypeConfig> { term, node_id: node }, committed: true }
    }

    #[test]
    fn append_round_trips_with_entries() {
        let entry = super::super::types::RaftEntry {
            log_id: log_id(3, 7, 10),
            payload: EntryPayload::Normal(Entry {
                time_ms: 5,
                seed: 9,
                ops: vec![Op::Command(vec![Bytes::from_static(b"SET"), Bytes::from_static(b"k"), Bytes::from_static(b"v")])].into(),
                origins: None,
                summary: None,
            }),
        };
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: vote(3, 7),
            prev_log_id: Some(log_id(3, 7, 9)),
            entries: vec![entry.clone(), super::super::types::RaftEntry { log_id: log_id(3, 7, 11), payload: EntryPayload::Blank }],
            leader_commit: Some(log_id(3, 7, 8)),
        };
        let Request::AppendEntries(back) = Request::decode(&encode_append(&req, 1)).unwrap() else { panic!("kind") };
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.leader_commit, req.leader_commit);
        assert_eq!(back.entries.len(), 1);
        assert_eq!(back.entries[0].log_id, entry.log_id);
        assert_eq!(last_sent(&req, 1), Some(log_id(3, 7, 10)));
    }

    #[test]
    fn admin_messages_round_trip() {
        for r in [
            Request::Probe,
            Request::Status,
            Request::Stop { force: true },
            Request::Failover { to: Some("server2".into()) },
            Request::Failover { to: None },
            Request::Join { node_id: 77, name: "server3".into(), data_storage_bytes: 1 << 30 },
            Request::PurgeHint { index: 12 },
            Request::Publish { channel: b"news".to_vec(), message: b"hi".to_vec(), shard: false },
            Request::Publish { channel: b"orders".to_vec(), message: b"1".to_vec(), shard: true },
            Request::Management { query: br#"{"query":"server"}"#.to_vec() },
        ] {
            let text = format!("{r:?}");
            assert_eq!(format!("{:?}", Request::decode(&r.encode()).unwrap()), text);
        }
        let status = StatusReport {
            name: "server1".into(),
            state: "ACTIVE-COORDINATOR".into(),
            commit_index: Some(4),
            purged_index: Some(2),
            members: vec![MemberLag { name: "server2".into(), node_id: 2, voting: true, lag: Some(0) }],
            array: "3e3c0797".into(),
            ..StatusReport::default()
        };
        let Response::Status(back) = Response::decode(&Response::Status(status.clone()).encode()).unwrap() else { panic!("kind") };
        assert_eq!(back, status);
        let probe =
            Response::Probe { initialized: true, node_id: 3, is_active: false, active: Some("server1".into()), data_storage_bytes: 9 };
        assert_eq!(format!("{:?}", Response::decode(&probe.encode()).unwrap()), format!("{probe:?}"));
        let report = Response::Management(br#"{"state":"PASSIVE-STANDBY"}"#.to_vec());
        assert_eq!(format!("{:?}", Response::decode(&report.encode()).unwrap()), format!("{report:?}"));
        let published = Response::Published { receivers: 300 };
        assert_eq!(format!("{:?}", Response::decode(&published.encode()).unwrap()), format!("{published:?}"));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
        assert!(Request::decode(&[REQ_APPEND, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
