//! The Lua VM of one store and how a script runs in it: compile (and cache, per
//! server), set up the run (KEYS/ARGV, random seed, budget, memory bound, the
//! garbage collector stopped), call, convert the result, tear down.
//!
//! The compiled-function caches are not state: a server that never saw a script
//! compiles it from the source the state holds when it first runs it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};

use super::budget;
use super::convert::{self, lua_to_reply};
use super::libs;
use super::sandbox::BOOTSTRAP;
use super::shebang;
use super::status::Status;
use super::Host;
use crate::limits;
use crate::protocol::reply::Reply;
use crate::store::scripts::{flag, FunctionInfo, Library, ScriptLimits};

/// What a run needs besides its code.
pub struct RunOptions<'a> {
    pub keys: &'a [Bytes],
    pub args: &'a [Bytes],
    pub limits: ScriptLimits,
    /// Seeds `math.random`: drawn from the entry's generator, so equal everywhere.
    pub seed: u64,
    /// Runs inside `apply` (a write script), as opposed to the read path.
    pub replicated: bool,
}

/// An EVAL/EVALSHA call of a compiled script.
pub struct ScriptCall<'a> {
    pub sha: &'a str,
    pub script: &'a Compiled,
    pub options: RunOptions<'a>,
}

/// An EVAL script compiled in this server's VM, with its shebang's flags.
#[derive(Clone)]
pub struct Compiled {
    pub flags: u8,
    function: Function,
}

/// An FCALL call.
pub struct FunctionCall<'a> {
    pub library: &'a Library,
    pub function: &'a str,
    pub options: RunOptions<'a>,
}

/// Per-run state the Rust functions of the API read (`math.random`, `redis.setresp`,
/// `redis.register_function`).
pub(super) struct RunState {
    pub resp3: bool,
    pub rng: Lrand48,
    /// While FUNCTION LOAD runs a library's chunk: what it registered.
    pub registering: Option<Vec<Registered>>,
    /// The error `redis.call` raised (mlua raises a userdata; this is the real value).
    pub raised: Option<Value>,
    /// The host of the script running now: set by [`Engine::run`] for the length of
    /// the call into Lua and cleared after it (by [`HostSlot`]'s drop), so
    /// `redis.call` made any other time fails like Redis's call outside a script.
    host: Option<HostPtr>,
}

/// A pointer to the `&mut dyn Host` an [`Engine::run`] was given, its lifetime erased.
/// It only lives in [`RunState::host`] while that `run` is on the stack (see
/// [`HostSlot`]) and is only used on the thread that runs the VM.
#[derive(Clone, Copy)]
struct HostPtr(*mut (dyn Host + 'static));

// SAFETY: the pointer is used only by `redis_call`, on the thread running the script,
// while the `run` that set it (and holds the borrow it came from) is on that thread's
// stack; mlua's `send` feature asks app data to be Send only so the VM may move
// between threads between runs, when the slot is empty.
unsafe impl Send for HostPtr {}

/// Puts a run's host in [`RunState::host`] and takes it out again when dropped (also
/// when the run unwinds), so the pointer never outlives the borrow it came from.
struct HostSlot<'l> {
    lua: &'l Lua,
}

impl<'l> HostSlot<'l> {
    fn set<'h>(lua: &'l Lua, host: &'h mut (dyn Host + 'h)) -> HostSlot<'l> {
        let ptr: *mut (dyn Host + 'h) = host;
        // SAFETY: only the lifetime changes; the slot is emptied before 'h ends (drop).
        let ptr: *mut (dyn Host + 'static) = unsafe { std::mem::transmute(ptr) };
        set_run_state(lua, |s| s.host = Some(HostPtr(ptr)));
        HostSlot { lua }
    }
}

impl Drop for HostSlot<'_> {
    fn drop(&mut self) {
        set_run_state(self.lua, |s| s.host = None);
    }
}

pub(super) struct Registered {
    pub info: FunctionInfo,
    pub callback: Function,
}

/// Redis's math.random generator (the 48-bit linear congruential one of lrand48), so a
/// seed gives the same sequence on every server and architecture.
pub(super) struct Lrand48(u64);

