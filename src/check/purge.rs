//! The purge trap: a mirror paused through a heavy write burst, then the active
//! killed. While the mirror sleeps, the active and the others commit many entries,
//! and a voter told to purge (the active's purge hints) snapshots and may purge log
//! entries the paused mirror still needs. When the active dies and the mirror wakes,
//! the survivors must still form a working stripe — the voter cannot send a snapshot
//! (it holds no data), so it must still hold the entries. A stripe with one member
//! down that has no active within [`RECOVERY_BOUND`] is reported; with `wipe` (the
//! active comes back empty, a hot swap), entries no survivor can supply are lost
//! acknowledged writes, which the final reads then show.
//!
//! The burst is `PURGE_BURST_CONNECTIONS` connections to the active, each sending
//! `INCR` of [`BURST_COUNTER`] and waiting for the reply: the entries come as fast as
//! the stripe commits them. Its operations join the history (the counter checks).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clients;
use super::cluster::Cluster;
use super::faults::{resolve, Applied, Target, PURGE_BURST_BEFORE_PAUSE, PURGE_BURST_CONNECTIONS, RECOVERY_BOUND};
use super::history::{secs, Call, Op};
use super::Violation;

/// The counter the burst increments (checked like the clients' counters).
pub const BURST_COUNTER: &str = "counter:burst";

/// The client ids of the burst's connections in the history: far above the clients'.
const BURST_CLIENT_BASE: usize = 10_000;

/// Runs the trap on `cluster` (see the module doc); the burst goes on for `hold`
/// after the mirror is paused.
pub fn trap(cluster: &mut Cluster, wipe: bool, hold: Duration, epoch: Instant, applied: &mut Applied) {
    let stamp = |what: String| format!("{} {what}", secs(epoch.elapsed().as_nanos() as u64));
    let active = resolve(cluster, Target::Active);
    let mirror = resolve(cluster, Target::Mirror(0));
    let (active_name, mirror_name) = (cluster.members[active].name.clone(), cluster.members[mirror].name.clone());
    let burst = Burst::start(cluster.url(active), active, epoch);
    applied.log.push(stamp(format!("write burst on {active_name} ({PURGE_BURST_CONNECTIONS} connections)")));
    std::thread::sleep(PURGE_BURST_BEFORE_PAUSE);
    let paused_at = commit_index(&cluster.url(active));
    cluster.try_signal(mirror, "-STOP");
    applied.log.push(stamp(format!("paused {mirror_name} (SIGSTOP) at commit index {}", show(paused_at))));
    std::thread::sleep(hold);
    let killed_at = commit_index(&cluster.url(active));
    cluster.kill9(active);
    let entries = killed_at.zip(paused_at).map_or("?".to_string(), |(k, p)| k.saturating_sub(p).to_string());
    let wiped = if wipe {
        format!(" and deleted its data directory ({:?})", std::fs::remove_dir_all(cluster.data_dir(active)))
    } else {
        String::new()
    };
    applied.log.push(stamp(format!(
        "killed {active_name} (kill -9) at commit index {}, {entries} entries after the pause{wiped}",
        show(killed_at)
    )));
    applied.ops.extend(burst.stop());
    cluster.try_signal(mirror, "-CONT");
    applied.log.push(stamp(format!("resumed {mirror_name} (SIGCONT)")));
    let up: Vec<usize> = (0..cluster.members.len()).filter(|&i| i != active).collect();
    let start = Instant::now();
    match cluster.try_wait_stable(&up, RECOVERY_BOUND) {
        Ok(now) => applied.log.push(stamp(format!(
            "recovered in {}: {} active",
            secs(start.elapsed().as_nanos() as u64),
            cluster.members[now].name
        ))),
        Err(e) => {
            let what = format!(
                "the stripe did not recover within {} with one member down: {mirror_name} was paused through {entries} entries, then {active_name} (the active) was killed; {e}",
                secs(RECOVERY_BOUND.as_nanos() as u64)
            );
            applied.log.push(stamp(format!("did not recover: {what}")));
            applied.violations.push(Violation { checker: "liveness", key: String::new(), what, ops: Vec::new() });
        }
    }
    let restarted = match cluster.try_spawn(active) {
        Ok(()) => format!("restarted {active_name}{}", if wipe { " empty" } else { "" }),
        Err(e) => format!("could not restart {active_name}: {e}"),
    };
    applied.log.push(stamp(restarted));
}

/// The commit index a server shows in `INFO replication` (one quick question to it,
/// where `tandem status` would wait for the paused member).
fn commit_index(url: &str) -> Option<u64> {
    let mut con = clients::connect(url).ok()?;
    let info: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
    info.lines().find_map(|l| l.strip_prefix("tandem_commit_index:")).and_then(|n| n.trim().parse().ok())
}

fn show(index: Option<u64>) -> String {
    index.map_or("?".to_string(), |i| i.to_string())
}

/// The write burst's connections.
struct Burst {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Op>>>,
}

impl Burst {
    fn start(url: String, server: usize, epoch: Instant) -> Burst {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..PURGE_BURST_CONNECTIONS)
            .map(|t| {
                let (url, stop) = (url.clone(), stop.clone());
                std::thread::spawn(move || increments(&url, server, BURST_CLIENT_BASE + t, epoch, &stop))
            })
            .collect();
        Burst { stop, threads }
    }

    /// Stops the connections; their operations.
    fn stop(self) -> Vec<Op> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect()
    }
}

/// INCRs one after the other on a connection to server `server` at `url` until
/// `stop`; a connection that fails is replaced (tried again every 50 ms).
fn increments(url: &str, server: usize, client: usize, epoch: Instant, stop: &AtomicBool) -> Vec<Op> {
    let now_ns = || epoch.elapsed().as_nanos() as u64;
    let mut ops = Vec::new();
    let mut con = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            match clients::connect(url) {
                Ok(c) => con = Some(c),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
            continue;
        };
        let invoke_ns = now_ns();
        let outcome = clients::execute(c, BURST_COUNTER, &Call::Incr);
        let op = Op {
            client,
            server,
            key: BURST_COUNTER.to_string(),
            call: Call::Incr,
            outcome,
            invoke_ns,
            complete_ns: now_ns(),
            retried: Vec::new(),
        };
        if !op.is_ok() {
            con = None;
        }
        ops.push(op);
    }
    ops
}
