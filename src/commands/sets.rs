//! Set commands: unordered unique members under one key (SADD, SPOP, SINTER, …), and
//! the random-pick helpers the hash family shares (HRANDFIELD follows SRANDMEMBER's
//! count rules). A set keeps its members in insertion order (`store::set`: packed, or
//! a `KeyTable`), so a random member is a random index, O(1) in a table, and removal is
//! a swap remove, which the scan cursor expects.
//! An emptied set is deleted.
//!
//! SPOP is a write: it draws only from `ctx.rng`, the entry's seed, so every replica
//! pops the same members. SRANDMEMBER is a read and changes nothing.

use bytes::Bytes;
use indexmap::IndexSet;
use rand::Rng;

use super::flags::*;
use super::*;
use crate::protocol::reply::Reply;
use crate::store::db::Db;
use crate::store::set::Member;
use crate::store::value::{Blob, Hasher, SetValue, Value};

const G: &str = "set";

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    spec("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Adds one or more members to a set. Creates the key if it doesn't exist.", Handler::Write(sadd)),
    spec("srem", -3, WRITE | FAST, (1, 1, 1), G, "Removes one or more members from a set. Deletes the set if the last member was removed.", Handler::Write(srem)),
    spec("smembers", 2, READONLY, (1, 1, 1), G, "Returns all members of a set.", Handler::Read(smembers)),
    spec("sismember", 3, READONLY | FAST, (1, 1, 1), G, "Determines whether a member belongs to a set.", Handler::Read(sismember)),
    spec("smismember", -3, READONLY | FAST, (1, 1, 1), G, "Determines whether multiple members belong to a set.", Handler::Read(smismember)),
    spec("scard", 2, READONLY | FAST, (1, 1, 1), G, "Returns the number of members in a set.", Handler::Read(scard)),
    spec("spop", -2, WRITE | FAST, (1, 1, 1), G, "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", Handler::Write(spop)),
    spec("srandmember", -2, READONLY, (1, 1, 1), G, "Get one or multiple random members from a set", Handler::Read(srandmember)),
    spec("smove", 4, WRITE | FAST, (1, 2, 1), G, "Moves a member from one set to another.", Handler::Write(smove)),
    spec("sinter", -2, READONLY, (1, -1, 1), G, "Returns the intersect of multiple sets.", Handler::Read(sinter)),
    spec("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), G, "Stores the intersect of multiple sets in a key.", Handler::Write(sinterstore)),
    spec("sintercard", -3, READONLY, (0, 0, 0), G, "Returns the number of members of the intersect of multiple sets.", Handler::Read(sintercard))
        .movable(|args| keys_after_numkeys(args, 1)),
    spec("sunion", -2, READONLY, (1, -1, 1), G, "Returns the union of multiple sets.", Handler::Read(sunion)),
    spec("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), G, "Stores the union of multiple sets in a key.", Handler::Write(sunionstore)),
    spec("sdiff", -2, READONLY, (1, -1, 1), G, "Returns the difference of multiple sets.", Handler::Read(sdiff)),
    spec("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), G, "Stores the difference of multiple sets in a key.", Handler::Write(sdiffstore)),
    spec("sscan", -3, READONLY, (1, 1, 1), G, "Iterates over members of a set.", Handler::Read(sscan)),
];

// --- random picks, shared with HRANDFIELD ---

/// Most elements one pick with repeats (a negative count) may return. Redis has no
/// bound but its client output buffer; one here keeps `SRANDMEMBER k -1000000000000`
/// from exhausting memory while still allowing far larger replies than anyone reads.
pub(super) const REPEATED_PICKS_MAX: u64 = 1 << 24;

/// The count of SRANDMEMBER/HRANDFIELD: any i64 but i64::MIN, whose negation
/// overflows (Redis: range -LONG_MAX..LONG_MAX, with its message).
pub(super) fn random_count_arg(arg: &[u8]) -> Result<i64, Reply> {
    match int_arg(arg)? {
        i64::MIN => Err(Reply::err("ERR value is out of range, must be between -9223372036854775807 and 9223372036854775807")),
        n => Ok(n),
    }
}

/// A uniformly random index below `len`; `None` for an empty collection.
pub(super) fn random_index(rng: &mut impl Rng, len: usize) -> Option<usize> {
    (len > 0).then(|| rng.gen_range(0..len))
}

/// The positions a count-taking random pick returns, with Redis's rules: a negative
/// count returns exactly |count| positions, repeats allowed; a positive count returns
/// distinct positions, the whole collection when it asks for at least that many.
pub(super) fn pick_indices(rng: &mut impl Rng, len: usize, count: i64) -> Result<Vec<usize>, Reply> {
    if count == 0 || len == 0 {
        return Ok(Vec::new());
    }
    if count < 0 {
        let wanted = count.unsigned_abs();
        if wanted > REPEATED_PICKS_MAX {
            return Err(Reply::err("ERR value is out of range"));
        }
        return Ok((0..wanted).map(|_| rng.gen_range(0..len)).collect());
    }
    let wanted = usize::try_from(count).unwrap_or(usize::MAX);
    if wanted >= len {
        return Ok((0..len).collect());
    }
    Ok(distinct_indices(rng, len, wanted))
}

/// `count` distinct positions below `len` (`count < len`), in random order. When the
/// pick is a large share of the collection, a partial shuffle of all positions; when
/// it is small, draws until enough distinct ones came up (Redis's same two cases),
/// so either way the work is O(count), never O(len) for a small pick.
fn distinct_indices(rng: &mut impl Rng, len: usize, count: usize) -> Vec<usize> {
    if count.saturating_mul(3) > len {
        let mut all: Vec<usize> = (0..len).collect();
        for i in 0..count {
            let j = rng.gen_range(i..len);
            all.swap(i, j);
        }
        all.truncate(count);
        return all;
    }
    let mut chosen: IndexSet<usize> = IndexSet::with_capacity(count);
    while chosen.len() < count {
        chosen.insert(rng.gen_range(0..len));
    }
    chosen.into_iter().collect()
}

// --- access ---

/// The set under `key` for reading; `None` if the key does not exist.
fn read_set<'a>(ctx: &mut ReadCtx<'a>, key: &[u8]) -> Result<Option<&'a SetValue>, Reply> {
    ctx.get(key).map(Value::as_set).transpose()
}

