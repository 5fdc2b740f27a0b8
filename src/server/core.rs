//! The write path on the active: stamps entries with time and seed, keeps memory
//! within `maxmemory` (refusing or evicting before a write is logged), proposes
//! entries to the stripe's Raft log and returns their replies once committed and
//! applied, and serves linearizable reads from the local state machine.
//!
//! Decisions that need a clock, randomness or local metadata (time stamps, seeds,
//! OOM, eviction victims, which keys are due to expire) are made here, before an
//! entry exists; the entry itself applies deterministically everywhere. Conditions
//! that entries applied in between could falsify (WATCH, eviction victims) travel in
//! the entry and are checked again in apply, where they are exact.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::admit::Memory;
use super::errors::{read_reply, write_reply};
use super::request::Request;
use super::settings::{EvictionPolicy, Settings};
use crate::clock::EntryClock;
use crate::commands::keys::{EVICT_ALLKEYS, EVICT_COMMAND, EVICT_VOLATILE};
use crate::commands::{args::ERR_OOM, flags};
use crate::limits;
use crate::memory;
use crate::protocol::reply::Reply;
use crate::replication::errors::WriteError;
use crate::replication::replica::Replica;
use crate::scripting::{self, status::KillOutcome, Status};
use crate::store::watch::{Watch, WatchStamp};
use crate::store::{ArgArena, Op, Store};

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

/// The timer of a client's writes' wait ([`write_wait`]): one tokio timer, kept by
/// the connection and moved later for each write. A timer made per write costs its
/// registration in the runtime's timer wheel and its removal (a lock each, some
/// hundred instructions); moving a registered timer's deadline later is one atomic
/// step (the wheel finds the later deadline when the earlier one comes).
pub struct WriteTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Default for WriteTimer {
    /// A timer set far ahead (made within the runtime). Once set for a write it stays in
    /// the runtime's timer wheel, and wakes its connection once, for nothing, a
    /// `write_wait` after the last write.
    fn default() -> Self {
        WriteTimer { sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))) }
    }
}

impl WriteTimer {
    /// Ends `wait` from now.
    fn after(&mut self, wait: Duration) -> std::pin::Pin<&mut tokio::time::Sleep> {
        self.sleep.as_mut().reset(tokio::time::Instant::now() + wait);
        self.sleep.as_mut()
    }
}

pub struct Core {
    pub replica: Replica,
    /// The script running in the store now, if any (scripting).
    pub scripts: Arc<Status>,
    /// The stripe's users as last applied here, and this server's ACL LOG.
    pub acl: Arc<crate::acl::View>,
    /// Command and error statistics, the slow log and the latency monitor: kept
    /// here because admission (which counts rejected calls) sees only the core.
    pub stats: super::stats::Stats,
    /// CLIENT PAUSE: what holds this server's clients' commands.
    pub pause: super::pause::Pause,
    /// The client sessions this server's connections are attached to (renewed by
    /// `sessions::keep_alive`).
    pub attached: super::sessions::Attached,
    /// MONITOR is on: scripts' calls keep their arguments (the store's flag).
    pub show_script_calls: Arc<std::sync::atomic::AtomicBool>,
    /// CLIENT TRACKING: who is told when a key changes (`server::tracking`).
    pub tracking: Arc<super::tracking::Tracking>,
}

impl Core {
    pub fn new(replica: Replica) -> Core {
        let (scripts, acl, tracking_on, applied_index, show_script_calls) = {
            let store = replica.store.lock().unwrap_or_else(|e| e.into_inner());
            (
                store.script_status(),
                store.acl_view.clone(),
                store.tracking_on.clone(),
                store.applied_index.clone(),
                store.show_script_calls.clone(),
            )
        };
        Core {
            replica,
            scripts,
            acl,
            stats: super::stats::Stats::default(),
            pause: super::pause::Pause::default(),
            attached: super::sessions::Attached::default(),
            tracking: Arc::new(super::tracking::Tracking::new(tracking_on, applied_index)),
            show_script_calls,
        }
    }

