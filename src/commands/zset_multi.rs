//! Sorted-set commands over several keys: ZUNION, ZINTER, ZDIFF and their STORE
//! forms (WEIGHTS, AGGREGATE), ZINTERCARD, and the pops that choose among keys —
//! ZMPOP, and the blocking BZMPOP, BZPOPMIN and BZPOPMAX.
//!
//! Sets take part in unions and intersections with a score of 1, as in Redis.
//! Inputs are combined smallest first (a stable order by size, as Redis sorts them),
//! so sums of scores add up in Redis's order and give the same doubles.
//!
//! A blocking pop here only decides, like BLPOP (see `lists`): it pops when a key
//! has members, or replies [`Reply::WouldBlock`] and changes nothing; the
//! connection layer waits and runs it again when a key it names gains members.

use bytes::Bytes;

use super::flags::*;
use super::*;
use crate::protocol::reply::Reply;
use crate::store::db::Db;
use crate::store::set::Member;
use crate::store::value::{Blob, Value, ZSet, WRONGTYPE};

const G: &str = "sorted-set";

pub static COMMANDS: &[CommandSpec] = &[
    spec("zunion", -3, READONLY | MOVABLE_KEYS, (0, 0, 0), G, "Returns the union of multiple sorted sets.", Handler::Read(zunion))
        .movable(|args| keys_after_numkeys(args, 1)),
    spec("zinter", -3, READONLY | MOVABLE_KEYS, (0, 0, 0), G, "Returns the intersect of multiple sorted sets.", Handler::Read(zinter))
        .movable(|args| keys_after_numkeys(args, 1)),
    spec("zdiff", -3, READONLY | MOVABLE_KEYS, (0, 0, 0), G, "Returns the difference between multiple sorted sets.", Handler::Read(zdiff))
        .movable(|args| keys_after_numkeys(args, 1)),
    spec(
        "zintercard",
        -3,
        READONLY | MOVABLE_KEYS,
        (0, 0, 0),
        G,
        "Returns the number of members of the intersect of multiple sorted sets.",
        Handler::Read(zintercard),
    )
    .movable(|args| keys_after_numkeys(args, 1)),
    spec(
        "zunionstore",
        -4,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        G,
        "Stores the union of multiple sorted sets in a key.",
        Handler::Write(zunionstore),
    )
    .movable(keys_destination_and_numkeys),
    spec(
        "zinterstore",
        -4,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        G,
        "Stores the intersect of multiple sorted sets in a key.",
        Handler::Write(zinterstore),
    )
    .movable(keys_destination_and_numkeys),
    spec(
        "zdiffstore",
        -4,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        G,
        "Stores the difference of multiple sorted sets in a key.",
        Handler::Write(zdiffstore),
    )
    .movable(keys_destination_and_numkeys),
    spec(
        "zmpop",
        -4,
        WRITE | MOVABLE_KEYS,
        (0, 0, 0),
        G,
        "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them.",
        Handler::Write(zmpop),
    )
    .movable(|args| keys_after_numkeys(args, 1)),
    spec(
        "bzmpop",
        -5,
        WRITE | BLOCKING | MOVABLE_KEYS | TIMEOUT_FIRST,
        (0, 0, 0),
        G,
        "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise.",
        Handler::Write(bzmpop),
    )
    .movable(|args| keys_after_numkeys(args, 2)),
    spec(
        "bzpopmin",
        -3,
        WRITE | FAST | BLOCKING,
        (1, -2, 1),
        G,
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise.",
        Handler::Write(bzpopmin),
    ),
    spec(
        "bzpopmax",
        -3,
        WRITE | FAST | BLOCKING,
        (1, -2, 1),
        G,
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member is available otherwise.",
        Handler::Write(bzpopmax),
    ),
];

const ERR_WEIGHT: &str = "ERR weight value is not a float";
const ERR_LIMIT: &str = "ERR LIMIT can't be negative";
const ERR_NUMKEYS: &str = "ERR numkeys should be greater than 0";
const ERR_COUNT: &str = "ERR count should be greater than 0";

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                // inf + -inf: Redis's convention is 0.
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => *target = target.min(value),
            Aggregate::Max => *target = target.max(value),
        }
    }
}

