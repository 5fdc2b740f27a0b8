//! The list-append checks of one key (values appended with RPUSH are unique, reads
//! are LRANGE of the whole list):
//!
//! - every read holds only values that were appended (by an RPUSH that did not fail,
//!   invoked before the read ended), each once;
//! - every read is a prefix of the longest read: all reads agree on one order;
//! - real time is respected: a read sees at least what a read that ended before it
//!   began saw, and every append acknowledged before it began; an append
//!   acknowledged before another was invoked comes first in the list;
//! - every acknowledged append is in the longest read (the read after healing), at
//!   the position its RPUSH reply (the new length) named.

use std::collections::{HashMap, HashSet};

use super::history::{pack, unpack, Call, Op, Outcome, Ret, FOREIGN};
use super::Violation;

/// At most this many violations of one kind are reported per key.
const SHOWN_PER_KIND_MAX: usize = 3;

struct Found {
    key: String,
    counts: HashMap<&'static str, usize>,
    violations: Vec<Violation>,
}

impl Found {
    fn add(&mut self, kind: &'static str, what: String, ops: Vec<&Op>) {
        let count = self.counts.entry(kind).or_default();
        *count += 1;
        if *count <= SHOWN_PER_KIND_MAX {
            self.violations.push(Violation { checker: "lists", key: self.key.clone(), what, ops: ops.into_iter().cloned().collect() });
        }
    }
}

pub fn check(key: &str, ops: &[&Op]) -> Vec<Violation> {
    let mut found = Found { key: key.to_string(), counts: HashMap::new(), violations: Vec::new() };
    let appends: HashMap<u64, &Op> =
        ops.iter().filter_map(|&op| if let Call::Append(v) = &op.call { Some((pack(v), op)) } else { None }).collect();
    let reads: Vec<(&Op, &Vec<u64>)> =
        ops.iter().filter_map(|&op| if let Some(Ret::List(items)) = op.ret() { Some((op, items)) } else { None }).collect();
    for &(read, items) in &reads {
        check_values(&mut found, &appends, read, items);
    }
    let Some(&(longest, reference)) = reads.iter().max_by_key(|(op, items)| (items.len(), op.complete_ns)) else {
        return found.violations;
    };
    for &(read, items) in &reads {
        if reference.get(..items.len()) != Some(items.as_slice()) {
            found.add("order", "two reads disagree on the order of the list: one is not a prefix of the other".into(), vec![read, longest]);
        }
    }
    let position: HashMap<u64, usize> = reference.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    check_acknowledged(&mut found, &appends, &position, longest);
    check_real_time(&mut found, &reads, &appends, &position);
    found.violations
}

fn check_values(found: &mut Found, appends: &HashMap<u64, &Op>, read: &Op, items: &[u64]) {
    let mut seen = HashSet::new();
    for &item in items {
        let v = unpack(item);
        if item != FOREIGN && !seen.insert(item) {
            let resent = appends.get(&item).filter(|a| !a.retried.is_empty());
            let why = resent
                .map_or(String::new(), |a| format!(": its RPUSH, sent {} times by a retrying client, applied twice", a.retried.len() + 1));
            found.add("duplicate", format!("{v:?} appears twice in one read{why}"), resent.into_iter().copied().chain([read]).collect());
        }
        match appends.get(&item) {
            None => found.add("never-appended", format!("the read holds {v:?}, which was never appended to this key"), vec![read]),
            Some(a) if matches!(a.outcome, Outcome::Fail(_)) => {
                found.add("failed-append", format!("the read holds {v:?}, whose RPUSH failed (was refused)"), vec![a, read])
            }
            Some(a) if a.invoke_ns > read.complete_ns => {
                found.add("future", format!("the read holds {v:?}, appended only after the read ended"), vec![read, a])
            }
            Some(_) => {}
        }
    }
}

/// Every acknowledged append is in the longest read, where its reply said.
fn check_acknowledged(found: &mut Found, appends: &HashMap<u64, &Op>, position: &HashMap<u64, usize>, longest: &Op) {
    let mut acked: Vec<(u64, &Op)> = appends.iter().filter(|(_, a)| a.is_ok()).map(|(v, a)| (*v, *a)).collect();
    acked.sort_by_key(|(_, a)| a.invoke_ns);
    for (item, a) in acked {
        let v = unpack(item);
        match (position.get(&item), a.ret()) {
            (None, _) => found.add("lost", format!("acknowledged append of {v:?} is missing from the longest read"), vec![a, longest]),
            (Some(&p), Some(Ret::Int(len))) if *len != p as i64 + 1 => found.add(
                "position",
                format!("RPUSH of {v:?} answered length {len}, but the value sits at position {} of the longest read", p + 1),
                vec![a, longest],
            ),
            _ => {}
        }
    }
}

