//! List commands: pushes and pops at both ends, ranges, indexes, searches, moves
//! between lists, and the blocking pops and moves.
//!
//! A blocking command here only decides: if one of its keys has data it pops (or
//! moves) now, exactly as its non-blocking twin; if none has, it replies
//! [`Reply::WouldBlock`] and changes nothing. Waiting, waking and timing out belong
//! to the connection layer, which re-runs the same command when a key it waits on
//! is named in `ready_keys` — so every push here calls `ctx.signal_ready`.
//!
//! Lists are never empty: a list whose last element goes is deleted with a `del`
//! event, as Redis does.

use bytes::Bytes;

use super::flags::*;
use super::*;
use crate::protocol::reply::{BulkArray, Reply, OK};
use crate::store::table::Key;
use crate::store::value::{ListValue, Value};

const G: &str = "list";

pub static COMMANDS: &[CommandSpec] = &[
    spec("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Prepends one or more elements to a list. Creates the key if it doesn't exist.", Handler::Write(lpush)),
    spec("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Appends one or more elements to a list. Creates the key if it doesn't exist.", Handler::Write(rpush)),
    spec("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Prepends one or more elements to a list only when the list exists.", Handler::Write(lpushx)),
    spec("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Appends an element to a list only when the list exists.", Handler::Write(rpushx)),
    spec("lpop", -2, WRITE | FAST, (1, 1, 1), G, "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", Handler::Write(lpop)),
    spec("rpop", -2, WRITE | FAST, (1, 1, 1), G, "Returns and removes the last elements of the list. Deletes the list if the last element was popped.", Handler::Write(rpop)),
    spec("llen", 2, READONLY | FAST, (1, 1, 1), G, "Returns the length of a list.", Handler::Read(llen)),
    spec("lrange", 4, READONLY, (1, 1, 1), G, "Returns a range of elements from a list.", Handler::Read(lrange)),
    spec("lindex", 3, READONLY, (1, 1, 1), G, "Returns an element from a list by its index.", Handler::Read(lindex)),
    spec("lset", 4, WRITE | DENYOOM, (1, 1, 1), G, "Sets the value of an element in a list by its index.", Handler::Write(lset)),
    spec("lrem", 4, WRITE, (1, 1, 1), G, "Removes elements from a list. Deletes the list if the last element was removed.", Handler::Write(lrem)),
    spec("ltrim", 4, WRITE, (1, 1, 1), G, "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", Handler::Write(ltrim)),
    spec("linsert", 5, WRITE | DENYOOM, (1, 1, 1), G, "Inserts an element before or after another element in a list.", Handler::Write(linsert)),
    spec("lpos", -3, READONLY, (1, 1, 1), G, "Returns the index of matching elements in a list.", Handler::Read(lpos)),
    spec("lmove", 5, WRITE | DENYOOM, (1, 2, 1), G, "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", Handler::Write(lmove)),
    spec("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), G, "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", Handler::Write(rpoplpush)),
    spec("blpop", -3, WRITE | BLOCKING, (1, -2, 1), G, "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", Handler::Write(blpop)),
    spec("brpop", -3, WRITE | BLOCKING, (1, -2, 1), G, "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", Handler::Write(brpop)),
    spec("blmove", 6, WRITE | DENYOOM | BLOCKING, (1, 2, 1), G, "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", Handler::Write(blmove)),
    spec("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, (1, 2, 1), G, "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", Handler::Write(brpoplpush)),
    spec("lmpop", -4, WRITE | MOVABLE_KEYS, (0, 0, 0), G, "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", Handler::Write(lmpop)).movable(|args| keys_after_numkeys(args, 1)),
    spec("blmpop", -5, WRITE | BLOCKING | MOVABLE_KEYS | TIMEOUT_FIRST, (0, 0, 0), G, "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", Handler::Write(blmpop)).movable(|args| keys_after_numkeys(args, 2)),
];

const ERR_RANK_ZERO: &str =
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
const ERR_RANK_RANGE: &str = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
const ERR_COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
const ERR_MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
const ERR_NUMKEYS: &str = "ERR numkeys should be greater than 0";
const ERR_COUNT_POSITIVE: &str = "ERR count should be greater than 0";

/// One end of a list: LEFT is the head (index 0), RIGHT the tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    /// LEFT or RIGHT, case-insensitively, as LMOVE/BLMOVE take them.
    fn parse(arg: &[u8]) -> Result<End, Reply> {
        match () {
            _ if is(arg, "left") => Ok(End::Left),
            _ if is(arg, "right") => Ok(End::Right),
            _ => Err(Reply::err(ERR_SYNTAX)),
        }
    }

    /// True for the head, as [`ListValue`]'s pushes and pops take it.
    fn front(self) -> bool {
        self == End::Left
    }

    fn pop_event(self) -> &'static str {
        match self {
            End::Left => "lpop",
            End::Right => "rpop",
        }
    }

    fn push_event(self) -> &'static str {
        match self {
            End::Left => "lpush",
            End::Right => "rpush",
        }
    }
}

// --- shared helpers ---

fn new_list() -> Value {
    Value::List(ListValue::default())
}

/// The list at `key` for a reader: `None` if absent, WRONGTYPE if not a list.
fn read_list<'a>(ctx: &mut ReadCtx<'a>, key: &[u8]) -> Result<Option<&'a ListValue>, Reply> {
    ctx.get(key).map(Value::as_list).transpose()
}

/// The list at `key` for a writer: `None` if absent, WRONGTYPE if not a list.
fn write_list<'c>(ctx: &'c mut WriteCtx<'_>, key: &[u8]) -> Result<Option<&'c mut ListValue>, Reply> {
    ctx.get_mut(key).map(Value::as_list_mut).transpose()
}

/// Whether `key` holds a non-empty list (WRONGTYPE if it holds something else).
fn has_elements(ctx: &mut WriteCtx, key: &[u8]) -> Result<bool, Reply> {
    match ctx.get(key) {
        None => Ok(false),
        Some(value) => Ok(!value.as_list()?.is_empty()),
    }
}

/// An index into a list of `len` elements, negative counting from the tail.
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    // index < 0 and len >= 0: the sum cannot overflow.
    let index = if index < 0 { index + len } else { index };
    if (0..len).contains(&index) {
        usize::try_from(index).ok()
    } else {
        None
    }
}

/// The inclusive range `start..=end` of a list of `len` elements after Redis's
/// normalisation (negative from the tail, clamped to the list), or `None` if empty.
fn resolve_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).ok()?;
    // Both sums add a negative index to a non-negative length: no overflow.
    let start = if start < 0 { (start + len).max(0) } else { start };
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    let end = end.min(len - 1);
    Some((usize::try_from(start).ok()?, usize::try_from(end).ok()?))
}

fn bulk_of(element: Key) -> Reply {
    match element {
        Key::Heap(bytes) => Reply::Bulk(Bytes::from(bytes)),
        Key::Inline { .. } => Reply::Bulk(Bytes::copy_from_slice(&element)),
    }
}

