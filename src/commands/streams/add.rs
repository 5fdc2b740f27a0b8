//! XADD, XTRIM, XDEL, XSETID, and the node limits behind `stream-node-max-*`.

use bytes::Bytes;

use super::*;
use crate::protocol::reply::OK;
use crate::store::db::Db;
use crate::store::stream::{AppendError, NewId, NodeLimits, Trim, TrimTo};

const ERR_TRIM_BOTH: &str = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
const ERR_MAXLEN_NEGATIVE: &str = "ERR The MAXLEN argument must be >= 0.";
const ERR_LIMIT_NEGATIVE: &str = "ERR The LIMIT argument must be >= 0.";
const ERR_LIMIT_WITHOUT_TRIM: &str = "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy";
const ERR_XTRIM_WITHOUT_TRIM: &str = "ERR syntax error, XTRIM must be called with a trimming strategy";
const ERR_LIMIT_WITHOUT_APPROX: &str = "ERR syntax error, LIMIT cannot be used without the special ~ option";
const ERR_ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
const ERR_EXHAUSTED: &str = "ERR The stream has exhausted the last possible ID, unable to add more items";
const ERR_ID_NOT_GREATER: &str = "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const ERR_TOO_LARGE: &str = "ERR Elements are too large to be stored";

/// The trim work an approximate trim may do without LIMIT: 100 nodes' worth, within
/// Redis's bounds.
fn default_approx_limit(limits: &NodeLimits) -> u64 {
    match limits.max_entries.saturating_mul(100) {
        0 => 10_000,
        n => n.min(1_000_000),
    }
}

/// XADD's and XTRIM's options (Redis's streamAddTrimArgs).
struct AddTrimArgs {
    trim: Option<Trim>,
    /// XADD: the position of the ID argument.
    id_at: usize,
    id: NewId,
    no_mkstream: bool,
}

/// Parses `[NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]]` and, for
/// XADD, the ID that ends the options.
fn parse_add_trim(args: &[Bytes], xadd: bool, limits: &NodeLimits) -> Result<AddTrimArgs, Reply> {
    let mut parsed = AddTrimArgs { trim: None, id_at: args.len(), id: NewId::Auto, no_mkstream: false };
    let (mut to, mut approx, mut limit, mut limit_given) = (None, false, 0u64, false);
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let arg = &args[i];
        if xadd && &arg[..] == b"*" {
            parsed.id_at = i;
            break;
        } else if (is(arg, "maxlen") || is(arg, "minid")) && more > 0 {
            if to.is_some() {
                return Err(Reply::err(ERR_TRIM_BOTH));
            }
            approx = false;
            if more >= 2 && (&args[i + 1][..] == b"~" || &args[i + 1][..] == b"=") {
                approx = &args[i + 1][..] == b"~";
                i += 1;
            }
            let value = &args[i + 1];
            to = Some(if is(arg, "maxlen") {
                let max = int_arg(value)?;
                TrimTo::MaxLen(u64::try_from(max).map_err(|_| Reply::err(ERR_MAXLEN_NEGATIVE))?)
            } else {
                TrimTo::MinId(parse_strict_id(value)?)
            });
            i += 1;
        } else if is(arg, "limit") && more > 0 {
            let n = int_arg(&args[i + 1])?;
            limit = u64::try_from(n).map_err(|_| Reply::err(ERR_LIMIT_NEGATIVE))?;
            limit_given = true;
            i += 1;
        } else if xadd && is(arg, "nomkstream") {
            parsed.no_mkstream = true;
        } else if xadd {
            parsed.id = parse_add_id(arg)?;
            parsed.id_at = i;
            break;
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        i += 1;
    }
    if limit != 0 && to.is_none() {
        return Err(Reply::err(ERR_LIMIT_WITHOUT_TRIM));
    }
    let Some(to) = to else {
        return if xadd { Ok(parsed) } else { Err(Reply::err(ERR_XTRIM_WITHOUT_TRIM)) };
    };
    if limit_given && !approx {
        return Err(Reply::err(ERR_LIMIT_WITHOUT_APPROX));
    }
    if approx && !limit_given {
        limit = default_approx_limit(limits);
    }
    parsed.trim = Some(Trim { to, approx, limit });
    Ok(parsed)
}