    /// The state machine, for reads and introspection. std Mutex: never held across
    /// `.await`. While a script runs (on a blocking thread) this waits for it: the hot
    /// paths use [`Core::store_async`] instead, which yields.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.replica.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state machine, waiting as long as a script holds it without blocking the
    /// runtime (for the blocking task, which must serve its waiters after the script).
    pub async fn store_after_scripts(&self) -> MutexGuard<'_, Store> {
        scripting::status::lock_after_scripts(&self.replica.store, &self.scripts).await
    }

    /// The state machine, waiting without blocking the runtime while a script holds it
    /// (scripting): `Err(-BUSY)` once that script has run past the busy threshold.
    pub async fn store_async(&self) -> Result<MutexGuard<'_, Store>, Reply> {
        loop {
            if self.scripts.off_thread() {
                // A blocking thread may hold the store for a whole entry of scripts:
                // try it, else sleep until a run lets go (below), waking in time to
                // answer -BUSY.
                if self.scripts.busy() {
                    return Err(self.busy_reply());
                }
            } else if self.scripts.running() {
                if !self.scripts.wait_idle().await {
                    return Err(self.busy_reply());
                }
                continue;
            }
            // Held by an apply on another thread: a script (noticed above on the next
            // turn) or a short entry (with --threads > 1); look again.
            if let Some(guard) = self.try_store() {
                return Ok(guard);
            }
            if self.scripts.off_thread() {
                self.scripts.wait_released(self.scripts.until_busy()).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }

    /// The state machine if nobody holds it now (a poisoned lock is taken as is).
    fn try_store(&self) -> Option<MutexGuard<'_, Store>> {
        match self.replica.store.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// For [`Core::read_now`] and [`Core::write_now`]: the state machine, when `run`
    /// would not wait for anything — no CLIENT PAUSE holds it, no script is on the
    /// store, nobody holds it.
    fn store_now(&self, run: &[Request]) -> Option<MutexGuard<'_, Store>> {
        if self.pause.holds(run.iter().any(|r| super::pause::held_by_write_pause(r.spec, &r.args))) {
            return None;
        }
        if self.scripts.off_thread() || self.scripts.running() {
            return None;
        }
        self.try_store()
    }

    /// Waits, without blocking the runtime, until no script's thread is in flight
    /// ([`Status::may_hold_store`]), for a handler that then locks the store in place
    /// with nothing awaited in between (on the server's one thread no script's thread
    /// can start meanwhile). `Err(-BUSY)` once a script runs past the busy threshold,
    /// or once script threads have kept coming for that long.
    pub async fn scripts_quiet(&self) -> Result<(), Reply> {
        let started = std::time::Instant::now();
        while self.scripts.may_hold_store() {
            if self.scripts.running() {
                self.store_async().await.map(drop)?;
            } else if started.elapsed().as_millis() as u64 >= self.scripts.busy_threshold_ms.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(self.busy_reply());
            } else {
                // A script's thread about to begin its script, or just past its end
                // (or between two scripts of one entry): sleep until it lets go.
                let threshold = std::time::Duration::from_millis(self.scripts.busy_threshold_ms.load(std::sync::atomic::Ordering::Relaxed));
                self.scripts.wait_released(threshold.saturating_sub(started.elapsed()).max(std::time::Duration::from_millis(1))).await;
            }
        }
        Ok(())
    }

    /// FUNCTION STATS while a script past the busy threshold holds the store: a
    /// function is described from its status (as Redis answers during a busy
    /// function); during EVAL the answer is Redis's `-BUSY`, as there.
    fn function_stats_of_running(&self) -> Option<Reply> {
        let running = self.scripts.running_script()?;
        Some(if running.function {
            let (libraries, functions) = (running.libraries, running.functions);
            crate::commands::functions::stats_reply(Some(running), libraries, functions)
        } else {
            Reply::err(scripting::ERR_BUSY_EVAL)
        })
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

    fn clock(&self) -> MutexGuard<'_, EntryClock> {
        self.replica.clock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time for the next entry or read: the wall clock, never earlier than the
    /// last stamp nor than the last entry applied here, so expiry decisions never go
    /// backwards (not across a failover or a restart either).
    pub fn stamp(&self) -> u64 {
        self.clock().stamp()
    }

    pub fn random(&self) -> u64 {
        self.clock().random()
    }

    /// Runs `f` with this thread's generator for reads (SRANDMEMBER, RANDOMKEY, the
    /// LFU counter's coin): seeded once per thread (from the clock of the first server
    /// to read on it), not per run (a seed costs more than a GET's own work). Reads
    /// change no replicated state, so nothing needs their picks to match another
    /// server's.
    fn with_read_rng<T>(&self, f: impl FnOnce(&mut Xoshiro256PlusPlus) -> T) -> T {
        thread_local! {
            static READ_RNG: std::cell::RefCell<Option<Xoshiro256PlusPlus>> = const { std::cell::RefCell::new(None) };
        }
        READ_RNG.with_borrow_mut(|rng| f(rng.get_or_insert_with(|| Xoshiro256PlusPlus::seed_from_u64(self.random()))))
    }

    /// Proposes `ops` as one entry (gathered with other connections' writes); one
    /// reply per op, or one error for all, after at most [`write_wait`].
    ///
    /// An active whose lease is not (yet) confirmed by a majority — the first moments
    /// after its election, a missed heartbeat — appends nothing; the proposal is made
    /// again for up to one election time before the client is told there is no
    /// quorum, so a failover does not show as refused writes.
    pub async fn propose(&self, ops: Vec<Op>) -> Result<Vec<Reply>, WriteError> {
        self.propose_from(ops, 0).await
    }

    /// The outcome of a submitted write, or `Unconfirmed` after [`write_wait`] — a
    /// bound that starts again while a write script runs in apply here: the entries
    /// around it are committed and apply once it ends (its budget, or SCRIPT KILL on a
    /// lone server), so the client waits for it as a Redis client waits for a busy
    /// script. A read script does not extend the wait (a deposed active may serve
    /// them while its write never commits).
    async fn confirmed(
        &self,
        election: Duration,
        submit: impl std::future::Future<Output = Result<Vec<Reply>, WriteError>>,
        timer: &mut WriteTimer,
    ) -> Result<Vec<Reply>, WriteError> {
        tokio::pin!(submit);
        loop {
            tokio::select! {
                biased;
                outcome = &mut submit => return outcome,
                () = timer.after(write_wait(election)) => {
                    if !self.scripts.running_in_apply() {
                        return Err(WriteError::Unconfirmed);
                    }
                }
            }
        }
    }

    /// [`Core::propose`] for the client `origin` of this server (CLIENT TRACKING's
    /// NOLOOP tells its own writes apart by it).
    pub async fn propose_from(&self, ops: Vec<Op>, origin: u64) -> Result<Vec<Reply>, WriteError> {
        self.propose_timed(ops, origin, &mut WriteTimer::default()).await
    }

    /// [`Core::propose_from`] with the client's own [`WriteTimer`].
    pub async fn propose_timed(&self, ops: Vec<Op>, origin: u64, timer: &mut WriteTimer) -> Result<Vec<Reply>, WriteError> {
        if self.replica.applies_directly() {
            // No quorum to wait for: the write waits only for the store (a script that
            // holds it), as a Redis client waits for a busy script. Not given up on
            // after `write_wait`: a write given up on while it waited could then be
            // applied after the same client's next one.
            return self.replica.submit(ops, origin).await;
        }
        let election = self.replica.election_time();
        if self.replica.lease_fresh() {
            // The common case: no copy of the ops is kept for a second attempt.
            return self.confirmed(election, self.replica.submit(ops, origin), timer).await;
        }
        let lease_deadline = tokio::time::Instant::now() + election;
        let mut pause = Duration::from_millis(5);
        loop {
            let outcome = self.confirmed(election, self.replica.submit(ops.clone(), origin), timer).await;
            match outcome {
                Err(WriteError::NoQuorum) if tokio::time::Instant::now() + pause < lease_deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                outcome => return outcome,
            }
        }
    }

    /// A linearizable read's check. As for writes ([`Core::propose`]), an active whose
    /// lease a majority has not confirmed yet (just elected) asks again for up to one
    /// election time before the client is told it cannot confirm it is the active.
    pub async fn linearize(&self) -> Result<(), crate::replication::errors::ReadError> {
        use crate::replication::errors::ReadError;
        let deadline = tokio::time::Instant::now() + self.replica.election_time();
        let mut pause = Duration::from_millis(5);
        loop {
            match self.replica.linearize().await {
                Err(ReadError::NoQuorum) if tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                outcome => return outcome,
            }
        }
    }

    /// What WATCH records for EXEC's entry to compare (see `store::watch`). Waits
    /// without blocking while a script holds the store.
    pub async fn watch_stamp(&self) -> Result<WatchStamp, Reply> {
        let now = self.stamp();
        let store = self.store_async().await?;
        Ok(self.replica.watch_stamp(&store, now))
    }

    /// The bytes of the arguments of `batch`'s writes, as [`ArgArena::planned`] counts them.
    fn write_bytes(batch: &[Request]) -> usize {
        batch.iter().filter(|r| r.spec.is_write()).map(|r| ArgArena::counted(&r.args)).sum()
    }

    async fn flush(&self, pending: &mut Vec<Op>, replies: &mut Vec<Reply>, origin: u64, timer: &mut WriteTimer) {
        if pending.is_empty() {
            return;
        }
        let count = pending.len();
        match self.propose_timed(std::mem::take(pending), origin, timer).await {
            Ok(r) => replies.extend(r),
            Err(e) => replies.extend(std::iter::repeat_n(write_reply(&e), count)),
        }
    }

    /// A run of plain reads served at once, when nothing would make it wait: no
    /// CLIENT PAUSE holds it, no quorum round is needed to linearize it (this server
    /// is its stripe's only voter, or the client reads stale on purpose), and no
    /// script is on the store. `None` when any of that does not hold, or the run has a
    /// write or a script: [`Core::execute`] serves it then, waiting as it must. The
    /// replies are the same either way; this path skips the waits' machinery, which
    /// cost a GET more than its own work.
    pub fn read_now(&self, run: &[Request], reads: Reads) -> Option<Vec<Reply>> {
        if run.iter().any(|r| r.spec.is_write() || r.spec.has(flags::SCRIPT)) {
            return None;
        }
        if reads == Reads::Linearizable && !self.replica.linearizable_now() {
            return None;
        }
        let store = self.store_now(run)?;
        let now = self.stamp();
        let mut replies = Vec::with_capacity(run.len());
        self.with_read_rng(|rng| store.read_run(run.len(), |n| run.get(n).map(|r| (r.spec, &r.args[..])), now, rng, &mut replies));
        Some(replies)
    }

    /// A run of plain writes applied at once on a lone in-memory server, whose writes
    /// skip the log ([`Replica::submit`]), when nothing would make them wait or be
    /// refused one by one: no CLIENT PAUSE holds them, `min-replicas-to-write` and the
    /// last snapshot allow writes, none must make room in full memory, none is a
    /// script, session upkeep or an ACL change, and no script is on the store. `None`
    /// otherwise: [`Core::execute`] runs them then. The replies are the same either
    /// way; this path runs the checks once for the run and applies without the async
    /// layers in between, whose code a write turn touched more of than its own work.
    ///
    /// The ops take the requests' own arguments, slices of the client's read buffer,
    /// rather than copies into an [`ArgArena`]: here an entry lives only through its
    /// apply, never in a log, and what apply keeps of a plain write is a copy (values,
    /// names, scripts). A forwarded write's reply is kept for its tag (`store::once`)
    /// and may quote an argument (LMPOP's key), so such a write is copied, as
    /// [`Op::command`]. The arguments go back to their requests after the apply, for
    /// the run's statistics, SLOWLOG and MONITOR.
    pub fn write_now(&self, run: &mut [Request], memory: &Memory<'_>, origin: u64) -> Option<Vec<Reply>> {
        if !self.replica.applies_directly() {
            return None;
        }
        let plain = |r: &Request| {
            r.spec.is_write()
                && !r.spec.has(flags::SCRIPT)
                && !is_upkeep(r.spec)
                && !crate::commands::acl::changes_users(r.spec)
                && !memory.needs_room(r.spec)
        };
        if !run.iter().all(plain) {
            return None;
        }
        if !self.enough_mirrors(memory.settings) || self.snapshot_refusal(memory.settings).is_some() {
            return None;
        }
        let mut store = self.store_now(run)?;
        let origin = if self.tracking.wants_origins() { origin } else { 0 };
        let op = |r: &mut Request| match r.once {
            None => Op::Command(std::mem::take(&mut r.args)),
            Some(tag) => Op::command(&r.args).tagged(Some(tag)),
        };
        let mut ops: Arc<[Op]> = run.iter_mut().map(op).collect();
        let submitted = self.replica.submit_locked(ops.clone(), origin, &mut store);
        drop(store);
        give_back_args(run, &mut ops);
        match submitted? {
            Ok(replies) => Some(replies),
            Err(e) => Some(vec![write_reply(&e); run.len()]),
        }
    }

    /// Runs a batch of store commands (no blocking ones): consecutive writes become one
    /// entry; reads run in place after one linearizability check for the batch (none
    /// with [`Reads::Stale`]), and see every write before them. A write that may grow
    /// the data makes room first when memory is full (the rule is `admit::Memory`'s).
    /// `origin`: the client of this server that sent them; `timer`: its writes' timer.
    pub async fn execute(&self, batch: &[Request], memory: &Memory<'_>, reads: Reads, origin: u64, timer: &mut WriteTimer) -> Vec<Reply> {
        // CLIENT PAUSE holds the run from its start: its replies keep their order.
        self.pause.wait(batch.iter().any(|r| super::pause::held_by_write_pause(r.spec, &r.args))).await;
        let mut replies = Vec::with_capacity(batch.len());
        // Room for every write at once: growing it from empty cost more than the push.
        let mut pending: Vec<Op> = Vec::with_capacity(batch.iter().filter(|r| r.spec.is_write()).count());
        // The arguments of the batch's writes, copied into one buffer at the first.
        let mut arena: Option<ArgArena> = None;
        // Writes carry their client only where something needs it: a script (its
        // calls are counted for this client) or a NOLOOP tracking client.
        let origin = if self.tracking.wants_origins() || batch.iter().any(|r| r.spec.has(flags::SCRIPT)) { origin } else { 0 };
        let mut linearized: Option<Result<(), Reply>> = None;
        // `min-replicas-to-write`, looked at once per batch.
        let mut mirrors_ok: Option<bool> = None;
        let mut i = 0;
        while i < batch.len() {
            let Request { spec, args, once, .. } = &batch[i];
            if !spec.is_write() {
                self.flush(&mut pending, &mut replies, origin, timer).await;
                if linearized.is_none() {
                    linearized = Some(match reads {
                        Reads::Linearizable => self.linearize().await.map_err(|e| read_reply(&e)),
                        Reads::Stale => Ok(()),
                    });
                }
                // A run of consecutive reads: one time stamp, one store lock.
                let end = batch[i..].iter().position(|r| r.spec.is_write()).map_or(batch.len(), |n| i + n);
                match &linearized {
                    Some(Err(e)) => replies.extend(std::iter::repeat_n(e.clone(), end - i)),
                    _ if batch[i..end].iter().any(|r| r.spec.has(flags::SCRIPT)) => {
                        // Read-only scripts may run long: off the runtime thread (scripting).
                        replies.extend(self.read_scripts(&batch[i..end], origin).await);
                    }
                    _ => {
                        let now = self.stamp();
                        match self.store_async().await {
                            Ok(store) => {
                                let run = &batch[i..end];
                                self.with_read_rng(|rng| {
                                    store.read_run(run.len(), |n| run.get(n).map(|r| (r.spec, &r.args[..])), now, rng, &mut replies)
                                })
                            }
                            Err(busy) => replies.extend(batch[i..end].iter().map(|r| {
                                let stats = (r.spec.name == "function|stats").then(|| self.function_stats_of_running());
                                stats.flatten().unwrap_or_else(|| busy.clone())
                            })),
                        }
                    }
                }
                i = end;
                continue;
            }
            let arena = arena.get_or_insert_with(|| ArgArena::planned(Self::write_bytes(&batch[i..])));
            i += 1;
            // `min-replicas-to-write`: a write is refused while too few mirrors hold
            // the log; a script's refusal travels in its entry (its writes fail alike
            // on every server, its reads still run).
            let upkeep = is_upkeep(spec);
            if !upkeep && !*mirrors_ok.get_or_insert_with(|| self.enough_mirrors(memory.settings)) {
                if spec.has(flags::SCRIPT) {
                    pending.push(arena.command(&mark_script(args, crate::commands::scripting::NOREPLICAS_MARK)).tagged(*once));
                } else {
                    self.flush(&mut pending, &mut replies, origin, timer).await;
                    replies.push(Reply::err(crate::commands::scripting::ERR_NOREPLICAS));
                }
                continue;
            }
            // After a failed snapshot, the same for clients' writes (a script's: its
            // writes fail alike on every server).
            if !upkeep {
                if let Some(refusal) = self.snapshot_refusal(memory.settings) {
                    if spec.has(flags::SCRIPT) {
                        pending.push(arena.command(&mark_script(args, crate::commands::scripting::MISCONF_MARK)).tagged(*once));
                    } else {
                        self.flush(&mut pending, &mut replies, origin, timer).await;
                        replies.push(refusal);
                    }
                    continue;
                }
            }
            if memory.needs_room(spec) {
                self.flush(&mut pending, &mut replies, origin, timer).await;
                if let Err(oom) = self.make_room(memory.settings).await {
                    replies.push(oom);
                    continue;
                }
            }
            if spec.has(flags::SCRIPT) && memory.full() {
                // Scripting: the OOM decision travels in the entry, so every server fails
                // the script's deny-oom commands alike.
                self.flush(&mut pending, &mut replies, origin, timer).await;
                if self.make_room(memory.settings).await.is_err() {
                    pending.push(arena.command(&mark_script(args, crate::commands::scripting::OOM_MARK)).tagged(*once));
                    continue;
                }
            }
            if crate::commands::acl::changes_users(spec) {
                self.flush(&mut pending, &mut replies, origin, timer).await;
                self.configured_default_first(memory.settings).await;
            }
            pending.push(arena.command(args).tagged(*once));
        }
        self.flush(&mut pending, &mut replies, origin, timer).await;
        replies
    }

    /// Before the first change to a stripe's users, the default user as configured
    /// (its `requirepass`) enters the log, so that the change applies on top of it
    /// on every member (apply never reads a server's settings). The password travels
    /// as its SHA-256 hash, as ACL LIST shows it.
    pub(crate) async fn configured_default_first(&self, settings: &Settings) {
        let Some(password) = settings.requirepass() else { return };
        if !self.acl.users().pristine() {
            return;
        }
        let hash = crate::acl::user::hash_password(password.as_bytes());
        let args: Vec<Bytes> = ["acl", "setuser", "default", "resetpass"]
            .iter()
            .map(|a| Bytes::from_static(a.as_bytes()))
            .chain(std::iter::once(Bytes::from(format!("#{hash}"))))
            .collect();
        if let Err(e) = self.propose(vec![Op::command(&args)]).await {
            tracing::warn!(error = %e, "could not log the configured default user before an ACL change");
        }
    }

    /// A run of reads with read-only scripts (EVAL_RO, FCALL_RO): on a blocking thread,
    /// so a long one neither stalls the runtime nor escapes SCRIPT KILL.
    ///
    /// A script that called a read-only command has its declared keys remembered for
    /// its client if it tracks keys (CLIENT TRACKING), under the store's lock: no
    /// write applies between the script's reads and that.
    async fn read_scripts(&self, run: &[Request], origin: u64) -> Vec<Reply> {
        let count = run.len();
        if let Err(busy) = self.store_async().await.map(drop) {
            return vec![busy; count];
        }
        let owned: Vec<(&'static crate::commands::CommandSpec, Vec<Bytes>)> = run.iter().map(|r| (r.spec, r.args.clone())).collect();
        let store = self.replica.store.clone();
        let tracking = self.tracking.clone();
        let (now, seed) = (self.stamp(), self.random());
        // Counted until the thread has let go of the store (it is dropped last).
        let off_thread = crate::scripting::status::OffThread::enter(&self.scripts);
        let reads = tokio::task::spawn_blocking(move || {
            let _off_thread = off_thread;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            crate::scripting::take_read_called();
            crate::scripting::record_calls(Some(store.show_script_calls.load(std::sync::atomic::Ordering::Relaxed)));
            let replies = owned
                .iter()
                .map(|(spec, args)| {
                    let reply = store.read(spec, args, now, &mut rng);
                    if crate::scripting::take_read_called() && spec.has(flags::SCRIPT) {
                        tracking.remember(origin, &spec.keys(args).into_iter().cloned().collect::<Vec<_>>(), store.db.index());
                    }
                    reply
                })
                .collect::<Vec<_>>();
            let calls = crate::scripting::record_calls(None);
            store.keep_script_calls(origin, calls);
            replies
        });
        reads.await.unwrap_or_else(|_| vec![Reply::err("ERR the script's thread failed"); count])
    }

    /// MULTI … EXEC as one entry. With watched keys, the entry carries their stamps
    /// and apply answers nil (applying nothing) if any changed since: exact whatever
    /// else is in flight, and whichever server proposed the writes before it.
    pub async fn execute_transaction(
        &self,
        cmds: &[Request],
        watches: &[(Bytes, WatchStamp)],
        memory: &Memory<'_>,
        once: Option<crate::store::once::Tag>,
        origin: u64,
    ) -> Result<Reply, Reply> {
        self.pause.wait(cmds.iter().any(|r| super::pause::held_by_write_pause(r.spec, &r.args))).await;
        if cmds.iter().any(|r| r.spec.is_write()) {
            if !self.enough_mirrors(memory.settings) {
                return Err(super::transaction::exec_refused(Reply::err(crate::commands::scripting::ERR_NOREPLICAS)));
            }
            if let Some(refusal) = self.snapshot_refusal(memory.settings) {
                return Err(super::transaction::exec_refused(refusal));
            }
        }
        if cmds.iter().any(|r| memory.needs_room(r.spec)) {
            // Out of room, EXEC is refused whole, as Redis does; other errors (the
            // eviction entry not written) are answered as they are.
            self.make_room(memory.settings).await.map_err(|e| match e.is_error() && e == Reply::err(ERR_OOM) {
                true => super::transaction::exec_refused(e),
                false => e,
            })?;
        }
        let has_script = cmds.iter().any(|r| r.spec.has(flags::SCRIPT));
        let mut arena = ArgArena::planned(
            cmds.iter().map(|r| ArgArena::counted(&r.args)).sum::<usize>()
                + watches.iter().map(|(key, _)| ArgArena::counted(std::slice::from_ref(key))).sum::<usize>(),
        );
        let cmds = cmds.iter().map(|r| arena.copy(&r.args)).collect();
        let op = if watches.is_empty() {
            Op::Transaction(cmds)
        } else {
            // The watched keys too: a slice of WATCH's read buffer would pin it in the log.
            let watches = watches
                .iter()
                .map(|(key, stamp)| {
                    let key = arena.copy(std::slice::from_ref(key)).pop().unwrap_or_default();
                    Watch { key, stamp: *stamp }
                })
                .collect();
            Op::Checked { watches, cmds }
        };
        let origin = if self.tracking.wants_origins() || has_script { origin } else { 0 };
        let replies = self.propose_from(vec![op.tagged(once)], origin).await.map_err(|e| write_reply(&e))?;
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

    /// Ends client sessions whose reconnect window ran out and lock leases (TTL) that
    /// ended, as one entry: apply checks each again at the entry's time, so a renewal
    /// or an unlock applied in between wins, and every member releases at the same log
    /// position. Only the active calls it (the expiry cycle), as for keys.
    pub async fn expire_prims_due(&self) {
        let now = self.stamp();
        let (sessions, locks) = match self.store_async().await {
            Ok(store) => {
                let prims = &store.db.prims;
                (prims.due_sessions(now, limits::EXPIRE_KEYS_PER_ENTRY_MAX), prims.due_locks(now, limits::EXPIRE_KEYS_PER_ENTRY_MAX))
            }
            Err(_) => return,
        };
        let mut ops = Vec::new();
        if !sessions.is_empty() {
            let mut args = vec![Bytes::from_static(crate::commands::tandem::SESSION_EXPIRED.as_bytes())];
            args.extend(sessions);
            ops.push(Op::Command(args));
        }
        if !locks.is_empty() {
            let mut args = vec![Bytes::from_static(crate::commands::tandem::LOCK_EXPIRED.as_bytes())];
            for (name, token) in locks {
                args.extend([name, Bytes::from(token.to_string())]);
            }
            ops.push(Op::Command(args));
        }
        if ops.is_empty() {
            return;
        }
        if let Err(e) = self.propose(ops).await {
            tracing::debug!(error = ?e, "session and lock expiry entry not written");
        }
    }

    /// While this server's last snapshot failed, its clients' writes are refused, as
    /// Redis's after a failed BGSAVE (`stop-writes-on-bgsave-error`, on by default):
    /// the refusal, or `None`. Asked where a write runs here (this stripe's active);
    /// a write bound for another stripe meets that stripe's own answer.
    pub fn snapshot_refusal(&self, settings: &Settings) -> Option<Reply> {
        if !self.replica.snapshots.troubled() || !settings.stop_writes_on_snapshot_error() {
            return None;
        }
        self.replica.snapshots.problem().map(|problem| super::errors::snapshot_refusal(&problem))
    }

    /// Whether `min-replicas-to-write` is met (always when it is 0): the data-holding
    /// mirrors that are caught up and answered within an election time (the stripe's
    /// standbys; a voter holds no data and never counts).
    pub fn enough_mirrors(&self, settings: &Settings) -> bool {
        let min = settings.min_replicas.load(Ordering::Relaxed);
        min == 0 || self.replica.group.standbys().len() >= min
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
        let scope = Bytes::from_static(if policy.volatile() { EVICT_VOLATILE.as_bytes() } else { EVICT_ALLKEYS.as_bytes() });
        // Bounded: each round evicts a handful of keys.
        for _ in 0..1024 {
            if !over_maxmemory(settings, self.replica.log.memory_bytes()) {
                return Ok(());
            }
            let (chosen_at, victims) = self.pick_victims(policy, settings.maxmemory_samples.load(Ordering::Relaxed)).await?;
            if victims.is_empty() {
                // Memory an UNLINK or FLUSHALL ASYNC handed to the background thread
                // is on its way out: wait for it (briefly) rather than refuse.
                if crate::store::lazyfree::pending() > 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                return Err(Reply::err(ERR_OOM));
            }
            // The victims qualify as of `chosen_at`; apply skips any that entries in
            // flight change before this one applies (see `commands::keys`).
            let mut args = vec![Bytes::from_static(EVICT_COMMAND.as_bytes()), Bytes::from(chosen_at.to_string()), scope.clone()];
            args.extend(victims);
            self.propose(vec![Op::Command(args)]).await.map_err(|e| write_reply(&e))?;
        }
        if over_maxmemory(settings, self.replica.log.memory_bytes()) {
            Err(Reply::err(ERR_OOM))
        } else {
            Ok(())
        }
    }

    /// Chooses keys to evict: the best of `samples` random candidates per victim
    /// (Redis's approximated LRU/LFU), or the nearest expiry for volatile-ttl; with
    /// the log index they were chosen at.
    /// The store is taken without blocking the runtime while a script holds it.
    async fn pick_victims(&self, policy: EvictionPolicy, samples: usize) -> Result<(u64, Vec<Bytes>), Reply> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.random());
        let store = self.store_async().await?;
        let now = self.stamp();
        let db = &store.db;
        Ok((db.index(), Self::choose(db, policy, samples, now, &mut rng)))
    }

    /// The state machine if nobody holds it now (a running script does): for gauges
    /// and reports that may leave a figure out rather than wait.
    pub fn store_if_free(&self) -> Option<MutexGuard<'_, Store>> {
        match self.replica.store.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    fn choose(db: &crate::store::db::Db, policy: EvictionPolicy, samples: usize, now: u64, rng: &mut Xoshiro256PlusPlus) -> Vec<Bytes> {
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
/// A script command under `mark` (OOM, no replicas); an ACL user's wrapper stays
/// outermost.
fn mark_script(args: &[Bytes], mark: &'static str) -> Vec<Bytes> {
    let spec = crate::commands::resolve(args);
    match spec.is_some_and(crate::commands::scripting::is_as_user) {
        true => {
            let mut wrapped = args[..2].to_vec();
            wrapped.extend(crate::commands::scripting::marked(mark, &args[2..]));
            wrapped
        }
        false => crate::commands::scripting::marked(mark, args),
    }
}

pub fn over_maxmemory(settings: &Settings, log_bytes: usize) -> bool {
    let max = settings.maxmemory_bytes.load(Ordering::Relaxed);
    max > 0 && memory::used_bytes().saturating_sub(log_bytes) as u64 > max
}

/// Puts back into `run` the arguments [`Core::write_now`] moved into `ops`: moved
/// again when `ops` is the last copy (the entry is gone), cloned otherwise.
fn give_back_args(run: &mut [Request], ops: &mut Arc<[Op]>) {
    for (request, op) in run.iter_mut().zip(Arc::make_mut(ops)) {
        if let Some(args) = op.command_args_mut() {
            request.args = std::mem::take(args);
        }
    }
}

/// Session upkeep (renewals a mirror forwards) and the script cache (log entries here,
/// not writes in Redis, which allows them): writes that are no user data, never
/// refused for `min-replicas-to-write` or a failed snapshot.
fn is_upkeep(spec: &crate::commands::CommandSpec) -> bool {
    spec.has(flags::SESSION_CONTROL) || matches!(spec.name, crate::commands::tandem::SESSION_RENEW | "script|load" | "script|flush")
}