/// One input: a sorted set, or a set whose members all score 1.
#[derive(Clone, Copy)]
enum Source<'a> {
    Missing,
    ZSet(&'a ZSet),
    Set(&'a crate::store::value::SetValue),
}

impl<'a> Source<'a> {
    fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::ZSet(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::ZSet(z) => z.score(member),
            Source::Set(s) => s.contains(member).then_some(1.0),
        }
    }

    fn entries(&self) -> Box<dyn Iterator<Item = (Member<'a>, f64)> + 'a> {
        match *self {
            Source::Missing => Box::new(std::iter::empty()),
            Source::ZSet(z) => Box::new(z.sorted().map(|(s, m)| (Member::Lent(m), s.0))),
            Source::Set(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }
}

/// A parsed ZUNION/ZINTER/ZDIFF family command.
struct Combine<'a> {
    sources: Vec<(Source<'a>, f64)>,
    aggregate: Aggregate,
    with_scores: bool,
    limit: usize,
}

/// `numkeys` as these commands read it, with the full command name for the error.
fn numkeys(args: &[Bytes], at: usize, full_name: &str) -> Result<usize, Reply> {
    let n = int_arg(&args[at])?;
    if n < 1 {
        return Err(Reply::error(format!("ERR at least 1 input key is needed for '{full_name}' command")));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > args.len() - at - 1 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    Ok(n)
}

/// Parses in Redis's order: numkeys, the keys' types, then the options.
fn parse_combine<'a>(db: &'a Db, now_ms: u64, args: &[Bytes], at: usize, op: SetOp, store: bool, card: bool) -> Result<Combine<'a>, Reply> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let n = numkeys(args, at, &name)?;
    let keys = &args[at + 1..at + 1 + n];
    let mut sources = Vec::with_capacity(n);
    for key in keys {
        sources.push((
            match db.get(key, now_ms).map(|i| &i.value) {
                None => Source::Missing,
                Some(Value::ZSet(z)) => Source::ZSet(z),
                Some(Value::Set(s)) => Source::Set(s),
                Some(_) => return Err(Reply::err(WRONGTYPE)),
            },
            1.0,
        ));
    }
    let mut c = Combine { sources, aggregate: Aggregate::Sum, with_scores: false, limit: 0 };
    let rest = &args[at + 1 + n..];
    let mut j = 0;
    while let Some(opt) = rest.get(j) {
        let left = rest.len() - j;
        match () {
            _ if op != SetOp::Diff && !card && left > n && is(opt, "weights") => {
                for (i, w) in rest[j + 1..=j + n].iter().enumerate() {
                    c.sources[i].1 = parse_double(w).ok_or(Reply::err(ERR_WEIGHT))?;
                }
                j += n + 1;
            }
            _ if op != SetOp::Diff && !card && left >= 2 && is(opt, "aggregate") => {
                c.aggregate = match &rest[j + 1] {
                    a if is(a, "sum") => Aggregate::Sum,
                    a if is(a, "min") => Aggregate::Min,
                    a if is(a, "max") => Aggregate::Max,
                    _ => return Err(Reply::err(ERR_SYNTAX)),
                };
                j += 2;
            }
            _ if !store && !card && is(opt, "withscores") => {
                c.with_scores = true;
                j += 1;
            }
            _ if card && left >= 2 && is(opt, "limit") => {
                let limit = parse_i64(&rest[j + 1]).filter(|l| *l >= 0).ok_or(Reply::err(ERR_LIMIT))?;
                c.limit = usize::try_from(limit).unwrap_or(usize::MAX);
                j += 2;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
    }
    Ok(c)
}

/// The weighted score of one input's member: a NaN (0 × inf) counts as 0.
fn weighted(score: f64, weight: f64) -> f64 {
    let w = score * weight;
    if w.is_nan() {
        0.0
    } else {
        w
    }
}

/// Computes the result set (for ZINTERCARD, only as many members as its LIMIT needs).
fn combine(c: &Combine<'_>, op: SetOp) -> ZSet {
    let mut out = ZSet::new();
    let mut sources = c.sources.clone();
    if op != SetOp::Diff {
        sources.sort_by_key(|(s, _)| s.len());
    }
    let Some(&(first, first_weight)) = sources.first() else { return out };
    match op {
        SetOp::Inter => {
            'members: for (member, score) in first.entries() {
                let mut total = weighted(score, first_weight);
                for (other, weight) in &sources[1..] {
                    let Some(s) = other.score(&member) else { continue 'members };
                    c.aggregate.apply(&mut total, s * weight);
                }
                out.insert(&member, total);
                if c.limit != 0 && out.len() >= c.limit {
                    break;
                }
            }
        }
        SetOp::Union => {
            let mut totals: indexmap::IndexMap<Member<'_>, f64> = indexmap::IndexMap::new();
            for (source, weight) in &sources {
                for (member, score) in source.entries() {
                    let value = weighted(score, *weight);
                    match totals.get_mut(&member) {
                        Some(total) => c.aggregate.apply(total, value),
                        None => {
                            totals.insert(member, value);
                        }
                    }
                }
            }
            for (member, total) in totals {
                out.insert(&member, total);
            }
        }
        SetOp::Diff => {
            for (member, score) in first.entries() {
                if sources[1..].iter().all(|(other, _)| other.score(&member).is_none()) {
                    out.insert(&member, score);
                }
            }
        }
    }
    out
}

fn members_reply(z: &ZSet, with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(z.sorted().map(|(s, m)| (Reply::bulk(m), Reply::Double(s.0))).collect())
    } else {
        Reply::Array(z.sorted().map(|(_, m)| Reply::bulk(m)).collect())
    }
}

fn combine_read(ctx: &mut ReadCtx, args: &[Bytes], op: SetOp) -> CmdResult {
    let c = parse_combine(ctx.db, ctx.now_ms, args, 1, op, false, false)?;
    Ok(members_reply(&combine(&c, op), c.with_scores))
}

fn combine_store(ctx: &mut WriteCtx, args: &[Bytes], op: SetOp, event: &'static str) -> CmdResult {
    let result = {
        let c = parse_combine(ctx.db, ctx.now_ms, args, 2, op, true, false)?;
        combine(&c, op)
    };
    let dest = &args[1];
    if result.is_empty() {
        if ctx.delete(dest) {
            ctx.notify(b'g', "del", dest);
        }
        return Ok(Reply::Int(0));
    }
    let len = result.len();
    ctx.set(dest, Value::ZSet(result));
    ctx.notify(b'z', event, dest);
    Ok(Reply::Int(len as i64))
}

fn zunion(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    combine_read(ctx, args, SetOp::Union)
}

fn zinter(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    combine_read(ctx, args, SetOp::Inter)
}

fn zdiff(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    combine_read(ctx, args, SetOp::Diff)
}

fn zunionstore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    combine_store(ctx, args, SetOp::Union, "zunionstore")
}

fn zinterstore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    combine_store(ctx, args, SetOp::Inter, "zinterstore")
}

fn zdiffstore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    combine_store(ctx, args, SetOp::Diff, "zdiffstore")
}

