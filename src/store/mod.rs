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
pub mod scripts;
pub mod slots;
pub mod value;

use bytes::Bytes;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::commands::{self, args::unknown_command, wrong_args, CommandSpec, Handler, ReadCtx, WriteCtx};
use crate::protocol::reply::Reply;
use db::Db;
use value::Value;

/// One operation in an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A single command, as the client sent it (name first).
    Command(Vec<Bytes>),
    /// MULTI … EXEC: applied back to back; one array reply. Server-level commands
    /// inside (PING, PUBLISH…) get a `Nil` placeholder the connection fills in.
    Transaction(Vec<Vec<Bytes>>),
}

impl Op {
    /// A command whose arguments share one compact allocation. Arguments parsed from
    /// a client are slices of its read buffer; an entry that lives on in the Raft log
    /// must not pin that whole buffer.
    pub fn command(args: &[Bytes]) -> Op {
        Op::Command(compact(args))
    }
}

/// The bytes `ops` carry in their arguments, plus `per_arg` for each argument and
/// `per_command` for each command: one measure of an entry's size for every budget
/// (proposal caps, append cuts, the log's memory account), each with its overhead.
pub fn ops_bytes(ops: &[Op], per_arg: usize, per_command: usize) -> usize {
    let command = |a: &Vec<Bytes>| a.iter().map(|b| b.len() + per_arg).sum::<usize>() + per_command;
    ops.iter()
        .map(|op| match op {
            Op::Command(a) => command(a),
            Op::Transaction(cmds) => cmds.iter().map(command).sum(),
        })
        .sum()
}

/// Copies `args` into one allocation, sliced per argument.
pub fn compact(args: &[Bytes]) -> Vec<Bytes> {
    let total: usize = args.iter().map(|a| a.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(total);
    for arg in args {
        buf.extend_from_slice(arg);
    }
    let all = buf.freeze();
    let mut at = 0;
    args.iter()
        .map(|a| {
            let part = all.slice(at..at + a.len());
            at += a.len();
            part
        })
        .collect()
}

/// A log entry: what the active decided to apply, when, and with which seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub time_ms: u64,
    pub seed: u64,
    pub ops: Vec<Op>,
}

impl Entry {
    /// Whether applying this entry runs a Lua script (EVAL, FCALL…), which may take long.
    pub fn runs_script(&self) -> bool {
        let script = |args: &Vec<Bytes>| commands::resolve(args).is_some_and(|s| s.has(commands::flags::SCRIPT));
        self.ops.iter().any(|op| match op {
            Op::Command(args) => script(args),
            Op::Transaction(cmds) => cmds.iter().any(script),
        })
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
    /// Keys that gained elements blocked clients may be waiting for.
    pub ready_keys: Vec<Bytes>,
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
    /// This server's settings that reads report (OBJECT ENCODING's thresholds); not state.
    pub local: encoding::LocalSettings,
    /// The Lua VM scripts run in, with its per-server caches: not state. Behind its own
    /// (uncontended) lock so that reads, which take `&Store`, can run read-only scripts.
    pub engine: std::sync::Mutex<crate::scripting::Engine>,
}

impl Store {
    /// A store that builds keyspace events (the server turns them off until someone
    /// enables notifications).
    pub fn new() -> Store {
        Store { events_on: true, ..Store::default() }
    }

    /// What connections may know about the script running in this store (scripting).
    pub fn script_status(&self) -> std::sync::Arc<crate::scripting::Status> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner()).status()
    }

    /// Applies `entry`: the only way state changes.
    pub fn apply(&mut self, entry: &Entry) -> Applied {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(entry.seed);
        let mut applied = Applied { replies: Vec::with_capacity(entry.ops.len()), ..Applied::default() };
        for op in &entry.ops {
            let reply = match op {
                Op::Command(args) => self.apply_command(args, entry.time_ms, &mut rng, &mut applied),
                Op::Transaction(cmds) => {
                    let replies = cmds.iter().map(|args| self.apply_command(args, entry.time_ms, &mut rng, &mut applied)).collect();
                    Reply::Array(replies)
                }
            };
            applied.replies.push(reply);
        }
        applied
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
                    engine: Some(self.engine.get_mut().unwrap_or_else(|e| e.into_inner())),
                };
                f(&mut ctx, args)
            }
            Handler::Read(f) => {
                let engine = self.engine.get_mut().unwrap_or_else(|e| e.into_inner());
                f(&mut ReadCtx { db: &self.db, now_ms: time_ms, rng, engine: Some(engine), local: &self.local }, args)
            }
            Handler::Server(_) => Ok(Reply::Nil),
        };
        result.unwrap_or_else(|e| e)
    }

    /// Runs a read-only command (its spec already looked up) at `now_ms`; changes nothing.
    pub fn read(&self, spec: &CommandSpec, args: &[Bytes], now_ms: u64, rng: &mut Xoshiro256PlusPlus) -> Reply {
        if !spec.arity_ok(args.len()) {
            return wrong_args(spec.name);
        }
        match spec.handler {
            Handler::Read(f) if spec.has(commands::flags::SCRIPT) => {
                let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut ReadCtx { db: &self.db, now_ms, rng, engine: Some(&mut engine), local: &self.local }, args).unwrap_or_else(|e| e)
            }
            Handler::Read(f) => f(&mut ReadCtx { db: &self.db, now_ms, rng, engine: None, local: &self.local }, args).unwrap_or_else(|e| e),
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
        Value::Set(s) => s.iter().for_each(|m| h.write(m)),
        Value::ZSet(z) => z.order.iter().for_each(|(score, m)| {
            h.write(&score.0.to_bits().to_le_bytes());
            h.write(m);
        }),
    }
}
