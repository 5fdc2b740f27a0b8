//! The command table and what handlers share: argument parsing helpers, the
//! contexts handlers run in, and Redis's error strings.
//!
//! Three kinds of handler:
//! - [`Handler::Read`] runs against `&Db` at the reader's time and changes nothing
//!   (the type system enforces it);
//! - [`Handler::Write`] runs inside [`crate::store::Store::apply`] with the time and
//!   random seed stamped in the log entry, so every replica computes the same result;
//! - [`Handler::Server`] is served by the server the client is connected to (HELLO,
//!   SUBSCRIBE, CONFIG, MULTI, …) and never reaches the state machine; its [`Srv`]
//!   names the handler `server::cmd` runs for it.
//!
//! One file per command family; each exports `COMMANDS`.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::protocol::reply::Reply;
use crate::store::db::{Db, Item};
use crate::store::value::Value;
use crate::store::KeyEvent;

pub mod acl;
pub mod args;
pub mod bitmaps;
pub mod connection;
pub mod functions;
pub mod geo;
pub mod geohash;
pub mod hashes;
pub mod hll;
pub mod hyperloglog;
pub mod keys;
pub mod lists;
pub mod object;
pub mod pubsub;
pub mod scan;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod tandem;
pub mod transactions;
pub mod zset_multi;
pub mod zsets;

pub use args::*;

/// The Redis version clients are told (features they may use: RESP3, CLIENT SETINFO,
/// …; scripts see it as `redis.REDIS_VERSION`). 7.4: redis-py turns its client-side
/// cache (`cache_config`, CLIENT TRACKING) on only from that version.
pub const REDIS_VERSION: &str = "7.4.0";

/// A handler's outcome: `Err` carries an error reply, so `?` works on helpers.
pub type CmdResult = Result<Reply, Reply>;

pub type ReadFn = fn(&mut ReadCtx<'_>, &[Bytes]) -> CmdResult;

pub type WriteFn = fn(&mut WriteCtx<'_>, &[Bytes]) -> CmdResult;

#[derive(Clone, Copy)]
pub enum Handler {
    Read(ReadFn),
    Write(WriteFn),
    Server(Srv),
}

/// The commands the server serves itself, one variant per handler (`server::cmd`
/// maps each to its function): typed, so no command is recognised by its name text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Srv {
    Ping,
    Echo,
    Hello,
    Auth,
    Select,
    Client,
    Quit,
    Reset,
    Readonly,
    Readwrite,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    Subscribe,
    Unsubscribe,
    Psubscribe,
    Punsubscribe,
    Publish,
    Ssubscribe,
    Sunsubscribe,
    Spublish,
    Pubsub,
    Info,
    Command,
    Config,
    Time,
    Memory,
    Save,
    Bgsave,
    Shutdown,
    Lastsave,
    Role,
    Cluster,
    Asking,
    /// SCRIPT KILL and FUNCTION KILL: reach the running script through its status.
    ScriptKill,
    FunctionKill,
    /// ACL's subcommands that read users or the connection (WHOAMI, GETUSER, LOG…).
    Acl,
    Slowlog,
    Latency,
    /// CLIENT UNBLOCK and CLIENT PAUSE: they reach other clients' waits.
    ClientUnblock,
    ClientPause,
    /// CLIENT TRACKING and CLIENT CACHING: client-side caching (`server::tracking`).
    ClientTracking,
    /// MIGRATE: DUMP here, RESTORE on another server.
    Migrate,
    Monitor,
    /// WAIT: counts the mirrors holding the client's writes (`server::cmd::wait`).
    Wait,
}

impl Srv {
    /// Runs at once inside MULTI instead of being queued (Redis's list).
    pub fn runs_in_multi(self) -> bool {
        matches!(self, Srv::Exec | Srv::Discard | Srv::Multi | Srv::Watch | Srv::Quit | Srv::Reset)
    }

    /// SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH: their key positions name shard channels,
    /// which are no keys (Redis's NOT_KEY key-spec flag).
    pub fn shard_channels(self) -> bool {
        matches!(self, Srv::Ssubscribe | Srv::Sunsubscribe | Srv::Spublish)
    }

    /// Allowed on a RESP2 connection that has subscriptions.
    pub fn allowed_subscribed(self) -> bool {
        matches!(
            self,
            Srv::Subscribe
                | Srv::Psubscribe
                | Srv::Unsubscribe
                | Srv::Punsubscribe
                | Srv::Ssubscribe
                | Srv::Sunsubscribe
                | Srv::Ping
                | Srv::Quit
                | Srv::Reset
        )
    }
}

/// Finds the key positions of a command whose keys move with its arguments (a
/// `numkeys` argument, a `STREAMS` keyword…). Positions past the arguments are never
/// returned.
pub type KeyFinder = fn(&[Bytes]) -> Vec<usize>;

/// Command flags (Redis's names, as COMMAND INFO shows them).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const FAST: u32 = 1 << 9;
    pub const NO_AUTH: u32 = 1 << 10;
    pub const NO_MULTI: u32 = 1 << 11;
    pub const ALLOW_BUSY: u32 = 1 << 12;
    /// Written by the active itself (expiry, eviction); clients cannot call it.
    pub const INTERNAL: u32 = 1 << 13;
    pub const MOVABLE_KEYS: u32 = 1 << 14;
    /// Runs a Lua script (EVAL, FCALL…): applied off the runtime thread, since it may
    /// run long. Not shown by COMMAND INFO.
    pub const SCRIPT: u32 = 1 << 15;
    /// A blocking command whose timeout is its first argument (BLMPOP, BZMPOP), not
    /// its last. Not a Redis flag: COMMAND INFO does not show it.
    pub const TIMEOUT_FIRST: u32 = 1 << 16;
    /// May make Redis write to its replication stream though it is no write
    /// (PUBLISH, PFCOUNT's cache): held by CLIENT PAUSE WRITE like writes.
    pub const MAY_REPLICATE: u32 = 1 << 17;
    /// A write to the stripe's log that Redis does not count as a write (SCRIPT
    /// LOAD/FLUSH change no data): CLIENT PAUSE WRITE lets it through. Not shown.
    pub const NOT_PAUSED: u32 = 1 << 18;
    /// Runs for a client session (TANDEM.LOCK, TANDEM.GROUP JOIN): admission appends
    /// the connection's session (`SESSION <id>`), opening an implicit one if it has
    /// none. Not shown.
    pub const SESSION_BOUND: u32 = 1 << 19;
    /// Opens, resumes, closes or describes the connection's session: the connection
    /// fills in its session and attaches to (or detaches from) what the reply says
    /// (`server::sessions`). Not shown.
    pub const SESSION_CONTROL: u32 = 1 << 20;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
        (MOVABLE_KEYS, "movablekeys"),
        (MAY_REPLICATE, "may_replicate"),
    ];
}

