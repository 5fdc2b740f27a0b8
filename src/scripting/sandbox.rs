//! The environment scripts run in, built once per VM by a trusted Lua chunk
//! ([`BOOTSTRAP`]) from Lua's own base, `string`, `table` and `math` libraries and the
//! Rust functions of [`super::engine`] and [`super::libs`].
//!
//! Stock Lua 5.1 has no read-only tables (Redis patches its Lua for that), so the
//! protection is built from proxies: every table a script can reach (`_G`, `redis`,
//! `string`, `cjson`, …) is an empty table whose metatable reads from the real one,
//! refuses writes with Redis's "Attempt to modify a readonly table", and hides itself
//! (`__metatable`). `rawset`, `setmetatable` and `table.insert/remove/sort` refuse
//! those proxies; `getmetatable("")` gives a read-only view. A missing global is
//! Redis's "Script attempted to access nonexistent global variable".
//!
//! EVAL scripts see `_G` (KEYS and ARGV are set per call). Functions see their own
//! environment whose lookups go, while FUNCTION LOAD runs the library's chunk, to the
//! load API only (`redis.register_function`, `redis.log`, the version) and, while
//! FCALL runs a function, to the same globals as EVAL.
//!
//! Rust functions never raise Lua errors themselves (an mlua error reaches Lua as a
//! userdata): they return `true, results…` or `false, error`, and the Lua wrapper here
//! raises the error as Redis would — a string for library errors, an `{err=…}` table
//! for errors of the Redis API. `redis.call` is the exception (a Lua wrapper would lose
//! the caller's frame to a tail call): it leaves its `{err=…}` table with the run and
//! raises; the error handler and `pcall` take the table back (`take_raised`).

/// The trusted chunk. Called with the real globals, the Rust functions and an empty
/// read-only table (its own environment); returns the handles the engine needs.
pub const BOOTSTRAP: &str = r##"
local G0, rust, EMPTY = ...
local type, error, select, rawget, rawset = G0.type, G0.error, G0.select, G0.rawget, G0.rawset
local real_setmetatable, real_getmetatable, real_tostring = G0.setmetatable, G0.getmetatable, G0.tostring
local real_pcall, real_loadstring, real_setfenv, xpcall = G0.pcall, G0.loadstring, G0.setfenv, G0.xpcall
local string, table, math, coroutine = G0.string, G0.table, G0.math, G0.coroutine
local byte, format, concat = string.byte, string.format, table.concat

-- Read-only proxies.
local RO = {}
local function ro_error() error("Attempt to modify a readonly table", 2) end
local PROTECTED = {}
real_setmetatable(PROTECTED, {__newindex = ro_error, __metatable = PROTECTED})
RO[PROTECTED] = true
RO[EMPTY] = true
local function proxy(real)
  local p = {}
  real_setmetatable(p, {__index = real, __newindex = ro_error, __metatable = PROTECTED})
  RO[p] = true
  return p
end
local function missing_global(_, k)
  error("Script attempted to access nonexistent global variable '" .. real_tostring(k) .. "'", 2)
end
-- A table whose missing fields raise the nonexistent-global error (Redis does so for its API tables).
local function strict(t)
  real_setmetatable(t, {__index = missing_global})
  return t
end

-- Rust functions return true, results... or false, error: raise the error here.
local function check(ok, ...)
  if ok then return ... end
  error((...), 0)
end
local function wrap(f) return function(...) return check(f(...)) end end
local function wrap_all(t)
  local out = {}
  for k, v in G0.pairs(t) do
    if type(v) == "function" then out[k] = wrap(v) else out[k] = v end
  end
  return out
end

-- Per-run state, set from Rust before each script: a run counter. redis.call and
-- redis.pcall are Rust functions (so a tail call keeps the caller's frame), made once;
-- called when no script runs they raise Redis's "can only be called inside a script
-- invocation".
local RUN = {seq = 0}
local take_raised = rust.take_raised

-- The redis API.
local R = wrap_all(rust.redis)
R.call, R.pcall = rust.call, rust.pcall
R.error_reply = function(...)
  if select("#", ...) ~= 1 or type((...)) ~= "string" then
    return {err = "ERR wrong number or type of arguments"}
  end
  local e = ...
  if byte(e, 1) == 45 then e = G0.string.sub(e, 2) end
  local code, msg = G0.string.match(e, "^(%S+) (.*)$")
  if not code then code, msg = "ERR", e end
  if e == "" then return {err = "ERR"} end
  return {err = code .. " " .. msg}
end
R.status_reply = function(...)
  if select("#", ...) ~= 1 or type((...)) ~= "string" then
    return {err = "ERR wrong number or type of arguments"}
  end
  return {ok = (...)}
end
R.REPL_NONE, R.REPL_AOF, R.REPL_SLAVE, R.REPL_REPLICA, R.REPL_ALL = 0, 1, 2, 2, 3
R.LOG_DEBUG, R.LOG_VERBOSE, R.LOG_NOTICE, R.LOG_WARNING = 0, 1, 2, 3
-- A missing field of the running scripts' `redis` table is nil (Redis 7.0 protects the
-- globals and the FUNCTION LOAD API this way, not this table): calling
-- `redis.register_function` from a function fails as "attempt to call field … (a nil value)".