/// Pops up to `count` elements from `end` of the list at `key` (which must hold a
/// list), recording the pop event and deleting the key if it empties.
fn pop_elements(ctx: &mut WriteCtx, key: &[u8], end: End, count: usize) -> Result<Vec<Key>, Reply> {
    let Some(list) = write_list(ctx, key)? else {
        return Ok(Vec::new());
    };
    let popped = list.pop(end.front(), count);
    if !popped.is_empty() {
        ctx.notify(b'l', end.pop_event(), key);
        ctx.remove_if_empty(key);
    }
    Ok(popped)
}

/// Pushes `elements` one by one at `end` of the list at `key`, creating it unless
/// `only_existing`; replies with the new length (0 when nothing was pushed).
fn push_command(ctx: &mut WriteCtx, args: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let key = &args[1];
    if only_existing && ctx.get(key).map(Value::as_list).transpose()?.is_none() {
        return Ok(Reply::Int(0));
    }
    let list = ctx.get_checked_or_insert(key, |v| v.as_list().map(drop), new_list)?.as_list_mut()?;
    list.push(end.front(), args[2..].iter().map(|e| &e[..]));
    let len = list.len();
    ctx.notify(b'l', end.push_event(), key);
    ctx.signal_ready(key);
    Ok(Reply::Int(len as i64))
}

/// Pops from `from` of `source` and pushes at `to` of `destination`; replies with
/// the element, or nil when `source` is absent. Both keys are type-checked before
/// anything changes. Events follow Redis 7.2's order: the push on `destination`,
/// then the pop (and `del`) on `source`. With `source == destination` this rotates.
fn move_element(ctx: &mut WriteCtx, source: &[u8], destination: &[u8], from: End, to: End) -> CmdResult {
    if !has_elements(ctx, source)? {
        return Ok(Reply::Nil);
    }
    ctx.get(destination).map(Value::as_list).transpose()?;
    let Some(element) = write_list(ctx, source)?.and_then(|list| list.pop_one(from.front())) else {
        return Ok(Reply::Nil);
    };
    let reply = Reply::bulk(&element);
    // The source key stays in place (even if now empty) until the push is done, so a
    // rotation of a one-element list pushes back into the same list.
    let list = ctx.get_or_insert(destination, new_list).as_list_mut()?;
    list.push_key(to.front(), element);
    ctx.notify(b'l', to.push_event(), destination);
    ctx.signal_ready(destination);
    ctx.notify(b'l', from.pop_event(), source);
    ctx.remove_if_empty(source);
    Ok(reply)
}

// --- pushes and pops ---

fn lpush(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    push_command(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    push_command(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    push_command(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    push_command(ctx, args, End::Right, true)
}

/// LPOP/RPOP key [count]: without a count a bulk (nil if absent); with one an
/// array (the null array if absent, empty for a count of 0).
fn pop_command(ctx: &mut WriteCtx, args: &[Bytes], end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(wrong_args(end.pop_event()));
    }
    let count = args.get(2).map(|arg| non_negative(arg, ERR_NOT_POSITIVE)).transpose()?;
    let key = &args[1];
    if !has_elements(ctx, key)? {
        return Ok(if count.is_some() { Reply::NilArray } else { Reply::Nil });
    }
    match count {
        None => Ok(pop_elements(ctx, key, end, 1)?.into_iter().next().map_or(Reply::Nil, bulk_of)),
        Some(0) => Ok(Reply::Array(Vec::new())),
        Some(n) => Ok(Reply::Array(pop_elements(ctx, key, end, n)?.into_iter().map(bulk_of).collect())),
    }
}

fn lpop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    pop_command(ctx, args, End::Left)
}

fn rpop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    pop_command(ctx, args, End::Right)
}

// --- reads ---

fn llen(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read_list(ctx, &args[1])?.map_or(0, |list| list.len() as i64)))
}

