//! The checks of one transaction key (WATCH/MULTI/EXEC). Each transaction watches
//! the key, reads it, and in MULTI sets it to a unique value and appends that value
//! to the key's log (`txn:{N}:log`, same slot); nothing else writes either. So the
//! log read after healing is the order in which transactions applied — whatever
//! their replies said, unknown outcomes included — and WATCH is exact exactly when
//! each transaction in the log read the value the one before it wrote:
//!
//! - **watched key unchanged**: the first transaction in the log read nothing, and
//!   each later one read its predecessor's value (else it committed although the key
//!   changed between its WATCH read and its commit);
//! - each value is in the log once, and only if its EXEC did not answer nil (aborted)
//!   or a refusal;
//! - every transaction whose EXEC committed is in the log (none lost);
//! - one acknowledged before another was invoked comes first;
//! - the key's value after healing is the log's last.

use std::collections::HashMap;

use super::history::{pack, unpack, Call, Op, Outcome, Ret};
use super::Violation;

/// At most this many violations of one kind are reported per key.
const SHOWN_PER_KIND_MAX: usize = 3;

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
            self.out.push(Violation { checker: "transactions", key: self.key.to_string(), what, ops: ops.into_iter().cloned().collect() });
        }
    }
}

/// `ops`: the key's transactions and reads; `log`: the read of its log after
/// healing; `value`: the read of the key after healing.
pub fn check(key: &str, ops: &[&Op], log: &Op, value: Option<&Op>) -> Vec<Violation> {
    let mut found = Found { key, counts: HashMap::new(), out: Vec::new() };
    let Some(Ret::List(items)) = log.ret() else { return found.out };
    let txns: HashMap<u64, &Op> = ops
        .iter()
        .filter_map(|&op| match &op.call {
            Call::Txn { value, .. } => Some((pack(value), op)),
            _ => None,
        })
        .collect();
    let mut position: HashMap<u64, usize> = HashMap::new();
    for (i, &item) in items.iter().enumerate() {
        let v = unpack(item);
        if position.insert(item, i).is_some() {
            found.add("twice", format!("{v:?} is in the log twice: a transaction applied twice"), vec![log]);
            continue;
        }
        let Some(&t) = txns.get(&item) else {
            found.add("never-written", format!("the log holds {v:?}, which no transaction on this key wrote"), vec![log]);
            continue;
        };
        match &t.outcome {
            Outcome::Ok(Ret::Committed(false)) => {
                found.add("aborted-applied", format!("{v:?} is in the log, but its EXEC answered nil (aborted)"), vec![t, log])
            }
            Outcome::Fail(_) => found.add("refused-applied", format!("{v:?} is in the log, but its transaction was refused"), vec![t, log]),
            _ => {}
        }
        let Call::Txn { read, .. } = &t.call else { continue };
        let before = i.checked_sub(1).and_then(|p| items.get(p)).copied();
        if read.as_deref().map(pack) != before {
            let previous = before.and_then(|b| txns.get(&b).copied());
            let what = format!(
                "{v:?} committed although the watched key changed between its WATCH read and its commit: it read {}, but {} applied just before it",
                read.as_deref().map_or("nil".to_string(), |r| format!("{r:?}")),
                before.map_or("nothing".to_string(), |b| format!("{:?}", unpack(b)))
            );
            let mut shown = vec![t];
            shown.extend(previous);
            shown.push(log);
            found.add("watch", what, shown);
        }
    }
    check_acknowledged(&mut found, &txns, &position, log);
    if let Some(Ret::Value(last)) = value.and_then(|op| op.ret()) {
        if last.as_deref().map(pack) != items.last().copied() {
            let what = format!("the key's value after healing, {last:?}, is not the last value in its log");
            found.add("value", what, value.into_iter().chain([log]).collect());
        }
    }
    found.out
}