/// XADD's ID: `<ms>-<seq>`, `<ms>` or `<ms>-*`.
fn parse_add_id(arg: &[u8]) -> Result<NewId, Reply> {
    if let Some(ms) = arg.strip_suffix(b"-*") {
        if arg.len() <= 127 && !ms.contains(&b'-') {
            return parse_u64(ms).map(NewId::Ms).ok_or(Reply::err(ERR_INVALID_ID));
        }
    }
    parse_strict_id(arg).map(NewId::Exact)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value …]
pub fn xadd(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let limits = ctx.db.stream_limits;
    let parsed = parse_add_trim(args, true, &limits)?;
    let pairs = args.get(parsed.id_at + 1..).unwrap_or_default();
    if pairs.len() < 2 || pairs.len() % 2 == 1 {
        return Err(wrong_args("xadd"));
    }
    // Checked before the key is looked up, so no empty stream is left behind.
    if parsed.id == NewId::Exact(StreamId::MIN) {
        return Err(Reply::err(ERR_ID_ZERO));
    }
    let key = &args[1];
    if ctx.get(key).map(Value::as_stream).transpose()?.is_none() && parsed.no_mkstream {
        return Ok(Reply::Nil);
    }
    let now_ms = ctx.now_ms;
    let stream = ctx.get_or_insert(key, || Value::Stream(Box::default())).as_stream_mut()?;
    if stream.entries.last_id() == StreamId::MAX {
        return Err(Reply::err(ERR_EXHAUSTED));
    }
    let id = stream.entries.append(parsed.id, pairs, now_ms, &limits).map_err(|e| match e {
        AppendError::NotGreater => Reply::err(ERR_ID_NOT_GREATER),
        AppendError::TooLarge => Reply::err(ERR_TOO_LARGE),
    })?;
    let trimmed = parsed.trim.map_or(0, |trim| stream.entries.trim(&trim));
    ctx.notify(b't', "xadd", key);
    if trimmed > 0 {
        ctx.notify(b't', "xtrim", key);
    }
    ctx.signal_ready(key);
    Ok(id_reply(id))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub fn xtrim(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let limits = ctx.db.stream_limits;
    let parsed = parse_add_trim(args, false, &limits)?;
    let key = &args[1];
    let Some(stream) = write_stream(ctx, key)? else { return Ok(Reply::Int(0)) };
    let removed = parsed.trim.map_or(0, |trim| stream.entries.trim(&trim));
    if removed > 0 {
        ctx.notify(b't', "xtrim", key);
    }
    Ok(Reply::Int(i64::try_from(removed).unwrap_or(i64::MAX)))
}

/// XDEL key id [id …]: the number of entries deleted.
pub fn xdel(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    if ctx.get(key).map(Value::as_stream).transpose()?.is_none() {
        return Ok(Reply::Int(0));
    }
    let ids = args[2..].iter().map(|a| parse_strict_id(a)).collect::<Result<Vec<_>, _>>()?;
    let Some(stream) = write_stream(ctx, key)? else { return Ok(Reply::Int(0)) };
    let deleted = ids.into_iter().filter(|id| stream.entries.delete(*id)).count();
    if deleted > 0 {
        ctx.notify(b't', "xdel", key);
    }
    Ok(Reply::Int(deleted as i64))
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
pub fn xsetid(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let id = parse_strict_id(&args[2])?;
    let (mut entries_added, mut max_deleted) = (None, None);
    let mut i = 3;
    while i < args.len() {
        let value = args.get(i + 1).ok_or(Reply::err(ERR_SYNTAX))?;
        if is(&args[i], "entriesadded") {
            let n = int_arg(value)?;
            entries_added = Some(u64::try_from(n).map_err(|_| Reply::err("ERR entries_added must be positive"))?);
        } else if is(&args[i], "maxdeletedid") {
            let max = parse_strict_id(value)?;
            if id < max {
                return Err(Reply::err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
            }
            max_deleted = Some(max);
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
        i += 2;
    }
    let key = &args[1];
    let stream = write_stream(ctx, key)?.ok_or(Reply::err(ERR_NO_KEY))?;
    if let Some(top) = stream.entries.last_live_id() {
        if id < top {
            return Err(Reply::err("ERR The ID specified in XSETID is smaller than the target stream top item"));
        }
        if entries_added.is_some_and(|n| stream.entries.len() > n) {
            return Err(Reply::err("ERR The entries_added specified in XSETID is smaller than the target stream length"));
        }
    }
    stream.entries.set_ids(id, entries_added, max_deleted);
    ctx.notify(b't', "xsetid", key);
    Ok(OK)
}

// --- node limits ---

/// The CONFIG parameters that set [`NodeLimits`]. They are state (they decide where
/// nodes start, hence what `~` trims), so CONFIG SET turns them into a log entry:
/// [`node_limits_command`], applied by [`node_limits`].
pub const NODE_LIMIT_PARAMS: [&str; 2] = ["stream-node-max-bytes", "stream-node-max-entries"];

/// The current values, for CONFIG GET.
pub fn node_limit_values(db: &Db) -> [(&'static str, String); 2] {
    let limits = db.stream_limits;
    [(NODE_LIMIT_PARAMS[0], limits.max_bytes.to_string()), (NODE_LIMIT_PARAMS[1], limits.max_entries.to_string())]
}

/// `limits` with parameter `name` set to `value`; `None` if `name` is not one of
/// [`NODE_LIMIT_PARAMS`]; the error text is Redis's CONFIG SET failure.
pub fn set_node_limit(limits: NodeLimits, name: &str, value: &str) -> Option<Result<NodeLimits, String>> {
    let invalid = |why: &str| format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}");
    let in_range = |n: u64| i64::try_from(n).is_ok();
    let outcome = match name.to_ascii_lowercase().as_str() {
        "stream-node-max-entries" => match value.parse::<u64>() {
            Ok(n) if in_range(n) => Ok(NodeLimits { max_entries: n, ..limits }),
            Ok(_) => Err(invalid("argument must be between 0 and 9223372036854775807 inclusive")),
            Err(_) => Err(invalid("argument couldn't be parsed into an integer")),
        },
        "stream-node-max-bytes" => match crate::config::parse_size(value) {
            Ok(n) if in_range(n) => Ok(NodeLimits { max_bytes: n, ..limits }),
            Ok(_) => Err(invalid("argument must be between 0 and 9223372036854775807 inclusive")),
            Err(_) => Err(invalid("argument must be a memory value")),
        },
        _ => return None,
    };
    Some(outcome)
}

/// The log entry that sets `limits` on every replica.
pub fn node_limits_command(limits: NodeLimits) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"tandem.stream-node-limits"),
        Bytes::from(limits.max_entries.to_string()),
        Bytes::from(limits.max_bytes.to_string()),
    ]
}

/// TANDEM.STREAM-NODE-LIMITS max-entries max-bytes (internal; see [`NODE_LIMIT_PARAMS`]).
pub fn node_limits(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let max_entries = parse_u64(&args[1]).ok_or(Reply::err(ERR_NOT_INT))?;
    let max_bytes = parse_u64(&args[2]).ok_or(Reply::err(ERR_NOT_INT))?;
    ctx.db.stream_limits = NodeLimits { max_entries, max_bytes };
    Ok(OK)
}
