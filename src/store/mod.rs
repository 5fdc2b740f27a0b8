//! The deterministic state machine.
//!
//! A log [`Entry`] carries commands, the time the active stamped on it and a random
//! seed. [`Store::apply`] executes them against the [`Db`] and returns one reply per
//! operation plus the keyspace events they caused. Nothing inside `apply` reads a
//! clock, draws entropy or looks at the environment, so two stores that apply the
//! same entries hold the same data ([`Store::digest`] proves it). Expiry and
//! eviction enter the log as entries of their own (`TANDEM.EXPIRED`, `TANDEM.EVICT`)
//! decided by the active.
//!
//! This module does not know about sockets, clients or replication.

pub mod codec;
pub mod db;
pub mod encoding;
pub mod hash;
pub mod lazyfree;
pub mod list;
pub mod once;
pub mod prims;
pub mod rdb;
pub mod scripts;
pub mod set;
pub mod slots;
pub mod stream;
pub mod table;
pub mod value;
pub mod watch;
pub mod zset;

use bytes::Bytes;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::commands::{self, args::unknown_command, wrong_args, CommandSpec, Handler, ReadCtx, WriteCtx};
use crate::protocol::reply::Reply;
use db::Db;
use value::Value;
use watch::Watch;

/// One operation in an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A single command, as the client sent it (name first).
    Command(Vec<Bytes>),
    /// MULTI … EXEC: applied back to back; one array reply. Server-level commands
    /// inside (PING, PUBLISH…) get a `Nil` placeholder the connection fills in.
    Transaction(Vec<Vec<Bytes>>),
    /// MULTI … EXEC after WATCH: applied as a transaction only if no watched key
    /// changed since its stamp; otherwise nothing is applied and the reply is the
    /// null array. Decided in apply, so identically on every member and after every
    /// write that precedes it in the log, whichever server proposed that write.
    Checked { watches: Vec<Watch>, cmds: Vec<Vec<Bytes>> },
    /// A write a mirror forwarded for its client, tagged so that a copy sent again
    /// after a failover applies once and answers the first reply (`store::once`).
    Once { tag: once::Tag, op: Box<Op> },
}

impl Op {
    /// A command whose arguments share one compact allocation. Arguments parsed from
    /// a client are slices of its read buffer; an entry that lives on in the Raft log
    /// must not pin that whole buffer.
    pub fn command(args: &[Bytes]) -> Op {
        Op::Command(compact(args))
    }

    /// This op, wrapped in its forwarded write's tag if it has one.
    pub fn tagged(self, once: Option<once::Tag>) -> Op {
        match once {
            Some(tag) => Op::Once { tag, op: Box::new(self) },
            None => self,
        }
    }

    /// The arguments of a single command (tagged or not); `None` for a transaction.
    pub fn command_args_mut(&mut self) -> Option<&mut Vec<Bytes>> {
        match self {
            Op::Command(args) => Some(args),
            Op::Once { op, .. } => op.command_args_mut(),
            Op::Transaction(_) | Op::Checked { .. } => None,
        }
    }
}

/// The size of some ops: argument bytes, arguments (a watched key counts as two, a
/// forwarded write's tag as four) and commands, weighed by [`OpsSize::weighted`] into
/// one measure for every budget (proposal caps, append cuts, the log's memory account),
/// each with its overhead per argument and per command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpsSize {
    pub bytes: usize,
    pub args: usize,
    pub commands: usize,
}

impl OpsSize {
    pub fn of(ops: &[Op]) -> OpsSize {
        let mut size = OpsSize::default();
        for op in ops {
            size.add_op(op);
        }
        size
    }

    fn add_command(&mut self, args: &[Bytes]) {
        self.bytes += args.iter().map(|a| a.len()).sum::<usize>();
        self.args += args.len();
        self.commands += 1;
    }

    fn add_op(&mut self, op: &Op) {
        match op {
            Op::Command(a) => self.add_command(a),
            Op::Transaction(cmds) => cmds.iter().for_each(|c| self.add_command(c)),
            Op::Checked { watches, cmds } => {
                cmds.iter().for_each(|c| self.add_command(c));
                for w in watches {
                    self.bytes += w.key.len();
                    self.args += 2;
                }
            }
            Op::Once { op, .. } => {
                self.args += 4;
                self.add_op(op);
            }
        }
    }

    pub fn weighted(self, per_arg: usize, per_command: usize) -> usize {
        self.bytes + self.args * per_arg + self.commands * per_command
    }
}

impl std::ops::AddAssign for OpsSize {
    fn add_assign(&mut self, other: OpsSize) {
        self.bytes += other.bytes;
        self.args += other.args;
        self.commands += other.commands;
    }
}

/// What the server that proposes an entry learns of its ops while they are still in the
/// cache (at submission), so that the log's accounting and apply need not read them
/// all again later: held in memory only, as [`Entry::origins`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpsSummary {
    pub size: OpsSize,
    pub runs_script: bool,
}

impl OpsSummary {
    pub fn of(ops: &[Op]) -> OpsSummary {
        OpsSummary { size: OpsSize::of(ops), runs_script: ops.iter().any(op_runs_script) }
    }
}

impl std::ops::AddAssign for OpsSummary {
    fn add_assign(&mut self, other: OpsSummary) {
        self.size += other.size;
        self.runs_script |= other.runs_script;
    }
}

/// Copies `args` into one allocation of their size, sliced per argument.
pub fn compact(args: &[Bytes]) -> Vec<Bytes> {
    let mut buf = bytes::BytesMut::with_capacity(args.iter().map(|a| a.len()).sum());
    slices_of(&mut buf, args)
}

/// `args` appended to `buf`, then split off it as one shared buffer and handed out
/// as one slice per argument.
fn slices_of(buf: &mut bytes::BytesMut, args: &[Bytes]) -> Vec<Bytes> {
    for arg in args {
        buf.extend_from_slice(arg);
    }
    let mut all = buf.split().freeze();
    let mut out = Vec::with_capacity(args.len());
    if let Some((last, front)) = args.split_last() {
        for arg in front {
            out.push(all.split_to(arg.len()));
        }
        debug_assert_eq!(all.len(), last.len());
        out.push(all);
    }
    out
}

