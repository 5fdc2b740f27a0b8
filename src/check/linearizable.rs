//! Linearizability of one register (a key read with GET, written with SET, SET NX and
//! DEL): is there one order of the operations, each placed between its invocation
//! and its reply, in which every reply is what a single copy would have answered?
//!
//! The search is Wing and Gong's, with Lowe's memoisation (as in Knossos and
//! porcupine): walk the invocations in time order, try to place each pending
//! operation next; a reply reached before its operation was placed means backtrack.
//! A (set of placed operations, register value) pair seen before is never explored
//! again; the set is kept as a Zobrist hash (two 64-bit words per operation).
//!
//! An operation whose outcome is unknown may take effect at any time after it was
//! invoked, or never: its reply is "at infinity" and accepts any answer. Such
//! operations would multiply the search; sound rewrites and prunings keep them cheap:
//! - a write whose unique value some read returned took effect before that read
//!   ended: its reply moves there, and it is an ordinary operation;
//! - a write nobody could have observed (no read of its value, no later SET NX that
//!   found the key present or DEL that removed something) is dropped: a history is
//!   linearizable with it exactly when it is without it; likewise a DEL nobody could
//!   have observed (no later nil read, SET NX that set, or DEL of nothing);
//! - the others are placed only where that can help, and only one of each kind is
//!   tried at each point of the search (see `search`).
//!
//! It knows nothing of Redis or of the cluster: values are numbers, times are
//! nanoseconds. `shrink` finds a small sub-history that is still not linearizable.

use std::collections::HashMap;

