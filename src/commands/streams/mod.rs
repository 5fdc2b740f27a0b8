//! Stream commands (Redis 7.0): XADD, XTRIM, XDEL, XSETID, XLEN, XRANGE, XREVRANGE,
//! XREAD and XREADGROUP (blocking with BLOCK), XGROUP, XACK, XPENDING, XCLAIM,
//! XAUTOCLAIM and XINFO, with Redis's reply shapes and error strings.
//!
//! The stream itself is `store::stream`; these files parse arguments, apply them
//! and build replies:
//! - [`add`] has XADD, XTRIM, XDEL, XSETID, and the node limits (`stream-node-max-*`);
//! - [`read`] has XLEN, XRANGE, XREVRANGE, XREAD, XREADGROUP and how they wait;
//! - [`groups`] has XGROUP, XACK, XPENDING;
//! - [`claim`] has XCLAIM, XAUTOCLAIM;
//! - [`info`] has XINFO.
//!
//! Time comes from the log entry (`WriteCtx.now_ms`): auto IDs, delivery and seen
//! times are the same on every replica. Idle times are computed at the reader's time.

pub mod add;
pub mod claim;
pub mod groups;
pub mod info;
pub mod read;

#[cfg(test)]
mod tests;

use super::flags::*;
use super::*;
use crate::protocol::reply::Reply;
use crate::store::stream::{Entry, Stream, StreamId};
use crate::store::value::{Blob, Value};

const G: &str = "stream";

pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "xadd",
        -5,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        G,
        "Appends a new message to a stream. Creates the key if it doesn't exist.",
        Handler::Write(add::xadd),
    ),
    spec("xtrim", -4, WRITE, (1, 1, 1), G, "Deletes messages from the beginning of a stream.", Handler::Write(add::xtrim)),
    spec(
        "xdel",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        G,
        "Returns the number of messages after removing them from a stream.",
        Handler::Write(add::xdel),
    ),
    spec(
        "xsetid",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        G,
        "An internal command for replicating stream values.",
        Handler::Write(add::xsetid),
    ),
    spec("xlen", 2, READONLY | FAST, (1, 1, 1), G, "Return the number of messages in a stream.", Handler::Read(read::xlen)),
    spec("xrange", -4, READONLY, (1, 1, 1), G, "Returns the messages from a stream within a range of IDs.", Handler::Read(read::xrange)),
    spec(
        "xrevrange",
        -4,
        READONLY,
        (1, 1, 1),
        G,
        "Returns the messages from a stream within a range of IDs in reverse order.",
        Handler::Read(read::xrevrange),
    ),
    spec(
        "xread",
        -4,
        READONLY | BLOCKING | MOVABLE_KEYS,
        (0, 0, 0),
        G,
        "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
        Handler::Read(read::xread),
    )
    .movable(read::xread_keys)
    .waits(&read::XREAD_WAIT),
    spec(
        "xreadgroup",
        -7,
        WRITE | BLOCKING | MOVABLE_KEYS,
        (0, 0, 0),
        G,
        "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
        Handler::Write(read::xreadgroup),
    )
    .movable(read::xreadgroup_keys)
    .waits(&read::XREADGROUP_WAIT),
    spec("xgroup", -2, WRITE, (2, 2, 1), G, "A container for consumer groups commands.", Handler::Write(groups::xgroup)),
    spec(
        "xack",
        -4,
        WRITE | FAST,
        (1, 1, 1),
        G,
        "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
        Handler::Write(groups::xack),
    ),
    spec(
        "xpending",
        -3,
        READONLY,
        (1, 1, 1),
        G,
        "Returns the information and entries from a stream consumer group's pending entries list.",
        Handler::Read(groups::xpending),
    ),
    spec(
        "xclaim",
        -6,
        WRITE | FAST,
        (1, 1, 1),
        G,
        "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.",
        Handler::Write(claim::xclaim),
    ),
    spec(
        "xautoclaim",
        -6,
        WRITE | FAST,
        (1, 1, 1),
        G,
        "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.",
        Handler::Write(claim::xautoclaim),
    ),
    spec("xinfo", -2, READONLY, (2, 2, 1), G, "A container for stream introspection commands.", Handler::Read(info::xinfo)),
    // What a waiting XREAD / XREADGROUP runs when a key it waits on changes (see
    // `read`): clients cannot call these.
    spec("tandem.xread-woken", -4, READONLY | INTERNAL, (0, 0, 0), G, "XREAD served after waiting.", Handler::Read(read::xread_woken))
        .movable(read::xread_keys),
    spec(
        "tandem.xreadgroup-woken",
        -7,
        WRITE | INTERNAL,
        (0, 0, 0),
        G,
        "XREADGROUP served after waiting.",
        Handler::Write(read::xreadgroup_woken),
    )
    .movable(read::xreadgroup_keys),
    // CONFIG SET stream-node-max-* as a log entry (see `add::NODE_LIMIT_PARAMS`).
    spec("tandem.stream-node-limits", 3, WRITE | INTERNAL, (0, 0, 0), G, "Sets when stream nodes start.", Handler::Write(add::node_limits)),
];

