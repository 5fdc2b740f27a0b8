//! XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER, HELP), XACK and XPENDING.

use bytes::Bytes;

use super::*;
use crate::protocol::reply::OK;
use crate::store::stream::ConsumerGroup;

const ERR_KEY_REQUIRED: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
const ERR_BUSYGROUP: &str = "BUSYGROUP Consumer Group name already exists";
const ERR_ENTRIES_READ: &str = "ERR value for ENTRIESREAD must be positive or -1";
const NOGROUP_FOR_KEY: &str = "NOGROUP No such consumer group '{group}' for key name '{key}'";
pub const NOGROUP_KEY_OR_GROUP: &str = "NOGROUP No such key '{key}' or consumer group '{group}'";

/// XGROUP's subcommands with Redis 7's arities (counting `XGROUP` and the subcommand).
const SUBCOMMANDS: &[(&str, i32)] =
    &[("create", -5), ("setid", -5), ("destroy", 4), ("createconsumer", 5), ("delconsumer", 5), ("help", 2)];

const HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

/// Redis's reply to `<COMMAND> HELP`: a status line per line of `lines`.
pub fn help_reply(command: &str, lines: &[&'static str]) -> Reply {
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Status(format!("{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", command.to_ascii_uppercase()).into()));
    out.extend(lines.iter().map(|l| Reply::status(l)));
    out.push(Reply::status("HELP"));
    out.push(Reply::status("    Prints this help."));
    Reply::Array(out)
}