/// A value written to the register; unique per write.
pub type ValueId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegCall {
    Get,
    Set(ValueId),
    SetNx(ValueId),
    Del,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegRet {
    /// The outcome is unknown: it may take effect after its invocation, or never.
    Unknown,
    /// GET: the value, or none.
    Value(Option<ValueId>),
    /// SET: OK.
    Done,
    /// SET NX: whether it set.
    Flag(bool),
    /// DEL: whether it removed the key.
    Removed(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegOp {
    pub call: RegCall,
    pub ret: RegRet,
    pub invoke: u64,
    /// Ignored when `ret` is unknown.
    pub complete: u64,
}

/// What the register holds before the history starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// The key does not exist (a fresh cluster).
    Absent,
    /// Anything: used to judge a window cut out of a longer history.
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The search took more than its budget of steps.
    Inconclusive,
}

/// The register's value during the search: absent, a value, present with a value no
/// read returns (an unknown write nobody read), or (when the history starts from
/// `Init::Any`) not yet known, possibly known to be present.
type State = u32;
const ABSENT: State = 0;
const ANY: State = u32::MAX;
const ANY_PRESENT: State = u32::MAX - 1;
const UNREAD: State = u32::MAX - 2;

/// The largest value id: the top three are the other states.
pub const VALUE_ID_MAX: ValueId = u32::MAX - 3;

/// How the search treats an operation (see `prepare`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Kind {
    /// Its reply is known, or it took effect before a known time.
    Definite = 0,
    /// A SET or SET NX of unknown outcome whose value no read returned.
    UnreadWrite = 1,
    /// A DEL of unknown outcome.
    UnknownDel = 2,
}

/// A prepared operation: the original's index, and how to treat it.
#[derive(Clone, Copy, Debug)]
struct Prepared {
    op: RegOp,
    kind: Kind,
    index: usize,
}

/// The value after `op`, or None if `op` could not have answered what it did, or
/// need never be placed here (see `search`).
fn step(state: State, p: &Prepared) -> Option<State> {
    use RegCall::*;
    use RegRet::*;
    match p.kind {
        // Placed while the key is absent it makes the key present with a value
        // nobody reads; anywhere else it only hides the value (or does nothing), and
        // placing it at the end instead is never worse.
        Kind::UnreadWrite => return (state == ABSENT).then_some(UNREAD),
        // Placed while the key is (or may be) absent it does nothing, or less than
        // the end would.
        Kind::UnknownDel => return (state != ABSENT && state != ANY).then_some(ABSENT),
        Kind::Definite => {}
    }
    match (p.op.call, p.op.ret) {
        (Get, Value(Some(v))) => match state {
            ABSENT | UNREAD => None,
            ANY | ANY_PRESENT => Some(v),
            s => (s == v).then_some(s),
        },
        (Get, Value(None)) => matches!(state, ABSENT | ANY).then_some(ABSENT),
        (Get, _) => Some(state),
        (Set(v), _) => Some(v),
        (SetNx(v), Flag(true)) => matches!(state, ABSENT | ANY).then_some(v),
        (SetNx(_), Flag(false)) => match state {
            ABSENT => None,
            ANY => Some(ANY_PRESENT),
            s => Some(s),
        },
        // Unknown, but observed (prepare made it Flag(true)); kept for completeness.
        (SetNx(v), _) => Some(match state {
            ABSENT => v,
            ANY => ANY_PRESENT,
            s => s,
        }),
        (Del, Removed(true)) => (state != ABSENT).then_some(ABSENT),
        (Del, Removed(false)) => matches!(state, ABSENT | ANY).then_some(ABSENT),
        (Del, _) => Some(ABSENT),
    }
}

/// Is the history linearizable from `init`? At most `budget` search steps.
pub fn check(ops: &[RegOp], init: Init, budget: u64) -> Verdict {
    match search(&prepare(ops), init, budget).0 {
        Search::Linearizable => Verdict::Linearizable,
        Search::Stuck(_) => Verdict::NotLinearizable,
        Search::OutOfSteps => Verdict::Inconclusive,
    }
}

/// The rewrites of the module doc: reads that tell nothing go, unknown writes that
/// were observed end where first observed, unknown writes nobody could observe go;
/// the unknown writes left are sorted by what they can do.
fn prepare(ops: &[RegOp]) -> Vec<Prepared> {
    let mut first_read_of: HashMap<ValueId, u64> = HashMap::new();
    for op in ops {
        if let (RegCall::Get, RegRet::Value(Some(v))) = (op.call, op.ret) {
            let t = first_read_of.entry(v).or_insert(op.complete);
            *t = (*t).min(op.complete);
        }
    }
    // First the observed unknown writes: they took effect before the first read of
    // their value ended (a SET NX then certainly set). Reads that tell nothing go.
    let mut out: Vec<Prepared> = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let mut op = *op;
        let mut kind = Kind::Definite;
        match (op.call, op.ret) {
            (RegCall::Get, RegRet::Value(_)) => {}
            (RegCall::Get, _) => continue,
            (RegCall::Set(v) | RegCall::SetNx(v), RegRet::Unknown) => match first_read_of.get(&v) {
                Some(&read) => {
                    op.complete = read.max(op.invoke);
                    op.ret = if matches!(op.call, RegCall::SetNx(_)) { RegRet::Flag(true) } else { RegRet::Done };
                }
                None => kind = Kind::UnreadWrite,
            },
            (RegCall::Del, RegRet::Unknown) => kind = Kind::UnknownDel,
            _ => {}
        }
        out.push(Prepared { op, kind, index });
    }
    // Then the latest reply of an operation that saw the key present / absent, and
    // the unknown writes no such operation could have seen.
    let (mut saw_present, mut saw_absent) = (None::<u64>, None::<u64>);
    for p in &out {
        match (p.op.call, p.op.ret) {
            (RegCall::SetNx(_), RegRet::Flag(false)) | (RegCall::Del, RegRet::Removed(true)) => {
                saw_present = saw_present.max(Some(p.op.complete))
            }
            (RegCall::Get, RegRet::Value(None)) | (RegCall::SetNx(_), RegRet::Flag(true)) | (RegCall::Del, RegRet::Removed(false)) => {
                saw_absent = saw_absent.max(Some(p.op.complete))
            }
            _ => {}
        }
    }
    let later = |seen: Option<u64>, t: u64| seen.is_some_and(|s| s >= t);
    out.retain(|p| match p.kind {
        Kind::Definite => true,
        Kind::UnreadWrite => later(saw_present, p.op.invoke),
        Kind::UnknownDel => later(saw_absent, p.op.invoke),
    });
    out
}

const NIL: usize = usize::MAX;