impl Lrand48 {
    pub fn seeded(seed: i32) -> Lrand48 {
        Lrand48((((seed as u32) as u64) << 16) | 0x330e)
    }
    pub fn next(&mut self) -> i32 {
        self.0 = (self.0.wrapping_mul(0x0005_deec_e66d).wrapping_add(0xb)) & ((1 << 48) - 1);
        (self.0 >> 17) as i32
    }
}

struct Vm {
    lua: Lua,
    /// The scripts' globals (`KEYS`, `ARGV` live there during an EVAL).
    g1: Table,
    pf: Table,
    main: MainState,
    runner: Function,
    /// Runs a script or function (`handles.run_one` of [`BOOTSTRAP`]).
    run_one: Function,
    loading: Function,
    set_env: Function,
    handler: Function,
    /// SHA-1 → compiled EVAL script.
    scripts: HashMap<String, Compiled, crate::store::value::Hasher>,
    /// Lower-case library name → (its code, its compiled chunk).
    libraries: HashMap<String, (Bytes, Function)>,
    seq: u64,
    /// The VM's memory after its last full collection (see [`GARBAGE_BYTES_MAX`]).
    collected_bytes: usize,
}

/// Garbage let pile up between full collections: up to this much above the live heap.
/// A full cycle costs about as much as the live
/// heap (the libraries, the cached scripts); run once per this much garbage it is
/// spread over thousands of scripts. A 64 KB collector step after every script spent
/// 41 % of an EVALSHA `-P 16` benchmark marking the same live heap again and again; a
/// full cycle per 2 MB still left the sweep at 10 %.
const GARBAGE_BYTES_MAX: usize = 8 << 20;

/// The Lua engine of one store.
pub struct Engine {
    vm: Option<Vm>,
    status: Arc<Status>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("vm", &self.vm.is_some()).finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine { vm: None, status: Arc::new(Status::default()) }
    }
}

/// An error as the reply the client gets.
fn err_reply(text: impl Into<String>) -> Reply {
    let text = text.into();
    if text.split(' ').next().is_some_and(|code| !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase())) {
        Reply::error(text)
    } else {
        Reply::error(format!("ERR {text}"))
    }
}

impl Engine {
    /// What connections may know about the running script.
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// Forgets every compiled script and function and the VM itself (SCRIPT FLUSH,
    /// FUNCTION FLUSH): memory back, and the next script gets a fresh VM.
    pub fn reset(&mut self) {
        self.vm = None;
    }

    /// Bytes the Lua heap uses, garbage included.
    pub fn used_memory(&self) -> usize {
        self.vm.as_ref().map_or(0, |vm| vm.lua.used_memory())
    }

    fn vm(&mut self) -> Result<&mut Vm, Reply> {
        if self.vm.is_none() {
            let vm = new_vm(&self.status).map_err(|e| Reply::error(format!("ERR cannot start the Lua engine: {e}")))?;
            self.vm = Some(vm);
        }
        self.vm.as_mut().ok_or(Reply::err("ERR cannot start the Lua engine"))
    }

    /// Compiles an EVAL script (caching it); its flags on success, the client's error
    /// otherwise (Redis's "Error compiling script").
    pub fn compile_script(&mut self, sha: &str, source: &Bytes) -> Result<Compiled, Reply> {
        let vm = self.vm()?;
        // One lookup a run: the flags are kept with the function, parsed once.
        if let Some(compiled) = vm.scripts.get(sha) {
            return Ok(compiled.clone());
        }
        let header = shebang::script_header(source).map_err(err_reply)?;
        let code = source.get(header.shebang_len..).unwrap_or_default();
        let function = vm.lua.load(code).set_name("@user_script").into_function().map_err(|e| {
            Reply::error(format!("ERR Error compiling script (new function): {}", lua_message(&e)).replace(['\r', '\n'], " "))
        })?;
        if vm.scripts.len() >= limits::SCRIPT_CACHE_COUNT_MAX {
            // A per-server cache: dropping it costs recompiles, nothing else.
            vm.scripts.clear();
        }
        let compiled = Compiled { flags: header.flags, function };
        vm.scripts.insert(sha.to_string(), compiled.clone());
        Ok(compiled)
    }

    /// Runs an EVAL script compiled by [`Engine::compile_script`].
    pub fn run_script(&mut self, call: ScriptCall<'_>, host: &mut dyn Host) -> Reply {
        let status = self.status.clone();
        let _running = status.begin(false, call.options.replicated, call.sha);
        self.run(&call.script.function, None, call.sha, &call.options, host)
    }

