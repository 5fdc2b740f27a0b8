//! High availability with real processes (DESIGN.md §6): a stripe of three servers,
//! or two servers and a voter, loses its active to kill -9, SIGSTOP or a partition
//! of the group network, elects another, and loses no acknowledged write; mirrors
//! restart, are hot-swapped and rejoin; the operator's procedures refuse what would
//! stop a stripe.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cluster::{Cluster, Spec};
use support::wait_until;

/// Keys a writer tried: acknowledged (value known) or not.
#[derive(Default)]
struct History {
    acked: Vec<(String, String)>,
    failed: usize,
}

/// Writes unique keys through every server in turn (a retrying client), until
/// `stop` or `limit` writes; each key is retried on another server after an error.
fn writer(
    cluster: &Cluster,
    id: usize,
    stop: Arc<AtomicBool>,
    limit: usize,
    history: Arc<Mutex<History>>,
) -> impl FnOnce() + Send + 'static {
    let urls: Vec<String> = (0..cluster.members.len()).filter(|&i| !cluster.members[i].voter).map(|i| cluster.url(i)).collect();
    move || {
        let mut server = id % urls.len();
        let mut con: Option<redis::Connection> = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        for n in 0..limit {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return;
            }
            let (key, value) = (format!("w{id}-{n}"), format!("v{id}-{n}"));
            for _attempt in 0..50 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    return;
                }
                if con.is_none() {
                    con = redis::Client::open(urls[server].as_str())
                        .ok()
                        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)).ok());
                    if let Some(c) = &con {
                        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    }
                }
                let result: redis::RedisResult<String> = match con.as_mut() {
                    Some(c) => redis::cmd("SET").arg(&key).arg(&value).query(c),
                    None => Err(redis::RedisError::from((redis::ErrorKind::IoError, "no connection"))),
                };
                match result {
                    Ok(_) => {
                        history.lock().unwrap().acked.push((key.clone(), value.clone()));
                        break;
                    }
                    Err(_) => {
                        history.lock().unwrap().failed += 1;
                        con = None;
                        server = (server + 1) % urls.len();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
    }
}

/// Every acknowledged write reads back, through the active, with its value.
fn assert_all_present(cluster: &Cluster, active: usize, history: &History) {
    let mut con = cluster.conn(active).expect("connect to the active");
    let mut missing = Vec::new();
    for chunk in history.acked.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).expect("MGET");
        for ((k, v), got) in chunk.iter().zip(values) {
            if got.as_deref() != Some(v.as_str()) {
                missing.push((k.clone(), got));
            }
        }
    }
    assert!(missing.is_empty(), "{} acknowledged writes lost or changed, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
}

/// Runs writers while `fault` acts on the cluster; returns what they saw.
fn with_writers(cluster: &mut Cluster, writers: usize, settle_writes: usize, fault: impl FnOnce(&mut Cluster)) -> History {
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..writers).map(|id| std::thread::spawn(writer(cluster, id, stop.clone(), 100_000, history.clone()))).collect();
    let acked = |h: &Arc<Mutex<History>>| h.lock().unwrap().acked.len();
    assert!(wait_until(Duration::from_secs(20), || acked(&history) >= settle_writes), "writers made no progress");
    fault(cluster);
    // Writes must go on after the fault.
    let after = acked(&history);
    assert!(
        wait_until(Duration::from_secs(30), || acked(&history) >= after + settle_writes),
        "writes did not resume after the fault\n{}",
        cluster.all_stderr()
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    Arc::try_unwrap(history).ok().expect("writers done").into_inner().unwrap()
}

fn kill_the_active_under_writes(spec: Spec) {
    let mut cluster = Cluster::start(spec);
    let everyone: Vec<usize> = (0..cluster.members.len()).collect();
    let first = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let history = with_writers(&mut cluster, 3, 100, |c| c.kill9(first));
    let others: Vec<usize> = everyone.iter().copied().filter(|&i| i != first).collect();
    let second = cluster.wait_stable(&others, Duration::from_secs(30));
    assert_ne!(first, second);
    assert_all_present(&cluster, second, &history);
    // The killed server comes back as a mirror and converges.
    cluster.spawn(first);
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    assert_all_present(&cluster, active, &history);
    cluster.wait_converged(&everyone, Duration::from_secs(20));
    eprintln!("acknowledged {} writes, {} failed attempts during the failover", history.acked.len(), history.failed);
}