/// The set under `key` for writing, created empty if absent. The type is checked
/// before anything is created, so WRONGTYPE leaves the keyspace untouched.
fn write_set<'c>(ctx: &'c mut WriteCtx<'_>, key: &[u8]) -> Result<&'c mut SetValue, Reply> {
    ctx.get_checked_or_insert(key, |v| v.as_set().map(drop), || Value::Set(SetValue::default()))?.as_set_mut()
}

fn members_reply<M: AsRef<[u8]>>(members: impl IntoIterator<Item = M>) -> Vec<Reply> {
    members.into_iter().map(|m| Reply::bulk(m.as_ref())).collect()
}

// --- single-set commands ---

fn sadd(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let packing = ctx.db.set_packing;
    let set = write_set(ctx, key)?;
    let added = set.insert_all(args[2..].iter().map(|m| &m[..]), packing);
    if added > 0 {
        ctx.notify(b's', "sadd", key);
    }
    Ok(Reply::Int(added as i64))
}

fn srem(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(value) = ctx.get_mut(key) else {
        return Ok(Reply::Int(0));
    };
    let set = value.as_set_mut()?;
    let mut removed = 0;
    for member in &args[2..] {
        if set.swap_remove(&member[..]) {
            removed += 1;
        }
    }
    if removed > 0 {
        ctx.notify(b's', "srem", key);
        ctx.remove_if_empty(key);
    }
    Ok(Reply::Int(removed))
}

fn smembers(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let set = read_set(ctx, &args[1])?;
    Ok(Reply::Set(members_reply(set.into_iter().flat_map(SetValue::iter))))
}

fn sismember(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let set = read_set(ctx, &args[1])?;
    Ok(Reply::Int(set.is_some_and(|s| s.contains(&args[2][..])) as i64))
}

fn smismember(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let set = read_set(ctx, &args[1])?;
    let flags = args[2..].iter().map(|m| Reply::Int(set.is_some_and(|s| s.contains(&m[..])) as i64)).collect();
    Ok(Reply::Array(flags))
}

fn scard(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let set = read_set(ctx, &args[1])?;
    Ok(Reply::Int(set.map_or(0, |s| s.len()) as i64))
}

fn spop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => spop_one(ctx, &args[1]),
        3 => spop_count(ctx, &args[1], &args[2]),
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

fn spop_one(ctx: &mut WriteCtx, key: &[u8]) -> CmdResult {
    ctx.expire_if_needed(key);
    let Some(item) = ctx.db.item_mut(key) else {
        return Ok(Reply::Nil);
    };
    let set = item.value.as_set_mut()?;
    let Some(member) = random_index(ctx.rng, set.len()).and_then(|i| set.swap_remove_index(i)) else {
        return Ok(Reply::Nil);
    };
    ctx.notify(b's', "spop", key);
    ctx.remove_if_empty(key);
    Ok(Reply::bulk(&member))
}

/// SPOP with a count: a set reply (RESP3 `~`), empty for a missing key or count 0.
fn spop_count(ctx: &mut WriteCtx, key: &[u8], count_text: &[u8]) -> CmdResult {
    let count = non_negative(count_text, ERR_NOT_POSITIVE)?;
    ctx.expire_if_needed(key);
    let Some(item) = ctx.db.item_mut(key) else {
        return Ok(Reply::Set(Vec::new()));
    };
    let set = item.value.as_set_mut()?;
    if count == 0 {
        return Ok(Reply::Set(Vec::new()));
    }
    let popped: Vec<Blob> = if count >= set.len() {
        set.drain()
    } else {
        (0..count).filter_map(|_| random_index(ctx.rng, set.len()).and_then(|i| set.swap_remove_index(i))).collect()
    };
    ctx.notify(b's', "spop", key);
    ctx.remove_if_empty(key);
    Ok(Reply::Set(members_reply(popped.iter().map(|m| &m[..]))))
}

