//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO, SCRIPT …,
//! FUNCTION … (in [`super::functions`]) and TANDEM.SCRIPTLIMITS, and the rules for the
//! commands a script calls ([`ScriptHost`]).
//!
//! EVAL, EVALSHA and FCALL are write commands: they go through the log and run inside
//! `Store::apply` on every server, with the entry's time and seed. The `_RO` forms run
//! on the read path and cannot write. A script may touch keys it did not declare, as
//! in standalone Redis, unless the stripe's `undeclared-keys` limit is `deny`.

use bytes::Bytes;
use rand_core::RngCore;

use super::flags::*;
use super::*;
use crate::protocol::reply::Reply;
use crate::scripting::engine::no_writes;
use crate::scripting::{FunctionCall, Host, RunOptions, ScriptCall};
use crate::store::encoding::LocalSettings;
use crate::store::scripts::{flag, sha1_hex, ScriptLimits};

const G: &str = "scripting";

pub const ERR_NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
const ERR_RO_SCRIPT: &str = "ERR Can not execute a script with write flag using *_ro command.";
const ERR_OOM_SCRIPT: &str = "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'";
const ERR_WRITE_FROM_RO: &str = "ERR Write commands are not allowed from read-only scripts.";

pub static COMMANDS: &[CommandSpec] = &[
    numkeys_spec("eval", -3, WRITE | NOSCRIPT | STALE | SCRIPT, 2, G, "Executes a server-side Lua script.", Handler::Write(eval)),
    numkeys_spec(
        "evalsha",
        -3,
        WRITE | NOSCRIPT | STALE | SCRIPT,
        2,
        G,
        "Executes a server-side Lua script by SHA1 digest.",
        Handler::Write(evalsha),
    ),
    numkeys_spec(
        "eval_ro",
        -3,
        READONLY | NOSCRIPT | STALE | SCRIPT,
        2,
        G,
        "Executes a read-only server-side Lua script.",
        Handler::Read(eval_ro),
    ),
    numkeys_spec(
        "evalsha_ro",
        -3,
        READONLY | NOSCRIPT | STALE | SCRIPT,
        2,
        G,
        "Executes a read-only server-side Lua script by SHA1 digest.",
        Handler::Read(evalsha_ro),
    ),
    numkeys_spec("fcall", -3, WRITE | NOSCRIPT | STALE | SCRIPT, 2, G, "Invokes a function.", Handler::Write(fcall)),
    numkeys_spec("fcall_ro", -3, READONLY | NOSCRIPT | STALE | SCRIPT, 2, G, "Invokes a read-only function.", Handler::Read(fcall_ro)),
    container("script", NOSCRIPT, G, "A container for Lua scripts management commands.", SCRIPT_SUBCOMMANDS),
    super::functions::FUNCTION,
    spec(
        "tandem.scriptlimits",
        -1,
        WRITE | ADMIN | NOSCRIPT,
        (0, 0, 0),
        G,
        "Shows or sets the stripe's script limits: INSTRUCTIONS n, MEMORY bytes, UNDECLARED-KEYS allow|deny.",
        Handler::Write(script_limits),
    ),
    spec(
        AS_USER,
        -4,
        WRITE | NOSCRIPT | SCRIPT,
        (0, 0, 0),
        G,
        "Runs the script command that follows as the named ACL user (a restricted user's scripts).",
        Handler::Write(run_as_user),
    )
    .movable(keys_as_user),
    spec(
        AS_USER_RO,
        -4,
        READONLY | NOSCRIPT | SCRIPT,
        (0, 0, 0),
        G,
        "Runs the read-only script command that follows as the named ACL user.",
        Handler::Read(run_as_user_ro),
    )
    .movable(keys_as_user),
    spec(
        OOM_MARK,
        -4,
        WRITE | INTERNAL | NOSCRIPT | SCRIPT,
        (0, 0, 0),
        G,
        "Runs the script command that follows as proposed while memory was over maxmemory.",
        Handler::Write(script_oom),
    )
    .movable(keys_marked),
    spec(
        NOREPLICAS_MARK,
        -4,
        WRITE | INTERNAL | NOSCRIPT | SCRIPT,
        (0, 0, 0),
        G,
        "Runs the script command that follows as proposed while min-replicas-to-write was not met.",
        Handler::Write(script_noreplicas),
    )
    .movable(keys_marked),
    spec(
        MISCONF_MARK,
        -4,
        WRITE | INTERNAL | NOSCRIPT | SCRIPT,
        (0, 0, 0),
        G,
        "Runs the script command that follows as proposed while the active's last snapshot had failed.",
        Handler::Write(script_misconf),
    )
    .movable(keys_marked),
];

static SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "script|load",
        3,
        WRITE | NOSCRIPT | STALE | DENYOOM | NOT_PAUSED,
        (0, 0, 0),
        G,
        "Loads a server-side Lua script to the script cache.",
        Handler::Write(script_load),
    ),
    spec(
        "script|exists",
        -3,
        READONLY | NOSCRIPT,
        (0, 0, 0),
        G,
        "Determines whether server-side Lua scripts exist in the script cache.",
        Handler::Read(script_exists),
    ),
    spec(
        "script|flush",
        -2,
        WRITE | NOSCRIPT | NOT_PAUSED,
        (0, 0, 0),
        G,
        "Removes all server-side Lua scripts from the script cache.",
        Handler::Write(script_flush),
    ),
    spec(
        "script|kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Terminates a server-side Lua script during execution.",
        Handler::Server(Srv::ScriptKill),
    ),
    spec(
        "script|help",
        2,
        READONLY | STALE | LOADING,
        (0, 0, 0),
        G,
        "Returns helpful text about the different subcommands.",
        Handler::Read(script_help),
    ),
    spec(
        "script|debug",
        3,
        READONLY | NOSCRIPT,
        (0, 0, 0),
        G,
        "Sets the debug mode of server-side Lua scripts.",
        Handler::Read(script_debug),
    ),
];

/// The marks the active puts on a script command so that every server runs it with
/// the same decision: proposed while memory was over maxmemory (its deny-oom calls
/// fail), or while `min-replicas-to-write` was not met (its writes fail; it may carry
/// the OOM mark inside).
pub const OOM_MARK: &str = "tandem.scriptoom";
pub const NOREPLICAS_MARK: &str = "tandem.scriptnoreplicas";
pub const MISCONF_MARK: &str = "tandem.scriptmisconf";

