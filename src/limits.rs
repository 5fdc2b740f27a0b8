//! Every bound Tandem puts on what a peer can make it do, with the reason.
//! A limit a client can change at run time (CONFIG SET) starts from the value here.

/// Largest bulk string a client may send (`proto-max-bulk-len`): Redis's default,
/// so that every value a Redis client can store here it could store in Redis.
pub const BULK_BYTES_MAX_DEFAULT: usize = 512 * 1024 * 1024;

/// Most arguments in one command. Redis allows 2^31; a million keeps a hostile
/// `*3000000000` from doing anything but earn an error, and is more than any
/// real MSET/DEL sends.
pub const ARGS_MAX: usize = 1024 * 1024;

/// Preallocation for an announced array: what is announced is not yet received,
/// so reserve at most this and grow as elements really arrive (Redis does the same).
pub const ARGS_PREALLOC_MAX: usize = 1024;

/// Longest inline command line (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_BYTES_MAX: usize = 64 * 1024;

/// Unparsed input one connection may hold (`client-query-buffer-limit`, Redis: 1 GB).
/// Past it the connection is closed: the client sends faster than it reads replies
/// or sends a command larger than any allowed one.
pub const QUERY_BUFFER_BYTES_MAX: usize = 1024 * 1024 * 1024;

/// Nesting depth of RESP3 aggregates the general frame parser accepts. Requests are
/// flat arrays; replies relayed from another server nest a few levels (COMMAND
/// DOCS nests 5); 32 leaves room and bounds recursion.
pub const FRAME_DEPTH_MAX: usize = 32;

/// Bytes of pub/sub messages queued for one slow subscriber before it is
/// disconnected (Redis's `client-output-buffer-limit pubsub 32mb`).
pub const PUBSUB_QUEUE_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Keys the active expiry cycle deletes in one log entry: bounds the entry's size
/// and the time the store lock is held.
pub const EXPIRE_KEYS_PER_ENTRY_MAX: usize = 512;

/// Keys evicted in one entry before memory is measured again.
pub const EVICT_KEYS_PER_ENTRY_MAX: usize = 64;

/// Largest `count` a SCAN-family call may ask for in one step; bounds the work done
/// under the store lock.
pub const SCAN_COUNT_MAX: usize = 100_000;

/// Longest SETRANGE/APPEND result, as Redis: a string may not exceed proto-max-bulk-len.
pub const STRING_BYTES_MAX: usize = 512 * 1024 * 1024;

/// Connections served at once (`maxclients`, Redis's default).
pub const CLIENTS_MAX_DEFAULT: usize = 10_000;

/// Scripts in the script cache (SCRIPT LOAD, EVAL): the cache is replicated state,
/// so clients that generate a new script per call must meet an error, not fill the
/// stripe's memory and every snapshot. EVAL still runs a script the full cache
/// cannot take; SCRIPT LOAD is refused.
pub const SCRIPT_CACHE_COUNT_MAX: usize = 10_000;
/// Bytes of script sources in the script cache.
pub const SCRIPT_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Function libraries (FUNCTION LOAD): replicated state too.
pub const FUNCTION_LIBRARIES_MAX: usize = 1_000;
/// Bytes of library code.
pub const FUNCTION_LIBRARY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Lua instructions one script may run by default (each `redis.call` is charged
/// [`SCRIPT_CALL_INSTRUCTIONS`] more). Every server of the stripe stops a script at
/// the same instruction, so the state stays equal. A `while true do end` loop ran
/// 1.99e8 instructions per second here (bench/scripting.sh, release build, a shared
/// machine at load 8; BENCHMARKS.md), so the default stops a runaway in about 0.25 s,
/// under the default election time of 1 s and a write's wait of 5 s (the script runs
/// off the runtime thread, so heartbeats go on meanwhile); `TANDEM.SCRIPTLIMITS`
/// changes it for the stripe. The default is part of the replicated state (a
/// member replaying its log from the start begins with it), so it never changes
/// between versions: a stripe whose members disagreed on it would diverge.
pub const SCRIPT_INSTRUCTIONS_DEFAULT: u64 = 50_000_000;
/// What one `redis.call`/`redis.pcall` costs in instructions: commands take far
/// longer than a Lua instruction, and a loop of calls must not outlast the budget's
/// intent.
pub const SCRIPT_CALL_INSTRUCTIONS: u64 = 100;
/// Instructions between two checks of the budget (the count hook's period).
pub const SCRIPT_HOOK_INSTRUCTIONS: u32 = 10_000;
/// Instructions a FUNCTION LOAD may spend registering functions (Redis stops it after
/// 500 ms; a count keeps every server in agreement).
pub const FUNCTION_LOAD_INSTRUCTIONS_MAX: u64 = 10_000_000;
/// Bytes the Lua heap may grow by while one script runs: past it allocations fail
/// and the script stops with an error.
pub const SCRIPT_MEMORY_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

/// Longest a TLS handshake on the tls-port may take: a client that connects and then
/// stalls (or trickles bytes) holds a socket and a task, so it is cut off.
pub const TLS_HANDSHAKE_MS_MAX: u64 = 10_000;