/// One command: Redis's arity convention (negative = at least |arity|, counting the
/// name), flags, key positions (first, last, step; last -1 = the final argument) as
/// COMMAND INFO reports them, and the family for COMMAND DOCS.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
    pub handler: Handler,
    /// For commands with movable keys: where they are (the range above is then 0).
    pub key_finder: Option<KeyFinder>,
    /// A container's subcommands (SCRIPT LOAD, FUNCTION LIST…): [`resolve`] picks one
    /// by the second argument. Their names are `container|sub`, as Redis's.
    pub subcommands: &'static [CommandSpec],
    /// Position of a `numkeys` argument followed by that many keys (EVAL, FCALL); 0: none.
    pub numkeys_at: u8,
    /// How a BLOCKING command waits, when not as BLPOP does (timeout last, keys at
    /// fixed positions, arguments unchanged).
    pub wait: Option<&'static WaitSpec>,
}

/// How a blocking command waits: for how long, and with which arguments it is run
/// when it starts waiting and when a key it waits on (its keys) changes.
pub struct WaitSpec {
    /// The wait in ms (0 = forever), `None` when this call does not wait at all
    /// (XREAD without BLOCK), or the error for a bad timeout.
    pub timeout_ms: fn(&[Bytes]) -> Result<Option<u64>, Reply>,
    /// The arguments of the first attempt and of every attempt after a wake-up,
    /// fixed against the state when the wait starts, at `now_ms` (XREAD's `$`
    /// becomes the stream's last ID, as Redis rewrites it).
    pub prepare: fn(&Db, u64, &[Bytes]) -> Prepared,
    /// Whether a mirror may send the waiting command again to a new active when
    /// the old one is lost: only where running it twice loses nothing.
    pub resend_after_failover: bool,
    /// What to run when the wait ends unserved (its timeout, the client gone): a
    /// wait that is replicated state (a lock's FIFO queue) must be left, and a grant
    /// that raced the timeout is answered instead of nil.
    pub withdraw: Option<Withdraw>,
}

