//! Hash commands: fields and values under one key (HSET, HGET, HINCRBY, HRANDFIELD,
//! HSCAN, …). A hash is an insertion-ordered map, so random picks are O(1) by index
//! and HSCAN can use the shared index cursor. An emptied hash is deleted.
//!
//! This module knows nothing of replication: writes run inside the state machine and
//! take randomness only from `ctx.rng`; HRANDFIELD is a read and may use any.

use bytes::Bytes;

use super::flags::*;
use super::sets::{pick_indices, random_count_arg, random_index};
use super::*;
use crate::protocol::reply::{Reply, OK};
use crate::store::value::{HashValue, Value};

const G: &str = "hash";

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    spec("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Creates or modifies the value of a field in a hash.", Handler::Write(hset)),
    spec("hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Sets the value of a field in a hash only when the field doesn't exist.", Handler::Write(hsetnx)),
    spec("hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Sets the values of multiple fields.", Handler::Write(hmset)),
    spec("hget", 3, READONLY | FAST, (1, 1, 1), G, "Returns the value of a field in a hash.", Handler::Read(hget)),
    spec("hmget", -3, READONLY | FAST, (1, 1, 1), G, "Returns the values of all fields in a hash.", Handler::Read(hmget)),
    spec("hgetall", 2, READONLY, (1, 1, 1), G, "Returns all fields and values in a hash.", Handler::Read(hgetall)),
    spec("hdel", -3, WRITE | FAST, (1, 1, 1), G, "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", Handler::Write(hdel)),
    spec("hexists", 3, READONLY | FAST, (1, 1, 1), G, "Determines whether a field exists in a hash.", Handler::Read(hexists)),
    spec("hlen", 2, READONLY | FAST, (1, 1, 1), G, "Returns the number of fields in a hash.", Handler::Read(hlen)),
    spec("hkeys", 2, READONLY, (1, 1, 1), G, "Returns all fields in a hash.", Handler::Read(hkeys)),
    spec("hvals", 2, READONLY, (1, 1, 1), G, "Returns all values in a hash.", Handler::Read(hvals)),
    spec("hstrlen", 3, READONLY | FAST, (1, 1, 1), G, "Returns the length of the value of a field.", Handler::Read(hstrlen)),
    spec("hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", Handler::Write(hincrby)),
    spec("hincrbyfloat", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.", Handler::Write(hincrbyfloat)),
    spec("hrandfield", -2, READONLY, (1, 1, 1), G, "Returns one or more random fields from a hash.", Handler::Read(hrandfield)),
    spec("hscan", -3, READONLY, (1, 1, 1), G, "Iterates over fields and values of a hash.", Handler::Read(hscan)),
];

const ERR_HASH_NOT_INT: &str = "ERR hash value is not an integer";
const ERR_HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
const ERR_INCR_NOT_FINITE: &str = "ERR value is NaN or Infinity";
const ERR_RESULT_NOT_FINITE: &str = "ERR increment would produce NaN or Infinity";

/// The hash under `key` for reading; `None` if the key does not exist.
fn read_hash<'a>(ctx: &mut ReadCtx<'a>, key: &[u8]) -> Result<Option<&'a HashValue>, Reply> {
    ctx.get(key).map(Value::as_hash).transpose()
}

/// The hash under `key` for writing, created empty if absent. The type is checked
/// before anything is created, so a WRONGTYPE error leaves the keyspace untouched.
/// Callers must add a field (or call `remove_if_empty`) before returning.
fn write_hash<'c>(ctx: &'c mut WriteCtx<'_>, key: &[u8]) -> Result<&'c mut HashValue, Reply> {
    ctx.get_checked_or_insert(key, |v| v.as_hash().map(drop), || Value::Hash(HashValue::default()))?.as_hash_mut()
}

/// The value of `field` in the hash under `key`, for the read-modify-write commands.
fn field_value<'c>(ctx: &'c mut WriteCtx<'_>, key: &[u8], field: &[u8]) -> Result<Option<&'c [u8]>, Reply> {
    match ctx.get(key) {
        None => Ok(None),
        Some(value) => Ok(value.as_hash()?.get(field)),
    }
}

