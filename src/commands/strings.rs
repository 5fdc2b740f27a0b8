//! String commands: GET, SET and its variants, counters, ranges.

use bytes::Bytes;

use super::flags::*;
use super::*;
use crate::limits;
use crate::protocol::reply::{Reply, OK};
use crate::store::value::Value;

const G: &str = "string";

pub static COMMANDS: &[CommandSpec] = &[
    spec("get", 2, READONLY | FAST, (1, 1, 1), G, "Returns the string value of a key.", Handler::Read(get)),
    spec("set", -3, WRITE | DENYOOM, (1, 1, 1), G, "Sets the string value of a key, ignoring its type.", Handler::Write(set)),
    spec("setex", 4, WRITE | DENYOOM, (1, 1, 1), G, "Sets the value and expiry in seconds of a key.", Handler::Write(setex)),
    spec("psetex", 4, WRITE | DENYOOM, (1, 1, 1), G, "Sets the value and expiry in milliseconds of a key.", Handler::Write(psetex)),
    spec("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Sets a key only if it does not exist.", Handler::Write(setnx)),
    spec("getex", -2, WRITE | FAST, (1, 1, 1), G, "Returns the value of a key after setting its expiry.", Handler::Write(getex)),
    spec("getdel", 2, WRITE | FAST, (1, 1, 1), G, "Returns the value of a key after deleting it.", Handler::Write(getdel)),
    spec(
        "getset",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        G,
        "Returns the previous value of a key after setting it.",
        Handler::Write(getset),
    ),
    spec("mget", -2, READONLY | FAST, (1, -1, 1), G, "Returns the values of one or more keys.", Handler::Read(mget)),
    spec("mset", -3, WRITE | DENYOOM, (1, -1, 2), G, "Sets the values of one or more keys.", Handler::Write(mset)),
    spec("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), G, "Sets keys only if none of them exist.", Handler::Write(msetnx)),
    spec("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Appends a string to the value of a key.", Handler::Write(append)),
    spec("strlen", 2, READONLY | FAST, (1, 1, 1), G, "Returns the length of a string value.", Handler::Read(strlen)),
    spec("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Increments the integer value of a key by one.", Handler::Write(incr)),
    spec("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Decrements the integer value of a key by one.", Handler::Write(decr)),
    spec("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Increments the integer value of a key by a number.", Handler::Write(incrby)),
    spec("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Decrements the integer value of a key by a number.", Handler::Write(decrby)),
    spec(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        G,
        "Increments the float value of a key by a number.",
        Handler::Write(incrbyfloat),
    ),
    spec("getrange", 4, READONLY, (1, 1, 1), G, "Returns a substring of a string value.", Handler::Read(getrange)),
    spec("substr", 4, READONLY, (1, 1, 1), G, "Returns a substring of a string value.", Handler::Read(getrange)),
    spec("setrange", 4, WRITE | DENYOOM, (1, 1, 1), G, "Overwrites part of a string value from an offset.", Handler::Write(setrange)),
    spec("lcs", -3, READONLY, (1, 2, 1), G, "Finds the longest common substring.", Handler::Read(lcs)),
];

const ERR_STRING_TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

fn get(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    match ctx.get(&args[1]) {
        None => Ok(Reply::Nil),
        Some(v) => Ok(Reply::bulk(v.as_str()?)),
    }
}

/// An expiry option's value turned into an absolute time, or Redis's error.
fn absolute_expiry(ctx_now: u64, value: &[u8], unit_ms: u64, absolute: bool, command: &str) -> Result<u64, Reply> {
    let invalid = || Reply::error(format!("ERR invalid expire time in '{command}' command"));
    let n = int_arg(value)?;
    if n <= 0 {
        return Err(invalid());
    }
    let ms = (n as u64).checked_mul(unit_ms).filter(|ms| *ms <= i64::MAX as u64).ok_or_else(invalid)?;
    if absolute {
        Ok(ms)
    } else {
        ctx_now.checked_add(ms).filter(|at| *at <= i64::MAX as u64).ok_or_else(invalid)
    }
}

/// Writes `value` to `key` with an optional absolute expiry, recording events. An
/// expiry already in the past deletes the key instead, as Redis does.
fn store_string(ctx: &mut WriteCtx, key: &[u8], value: &[u8], expire_at: Option<u64>, keep_ttl: bool) {
    let index = ctx.live_index(key);
    store_string_at(ctx, key, index, value, expire_at, keep_ttl);
}

/// [`store_string`] for a key whose live position the caller already looked up.
fn store_string_at(ctx: &mut WriteCtx, key: &[u8], index: Option<usize>, value: &[u8], expire_at: Option<u64>, keep_ttl: bool) {
    if let Some(at) = expire_at {
        if at <= ctx.now_ms {
            if index.is_some() && ctx.db.remove(key).is_some() {
                ctx.notify(b'g', "del", key);
            }
            return;
        }
    }
    let value = Value::Str(value.to_vec());
    match index {
        Some(i) => ctx.db.replace_at(i, key, value, keep_ttl, ctx.now_ms),
        None => {
            ctx.notify_new(key);
            ctx.db.insert_new(key, value, ctx.now_ms);
        }
    }
    ctx.notify(b'$', "set", key);
    if let Some(at) = expire_at {
        ctx.db.set_expire(key, at);
        ctx.notify(b'g', "expire", key);
    }
}

/// `SET key value [NX | XX | IFEQ expected] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`.
///
/// `IFEQ expected` is Valkey 8.1's compare-and-set: the key is set (value and expiry
/// options) only if it holds a string equal to `expected`; a missing key is not
/// created. Replies `OK`, or nil when nothing was set; with `GET`, the old value
/// (nil for a missing key) whether or not it was set. A key of another type is
/// `-WRONGTYPE`; `IFEQ` with `NX` or `XX` is a syntax error, as in Valkey. Decided in
/// apply, so exact against every write before it in the log (the recipe for shared
/// configuration in ARCHITECTURE.md).
fn set(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, value) = (&args[1], &args[2]);
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut expire_at: Option<u64> = None;
    // IFEQ (Valkey 8.1): compare-and-set, exclusive with NX and XX.
    let mut if_eq: Option<&Bytes> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        let expiry_unit =
            [("ex", 1000, false), ("px", 1, false), ("exat", 1000, true), ("pxat", 1, true)].into_iter().find(|(name, _, _)| is(opt, name));
        if let Some((_, unit, absolute)) = expiry_unit {
            let Some(v) = args.get(i + 1) else { return Err(Reply::err(ERR_SYNTAX)) };
            if expire_at.is_some() || keep_ttl {
                return Err(Reply::err(ERR_SYNTAX));
            }
            expire_at = Some(absolute_expiry(ctx.now_ms, v, unit, absolute, "set")?);
            i += 2;
            continue;
        }
        match () {
            _ if is(opt, "nx") && !xx && if_eq.is_none() => nx = true,
            _ if is(opt, "xx") && !nx && if_eq.is_none() => xx = true,
            _ if is(opt, "ifeq") && !nx && !xx && if_eq.is_none() => {
                let Some(expected) = args.get(i + 1) else { return Err(Reply::err(ERR_SYNTAX)) };
                if_eq = Some(expected);
                i += 2;
                continue;
            }
            _ if is(opt, "get") => get = true,
            _ if is(opt, "keepttl") && expire_at.is_none() => keep_ttl = true,
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    let index = ctx.live_index(key);
    let old = match index.and_then(|i| ctx.db.item_at(i)) {
        None => None,
        Some(item) if get || if_eq.is_some() => Some(item.value.as_str()?.clone()),
        Some(_) => Some(Vec::new()),
    };
    let exists = old.is_some();
    let done = match if_eq {
        // Only an existing string equal to `expected` is replaced; nothing is created.
        Some(expected) => old.as_deref() == Some(&expected[..]),
        None => !(nx && exists || xx && !exists),
    };
    if done {
        store_string_at(ctx, key, index, value, expire_at, keep_ttl);
    }
    match (get, done) {
        (true, _) => Ok(old.map_or(Reply::Nil, |v| Reply::Bulk(Bytes::from(v)))),
        (false, true) => Ok(OK),
        (false, false) => Ok(Reply::Nil),
    }
}

fn setex_with(ctx: &mut WriteCtx, args: &[Bytes], unit_ms: u64, name: &str) -> CmdResult {
    let at = absolute_expiry(ctx.now_ms, &args[2], unit_ms, false, name)?;
    store_string(ctx, &args[1], &args[3], Some(at), false);
    Ok(OK)
}

fn setex(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    setex_with(ctx, args, 1000, "setex")
}

fn psetex(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    setex_with(ctx, args, 1, "psetex")
}

fn setnx(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    if ctx.get(&args[1]).is_some() {
        return Ok(Reply::Int(0));
    }
    store_string(ctx, &args[1], &args[2], None, false);
    Ok(Reply::Int(1))
}

/// GETEX key [EX|PX|EXAT|PXAT time | PERSIST]: the options' syntax is checked
/// first, then the key and its type, and only then the time (as Redis 7.0: a
/// missing key answers nil and a hash WRONGTYPE, whatever the time says).
fn getex(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let mut expire: Option<(&[u8], u64, bool)> = None;
    let mut persist = false;
    let mut i = 2;
    while i < args.len() {
        let opt = &args[i];
        let unit =
            [("ex", 1000, false), ("px", 1, false), ("exat", 1000, true), ("pxat", 1, true)].into_iter().find(|(name, _, _)| is(opt, name));
        match unit {
            Some((_, unit, absolute)) if expire.is_none() && !persist => {
                let Some(v) = args.get(i + 1) else { return Err(Reply::err(ERR_SYNTAX)) };
                expire = Some((v, unit, absolute));
                i += 2;
            }
            None if is(opt, "persist") && expire.is_none() && !persist => {
                persist = true;
                i += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
    }
    let Some(value) = ctx.get(key) else { return Ok(Reply::Nil) };
    let reply = Reply::bulk(value.as_str()?);
    let expire_at = expire.map(|(v, unit, absolute)| absolute_expiry(ctx.now_ms, v, unit, absolute, "getex")).transpose()?;
    if let Some(at) = expire_at {
        if at <= ctx.now_ms {
            ctx.delete(key);
            ctx.notify(b'g', "del", key);
        } else {
            ctx.db.set_expire(key, at);
            ctx.notify(b'g', "expire", key);
        }
    } else if persist && ctx.db.persist(key) {
        ctx.notify(b'g', "persist", key);
    }
    Ok(reply)
}

fn getdel(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let Some(value) = ctx.get(&args[1]) else { return Ok(Reply::Nil) };
    let reply = Reply::bulk(value.as_str()?);
    ctx.delete(&args[1]);
    ctx.notify(b'g', "del", &args[1]);
    Ok(reply)
}

fn getset(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let old = match ctx.get(&args[1]) {
        None => Reply::Nil,
        Some(v) => Reply::bulk(v.as_str()?),
    };
    store_string(ctx, &args[1], &args[2], None, false);
    Ok(old)
}

fn mget(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let values = args[1..]
        .iter()
        .map(|key| match ctx.get(key) {
            Some(Value::Str(s)) => Reply::bulk(s),
            _ => Reply::Nil,
        })
        .collect();
    Ok(Reply::Array(values))
}

fn mset(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(wrong_args("mset"));
    }
    for pair in args[1..].chunks_exact(2) {
        store_string(ctx, &pair[0], &pair[1], None, false);
    }
    Ok(OK)
}

fn msetnx(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(wrong_args("msetnx"));
    }
    for pair in args[1..].chunks_exact(2) {
        if ctx.get(&pair[0]).is_some() {
            return Ok(Reply::Int(0));
        }
    }
    for pair in args[1..].chunks_exact(2) {
        store_string(ctx, &pair[0], &pair[1], None, false);
    }
    Ok(Reply::Int(1))
}

/// A string changed in place keeps room to grow, as Redis's does after APPEND or
/// SETRANGE (an `sds` with free space, encoding `raw`); OBJECT ENCODING tells such a
/// string by that room (`store::encoding`). One byte at least: a large string is not
/// doubled for it.
fn grown_in_place(s: &mut Vec<u8>) {
    if s.capacity() == s.len() {
        s.reserve_exact(1);
    }
}

/// Room for `more` bytes after `s`, grown as Redis's `sdsMakeRoomFor`: to twice the
/// new length below 1 MiB, by 1 MiB beyond (not doubling a large string).
fn make_room(s: &mut Vec<u8>, more: usize) {
    let needed = s.len().saturating_add(more);
    if s.capacity() < needed {
        let spare = needed.min(1 << 20);
        s.reserve_exact(more.saturating_add(spare));
    }
}

fn append(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, tail) = (&args[1], &args[2]);
    let len = match ctx.get_mut(key) {
        Some(value) => {
            let Value::Str(s) = value else { return Err(Reply::err(crate::store::value::WRONGTYPE)) };
            if s.len() + tail.len() > limits::STRING_BYTES_MAX {
                return Err(Reply::err(ERR_STRING_TOO_BIG));
            }
            make_room(s, tail.len());
            s.extend_from_slice(tail);
            grown_in_place(s);
            s.len()
        }
        None => {
            ctx.set(key, Value::Str(tail.to_vec()));
            tail.len()
        }
    };
    ctx.notify(b'$', "append", key);
    Ok(Reply::Int(len as i64))
}