/// Committed transactions are in the log, in the real-time order of their replies.
fn check_acknowledged(found: &mut Found, txns: &HashMap<u64, &Op>, position: &HashMap<u64, usize>, log: &Op) {
    let mut acked: Vec<(&Op, Option<usize>)> =
        txns.iter().filter(|(_, t)| t.ret() == Some(&Ret::Committed(true))).map(|(v, t)| (*t, position.get(v).copied())).collect();
    acked.sort_by_key(|(t, _)| t.invoke_ns);
    for (t, at) in &acked {
        if at.is_none() {
            found.add("lost", "a transaction whose EXEC committed is missing from the log".to_string(), vec![t, log]);
        }
    }
    let mut placed: Vec<(&Op, usize)> = txns.iter().filter_map(|(v, t)| position.get(v).map(|&p| (*t, p))).collect();
    placed.sort_by_key(|(t, _)| t.invoke_ns);
    let mut by_end: Vec<(&Op, usize)> = acked.iter().filter_map(|(t, p)| p.map(|p| (*t, p))).collect();
    by_end.sort_by_key(|(t, _)| t.complete_ns);
    let (mut next, mut latest) = (0, None::<(usize, &Op)>);
    for (b, pb) in placed {
        while next < by_end.len() && by_end[next].0.complete_ns < b.invoke_ns {
            if latest.is_none_or(|(p, _)| by_end[next].1 > p) {
                latest = Some((by_end[next].1, by_end[next].0));
            }
            next += 1;
        }
        if let Some((pa, a)) = latest.filter(|(pa, _)| *pa > pb) {
            let what =
                format!("a transaction committed before another began sits after it in the log (positions {} and {})", pa + 1, pb + 1);
            found.add("order", what, vec![a, b]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(value: &str, read: Option<&str>, outcome: Outcome, t: u64) -> Op {
        let call = Call::Txn { value: value.into(), read: read.map(String::from) };
        Op { client: 0, server: 0, key: "txn:{0}".into(), call, outcome, invoke_ns: t, complete_ns: t + 1, retried: Vec::new() }
    }
    fn committed(value: &str, read: Option<&str>, t: u64) -> Op {
        txn(value, read, Outcome::Ok(Ret::Committed(true)), t)
    }
    fn log(items: &[&str]) -> Op {
        let ret = Ret::List(items.iter().map(|s| pack(s)).collect());
        Op {
            client: 9,
            server: 0,
            key: "txn:{0}:log".into(),
            call: Call::ReadList,
            outcome: Outcome::Ok(ret),
            invoke_ns: 100,
            complete_ns: 101,
            retried: Vec::new(),
        }
    }
    fn found(ops: &[Op], items: &[&str]) -> Vec<String> {
        let refs: Vec<&Op> = ops.iter().collect();
        check("txn:{0}", &refs, &log(items), None).into_iter().map(|v| v.what).collect()
    }

    #[test]
    fn a_chain_of_transactions_passes_with_unknown_and_aborted_ones() {
        let h = [
            committed("0-1", None, 0),
            txn("1-1", None, Outcome::Ok(Ret::Committed(false)), 1),
            txn("0-2", Some("0-1"), Outcome::Unknown("timeout".into()), 3),
            committed("1-2", Some("0-2"), 6),
            txn("0-3", Some("0-1"), Outcome::Unknown("timeout".into()), 8),
        ];
        assert!(found(&h, &["0-1", "0-2", "1-2"]).is_empty(), "{:?}", found(&h, &["0-1", "0-2", "1-2"]));
    }

    #[test]
    fn a_transaction_that_committed_over_a_change_is_caught() {
        // Both read 0-1; the second applied after the first changed the key.
        let h =
            [committed("0-1", None, 0), txn("0-2", Some("0-1"), Outcome::Unknown("timeout".into()), 3), committed("1-1", Some("0-1"), 4)];
        let f = found(&h, &["0-1", "0-2", "1-1"]);
        assert!(f.iter().any(|w| w.contains("watched key changed")), "{f:?}");
    }

    #[test]
    fn lost_aborted_and_duplicated_transactions_are_caught() {
        let h = [committed("0-1", None, 0), committed("0-2", Some("0-1"), 3)];
        assert!(found(&h, &["0-1"]).iter().any(|w| w.contains("missing from the log")));
        let h = [committed("0-1", None, 0), txn("1-1", Some("0-1"), Outcome::Ok(Ret::Committed(false)), 3)];
        assert!(found(&h, &["0-1", "1-1"]).iter().any(|w| w.contains("aborted")));
        assert!(found(&h, &["0-1", "0-1"]).iter().any(|w| w.contains("twice")));
    }
}
