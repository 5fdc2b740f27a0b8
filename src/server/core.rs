//! The write path on the active: stamps entries with time and seed, keeps memory
//! within `maxmemory` (refusing or evicting before a write is logged), applies
//! entries to the store, serves clients blocked on keys, and publishes keyspace
//! events. Everything here runs under one lock around the state machine.
//!
//! Replication (the Fast Restart and high-availability issues) replaces the direct
//! `store.apply` calls here with proposals to the stripe's log; the decisions made
//! before an entry exists (time, seed, OOM, eviction victims) stay on the active.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::sync::oneshot;

use super::settings::{EvictionPolicy, Settings};
use crate::commands::{args::ERR_OOM, flags, CommandSpec};
use crate::limits;
use crate::memory;
use crate::protocol::reply::Reply;
use crate::store::{Entry, KeyEvent, Op, Store};

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

struct Waiter {
    args: Vec<Bytes>,
    keys: Vec<Bytes>,
    tx: oneshot::Sender<Reply>,
}

/// Clients blocked on keys (BLPOP & co), served first come first served per key.
#[derive(Default)]
struct Blocking {
    next_id: u64,
    by_key: HashMap<Bytes, VecDeque<u64>>,
    waiters: HashMap<u64, Waiter>,
}

impl Blocking {
    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.waiters.remove(&id)?;
        for key in &waiter.keys {
            if let Some(queue) = self.by_key.get_mut(key) {
                queue.retain(|w| *w != id);
                if queue.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
        Some(waiter)
    }
}

/// The state machine and what must change atomically with it.
pub struct Core {
    pub store: Store,
    blocking: Blocking,
    last_time_ms: u64,
    rng: Xoshiro256PlusPlus,
}

/// Events a batch produced, to publish once the lock is released.
pub type Events = Vec<KeyEvent>;

impl Core {
    pub fn new(store: Store) -> Core {
        Core { store, blocking: Blocking::default(), last_time_ms: 0, rng: Xoshiro256PlusPlus::seed_from_u64(wall_ms() ^ std::process::id() as u64) }
    }

    /// The time for the next entry: the wall clock, never earlier than the last
    /// entry's, so expiry decisions never go backwards.
    pub fn stamp(&mut self) -> u64 {
        self.last_time_ms = self.last_time_ms.max(wall_ms());
        self.last_time_ms
    }

    pub fn rng(&mut self) -> &mut Xoshiro256PlusPlus {
        &mut self.rng
    }

    /// Applies `ops` as one entry; collects events and serves blocked clients.
    fn apply_ops(&mut self, ops: Vec<Op>, events: &mut Events) -> Vec<Reply> {
        let entry = Entry { time_ms: self.stamp(), seed: self.rng.next_u64(), ops };
        let applied = self.store.apply(&entry);
        events.extend(applied.events);
        if !applied.ready_keys.is_empty() && !self.blocking.waiters.is_empty() {
            self.serve_blocked(applied.ready_keys, events);
        }
        applied.replies
    }

