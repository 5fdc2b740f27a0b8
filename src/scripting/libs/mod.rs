//! The Rust side of what scripts can call: the `redis` API (besides `call`/`pcall`,
//! which the engine provides per run), `math.random`, `redis.register_function`, the
//! error handler, and the libraries Redis bundles as C code (`cjson`, `cmsgpack`,
//! `bit`, `struct`), written here from their documented behaviour.
//!
//! Every function returns `true, results…` on success and `false, error` on failure;
//! the sandbox's Lua wrapper raises the error (see [`super::sandbox`]).

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::engine::{Registered, RunState};
use crate::store::scripts::{flag, FunctionInfo};

/// The version scripts see (`redis.REDIS_VERSION`): the one HELLO reports.
pub const REDIS_VERSION: &str = crate::commands::REDIS_VERSION;

/// A failure: a plain message (raised as a string, as Lua's C libraries do) or a Redis
/// API error (raised as an `{err=…}` table).
pub enum Failure {
    Message(String),
    Redis(String),
}

/// Wraps `f` into the `true, …` / `false, error` convention.
pub fn function<F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, MultiValue) -> Result<MultiValue, Failure> + Send + 'static,
{
    lua.create_function(move |lua, args: MultiValue| {
        let mut out = MultiValue::new();
        match f(lua, args) {
            Ok(values) => {
                out.push_back(Value::Boolean(true));
                out.extend(values);
            }
            Err(Failure::Message(m)) => {
                out.push_back(Value::Boolean(false));
                out.push_back(Value::String(lua.create_string(m)?));
            }
            Err(Failure::Redis(m)) => {
                out.push_back(Value::Boolean(false));
                let t = lua.create_table()?;
                // As Redis's luaPushError: a message without an error code gets ERR.
                let text = if m.starts_with('-') { super::convert::normalize_error(&m) } else { format!("ERR {m}") };
                t.raw_set("err", text)?;
                out.push_back(Value::Table(t));
            }
        }
        Ok(out)
    })
}

pub fn one(v: Value) -> MultiValue {
    MultiValue::from_iter([v])
}

fn mlua_failure(e: mlua::Error) -> Failure {
    Failure::Message(e.to_string())
}

impl From<mlua::Error> for Failure {
    fn from(e: mlua::Error) -> Self {
        mlua_failure(e)
    }
}

/// A number argument as Lua's `tonumber` would take it (strings convert).
pub fn number_arg(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => s.to_str().ok()?.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// `bad argument #n to 'name' (number expected, got type)`, Lua's own text.
pub fn bad_argument(n: usize, name: &str, expected: &str, got: Option<&Value>) -> Failure {
    let got = got.map_or("no value", |v| v.type_name());
    Failure::Message(format!("bad argument #{n} to '{name}' ({expected} expected, got {got})"))
}

/// The `redis` table's Rust functions and constants.
pub fn redis_api(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "sha1hex",
        function(lua, |lua, args| {
            if args.len() != 1 {
                return Err(Failure::Redis("wrong number of arguments".into()));
            }
            let bytes = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(n) => n.to_string().into_bytes(),
                Value::Number(n) => super::engine::format_g17(*n).into_bytes(),
                _ => Vec::new(),
            };
            Ok(one(Value::String(lua.create_string(crate::store::scripts::sha1_hex(&bytes))?)))
        })?,
    )?;
    t.raw_set(
        "log",
        function(lua, |_, args| {
            if args.len() < 2 {
                return Err(Failure::Redis("redis.log() requires two arguments or more.".into()));
            }
            let Some(level) = number_arg(args.front()) else {
                return Err(Failure::Redis("First argument must be a number (log level).".into()));
            };
            if !(0.0..=3.0).contains(&level) {
                return Err(Failure::Redis("Invalid debug level.".into()));
            }
            let text: Vec<String> = args.iter().skip(1).filter_map(|v| v.to_string().ok()).collect();
            let text = text.join(" ");
            match level as i64 {
                3 => tracing::warn!(target: "script", "{text}"),
                2 => tracing::info!(target: "script", "{text}"),
                _ => tracing::debug!(target: "script", "{text}"),
            }
            Ok(MultiValue::new())
        })?,
    )?;
    t.raw_set(
        "setresp",
        function(lua, |lua, args| {
            if args.len() != 1 {
                return Err(Failure::Redis("redis.setresp() requires one argument.".into()));
            }
            let resp = number_arg(args.front()).unwrap_or(0.0) as i64;
            if resp != 2 && resp != 3 {
                return Err(Failure::Redis("RESP version must be 2 or 3.".into()));
            }
            if let Some(mut s) = lua.app_data_mut::<RunState>() {
                s.resp3 = resp == 3;
            }
            Ok(MultiValue::new())
        })?,
    )?;
    t.raw_set(
        "set_repl",
        function(lua, |_, args| {
            if args.len() != 1 {
                return Err(Failure::Redis("redis.set_repl() requires two arguments.".into()));
            }
            // Scripts run on every server from the log: there is nothing to select;
            // the flags are checked and accepted.
            let flags = number_arg(args.front()).unwrap_or(-1.0) as i64;
            if !(0..=3).contains(&flags) {
                return Err(Failure::Redis("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.".into()));
            }
            Ok(MultiValue::new())
        })?,
    )?;
    t.raw_set("replicate_commands", function(lua, |_, _| Ok(one(Value::Boolean(true))))?)?;
    t.raw_set("breakpoint", function(lua, |_, _| Ok(one(Value::Boolean(false))))?)?;
    t.raw_set("debug", function(lua, |_, _| Ok(MultiValue::new()))?)?;
    t.raw_set(
        "acl_check_cmd",
        function(lua, |lua, args| {
            let Some(Value::String(_)) = args.front() else {
                return Err(Failure::Redis("Please specify at least one argument for this redis lib call".into()));
            };
            let Some(argv) = super::engine::command_args(&args) else {
                return Err(Failure::Redis("Lua redis lib command arguments must be strings or integers".into()));
            };
            // Checked against the script's user as the stripe's state has it (every
            // member answers alike); outside a run, against the default user.
            let permitted = super::engine::with_host(lua, |host| host.acl_permits(&argv))
                .unwrap_or_else(|| crate::commands::resolve(&argv).map(|_| true));
            match permitted {
                Some(yes) => Ok(one(Value::Boolean(yes))),
                None => Err(Failure::Redis("Invalid command passed to redis.acl_check_cmd()".into())),
            }
        })?,
    )?;
    t.raw_set("REDIS_VERSION", REDIS_VERSION)?;
    t.raw_set("REDIS_VERSION_NUM", version_num(REDIS_VERSION))?;
    Ok(t)
}