    /// Loads a library (FUNCTION LOAD): runs its chunk so it registers its functions,
    /// with the load API only and a fixed instruction budget. Returns what it declared.
    pub fn load_library(&mut self, code: &Bytes) -> Result<Library, Reply> {
        let header = shebang::library_header(code).map_err(err_reply)?;
        if !shebang::valid_name(&header.name) {
            return Err(Reply::err(
                "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
            ));
        }
        if !header.engine.eq_ignore_ascii_case("lua") {
            return Err(Reply::error(format!("ERR Engine '{}' not found", header.engine)));
        }
        let chunk = self.compile_library(&header.name, code, header.code_at)?;
        let registered = self.register(&chunk, limits::FUNCTION_LOAD_INSTRUCTIONS_MAX)?;
        if registered.is_empty() {
            return Err(Reply::err("ERR No functions registered"));
        }
        Ok(Library {
            name: header.name,
            engine: "LUA".into(),
            code: code.clone(),
            functions: registered.into_iter().map(|r| r.info).collect(),
        })
    }

    fn compile_library(&mut self, name: &str, code: &Bytes, code_at: usize) -> Result<Function, Reply> {
        let vm = self.vm()?;
        let key = name.to_ascii_lowercase();
        if let Some((cached, chunk)) = vm.libraries.get(&key) {
            if cached == code {
                return Ok(chunk.clone());
            }
        }
        let body = code.get(code_at..).unwrap_or_default();
        let chunk = vm
            .lua
            .load(body)
            .set_name("@user_function")
            .into_function()
            .map_err(|e| Reply::error(format!("ERR Error compiling function: {}", lua_message(&e)).replace(['\r', '\n'], " ")))?;
        vm.set_env.call::<()>((chunk.clone(), vm.pf.clone())).map_err(|e| Reply::error(format!("ERR {e}")))?;
        if vm.libraries.len() >= limits::FUNCTION_LIBRARIES_MAX {
            vm.libraries.clear();
        }
        vm.libraries.insert(key, (Bytes::copy_from_slice(code), chunk.clone()));
        Ok(chunk)
    }

    /// Runs a library chunk in load mode; what it registered.
    fn register(&mut self, chunk: &Function, instructions_max: u64) -> Result<Vec<Registered>, Reply> {
        let vm = self.vm()?;
        set_run_state(&vm.lua, |s| s.registering = Some(Vec::new()));
        let _ = vm.loading.call::<()>(true);
        budget::start(instructions_max, None);
        install_hook(vm.main);
        let outcome = vm.runner.call::<MultiValue>((chunk.clone(), vm.handler.clone()));
        remove_hook(vm.main);
        let (stop, _) = budget::finish();
        let _ = vm.loading.call::<()>(false);
        let registered = vm.lua.app_data_mut::<RunState>().and_then(|mut s| s.registering.take()).unwrap_or_default();
        if stop.is_some() {
            return Err(Reply::err("ERR Error registering functions: FUNCTION LOAD timeout"));
        }
        match outcome {
            Ok(values) => match first_two(values) {
                (Value::Boolean(true), _) => Ok(registered),
                (_, err) => Err(Reply::error(format!("ERR Error registering functions: {}", error_text(&err)))),
            },
            Err(e) => Err(Reply::error(format!("ERR Error registering functions: {}", lua_message(&e)))),
        }
    }

    /// Runs a function (FCALL). The library's chunk runs again first, so the function
    /// and its upvalues are fresh: nothing carries over from an earlier call.
    pub fn run_function(&mut self, call: FunctionCall<'_>, host: &mut dyn Host) -> Reply {
        let library = call.library;
        let code_at = match shebang::library_header(&library.code) {
            Ok(h) => h.code_at,
            Err(e) => return err_reply(e),
        };
        let chunk = match self.compile_library(&library.name, &library.code, code_at) {
            Ok(chunk) => chunk,
            Err(e) => return e,
        };
        let registered = match self.register(&chunk, call.options.limits.instructions_max) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let Some(target) = registered.into_iter().find(|r| r.info.name.eq_ignore_ascii_case(call.function)) else {
            return Reply::err("ERR Function not found");
        };
        let status = self.status.clone();
        let _running = status.begin(true, call.options.replicated, &target.info.name);
        self.run(&target.callback, Some(()), &target.info.name, &call.options, host)
    }