fn srandmember(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    match args.len() {
        2 => {
            let Some(set) = read_set(ctx, key)? else {
                return Ok(Reply::Nil);
            };
            Ok(Reply::bulk_opt(random_index(ctx.rng, set.len()).and_then(|i| set.get_index(i)).as_deref()))
        }
        3 => {
            let count = random_count_arg(&args[2])?;
            let Some(set) = read_set(ctx, key)? else {
                return Ok(Reply::Array(Vec::new()));
            };
            let picks = pick_indices(ctx.rng, set.len(), count)?;
            let indexed = set.indexed();
            Ok(Reply::Array(members_reply(picks.into_iter().filter_map(|i| indexed.get(i)))))
        }
        _ => Err(Reply::err(ERR_SYNTAX)),
    }
}

fn smove(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&args[1], &args[2], &args[3][..]);
    ctx.expire_if_needed(src);
    ctx.expire_if_needed(dst);
    // Redis's order: a missing source answers 0 before any type is checked.
    let Some(src_item) = ctx.db.item(src) else {
        return Ok(Reply::Int(0));
    };
    let src_set = src_item.value.as_set()?;
    if let Some(dst_item) = ctx.db.item(dst) {
        dst_item.value.as_set()?;
    }
    if src == dst {
        return Ok(Reply::Int(src_set.contains(member) as i64));
    }
    let removed = ctx.db.item_mut(src).and_then(|item| item.value.as_set_mut().ok()).is_some_and(|s| s.swap_remove(member));
    if !removed {
        return Ok(Reply::Int(0));
    }
    ctx.notify(b's', "srem", src);
    ctx.remove_if_empty(src);
    // A destination that already holds the member is left untouched (not modified
    // for WATCH, no event), as in Redis.
    let present = ctx.db.item(dst).and_then(|item| item.value.as_set().ok()).is_some_and(|s| s.contains(member));
    let packing = ctx.db.set_packing;
    if !present && write_set(ctx, dst)?.insert(member, packing) {
        ctx.notify(b's', "sadd", dst);
    }
    Ok(Reply::Int(1))
}

// --- set algebra ---

#[derive(Clone, Copy)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// The members of `op` over `sets` (`None` = a missing key, an empty set), in a
/// deterministic order. `limit` > 0 stops an intersection once it has that many.
fn combine<'s>(sets: &[Option<&'s SetValue>], op: SetOp, limit: usize) -> Vec<Member<'s>> {
    match op {
        SetOp::Inter => intersect(sets, limit),
        SetOp::Union => {
            let mut seen: IndexSet<Member<'s>, Hasher> = IndexSet::default();
            for set in sets.iter().flatten() {
                seen.extend(set.iter());
            }
            seen.into_iter().collect()
        }
        SetOp::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Vec::new();
            };
            let others: Vec<&SetValue> = sets.iter().skip(1).flatten().copied().collect();
            first.iter().filter(|m| !others.iter().any(|o| o.contains(m))).collect()
        }
    }
}

/// Walks the smallest set and keeps what every other set holds, as Redis does.
fn intersect<'s>(sets: &[Option<&'s SetValue>], limit: usize) -> Vec<Member<'s>> {
    let Some(mut present) = sets.iter().copied().collect::<Option<Vec<&SetValue>>>() else {
        return Vec::new();
    };
    present.sort_by_key(|s| s.len());
    let Some((smallest, others)) = present.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for member in smallest.iter() {
        if others.iter().all(|o| o.contains(&member)) {
            out.push(member);
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// The sets under `keys` for a read; WRONGTYPE if any key holds another type, even
/// after a missing key (Redis 7 checks them all).
fn read_sets<'a>(ctx: &mut ReadCtx<'a>, keys: &[Bytes]) -> Result<Vec<Option<&'a SetValue>>, Reply> {
    keys.iter().map(|key| read_set(ctx, key)).collect()
}

fn algebra(ctx: &mut ReadCtx, keys: &[Bytes], op: SetOp) -> CmdResult {
    let sets = read_sets(ctx, keys)?;
    Ok(Reply::Set(members_reply(combine(&sets, op, 0))))
}

/// Stores `op` over `args[2..]` in `args[1]` (replacing any value and TTL); an empty
/// result deletes the destination instead.
fn algebra_store(ctx: &mut WriteCtx, args: &[Bytes], op: SetOp, event: &'static str) -> CmdResult {
    let (dst, keys) = (&args[1], &args[2..]);
    for key in keys {
        ctx.expire_if_needed(key);
    }
    let result: SetValue = {
        let db: &Db = ctx.db;
        let sets =
            keys.iter().map(|k| db.get(k, ctx.now_ms).map(|item| item.value.as_set()).transpose()).collect::<Result<Vec<_>, Reply>>()?;
        let members = combine(&sets, op, 0);
        SetValue::from_members(members.iter().map(|m| &**m), db.set_packing)
    };
    if result.is_empty() {
        if ctx.delete(dst) {
            ctx.notify(b'g', "del", dst);
        }
        return Ok(Reply::Int(0));
    }
    let len = result.len();
    ctx.set(dst, Value::Set(result));
    ctx.notify(b's', event, dst);
    Ok(Reply::Int(len as i64))
}