/// See [`WaitSpec::withdraw`]: the command that ends a wait, from the waiting one.
pub type Withdraw = fn(&[Bytes]) -> Vec<Bytes>;

/// See [`WaitSpec::prepare`].
pub struct Prepared {
    pub first: Vec<Bytes>,
    pub woken: Vec<Bytes>,
}

impl CommandSpec {
    /// This spec with a [`WaitSpec`].
    pub const fn waits(self, wait: &'static WaitSpec) -> CommandSpec {
        CommandSpec { wait: Some(wait), ..self }
    }

    /// Whether this call of a command may wait (BLPOP always; XREAD only with BLOCK).
    pub fn blocks(&self, args: &[Bytes]) -> bool {
        self.has(flags::BLOCKING) && self.wait.is_none_or(|w| matches!((w.timeout_ms)(args), Ok(Some(_))))
    }

    /// The wait of a blocking command in ms (0 = forever); by default its last
    /// argument in seconds, or its first for [`flags::TIMEOUT_FIRST`] commands (BLMPOP,
    /// BZMPOP). `None`: this call does not wait.
    pub fn wait_ms(&self, args: &[Bytes]) -> Result<Option<u64>, Reply> {
        match self.wait {
            Some(wait) => (wait.timeout_ms)(args),
            None => {
                let arg = blocking_timeout_arg(self, args).ok_or(Reply::err(args::ERR_SYNTAX))?;
                args::timeout_arg(arg).map(Some)
            }
        }
    }

    /// The keys a blocking command waits on.
    pub fn wait_keys(&self, args: &[Bytes]) -> Vec<Bytes> {
        self.keys(args).into_iter().cloned().collect()
    }

    /// The arguments to run when the wait starts and after each wake-up.
    pub fn prepare_wait(&self, db: &Db, now_ms: u64, args: &[Bytes]) -> Prepared {
        match self.wait {
            Some(wait) => (wait.prepare)(db, now_ms, args),
            None => Prepared { first: args.to_vec(), woken: args.to_vec() },
        }
    }

    /// See [`WaitSpec::resend_after_failover`].
    pub fn resend_after_failover(&self) -> bool {
        self.wait.is_some_and(|w| w.resend_after_failover)
    }

    pub fn is_write(&self) -> bool {
        matches!(self.handler, Handler::Write(_))
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= self.arity.unsigned_abs() as usize
        }
    }

    /// The key arguments of `args` per the spec's positions (or its key finder).
    pub fn keys<'a>(&self, args: &'a [Bytes]) -> Vec<&'a Bytes> {
        if let Some(find) = self.key_finder {
            return find(args).into_iter().filter_map(|i| args.get(i)).collect();
        }
        if self.numkeys_at > 0 {
            let at = self.numkeys_at as usize;
            let count = args.get(at).and_then(|n| parse_i64(n)).and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
            return args.iter().skip(at + 1).take(count).collect();
        }
        if self.first_key <= 0 || self.step <= 0 {
            return Vec::new();
        }
        let first = self.first_key as usize;
        let last = if self.last_key < 0 {
            let from_end = self.last_key.unsigned_abs() as usize;
            match args.len().checked_sub(from_end) {
                Some(l) => l,
                None => return Vec::new(),
            }
        } else {
            self.last_key as usize
        };
        (first..=last.min(args.len().saturating_sub(1))).step_by(self.step as usize).filter_map(|i| args.get(i)).collect()
    }
}

/// A shorthand for building table rows.
#[allow(clippy::too_many_arguments)]
pub const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group,
        summary,
        handler,
        key_finder: None,
        subcommands: &[],
        numkeys_at: 0,
        wait: None,
    }
}

/// A command whose keys follow a `numkeys` argument at position `numkeys_at` (EVAL, FCALL).
pub const fn numkeys_spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    numkeys_at: u8,
    group: &'static str,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    let mut s = spec(name, arity, flags | flags::MOVABLE_KEYS, (0, 0, 0), group, summary, handler);
    s.numkeys_at = numkeys_at;
    s
}

/// A container command (SCRIPT, FUNCTION): its own handler answers an unknown
/// subcommand; [`resolve`] hands out the subcommands.
pub const fn container(
    name: &'static str,
    flags: u32,
    group: &'static str,
    summary: &'static str,
    subcommands: &'static [CommandSpec],
) -> CommandSpec {
    // Its own handler only reads (it answers an unknown subcommand).
    let mut s = spec(name, -2, flags | flags::READONLY, (0, 0, 0), group, summary, Handler::Read(unknown_subcommand_of));
    s.subcommands = subcommands;
    s
}

