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
//! invoked, or never: its reply is "at infinity" and accepts any answer. Two sound
//! rewrites keep such operations from multiplying the search:
//! - a write whose unique value some read returned took effect before that read
//!   ended: its reply moves there;
//! - a write nobody could have observed (no read of its value, no later SET NX that
//!   found the key present or DEL that removed something) is dropped: a history is
//!   linearizable with it exactly when it is without it. The same holds for a DEL
//!   nobody could have observed (no later nil read, SET NX that set, or DEL of nothing).
//!
//! It knows nothing of Redis or of the cluster: values are numbers, times are
//! nanoseconds. `shrink` finds a small sub-history that is still not linearizable.

use std::collections::{HashMap, HashSet};

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

/// The register's value during the search: absent, a value, or (when the history
/// starts from `Init::Any`) not yet known, possibly known to be present.
type State = u32;
const ABSENT: State = 0;
const ANY: State = u32::MAX;
const ANY_PRESENT: State = u32::MAX - 1;

/// The largest value id: the top two are the unknown states.
pub const VALUE_ID_MAX: ValueId = u32::MAX - 2;

/// The value after `op`, or None if `op` could not have answered what it did.
fn step(state: State, op: &RegOp) -> Option<State> {
    use RegCall::*;
    use RegRet::*;
    match (op.call, op.ret) {
        (Get, Value(Some(v))) => match state {
            ABSENT => None,
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
        // Unknown: sets if absent. From ANY this over-approximates (present, value
        // unknown), which only makes a window easier to linearize.
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
    let ops = prepare(ops);
    search(&ops, if init == Init::Any { ANY } else { ABSENT }, budget)
}

/// The rewrites of the module doc: reads that tell nothing go, unknown writes that
/// were observed end where first observed, unknown writes nobody could observe go.
fn prepare(ops: &[RegOp]) -> Vec<RegOp> {
    const INF: u64 = u64::MAX;
    let mut first_read_of: HashMap<ValueId, u64> = HashMap::new();
    for op in ops {
        if let (RegCall::Get, RegRet::Value(Some(v))) = (op.call, op.ret) {
            let t = first_read_of.entry(v).or_insert(op.complete);
            *t = (*t).min(op.complete);
        }
    }
    // First the observed unknown writes: they took effect before the first read of
    // their value ended (a SET NX then certainly set). Reads that tell nothing go.
    let mut out: Vec<RegOp> = Vec::with_capacity(ops.len());
    for op in ops {
        let mut op = *op;
        match (op.call, op.ret) {
            (RegCall::Get, RegRet::Value(_)) => {}
            (RegCall::Get, _) => continue,
            (RegCall::Set(v) | RegCall::SetNx(v), RegRet::Unknown) => {
                if let Some(&read) = first_read_of.get(&v) {
                    op.complete = read;
                    op.ret = if matches!(op.call, RegCall::SetNx(_)) { RegRet::Flag(true) } else { RegRet::Done };
                }
            }
            _ => {}
        }
        out.push(op);
    }
    // Then the latest reply of an operation that saw the key present / absent, and
    // the unknown writes no such operation could have seen.
    let (mut saw_present, mut saw_absent) = (None::<u64>, None::<u64>);
    for op in &out {
        match (op.call, op.ret) {
            (RegCall::SetNx(_), RegRet::Flag(false)) | (RegCall::Del, RegRet::Removed(true)) => {
                saw_present = saw_present.max(Some(op.complete))
            }
            (RegCall::Get, RegRet::Value(None)) | (RegCall::SetNx(_), RegRet::Flag(true)) | (RegCall::Del, RegRet::Removed(false)) => {
                saw_absent = saw_absent.max(Some(op.complete))
            }
            _ => {}
        }
    }
    let later = |seen: Option<u64>, t: u64| seen.is_some_and(|s| s >= t);
    out.retain_mut(|op| {
        let observable = match (op.call, op.ret) {
            (RegCall::Set(_) | RegCall::SetNx(_), RegRet::Unknown) => later(saw_present, op.invoke),
            (RegCall::Del, RegRet::Unknown) => later(saw_absent, op.invoke),
            _ => return true,
        };
        op.complete = INF;
        observable
    });
    out
}

const NIL: usize = usize::MAX;

/// The events of a history as a doubly linked list (so placed operations can be
/// lifted out and put back in O(1)); node `head` is a sentinel before the first.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per node: its operation, and whether it is the invocation.
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// Per operation: its invocation and reply nodes.
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
    head: usize,
}

impl Events {
    fn new(ops: &[RegOp]) -> Events {
        let n = ops.len();
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            let end = if op.ret == RegRet::Unknown { u64::MAX } else { op.complete };
            // On equal times an invocation sorts before a reply: the two overlap.
            order.push((op.invoke, 0, i));
            order.push((end.max(op.invoke), 1, i));
        }
        order.sort_unstable();
        let head = 2 * n;
        let mut e = Events {
            next: vec![NIL; 2 * n + 1],
            prev: vec![NIL; 2 * n + 1],
            op: vec![0; 2 * n],
            is_call: vec![false; 2 * n],
            call_node: vec![0; n],
            ret_node: vec![0; n],
            head,
        };
        let mut last = head;
        for (node, &(_, kind, i)) in order.iter().enumerate() {
            e.op[node] = i;
            e.is_call[node] = kind == 0;
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

fn search(ops: &[RegOp], init: State, budget: u64) -> Verdict {
    let mut events = Events::new(ops);
    let zobrist: Vec<(u64, u64)> = (0..ops.len() as u64).map(|i| (splitmix64(2 * i), splitmix64(2 * i + 1))).collect();
    let mut placed = (0u64, 0u64);
    let mut seen: HashSet<(u64, u64, State)> = HashSet::new();
    // Each placed operation's invocation node and the state before it.
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = init;
    let mut entry = events.next[events.head];
    let mut steps = 0u64;
    while events.next[events.head] != NIL {
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive;
        }
        if entry != NIL && events.is_call[entry] {
            let op = events.op[entry];
            if let Some(after) = step(state, &ops[op]) {
                let (a, b) = zobrist[op];
                let key = (placed.0 ^ a, placed.1 ^ b);
                if seen.insert((key.0, key.1, after)) {
                    stack.push((entry, state));
                    state = after;
                    placed = key;
                    events.lift(op);
                    entry = events.next[events.head];
                    continue;
                }
            }
            entry = events.next[entry];
        } else {
            // A reply whose operation could not be placed before it: undo the last
            // placement and try the next candidate after it.
            let Some((node, before)) = stack.pop() else { return Verdict::NotLinearizable };
            let op = events.op[node];
            let (a, b) = zobrist[op];
            placed = (placed.0 ^ a, placed.1 ^ b);
            state = before;
            events.unlift(op);
            entry = events.next[node];
        }
    }
    Verdict::Linearizable
}

/// Steps one check of `shrink` may take, and how many checks it may make.
const SHRINK_CHECK_BUDGET: u64 = 200_000;
const SHRINK_CHECKS_MAX: usize = 20_000;

/// A small sub-history of a non-linearizable `ops` that is still not linearizable:
/// indices into `ops`, in invocation order. If the history is not linearizable from
/// any initial value, the window is judged from any value (so it need not include
/// the writes before it); otherwise from an absent key.
pub fn shrink(ops: &[RegOp], budget: u64) -> Vec<usize> {
    let init = if check(ops, Init::Any, budget) == Verdict::NotLinearizable { Init::Any } else { Init::Absent };
    let mut checks = 0usize;
    let mut violates = |idx: &[usize]| {
        checks += 1;
        if checks > SHRINK_CHECKS_MAX {
            return false;
        }
        let sub: Vec<RegOp> = idx.iter().map(|&i| ops[i]).collect();
        check(&sub, init, SHRINK_CHECK_BUDGET.min(budget)) == Verdict::NotLinearizable
    };
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].invoke, i));
    // The shortest prefix (by invocation) that is not linearizable, as a start.
    let (mut lo, mut hi) = (1, order.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if violates(&order[..mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut keep = if violates(&order[..hi]) { order[..hi].to_vec() } else { order };
    // Then remove chunks, halving their size, and single operations until none goes.
    let mut chunk = (keep.len() / 2).max(1);
    loop {
        let mut removed = false;
        let mut i = 0;
        while i < keep.len() && keep.len() > 1 {
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
    keep
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
    fn a_stale_read_is_not_linearizable_and_shrinks_to_the_two_writes_and_the_read() {
        let mut h = vec![op(Set(1), Done, 0, 10), op(Set(2), Done, 20, 30), op(Get, Value(Some(1)), 40, 50)];
        // Noise on both sides.
        for n in 0..20u64 {
            h.push(op(Get, Value(Some(2)), 31 + n, 32 + n));
        }
        h.push(op(Set(3), Done, 100, 110));
        h.push(op(Get, Value(Some(3)), 120, 130));
        assert_eq!(check(&h, Init::Absent, BUDGET), Verdict::NotLinearizable);
        let small: Vec<RegOp> = shrink(&h, BUDGET).into_iter().map(|i| h[i]).collect();
        assert_eq!(small.len(), 2, "{small:?}");
        assert_eq!(small[1], op(Get, Value(Some(1)), 40, 50));
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

    struct Rng(u64);
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