fn sinter(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    algebra(ctx, &args[1..], SetOp::Inter)
}

fn sunion(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    algebra(ctx, &args[1..], SetOp::Union)
}

fn sdiff(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    algebra(ctx, &args[1..], SetOp::Diff)
}

fn sinterstore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    algebra_store(ctx, args, SetOp::Inter, "sinterstore")
}

fn sunionstore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    algebra_store(ctx, args, SetOp::Union, "sunionstore")
}

fn sdiffstore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    algebra_store(ctx, args, SetOp::Diff, "sdiffstore")
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let numkeys = match parse_i64(&args[1]) {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
    };
    let rest = &args[2..];
    if numkeys > rest.len() {
        return Err(Reply::err("ERR Number of keys can't be greater than number of args"));
    }
    let (keys, mut options) = rest.split_at(numkeys);
    let mut limit = 0;
    while let Some(opt) = options.first() {
        match options.get(1) {
            Some(value) if is(opt, "limit") => {
                limit = match parse_i64(value) {
                    Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                    _ => return Err(Reply::err("ERR LIMIT can't be negative")),
                };
                options = &options[2..];
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
    }
    let sets = read_sets(ctx, keys)?;
    Ok(Reply::Int(combine(&sets, SetOp::Inter, limit).len() as i64))
}

fn sscan(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let cursor = scan::parse_cursor(&args[2])?;
    let Some(set) = read_set(ctx, &args[1])? else {
        return Ok(scan::reply(0, Vec::new()));
    };
    let opts = scan::parse_options(&args[3..], false, false)?;
    let (range, next) = scan::step(set.len(), cursor, opts.count);
    let indexed = set.indexed();
    let members = range.filter_map(|i| indexed.get(i)).filter(|m| opts.pattern.as_ref().is_none_or(|p| glob_match(p, m, false)));
    Ok(scan::reply(next, members_reply(members)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::Store;

    const WRONGTYPE: &str = crate::store::value::WRONGTYPE;

    fn events_at(store: &mut Store, time_ms: u64, cmd: &[&str]) -> Vec<(u8, &'static str, String)> {
        run_applied(store, time_ms, cmd)
            .events
            .into_iter()
            .map(|e| (e.class, e.event, String::from_utf8_lossy(&e.key).into_owned()))
            .collect()
    }

    fn events(store: &mut Store, cmd: &[&str]) -> Vec<(u8, &'static str, String)> {
        events_at(store, 0, cmd)
    }

    fn bulks(items: &[&str]) -> Vec<Reply> {
        items.iter().map(|s| bulk(s)).collect()
    }

    /// The members of a set-or-array reply, sorted, for order-free comparison.
    fn sorted(reply: Reply) -> Vec<String> {
        let (Reply::Set(items) | Reply::Array(items)) = reply else { panic!("not a collection: {reply:?}") };
        let mut out: Vec<String> = items
            .into_iter()
            .map(|r| match r {
                Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    fn store_with(sets: &[(&str, &[&str])]) -> Store {
        let mut store = Store::new();
        for (key, members) in sets {
            let mut cmd = vec!["sadd", *key];
            cmd.extend_from_slice(members);
            run(&mut store, 0, &cmd);
        }
        store
    }

    #[test]
    fn sadd_counts_new_members_and_records_sadd_only_when_something_changed() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["sadd", "s", "a", "b", "a"]), Reply::Int(2));
        assert_eq!(events(&mut s, &["sadd", "s", "c"]), vec![(b's', "sadd", "s".into())]);
        assert!(events(&mut s, &["sadd", "s", "a", "b"]).is_empty());
        assert_eq!(run(&mut s, 0, &["scard", "s"]), Reply::Int(3));
    }

    #[test]
    fn srem_counts_removed_members_and_deletes_an_emptied_set() {
        let mut s = store_with(&[("s", &["a", "b", "c"])]);
        assert_eq!(run(&mut s, 0, &["srem", "s", "a", "zz", "a"]), Reply::Int(1));
        assert!(events(&mut s, &["srem", "s", "zz"]).is_empty());
        assert_eq!(events(&mut s, &["srem", "s", "b"]), vec![(b's', "srem", "s".into())]);
        assert_eq!(events(&mut s, &["srem", "s", "c"]), vec![(b's', "srem", "s".into()), (b'g', "del", "s".into())]);
        assert_eq!(s.db.len(), 0);
        assert_eq!(run(&mut s, 0, &["srem", "s", "c"]), Reply::Int(0));
    }

    #[test]
    fn membership_queries_answer_for_present_and_missing_keys() {
        let mut s = store_with(&[("s", &["a", "b"])]);
        assert_eq!(run(&mut s, 0, &["smembers", "s"]), Reply::Set(bulks(&["a", "b"])));
        assert_eq!(run(&mut s, 0, &["smembers", "no"]), Reply::Set(vec![]));
        assert_eq!(run(&mut s, 0, &["sismember", "s", "a"]), Reply::Int(1));
        assert_eq!(run(&mut s, 0, &["sismember", "s", "z"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["sismember", "no", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["smismember", "s", "a", "z", "b"]), Reply::Array(vec![Reply::Int(1), Reply::Int(0), Reply::Int(1)]));
        assert_eq!(run(&mut s, 0, &["smismember", "no", "a", "b"]), Reply::Array(vec![Reply::Int(0), Reply::Int(0)]));
        assert_eq!(run(&mut s, 0, &["scard", "no"]), Reply::Int(0));
    }

    #[test]
    fn set_commands_on_a_string_reply_wrongtype_and_change_nothing() {
        let mut s = store_with(&[("set", &["a"])]);
        run(&mut s, 0, &["set", "k", "v"]);
        for cmd in [
            &["sadd", "k", "a"][..],
            &["srem", "k", "a"],
            &["smembers", "k"],
            &["sismember", "k", "a"],
            &["smismember", "k", "a"],
            &["scard", "k"],
            &["spop", "k"],
            &["spop", "k", "2"],
            &["srandmember", "k"],
            &["srandmember", "k", "2"],
            &["smove", "k", "set", "a"],
            &["smove", "set", "k", "a"],
            &["sinter", "set", "k"],
            &["sinter", "missing", "k"],
            &["sunion", "set", "k"],
            &["sdiff", "set", "k"],
            &["sdiff", "missing", "k"],
            &["sinterstore", "d", "set", "k"],
            &["sunionstore", "d", "set", "k"],
            &["sdiffstore", "d", "set", "k"],
            &["sintercard", "2", "missing", "k"],
            &["sscan", "k", "0"],
        ] {
            assert_eq!(run(&mut s, 0, cmd), err(WRONGTYPE), "{cmd:?}");
        }
        assert_eq!(run(&mut s, 0, &["get", "k"]), bulk("v"));
        assert_eq!(run(&mut s, 0, &["smembers", "set"]), Reply::Set(bulks(&["a"])));
        assert_eq!(s.db.len(), 2);
    }

    #[test]
    fn spop_removes_and_returns_one_member_then_deletes_the_empty_set() {
        let mut s = store_with(&[("s", &["a", "b"])]);
        let first = run(&mut s, 0, &["spop", "s"]);
        let Reply::Bulk(ref member) = first else { panic!("{first:?}") };
        assert!(member[..] == b"a"[..] || member[..] == b"b"[..]);
        assert_eq!(run(&mut s, 0, &["scard", "s"]), Reply::Int(1));
        assert_eq!(events(&mut s, &["spop", "s"]), vec![(b's', "spop", "s".into()), (b'g', "del", "s".into())]);
        assert_eq!(s.db.len(), 0);
        assert_eq!(run(&mut s, 0, &["spop", "s"]), Reply::Nil);
    }

    #[test]
    fn spop_with_count_pops_distinct_members_as_a_set_reply() {
        let members: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let mut s = store_with(&[("s", &refs)]);
        let popped = sorted(run(&mut s, 0, &["spop", "s", "5"]));
        assert_eq!(popped.len(), 5);
        assert_eq!(popped.iter().collect::<HashSet<_>>().len(), 5);
        for m in &popped {
            assert_eq!(run(&mut s, 0, &["sismember", "s", m]), Reply::Int(0));
        }
        assert_eq!(run(&mut s, 0, &["scard", "s"]), Reply::Int(15));
        assert!(matches!(run(&mut s, 0, &["spop", "s", "1"]), Reply::Set(ref v) if v.len() == 1));
    }

    #[test]
    fn spop_with_count_past_the_size_takes_everything_and_deletes_the_key() {
        let mut s = store_with(&[("s", &["a", "b", "c"])]);
        let applied = run_applied(&mut s, 0, &["spop", "s", "10"]);
        assert_eq!(sorted(applied.replies[0].clone()), ["a", "b", "c"]);
        let got: Vec<_> = applied.events.iter().map(|e| (e.class, e.event)).collect();
        assert_eq!(got, vec![(b's', "spop"), (b'g', "del")]);
        assert_eq!(s.db.len(), 0);
    }

    #[test]
    fn spop_with_count_edge_cases_match_redis() {
        let mut s = store_with(&[("s", &["a"])]);
        assert_eq!(run(&mut s, 0, &["spop", "no", "3"]), Reply::Set(vec![]));
        assert_eq!(run(&mut s, 0, &["spop", "s", "0"]), Reply::Set(vec![]));
        assert!(events(&mut s, &["spop", "s", "0"]).is_empty());
        assert_eq!(run(&mut s, 0, &["spop", "s", "-1"]), err("ERR value is out of range, must be positive"));
        // redis-server 7.0.15 reads the count with getPositiveLongFromObjectOrReply:
        // not a number is the same error as a negative one.
        assert_eq!(run(&mut s, 0, &["spop", "s", "x"]), err("ERR value is out of range, must be positive"));
        assert_eq!(run(&mut s, 0, &["spop", "s", "1", "2"]), err("ERR syntax error"));
        assert_eq!(run(&mut s, 0, &["scard", "s"]), Reply::Int(1));
    }

    #[test]
    fn spop_is_deterministic_for_the_same_entry_seed() {
        let members: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let mut one = store_with(&[("s", &refs)]);
        let mut two = store_with(&[("s", &refs)]);
        for _ in 0..5 {
            assert_eq!(run(&mut one, 0, &["spop", "s", "3"]), run(&mut two, 0, &["spop", "s", "3"]));
            assert_eq!(run(&mut one, 0, &["spop", "s"]), run(&mut two, 0, &["spop", "s"]));
        }
        assert_eq!(one.digest(), two.digest());
    }

    #[test]
    fn srandmember_without_count_returns_a_member_and_removes_nothing() {
        let mut s = store_with(&[("s", &["a", "b", "c"])]);
        for _ in 0..10 {
            let Reply::Bulk(m) = run(&mut s, 0, &["srandmember", "s"]) else { panic!() };
            assert!([&b"a"[..], b"b", b"c"].contains(&&m[..]));
        }
        assert_eq!(run(&mut s, 0, &["scard", "s"]), Reply::Int(3));
        assert_eq!(run(&mut s, 0, &["srandmember", "no"]), Reply::Nil);
        assert_eq!(run(&mut s, 0, &["srandmember", "s", "1", "2"]), err("ERR syntax error"));
    }

    #[test]
    fn srandmember_count_semantics_match_redis() {
        let members: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let mut s = store_with(&[("s", &refs), ("one", &["x"])]);
        // Positive: distinct members, both when the pick is small and when it is large.
        for count in [1, 3, 9, 10, 11, 29] {
            let got = sorted(run(&mut s, 0, &["srandmember", "s", &count.to_string()]));
            assert_eq!(got.len(), count);
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), count, "count {count}");
            assert!(got.iter().all(|m| members.contains(m)));
        }
        // At or past the size: the whole set, an array.
        let Reply::Array(all) = run(&mut s, 0, &["srandmember", "s", "100"]) else { panic!() };
        assert_eq!(all.len(), 30);
        // Negative: exactly |count| picks, repeats allowed.
        assert_eq!(run(&mut s, 0, &["srandmember", "one", "-3"]), Reply::Array(bulks(&["x", "x", "x"])));
        assert_eq!(run(&mut s, 0, &["srandmember", "s", "0"]), Reply::Array(vec![]));
        assert_eq!(run(&mut s, 0, &["srandmember", "no", "5"]), Reply::Array(vec![]));
        assert_eq!(run(&mut s, 0, &["srandmember", "no", "-5"]), Reply::Array(vec![]));
    }

    #[test]
    fn srandmember_count_errors_match_redis() {
        let mut s = store_with(&[("s", &["a"])]);
        assert_eq!(run(&mut s, 0, &["srandmember", "s", "x"]), err("ERR value is not an integer or out of range"));
        assert_eq!(
            run(&mut s, 0, &["srandmember", "s", "-9223372036854775808"]),
            err("ERR value is out of range, must be between -9223372036854775807 and 9223372036854775807")
        );
        // A negative count that could never be answered is refused, not allocated.
        assert!(run(&mut s, 0, &["srandmember", "s", "-9223372036854775807"]).is_error());
    }

    #[test]
    fn pick_indices_never_repeats_for_a_positive_count() {
        let mut rng = <rand_xoshiro::Xoshiro256PlusPlus as rand_core::SeedableRng>::seed_from_u64(42);
        for len in 1..40 {
            for count in 1..=len as i64 + 2 {
                let picks = pick_indices(&mut rng, len, count).unwrap();
                assert_eq!(picks.len(), (count as usize).min(len));
                assert!(picks.iter().all(|&i| i < len));
                assert_eq!(picks.iter().collect::<HashSet<_>>().len(), picks.len(), "len {len} count {count}");
            }
            assert_eq!(pick_indices(&mut rng, len, -7).unwrap().len(), 7);
        }
        assert!(pick_indices(&mut rng, 0, -7).unwrap().is_empty());
        assert_eq!(random_index(&mut rng, 0), None);
    }

    #[test]
    fn smove_moves_a_member_and_records_srem_and_sadd() {
        let mut s = store_with(&[("src", &["a", "b"]), ("dst", &["c"])]);
        assert_eq!(events(&mut s, &["smove", "src", "dst", "a"]), vec![(b's', "srem", "src".into()), (b's', "sadd", "dst".into())]);
        assert_eq!(run(&mut s, 0, &["smembers", "dst"]), Reply::Set(bulks(&["c", "a"])));
        assert_eq!(run(&mut s, 0, &["smove", "src", "dst", "zz"]), Reply::Int(0));
        // The last member leaves: the source is deleted; a new destination is created.
        assert_eq!(
            events(&mut s, &["smove", "src", "new", "b"]),
            vec![(b's', "srem", "src".into()), (b'g', "del", "src".into()), (b's', "sadd", "new".into())]
        );
        assert_eq!(run(&mut s, 0, &["smembers", "new"]), Reply::Set(bulks(&["b"])));
        assert_eq!(run(&mut s, 0, &["scard", "src"]), Reply::Int(0));
    }

    #[test]
    fn smove_to_a_set_already_holding_the_member_records_no_sadd() {
        let mut s = store_with(&[("src", &["a", "b"]), ("dst", &["a"])]);
        let before = s.db.index();
        assert_eq!(run_applied(&mut s, 0, &["smove", "src", "dst", "a"]).replies[0], Reply::Int(1));
        // The destination is not modified: a WATCH on it still holds (Redis's unit/type/set).
        assert!(s.db.modified_after(b"src", before));
        assert!(!s.db.modified_after(b"dst", before));
        assert_eq!(run(&mut s, 0, &["smembers", "src"]), Reply::Set(bulks(&["b"])));
        assert_eq!(
            events(&mut s, &["smove", "src", "dst", "b"]),
            vec![(b's', "srem", "src".into()), (b'g', "del", "src".into()), (b's', "sadd", "dst".into())]
        );
    }

    #[test]
    fn smove_edge_cases_match_redis() {
        let mut s = store_with(&[("s", &["a"])]);
        run(&mut s, 0, &["set", "str", "v"]);
        // A missing source answers 0 before the destination's type is looked at.
        assert_eq!(run(&mut s, 0, &["smove", "no", "str", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["smove", "s", "str", "a"]), err(WRONGTYPE));
        // Same source and destination: membership, no change, no event.
        assert!(events(&mut s, &["smove", "s", "s", "a"]).is_empty());
        assert_eq!(run(&mut s, 0, &["smove", "s", "s", "a"]), Reply::Int(1));
        assert_eq!(run(&mut s, 0, &["smove", "s", "s", "z"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["smembers", "s"]), Reply::Set(bulks(&["a"])));
    }

    #[test]
    fn sinter_sunion_sdiff_compute_as_redis() {
        let mut s = store_with(&[("a", &["1", "2", "3", "4"]), ("b", &["3", "4", "5"]), ("c", &["4", "6"])]);
        assert_eq!(sorted(run(&mut s, 0, &["sinter", "a", "b"])), ["3", "4"]);
        assert_eq!(sorted(run(&mut s, 0, &["sinter", "a", "b", "c"])), ["4"]);
        assert_eq!(run(&mut s, 0, &["sinter", "a", "missing"]), Reply::Set(vec![]));
        assert_eq!(sorted(run(&mut s, 0, &["sunion", "a", "b", "c", "missing"])), ["1", "2", "3", "4", "5", "6"]);
        assert_eq!(sorted(run(&mut s, 0, &["sdiff", "a", "b", "missing"])), ["1", "2"]);
        assert_eq!(sorted(run(&mut s, 0, &["sdiff", "a", "b", "c"])), ["1", "2"]);
        assert_eq!(run(&mut s, 0, &["sdiff", "missing", "a"]), Reply::Set(vec![]));
        assert_eq!(run(&mut s, 0, &["sdiff", "a", "a"]), Reply::Set(vec![]));
        assert_eq!(sorted(run(&mut s, 0, &["sinter", "a"])), ["1", "2", "3", "4"]);
        assert!(matches!(run(&mut s, 0, &["sunion", "a"]), Reply::Set(_)));
    }

    #[test]
    fn store_variants_replace_the_destination_and_record_their_event() {
        let mut s = store_with(&[("a", &["1", "2", "3"]), ("b", &["2", "3", "4"])]);
        run(&mut s, 0, &["set", "d", "old"]);
        s.db.set_expire(b"d", 100_000);
        assert_eq!(run(&mut s, 0, &["sinterstore", "d", "a", "b"]), Reply::Int(2));
        assert_eq!(sorted(run(&mut s, 0, &["smembers", "d"])), ["2", "3"]);
        assert_eq!(s.db.item(b"d").unwrap().expire_at_ms, 0, "the destination loses its TTL");
        assert_eq!(events(&mut s, &["sinterstore", "d", "a", "b"]), vec![(b's', "sinterstore", "d".into())]);
        assert_eq!(events(&mut s, &["sunionstore", "d", "a", "b"]), vec![(b's', "sunionstore", "d".into())]);
        assert_eq!(sorted(run(&mut s, 0, &["smembers", "d"])), ["1", "2", "3", "4"]);
        assert_eq!(events(&mut s, &["sdiffstore", "d", "a", "b"]), vec![(b's', "sdiffstore", "d".into())]);
        assert_eq!(sorted(run(&mut s, 0, &["smembers", "d"])), ["1"]);
        assert_eq!(run(&mut s, 0, &["sunionstore", "d", "a", "b"]), Reply::Int(4));
        // The destination may be one of the sources.
        assert_eq!(run(&mut s, 0, &["sdiffstore", "a", "a", "b"]), Reply::Int(1));
        assert_eq!(sorted(run(&mut s, 0, &["smembers", "a"])), ["1"]);
    }

    #[test]
    fn store_variants_delete_the_destination_when_the_result_is_empty() {
        let mut s = store_with(&[("a", &["1"]), ("b", &["2"]), ("d", &["x"])]);
        assert_eq!(events(&mut s, &["sinterstore", "d", "a", "b"]), vec![(b'g', "del", "d".into())]);
        assert_eq!(run(&mut s, 0, &["scard", "d"]), Reply::Int(0));
        // Nothing to delete: no event at all.
        assert!(events(&mut s, &["sinterstore", "d", "a", "missing"]).is_empty());
        assert_eq!(run(&mut s, 0, &["sinterstore", "d", "a", "missing"]), Reply::Int(0));
        run(&mut s, 0, &["sadd", "d", "x"]);
        assert_eq!(events(&mut s, &["sdiffstore", "d", "a", "a"]), vec![(b'g', "del", "d".into())]);
        run(&mut s, 0, &["sadd", "d", "x"]);
        assert_eq!(run(&mut s, 0, &["sunionstore", "d", "missing"]), Reply::Int(0));
        assert_eq!(s.db.item(b"d").map(|_| ()), None);
    }

    #[test]
    fn sintercard_counts_with_an_optional_limit() {
        let mut s = store_with(&[("a", &["1", "2", "3", "4"]), ("b", &["2", "3", "4", "5"])]);
        assert_eq!(run(&mut s, 0, &["sintercard", "2", "a", "b"]), Reply::Int(3));
        assert_eq!(run(&mut s, 0, &["sintercard", "2", "a", "b", "LIMIT", "2"]), Reply::Int(2));
        assert_eq!(run(&mut s, 0, &["sintercard", "2", "a", "b", "limit", "0"]), Reply::Int(3));
        assert_eq!(run(&mut s, 0, &["sintercard", "2", "a", "b", "limit", "10"]), Reply::Int(3));
        assert_eq!(run(&mut s, 0, &["sintercard", "1", "a"]), Reply::Int(4));
        assert_eq!(run(&mut s, 0, &["sintercard", "2", "a", "missing"]), Reply::Int(0));
    }

    #[test]
    fn sintercard_argument_errors_match_redis() {
        let mut s = store_with(&[("a", &["1"])]);
        assert_eq!(run(&mut s, 0, &["sintercard", "0", "a"]), err("ERR numkeys should be greater than 0"));
        assert_eq!(run(&mut s, 0, &["sintercard", "x", "a"]), err("ERR numkeys should be greater than 0"));
        assert_eq!(run(&mut s, 0, &["sintercard", "3", "a", "b"]), err("ERR Number of keys can't be greater than number of args"));
        assert_eq!(run(&mut s, 0, &["sintercard", "1", "a", "limit", "-1"]), err("ERR LIMIT can't be negative"));
        assert_eq!(run(&mut s, 0, &["sintercard", "1", "a", "limit", "x"]), err("ERR LIMIT can't be negative"));
        assert_eq!(run(&mut s, 0, &["sintercard", "1", "a", "limit"]), err("ERR syntax error"));
        assert_eq!(run(&mut s, 0, &["sintercard", "1", "a", "bogus", "1"]), err("ERR syntax error"));
    }

    #[test]
    fn sscan_returns_members_with_match_and_walks_large_sets() {
        let mut s = store_with(&[("s", &["apple", "banana", "avocado"])]);
        assert_eq!(
            run(&mut s, 0, &["sscan", "s", "0"]),
            Reply::Array(vec![bulk("0"), Reply::Array(bulks(&["apple", "banana", "avocado"]))])
        );
        assert_eq!(
            run(&mut s, 0, &["sscan", "s", "0", "MATCH", "a*"]),
            Reply::Array(vec![bulk("0"), Reply::Array(bulks(&["apple", "avocado"]))])
        );
        assert_eq!(run(&mut s, 0, &["sscan", "no", "0"]), Reply::Array(vec![bulk("0"), Reply::Array(vec![])]));
        assert_eq!(run(&mut s, 0, &["sscan", "s", "-1"]), err("ERR invalid cursor"));
        assert_eq!(run(&mut s, 0, &["sscan", "s", "0", "novalues"]), err("ERR syntax error"));

        let members: Vec<String> = (0..57).map(|i| format!("m{i}")).collect();
        for m in &members {
            run(&mut s, 0, &["sadd", "big", m]);
        }
        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let Reply::Array(parts) = run(&mut s, 0, &["sscan", "big", &cursor, "COUNT", "10"]) else { panic!() };
            let [Reply::Bulk(next), items @ Reply::Array(_)] = &parts[..] else { panic!() };
            seen.extend(sorted(items.clone()));
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 57);
    }

    #[test]
    fn expired_source_reads_as_missing_in_writes() {
        let mut s = store_with(&[("a", &["1"]), ("b", &["1"])]);
        s.db.set_expire(b"b", 50);
        let got = events_at(&mut s, 100, &["sinterstore", "d", "a", "b"]);
        assert_eq!(got, vec![(b'x', "expired", "b".into())]);
        assert_eq!(run(&mut s, 100, &["scard", "d"]), Reply::Int(0));
    }

    #[test]
    fn table_matches_redis_command_info() {
        let find = |name: &str| COMMANDS.iter().find(|c| c.name == name).unwrap();
        assert_eq!((find("sadd").arity, find("spop").arity, find("smove").arity), (-3, -2, 4));
        assert_eq!((find("smove").first_key, find("smove").last_key), (1, 2));
        assert_eq!(find("sinterstore").last_key, -1);
        assert!(find("sintercard").has(MOVABLE_KEYS));
        assert!(find("sadd").has(DENYOOM) && !find("srem").has(DENYOOM));
        assert!(find("spop").has(WRITE | FAST));
        assert!(!find("smembers").has(FAST));
    }
}