/// A container the server serves itself (CLIENT, CONFIG, SLOWLOG…): [`resolve`]
/// hands out its subcommands, so arity, statistics and `CLIENT LIST`'s `cmd=` see
/// `container|sub`; an unknown subcommand reaches the container's handler, which
/// answers it.
pub const fn server_container(
    name: &'static str,
    arity: i32,
    flags: u32,
    group: &'static str,
    summary: &'static str,
    srv: Srv,
    subcommands: &'static [CommandSpec],
) -> CommandSpec {
    let mut s = spec(name, arity, flags, (0, 0, 0), group, summary, Handler::Server(srv));
    s.subcommands = subcommands;
    s
}

/// A subcommand of a [`server_container`], named `container|sub`.
pub const fn server_sub(name: &'static str, arity: i32, flags: u32, group: &'static str, summary: &'static str, srv: Srv) -> CommandSpec {
    spec(name, arity, flags, (0, 0, 0), group, summary, Handler::Server(srv))
}

fn unknown_subcommand_of(_: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).into_owned();
    Err(unknown_subcommand(&name, &args[1]))
}

/// The spec that runs `args`: the command's, or its subcommand's for a container.
/// The one place a request's spec is looked up.
pub fn resolve(args: &[Bytes]) -> Option<&'static CommandSpec> {
    let spec = lookup(args.first()?)?;
    if spec.subcommands.is_empty() {
        return Some(spec);
    }
    let Some(sub) = args.get(1) else { return Some(spec) };
    let found = spec
        .subcommands
        .iter()
        .find(|s| s.name.split_once('|').is_some_and(|(_, name)| name.len() == sub.len() && name.as_bytes().eq_ignore_ascii_case(sub)));
    Some(found.unwrap_or(spec))
}

impl CommandSpec {
    /// The same command with movable keys found by `finder`.
    pub const fn movable(mut self, finder: KeyFinder) -> CommandSpec {
        self.key_finder = Some(finder);
        self.flags |= flags::MOVABLE_KEYS;
        self
    }

    /// The handler of a server command.
    pub fn srv(&self) -> Option<Srv> {
        match self.handler {
            Handler::Server(srv) => Some(srv),
            _ => None,
        }
    }
}

/// Key finder for `<name> numkeys key [key …] …` (SINTERCARD, ZUNION, LMPOP…): the
/// `numkeys` argument at `at`, keys right after it. A bad count finds no keys (the
/// handler answers the error).
pub fn keys_after_numkeys(args: &[Bytes], at: usize) -> Vec<usize> {
    let Some(count) = args.get(at).and_then(|a| parse_i64(a)).filter(|n| *n > 0) else { return Vec::new() };
    let count = (count as usize).min(args.len().saturating_sub(at + 1));
    (at + 1..at + 1 + count).collect()
}

/// Key finder for `<name> destination numkeys key …` (ZUNIONSTORE, ZINTERSTORE,
/// ZDIFFSTORE): the destination, then the keys after `numkeys`.
pub fn keys_destination_and_numkeys(args: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    keys.extend(keys_after_numkeys(args, 2));
    keys
}

/// The type (as TYPE names it) a blocking command waits for on its keys, from its
/// family: a key that holds another type cannot serve it. `None`: no such rule.
pub fn waits_for(spec: &CommandSpec) -> Option<&'static str> {
    if !spec.has(flags::BLOCKING) {
        return None;
    }
    match spec.group {
        "list" => Some("list"),
        "sorted-set" => Some("zset"),
        "stream" => Some("stream"),
        _ => None,
    }
}

/// The timeout argument of a blocking command: its last, or its first for
/// [`flags::TIMEOUT_FIRST`] commands (BLMPOP, BZMPOP).
pub fn blocking_timeout_arg<'a>(spec: &CommandSpec, args: &'a [Bytes]) -> Option<&'a Bytes> {
    if spec.has(flags::TIMEOUT_FIRST) {
        args.get(1)
    } else {
        args.last()
    }
}

