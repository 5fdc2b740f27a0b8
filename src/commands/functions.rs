//! FUNCTION LOAD, DELETE, FLUSH, LIST, DUMP, RESTORE, STATS, KILL, HELP: function
//! libraries as replicated state ([`crate::store::scripts`]). Loading runs the library's
//! chunk in the store's Lua engine (deterministically, with a fixed instruction budget)
//! to learn which functions it registers; FCALL is in [`super::scripting`].

use bytes::Bytes;

use super::flags::*;
use super::scripting::{flush_mode, unknown_subcommand_args};
use super::*;
use crate::protocol::reply::Reply;
use crate::store::codec::{crc64, put_bytes, put_varint, Decoder};
use crate::store::scripts::{flag, Library};

const G: &str = "scripting";

pub const FUNCTION: CommandSpec = container("function", NOSCRIPT, G, "A container for function commands.", SUBCOMMANDS);

static SUBCOMMANDS: &[CommandSpec] = &[
    spec("function|load", -3, WRITE | DENYOOM | NOSCRIPT, (0, 0, 0), G, "Creates a library.", Handler::Write(load)),
    spec("function|delete", 3, WRITE | NOSCRIPT, (0, 0, 0), G, "Deletes a library and its functions.", Handler::Write(delete)),
    spec("function|flush", -2, WRITE | NOSCRIPT, (0, 0, 0), G, "Deletes all libraries and functions.", Handler::Write(flush)),
    spec(
        "function|restore",
        -3,
        WRITE | DENYOOM | NOSCRIPT,
        (0, 0, 0),
        G,
        "Restores all libraries from a payload.",
        Handler::Write(restore),
    ),
    spec("function|list", -2, READONLY | NOSCRIPT, (0, 0, 0), G, "Returns information about all libraries.", Handler::Read(list)),
    spec(
        "function|dump",
        2,
        READONLY | NOSCRIPT,
        (0, 0, 0),
        G,
        "Dumps all libraries into a serialized binary payload.",
        Handler::Read(dump),
    ),
    spec(
        "function|stats",
        2,
        READONLY | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Returns information about a function during execution.",
        Handler::Read(stats),
    ),
    spec(
        "function|kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Terminates a function during execution.",
        Handler::Server(Srv::FunctionKill),
    ),
    spec(
        "function|help",
        2,
        READONLY | STALE | LOADING,
        (0, 0, 0),
        G,
        "Returns helpful text about the different subcommands.",
        Handler::Read(help),
    ),
];

/// The version written in FUNCTION DUMP payloads.
const DUMP_VERSION: u16 = 1;

fn engine<'e>(ctx: &'e mut WriteCtx) -> Result<&'e mut crate::scripting::Engine, Reply> {
    ctx.engine.as_deref_mut().ok_or(Reply::err("ERR scripts cannot manage functions"))
}

fn load(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut at = 2;
    while at < args.len() - 1 {
        if is(&args[at], "replace") {
            replace = true;
            at += 1;
            continue;
        }
        return Err(Reply::error(format!("ERR Unknown option given: {}", String::from_utf8_lossy(&args[at]))));
    }
    let code = args[at].clone();
    if !replace {
        if let Ok(h) = crate::scripting::shebang::library_header(&code) {
            // Redis's order: the engine and the name are checked before the name's use.
            let checked = h.engine.eq_ignore_ascii_case("lua") && crate::scripting::shebang::valid_name(&h.name);
            if checked && ctx.db.scripts.library(&h.name).is_some() {
                return Err(Reply::error(format!("ERR Library '{}' already exists", h.name)));
            }
        }
    }
    let library = engine(ctx)?.load_library(&code)?;
    let name = library.name.clone();
    ctx.db.scripts.add_libraries(vec![library], replace).map_err(|e| Reply::error(e.to_string()))?;
    *ctx.dirty += 1;
    Ok(Reply::Bulk(Bytes::from(name)))
}

fn delete(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    if !ctx.db.scripts.remove_library(&String::from_utf8_lossy(&args[2])) {
        return Err(Reply::err("ERR Library not found"));
    }
    *ctx.dirty += 1;
    Ok(Reply::ok())
}

fn flush(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    flush_mode(args, "FUNCTION")?;
    ctx.db.scripts.flush_libraries();
    *ctx.dirty += 1;
    Ok(Reply::ok())
}

fn list(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let (mut with_code, mut pattern): (bool, Option<&Bytes>) = (false, None);
    let mut i = 2;
    while i < args.len() {
        if !with_code && is(&args[i], "withcode") {
            with_code = true;
        } else if pattern.is_none() && is(&args[i], "libraryname") {
            pattern = Some(args.get(i + 1).ok_or(Reply::err("ERR library name argument was not given"))?);
            i += 1;
        } else {
            return Err(Reply::error(format!("ERR Unknown argument {}", String::from_utf8_lossy(&args[i]))));
        }
        i += 1;
    }
    let libraries = ctx
        .db
        .scripts
        .libraries()
        .filter(|l| pattern.is_none_or(|p| glob_match(p, l.name.as_bytes(), true)))
        .map(|l| library_entry(l, with_code))
        .collect();
    Ok(Reply::Array(libraries))
}