/// `args` (a script command) under `mark`.
pub fn marked(mark: &'static str, args: &[Bytes]) -> Vec<Bytes> {
    let mut marked = Vec::with_capacity(args.len() + 1);
    marked.push(Bytes::from_static(mark.as_bytes()));
    marked.extend_from_slice(args);
    marked
}

/// The wrappers that run a script command as an ACL user: admission wraps the
/// scripts of a restricted user, so that apply (on every member) checks each
/// `redis.call` against that user's rules as they are in the stripe's state then.
pub const AS_USER: &str = "tandem.asuser";
pub const AS_USER_RO: &str = "tandem.asuser_ro";

/// `args` (a script command) as run by `user`: the wrapper that fits it.
pub fn as_user(user: &str, args: &[Bytes], read_only: bool) -> Vec<Bytes> {
    let mut wrapped = Vec::with_capacity(args.len() + 2);
    wrapped.push(Bytes::from_static(if read_only { AS_USER_RO.as_bytes() } else { AS_USER.as_bytes() }));
    wrapped.push(Bytes::copy_from_slice(user.as_bytes()));
    wrapped.extend_from_slice(args);
    wrapped
}

/// Whether `spec` is one of the [`as_user`] wrappers.
pub fn is_as_user(spec: &CommandSpec) -> bool {
    matches!(spec.name, AS_USER | AS_USER_RO)
}

/// The wrapped command's keys, where they are in the wrapper.
/// The keys of a marked script command (`tandem.scriptoom …`, `tandem.scriptnoreplicas
/// …`, `tandem.scriptmisconf …`, the OOM mark inside another): the inner command's, so that what uses a command's keys
/// (CLIENT TRACKING of a script's reads) sees them through the mark.
fn keys_marked(args: &[Bytes]) -> Vec<usize> {
    let inner = args.get(1..).unwrap_or_default();
    let Some(spec) = resolve(inner).filter(|s| s.has(SCRIPT)) else { return Vec::new() };
    spec.keys(inner).into_iter().filter_map(|k| inner.iter().position(|a| std::ptr::eq(a, k))).map(|i| i + 1).collect()
}

fn keys_as_user(args: &[Bytes]) -> Vec<usize> {
    let inner = args.get(2..).unwrap_or_default();
    let Some(spec) = resolve(inner).filter(|s| s.has(SCRIPT)) else { return Vec::new() };
    spec.keys(inner).into_iter().filter_map(|k| inner.iter().position(|a| std::ptr::eq(a, k))).map(|i| i + 2).collect()
}

/// The user a wrapper names, as the stripe's state has it now; a user since deleted
/// may run nothing.
fn wrapped_user(db: &Db, name: &[u8]) -> crate::acl::User {
    db.acl.get(name, None).unwrap_or_else(|| crate::acl::User::new(&String::from_utf8_lossy(name)))
}

fn run_as_user(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let inner = &args[2..];
    let Some(spec) = resolve(inner).filter(|s| s.has(SCRIPT)) else { return Err(unknown_command(inner)) };
    let Handler::Write(f) = spec.handler else { return Err(unknown_command(inner)) };
    if !spec.arity_ok(inner.len()) {
        return Err(wrong_args(spec.name));
    }
    ctx.acl_user = Some(wrapped_user(ctx.db, &args[1]));
    let result = f(ctx, inner);
    ctx.acl_user = None;
    result
}

fn run_as_user_ro(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let inner = &args[2..];
    let Some(spec) = resolve(inner).filter(|s| s.has(SCRIPT)) else { return Err(unknown_command(inner)) };
    let Handler::Read(f) = spec.handler else { return Err(unknown_command(inner)) };
    if !spec.arity_ok(inner.len()) {
        return Err(wrong_args(spec.name));
    }
    ctx.acl_user = Some(wrapped_user(ctx.db, &args[1]));
    let result = f(ctx, inner);
    ctx.acl_user = None;
    result
}

/// How a script is invoked.
#[derive(Clone, Copy)]
struct Mode {
    /// EVAL_RO, EVALSHA_RO, FCALL_RO.
    ro_command: bool,
    /// The active found memory over maxmemory when it proposed the command.
    oom: bool,
    /// The active refused writes when it proposed the command (fewer good mirrors
    /// than `min-replicas-to-write`, or its last snapshot failed): the script may not
    /// write, and its writes fail with this error.
    refused: Option<&'static str>,
}

impl Mode {
    const WRITE: Mode = Mode { ro_command: false, oom: false, refused: None };
    const READ_ONLY: Mode = Mode { ro_command: true, oom: false, refused: None };
}

/// Redis's refusal of a write while `min-replicas-to-write` is not met.
pub const ERR_NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
/// A script's write while the active refuses writes after a failed snapshot (the same
/// text on every member: the reason stays in the active's own replies and log).
pub const ERR_MISCONF_SCRIPT: &str =
    "MISCONF Tandem cannot write a snapshot on the active; writes are refused until one succeeds (INFO persistence and the server's log say why)";

/// KEYS and ARGV of `args` (name, script, numkeys, keys…, args…).
fn split_keys<'a>(args: &'a [Bytes], bad_count: &'static str) -> Result<(&'a [Bytes], &'a [Bytes]), Reply> {
    let numkeys = parse_i64(&args[2]).ok_or(Reply::err(bad_count))?;
    let available = args.len() - 3;
    if numkeys > available as i64 {
        return Err(Reply::err("ERR Number of keys can't be greater than number of args"));
    }
    if numkeys < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    Ok(args[3..].split_at(numkeys as usize))
}