/// Every command, from every family.
pub fn all() -> impl Iterator<Item = &'static CommandSpec> {
    [
        connection::COMMANDS,
        keys::COMMANDS,
        strings::COMMANDS,
        hashes::COMMANDS,
        lists::COMMANDS,
        sets::COMMANDS,
        zsets::COMMANDS,
        streams::COMMANDS,
        pubsub::COMMANDS,
        transactions::COMMANDS,
        server::COMMANDS,
        bitmaps::COMMANDS,
        hyperloglog::COMMANDS,
        geo::COMMANDS,
        object::COMMANDS,
        sort::COMMANDS,
        zset_multi::COMMANDS,
        scripting::COMMANDS,
        acl::COMMANDS,
        tandem::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

/// Name → spec. Looked up for every command (parse, apply, the state machine's
/// script check), so hashed with foldhash rather than SipHash: the names are ours,
/// nothing a client chooses lands in the table.
fn table() -> &'static HashMap<&'static [u8], &'static CommandSpec, foldhash::fast::FixedState> {
    static TABLE: OnceLock<HashMap<&'static [u8], &'static CommandSpec, foldhash::fast::FixedState>> = OnceLock::new();
    TABLE.get_or_init(|| all().map(|spec| (spec.name.as_bytes(), spec)).collect())
}

/// False when `args` cannot name a command that runs a script: its name starts with
/// a letter no such command's does. Apply asks this of every command it is given, so
/// that the usual write is not looked up in the table twice.
pub fn may_run_script(args: &[Bytes]) -> bool {
    static FIRST: OnceLock<[bool; 256]> = OnceLock::new();
    let first = FIRST.get_or_init(|| {
        let mut first = [false; 256];
        for spec in all().filter(|s| s.has(flags::SCRIPT)) {
            if let Some(&b) = spec.name.as_bytes().first() {
                first[b.to_ascii_lowercase() as usize] = true;
                first[b.to_ascii_uppercase() as usize] = true;
            }
        }
        first
    });
    args.first().and_then(|name| name.first()).is_some_and(|&b| first[b as usize])
}

/// Finds a command or a subcommand by its full name (`config|get`),
/// case-insensitively, as COMMAND INFO and COMMAND DOCS take it.
pub fn lookup_full(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut parts = name.splitn(2, |&b| b == b'|');
    let spec = lookup(parts.next()?)?;
    let Some(sub) = parts.next() else { return Some(spec) };
    spec.subcommands.iter().find(|s| s.name.split_once('|').is_some_and(|(_, n)| n.as_bytes().eq_ignore_ascii_case(sub)))
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    // A pipeline mostly repeats one command, and each is looked up at parsing and
    // again at apply: the name last found on this thread, exactly as it was written
    // (case included), is compared first, as two words.
    thread_local! {
        static LAST: std::cell::Cell<Option<(u8, [u8; LAST_NAME_MAX], &'static CommandSpec)>> = const { std::cell::Cell::new(None) };
    }
    let mut given = [0u8; LAST_NAME_MAX];
    let short = name.len() <= LAST_NAME_MAX;
    if short {
        given[..name.len()].copy_from_slice(name);
        if let Some((len, last, spec)) = LAST.with(|l| l.get()) {
            if usize::from(len) == name.len() && last == given {
                return Some(spec);
            }
        }
    }
    let found = lookup_in_table(name);
    if let Some(spec) = found.filter(|_| short) {
        LAST.with(|l| l.set(Some((name.len() as u8, given, spec))));
    }
    found
}

/// The longest name [`lookup`] remembers (every command name but a few).
const LAST_NAME_MAX: usize = 16;

fn lookup_in_table(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    let lower = buf.get_mut(..name.len())?;
    for (dst, src) in lower.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    table().get(&*lower).copied()
}

// --- contexts ---

/// What a read handler sees: the keyspace at the reader's time, and randomness
/// for SRANDMEMBER-style picks (reads change nothing, so local randomness is fine).
pub struct ReadCtx<'a> {
    pub db: &'a Db,
    pub now_ms: u64,
    pub rng: &'a mut Xoshiro256PlusPlus,
    /// This server's settings that reads report (OBJECT ENCODING, FREQ); never state.
    pub local: &'a crate::store::encoding::LocalSettings,
    /// The store's Lua engine, for read-only scripts (`None` inside a script).
    pub engine: Option<&'a mut crate::scripting::Engine>,
    /// The ACL user a script runs as (`TANDEM.ASUSER_RO`): its calls are checked.
    pub acl_user: Option<crate::acl::User>,
    /// Where a script's refused calls are logged (ACL LOG, context lua).
    pub acl_view: Option<&'a crate::acl::View>,
    /// The command was called by a script (`redis.call`).
    pub in_script: bool,
}

