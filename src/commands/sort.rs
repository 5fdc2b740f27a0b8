//! SORT and SORT_RO: sorting a list, set or sorted set numerically or
//! lexicographically (ALPHA), by its elements or by external keys (BY pattern),
//! fetching external values (GET pattern), with LIMIT and an optional STORE.
//!
//! BY and GET patterns name other keys (`weight_*`, `object_*->field`), so these
//! commands declare `movablekeys` as in Redis: in a multi-stripe array the keys a
//! pattern reaches must share the sorted key's slot. Those keys are read as they
//! are at the entry's time (an expired key reads as absent) and never changed.
//!
//! Differences from Redis, both documented: ALPHA compares bytes where Redis uses
//! the C library's collation (`strcoll`, the same under the C locale); and a set
//! sorted `BY nosort` without STORE comes back in this server's set order, which,
//! as in Redis, is not an order anyone may rely on.

use bytes::Bytes;

use super::flags::*;
use super::*;
use crate::protocol::reply::Reply;
use crate::store::db::Db;
use crate::store::value::{Blob, Value, WRONGTYPE};

const G: &str = "generic";

pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "sort",
        -2,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        G,
        "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        Handler::Write(sort),
    )
    .movable(sort_keys),
    spec(
        "sort_ro",
        -2,
        READONLY | MOVABLE_KEYS,
        (1, 1, 1),
        G,
        "Returns the sorted elements of a list, a set, or a sorted set.",
        Handler::Read(sort_ro),
    ),
];

