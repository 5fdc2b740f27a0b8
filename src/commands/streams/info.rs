//! XINFO STREAM [FULL [COUNT n]], XINFO GROUPS, XINFO CONSUMERS, XINFO HELP: maps
//! with Redis 7.0's fields (a flat array in RESP2).

use bytes::Bytes;

use super::groups::{help_reply, idle_ms, subcommand};
use super::*;
use crate::store::stream::{ConsumerGroup, Entries};

const SUBCOMMANDS: &[(&str, i32)] = &[("consumers", 4), ("groups", 3), ("stream", -3), ("help", 2)];

const HELP: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
];

const NOGROUP_FOR_KEY: &str = "NOGROUP No such consumer group '{group}' for key name '{key}'";

/// Entries and pending entries XINFO STREAM FULL lists without COUNT.
const FULL_COUNT_DEFAULT: usize = 10;

fn field(name: &'static str, value: Reply) -> (Reply, Reply) {
    (Reply::Bulk(Bytes::from_static(name.as_bytes())), value)
}

fn int(n: u64) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn opt_int(n: Option<u64>) -> Reply {
    n.map_or(Reply::Nil, int)
}

/// XINFO subcommand key …
pub fn xinfo(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let sub = subcommand("xinfo", SUBCOMMANDS, args)?;
    if sub == "help" {
        return Ok(help_reply("xinfo", HELP));
    }
    let key = &args[2];
    let stream = read_stream(ctx, key)?.ok_or(Reply::err(ERR_NO_KEY))?;
    match sub {
        "consumers" => {
            let group = stream.groups.get(&args[3][..]).ok_or_else(|| no_group(NOGROUP_FOR_KEY, key, &args[3]))?;
            Ok(consumers(group, ctx.now_ms))
        }
        "groups" => Ok(Reply::Array(stream.groups.iter().map(|(name, g)| group_summary(&stream.entries, name, g)).collect())),
        _ => stream_info(stream, &args[1], &args[3..]),
    }
}

fn consumers(group: &ConsumerGroup, now_ms: u64) -> Reply {
    Reply::Array(
        group
            .consumers
            .iter()
            .map(|(name, c)| {
                Reply::Map(vec![
                    field("name", Reply::bulk(name)),
                    field("pending", int(c.pending.len() as u64)),
                    field("idle", Reply::Int(idle_ms(now_ms, c.seen_time_ms).max(0))),
                ])
            })
            .collect(),
    )
}

fn group_summary(entries: &Entries, name: &[u8], group: &ConsumerGroup) -> Reply {
    Reply::Map(vec![
        field("name", Reply::bulk(name)),
        field("consumers", int(group.consumers.len() as u64)),
        field("pending", int(group.pending.len() as u64)),
        field("last-delivered-id", id_reply(group.last_id)),
        field("entries-read", opt_int(group.entries_read)),
        field("lag", entries.lag(group).map_or(Reply::Nil, Reply::Int)),
    ])
}

/// `[FULL [COUNT n]]`: `None` without FULL, else the count (0 = everything).
fn parse_full(sub: &[u8], options: &[Bytes]) -> Result<Option<usize>, Reply> {
    let syntax = || subcommand_syntax("xinfo", sub);
    match options {
        [] => Ok(None),
        [full] if is(full, "full") => Ok(Some(FULL_COUNT_DEFAULT)),
        [full, count, n] if is(full, "full") && is(count, "count") => {
            let n = int_arg(n)?;
            Ok(Some(if n < 0 { FULL_COUNT_DEFAULT } else { usize::try_from(n).unwrap_or(usize::MAX) }))
        }
        _ => Err(syntax()),
    }
}

/// The fields XINFO STREAM starts with, FULL or not.
fn stream_header(entries: &Entries) -> Vec<(Reply, Reply)> {
    let keys = entries.node_count() as u64;
    vec![
        field("length", int(entries.len())),
        field("radix-tree-keys", int(keys)),
        // Redis counts the radix tree's inner nodes; a B-tree has none to report
        // alike: the keys plus the root is what a small stream shows there.
        field("radix-tree-nodes", int(keys + 1)),
        field("last-generated-id", id_reply(entries.last_id())),
        field("max-deleted-entry-id", id_reply(entries.max_deleted_id())),
        field("entries-added", int(entries.entries_added())),
        field("recorded-first-entry-id", id_reply(entries.first_id())),
    ]
}

fn stream_info(stream: &Stream, sub: &[u8], options: &[Bytes]) -> CmdResult {
    let full = parse_full(sub, options)?;
    let entries = &stream.entries;
    let mut map = stream_header(entries);
    let Some(count) = full else {
        map.push(field("groups", int(stream.groups.len() as u64)));
        let first = entries.range(StreamId::MIN, StreamId::MAX).next().map_or(Reply::Nil, entry_reply);
        let last = entries.range_rev(StreamId::MIN, StreamId::MAX).next().map_or(Reply::Nil, entry_reply);
        map.push(field("first-entry", first));
        map.push(field("last-entry", last));
        return Ok(Reply::Map(map));
    };
    let take = if count == 0 { usize::MAX } else { count };
    map.push(field("entries", Reply::Array(entries.range(StreamId::MIN, StreamId::MAX).take(take).map(entry_reply).collect())));
    let groups = stream.groups.iter().map(|(name, g)| group_full(entries, name, g, take)).collect();
    map.push(field("groups", Reply::Array(groups)));
    Ok(Reply::Map(map))
}

fn group_full(entries: &Entries, name: &[u8], group: &ConsumerGroup, take: usize) -> Reply {
    let pending = group
        .pending
        .iter()
        .take(take)
        .map(|(id, p)| Reply::Array(vec![id_reply(*id), Reply::bulk(&p.consumer), int(p.delivery_time_ms), int(p.delivery_count)]))
        .collect();
    let consumers = group
        .consumers
        .iter()
        .map(|(cname, c)| {
            let owned = c
                .pending
                .iter()
                .take(take)
                .filter_map(|id| group.pending.get(id).map(|p| (id, p)))
                .map(|(id, p)| Reply::Array(vec![id_reply(*id), int(p.delivery_time_ms), int(p.delivery_count)]))
                .collect();
            Reply::Map(vec![
                field("name", Reply::bulk(cname)),
                field("seen-time", int(c.seen_time_ms)),
                field("pel-count", int(c.pending.len() as u64)),
                field("pending", Reply::Array(owned)),
            ])
        })
        .collect();
    Reply::Map(vec![
        field("name", Reply::bulk(name)),
        field("last-delivered-id", id_reply(group.last_id)),
        field("entries-read", opt_int(group.entries_read)),
        field("lag", entries.lag(group).map_or(Reply::Nil, Reply::Int)),
        field("pel-count", int(group.pending.len() as u64)),
        field("pending", Reply::Array(pending)),
        field("consumers", Reply::Array(consumers)),
    ])
}