/// One allocation for the arguments of several small commands (a client's run of
/// writes, a transaction): each command copied in is handed out as its own slices,
/// so an op no longer pins the client's read buffer, and a batch pays one buffer and
/// one reference count instead of one of each per command. (A lone in-memory
/// server's plain writes, whose entries live only through their apply, take the
/// client's arguments as they are: `Core::write_now`.)
///
/// An argument kept past apply (a keyspace value is always a copy; a few others
/// are not) holds its whole buffer, so a buffer is kept small: at most
/// [`ArgArena::BUFFER_BYTES_MAX`], filled only by commands of at most
/// [`ArgArena::COMMAND_BYTES_MAX`]; a larger command gets a buffer of exactly its
/// size, as [`compact`]. Nothing is allocated before the first copy, so writes
/// counted in the plan and then refused cost nothing.
pub struct ArgArena {
    buf: bytes::BytesMut,
    /// The bytes of the small commands still expected (the plan): the next buffer's
    /// size, within the bound.
    planned: usize,
}

impl ArgArena {
    /// A command larger than this is copied into a buffer of its own.
    pub const COMMAND_BYTES_MAX: usize = 1024;
    /// The most a shared buffer holds.
    pub const BUFFER_BYTES_MAX: usize = 16 * 1024;

    /// An arena for commands whose arguments come to about `planned` bytes (only the
    /// commands of at most [`ArgArena::COMMAND_BYTES_MAX`] count).
    pub fn planned(planned: usize) -> ArgArena {
        ArgArena { buf: bytes::BytesMut::new(), planned }
    }

    /// The bytes of one command, as [`ArgArena::planned`] counts them.
    pub fn counted(args: &[Bytes]) -> usize {
        let bytes = args.iter().map(|a| a.len()).sum();
        if bytes > Self::COMMAND_BYTES_MAX {
            0
        } else {
            bytes
        }
    }

    /// `args`, copied into the arena.
    pub fn copy(&mut self, args: &[Bytes]) -> Vec<Bytes> {
        let bytes: usize = args.iter().map(|a| a.len()).sum();
        if bytes > Self::COMMAND_BYTES_MAX {
            return compact(args);
        }
        if self.buf.capacity() - self.buf.len() < bytes {
            // A new buffer: the old one lives on in the slices handed out.
            self.buf = bytes::BytesMut::with_capacity(self.planned.clamp(bytes, Self::BUFFER_BYTES_MAX));
        }
        self.planned = self.planned.saturating_sub(bytes);
        slices_of(&mut self.buf, args)
    }

    /// A command op whose arguments are copied into the arena.
    pub fn command(&mut self, args: &[Bytes]) -> Op {
        Op::Command(self.copy(args))
    }
}

/// How many commands ahead of the one applied its keyspace lookup is prefetched
/// (see [`Store::apply_at`]): enough to cover a memory load, not so many that the
/// prefetched lines leave the cache before use.
const PREFETCH_AHEAD: usize = 6;

/// True for a command whose third argument is a field of a hash or a member of a set
/// (the lookup [`Store::prefetch_ahead`] starts loading inside the value).
fn names_field(name: &[u8]) -> bool {
    match name {
        [h, ..] if h | 0x20 == b'h' => true,
        [s, second, ..] if s | 0x20 == b's' => !matches!(second | 0x20, b'e' | b't' | b'u'),
        _ => false,
    }
}

/// A log entry: what the active decided to apply, when, and with which seed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub time_ms: u64,
    pub seed: u64,
    /// Shared: the log, the state machine and the senders to mirrors hold one copy.
    pub ops: std::sync::Arc<[Op]>,
    /// Which of this server's clients sent each op (0: none), for CLIENT TRACKING's
    /// NOLOOP: known only on the server that proposed the entry, held in memory and
    /// never written or sent (`None` elsewhere: invalidations are then sent to the
    /// writer too, never fewer).
    pub origins: Option<std::sync::Arc<[u64]>>,
    /// Its ops' size and whether one runs a script, counted at submission on the server
    /// that proposed it; memory only, as `origins` (`None` elsewhere: counted from the
    /// ops when asked).
    pub summary: Option<OpsSummary>,
}

/// The declared keys of the scripts an op runs (EVAL's, FCALL's; inside a
/// transaction, every script's).
fn script_keys(op: &Op) -> Vec<Bytes> {
    let keys = |args: &Vec<Bytes>| match commands::resolve(args) {
        Some(spec) if spec.has(commands::flags::SCRIPT) => spec.keys(args).into_iter().cloned().collect(),
        _ => Vec::new(),
    };
    match op {
        Op::Command(args) => keys(args),
        Op::Transaction(cmds) | Op::Checked { cmds, .. } => cmds.iter().flat_map(keys).collect(),
        Op::Once { op, .. } => script_keys(op),
    }
}

/// Equal when the replicated parts are: `origins` is this server's memory only.
impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.time_ms == other.time_ms && self.seed == other.seed && self.ops == other.ops
    }
}

impl Entry {
    /// Whether applying this entry runs a Lua script (EVAL, FCALL…), which may take long.
    pub fn runs_script(&self) -> bool {
        self.summary.map_or_else(|| self.ops.iter().any(op_runs_script), |s| s.runs_script)
    }

    /// Its ops' [`OpsSize::weighted`], from the summary when it has one.
    pub fn ops_bytes(&self, per_arg: usize, per_command: usize) -> usize {
        self.summary.map_or_else(|| OpsSize::of(&self.ops), |s| s.size).weighted(per_arg, per_command)
    }
}

/// Whether applying `op` runs a Lua script (EVAL, FCALL…).
fn op_runs_script(op: &Op) -> bool {
    let script =
        |args: &Vec<Bytes>| commands::may_run_script(args) && commands::resolve(args).is_some_and(|s| s.has(commands::flags::SCRIPT));
    match op {
        Op::Command(args) => script(args),
        Op::Transaction(cmds) | Op::Checked { cmds, .. } => cmds.iter().any(script),
        Op::Once { op, .. } => op_runs_script(op),
    }
}

