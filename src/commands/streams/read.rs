//! XLEN, XRANGE, XREVRANGE, XREAD and XREADGROUP, and how the last two wait.
//!
//! Waiting works as for BLPOP (see `lists`): a handler that finds nothing and was
//! given BLOCK replies [`Reply::WouldBlock`]; the connection layer re-runs the
//! command when a key it waits on changes. Two things differ, as in Redis:
//! - XREAD's `$` means "after the last ID when the wait started", so it is replaced
//!   by that ID before the first attempt ([`WaitSpec::prepare`]);
//! - a woken command runs as `TANDEM.XREAD-WOKEN` / `TANDEM.XREADGROUP-WOKEN`: at
//!   most 1000 entries without COUNT, a key that is no longer a stream keeps an
//!   XREAD waiting, and ends an XREADGROUP wait with `-UNBLOCKED` (or `-NOGROUP`
//!   when the group went), where a first attempt would answer WRONGTYPE or NOGROUP.

use bytes::Bytes;

use super::*;
use crate::store::db::Db;
use crate::store::stream::{ConsumerGroup, Entries};

const ERR_UNBALANCED: &str = "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.";
const ERR_GROUP_IN_XREAD: &str = "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
const ERR_NOACK_IN_XREAD: &str = "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.";
const ERR_MISSING_GROUP: &str = "ERR Missing GROUP option for XREADGROUP";
const ERR_DOLLAR_IN_GROUP: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.";
const ERR_GT_WITHOUT_GROUP: &str = "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.";
const ERR_TIMEOUT_NOT_INT: &str = "ERR timeout is not an integer or out of range";
const NOGROUP_READ: &str = "NOGROUP No such key '{key}' or consumer group '{group}' in XREADGROUP with GROUP option";
const ERR_GROUP_GONE: &str = "NOGROUP the consumer group this client was blocked on no longer exists";
const ERR_KEY_GONE: &str = "UNBLOCKED the stream key no longer exists";

/// Entries a woken XREAD / XREADGROUP without COUNT returns at most (Redis's
/// XREAD_BLOCKED_DEFAULT_COUNT): an old ID must not make one reply huge.
const WOKEN_COUNT_DEFAULT: usize = 1000;

// --- XLEN, XRANGE, XREVRANGE ---

pub fn xlen(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read_stream(ctx, &args[1])?.map_or(0, |s| i64::try_from(s.entries.len()).unwrap_or(i64::MAX))))
}

fn range_command(ctx: &mut ReadCtx, args: &[Bytes], rev: bool) -> CmdResult {
    let (start, end) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let (first, last) = parse_range(start, end)?;
    let mut count: Option<usize> = None;
    let mut i = 4;
    while i < args.len() {
        if is(&args[i], "count") && i + 1 < args.len() {
            let n = int_arg(&args[i + 1])?;
            count = Some(usize::try_from(n).unwrap_or(0));
            i += 2;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
    }
    let Some(stream) = read_stream(ctx, &args[1])? else { return Ok(Reply::Array(Vec::new())) };
    let take = match count {
        Some(0) => return Ok(Reply::NilArray),
        Some(n) => n,
        None => usize::MAX,
    };
    let entries: Vec<Reply> = if rev {
        stream.entries.range_rev(first, last).take(take).map(entry_reply).collect()
    } else {
        stream.entries.range(first, last).take(take).map(entry_reply).collect()
    };
    Ok(Reply::Array(entries))
}

/// XRANGE key start end [COUNT n]
pub fn xrange(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, false)
}

/// XREVRANGE key end start [COUNT n]
pub fn xrevrange(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, true)
}

// --- XREAD, XREADGROUP ---

/// XREAD's and XREADGROUP's arguments.
struct ReadArgs<'a> {
    /// BLOCK's wait in ms.
    block_ms: Option<u64>,
    /// COUNT; 0 = no limit.
    count: usize,
    /// GROUP's group and consumer.
    group: Option<(&'a Bytes, &'a Bytes)>,
    noack: bool,
    keys: &'a [Bytes],
    ids: &'a [Bytes],
}