/// The checks Redis makes before a script with `flags` runs (scriptPrepareForRun);
/// `array`: this stripe is one of several (Redis's cluster mode).
fn admit(flags: u8, mode: Mode, array: bool) -> Result<(), Reply> {
    if flags & flag::EVAL_COMPAT != 0 {
        return Ok(());
    }
    if array && flags & flag::NO_CLUSTER != 0 {
        return Err(Reply::err("ERR Can not run script on cluster, 'no-cluster' flag is set."));
    }
    if mode.ro_command && !no_writes(flags) {
        return Err(Reply::err(ERR_RO_SCRIPT));
    }
    if mode.oom && flags & (flag::ALLOW_OOM | flag::NO_WRITES) == 0 {
        return Err(Reply::err(ERR_OOM_SCRIPT));
    }
    if let Some(refusal) = mode.refused.filter(|_| !no_writes(flags)) {
        return Err(Reply::err(refusal));
    }
    Ok(())
}

/// The source of an EVALSHA's script, or NOSCRIPT.
fn cached_source(db: &crate::store::db::Db, sha: &[u8]) -> Result<(String, Bytes), Reply> {
    if sha.len() != 40 {
        return Err(Reply::err(ERR_NOSCRIPT));
    }
    let sha = String::from_utf8(sha.to_ascii_lowercase()).map_err(|_| Reply::err(ERR_NOSCRIPT))?;
    let source = db.scripts.script(&sha).cloned().ok_or(Reply::err(ERR_NOSCRIPT))?;
    Ok((sha, source))
}

fn eval(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let source = args[1].clone();
    run_eval_write(ctx, args, sha1_hex(&source), source, Mode::WRITE, false)
}

fn evalsha(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (sha, source) = cached_source(ctx.db, &args[1])?;
    run_eval_write(ctx, args, sha, source, Mode::WRITE, true)
}

/// Runs EVAL (`cached` false: `source` is added to the script cache) or EVALSHA
/// (`cached`: `source` was found there).
fn run_eval_write(ctx: &mut WriteCtx, args: &[Bytes], sha: String, source: Bytes, mode: Mode, cached: bool) -> CmdResult {
    let (keys, argv) = split_keys(args, ERR_NOT_INT)?;
    let Some(engine) = ctx.engine.take() else { return Err(Reply::err("ERR scripts cannot run scripts")) };
    let outcome = (|| {
        let script = engine.compile_script(&sha, &source)?;
        let flags = script.flags;
        if !cached {
            // EVAL caches what it ran, as Redis does; a full cache still runs the script.
            let _ = ctx.db.scripts.add_script(sha.clone(), source.clone());
        }
        admit(flags, mode, ctx.db.local_slots.is_some())?;
        let limits = ctx.db.scripts.limits;
        let seed = ctx.rng.next_u64();
        let mut host = ScriptHost::write(ctx, keys, limits, read_only(flags, mode), mode.oom && flags & flag::ALLOW_OOM == 0);
        host.refused = mode.refused;
        host.cross_slot = cross_slot(flags);
        let options = RunOptions { keys, args: argv, limits, seed, replicated: true };
        Ok(engine.run_script(ScriptCall { sha: &sha, script: &script, options }, &mut host))
    })();
    ctx.engine = Some(engine);
    outcome
}

/// Whether a script may touch keys of several slots (of this stripe) in an array: an
/// EVAL without a shebang may, as in Redis; others only with `allow-cross-slot-keys`.
fn cross_slot(flags: u8) -> bool {
    flags & (flag::EVAL_COMPAT | flag::ALLOW_CROSS_SLOT) != 0
}

fn read_only(flags: u8, mode: Mode) -> bool {
    mode.ro_command || no_writes(flags)
}

fn eval_ro(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let source = args[1].clone();
    run_eval_read(ctx, args, sha1_hex(&source), source)
}

fn evalsha_ro(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let (sha, source) = cached_source(ctx.db, &args[1])?;
    run_eval_read(ctx, args, sha, source)
}

fn run_eval_read(ctx: &mut ReadCtx, args: &[Bytes], sha: String, source: Bytes) -> CmdResult {
    let (keys, argv) = split_keys(args, ERR_NOT_INT)?;
    let Some(engine) = ctx.engine.take() else { return Err(Reply::err("ERR scripts cannot run scripts")) };
    let outcome = (|| {
        let script = engine.compile_script(&sha, &source)?;
        let flags = script.flags;
        admit(flags, Mode::READ_ONLY, ctx.db.local_slots.is_some())?;
        let limits = ctx.db.scripts.limits;
        let seed = ctx.rng.next_u64();
        let mut host = ScriptHost::read(ctx, keys, limits);
        host.cross_slot = cross_slot(flags);
        let options = RunOptions { keys, args: argv, limits, seed, replicated: false };
        Ok(engine.run_script(ScriptCall { sha: &sha, script: &script, options }, &mut host))
    })();
    ctx.engine = Some(engine);
    outcome
}

fn fcall(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    fcall_write(ctx, args, Mode::WRITE)
}

fn fcall_write(ctx: &mut WriteCtx, args: &[Bytes], mode: Mode) -> CmdResult {
    let name = String::from_utf8_lossy(&args[1]).into_owned();
    let Some((library, info)) = ctx.db.scripts.function(&name) else { return Err(Reply::err("ERR Function not found")) };
    let (library, flags, fname) = (library.clone(), info.flags, info.name.clone());
    let (keys, argv) = split_keys(args, "ERR Bad number of keys provided")?;
    admit(flags, mode, ctx.db.local_slots.is_some())?;
    let Some(engine) = ctx.engine.take() else { return Err(Reply::err("ERR scripts cannot run scripts")) };
    let limits = ctx.db.scripts.limits;
    let seed = ctx.rng.next_u64();
    engine.status().describe(args, ctx.db.scripts.library_count(), ctx.db.scripts.function_count());
    let reply = {
        let mut host = ScriptHost::write(ctx, keys, limits, read_only(flags, mode), mode.oom && flags & flag::ALLOW_OOM == 0);
        host.refused = mode.refused;
        host.cross_slot = cross_slot(flags);
        let options = RunOptions { keys, args: argv, limits, seed, replicated: true };
        engine.run_function(FunctionCall { library: &library, function: &fname, options }, &mut host)
    };
    ctx.engine = Some(engine);
    Ok(reply)
}