/// `7.2.0` → `0x070200`.
fn version_num(v: &str) -> i64 {
    v.split('.').take(3).fold(0, |acc, p| (acc << 8) | p.parse::<i64>().unwrap_or(0))
}

/// `math.random` on the run's generator (Redis's implementation over lrand48).
pub fn random(lua: &Lua) -> mlua::Result<Function> {
    function(lua, |lua, args| {
        const MAX: f64 = 2147483647.0;
        let r = {
            let Some(mut state) = lua.app_data_mut::<RunState>() else { return Err(Failure::Message("no run".into())) };
            (state.rng.next() as i64 % 2147483647) as f64 / MAX
        };
        let value = match args.len() {
            0 => r,
            1 => {
                let u = number_arg(args.front()).ok_or_else(|| bad_argument(1, "random", "number", args.front()))? as i64;
                if u < 1 {
                    return Err(Failure::Message("bad argument #1 to 'random' (interval is empty)".into()));
                }
                (r * u as f64).floor() + 1.0
            }
            2 => {
                let l = number_arg(args.front()).ok_or_else(|| bad_argument(1, "random", "number", args.front()))? as i64;
                let u = number_arg(args.get(1)).ok_or_else(|| bad_argument(2, "random", "number", args.get(1)))? as i64;
                if l > u {
                    return Err(Failure::Message("bad argument #2 to 'random' (interval is empty)".into()));
                }
                (r * (u - l + 1) as f64).floor() + l as f64
            }
            _ => return Err(Failure::Message("wrong number of arguments".into())),
        };
        Ok(one(Value::Number(value)))
    })
}

pub fn randomseed(lua: &Lua) -> mlua::Result<Function> {
    function(lua, |lua, args| {
        let seed = number_arg(args.front()).ok_or_else(|| bad_argument(1, "randomseed", "number", args.front()))?;
        if let Some(mut state) = lua.app_data_mut::<RunState>() {
            state.rng = super::engine::Lrand48::seeded(seed as i64 as i32);
        }
        Ok(MultiValue::new())
    })
}

/// `redis.register_function(name, callback)` or `redis.register_function{…}`.
pub fn register_function(lua: &Lua) -> mlua::Result<Function> {
    function(lua, |lua, args| {
        let registered = read_registration(&args)?;
        let Some(mut state) = lua.app_data_mut::<RunState>() else { return Err(Failure::Message("no run".into())) };
        let Some(list) = state.registering.as_mut() else {
            return Err(Failure::Redis("redis.register_function can only be called on FUNCTION LOAD command".into()));
        };
        if !super::shebang::valid_name(&registered.info.name) {
            return Err(Failure::Redis(
                "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into(),
            ));
        }
        if list.iter().any(|r| r.info.name.eq_ignore_ascii_case(&registered.info.name)) {
            return Err(Failure::Redis("Function already exists in the library".into()));
        }
        list.push(registered);
        Ok(MultiValue::new())
    })
}