/// The subcommand of a container command, checked against its arity as Redis's
/// command table does: unknown → "Try X HELP", wrong arity → `'x|sub'` arguments error.
pub fn subcommand(command: &str, table: &[(&'static str, i32)], args: &[Bytes]) -> Result<&'static str, Reply> {
    let sub = &args[1];
    let Some(&(name, arity)) = table.iter().find(|(name, _)| is(sub, name)) else {
        return Err(unknown_subcommand(command, sub));
    };
    let fits = if arity >= 0 { args.len() == arity as usize } else { args.len() >= arity.unsigned_abs() as usize };
    if !fits {
        return Err(wrong_args(&format!("{command}|{name}")));
    }
    Ok(name)
}

/// CREATE's and SETID's options after the ID.
struct GroupOptions {
    mkstream: bool,
    entries_read: Option<u64>,
}

fn parse_group_options(args: &[Bytes], sub: &str) -> Result<GroupOptions, Reply> {
    let mut options = GroupOptions { mkstream: false, entries_read: None };
    let mut i = 5;
    while i < args.len() {
        if sub == "create" && is(&args[i], "mkstream") {
            options.mkstream = true;
            i += 1;
        } else if matches!(sub, "create" | "setid") && is(&args[i], "entriesread") && i + 1 < args.len() {
            let n = int_arg(&args[i + 1])?;
            options.entries_read = match n {
                -1 => None,
                n => Some(u64::try_from(n).map_err(|_| Reply::err(ERR_ENTRIES_READ))?),
            };
            i += 2;
        } else {
            return Err(subcommand_syntax("xgroup", &args[1]));
        }
    }
    Ok(options)
}

/// XGROUP subcommand key group …
pub fn xgroup(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let sub = subcommand("xgroup", SUBCOMMANDS, args)?;
    if sub == "help" {
        return Ok(help_reply("xgroup", HELP));
    }
    let options = parse_group_options(args, sub)?;
    let (key, group) = (&args[2], &args[3]);
    let exists = ctx.get(key).map(Value::as_stream).transpose()?.map(|s| s.groups.contains_key(&group[..]));
    if !options.mkstream {
        match exists {
            None => return Err(Reply::err(ERR_KEY_REQUIRED)),
            Some(false) if matches!(sub, "setid" | "createconsumer" | "delconsumer") => {
                return Err(no_group(NOGROUP_FOR_KEY, key, group));
            }
            _ => {}
        }
    }
    match sub {
        "create" if args.len() <= 8 => group_create(ctx, args, options.entries_read),
        "setid" if args.len() == 5 || args.len() == 7 => group_setid(ctx, args, options.entries_read),
        "destroy" => group_destroy(ctx, key, group),
        "createconsumer" => {
            let now_ms = ctx.now_ms;
            let created = stream_group(ctx, key, group)?.is_some_and(|g| g.create_consumer(&args[4], now_ms));
            if created {
                ctx.notify(b't', "xgroup-createconsumer", key);
            }
            Ok(Reply::Int(i64::from(created)))
        }
        "delconsumer" => {
            let pending = stream_group(ctx, key, group)?.and_then(|g| g.remove_consumer(&args[4]));
            if pending.is_some() {
                ctx.notify(b't', "xgroup-delconsumer", key);
            }
            Ok(Reply::Int(pending.map_or(0, |n| n as i64)))
        }
        _ => Err(subcommand_syntax("xgroup", &args[1])),
    }
}

/// The group `group` of the stream at `key`, if both exist.
fn stream_group<'c>(ctx: &'c mut WriteCtx<'_>, key: &[u8], group: &[u8]) -> Result<Option<&'c mut ConsumerGroup>, Reply> {
    Ok(write_stream(ctx, key)?.and_then(|s| s.groups.get_mut(group)))
}

fn group_create(ctx: &mut WriteCtx, args: &[Bytes], entries_read: Option<u64>) -> CmdResult {
    let (key, name) = (&args[2], &args[3]);
    let last_id = match &args[4][..] {
        b"$" => write_stream(ctx, key)?.map_or(StreamId::MIN, |s| s.entries.last_id()),
        id => parse_strict_id(id)?,
    };
    let stream = ctx.get_or_insert(key, || Value::Stream(Box::default())).as_stream_mut()?;
    if stream.groups.contains_key(&name[..]) {
        return Err(Reply::err(ERR_BUSYGROUP));
    }
    stream.groups.insert(Blob::from(&name[..]), ConsumerGroup::new(last_id, entries_read));
    ctx.notify(b't', "xgroup-create", key);
    Ok(OK)
}

fn group_setid(ctx: &mut WriteCtx, args: &[Bytes], entries_read: Option<u64>) -> CmdResult {
    let (key, name) = (&args[2], &args[3]);
    let Some(stream) = write_stream(ctx, key)? else { return Err(Reply::err(ERR_KEY_REQUIRED)) };
    let last_id = match &args[4][..] {
        b"$" => stream.entries.last_id(),
        id => parse_id(id, 0)?,
    };
    let Some(group) = stream.groups.get_mut(&name[..]) else { return Err(no_group(NOGROUP_FOR_KEY, key, name)) };
    group.last_id = last_id;
    group.entries_read = entries_read;
    ctx.notify(b't', "xgroup-setid", key);
    Ok(OK)
}

fn group_destroy(ctx: &mut WriteCtx, key: &Bytes, name: &Bytes) -> CmdResult {
    let removed = write_stream(ctx, key)?.is_some_and(|s| s.groups.remove(&name[..]).is_some());
    if !removed {
        return Ok(Reply::Int(0));
    }
    ctx.notify(b't', "xgroup-destroy", key);
    // A consumer waiting on this group must learn it is gone.
    ctx.signal_ready(key);
    Ok(Reply::Int(1))
}

/// XACK key group id [id …]: how many of the IDs were pending.
pub fn xack(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, name) = (&args[1], &args[2]);
    let has_group = ctx.get(key).map(Value::as_stream).transpose()?.is_some_and(|s| s.groups.contains_key(&name[..]));
    if !has_group {
        return Ok(Reply::Int(0));
    }
    let ids = args[3..].iter().map(|a| parse_strict_id(a)).collect::<Result<Vec<_>, _>>()?;
    let Some(group) = stream_group(ctx, key, name)? else { return Ok(Reply::Int(0)) };
    let acked = ids.into_iter().filter(|id| group.acknowledge(*id)).count();
    *ctx.dirty += acked as u64;
    Ok(Reply::Int(acked as i64))
}

/// XPENDING's range form.
struct PendingRange<'a> {
    min_idle_ms: i64,
    start: StreamId,
    end: StreamId,
    count: usize,
    consumer: Option<&'a Bytes>,
}

fn parse_pending_range(args: &[Bytes]) -> Result<Option<PendingRange<'_>>, Reply> {
    if args.len() != 3 && !(6..=9).contains(&args.len()) {
        return Err(Reply::err(ERR_SYNTAX));
    }
    if args.len() == 3 {
        return Ok(None);
    }
    let mut at = 3;
    let mut min_idle_ms = 0;
    if is(&args[3], "idle") {
        min_idle_ms = int_arg(&args[4])?;
        if args.len() < 8 {
            return Err(Reply::err(ERR_SYNTAX));
        }
        at += 2;
    }
    let count = usize::try_from(int_arg(&args[at + 2])?).unwrap_or(0);
    let (start, end) = parse_range(&args[at], &args[at + 1])?;
    Ok(Some(PendingRange { min_idle_ms, start, end, count, consumer: args.get(at + 3) }))
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
pub fn xpending(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let range = parse_pending_range(args)?;
    let (key, name) = (&args[1], &args[2]);
    let group = read_stream(ctx, key)?.and_then(|s| s.groups.get(&name[..]));
    let Some(group) = group else { return Err(no_group(NOGROUP_KEY_OR_GROUP, key, name)) };
    match range {
        None => Ok(pending_summary(group)),
        Some(range) => Ok(pending_entries(group, &range, ctx.now_ms)),
    }
}

fn pending_summary(group: &ConsumerGroup) -> Reply {
    let (Some((first, _)), Some((last, _))) = (group.pending.first_key_value(), group.pending.last_key_value()) else {
        return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]);
    };
    let consumers = group
        .consumers
        .iter()
        .filter(|(_, c)| !c.pending.is_empty())
        .map(|(name, c)| Reply::Array(vec![Reply::bulk(name), Reply::Bulk(Bytes::from(c.pending.len().to_string()))]))
        .collect();
    Reply::Array(vec![Reply::Int(group.pending.len() as i64), id_reply(*first), id_reply(*last), Reply::Array(consumers)])
}

