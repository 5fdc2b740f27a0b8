//! The clients of a run: each a thread with its own connections (the `redis` crate's
//! blocking API), issuing operations with unique values on a small set of keys —
//! registers, counters and lists, and with `--workload`, keys with a time to live,
//! WATCH/MULTI/EXEC transactions and the keys of an eviction run — and recording each
//! with its invocation and completion times.
//!
//! A client sends to its home server; after an error it sends the next operation to
//! the next server, then goes home again. So clients of a server that is down still
//! make progress, and clients of a server cut off from the others keep talking to it
//! (which is how stale reads would show).
//!
//! A client of mirrors (`--mirror-clients`) instead sends to a server that answers
//! ROLE as a connected mirror, moving to another when its server fails or stops being
//! one, and does non-idempotent INCR and RPUSH on keys of its own
//! ([`mirror_counter`], [`mirror_list`]): what the application servers of DESIGN.md
//! §6 do, whose writes the mirror forwards with an exactly-once tag. Its duplicates
//! and unknown outcomes are counted apart ([`super::mirrors`]).
//!
//! With `retry`, a client resends a command on the error replies go-redis resends on
//! by itself ([`GO_REDIS_RETRIED`]): a server that answers one of them for a write
//! that may have been applied makes a retrying application apply it twice, which the
//! checks see as a duplicate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::history::{classify, pack, Call, Op, Outcome, Ret};

/// What a key is for: each kind has its own keys (told apart by their prefix), so no
/// command ever meets a key of the wrong type, and each kind has its own checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Register,
    Counter,
    List,
    /// Values with a time to live: `SET PX`, `GET`, `PTTL`.
    Ttl,
    /// A transaction's key `txn:{N}`, or its log `txn:{N}:log`.
    Txn,
    /// A key of an eviction run that a client makes volatile, then persistent.
    Evict,
    /// A large volatile value that fills memory in an eviction run (not checked).
    Filler,
}

const PREFIXES: [(&str, Kind); 7] = [
    ("register:", Kind::Register),
    ("counter:", Kind::Counter),
    ("list:", Kind::List),
    ("ttl:", Kind::Ttl),
    ("txn:", Kind::Txn),
    ("evict:fill:", Kind::Filler),
    ("evict:", Kind::Evict),
];

impl Kind {
    /// The kind of a key the clients use, from its prefix.
    pub fn of(key: &str) -> Option<Kind> {
        PREFIXES.iter().find(|(prefix, _)| key.starts_with(prefix)).map(|&(_, kind)| kind)
    }

    fn prefix(self) -> &'static str {
        PREFIXES.iter().find(|(_, k)| *k == self).map_or("", |(p, _)| p)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Counter => "counter",
            Kind::List => "list",
            Kind::Ttl => "ttl",
            Kind::Txn => "txn",
            Kind::Evict => "evict",
            Kind::Filler => "filler",
        }
    }
}

/// Workloads besides registers, counters and lists (which always run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extra {
    /// Keys with short and longer times to live, read with GET and PTTL.
    Ttl,
    /// WATCH/MULTI/EXEC transactions.
    Txn,
    /// Keys made volatile then persistent, among large volatile fillers (an eviction
    /// run: `Options::evict`).
    Evict,
}

impl Extra {
    pub fn name(self) -> &'static str {
        match self {
            Extra::Ttl => "ttl",
            Extra::Txn => "txn",
            Extra::Evict => "evict",
        }
    }
}

/// The keys every client works on.
#[derive(Clone, Debug)]
pub struct Keys {
    pub registers: Vec<String>,
    pub counters: Vec<String>,
    /// Counters each written by one client of mirrors only ([`mirror_counter`]): read
    /// after healing and checked like the others, never chosen by other clients.
    pub own_counters: Vec<String>,
    /// Lists: each name takes a new key every [`LIST_GENERATION`] (`list:0:7` is the
    /// eighth of `list:0`).
    pub lists: Vec<String>,
    pub ttl: Vec<String>,
    /// Transaction keys; each has its log, [`txn_log`].
    pub txn: Vec<String>,
}

