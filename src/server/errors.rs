//! The RESP edge of failures: how a write or read that did not get its answer is told
//! to the client. Every such error is decided here, and each one says whether the
//! write may have been applied:
//!
//! - "not applied" (safe to retry): `TRYAGAIN`, `CLUSTERDOWN`, `MISCONF`, `ERR`;
//! - "outcome unknown": [`UNKNOWN_OUTCOME`], a code no client library retries by
//!   itself. Until writes carry a de-duplication tag (DESIGN.md §6), a retry of a
//!   write that was applied (an `INCR`) would apply it twice, so the client must be
//!   the one to decide, after reading.
//!
//! Which codes clients retry on their own, read in their sources:
//! - go-redis (redis/go-redis 216593c, `error.go` `shouldRetry`): `LOADING`,
//!   `READONLY`, `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`, `NOREPLICAS`,
//!   `ERR max number of clients reached`; cluster mode follows `MOVED`/`ASK`.
//! - redis-py (redis/redis-py 34817ce, `_parsers/base.py`, `cluster.py`): `LOADING`
//!   (a `ConnectionError`, retried by the default `Retry`) and
//!   `ERR max number of clients reached`; `RedisCluster` also retries `CLUSTERDOWN`,
//!   `MASTERDOWN`, `TRYAGAIN` and follows `MOVED`/`ASK`. Other codes raise
//!   `ResponseError`, never retried.
//! - ioredis (redis/ioredis dfd5428, `cluster/index.ts`): `Cluster` retries `TRYAGAIN`
//!   and `CLUSTERDOWN` and follows `MOVED`/`ASK`; a plain client retries nothing
//!   unless the application sets `reconnectOnError`.
//! - node-redis (redis/node-redis 2a92b2e), Lettuce (redis/lettuce b0bcdd8) and Jedis
//!   (redis/jedis 9bcb5c6, `ClusterCommandExecutor`): only `MOVED`/`ASK` (and their
//!   own connection errors).
//!
//! No library knows [`UNKNOWN_OUTCOME`]: each reports it to the application as a plain
//! error reply.

use crate::protocol::reply::Reply;
use crate::replication::errors::{ReadError, WriteError};

/// The error code of a write whose outcome is unknown (see the module doc).
pub const UNKNOWN_OUTCOME: &str = "OUTCOMEUNKNOWN";

// Routing refusals: the request was never sent to a state machine, so nothing was
// applied and the retry codes are right.

/// No server of the stripe is the active, even after waiting out an election.
/// `-CLUSTERDOWN` for a request to another stripe of the array that has no active
/// this server can reach: only that stripe's slots are unavailable.
pub fn stripe_down(stripe: &str) -> Reply {
    Reply::error(format!(
        "CLUSTERDOWN stripe {stripe} has no active server right now: its hash slots are unavailable, the rest of the array works; nothing was applied; retry"
    ))
}

pub const ERR_NO_ACTIVE: &str = "CLUSTERDOWN no active server in this stripe right now (election in progress); nothing was applied; retry";
/// A torn upstream's active did not end it in time: it may still be running this
/// client's earlier commands, which must run before anything sent now.
pub const ERR_EARLIER_STILL_RUNNING: &str =
    "TRYAGAIN the active has not finished this client's earlier commands; nothing was applied; retry";
/// Commands went back to routing more often than one change of active explains.
pub const ERR_LEADERSHIP_FLAPPING: &str = "TRYAGAIN the stripe's active keeps changing; nothing was applied; retry";
/// A blocking command whose server lost the role while it waited (it popped nothing).
pub const ERR_DEPOSED_WHILE_BLOCKED: &str =
    "TRYAGAIN this server stopped being the active of its stripe while the command waited; nothing was applied; retry";
/// A forwarded request reached a server that would forward it once more.
/// How a server that is not the active starts its answer to a command it did not
/// apply (`write_reply`, `read_reply`).
const NOT_ACTIVE: &str = "TRYAGAIN this server is not the active of its stripe";

/// Whether a reply frame is an answer of a server that is not the active (or no longer
/// is) to a command it did not apply ([`NOT_ACTIVE`], [`ERR_NOT_ACTIVE_EITHER`]): a
/// mirror that gets one for a forwarded command sends it to the new active instead of
/// relaying it.
pub fn is_bounce(frame: &[u8]) -> bool {
    let text = frame.strip_prefix(b"-").unwrap_or_default();
    text.starts_with(NOT_ACTIVE.as_bytes()) || text.starts_with(ERR_NOT_ACTIVE_EITHER.as_bytes())
}

pub const ERR_NOT_ACTIVE_EITHER: &str =
    "TRYAGAIN this request was forwarded to a server that is not the active of its stripe either; nothing was applied; retry";

/// The active named by the cluster view cannot be connected to.
pub fn active_unreachable(name: &str, addr: &str, why: &dyn std::fmt::Display) -> Reply {
    Reply::error(format!("CLUSTERDOWN the active of this stripe ({name} at {addr}) cannot be reached: {why}; nothing was applied; retry"))
}

/// The active refused the forwarding connection's handshake (a password mismatch).
pub fn forward_refused(name: &str, why: &str) -> Reply {
    Reply::error(format!("ERR the active {name} refused this server's forwarded connection: {why}"))
}