fn library_entry(l: &Library, with_code: bool) -> Reply {
    let functions = l
        .functions
        .iter()
        .map(|f| {
            let flags = flag::NAMES.iter().filter(|(bit, _)| f.flags & bit != 0).map(|(_, n)| Reply::status(n)).collect();
            Reply::Map(vec![
                (Reply::bulk(b"name"), Reply::bulk_str(&f.name)),
                (Reply::bulk(b"description"), f.description.as_deref().map_or(Reply::Nil, Reply::bulk_str)),
                (Reply::bulk(b"flags"), Reply::Set(flags)),
            ])
        })
        .collect();
    let mut entry = vec![
        (Reply::bulk(b"library_name"), Reply::bulk_str(&l.name)),
        (Reply::bulk(b"engine"), Reply::bulk_str(&l.engine)),
        (Reply::bulk(b"functions"), Reply::Array(functions)),
    ];
    if with_code {
        entry.push((Reply::bulk(b"library_code"), Reply::Bulk(l.code.clone())));
    }
    Reply::Map(entry)
}

/// FUNCTION DUMP: every library's code, then a version and a CRC-64 (as DUMP payloads).
fn dump(ctx: &mut ReadCtx, _: &[Bytes]) -> CmdResult {
    let mut out = Vec::new();
    let libraries: Vec<&Library> = ctx.db.scripts.libraries().collect();
    put_varint(&mut out, libraries.len() as u64);
    for l in libraries {
        put_bytes(&mut out, &l.code);
    }
    out.extend_from_slice(&DUMP_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(Reply::Bulk(Bytes::from(out)))
}

/// The library codes of a FUNCTION DUMP payload, checked.
fn read_dump(payload: &[u8]) -> Option<Vec<Bytes>> {
    let (body, crc) = payload.split_last_chunk::<8>()?;
    if crc64(body) != u64::from_le_bytes(*crc) {
        return None;
    }
    let (codes, version) = body.split_last_chunk::<2>()?;
    if u16::from_le_bytes(*version) != DUMP_VERSION {
        return None;
    }
    let mut d = Decoder::new(codes);
    let count = d.count("library count", 1).ok()?;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        out.push(Bytes::copy_from_slice(d.bytes("library code").ok()?));
    }
    d.finish().ok()?;
    Some(out)
}

fn restore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(unknown_subcommand_args("function", "restore"));
    }
    #[derive(PartialEq)]
    enum Policy {
        Append,
        Replace,
        Flush,
    }
    let policy = match args.get(3) {
        None => Policy::Append,
        Some(p) if is(p, "append") => Policy::Append,
        Some(p) if is(p, "replace") => Policy::Replace,
        Some(p) if is(p, "flush") => Policy::Flush,
        Some(_) => return Err(Reply::err("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")),
    };
    let codes = read_dump(&args[2]).ok_or(Reply::err("ERR DUMP payload version or checksum are wrong"))?;
    let engine = engine(ctx)?;
    let libraries = codes.iter().map(|code| engine.load_library(code)).collect::<Result<Vec<_>, _>>()?;
    if policy == Policy::Flush {
        let mut fresh = crate::store::scripts::Scripts::default();
        fresh.add_libraries(libraries, false).map_err(|e| Reply::error(e.to_string()))?;
        ctx.db.scripts.flush_libraries();
        let restored: Vec<Library> = fresh.libraries().cloned().collect();
        ctx.db.scripts.add_libraries(restored, false).map_err(|e| Reply::error(e.to_string()))?;
    } else {
        ctx.db.scripts.add_libraries(libraries, policy == Policy::Replace).map_err(restore_error)?;
    }
    *ctx.dirty += 1;
    Ok(Reply::ok())
}

/// FUNCTION RESTORE's error when a library is already there: Redis's libraryJoin names
/// it without the quotes FUNCTION LOAD's message has.
fn restore_error(e: crate::store::scripts::ScriptsError) -> Reply {
    match e {
        crate::store::scripts::ScriptsError::LibraryExists(name) => Reply::error(format!("ERR Library {name} already exists")),
        other => Reply::error(other.to_string()),
    }
}

fn stats(ctx: &mut ReadCtx, _: &[Bytes]) -> CmdResult {
    Ok(stats_reply(None, ctx.db.scripts.library_count(), ctx.db.scripts.function_count()))
}

/// FUNCTION STATS: the function running now (name, the command that called it, how
/// long it has run), and what is loaded. A function that runs past the busy threshold
/// holds the store: the server then answers from the script's status (`scripting::status`).
pub fn stats_reply(running: Option<crate::scripting::status::RunningScript>, libraries: usize, functions: usize) -> Reply {
    let lua = Reply::Map(vec![
        (Reply::bulk(b"libraries_count"), Reply::Int(libraries as i64)),
        (Reply::bulk(b"functions_count"), Reply::Int(functions as i64)),
    ]);
    let running = match running {
        None => Reply::Nil,
        Some(script) => Reply::Map(vec![
            (Reply::bulk(b"name"), Reply::bulk(script.name.as_bytes())),
            (Reply::bulk(b"command"), Reply::Array(script.command.into_iter().map(Reply::Bulk).collect())),
            (Reply::bulk(b"duration_ms"), Reply::Int(script.duration_ms as i64)),
        ]),
    };
    Reply::Map(vec![(Reply::bulk(b"running_script"), running), (Reply::bulk(b"engines"), Reply::Map(vec![(Reply::bulk(b"LUA"), lua)]))])
}

fn help(_: &mut ReadCtx, _: &[Bytes]) -> CmdResult {
    let lines = [
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries.",
        "STATS",
        "    Return information about the current function running.",
        "KILL",
        "    Kill the current running read-only function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries.",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload.",
        "HELP",
        "    Print this help.",
    ];
    Ok(Reply::Array(lines.iter().map(|l| Reply::Status(l.to_string().into())).collect()))
}