    /// One run: state reset, bounds on, call, bounds off, result converted.
    fn run(&mut self, function: &Function, as_function: Option<()>, name: &str, options: &RunOptions<'_>, host: &mut dyn Host) -> Reply {
        let status = self.status.clone();
        let Ok(vm) = self.vm() else { return Reply::err("ERR cannot start the Lua engine") };
        vm.seq += 1;
        let prepared = prepare(vm, options);
        let (keys, args) = match prepared {
            Ok(tables) => tables,
            Err(e) => return Reply::error(format!("ERR {e}")),
        };
        let lua = vm.lua.clone();
        lua.gc_stop();
        let memory_max = (lua.used_memory() as u64).saturating_add(options.limits.memory_bytes_max);
        let _ = lua.set_memory_limit(usize::try_from(memory_max).unwrap_or(usize::MAX));
        // A lone server that never replays its log has no other run of this script to
        // agree with: as in Redis, the script runs until it ends or SCRIPT KILL stops
        // it, unless the stripe chose a budget of its own (TANDEM.SCRIPTLIMITS).
        let unbounded = status.lone.load(std::sync::atomic::Ordering::Relaxed)
            && options.limits.instructions_max == crate::limits::SCRIPT_INSTRUCTIONS_DEFAULT;
        budget::start(if unbounded { u64::MAX } else { options.limits.instructions_max }, Some(status.clone()));
        install_hook(vm.main);
        let outcome = {
            let _slot = HostSlot::set(&lua, host);
            vm.run_one.call::<MultiValue>((function, &vm.handler, vm.seq, as_function.is_some(), keys, args))
        };
        remove_hook(vm.main);
        let (stop, _) = budget::finish();
        // Bound off first: with no limit mlua sets fields without a protected call
        // (which in Lua 5.1 allocates two C closures each time).
        let _ = lua.set_memory_limit(0);
        // After the bound is off: clearing may not fail for want of memory.
        if outcome.is_err() {
            // The run left `run_one` without its clean-up: a stopped run's count hook
            // raises on every instruction, also after the script's protected call.
            // KEYS and ARGV must not outlive it (a function reads globals through G1).
            let _ = vm.g1.raw_set("KEYS", Value::Nil);
            let _ = vm.g1.raw_set("ARGV", Value::Nil);
        }
        let resp3 = lua.app_data_ref::<RunState>().is_some_and(|s| s.resp3);
        let reply = match outcome {
            Ok(values) => match first_two(values) {
                (Value::Boolean(true), value) => counted_once(&value, lua_to_reply(&value, resp3)),
                (_, err) => counted_once(&err, script_error(&err, name, stop, options.limits.memory_bytes_max)),
            },
            Err(e) => match stop {
                Some(stop) => err_reply(stop.message()),
                None => Reply::error(format!("ERR Error running script {name}: {}", lua_message(&e)).replace(['\r', '\n'], " ")),
            },
        };
        // Between scripts, now and then, collect everything: a script never sees the
        // collector run (its memory limit counts from what the heap holds when it
        // starts, and nothing a script makes outlives it for a weak table to lose).
        if lua.used_memory() > vm.collected_bytes.saturating_add(GARBAGE_BYTES_MAX) {
            lua.gc_restart();
            let _ = lua.gc_collect();
            lua.gc_stop();
            vm.collected_bytes = lua.used_memory();
        }
        reply
    }
}

/// The field Redis sets in the `{err=…}` table of an error a command called by the
/// script answered: that error was counted in errorstats at the call.
const COUNTED_ERROR_FIELD: &str = "ignore_err_stats_update";

/// `reply`, the script's own; if it is an error a call answered (`value` is its marked
/// table), the call's count of it is taken back: the reply counts it.
fn counted_once(value: &Value, reply: Reply) -> Reply {
    if let (Value::Table(t), Reply::Error(text)) = (value, &reply) {
        if t.raw_get::<bool>(COUNTED_ERROR_FIELD).unwrap_or(false) {
            crate::scripting::note_error_returned(text);
        }
    }
    reply
}

