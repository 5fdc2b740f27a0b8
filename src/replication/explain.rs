//! Sentences for what an operator reads (CLI answers, refusals, the logs of the
//! stripe's procedures) when openraft reports an error: about stripes, servers and
//! states, never a dump of openraft's internal structures (memberships, log ids,
//! `BasicNode { … }`). Each function takes one openraft error type and says what it
//! means for the stripe; callers name the server and the procedure around it.
//!
//! It knows openraft's error types and nothing else: the member names come from
//! the caller's `name_of`.

use openraft::errors::{ChangeMembershipError, ClientWriteError, Fatal, InitializeError, RaftError};

use super::types::TypeConfig;

/// Why this member's Raft stopped working.
pub fn fatal(e: &Fatal<TypeConfig>) -> String {
    match e {
        Fatal::StorageError(e) => format!("this server's Raft member stopped: its storage failed ({e})"),
        Fatal::Panicked => "this server's Raft member stopped after an internal error (see its log)".to_string(),
        Fatal::Stopped => "this server's Raft member is shutting down".to_string(),
    }
}

/// A membership change (adding a learner, promoting it, removing stale members)
/// that the active could not make. `name_of` names a node id.
pub fn membership_change(e: &RaftError<TypeConfig, ClientWriteError<TypeConfig>>, name_of: impl Fn(u64) -> String) -> String {
    match e {
        RaftError::Fatal(f) => fatal(f),
        RaftError::APIError(ClientWriteError::ForwardToLeader(f) | ClientWriteError::LogEntryDiscarded(f)) => match f.leader_id {
            Some(id) => format!("this server is no longer the active of its stripe ({} is)", name_of(id)),
            None => "this server is no longer the active of its stripe, and no active is known yet".to_string(),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => match c {
            ChangeMembershipError::InProgress(_) => {
                "another change of the stripe's members is still being committed; it is retried once that one is done".to_string()
            }
            ChangeMembershipError::EmptyMembership(_) => "the change would leave the stripe with no voting member".to_string(),
            ChangeMembershipError::LearnerNotFound(l) => {
                format!("{} has not joined the stripe yet, so it cannot be made a voting member", name_of(l.node_id))
            }
            ChangeMembershipError::UnsupportedMembershipTransition(_) => {
                "the stripe cannot change from its current voting members to the new ones in one step".to_string()
            }
            ChangeMembershipError::UncommittedLeaderLog(_) => {
                "the active has not yet committed an entry of its own term; it is retried in a moment".to_string()
            }
            ChangeMembershipError::NodeMetadataChanged(_) => {
                "a member's address would change under the same node id, which the stripe never allows".to_string()
            }
        },
        RaftError::APIError(ClientWriteError::PreconditionFailed(_)) => "the stripe changed since the request was made".to_string(),
    }
}

/// Why forming a stripe failed.
pub fn initialize(e: &RaftError<TypeConfig, InitializeError<TypeConfig>>) -> String {
    match e {
        RaftError::Fatal(f) => fatal(f),
        RaftError::APIError(InitializeError::NotAllowed(_)) => "this member already holds a stripe's log or vote".to_string(),
        RaftError::APIError(InitializeError::NotInMembers(_)) => "this member is not among the members it was to form".to_string(),
    }
}

/// Waiting for a change of the stripe (e.g. a mirror taking over) that did not come.
pub fn wait(e: &openraft::metrics::WaitError, what: &str) -> String {
    match e {
        openraft::metrics::WaitError::Timeout(after, _) => format!("{what} did not happen within {} ms", after.as_millis()),
        openraft::metrics::WaitError::ShuttingDown => format!("this server is shutting down before {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::errors::{ForwardToLeader, InProgress, LearnerNotFound};

    fn is_a_sentence(text: &str) {
        for leak in ["BasicNode", "{", "LogId", "voters:", "Some("] {
            assert!(!text.contains(leak), "{text:?} shows openraft's internals ({leak})");
        }
    }

    #[test]
    fn membership_errors_read_as_sentences_about_servers() {
        let name_of = |id: u64| format!("server{id}");
        let forward: RaftError<TypeConfig, ClientWriteError<TypeConfig>> =
            RaftError::APIError(ClientWriteError::ForwardToLeader(ForwardToLeader::new(2, openraft::BasicNode { addr: "h:1".into() })));
        let text = membership_change(&forward, name_of);
        assert!(text.contains("server2 is"), "{text}");
        is_a_sentence(&text);
        let in_progress: RaftError<TypeConfig, ClientWriteError<TypeConfig>> =
            RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(InProgress {
                committed: None,
                membership_log_id: None,
            })));
        is_a_sentence(&membership_change(&in_progress, name_of));
        let missing: RaftError<TypeConfig, ClientWriteError<TypeConfig>> =
            RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::LearnerNotFound(LearnerNotFound {
                node_id: 7,
            })));
        let text = membership_change(&missing, name_of);
        assert!(text.contains("server7"), "{text}");
        is_a_sentence(&text);
        is_a_sentence(&fatal(&Fatal::Stopped));
    }
}