fn fcall_ro(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[1]).into_owned();
    let Some((library, info)) = ctx.db.scripts.function(&name) else { return Err(Reply::err("ERR Function not found")) };
    let (library, flags, fname) = (library.clone(), info.flags, info.name.clone());
    let (keys, argv) = split_keys(args, "ERR Bad number of keys provided")?;
    admit(flags, Mode::READ_ONLY, ctx.db.local_slots.is_some())?;
    let Some(engine) = ctx.engine.take() else { return Err(Reply::err("ERR scripts cannot run scripts")) };
    let limits = ctx.db.scripts.limits;
    let seed = ctx.rng.next_u64();
    engine.status().describe(args, ctx.db.scripts.library_count(), ctx.db.scripts.function_count());
    let reply = {
        let mut host = ScriptHost::read(ctx, keys, limits);
        host.cross_slot = cross_slot(flags);
        let options = RunOptions { keys, args: argv, limits, seed, replicated: false };
        engine.run_function(FunctionCall { library: &library, function: &fname, options }, &mut host)
    };
    ctx.engine = Some(engine);
    Ok(reply)
}

/// TANDEM.SCRIPTOOM <script command…>: the script command as the active proposed it
/// while over maxmemory (deny-oom commands in the script then fail, as in Redis).
fn script_oom(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    run_marked(ctx, &args[1..], Mode { ro_command: false, oom: true, refused: None })
}

/// TANDEM.SCRIPTNOREPLICAS <script command…>: the script command as the active
/// proposed it without enough good mirrors (its writes then fail, as in Redis).
fn script_noreplicas(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    run_refused(ctx, args, ERR_NOREPLICAS)
}

/// TANDEM.SCRIPTMISCONF <script command…>: the script command as the active proposed
/// it while its last snapshot had failed (its writes then fail, as Redis's do while
/// it refuses writes after a failed BGSAVE).
fn script_misconf(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    run_refused(ctx, args, ERR_MISCONF_SCRIPT)
}

/// A script command under a mark that refuses its writes with `refusal` (it may carry
/// the OOM mark inside).
fn run_refused(ctx: &mut WriteCtx, args: &[Bytes], refusal: &'static str) -> CmdResult {
    let (oom, inner) = match args.get(1) {
        Some(name) if name.eq_ignore_ascii_case(OOM_MARK.as_bytes()) => (true, &args[2..]),
        _ => (false, &args[1..]),
    };
    run_marked(ctx, inner, Mode { ro_command: false, oom, refused: Some(refusal) })
}

/// Runs the script command `inner` that a mark wrapped, with the mark's `mode`.
fn run_marked(ctx: &mut WriteCtx, inner: &[Bytes], mode: Mode) -> CmdResult {
    let Some(spec) = resolve(inner) else { return Err(unknown_command(inner)) };
    if !spec.arity_ok(inner.len()) {
        return Err(wrong_args(spec.name));
    }
    match spec.name {
        "eval" => {
            let source = inner[1].clone();
            run_eval_write(ctx, inner, sha1_hex(&source), source, mode, false)
        }
        "evalsha" => {
            let (sha, source) = cached_source(ctx.db, &inner[1])?;
            run_eval_write(ctx, inner, sha, source, mode, true)
        }
        "fcall" => fcall_write(ctx, inner, mode),
        _ => Err(unknown_command(inner)),
    }
}

// --- SCRIPT ---

fn script_load(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let source = args[2].clone();
    let sha = sha1_hex(&source);
    let Some(engine) = ctx.engine.as_deref_mut() else { return Err(Reply::err("ERR scripts cannot run scripts")) };
    engine.compile_script(&sha, &source)?;
    ctx.db.scripts.add_script(sha.clone(), source).map_err(|e| Reply::error(e.to_string()))?;
    *ctx.dirty += 1;
    Ok(Reply::Bulk(Bytes::from(sha)))
}

fn script_exists(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let answers = args[2..]
        .iter()
        .map(|sha| {
            let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
            Reply::Int(ctx.db.scripts.script(&sha).is_some() as i64)
        })
        .collect();
    Ok(Reply::Array(answers))
}

/// SYNC, ASYNC or nothing; `what` names the command in the error.
pub fn flush_mode(args: &[Bytes], what: &'static str) -> Result<(), Reply> {
    match args.get(2) {
        None => Ok(()),
        Some(a) if args.len() == 3 && (is(a, "sync") || is(a, "async")) => Ok(()),
        Some(_) if args.len() > 3 && what == "FUNCTION" => Err(unknown_subcommand_args("function", "flush")),
        Some(_) => Err(Reply::error(format!(
            "ERR {what} FLUSH only {} SYNC|ASYNC option",
            if what == "FUNCTION" { "supports" } else { "support" }
        ))),
    }
}

/// Redis's "unknown subcommand or wrong number of arguments" for a container.
pub fn unknown_subcommand_args(container: &str, sub: &str) -> Reply {
    Reply::error(format!("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {} HELP.", container.to_ascii_uppercase()))
}

fn script_flush(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    flush_mode(args, "SCRIPT")?;
    ctx.db.scripts.flush_scripts();
    if let Some(engine) = ctx.engine.as_deref_mut() {
        engine.reset();
    }
    *ctx.dirty += 1;
    Ok(Reply::ok())
}

fn script_debug(_: &mut ReadCtx, _: &[Bytes]) -> CmdResult {
    Err(Reply::err("ERR SCRIPT DEBUG is not available: scripts run on every server of the stripe, where a debugger cannot stop them"))
}

fn help(lines: &[&str]) -> CmdResult {
    Ok(Reply::Array(lines.iter().map(|l| Reply::Status(l.to_string().into())).collect()))
}

fn script_help(_: &mut ReadCtx, _: &[Bytes]) -> CmdResult {
    help(&[
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache.",
        "KILL",
        "    Kill the currently executing read-only Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Print this help.",
    ])
}

// --- limits ---

