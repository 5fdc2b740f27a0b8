//! The checks of one key with a time to live (`SET v PX ms`, `GET`, and `GET`+`PTTL`
//! in one transaction). The register model cannot judge such a key (its value goes
//! away by itself, at a time only the server's clock knows), but values are unique
//! and the server's clock must never go back (DESIGN.md §4: an entry's time is never
//! below the last applied one), so whatever the servers' wall clocks say:
//!
//! - **no value comes back**: once a read that began after `v` was certainly in place
//!   (its SET acknowledged, or `v` read) returned something else, no later read
//!   returns `v` (it expired, or was replaced, and no one writes `v` again);
//! - **no time to live is longer than its SET asked**: `PTTL` is the expiry (the
//!   SET's time plus its `PX`) minus the server's time now, so more than `PX` means
//!   the time went back below the SET's;
//! - **no time to live grows**: two reads of the same value, the second begun after
//!   the first ended, the second no longer;
//! - every value read was written to the key (by a SET not refused, invoked before the
//!   read ended).
//!
//! A SET that a retrying client sent more than once may have been applied more than
//! once (each time with a new expiry); a violation on its value says so.

use std::collections::HashMap;

use super::history::{Call, Op, Outcome, Ret};
use super::Violation;

/// At most this many violations of one kind are reported per key.
const SHOWN_PER_KIND_MAX: usize = 3;

/// A successful read: what it returned (None: absent) and, for a GET+PTTL, the time
/// to live.
struct Read<'a> {
    op: &'a Op,
    value: Option<&'a str>,
    ttl_ms: Option<i64>,
}

pub fn check(key: &str, ops: &[&Op]) -> Vec<Violation> {
    let mut found = Found { key, counts: HashMap::new(), out: Vec::new() };
    let writes: HashMap<&str, &Op> = ops.iter().filter_map(|&op| op.call.written().map(|v| (v, op))).collect();
    let mut reads: Vec<Read> = ops.iter().filter_map(|&op| read_of(op)).collect();
    reads.sort_by_key(|r| r.op.invoke_ns);
    for r in &reads {
        let Some(v) = r.value else { continue };
        match writes.get(v) {
            None => found.add("never-written", format!("read {v:?}, a value never written to this key"), vec![r.op]),
            Some(w) if matches!(w.outcome, Outcome::Fail(_)) => {
                found.add("never-written", format!("read {v:?}, whose SET failed (was refused)"), vec![w, r.op])
            }
            Some(w) if w.invoke_ns > r.op.complete_ns => {
                found.add("never-written", format!("read {v:?}, written only after the read ended"), vec![r.op, w])
            }
            Some(w) => check_ttl_bound(&mut found, w, r),
        }
    }
    check_comes_back(&mut found, &writes, &reads);
    check_ttl_grows(&mut found, &writes, &reads);
    found.out
}

fn read_of(op: &Op) -> Option<Read<'_>> {
    match (&op.call, op.ret()?) {
        (Call::Get, Ret::Value(v)) => Some(Read { op, value: v.as_deref(), ttl_ms: None }),
        (Call::ReadTtl, Ret::ValueTtl(v, ttl)) => Some(Read { op, value: v.as_deref(), ttl_ms: Some(*ttl) }),
        _ => None,
    }
}

struct Found<'k> {
    key: &'k str,
    counts: HashMap<&'static str, usize>,
    out: Vec<Violation>,
}

impl Found<'_> {
    fn add(&mut self, kind: &'static str, what: String, ops: Vec<&Op>) {
        let count = self.counts.entry(kind).or_default();
        *count += 1;
        if *count <= SHOWN_PER_KIND_MAX {
            self.out.push(Violation { checker: "expiry", key: self.key.to_string(), what, ops: ops.into_iter().cloned().collect() });
        }
    }
}

