//! XCLAIM and XAUTOCLAIM: moving pending entries to another consumer.
//!
//! "Now" is the log entry's time: delivery times set here are state. An entry
//! that was deleted from the stream while pending is dropped from the PEL when
//! met, as Redis 7 does.

use bytes::Bytes;

use super::groups::{idle_ms, NOGROUP_KEY_OR_GROUP};
use super::*;
use crate::store::stream::{ConsumerGroup, Entries, Pending};

/// XAUTOCLAIM looks at no more than this many PEL entries per entry it may claim.
const AUTOCLAIM_ATTEMPTS_FACTOR: u64 = 10;

/// XAUTOCLAIM's largest COUNT (Redis: LONG_MAX / max(sizeof(streamID), attempts factor)).
const AUTOCLAIM_COUNT_MAX: i64 = i64::MAX / 16;

/// XCLAIM's options after the IDs.
struct ClaimOptions {
    force: bool,
    just_id: bool,
    /// The delivery time to record (IDLE or TIME); `None`: now.
    delivery_ms: Option<i64>,
    retry_count: Option<u64>,
    last_id: Option<StreamId>,
}

fn option_int(arg: &[u8], message: &'static str) -> Result<i64, Reply> {
    parse_i64(arg).ok_or(Reply::err(message))
}