/// The reply to a client's write while the active's last snapshot failed and
/// `stop-writes-on-bgsave-error` is on (Redis's refusal after a failed BGSAVE).
pub fn snapshot_refusal(problem: &str) -> Reply {
    Reply::error(format!(
        "MISCONF Tandem cannot write a snapshot ({problem}); writes are refused until one succeeds (tried again every {} s; every acknowledged write is in the log; CONFIG SET stop-writes-on-bgsave-error no accepts writes meanwhile)",
        crate::replication::snapshot_health::RETRY.as_secs()
    ))
}

/// The reply to a write that got no answer from the state machine.
pub fn write_reply(e: &WriteError) -> Reply {
    match e {
        WriteError::NotActive { active } => Reply::error(format!("{NOT_ACTIVE}{}; nothing was applied; retry", active_is(active))),
        WriteError::NoQuorum => {
            Reply::err("TRYAGAIN the active cannot reach a majority of its stripe's servers; nothing was applied; retry")
        }
        WriteError::DiskTrouble { problem } => Reply::error(format!(
            "MISCONF Tandem cannot make writes durable ({problem}); writes are refused until the data directory accepts them again"
        )),
        WriteError::TooLarge { max_bytes } => {
            Reply::error(format!("ERR this write is larger than one log record may be ({} MB); split it", max_bytes / (1024 * 1024)))
        }
        WriteError::Stopped => Reply::err("ERR this server's member of the stripe has stopped; nothing was applied"),
        WriteError::Discarded | WriteError::Unconfirmed | WriteError::StoppedInFlight => unknown_outcome(&e.to_string()),
    }
}

/// The reply to a read that cannot be served consistently here now.
pub fn read_reply(e: &ReadError) -> Reply {
    match e {
        ReadError::NotActive { active } => Reply::error(format!("{NOT_ACTIVE}{}; retry", active_is(active))),
        ReadError::NoQuorum => {
            Reply::err("TRYAGAIN this server cannot confirm with a majority of its stripe's servers that it still is the active; retry")
        }
        ReadError::Stopped => Reply::err("ERR this server's member of the stripe has stopped"),
    }
}

/// A write of unknown outcome: `why` is a sentence about the stripe ("the active
/// changed before the write committed").
pub fn unknown_outcome(why: &str) -> Reply {
    Reply::error(format!("{UNKNOWN_OUTCOME} {why}; the write may or may not have been applied: read before retrying it"))
}

/// A forwarded command whose reply never came from the active: a write's outcome is
/// unknown, anything else changed nothing and may simply be sent again.
pub fn lost_in_flight(write: bool) -> Reply {
    if write {
        unknown_outcome("the connection to the active was lost with this write in flight")
    } else {
        Reply::err("TRYAGAIN the connection to the active was lost before this command's reply; nothing was changed; retry")
    }
}

fn active_is(active: &Option<String>) -> String {
    active.as_ref().map(|name| format!(" (the active is {name})")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_recognises_exactly_the_not_applied_answers_of_a_server_that_is_not_the_active() {
        let frame = |reply: Reply| {
            let mut out = bytes::BytesMut::new();
            reply.encode(&mut out, false);
            out
        };
        assert!(is_bounce(&frame(write_reply(&WriteError::NotActive { active: Some("server2".into()) }))));
        assert!(is_bounce(&frame(write_reply(&WriteError::NotActive { active: None }))));
        assert!(is_bounce(&frame(Reply::err(ERR_NOT_ACTIVE_EITHER))));
        assert!(!is_bounce(&frame(write_reply(&WriteError::NoQuorum))));
        assert!(!is_bounce(&frame(write_reply(&WriteError::Discarded))), "an unknown outcome is not a bounce");
        assert!(!is_bounce(&frame(Reply::bulk(NOT_ACTIVE.as_bytes()))), "a value that reads like one is not");
    }

    fn code(reply: &Reply) -> String {
        match reply {
            Reply::Error(text) => text.split(' ').next().unwrap_or_default().to_string(),
            other => panic!("not an error: {other:?}"),
        }
    }

    /// The codes some client library retries by itself (module doc).
    const RETRIED: &[&str] = &["TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "MASTERDOWN", "NOREPLICAS", "MOVED", "ASK"];

    #[test]
    fn unknown_outcomes_get_a_code_no_client_retries_and_say_so() {
        for e in [WriteError::Discarded, WriteError::Unconfirmed, WriteError::StoppedInFlight] {
            assert!(e.outcome_unknown());
            let reply = write_reply(&e);
            assert!(!RETRIED.contains(&code(&reply).as_str()), "{reply:?}");
            assert!(format!("{reply:?}").contains("may or may not have been applied"), "{reply:?}");
        }
        let reply = lost_in_flight(true);
        assert!(!RETRIED.contains(&code(&reply).as_str()), "{reply:?}");
    }

    #[test]
    fn refusals_say_nothing_was_applied() {
        for e in [WriteError::NotActive { active: Some("server2".into()) }, WriteError::NoQuorum, WriteError::Stopped] {
            assert!(!e.outcome_unknown());
            let reply = write_reply(&e);
            assert!(format!("{reply:?}").contains("nothing was applied"), "{reply:?}");
        }
        assert_eq!(code(&write_reply(&WriteError::NotActive { active: None })), "TRYAGAIN");
        assert!(format!("{:?}", write_reply(&WriteError::NotActive { active: Some("server2".into()) })).contains("the active is server2"));
    }
}