/// ", or its SET was applied twice (it was sent again)" when that may be so.
fn resent(w: &Op) -> &'static str {
    if w.retried.is_empty() {
        ""
    } else {
        ", or its SET (sent more than once by a retrying client) was applied twice"
    }
}

fn check_ttl_bound(found: &mut Found, w: &Op, r: &Read) {
    let (Call::SetPx(v, px_ms), Some(ttl_ms)) = (&w.call, r.ttl_ms) else { return };
    if ttl_ms > *px_ms as i64 {
        found.add(
            "ttl-too-long",
            format!(
                "{v:?} had {ttl_ms} ms to live, more than the {px_ms} ms its SET asked for: the server's time went back below the SET's{}",
                resent(w)
            ),
            vec![w, r.op],
        );
    }
}

/// When each value was certainly in place: its SET acknowledged, or it was read.
fn established(writes: &HashMap<&str, &Op>, reads: &[Read]) -> HashMap<String, (u64, Op)> {
    let mut at: HashMap<String, (u64, Op)> = HashMap::new();
    let mut offer = |v: &str, t: u64, op: &Op| {
        if at.get(v).is_none_or(|(best, _)| t < *best) {
            at.insert(v.to_string(), (t, op.clone()));
        }
    };
    for (&v, w) in writes {
        if w.is_ok() {
            offer(v, w.complete_ns, w);
        }
    }
    for r in reads {
        if let Some(v) = r.value {
            offer(v, r.op.complete_ns, r.op);
        }
    }
    at
}

/// A value read again after a read that began once it was in place missed it.
fn check_comes_back(found: &mut Found, writes: &HashMap<&str, &Op>, reads: &[Read]) {
    // The reads of each value, in order of invocation.
    let mut of_value: HashMap<&str, Vec<&Read>> = HashMap::new();
    for r in reads {
        if let Some(v) = r.value {
            of_value.entry(v).or_default().push(r);
        }
    }
    for (v, (since_ns, shown)) in established(writes, reads) {
        // The earliest end of a read that began after `since_ns` and missed `v`.
        // Reads are in order of invocation: past the best end found, none can end earlier.
        let first = reads.partition_point(|r| r.op.invoke_ns <= since_ns);
        let mut missed: Option<&Read> = None;
        for r in &reads[first..] {
            if missed.is_some_and(|m| r.op.invoke_ns > m.op.complete_ns) {
                break;
            }
            if r.value != Some(v.as_str()) && missed.is_none_or(|m| r.op.complete_ns < m.op.complete_ns) {
                missed = Some(r);
            }
        }
        let Some(missed) = missed else { continue };
        let later = of_value.get(v.as_str()).map_or(&[][..], |rs| rs.as_slice());
        let back = later.get(later.partition_point(|r| r.op.invoke_ns <= missed.op.complete_ns));
        if let Some(back) = back {
            let what = match missed.value {
                None => "absent (expired)".to_string(),
                Some(other) => format!("{other:?}"),
            };
            let w = writes.get(v.as_str()).copied();
            found.add(
                "came-back",
                format!(
                    "{v:?} came back: a read that began after it was in place found the key {what}, and a later read returned {v:?} again (a read went back in time){}",
                    w.map_or("", resent)
                ),
                vec![&shown, missed.op, back.op],
            );
        }
    }
}