fn zintercard(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let c = parse_combine(ctx.db, ctx.now_ms, args, 1, SetOp::Inter, false, true)?;
    Ok(Reply::Int(combine(&c, SetOp::Inter).len() as i64))
}

// --- pops over several keys ---

/// Pops up to `count` members from the lowest (or highest, `max`) end of the sorted
/// set at `key`, recording the pop event and deleting the key if it empties.
fn pop_members(ctx: &mut WriteCtx, key: &[u8], max: bool, count: usize) -> Result<Vec<(Blob, f64)>, Reply> {
    let Some(value) = ctx.get_mut(key) else { return Ok(Vec::new()) };
    let z = value.as_zset_mut()?;
    let mut popped = Vec::new();
    while popped.len() < count {
        let end = if max { z.last() } else { z.first() };
        let Some((score, member)) = end.map(|(s, m)| (s, Blob::from(m))) else { break };
        z.remove(&member);
        popped.push((member, score.0));
    }
    if !popped.is_empty() {
        ctx.notify(b'z', if max { "zpopmax" } else { "zpopmin" }, key);
        ctx.remove_if_empty(key);
    }
    Ok(popped)
}

/// The first of `keys` holding a sorted set with members; WRONGTYPE if a key before
/// it holds something else.
fn first_with_members<'k>(ctx: &mut WriteCtx, keys: &'k [Bytes]) -> Result<Option<&'k Bytes>, Reply> {
    for key in keys {
        match ctx.get(key) {
            None => continue,
            Some(value) if !value.as_zset()?.is_empty() => return Ok(Some(key)),
            Some(_) => continue,
        }
    }
    Ok(None)
}