fn strlen(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    match ctx.get(&args[1]) {
        None => Ok(Reply::Int(0)),
        Some(v) => Ok(Reply::Int(v.as_str()?.len() as i64)),
    }
}

/// Adds `delta` to the integer in `key` (absent = 0), keeping its TTL.
fn incr_by(ctx: &mut WriteCtx, key: &[u8], delta: i64) -> CmdResult {
    // One lookup: the number is rewritten in place, keeping the TTL.
    let next = match ctx.get_mut(key) {
        Some(Value::Str(s)) => {
            let current = parse_i64(s).ok_or(Reply::err(ERR_NOT_INT))?;
            let next = current.checked_add(delta).ok_or(Reply::err(ERR_OVERFLOW))?;
            s.clear();
            s.extend_from_slice(itoa::Buffer::new().format(next).as_bytes());
            // No spare room: a counter is `int` for OBJECT ENCODING whatever it held
            // before (Redis stores the result as an integer object). Reallocates only
            // when the number of digits changes.
            if s.capacity() != s.len() {
                s.shrink_to_fit();
            }
            next
        }
        Some(_) => return Err(Reply::err(crate::store::value::WRONGTYPE)),
        None => {
            ctx.set(key, Value::Str(int_bytes(delta)));
            delta
        }
    };
    ctx.notify(b'$', "incrby", key);
    Ok(Reply::Int(next))
}

