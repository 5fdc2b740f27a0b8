//! The register checks of one key: every value read was written (by a write that
//! did not fail, invoked before the read ended), and the key's history is
//! linearizable (which covers "no acknowledged write lost": the reads after healing
//! are part of the history). A history that is not linearizable is shrunk to a small
//! sub-history that still is not.

use std::collections::HashMap;

use super::history::{Call, Op, Outcome, Ret};
use super::linearizable::{self, RegCall, RegOp, RegRet, Verdict, VALUE_ID_MAX};
use super::Violation;

/// Search steps for one key's whole history (a few seconds); past it the verdict is
/// inconclusive.
const SEARCH_BUDGET: u64 = 200_000_000;

/// What the register checks found on one key.
pub struct Findings {
    pub violations: Vec<Violation>,
    /// Why a verdict could not be reached, if it could not.
    pub inconclusive: Option<String>,
}

pub fn check(key: &str, ops: &[&Op]) -> Findings {
    let mut violations = never_written(key, ops);
    let (reg, source) = to_register_ops(ops);
    let mut inconclusive = None;
    match linearizable::analyse(&reg, SEARCH_BUDGET) {
        (Verdict::Linearizable, _) => {}
        (Verdict::Inconclusive, _) => inconclusive = Some(format!("{key}: the linearizability search gave up ({} operations)", reg.len())),
        (Verdict::NotLinearizable, culprit) => violations.push(explain(key, &reg, &source, culprit)),
    }
    Findings { violations, inconclusive }
}

/// The violation of a key whose history is not linearizable: the reply the search
/// could not explain, and a small sub-history around it that is not linearizable.
fn explain(key: &str, reg: &[RegOp], source: &[&Op], culprit: Option<usize>) -> Violation {
    let mut what = format!(
        "not linearizable: no order of its {} operations (each placed between its invocation and its reply) explains every reply",
        reg.len()
    );
    let Some(culprit) = culprit else {
        return Violation { checker: "linearizable", key: key.to_string(), what, ops: Vec::new() };
    };
    let small = linearizable::shrink(reg, culprit);
    let shown: Vec<Op> = small.iter().filter_map(|&i| source.get(i).map(|&o| o.clone())).collect();
    what.push_str(&format!(
        "; the reply that could not be explained: {}; these {} operations are not linearizable by themselves{}",
        source[culprit],
        shown.len(),
        if small.contains(&reg.len()) { ", given that the key did not exist at the start" } else { ", whatever the value before them" }
    ));
    Violation { checker: "linearizable", key: key.to_string(), what, ops: shown }
}

/// The register operations of `ops` (values as numbers) and the operation each came from.
fn to_register_ops<'a>(ops: &[&'a Op]) -> (Vec<RegOp>, Vec<&'a Op>) {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut intern = |v: &'a str| {
        let next = (ids.len() as u32 + 1).min(VALUE_ID_MAX);
        *ids.entry(v).or_insert(next)
    };
    let mut out = Vec::new();
    let mut source = Vec::new();
    for &op in ops {
        let call = match &op.call {
            Call::Get => RegCall::Get,
            Call::Set(v) => RegCall::Set(intern(v)),
            Call::SetNx(v) => RegCall::SetNx(intern(v)),
            Call::Del => RegCall::Del,
            _ => continue,
        };
        let ret = match (&op.outcome, &op.call) {
            (Outcome::Fail(_), _) => continue,
            (Outcome::Unknown(_), _) => RegRet::Unknown,
            (Outcome::Ok(Ret::Value(v)), Call::Get) => RegRet::Value(v.as_deref().map(&mut intern)),
            (Outcome::Ok(Ret::Done), Call::Set(_)) => RegRet::Done,
            (Outcome::Ok(Ret::Flag(set)), Call::SetNx(_)) => RegRet::Flag(*set),
            (Outcome::Ok(Ret::Int(n)), Call::Del) => RegRet::Removed(*n > 0),
            // A reply of the wrong shape tells nothing about the register.
            _ => continue,
        };
        out.push(RegOp { call, ret, invoke: op.invoke_ns, complete: op.complete_ns });
        source.push(op);
    }
    (out, source)
}

/// Reads of values that no write on this key could have produced.
fn never_written(key: &str, ops: &[&Op]) -> Vec<Violation> {
    let mut writes: HashMap<&str, &Op> = HashMap::new();
    for &op in ops {
        if let Call::Set(v) | Call::SetNx(v) = &op.call {
            writes.insert(v.as_str(), op);
        }
    }
    let mut found = Vec::new();
    for &op in ops {
        let Some(Ret::Value(Some(v))) = op.ret() else { continue };
        let why = match writes.get(v.as_str()) {
            None => "a value never written to this key".to_string(),
            Some(w) if matches!(w.outcome, Outcome::Fail(_)) => "a value whose write failed (was refused)".to_string(),
            Some(w) if w.invoke_ns > op.complete_ns => "a value written only after the read ended".to_string(),
            Some(_) => continue,
        };
        let mut shown = vec![op.clone()];
        if let Some(w) = writes.get(v.as_str()) {
            shown.insert(0, (*w).clone());
        }
        found.push(Violation { checker: "never-written", key: key.to_string(), what: format!("read {why}"), ops: shown });
    }
    found
}