    /// Runs a batch of store commands (no blocking ones): consecutive writes become one
    /// entry; reads run in place, seeing every write before them.
    pub fn execute(&mut self, batch: &[(&'static CommandSpec, Vec<Bytes>)], settings: &Settings, events: &mut Events) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(batch.len());
        let mut pending: Vec<Op> = Vec::new();
        for (spec, args) in batch {
            if !spec.is_write() {
                if !pending.is_empty() {
                    replies.extend(self.apply_ops(std::mem::take(&mut pending), events));
                }
                let now = self.stamp();
                replies.push(self.store.read(args, now, &mut self.rng));
                continue;
            }
            if spec.has(flags::DENYOOM) && over_maxmemory(settings) {
                if !pending.is_empty() {
                    replies.extend(self.apply_ops(std::mem::take(&mut pending), events));
                }
                if let Err(oom) = self.make_room(settings, events) {
                    replies.push(oom);
                    continue;
                }
            }
            pending.push(Op::Command(args.clone()));
        }
        if !pending.is_empty() {
            replies.extend(self.apply_ops(pending, events));
        }
        replies
    }

    /// Runs a blocking command: its reply now, or a receiver that gets it when a key
    /// it waits on gains data. Registration happens under the same lock as the check,
    /// so no push can slip between them.
    pub fn execute_blocking(&mut self, args: Vec<Bytes>, keys: Vec<Bytes>, events: &mut Events) -> Result<Reply, (u64, oneshot::Receiver<Reply>)> {
        let reply = self.apply_ops(vec![Op::Command(args.clone())], events).pop().unwrap_or(Reply::Nil);
        if reply != Reply::WouldBlock {
            return Ok(reply);
        }
        let (tx, rx) = oneshot::channel();
        let id = self.blocking.next_id;
        self.blocking.next_id += 1;
        for key in &keys {
            self.blocking.by_key.entry(key.clone()).or_default().push_back(id);
        }
        self.blocking.waiters.insert(id, Waiter { args, keys, tx });
        Err((id, rx))
    }

    /// A blocked client gave up (timeout, disconnect).
    pub fn cancel_blocked(&mut self, id: u64) {
        self.blocking.remove(id);
    }

    pub fn blocked_clients(&self) -> usize {
        self.blocking.waiters.len()
    }

    /// MULTI … EXEC as one entry; `None` when a watched key changed (EXEC replies nil).
    pub fn execute_transaction(&mut self, cmds: Vec<Vec<Bytes>>, watch_ok: bool, settings: &Settings, events: &mut Events) -> Result<Reply, Reply> {
        if !watch_ok {
            return Ok(Reply::NilArray);
        }
        let needs_room = cmds.iter().any(|a| a.first().and_then(|n| crate::commands::lookup(n)).is_some_and(|s| s.has(flags::DENYOOM)));
        if needs_room && over_maxmemory(settings) {
            self.make_room(settings, events)?;
        }
        Ok(self.apply_ops(vec![Op::Transaction(cmds)], events).pop().unwrap_or(Reply::NilArray))
    }

    /// Wakes blocked clients whose keys gained data, oldest first, re-running their
    /// command as a new entry. Bounded: each waiter is tried at most once per key
    /// signal, and a serve can signal further keys (BLMOVE) up to a fixed budget.
    fn serve_blocked(&mut self, ready: Vec<Bytes>, events: &mut Events) {
        let mut queue: VecDeque<Bytes> = VecDeque::new();
        let mut seen = HashSet::new();
        for key in ready {
            if seen.insert(key.clone()) {
                queue.push_back(key);
            }
        }
        let mut budget = self.blocking.waiters.len() * 4 + 16;
        while let Some(key) = queue.pop_front() {
            while budget > 0 {
                budget -= 1;
                let Some(&id) = self.blocking.by_key.get(&key).and_then(|q| q.front()) else { break };
                let Some(args) = self.blocking.waiters.get(&id).map(|w| w.args.clone()) else { break };
                let entry = Entry { time_ms: self.stamp(), seed: self.rng.next_u64(), ops: vec![Op::Command(args)] };
                let mut applied = self.store.apply(&entry);
                let reply = applied.replies.pop().unwrap_or(Reply::Nil);
                if reply == Reply::WouldBlock {
                    break;
                }
                events.extend(applied.events);
                for more in applied.ready_keys {
                    queue.push_back(more);
                }
                if let Some(waiter) = self.blocking.remove(id) {
                    let _ = waiter.tx.send(reply);
                }
            }
        }
    }

    /// Active expiry: deletes keys whose time has come, as entries of their own.
    /// Returns how many keys were removed.
    pub fn expire_due(&mut self, events: &mut Events) -> usize {
        let now = self.stamp();
        let due = self.store.db.due_keys(now, limits::EXPIRE_KEYS_PER_ENTRY_MAX);
        if due.is_empty() {
            return 0;
        }
        let mut args = Vec::with_capacity(due.len() + 1);
        args.push(Bytes::from_static(b"tandem.expired"));
        args.extend(due.iter().map(|k| Bytes::copy_from_slice(k)));
        let count = due.len();
        self.apply_ops(vec![Op::Command(args)], events);
        count
    }

    /// Evicts keys per `maxmemory-policy` until memory is under the limit.
    /// `Err(OOM)` when the policy is noeviction or nothing is left to evict.
    pub fn make_room(&mut self, settings: &Settings, events: &mut Events) -> Result<(), Reply> {
        let policy = settings.policy();
        if policy == EvictionPolicy::NoEviction {
            return Err(Reply::err(ERR_OOM));
        }
        // Bounded: each round evicts up to EVICT_KEYS_PER_ENTRY_MAX keys.
        for _ in 0..1024 {
            if !over_maxmemory(settings) {
                return Ok(());
            }
            let victims = self.pick_victims(policy, settings.maxmemory_samples.load(Ordering::Relaxed));
            if victims.is_empty() {
                return Err(Reply::err(ERR_OOM));
            }
            let mut args = vec![Bytes::from_static(b"tandem.evict")];
            args.extend(victims);
            self.apply_ops(vec![Op::Command(args)], events);
        }
        if over_maxmemory(settings) {
            Err(Reply::err(ERR_OOM))
        } else {
            Ok(())
        }
    }

    /// Chooses keys to evict: the best of `samples` random candidates per victim
    /// (Redis's approximated LRU/LFU), or the nearest expiry for volatile-ttl.
    fn pick_victims(&mut self, policy: EvictionPolicy, samples: usize) -> Vec<Bytes> {
        let now = self.stamp();
        let db = &self.store.db;
        let mut victims = Vec::new();
        if policy == EvictionPolicy::VolatileTtl {
            return db.expires_iter().take(limits::EVICT_KEYS_PER_ENTRY_MAX.min(8)).map(|(_, k)| Bytes::copy_from_slice(k)).collect();
        }
        let len = db.len();
        if len == 0 {
            return victims;
        }
        let mut chosen = HashSet::new();
        for _ in 0..8 {
            let mut best: Option<(u64, usize)> = None;
            let mut tries = 0;
            let mut sampled = 0;
            while sampled < samples.max(1) && tries < samples.max(1) * 20 {
                tries += 1;
                let index = (self.rng.next_u64() % len as u64) as usize;
                let Some((_, item)) = db.get_index(index) else { continue };
                if policy.volatile() && item.expire_at_ms == 0 {
                    continue;
                }
                sampled += 1;
                let score = match policy {
                    EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru => item.idle_seconds(now),
                    EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu => 255 - item.lfu_counter(now) as u64,
                    _ => 0,
                };
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, index));
                }
            }
            if let Some((_, index)) = best {
                if chosen.insert(index) {
                    if let Some((key, _)) = db.get_index(index) {
                        victims.push(Bytes::copy_from_slice(key));
                    }
                }
            }
        }
        if victims.is_empty() && policy.volatile() {
            // Few volatile keys among many: take them from the expiry index instead.
            victims = db.expires_iter().take(8).map(|(_, k)| Bytes::copy_from_slice(k)).collect();
        }
        victims
    }
}

/// True when a memory limit is set and used memory is above it.
pub fn over_maxmemory(settings: &Settings) -> bool {
    let max = settings.maxmemory_bytes.load(Ordering::Relaxed);
    max > 0 && memory::used_bytes() as u64 > max
}