/// ZMPOP/BZMPOP's `numkeys key … MIN|MAX [COUNT n]` from `at`: keys, max, count.
fn parse_mpop(args: &[Bytes], at: usize) -> Result<(&[Bytes], bool, usize), Reply> {
    let n = parse_i64(&args[at]).filter(|n| *n > 0).ok_or(Reply::err(ERR_NUMKEYS))?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let where_at = at.checked_add(n).and_then(|w| w.checked_add(1)).filter(|&w| w < args.len()).ok_or(Reply::err(ERR_SYNTAX))?;
    let max = match &args[where_at] {
        a if is(a, "min") => false,
        a if is(a, "max") => true,
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    let mut count = None;
    let mut j = where_at + 1;
    while let Some(opt) = args.get(j) {
        match args.get(j + 1) {
            Some(n) if count.is_none() && is(opt, "count") => {
                let n = parse_i64(n).filter(|n| *n > 0).ok_or(Reply::err(ERR_COUNT))?;
                count = Some(usize::try_from(n).unwrap_or(usize::MAX));
                j += 2;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
    }
    Ok((&args[at + 1..where_at], max, count.unwrap_or(1)))
}

/// `[key, [[member, score], …]]`, or `None` when no key has members.
fn mpop(ctx: &mut WriteCtx, keys: &[Bytes], max: bool, count: usize) -> Result<Option<Reply>, Reply> {
    let Some(key) = first_with_members(ctx, keys)? else { return Ok(None) };
    let popped = pop_members(ctx, key, max, count)?;
    let pairs = popped.into_iter().map(|(m, s)| Reply::Array(vec![Reply::Bulk(Bytes::from(m.into_vec())), Reply::Double(s)]));
    Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(pairs.collect())])))
}

fn zmpop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (keys, max, count) = parse_mpop(args, 1)?;
    Ok(mpop(ctx, keys, max, count)?.unwrap_or(Reply::NilArray))
}

/// BZMPOP timeout numkeys key … MIN|MAX [COUNT n]; the timeout is checked after the
/// rest, as in Redis.
fn bzmpop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (keys, max, count) = parse_mpop(args, 2)?;
    timeout_arg(&args[1])?;
    Ok(mpop(ctx, keys, max, count)?.unwrap_or(Reply::WouldBlock))
}

/// BZPOPMIN/BZPOPMAX key … timeout: `[key, member, score]` from the first key with
/// members.
fn bzpop(ctx: &mut WriteCtx, args: &[Bytes], max: bool) -> CmdResult {
    let (timeout, keys) = args[1..].split_last().ok_or(Reply::err(ERR_SYNTAX))?;
    timeout_arg(timeout)?;
    let Some(key) = first_with_members(ctx, keys)? else { return Ok(Reply::WouldBlock) };
    let Some((member, score)) = pop_members(ctx, key, max, 1)?.into_iter().next() else { return Ok(Reply::WouldBlock) };
    Ok(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(Bytes::from(member.into_vec())), Reply::Double(score)]))
}

fn bzpopmin(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    bzpop(ctx, args, false)
}