/// Sets every field/value pair of `args[2..]`; returns how many fields were new.
fn set_pairs(ctx: &mut WriteCtx, args: &[Bytes], name: &str) -> Result<i64, Reply> {
    if args.len() % 2 == 1 {
        return Err(wrong_args(name));
    }
    let key = &args[1];
    let packing = ctx.db.hash_packing;
    let hash = write_hash(ctx, key)?;
    let added = hash.insert_all(args[2..].chunks_exact(2).map(|pair| (&pair[0][..], &pair[1][..])), packing) as i64;
    ctx.notify(b'h', "hset", key);
    Ok(added)
}

fn hset(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    set_pairs(ctx, args, "hset").map(Reply::Int)
}

fn hmset(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    set_pairs(ctx, args, "hmset").map(|_| OK)
}

fn hsetnx(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, field, value) = (&args[1], &args[2], &args[3]);
    if field_value(ctx, key, field)?.is_some() {
        return Ok(Reply::Int(0));
    }
    let packing = ctx.db.hash_packing;
    write_hash(ctx, key)?.insert(field, value, packing);
    ctx.notify(b'h', "hset", key);
    Ok(Reply::Int(1))
}

fn hget(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let hash = read_hash(ctx, &args[1])?;
    Ok(Reply::bulk_opt(hash.and_then(|h| h.get(&args[2]))))
}

fn hmget(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let hash = read_hash(ctx, &args[1])?;
    let values = args[2..].iter().map(|field| Reply::bulk_opt(hash.and_then(|h| h.get(field)))).collect();
    Ok(Reply::Array(values))
}

fn hgetall(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let Some(hash) = read_hash(ctx, &args[1])? else {
        return Ok(Reply::Map(Vec::new()));
    };
    Ok(Reply::Map(hash.iter().map(|(f, v)| (Reply::bulk(f), Reply::bulk(v))).collect()))
}

fn hdel(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(value) = ctx.get_mut(key) else {
        return Ok(Reply::Int(0));
    };
    let hash = value.as_hash_mut()?;
    // swap_remove: O(1), and the order change it causes is what the scan cursor expects.
    let deleted = args[2..].iter().filter(|field| hash.swap_remove(field)).count();
    if deleted > 0 {
        ctx.notify(b'h', "hdel", key);
        ctx.remove_if_empty(key);
    }
    Ok(Reply::Int(deleted as i64))
}

fn hexists(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let hash = read_hash(ctx, &args[1])?;
    Ok(Reply::Int(hash.is_some_and(|h| h.contains_key(&args[2][..])) as i64))
}

fn hlen(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let hash = read_hash(ctx, &args[1])?;
    Ok(Reply::Int(hash.map_or(0, |h| h.len()) as i64))
}

fn hkeys(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let hash = read_hash(ctx, &args[1])?;
    Ok(Reply::Bulks(hash.into_iter().flat_map(|h| h.keys()).collect()))
}

fn hvals(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let hash = read_hash(ctx, &args[1])?;
    Ok(Reply::Bulks(hash.into_iter().flat_map(|h| h.values()).collect()))
}

fn hstrlen(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let hash = read_hash(ctx, &args[1])?;
    Ok(Reply::Int(hash.and_then(|h| h.get(&args[2][..])).map_or(0, |v| v.len()) as i64))
}

fn hincrby(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, field) = (&args[1], &args[2]);
    // Redis parses the increment before looking at the key.
    let delta = int_arg(&args[3])?;
    let current = match field_value(ctx, key, field)? {
        None => 0,
        Some(v) => parse_i64(v).ok_or(Reply::err(ERR_HASH_NOT_INT))?,
    };
    let next = current.checked_add(delta).ok_or(Reply::err(ERR_OVERFLOW))?;
    let packing = ctx.db.hash_packing;
    write_hash(ctx, key)?.insert(field, &int_bytes(next), packing);
    ctx.notify(b'h', "hincrby", key);
    Ok(Reply::Int(next))
}