/// How long the clients append to one list key before they move to the next: every
/// read returns the whole list, and a list that grew for the whole run would make
/// reads (and the history) quadratic. Every key is read again after healing, so a
/// lost append is caught whenever it happened.
pub const LIST_GENERATION: Duration = Duration::from_secs(2);

fn names(kind: Kind, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{}{i}", kind.prefix())).collect()
}

impl Keys {
    pub fn new(extras: &[Extra]) -> Keys {
        let txn = if extras.contains(&Extra::Txn) {
            // A hash tag: a transaction's key and its log share a slot.
            (0..4).map(|i| format!("{}{{{i}}}", Kind::Txn.prefix())).collect()
        } else {
            Vec::new()
        };
        Keys {
            registers: names(Kind::Register, 5),
            counters: names(Kind::Counter, 2),
            own_counters: Vec::new(),
            lists: names(Kind::List, 3),
            ttl: if extras.contains(&Extra::Ttl) { names(Kind::Ttl, 12) } else { Vec::new() },
            txn,
        }
    }
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::new(&[])
    }
}

/// The log of transaction key `key`: every committed transaction appends its value,
/// so the log is the order in which transactions applied.
pub fn txn_log(key: &str) -> String {
    format!("{key}:log")
}

/// How long a client waits to connect, and for a reply. A reply that does not come
/// in time leaves the operation unknown.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// A retrying client waits longer than a server waits for a write to commit (5 s),
/// so it hears the server's error rather than its own timeout (go-redis waits 5 s
/// by default; it resends after its own timeout too, which is left out here: see
/// [`GO_REDIS_RETRIED`]).
const REPLY_TIMEOUT_RETRYING: Duration = Duration::from_secs(10);

/// The pause after an error before the next operation, so a client facing a dead
/// server does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(25);

/// The error replies on which go-redis resends a command by itself: `shouldRetry`
/// in go-redis v9's error.go (LOADING, READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN,
/// NOREPLICAS, "ERR max number of clients reached"), and the redirections its
/// cluster client follows (MOVED, ASK). go-redis also resends after io.EOF, a
/// failed dial and (for commands without their own timeout) a read timeout; the
/// first two are transport events a server cannot make safe for a non-idempotent
/// command without de-duplication (DESIGN.md §6), and a refused dial sent nothing,
/// so this client does not resend on transport trouble: the set is what a server
/// chooses to answer.
pub const GO_REDIS_RETRIED: &[&str] = &["LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS", "MOVED", "ASK"];
const GO_REDIS_RETRIED_ERR: &str = "max number of clients reached";
/// go-redis's defaults: 3 retries, backoff from 10 ms doubling up to 1 s.
const GO_REDIS_RETRIES_MAX: usize = 3;
const GO_REDIS_BACKOFF_MIN: Duration = Duration::from_millis(10);
const GO_REDIS_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// True if go-redis would send the command again after this error by itself.
pub fn go_redis_retries(error: &redis::RedisError) -> bool {
    match error.code() {
        Some("ERR") => error.detail().is_some_and(|d| d.starts_with(GO_REDIS_RETRIED_ERR)),
        Some(code) => GO_REDIS_RETRIED.contains(&code),
        None => false,
    }
}

fn backoff(attempt: usize) -> Duration {
    let factor = 1u32 << attempt.min(16);
    (GO_REDIS_BACKOFF_MIN * factor).min(GO_REDIS_BACKOFF_MAX)
}

/// The time to live of a value on a `ttl:` key: half short (expiring while the
/// clients watch), half longer (living through a failover, so PTTL can be compared).
const TTL_SHORT_MS: (u64, u64) = (300, 1_500);
const TTL_LONG_MS: (u64, u64) = (3_000, 10_000);