fn bzpopmax(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    bzpop(ctx, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::Store;

    const T: u64 = 1_000;

    fn store() -> Store {
        let mut s = Store::new();
        run(&mut s, T, &["zadd", "a", "1", "x", "2", "y", "3", "z"]);
        run(&mut s, T, &["zadd", "b", "10", "y", "20", "z", "30", "w"]);
        run(&mut s, T, &["sadd", "s", "x", "w"]);
        s
    }

    fn scored(pairs: &[(&str, f64)]) -> Reply {
        Reply::Pairs(pairs.iter().map(|(m, s)| (bulk(m), Reply::Double(*s))).collect())
    }

    fn names(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk(s)).collect())
    }

    #[test]
    fn union_inter_diff_with_weights_and_aggregates() {
        let mut s = store();
        assert_eq!(run(&mut s, T, &["zunion", "2", "a", "b", "withscores"]), scored(&[("x", 1.0), ("y", 12.0), ("z", 23.0), ("w", 30.0)]));
        assert_eq!(run(&mut s, T, &["zinter", "2", "a", "b", "weights", "2", "1", "withscores"]), scored(&[("y", 14.0), ("z", 26.0)]));
        assert_eq!(run(&mut s, T, &["zinter", "2", "a", "b", "aggregate", "max"]), names(&["y", "z"]));
        assert_eq!(
            run(&mut s, T, &["zunion", "2", "a", "b", "aggregate", "min", "withscores"]),
            scored(&[("x", 1.0), ("y", 2.0), ("z", 3.0), ("w", 30.0)])
        );
        assert_eq!(run(&mut s, T, &["zdiff", "2", "a", "b", "withscores"]), scored(&[("x", 1.0)]));
        assert_eq!(run(&mut s, T, &["zunion", "2", "a", "s", "withscores"]), scored(&[("w", 1.0), ("x", 2.0), ("y", 2.0), ("z", 3.0)]));
        assert_eq!(run(&mut s, T, &["zinter", "2", "a", "missing"]), names(&[]));
        assert_eq!(run(&mut s, T, &["zintercard", "2", "a", "b"]), Reply::Int(2));
        assert_eq!(run(&mut s, T, &["zintercard", "2", "a", "b", "limit", "1"]), Reply::Int(1));
    }

    #[test]
    fn infinities_and_nans_follow_redis_conventions() {
        let mut s = Store::new();
        run(&mut s, T, &["zadd", "p", "inf", "m"]);
        run(&mut s, T, &["zadd", "n", "-inf", "m"]);
        assert_eq!(run(&mut s, T, &["zunion", "2", "p", "n", "withscores"]), scored(&[("m", 0.0)]));
        assert_eq!(run(&mut s, T, &["zunion", "1", "p", "weights", "0", "withscores"]), scored(&[("m", 0.0)]));
    }

    #[test]
    fn store_forms_replace_or_delete_the_destination() {
        let mut s = store();
        let applied = run_applied(&mut s, T, &["zunionstore", "d", "2", "a", "b"]);
        assert_eq!(applied.replies[0], Reply::Int(4));
        assert_eq!(applied.events.iter().map(|e| e.event).collect::<Vec<_>>(), vec!["zunionstore"]);
        assert_eq!(applied.ready_keys.len(), 1);
        assert_eq!(run(&mut s, T, &["zinterstore", "d", "2", "a", "b"]), Reply::Int(2));
        assert_eq!(run(&mut s, T, &["zdiffstore", "d", "2", "a", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, T, &["exists", "d"]), Reply::Int(0));
        assert_eq!(run(&mut s, T, &["zunionstore", "d", "1", "a", "withscores"]), err(ERR_SYNTAX));
    }

    #[test]
    fn argument_errors_in_redis_order() {
        let mut s = store();
        run(&mut s, T, &["set", "str", "v"]);
        assert_eq!(run(&mut s, T, &["zunion", "0", "a"]), err("ERR at least 1 input key is needed for 'zunion' command"));
        assert_eq!(run(&mut s, T, &["zunionstore", "d", "0", "a"]), err("ERR at least 1 input key is needed for 'zunionstore' command"));
        assert_eq!(run(&mut s, T, &["zunion", "3", "a", "b"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut s, T, &["zunion", "x", "a"]), err(ERR_NOT_INT));
        assert_eq!(run(&mut s, T, &["zunion", "2", "a", "str", "bogus"]), err(WRONGTYPE));
        assert_eq!(run(&mut s, T, &["zunion", "2", "a", "b", "weights", "1", "x"]), err(ERR_WEIGHT));
        assert_eq!(run(&mut s, T, &["zunion", "2", "a", "b", "weights", "1"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut s, T, &["zunion", "2", "a", "b", "aggregate", "avg"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut s, T, &["zdiff", "2", "a", "b", "weights", "1", "1"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut s, T, &["zintercard", "1", "a", "limit", "-1"]), err(ERR_LIMIT));
        assert_eq!(run(&mut s, T, &["zintercard", "1", "a", "withscores"]), err(ERR_SYNTAX));
    }

    #[test]
    fn zmpop_pops_from_the_first_non_empty_key() {
        let mut s = store();
        let reply = run(&mut s, T, &["zmpop", "3", "missing", "a", "b", "min", "count", "2"]);
        let pair = |m: &str, sc: f64| Reply::Array(vec![bulk(m), Reply::Double(sc)]);
        assert_eq!(reply, Reply::Array(vec![bulk("a"), Reply::Array(vec![pair("x", 1.0), pair("y", 2.0)])]));
        assert_eq!(run(&mut s, T, &["zmpop", "1", "b", "max"]), Reply::Array(vec![bulk("b"), Reply::Array(vec![pair("w", 30.0)])]));
        assert_eq!(run(&mut s, T, &["zmpop", "1", "missing", "max"]), Reply::NilArray);
        assert_eq!(run(&mut s, T, &["zmpop", "0", "a", "min"]), err(ERR_NUMKEYS));
        assert_eq!(run(&mut s, T, &["zmpop", "1", "a", "middle"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut s, T, &["zmpop", "2", "a", "min"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut s, T, &["zmpop", "1", "a", "min", "count", "0"]), err(ERR_COUNT));
        assert_eq!(run(&mut s, T, &["zmpop", "1", "a", "min", "count", "1", "count", "1"]), err(ERR_SYNTAX));
        run(&mut s, T, &["set", "str", "v"]);
        assert_eq!(run(&mut s, T, &["zmpop", "2", "str", "a", "min"]), err(WRONGTYPE));
    }

    #[test]
    fn blocking_pops_decide_or_ask_to_wait() {
        let mut s = store();
        assert_eq!(run(&mut s, T, &["bzpopmin", "missing", "a", "0"]), Reply::Array(vec![bulk("a"), bulk("x"), Reply::Double(1.0)]));
        assert_eq!(run(&mut s, T, &["bzpopmax", "a", "1.5"]), Reply::Array(vec![bulk("a"), bulk("z"), Reply::Double(3.0)]));
        assert_eq!(run(&mut s, T, &["bzpopmax", "missing", "0"]), Reply::WouldBlock);
        assert_eq!(run(&mut s, T, &["bzpopmin", "a", "-1"]), err(ERR_TIMEOUT_NEGATIVE));
        assert_eq!(run(&mut s, T, &["bzmpop", "0", "1", "missing", "min"]), Reply::WouldBlock);
        assert_eq!(run(&mut s, T, &["bzmpop", "x", "1", "missing", "min"]), err(ERR_TIMEOUT));
        let applied = run_applied(&mut s, T, &["bzmpop", "0", "1", "a", "max", "count", "5"]);
        assert_eq!(applied.events.iter().map(|e| e.event).collect::<Vec<_>>(), vec!["zpopmax", "del"]);
    }

    #[test]
    fn movable_keys_are_found_after_numkeys() {
        let spec = lookup(b"zunionstore").unwrap();
        let args: Vec<Bytes> =
            ["zunionstore", "d", "2", "a", "b", "weights", "1", "2"].iter().map(|s| Bytes::from(s.to_string())).collect();
        assert_eq!(spec.keys(&args), vec![&args[1], &args[3], &args[4]]);
        let spec = lookup(b"bzmpop").unwrap();
        let args: Vec<Bytes> = ["bzmpop", "0", "9", "a"].iter().map(|s| Bytes::from(s.to_string())).collect();
        assert_eq!(spec.keys(&args), vec![&args[3]], "a numkeys past the end is cut to the arguments");
        assert_eq!(blocking_timeout_arg(spec, &args), Some(&args[1]));
    }
}