/// Resets the per-run state; the KEYS and ARGV tables.
fn prepare(vm: &mut Vm, options: &RunOptions<'_>) -> mlua::Result<(Table, Table)> {
    let seed = options.seed as i32;
    set_run_state(&vm.lua, |s| {
        s.resp3 = false;
        s.rng = Lrand48::seeded(seed);
        s.registering = None;
        s.raised = None;
    });
    libs::cjson::reset(&vm.lua);
    let keys = string_table(&vm.lua, options.keys)?;
    let args = string_table(&vm.lua, options.args)?;
    Ok((keys, args))
}

fn string_table(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(item)?)?;
    }
    Ok(t)
}

fn set_run_state(lua: &Lua, f: impl FnOnce(&mut RunState)) {
    if let Some(mut state) = lua.app_data_mut::<RunState>() {
        f(&mut state);
    }
}

/// A VM's main Lua thread, for the C calls mlua has no API for (the count hook).
/// Taken once per VM: `Lua::exec_raw` would make two C closures (garbage) per call.
#[derive(Clone, Copy)]
struct MainState(*mut mlua::ffi::lua_State);

// SAFETY: used only by the thread that holds the `Vm` (`&mut Engine`), as the `Lua`
// it belongs to is; it lives exactly as long as that `Lua` (both in the `Vm`).
unsafe impl Send for MainState {}

fn main_state(lua: &Lua) -> mlua::Result<MainState> {
    let mut main = std::ptr::null_mut();
    // SAFETY: only reads the state pointer; called outside any callback, so it is the main thread.
    unsafe { lua.exec_raw::<()>((), |state| main = state)? };
    Ok(MainState(main))
}

fn install_hook(main: MainState) {
    // SAFETY: the state is this VM's main thread, alive with the VM and used on this
    // thread only; lua_sethook neither allocates nor raises.
    unsafe { budget::install(main.0) }
}

fn remove_hook(main: MainState) {
    // SAFETY: as install_hook.
    unsafe { budget::remove(main.0) }
}

fn first_two(values: MultiValue) -> (Value, Value) {
    let mut it = values.into_iter();
    (it.next().unwrap_or(Value::Nil), it.next().unwrap_or(Value::Nil))
}

/// A Lua error's message without mlua's decoration.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

/// An error value (string or `{err=…}` table) as text.
fn error_text(err: &Value) -> String {
    match err {
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => s.to_string_lossy().to_string(),
            _ => "unknown error".into(),
        },
        Value::String(s) => s.to_string_lossy().to_string(),
        other => format!("{other:?}"),
    }
}

/// The reply for a script that raised: Redis's "<error> script: <name>, on <source>:<line>.".
fn script_error(err: &Value, name: &str, stop: Option<budget::Stop>, memory_max: u64) -> Reply {
    let Value::Table(t) = err else {
        let text = error_text(err);
        if text.contains("not enough memory") {
            return Reply::error(format!(
                "ERR Script used more than {memory_max} bytes of Lua memory (the stripe's script memory bound, TANDEM.SCRIPTLIMITS)"
            ));
        }
        if let Some(stop) = stop {
            return err_reply(stop.message());
        }
        return Reply::error(format!("ERR Error running script {name}, {text}").replace(['\r', '\n'], " "));
    };
    let msg = error_text(err);
    let msg = convert::normalize_error(&msg);
    let source = t.raw_get::<Value>("source").ok().and_then(|v| if let Value::String(s) = v { Some(s.to_string_lossy()) } else { None });
    let line = t.raw_get::<Value>("line").ok().and_then(|v| match v {
        Value::Integer(n) => Some(n.to_string()),
        Value::Number(n) => Some((n as i64).to_string()),
        _ => None,
    });
    let text = match (source, line) {
        (Some(source), Some(line)) => format!("{msg} script: {name}, on {source}:{line}."),
        _ => msg,
    };
    Reply::error(text.replace(['\r', '\n'], " "))
}

/// Asks the running script's host something (`redis.acl_check_cmd`); `None` outside a run.
pub(super) fn with_host<R>(lua: &Lua, f: impl FnOnce(&mut dyn Host) -> R) -> Option<R> {
    let host = lua.app_data_ref::<RunState>()?.host?;
    // SAFETY: as in `redis_call`: the pointer is set only while the `run` that holds the
    // `&mut dyn Host` is on this thread's stack and not using it; nothing else refers
    // to the host while this runs (the VM is not re-entered from here).
    let host: &mut dyn Host = unsafe { &mut *host.0 };
    Some(f(host))
}

