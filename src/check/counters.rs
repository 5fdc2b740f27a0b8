//! The counter checks of one key (INCR, and GET for reads):
//!
//! - the value read after healing lies between the acknowledged increments and the
//!   acknowledged plus the unknown ones: none lost, none from nowhere;
//! - no two INCRs answered the same value (each one counted once);
//! - real time is respected: an INCR or read that began after another ended sees at
//!   least its value (an INCR strictly more);
//! - no read sees more increments than had been invoked (and not refused) before
//!   it ended.

use super::history::{Call, Op, Outcome, Ret, FINAL_CLIENT};
use super::Violation;

/// At most this many violations of one kind are reported per key.
const SHOWN_PER_KIND_MAX: usize = 3;

pub fn check(key: &str, ops: &[&Op]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut add = |kind_count: &mut usize, what: String, shown: Vec<&Op>| {
        *kind_count += 1;
        if *kind_count <= SHOWN_PER_KIND_MAX {
            out.push(Violation { checker: "counters", key: key.to_string(), what, ops: shown.into_iter().cloned().collect() });
        }
    };
    let incrs: Vec<&Op> = ops.iter().copied().filter(|o| o.call == Call::Incr).collect();
    let acked = incrs.iter().filter(|o| o.is_ok()).count() as i64;
    let unknown = incrs.iter().filter(|o| o.is_unknown()).count() as i64;
    // (value, op) of every acknowledged INCR and successful read.
    let mut valued: Vec<(i64, &Op)> = ops
        .iter()
        .filter_map(|&o| match (&o.call, o.ret()) {
            (Call::Incr | Call::ReadCounter, Some(Ret::Int(v))) => Some((*v, o)),
            _ => None,
        })
        .collect();
    let final_read =
        valued.iter().filter(|(_, o)| o.client == FINAL_CLIENT && o.call == Call::ReadCounter).max_by_key(|(_, o)| o.invoke_ns);
    if let Some(&(value, op)) = final_read {
        if value < acked {
            add(&mut 0, format!("acknowledged increments lost: {acked} acknowledged, the value after healing is {value}"), vec![op]);
        }
        if value > acked + unknown {
            add(
                &mut 0,
                format!(
                    "increments from nowhere: {acked} acknowledged and {unknown} unknown, the value after healing is {value}{}",
                    duplicates_hint(&incrs)
                ),
                vec![op],
            );
        }
    }
    let mut duplicates = 0;
    let mut replies: Vec<(i64, &Op)> = valued.iter().copied().filter(|(_, o)| o.call == Call::Incr).collect();
    replies.sort_by_key(|(v, o)| (*v, o.invoke_ns));
    for w in replies.windows(2) {
        if w[0].0 == w[1].0 {
            add(&mut duplicates, format!("two INCRs answered the same value {}: one increment lost", w[0].0), vec![w[0].1, w[1].1]);
        }
    }
    // Real time: sweep in order of invocation over what ended before.
    let mut by_end = valued.clone();
    by_end.sort_by_key(|(_, o)| o.complete_ns);
    valued.sort_by_key(|(_, o)| o.invoke_ns);
    let (mut backwards, mut too_high) = (0, 0);
    let mut best: Option<(i64, &Op)> = None;
    let mut next = 0;
    for &(value, op) in &valued {
        while next < by_end.len() && by_end[next].1.complete_ns < op.invoke_ns {
            if best.is_none_or(|(b, _)| by_end[next].0 > b) {
                best = Some(by_end[next]);
            }
            next += 1;
        }
        if let Some((before, earlier)) = best {
            let stale = if op.call == Call::Incr { value <= before } else { value < before };
            if stale {
                add(&mut backwards, format!("went back in time: {value} after {before} had been seen"), vec![earlier, op]);
            }
        }
    }
    // Upper bound: increments not refused and invoked before the read ended.
    let mut starts: Vec<u64> = incrs.iter().filter(|o| !matches!(o.outcome, Outcome::Fail(_))).map(|o| o.invoke_ns).collect();
    starts.sort_unstable();
    for &(value, op) in &valued {
        let possible = starts.partition_point(|&t| t <= op.complete_ns) as i64;
        if value > possible {
            add(
                &mut too_high,
                format!("{value} seen when only {possible} increments had been invoked{}", duplicates_hint(&incrs)),
                vec![op],
            );
        }
    }
    out
}

/// Why a counter can be above its increments: some INCRs were sent more than once.
fn duplicates_hint(incrs: &[&Op]) -> String {
    let resent: Vec<&Op> = incrs.iter().copied().filter(|o| !o.retried.is_empty()).collect();
    if resent.is_empty() {
        return String::new();
    }
    let unknown = resent.iter().filter(|o| o.retried.iter().any(|e| e.to_ascii_lowercase().contains("unknown"))).count();
    format!(
        " — an INCR applied twice: {} INCRs were sent again by a retrying client, {unknown} after an error saying the outcome was unknown",
        resent.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: Call, outcome: Outcome, t: u64) -> Op {
        Op { client, server: 0, key: "c".into(), call, outcome, invoke_ns: t, complete_ns: t + 1, retried: Vec::new() }
    }
    fn incr(v: i64, t: u64) -> Op {
        op(0, Call::Incr, Outcome::Ok(Ret::Int(v)), t)
    }
    fn read(v: i64, t: u64, client: usize) -> Op {
        op(client, Call::ReadCounter, Outcome::Ok(Ret::Int(v)), t)
    }
    fn found(ops: &[Op]) -> Vec<String> {
        let refs: Vec<&Op> = ops.iter().collect();
        check("c", &refs).into_iter().map(|v| v.what).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let unknown = op(1, Call::Incr, Outcome::Unknown("timeout".into()), 3);
        let h = [incr(1, 0), read(1, 2, 1), unknown, incr(3, 6), read(3, 10, FINAL_CLIENT)];
        assert!(found(&h).is_empty(), "{:?}", found(&h));
    }

    #[test]
    fn lost_and_phantom_increments_are_caught() {
        assert!(found(&[incr(1, 0), incr(2, 2), read(1, 10, FINAL_CLIENT)]).iter().any(|w| w.contains("lost")));
        assert!(found(&[incr(1, 0), read(2, 10, FINAL_CLIENT)]).iter().any(|w| w.contains("from nowhere")));
        assert!(found(&[incr(1, 0), incr(1, 0)]).iter().any(|w| w.contains("same value")));
    }

    #[test]
    fn a_read_that_goes_back_in_time_is_caught() {
        let h = [incr(1, 0), incr(2, 2), read(2, 4, 1), read(1, 6, 1)];
        assert!(found(&h).iter().any(|w| w.contains("back in time")), "{:?}", found(&h));
    }
}