/// A keyspace notification caused by a write (class letter per notify-keyspace-events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    pub class: u8,
    pub event: &'static str,
    pub key: Bytes,
}

/// The outcome of applying one entry.
#[derive(Debug, Default)]
pub struct Applied {
    pub replies: Vec<Reply>,
    pub events: Vec<KeyEvent>,
    /// Keys that gained elements blocked clients may be waiting for (and locks
    /// granted to a waiting session).
    pub ready_keys: Vec<Bytes>,
    /// Pub/sub messages (channel, message) the entry produced: group join/leave
    /// events, published on every server in log order.
    pub messages: Vec<(Bytes, Bytes)>,
    /// Keys the entry modified, with the position of the op that did (while
    /// CLIENT TRACKING records them: [`db::Db::record_touched`]).
    pub touched: Vec<(usize, Bytes)>,
    /// The entry may have changed every key (FLUSHALL, FLUSHDB).
    pub touched_all: bool,
    /// The declared keys of scripts that called a read-only command, with the
    /// position of their op (CLIENT TRACKING remembers them for the caller).
    pub script_reads: Vec<(usize, Vec<Bytes>)>,
}

#[derive(Debug, Default)]
pub struct Store {
    pub db: Db,
    /// Modifications since start (INFO `rdb_changes_since_last_save`).
    pub dirty: u64,
    /// Keys removed by expiry and eviction (INFO stats).
    pub expired_keys: u64,
    pub evicted_keys: u64,
    /// Build keyspace events while applying (someone subscribed to notifications).
    /// Events are not state: replicas may differ here.
    pub events_on: bool,
    /// Whether anyone wants `new` events (class `n`, not part of `A`): off unless
    /// notify-keyspace-events names it, so stores in tests and servers without it
    /// record none.
    pub new_events_on: bool,
    /// This server's settings that reads report (OBJECT ENCODING's thresholds); not state.
    pub local: encoding::LocalSettings,
    /// The Lua VM scripts run in, with its per-server caches: not state. Behind its own
    /// (uncontended) lock so that reads, which take `&Store`, can run read-only scripts.
    pub engine: std::sync::Mutex<crate::scripting::Engine>,
    /// Where the users are published for connections after each change (not state).
    pub acl_view: std::sync::Arc<crate::acl::View>,
    /// The users last published to `acl_view`.
    acl_published: std::sync::Arc<crate::acl::Users>,
    /// Record the commands scripts call, per client of this server (set around the
    /// apply of an entry that runs scripts; not state).
    pub record_script_calls: bool,
    /// MONITOR is on here: recorded calls keep their arguments (set by the server
    /// without the store's lock).
    pub show_script_calls: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Some client of this server tracks keys (CLIENT TRACKING): each entry records
    /// the keys it modifies. Set by `server::tracking` without the store's lock.
    pub tracking_on: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The index of the last entry applied, for readers without the store's lock
    /// (CLIENT TRACKING: which writes a finished read may have seen).
    pub applied_index: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The commands scripts of this server's clients called, by client, until its
    /// connection takes them (INFO commandstats, MONITOR): not state.
    pub script_calls: std::collections::HashMap<u64, crate::scripting::Calls>,
}

impl Store {
    /// This server's settings for reads and encodings (CONFIG SET, start).
    pub fn set_local(&mut self, local: encoding::LocalSettings) {
        let entries = usize::try_from(local.hash_listpack_entries).unwrap_or(usize::MAX);
        let value_bytes = usize::try_from(local.hash_listpack_value_bytes).unwrap_or(usize::MAX);
        self.db.hash_packing = hash::Packing { entries, value_bytes };
        let intset_entries = usize::try_from(local.set_intset_entries).unwrap_or(usize::MAX);
        self.db.set_packing = set::SetPacking { intset_entries, ..set::SetPacking::DEFAULT };
        self.local = local;
    }

    /// A store that builds keyspace events (the server turns them off until someone
    /// enables notifications).
    pub fn new() -> Store {
        let store = Store { events_on: true, ..Store::default() };
        Store { acl_published: store.db.acl.clone(), ..store }
    }