/// Redis's error for `redis.call`/`redis.pcall` made when no script runs (a reference
/// to them kept past the run it was taken in).
const ERR_OUTSIDE_RUN: &str = "ERR redis.call/pcall can only be called inside a script invocation";

/// `redis.call` (`raise`) and `redis.pcall`: run the command; a failed command gives
/// pcall its `{err=…}` table and makes call raise it. A spent budget raises from both.
/// Made once per VM; the host is the one [`Engine::run`] put in [`RunState::host`].
fn redis_call(lua: &Lua, args: MultiValue, status: &Status, raise: bool) -> mlua::Result<Value> {
    let raise_with = |value: Value, text: String| -> mlua::Result<Value> {
        if let Some(mut s) = lua.app_data_mut::<RunState>() {
            s.raised = Some(value);
        }
        Err(mlua::Error::RuntimeError(text))
    };
    let (resp3, host) = match lua.app_data_ref::<RunState>() {
        Some(s) => (s.resp3, s.host),
        None => (false, None),
    };
    let Some(host) = host else {
        // As Redis's: raised from both call and pcall, as an {err=…} table.
        return raise_with(convert::error_table(lua, ERR_OUTSIDE_RUN)?, ERR_OUTSIDE_RUN.to_string());
    };
    // SAFETY: the slot holds a pointer only while the `run` that set it is on this
    // thread's stack, holding the `&mut dyn Host` it came from and not using it itself;
    // no other reference to the host is live while the command runs (the VM is not
    // re-entered from a host call).
    let host: &mut dyn Host = unsafe { &mut *host.0 };
    if let Err(stop) = budget::charge(limits::SCRIPT_CALL_INSTRUCTIONS) {
        let text = stop.message();
        return raise_with(Value::String(lua.create_string(&text)?), text);
    }
    let fail = |text: &str| -> mlua::Result<Value> {
        let table = convert::error_table(lua, text)?;
        if raise {
            raise_with(table, text.to_string())
        } else {
            Ok(table)
        }
    };
    if args.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    let Some(argv) = command_args(&args) else {
        return fail("ERR Lua redis lib command arguments must be strings or integers");
    };
    let reply = host.call(&argv);
    if host.wrote() {
        status.wrote();
    }
    if let Reply::Error(text) = &reply {
        // Counted in errorstats at the call; marked (as Redis marks it) so that the
        // script returning it does not count it twice.
        let table = convert::error_table(lua, text)?;
        if let Value::Table(t) = &table {
            t.raw_set(COUNTED_ERROR_FIELD, true)?;
        }
        return if raise { raise_with(table, text.to_string()) } else { Ok(table) };
    }
    to_lua_within_bound(lua, reply, resp3)
}

/// A command's arguments given to a redis lib call (`redis.call`, `redis.acl_check_cmd`):
/// strings, integers and numbers as Redis formats them; `None` if another type is given.
pub(super) fn command_args(args: &MultiValue) -> Option<Vec<Bytes>> {
    args.iter()
        .map(|arg| match arg {
            Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(n) => Some(Bytes::from(n.to_string())),
            Value::Number(n) => Some(Bytes::from(format_g17(*n))),
            _ => None,
        })
        .collect()
}

/// Room the script's memory bound must leave, beyond the reply's own bound, for a reply
/// to be converted with the bound lifted (string table and reference stack growth).
const CONVERT_SLACK_BYTES: usize = 64 << 10;

/// `convert::reply_to_lua` under the run's memory bound. While a bound is set, mlua
/// makes every allocation a protected call, which in Lua 5.1 makes two C closures
/// (garbage) each time. When the heap has room for any allocation the conversion can
/// make, the bound is lifted for it: nothing it allocates could have failed, so the
/// outcome is the same. Otherwise the conversion runs under the bound, as before.
fn to_lua_within_bound(lua: &Lua, reply: Reply, resp3: bool) -> mlua::Result<Value> {
    let Ok(limit) = lua.set_memory_limit(0) else { return convert::reply_to_lua(lua, reply, resp3) };
    if limit == 0 {
        return convert::reply_to_lua(lua, reply, resp3);
    }
    let used = lua.used_memory();
    let room = convert::lua_bytes_bound(&reply)
        .and_then(|n| n.checked_add(used / 2))
        .and_then(|n| n.checked_add(CONVERT_SLACK_BYTES))
        .and_then(|n| n.checked_add(used))
        .is_some_and(|needed| needed <= limit);
    if !room {
        let _ = lua.set_memory_limit(limit);
        return convert::reply_to_lua(lua, reply, resp3);
    }
    let value = convert::reply_to_lua(lua, reply, resp3);
    let _ = lua.set_memory_limit(limit);
    value
}