fn hincrbyfloat(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, field) = (&args[1], &args[2]);
    // As INCRBYFLOAT: a long double's range in Redis, so not refused here.
    let delta = parse_f64(&args[3]).ok_or(Reply::err(ERR_NOT_FLOAT))?;
    if !delta.is_finite() {
        return Err(Reply::err(ERR_INCR_NOT_FINITE));
    }
    let current = match field_value(ctx, key, field)? {
        None => 0.0,
        Some(v) => parse_f64(v).ok_or(Reply::err(ERR_HASH_NOT_FLOAT))?,
    };
    let next = current + delta;
    if !next.is_finite() {
        return Err(Reply::err(ERR_RESULT_NOT_FINITE));
    }
    let text = crate::protocol::reply::format_incr_double(next);
    let packing = ctx.db.hash_packing;
    write_hash(ctx, key)?.insert(field, text.as_bytes(), packing);
    ctx.notify(b'h', "hincrbyfloat", key);
    Ok(Reply::Bulk(Bytes::from(text)))
}

fn hrandfield(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(count_text) = args.get(2) else {
        let Some(hash) = read_hash(ctx, key)? else {
            return Ok(Reply::Nil);
        };
        let field = random_index(ctx.rng, hash.len()).and_then(|i| hash.indexed().get(i)).map(|(f, _)| f);
        return Ok(Reply::bulk_opt(field));
    };
    let count = random_count_arg(count_text)?;
    let with_values = match args.get(3) {
        None => false,
        Some(opt) if args.len() == 4 && is(opt, "withvalues") => true,
        Some(_) => return Err(Reply::err(ERR_SYNTAX)),
    };
    // Redis's guard: with values the reply holds twice as many elements.
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(Reply::err("ERR value is out of range"));
    }
    let Some(hash) = read_hash(ctx, key)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let indexed = hash.indexed();
    let picked = pick_indices(ctx.rng, hash.len(), count)?.into_iter().filter_map(|i| indexed.get(i));
    if with_values {
        Ok(Reply::Pairs(picked.map(|(f, v)| (Reply::bulk(f), Reply::bulk(v))).collect()))
    } else {
        Ok(Reply::Array(picked.map(|(f, _)| Reply::bulk(f)).collect()))
    }
}