local M = {}
for k, v in G0.pairs(math) do M[k] = v end
M.random = wrap(rust.random)
M.randomseed = wrap(rust.randomseed)

-- Deterministic tostring: tables and functions get a per-script number, not an address.
local ids, next_id, ids_seq = {}, 0, -1
local function det_tostring(v)
  local t = type(v)
  if t == "table" or t == "function" or t == "userdata" or t == "thread" then
    local mt = real_getmetatable(v)
    if not (type(mt) == "table" and mt ~= PROTECTED and rawget(mt, "__tostring")) then
      if ids_seq ~= RUN.seq then ids, next_id, ids_seq = {}, 0, RUN.seq end
      local id = ids[v]
      if not id then next_id = next_id + 1; id = next_id; ids[v] = id end
      return t .. ": " .. format("0x%08x", id)
    end
  end
  return real_tostring(v)
end

local function guard_first(f)
  return function(t, ...)
    if RO[t] then ro_error() end
    return f(t, ...)
  end
end

local T = {}
for k, v in G0.pairs(table) do T[k] = v end
T.insert, T.remove, T.sort = guard_first(table.insert), guard_first(table.remove), guard_first(table.sort)

local STRING = proxy(string)
local string_mt = real_getmetatable("")
string_mt.__index = STRING
local STRING_MT_VIEW = proxy({__index = STRING})

local function safe_loadstring(s, name)
  if type(s) == "string" and byte(s, 1) == 27 then return nil, "binary chunks are not allowed" end
  return real_loadstring(s, name)
end

-- Redis's pcall: an error raised as {err=...} comes back as its message.
local function pcall_result(ok, ...)
  if ok then return ok, ... end
  local e = ...
  if type(e) == "userdata" then
    local raised = take_raised()
    if raised ~= nil then e = raised end
  end
  if type(e) == "table" and type(rawget(e, "err")) == "string" then return false, rawget(e, "err") end
  return false, e
end

local G1 = {}
G1.xpcall, G1.next, G1.assert, G1.tonumber, G1.rawequal = xpcall, G0.next, G0.assert, G0.tonumber, G0.rawequal
G1.type, G1.select, G1.unpack, G1.pairs, G1.ipairs, G1.rawget, G1.error = type, select, G0.unpack, G0.pairs, G0.ipairs, rawget, error
G1.getfenv, G1._VERSION = G0.getfenv, G0._VERSION
G1.tostring = det_tostring
G1.setmetatable = guard_first(real_setmetatable)
G1.rawset = guard_first(rawset)
G1.getmetatable = function(v)
  if type(v) == "string" then return STRING_MT_VIEW end
  return real_getmetatable(v)
end
G1.collectgarbage = function() return 0 end
G1.gcinfo = function() return 0 end
G1.loadstring = safe_loadstring
G1.load = function(f, name)
  local parts, n = {}, 0
  while true do
    local piece = f()
    if piece == nil or piece == "" then break end
    if type(piece) ~= "string" then return nil, "reader function must return a string" end
    n = n + 1; parts[n] = piece
  end
  return safe_loadstring(concat(parts), name or "=(load)")
end
G1.pcall = function(...) return pcall_result(real_pcall(...)) end
G1.redis = proxy(R)
G1.string = STRING
G1.table = proxy(T)
G1.math = proxy(M)
G1.coroutine = proxy(coroutine)
G1.cjson = proxy(wrap_all(rust.cjson))
G1.cmsgpack = proxy(wrap_all(rust.cmsgpack))
G1.bit = proxy(wrap_all(rust.bit))
G1.struct = proxy(wrap_all(rust.struct))
strict(G1)
local P = proxy(G1)
G1._G = P

-- The FUNCTION LOAD API: only register_function, log and the version.
local RL = strict({register_function = wrap(rust.register_function), log = R.log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = rawget(R, "REDIS_VERSION"), REDIS_VERSION_NUM = rawget(R, "REDIS_VERSION_NUM")})
local GL = strict({redis = proxy(RL)})

-- The functions' environment: lookups go to GL while a library loads, to G1 when a function runs.
local MT_F = {__index = G1, __newindex = ro_error, __metatable = PROTECTED}
local PF = {}
real_setmetatable(PF, MT_F)
RO[PF] = true

-- From now on, code loaded on this thread (every script) sees P.
real_setfenv(0, P)

local handles = {}
handles.P, handles.PF, handles.G1, handles.RUN, handles.R = P, PF, G1, RUN, R
handles.loading = function(on) if on then MT_F.__index = GL else MT_F.__index = G1 end end
handles.set_env = function(f, env) real_setfenv(f, env) end
handles.run = function(f, handler)
  return xpcall(f, handler)
end
-- One run of a script (as_function false: KEYS and ARGV are globals for its run) or
-- of a function (called with them). Set here, not field by field from Rust: each
-- field set through the host API cost more than the whole of this.
handles.run_one = function(f, handler, seq, as_function, keys, args)
  RUN.seq = seq
  if as_function then return xpcall(function() return f(keys, args) end, handler) end
  rawset(G1, "KEYS", keys)
  rawset(G1, "ARGV", args)
  local ok, result = xpcall(f, handler)
  rawset(G1, "KEYS", nil)
  rawset(G1, "ARGV", nil)
  return ok, result
end
return handles
"##;
