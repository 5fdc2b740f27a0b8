//! Issue 9, the apply side: conditions decided where they are exact (WATCH, eviction
//! victims), entry time that never goes back (failover, restart with the clock
//! stepped back), unknown outcomes that no client retries by itself, a client's order
//! kept across a lost upstream, forwarded requests that wait out a failover, and
//! errors that speak of stripes and servers. Each `finding_N_…` test reproduces the
//! review's finding N against real processes.
//!
//! Commits are held back by pausing both mirrors (SIGSTOP): a write sent at once is
//! appended while the active's lease lasts, and then waits. Only one mirror is
//! resumed first: it cannot win an election (its log lacks the active's new
//! entries, and the other mirror is still paused), so the active commits the
//! waiting entries with it, in log order.

mod support;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use support::cluster::{wait_until, Cluster, Spec};

fn phase(what: &str) {
    eprintln!("--- {what}");
}

/// A formed three-server stripe; (cluster, active).
fn stripe() -> (Cluster, usize) {
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    (cluster, active)
}

/// Runs `scenario` with the stripe's active and mirrors until it reports that its
/// writes were appended while both mirrors were paused (true). That holds only while
/// the active's lease lasts, about half an election time after the pause, which a
/// loaded machine can miss: the writes are then refused with nothing applied, the
/// scenario resumes the mirrors and reports false, and it runs again.
fn with_writes_appended(cluster: &Cluster, mut scenario: impl FnMut(usize, &[usize]) -> bool) {
    let all: Vec<usize> = (0..cluster.members.len()).collect();
    for attempt in 1..=5 {
        let active = cluster.wait_stable(&all, Duration::from_secs(30));
        if scenario(active, &mirrors(cluster, active)) {
            return;
        }
        phase(&format!("attempt {attempt}: the active's lease ran out before the writes were appended; again"));
    }
    panic!("five times the active's lease ran out before a write sent at once was appended\n{}", cluster.all_stderr());
}

fn pause(cluster: &Cluster, servers: &[usize]) {
    for &m in servers {
        cluster.sigstop(m);
    }
}

fn resume(cluster: &Cluster, servers: &[usize]) {
    for &m in servers {
        cluster.sigcont(m);
    }
}

fn mirrors(cluster: &Cluster, active: usize) -> Vec<usize> {
    (0..cluster.members.len()).filter(|&i| i != active && !cluster.members[i].voter).collect()
}

/// The active's last log index (INFO replication).
fn last_log_index(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("replication").query(con).expect("INFO");
    info.lines().find_map(|l| l.strip_prefix("tandem_last_log_index:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn error_code(e: &redis::RedisError) -> String {
    e.code().unwrap_or_default().to_string()
}

/// The code of a write whose outcome is unknown (`server::errors::UNKNOWN_OUTCOME`).
const UNKNOWN_OUTCOME: &str = "OUTCOMEUNKNOWN";

/// The codes some client library retries by itself (see `server::errors`).
const RETRIED_BY_CLIENTS: &[&str] = &["TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "MASTERDOWN", "NOREPLICAS", "MOVED", "ASK"];

#[test]
fn finding_2_watch_exec_fails_when_a_timed_out_write_applies_later() {
    let (cluster, _) = stripe();
    with_writes_appended(&cluster, |active, ms| {
        let mut con = cluster.conn(active).unwrap();
        let _: () = redis::cmd("SET").arg("k").arg("before").query(&mut con).unwrap();
        let appended = last_log_index(&mut con);

        phase("pause both mirrors; a write to k is appended and times out at its client");
        pause(&cluster, ms);
        let err = redis::cmd("SET").arg("k").arg("late").query::<()>(&mut con).unwrap_err();
        phase(&format!("the timed-out write got: {err}"));
        let mut other = cluster.conn(active).unwrap();
        if last_log_index(&mut other) != appended + 1 {
            resume(&cluster, ms);
            return false;
        }

        phase("another client WATCHes k and queues a transaction on it");
        let mut tx = cluster.conn(active).unwrap();
        let _: () = redis::cmd("WATCH").arg("k").query(&mut tx).unwrap();
        let _: () = redis::cmd("MULTI").query(&mut tx).unwrap();
        let _: () = redis::cmd("SET").arg("k").arg("from-the-transaction").query(&mut tx).unwrap();

        phase("resume one mirror: the timed-out write commits; then EXEC");
        cluster.sigcont(ms[0]);
        assert!(
            wait_until(Duration::from_secs(20), || redis::cmd("GET").arg("unrelated").query::<Option<String>>(&mut other).is_ok()),
            "the active serves again with one mirror back\n{}",
            cluster.all_stderr()
        );
        let exec: redis::Value = redis::cmd("EXEC").query(&mut tx).unwrap();
        cluster.sigcont(ms[1]);
        assert_eq!(exec, redis::Value::Nil, "k changed after WATCH (the timed-out write applied): EXEC must fail");
        let now: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
        assert_eq!(now, "late", "nothing of the transaction applied");
        true
    });
}

/// A stripe whose servers read their wall clock through one offset file (the test
/// clock hook); (cluster, offset file).
fn stripe_with_test_clock(servers: usize) -> (Cluster, PathBuf) {
    let mut cluster = Cluster::configure(Spec::servers(servers));
    let offset = cluster.dir.path().join("clock-offset-ms");
    std::fs::write(&offset, "0").unwrap();
    cluster.set_env("TANDEM_TEST_CLOCK_OFFSET_FILE", offset.to_str().unwrap());
    cluster.start_all();
    (cluster, offset)
}

const AN_HOUR_MS: i64 = 3_600_000;

#[test]
fn finding_3_ttl_does_not_jump_after_failover_to_a_server_whose_clock_is_behind() {
    let (mut cluster, offset) = stripe_with_test_clock(3);
    let active = cluster.wait_formed();
    let mut con = cluster.conn(active).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").arg("PX").arg(60_000).query(&mut con).unwrap();

    phase("kill the active; every other server's clock steps back an hour");
    cluster.kill9(active);
    std::fs::write(&offset, (-AN_HOUR_MS).to_string()).unwrap();
    let up: Vec<usize> = (0..3).filter(|&i| i != active).collect();
    let new_active = cluster.wait_stable(&up, Duration::from_secs(30));

    phase("the new active reads the key's TTL");
    let mut con = cluster.conn(new_active).unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut con).unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "the TTL jumped to {pttl} ms on a new active whose clock is behind");
    let _: () = redis::cmd("SET").arg("after").arg("x").arg("PX").arg(60_000).query(&mut con).unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut con).unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "after a write stamped by the new active, the TTL is {pttl} ms");
}

