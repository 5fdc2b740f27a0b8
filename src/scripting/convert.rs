//! Conversions between replies and Lua values, exactly as Redis makes them
//! (script_lua.c): what `redis.call` returns to a script, and what a script's return
//! value becomes for the client.
//!
//! Reply → Lua, under the script's protocol (`redis.setresp`, 2 by default):
//! integer → number; bulk → string; null → `false` (RESP2) or `nil` (RESP3); status →
//! `{ok=…}`; error → `{err=…}`; array → table; and under RESP3 map (XREAD's streams
//! too) → `{map={…}}`, set → `{set={…}}`, double → `{double=n}`, boolean → boolean, big number →
//! `{big_number=…}`, verbatim → `{verbatim_string={format=…, string=…}}`. Under RESP2
//! those are their RESP2 forms (flat arrays, strings, integers).
//!
//! Lua → reply: string → bulk; number → integer (truncated); `true` → 1 and `false` →
//! null (RESP2) or booleans (RESP3); a table with `err`, `ok`, `double`, `big_number`,
//! `verbatim_string`, `map` or `set` → that reply; any other table → an array cut at
//! the first nil; anything else → null.

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::protocol::reply::{format_double, format_human_double, Reply};

/// Deepest nesting converted; deeper (a table that contains itself) ends in Redis's error.
pub const DEPTH_MAX: usize = 500;

const ERR_STACK: &str = "ERR reached lua stack limit";

/// A reply as the Lua value `redis.call` returns. Errors become `{err=…}` tables (the
/// caller decides whether to raise them).
pub fn reply_to_lua(lua: &Lua, reply: Reply, resp3: bool) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Status(text) => single_field(lua, "ok", text.as_bytes())?,
        Reply::Error(text) => error_table(lua, &text)?,
        Reply::Int(n) => Value::Number(n as f64),
        Reply::Bulk(bytes) => Value::String(lua.create_string(&bytes)?),
        Reply::Nil | Reply::NilArray | Reply::WouldBlock => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Reply::Array(items) | Reply::Push(items) => array(lua, items, resp3)?,
        Reply::Bulks(bulks) => {
            let table = lua.create_table_with_capacity(bulks.len(), 0)?;
            for (i, item) in bulks.iter().enumerate() {
                table.raw_set(i + 1, lua.create_string(item)?)?;
            }
            Value::Table(table)
        }
        Reply::Set(items) if resp3 => {
            let set = lua.create_table_with_capacity(0, items.len())?;
            for item in items {
                set.raw_set(reply_to_lua(lua, item, resp3)?, true)?;
            }
            wrap(lua, "set", Value::Table(set))?
        }
        Reply::Set(items) => array(lua, items, resp3)?,
        Reply::Map(pairs) if resp3 => {
            let map = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, resp3)?, reply_to_lua(lua, v, resp3)?)?;
            }
            wrap(lua, "map", Value::Table(map))?
        }
        Reply::Keyed(pairs) if resp3 => reply_to_lua(lua, Reply::Map(pairs), resp3)?,
        Reply::Keyed(pairs) => {
            let items = pairs.into_iter().map(|(k, v)| Reply::Array(vec![k, v])).collect();
            array(lua, items, resp3)?
        }
        Reply::Pairs(pairs) if resp3 => {
            let items = pairs.into_iter().map(|(k, v)| Reply::Array(vec![k, v])).collect();
            array(lua, items, resp3)?
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            let flat = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
            array(lua, flat, resp3)?
        }
        Reply::Double(d) if resp3 => wrap(lua, "double", Value::Number(d))?,
        Reply::Double(d) => Value::String(lua.create_string(format_double(d))?),
        Reply::HumanDouble(d) if resp3 => wrap(lua, "double", Value::Number(d))?,
        Reply::HumanDouble(d) => Value::String(lua.create_string(format_human_double(d))?),
        Reply::Bool(b) if resp3 => Value::Boolean(b),
        Reply::Bool(b) => Value::Number(b as i64 as f64),
        Reply::BigNumber(text) if resp3 => single_field(lua, "big_number", &text)?,
        Reply::BigNumber(text) => Value::String(lua.create_string(&text)?),
        Reply::Verbatim(text) if resp3 => {
            let inner = lua.create_table()?;
            inner.raw_set("format", "txt")?;
            inner.raw_set("string", lua.create_string(&text)?)?;
            wrap(lua, "verbatim_string", Value::Table(inner))?
        }
        Reply::Verbatim(text) => Value::String(lua.create_string(&text)?),
    })
}

