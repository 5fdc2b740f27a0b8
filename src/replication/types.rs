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

/// A stripe's Raft group. Written out rather than with openraft's
/// `declare_raft_types!`, whose macro cannot name a responder of our own; every other
/// type is the macro's default.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct TypeConfig {}

impl openraft::RaftTypeConfig for TypeConfig {
    type D = Entry;
    type R = Response;
    type NodeId = u64;
    type Node = openraft::BasicNode;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_adv::LeaderId<u64, u64>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Entry, u64, openraft::BasicNode>;
    type Entry = openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type AsyncRuntime = Runtime;
    type Responder<T>
        = Deliver<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

/// How a proposed entry's outcome reaches its clients: a function that openraft calls
/// where the entry completes (in apply, or in Raft's core when it is refused), which
/// hands each waiting connection its replies there. openraft's own responders are a
/// channel that a task must wait on and wake for; this saves that task, its wakeup
/// and its spawn for every entry. Dropped uncalled (Raft stopped), it drops what it
/// holds: the waiting connections see their channel closed.
pub struct Deliver<T>(Box<dyn FnOnce(T) + Send>);

impl<T> Deliver<T> {
    pub fn new(f: impl FnOnce(T) + Send + 'static) -> Self {
        Deliver(Box::new(f))
    }
}

impl<T: openraft::OptionalSend + 'static> openraft::raft::responder::Responder<TypeConfig, T> for Deliver<T> {
    fn on_complete(self, result: T) {
        (self.0)(result)
    }
}

pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type RaftEntry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Membership = openraft::Membership<u64, openraft::BasicNode>;