fn incr(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    incr_by(ctx, &args[1], 1)
}

fn decr(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    incr_by(ctx, &args[1], -1)
}

fn incrby(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let delta = int_arg(&args[2])?;
    incr_by(ctx, &args[1], delta)
}

fn decrby(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let delta = int_arg(&args[2])?;
    if delta == i64::MIN {
        return Err(Reply::err("ERR decrement would overflow"));
    }
    incr_by(ctx, &args[1], -delta)
}

fn incrbyfloat(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    // Redis reads increments as long doubles, whose range holds 1e500 and 1e-400:
    // read with strtod's range (an infinity or a zero), not refused.
    let delta = parse_f64(&args[2]).ok_or(Reply::err(ERR_NOT_FLOAT))?;
    let current = match ctx.get(key) {
        None => 0.0,
        Some(v) => parse_f64(v.as_str()?).ok_or(Reply::err(ERR_NOT_FLOAT))?,
    };
    let next = current + delta;
    if !next.is_finite() {
        return Err(Reply::err("ERR increment would produce NaN or Infinity"));
    }
    let text = crate::protocol::reply::format_incr_double(next);
    ctx.db.insert_keep_ttl(key, Value::Str(text.clone().into_bytes()), ctx.now_ms);
    ctx.notify(b'$', "incrbyfloat", key);
    Ok(Reply::Bulk(Bytes::from(text)))
}

