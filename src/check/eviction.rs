//! The eviction run (`Options::evict`: `maxmemory-policy volatile-*` with a small
//! `data-storage`, large volatile fillers) and its check: a key with no time to live
//! is never evicted.
//!
//! The policy is a server setting (`CONFIG SET`) that a restarted server forgets, so
//! [`PolicyKeeper`] sets it again on every server that does not have it.
//!
//! Each key is one client's: it is set with a time to live (volatile: it may be
//! evicted), then set again without one (persistent: a volatile-* policy must never
//! touch it), then read. A read after an acknowledged plain SET returns that SET's
//! value; nil means the key was evicted although it was persistent (or lost). The
//! client moves to a new key after an unknown outcome, so no late write hides in a
//! key's history.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::clients;
use super::history::{Call, Op, Outcome, Ret};
use super::Violation;

/// `data-storage` of every server in an eviction run: small, so the fillers pass it
/// within seconds, yet above what an idle server counts as used (about 28 MB at
/// e66709c: buffers and Raft state), or every write would be refused at once.
pub const EVICT_DATA_STORAGE: &str = "64m";

/// How often the keeper looks at every server's policy.
const POLICY_POLL: Duration = Duration::from_millis(200);

/// Keeps `maxmemory-policy` set on every server until dropped.
pub struct PolicyKeeper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PolicyKeeper {
    pub fn start(urls: Vec<String>, policy: String) -> PolicyKeeper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for url in &urls {
                    ensure_policy(url, &policy);
                }
                std::thread::sleep(POLICY_POLL);
            }
        });
        PolicyKeeper { stop, thread: Some(thread) }
    }
}

impl Drop for PolicyKeeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sets the policy on the server at `url` unless it has it (a server that does not
/// answer is tried again next time).
fn ensure_policy(url: &str, policy: &str) {
    let Ok(mut con) = clients::connect(url) else { return };
    let now: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query(&mut con);
    if now.is_ok_and(|pair| pair.get(1).map(String::as_str) != Some(policy)) {
        let _: redis::RedisResult<()> = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg(policy).query(&mut con);
    }
}

/// `evicted_keys` of `INFO stats` on the server at `url`.
pub fn evicted_keys(url: &str) -> Option<u64> {
    let mut con = clients::connect(url).ok()?;
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con).ok()?;
    info.lines().find_map(|l| l.strip_prefix("evicted_keys:")).and_then(|n| n.trim().parse().ok())
}

/// At most this many violations are reported per run (one per key at most).
const SHOWN_MAX: usize = 5;

/// `by_key`: each evict key with its operations.
pub fn check<'a>(by_key: impl Iterator<Item = (&'a str, Vec<&'a Op>)>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.invoke_ns);
        if let Some(v) = check_key(key, &ops) {
            total += 1;
            if out.len() < SHOWN_MAX {
                out.push(v);
            }
        }
    }
    if total > out.len() {
        let what = format!("{} more evict keys with the same kind of violation", total - out.len());
        out.push(Violation { checker: "eviction", key: String::new(), what, ops: Vec::new() });
    }
    out
}

fn check_key(key: &str, ops: &[&Op]) -> Option<Violation> {
    // The acknowledged plain SET in force, if the last write was one.
    let mut persistent: Option<&Op> = None;
    let mut volatile: Option<&Op> = None;
    for &op in ops {
        match (&op.call, &op.outcome) {
            (Call::Set(_), Outcome::Ok(_)) => persistent = Some(op),
            (Call::SetPx(..), Outcome::Ok(_)) => {
                persistent = None;
                volatile = Some(op);
            }
            // A write that may apply later: nothing more can be said of this key.
            (_, Outcome::Unknown(_)) => return None,
            (Call::Get, Outcome::Ok(Ret::Value(read))) => {
                let Some(w) = persistent else { continue };
                if read.as_deref() == w.call.written() {
                    continue;
                }
                let what = match read {
                    None => "evicted although it had no time to live: a plain SET (acknowledged) had made the volatile key persistent, and a later GET found it gone".to_string(),
                    Some(v) => format!("read {v:?}, not the value of the acknowledged SET before it"),
                };
                let shown = volatile.into_iter().chain([w, op]).cloned().collect();
                return Some(Violation { checker: "eviction", key: key.to_string(), what, ops: shown });
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, outcome: Outcome, t: u64) -> Op {
        Op { client: 0, server: 0, key: "evict:0:0".into(), call, outcome, invoke_ns: t, complete_ns: t + 1, retried: Vec::new() }
    }

    fn run(ops: &[Op]) -> Vec<String> {
        check([("evict:0:0", ops.iter().collect())].into_iter()).into_iter().map(|v| v.what).collect()
    }

    #[test]
    fn a_volatile_key_may_go_and_a_persistent_one_stays() {
        let ok = |r| Outcome::Ok(r);
        let h = [
            op(Call::SetPx("0-1".into(), 30_000), ok(Ret::Done), 0),
            op(Call::Get, ok(Ret::Value(None)), 2),
            op(Call::Set("0-2".into()), ok(Ret::Done), 4),
            op(Call::Get, ok(Ret::Value(Some("0-2".into()))), 6),
        ];
        assert!(run(&h).is_empty(), "{:?}", run(&h));
    }

    #[test]
    fn an_evicted_persistent_key_is_caught() {
        let ok = |r| Outcome::Ok(r);
        let h = [
            op(Call::SetPx("0-1".into(), 30_000), ok(Ret::Done), 0),
            op(Call::Set("0-2".into()), ok(Ret::Done), 4),
            op(Call::Get, ok(Ret::Value(None)), 6),
        ];
        assert!(run(&h).iter().any(|w| w.contains("evicted although it had no time to live")), "{:?}", run(&h));
    }
}
