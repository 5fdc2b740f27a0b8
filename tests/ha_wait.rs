//! WAIT on a stripe of three real servers: it counts the mirrors holding the
//! client's writes, for a client of the active and for a client of a mirror (whose
//! WAIT is asked of the active), answers the count it has when its timeout passes
//! with a mirror paused, and waits for a resumed mirror to catch up.

mod support;

use support::cluster::{Cluster, Spec};

fn wait(con: &mut redis::Connection, replicas: i64, timeout_ms: u64) -> i64 {
    redis::cmd("WAIT").arg(replicas).arg(timeout_ms).query(con).expect("WAIT answers")
}

fn set(con: &mut redis::Connection, key: &str) {
    let _: () = redis::cmd("SET").arg(key).arg("v").query(con).expect("SET");
}

#[test]
fn wait_counts_the_mirrors_that_hold_the_clients_writes() {
    support::log_phases();
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mirrors: Vec<usize> = (0..3).filter(|&i| i != active).collect();
    let mut of_active = cluster.conn(active).unwrap();
    let mut of_mirror = cluster.conn(mirrors[0]).unwrap();

    tracing::info!("--- both mirrors take every write: WAIT 2 answers 2, from the active and through a mirror");
    set(&mut of_active, "a");
    assert_eq!(wait(&mut of_active, 2, 30_000), 2);
    set(&mut of_mirror, "b");
    assert_eq!(wait(&mut of_mirror, 2, 30_000), 2);
    assert!(wait(&mut of_active, 0, 0) >= 0, "WAIT 0 0 answers at once");

    tracing::info!("--- inside MULTI the count is given at once");
    let (n,): (i64,) = redis::pipe().atomic().cmd("WAIT").arg(2).arg(0).query(&mut of_active).unwrap();
    assert!((0..=2).contains(&n), "{n}");

    tracing::info!("--- one mirror paused: writes still commit, WAIT 2 gives 1 when its timeout passes");
    cluster.sigstop(mirrors[1]);
    set(&mut of_active, "c");
    assert_eq!(wait(&mut of_active, 2, 300), 1);
    assert_eq!(wait(&mut of_active, 1, 0), 1, "the running mirror holds the write");
    set(&mut of_mirror, "d");
    assert_eq!(wait(&mut of_mirror, 2, 300), 1, "asked of the active through the running mirror");

    tracing::info!("--- resumed, the mirror catches up and WAIT 2 answers 2 again");
    cluster.sigcont(mirrors[1]);
    assert_eq!(wait(&mut of_active, 2, 60_000), 2);

    tracing::info!("--- both mirrors paused: the active, suspended without a quorum, still answers WAIT");
    cluster.sigstop(mirrors[0]);
    cluster.sigstop(mirrors[1]);
    let suspended = support::cluster::wait_until(std::time::Duration::from_secs(30), || cluster.state(active) == "ACTIVE-SUSPENDED");
    assert!(suspended, "the active did not notice it lost its quorum: {}", cluster.state(active));
    // Nothing was applied since the pause (no write commits without a quorum): both
    // mirrors hold all of it, and WAIT answers at once instead of looping on itself.
    assert_eq!(wait(&mut of_active, 3, 300), 2);
    let pong: String = redis::cmd("PING").query(&mut of_active).expect("the active still serves");
    assert_eq!(pong, "PONG");
    cluster.sigcont(mirrors[0]);
    cluster.sigcont(mirrors[1]);
}