fn hscan(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let cursor = scan::parse_cursor(&args[2])?;
    let Some(hash) = read_hash(ctx, &args[1])? else {
        return Ok(scan::reply(0, Vec::new()));
    };
    let opts = scan::parse_options(&args[3..], false, true)?;
    let (range, next) = scan::step(hash.len(), cursor, opts.count);
    let mut items = Vec::with_capacity(range.len().min(1024) * 2);
    let indexed = hash.indexed();
    for (field, value) in range.filter_map(|i| indexed.get(i)) {
        if opts.pattern.as_ref().is_some_and(|p| !glob_match(p, field, false)) {
            continue;
        }
        items.push(Reply::bulk(field));
        if !opts.no_values {
            items.push(Reply::bulk(value));
        }
    }
    Ok(scan::reply(next, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::Store;

    fn events(store: &mut Store, cmd: &[&str]) -> Vec<(u8, &'static str, String)> {
        run_applied(store, 0, cmd).events.into_iter().map(|e| (e.class, e.event, String::from_utf8_lossy(&e.key).into_owned())).collect()
    }

    fn bulks(items: &[&str]) -> Vec<Reply> {
        items.iter().map(|s| bulk(s)).collect()
    }

    fn hash_with(pairs: &[&str]) -> Store {
        let mut store = Store::new();
        let mut cmd = vec!["hset", "h"];
        cmd.extend_from_slice(pairs);
        run(&mut store, 0, &cmd);
        store
    }

    const WRONGTYPE: &str = crate::store::value::WRONGTYPE;

    #[test]
    fn hset_counts_only_new_fields_and_overwrites_values() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["hset", "h", "a", "1", "b", "2"]), Reply::Int(2));
        assert_eq!(run(&mut s, 0, &["hset", "h", "a", "10", "c", "3"]), Reply::Int(1));
        assert_eq!(run(&mut s, 0, &["hget", "h", "a"]), bulk("10"));
        assert_eq!(run(&mut s, 0, &["hlen", "h"]), Reply::Int(3));
    }

    #[test]
    fn hset_and_hmset_refuse_a_field_without_value() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["hset", "h", "a", "1", "b"]), err("ERR wrong number of arguments for 'hset' command"));
        assert_eq!(run(&mut s, 0, &["hmset", "h", "a", "1", "b"]), err("ERR wrong number of arguments for 'hmset' command"));
        assert_eq!(run(&mut s, 0, &["hset", "h", "a"]), err("ERR wrong number of arguments for 'hset' command"));
        assert_eq!(s.db.len(), 0);
    }

    #[test]
    fn hmset_replies_ok() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["hmset", "h", "a", "1", "b", "2"]), OK);
        assert_eq!(run(&mut s, 0, &["hmget", "h", "a", "b", "zz"]), Reply::Array(vec![bulk("1"), bulk("2"), Reply::Nil]));
    }

    #[test]
    fn hset_records_hset_event() {
        let mut s = Store::new();
        assert_eq!(events(&mut s, &["hset", "h", "a", "1"]), vec![(b'h', "hset", "h".into())]);
        assert_eq!(events(&mut s, &["hmset", "h", "a", "2"]), vec![(b'h', "hset", "h".into())]);
    }

    #[test]
    fn hash_commands_on_a_string_reply_wrongtype_and_change_nothing() {
        let mut s = Store::new();
        run(&mut s, 0, &["set", "k", "v"]);
        for cmd in [
            &["hset", "k", "a", "1"][..],
            &["hsetnx", "k", "a", "1"],
            &["hmset", "k", "a", "1"],
            &["hget", "k", "a"],
            &["hmget", "k", "a"],
            &["hgetall", "k"],
            &["hdel", "k", "a"],
            &["hexists", "k", "a"],
            &["hlen", "k"],
            &["hkeys", "k"],
            &["hvals", "k"],
            &["hstrlen", "k", "a"],
            &["hincrby", "k", "a", "1"],
            &["hincrbyfloat", "k", "a", "1"],
            &["hrandfield", "k"],
            &["hrandfield", "k", "2"],
            &["hscan", "k", "0"],
        ] {
            assert_eq!(run(&mut s, 0, cmd), err(WRONGTYPE), "{cmd:?}");
        }
        assert_eq!(run(&mut s, 0, &["get", "k"]), bulk("v"));
    }

    #[test]
    fn hsetnx_sets_only_an_absent_field() {
        let mut s = Store::new();
        assert_eq!(events(&mut s, &["hsetnx", "h", "a", "1"]), vec![(b'h', "hset", "h".into())]);
        assert_eq!(run(&mut s, 0, &["hsetnx", "h", "a", "2"]), Reply::Int(0));
        assert!(events(&mut s, &["hsetnx", "h", "a", "3"]).is_empty());
        assert_eq!(run(&mut s, 0, &["hget", "h", "a"]), bulk("1"));
        assert_eq!(run(&mut s, 0, &["hsetnx", "h", "b", "2"]), Reply::Int(1));
    }

    #[test]
    fn reads_of_a_missing_key_reply_empty() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["hget", "no", "a"]), Reply::Nil);
        assert_eq!(run(&mut s, 0, &["hmget", "no", "a", "b"]), Reply::Array(vec![Reply::Nil, Reply::Nil]));
        assert_eq!(run(&mut s, 0, &["hgetall", "no"]), Reply::Map(vec![]));
        assert_eq!(run(&mut s, 0, &["hexists", "no", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["hlen", "no"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["hkeys", "no"]), Reply::Array(vec![]));
        assert_eq!(run(&mut s, 0, &["hvals", "no"]), Reply::Array(vec![]));
        assert_eq!(run(&mut s, 0, &["hstrlen", "no", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["hdel", "no", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["hrandfield", "no"]), Reply::Nil);
        assert_eq!(run(&mut s, 0, &["hrandfield", "no", "5"]), Reply::Array(vec![]));
        assert_eq!(run(&mut s, 0, &["hrandfield", "no", "-5", "withvalues"]), Reply::Array(vec![]));
    }

    #[test]
    fn hgetall_is_a_map_in_insertion_order() {
        let mut s = hash_with(&["a", "1", "b", "2"]);
        assert_eq!(run(&mut s, 0, &["hgetall", "h"]), Reply::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))]));
        assert_eq!(run(&mut s, 0, &["hkeys", "h"]), Reply::Array(bulks(&["a", "b"])));
        assert_eq!(run(&mut s, 0, &["hvals", "h"]), Reply::Array(bulks(&["1", "2"])));
    }

    #[test]
    fn hexists_and_hstrlen_look_at_one_field() {
        let mut s = hash_with(&["a", "hello"]);
        assert_eq!(run(&mut s, 0, &["hexists", "h", "a"]), Reply::Int(1));
        assert_eq!(run(&mut s, 0, &["hexists", "h", "b"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, &["hstrlen", "h", "a"]), Reply::Int(5));
        assert_eq!(run(&mut s, 0, &["hstrlen", "h", "b"]), Reply::Int(0));
    }

    #[test]
    fn hdel_counts_removed_fields_and_deletes_an_emptied_hash() {
        let mut s = hash_with(&["a", "1", "b", "2", "c", "3"]);
        assert_eq!(run(&mut s, 0, &["hdel", "h", "a", "zz", "a"]), Reply::Int(1));
        assert_eq!(events(&mut s, &["hdel", "h", "b"]), vec![(b'h', "hdel", "h".into())]);
        assert!(events(&mut s, &["hdel", "h", "nope"]).is_empty());
        assert_eq!(events(&mut s, &["hdel", "h", "c"]), vec![(b'h', "hdel", "h".into()), (b'g', "del", "h".into())]);
        assert_eq!(s.db.len(), 0);
    }

    #[test]
    fn hincrby_adds_to_an_integer_field() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["hincrby", "h", "n", "5"]), Reply::Int(5));
        assert_eq!(run(&mut s, 0, &["hincrby", "h", "n", "-7"]), Reply::Int(-2));
        assert_eq!(run(&mut s, 0, &["hget", "h", "n"]), bulk("-2"));
        assert_eq!(events(&mut s, &["hincrby", "h", "n", "1"]), vec![(b'h', "hincrby", "h".into())]);
    }

    #[test]
    fn hincrby_errors_match_redis() {
        let mut s = hash_with(&["s", "abc", "big", "9223372036854775807", "sp", " 1"]);
        assert_eq!(run(&mut s, 0, &["hincrby", "h", "s", "1"]), err("ERR hash value is not an integer"));
        assert_eq!(run(&mut s, 0, &["hincrby", "h", "sp", "1"]), err("ERR hash value is not an integer"));
        assert_eq!(run(&mut s, 0, &["hincrby", "h", "big", "1"]), err("ERR increment or decrement would overflow"));
        assert_eq!(run(&mut s, 0, &["hincrby", "h", "n", "x"]), err("ERR value is not an integer or out of range"));
        // The increment is checked before the key, as in Redis.
        run(&mut s, 0, &["set", "str", "v"]);
        assert_eq!(run(&mut s, 0, &["hincrby", "str", "n", "x"]), err("ERR value is not an integer or out of range"));
        // A failed increment of a missing key creates nothing.
        assert_eq!(run(&mut s, 0, &["hincrby", "fresh", "n", "1.5"]), err("ERR value is not an integer or out of range"));
        assert_eq!(run(&mut s, 0, &["hlen", "fresh"]), Reply::Int(0));
    }

    #[test]
    fn hincrbyfloat_replies_with_a_bulk_in_human_format() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "f", "10.5"]), bulk("10.5"));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "f", "0.1"]), bulk("10.6"));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "g", "0.1"]), bulk("0.1"));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "g", "0.2"]), bulk("0.3"));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "g", "-0.3"]), bulk("0"));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "big", "1e20"]), bulk("100000000000000000000"));
        assert_eq!(run(&mut s, 0, &["hset", "h", "i", "17179869184"]), Reply::Int(1));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "i", "1.5"]), bulk("17179869185.5"));
        assert_eq!(run(&mut s, 0, &["hget", "h", "i"]), bulk("17179869185.5"));
        assert_eq!(events(&mut s, &["hincrbyfloat", "h", "i", "1"]), vec![(b'h', "hincrbyfloat", "h".into())]);
    }

    #[test]
    fn human_double_keeps_digits_that_are_not_rounding_noise() {
        assert_eq!(crate::protocol::reply::format_incr_double(12345678901234568.0), "12345678901234568");
        assert_eq!(crate::protocol::reply::format_incr_double(1.000000000000123), "1.000000000000123");
        assert_eq!(crate::protocol::reply::format_incr_double(0.1 + 0.7), "0.8");
        assert_eq!(crate::protocol::reply::format_incr_double(-2.5), "-2.5");
        assert_eq!(crate::protocol::reply::format_incr_double(-0.0), "0");
    }

    #[test]
    fn hincrbyfloat_errors_match_redis() {
        let mut s = hash_with(&["s", "abc", "max", "1.7e308"]);
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "s", "1"]), err("ERR hash value is not a float"));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "n", "x"]), err("ERR value is not a valid float"));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "n", "inf"]), err("ERR value is NaN or Infinity"));
        assert_eq!(run(&mut s, 0, &["hincrbyfloat", "h", "max", "1.7e308"]), err("ERR increment would produce NaN or Infinity"));
        assert_eq!(run(&mut s, 0, &["hget", "h", "max"]), bulk("1.7e308"));
    }

    #[test]
    fn hrandfield_without_count_returns_one_existing_field() {
        let mut s = hash_with(&["a", "1", "b", "2", "c", "3"]);
        for time in 0..20 {
            let Reply::Bulk(field) = run(&mut s, time, &["hrandfield", "h"]) else { panic!("not a bulk") };
            assert!([&b"a"[..], b"b", b"c"].contains(&&field[..]));
        }
    }

    #[test]
    fn hrandfield_positive_count_returns_distinct_fields() {
        let mut s = hash_with(&["a", "1", "b", "2", "c", "3", "d", "4", "e", "5"]);
        for count in 1..=4 {
            let Reply::Array(items) = run(&mut s, 0, &["hrandfield", "h", &count.to_string()]) else { panic!() };
            assert_eq!(items.len(), count);
            let distinct: std::collections::HashSet<_> = items.iter().map(|r| format!("{r:?}")).collect();
            assert_eq!(distinct.len(), count);
        }
        // A count at or past the size returns the whole hash, once each.
        assert_eq!(run(&mut s, 0, &["hrandfield", "h", "10"]), Reply::Array(bulks(&["a", "b", "c", "d", "e"])));
        assert_eq!(run(&mut s, 0, &["hrandfield", "h", "0"]), Reply::Array(vec![]));
    }

    #[test]
    fn hrandfield_negative_count_may_repeat() {
        let mut s = hash_with(&["a", "1"]);
        assert_eq!(run(&mut s, 0, &["hrandfield", "h", "-3"]), Reply::Array(bulks(&["a", "a", "a"])));
        assert_eq!(
            run(&mut s, 0, &["hrandfield", "h", "-2", "WITHVALUES"]),
            Reply::Pairs(vec![(bulk("a"), bulk("1")), (bulk("a"), bulk("1"))])
        );
    }

    #[test]
    fn hrandfield_withvalues_pairs_each_field_with_its_value() {
        let mut s = hash_with(&["a", "1", "b", "2", "c", "3"]);
        let Reply::Pairs(pairs) = run(&mut s, 0, &["hrandfield", "h", "2", "withvalues"]) else { panic!() };
        assert_eq!(pairs.len(), 2);
        for (field, value) in pairs {
            let expected = match field {
                Reply::Bulk(ref f) if &f[..] == b"a" => "1",
                Reply::Bulk(ref f) if &f[..] == b"b" => "2",
                _ => "3",
            };
            assert_eq!(value, bulk(expected));
        }
    }

    #[test]
    fn hrandfield_argument_errors_match_redis() {
        let mut s = hash_with(&["a", "1"]);
        assert_eq!(run(&mut s, 0, &["hrandfield", "h", "x"]), err("ERR value is not an integer or out of range"));
        assert_eq!(run(&mut s, 0, &["hrandfield", "h", "1", "withscores"]), err("ERR syntax error"));
        assert_eq!(run(&mut s, 0, &["hrandfield", "h", "1", "withvalues", "x"]), err("ERR syntax error"));
        assert_eq!(
            run(&mut s, 0, &["hrandfield", "h", "-9223372036854775808"]),
            err("ERR value is out of range, must be between -9223372036854775807 and 9223372036854775807")
        );
        assert_eq!(run(&mut s, 0, &["hrandfield", "h", "-9223372036854770000", "withvalues"]), err("ERR value is out of range"));
    }

    #[test]
    fn hrandfield_huge_negative_count_is_refused_not_allocated() {
        let mut s = hash_with(&["a", "1"]);
        assert!(run(&mut s, 0, &["hrandfield", "h", "-4611686018427387903"]).is_error());
    }

    #[test]
    fn hscan_returns_fields_and_values_then_cursor_zero() {
        let mut s = hash_with(&["a", "1", "b", "2"]);
        assert_eq!(run(&mut s, 0, &["hscan", "h", "0"]), Reply::Array(vec![bulk("0"), Reply::Array(bulks(&["a", "1", "b", "2"]))]));
        assert_eq!(run(&mut s, 0, &["hscan", "h", "0", "NOVALUES"]), Reply::Array(vec![bulk("0"), Reply::Array(bulks(&["a", "b"]))]));
        assert_eq!(run(&mut s, 0, &["hscan", "h", "0", "match", "b*"]), Reply::Array(vec![bulk("0"), Reply::Array(bulks(&["b", "2"]))]));
        assert_eq!(run(&mut s, 0, &["hscan", "no", "0"]), Reply::Array(vec![bulk("0"), Reply::Array(vec![])]));
    }

    #[test]
    fn hscan_walks_a_large_hash_in_steps_and_visits_every_field() {
        let mut s = Store::new();
        for i in 0..95 {
            run(&mut s, 0, &["hset", "h", &format!("f{i}"), "v"]);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let Reply::Array(parts) = run(&mut s, 0, &["hscan", "h", &cursor, "count", "20", "novalues"]) else { panic!() };
            let [Reply::Bulk(next), Reply::Array(items)] = &parts[..] else { panic!() };
            assert!(items.len() <= 20);
            seen.extend(items.iter().map(|r| format!("{r:?}")));
            calls += 1;
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 95);
        assert_eq!(calls, 5);
    }

    #[test]
    fn hscan_argument_errors_match_redis() {
        let mut s = hash_with(&["a", "1"]);
        assert_eq!(run(&mut s, 0, &["hscan", "h", "x"]), err("ERR invalid cursor"));
        assert_eq!(run(&mut s, 0, &["hscan", "h", "0", "count", "0"]), err("ERR syntax error"));
        assert_eq!(run(&mut s, 0, &["hscan", "h", "0", "bogus"]), err("ERR syntax error"));
        assert_eq!(run(&mut s, 0, &["hscan", "h", "0", "count", "x"]), err("ERR value is not an integer or out of range"));
    }

    #[test]
    fn arity_and_flags_match_redis() {
        let find = |name: &str| COMMANDS.iter().find(|c| c.name == name).unwrap();
        assert_eq!(find("hset").arity, -4);
        assert_eq!(find("hget").arity, 3);
        assert_eq!(find("hrandfield").arity, -2);
        assert_eq!(find("hscan").arity, -3);
        assert!(find("hincrbyfloat").has(DENYOOM));
        assert!(!find("hdel").has(DENYOOM));
        assert!(find("hgetall").has(READONLY) && !find("hgetall").has(FAST));
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["hget", "h"]), err("ERR wrong number of arguments for 'hget' command"));
    }
}