/// The events of the operations with a known reply, as a doubly linked list (so
/// placed operations can be lifted out and put back in O(1)); node `head` is a
/// sentinel before the first.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per node: its operation, whether it is the invocation, and its time.
    op: Vec<usize>,
    is_call: Vec<bool>,
    time: Vec<u64>,
    /// Per operation: its invocation and reply nodes.
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
    head: usize,
}

impl Events {
    fn new(ops: &[Prepared]) -> Events {
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, p) in ops.iter().enumerate().filter(|(_, p)| p.kind == Kind::Definite) {
            // On equal times an invocation sorts before a reply: the two overlap.
            order.push((p.op.invoke, 0, i));
            order.push((p.op.complete.max(p.op.invoke), 1, i));
        }
        order.sort_unstable();
        let nodes = order.len();
        let head = nodes;
        let mut e = Events {
            next: vec![NIL; nodes + 1],
            prev: vec![NIL; nodes + 1],
            op: vec![0; nodes],
            is_call: vec![false; nodes],
            time: vec![0; nodes],
            call_node: vec![NIL; ops.len()],
            ret_node: vec![NIL; ops.len()],
            head,
        };
        let mut last = head;
        for (node, &(time, kind, i)) in order.iter().enumerate() {
            e.op[node] = i;
            e.is_call[node] = kind == 0;
            e.time[node] = time;
            if kind == 0 {
                e.call_node[i] = node;
            } else {
                e.ret_node[i] = node;
            }
            e.next[last] = node;
            e.prev[node] = last;
            last = node;
        }
        e
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        if n != NIL {
            self.prev[n] = x;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        self.unlink(self.ret_node[op]);
    }