fn block_ms(arg: &[u8]) -> Result<u64, Reply> {
    let ms = parse_i64(arg).ok_or(Reply::err(ERR_TIMEOUT_NOT_INT))?;
    u64::try_from(ms).map_err(|_| Reply::err(ERR_TIMEOUT_NEGATIVE))
}

/// Parses `[GROUP g c] [COUNT n] [BLOCK ms] [NOACK] STREAMS key… id…` as Redis does,
/// errors in Redis's order.
fn parse_read(args: &[Bytes], xreadgroup: bool) -> Result<ReadArgs<'_>, Reply> {
    let mut parsed = ReadArgs { block_ms: None, count: 0, group: None, noack: false, keys: &[], ids: &[] };
    let mut streams_at = None;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let arg = &args[i];
        if is(arg, "block") && more > 0 {
            parsed.block_ms = Some(block_ms(&args[i + 1])?);
            i += 1;
        } else if is(arg, "count") && more > 0 {
            parsed.count = usize::try_from(int_arg(&args[i + 1])?).unwrap_or(0);
            i += 1;
        } else if is(arg, "streams") && more > 0 {
            if !more.is_multiple_of(2) {
                return Err(Reply::err(ERR_UNBALANCED));
            }
            streams_at = Some(i + 1);
            break;
        } else if is(arg, "group") && more >= 2 {
            if !xreadgroup {
                return Err(Reply::err(ERR_GROUP_IN_XREAD));
            }
            parsed.group = Some((&args[i + 1], &args[i + 2]));
            i += 2;
        } else if is(arg, "noack") {
            if !xreadgroup {
                return Err(Reply::err(ERR_NOACK_IN_XREAD));
            }
            parsed.noack = true;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        i += 1;
    }
    let Some(at) = streams_at else { return Err(Reply::err(ERR_SYNTAX)) };
    if xreadgroup && parsed.group.is_none() {
        return Err(Reply::err(ERR_MISSING_GROUP));
    }
    let streams = &args[at..];
    (parsed.keys, parsed.ids) = streams.split_at(streams.len() / 2);
    Ok(parsed)
}

/// How many entries to return: COUNT, or the woken default.
fn count_limit(count: usize, woken: bool) -> usize {
    match count {
        0 if woken => WOKEN_COUNT_DEFAULT,
        0 => usize::MAX,
        n => n,
    }
}

/// The reply when nothing was served: wait if asked to, else the null array.
fn nothing(block_ms: Option<u64>) -> CmdResult {
    Ok(if block_ms.is_some() { Reply::WouldBlock } else { Reply::NilArray })
}

/// XREAD [COUNT n] [BLOCK ms] STREAMS key… id…
pub fn xread(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    xread_generic(ctx, args, false)
}

/// XREAD woken after waiting (see the module doc).
pub fn xread_woken(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    xread_generic(ctx, args, true)
}

fn xread_generic(ctx: &mut ReadCtx, args: &[Bytes], woken: bool) -> CmdResult {
    let parsed = parse_read(args, false)?;
    let mut after = Vec::with_capacity(parsed.keys.len().min(1024));
    for (key, id) in parsed.keys.iter().zip(parsed.ids) {
        let stream = match read_stream(ctx, key) {
            Err(_) if woken => None,
            other => other?,
        };
        let gt = match &id[..] {
            b"$" => stream.map_or(StreamId::MIN, |s| s.entries.last_id()),
            b">" => return Err(Reply::err(ERR_GT_WITHOUT_GROUP)),
            _ => parse_strict_id(id)?,
        };
        after.push((key, stream, gt));
    }
    let take = count_limit(parsed.count, woken);
    let mut served = Vec::new();
    for (key, stream, gt) in after {
        let Some(stream) = stream else { continue };
        if stream.entries.last_live_id().is_none_or(|top| top <= gt) {
            continue;
        }
        let start = gt.next().unwrap_or(StreamId::MAX);
        let entries = stream.entries.range(start, StreamId::MAX).take(take).map(entry_reply).collect();
        served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
    }
    if served.is_empty() {
        return nothing(parsed.block_ms);
    }
    Ok(Reply::Keyed(served))
}

