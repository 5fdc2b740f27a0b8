//! The write path on the active: stamps entries with time and seed, keeps memory
//! within `maxmemory` (refusing or evicting before a write is logged), proposes
//! entries to the stripe's Raft log and returns their replies once committed and
//! applied, and serves linearizable reads from the local state machine.
//!
//! Decisions that need a clock, randomness or local metadata (time stamps, seeds,
//! OOM, eviction victims, which keys are due to expire, WATCH checks) are made here,
//! before an entry exists; the entry itself applies deterministically everywhere.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::admit::Memory;
use super::request::Request;
use super::settings::{EvictionPolicy, Settings};
use crate::commands::{args::ERR_OOM, flags};
use crate::limits;
use crate::memory;
use crate::protocol::reply::Reply;
use crate::replication::replica::Replica;
use crate::scripting::{self, status::KillOutcome, Status};
use crate::store::db::WatchStamp;
use crate::store::{Entry, Op, Store};

/// Wall-clock milliseconds since the Unix epoch (plus the test clock offset, when
/// `TANDEM_TEST_CLOCK_OFFSET_FILE` is set: see [`TestClockOffset`]).
pub fn wall_ms() -> u64 {
    let system_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    match test_clock_offset() {
        Some(offset) => system_ms.saturating_add_signed(offset.offset_ms(Instant::now())),
        None => system_ms,
    }
}

/// Names a file whose content, a signed number of milliseconds, is added to this
/// server's wall clock. Test-only: the fault harness (`tandem check`) sets servers'
/// clocks apart and steps them, backwards too, without touching the machine's clock.
pub const TEST_CLOCK_OFFSET_FILE_ENV: &str = "TANDEM_TEST_CLOCK_OFFSET_FILE";

/// How long a read of the offset file is used before the file is read again:
/// `wall_ms` is on every request's path, a file read is not cheap.
const TEST_CLOCK_OFFSET_REREAD: Duration = Duration::from_millis(10);

fn test_clock_offset() -> Option<&'static TestClockOffset> {
    static OFFSET: OnceLock<Option<TestClockOffset>> = OnceLock::new();
    OFFSET
        .get_or_init(|| {
            let path = std::env::var_os(TEST_CLOCK_OFFSET_FILE_ENV)?;
            tracing::warn!(
                file = %std::path::Path::new(&path).display(),
                "{TEST_CLOCK_OFFSET_FILE_ENV} is set: this server's wall clock is shifted by the milliseconds in that file (for tests only)"
            );
            Some(TestClockOffset::new(path.into()))
        })
        .as_ref()
}

/// The test clock offset: the file's number (missing or unparsable: 0), cached with
/// the time it was read. Monotonic timers (`Instant`, tokio) are not affected.
struct TestClockOffset {
    path: std::path::PathBuf,
    /// (when read, what it said).
    cached: Mutex<Option<(Instant, i64)>>,
}

impl TestClockOffset {
    fn new(path: std::path::PathBuf) -> TestClockOffset {
        TestClockOffset { path, cached: Mutex::new(None) }
    }

    fn offset_ms(&self, now: Instant) -> i64 {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        match *cached {
            Some((read_at, offset)) if now.saturating_duration_since(read_at) < TEST_CLOCK_OFFSET_REREAD => offset,
            _ => {
                let offset = std::fs::read_to_string(&self.path).ok().and_then(|t| t.trim().parse::<i64>().ok()).unwrap_or(0);
                *cached = Some((now, offset));
                offset
            }
        }
    }
}

/// How the reads of a batch are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// After one linearizability check for the batch (the active's reads).
    Linearizable,
    /// From the local state machine as it is, possibly behind the active: what a
    /// client asked for with `READONLY` on a mirror.
    Stale,
}

/// The shortest time a connection waits for a write's reply before answering that
/// its outcome is unknown: long enough for a commit under load.
const WRITE_WAIT_MIN: Duration = Duration::from_secs(5);

/// How long a connection waits for a write to be committed and applied: at least
/// `WRITE_WAIT_MIN`, and four election times, so an election in the middle of a
/// commit does not fail the write. Past it, an active that was deposed or cut off
/// from its stripe has the client told so instead of keeping it waiting forever.
pub fn write_wait(election_time: Duration) -> Duration {
    WRITE_WAIT_MIN.max(election_time.saturating_mul(4))
}

/// The reply to a write whose commit was not confirmed within [`write_wait`].
pub const ERR_WRITE_UNCONFIRMED: &str = "TRYAGAIN the write was not confirmed in time; its outcome is unknown";