/// An eviction run's keys: volatile first with a time to live shorter than every
/// filler's (so volatile-ttl picks them first), then made persistent by a plain SET.
const EVICT_VOLATILE_TTL_MS: u64 = 30_000;
const FILLER_TTL_MS: u64 = 3_600_000;
/// The size of a filler value: large, so memory fills in seconds.
pub const FILLER_BYTES: usize = 64 * 1024;

/// Of 100 operations, how many go to the extra workloads when there are some.
const EXTRA_SHARE: u64 = 40;

/// Where a client is in its eviction cycle: the key it owns now and the next step
/// (0: SET PX, 1: SET, 2: GET).
#[derive(Default)]
struct EvictCycle {
    generation: u64,
    step: u8,
}

pub struct Client {
    pub id: usize,
    /// redis:// URLs of the servers, by server index.
    pub urls: Vec<String>,
    pub home: usize,
    pub keys: Keys,
    pub extras: Vec<Extra>,
    /// Resend commands like go-redis does.
    pub retry: bool,
    /// Seeds the choice of operations (not their timing).
    pub seed: u64,
    /// Time zero of the history.
    pub epoch: Instant,
    /// Stop when set, at `until`, or after `ops_max` operations.
    pub stop: Arc<AtomicBool>,
    pub until: Instant,
    pub ops_max: usize,
    /// A client of mirrors (see the module doc).
    pub on_mirrors: bool,
}

/// The counter of client `id` of mirrors: only it writes there, so each gap between
/// its acknowledged INCR replies is an increment applied twice or an unknown one.
pub fn mirror_counter(id: usize) -> String {
    format!("{}m{id}", Kind::Counter.prefix())
}

/// The list of client `id` of mirrors (a new key every [`LIST_GENERATION`]).
pub fn mirror_list(id: usize, generation: u128) -> String {
    format!("{}m{id}:{generation}", Kind::List.prefix())
}

/// How many operations a client of mirrors makes before it asks its server's ROLE
/// again (a mirror may have become the active in a failover).
const MIRROR_RECHECK_OPS: usize = 50;

impl Client {
    /// Runs until told to stop; the client's history.
    pub fn run(self) -> Vec<Op> {
        if self.on_mirrors {
            return self.run_on_mirrors();
        }
        let mut rng = self.rng();
        let mut conns: Vec<Option<redis::Connection>> = self.urls.iter().map(|_| None).collect();
        let mut detour: Option<usize> = None;
        let mut history = Vec::new();
        let mut cycle = EvictCycle::default();
        let mut n = 0usize;
        let timeout = if self.retry { REPLY_TIMEOUT_RETRYING } else { REPLY_TIMEOUT };
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < self.until && n < self.ops_max {
            let server = detour.unwrap_or(self.home);
            let (key, call) = self.choose(&mut rng, n, &cycle);
            n += 1;
            if conns[server].is_none() {
                match connect_with(&self.urls[server], timeout) {
                    Ok(c) => conns[server] = Some(c),
                    Err(_) => {
                        detour = self.next_after(server);
                        std::thread::sleep(ERROR_PAUSE);
                        continue;
                    }
                }
            }
            let Some(con) = conns[server].as_mut() else { continue };
            let op = self.observe(con, server, key, call);
            if Kind::of(&op.key) == Some(Kind::Evict) {
                cycle.advance(&op.outcome);
            }
            let failed = !op.is_ok();
            history.push(op);
            if failed {
                // The connection may hold a late reply: never reuse it.
                conns[server] = None;
                detour = self.next_after(server);
                std::thread::sleep(ERROR_PAUSE);
            } else {
                detour = None;
            }
        }
        history
    }