/// What XREADGROUP asks of one stream.
#[derive(Clone, Copy)]
enum Want {
    /// `>`: entries never delivered to the group.
    New,
    /// The consumer's own pending entries after this ID.
    History(StreamId),
}

/// XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key… id…
pub fn xreadgroup(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    xreadgroup_generic(ctx, args, false)
}

/// XREADGROUP woken after waiting (see the module doc).
pub fn xreadgroup_woken(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    xreadgroup_generic(ctx, args, true)
}

/// Checks every key, group and ID before anything changes, in Redis's order.
fn resolve_group_reads(ctx: &mut WriteCtx, parsed: &ReadArgs, group: &[u8], woken: bool) -> Result<Vec<Want>, Reply> {
    let mut wants = Vec::with_capacity(parsed.keys.len().min(1024));
    for (key, id) in parsed.keys.iter().zip(parsed.ids) {
        let has_group = match ctx.get(key) {
            Some(Value::Stream(stream)) => stream.groups.contains_key(group),
            Some(_) if woken => return Err(Reply::err(ERR_KEY_GONE)),
            Some(_) => return Err(Reply::err(crate::store::value::WRONGTYPE)),
            None if woken => return Err(Reply::err(ERR_KEY_GONE)),
            None => false,
        };
        if !has_group {
            return Err(if woken { Reply::err(ERR_GROUP_GONE) } else { no_group(NOGROUP_READ, key, group) });
        }
        wants.push(match &id[..] {
            b"$" => return Err(Reply::err(ERR_DOLLAR_IN_GROUP)),
            b">" => Want::New,
            _ => Want::History(parse_strict_id(id)?),
        });
    }
    Ok(wants)
}

fn xreadgroup_generic(ctx: &mut WriteCtx, args: &[Bytes], woken: bool) -> CmdResult {
    let parsed = parse_read(args, true)?;
    let Some((group_name, consumer)) = parsed.group else { return Err(Reply::err(ERR_MISSING_GROUP)) };
    let wants = resolve_group_reads(ctx, &parsed, group_name, woken)?;
    let take = count_limit(parsed.count, woken);
    let now_ms = ctx.now_ms;
    let mut served = Vec::new();
    for (key, want) in parsed.keys.iter().zip(wants) {
        let (entries, created) = {
            let Some(stream) = write_stream(ctx, key)? else { continue };
            let Stream { entries, groups } = stream;
            let Some(group) = groups.get_mut(&group_name[..]) else { continue };
            let start = match want {
                Want::History(gt) => gt.next().unwrap_or(StreamId::MIN),
                Want::New if entries.last_live_id().is_some_and(|top| top > group.last_id) => group.last_id.next().unwrap_or(StreamId::MAX),
                Want::New => continue,
            };
            let (_, created) = group.consumer(consumer, now_ms);
            let read = match want {
                Want::History(_) => serve_history(entries, group, consumer, start, take, now_ms),
                Want::New => serve_new(entries, group, consumer, start, take, parsed.noack, now_ms),
            };
            (read, created)
        };
        if created {
            ctx.notify(b't', "xgroup-createconsumer", key);
        }
        *ctx.dirty += 1;
        served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
    }
    if served.is_empty() {
        return nothing(parsed.block_ms);
    }
    Ok(Reply::Keyed(served))
}

/// Delivers entries from `start` on to `consumer`: the group moves past them and,
/// unless NOACK, they become pending (taken over from any other owner).
fn serve_new(
    entries: &Entries,
    group: &mut ConsumerGroup,
    consumer: &[u8],
    start: StreamId,
    take: usize,
    noack: bool,
    now_ms: u64,
) -> Vec<Reply> {
    let mut out = Vec::new();
    for entry in entries.range(start, StreamId::MAX).take(take) {
        let id = entry.id;
        entries.advance_group(group, id);
        out.push(entry_reply(entry));
        if !noack {
            group.deliver(id, consumer, now_ms);
        }
    }
    out
}