fn getrange(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let Some(value) = ctx.get(&args[1]) else { return Ok(Reply::bulk(b"")) };
    let s = value.as_str()?;
    let len = s.len() as i64;
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return Ok(Reply::bulk(b""));
    }
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (norm(start), norm(end).min(len - 1));
    if start > end || start >= len {
        return Ok(Reply::bulk(b""));
    }
    Ok(Reply::bulk(&s[start as usize..=end as usize]))
}

fn setrange(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let offset = int_arg(&args[2])?;
    let patch = &args[3];
    if offset < 0 {
        return Err(Reply::err("ERR offset is out of range"));
    }
    let offset = offset as usize;
    let existing_len = match ctx.get(key) {
        None => None,
        Some(v) => Some(v.as_str()?.len()),
    };
    if patch.is_empty() {
        return Ok(Reply::Int(existing_len.unwrap_or(0) as i64));
    }
    if offset.saturating_add(patch.len()) > limits::STRING_BYTES_MAX {
        return Err(Reply::err(ERR_STRING_TOO_BIG));
    }
    let value = ctx.get_or_insert(key, || Value::Str(Vec::new()));
    let Value::Str(s) = value else { return Err(Reply::err(crate::store::value::WRONGTYPE)) };
    if s.len() < offset + patch.len() {
        make_room(s, offset + patch.len() - s.len());
        s.resize(offset + patch.len(), 0);
    }
    s[offset..offset + patch.len()].copy_from_slice(patch);
    grown_in_place(s);
    let len = s.len();
    ctx.notify(b'$', "setrange", key);
    Ok(Reply::Int(len as i64))
}

