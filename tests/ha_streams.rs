//! Streams on a stripe of three real servers: every member assigns the same IDs and
//! holds the same groups; a consumer blocked in XREADGROUP on a mirror is woken by
//! an XADD made through another member, and keeps waiting through kill -9 of the
//! active — its mirror sends the wait to the new active — until an entry arrives.

mod support;

use std::time::Duration;

use support::cluster::{Cluster, Spec};
use support::wait_until;

type Streams = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;

fn blocked_clients(cluster: &Cluster, i: usize) -> usize {
    let Ok(mut con) = cluster.conn(i) else { return 0 };
    let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap_or_default();
    info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// A consumer blocked in XREADGROUP through server `i`; its thread returns what it read.
fn blocked_reader(cluster: &Cluster, i: usize, consumer: &'static str) -> std::thread::JoinHandle<redis::RedisResult<Option<Streams>>> {
    let url = cluster.url(i);
    std::thread::spawn(move || {
        let mut con = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(5))?;
        con.set_read_timeout(Some(Duration::from_secs(60)))?;
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("workers")
            .arg(consumer)
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg("jobs")
            .arg(">")
            .query(&mut con)
    })
}

fn the_others(active: usize) -> (usize, usize) {
    let others: Vec<usize> = (0..3).filter(|&i| i != active).collect();
    (others[0], others[1])
}

/// The member holding the one waiting client (the active, wherever the client
/// connected), once there is one.
fn wait_holder(cluster: &Cluster) -> usize {
    let mut holder = None;
    let found = wait_until(Duration::from_secs(20), || {
        holder = (0..3).find(|&i| blocked_clients(cluster, i) == 1);
        holder.is_some()
    });
    assert!(found, "no member holds the waiting client\n{}", cluster.all_stderr());
    holder.unwrap_or_default()
}

/// Each member's own log lines (Raft's chatter left out), for failure messages.
fn server_logs(cluster: &Cluster) -> String {
    (0..3)
        .map(|i| {
            let lines: Vec<String> = cluster.stderr(i).lines().filter(|l| l.contains("tandem::")).map(String::from).collect();
            format!("==== {} ====\n{}", cluster.members[i].name, lines.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn init_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

#[test]
fn every_member_assigns_the_same_ids_and_groups() {
    init_logs();
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    tracing::info!("--- add entries through every server");
    let mut ids = Vec::new();
    for i in 0..30 {
        let mut con = cluster.conn(i % 3).unwrap();
        let id: String = redis::cmd("XADD").arg("log").arg("MAXLEN").arg("~").arg(10).arg("*").arg("n").arg(i).query(&mut con).unwrap();
        ids.push(id);
    }
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| {
        let (ms, seq) = id.split_once('-').unwrap();
        (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
    });
    assert_eq!(ids, sorted, "IDs grow in the order the entries were acknowledged");
    let mut con = cluster.conn(active).unwrap();
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("log").arg("g").arg("0").query(&mut con).unwrap();
    let _: Streams = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("COUNT")
        .arg(3)
        .arg("STREAMS")
        .arg("log")
        .arg(">")
        .query(&mut con)
        .unwrap();
    tracing::info!("--- every member holds the same stream");
    cluster.wait_converged(&[0, 1, 2], Duration::from_secs(20));
}

#[test]
fn a_blocked_group_reader_on_a_mirror_is_woken_by_an_xadd_on_another_member() {
    init_logs();
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let (mirror, other) = the_others(active);
    let mut con = cluster.conn(active).unwrap();
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("jobs").arg("workers").arg("$").arg("MKSTREAM").query(&mut con).unwrap();
    tracing::info!("--- block on a mirror");
    let reader = blocked_reader(&cluster, mirror, "alice");
    wait_holder(&cluster);
    tracing::info!("--- add through the other mirror");
    let mut con = cluster.conn(other).unwrap();
    let id: String = redis::cmd("XADD").arg("jobs").arg("*").arg("job").arg("1").query(&mut con).unwrap();
    let read = reader.join().unwrap().expect("a reply").expect("served");
    assert_eq!(read, vec![("jobs".to_string(), vec![(id, vec![("job".to_string(), "1".to_string())])])]);
    cluster.wait_converged(&[0, 1, 2], Duration::from_secs(20));
}

#[test]
fn a_blocked_group_reader_keeps_waiting_through_kill9_of_the_active() {
    init_logs();
    let mut cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mut con = cluster.conn(active).unwrap();
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("jobs").arg("workers").arg("$").arg("MKSTREAM").query(&mut con).unwrap();
    drop(con);
    tracing::info!("--- block on a mirror");
    let (mirror, _) = the_others(active);
    let reader = blocked_reader(&cluster, mirror, "alice");
    // The wait lives on whichever member is the active now (under load leadership
    // may have moved since the stripe formed).
    let first = wait_holder(&cluster);
    assert_ne!(first, mirror, "the reader's own server became the active: nothing forwards its wait");
    let other = (0..3).find(|&i| i != first && i != mirror).unwrap_or_default();
    tracing::info!("--- kill -9 the active");
    cluster.kill9(first);
    let second = cluster.wait_stable(&[mirror, other], Duration::from_secs(30));
    tracing::info!("--- the wait moved to the new active");
    if !wait_until(Duration::from_secs(20), || blocked_clients(&cluster, second) == 1) {
        let outcome = if reader.is_finished() { format!("{:?}", reader.join()) } else { "still waiting".into() };
        panic!(
            "the wait was not sent to the new active (mirror {mirror}, new active {second}); the reader: {outcome}\n{}",
            server_logs(&cluster)
        );
    }
    tracing::info!("--- add an entry through the other member");
    let writer = if second == mirror { other } else { mirror };
    let mut con = cluster.conn(writer).unwrap();
    let id: String = redis::cmd("XADD").arg("jobs").arg("*").arg("job").arg("after").query(&mut con).unwrap();
    let read = reader.join().unwrap().unwrap_or_else(|e| panic!("the reader saw {e}\n{}", cluster.all_stderr())).expect("served");
    assert_eq!(read, vec![("jobs".to_string(), vec![(id.clone(), vec![("job".to_string(), "after".to_string())])])]);
    let mut con = cluster.conn(second).unwrap();
    let pending: (usize, String, String, Vec<(String, String)>) =
        redis::cmd("XPENDING").arg("jobs").arg("workers").query(&mut con).unwrap();
    assert_eq!((pending.0, pending.1), (1, id));
    cluster.wait_converged(&[mirror, other], Duration::from_secs(20));
}