fn read_registration(args: &MultiValue) -> Result<Registered, Failure> {
    let fail = |m: &str| Failure::Redis(m.to_string());
    match args.len() {
        1 => {
            let Some(Value::Table(t)) = args.front() else {
                return Err(fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."));
            };
            let (mut name, mut description, mut callback, mut flags) = (None, None, None, 0u8);
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|_| fail("named argument key given to redis.register_function is not a string"))?;
                let Value::String(k) = k else { return Err(fail("named argument key given to redis.register_function is not a string")) };
                match k.to_string_lossy().to_ascii_lowercase().as_str() {
                    "function_name" => match v {
                        Value::String(s) => name = Some(s.to_string_lossy().to_string()),
                        _ => return Err(fail("function_name argument given to redis.register_function must be a string")),
                    },
                    "description" => match v {
                        Value::String(s) => description = Some(s.to_string_lossy().to_string()),
                        _ => return Err(fail("description argument given to redis.register_function must be a string")),
                    },
                    "callback" => match v {
                        Value::Function(f) => callback = Some(f),
                        _ => return Err(fail("callback argument given to redis.register_function must be a function")),
                    },
                    "flags" => {
                        let Value::Table(list) = v else {
                            return Err(fail("flags argument to redis.register_function must be a table representing function flags"));
                        };
                        for item in list.sequence_values::<Value>() {
                            let Ok(Value::String(s)) = item else { return Err(fail("unknown flag given")) };
                            flags |= flag::by_name(&s.to_string_lossy(), true).ok_or_else(|| fail("unknown flag given"))?;
                        }
                    }
                    _ => return Err(fail("unknown argument given to redis.register_function")),
                }
            }
            let name = name.ok_or_else(|| fail("redis.register_function must get a function name argument"))?;
            let callback = callback.ok_or_else(|| fail("redis.register_function must get a callback argument"))?;
            Ok(Registered { info: FunctionInfo { name, description, flags }, callback })
        }
        2 => {
            let name = match &args[0] {
                Value::String(s) => s.to_string_lossy().to_string(),
                Value::Integer(n) => n.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return Err(fail("first argument to redis.register_function must be a string")),
            };
            let Value::Function(callback) = &args[1] else {
                return Err(fail("second argument to redis.register_function must be a function"));
            };
            Ok(Registered { info: FunctionInfo { name, description: None, flags: 0 }, callback: callback.clone() })
        }
        _ => Err(fail("wrong number of arguments to redis.register_function")),
    }
}

/// Hands the error `redis.call` raised back to Lua (the sandbox's `pcall`), once.
pub fn take_raised(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(|lua, ()| Ok(lua.app_data_mut::<RunState>().and_then(|mut s| s.raised.take()).unwrap_or(Value::Nil)))
}

/// The message handler of every script call: turns the error into Redis's
/// `{err=…, source=…, line=…}`, naming the first frame of the user's code.
pub fn error_handler(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(|lua, err: Value| {
        let err = match err {
            // mlua shows a Rust callback's error as Value::Error (a userdata to Lua).
            Value::UserData(_) | Value::Error(_) => lua.app_data_mut::<RunState>().and_then(|mut s| s.raised.take()).unwrap_or(err),
            other => other,
        };
        let table = match err {
            Value::Table(t) if matches!(t.raw_get::<Value>("err"), Ok(Value::String(_))) => t,
            other => {
                let text = match &other {
                    Value::String(s) => s.to_string_lossy().to_string(),
                    Value::Error(e) => e.to_string().lines().next().unwrap_or_default().trim_start_matches("runtime error: ").to_string(),
                    Value::Nil => "nil".into(),
                    v => v.to_string().unwrap_or_else(|_| v.type_name().to_string()),
                };
                let t = lua.create_table()?;
                t.raw_set("err", format!("ERR {text}"))?;
                t
            }
        };
        for level in 1..64 {
            let Some(frame) = lua.inspect_stack(level) else { break };
            let source = frame.source();
            if source.what == "C" || source.what == "tail" {
                continue;
            }
            let name = source.source.as_deref().unwrap_or_default().to_string();
            if name.starts_with("=tandem") || name.starts_with("=(tail") {
                continue;
            }
            table.raw_set("source", name)?;
            table.raw_set("line", frame.curr_line())?;
            break;
        }
        Ok(table)
    })
}