/// An upper bound on the bytes of Lua heap [`reply_to_lua`] allocates for `reply`
/// (each value's payload plus a generous 256 bytes for its string, table, hash node
/// and wrapper), `None` when it would overflow.
pub fn lua_bytes_bound(reply: &Reply) -> Option<usize> {
    const PER_VALUE: usize = 256;
    let items = |items: &[Reply]| items.iter().try_fold(PER_VALUE, |n, r| n.checked_add(lua_bytes_bound(r)?));
    let pairs = |pairs: &[(Reply, Reply)]| {
        pairs
            .iter()
            .try_fold(PER_VALUE, |n, (k, v)| n.checked_add(lua_bytes_bound(k)?)?.checked_add(lua_bytes_bound(v)?)?.checked_add(PER_VALUE))
    };
    // A set's members and a map's keys become table keys under RESP3: a nil or NaN
    // key makes Lua raise, which without the bound's protected calls would unwind
    // through Rust. Only keys that cannot be either are converted unbounded.
    let plain_key = |k: &Reply| matches!(k, Reply::Bulk(_) | Reply::Status(_) | Reply::Int(_));
    match reply {
        Reply::Status(text) | Reply::Error(text) => text.len().checked_add(PER_VALUE),
        Reply::Bulk(bytes) => bytes.len().checked_add(PER_VALUE),
        Reply::BigNumber(text) | Reply::Verbatim(text) => text.len().checked_add(2 * PER_VALUE),
        Reply::Array(v) | Reply::Push(v) => items(v),
        Reply::Bulks(b) => b.wire_len().checked_add(b.len().checked_add(1)?.checked_mul(PER_VALUE)?),
        Reply::Set(v) => v.iter().all(plain_key).then(|| items(v)).flatten(),
        Reply::Map(p) | Reply::Keyed(p) | Reply::Pairs(p) => p.iter().all(|(k, _)| plain_key(k)).then(|| pairs(p)).flatten(),
        _ => Some(PER_VALUE),
    }
}

fn array(lua: &Lua, items: Vec<Reply>, resp3: bool) -> mlua::Result<Value> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.into_iter().enumerate() {
        table.raw_set(i + 1, reply_to_lua(lua, item, resp3)?)?;
    }
    Ok(Value::Table(table))
}

fn single_field(lua: &Lua, field: &str, text: &[u8]) -> mlua::Result<Value> {
    wrap(lua, field, Value::String(lua.create_string(text)?))
}

fn wrap(lua: &Lua, field: &str, value: Value) -> mlua::Result<Value> {
    let table = lua.create_table_with_capacity(0, 1)?;
    table.raw_set(field, value)?;
    Ok(Value::Table(table))
}

/// The `{err=…}` table for an error reply's text.
pub fn error_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    single_field(lua, "err", normalize_error(text).as_bytes())
}

/// Redis's rule for error texts given to Lua: a leading `-` is dropped, a text without
/// an error code gets `ERR`, trailing newlines go.
pub fn normalize_error(text: &str) -> String {
    let text = text.trim_end_matches(['\r', '\n']);
    match text.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => format!("{code} {msg}"),
            None => format!("ERR {rest}"),
        },
        None => text.to_string(),
    }
}