#[test]
fn three_servers_survive_kill9_of_the_active_under_writes() {
    kill_the_active_under_writes(Spec::servers(3));
}

#[test]
fn two_servers_and_a_voter_survive_kill9_of_the_active_under_writes() {
    kill_the_active_under_writes(Spec { servers: vec![true, true], voters: 1, relayed: false, data_storage: Vec::new() });
}

#[test]
fn a_paused_active_steps_down_and_serves_nothing_stale() {
    let cluster = Cluster::start(Spec::servers(3));
    let everyone = [0, 1, 2];
    let old = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mut con = cluster.conn(old).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("before").query(&mut con).unwrap();
    // Opened before the pause: the client's handshake needs a running server.
    let mut old_con = cluster.conn(old).ok();
    cluster.sigstop(old);
    let others: Vec<usize> = everyone.iter().copied().filter(|&i| i != old).collect();
    let new = cluster.wait_stable(&others, Duration::from_secs(30));
    let mut fresh = cluster.conn(new).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("after").query(&mut fresh).unwrap();
    // A read queued on the old active's socket while it was paused is the first
    // thing it sees when it resumes, before any message from the new active.
    let mut raw = std::net::TcpStream::connect((cluster.members[old].host.as_str(), cluster.members[old].client_port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    std::io::Write::write_all(&mut raw, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
    cluster.sigcont(old);
    let mut reply = [0u8; 256];
    let n = std::io::Read::read(&mut raw, &mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]).to_string();
    assert!(reply.starts_with('-') || reply == "$5\r\nafter\r\n", "the deposed active served a stale read: {reply:?}");
    if let Some(c) = old_con.as_mut() {
        let read: redis::RedisResult<Option<String>> = redis::cmd("GET").arg("k").query(c);
        if let Ok(v) = read {
            assert_eq!(v.as_deref(), Some("after"), "the deposed active served a stale read");
        }
    }
    // Whatever the old active acknowledges from now on is in the stripe's log.
    let mut acked = Vec::new();
    for n in 0..20 {
        let Ok(mut c) = cluster.conn(old) else { continue };
        let r: redis::RedisResult<String> = redis::cmd("SET").arg(format!("late{n}")).arg(n).query(&mut c);
        if r.is_ok() {
            acked.push(n);
        }
    }
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    assert_ne!(cluster.members[active].name, "", "settled");
    let mut con = cluster.conn(active).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v.as_deref(), Some("after"));
    for n in acked {
        let v: Option<i64> = redis::cmd("GET").arg(format!("late{n}")).query(&mut con).unwrap();
        assert_eq!(v, Some(n), "a write acknowledged by the old active is missing");
    }
    cluster.wait_converged(&everyone, Duration::from_secs(20));
}

#[test]
fn a_partitioned_minority_refuses_writes_and_the_stripe_converges_after_healing() {
    let mut cluster = Cluster::start(Spec { servers: vec![true; 3], voters: 0, relayed: true, data_storage: Vec::new() });
    let everyone = [0, 1, 2];
    let old = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mut minority_con = cluster.conn(old).unwrap();
    let history = with_writers(&mut cluster, 2, 50, |c| c.partition(&[old]));
    // The isolated old active acknowledges nothing.
    let r: redis::RedisResult<String> = redis::cmd("SET").arg("minority").arg("x").query(&mut minority_con);
    assert!(r.is_err(), "the isolated server acknowledged a write: {r:?}");
    let majority: Vec<usize> = everyone.iter().copied().filter(|&i| i != old).collect();
    let new = cluster.wait_stable(&majority, Duration::from_secs(30));
    assert_ne!(new, old);
    assert_all_present(&cluster, new, &history);
    cluster.heal();
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    assert_all_present(&cluster, active, &history);
    let mut con = cluster.conn(active).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("minority").query(&mut con).unwrap();
    assert_eq!(v, None, "a write refused by the minority appeared");
    cluster.wait_converged(&everyone, Duration::from_secs(20));
}

/// Restarts mirror `i` and checks it rejoins (with a new node id unless restartable).
fn restart_a_mirror(restartable: bool, wipe: bool) {
    let mut cluster = Cluster::start(Spec { servers: vec![true, true, restartable], voters: 0, relayed: false, data_storage: Vec::new() });
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mirror = (0..3).rev().find(|&i| i != active).expect("a mirror");
    let before = cluster.node_id(mirror);
    let mut con = cluster.conn(active).unwrap();
    for n in 0..200 {
        let _: () = redis::cmd("SET").arg(format!("k{n}")).arg(n).query(&mut con).unwrap();
    }
    cluster.kill9(mirror);
    if wipe {
        std::fs::remove_dir_all(cluster.data_dir(mirror)).expect("wipe the data directory");
    }
    for n in 200..400 {
        let _: () = redis::cmd("SET").arg(format!("k{n}")).arg(n).query(&mut con).unwrap();
    }
    cluster.spawn(mirror);
    cluster.wait_stable(&everyone, Duration::from_secs(30));
    let after = cluster.node_id(mirror);
    if restartable && !wipe {
        assert_eq!(before, after, "a restartable mirror keeps its node id");
    } else {
        assert_ne!(before, after, "a mirror that lost its state must rejoin as a new member");
    }
    cluster.wait_converged(&everyone, Duration::from_secs(20));
    // Only the three current members remain in the stripe.
    let (_, text) = cluster.ctl(&["status"]);
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn a_restartable_mirror_restarts_and_catches_up() {
    restart_a_mirror(true, false);
}

#[test]
fn a_non_persistent_mirror_rejoins_as_a_new_member() {
    restart_a_mirror(false, false);
}

#[test]
fn hot_swap_with_an_empty_data_directory_joins_and_syncs() {
    restart_a_mirror(true, true);
}

#[test]
fn stop_refuses_an_active_without_a_standby_unless_forced() {
    let cluster = Cluster::start(Spec::servers(3));
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mirrors: Vec<usize> = everyone.iter().copied().filter(|&i| i != active).collect();
    for &m in &mirrors {
        let (ok, out) = cluster.ctl(&["stop", "--name", &cluster.members[m].name]);
        assert!(ok, "{out}");
    }
    let name = cluster.members[active].name.clone();
    let (ok, out) = cluster.ctl(&["stop", "--name", &name]);
    assert!(!ok, "stopping the last server must be refused: {out}");
    assert!(out.contains("no mirror is PASSIVE-STANDBY") && out.contains("--force"), "{out}");
    assert_eq!(cluster.state(active), "ACTIVE-COORDINATOR");
    let (ok, out) = cluster.ctl(&["stop", "--name", &name, "--force"]);
    assert!(ok, "{out}");
    assert_eq!(cluster.state(active), "STOPPED");
}

#[test]
fn stopping_an_active_with_a_standby_hands_over_first() {
    let cluster = Cluster::start(Spec::servers(3));
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let (ok, out) = cluster.ctl(&["stop", "--name", &cluster.members[active].name]);
    assert!(ok, "{out}");
    let others: Vec<usize> = everyone.iter().copied().filter(|&i| i != active).collect();
    cluster.wait_stable(&others, Duration::from_secs(10));
}

#[test]
fn failover_hands_leadership_to_the_named_mirror() {
    let cluster = Cluster::start(Spec::servers(3));
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let target = (active + 1) % 3;
    let (ok, out) = cluster.ctl(&["failover", "--stripe", "A", "--to", &cluster.members[target].name]);
    assert!(ok, "{out}");
    assert_eq!(cluster.wait_stable(&everyone, Duration::from_secs(10)), target);
    let (ok, out) = cluster.ctl(&["failover", "--stripe", "A", "--to", "nobody"]);
    assert!(!ok && out.contains("not a PASSIVE-STANDBY mirror"), "{out}");
}

#[test]
fn shutdown_stops_mirrors_then_the_active_and_any_restart_order_is_safe() {
    let mut cluster = Cluster::start(Spec { servers: vec![true; 2], voters: 1, relayed: false, data_storage: Vec::new() });
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mut con = cluster.conn(active).unwrap();
    for n in 0..100 {
        let _: () = redis::cmd("SET").arg(format!("k{n}")).arg(n).query(&mut con).unwrap();
    }
    let (ok, out) = cluster.ctl(&["shutdown"]);
    assert!(ok, "{out}");
    let order: Vec<&str> = out.lines().map(|l| l.split(':').next().unwrap_or("")).collect();
    assert_eq!(order.last().copied(), Some(cluster.members[active].name.as_str()), "the active stops last: {out}");
    for i in everyone {
        assert!(cluster.wait_exit(i, Duration::from_secs(10)).is_some(), "{} still runs", cluster.members[i].name);
    }
    // Restart in the reverse order: the voter first, the old active last.
    for i in everyone.into_iter().rev() {
        cluster.spawn(i);
    }
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mut con = cluster.conn(active).unwrap();
    for n in 0..100 {
        let v: Option<i64> = redis::cmd("GET").arg(format!("k{n}")).query(&mut con).unwrap();
        assert_eq!(v, Some(n));
    }
}

/// The voter trap: entries committed on {active, voter} only, then the active dies.
/// The mirror is behind; the voter holds the entries and must bring it up to date.
#[test]
fn the_voter_brings_a_lagging_mirror_up_to_date_after_the_active_dies() {
    let mut cluster = Cluster::start(Spec { servers: vec![true, true], voters: 1, relayed: false, data_storage: Vec::new() });
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mirror = 1 - active;
    cluster.sigstop(mirror);
    let mut con = cluster.conn(active).unwrap();
    for n in 0..50 {
        let _: () = redis::cmd("SET").arg(format!("trap{n}")).arg(n).query(&mut con).unwrap();
    }
    cluster.kill9(active);
    cluster.sigcont(mirror);
    let survivors = [mirror, 2];
    assert_eq!(cluster.wait_stable(&survivors, Duration::from_secs(30)), mirror);
    let mut con = cluster.conn(mirror).unwrap();
    for n in 0..50 {
        let v: Option<i64> = redis::cmd("GET").arg(format!("trap{n}")).query(&mut con).unwrap();
        assert_eq!(v, Some(n), "a write committed on the active and the voter was lost");
    }
}

#[test]
fn a_mirror_with_less_data_storage_is_refused_with_a_clear_error() {
    let mut cluster =
        Cluster::configure(Spec { servers: vec![true, true, true], voters: 0, relayed: false, data_storage: vec!["1g", "1g", "100m"] });
    for i in 0..3 {
        cluster.spawn(i);
    }
    let status = cluster.wait_exit(2, Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "the small mirror must stop with an error");
    assert!(cluster.stderr(2).contains("data-storage"), "{}", cluster.stderr(2));
    let active = cluster.wait_stable(&[0, 1], Duration::from_secs(30));
    assert!(cluster.stderr(active).contains("data-storage"), "the active says why too:\n{}", cluster.stderr(active));
}

/// A new member whose entries the active has purged behind a snapshot is sent the
/// snapshot, then the log after it.
#[test]
fn a_mirror_behind_the_purged_log_is_sent_a_snapshot() {
    let mut cluster = Cluster::start(Spec { servers: vec![true, true, false], voters: 0, relayed: false, data_storage: Vec::new() });
    let everyone = [0, 1, 2];
    let mut active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mirror = 2;
    if active == mirror {
        let (ok, out) = cluster.ctl(&["failover", "--stripe", "A", "--to", "server1"]);
        assert!(ok, "{out}");
        active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    }
    cluster.kill9(mirror);
    let mut con = cluster.conn(active).unwrap();
    for n in 0..1500 {
        let _: () = redis::cmd("SET").arg(format!("k{n}")).arg(n).query(&mut con).unwrap();
    }
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    cluster.spawn(mirror);
    cluster.wait_stable(&everyone, Duration::from_secs(30));
    cluster.wait_converged(&everyone, Duration::from_secs(20));
    assert!(cluster.stderr(mirror).contains("snapshot installed"), "{}", support::cluster::tail(&cluster.stderr(mirror), 30));
}

/// A client of a mirror is served as if it were connected to the active, and a
/// message published on any server reaches subscribers on every server.
#[test]
fn clients_of_a_mirror_are_served_and_messages_reach_every_server() {
    let cluster = Cluster::start(Spec::servers(3));
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let (mirror, other) = ((active + 1) % 3, (active + 2) % 3);
    let mut m = cluster.conn(mirror).unwrap();
    let _: () = redis::cmd("SET").arg("x").arg("1").query(&mut m).unwrap();
    let v: i64 = redis::cmd("INCR").arg("x").query(&mut m).unwrap();
    assert_eq!(v, 2);
    let (a, b): (i64, String) = redis::pipe().atomic().cmd("INCR").arg("x").cmd("GET").arg("x").query(&mut m).unwrap();
    assert_eq!((a, b.as_str()), (3, "3"));
    let role: redis::Value = redis::cmd("ROLE").query(&mut m).unwrap();
    assert!(format!("{role:?}").contains("slave"), "{role:?}");
    let mut a_con = cluster.conn(active).unwrap();
    let v: String = redis::cmd("GET").arg("x").query(&mut a_con).unwrap();
    assert_eq!(v, "3");

    tracing::info!("--- WATCH through a mirror: held by the active, checked at EXEC");
    let _: () = redis::cmd("WATCH").arg("x").query(&mut m).unwrap();
    let _: () = redis::cmd("SET").arg("x").arg("changed on the active").query(&mut a_con).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut m).unwrap();
    let _: () = redis::cmd("SET").arg("x").arg("from the mirror").query(&mut m).unwrap();
    let exec: redis::Value = redis::cmd("EXEC").query(&mut m).unwrap();
    assert_eq!(exec, redis::Value::Nil, "a watched key changed: EXEC must fail");
    let _: () = redis::cmd("WATCH").arg("x").query(&mut m).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut m).unwrap();
    let _: () = redis::cmd("SET").arg("x").arg("from the mirror").query(&mut m).unwrap();
    let (got,): (String,) = redis::cmd("EXEC").query(&mut m).unwrap();
    assert_eq!(got, "OK");
    let v: String = redis::cmd("GET").arg("x").query(&mut a_con).unwrap();
    assert_eq!(v, "from the mirror");
    // A transaction queued on the mirror with a command the active refuses aborts whole.
    let _: () = redis::cmd("MULTI").query(&mut m).unwrap();
    let _: () = redis::cmd("SET").arg("y").arg("1").query(&mut m).unwrap();
    let err = redis::cmd("NOSUCHCOMMAND").query::<()>(&mut m).unwrap_err();
    assert!(err.to_string().contains("unknown command"), "{err}");
    let err = redis::cmd("EXEC").query::<redis::Value>(&mut m).unwrap_err();
    assert_eq!(err.code(), Some("EXECABORT"), "{err}");
    let y: Option<String> = redis::cmd("GET").arg("y").query(&mut a_con).unwrap();
    assert_eq!(y, None);

    let mut sub_con = redis::Client::open(cluster.url(other)).unwrap().get_connection().unwrap();
    let mut sub = sub_con.as_pubsub();
    sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sub.subscribe("news").unwrap();
    let _: i64 = redis::cmd("PUBLISH").arg("news").arg("from the active").query(&mut a_con).unwrap();
    assert_eq!(sub.get_message().unwrap().get_payload::<String>().unwrap(), "from the active");
    let _: i64 = redis::cmd("PUBLISH").arg("news").arg("from a mirror").query(&mut m).unwrap();
    assert_eq!(sub.get_message().unwrap().get_payload::<String>().unwrap(), "from a mirror");
}