/// C's `%.17g`, which Redis uses to turn a Lua number into a command argument.
pub fn format_g17(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{n:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (16 - exp).max(0) as usize;
    strip_zeros(&format!("{n:.decimals$}")).to_string()
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A fresh VM: the libraries, the sandbox, the Rust API.
fn new_vm(status: &Arc<Status>) -> mlua::Result<Vm> {
    let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::default())?;
    lua.set_app_data(RunState { resp3: false, rng: Lrand48::seeded(0), registering: None, raised: None, host: None });
    let rust = lua.create_table()?;
    let s = status.clone();
    rust.raw_set("call", lua.create_function(move |lua, args: MultiValue| redis_call(lua, args, &s, true))?)?;
    let s = status.clone();
    rust.raw_set("pcall", lua.create_function(move |lua, args: MultiValue| redis_call(lua, args, &s, false))?)?;
    rust.raw_set("redis", libs::redis_api(&lua)?)?;
    rust.raw_set("random", libs::random(&lua)?)?;
    rust.raw_set("randomseed", libs::randomseed(&lua)?)?;
    rust.raw_set("register_function", libs::register_function(&lua)?)?;
    rust.raw_set("take_raised", libs::take_raised(&lua)?)?;
    rust.raw_set("cjson", libs::cjson::table(&lua)?)?;
    rust.raw_set("cmsgpack", libs::cmsgpack::table(&lua)?)?;
    rust.raw_set("bit", libs::bit::table(&lua)?)?;
    rust.raw_set("struct", libs::structlib::table(&lua)?)?;
    let empty = lua.create_table()?;
    let bootstrap = lua.load(BOOTSTRAP).set_name("=tandem").set_environment(empty.clone()).into_function()?;
    let handles: Table = bootstrap.call((lua.globals(), rust, empty))?;
    let handler = libs::error_handler(&lua)?;
    Ok(Vm {
        g1: handles.get("G1")?,
        pf: handles.get("PF")?,
        runner: handles.get("run")?,
        run_one: handles.get("run_one")?,
        loading: handles.get("loading")?,
        set_env: handles.get("set_env")?,
        handler,
        main: main_state(&lua)?,
        scripts: HashMap::default(),
        libraries: HashMap::new(),
        seq: 0,
        collected_bytes: 0,
        lua,
    })
}

/// `true` when `flags` (a script's or function's) say it only reads.
pub fn no_writes(flags: u8) -> bool {
    flags & flag::EVAL_COMPAT == 0 && flags & flag::NO_WRITES != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_arguments_as_printf_g17() {
        assert_eq!(format_g17(9007199254740991.0), "9007199254740991");
        assert_eq!(format_g17(3.0), "3");
        assert_eq!(format_g17(-1.0), "-1");
        assert_eq!(format_g17(100.5), "100.5");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1e20), "1e+20");
        assert_eq!(format_g17(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_g17(0.0001), "0.0001");
    }

    #[test]
    fn redis_call_made_when_no_script_runs_fails_as_in_redis() {
        let mut engine = Engine::default();
        engine.compile_script("0", &Bytes::from_static(b"return 1")).unwrap();
        let vm = engine.vm.as_ref().unwrap();
        // Code loaded on the VM's thread sees the scripts' globals; no run is under way.
        for f in ["call", "pcall"] {
            let (ok, err): (bool, String) = vm.lua.load(format!("return pcall(redis.{f}, 'ping')")).eval().unwrap();
            assert!(!ok);
            assert_eq!(err, ERR_OUTSIDE_RUN);
        }
    }

    #[test]
    fn lrand48_matches_the_libc_sequence() {
        // srand48(0); lrand48() ×3 on glibc.
        let mut r = Lrand48::seeded(0);
        assert_eq!([r.next(), r.next(), r.next()], [366850414, 1610402240, 206956554]);
    }
}