fn script_limits(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    if !(args.len() - 1).is_multiple_of(2) {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let mut limits: ScriptLimits = ctx.db.scripts.limits;
    for pair in args[1..].chunks_exact(2) {
        let (name, value) = (&pair[0], &pair[1]);
        if is(name, "instructions") {
            limits.instructions_max = positive(value)?;
        } else if is(name, "memory") {
            limits.memory_bytes_max = positive(value)?;
        } else if is(name, "undeclared-keys") {
            limits.undeclared_keys = match () {
                _ if is(value, "allow") => true,
                _ if is(value, "deny") => false,
                _ => return Err(Reply::err(ERR_SYNTAX)),
            };
        } else {
            return Err(Reply::err(ERR_SYNTAX));
        }
    }
    if limits != ctx.db.scripts.limits {
        ctx.db.scripts.limits = limits;
        *ctx.dirty += 1;
    }
    Ok(Reply::Array(vec![
        Reply::bulk(b"instructions"),
        Reply::Int(limits.instructions_max as i64),
        Reply::bulk(b"memory"),
        Reply::Int(limits.memory_bytes_max as i64),
        Reply::bulk(b"undeclared-keys"),
        Reply::bulk(if limits.undeclared_keys { b"allow" } else { b"deny" }),
    ]))
}

fn positive(arg: &[u8]) -> Result<u64, Reply> {
    match parse_i64(arg) {
        Some(n) if n > 0 => Ok(n as u64),
        _ => Err(Reply::err(ERR_NOT_POSITIVE)),
    }
}

// --- what a script may call ---

/// The data a script's commands run against.
enum Target<'c, 'a> {
    Write(&'c mut WriteCtx<'a>),
    Read(&'c mut ReadCtx<'a>),
}

/// Runs the commands a script calls, with Redis's rules for scripts: no blocking, no
/// connection-level or `noscript` commands, no writes from a read-only script, no
/// deny-oom command after an OOM decision until the script wrote, and only declared keys.
pub struct ScriptHost<'c, 'a> {
    target: Target<'c, 'a>,
    /// The ACL user the script runs as: each call is checked against its rules.
    acl_user: Option<crate::acl::User>,
    keys: &'c [Bytes],
    read_only: bool,
    oom: bool,
    /// Writes are refused, with this error: `min-replicas-to-write` was not met, or
    /// the active's last snapshot failed, when it was proposed.
    refused: Option<&'static str>,
    undeclared_keys: bool,
    wrote: bool,
    /// The script may touch keys of several slots (see [`cross_slot`]).
    cross_slot: bool,
    /// The slot the script's keys are in so far: its declared keys' (routing made them
    /// one), else its first call's.
    slot: Option<u16>,
}

/// The slot of a script's first declared key, in an array (only
/// [`ScriptHost::check_slots`] reads it, and only there).
fn first_slot(db: &crate::store::db::Db, keys: &[Bytes]) -> Option<u16> {
    db.local_slots.as_ref().and(keys.first()).map(|k| crate::cluster::slot::key_slot(k))
}

impl<'c, 'a> ScriptHost<'c, 'a> {
    fn write(ctx: &'c mut WriteCtx<'a>, keys: &'c [Bytes], limits: ScriptLimits, read_only: bool, oom: bool) -> Self {
        let acl_user = ctx.acl_user.clone();
        let slot = first_slot(ctx.db, keys);
        ScriptHost {
            target: Target::Write(ctx),
            acl_user,
            keys,
            read_only,
            oom,
            refused: None,
            undeclared_keys: limits.undeclared_keys,
            wrote: false,
            cross_slot: true,
            slot,
        }
    }

    fn read(ctx: &'c mut ReadCtx<'a>, keys: &'c [Bytes], limits: ScriptLimits) -> Self {
        let acl_user = ctx.acl_user.clone();
        let slot = first_slot(ctx.db, keys);
        ScriptHost {
            target: Target::Read(ctx),
            acl_user,
            keys,
            read_only: true,
            oom: false,
            refused: None,
            undeclared_keys: limits.undeclared_keys,
            wrote: false,
            cross_slot: true,
            slot,
        }
    }

    fn db(&self) -> &crate::store::db::Db {
        match &self.target {
            Target::Write(ctx) => ctx.db,
            Target::Read(ctx) => ctx.db,
        }
    }

    /// In an array, as Redis Cluster's scriptVerifyClusterState: every key a call
    /// names is in this stripe's slots (a key of another stripe would be written
    /// where no client looks for it), and in the script's one slot unless it may
    /// cross slots. Every member decides alike: the slots come from the array's
    /// configuration, the rest from the script.
    fn check_slots(&mut self, spec: &CommandSpec, args: &[Bytes]) -> Result<(), Reply> {
        let Some(local) = self.db().local_slots.clone() else { return Ok(()) };
        let keys = spec.keys(args);
        let first = keys.first().map(|k| crate::cluster::slot::key_slot(k));
        for key in keys {
            let slot = crate::cluster::slot::key_slot(key);
            // One call over keys of two slots is no single node's in Redis Cluster
            // (getNodeByQuery finds none), whatever the script's flags.
            if !local.iter().any(|&(start, end)| (start..=end).contains(&slot)) || first != Some(slot) {
                return Err(Reply::err("ERR Script attempted to access a non local key in a cluster node"));
            }
            match self.slot {
                _ if self.cross_slot => {}
                None => self.slot = Some(slot),
                Some(seen) if seen != slot => {
                    return Err(Reply::err("ERR Script attempted to access keys that do not hash to the same slot"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn check(&mut self, spec: &CommandSpec, args: &[Bytes]) -> Result<(), Reply> {
        if !spec.arity_ok(args.len()) {
            return Err(Reply::err("ERR Wrong number of args calling Redis command from script"));
        }
        // Redis marks its blocking commands `noscript`, except XREAD and XREADGROUP (the
        // ones with a wait spec), which run in a script only without BLOCK.
        let publish = matches!(spec.handler, Handler::Server(Srv::Publish));
        if spec.has(NOSCRIPT) || (spec.has(BLOCKING) && spec.wait.is_none()) || spec.has(INTERNAL) || (spec.has(PUBSUB) && !publish) {
            return Err(Reply::err("ERR This Redis command is not allowed from script"));
        }
        if spec.blocks(args) {
            let name = String::from_utf8_lossy(&args[0]);
            return Err(Reply::error(format!("ERR {name} command is not allowed with BLOCK option from scripts")));
        }
        if let Some(user) = &self.acl_user {
            if let Err(denied) = crate::acl::check(user, spec, args) {
                let (view, now_ms) = match &self.target {
                    Target::Write(ctx) => (ctx.acl_view, ctx.now_ms),
                    Target::Read(ctx) => (ctx.acl_view, ctx.now_ms),
                };
                if let Some(view) = view {
                    view.record_in_script(denied, &crate::acl::command_name(spec, args), args, &user.name, now_ms);
                }
                return Err(Reply::error(format!("ERR The user executing the script {}", denied.message())));
            }
        }
        // PUBLISH (may-replicate) counts as a write, as in Redis.
        if self.read_only && (spec.is_write() || spec.has(MAY_REPLICATE)) {
            return Err(Reply::err(ERR_WRITE_FROM_RO));
        }
        if let Some(refusal) = self.refused.filter(|_| spec.is_write()) {
            return Err(Reply::err(refusal));
        }
        if self.oom && !self.wrote && spec.has(DENYOOM) {
            return Err(Reply::err(ERR_OOM));
        }
        self.check_slots(spec, args)?;
        if !self.undeclared_keys {
            if let Some(key) = spec.keys(args).into_iter().find(|k| !self.keys.contains(k)) {
                return Err(Reply::error(format!(
                    "ERR Script attempted to access key '{}' that it did not declare: a script may only touch the keys passed in KEYS",
                    String::from_utf8_lossy(key)
                )));
            }
        }
        Ok(())
    }
}

impl Host for ScriptHost<'_, '_> {
    fn acl_permits(&self, args: &[Bytes]) -> Option<bool> {
        let spec = resolve(args)?;
        Some(self.acl_user.as_ref().is_none_or(|user| crate::acl::check(user, spec, args).is_ok()))
    }

    fn call(&mut self, args: &[Bytes]) -> Reply {
        let Some(spec) = resolve(args) else { return Reply::err("ERR Unknown Redis command called from script") };
        if let Err(e) = self.check(spec, args) {
            if let Reply::Error(text) = &e {
                crate::scripting::note_rejected(spec.name, text);
            }
            return e;
        }
        if spec.has(READONLY) {
            crate::scripting::note_read_called();
        }
        let result = match (spec.handler, &mut self.target) {
            (Handler::Write(f), Target::Write(ctx)) => {
                self.wrote = true;
                ctx.in_script = true;
                let result = f(ctx, args);
                ctx.in_script = false;
                result
            }
            // A script that may write runs again on every member: what it reads of
            // one server's settings (OBJECT ENCODING's thresholds) must not steer it.
            (Handler::Read(f), Target::Write(ctx)) => f(
                &mut ReadCtx {
                    db: ctx.db,
                    now_ms: ctx.now_ms,
                    rng: ctx.rng,
                    engine: None,
                    local: &LocalSettings::DETERMINISTIC,
                    acl_user: None,
                    acl_view: None,
                    in_script: true,
                },
                args,
            ),
            (Handler::Read(f), Target::Read(ctx)) => f(
                &mut ReadCtx {
                    db: ctx.db,
                    now_ms: ctx.now_ms,
                    rng: ctx.rng,
                    engine: None,
                    local: ctx.local,
                    acl_user: None,
                    acl_view: None,
                    in_script: true,
                },
                args,
            ),
            (Handler::Write(_), Target::Read(_)) => Err(Reply::err(ERR_WRITE_FROM_RO)),
            // Every server applies the script and tells its own subscribers (the active
            // the other stripes' too), as for group events. Who receives it is not
            // state every server shares, so the script sees 0 receivers everywhere.
            (Handler::Server(Srv::Publish), Target::Write(ctx)) => {
                ctx.db.messages.push((args[1].clone(), args[2].clone()));
                Ok(Reply::Int(0))
            }
            (Handler::Server(srv), _) => Ok(server_command_in_script(srv, args)),
        };
        let reply = result.unwrap_or_else(|e| e);
        let error = if let Reply::Error(text) = &reply { Some(&text[..]) } else { None };
        crate::scripting::note_call(spec.name, args, error);
        reply
    }

    fn wrote(&self) -> bool {
        self.wrote
    }
}

/// The connection-level commands a script may call: PING and ECHO; the others belong
/// to a client connection a script does not have.
fn server_command_in_script(srv: Srv, args: &[Bytes]) -> Reply {
    match srv {
        Srv::Ping => match args.get(1) {
            Some(msg) if args.len() == 2 => Reply::Bulk(msg.clone()),
            None => Reply::status("PONG"),
            Some(_) => wrong_args("ping"),
        },
        Srv::Echo => Reply::Bulk(args[1].clone()),
        // Allowed in scripts, as in Redis (its effect would end with the script).
        Srv::Select => super::connection::select(args),
        _ => Reply::err("ERR This Redis command is not allowed from script"),
    }
}

#[cfg(test)]
mod tests {
    use crate::commands::test_support::{bulk, err, run};
    use crate::protocol::reply::Reply;
    use crate::store::{Entry, Op, Store};
    use bytes::Bytes;

    fn entry(seed: u64, cmds: &[&[&str]]) -> Entry {
        let ops = cmds.iter().map(|c| Op::Command(c.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())).collect();
        Entry { time_ms: 1_000, seed, ops, origins: None, summary: None }
    }

    fn error_text(reply: &Reply) -> String {
        match reply {
            Reply::Error(e) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn eval_converts_lua_values_as_redis_does() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["eval", "return 'hello'", "0"]), bulk("hello"));
        assert_eq!(run(&mut s, 0, &["eval", "return 100.5", "0"]), Reply::Int(100));
        assert_eq!(run(&mut s, 0, &["eval", "return true", "0"]), Reply::Int(1));
        assert_eq!(run(&mut s, 0, &["eval", "return false", "0"]), Reply::Nil);
        assert_eq!(run(&mut s, 0, &["eval", "return {ok='fine'}", "0"]), Reply::status("fine"));
        assert_eq!(run(&mut s, 0, &["eval", "return {err='ERR this is an error'}", "0"]), err("ERR this is an error"));
        assert_eq!(
            run(&mut s, 0, &["eval", "return {KEYS[1],KEYS[2],ARGV[1],ARGV[2]}", "2", "a{t}", "b{t}", "c", "d"]),
            Reply::Array(vec![bulk("a{t}"), bulk("b{t}"), bulk("c"), bulk("d")])
        );
        assert_eq!(run(&mut s, 0, &["eval", "return redis.call('set', KEYS[1], ARGV[1])", "1", "k", "v"]), Reply::ok());
        assert_eq!(
            run(&mut s, 0, &["eval", "local r = redis.pcall('incr', KEYS[1]) return r['err']", "1", "k"]),
            bulk("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, 0, &["eval", "local v = redis.call('get', KEYS[1]) return {type(v), v == false}", "1", "missing"]),
            Reply::Array(vec![bulk("boolean"), Reply::Int(1)])
        );
    }

    #[test]
    fn evalsha_finds_what_eval_and_script_load_cached() {
        let mut s = Store::new();
        assert!(error_text(&run(&mut s, 0, &["evalsha", "fd758d1589d044dd850a6f05d52f2eefd27f033f", "0"])).starts_with("NOSCRIPT"));
        run(&mut s, 0, &["set", "mykey", "myval"]);
        assert_eq!(run(&mut s, 0, &["eval", "return redis.call('get',KEYS[1])", "1", "mykey"]), bulk("myval"));
        assert_eq!(run(&mut s, 0, &["evalsha", "FD758D1589D044DD850A6F05D52F2EEFD27F033F", "1", "mykey"]), bulk("myval"));
        assert_eq!(run(&mut s, 0, &["script", "load", "return 'loaded'"]), bulk("b534286061d4b9e4026607613b95c06c06015ae8"));
        assert_eq!(
            run(&mut s, 0, &["script", "exists", "b534286061d4b9e4026607613b95c06c06015ae8", "ffffffffffffffffffffffffffffffffffffffff"]),
            Reply::Array(vec![Reply::Int(1), Reply::Int(0)])
        );
        assert_eq!(run(&mut s, 0, &["script", "flush"]), Reply::ok());
        assert!(error_text(&run(&mut s, 0, &["evalsha", "b534286061d4b9e4026607613b95c06c06015ae8", "0"])).starts_with("NOSCRIPT"));
        assert!(error_text(&run(&mut s, 0, &["script", "load", "return +"])).starts_with("ERR Error compiling script"));
        assert!(error_text(&run(&mut s, 0, &["script", "nope"])).starts_with("ERR unknown subcommand 'nope'"));
    }

    #[test]
    fn undeclared_keys_are_refused_when_the_stripe_denies_them() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["eval", "return redis.call('set', 'y', 1)", "0"]), Reply::ok());
        run(&mut s, 0, &["tandem.scriptlimits", "undeclared-keys", "deny"]);
        let e = error_text(&run(&mut s, 0, &["eval", "return redis.call('set', 'x', 1)", "0"]));
        assert!(e.contains("did not declare"), "{e}");
        assert_eq!(run(&mut s, 0, &["get", "x"]), Reply::Nil);
        run(&mut s, 0, &["tandem.scriptlimits", "undeclared-keys", "allow"]);
        assert_eq!(run(&mut s, 0, &["eval", "return redis.call('set', 'x', 1)", "0"]), Reply::ok());
    }

    #[test]
    fn the_sandbox_protects_globals_and_libraries() {
        let mut s = Store::new();
        let cases = [
            ("return a", "Script attempted to access nonexistent global variable 'a'"),
            ("a = 10", "Attempt to modify a readonly table"),
            ("redis.call = function() end", "Attempt to modify a readonly table"),
            ("cjson.encode = 1", "Attempt to modify a readonly table"),
            ("setmetatable(_G, {})", "Attempt to modify a readonly table"),
            ("local g = getmetatable(_G) g.__index = {}", "Attempt to modify a readonly table"),
            ("rawset(_G, 'x', 1)", "Attempt to modify a readonly table"),
            ("getmetatable('').__index.upper = 1", "Attempt to modify a readonly table"),
            ("print('x')", "nonexistent global variable 'print'"),
            ("return os.time()", "nonexistent global variable 'os'"),
            ("return io", "nonexistent global variable 'io'"),
            ("return debug", "nonexistent global variable 'debug'"),
            ("setfenv(1, {})", "nonexistent global variable 'setfenv'"),
            ("return loadstring(string.dump(function() return 1 end))()", "attempt to call a nil value"),
        ];
        for (code, expected) in cases {
            let e = error_text(&run(&mut s, 0, &["eval", code, "0"]));
            assert!(e.contains(expected), "{code}: {e}");
        }
        // Nothing a script did leaks into the next one.
        assert_eq!(run(&mut s, 0, &["eval", "return tostring({}) .. tostring({})", "0"]), bulk("table: 0x00000001table: 0x00000002"));
        assert_eq!(run(&mut s, 0, &["eval", "return tostring({})", "0"]), bulk("table: 0x00000001"));
        assert_eq!(run(&mut s, 0, &["eval", "return loadstring('return 1 + 1')()", "0"]), Reply::Int(2));
    }

    #[test]
    fn scripts_run_alike_on_every_store_that_applies_the_entry() {
        let script = "local t = {} for i = 1, 5 do t[i] = math.random(1000) end redis.call('rpush', KEYS[1], unpack(t)) \
                      redis.call('sadd', KEYS[2], 'a', 'b', 'c', 'd') redis.call('spop', KEYS[2]) return redis.call('lrange', KEYS[1], 0, -1)";
        let (mut one, mut two) = (Store::new(), Store::new());
        let e = entry(42, &[&["eval", script, "2", "l", "s"]]);
        let (r1, r2) = (one.apply(&e).replies, two.apply(&e).replies);
        assert_eq!(r1, r2);
        assert_eq!(one.digest(), two.digest());
        // Another seed, other numbers.
        let mut three = Store::new();
        assert_ne!(three.apply(&entry(43, &[&["eval", script, "2", "l", "s"]])).replies, r1);
    }

    #[test]
    fn a_runaway_script_stops_at_the_budget_on_every_store_keeping_its_writes() {
        let script =
            "redis.call('set', KEYS[1], 'before') local i = 0 while true do i = i + 1 if i % 1000 == 0 then pcall(function() end) end end";
        let (mut one, mut two) = (Store::new(), Store::new());
        for s in [&mut one, &mut two] {
            run(s, 0, &["tandem.scriptlimits", "instructions", "2000000"]);
        }
        let e = entry(1, &[&["eval", script, "1", "k"]]);
        let r1 = one.apply(&e).replies;
        assert_eq!(r1, two.apply(&e).replies);
        assert!(error_text(&r1[0]).contains("Script stopped after 2000000 instructions"), "{:?}", r1);
        assert_eq!(run(&mut one, 0, &["get", "k"]), bulk("before"), "Redis never rolls back a script's writes");
        assert_eq!(one.digest(), two.digest());
        // A pcall cannot swallow the stop.
        let e = error_text(&run(&mut one, 0, &["eval", "while true do pcall(function() while true do end end) end", "0"]));
        assert!(e.contains("Script stopped"), "{e}");
    }

    #[test]
    fn the_memory_bound_stops_a_script_that_grows_without_end() {
        let mut s = Store::new();
        run(&mut s, 0, &["tandem.scriptlimits", "memory", "1000000", "instructions", "500000000"]);
        let e = error_text(&run(&mut s, 0, &["eval", "local t = {} for i = 1, 10000000 do t[i] = i end", "0"]));
        assert!(e.contains("bytes of Lua memory"), "{e}");
        assert_eq!(run(&mut s, 0, &["eval", "return 1", "0"]), Reply::Int(1), "the next script runs");
    }

    #[test]
    fn read_only_scripts_cannot_write() {
        let mut s = Store::new();
        let e = error_text(&run(&mut s, 0, &["eval_ro", "return redis.call('del', KEYS[1])", "1", "k"]));
        assert!(e.starts_with("ERR Write commands are not allowed from read-only scripts"), "{e}");
        let e = error_text(&run(&mut s, 0, &["eval", "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 1)", "1", "k"]));
        assert!(e.starts_with("ERR Write commands are not allowed from read-only scripts"), "{e}");
        run(&mut s, 0, &["set", "k", "v"]);
        assert_eq!(run(&mut s, 0, &["eval_ro", "return redis.call('get', KEYS[1])", "1", "k"]), bulk("v"));
        let e = error_text(&run(&mut s, 0, &["eval", "return redis.call('blpop', KEYS[1], 0)", "1", "k"]));
        assert!(e.contains("not allowed from script"), "{e}");
    }

    #[test]
    fn functions_load_call_list_dump_and_restore() {
        let mut s = Store::new();
        let lib = "#!lua name=lib1\nlocal function add1(a) return a + 1 end\n\
                   redis.register_function('f1', function(keys, args) return add1(tonumber(args[1])) end)\n\
                   redis.register_function{function_name='f2', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";
        assert_eq!(run(&mut s, 0, &["function", "load", lib]), bulk("lib1"));
        assert!(error_text(&run(&mut s, 0, &["function", "load", lib])).contains("already exists"));
        assert_eq!(run(&mut s, 0, &["fcall", "F1", "0", "41"]), Reply::Int(42));
        run(&mut s, 0, &["set", "k", "v"]);
        assert_eq!(run(&mut s, 0, &["fcall_ro", "f2", "1", "k"]), bulk("v"));
        assert!(error_text(&run(&mut s, 0, &["fcall_ro", "f1", "0", "1"])).contains("Can not execute a script with write flag"));
        let dump = match run(&mut s, 0, &["function", "dump"]) {
            Reply::Bulk(b) => b,
            other => panic!("{other:?}"),
        };
        assert_eq!(run(&mut s, 0, &["function", "flush"]), Reply::ok());
        assert_eq!(run(&mut s, 0, &["fcall", "f1", "0", "1"]), err("ERR Function not found"));
        let args: Vec<Bytes> = ["function", "restore"].iter().map(|a| Bytes::from_static(a.as_bytes())).chain([dump]).collect();
        assert_eq!(
            s.apply(&Entry { time_ms: 0, seed: 1, ops: vec![Op::Command(args)].into(), origins: None, summary: None }).replies[0],
            Reply::ok()
        );
        assert_eq!(run(&mut s, 0, &["fcall", "f1", "0", "1"]), Reply::Int(2));
        assert!(error_text(&run(&mut s, 0, &["function", "restore", "bad"])).contains("payload version or checksum are wrong"));
        let e = error_text(&run(&mut s, 0, &["function", "load", "#!lua name=x\nlocal a = 1 while 1 do a = a + 1 end"]));
        assert!(e.contains("FUNCTION LOAD timeout"), "{e}");
        let e = error_text(&run(&mut s, 0, &["function", "load", "#!lua name=x\nreturn math.random()"]));
        assert!(e.contains("nonexistent global variable 'math'"), "{e}");
        // The load API is not there when a function runs: a nil field, as in Redis 7.0.
        let nested = "#!lua name=nest\nredis.register_function('outer', function() redis.register_function('inner', function() return 2 end) return 1 end)";
        run(&mut s, 0, &["function", "load", nested]);
        let e = error_text(&run(&mut s, 0, &["fcall", "outer", "0"]));
        assert!(e.contains("attempt to call field 'register_function' (a nil value)"), "{e}");
        // FUNCTION RESTORE names a library already there without quotes (Redis's libraryJoin).
        let dump = match run(&mut s, 0, &["function", "dump"]) {
            Reply::Bulk(b) => b,
            other => panic!("{other:?}"),
        };
        let args: Vec<Bytes> = ["function", "restore"].iter().map(|a| Bytes::from_static(a.as_bytes())).chain([dump]).collect();
        let e = error_text(
            &s.apply(&Entry { time_ms: 0, seed: 1, ops: vec![Op::Command(args)].into(), origins: None, summary: None }).replies[0],
        );
        assert!(e.starts_with("ERR Library ") && e.ends_with(" already exists") && !e.contains('\''), "{e}");
    }

    #[test]
    fn a_function_keeps_no_state_between_calls() {
        let mut s = Store::new();
        let lib = "#!lua name=counter\nlocal n = 0\nredis.register_function('bump', function() n = n + 1 return n end)";
        run(&mut s, 0, &["function", "load", lib]);
        assert_eq!(run(&mut s, 0, &["fcall", "bump", "0"]), Reply::Int(1));
        assert_eq!(run(&mut s, 0, &["fcall", "bump", "0"]), Reply::Int(1), "a restarted server would start from 0: so does every call");
    }
}