impl<'a> ReadCtx<'a> {
    /// The live value of `key`, marking it accessed for LRU/LFU.
    pub fn get(&mut self, key: &[u8]) -> Option<&'a Value> {
        let item = self.db.get(key, self.now_ms)?;
        item.touch(self.now_ms, rand_core::RngCore::next_u32(self.rng));
        Some(&item.value)
    }

    pub fn item(&self, key: &[u8]) -> Option<&'a Item> {
        self.db.get(key, self.now_ms)
    }
}

/// What a write handler sees: the keyspace, the entry's time and seeded randomness,
/// and where to record keyspace events.
pub struct WriteCtx<'a> {
    pub db: &'a mut Db,
    pub now_ms: u64,
    pub rng: &'a mut Xoshiro256PlusPlus,
    pub events: &'a mut Vec<KeyEvent>,
    /// Keys that received elements a blocked client may be waiting for.
    pub ready_keys: &'a mut Vec<Bytes>,
    /// Modifications applied (INFO's `rdb_changes_since_last_save`).
    pub dirty: &'a mut u64,
    /// Keys removed by expiry and by eviction (INFO stats).
    pub expired: &'a mut u64,
    pub evicted: &'a mut u64,
    /// Whether anyone wants keyspace events (notify-keyspace-events): when not, no
    /// event is built, which spares a key copy per write.
    pub events_on: bool,
    /// Whether `new` events are wanted (notify-keyspace-events has `n`).
    pub new_events_on: bool,
    /// The store's Lua engine, for scripts (`None` inside a script).
    pub engine: Option<&'a mut crate::scripting::Engine>,
    /// The ACL user a script runs as (`TANDEM.ASUSER`): its calls are checked.
    pub acl_user: Option<crate::acl::User>,
    /// Where a script's refused calls are logged (ACL LOG, context lua).
    pub acl_view: Option<&'a crate::acl::View>,
    /// The command was called by a script (`redis.call`).
    pub in_script: bool,
}

impl<'a> WriteCtx<'a> {
    /// Lazy expiry on write access: an expired key is deleted now (at the entry's time,
    /// so every replica does the same) and an `expired` event is recorded.
    pub fn expire_if_needed(&mut self, key: &[u8]) {
        if self.db.remove_if_expired(key, self.now_ms) {
            self.notify(b'x', "expired", key);
        }
    }

    /// Position of the live `key`: an expired one is deleted here (lazy expiry) and
    /// reads as absent. One hash lookup.
    pub fn live_index(&mut self, key: &[u8]) -> Option<usize> {
        let index = self.db.index_of(key)?;
        if self.db.item_at(index).is_some_and(|item| item.is_expired(self.now_ms)) {
            self.db.remove(key);
            self.notify(b'x', "expired", key);
            return None;
        }
        Some(index)
    }

    /// The live value of `key`.
    pub fn get(&mut self, key: &[u8]) -> Option<&Value> {
        let index = self.live_index(key)?;
        self.db.item_at(index).map(|item| &item.value)
    }