/// SORT's keys as COMMAND GETKEYS reports them (Redis's sortGetKeys): the sorted key
/// and the last STORE destination. BY and GET patterns name keys only once
/// substituted, so they are not listed.
fn sort_keys(args: &[Bytes]) -> Vec<usize> {
    let mut store = None;
    let mut i = 2;
    while let Some(arg) = args.get(i) {
        if is(arg, "limit") {
            i += 2;
        } else if is(arg, "get") || is(arg, "by") {
            i += 1;
        } else if is(arg, "store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    std::iter::once(1).chain(store).collect()
}

const ERR_SCORES: &str = "ERR One or more scores can't be converted into double";

struct Options {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    store: Option<Bytes>,
    by: Option<Bytes>,
    /// BY with a constant pattern: no sorting at all.
    dont_sort: bool,
    /// A set's elements must come out in an order that does not depend on the set's
    /// own (STORE, or a script: what is replicated or returned to one), so `BY nosort`
    /// sorts a set ALPHA after all, as in Redis.
    order_sets: bool,
    gets: Vec<Bytes>,
}

fn parse_options(args: &[Bytes], read_only: bool, in_script: bool) -> Result<Options, Reply> {
    let mut o = Options {
        desc: false,
        alpha: false,
        limit_start: 0,
        limit_count: -1,
        store: None,
        by: None,
        dont_sort: false,
        order_sets: in_script,
        gets: Vec::new(),
    };
    let mut j = 2;
    while let Some(arg) = args.get(j) {
        let left = args.len() - j - 1;
        match () {
            _ if is(arg, "asc") => o.desc = false,
            _ if is(arg, "desc") => o.desc = true,
            _ if is(arg, "alpha") => o.alpha = true,
            _ if is(arg, "limit") && left >= 2 => {
                o.limit_start = int_arg(&args[j + 1])?;
                o.limit_count = int_arg(&args[j + 2])?;
                j += 2;
            }
            _ if !read_only && is(arg, "store") && left >= 1 => {
                o.store = Some(args[j + 1].clone());
                j += 1;
            }
            _ if is(arg, "by") && left >= 1 => {
                o.dont_sort = !args[j + 1].contains(&b'*');
                o.by = Some(args[j + 1].clone());
                j += 1;
            }
            _ if is(arg, "get") && left >= 1 => {
                o.gets.push(args[j + 1].clone());
                j += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        j += 1;
    }
    o.order_sets |= o.store.is_some();
    Ok(o)
}

/// The value a BY or GET pattern names for `element`: `#` is the element itself;
/// otherwise the first `*` is replaced by it, and `key->field` reads a hash field.
/// A pattern without `*`, an absent key or a key of another type gives nothing.
fn lookup_by_pattern(db: &Db, now_ms: u64, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(element.to_vec());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after.windows(2).position(|w| w == b"->").filter(|&at| at + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(at) => (&after[..at], Some(&after[at + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + postfix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(postfix);
    let item = db.get(&key, now_ms)?;
    match (field, &item.value) {
        (Some(field), Value::Hash(h)) => h.get(field).map(|v| v.to_vec()),
        (None, Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A number as C's strtod reads a whole string: leading spaces allowed, nothing
/// after; out-of-range values (overflow or underflow) and NaN refused. The empty
/// string reads as 0.
fn strtod_whole(text: &[u8]) -> Option<f64> {
    if text.is_empty() {
        return Some(0.0);
    }
    let start = text.iter().position(|b| !b" \t\n\x0b\x0c\r".contains(b))?;
    let body = std::str::from_utf8(&text[start..]).ok()?.to_ascii_lowercase();
    let value: f64 = if super::args::is_hex_float(&body) { super::args::parse_hex_f64(&body)? } else { body.parse().ok()? };
    let unsigned = body.trim_start_matches(['+', '-']);
    let says_infinity = unsigned == "inf" || unsigned == "infinity";
    let overflow = value.is_infinite() && !says_infinity;
    let underflow = (value == 0.0 && super::args::mantissa_nonzero(body.as_bytes())) || (value != 0.0 && value.abs() < f64::MIN_POSITIVE);
    if value.is_nan() || overflow || underflow {
        return None;
    }
    Some(value)
}

/// What an element is sorted by.
enum Key {
    Number(f64),
    Text(Option<Vec<u8>>),
}

/// Redis's sortCompare (ascending): numbers, ties broken by the elements' bytes;
/// ALPHA by the BY values (absent ones first) or by the elements.
fn compare(a: &(Blob, Key), b: &(Blob, Key)) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (&a.1, &b.1) {
        (Key::Number(x), Key::Number(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal).then_with(|| a.0.cmp(&b.0)),
        (Key::Text(Some(x)), Key::Text(Some(y))) => x.cmp(y),
        (Key::Text(x), Key::Text(y)) => x.is_some().cmp(&y.is_some()),
        _ => Ordering::Equal,
    }
}

/// The elements of the value to sort (none for an absent key); see
/// `Options::order_sets`.
fn elements(db: &Db, now_ms: u64, key: &[u8], o: &mut Options) -> Result<Vec<Blob>, Reply> {
    Ok(match db.get(key, now_ms).map(|item| &item.value) {
        None => Vec::new(),
        Some(Value::List(l)) => l.iter().map(Blob::from).collect(),
        Some(Value::Set(s)) => {
            if o.dont_sort && o.order_sets {
                (o.dont_sort, o.alpha, o.by) = (false, true, None);
            }
            s.iter().map(|m| Blob::from(&*m)).collect()
        }
        Some(Value::ZSet(z)) => z.sorted().map(|(_, m)| Blob::from(m)).collect(),
        Some(_) => return Err(Reply::err(WRONGTYPE)),
    })
}

/// The sorted (and LIMITed) elements, before GET.
fn sorted(db: &Db, now_ms: u64, key: &[u8], o: &mut Options) -> Result<Vec<Blob>, Reply> {
    let is_set = matches!(db.get(key, now_ms).map(|i| &i.value), Some(Value::Set(_)));
    let mut all = elements(db, now_ms, key, o)?;
    let len = all.len() as i64;
    // Redis's LIMIT arithmetic, clamped to the value's size.
    let mut start = o.limit_start.max(0).min(len);
    let count = o.limit_count.max(-1).min(len);
    let mut end = if count < 0 { len - 1 } else { start + count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    end = end.min(len - 1);
    if o.dont_sort {
        if end < start {
            return Ok(Vec::new());
        }
        // Lists and sorted sets keep their order (reversed by DESC); sets their own.
        if o.desc && !is_set {
            all.reverse();
        }
        return Ok(all.drain(start as usize..=end as usize).collect());
    }
    let mut keyed: Vec<(Blob, Key)> = Vec::with_capacity(all.len());
    let mut unconvertible = false;
    for element in all {
        let by = match &o.by {
            Some(pattern) => lookup_by_pattern(db, now_ms, pattern, &element),
            None => Some(element.to_vec()),
        };
        let key = if o.alpha {
            Key::Text(if o.by.is_some() { by } else { Some(element.to_vec()) })
        } else {
            match by {
                None => Key::Number(0.0),
                Some(text) => Key::Number(strtod_whole(&text).unwrap_or_else(|| {
                    unconvertible = true;
                    0.0
                })),
            }
        };
        keyed.push((element, key));
    }
    keyed.sort_by(|a, b| if o.desc { compare(b, a) } else { compare(a, b) });
    if unconvertible {
        return Err(Reply::err(ERR_SCORES));
    }
    if end < start {
        return Ok(Vec::new());
    }
    Ok(keyed.drain(start as usize..=end as usize).map(|(e, _)| e).collect())
}

/// The output values: the elements, or for each element the value of every GET.
fn output(db: &Db, now_ms: u64, elements: Vec<Blob>, gets: &[Bytes]) -> Vec<Option<Vec<u8>>> {
    if gets.is_empty() {
        return elements.into_iter().map(|e| Some(e.into_vec())).collect();
    }
    elements.iter().flat_map(|e| gets.iter().map(move |g| lookup_by_pattern(db, now_ms, g, e))).collect()
}

fn reply_of(values: Vec<Option<Vec<u8>>>) -> Reply {
    Reply::Array(values.into_iter().map(|v| v.map_or(Reply::Nil, |v| Reply::Bulk(Bytes::from(v)))).collect())
}

fn sort(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut o = parse_options(args, false, ctx.in_script)?;
    let values = {
        let elements = sorted(ctx.db, ctx.now_ms, &args[1], &mut o)?;
        output(ctx.db, ctx.now_ms, elements, &o.gets)
    };
    let Some(dest) = o.store else { return Ok(reply_of(values)) };
    let count = values.len();
    if count == 0 {
        if ctx.delete(&dest) {
            ctx.notify(b'g', "del", &dest);
        }
        return Ok(Reply::Int(0));
    }
    // GET of a missing key stores an empty string.
    let list = values.iter().map(|v| v.as_deref().unwrap_or_default()).collect();
    ctx.set(&dest, Value::List(list));
    ctx.notify(b'l', "sortstore", &dest);
    Ok(Reply::Int(count as i64))
}

fn sort_ro(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let mut o = parse_options(args, true, ctx.in_script)?;
    let elements = sorted(ctx.db, ctx.now_ms, &args[1], &mut o)?;
    Ok(reply_of(output(ctx.db, ctx.now_ms, elements, &o.gets)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::Store;

    const T: u64 = 1_000;

    fn names(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk(s)).collect())
    }

    fn with_list(items: &[&str]) -> Store {
        let mut store = Store::new();
        let mut cmd = vec!["rpush", "l"];
        cmd.extend_from_slice(items);
        run(&mut store, T, &cmd);
        store
    }

    #[test]
    fn numeric_and_alpha_sorts_with_limit_and_desc() {
        let mut store = with_list(&["3", "10", "1", "2"]);
        assert_eq!(run(&mut store, T, &["sort", "l"]), names(&["1", "2", "3", "10"]));
        assert_eq!(run(&mut store, T, &["sort", "l", "desc"]), names(&["10", "3", "2", "1"]));
        assert_eq!(run(&mut store, T, &["sort", "l", "alpha"]), names(&["1", "10", "2", "3"]));
        assert_eq!(run(&mut store, T, &["sort", "l", "limit", "1", "2"]), names(&["2", "3"]));
        assert_eq!(run(&mut store, T, &["sort", "l", "limit", "5", "2"]), names(&[]));
        assert_eq!(run(&mut store, T, &["sort", "l", "limit", "-5", "-1"]), names(&["1", "2", "3", "10"]));
        assert_eq!(run(&mut store, T, &["sort_ro", "l", "limit", "0", "0"]), names(&[]));
        assert_eq!(run(&mut store, T, &["sort", "missing"]), names(&[]));
    }

    #[test]
    fn by_and_get_patterns_read_other_keys() {
        let mut store = with_list(&["a", "b", "c"]);
        for (k, v) in [("w_a", "3"), ("w_b", "1"), ("w_c", "2"), ("o_a", "A"), ("o_c", "C")] {
            run(&mut store, T, &["set", k, v]);
        }
        run(&mut store, T, &["hset", "h_b", "f", "HB"]);
        assert_eq!(run(&mut store, T, &["sort", "l", "by", "w_*"]), names(&["b", "c", "a"]));
        assert_eq!(
            run(&mut store, T, &["sort", "l", "by", "w_*", "get", "o_*", "get", "#", "get", "h_*->f"]),
            Reply::Array(vec![Reply::Nil, bulk("b"), bulk("HB"), bulk("C"), bulk("c"), Reply::Nil, bulk("A"), bulk("a"), Reply::Nil])
        );
        assert_eq!(run(&mut store, T, &["sort", "l", "by", "nosort", "desc"]), names(&["c", "b", "a"]));
        assert_eq!(run(&mut store, T, &["sort", "l", "by", "nosort", "limit", "1", "1"]), names(&["b"]));
        assert_eq!(run(&mut store, T, &["sort", "l", "by", "w_*", "get", "fixed"]), Reply::Array(vec![Reply::Nil; 3]));
        // Absent BY values sort first under ALPHA.
        assert_eq!(run(&mut store, T, &["sort", "l", "by", "o_*", "alpha"]), names(&["b", "a", "c"]));
    }

    #[test]
    fn store_writes_a_list_and_empty_results_delete_it() {
        let mut store = with_list(&["2", "1"]);
        let applied = run_applied(&mut store, T, &["sort", "l", "store", "out"]);
        assert_eq!(applied.replies[0], Reply::Int(2));
        assert_eq!(applied.events.iter().map(|e| e.event).collect::<Vec<_>>(), vec!["sortstore"]);
        assert_eq!(run(&mut store, T, &["lrange", "out", "0", "-1"]), names(&["1", "2"]));
        assert_eq!(run(&mut store, T, &["sort", "l", "get", "nothing_*", "store", "out"]), Reply::Int(2));
        assert_eq!(run(&mut store, T, &["lrange", "out", "0", "-1"]), names(&["", ""]));
        assert_eq!(run(&mut store, T, &["sort", "missing", "store", "out"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["exists", "out"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["sort_ro", "l", "store", "out"]), err(ERR_SYNTAX));
    }

    #[test]
    fn sets_and_sorted_sets_sort_too() {
        let mut store = Store::new();
        run(&mut store, T, &["sadd", "s", "b", "a", "c"]);
        assert_eq!(run(&mut store, T, &["sort", "s", "alpha"]), names(&["a", "b", "c"]));
        assert_eq!(run(&mut store, T, &["sort", "s", "by", "nosort", "store", "o"]), Reply::Int(3));
        assert_eq!(run(&mut store, T, &["lrange", "o", "0", "-1"]), names(&["a", "b", "c"]), "a stored set is always sorted");
        run(&mut store, T, &["zadd", "z", "1", "x", "2", "y", "3", "z"]);
        assert_eq!(run(&mut store, T, &["sort", "z", "by", "nosort", "desc"]), names(&["z", "y", "x"]));
        assert_eq!(run(&mut store, T, &["sort", "z", "alpha", "desc", "limit", "0", "2"]), names(&["z", "y"]));
    }

    #[test]
    fn errors() {
        let mut store = with_list(&["a", "1"]);
        assert_eq!(run(&mut store, T, &["sort", "l"]), err(ERR_SCORES));
        assert_eq!(run(&mut store, T, &["sort", "l", "bogus"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["sort", "l", "limit", "x", "1"]), err(ERR_NOT_INT));
        assert_eq!(run(&mut store, T, &["sort", "l", "limit", "1"]), err(ERR_SYNTAX));
        run(&mut store, T, &["set", "str", "v"]);
        assert_eq!(run(&mut store, T, &["sort", "str"]), err(WRONGTYPE));
        assert_eq!(run(&mut store, T, &["sort", "str", "bogus"]), err(ERR_SYNTAX), "options are checked first");
    }

    #[test]
    fn getkeys_names_the_sorted_key_and_the_last_store() {
        let args = |v: &[&str]| v.iter().map(|s| Bytes::from(s.to_string())).collect::<Vec<_>>();
        let spec = lookup(b"sort").unwrap();
        let a = args(&["sort", "abc", "store", "invalid", "store", "stillbad", "store", "def"]);
        assert_eq!(spec.keys(&a), vec![&a[1], &a[7]]);
        let a = args(&["sort", "abc", "by", "store", "get", "store", "limit", "store", "store"]);
        assert_eq!(spec.keys(&a), vec![&a[1]]);
    }

    #[test]
    fn numbers_parse_like_strtod() {
        assert_eq!(strtod_whole(b""), Some(0.0));
        assert_eq!(strtod_whole(b" 1.5"), Some(1.5));
        assert_eq!(strtod_whole(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(strtod_whole(b"1 "), None);
        assert_eq!(strtod_whole(b" "), None);
        assert_eq!(strtod_whole(b"nan"), None);
        assert_eq!(strtod_whole(b"1e400"), None);
        assert_eq!(strtod_whole(b"1e-400"), None);
        assert_eq!(strtod_whole(b"0e-400"), Some(0.0));
        // C's hexadecimal floats: redis-server 7.0.15 sorts `RPUSH l 0x10 2` as 2, 0x10.
        assert_eq!(strtod_whole(b"0x10"), Some(16.0));
        assert_eq!(strtod_whole(b" -0X1.8p1"), Some(-3.0));
        assert_eq!(strtod_whole(b"0x1p-2000"), None);
        assert_eq!(strtod_whole(b"0x0p-2000"), Some(0.0));
        assert_eq!(strtod_whole(b"0x"), None);
    }
}
