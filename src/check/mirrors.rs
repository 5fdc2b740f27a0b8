//! What the clients of mirrors saw (DESIGN.md §6: a mirror forwards its clients'
//! writes with an exactly-once tag and re-sends them to a new active, so a failover
//! costs them neither an error nor a duplicate). Each such client writes only its
//! own counter and lists, so its duplicates can be counted exactly:
//!
//! - on its counter, an acknowledged INCR that answered `v` was preceded by `v`
//!   increments: the acknowledged ones that answered less, the unknown ones invoked
//!   before it ended (applied in time, or not, or late), and duplicates. So each such
//!   reply, and the read after healing, gives a number of increments that must have
//!   been applied twice; the largest is the count (a lower bound: a duplicate that an
//!   unknown INCR could explain is not counted);
//! - in its lists, as read after healing, every value beyond its first appearance is
//!   an append applied twice.
//!
//! The goal is 0 duplicates and 0 unknown outcomes. Duplicates are also violations
//! of the counter and list checks; an unknown outcome is not a violation (a client
//! whose own server dies cannot know what it sent last), so the tally tells apart
//! the unknown outcomes a server answered from those of a lost connection.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::clients::Kind;
use super::history::{Call, Counts, Op, Outcome, Ret, FINAL_CLIENT};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub clients: usize,
    pub ops: Counts,
    /// Unknown outcomes a server answered (an error saying so).
    pub unknown_answered: usize,
    /// Increments and appends applied twice.
    pub duplicates: usize,
    /// The first few operations of unknown outcome, to see where they came from.
    pub unknown_shown: Vec<Op>,
}

/// How many operations of unknown outcome a report shows.
const UNKNOWN_SHOWN_MAX: usize = 5;

/// The tally of the clients `first..first + count` (the clients of mirrors), from a
/// run's history including the reads after healing.
pub fn tally(ops: &[Op], first: usize, count: usize) -> Tally {
    let theirs = |client: usize| client >= first && client < first + count;
    // Their keys are theirs alone (and the reads after healing'): collect only those.
    let keys: BTreeSet<&str> = ops.iter().filter(|o| theirs(o.client)).map(|o| o.key.as_str()).collect();
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|o| keys.contains(o.key.as_str())) {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mine: Vec<&Op> = ops.iter().filter(|o| theirs(o.client)).collect();
    let unknown_answered = mine.iter().filter(|o| matches!(&o.outcome, Outcome::Unknown(why) if answered(why))).count();
    let mut duplicates = 0;
    for (key, on) in &by_key {
        duplicates += match Kind::of(key) {
            Some(Kind::Counter) => counter_duplicates(on),
            Some(Kind::List) => list_duplicates(on),
            _ => 0,
        };
    }
    let unknown_shown = mine.iter().filter(|o| o.is_unknown()).take(UNKNOWN_SHOWN_MAX).map(|&o| o.clone()).collect();
    Tally { clients: count, ops: Counts::of(mine), unknown_answered, duplicates, unknown_shown }
}

/// True if an unknown outcome's reason is a server's error reply rather than a lost,
/// reset or timed-out connection (the `redis` crate's texts for those).
fn answered(why: &str) -> bool {
    let lower = why.to_ascii_lowercase();
    !["broken pipe", "connection reset", "timed out", "connection refused", "os error", "unexpected end", "connection closed", "io error"]
        .iter()
        .any(|t| lower.contains(t))
}

/// Increments applied twice on a counter only one client writes (see the module doc).
fn counter_duplicates(ops: &[&Op]) -> usize {
    let incrs: Vec<&Op> = ops.iter().copied().filter(|o| o.call == Call::Incr).collect();
    let mut acked: Vec<i64> = incrs.iter().filter_map(|o| if let Some(Ret::Int(v)) = o.ret() { Some(*v) } else { None }).collect();
    acked.sort_unstable();
    let mut unknown_invoked: Vec<u64> = incrs.iter().filter(|o| o.is_unknown()).map(|o| o.invoke_ns).collect();
    unknown_invoked.sort_unstable();
    // What an applied value `v` observed by `until` cannot be without duplicates.
    let excess = |v: i64, until: u64| {
        let acked_up_to = acked.partition_point(|&a| a <= v) as i64;
        let unknown_before = unknown_invoked.partition_point(|&t| t <= until) as i64;
        v - acked_up_to - unknown_before
    };
    let from_replies = incrs.iter().filter_map(|o| match o.ret() {
        Some(Ret::Int(v)) => Some(excess(*v, o.complete_ns)),
        _ => None,
    });
    let from_final = ops.iter().filter(|o| o.client == FINAL_CLIENT && o.call == Call::ReadCounter).filter_map(|o| match o.ret() {
        // The read after healing also sees the increments acknowledged above `v`,
        // none of which it can hold without holding `v` first: count them all.
        Some(Ret::Int(v)) => Some(v - acked.len() as i64 - unknown_invoked.len() as i64),
        _ => None,
    });
    from_replies.chain(from_final).max().unwrap_or(0).max(0) as usize
}