#[test]
fn finding_3_ttl_does_not_jump_after_a_restart_with_the_clock_stepped_back() {
    let (mut cluster, offset) = stripe_with_test_clock(1);
    cluster.wait_formed();
    let mut con = cluster.conn(0).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").arg("PX").arg(60_000).query(&mut con).unwrap();

    phase("kill -9, step the clock back an hour, restart");
    cluster.kill9(0);
    std::fs::write(&offset, (-AN_HOUR_MS).to_string()).unwrap();
    cluster.spawn(0);
    cluster.wait_formed();
    let mut con = cluster.conn(0).unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut con).unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "the TTL jumped to {pttl} ms after a restart with the clock stepped back");
}

#[test]
fn finding_4_a_write_whose_outcome_is_unknown_gets_an_error_no_client_retries() {
    let (cluster, _) = stripe();
    with_writes_appended(&cluster, |active, ms| {
        let mut con = cluster.conn(active).unwrap();
        let appended = last_log_index(&mut con);
        phase("pause both mirrors: an INCR is appended and never confirmed");
        pause(&cluster, ms);
        let err = redis::cmd("INCR").arg("counter").query::<i64>(&mut con).unwrap_err();
        phase(&format!("the write got: {err}"));
        let mut other = cluster.conn(active).unwrap();
        let in_log = last_log_index(&mut other) == appended + 1;
        resume(&cluster, ms);
        if !in_log {
            assert_eq!(error_code(&err), "TRYAGAIN", "a write that was never appended is refused as not applied: {err}");
            return false;
        }
        assert!(!RETRIED_BY_CLIENTS.contains(&error_code(&err).as_str()), "clients retry {err} by themselves: the INCR may apply twice");
        assert!(err.to_string().contains("may or may not have been applied"), "the error must say the outcome is unknown: {err}");
        true
    });
}

#[test]
fn finding_4_a_mirror_keeps_a_clients_writes_in_order_after_its_upstream_times_out() {
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let ms = mirrors(&cluster, active);
    let (mirror, other) = (ms[0], ms[1]);
    let mut con = cluster.conn(mirror).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg(0).query(&mut con).unwrap();

    phase("pause the active and the other mirror: no election, no answer");
    cluster.sigstop(active);
    cluster.sigstop(other);
    // Enough INCRs that the active takes a while to run them once resumed (each is
    // its own entry), few enough that it answers them well within a mirror's wait.
    let mut pipe = redis::pipe();
    for _ in 0..50 {
        pipe.cmd("INCR").arg("k").cmd("GET").arg("unrelated");
    }
    let replies: Vec<redis::RedisResult<redis::Value>> = match pipe.query::<Vec<redis::Value>>(&mut con) {
        Ok(values) => values.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(e)],
    };
    phase(&format!("the mirror gave up on its upstream: {:?}", replies.first()));
    assert!(replies.iter().all(|r| r.is_err()), "nothing can have been answered while the active was paused");

    phase("resume the active, then write again through the same mirror");
    cluster.sigcont(active);
    // Queued behind what the active still runs, the SET may itself time out at the
    // mirror (its outcome then unknown): it is sent again, after it, until answered.
    let mut set: redis::RedisResult<()> = redis::cmd("SET").arg("k").arg(100).query(&mut con);
    for _ in 0..5 {
        match &set {
            Err(e) if error_code(e) == UNKNOWN_OUTCOME => set = redis::cmd("SET").arg("k").arg(100).query(&mut con),
            _ => break,
        }
    }
    set.expect("the new write goes through once the active answers");
    cluster.sigcont(other);
    let k: i64 = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(k, 100, "INCRs the client sent before its SET ran after it");
}