/// The consumer's own pending entries from `start` on, delivered again; a deleted
/// entry shows as its ID with a null.
fn serve_history(entries: &Entries, group: &mut ConsumerGroup, consumer: &[u8], start: StreamId, take: usize, now_ms: u64) -> Vec<Reply> {
    let ids: Vec<StreamId> = group.consumers.get(consumer).map_or(Vec::new(), |c| c.pending.range(start..).take(take).copied().collect());
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match entries.get(id) {
            Some(entry) => {
                out.push(entry_reply(entry));
                if let Some(pending) = group.pending.get_mut(&id) {
                    pending.delivery_time_ms = now_ms;
                    pending.delivery_count = pending.delivery_count.saturating_add(1);
                }
            }
            None => out.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
        }
    }
    out
}

// --- waiting ---

/// XREAD: waits only with BLOCK; resent after a failover (it changes nothing).
pub static XREAD_WAIT: WaitSpec =
    WaitSpec { timeout_ms: xread_wait_ms, prepare: prepare_xread, resend_after_failover: true, withdraw: None };

/// XREADGROUP: waits only with BLOCK (and then only while a `>` finds nothing).
/// Resent after a failover: if the lost active did deliver entries, they stay
/// pending for the consumer (XPENDING, XCLAIM), which is what pending lists are for.
pub static XREADGROUP_WAIT: WaitSpec =
    WaitSpec { timeout_ms: xreadgroup_wait_ms, prepare: prepare_xreadgroup, resend_after_failover: true, withdraw: None };

fn xread_wait_ms(args: &[Bytes]) -> Result<Option<u64>, Reply> {
    parse_read(args, false).map(|p| p.block_ms)
}

fn xreadgroup_wait_ms(args: &[Bytes]) -> Result<Option<u64>, Reply> {
    parse_read(args, true).map(|p| p.block_ms)
}

/// Positions of the keys after STREAMS (the first half of what follows it).
fn key_positions(args: &[Bytes], xreadgroup: bool) -> Vec<usize> {
    let Ok(parsed) = parse_read(args, xreadgroup) else { return Vec::new() };
    let keys_at = args.len() - parsed.ids.len() - parsed.keys.len();
    (keys_at..keys_at + parsed.keys.len()).collect()
}

/// XREAD's keys (a key finder: they follow STREAMS).
pub fn xread_keys(args: &[Bytes]) -> Vec<usize> {
    key_positions(args, false)
}

/// XREADGROUP's keys.
pub fn xreadgroup_keys(args: &[Bytes]) -> Vec<usize> {
    key_positions(args, true)
}

/// The woken form: the internal command `name` with the same arguments.
fn woken_form(name: &'static [u8], args: &[Bytes]) -> Vec<Bytes> {
    let mut woken = Vec::with_capacity(args.len());
    woken.push(Bytes::from_static(name));
    woken.extend(args.iter().skip(1).cloned());
    woken
}

/// `$` becomes each stream's last ID now (0-0 for a missing key).
fn prepare_xread(db: &Db, now_ms: u64, args: &[Bytes]) -> Prepared {
    let mut first = args.to_vec();
    if let Ok(parsed) = parse_read(args, false) {
        let ids_at = args.len() - parsed.ids.len();
        for (i, key) in parsed.keys.iter().enumerate() {
            let Some(slot) = first.get_mut(ids_at + i).filter(|id| &id[..] == b"$") else { continue };
            match db.get(key, now_ms).map(|item| &item.value) {
                Some(Value::Stream(stream)) => *slot = stream.entries.last_id().to_bytes(),
                Some(_) => {}
                None => *slot = StreamId::MIN.to_bytes(),
            }
        }
    }
    let woken = woken_form(b"tandem.xread-woken", &first);
    Prepared { first, woken }
}

fn prepare_xreadgroup(_db: &Db, _now_ms: u64, args: &[Bytes]) -> Prepared {
    Prepared { first: args.to_vec(), woken: woken_form(b"tandem.xreadgroup-woken", args) }
}
