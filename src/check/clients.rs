//! The clients of a run: each a thread with its own connections (the `redis` crate's
//! blocking API), issuing operations with unique values on a small set of keys —
//! registers, counters and lists — and recording each with its invocation and
//! completion times.
//!
//! A client sends to its home server; after an error it sends the next operation to
//! the next server, then goes home again. So clients of a server that is down still
//! make progress, and clients of a server cut off from the others keep talking to it
//! (which is how stale reads would show).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::history::{classify, pack, Call, Op, Outcome, Ret};

/// The keys every client works on. Each kind has its own keys, so no command ever
/// meets a key of the wrong type.
#[derive(Clone, Debug)]
pub struct Keys {
    pub registers: Vec<String>,
    pub counters: Vec<String>,
    /// Lists: each name takes a new key every [`LIST_GENERATION`] (`list:0:7` is the
    /// eighth of `list:0`).
    pub lists: Vec<String>,
}

/// How long the clients append to one list key before they move to the next: every
/// read returns the whole list, and a list that grew for the whole run would make
/// reads (and the history) quadratic. Every key is read again after healing, so a
/// lost append is caught whenever it happened.
pub const LIST_GENERATION: Duration = Duration::from_secs(2);

impl Default for Keys {
    fn default() -> Keys {
        let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect();
        Keys { registers: names("register:", 5), counters: names("counter:", 2), lists: names("list:", 3) }
    }
}

/// How long a client waits to connect, and for a reply. A reply that does not come
/// in time leaves the operation unknown.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The pause after an error before the next operation, so a client facing a dead
/// server does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(25);

pub struct Client {
    pub id: usize,
    /// redis:// URLs of the servers, by server index.
    pub urls: Vec<String>,
    pub home: usize,
    pub keys: Keys,
    /// Seeds the choice of operations (not their timing).
    pub seed: u64,
    /// Time zero of the history.
    pub epoch: Instant,
    /// Stop when set, at `until`, or after `ops_max` operations.
    pub stop: Arc<AtomicBool>,
    pub until: Instant,
    pub ops_max: usize,
}

impl Client {
    /// Runs until told to stop; the client's history.
    pub fn run(self) -> Vec<Op> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed ^ (self.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut conns: Vec<Option<redis::Connection>> = self.urls.iter().map(|_| None).collect();
        let mut detour: Option<usize> = None;
        let mut history = Vec::new();
        let mut n = 0usize;
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < self.until && n < self.ops_max {
            let server = detour.unwrap_or(self.home);
            let (key, call) = self.choose(&mut rng, n);
            n += 1;
            if conns[server].is_none() {
                match connect(&self.urls[server]) {
                    Ok(c) => conns[server] = Some(c),
                    Err(_) => {
                        detour = self.next_after(server);
                        std::thread::sleep(ERROR_PAUSE);
                        continue;
                    }
                }
            }
            let Some(con) = conns[server].as_mut() else { continue };
            let invoke_ns = self.now_ns();
            let outcome = execute(con, &key, &call);
            let complete_ns = self.now_ns();
            let failed = !matches!(outcome, Outcome::Ok(_));
            history.push(Op { client: self.id, server, key, call, outcome, invoke_ns, complete_ns });
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

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The server to try after `server` failed; None for home.
    fn next_after(&self, server: usize) -> Option<usize> {
        let next = (server + 1) % self.urls.len();
        (next != self.home).then_some(next)
    }

    /// The next operation: half on registers, a quarter each on counters and lists.
    fn choose(&self, rng: &mut Xoshiro256PlusPlus, n: usize) -> (String, Call) {
        let mut below = |k: usize| (rng.next_u64() % k.max(1) as u64) as usize;
        let value = format!("{}-{n}", self.id);
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
}

pub fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    let con = redis::Client::open(url)?.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(REPLY_TIMEOUT))?;
    con.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(con)
}

/// Sends `call` on `key` and reads what came back.
pub fn execute(con: &mut redis::Connection, key: &str, call: &Call) -> Outcome {
    let mut cmd = match call {
        Call::Get | Call::ReadCounter => redis::cmd("GET"),
        Call::Set(_) | Call::SetNx(_) => redis::cmd("SET"),
        Call::Del => redis::cmd("DEL"),
        Call::Incr => redis::cmd("INCR"),
        Call::Append(_) => redis::cmd("RPUSH"),
        Call::ReadList => redis::cmd("LRANGE"),
    };
    cmd.arg(key);
    match call {
        Call::Set(v) | Call::Append(v) => {
            cmd.arg(v);
        }
        Call::SetNx(v) => {
            cmd.arg(v).arg("NX");
        }
        Call::ReadList => {
            cmd.arg(0).arg(-1);
        }
        _ => {}
    }
    match cmd.query::<redis::Value>(con) {
        Ok(value) => match interpret(call, value) {
            Ok(ret) => Outcome::Ok(ret),
            Err(unexpected) if call.is_write() => Outcome::Unknown(unexpected),
            Err(unexpected) => Outcome::Fail(unexpected),
        },
        Err(e) => classify(call, &e),
    }
}

/// Marks replies that no Redis server would give to the call; the checks count them.
pub const UNEXPECTED: &str = "unexpected reply";

fn interpret(call: &Call, value: redis::Value) -> Result<Ret, String> {
    use redis::Value as V;
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| format!("{UNEXPECTED}: not UTF-8"));
    match (call, value) {
        (Call::Get, V::Nil) => Ok(Ret::Value(None)),
        (Call::Get, V::BulkString(b)) => Ok(Ret::Value(Some(text(b)?))),
        (Call::Set(_), V::Okay) => Ok(Ret::Done),
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