    fn unlift(&mut self, op: usize) {
        self.relink(self.ret_node[op]);
        self.relink(self.call_node[op]);
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

enum Search {
    Linearizable,
    /// Not linearizable; the operation whose reply the deepest attempt could not get
    /// past (an index into the original history).
    Stuck(usize),
    OutOfSteps,
}

/// A placed operation: for a known one its invocation node, for an unknown one its
/// kind and the reply node the level had reached; the state before it; which kinds
/// of unknown operations its level had tried.
struct Frame {
    node: usize,
    unknown: Option<Kind>,
    state: State,
    tried: u8,
}

/// The search of the module doc. Operations with a known reply are tried first, in
/// invocation order; operations of unknown outcome (replies at infinity) are kept
/// apart, and prunings keep them cheap, all sound because their replies are at
/// infinity:
/// - one is never placed where placing it at the end instead would do at least as
///   well (see `step`);
/// - at each point only the earliest pending one of each kind is tried: two unread
///   writes (or two DELs) lead to the same state and can swap places. So the placed
///   ones of a kind are always the earliest invoked, and their number says which;
/// - a point (known operations placed, value) reached with no fewer unknown
///   operations of each kind used up than before is not explored again: fewer used
///   leaves more to place later.
///
/// The history is linearizable once every operation with a known reply is placed:
/// the rest can go at the end. Returns the verdict and the steps taken.
fn search(ops: &[Prepared], init: Init, budget: u64) -> (Search, u64) {
    let mut events = Events::new(ops);
    let zobrist: Vec<(u64, u64)> = (0..ops.len() as u64).map(|i| (splitmix64(2 * i), splitmix64(2 * i + 1))).collect();
    // Unknown operations by kind, in invocation order.
    let mut unknown: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    for (i, p) in ops.iter().enumerate().filter(|(_, p)| p.kind != Kind::Definite) {
        unknown[p.kind as usize - 1].push(i);
    }
    for list in &mut unknown {
        list.sort_by_key(|&i| (ops[i].op.invoke, i));
    }
    // The known operations placed (a Zobrist hash), and how many unknown ones of each kind.
    let mut placed = (0u64, 0u64);
    let mut used: Used = [0; 2];
    let mut seen: HashMap<(u64, u64, State), Front> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = if init == Init::Any { ANY } else { ABSENT };
    let mut definite_left = ops.iter().filter(|p| p.kind == Kind::Definite).count();
    let mut tried = 0u8;
    let mut deepest = (0usize, NIL);
    let mut entry = events.next[events.head];
    let mut steps = 0u64;
    while definite_left > 0 {
        steps += 1;
        if steps > budget || seen.len() > POINTS_MAX {
            return (Search::OutOfSteps, steps);
        }
        if entry != NIL && events.is_call[entry] {
            let op = events.op[entry];
            if let Some(after) = step(state, &ops[op]) {
                let key = (placed.0 ^ zobrist[op].0, placed.1 ^ zobrist[op].1);
                if remember(&mut seen, (key.0, key.1, after), used) {
                    stack.push(Frame { node: entry, unknown: None, state, tried });
                    state = after;
                    placed = key;
                    tried = 0;
                    events.lift(op);
                    definite_left -= 1;
                    entry = events.next[events.head];
                    continue;
                }
            }
            entry = events.next[entry];
            continue;
        }
        // The first pending reply: every known candidate was tried. Now the earliest
        // pending unknown operation of each kind invoked by then.
        let limit = if entry == NIL { u64::MAX } else { events.time[entry] };
        let mut descended = false;
        for kind in [Kind::UnreadWrite, Kind::UnknownDel] {
            let bit = kind_bit(kind);
            if tried & bit != 0 {
                continue;
            }
            tried |= bit;
            let k = kind as usize - 1;
            let Some(&op) = unknown[k].get(used[k] as usize) else { continue };
            if ops[op].op.invoke > limit {
                continue;
            }
            let Some(after) = step(state, &ops[op]) else { continue };
            let mut count = used;
            count[k] += 1;
            if remember(&mut seen, (placed.0, placed.1, after), count) {
                stack.push(Frame { node: entry, unknown: Some(kind), state, tried });
                state = after;
                used = count;
                tried = 0;
                entry = events.next[events.head];
                descended = true;
                break;
            }
        }
        if descended {
            continue;
        }
        // Nothing more to try here: undo the last placement, try what comes after it.
        if entry != NIL && stack.len() >= deepest.0 {
            deepest = (stack.len(), ops[events.op[entry]].index);
        }
        let Some(frame) = stack.pop() else { return (Search::Stuck(deepest.1), steps) };
        state = frame.state;
        tried = frame.tried;
        match frame.unknown {
            Some(kind) => {
                used[kind as usize - 1] -= 1;
                entry = frame.node;
            }
            None => {
                let op = events.op[frame.node];
                placed = (placed.0 ^ zobrist[op].0, placed.1 ^ zobrist[op].1);
                definite_left += 1;
                events.unlift(op);
                entry = events.next[frame.node];
            }
        }
    }
    (Search::Linearizable, steps)
}

/// The bit of `tried` a kind of unknown operation takes.
fn kind_bit(kind: Kind) -> u8 {
    match kind {
        Kind::Definite => 0,
        Kind::UnreadWrite => 1,
        Kind::UnknownDel => 2,
    }
}

/// How many unknown operations of each kind (unread writes, DELs) are placed.
type Used = [u32; 2];

/// The fewest unknown operations used to reach a point: usually one pair, and never
/// two pairs of which one has no more of each kind than the other.
enum Front {
    One(Used),
    Many(Vec<Used>),
}

/// Points (placed known operations, value) the search may remember: past this the
/// memory would grow beyond a few hundred megabytes, and the verdict is inconclusive.
const POINTS_MAX: usize = 8_000_000;

/// Records that `point` was reached having used `count` unknown operations of each
/// kind; false if it was reached before with no more of either kind.
fn remember(seen: &mut HashMap<(u64, u64, State), Front>, point: (u64, u64, State), count: Used) -> bool {
    let covers = |old: &Used| old[0] <= count[0] && old[1] <= count[1];
    let covered = |old: &Used| count[0] <= old[0] && count[1] <= old[1];
    match seen.get_mut(&point) {
        None => {
            seen.insert(point, Front::One(count));
            true
        }
        Some(Front::One(old)) if covers(old) => false,
        Some(front @ Front::One(_)) => {
            let Front::One(old) = *front else { return false };
            *front = if covered(&old) { Front::One(count) } else { Front::Many(vec![old, count]) };
            true
        }
        Some(Front::Many(list)) => {
            if list.iter().any(covers) {
                return false;
            }
            list.retain(|old| !covered(old));
            list.push(count);
            true
        }
    }
}

/// What the search says of a history from an absent key, with the operation whose
/// reply the deepest attempt could not explain when it is not linearizable.
pub fn analyse(ops: &[RegOp], budget: u64) -> (Verdict, Option<usize>) {
    match search(&prepare(ops), Init::Absent, budget).0 {
        Search::Linearizable => (Verdict::Linearizable, None),
        Search::Stuck(i) => (Verdict::NotLinearizable, (i < ops.len()).then_some(i)),
        Search::OutOfSteps => (Verdict::Inconclusive, None),
    }
}

/// Steps all the checks of one `shrink` may take together.
const SHRINK_BUDGET: u64 = 20_000_000;

/// A small sub-history that is not linearizable by itself, around `culprit` (an
/// operation whose reply could not be explained, from [`analyse`]), in invocation
/// order. It is cut from the history as it stood when `culprit` replied (later
/// operations left out, operations still running then of unknown outcome), judged
/// from any initial value, and shrunk by removing operations while it stays not
/// linearizable; a read keeps the write of the value it read, so the result never
/// blames a read for a write that was merely left out. When the absent start matters
/// the result holds `ops.len()`, which stands for "the key did not exist at the start".
pub fn shrink(ops: &[RegOp], culprit: usize) -> Vec<usize> {
    let Some(end) = ops.get(culprit).map(|c| c.complete) else { return Vec::new() };
    // The history when `culprit` replied, times moved by one to make room for the
    // absent start: a DEL that removed nothing, before everything.
    let start = ops.len();
    let mut all: Vec<RegOp> = ops.to_vec();
    all.push(RegOp { call: RegCall::Del, ret: RegRet::Removed(false), invoke: 0, complete: 0 });
    let mut order: Vec<usize> = Vec::new();
    for (i, op) in all.iter_mut().enumerate().take(start) {
        op.invoke = op.invoke.saturating_add(1);
        op.complete = op.complete.saturating_add(1);
        if op.invoke > end + 1 || (op.call == RegCall::Get && op.complete > end + 1) {
            continue;
        }
        if op.complete > end + 1 {
            op.ret = RegRet::Unknown;
        }
        order.push(i);
    }
    order.sort_by_key(|&i| (all[i].invoke, i));
    let writer: HashMap<ValueId, usize> = order
        .iter()
        .filter_map(|&i| match all[i].call {
            RegCall::Set(v) | RegCall::SetNx(v) => Some((v, i)),
            _ => None,
        })
        .collect();
    // With the culprit and, for every read, the write of its value.
    let close = |set: &[usize]| -> Vec<usize> {
        let mut out: Vec<usize> = set.to_vec();
        out.push(culprit);
        for i in 0..out.len() {
            if let (RegCall::Get, RegRet::Value(Some(v))) = (all[out[i]].call, all[out[i]].ret) {
                out.extend(writer.get(&v));
            }
        }
        out.sort_by_key(|&i| (all[i].invoke, i));
        out.dedup();
        out
    };
    let mut spent = 0u64;
    let mut violates = |set: &[usize]| {
        if spent >= SHRINK_BUDGET {
            return false;
        }
        let sub: Vec<RegOp> = close(set).iter().map(|&i| all[i]).collect();
        let (found, steps) = match search(&prepare(&sub), Init::Any, SHRINK_BUDGET - spent) {
            (Search::Stuck(_), steps) => (true, steps),
            (_, steps) => (false, steps),
        };
        spent += steps;
        found
    };
    // The last operations invoked, more and more of them (the absent start last),
    // until they are not linearizable by themselves.
    order.insert(0, start);
    let mut size = 8;
    let mut keep = loop {
        let window = order[order.len().saturating_sub(size)..].to_vec();
        if violates(&window) || size >= order.len() {
            break window;
        }
        size *= 2;
    };
    // Then remove chunks, halving their size, and single operations until none goes.
    let mut chunk = (keep.len() / 2).max(1);
    loop {
        let mut removed = false;
        let mut i = 0;
        while i < keep.len() {
            let end = (i + chunk).min(keep.len());
            let candidate: Vec<usize> = keep[..i].iter().chain(&keep[end..]).copied().collect();
            if violates(&candidate) {
                keep = candidate;
                removed = true;
            } else {
                i = end;
            }
        }
        if chunk == 1 && !removed {
            break;
        }
        chunk = (chunk / 2).max(1);
    }
    close(&keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegCall::*;
    use RegRet::*;

    fn op(call: RegCall, ret: RegRet, invoke: u64, complete: u64) -> RegOp {
        RegOp { call, ret, invoke, complete }
    }

    const BUDGET: u64 = 1_000_000;

    #[test]
    fn a_sequential_history_is_linearizable() {
        let h = [
            op(Get, Value(None), 0, 1),
            op(Set(1), Done, 2, 3),
            op(Get, Value(Some(1)), 4, 5),
            op(SetNx(2), Flag(false), 6, 7),
            op(Del, Removed(true), 8, 9),
            op(SetNx(3), Flag(true), 10, 11),
            op(Get, Value(Some(3)), 12, 13),
        ];
        assert_eq!(check(&h, Init::Absent, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_is_not_linearizable_and_shrinks_to_a_completed_write_and_the_read() {
        let mut h = vec![op(Set(1), Done, 0, 10), op(Set(2), Done, 20, 30), op(Get, Value(Some(1)), 40, 50)];
        // Noise on both sides.
        for n in 0..20u64 {
            h.push(op(Get, Value(Some(2)), 31 + n, 32 + n));
        }
        h.push(op(Set(3), Done, 100, 110));
        h.push(op(Get, Value(Some(3)), 120, 130));
        assert_eq!(check(&h, Init::Absent, BUDGET), Verdict::NotLinearizable);
        let (verdict, culprit) = analyse(&h, BUDGET);
        assert_eq!((verdict, culprit), (Verdict::NotLinearizable, Some(2)));
        let small = shrink(&h, 2);
        assert!(
            small.len() <= 4 && [0, 1, 2].iter().all(|i| small.contains(i)),
            "the stale read, the write it read, the write it missed: {small:?}"
        );
    }

    #[test]
    fn a_violation_of_the_absent_start_shrinks_to_the_start_and_one_operation() {
        let h = [op(SetNx(1), Flag(false), 2, 3), op(Set(2), Done, 4, 5)];
        assert_eq!(check(&h, Init::Absent, BUDGET), Verdict::NotLinearizable);
        let (_, culprit) = analyse(&h, BUDGET);
        assert_eq!(shrink(&h, culprit.expect("stuck somewhere")), vec![h.len(), 0], "the absent start, and the SET NX that found the key");
    }

    /// A long history from one register, with overlapping operations and 5% of the
    /// writes unknown (none dropped: SET NX keeps finding the key present).
    fn long_history(n: usize) -> Vec<RegOp> {
        long_history_with(n, 5)
    }

    pub(super) fn long_history_with(n: usize, unknown_pct: u64) -> Vec<RegOp> {
        let mut rng = Rng(12345);
        let mut state: Option<u32> = None;
        let mut h = Vec::new();
        for i in 0..n as u64 {
            let t = 100 + 10 * i;
            let v = i as u32 + 1;
            let call = match rng.below(10) {
                0..=3 => Get,
                4..=6 => Set(v),
                7..=8 => SetNx(v),
                _ => Del,
            };
            let ret = stateright::semantics::SequentialSpec::invoke(&mut Register(state), &call);
            let mut reg = Register(state);
            stateright::semantics::SequentialSpec::invoke(&mut reg, &call);
            state = reg.0;
            let unknown = call != Get && rng.below(100) < unknown_pct;
            h.push(op(call, if unknown { Unknown } else { ret }, t - rng.below(15), t + rng.below(15)));
        }
        h
    }

    #[test]
    fn unknown_writes_in_a_long_history_do_not_blow_up_the_search() {
        let mut h = long_history(5_000);
        assert_eq!(check(&h, Init::Absent, 2_000_000), Verdict::Linearizable);
        // A stale read near the end: found, and shrunk to a few operations.
        let late = h.len() - 50;
        let stale = op(Get, Value(Some(3)), h[late].invoke, h[late].complete);
        h[late] = stale;
        let (verdict, culprit) = analyse(&h, 5_000_000);
        assert_eq!((verdict, culprit), (Verdict::NotLinearizable, Some(late)));
        let small = shrink(&h, late);
        assert!(small.len() <= 5 && small.contains(&late), "{small:?}");
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let h = [op(Set(1), Done, 0, 10), op(Set(2), Done, 1, 11), op(Get, Value(Some(1)), 12, 13)];
        assert_eq!(check(&h, Init::Absent, BUDGET), Verdict::Linearizable);
        let h = [op(Set(1), Done, 0, 10), op(Get, Value(Some(2)), 1, 2), op(Set(2), Done, 3, 11)];
        assert_eq!(check(&h, Init::Absent, BUDGET), Verdict::NotLinearizable, "a read of a value before its write");
    }

    #[test]
    fn an_unknown_write_may_take_effect_long_after_it_was_invoked_or_never() {
        let late = [op(Set(1), Unknown, 0, 1), op(Get, Value(None), 5, 6), op(Get, Value(Some(1)), 10, 11)];
        assert_eq!(check(&late, Init::Absent, BUDGET), Verdict::Linearizable);
        let never = [op(Set(1), Unknown, 0, 1), op(Get, Value(None), 5, 6)];
        assert_eq!(check(&never, Init::Absent, BUDGET), Verdict::Linearizable);
        let flicker = [op(Set(1), Unknown, 0, 1), op(Get, Value(Some(1)), 5, 6), op(Get, Value(None), 10, 11)];
        assert_eq!(check(&flicker, Init::Absent, BUDGET), Verdict::NotLinearizable, "a write cannot be undone");
        let presence = [op(Set(1), Unknown, 0, 1), op(SetNx(2), Flag(false), 5, 6)];
        assert_eq!(check(&presence, Init::Absent, BUDGET), Verdict::Linearizable, "SET NX saw the unknown write");
        let absent = [op(SetNx(2), Flag(false), 5, 6)];
        assert_eq!(check(&absent, Init::Absent, BUDGET), Verdict::NotLinearizable);
        assert_eq!(check(&absent, Init::Any, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn many_unknown_writes_do_not_blow_up_the_search() {
        // 200 writes that timed out, none ever read, among a long sequential history.
        let mut h = Vec::new();
        let mut t = 0;
        for v in 1..=400u32 {
            if v % 2 == 0 {
                h.push(op(Set(v), Unknown, t, t + 1));
            } else {
                h.push(op(Set(v), Done, t, t + 1));
                h.push(op(Get, Value(Some(v)), t + 2, t + 3));
            }
            t += 4;
        }
        assert_eq!(check(&h, Init::Absent, BUDGET), Verdict::Linearizable);
    }

    /// A register as stateright's `SequentialSpec`, with the same calls and replies.
    #[derive(Clone, Debug, Default)]
    struct Register(Option<ValueId>);

    impl stateright::semantics::SequentialSpec for Register {
        type Op = RegCall;
        type Ret = RegRet;
        fn invoke(&mut self, call: &RegCall) -> RegRet {
            match *call {
                Get => Value(self.0),
                Set(v) => {
                    self.0 = Some(v);
                    Done
                }
                SetNx(v) => {
                    let set = self.0.is_none();
                    if set {
                        self.0 = Some(v);
                    }
                    Flag(set)
                }
                Del => Removed(self.0.take().is_some()),
            }
        }
    }

    pub(super) struct Rng(pub(super) u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = splitmix64(self.0);
            self.0 % n
        }
    }

    /// A random concurrent history of `n` operations by three clients: each
    /// operation takes effect at a random point between its invocation and reply
    /// (an unknown one possibly never), replies are what the register answered, and
    /// some replies are then falsified. (ops, the client of each op.)
    fn random_history(rng: &mut Rng, n: usize) -> (Vec<RegOp>, Vec<u64>) {
        #[derive(Clone, Copy)]
        enum Phase {
            Idle,
            Invoked(usize),
            Applied(usize),
        }
        let mut clients = [Phase::Idle; 3];
        let mut client_ids = [0u64, 1, 2];
        let mut next_client = 3;
        let mut register = Register::default();
        let mut ops: Vec<RegOp> = Vec::new();
        let mut owner = Vec::new();
        let mut dropped = Vec::new();
        let mut next_value = 1;
        let mut t = 0;
        while ops.len() < n || clients.iter().any(|c| !matches!(c, Phase::Idle)) {
            t += 1;
            let c = rng.below(3) as usize;
            match clients[c] {
                Phase::Idle if ops.len() < n => {
                    let call = match rng.below(4) {
                        0 => Get,
                        1 => Set(next_value),
                        2 => SetNx(next_value),
                        _ => Del,
                    };
                    next_value += 1;
                    ops.push(RegOp { call, ret: Unknown, invoke: t, complete: 0 });
                    owner.push(client_ids[c]);
                    dropped.push(false);
                    clients[c] = Phase::Invoked(ops.len() - 1);
                }
                Phase::Idle => {}
                Phase::Invoked(i) => {
                    if rng.below(8) == 0 {
                        // Gives up before the operation took effect: unknown, never applied.
                        clients[c] = Phase::Idle;
                        client_ids[c] = next_client;
                        next_client += 1;
                        // A read that never returned tells nothing: not in the history.
                        dropped[i] = ops[i].call == Get;
                        continue;
                    }
                    let ret = stateright::semantics::SequentialSpec::invoke(&mut register, &ops[i].call);
                    ops[i].ret = ret;
                    clients[c] = Phase::Applied(i);
                }
                Phase::Applied(i) => {
                    if rng.below(8) == 0 && ops[i].call != Get {
                        // Applied, but the client never learns it.
                        ops[i].ret = Unknown;
                        client_ids[c] = next_client;
                        next_client += 1;
                    } else {
                        ops[i].complete = t;
                        if rng.below(10) == 0 {
                            ops[i].ret = match ops[i].ret {
                                Value(v) => Value(if v.is_some() { None } else { Some(1) }),
                                Flag(f) => Flag(!f),
                                Removed(r) => Removed(!r),
                                other => other,
                            };
                        }
                    }
                    clients[c] = Phase::Idle;
                }
            }
        }
        let keep = |i: &usize| !dropped[*i];
        let kept: Vec<usize> = (0..ops.len()).filter(keep).collect();
        (kept.iter().map(|&i| ops[i]).collect(), kept.iter().map(|&i| owner[i]).collect())
    }

    /// stateright's verdict: events fed in time order; unknown operations never return.
    fn stateright_says(ops: &[RegOp], owner: &[u64]) -> bool {
        use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
        let mut events: Vec<(u64, usize)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke, i));
            if op.ret != Unknown {
                events.push((op.complete, i));
            }
        }
        events.sort();
        let mut tester = LinearizabilityTester::new(Register::default());
        for (t, i) in events {
            if t == ops[i].invoke {
                tester.on_invoke(owner[i], ops[i].call).expect("a well-formed history");
            } else {
                tester.on_return(owner[i], ops[i].ret).expect("a well-formed history");
            }
        }
        tester.is_consistent()
    }

    #[test]
    fn agrees_with_stateright_on_small_random_histories() {
        let seed = 0x7a4d_3c11u64;
        eprintln!("seed {seed}");
        let mut rng = Rng(seed);
        let (mut linearizable, mut not) = (0, 0);
        for round in 0..3000 {
            let n = 2 + rng.below(7) as usize;
            let (ops, owner) = random_history(&mut rng, n);
            let theirs = stateright_says(&ops, &owner);
            let ours = check(&ops, Init::Absent, BUDGET);
            assert_eq!(ours == Verdict::Linearizable, theirs, "round {round} (seed {seed}): {ops:#?}");
            if theirs {
                linearizable += 1;
            } else {
                not += 1;
            }
        }
        // Both verdicts were exercised.
        assert!(linearizable > 300 && not > 300, "{linearizable} linearizable, {not} not");
    }
}