/// Pre-vote: a mirror cut off for several election times comes back without
/// deposing the healthy active (its failed elections raised no term).
#[test]
fn a_returning_partitioned_mirror_does_not_depose_the_active() {
    let cluster = Cluster::start(Spec { servers: vec![true; 3], voters: 0, relayed: true, data_storage: Vec::new() });
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let mirror = (active + 1) % 3;
    let term = || {
        let (_, text) = cluster.ctl(&["status"]);
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(cluster.members[active].name.as_str()))
            .and_then(|l| l.split_whitespace().nth(5).map(str::to_string))
    };
    let before = term();
    cluster.partition(&[mirror]);
    assert!(wait_until(Duration::from_secs(20), || cluster.state(mirror) == "ELECTION"), "the cut-off mirror never lost the active");
    // Several of its election timeouts pass while it is cut off.
    let cut_at = Instant::now();
    assert!(
        !wait_until(Duration::from_secs(3), || cluster.state(active) != "ACTIVE-COORDINATOR"),
        "the active lost its place during the cut"
    );
    assert!(cut_at.elapsed() >= Duration::from_secs(3));
    cluster.heal();
    assert_eq!(cluster.wait_stable(&everyone, Duration::from_secs(30)), active, "the returning mirror deposed the active");
    assert_eq!(term(), before, "the active's term changed: the returning mirror forced an election");
}