    /// The loop of a client of mirrors: each operation goes to the server found by
    /// [`Client::find_mirror`]; after an error the connection is dropped and a mirror
    /// looked for again.
    fn run_on_mirrors(self) -> Vec<Op> {
        let mut rng = self.rng();
        let timeout = if self.retry { REPLY_TIMEOUT_RETRYING } else { REPLY_TIMEOUT };
        let mut current: Option<(usize, redis::Connection)> = None;
        let mut history = Vec::new();
        let mut n = 0usize;
        let mut recheck_at = 0usize;
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < self.until && n < self.ops_max {
            if current.is_none() || n >= recheck_at {
                current = self.find_mirror(current.take(), timeout);
                recheck_at = n + MIRROR_RECHECK_OPS;
                if current.is_none() {
                    std::thread::sleep(ERROR_PAUSE);
                    continue;
                }
            }
            let Some((server, con)) = current.as_mut() else { continue };
            let server = *server;
            let (key, call) = self.choose_on_mirror(&mut rng, n);
            n += 1;
            let op = self.observe(con, server, key, call);
            let failed = !op.is_ok();
            history.push(op);
            if failed {
                // The connection may hold a late reply: never reuse it.
                current = None;
                std::thread::sleep(ERROR_PAUSE);
            }
        }
        history
    }

    /// A connection to a server that answers ROLE as a connected mirror: the current
    /// one if it still is, else the first such server from the client's home on.
    fn find_mirror(&self, current: Option<(usize, redis::Connection)>, timeout: Duration) -> Option<(usize, redis::Connection)> {
        let start = match current {
            Some((server, mut con)) => {
                if is_connected_mirror(&mut con) {
                    return Some((server, con));
                }
                server + 1
            }
            None => self.home,
        };
        (0..self.urls.len()).map(|i| (start + i) % self.urls.len()).find_map(|server| {
            // Asked with the short timeout: a paused server must not hold the search
            // for a retrying client's long one.
            let mut con = connect_with(&self.urls[server], REPLY_TIMEOUT).ok()?;
            if !is_connected_mirror(&mut con) {
                return None;
            }
            con.set_read_timeout(Some(timeout)).ok()?;
            con.set_write_timeout(Some(timeout)).ok()?;
            Some((server, con))
        })
    }

    /// A client of mirrors' next operation on its own keys: mostly INCR and RPUSH.
    fn choose_on_mirror(&self, rng: &mut Xoshiro256PlusPlus, n: usize) -> (String, Call) {
        let value = format!("{}-{n}", self.id);
        let list = || mirror_list(self.id, self.epoch.elapsed().as_millis() / LIST_GENERATION.as_millis());
        match rng.next_u64() % 100 {
            0..=54 => (mirror_counter(self.id), Call::Incr),
            55..=84 => (list(), Call::Append(value)),
            85..=94 => (mirror_counter(self.id), Call::ReadCounter),
            _ => (list(), Call::ReadList),
        }
    }