/// Two GET+PTTL reads of the same value: the later one has no more time left.
fn check_ttl_grows(found: &mut Found, writes: &HashMap<&str, &Op>, reads: &[Read]) {
    let mut by_value: HashMap<&str, Vec<&Read>> = HashMap::new();
    for r in reads {
        if let (Some(v), Some(ttl)) = (r.value, r.ttl_ms) {
            if ttl >= 0 {
                by_value.entry(v).or_default().push(r);
            }
        }
    }
    for (v, rs) in by_value {
        let mut by_end: Vec<&Read> = rs.clone();
        by_end.sort_by_key(|r| r.op.complete_ns);
        // Sweep in order of invocation, keeping the smallest TTL of reads that ended.
        let mut next = 0;
        let mut least: Option<&Read> = None;
        for r in &rs {
            while next < by_end.len() && by_end[next].op.complete_ns < r.op.invoke_ns {
                if least.is_none_or(|l| by_end[next].ttl_ms < l.ttl_ms) {
                    least = Some(by_end[next]);
                }
                next += 1;
            }
            if let (Some(l), Some(ttl)) = (least, r.ttl_ms) {
                if Some(ttl) > l.ttl_ms {
                    let w = writes.get(v).copied();
                    found.add(
                        "ttl-grew",
                        format!(
                            "the time to live of {v:?} grew from {} ms to {ttl} ms between two reads: the server's time went back{}",
                            l.ttl_ms.unwrap_or_default(),
                            w.map_or("", resent)
                        ),
                        vec![l.op, r.op],
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, ret: Ret, t: u64) -> Op {
        Op {
            client: 0,
            server: 0,
            key: "ttl:0".into(),
            call,
            outcome: Outcome::Ok(ret),
            invoke_ns: t,
            complete_ns: t + 1,
            retried: Vec::new(),
        }
    }
    fn set(v: &str, px: u64, t: u64) -> Op {
        op(Call::SetPx(v.into(), px), Ret::Done, t)
    }
    fn get(v: Option<&str>, t: u64) -> Op {
        op(Call::Get, Ret::Value(v.map(String::from)), t)
    }
    fn ttl(v: Option<&str>, ms: i64, t: u64) -> Op {
        op(Call::ReadTtl, Ret::ValueTtl(v.map(String::from), ms), t)
    }
    fn found(ops: &[Op]) -> Vec<String> {
        let refs: Vec<&Op> = ops.iter().collect();
        check("ttl:0", &refs).into_iter().map(|v| v.what).collect()
    }

    #[test]
    fn values_that_expire_and_times_that_shrink_pass() {
        let h = [
            set("0-1", 1000, 0),
            ttl(Some("0-1"), 990, 10),
            get(Some("0-1"), 20),
            ttl(Some("0-1"), 500, 30),
            get(None, 40),
            ttl(None, -2, 50),
        ];
        assert!(found(&h).is_empty(), "{:?}", found(&h));
    }

    #[test]
    fn an_expired_value_that_comes_back_is_caught() {
        let h = [set("0-1", 300, 0), get(Some("0-1"), 10), get(None, 20), get(Some("0-1"), 30)];
        assert!(found(&h).iter().any(|w| w.contains("came back")), "{:?}", found(&h));
    }

    #[test]
    fn a_value_read_while_its_set_was_under_way_may_be_missed_before() {
        // The nil read began before the SET was acknowledged or its value read.
        let slow = Op { complete_ns: 25, ..set("0-1", 300, 0) };
        let h = [slow, get(None, 5), get(Some("0-1"), 30)];
        assert!(found(&h).is_empty(), "{:?}", found(&h));
    }

    #[test]
    fn a_time_to_live_that_grows_or_exceeds_its_set_is_caught() {
        let h = [set("0-1", 5000, 0), ttl(Some("0-1"), 4000, 10), ttl(Some("0-1"), 4500, 20)];
        assert!(found(&h).iter().any(|w| w.contains("grew from 4000 ms to 4500 ms")), "{:?}", found(&h));
        let h = [set("0-1", 5000, 0), ttl(Some("0-1"), 7000, 10)];
        assert!(found(&h).iter().any(|w| w.contains("more than the 5000 ms")), "{:?}", found(&h));
    }

    #[test]
    fn a_resent_set_is_named_as_a_possible_cause() {
        let resent = Op { retried: vec!["TRYAGAIN outcome unknown".into()], ..set("0-1", 300, 0) };
        let h = [resent, get(Some("0-1"), 10), get(None, 20), get(Some("0-1"), 30)];
        assert!(found(&h).iter().any(|w| w.contains("applied twice")), "{:?}", found(&h));
    }
}