pub const ERR_INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// Longest ID argument Redis parses (its 128-byte buffer).
const ID_ARG_BYTES_MAX: usize = 127;

/// `strtoull` base 10 as Redis's string2ull falls back to it: leading white space,
/// an optional sign (a minus negates, modulo 2^64), at least one digit, nothing after.
fn strtoull(text: &[u8]) -> Option<u64> {
    let start = text.iter().position(|c| !c.is_ascii_whitespace())?;
    let rest = text.get(start..)?;
    let (negative, digits) = match rest.first() {
        Some(b'-') => (true, rest.get(1..)?),
        Some(b'+') => (false, rest.get(1..)?),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { n.wrapping_neg() } else { n })
}

/// An unsigned 64-bit number as Redis's string2ull reads it.
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    match parse_i64(text) {
        Some(n) => u64::try_from(n).ok(),
        None => strtoull(text),
    }
}

/// How an ID argument may be written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IdForm {
    /// `-` and `+` stand for the smallest and largest IDs.
    Range,
    /// Only `<ms>[-<seq>]`.
    Strict,
}

/// Parses `<ms>-<seq>`, or `<ms>` with `missing_seq` (Redis's streamGenericParseIDOrReply).
fn parse_id_form(arg: &[u8], missing_seq: u64, form: IdForm) -> Result<StreamId, Reply> {
    let invalid = || Reply::err(ERR_INVALID_ID);
    if arg.len() > ID_ARG_BYTES_MAX {
        return Err(invalid());
    }
    match arg {
        b"-" if form == IdForm::Range => return Ok(StreamId::MIN),
        b"+" if form == IdForm::Range => return Ok(StreamId::MAX),
        _ => {}
    }
    let (ms, seq) = match arg.iter().position(|&c| c == b'-') {
        Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
        None => (arg, None),
    };
    let ms = parse_u64(ms).ok_or_else(invalid)?;
    let seq = match seq {
        Some(seq) => parse_u64(seq).ok_or_else(invalid)?,
        None => missing_seq,
    };
    Ok(StreamId::new(ms, seq))
}

/// An ID where `-` and `+` are allowed.
pub fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    parse_id_form(arg, missing_seq, IdForm::Range)
}

/// An ID where `-` and `+` are not.
pub fn parse_strict_id(arg: &[u8]) -> Result<StreamId, Reply> {
    parse_id_form(arg, 0, IdForm::Strict)
}

/// A range bound: `(` makes it exclusive (then `-`/`+` are refused). Returns the
/// ID and whether it is exclusive.
pub fn parse_interval_id(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Reply> {
    match arg.strip_prefix(b"(") {
        Some(rest) if !rest.is_empty() => Ok((parse_id_form(rest, missing_seq, IdForm::Strict)?, true)),
        _ => Ok((parse_id(arg, missing_seq)?, false)),
    }
}

/// The inclusive bounds of a range from its start and end arguments, or the error
/// Redis gives for an exclusive bound that has nothing beyond it.
pub fn parse_range(start: &[u8], end: &[u8]) -> Result<(StreamId, StreamId), Reply> {
    let (mut first, exclusive) = parse_interval_id(start, 0)?;
    if exclusive {
        first = first.next().ok_or(Reply::err("ERR invalid start ID for the interval"))?;
    }
    let (mut last, exclusive) = parse_interval_id(end, u64::MAX)?;
    if exclusive {
        last = last.prev().ok_or(Reply::err("ERR invalid end ID for the interval"))?;
    }
    Ok((first, last))
}

// --- access ---

/// The stream at `key` for a reader: `None` if absent, WRONGTYPE if not a stream.
pub fn read_stream<'a>(ctx: &mut ReadCtx<'a>, key: &[u8]) -> Result<Option<&'a Stream>, Reply> {
    ctx.get(key).map(Value::as_stream).transpose()
}

/// The stream at `key` for a writer: `None` if absent, WRONGTYPE if not a stream.
pub fn write_stream<'c>(ctx: &'c mut WriteCtx<'_>, key: &[u8]) -> Result<Option<&'c mut Stream>, Reply> {
    ctx.get_mut(key).map(Value::as_stream_mut).transpose()
}

// --- replies ---

pub fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

/// `[id, [field, value, …]]`.
pub fn entry_reply(entry: Entry<'_>) -> Reply {
    let mut items = Vec::with_capacity(entry.fields.len() * 2);
    for (field, value) in entry.fields {
        items.push(Reply::bulk(field));
        items.push(Reply::bulk(value));
    }
    Reply::Array(vec![id_reply(entry.id), Reply::Array(items)])
}

/// A `-NOGROUP …` error naming the key and group.
pub fn no_group(message: &str, key: &[u8], group: &[u8]) -> Reply {
    let text = message.replace("{key}", &String::from_utf8_lossy(key)).replace("{group}", &String::from_utf8_lossy(group));
    Reply::error(text)
}

/// Redis's reply to a malformed subcommand of a container command.
pub fn subcommand_syntax(command: &str, sub: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)]),
        command.to_ascii_uppercase()
    ))
}