    /// The client's choices: from the run's seed and its id.
    fn rng(&self) -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(self.seed ^ (self.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Performs `call` on `server` and records it, timed.
    fn observe(&self, con: &mut redis::Connection, server: usize, key: String, call: Call) -> Op {
        let invoke_ns = self.now_ns();
        let (call, outcome, retried) = self.perform(con, &key, call);
        let complete_ns = self.now_ns();
        Op { client: self.id, server, key, call, outcome, invoke_ns, complete_ns, retried }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The server to try after `server` failed; None for home.
    fn next_after(&self, server: usize) -> Option<usize> {
        let next = (server + 1) % self.urls.len();
        (next != self.home).then_some(next)
    }

    /// Sends `call`, and with `retry` sends it again as go-redis would; the call as
    /// made (a transaction records what it read), its outcome, and the errors it was
    /// resent on. Transactions are never resent: a resent EXEC would run unwatched.
    fn perform(&self, con: &mut redis::Connection, key: &str, call: Call) -> (Call, Outcome, Vec<String>) {
        if let Call::Txn { value, .. } = &call {
            let (read, outcome) = transaction(con, key, value);
            return (Call::Txn { value: value.clone(), read }, outcome, Vec::new());
        }
        let mut retried = Vec::new();
        let mut maybe_applied = false;
        loop {
            let error = match attempt(con, key, &call) {
                Ok(outcome) => return (call, outcome, retried),
                Err(e) => e,
            };
            let outcome = classify(&call, &error);
            maybe_applied |= matches!(outcome, Outcome::Unknown(_));
            if self.retry && retried.len() < GO_REDIS_RETRIES_MAX && go_redis_retries(&error) {
                retried.push(error.to_string());
                std::thread::sleep(backoff(retried.len()));
                continue;
            }
            // A refusal after an attempt whose outcome was unknown: still unknown.
            let outcome = match outcome {
                Outcome::Fail(why) if maybe_applied => Outcome::Unknown(format!("{why} (an earlier attempt's outcome is unknown)")),
                other => other,
            };
            return (call, outcome, retried);
        }
    }

    /// The next operation. Without extra workloads: half on registers, a quarter each
    /// on counters and lists; with some, they take [`EXTRA_SHARE`] percent.
    fn choose(&self, rng: &mut Xoshiro256PlusPlus, n: usize, cycle: &EvictCycle) -> (String, Call) {
        let value = format!("{}-{n}", self.id);
        if !self.extras.is_empty() && rng.next_u64() % 100 < EXTRA_SHARE {
            let extra = self.extras[(rng.next_u64() % self.extras.len() as u64) as usize];
            return match extra {
                Extra::Ttl => self.choose_ttl(rng, value),
                Extra::Txn => {
                    let i = (rng.next_u64() % self.keys.txn.len().max(1) as u64) as usize;
                    (self.keys.txn.get(i).cloned().unwrap_or_default(), Call::Txn { value, read: None })
                }
                Extra::Evict if rng.next_u64().is_multiple_of(2) => {
                    (format!("{}{}:{n}", Kind::Filler.prefix(), self.id), Call::Fill(value))
                }
                Extra::Evict => cycle.next(self.id, value),
            };
        }
        let mut below = |k: usize| (rng.next_u64() % k.max(1) as u64) as usize;
        let pick = |keys: &[String], i: usize| keys[i % keys.len()].clone();
        match below(100) {
            0..=49 => {
                let key = pick(&self.keys.registers, below(self.keys.registers.len()));
                let call = match below(100) {
                    0..=44 => Call::Get,
                    45..=79 => Call::Set(value),
                    80..=89 => Call::SetNx(value),
                    _ => Call::Del,
                };
                (key, call)
            }
            50..=74 => {
                let key = pick(&self.keys.counters, below(self.keys.counters.len()));
                (key, if below(100) < 70 { Call::Incr } else { Call::ReadCounter })
            }
            _ => {
                let generation = self.epoch.elapsed().as_millis() / LIST_GENERATION.as_millis();
                let key = format!("{}:{generation}", pick(&self.keys.lists, below(self.keys.lists.len())));
                (key, if below(100) < 60 { Call::Append(value) } else { Call::ReadList })
            }
        }
    }

    /// Few writes, many reads: a key often goes unwritten through a failover, so two
    /// PTTLs around it can be compared.
    fn choose_ttl(&self, rng: &mut Xoshiro256PlusPlus, value: String) -> (String, Call) {
        let mut below = |k: u64| rng.next_u64() % k.max(1);
        let key = self.keys.ttl.get(below(self.keys.ttl.len() as u64) as usize).cloned().unwrap_or_default();
        let call = match below(100) {
            0..=11 => {
                let (low, high) = if below(2) == 0 { TTL_SHORT_MS } else { TTL_LONG_MS };
                Call::SetPx(value, low + below(high - low))
            }
            12..=55 => Call::Get,
            _ => Call::ReadTtl,
        };
        (key, call)
    }
}

impl EvictCycle {
    fn key(&self, client: usize) -> String {
        format!("{}{client}:{}", Kind::Evict.prefix(), self.generation)
    }

    fn next(&self, client: usize, value: String) -> (String, Call) {
        let call = match self.step {
            0 => Call::SetPx(value, EVICT_VOLATILE_TTL_MS),
            1 => Call::Set(value),
            _ => Call::Get,
        };
        (self.key(client), call)
    }

    /// After a step: on to the next (a new key after the read, or after an unknown
    /// outcome, so each key's history stays sequential and free of late writes).
    fn advance(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Ok(_) if self.step >= 2 => *self = EvictCycle { generation: self.generation + 1, step: 0 },
            Outcome::Ok(_) => self.step += 1,
            Outcome::Unknown(_) => *self = EvictCycle { generation: self.generation + 1, step: 0 },
            Outcome::Fail(_) => {}
        }
    }
}

/// GET and PTTL of `key` in one transaction, so both see the same value at the same
/// instant of the server's clock.
fn read_ttl(con: &mut redis::Connection, key: &str) -> Result<Outcome, redis::RedisError> {
    use redis::Value as V;
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI").cmd("GET").arg(key).cmd("PTTL").arg(key).cmd("EXEC");
    let replies = pipe.query::<Vec<V>>(con)?;
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).ok();
    Ok(match replies.last() {
        Some(V::Array(items)) => match items.as_slice() {
            [V::Nil, V::Int(ttl)] => Outcome::Ok(Ret::ValueTtl(None, *ttl)),
            [V::BulkString(b), V::Int(ttl)] if text(b).is_some() => Outcome::Ok(Ret::ValueTtl(text(b), *ttl)),
            other => Outcome::Fail(format!("{UNEXPECTED} to MULTI GET PTTL EXEC: {other:?}")),
        },
        other => Outcome::Fail(format!("{UNEXPECTED} to MULTI GET PTTL EXEC: {other:?}")),
    })
}

/// The transaction on `key`: WATCH, GET, then MULTI, SET, RPUSH to the log, EXEC.
/// What GET returned (None if it did not succeed) and the outcome.
fn transaction(con: &mut redis::Connection, key: &str, value: &str) -> (Option<String>, Outcome) {
    let call = Call::Txn { value: value.to_string(), read: None };
    let read = redis::cmd("WATCH").arg(key).query::<()>(con).and_then(|()| redis::cmd("GET").arg(key).query::<Option<String>>(con));
    let read = match read {
        Ok(read) => read,
        // Nothing was proposed: a failed read is a refusal, whatever the error.
        Err(e) => return (None, Outcome::Fail(e.to_string())),
    };
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI").cmd("SET").arg(key).arg(value).cmd("RPUSH").arg(txn_log(key)).arg(value).cmd("EXEC");
    let outcome = match pipe.query::<Vec<redis::Value>>(con) {
        Ok(replies) => match replies.last() {
            Some(redis::Value::Nil) => Outcome::Ok(Ret::Committed(false)),
            Some(redis::Value::Array(items)) if items.len() == 2 => {
                match items.iter().find(|i| matches!(i, redis::Value::ServerError(_))) {
                    None => Outcome::Ok(Ret::Committed(true)),
                    // EXEC ran its commands; one of them failed (Redis does not roll back).
                    Some(error) => Outcome::Unknown(format!("EXEC ran, but a command in it failed: {error:?}")),
                }
            }
            other => Outcome::Unknown(format!("{UNEXPECTED} to EXEC: {other:?}")),
        },
        Err(e) => classify(&call, &e),
    };
    (read, outcome)
}
/// True if the server answers ROLE as a mirror connected to its active (Redis's
/// replica shape, link state `connected`).
fn is_connected_mirror(con: &mut redis::Connection) -> bool {
    use redis::Value as V;
    match redis::cmd("ROLE").query::<V>(con) {
        Ok(V::Array(items)) => matches!(
            (items.first(), items.get(3)),
            (Some(V::BulkString(role)), Some(V::BulkString(link))) if role == b"slave" && link == b"connected"
        ),
        _ => false,
    }
}

pub fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    connect_with(url, REPLY_TIMEOUT)
}

