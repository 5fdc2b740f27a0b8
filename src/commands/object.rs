//! OBJECT ENCODING / REFCOUNT / IDLETIME / FREQ / HELP: what Redis reports about a
//! key's value. The answers come from [`crate::store::encoding`] (Redis 7.0's
//! encoding for the value's size under this server's thresholds) and from the key's
//! access metadata; looking does not count as an access.

use bytes::Bytes;

use super::flags::*;
use super::*;
use crate::protocol::reply::Reply;
use crate::store::encoding;

const G: &str = "generic";

pub static COMMANDS: &[CommandSpec] =
    &[spec("object", -2, READONLY, (2, 2, 1), G, "A container for object introspection commands.", Handler::Read(object))];

const ERR_NOT_LFU: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
const ERR_LFU: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

#[derive(Clone, Copy)]
enum Sub {
    Encoding,
    RefCount,
    IdleTime,
    Freq,
}

fn object(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let sub_arg = &args[1];
    let sub = match () {
        _ if is(sub_arg, "help") && args.len() == 2 => return Ok(Reply::Array(HELP.iter().map(|l| Reply::status(l)).collect())),
        _ if is(sub_arg, "encoding") => Sub::Encoding,
        _ if is(sub_arg, "refcount") => Sub::RefCount,
        _ if is(sub_arg, "idletime") => Sub::IdleTime,
        _ if is(sub_arg, "freq") => Sub::Freq,
        _ if is(sub_arg, "help") => return Err(wrong_args("object|help")),
        _ => return Err(unknown_subcommand("object", sub_arg)),
    };
    if args.len() != 3 {
        return Err(wrong_args(&format!("object|{}", String::from_utf8_lossy(sub_arg).to_ascii_lowercase())));
    }
    let Some(item) = ctx.item(&args[2]) else { return Ok(Reply::Nil) };
    Ok(match sub {
        Sub::Encoding => Reply::bulk(encoding::encoding_name(&item.value, ctx.local).as_bytes()),
        Sub::RefCount => Reply::Int(encoding::refcount(&item.value, ctx.local)),
        Sub::IdleTime if ctx.local.lfu => return Err(Reply::err(ERR_LFU)),
        Sub::IdleTime => Reply::Int(item.idle_seconds(ctx.now_ms) as i64),
        Sub::Freq if !ctx.local.lfu => return Err(Reply::err(ERR_NOT_LFU)),
        Sub::Freq => Reply::Int(i64::from(item.lfu_counter(ctx.now_ms))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run};
    use crate::store::Store;

    #[test]
    fn encoding_follows_the_value_and_the_thresholds() {
        let mut store = Store::new();
        run(&mut store, 1_000, &["set", "n", "123"]);
        run(&mut store, 1_000, &["set", "s", "hello"]);
        run(&mut store, 1_000, &["zadd", "z", "1", "a"]);
        run(&mut store, 1_000, &["rpush", "l", "a"]);
        assert_eq!(run(&mut store, 1_000, &["object", "encoding", "n"]), bulk("int"));
        assert_eq!(run(&mut store, 1_000, &["object", "encoding", "s"]), bulk("embstr"));
        assert_eq!(run(&mut store, 1_000, &["object", "encoding", "z"]), bulk("listpack"));
        assert_eq!(run(&mut store, 1_000, &["object", "encoding", "l"]), bulk("quicklist"));
        store.local.zset_listpack_entries = 0;
        assert_eq!(run(&mut store, 1_000, &["object", "encoding", "z"]), bulk("skiplist"));
        assert_eq!(run(&mut store, 1_000, &["object", "encoding", "missing"]), Reply::Nil);
    }

    #[test]
    fn idletime_freq_and_refcount() {
        let mut store = Store::new();
        run(&mut store, 1_000, &["set", "k", "v"]);
        assert_eq!(run(&mut store, 11_000, &["object", "idletime", "k"]), Reply::Int(10));
        assert_eq!(run(&mut store, 11_000, &["object", "freq", "k"]), err(ERR_NOT_LFU));
        assert_eq!(run(&mut store, 11_000, &["object", "refcount", "k"]), Reply::Int(1));
        store.local.lfu = true;
        assert_eq!(run(&mut store, 11_000, &["object", "freq", "k"]), Reply::Int(5));
        assert_eq!(run(&mut store, 11_000, &["object", "idletime", "k"]), err(ERR_LFU));
    }

    #[test]
    fn help_and_argument_errors() {
        let mut store = Store::new();
        let Reply::Array(lines) = run(&mut store, 1_000, &["object", "help"]) else { panic!() };
        assert_eq!(lines.len(), HELP.len());
        assert_eq!(run(&mut store, 1_000, &["object", "encoding"]), err("ERR wrong number of arguments for 'object|encoding' command"));
        assert_eq!(run(&mut store, 1_000, &["object", "bogus", "k"]), err("ERR unknown subcommand 'bogus'. Try OBJECT HELP."));
    }
}