/// Values that appear more than once in the read of a list after healing.
fn list_duplicates(ops: &[&Op]) -> usize {
    let Some(Ret::List(items)) = ops.iter().rev().find(|o| o.client == FINAL_CLIENT).and_then(|o| o.ret()) else { return 0 };
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for item in items {
        *seen.entry(*item).or_default() += 1;
    }
    seen.values().map(|n| n - 1).sum()
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} clients of mirrors: {} operations ({} ok, {} failed, {} unknown: {} answered by a server, {} with no answer: connection lost or timed out), {} duplicates",
            self.clients,
            self.ops.total(),
            self.ops.ok,
            self.ops.fail,
            self.ops.unknown,
            self.unknown_answered,
            self.ops.unknown - self.unknown_answered,
            self.duplicates
        )?;
        for op in &self.unknown_shown {
            write!(f, "\n    {op}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::pack;

    fn op(client: usize, key: &str, call: Call, outcome: Outcome, at: u64) -> Op {
        Op { client, server: 0, key: key.into(), call, outcome, invoke_ns: at, complete_ns: at + 1, retried: Vec::new() }
    }

    fn incr(v: i64, at: u64) -> Op {
        op(7, "counter:m7", Call::Incr, Outcome::Ok(Ret::Int(v)), at)
    }

    #[test]
    fn a_step_over_an_unknown_incr_is_no_duplicate_and_one_past_it_is() {
        let unknown = op(7, "counter:m7", Call::Incr, Outcome::Unknown("OUTCOMEUNKNOWN the outcome is unknown".into()), 2);
        let fin = op(FINAL_CLIENT, "counter:m7", Call::ReadCounter, Outcome::Ok(Ret::Int(4)), 9);
        let clean = [incr(1, 1), unknown.clone(), incr(3, 3), fin.clone()];
        let t = tally(&clean, 7, 1);
        assert_eq!((t.duplicates, t.ops.unknown, t.unknown_answered), (1, 1, 1), "the final read is one past the last reply");
        let fin3 = op(FINAL_CLIENT, "counter:m7", Call::ReadCounter, Outcome::Ok(Ret::Int(3)), 9);
        assert_eq!(tally(&[incr(1, 1), unknown, incr(3, 3), fin3.clone()], 7, 1).duplicates, 0);
        assert_eq!(tally(&[incr(1, 1), incr(3, 3), fin3], 7, 1).duplicates, 1, "a step of two with no unknown INCR");
    }

    #[test]
    fn an_unknown_incr_applied_late_is_no_duplicate() {
        // The unknown INCR invoked first lands after the next two: replies 1, 2, then 4.
        let unknown = op(7, "counter:m7", Call::Incr, Outcome::Unknown("unexpected end of file".into()), 1);
        let fin = op(FINAL_CLIENT, "counter:m7", Call::ReadCounter, Outcome::Ok(Ret::Int(4)), 20);
        let h = [unknown, incr(1, 3), incr(2, 5), incr(4, 7), fin];
        assert_eq!(tally(&h, 7, 1).duplicates, 0);
        let fin5 = op(FINAL_CLIENT, "counter:m7", Call::ReadCounter, Outcome::Ok(Ret::Int(5)), 20);
        let mut twice = h.to_vec();
        twice[4] = fin5;
        assert_eq!(tally(&twice, 7, 1).duplicates, 1, "one more than every INCR sent");
    }

    #[test]
    fn a_value_twice_in_a_list_is_a_duplicate_and_a_lost_connection_is_not_answered() {
        let key = "list:m7:0";
        let lost = op(7, key, Call::Append("7-2".into()), Outcome::Unknown("broken pipe (os error 32)".into()), 2);
        let ok = op(7, key, Call::Append("7-1".into()), Outcome::Ok(Ret::Int(1)), 1);
        let fin = op(FINAL_CLIENT, key, Call::ReadList, Outcome::Ok(Ret::List(vec![pack("7-1"), pack("7-2"), pack("7-2")])), 9);
        let t = tally(&[ok, lost, fin], 7, 1);
        assert_eq!((t.duplicates, t.ops.unknown, t.unknown_answered), (1, 1, 0));
        assert!(t.to_string().contains("1 with no answer: connection lost or timed out), 1 duplicates\n    "), "{t}");
    }

    #[test]
    fn other_clients_are_not_counted() {
        let other = op(1, "counter:0", Call::Incr, Outcome::Unknown("timed out".into()), 1);
        assert_eq!(tally(&[other], 7, 1), Tally { clients: 1, ..Tally::default() });
    }
}