    /// Mutable access to the live value of `key`.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        let index = self.live_index(key)?;
        let now = self.now_ms;
        let item = self.db.item_at_mut(index)?;
        item.touch(now, u32::MAX);
        Some(&mut item.value)
    }

    /// Mutable access to the live value of `key`, created by `make` if absent.
    pub fn get_or_insert(&mut self, key: &[u8], make: impl FnOnce() -> Value) -> &mut Value {
        let now = self.now_ms;
        let index = match self.live_index(key) {
            Some(index) => index,
            None => {
                self.notify_new(key);
                self.db.insert_new(key, make(), now)
            }
        };
        let item = self.db.item_at_mut(index).expect("a position just found or inserted");
        item.touch(now, u32::MAX);
        &mut item.value
    }

    /// [`WriteCtx::get_or_insert`] for a write that must refuse a value of another
    /// type: `check` sees the live value, if any, before anything is touched (a refused
    /// write changes nothing, not even the key's version that WATCH compares). One
    /// lookup for both.
    pub fn get_checked_or_insert(
        &mut self,
        key: &[u8],
        check: impl FnOnce(&Value) -> Result<(), Reply>,
        make: impl FnOnce() -> Value,
    ) -> Result<&mut Value, Reply> {
        let now = self.now_ms;
        let index = match self.live_index(key) {
            Some(index) => {
                if let Some(item) = self.db.item_at(index) {
                    check(&item.value)?;
                }
                index
            }
            None => {
                self.notify_new(key);
                self.db.insert_new(key, make(), now)
            }
        };
        let item = self.db.item_at_mut(index).expect("a position just found or inserted");
        item.touch(now, u32::MAX);
        Ok(&mut item.value)
    }

    /// Stores `value` under `key`, dropping any TTL (as SET does). A list, sorted set
    /// or stream put in place whole (RENAME, COPY, RESTORE, SORT … STORE, Z…STORE) may
    /// serve clients blocked on `key`, as a push would: Redis signals every key it adds.
    pub fn set(&mut self, key: &[u8], value: Value) {
        let waitable = matches!(value, Value::List(_) | Value::ZSet(_) | Value::Stream(_));
        if self.db.get(key, self.now_ms).is_none() {
            self.notify_new(key);
        }
        self.db.insert(key, value, self.now_ms);
        if waitable {
            self.signal_ready(key);
        }
    }

    /// Deletes `key` if it is live; true if it did. Records no event (callers name it).
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.expire_if_needed(key);
        self.db.remove(key).is_some()
    }

    /// Deletes `key` if it is live and hands its value over; records no event.
    pub fn take(&mut self, key: &[u8]) -> Option<Value> {
        self.expire_if_needed(key);
        self.db.remove(key).map(|item| item.value)
    }

    /// Deletes `key` if its container is now empty, recording `del` as Redis does.
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        if self.db.item(key).is_some_and(|item| item.value.is_empty_container()) {
            self.db.remove(key);
            self.notify(b'g', "del", key);
        }
    }

    /// Records a modification: a keyspace event (class letter as in
    /// notify-keyspace-events) and the dirty counter. (WATCH versions need no call:
    /// `Db` stamps every key it hands out mutably or removes.)
    pub fn notify(&mut self, class: u8, event: &'static str, key: &[u8]) {
        *self.dirty += 1;
        match class {
            b'x' => *self.expired += 1,
            b'e' => *self.evicted += 1,
            _ => {}
        }
        if self.events_on {
            self.events.push(KeyEvent { class, event, key: Bytes::copy_from_slice(key) });
        }
    }

    /// Records the `new` keyspace event (class `n`) of a key being created, before
    /// the command's own event, as Redis does. A creation is no modification of its
    /// own: the dirty counter is the command's event's to count.
    pub fn notify_new(&mut self, key: &[u8]) {
        if self.new_events_on {
            self.events.push(KeyEvent { class: b'n', event: "new", key: Bytes::copy_from_slice(key) });
        }
    }

    /// Marks `key` as having new elements for blocked clients. A run of writes to
    /// one key (a pipeline filling a job queue) names it once: the waiters are served
    /// after the whole entry, from the key's state then.
    pub fn signal_ready(&mut self, key: &[u8]) {
        if self.ready_keys.last().is_some_and(|last| last[..] == *key) {
            return;
        }
        self.ready_keys.push(Bytes::copy_from_slice(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write refused for the key's type changes nothing that WATCH compares: the
    /// type is checked before the key is touched, in the one lookup of
    /// `get_checked_or_insert`; a key of the right type, or none, is written.
    #[test]
    fn writes_refused_for_the_type_leave_the_key_untouched() {
        use crate::store::value::WRONGTYPE;
        let mut store = crate::store::Store::default();
        let set = test_support::run(&mut store, 1_000, &["set", "s", "v"]);
        assert_eq!(set, Reply::ok());
        let version = |store: &crate::store::Store| store.db.item(b"s").map(|i| i.version());
        let before = version(&store);
        for cmd in [&["lpush", "s", "x"][..], &["rpush", "s", "x"], &["hset", "s", "f", "v"], &["sadd", "s", "m"], &["zadd", "s", "1", "m"]]
        {
            assert_eq!(test_support::run(&mut store, 2_000, cmd), Reply::err(WRONGTYPE), "{cmd:?}");
            assert_eq!(version(&store), before, "{cmd:?} touched the key");
        }
        for (key, cmd) in
            [("l", &["lpush", "l", "x"][..]), ("h", &["hset", "h", "f", "v"]), ("e", &["sadd", "e", "m"]), ("z", &["zadd", "z", "1", "m"])]
        {
            assert_eq!(test_support::run(&mut store, 3_000, cmd), Reply::Int(1), "{cmd:?}");
            assert!(version(&store) == before && store.db.item(key.as_bytes()).is_some(), "{cmd:?}");
        }
    }

    /// The pre-filter apply uses before looking a command up for its script flag
    /// lets every script command through, in any case, and stops the others it can.
    #[test]
    fn may_run_script_lets_every_script_command_through() {
        let name = |n: &str| vec![Bytes::copy_from_slice(n.as_bytes())];
        let scripts: Vec<&str> = all().filter(|s| s.has(flags::SCRIPT)).map(|s| s.name).collect();
        assert!(scripts.contains(&"eval") && scripts.contains(&"fcall"), "{scripts:?}");
        for n in scripts.iter().flat_map(|n| [n.to_string(), n.to_ascii_uppercase()]) {
            assert!(may_run_script(&name(&n)), "{n} was stopped");
        }
        for n in ["set", "HSET", "incr", "lpush", "get"] {
            assert!(!may_run_script(&name(n)), "{n} was let through");
        }
        assert!(!may_run_script(&[]) && !may_run_script(&name("")));
    }

    #[test]
    fn every_command_name_is_lowercase_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for spec in all() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase(), "{}", spec.name);
            assert!(seen.insert(spec.name), "duplicate command {}", spec.name);
        }
    }

    #[test]
    fn writes_are_flagged_write_and_reads_readonly() {
        for spec in all().flat_map(|s| std::iter::once(s).chain(s.subcommands)) {
            match spec.handler {
                Handler::Write(_) => assert!(spec.has(flags::WRITE), "{} must be flagged write", spec.name),
                Handler::Read(_) => assert!(spec.has(flags::READONLY), "{} must be flagged readonly", spec.name),
                Handler::Server(_) => {}
            }
        }
    }

    /// A command whose keys move must say where they are: without a finder only its
    /// positional keys would be routed to a slot and checked by ACL (GEORADIUS's STORE
    /// destination once was not).
    #[test]
    fn commands_with_movable_keys_have_a_key_finder() {
        for spec in all().flat_map(|s| std::iter::once(s).chain(s.subcommands)) {
            // SORT_RO's only key is its first argument; Redis flags it movable for
            // the keys its BY and GET patterns name once substituted.
            if spec.has(flags::MOVABLE_KEYS) && spec.name != "sort_ro" {
                assert!(spec.key_finder.is_some() || spec.numkeys_at > 0, "{} has movable keys but no finder", spec.name);
            }
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert!(lookup(b"PiNg").is_some());
        assert!(lookup(b"no-such-command").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
        // The name last found is remembered as written: another case, another
        // length or another name is looked up, not mistaken for it.
        assert_eq!(lookup(b"LPUSH").map(|s| s.name), Some("lpush"));
        assert_eq!(lookup(b"LPUSH").map(|s| s.name), Some("lpush"));
        assert_eq!(lookup(b"lpushx").map(|s| s.name), Some("lpushx"));
        assert_eq!(lookup(b"lPuSh").map(|s| s.name), Some("lpush"));
        assert!(lookup(b"LPUS").is_none());
        assert!(lookup(b"LPUSH\0").is_none());
        assert_eq!(lookup(b"GEORADIUSBYMEMBER_RO").map(|s| s.name), Some("georadiusbymember_ro"));
    }
}

/// Helpers for unit tests of command families: apply commands to a bare store.
#[cfg(test)]
pub(crate) mod test_support {
    use bytes::Bytes;

    use crate::protocol::reply::Reply;
    use crate::store::{Applied, Entry, Op, Store};

    /// Applies one command at `time_ms` (reads run at that time too). Bulk strings
    /// kept in wire form come back as a plain array (`Reply::expanded`).
    pub fn run(store: &mut Store, time_ms: u64, cmd: &[&str]) -> Reply {
        run_applied(store, time_ms, cmd).replies.remove(0).expanded()
    }

    /// Applies one command and returns everything it produced (events, ready keys).
    pub fn run_applied(store: &mut Store, time_ms: u64, cmd: &[&str]) -> Applied {
        let args = cmd.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect();
        store.apply(&Entry { time_ms, seed: 7, ops: vec![Op::Command(args)].into(), origins: None, summary: None })
    }

    pub fn bulk(s: &str) -> Reply {
        Reply::bulk(s.as_bytes())
    }

    pub fn err(s: &str) -> Reply {
        Reply::error(s.to_string())
    }
}