fn connect_with(url: &str, reply_timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let con = redis::Client::open(url)?.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(reply_timeout))?;
    con.set_write_timeout(Some(reply_timeout))?;
    Ok(con)
}

/// Sends `call` on `key` and reads what came back.
pub fn execute(con: &mut redis::Connection, key: &str, call: &Call) -> Outcome {
    if let Call::Txn { value, .. } = call {
        return transaction(con, key, value).1;
    }
    attempt(con, key, call).unwrap_or_else(|e| classify(call, &e))
}

/// Sends `call` (not a transaction) once: its outcome from a reply, or the error.
fn attempt(con: &mut redis::Connection, key: &str, call: &Call) -> Result<Outcome, redis::RedisError> {
    let mut cmd = match call {
        Call::Get | Call::ReadCounter => redis::cmd("GET"),
        Call::Set(_) | Call::SetNx(_) | Call::SetPx(..) | Call::Fill(_) => redis::cmd("SET"),
        Call::Del => redis::cmd("DEL"),
        Call::Incr => redis::cmd("INCR"),
        Call::Append(_) => redis::cmd("RPUSH"),
        Call::ReadList => redis::cmd("LRANGE"),
        Call::ReadTtl => return read_ttl(con, key),
        Call::Txn { .. } => redis::cmd("EXEC"),
    };
    cmd.arg(key);
    match call {
        Call::Set(v) | Call::Append(v) => {
            cmd.arg(v);
        }
        Call::SetNx(v) => {
            cmd.arg(v).arg("NX");
        }
        Call::SetPx(v, ms) => {
            cmd.arg(v).arg("PX").arg(*ms);
        }
        Call::Fill(v) => {
            let mut blob = v.clone().into_bytes();
            blob.resize(FILLER_BYTES, b'.');
            cmd.arg(blob).arg("PX").arg(FILLER_TTL_MS);
        }
        Call::ReadList => {
            cmd.arg(0).arg(-1);
        }
        _ => {}
    }
    let value = cmd.query::<redis::Value>(con)?;
    Ok(match interpret(call, value) {
        Ok(ret) => Outcome::Ok(ret),
        Err(unexpected) if call.is_write() => Outcome::Unknown(unexpected),
        Err(unexpected) => Outcome::Fail(unexpected),
    })
}