    /// What connections may know about the script running in this store (scripting).
    pub fn script_status(&self) -> std::sync::Arc<crate::scripting::Status> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner()).status()
    }

    /// Applies `entry` as the one after the last applied (tests and tools that have
    /// no log); see [`Store::apply_at`].
    pub fn apply(&mut self, entry: &Entry) -> Applied {
        let index = self.db.index().saturating_add(1);
        self.apply_at(index, entry)
    }

    /// Applies `entry`, the log's entry at `index`: the only way state changes. Its
    /// time is the entry's stamp or the largest time applied before, whichever is
    /// later, so expiry and TTLs never go back when a new active's clock is behind.
    pub fn apply_at(&mut self, index: u64, entry: &Entry) -> Applied {
        self.db.set_index(index);
        // What reads or snapshots left behind is no entry's doing.
        let tracking = self.tracking_on.load(std::sync::atomic::Ordering::Acquire);
        self.db.record_touched(tracking);
        self.db.take_touched();
        crate::scripting::take_read_called();
        // Per op only when it is needed: a client tracks keys, or scripts run for a
        // client of this server.
        let scripts_here = self.record_script_calls && entry.origins.is_some();
        let time_ms = self.db.advance_time(entry.time_ms);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(entry.seed);
        let mut applied = Applied { replies: Vec::with_capacity(entry.ops.len()), ..Applied::default() };
        let ops = &entry.ops;
        let args_of = |i: usize| match ops.get(i) {
            Some(Op::Command(args)) => Some(&args[..]),
            _ => None,
        };
        for (i, op) in ops.iter().enumerate() {
            if ops.len() > 1 {
                self.prefetch_ahead(i, args_of);
            }
            if scripts_here {
                crate::scripting::record_calls(Some(self.show_script_calls.load(std::sync::atomic::Ordering::Relaxed)));
            }
            let reply = self.apply_op(op, time_ms, &mut rng, &mut applied);
            applied.replies.push(reply);
            if scripts_here {
                let calls = crate::scripting::record_calls(None);
                let origin = entry.origins.as_ref().and_then(|o| o.get(i)).copied().unwrap_or(0);
                self.keep_script_calls(origin, calls);
            }
            if tracking {
                if crate::scripting::take_read_called() {
                    applied.script_reads.push((i, script_keys(op)));
                }
                let touched = self.db.take_touched();
                applied.touched.extend(touched.keys.into_iter().map(|key| (i, key)));
                applied.touched_all |= touched.all;
            }
        }
        self.publish_acl();
        self.applied_index.store(index, std::sync::atomic::Ordering::Release);
        applied
    }

    fn apply_op(&mut self, op: &Op, time_ms: u64, rng: &mut Xoshiro256PlusPlus, applied: &mut Applied) -> Reply {
        match op {
            Op::Command(args) => self.apply_command(args, time_ms, rng, applied),
            Op::Transaction(cmds) => self.apply_transaction(cmds, time_ms, rng, applied),
            Op::Checked { watches, cmds } => {
                if watches.iter().all(|w| self.db.unchanged_since(&w.key, w.stamp, time_ms)) {
                    self.apply_transaction(cmds, time_ms, rng, applied)
                } else {
                    Reply::NilArray
                }
            }
            Op::Once { tag, op } => match self.db.once.decide(tag, time_ms) {
                once::Decision::Replay(reply) => reply,
                once::Decision::Forgotten => Reply::err(once::ERR_FORGOTTEN),
                once::Decision::Apply => {
                    let reply = self.apply_op(op, time_ms, rng, applied);
                    self.db.once.record(tag, &reply, time_ms);
                    reply
                }
            },
        }
    }

    /// Keeps what the scripts of the client `origin` of this server called until its
    /// connection takes them. Bounded: past 1024 clients waiting (connections that
    /// closed before taking theirs), the record starts again.
    pub fn keep_script_calls(&mut self, origin: u64, calls: crate::scripting::Calls) {
        if origin == 0 || calls.is_empty() {
            return;
        }
        if self.script_calls.len() >= 1024 && !self.script_calls.contains_key(&origin) {
            self.script_calls.clear();
        }
        self.script_calls.entry(origin).or_default().extend(calls);
    }

    /// Publishes the users to connections if they changed since the last time
    /// (after an entry or a snapshot installed).
    pub fn publish_acl(&mut self) {
        if !std::sync::Arc::ptr_eq(&self.db.acl, &self.acl_published) {
            self.acl_published = self.db.acl.clone();
            self.acl_view.publish(self.db.acl.clone());
        }
    }

    /// Records that the log's entry at `index` was applied without reaching the store
    /// (a blank or membership entry): WATCH stamps count log indexes.
    pub fn skip_to(&mut self, index: u64) {
        self.db.set_index(index);
        self.applied_index.store(index, std::sync::atomic::Ordering::Release);
    }

    fn apply_transaction(&mut self, cmds: &[Vec<Bytes>], time_ms: u64, rng: &mut Xoshiro256PlusPlus, applied: &mut Applied) -> Reply {
        Reply::Array(cmds.iter().map(|args| self.apply_command(args, time_ms, rng, applied)).collect())
    }

    fn apply_command(&mut self, args: &[Bytes], time_ms: u64, rng: &mut Xoshiro256PlusPlus, applied: &mut Applied) -> Reply {
        if args.is_empty() {
            return Reply::err("ERR empty command");
        }
        let Some(spec) = commands::resolve(args) else { return unknown_command(args) };
        if !spec.arity_ok(args.len()) {
            return wrong_args(spec.name);
        }
        let result = match spec.handler {
            Handler::Write(f) => {
                let mut ctx = WriteCtx {
                    db: &mut self.db,
                    now_ms: time_ms,
                    rng,
                    events: &mut applied.events,
                    ready_keys: &mut applied.ready_keys,
                    dirty: &mut self.dirty,
                    expired: &mut self.expired_keys,
                    evicted: &mut self.evicted_keys,
                    events_on: self.events_on,
                    new_events_on: self.new_events_on,
                    engine: Some(self.engine.get_mut().unwrap_or_else(|e| e.into_inner())),
                    acl_user: None,
                    acl_view: Some(&self.acl_view),
                    in_script: false,
                };
                f(&mut ctx, args)
            }
            Handler::Read(f) => {
                let engine = self.engine.get_mut().unwrap_or_else(|e| e.into_inner());
                f(
                    &mut ReadCtx {
                        db: &self.db,
                        now_ms: time_ms,
                        rng,
                        engine: Some(engine),
                        local: &self.local,
                        acl_user: None,
                        acl_view: Some(&self.acl_view),
                        in_script: false,
                    },
                    args,
                )
            }
            Handler::Server(_) => Ok(Reply::Nil),
        };
        // A stream that appeared, went or was replaced (XADD, DEL, SET, RENAME,
        // FLUSHALL…) wakes whoever waits on it: XREADGROUP must learn that its stream is gone.
        applied.ready_keys.extend(self.db.take_stream_changes().into_iter().map(Bytes::from));
        applied.messages.extend(self.db.take_messages());
        result.unwrap_or_else(|e| e)
    }

    /// A run of many commands (a pipeline, many clients' writes or reads) finds its
    /// keys in a keyspace far larger than the caches: before the `i`th command runs,
    /// the loads of the next commands' lookups are started, in stages (slot, entry,
    /// key bytes, then a hash's field), so they overlap instead of each waiting for
    /// memory in turn. `args_of(n)` is the `n`th command's arguments, if any.
    fn prefetch_ahead<'a>(&self, i: usize, args_of: impl Fn(usize) -> Option<&'a [Bytes]>) {
        let key_of = |n: usize| args_of(n).and_then(|args| args.get(1));
        // The last two stages look inside the key's value (a hash's field, a set's
        // member), once the key's entry is likely cached. Hash commands (HSET, HGET,
        // HINCRBY…) all begin with an H; set commands with an S, and the string
        // commands that also do (SET, SETEX, SETRANGE…, STRLEN, SUBSTR) are left out.
        let field_of = |n: usize| args_of(n).filter(|args| args.len() > 2 && names_field(&args[0])).map(|args| (&args[1], &args[2]));
        if let Some(key) = key_of(i + PREFETCH_AHEAD) {
            self.db.prefetch_slot(key);
        }
        if let Some(key) = key_of(i + PREFETCH_AHEAD * 2 / 3) {
            self.db.prefetch_entry(key);
        }
        if let Some(key) = key_of(i + PREFETCH_AHEAD / 3) {
            self.db.prefetch_key(key);
        }
        if let Some((key, field)) = field_of(i + PREFETCH_AHEAD / 3) {
            self.db.prefetch_field_slot(key, field);
        }
        if let Some((key, field)) = field_of(i + 1) {
            self.db.prefetch_field_entry(key, field);
        }
    }

    /// Runs `n` consecutive read commands (`command(i)` is the `i`th), prefetching
    /// their lookups ahead as apply does (see [`Store::prefetch_ahead`]); their
    /// replies are pushed onto `replies`.
    pub fn read_run<'a>(
        &self,
        n: usize,
        command: impl Fn(usize) -> Option<(&'a CommandSpec, &'a [Bytes])>,
        now_ms: u64,
        rng: &mut Xoshiro256PlusPlus,
        replies: &mut Vec<Reply>,
    ) {
        let args_of = |i: usize| command(i).map(|(_, args)| args);
        replies.extend((0..n).filter_map(|i| {
            if n > 1 {
                self.prefetch_ahead(i, args_of);
            }
            command(i).map(|(spec, args)| self.read(spec, args, now_ms, rng))
        }));
    }

    /// Runs a read-only command (its spec already looked up) at `now_ms`; changes nothing.
    pub fn read(&self, spec: &CommandSpec, args: &[Bytes], now_ms: u64, rng: &mut Xoshiro256PlusPlus) -> Reply {
        if !spec.arity_ok(args.len()) {
            return wrong_args(spec.name);
        }
        match spec.handler {
            Handler::Read(f) if spec.has(commands::flags::SCRIPT) => {
                let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
                f(
                    &mut ReadCtx {
                        db: &self.db,
                        now_ms,
                        rng,
                        engine: Some(&mut engine),
                        local: &self.local,
                        acl_user: None,
                        acl_view: Some(&self.acl_view),
                        in_script: false,
                    },
                    args,
                )
                .unwrap_or_else(|e| e)
            }
            Handler::Read(f) => f(
                &mut ReadCtx {
                    db: &self.db,
                    now_ms,
                    rng,
                    engine: None,
                    local: &self.local,
                    acl_user: None,
                    acl_view: Some(&self.acl_view),
                    in_script: false,
                },
                args,
            )
            .unwrap_or_else(|e| e),
            _ => Reply::err("ERR internal: not a read command"),
        }
    }

    /// An order-independent digest of the data (keys, values, expiry times): equal on
    /// every replica that applied the same entries. Access metadata is left out.
    pub fn digest(&self) -> u64 {
        digest(&self.db)
    }
}