#[test]
fn finding_5_eviction_never_deletes_a_key_a_write_in_flight_made_persistent() {
    let (cluster, _) = stripe();
    with_writes_appended(&cluster, |active, ms| {
        let mut con = cluster.conn(active).unwrap();
        let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("volatile-lru").query(&mut con).unwrap();
        let _: () = redis::cmd("SET").arg("k").arg("volatile").arg("EX").arg(100_000).query(&mut con).unwrap();
        let mut oom = cluster.conn(active).unwrap();
        let mut writer = cluster.conn(active).unwrap();
        let appended = last_log_index(&mut con);

        phase("pause both mirrors; a SET that makes k persistent is appended");
        pause(&cluster, ms);
        let write = thread::spawn(move || redis::cmd("SET").arg("k").arg("persistent").query::<()>(&mut writer));
        let in_log = wait_until(Duration::from_secs(2), || last_log_index(&mut con) > appended);

        phase("memory runs out: the active picks k, still volatile as applied, to evict");
        // CONFIG SET maxmemory below the data evicts at once (as Redis does): its
        // eviction waits for the paused mirrors like any entry, so it runs aside.
        let mut config = cluster.conn(active).unwrap();
        let shrink = thread::spawn(move || redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(1).query::<()>(&mut config));
        let in_log = in_log && wait_until(Duration::from_secs(2), || last_log_index(&mut con) > appended + 1);
        let denied = thread::spawn(move || redis::cmd("SET").arg("other").arg("x").query::<()>(&mut oom));

        phase("resume one mirror: the SET applies first, then the eviction");
        cluster.sigcont(ms[0]);
        let written = write.join().unwrap();
        let _ = shrink.join().unwrap();
        let _ = denied.join().unwrap();
        cluster.sigcont(ms[1]);
        let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0).query(&mut con).unwrap();
        if !in_log {
            return false;
        }
        written.expect("the SET commits");
        let k: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
        assert_eq!(k.as_deref(), Some("persistent"), "volatile-lru evicted a key without an expiry");
        true
    });
}

#[test]
fn a_forwarded_request_waits_for_the_new_active_during_a_failover() {
    let mut cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mirror = mirrors(&cluster, active)[0];
    let mut con = cluster.conn(mirror).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("before").query(&mut con).unwrap();

    phase("kill -9 the active and write through a mirror at once");
    cluster.kill9(active);
    let started = Instant::now();
    let set: redis::RedisResult<()> = redis::cmd("SET").arg("k").arg("during").query(&mut con);
    phase(&format!("answered after {:?}: {set:?}", started.elapsed()));
    set.expect("the mirror waits for the new active instead of giving up");
    let k: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(k, "during");
}

/// What openraft's own types print: none of it may reach a client.
const RAFT_INTERNALS: &[&str] = &["BasicNode", "voters", "LeaderId", "leader_id", "QuorumNotEnough", "ForwardToLeader", "{", "Fatal"];

#[test]
fn errors_a_client_sees_speak_of_stripes_and_servers_not_raft_internals() {
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mut con = cluster.conn(active).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();

    phase("pause both mirrors: the active loses its quorum");
    for m in mirrors(&cluster, active) {
        cluster.sigstop(m);
    }
    let mut errors = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Until the lease runs out the reads still succeed; then both must fail.
    while errors.len() < 2 && Instant::now() < deadline {
        errors.clear();
        if let Err(e) = redis::cmd("GET").arg("k").query::<Option<String>>(&mut con) {
            errors.push(e.to_string());
        }
        if let Err(e) = redis::cmd("SET").arg("k").arg("w").query::<()>(&mut con) {
            errors.push(e.to_string());
        }
    }
    for m in mirrors(&cluster, active) {
        cluster.sigcont(m);
    }
    assert_eq!(errors.len(), 2, "reads and writes fail without a quorum");
    for e in &errors {
        phase(&format!("a client saw: {e}"));
        for internal in RAFT_INTERNALS {
            assert!(!e.contains(internal), "{internal:?} leaks into a client's error: {e}");
        }
        assert!(e.contains("stripe"), "the error speaks of the stripe: {e}");
    }
}