pub struct Core {
    pub replica: Replica,
    /// Proposals hold it shared while in flight; EXEC with WATCH holds it exclusively,
    /// so its check sees every earlier write applied and no later one.
    gate: tokio::sync::RwLock<()>,
    /// The script running in the store now, if any (scripting).
    pub scripts: Arc<Status>,
}

impl Core {
    pub fn new(replica: Replica) -> Core {
        let scripts = replica.store.lock().unwrap_or_else(|e| e.into_inner()).script_status();
        Core { replica, gate: tokio::sync::RwLock::new(()), scripts }
    }

    /// The state machine, for reads and introspection. std Mutex: never held across
    /// `.await`. While a script runs (on a blocking thread) this waits for it: the hot
    /// paths use [`Core::store_async`] instead, which yields.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.replica.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state machine, waiting without blocking the runtime while a script holds it
    /// (scripting): `Err(-BUSY)` once that script has run past the busy threshold.
    pub async fn store_async(&self) -> Result<MutexGuard<'_, Store>, Reply> {
        loop {
            if self.scripts.running() {
                if !self.scripts.wait_idle().await {
                    return Err(self.busy_reply());
                }
                continue;
            }
            {
                let attempt = match self.replica.store.try_lock() {
                    Ok(guard) => Some(guard),
                    Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                    // Held by an apply on another thread: a script (noticed above on the
                    // next turn) or a short entry (with --threads > 1); look again.
                    Err(std::sync::TryLockError::WouldBlock) => None,
                };
                if let Some(guard) = attempt {
                    return Ok(guard);
                }
            }
            tokio::task::yield_now().await;
        }
    }

    pub fn busy_reply(&self) -> Reply {
        Reply::err(if self.scripts.is_function() { scripting::ERR_BUSY_FUNCTION } else { scripting::ERR_BUSY_EVAL })
    }

    /// SCRIPT KILL / FUNCTION KILL (see [`Status::request_kill`] for what may be killed).
    pub fn kill_script(&self, function: bool) -> Reply {
        match self.scripts.request_kill(function) {
            KillOutcome::Killed => Reply::ok(),
            KillOutcome::NotBusy => Reply::err(scripting::ERR_NOT_BUSY),
            KillOutcome::WrongKind if function => Reply::err(scripting::ERR_BUSY_EVAL),
            KillOutcome::WrongKind => Reply::err(scripting::ERR_BUSY_FUNCTION),
            KillOutcome::Wrote => Reply::err(scripting::ERR_UNKILLABLE_WROTE),
            KillOutcome::Replicated => Reply::err(scripting::ERR_UNKILLABLE_REPLICATED),
        }
    }

    fn clock(&self) -> MutexGuard<'_, crate::replication::replica::Clock> {
        self.replica.clock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time for the next entry or read: the wall clock, never earlier than the
    /// last one, so expiry decisions never go backwards.
    pub fn stamp(&self) -> u64 {
        self.clock().stamp()
    }

    fn entry(&self, ops: Vec<Op>) -> Entry {
        self.clock().entry(ops)
    }

    pub fn random(&self) -> u64 {
        self.clock().random()
    }

    /// Proposes `ops` as one entry; one reply per op, or one error for all.
    pub async fn propose(&self, ops: Vec<Op>) -> Result<Vec<Reply>, Reply> {
        // Disk trouble answers at once, never queued behind an EXEC waiting at the gate.
        self.replica.refuse_if_disk_trouble()?;
        let _shared = self.gate.read().await;
        self.bounded(self.replica.submit(ops)).await
    }

    /// Waits for a write's outcome, for at most [`write_wait`].
    async fn bounded(&self, write: impl std::future::Future<Output = Result<Vec<Reply>, Reply>>) -> Result<Vec<Reply>, Reply> {
        match tokio::time::timeout(write_wait(self.replica.election_time()), write).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Reply::err(ERR_WRITE_UNCONFIRMED)),
        }
    }

    async fn flush(&self, pending: &mut Vec<Op>, replies: &mut Vec<Reply>) {
        if pending.is_empty() {
            return;
        }
        let count = pending.len();
        match self.propose(std::mem::take(pending)).await {
            Ok(r) => replies.extend(r),
            Err(e) => replies.extend(std::iter::repeat_n(e, count)),
        }
    }

    /// Runs a batch of store commands (no blocking ones): consecutive writes become one
    /// entry; reads run in place after one linearizability check for the batch (none
    /// with [`Reads::Stale`]), and see every write before them. A write that may grow
    /// the data makes room first when memory is full (the rule is `admit::Memory`'s).
    pub async fn execute(&self, batch: &[Request], memory: &Memory<'_>, reads: Reads) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(batch.len());
        let mut pending: Vec<Op> = Vec::new();
        let mut linearized: Option<Result<(), Reply>> = None;
        // Reads may pick at random (SRANDMEMBER…): one generator per batch.
        let mut rng: Option<Xoshiro256PlusPlus> = None;
        let mut i = 0;
        while i < batch.len() {
            let Request { spec, args, .. } = &batch[i];
            if !spec.is_write() {
                self.flush(&mut pending, &mut replies).await;
                if linearized.is_none() {
                    linearized = Some(match reads {
                        Reads::Linearizable => self.replica.linearize().await,
                        Reads::Stale => Ok(()),
                    });
                }
                // A run of consecutive reads: one time stamp, one store lock.
                let end = batch[i..].iter().position(|r| r.spec.is_write()).map_or(batch.len(), |n| i + n);
                match &linearized {
                    Some(Err(e)) => replies.extend(std::iter::repeat_n(e.clone(), end - i)),
                    _ if batch[i..end].iter().any(|r| r.spec.has(flags::SCRIPT)) => {
                        // Read-only scripts may run long: off the runtime thread (scripting).
                        replies.extend(self.read_scripts(&batch[i..end]).await);
                    }
                    _ => {
                        let now = self.stamp();
                        let rng = rng.get_or_insert_with(|| Xoshiro256PlusPlus::seed_from_u64(self.random()));
                        match self.store_async().await {
                            Ok(store) => replies.extend(batch[i..end].iter().map(|r| store.read(r.spec, &r.args, now, rng))),
                            Err(busy) => replies.extend(std::iter::repeat_n(busy, end - i)),
                        }
                    }
                }
                i = end;
                continue;
            }
            i += 1;
            if memory.needs_room(spec) {
                self.flush(&mut pending, &mut replies).await;
                if let Err(oom) = self.make_room(memory.settings).await {
                    replies.push(oom);
                    continue;
                }
            }
            if spec.has(flags::SCRIPT) && memory.full() {
                // Scripting: the OOM decision travels in the entry, so every server fails
                // the script's deny-oom commands alike.
                self.flush(&mut pending, &mut replies).await;
                if self.make_room(memory.settings).await.is_err() {
                    pending.push(Op::command(&crate::commands::scripting::oom_marked(args)));
                    continue;
                }
            }
            pending.push(Op::command(args));
        }
        self.flush(&mut pending, &mut replies).await;
        replies
    }

    /// A run of reads with read-only scripts (EVAL_RO, FCALL_RO): on a blocking thread,
    /// so a long one neither stalls the runtime nor escapes SCRIPT KILL.
    async fn read_scripts(&self, run: &[Request]) -> Vec<Reply> {
        let count = run.len();
        if let Err(busy) = self.store_async().await.map(drop) {
            return vec![busy; count];
        }
        let owned: Vec<(&'static crate::commands::CommandSpec, Vec<Bytes>)> = run.iter().map(|r| (r.spec, r.args.clone())).collect();
        let store = self.replica.store.clone();
        let (now, seed) = (self.stamp(), self.random());
        let reads = tokio::task::spawn_blocking(move || {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let store = store.lock().unwrap_or_else(|e| e.into_inner());
            owned.iter().map(|(spec, args)| store.read(spec, args, now, &mut rng)).collect::<Vec<_>>()
        });
        reads.await.unwrap_or_else(|_| vec![Reply::err("ERR the script's thread failed"); count])
    }

    /// MULTI … EXEC as one entry. With watched keys, the check and the proposal happen
    /// with no other write in flight: EXEC replies nil if a watched key changed.
    pub async fn execute_transaction(
        &self,
        cmds: &[Request],
        watches: &[(Bytes, WatchStamp)],
        memory: &Memory<'_>,
    ) -> Result<Reply, Reply> {
        if cmds.iter().any(|r| memory.needs_room(r.spec)) {
            self.make_room(memory.settings).await?;
        }
        let op = Op::Transaction(cmds.iter().map(|r| crate::store::compact(&r.args)).collect());
        let replies = if watches.is_empty() {
            self.propose(vec![op]).await?
        } else {
            self.replica.refuse_if_disk_trouble()?;
            let _exclusive = self.gate.write().await;
            let unchanged = {
                let store = self.store_async().await?;
                watches.iter().all(|(k, stamp)| store.db.watch_holds(k, *stamp))
            };
            if !unchanged {
                return Ok(Reply::NilArray);
            }
            self.bounded(self.replica.propose(self.entry(vec![op]))).await?
        };
        Ok(replies.into_iter().next().unwrap_or(Reply::NilArray))
    }

    /// Active expiry: deletes keys whose time has come, as one entry. Returns how many
    /// keys were due. Only the active calls it (the expiry cycle asks the cluster view);
    /// a mirror never expires keys itself.
    pub async fn expire_due(&self) -> usize {
        let now = self.stamp();
        let due = match self.store_async().await {
            Ok(store) => store.db.due_keys(now, limits::EXPIRE_KEYS_PER_ENTRY_MAX),
            Err(_) => return 0,
        };
        if due.is_empty() {
            return 0;
        }
        let count = due.len();
        let mut args = Vec::with_capacity(count + 1);
        args.push(Bytes::from_static(b"tandem.expired"));
        args.extend(due.iter().map(|k| Bytes::copy_from_slice(k)));
        if let Err(e) = self.propose(vec![Op::Command(args)]).await {
            tracing::debug!(error = ?e, "expiry entry not written");
            return 0;
        }
        count
    }

    /// Evicts keys per `maxmemory-policy` until memory is under the limit. Called on
    /// the local write path, which routing sends only to the active: eviction is an
    /// entry only the active proposes, and a mirror's memory follows its decisions.
    /// `Err(OOM)` when the policy is noeviction or nothing is left to evict.
    pub async fn make_room(&self, settings: &Settings) -> Result<(), Reply> {
        let policy = settings.policy();
        if policy == EvictionPolicy::NoEviction {
            return Err(Reply::err(ERR_OOM));
        }
        // Bounded: each round evicts a handful of keys.
        for _ in 0..1024 {
            if !over_maxmemory(settings, self.replica.log.memory_bytes()) {
                return Ok(());
            }
            let victims = self.pick_victims(policy, settings.maxmemory_samples.load(Ordering::Relaxed));
            if victims.is_empty() {
                return Err(Reply::err(ERR_OOM));
            }
            let mut args = vec![Bytes::from_static(b"tandem.evict")];
            args.extend(victims);
            self.propose(vec![Op::Command(args)]).await?;
        }
        if over_maxmemory(settings, self.replica.log.memory_bytes()) {
            Err(Reply::err(ERR_OOM))
        } else {
            Ok(())
        }
    }

    /// Chooses keys to evict: the best of `samples` random candidates per victim
    /// (Redis's approximated LRU/LFU), or the nearest expiry for volatile-ttl.
    fn pick_victims(&self, policy: EvictionPolicy, samples: usize) -> Vec<Bytes> {
        let now = self.stamp();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.random());
        let store = self.store();
        let db = &store.db;
        if policy == EvictionPolicy::VolatileTtl {
            return db.expires_iter().take(8).map(|(_, k)| Bytes::copy_from_slice(k)).collect();
        }
        let len = db.len();
        let mut victims = Vec::new();
        if len == 0 {
            return victims;
        }
        let mut chosen = HashSet::new();
        for _ in 0..8 {
            let mut best: Option<(u64, usize)> = None;
            let (mut tries, mut sampled) = (0, 0);
            while sampled < samples.max(1) && tries < samples.max(1) * 20 {
                tries += 1;
                let index = (rng.next_u64() % len as u64) as usize;
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

/// True when a memory limit is set and the memory data uses is above it. The Raft
/// log's entries are not data: they are bounded by snapshots and purges instead.
pub fn over_maxmemory(settings: &Settings, log_bytes: usize) -> bool {
    let max = settings.maxmemory_bytes.load(Ordering::Relaxed);
    max > 0 && memory::used_bytes().saturating_sub(log_bytes) as u64 > max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_offset_is_read_from_its_file_and_cached_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = TestClockOffset::new(path.clone());
        let t0 = Instant::now();
        assert_eq!(clock.offset_ms(t0), 0, "a missing file is no offset");
        std::fs::write(&path, "-1500\n").unwrap();
        assert_eq!(clock.offset_ms(t0 + Duration::from_millis(5)), 0, "read again only after the re-read interval");
        assert_eq!(clock.offset_ms(t0 + TEST_CLOCK_OFFSET_REREAD), -1500, "a step backwards");
        std::fs::write(&path, "2500").unwrap();
        assert_eq!(clock.offset_ms(t0 + 2 * TEST_CLOCK_OFFSET_REREAD), 2500);
        std::fs::write(&path, "soon").unwrap();
        assert_eq!(clock.offset_ms(t0 + 3 * TEST_CLOCK_OFFSET_REREAD), 0, "an unparsable file is no offset");
    }
}