fn parse_claim_options(args: &[Bytes], now_ms: u64) -> Result<ClaimOptions, Reply> {
    let mut options = ClaimOptions { force: false, just_id: false, delivery_ms: None, retry_count: None, last_id: None };
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let mut i = 0;
    while i < args.len() {
        let (arg, value) = (&args[i], args.get(i + 1));
        match value {
            _ if is(arg, "force") => options.force = true,
            _ if is(arg, "justid") => options.just_id = true,
            Some(v) if is(arg, "idle") => {
                let idle = option_int(v, "ERR Invalid IDLE option argument for XCLAIM")?;
                options.delivery_ms = Some(now.checked_sub(idle).unwrap_or(-1));
                i += 1;
            }
            Some(v) if is(arg, "time") => {
                options.delivery_ms = Some(option_int(v, "ERR Invalid TIME option argument for XCLAIM")?);
                i += 1;
            }
            Some(v) if is(arg, "retrycount") => {
                let n = option_int(v, "ERR Invalid RETRYCOUNT option argument for XCLAIM")?;
                // A negative count is as if none was given (Redis's -1 sentinel).
                options.retry_count = u64::try_from(n).ok();
                i += 1;
            }
            Some(v) if is(arg, "lastid") => {
                options.last_id = Some(parse_strict_id(v)?);
                i += 1;
            }
            _ => return Err(Reply::error(format!("ERR Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(arg)))),
        }
        i += 1;
    }
    Ok(options)
}

/// The delivery time XCLAIM records: IDLE/TIME if sane, else now.
fn delivery_time(options: &ClaimOptions, now_ms: u64) -> u64 {
    match options.delivery_ms.and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) if ms <= now_ms => ms,
        _ => now_ms,
    }
}

/// One claimed entry as the reply shows it: the entry, or its ID with JUSTID.
fn claimed_reply(entries: &Entries, id: StreamId, just_id: bool) -> Reply {
    match (just_id, entries.get(id)) {
        (false, Some(entry)) => entry_reply(entry),
        _ => id_reply(id),
    }
}

/// Gives the pending entry `id` to `consumer` (created if needed): a new delivery
/// at `delivery_ms`, counted unless JUSTID or set by RETRYCOUNT. Returns whether
/// the consumer was created.
fn claim_one(group: &mut ConsumerGroup, id: StreamId, consumer: &[u8], delivery_ms: u64, count: Option<u64>, now_ms: u64) -> bool {
    let (_, created) = group.consumer(consumer, now_ms);
    group.reassign(id, consumer);
    if let Some(pending) = group.pending.get_mut(&id) {
        pending.delivery_time_ms = delivery_ms;
        pending.delivery_count = count.unwrap_or(pending.delivery_count.saturating_add(1));
    }
    created
}

/// XCLAIM key group consumer min-idle-time id [id …] [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]
pub fn xclaim(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let has_group = ctx.get(key).map(Value::as_stream).transpose()?.is_some_and(|s| s.groups.contains_key(&name[..]));
    if !has_group {
        return Err(no_group(NOGROUP_KEY_OR_GROUP, key, name));
    }
    let min_idle = option_int(&args[4], "ERR Invalid min-idle-time argument for XCLAIM")?.max(0);
    let ids: Vec<StreamId> = args[5..].iter().map_while(|a| parse_strict_id(a).ok()).collect();
    let now_ms = ctx.now_ms;
    let options = parse_claim_options(&args[5 + ids.len()..], now_ms)?;
    let delivery_ms = delivery_time(&options, now_ms);
    let (mut out, mut created) = (Vec::new(), false);
    {
        let Some(Stream { entries, groups }) = write_stream(ctx, key)? else { return Ok(Reply::Array(out)) };
        let Some(group) = groups.get_mut(&name[..]) else { return Ok(Reply::Array(out)) };
        if let Some(last) = options.last_id.filter(|last| *last > group.last_id) {
            group.last_id = last;
        }
        for id in ids {
            if !entries.contains(id) {
                group.acknowledge(id);
                continue;
            }
            let forced = options.force && !group.pending.contains_key(&id);
            if forced {
                // A new pending entry: owned by whoever claims it, delivered once.
                let pending = Pending { delivery_time_ms: now_ms, delivery_count: 1, consumer: Blob::from(&consumer[..]) };
                created |= group.consumer(consumer, now_ms).1;
                group.pending.insert(id, pending);
                if let Some(owner) = group.consumers.get_mut(&consumer[..]) {
                    owner.pending.insert(id);
                }
            }
            let Some(pending) = group.pending.get(&id) else { continue };
            if !forced && min_idle > 0 && idle_ms(now_ms, pending.delivery_time_ms) < min_idle {
                continue;
            }
            let count = options.retry_count.or(options.just_id.then_some(pending.delivery_count));
            created |= claim_one(group, id, consumer, delivery_ms, count, now_ms);
            out.push(claimed_reply(entries, id, options.just_id));
        }
    }
    if created {
        ctx.notify(b't', "xgroup-createconsumer", key);
    }
    *ctx.dirty += 1;
    Ok(Reply::Array(out))
}

/// XAUTOCLAIM's COUNT and JUSTID.
fn parse_autoclaim_options(args: &[Bytes]) -> Result<(u64, bool), Reply> {
    let (mut count, mut just_id) = (100u64, false);
    let mut i = 6;
    while i < args.len() {
        if is(&args[i], "count") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1]).filter(|n| (1..=AUTOCLAIM_COUNT_MAX).contains(n));
            count = n.and_then(|n| u64::try_from(n).ok()).ok_or(Reply::err("ERR COUNT must be > 0"))?;
            i += 1;
        } else if is(&args[i], "justid") {
            just_id = true;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        i += 1;
    }
    Ok((count, just_id))
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]:
/// `[next cursor, claimed, deleted IDs]`.
pub fn xautoclaim(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let min_idle = option_int(&args[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM")?.max(0);
    let (mut start, exclusive) = parse_interval_id(&args[5], 0)?;
    if exclusive {
        start = start.next().ok_or(Reply::err("ERR invalid start ID for the interval"))?;
    }
    let (mut count, just_id) = parse_autoclaim_options(args)?;
    let has_group = ctx.get(key).map(Value::as_stream).transpose()?.is_some_and(|s| s.groups.contains_key(&name[..]));
    if !has_group {
        return Err(no_group(NOGROUP_KEY_OR_GROUP, key, name));
    }
    let now_ms = ctx.now_ms;
    let (mut claimed, mut deleted, mut created) = (Vec::new(), Vec::new(), false);
    let cursor = {
        let Some(Stream { entries, groups }) = write_stream(ctx, key)? else { return Ok(Reply::Array(Vec::new())) };
        let Some(group) = groups.get_mut(&name[..]) else { return Ok(Reply::Array(Vec::new())) };
        let attempts = usize::try_from(count.saturating_mul(AUTOCLAIM_ATTEMPTS_FACTOR)).unwrap_or(usize::MAX);
        // The PEL entries this call may look at, and the one after them: the cursor.
        let seen: Vec<(StreamId, u64)> =
            group.pending.range(start..).take(attempts.saturating_add(1)).map(|(id, p)| (*id, p.delivery_time_ms)).collect();
        let mut next = 0;
        while next < attempts && count > 0 && next < seen.len() {
            let (id, delivered_ms) = seen[next];
            next += 1;
            if !entries.contains(id) {
                group.acknowledge(id);
                deleted.push(id_reply(id));
                count -= 1;
                continue;
            }
            if min_idle > 0 && idle_ms(now_ms, delivered_ms) < min_idle {
                continue;
            }
            let keep = group.pending.get(&id).map(|p| p.delivery_count);
            created |= claim_one(group, id, consumer, now_ms, if just_id { keep } else { None }, now_ms);
            claimed.push(claimed_reply(entries, id, just_id));
            count -= 1;
        }
        seen.get(next).map_or(StreamId::MIN, |(id, _)| *id)
    };
    if created {
        ctx.notify(b't', "xgroup-createconsumer", key);
    }
    *ctx.dirty += 1;
    Ok(Reply::Array(vec![id_reply(cursor), Reply::Array(claimed), Reply::Array(deleted)]))
}
