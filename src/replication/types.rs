//! The Raft type configuration of a stripe: what a log entry carries (our
//! [`crate::store::Entry`]), what applying it answers (the replies), and how
//! members are named.

use std::fmt;

use crate::protocol::reply::Reply;
use crate::store::{Entry, Op};

/// What applying one log entry answers the client that proposed it: one reply per op.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response(pub Vec<Reply>);

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn name(op: &Op) -> String {
            match op {
                Op::Command(args) => args.first().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default(),
                Op::Transaction(_) | Op::Checked { .. } => "MULTI".to_string(),
                Op::Once { op, .. } => name(op),
            }
        }
        let first = self.ops.first().map(name);
        write!(f, "entry(t={}, ops={}, first={})", self.time_ms, self.ops.len(), first.unwrap_or_default())
    }
}

/// The runtime openraft runs on: tokio. Unit tests use tokio with openraft's
/// randomness (election timeouts, tick phases) drawn from a seed and a watch channel
/// that wakes in a fixed order, so the deterministic simulation
/// (`replication::sim`) replays a run from its seed. It needs every Raft to be
/// started inside `SimRuntime::scope` (it panics otherwise), which is why it is for
/// tests only: servers keep tokio as it is.
#[cfg(not(test))]
pub type Runtime = openraft_rt_tokio::TokioRuntime;
#[cfg(test)]
pub type Runtime = super::sim::runtime::SimRuntime;

openraft::declare_raft_types!(
    /// A stripe's Raft group.
    pub TypeConfig:
        D = Entry,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = Runtime,
);

pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type RaftEntry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Membership = openraft::Membership<u64, openraft::BasicNode>;