fn lrange(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int_arg(&args[2])?, int_arg(&args[3])?);
    let Some(list) = read_list(ctx, &args[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let Some((first, last)) = resolve_range(start, end, list.len()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let bytes = list.range(first, last).map(<[u8]>::len).sum();
    let mut bulks = BulkArray::with_capacity(last + 1 - first, bytes);
    for item in list.range(first, last) {
        bulks.push(item);
    }
    Ok(Reply::Bulks(bulks))
}

fn lindex(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    // Redis looks the key up before parsing the index: an absent key answers nil.
    let Some(list) = read_list(ctx, &args[1])? else {
        return Ok(Reply::Nil);
    };
    let index = int_arg(&args[2])?;
    Ok(resolve_index(index, list.len()).and_then(|i| list.get(i)).map_or(Reply::Nil, Reply::bulk))
}

/// LPOS's options: which match to start from, how many to report, how far to look.
struct LposOptions {
    /// 1-based match to start from; negative searches from the tail.
    rank: i64,
    /// `None` without COUNT (reply one index); `Some(0)` = every match.
    count: Option<usize>,
    /// Elements to compare at most; 0 = the whole list.
    maxlen: usize,
}

fn parse_lpos_options(args: &[Bytes]) -> Result<LposOptions, Reply> {
    let mut options = LposOptions { rank: 1, count: None, maxlen: 0 };
    let mut rest = args.iter();
    while let Some(option) = rest.next() {
        let value = rest.next().ok_or(Reply::err(ERR_SYNTAX))?;
        match () {
            _ if is(option, "rank") => {
                let rank = int_arg(value)?;
                if rank == i64::MIN {
                    return Err(Reply::err(ERR_RANK_RANGE));
                }
                if rank == 0 {
                    return Err(Reply::err(ERR_RANK_ZERO));
                }
                options.rank = rank;
            }
            _ if is(option, "count") => options.count = Some(non_negative(value, ERR_COUNT_NEGATIVE)?),
            _ if is(option, "maxlen") => options.maxlen = non_negative(value, ERR_MAXLEN_NEGATIVE)?,
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
    }
    Ok(options)
}

/// LPOS key element [RANK r] [COUNT n] [MAXLEN m]. The work is bounded by MAXLEN
/// (or the list's length), as in Redis.
fn lpos(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let options = parse_lpos_options(&args[3..])?;
    let absent = if options.count.is_some() { Reply::Array(Vec::new()) } else { Reply::Nil };
    let Some(list) = read_list(ctx, &args[1])? else {
        return Ok(absent);
    };
    let element = &args[2][..];
    let len = list.len();
    let scan = if options.maxlen == 0 { len } else { options.maxlen.min(len) };
    let skip = usize::try_from(options.rank.unsigned_abs() - 1).unwrap_or(usize::MAX);
    let wanted = match options.count {
        None => 1,
        Some(0) => usize::MAX,
        Some(n) => n,
    };
    let positions: Vec<usize> = if options.rank > 0 {
        list.iter().take(scan).enumerate().filter(|(_, e)| *e == element).map(|(i, _)| i).skip(skip).take(wanted).collect()
    } else {
        list.iter().rev().take(scan).enumerate().filter(|(_, e)| *e == element).map(|(k, _)| len - 1 - k).skip(skip).take(wanted).collect()
    };
    let mut ints = positions.into_iter().map(|i| Reply::Int(i as i64));
    match options.count {
        Some(_) => Ok(Reply::Array(ints.collect())),
        None => Ok(ints.next().unwrap_or(Reply::Nil)),
    }
}

// --- edits in place ---

fn lset(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(list) = write_list(ctx, key)? else {
        return Err(Reply::err(ERR_NO_KEY));
    };
    let index = int_arg(&args[2])?;
    let at = resolve_index(index, list.len()).ok_or(Reply::err(ERR_INDEX))?;
    list.set(at, &args[3]);
    ctx.notify(b'l', "lset", key);
    Ok(OK)
}

/// LREM key count element: count > 0 removes the first `count` matches from the
/// head, count < 0 the first |count| from the tail, 0 every match.
fn lrem(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let count = int_arg(&args[2])?;
    let (key, element) = (&args[1], &args[3][..]);
    let Some(list) = write_list(ctx, key)? else {
        return Ok(Reply::Int(0));
    };
    let limit = match count {
        0 => usize::MAX,
        n => usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX),
    };
    let total = list.iter().filter(|e| *e == element).count();
    let removing = total.min(limit);
    if removing == 0 {
        return Ok(Reply::Int(0));
    }
    // Removing the last `removing` matches = keeping the first `total - removing`.
    let mut keep_first = if count < 0 { total - removing } else { 0 };
    let mut left = removing;
    list.retain(|e| {
        if e != element || left == 0 {
            return true;
        }
        if keep_first > 0 {
            keep_first -= 1;
            return true;
        }
        left -= 1;
        false
    });
    ctx.notify(b'l', "lrem", key);
    ctx.remove_if_empty(key);
    Ok(Reply::Int(removing as i64))
}

fn ltrim(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int_arg(&args[2])?, int_arg(&args[3])?);
    let key = &args[1];
    let Some(list) = write_list(ctx, key)? else {
        return Ok(OK);
    };
    match resolve_range(start, end, list.len()) {
        None => list.clear(),
        Some((first, last)) => list.keep_range(first, last),
    }
    // Redis records `ltrim` even when nothing was trimmed.
    ctx.notify(b'l', "ltrim", key);
    ctx.remove_if_empty(key);
    Ok(OK)
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the pivot,
/// 0 without the key.
fn linsert(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let after = match &args[2] {
        arg if is(arg, "after") => true,
        arg if is(arg, "before") => false,
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    let (key, pivot) = (&args[1], &args[3][..]);
    let Some(list) = write_list(ctx, key)? else {
        return Ok(Reply::Int(0));
    };
    let Some(at) = list.iter().position(|e| e == pivot) else {
        return Ok(Reply::Int(-1));
    };
    list.insert(if after { at + 1 } else { at }, &args[4]);
    let len = list.len();
    ctx.notify(b'l', "linsert", key);
    ctx.signal_ready(key);
    Ok(Reply::Int(len as i64))
}

// --- moves ---

fn lmove(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (from, to) = (End::parse(&args[3])?, End::parse(&args[4])?);
    move_element(ctx, &args[1], &args[2], from, to)
}

fn rpoplpush(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    move_element(ctx, &args[1], &args[2], End::Right, End::Left)
}

// --- blocking ---

/// BLPOP/BRPOP key [key …] timeout: pops from the first key holding elements and
/// replies [key, element]; WRONGTYPE if a non-list comes before such a key.
fn blocking_pop(ctx: &mut WriteCtx, args: &[Bytes], end: End) -> CmdResult {
    let (timeout, keys) = args[1..].split_last().ok_or_else(|| wrong_args(end.pop_event()))?;
    timeout_arg(timeout)?;
    for key in keys {
        if !has_elements(ctx, key)? {
            continue;
        }
        let Some(element) = pop_elements(ctx, key, end, 1)?.into_iter().next() else {
            continue;
        };
        return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), bulk_of(element)]));
    }
    Ok(Reply::WouldBlock)
}

fn blpop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, args, End::Left)
}

fn brpop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    blocking_pop(ctx, args, End::Right)
}

/// A move that waits for `source` to have elements. The destination's type is only
/// checked once there is something to move, as in Redis.
fn blocking_move(ctx: &mut WriteCtx, args: &[Bytes], from: End, to: End) -> CmdResult {
    if !has_elements(ctx, &args[1])? {
        return Ok(Reply::WouldBlock);
    }
    move_element(ctx, &args[1], &args[2], from, to)
}

fn blmove(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (from, to) = (End::parse(&args[3])?, End::parse(&args[4])?);
    timeout_arg(&args[5])?;
    blocking_move(ctx, args, from, to)
}

fn brpoplpush(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    timeout_arg(&args[3])?;
    blocking_move(ctx, args, End::Right, End::Left)
}

// --- pops over several keys ---

/// LMPOP/BLMPOP's `numkeys key … LEFT|RIGHT [COUNT n]` from `at`: keys, end, count.
fn parse_mpop(args: &[Bytes], at: usize) -> Result<(&[Bytes], End, usize), Reply> {
    let n = parse_i64(&args[at]).filter(|n| *n > 0).ok_or(Reply::err(ERR_NUMKEYS))?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let where_at = at.checked_add(n).and_then(|w| w.checked_add(1)).filter(|&w| w < args.len()).ok_or(Reply::err(ERR_SYNTAX))?;
    let end = End::parse(&args[where_at])?;
    let mut count = None;
    let mut j = where_at + 1;
    while let Some(opt) = args.get(j) {
        match args.get(j + 1) {
            Some(n) if count.is_none() && is(opt, "count") => {
                let n = parse_i64(n).filter(|n| *n > 0).ok_or(Reply::err(ERR_COUNT_POSITIVE))?;
                count = Some(usize::try_from(n).unwrap_or(usize::MAX));
                j += 2;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
    }
    Ok((&args[at + 1..where_at], end, count.unwrap_or(1)))
}

/// `[key, [element, …]]` from the first of `keys` holding elements (WRONGTYPE if a
/// key before it is not a list), or `None`.
fn mpop(ctx: &mut WriteCtx, keys: &[Bytes], end: End, count: usize) -> Result<Option<Reply>, Reply> {
    for key in keys {
        if !has_elements(ctx, key)? {
            continue;
        }
        let popped = pop_elements(ctx, key, end, count)?;
        return Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(popped.into_iter().map(bulk_of).collect())])));
    }
    Ok(None)
}

fn lmpop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (keys, end, count) = parse_mpop(args, 1)?;
    Ok(mpop(ctx, keys, end, count)?.unwrap_or(Reply::NilArray))
}