/// A script's return value as the reply to its caller. `resp3`: the script's own
/// protocol (`redis.setresp`), which decides booleans.
pub fn lua_to_reply(value: &Value, resp3: bool) -> Reply {
    lua_to_reply_at(value, resp3, 0)
}

fn lua_to_reply_at(value: &Value, resp3: bool, depth: usize) -> Reply {
    if depth > DEPTH_MAX {
        return Reply::err(ERR_STACK);
    }
    match value {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(true) if !resp3 => Reply::Int(1),
        Value::Boolean(false) if !resp3 => Reply::Nil,
        Value::Boolean(b) => Reply::Bool(*b),
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(number_to_int(*n)),
        Value::Table(t) => table_to_reply(t, resp3, depth),
        _ => Reply::Nil,
    }
}

/// Lua's (long long) cast: truncation towards zero; out of range saturates.
pub fn number_to_int(n: f64) -> i64 {
    n as i64
}

fn field(t: &Table, name: &str) -> Value {
    t.raw_get(name).unwrap_or(Value::Nil)
}

fn table_to_reply(t: &Table, resp3: bool, depth: usize) -> Reply {
    if let Value::String(err) = field(t, "err") {
        let text = String::from_utf8_lossy(&err.as_bytes()).replace(['\r', '\n'], " ");
        return Reply::error(text.strip_prefix('-').map(str::to_string).unwrap_or(text));
    }
    if let Value::String(ok) = field(t, "ok") {
        return Reply::Status(String::from_utf8_lossy(&ok.as_bytes()).replace(['\r', '\n'], " ").into());
    }
    if let Value::Number(d) = field(t, "double") {
        return Reply::Double(d);
    }
    if let Value::Integer(d) = field(t, "double") {
        return Reply::Double(d as f64);
    }
    if let Value::String(n) = field(t, "big_number") {
        let text = String::from_utf8_lossy(&n.as_bytes()).replace(['\r', '\n'], " ");
        return Reply::BigNumber(Bytes::from(text));
    }
    if let Value::Table(v) = field(t, "verbatim_string") {
        if let (Value::String(_), Value::String(s)) = (field(&v, "format"), field(&v, "string")) {
            return Reply::Verbatim(Bytes::copy_from_slice(&s.as_bytes()));
        }
    }
    if let Value::Table(m) = field(t, "map") {
        let pairs = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| (lua_to_reply_at(&k, resp3, depth + 1), lua_to_reply_at(&v, resp3, depth + 1)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Value::Table(s) = field(t, "set") {
        let items = s.pairs::<Value, Value>().filter_map(Result::ok).map(|(k, _)| lua_to_reply_at(&k, resp3, depth + 1)).collect();
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(lua_to_reply_at(&v, resp3, depth + 1)),
        }
    }
    Reply::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::BulkArray;

    fn eval(lua: &Lua, code: &str) -> Value {
        lua.load(code).eval().unwrap()
    }

    /// Only replies whose table keys cannot be nil or NaN are converted with the
    /// script's memory bound lifted (see `engine::to_lua_within_bound`).
    #[test]
    fn replies_with_keys_that_may_raise_have_no_bound() {
        let bulk = || Reply::bulk(b"m");
        assert!(lua_bytes_bound(&Reply::Set(vec![bulk(), Reply::Int(3)])).is_some());
        assert!(lua_bytes_bound(&Reply::Set(vec![bulk(), Reply::Nil])).is_none());
        assert!(lua_bytes_bound(&Reply::Map(vec![(bulk(), Reply::Nil)])).is_some());
        assert!(lua_bytes_bound(&Reply::Map(vec![(Reply::Nil, bulk())])).is_none());
        assert!(lua_bytes_bound(&Reply::Array(vec![Reply::Set(vec![Reply::Double(f64::NAN)])])).is_none());
        assert!(lua_bytes_bound(&Reply::Array(vec![Reply::Nil, bulk()])).is_some());
    }

    #[test]
    fn lua_values_become_redis_replies() {
        let lua = Lua::new();
        assert_eq!(lua_to_reply(&eval(&lua, "return 100.5"), false), Reply::Int(100));
        assert_eq!(lua_to_reply(&eval(&lua, "return -3.9"), false), Reply::Int(-3));
        assert_eq!(lua_to_reply(&eval(&lua, "return true"), false), Reply::Int(1));
        assert_eq!(lua_to_reply(&eval(&lua, "return false"), false), Reply::Nil);
        assert_eq!(lua_to_reply(&eval(&lua, "return true"), true), Reply::Bool(true));
        assert_eq!(lua_to_reply(&eval(&lua, "return {ok='fine'}"), false), Reply::status("fine"));
        assert_eq!(lua_to_reply(&eval(&lua, "return {err='ERR bad'}"), false), Reply::err("ERR bad"));
        assert_eq!(lua_to_reply(&eval(&lua, "return {double=1.5}"), false), Reply::Double(1.5));
        assert_eq!(
            lua_to_reply(&eval(&lua, "return {1,2,3,'ciao',{1,2}}"), false),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(2),
                Reply::Int(3),
                Reply::bulk(b"ciao"),
                Reply::Array(vec![Reply::Int(1), Reply::Int(2)])
            ])
        );
        // Arrays stop at the first nil.
        assert_eq!(lua_to_reply(&eval(&lua, "return {1,nil,3}"), false), Reply::Array(vec![Reply::Int(1)]));
        assert_eq!(lua_to_reply(&eval(&lua, "return nil"), false), Reply::Nil);
    }

    #[test]
    fn a_table_containing_itself_ends_in_the_stack_error() {
        let lua = Lua::new();
        let mut reply = lua_to_reply(&eval(&lua, "local a = {} a[1] = a return a"), false);
        let mut depth = 0;
        while let Reply::Array(mut items) = reply {
            reply = items.remove(0);
            depth += 1;
        }
        assert_eq!(reply, Reply::err(ERR_STACK));
        assert_eq!(depth, DEPTH_MAX + 1);
    }

    #[test]
    fn replies_become_lua_values_per_protocol() {
        let lua = Lua::new();
        let check = |reply: Reply, resp3: bool, code: &str| {
            let v = reply_to_lua(&lua, reply, resp3).unwrap();
            let f: mlua::Function = lua.load(code).eval().unwrap();
            assert!(f.call::<bool>(v).unwrap(), "{code}");
        };
        check(Reply::Nil, false, "return function(v) return v == false end");
        check(Reply::Nil, true, "return function(v) return v == nil end");
        check(Reply::ok(), false, "return function(v) return v.ok == 'OK' end");
        check(Reply::err("ERR x y"), false, "return function(v) return v.err == 'ERR x y' end");
        check(Reply::Int(5), false, "return function(v) return v == 5 end");
        let map = Reply::Map(vec![(Reply::bulk(b"f"), Reply::bulk(b"v"))]);
        check(map.clone(), false, "return function(v) return v[1] == 'f' and v[2] == 'v' end");
        check(map, true, "return function(v) return v.map.f == 'v' end");
        check(Reply::Double(3.5), false, "return function(v) return v == '3.5' end");
        check(Reply::Double(3.5), true, "return function(v) return v.double == 3.5 end");
        check(Reply::Bool(true), false, "return function(v) return v == 1 end");
        let bulks: BulkArray = [&b"a"[..], b"", b"ccc"].into_iter().collect();
        let same = "return function(v) return #v == 3 and v[1] == 'a' and v[2] == '' and v[3] == 'ccc' end";
        check(Reply::Bulks(bulks.clone()), false, same);
        check(Reply::Bulks(bulks), true, same);
    }

    #[test]
    fn error_texts_follow_redis_rules() {
        assert_eq!(normalize_error("-WRONGTYPE bad\r\n"), "WRONGTYPE bad");
        assert_eq!(normalize_error("-oops"), "ERR oops");
        assert_eq!(normalize_error("ERR plain"), "ERR plain");
    }
}