/// Reads never shrink in real time, see every append acknowledged before they
/// began, and appends keep their real-time order.
fn check_real_time(found: &mut Found, reads: &[(&Op, &Vec<u64>)], appends: &HashMap<u64, &Op>, position: &HashMap<u64, usize>) {
    // Things that ended, in order of their end: (end, length they imply, op).
    let mut ended: Vec<(u64, usize, &Op)> = reads.iter().map(|(op, items)| (op.complete_ns, items.len(), *op)).collect();
    // An acknowledged RPUSH names the length of the list right after it.
    for a in appends.values() {
        if let Some(Ret::Int(len)) = a.ret() {
            ended.push((a.complete_ns, usize::try_from(*len).unwrap_or(0), a));
        }
    }
    ended.sort_by_key(|e| e.0);
    let mut by_invoke: Vec<(&Op, usize)> = reads.iter().map(|(op, items)| (*op, items.len())).collect();
    by_invoke.sort_by_key(|(op, _)| op.invoke_ns);
    let mut best: Option<(usize, &Op)> = None;
    let mut next = 0;
    for (read, len) in by_invoke {
        while next < ended.len() && ended[next].0 < read.invoke_ns {
            // On a tie, a read: a read that goes back says more than a missing append.
            let (len, op) = (ended[next].1, ended[next].2);
            if best.is_none_or(|(l, _)| len > l || (len == l && op.call == Call::ReadList)) {
                best = Some((len, op));
            }
            next += 1;
        }
        if let Some((need, before)) = best.filter(|(need, _)| *need > len) {
            let what = if matches!(before.call, Call::Append(_)) {
                format!("a read of {len} items misses an append acknowledged (at position {need}) before the read began")
            } else {
                format!("a read of {len} items began after a read of {need} items ended")
            };
            found.add("real-time", what, vec![before, read]);
        }
    }
    // Appends: one acknowledged before another was invoked sits before it.
    let mut placed: Vec<(&Op, usize)> = appends.iter().filter_map(|(v, a)| position.get(v).map(|&p| (*a, p))).collect();
    let mut acked_by_end: Vec<(&Op, usize)> = placed.iter().copied().filter(|(a, _)| a.is_ok()).collect();
    acked_by_end.sort_by_key(|(a, _)| a.complete_ns);
    placed.sort_by_key(|(a, _)| a.invoke_ns);
    let mut latest: Option<(usize, &Op)> = None;
    let mut next = 0;
    for (b, pb) in placed {
        while next < acked_by_end.len() && acked_by_end[next].0.complete_ns < b.invoke_ns {
            if latest.is_none_or(|(p, _)| acked_by_end[next].1 > p) {
                latest = Some((acked_by_end[next].1, acked_by_end[next].0));
            }
            next += 1;
        }
        if let Some((pa, a)) = latest.filter(|(pa, _)| *pa > pb) {
            found.add(
                "append-order",
                format!("an append acknowledged before another was invoked sits after it (positions {} and {})", pa + 1, pb + 1),
                vec![a, b],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: Call, outcome: Outcome, invoke_ns: u64, complete_ns: u64) -> Op {
        Op { client, server: 0, key: "l".into(), call, outcome, invoke_ns, complete_ns, retried: Vec::new() }
    }
    fn append(v: &str, len: i64, t: u64) -> Op {
        op(0, Call::Append(v.into()), Outcome::Ok(Ret::Int(len)), t, t + 1)
    }
    fn read(items: &[&str], t: u64) -> Op {
        op(1, Call::ReadList, Outcome::Ok(Ret::List(items.iter().map(|s| pack(s)).collect())), t, t + 1)
    }
    fn kinds(ops: &[Op]) -> Vec<String> {
        let refs: Vec<&Op> = ops.iter().collect();
        check("l", &refs).into_iter().map(|v| v.what).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let h = [append("0-1", 1, 0), read(&["0-1"], 2), append("0-2", 2, 4), read(&["0-1", "0-2"], 6), read(&["0-1", "0-2"], 8)];
        assert!(kinds(&h).is_empty(), "{:?}", kinds(&h));
    }

    #[test]
    fn a_lost_acknowledged_append_is_caught() {
        let h = [append("0-1", 1, 0), append("0-2", 2, 2), read(&["0-1"], 6)];
        let found = kinds(&h);
        assert!(found.iter().any(|w| w.contains("missing")), "{found:?}");
        assert!(found.iter().any(|w| w.contains("misses an append")), "{found:?}");
    }

    #[test]
    fn a_read_that_goes_back_in_time_is_caught() {
        let h = [append("0-1", 1, 0), append("0-2", 2, 2), read(&["0-1", "0-2"], 6), read(&["0-1"], 10), read(&["0-1", "0-2"], 12)];
        assert!(kinds(&h).iter().any(|w| w.contains("began after a read of 2 items")), "{:?}", kinds(&h));
    }

    #[test]
    fn disagreeing_orders_and_foreign_values_are_caught() {
        let unknown = |v: &str, t| op(0, Call::Append(v.into()), Outcome::Unknown("timeout".into()), t, t + 1);
        let h = [unknown("0-1", 0), unknown("0-2", 0), read(&["0-1", "0-2"], 6), read(&["0-2"], 8), read(&["0-1", "9-9"], 9)];
        let found = kinds(&h);
        assert!(found.iter().any(|w| w.contains("disagree")), "{found:?}");
        assert!(found.iter().any(|w| w.contains("never appended")), "{found:?}");
    }

    #[test]
    fn appends_keep_their_real_time_order() {
        let h = [append("0-1", 2, 0), append("0-2", 1, 4), read(&["0-2", "0-1"], 8)];
        let found = kinds(&h);
        assert!(found.iter().any(|w| w.contains("sits after it")), "{found:?}");
    }
}