/// Marks replies that no Redis server would give to the call; the checks count them.
pub const UNEXPECTED: &str = "unexpected reply";

fn interpret(call: &Call, value: redis::Value) -> Result<Ret, String> {
    use redis::Value as V;
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| format!("{UNEXPECTED}: not UTF-8"));
    match (call, value) {
        (Call::Get, V::Nil) => Ok(Ret::Value(None)),
        (Call::Get, V::BulkString(b)) => Ok(Ret::Value(Some(text(b)?))),
        (Call::Set(_) | Call::SetPx(..) | Call::Fill(_), V::Okay) => Ok(Ret::Done),
        (Call::SetNx(_), V::Okay) => Ok(Ret::Flag(true)),
        (Call::SetNx(_), V::Nil) => Ok(Ret::Flag(false)),
        (Call::Del | Call::Incr | Call::Append(_), V::Int(n)) => Ok(Ret::Int(n)),
        (Call::ReadCounter, V::Nil) => Ok(Ret::Int(0)),
        (Call::ReadCounter, V::BulkString(b)) => {
            let t = text(b)?;
            t.parse().map(Ret::Int).map_err(|_| format!("{UNEXPECTED}: {t:?} is not a counter"))
        }
        (Call::ReadList, V::Array(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    V::BulkString(b) => list.push(pack(&text(b)?)),
                    other => return Err(format!("{UNEXPECTED}: list item {other:?}")),
                }
            }
            Ok(Ret::List(list))
        }
        (call, other) => Err(format!("{UNEXPECTED} to {call}: {other:?}")),
    }
}