/// See [`Store::digest`].
pub fn digest(db: &db::Db) -> u64 {
    let mut total: u64 = 0;
    for (key, item) in db.iter() {
        let mut h = Fnv::new();
        h.write(key);
        h.write(&item.expire_at_ms.to_le_bytes());
        hash_value(&mut h, &item.value);
        total = total.wrapping_add(h.finish());
    }
    // Scripts are state too: a server that lost a SCRIPT LOAD differs from its stripe.
    let mut h = Fnv::new();
    db.scripts.digest_into(&mut |bytes| h.write(bytes));
    total = total.wrapping_add(h.finish());
    // The stream node limits are state too (they decide where nodes start); left out
    // at their defaults so that a store without streams digests as before.
    if db.stream_limits != stream::NodeLimits::default() {
        let mut h = Fnv::new();
        h.write(&db.stream_limits.max_entries.to_le_bytes());
        h.write(&db.stream_limits.max_bytes.to_le_bytes());
        total = total.wrapping_add(h.finish());
    }
    // The users are state too; left out while none is held, so that a store that
    // never set one digests as before.
    if !db.acl.pristine() {
        let mut h = Fnv::new();
        db.acl.held_lines().iter().for_each(|l| h.write(l.as_bytes()));
        total = total.wrapping_add(h.finish());
    }
    // Sessions, locks and groups are state too; left out while there are none, so
    // that a store that never used them digests as before.
    if !db.prims.is_empty() {
        let mut bytes = Vec::new();
        db.prims.encode(&mut bytes);
        let mut h = Fnv::new();
        h.write(&bytes);
        total = total.wrapping_add(h.finish());
    }
    total ^ (db.len() as u64)
}