// --- LCS ---

/// LCS's options.
#[derive(Default)]
struct LcsOptions {
    len: bool,
    idx: bool,
    with_match_len: bool,
    min_match_len: u64,
}

fn lcs_options(args: &[Bytes]) -> Result<LcsOptions, Reply> {
    let mut o = LcsOptions::default();
    let mut j = 3;
    while let Some(opt) = args.get(j) {
        match () {
            _ if is(opt, "idx") => o.idx = true,
            _ if is(opt, "len") => o.len = true,
            _ if is(opt, "withmatchlen") => o.with_match_len = true,
            _ if is(opt, "minmatchlen") && j + 1 < args.len() => {
                o.min_match_len = u64::try_from(int_arg(&args[j + 1])?).unwrap_or(0);
                j += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        j += 1;
    }
    if o.len && o.idx {
        return Err(Reply::err("ERR If you want both the length and indexes, please just use IDX."));
    }
    Ok(o)
}

/// The dynamic-programming table of LCS lengths: `(a.len()+1) × (b.len()+1)`, bounded
/// as Redis bounds it (by the largest string), so a read cannot take unbounded memory.
fn lcs_table(a: &[u8], b: &[u8]) -> Result<Vec<u32>, Reply> {
    let cells = (a.len() + 1).checked_mul(b.len() + 1).filter(|c| c.saturating_mul(4) <= limits::STRING_BYTES_MAX);
    let Some(cells) = cells else {
        return Err(Reply::err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"));
    };
    let width = b.len() + 1;
    let mut table = vec![0u32; cells];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    Ok(table)
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN], walking the table back
/// from the end as Redis does, so the same string and the same ranges come out.
fn lcs(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let read = |v: Option<&Value>| match v {
        None => Ok(Vec::new()),
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(_) => Err(Reply::err("ERR The specified keys must contain string values")),
    };
    let a = read(ctx.get(&args[1]))?;
    let b = read(ctx.get(&args[2]))?;
    let o = lcs_options(args)?;
    let table = lcs_table(&a, &b)?;
    let width = b.len() + 1;
    let at = |i: usize, j: usize| table[i * width + j];
    let total = at(a.len(), b.len());
    if o.len {
        return Ok(Reply::Int(i64::from(total)));
    }
    let mut result = vec![0u8; total as usize];
    let mut matches = Vec::new();
    let unset = a.len();
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (unset, 0, 0, 0);
    let (mut i, mut j, mut k) = (a.len(), b.len(), total as usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[k - 1] = a[i - 1];
            if a_start == unset {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            (i, j, k) = (i - 1, j - 1, k - 1);
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = a_start != unset;
        }
        if emit {
            let match_len = (a_end + 1).wrapping_sub(a_start) as u64;
            if o.idx && (o.min_match_len == 0 || match_len >= o.min_match_len) {
                let range = |s: usize, e: usize| Reply::Array(vec![Reply::Int(s as i64), Reply::Int(e as i64)]);
                let mut item = vec![range(a_start, a_end), range(b_start, b_end)];
                if o.with_match_len {
                    item.push(Reply::Int(match_len as i64));
                }
                matches.push(Reply::Array(item));
            }
            a_start = unset;
        }
    }
    if o.idx {
        return Ok(Reply::Map(vec![(Reply::bulk(b"matches"), Reply::Array(matches)), (Reply::bulk(b"len"), Reply::Int(i64::from(total)))]));
    }
    Ok(Reply::Bulk(Bytes::from(result)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run};
    use crate::store::Store;

    /// GETEX looks at the key before it reads the time, as redis-server 7.0.15: a
    /// missing key is nil and another type WRONGTYPE whatever the time says; the
    /// options' syntax is still checked first.
    #[test]
    fn getex_reads_the_time_after_the_key() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["getex", "no", "pxat", "x"]), Reply::Nil);
        assert_eq!(run(&mut s, 0, &["getex", "no", "ex", "-5"]), Reply::Nil);
        assert_eq!(run(&mut s, 0, &["getex", "no", "ex", "1", "persist"]), err("ERR syntax error"));
        run(&mut s, 0, &["rpush", "l", "a"]);
        assert_eq!(run(&mut s, 0, &["getex", "l", "ex", "x"]), err("WRONGTYPE Operation against a key holding the wrong kind of value"));
        run(&mut s, 0, &["set", "k", "v"]);
        assert_eq!(run(&mut s, 0, &["getex", "k", "ex", "x"]), err("ERR value is not an integer or out of range"));
        assert_eq!(run(&mut s, 0, &["getex", "k", "ex", "-5"]), err("ERR invalid expire time in 'getex' command"));
        assert_eq!(run(&mut s, 0, &["get", "k"]), bulk("v"));
    }

    /// Redis's unit/type/string "SETRANGE against integer-encoded key": a string
    /// changed in place reads `raw`; an empty SETRANGE changes nothing.
    #[test]
    fn a_string_changed_in_place_is_raw_for_object_encoding() {
        let mut s = Store::new();
        let encoding = |s: &mut Store| run(s, 0, &["object", "encoding", "k"]);
        run(&mut s, 0, &["set", "k", "1234"]);
        assert_eq!(encoding(&mut s), bulk("int"));
        assert_eq!(run(&mut s, 0, &["setrange", "k", "0", ""]), Reply::Int(4));
        assert_eq!(encoding(&mut s), bulk("int"));
        assert_eq!(run(&mut s, 0, &["setrange", "k", "0", "2"]), Reply::Int(4));
        assert_eq!(encoding(&mut s), bulk("raw"));
        assert_eq!(run(&mut s, 0, &["get", "k"]), bulk("2234"));
        run(&mut s, 0, &["set", "k", "12"]);
        assert_eq!(run(&mut s, 0, &["append", "k", "3"]), Reply::Int(3));
        assert_eq!(encoding(&mut s), bulk("raw"));
        // A new key made by APPEND is encoded by its content, as in Redis.
        assert_eq!(run(&mut s, 0, &["append", "n", "77"]), Reply::Int(2));
        assert_eq!(run(&mut s, 0, &["object", "encoding", "n"]), bulk("int"));
        // INCR stores an integer again (Redis's unit/type/incr), whatever the string
        // held, and whichever way its digits went.
        assert_eq!(run(&mut s, 0, &["incr", "k"]), Reply::Int(124));
        assert_eq!(encoding(&mut s), bulk("int"));
        run(&mut s, 0, &["set", "k", "9"]);
        run(&mut s, 0, &["incr", "k"]);
        assert_eq!(encoding(&mut s), bulk("int"));
        run(&mut s, 0, &["decr", "k"]);
        assert_eq!(encoding(&mut s), bulk("int"));
    }

    /// SETRANGE inside a string and APPEND to a large one do not double its memory.
    #[test]
    fn changing_a_large_string_in_place_does_not_double_it() {
        let mut s = Store::new();
        let big = "x".repeat(4 << 20);
        run(&mut s, 0, &["set", "k", &big]);
        run(&mut s, 0, &["setrange", "k", "0", "y"]);
        run(&mut s, 0, &["append", "k", "z"]);
        let Some(Value::Str(v)) = s.db.get(b"k", 0).map(|i| &i.value) else { panic!("a string") };
        assert_eq!(v.len(), (4 << 20) + 1);
        assert!(v.capacity() <= v.len() + (1 << 20) + 1, "capacity {} for {} bytes", v.capacity(), v.len());
    }

    #[test]
    fn a_created_key_records_new_before_set_only_when_new_events_are_on() {
        let classes = |st: &mut Store, cmd: &[&str]| -> Vec<(u8, &'static str)> {
            crate::commands::test_support::run_applied(st, 1_000, cmd).events.iter().map(|e| (e.class, e.event)).collect()
        };
        let mut st = Store::new();
        assert_eq!(classes(&mut st, &["set", "a", "1"]), vec![(b'$', "set")]);
        st.new_events_on = true;
        assert_eq!(classes(&mut st, &["set", "b", "1"]), vec![(b'n', "new"), (b'$', "set")]);
        assert_eq!(classes(&mut st, &["set", "b", "2"]), vec![(b'$', "set")]);
        assert_eq!(classes(&mut st, &["rpush", "l", "x"]), vec![(b'n', "new"), (b'l', "rpush")]);
    }

    #[test]
    fn set_ifeq_replaces_only_an_equal_string_as_valkey_does() {
        let mut st = Store::new();
        assert_eq!(run(&mut st, 0, &["set", "cfg", "v2", "ifeq", "v1"]), Reply::Nil, "a missing key is not created");
        assert_eq!(run(&mut st, 0, &["exists", "cfg"]), Reply::Int(0));
        run(&mut st, 0, &["set", "cfg", "v1"]);
        assert_eq!(run(&mut st, 0, &["set", "cfg", "v2", "ifeq", "other"]), Reply::Nil);
        assert_eq!(run(&mut st, 0, &["get", "cfg"]), bulk("v1"));
        assert_eq!(run(&mut st, 0, &["set", "cfg", "v2", "IFEQ", "v1", "px", "5000"]), OK);
        assert_eq!(run(&mut st, 0, &["pttl", "cfg"]), Reply::Int(5000));
        assert_eq!(run(&mut st, 0, &["set", "cfg", "v3", "ifeq", "v2", "get", "keepttl"]), bulk("v2"), "GET answers the old value");
        assert_eq!(run(&mut st, 0, &["pttl", "cfg"]), Reply::Int(5000));
        assert_eq!(run(&mut st, 0, &["set", "cfg", "v4", "ifeq", "nope", "get"]), bulk("v3"), "GET answers even when not set");
        assert_eq!(run(&mut st, 0, &["get", "cfg"]), bulk("v3"));
        run(&mut st, 0, &["rpush", "list", "a"]);
        assert_eq!(
            run(&mut st, 0, &["set", "list", "x", "ifeq", "a"]),
            err("WRONGTYPE Operation against a key holding the wrong kind of value")
        );
        for bad in [
            &["set", "cfg", "x", "ifeq", "v3", "nx"][..],
            &["set", "cfg", "x", "xx", "ifeq", "v3"],
            &["set", "cfg", "x", "ifeq"],
            &["set", "cfg", "x", "ifeq", "a", "ifeq", "b"],
        ] {
            assert_eq!(run(&mut st, 0, bad), err("ERR syntax error"), "{bad:?}");
        }
        assert_eq!(run(&mut st, 0, &["get", "cfg"]), bulk("v3"));
    }

    fn texts() -> Store {
        let mut store = Store::new();
        run(&mut store, 0, &["set", "k1", "ohmytext"]);
        run(&mut store, 0, &["set", "k2", "mynewtext"]);
        store
    }

    fn range(a: (i64, i64), b: (i64, i64), len: Option<i64>) -> Reply {
        let mut item = vec![Reply::Array(vec![Reply::Int(a.0), Reply::Int(a.1)]), Reply::Array(vec![Reply::Int(b.0), Reply::Int(b.1)])];
        item.extend(len.map(Reply::Int));
        Reply::Array(item)
    }

    #[test]
    fn lcs_string_length_and_indexes_as_redis_documents() {
        let mut store = texts();
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "k2"]), bulk("mytext"));
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "k2", "len"]), Reply::Int(6));
        let idx = |matches: Vec<Reply>| Reply::Map(vec![(bulk("matches"), Reply::Array(matches)), (bulk("len"), Reply::Int(6))]);
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "k2", "idx"]), idx(vec![range((4, 7), (5, 8), None), range((2, 3), (0, 1), None)]));
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "k2", "idx", "minmatchlen", "4"]), idx(vec![range((4, 7), (5, 8), None)]));
        assert_eq!(
            run(&mut store, 0, &["lcs", "k1", "k2", "idx", "withmatchlen"]),
            idx(vec![range((4, 7), (5, 8), Some(4)), range((2, 3), (0, 1), Some(2))])
        );
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "missing"]), bulk(""));
    }

    #[test]
    fn lcs_errors() {
        let mut store = texts();
        run(&mut store, 0, &["rpush", "l", "x"]);
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "l"]), err("ERR The specified keys must contain string values"));
        assert_eq!(
            run(&mut store, 0, &["lcs", "k1", "k2", "len", "idx"]),
            err("ERR If you want both the length and indexes, please just use IDX.")
        );
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "k2", "bogus"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "k2", "minmatchlen"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, 0, &["lcs", "k1", "k2", "minmatchlen", "x"]), err(ERR_NOT_INT));
    }
}