/// Idle time of a delivery at `now_ms`, as Redis computes it (may be negative when
/// the reader's clock is behind the entry's).
pub fn idle_ms(now_ms: u64, then_ms: u64) -> i64 {
    (i128::from(now_ms) - i128::from(then_ms)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn pending_entries(group: &ConsumerGroup, range: &PendingRange, now_ms: u64) -> Reply {
    let ids: Box<dyn Iterator<Item = &StreamId>> = match range.consumer {
        Some(name) => match group.consumers.get(&name[..]) {
            Some(consumer) => Box::new(consumer.pending.range(range.start..)),
            None => return Reply::Array(Vec::new()),
        },
        None => Box::new(group.pending.range(range.start..).map(|(id, _)| id)),
    };
    let mut out = Vec::new();
    for id in ids.take_while(|id| **id <= range.end) {
        if out.len() >= range.count {
            break;
        }
        let Some(pending) = group.pending.get(id) else { continue };
        let idle = idle_ms(now_ms, pending.delivery_time_ms);
        if range.min_idle_ms != 0 && idle < range.min_idle_ms {
            continue;
        }
        out.push(Reply::Array(vec![
            id_reply(*id),
            Reply::bulk(&pending.consumer),
            Reply::Int(idle.max(0)),
            Reply::Int(i64::try_from(pending.delivery_count).unwrap_or(i64::MAX)),
        ]));
    }
    Reply::Array(out)
}
