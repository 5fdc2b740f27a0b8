//! Why a write or a linearizable read on this member did not get its answer, as
//! types: whether a write may have been applied is part of each. The RESP edge
//! renders them (`server::errors`); nothing here knows the protocol, and nothing of
//! openraft's vocabulary passes through.

use openraft::errors::{ClientWriteError, ForwardReason, ForwardToLeader, LinearizableReadError, RaftError};

use super::stripe::StripeLayout;
use super::types::TypeConfig;

/// A write that got no reply from the state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Not applied: this server is not the active (it never appended the write).
    #[error("this server is not the active of its stripe")]
    NotActive { active: Option<String> },
    /// Not applied: the active has not heard from a majority of its stripe within
    /// its lease, so it appends nothing.
    #[error("the active cannot reach a majority of its stripe's servers")]
    NoQuorum,
    /// Not applied: the data directory refuses writes.
    #[error("this server cannot make writes durable ({problem})")]
    DiskTrouble { problem: String },
    /// Not applied: larger than one log record may be.
    #[error("the write is larger than one log record may be ({max_bytes} bytes)")]
    TooLarge { max_bytes: usize },
    /// Not applied: this server's member of the stripe stopped before taking it.
    #[error("this server's member of the stripe has stopped")]
    Stopped,
    /// Outcome unknown: the write was in the log when another server's log replaced
    /// it there; it may have been committed elsewhere, or may still be.
    #[error("the active changed before the write committed")]
    Discarded,
    /// Outcome unknown: not confirmed within the bound a client waits.
    #[error("the stripe did not confirm the write in time")]
    Unconfirmed,
    /// Outcome unknown: the member stopped with the write in flight.
    #[error("this server's member of the stripe stopped with the write in flight")]
    StoppedInFlight,
}

impl WriteError {
    /// True when the write may have been applied (or may still be).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, WriteError::Discarded | WriteError::Unconfirmed | WriteError::StoppedInFlight)
    }

    /// From openraft's answer to a proposal. Its `ForwardToLeader` is given only
    /// before an entry is appended (openraft's own contract): not applied.
    pub(super) fn from_raft(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>, layout: &StripeLayout) -> WriteError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_active(&f, layout),
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => WriteError::Discarded,
            // Membership changes and preconditions are not client writes; a fatal
            // error may come after the entry was appended.
            RaftError::APIError(_) | RaftError::Fatal(_) => WriteError::StoppedInFlight,
        }
    }
}

fn not_active(f: &ForwardToLeader<TypeConfig>, layout: &StripeLayout) -> WriteError {
    match f.reason {
        ForwardReason::LeaseExpired => WriteError::NoQuorum,
        ForwardReason::NotLeader | ForwardReason::LeadershipTransfer => WriteError::NotActive { active: active_name(f, layout) },
    }
}

/// The configured name of the server a `ForwardToLeader` points at, if known.
fn active_name(f: &ForwardToLeader<TypeConfig>, layout: &StripeLayout) -> Option<String> {
    f.leader_node.as_ref().and_then(|node| layout.by_group_addr(&node.addr)).map(|member| member.name.clone())
}

/// A linearizable read that cannot be served here now (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("this server is not the active of its stripe")]
    NotActive { active: Option<String> },
    #[error("the active cannot confirm with a majority of its stripe's servers that it still is the active")]
    NoQuorum,
    #[error("this server's member of the stripe has stopped")]
    Stopped,
}

impl ReadError {
    pub(super) fn from_raft(e: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>, layout: &StripeLayout) -> ReadError {
        match e {
            RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => match not_active(&f, layout) {
                WriteError::NoQuorum => ReadError::NoQuorum,
                _ => ReadError::NotActive { active: active_name(&f, layout) },
            },
            RaftError::APIError(LinearizableReadError::QuorumNotEnough(_)) => ReadError::NoQuorum,
            RaftError::Fatal(_) => ReadError::Stopped,
        }
    }
}

/// Why SAVE's snapshot was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaveError {
    #[error("this server's member of the stripe has stopped")]
    Stopped,
    #[error("the snapshot was not finished within {secs} s")]
    TimedOut { secs: u64 },
    #[error("{problem}")]
    Failed { problem: String },
}