/// BLMPOP timeout numkeys key … LEFT|RIGHT [COUNT n]: the timeout is checked after
/// the rest, as in Redis.
fn blmpop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (keys, end, count) = parse_mpop(args, 2)?;
    timeout_arg(&args[1])?;
    Ok(mpop(ctx, keys, end, count)?.unwrap_or(Reply::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::value::WRONGTYPE;
    use crate::store::{Applied, Store};

    const T: u64 = 1_000;

    fn arr(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk(s)).collect())
    }

    fn ints(items: &[i64]) -> Reply {
        Reply::Array(items.iter().map(|&n| Reply::Int(n)).collect())
    }

    fn events(applied: &Applied) -> Vec<(char, &'static str, String)> {
        applied.events.iter().map(|e| (e.class as char, e.event, String::from_utf8_lossy(&e.key).into_owned())).collect()
    }

    fn ready(applied: &Applied) -> Vec<String> {
        applied.ready_keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect()
    }

    /// A store holding list `key` = `items` (head first).
    fn with_list(key: &str, items: &[&str]) -> Store {
        let mut store = Store::new();
        let mut cmd = vec!["rpush", key];
        cmd.extend_from_slice(items);
        run(&mut store, T, &cmd);
        store
    }

    fn contents(store: &mut Store, key: &str) -> Reply {
        run(store, T, &["lrange", key, "0", "-1"])
    }

    fn exists(store: &Store, key: &str) -> bool {
        store.db.item(key.as_bytes()).is_some()
    }

    fn with_string(key: &str) -> Store {
        let mut store = Store::new();
        run(&mut store, T, &["set", key, "v"]);
        store
    }

    #[test]
    fn a_list_or_zset_put_in_place_whole_signals_ready() {
        let mut store = with_list("src", &["a"]);
        let applied = run_applied(&mut store, T, &["rename", "src", "dst"]);
        assert_eq!(ready(&applied), vec!["dst".to_string()]);
        let applied = run_applied(&mut store, T, &["copy", "dst", "copied"]);
        assert_eq!(ready(&applied), vec!["copied".to_string()]);
        let applied = run_applied(&mut store, T, &["sort", "dst", "alpha", "store", "sorted"]);
        assert_eq!(ready(&applied), vec!["sorted".to_string()]);
        run(&mut store, T, &["zadd", "z", "1", "m"]);
        let applied = run_applied(&mut store, T, &["zunionstore", "zu", "1", "z"]);
        assert_eq!(ready(&applied), vec!["zu".to_string()]);
        // A string put in place serves no blocked pop.
        run(&mut store, T, &["set", "s", "v"]);
        let applied = run_applied(&mut store, T, &["rename", "s", "s2"]);
        assert!(applied.ready_keys.is_empty());
    }

    // --- pushes ---

    #[test]
    fn lpush_prepends_each_element_in_turn_and_replies_length() {
        let mut store = Store::new();
        assert_eq!(run(&mut store, T, &["lpush", "l", "a", "b", "c"]), Reply::Int(3));
        assert_eq!(contents(&mut store, "l"), arr(&["c", "b", "a"]));
        assert_eq!(run(&mut store, T, &["rpush", "l", "x", "y"]), Reply::Int(5));
        assert_eq!(contents(&mut store, "l"), arr(&["c", "b", "a", "x", "y"]));
    }

    #[test]
    fn push_records_one_event_and_signals_ready() {
        let mut store = Store::new();
        let applied = run_applied(&mut store, T, &["lpush", "l", "a", "b"]);
        assert_eq!(events(&applied), vec![('l', "lpush", "l".into())]);
        assert_eq!(ready(&applied), vec!["l".to_string()]);
        let applied = run_applied(&mut store, T, &["rpush", "l", "c"]);
        assert_eq!(events(&applied), vec![('l', "rpush", "l".into())]);
        assert_eq!(ready(&applied), vec!["l".to_string()]);
    }

    #[test]
    fn pushx_only_pushes_onto_an_existing_list() {
        let mut store = Store::new();
        let applied = run_applied(&mut store, T, &["lpushx", "l", "a"]);
        assert_eq!(applied.replies[0], Reply::Int(0));
        assert!(applied.events.is_empty() && applied.ready_keys.is_empty());
        assert!(!exists(&store, "l"));
        assert_eq!(run(&mut store, T, &["rpushx", "l", "a"]), Reply::Int(0));
        run(&mut store, T, &["rpush", "l", "m"]);
        assert_eq!(run(&mut store, T, &["lpushx", "l", "a", "b"]), Reply::Int(3));
        let applied = run_applied(&mut store, T, &["rpushx", "l", "z"]);
        assert_eq!(applied.replies[0], Reply::Int(4));
        assert_eq!(ready(&applied), vec!["l".to_string()]);
        assert_eq!(contents(&mut store, "l"), arr(&["b", "a", "m", "z"]));
    }

    #[test]
    fn every_command_refuses_a_non_list() {
        let mut store = with_string("s");
        let wrong = err(WRONGTYPE);
        for cmd in [
            &["lpush", "s", "a"][..],
            &["rpush", "s", "a"],
            &["lpushx", "s", "a"],
            &["rpushx", "s", "a"],
            &["lpop", "s"],
            &["rpop", "s", "2"],
            &["llen", "s"],
            &["lrange", "s", "0", "-1"],
            &["lindex", "s", "0"],
            &["lset", "s", "0", "x"],
            &["lrem", "s", "0", "x"],
            &["ltrim", "s", "0", "1"],
            &["linsert", "s", "before", "a", "b"],
            &["lpos", "s", "a"],
            &["lmove", "s", "d", "left", "right"],
            &["rpoplpush", "s", "d"],
            &["blpop", "s", "0"],
            &["brpop", "s", "0"],
            &["blmove", "s", "d", "left", "left", "0"],
            &["brpoplpush", "s", "d", "0"],
        ] {
            assert_eq!(run(&mut store, T, cmd), wrong, "{cmd:?}");
        }
        assert_eq!(run(&mut store, T, &["get", "s"]), bulk("v"));
    }

    // --- pops ---

    #[test]
    fn pop_without_count_replies_bulk_or_nil() {
        let mut store = with_list("l", &["a", "b", "c"]);
        assert_eq!(run(&mut store, T, &["lpop", "l"]), bulk("a"));
        assert_eq!(run(&mut store, T, &["rpop", "l"]), bulk("c"));
        assert_eq!(run(&mut store, T, &["lpop", "missing"]), Reply::Nil);
        assert_eq!(run(&mut store, T, &["rpop", "missing"]), Reply::Nil);
    }

    #[test]
    fn pop_with_count_replies_array_in_pop_order() {
        let mut store = with_list("l", &["a", "b", "c", "d", "e"]);
        assert_eq!(run(&mut store, T, &["lpop", "l", "2"]), arr(&["a", "b"]));
        assert_eq!(run(&mut store, T, &["rpop", "l", "2"]), arr(&["e", "d"]));
        assert_eq!(run(&mut store, T, &["rpop", "l", "10"]), arr(&["c"]));
        assert!(!exists(&store, "l"));
    }

    #[test]
    fn pop_with_count_on_missing_key_is_null_array_and_zero_count_is_empty_array() {
        let mut store = with_list("l", &["a"]);
        assert_eq!(run(&mut store, T, &["lpop", "missing", "1"]), Reply::NilArray);
        assert_eq!(run(&mut store, T, &["rpop", "missing", "0"]), Reply::NilArray);
        let applied = run_applied(&mut store, T, &["lpop", "l", "0"]);
        assert_eq!(applied.replies[0], Reply::Array(vec![]));
        assert!(applied.events.is_empty());
        assert_eq!(contents(&mut store, "l"), arr(&["a"]));
    }

    #[test]
    fn pop_count_must_be_a_non_negative_integer() {
        let mut store = with_list("l", &["a"]);
        let positive = err("ERR value is out of range, must be positive");
        assert_eq!(run(&mut store, T, &["lpop", "l", "-1"]), positive);
        assert_eq!(run(&mut store, T, &["rpop", "l", "abc"]), positive);
        // The count is checked before the key: a bad count on a missing key errs too.
        assert_eq!(run(&mut store, T, &["lpop", "missing", "-1"]), positive);
        assert_eq!(run(&mut store, T, &["lpop", "l", "1", "2"]), err("ERR wrong number of arguments for 'lpop' command"));
        assert_eq!(run(&mut store, T, &["RPOP", "l", "1", "2"]), err("ERR wrong number of arguments for 'rpop' command"));
    }

    #[test]
    fn popping_the_last_element_deletes_the_key_with_events() {
        let mut store = with_list("l", &["a", "b"]);
        let applied = run_applied(&mut store, T, &["lpop", "l"]);
        assert_eq!(events(&applied), vec![('l', "lpop", "l".into())]);
        let applied = run_applied(&mut store, T, &["rpop", "l", "5"]);
        assert_eq!(applied.replies[0], arr(&["b"]));
        assert_eq!(events(&applied), vec![('l', "rpop", "l".into()), ('g', "del", "l".into())]);
        assert!(!exists(&store, "l"));
        assert!(applied.ready_keys.is_empty());
    }

    // --- reads ---

    #[test]
    fn llen_counts_elements_and_zero_for_missing() {
        let mut store = with_list("l", &["a", "b"]);
        assert_eq!(run(&mut store, T, &["llen", "l"]), Reply::Int(2));
        assert_eq!(run(&mut store, T, &["llen", "missing"]), Reply::Int(0));
    }

    #[test]
    fn lrange_handles_negative_and_out_of_range_indexes() {
        let mut store = with_list("l", &["a", "b", "c", "d"]);
        assert_eq!(run(&mut store, T, &["lrange", "l", "1", "2"]), arr(&["b", "c"]));
        assert_eq!(run(&mut store, T, &["lrange", "l", "-2", "-1"]), arr(&["c", "d"]));
        assert_eq!(run(&mut store, T, &["lrange", "l", "-100", "1"]), arr(&["a", "b"]));
        assert_eq!(run(&mut store, T, &["lrange", "l", "2", "100"]), arr(&["c", "d"]));
        assert_eq!(run(&mut store, T, &["lrange", "l", "3", "1"]), arr(&[]));
        assert_eq!(run(&mut store, T, &["lrange", "l", "4", "10"]), arr(&[]));
        assert_eq!(run(&mut store, T, &["lrange", "l", "0", "-5"]), arr(&[]));
        assert_eq!(run(&mut store, T, &["lrange", "l", "-9223372036854775808", "9223372036854775807"]), arr(&["a", "b", "c", "d"]));
        assert_eq!(run(&mut store, T, &["lrange", "missing", "0", "-1"]), arr(&[]));
        assert_eq!(run(&mut store, T, &["lrange", "l", "x", "1"]), err(ERR_NOT_INT));
        assert_eq!(run(&mut store, T, &["lrange", "missing", "0", "1.5"]), err(ERR_NOT_INT));
    }

    #[test]
    fn lindex_reads_positive_and_negative_indexes() {
        let mut store = with_list("l", &["a", "b", "c"]);
        assert_eq!(run(&mut store, T, &["lindex", "l", "0"]), bulk("a"));
        assert_eq!(run(&mut store, T, &["lindex", "l", "-1"]), bulk("c"));
        assert_eq!(run(&mut store, T, &["lindex", "l", "-3"]), bulk("a"));
        assert_eq!(run(&mut store, T, &["lindex", "l", "3"]), Reply::Nil);
        assert_eq!(run(&mut store, T, &["lindex", "l", "-4"]), Reply::Nil);
        assert_eq!(run(&mut store, T, &["lindex", "l", "-9223372036854775808"]), Reply::Nil);
        assert_eq!(run(&mut store, T, &["lindex", "l", "x"]), err(ERR_NOT_INT));
        // The key is looked up first: a missing key answers nil whatever the index.
        assert_eq!(run(&mut store, T, &["lindex", "missing", "x"]), Reply::Nil);
    }

    #[test]
    fn lpos_finds_first_match_or_nil() {
        let mut store = with_list("l", &["a", "b", "c", "1", "2", "3", "c", "c"]);
        assert_eq!(run(&mut store, T, &["lpos", "l", "c"]), Reply::Int(2));
        assert_eq!(run(&mut store, T, &["lpos", "l", "z"]), Reply::Nil);
        assert_eq!(run(&mut store, T, &["lpos", "missing", "c"]), Reply::Nil);
        assert_eq!(run(&mut store, T, &["lpos", "missing", "c", "COUNT", "0"]), ints(&[]));
    }

    #[test]
    fn lpos_rank_count_and_maxlen_follow_redis() {
        let mut store = with_list("l", &["a", "b", "c", "1", "2", "3", "c", "c"]);
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "RANK", "2"]), Reply::Int(6));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "RANK", "-1"]), Reply::Int(7));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "RANK", "-3"]), Reply::Int(2));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "RANK", "4"]), Reply::Nil);
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "COUNT", "2"]), ints(&[2, 6]));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "COUNT", "0"]), ints(&[2, 6, 7]));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "RANK", "-1", "COUNT", "2"]), ints(&[7, 6]));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "rank", "2", "count", "0"]), ints(&[6, 7]));
        assert_eq!(run(&mut store, T, &["lpos", "l", "z", "COUNT", "0"]), ints(&[]));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "COUNT", "0", "MAXLEN", "7"]), ints(&[2, 6]));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "MAXLEN", "2"]), Reply::Nil);
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "RANK", "-1", "COUNT", "0", "MAXLEN", "2"]), ints(&[7, 6]));
        assert_eq!(run(&mut store, T, &["lpos", "l", "c", "RANK", "9223372036854775807"]), Reply::Nil);
    }

    #[test]
    fn lpos_option_errors_match_redis() {
        let mut store = with_list("l", &["a"]);
        assert_eq!(run(&mut store, T, &["lpos", "l", "a", "RANK", "0"]), err(ERR_RANK_ZERO));
        assert_eq!(
            run(&mut store, T, &["lpos", "l", "a", "RANK", "-9223372036854775808"]),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        assert_eq!(run(&mut store, T, &["lpos", "l", "a", "RANK", "x"]), err(ERR_NOT_INT));
        assert_eq!(run(&mut store, T, &["lpos", "l", "a", "COUNT", "-1"]), err("ERR COUNT can't be negative"));
        assert_eq!(run(&mut store, T, &["lpos", "l", "a", "COUNT", "x"]), err("ERR COUNT can't be negative"));
        assert_eq!(run(&mut store, T, &["lpos", "l", "a", "MAXLEN", "-1"]), err("ERR MAXLEN can't be negative"));
        assert_eq!(run(&mut store, T, &["lpos", "l", "a", "COUNT"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["lpos", "l", "a", "FIRST", "1"]), err(ERR_SYNTAX));
        // Options are validated before the key is looked up.
        assert_eq!(run(&mut store, T, &["lpos", "missing", "a", "RANK", "0"]), err(ERR_RANK_ZERO));
    }

    // --- edits ---

    #[test]
    fn lset_replaces_by_index_with_event() {
        let mut store = with_list("l", &["a", "b", "c"]);
        let applied = run_applied(&mut store, T, &["lset", "l", "-1", "z"]);
        assert_eq!(applied.replies[0], OK);
        assert_eq!(events(&applied), vec![('l', "lset", "l".into())]);
        assert!(applied.ready_keys.is_empty());
        assert_eq!(run(&mut store, T, &["lset", "l", "0", "y"]), OK);
        assert_eq!(contents(&mut store, "l"), arr(&["y", "b", "z"]));
    }

    #[test]
    fn lset_errors_match_redis() {
        let mut store = with_list("l", &["a"]);
        assert_eq!(run(&mut store, T, &["lset", "missing", "0", "x"]), err("ERR no such key"));
        assert_eq!(run(&mut store, T, &["lset", "l", "1", "x"]), err("ERR index out of range"));
        assert_eq!(run(&mut store, T, &["lset", "l", "-2", "x"]), err("ERR index out of range"));
        assert_eq!(run(&mut store, T, &["lset", "l", "x", "x"]), err(ERR_NOT_INT));
        assert_eq!(run(&mut store, T, &["lset", "missing", "x", "x"]), err("ERR no such key"));
    }

    #[test]
    fn lrem_removes_from_head_tail_or_all() {
        let items = ["a", "x", "b", "x", "c", "x"];
        let mut store = with_list("l", &items);
        assert_eq!(run(&mut store, T, &["lrem", "l", "2", "x"]), Reply::Int(2));
        assert_eq!(contents(&mut store, "l"), arr(&["a", "b", "c", "x"]));

        let mut store = with_list("l", &items);
        assert_eq!(run(&mut store, T, &["lrem", "l", "-2", "x"]), Reply::Int(2));
        assert_eq!(contents(&mut store, "l"), arr(&["a", "x", "b", "c"]));

        let mut store = with_list("l", &items);
        assert_eq!(run(&mut store, T, &["lrem", "l", "0", "x"]), Reply::Int(3));
        assert_eq!(contents(&mut store, "l"), arr(&["a", "b", "c"]));

        let mut store = with_list("l", &items);
        assert_eq!(run(&mut store, T, &["lrem", "l", "-9223372036854775808", "x"]), Reply::Int(3));
        assert_eq!(run(&mut store, T, &["lrem", "l", "1", "zz"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["lrem", "missing", "1", "x"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["lrem", "l", "x", "x"]), err(ERR_NOT_INT));
    }

    #[test]
    fn lrem_events_and_deletes_emptied_list() {
        let mut store = with_list("l", &["x", "x"]);
        let applied = run_applied(&mut store, T, &["lrem", "l", "1", "nope"]);
        assert!(applied.events.is_empty());
        let applied = run_applied(&mut store, T, &["lrem", "l", "0", "x"]);
        assert_eq!(applied.replies[0], Reply::Int(2));
        assert_eq!(events(&applied), vec![('l', "lrem", "l".into()), ('g', "del", "l".into())]);
        assert!(!exists(&store, "l"));
    }

    #[test]
    fn ltrim_keeps_the_range() {
        let mut store = with_list("l", &["a", "b", "c", "d", "e"]);
        let applied = run_applied(&mut store, T, &["ltrim", "l", "1", "-2"]);
        assert_eq!(applied.replies[0], OK);
        assert_eq!(events(&applied), vec![('l', "ltrim", "l".into())]);
        assert_eq!(contents(&mut store, "l"), arr(&["b", "c", "d"]));
        assert_eq!(run(&mut store, T, &["ltrim", "l", "-100", "100"]), OK);
        assert_eq!(contents(&mut store, "l"), arr(&["b", "c", "d"]));
        assert_eq!(run(&mut store, T, &["ltrim", "l", "0", "0"]), OK);
        assert_eq!(contents(&mut store, "l"), arr(&["b"]));
    }

    #[test]
    fn ltrim_to_an_empty_range_deletes_the_key() {
        let mut store = with_list("l", &["a", "b"]);
        let applied = run_applied(&mut store, T, &["ltrim", "l", "5", "10"]);
        assert_eq!(applied.replies[0], OK);
        assert_eq!(events(&applied), vec![('l', "ltrim", "l".into()), ('g', "del", "l".into())]);
        assert!(!exists(&store, "l"));
        let applied = run_applied(&mut store, T, &["ltrim", "missing", "0", "1"]);
        assert_eq!(applied.replies[0], OK);
        assert!(applied.events.is_empty());
        assert_eq!(run(&mut store, T, &["ltrim", "missing", "0", "x"]), err(ERR_NOT_INT));
    }

    #[test]
    fn linsert_before_and_after_the_first_pivot() {
        let mut store = with_list("l", &["a", "p", "b", "p"]);
        let applied = run_applied(&mut store, T, &["linsert", "l", "BEFORE", "p", "x"]);
        assert_eq!(applied.replies[0], Reply::Int(5));
        assert_eq!(events(&applied), vec![('l', "linsert", "l".into())]);
        assert_eq!(ready(&applied), vec!["l".to_string()]);
        assert_eq!(run(&mut store, T, &["linsert", "l", "after", "p", "y"]), Reply::Int(6));
        assert_eq!(contents(&mut store, "l"), arr(&["a", "x", "p", "y", "b", "p"]));
    }

    #[test]
    fn linsert_answers_minus_one_without_pivot_and_zero_without_key() {
        let mut store = with_list("l", &["a"]);
        let applied = run_applied(&mut store, T, &["linsert", "l", "before", "zz", "x"]);
        assert_eq!(applied.replies[0], Reply::Int(-1));
        assert!(applied.events.is_empty());
        assert_eq!(run(&mut store, T, &["linsert", "missing", "before", "a", "x"]), Reply::Int(0));
        assert!(!exists(&store, "missing"));
        assert_eq!(run(&mut store, T, &["linsert", "l", "middle", "a", "x"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["linsert", "missing", "middle", "a", "x"]), err(ERR_SYNTAX));
    }

    // --- moves ---

    #[test]
    fn lmove_moves_between_all_ends() {
        let mut store = with_list("src", &["a", "b", "c"]);
        assert_eq!(run(&mut store, T, &["lmove", "src", "dst", "LEFT", "RIGHT"]), bulk("a"));
        assert_eq!(run(&mut store, T, &["lmove", "src", "dst", "right", "left"]), bulk("c"));
        assert_eq!(run(&mut store, T, &["lmove", "src", "dst", "left", "left"]), bulk("b"));
        assert_eq!(contents(&mut store, "dst"), arr(&["b", "c", "a"]));
        assert!(!exists(&store, "src"));
        assert_eq!(run(&mut store, T, &["lmove", "dst", "src", "right", "right"]), bulk("a"));
        assert_eq!(contents(&mut store, "src"), arr(&["a"]));
    }

    #[test]
    fn lmove_events_push_then_pop_then_del_and_signals_destination() {
        let mut store = with_list("src", &["a"]);
        let applied = run_applied(&mut store, T, &["lmove", "src", "dst", "left", "right"]);
        assert_eq!(applied.replies[0], bulk("a"));
        // Redis 7.2's lmoveGenericCommand notifies the push before the pop.
        assert_eq!(events(&applied), vec![('l', "rpush", "dst".into()), ('l', "lpop", "src".into()), ('g', "del", "src".into())]);
        assert_eq!(ready(&applied), vec!["dst".to_string()]);
    }

    #[test]
    fn lmove_on_the_same_key_rotates() {
        let mut store = with_list("l", &["a", "b", "c"]);
        assert_eq!(run(&mut store, T, &["lmove", "l", "l", "left", "right"]), bulk("a"));
        assert_eq!(contents(&mut store, "l"), arr(&["b", "c", "a"]));
        assert_eq!(run(&mut store, T, &["rpoplpush", "l", "l"]), bulk("a"));
        assert_eq!(contents(&mut store, "l"), arr(&["a", "b", "c"]));
        let mut store = with_list("one", &["x"]);
        let applied = run_applied(&mut store, T, &["lmove", "one", "one", "right", "left"]);
        assert_eq!(applied.replies[0], bulk("x"));
        assert_eq!(events(&applied), vec![('l', "lpush", "one".into()), ('l', "rpop", "one".into())]);
        assert_eq!(contents(&mut store, "one"), arr(&["x"]));
    }

    #[test]
    fn lmove_missing_source_is_nil_and_changes_nothing() {
        let mut store = with_string("dst");
        let applied = run_applied(&mut store, T, &["lmove", "missing", "dst", "left", "left"]);
        assert_eq!(applied.replies[0], Reply::Nil);
        assert!(applied.events.is_empty() && applied.ready_keys.is_empty());
        assert_eq!(run(&mut store, T, &["rpoplpush", "missing", "x"]), Reply::Nil);
        assert!(!exists(&store, "x"));
    }

    #[test]
    fn lmove_to_a_non_list_errs_without_popping() {
        let mut store = with_list("src", &["a"]);
        run(&mut store, T, &["set", "dst", "v"]);
        assert_eq!(run(&mut store, T, &["lmove", "src", "dst", "left", "left"]), err(WRONGTYPE));
        assert_eq!(run(&mut store, T, &["rpoplpush", "src", "dst"]), err(WRONGTYPE));
        assert_eq!(contents(&mut store, "src"), arr(&["a"]));
        assert_eq!(run(&mut store, T, &["lmove", "src", "dst", "up", "left"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["lmove", "src", "dst", "left", "down"]), err(ERR_SYNTAX));
    }

    #[test]
    fn rpoplpush_moves_tail_to_head() {
        let mut store = with_list("src", &["a", "b"]);
        run(&mut store, T, &["rpush", "dst", "z"]);
        let applied = run_applied(&mut store, T, &["rpoplpush", "src", "dst"]);
        assert_eq!(applied.replies[0], bulk("b"));
        assert_eq!(events(&applied), vec![('l', "lpush", "dst".into()), ('l', "rpop", "src".into())]);
        assert_eq!(contents(&mut store, "dst"), arr(&["b", "z"]));
        assert_eq!(contents(&mut store, "src"), arr(&["a"]));
    }

    // --- blocking ---

    #[test]
    fn blocking_commands_would_block_on_missing_keys_and_change_nothing() {
        let mut store = with_string("dst");
        for cmd in [
            &["blpop", "a", "b", "0"][..],
            &["brpop", "a", "1.5"],
            &["blmove", "a", "dst", "left", "right", "0"],
            &["brpoplpush", "a", "dst", "0"],
        ] {
            let applied = run_applied(&mut store, T, cmd);
            assert_eq!(applied.replies[0], Reply::WouldBlock, "{cmd:?}");
            assert!(applied.events.is_empty() && applied.ready_keys.is_empty(), "{cmd:?}");
        }
        assert_eq!(store.db.len(), 1);
    }

    #[test]
    fn blpop_pops_from_the_first_key_with_data() {
        let mut store = with_list("b", &["1", "2"]);
        run(&mut store, T, &["rpush", "c", "9"]);
        let applied = run_applied(&mut store, T, &["blpop", "a", "b", "c", "0"]);
        assert_eq!(applied.replies[0], arr(&["b", "1"]));
        assert_eq!(events(&applied), vec![('l', "lpop", "b".into())]);
        assert!(applied.ready_keys.is_empty());
        assert_eq!(run(&mut store, T, &["brpop", "a", "b", "c", "0"]), arr(&["b", "2"]));
        assert!(!exists(&store, "b"));
        assert_eq!(run(&mut store, T, &["brpop", "a", "b", "c", "0"]), arr(&["c", "9"]));
        assert_eq!(run(&mut store, T, &["brpop", "a", "b", "c", "0"]), Reply::WouldBlock);
    }

    #[test]
    fn brpop_last_element_records_pop_and_del() {
        let mut store = with_list("l", &["x"]);
        let applied = run_applied(&mut store, T, &["brpop", "l", "0"]);
        assert_eq!(applied.replies[0], arr(&["l", "x"]));
        assert_eq!(events(&applied), vec![('l', "rpop", "l".into()), ('g', "del", "l".into())]);
    }

    #[test]
    fn blpop_stops_at_a_non_list_before_a_key_with_data() {
        let mut store = with_list("l", &["x"]);
        run(&mut store, T, &["set", "s", "v"]);
        assert_eq!(run(&mut store, T, &["blpop", "missing", "s", "l", "0"]), err(WRONGTYPE));
        assert_eq!(run(&mut store, T, &["blpop", "l", "s", "0"]), arr(&["l", "x"]));
    }

    #[test]
    fn blocking_timeout_is_validated_even_when_data_is_present() {
        let mut store = with_list("l", &["x"]);
        let not_float = err("ERR timeout is not a float or out of range");
        let negative = err("ERR timeout is negative");
        assert_eq!(run(&mut store, T, &["blpop", "l", "abc"]), not_float);
        assert_eq!(run(&mut store, T, &["brpop", "l", "-1"]), negative);
        assert_eq!(run(&mut store, T, &["blmove", "l", "d", "left", "left", "x"]), not_float);
        assert_eq!(run(&mut store, T, &["brpoplpush", "l", "d", "-0.5"]), negative);
        assert_eq!(contents(&mut store, "l"), arr(&["x"]));
        // BLMOVE checks its directions before the timeout.
        assert_eq!(run(&mut store, T, &["blmove", "l", "d", "up", "left", "x"]), err(ERR_SYNTAX));
    }

    #[test]
    fn blmove_and_brpoplpush_move_when_source_has_data() {
        let mut store = with_list("src", &["a", "b"]);
        let applied = run_applied(&mut store, T, &["blmove", "src", "dst", "left", "right", "0"]);
        assert_eq!(applied.replies[0], bulk("a"));
        assert_eq!(ready(&applied), vec!["dst".to_string()]);
        assert_eq!(events(&applied), vec![('l', "rpush", "dst".into()), ('l', "lpop", "src".into())]);
        assert_eq!(run(&mut store, T, &["brpoplpush", "src", "dst", "0.1"]), bulk("b"));
        assert_eq!(contents(&mut store, "dst"), arr(&["b", "a"]));
        assert!(!exists(&store, "src"));
    }

    #[test]
    fn blmove_to_a_non_list_errs_only_when_source_has_data() {
        let mut store = with_string("dst");
        assert_eq!(run(&mut store, T, &["blmove", "src", "dst", "left", "left", "0"]), Reply::WouldBlock);
        run(&mut store, T, &["rpush", "src", "a"]);
        assert_eq!(run(&mut store, T, &["blmove", "src", "dst", "left", "left", "0"]), err(WRONGTYPE));
        assert_eq!(contents(&mut store, "src"), arr(&["a"]));
    }

    #[test]
    fn lmove_push_wakes_a_key_another_client_blocks_on() {
        // A BLPOP on "dst" would block; an LMOVE into it names "dst" as ready, and the
        // re-run BLPOP then gets the element.
        let mut store = with_list("src", &["a"]);
        assert_eq!(run(&mut store, T, &["blpop", "dst", "0"]), Reply::WouldBlock);
        let applied = run_applied(&mut store, T, &["rpoplpush", "src", "dst"]);
        assert_eq!(ready(&applied), vec!["dst".to_string()]);
        assert_eq!(run(&mut store, T, &["blpop", "dst", "0"]), arr(&["dst", "a"]));
    }

    // --- table ---

    #[test]
    fn table_matches_redis_arity_flags_and_keys() {
        let find = |name: &str| COMMANDS.iter().find(|c| c.name == name).copied();
        let blpop = find("blpop").unwrap();
        assert_eq!((blpop.arity, blpop.first_key, blpop.last_key, blpop.step), (-3, 1, -2, 1));
        assert!(blpop.has(WRITE) && blpop.has(BLOCKING));
        let blmove = find("blmove").unwrap();
        assert_eq!((blmove.arity, blmove.first_key, blmove.last_key, blmove.step), (6, 1, 2, 1));
        assert!(blmove.has(BLOCKING) && blmove.has(DENYOOM));
        let brpoplpush = find("brpoplpush").unwrap();
        assert_eq!((brpoplpush.arity, brpoplpush.first_key, brpoplpush.last_key), (4, 1, 2));
        assert_eq!(find("lpush").unwrap().arity, -3);
        assert_eq!(find("lpop").unwrap().arity, -2);
        assert_eq!(find("lmove").unwrap().arity, 5);
        assert!(find("lpos").unwrap().has(READONLY));
        let args: Vec<Bytes> = ["blpop", "a", "b", "0"].iter().map(|s| Bytes::from(*s)).collect();
        assert_eq!(blpop.keys(&args), vec![&args[1], &args[2]]);
    }

    #[test]
    fn expired_list_counts_as_missing() {
        let mut store = with_list("l", &["a"]);
        store.db.set_expire(b"l", T + 10);
        assert_eq!(run(&mut store, T + 20, &["llen", "l"]), Reply::Int(0));
        assert_eq!(run(&mut store, T + 20, &["blpop", "l", "0"]), Reply::WouldBlock);
        assert_eq!(run(&mut store, T + 20, &["lpush", "l", "b"]), Reply::Int(1));
    }

    // --- LMPOP / BLMPOP ---

    #[test]
    fn lmpop_pops_from_the_first_list_with_elements() {
        let mut store = with_list("l", &["a", "b", "c"]);
        let reply = run(&mut store, T, &["lmpop", "2", "missing", "l", "right", "count", "2"]);
        assert_eq!(reply, Reply::Array(vec![bulk("l"), arr(&["c", "b"])]));
        let applied = run_applied(&mut store, T, &["lmpop", "1", "l", "left", "count", "9"]);
        assert_eq!(applied.replies[0], Reply::Array(vec![bulk("l"), arr(&["a"])]));
        assert_eq!(events(&applied), vec![('l', "lpop", "l".into()), ('g', "del", "l".into())]);
        assert_eq!(run(&mut store, T, &["lmpop", "1", "l", "left"]), Reply::NilArray);
    }

    #[test]
    fn lmpop_errors_match_redis() {
        let mut store = with_string("s");
        assert_eq!(run(&mut store, T, &["lmpop", "0", "l", "left"]), err(ERR_NUMKEYS));
        assert_eq!(run(&mut store, T, &["lmpop", "x", "l", "left"]), err(ERR_NUMKEYS));
        assert_eq!(run(&mut store, T, &["lmpop", "2", "l", "left"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["lmpop", "1", "l", "up"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["lmpop", "1", "l", "left", "count", "0"]), err(ERR_COUNT_POSITIVE));
        assert_eq!(run(&mut store, T, &["lmpop", "1", "l", "left", "count"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["lmpop", "1", "s", "left"]), err(WRONGTYPE));
    }

    #[test]
    fn blmpop_pops_or_asks_to_wait() {
        let mut store = with_list("l", &["a"]);
        assert_eq!(run(&mut store, T, &["blmpop", "0", "1", "missing", "left"]), Reply::WouldBlock);
        assert_eq!(run(&mut store, T, &["blmpop", "-1", "1", "l", "left"]), err(ERR_TIMEOUT_NEGATIVE));
        assert_eq!(run(&mut store, T, &["blmpop", "0.5", "1", "l", "left"]), Reply::Array(vec![bulk("l"), arr(&["a"])]));
        let spec = lookup(b"blmpop").unwrap();
        let args: Vec<Bytes> = ["blmpop", "0", "2", "a", "b", "left"].iter().map(|s| Bytes::from(s.to_string())).collect();
        assert_eq!(spec.keys(&args), vec![&args[3], &args[4]]);
    }
}