/// FNV-1a: fixed, seedless and stable across builds, which a digest compared between
/// servers needs (std's hasher makes no such promise).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 ^= bytes.len() as u64;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn hash_value(h: &mut Fnv, value: &Value) {
    h.write(value.type_name().as_bytes());
    match value {
        Value::Str(s) => h.write(s),
        Value::List(l) => l.iter().for_each(|e| h.write(e)),
        Value::Hash(m) => m.iter().for_each(|(k, v)| {
            h.write(k);
            h.write(v);
        }),
        Value::Set(s) => s.iter().for_each(|m| h.write(&m)),
        Value::ZSet(z) => z.sorted().for_each(|(score, m)| {
            h.write(&score.0.to_bits().to_le_bytes());
            h.write(m);
        }),
        Value::Stream(s) => {
            // The encoding covers everything that is state: nodes byte for byte,
            // counters, groups, consumers and pending entries.
            let mut bytes = Vec::new();
            stream::codec::encode(s, &mut bytes);
            h.write(&bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::watch::WatchStamp;
    use rand_core::RngCore;

    fn args(cmd: &[&str]) -> Vec<Bytes> {
        cmd.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    fn apply(st: &mut Store, time_ms: u64, ops: Vec<Op>) -> Vec<Reply> {
        st.apply(&Entry { time_ms, seed: 1, ops: ops.into(), origins: None, summary: None }).replies
    }

    fn run(st: &mut Store, time_ms: u64, cmd: &[&str]) -> Reply {
        apply(st, time_ms, vec![Op::Command(args(cmd))]).remove(0)
    }

    fn checked(st: &Store, keys: &[&str], time_ms: u64, cmds: &[&[&str]]) -> Op {
        let stamp = WatchStamp { index: st.db.index(), time_ms };
        let watches = keys.iter().map(|k| Watch { key: Bytes::copy_from_slice(k.as_bytes()), stamp }).collect();
        Op::Checked { watches, cmds: cmds.iter().map(|c| args(c)).collect() }
    }

    const T: u64 = 1_700_000_000_000;

    /// An entry's summary is the sum of its proposals' summaries (what the batcher
    /// adds up), and it answers as the ops themselves do when counted again.
    #[test]
    fn an_entry_summary_is_the_sum_of_its_proposals_and_agrees_with_its_ops() {
        let cmd = |parts: &[&str]| parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect::<Vec<_>>();
        let watch = watch::Watch { key: Bytes::from_static(b"w"), stamp: WatchStamp { index: 1, time_ms: 1 } };
        let tag = once::Tag { origin: 5, seq: 1, acked: 0, window_ms: 1000 };
        let proposals: Vec<Vec<Op>> = vec![
            vec![Op::Command(cmd(&["SET", "k", "value"])), Op::Command(cmd(&["INCR", "n"]))],
            vec![Op::Transaction(vec![cmd(&["LPUSH", "l", "a", "b"]), cmd(&["GET", "k"])])],
            vec![Op::Checked { watches: vec![watch], cmds: vec![cmd(&["DEL", "k"])] }],
            vec![Op::Command(cmd(&["EVAL", "return 1", "0"])).tagged(Some(tag))],
        ];
        let mut summed = OpsSummary::default();
        for p in &proposals {
            summed += OpsSummary::of(p);
        }
        let all: Vec<Op> = proposals.into_iter().flatten().collect();
        assert_eq!(summed, OpsSummary::of(&all));
        // SET k value (9 bytes, 3 args), INCR n (5, 2), LPUSH l a b (8, 4), GET k (4, 2),
        // DEL k (4, 2) and the watched key (1 byte, 2 args), EVAL … 0 (13, 3) and its tag (4 args).
        assert_eq!(summed.size, OpsSize { bytes: 9 + 5 + 8 + 4 + 4 + 1 + 13, args: 3 + 2 + 4 + 2 + 2 + 2 + 3 + 4, commands: 6 });
        assert!(summed.runs_script);
        let counted = Entry { time_ms: 1, seed: 1, ops: all.into(), origins: None, summary: None };
        let carried = Entry { summary: Some(summed), ..counted.clone() };
        assert!(counted.runs_script() && carried.runs_script());
        assert_eq!(counted.ops_bytes(32, 24), carried.ops_bytes(32, 24));
        assert_eq!(counted.ops_bytes(32, 24), 44 + 22 * 32 + 6 * 24);
        let plain = Entry { time_ms: 1, seed: 1, ops: vec![Op::Command(cmd(&["SET", "k", "v"]))].into(), origins: None, summary: None };
        assert!(!plain.runs_script());
    }

    #[test]
    fn the_field_prefetch_reads_inside_hashes_and_sets_only() {
        for name in ["HSET", "hget", "HINCRBY", "SADD", "sismember", "SREM", "SMISMEMBER"] {
            assert!(names_field(name.as_bytes()), "{name}");
        }
        for name in ["SET", "setex", "SETRANGE", "STRLEN", "SUBSTR", "GET", "LPUSH", "ZADD", "S", ""] {
            assert!(!names_field(name.as_bytes()), "{name}");
        }
    }
    #[test]
    fn an_arena_keeps_its_buffers_small_and_gives_a_large_command_its_own() {
        let small: Vec<Bytes> = args(&["SET", "key", &"v".repeat(900)]);
        let large: Vec<Bytes> = args(&["SET", "big", &"v".repeat(ArgArena::COMMAND_BYTES_MAX + 1)]);
        // Planned as if every one of 100 commands were small: still no buffer above the bound.
        let mut arena = ArgArena::planned(100 * 1_000);
        let mut kept = Vec::new();
        for i in 0..100 {
            let cmd = if i % 10 == 3 { &large } else { &small };
            let copy = arena.copy(cmd);
            assert_eq!(&copy, cmd);
            assert!(arena.buf.capacity() <= ArgArena::BUFFER_BYTES_MAX, "a buffer of {} bytes", arena.buf.capacity());
            kept.push(copy);
        }
        // The large command's arguments are alone in their buffer: the argument after
        // the large value does not follow it in memory, nor does the one before start it.
        let (before, large_copy, after) = (&kept[2], &kept[3], &kept[4]);
        let end = |b: &Bytes| b.as_ptr() as usize + b.len();
        assert_ne!(end(&before[2]), large_copy[0].as_ptr() as usize);
        assert_ne!(end(&large_copy[2]), after[0].as_ptr() as usize);
        // Refused writes counted in the plan allocate nothing.
        let arena = ArgArena::planned(1 << 30);
        assert_eq!(arena.buf.capacity(), 0);
    }

    #[test]
    fn commands_copied_into_an_arena_keep_their_arguments_and_leave_the_read_buffer() {
        // A client's read buffer, far larger than the commands in it.
        let mut read = vec![b'.'; 65_536];
        let text = b"LPUSH mylist xxx SET key value HSET h f ";
        read[..text.len()].copy_from_slice(text);
        let read = Bytes::from(read);
        let words = |from: usize, lens: &[usize]| -> Vec<Bytes> {
            let mut at = from;
            lens.iter().map(|&n| (read.slice(at..at + n), at += n + 1).0).collect()
        };
        let cmds = [words(0, &[5, 6, 3]), words(17, &[3, 3, 5]), words(31, &[4, 1, 1, 0])];
        let inside_read = |b: &Bytes| {
            let start = read.as_ptr() as usize;
            (start..start + read.len()).contains(&(b.as_ptr() as usize))
        };
        let total = cmds.iter().flatten().map(|a| a.len()).sum();
        for planned in [total, 0, 4] {
            let mut arena = ArgArena::planned(planned);
            let copies: Vec<Vec<Bytes>> = cmds.iter().map(|c| arena.copy(c)).collect();
            assert_eq!(copies, cmds, "planned {planned}");
            assert!(copies.iter().flatten().all(|a| a.is_empty() || !inside_read(a)), "planned {planned}");
            if planned == total {
                // One buffer: each argument starts where the one before ended.
                let flat: Vec<&Bytes> = copies.iter().flatten().collect();
                for pair in flat.windows(2).filter(|p| !p[1].is_empty()) {
                    assert_eq!(pair[0].as_ptr() as usize + pair[0].len(), pair[1].as_ptr() as usize);
                }
            }
        }
        assert_eq!(compact(&cmds[0]), cmds[0]);
        assert!(compact(&cmds[0]).iter().all(|a| !inside_read(a)));
    }

    #[test]
    fn the_garbage_scripts_leave_is_collected_between_them() {
        let mut st = Store::new();
        let script = "local t = {} for i = 1, 200 do t[i] = tostring(i) .. ARGV[1] end return #t";
        for n in 0..3_000 {
            assert_eq!(run(&mut st, T, &["eval", script, "0", &n.to_string()]), Reply::Int(200));
        }
        // About 10 KB of garbage per run, 30 MB in all: collected as it goes.
        let used = st.engine.lock().unwrap().used_memory();
        assert!(used < 16 << 20, "the Lua heap holds {used} bytes after 3,000 scripts");
    }

    #[test]
    fn a_tagged_write_sent_twice_applies_once_and_answers_its_first_reply_both_times() {
        let mut st = Store::new();
        let tag = once::Tag { origin: 5, seq: 1, acked: 0, window_ms: 10_000 };
        let incr = || Op::Command(args(&["incr", "n"])).tagged(Some(tag));
        assert_eq!(apply(&mut st, T, vec![incr()]), vec![Reply::Int(1)]);
        // The copy a mirror sent again after a failover, in a later entry.
        assert_eq!(apply(&mut st, T + 1, vec![incr()]), vec![Reply::Int(1)]);
        assert_eq!(run(&mut st, T + 2, &["get", "n"]), Reply::bulk(b"1"));
        // A transaction tagged the same way.
        let tx = || Op::Transaction(vec![args(&["incr", "n"]), args(&["incr", "n"])]).tagged(Some(once::Tag { seq: 2, ..tag }));
        let first = apply(&mut st, T + 3, vec![tx()]);
        assert_eq!(first, vec![Reply::Array(vec![Reply::Int(2), Reply::Int(3)])]);
        assert_eq!(apply(&mut st, T + 4, vec![tx()]), first);
        assert_eq!(run(&mut st, T + 5, &["get", "n"]), Reply::bulk(b"3"));
        // Past the window the origin is forgotten (entry time decides, on every member).
        let later = once::Tag { seq: 3, acked: 2, ..tag };
        assert_eq!(apply(&mut st, T + 6, vec![Op::Command(args(&["incr", "n"])).tagged(Some(later))]), vec![Reply::Int(4)]);
        assert_eq!(st.db.once.origins(), 1);
        run(&mut st, T + 6 + 10_001, &["set", "x", "1"]);
        assert_eq!(
            apply(&mut st, T + 6 + 10_002, vec![Op::Command(args(&["incr", "m"])).tagged(Some(once::Tag { origin: 9, ..tag }))]).len(),
            1
        );
        assert_eq!(st.db.once.origins(), 1, "origin 5's window ended: only origin 9 is left");
    }

    #[test]
    fn a_watched_transaction_applies_nothing_when_a_write_applied_between_watch_and_exec() {
        let mut st = Store::new();
        run(&mut st, T, &["set", "k", "v"]);
        let exec = checked(&st, &["k", "absent"], T, &[&["set", "k", "tx"], &["incr", "n"]]);
        // A write proposed before the EXEC (and timed out at its client) applies first.
        run(&mut st, T, &["set", "k", "late"]);
        assert_eq!(apply(&mut st, T, vec![exec]), vec![Reply::NilArray]);
        assert_eq!(run(&mut st, T, &["get", "k"]), Reply::bulk(b"late"));
        assert_eq!(run(&mut st, T, &["exists", "n"]), Reply::Int(0), "nothing of the transaction applied");
    }

    #[test]
    fn a_watched_transaction_applies_when_nothing_watched_changed() {
        let mut st = Store::new();
        run(&mut st, T, &["set", "k", "v"]);
        let exec = checked(&st, &["k", "absent"], T, &[&["set", "k", "tx"]]);
        run(&mut st, T, &["set", "other", "x"]);
        run(&mut st, T, &["del", "other"]);
        // `other` may share a removal bucket with `absent` (1 in 4096): this pair does not.
        assert_eq!(apply(&mut st, T, vec![exec]), vec![Reply::Array(vec![Reply::ok()])]);
        assert_eq!(run(&mut st, T, &["get", "k"]), Reply::bulk(b"tx"));
    }

    #[test]
    fn a_watched_key_created_or_expired_after_watch_fails_exec() {
        let mut st = Store::new();
        let exec = checked(&st, &["new"], T, &[&["incr", "n"]]);
        run(&mut st, T, &["set", "new", "1"]);
        assert_eq!(apply(&mut st, T, vec![exec]), vec![Reply::NilArray]);

        run(&mut st, T, &["set", "ttl", "v", "px", "100"]);
        let exec = checked(&st, &["ttl"], T, &[&["incr", "n"]]);
        assert_eq!(apply(&mut st, T + 100, vec![exec]), vec![Reply::NilArray], "expired between WATCH and EXEC");
    }

    #[test]
    fn finding_3_an_entry_stamped_before_the_last_applied_time_applies_at_that_time() {
        let mut st = Store::new();
        run(&mut st, T, &["set", "k", "v", "px", "1000"]);
        // A new active whose clock is an hour behind stamps its entries.
        let behind = T - 3_600_000;
        assert_eq!(run(&mut st, behind, &["pttl", "k"]), Reply::Int(1000), "the TTL does not jump");
        run(&mut st, T + 1000, &["pttl", "k"]);
        assert_eq!(run(&mut st, behind, &["get", "k"]), Reply::Nil, "an expired key stays expired");
        assert_eq!(run(&mut st, behind, &["incr", "k"]), Reply::Int(1), "INCR does not build on the expired value");
    }

    /// A per-key fingerprint of what a client can observe: value and expiry.
    fn observed(st: &Store, key: &str, now_ms: u64) -> Option<u64> {
        st.db.get(key.as_bytes(), now_ms).map(|item| {
            let mut h = Fnv::new();
            h.write(&item.expire_at_ms.to_le_bytes());
            hash_value(&mut h, &item.value);
            h.finish()
        })
    }

    fn random_command(rng: &mut Xoshiro256PlusPlus, keys: &[&str]) -> Vec<String> {
        let mut pick = |n: u64| (rng.next_u64() % n) as usize;
        let k = keys[pick(keys.len() as u64)].to_string();
        let k2 = keys[pick(keys.len() as u64)].to_string();
        let v = format!("{}", pick(4));
        let cmds: Vec<Vec<String>> = vec![
            vec!["set".into(), k.clone(), v.clone()],
            vec!["set".into(), k.clone(), v.clone(), "px".into(), format!("{}", 1 + pick(50))],
            vec!["set".into(), k.clone(), v.clone(), "nx".into()],
            vec!["del".into(), k.clone()],
            vec!["incr".into(), k.clone()],
            vec!["append".into(), k.clone(), v.clone()],
            vec!["pexpire".into(), k.clone(), format!("{}", 1 + pick(50))],
            vec!["persist".into(), k.clone()],
            vec!["getdel".into(), k.clone()],
            vec!["getex".into(), k.clone(), "persist".into()],
            vec!["lpush".into(), k.clone(), v.clone()],
            vec!["rpop".into(), k.clone()],
            vec!["lrem".into(), k.clone(), "0".into(), v.clone()],
            vec!["hset".into(), k.clone(), v.clone(), v.clone()],
            vec!["hdel".into(), k.clone(), v.clone()],
            vec!["sadd".into(), k.clone(), v.clone()],
            vec!["srem".into(), k.clone(), v.clone()],
            vec!["zadd".into(), k.clone(), v.clone(), v.clone()],
            vec!["zincrby".into(), k.clone(), "1".into(), v.clone()],
            vec!["zpopmin".into(), k.clone()],
            vec!["rename".into(), k.clone(), k2.clone()],
            vec!["copy".into(), k.clone(), k2.clone(), "replace".into()],
            vec!["lmove".into(), k.clone(), k2.clone(), "left".into(), "right".into()],
            vec!["smove".into(), k.clone(), k2.clone(), v.clone()],
            vec!["sunionstore".into(), k2.clone(), k.clone()],
            vec!["mset".into(), k.clone(), v.clone(), k2.clone(), v.clone()],
            vec!["tandem.expired".into(), k.clone()],
            vec!["incrbyfloat".into(), k.clone(), "0.5".into()],
            vec!["set".into(), k.clone(), v.clone(), "keepttl".into()],
            vec!["setrange".into(), k.clone(), "1".into(), v.clone()],
            vec!["hincrby".into(), k.clone(), v.clone(), "1".into()],
            vec!["hsetnx".into(), k.clone(), v.clone(), v.clone()],
            vec!["ltrim".into(), k.clone(), "1".into(), "-1".into()],
            vec!["lset".into(), k.clone(), "0".into(), v.clone()],
            vec!["linsert".into(), k.clone(), "before".into(), v.clone(), "x".into()],
            vec!["spop".into(), k.clone()],
            vec!["sinterstore".into(), k2.clone(), k.clone(), k2.clone()],
            vec!["pexpireat".into(), k.clone(), "1".into()],
            vec!["renamenx".into(), k.clone(), k2.clone()],
            vec!["flushall".into()],
        ];
        let weights = cmds.len() as u64 * 4;
        let i = pick(weights).min(cmds.len() - 1);
        // FLUSHALL (the last) only once in a while.
        cmds[if i == cmds.len() - 1 && pick(8) != 0 { 0 } else { i }].clone()
    }

    /// WATCH is only as exact as its versions: whatever a command does to a key's value
    /// or expiry, the key must read as changed since any stamp taken before.
    #[test]
    fn every_observable_change_to_a_key_fails_a_watch_taken_before_it() {
        let seed = std::env::var("TANDEM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
        println!("seed {seed} (replay with TANDEM_TEST_SEED={seed})");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let keys = ["a", "b", "c", "{x}1", "{x}2"];
        let mut st = Store::new();
        let mut now = T;
        for step in 0..20_000 {
            let watched_at = now;
            let stamp = WatchStamp { index: st.db.index(), time_ms: watched_at };
            let before: Vec<Option<u64>> = keys.iter().map(|k| observed(&st, k, watched_at)).collect();
            now += rng.next_u64() % 20;
            let cmd = random_command(&mut rng, &keys);
            let argv: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
            run(&mut st, now, &argv);
            for (key, was) in keys.iter().zip(&before) {
                if observed(&st, key, now) != *was {
                    assert!(!st.db.unchanged_since(key.as_bytes(), stamp, now), "seed {seed} step {step}: {cmd:?} changed {key} unseen");
                }
            }
        }
    }
}
