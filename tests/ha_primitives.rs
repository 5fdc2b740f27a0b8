//! Issue 13's session story in a stripe of three real servers with a short
//! reconnect window: a lock holder survives a kill -9 of the active by resuming its
//! session on another server within the window; a holder that never returns loses
//! the lock when its window ends and the waiter gets it with a larger token; a
//! write fenced by the old token is refused; group events reach every server in
//! join/leave order, the last one from a session whose window ran out.

mod support;

use std::time::{Duration, Instant};

use redis::{Connection, Value};
use support::cluster::{Cluster, Spec};

/// Long enough for a kill -9, an election and a reconnect on a loaded test machine;
/// short enough for a test.
const WINDOW: &str = "5s";

fn stripe(window: &str) -> (Cluster, usize) {
    support::log_phases();
    let mut cluster = Cluster::configure(Spec::servers(3));
    cluster.add_cluster_setting(&format!("client-reconnect-window = \"{window}\"")).unwrap();
    cluster.start_all();
    let active = cluster.wait_formed();
    (cluster, active)
}

fn locks(con: &mut Connection, name: &str) -> Vec<(String, i64, String, i64, i64)> {
    redis::cmd("TANDEM.LOCKS").arg(name).query(con).unwrap()
}

/// Waits (bounded) until `TANDEM.LOCKS name` answers what `ok` accepts.
fn wait_locks(cluster: &Cluster, at: usize, name: &str, ok: impl Fn(&[(String, i64, String, i64, i64)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        if let Ok(mut con) = cluster.conn(at) {
            if let Ok(rows) = redis::cmd("TANDEM.LOCKS").arg(name).query::<Vec<(String, i64, String, i64, i64)>>(&mut con) {
                if ok(&rows) {
                    return;
                }
                last = rows;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("lock {name} never reached the expected state; last seen {last:?}\n{}", cluster.all_stderr());
}

fn fenced_set(con: &mut Connection, token: i64, value: &str) -> redis::RedisResult<Value> {
    redis::cmd("TANDEM.FENCED").arg("{doc}lock").arg(token).arg("SET").arg("{doc}body").arg(value).query(con)
}

#[test]
fn a_lock_holder_resumes_after_failover_and_a_holder_that_never_returns_gives_way() {
    let (mut cluster, active) = stripe(WINDOW);
    let mirrors: Vec<usize> = (0..3).filter(|&i| i != active).collect();
    let (waiter_server, resume_server) = (mirrors[0], mirrors[1]);

    tracing::info!("--- the holder opens a session on the active and takes the lock");
    let mut holder = cluster.conn(active).unwrap();
    let session: String = redis::cmd("TANDEM.SESSION").arg("OPEN").query(&mut holder).unwrap();
    let first: i64 = redis::cmd("TANDEM.LOCK").arg("{doc}lock").query(&mut holder).unwrap();
    assert_eq!(fenced_set(&mut holder, first, "v1").unwrap(), Value::Okay);

    tracing::info!("--- another client waits for the lock through a mirror");
    let url = cluster.url(waiter_server);
    let waiter = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        con.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let token: i64 = redis::cmd("TANDEM.LOCK").arg("{doc}lock").arg("WAIT").arg(0).query(&mut con).unwrap();
        (token, con)
    });
    wait_locks(&cluster, active, "{doc}lock", |rows| rows.first().is_some_and(|r| r.4 == 1));

    tracing::info!("--- kill -9 the active: the holder's connection dies with it");
    cluster.kill9(active);
    drop(holder);
    let next = cluster.wait_stable(&mirrors, Duration::from_secs(30));
    assert_ne!(next, active);

    tracing::info!("--- the holder resumes on another server within the window and still holds the lock");
    let mut holder = cluster.conn(resume_server).unwrap();
    let resumed: Value = redis::cmd("TANDEM.SESSION").arg("RESUME").arg(&session).query(&mut holder).unwrap();
    assert_eq!(resumed, Value::Okay);
    let again: i64 = redis::cmd("TANDEM.LOCK").arg("{doc}lock").query(&mut holder).unwrap();
    assert_eq!(again, first, "the resumed session holds the lock with its token");
    let rows = locks(&mut holder, "{doc}lock");
    assert_eq!((rows[0].1, rows[0].2.as_str(), rows[0].4), (first, session.as_str(), 1), "the waiter still waits: {rows:?}");
    assert_eq!(fenced_set(&mut holder, first, "v2").unwrap(), Value::Okay);

    tracing::info!("--- the holder goes away for good: its window ends, the waiter gets the lock");
    drop(holder);
    let (second, mut waiter_con) = waiter.join().unwrap();
    assert!(second > first, "a larger token: {second} > {first}");

    tracing::info!("--- a write fenced by the old token is refused; the new holder's applies");
    let mut late = cluster.conn(next).unwrap();
    let refused = fenced_set(&mut late, first, "stale").unwrap_err();
    assert_eq!(refused.code(), Some("FENCED"), "{refused}");
    assert_eq!(fenced_set(&mut waiter_con, second, "v3").unwrap(), Value::Okay);
    let body: String = redis::cmd("GET").arg("{doc}body").query(&mut late).unwrap();
    assert_eq!(body, "v3");
    let gone = redis::cmd("TANDEM.SESSION").arg("RESUME").arg(&session).query::<Value>(&mut late).unwrap_err();
    assert_eq!(gone.code(), Some("NOSESSION"));
    cluster.wait_converged(&mirrors, Duration::from_secs(20));
}

#[test]
fn membership_events_arrive_on_every_server_in_join_and_leave_order() {
    let (cluster, _active) = stripe("2s");
    tracing::info!("--- a subscriber on every server");
    let mut connections: Vec<Connection> = (0..3).map(|i| cluster.conn(i).unwrap()).collect();
    let mut subscribers: Vec<redis::PubSub> = connections
        .iter_mut()
        .map(|con| {
            con.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut pubsub = con.as_pubsub();
            pubsub.subscribe("__tandem__:group:cluster").unwrap();
            pubsub
        })
        .collect();
    tracing::info!("--- members join and leave through every server");
    let mut a = cluster.conn(0).unwrap();
    let mut b = cluster.conn(1).unwrap();
    let mut c = cluster.conn(2).unwrap();
    let join = |con: &mut Connection, member: &str| -> i64 {
        redis::cmd("TANDEM.GROUP").arg("JOIN").arg("cluster").arg(member).query(con).unwrap()
    };
    assert_eq!(join(&mut a, "node-a"), 1);
    assert_eq!(join(&mut b, "node-b"), 1);
    let left: i64 = redis::cmd("TANDEM.GROUP").arg("LEAVE").arg("cluster").arg("node-a").query(&mut a).unwrap();
    assert_eq!(left, 1);
    assert_eq!(join(&mut c, "node-c"), 1);
    let closed: i64 = redis::cmd("TANDEM.SESSION").arg("CLOSE").query(&mut b).unwrap();
    assert_eq!(closed, 1);
    tracing::info!("--- node-c's client disconnects: it leaves when its window ends");
    drop(c);
    let expected = ["join node-a", "join node-b", "leave node-a", "join node-c", "leave node-b", "leave node-c"];
    for (i, pubsub) in subscribers.iter_mut().enumerate() {
        let seen: Vec<String> = expected
            .iter()
            .map(|_| pubsub.get_message().unwrap_or_else(|e| panic!("server {i}: {e}")).get_payload::<String>().unwrap())
            .collect();
        assert_eq!(seen, expected, "server {i} saw the events in log order");
    }
    let members: Vec<(String, String)> = redis::cmd("TANDEM.GROUP").arg("MEMBERS").arg("cluster").query(&mut a).unwrap();
    assert!(members.is_empty(), "{members:?}");
}

/// The key `lock:i` with the lowest `i` in the second stripe of an array of two.
fn name_in_second_stripe() -> String {
    (0..).map(|i| format!("lock:{i}")).find(|k| tandem::cluster::slot::key_slot(k.as_bytes()) >= 8192).unwrap_or_default()
}

fn expires_in_ms(con: &mut Connection, session: &str) -> Option<i64> {
    let info: std::collections::HashMap<String, Value> = redis::cmd("TANDEM.SESSION").arg("INFO").arg(session).query(con).ok()?;
    match info.get("expires-in-ms") {
        Some(Value::Int(ms)) => Some(*ms),
        _ => None,
    }
}

#[test]
fn in_an_array_a_session_is_renewed_and_ends_in_the_stripe_of_its_lock() {
    support::log_phases();
    let mut cluster = Cluster::configure(Spec::servers(1).stripes(2));
    cluster.add_cluster_setting("client-reconnect-window = \"2s\"").unwrap();
    cluster.start_all();
    cluster.wait_array_formed();
    let name = name_in_second_stripe();

    tracing::info!("--- a client of the first stripe's server locks a name of the second stripe");
    let mut client = cluster.conn(0).unwrap();
    let token: i64 = redis::cmd("TANDEM.LOCK").arg(&name).query(&mut client).unwrap();
    let mut b = cluster.conn(1).unwrap();
    let rows = locks(&mut b, &name);
    assert_eq!(rows.first().map(|r| r.1), Some(token), "{rows:?}");
    let session = rows[0].2.clone();
    let everywhere = locks(&mut client, "lock:*");
    assert_eq!(everywhere, rows, "TANDEM.LOCKS covers the whole array from any server");

    tracing::info!("--- the first stripe's server renews the session in the second stripe");
    let first = expires_in_ms(&mut b, &session).expect("the session is recorded where its lock is");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = expires_in_ms(&mut b, &session).expect("the session lives while its connection does");
        if now > first {
            break;
        }
        assert!(Instant::now() < deadline, "no renewal reached the second stripe\n{}", cluster.all_stderr());
        std::thread::sleep(Duration::from_millis(20));
    }

    tracing::info!("--- the client goes away: the lock is released when the window ends");
    drop(client);
    wait_locks(&cluster, 1, &name, |rows| rows.is_empty());
    assert_eq!(expires_in_ms(&mut b, &session), None, "the session ended");

    tracing::info!("--- an explicit session: resumed and closed through the other stripe's server");
    let mut a = cluster.conn(0).unwrap();
    let session: String = redis::cmd("TANDEM.SESSION").arg("OPEN").query(&mut a).unwrap();
    let token: i64 = redis::cmd("TANDEM.LOCK").arg(&name).query(&mut a).unwrap();
    drop(a);
    let resumed: Value = redis::cmd("TANDEM.SESSION").arg("RESUME").arg(&session).query(&mut b).unwrap();
    assert_eq!(resumed, Value::Okay);
    let again: i64 = redis::cmd("TANDEM.LOCK").arg(&name).query(&mut b).unwrap();
    assert_eq!(again, token, "the resumed session holds its lock in the second stripe");
    let closed: i64 = redis::cmd("TANDEM.SESSION").arg("CLOSE").query(&mut b).unwrap();
    assert_eq!(closed, 1);
    assert!(locks(&mut b, &name).is_empty(), "closing released the lock at once");
    let mut a = cluster.conn(0).unwrap();
    let gone = redis::cmd("TANDEM.SESSION").arg("RESUME").arg(&session).query::<Value>(&mut a).unwrap_err();
    assert_eq!(gone.code(), Some("NOSESSION"), "closed in every stripe");
}

/// A blocking `TANDEM.LOCK name WAIT 0` on server `at`, after `RESUME session` if given.
fn wait_for_lock(cluster: &Cluster, at: usize, name: &str, session: Option<&str>) -> std::thread::JoinHandle<redis::RedisResult<i64>> {
    let url = cluster.url(at);
    let (name, session) = (name.to_string(), session.map(str::to_string));
    std::thread::spawn(move || {
        let mut con = redis::Client::open(url)?.get_connection()?;
        con.set_read_timeout(Some(Duration::from_secs(90)))?;
        if let Some(session) = session {
            let _: Value = redis::cmd("TANDEM.SESSION").arg("RESUME").arg(session).query(&mut con)?;
        }
        let token: i64 = redis::cmd("TANDEM.LOCK").arg(&name).arg("WAIT").arg(0).query(&mut con)?;
        // Holds the connection (and so the session) until the test ends.
        std::mem::forget(con);
        Ok(token)
    })
}

#[test]
fn a_waiter_whose_server_died_resumes_elsewhere_and_keeps_its_place_in_the_queue() {
    let (mut cluster, active) = stripe(WINDOW);
    let mirrors: Vec<usize> = (0..3).filter(|&i| i != active).collect();
    let name = "{q}lock";

    tracing::info!("--- a holder on a mirror; the first waiter on the active, the second on the mirror");
    let mut holder = cluster.conn(mirrors[0]).unwrap();
    let token: i64 = redis::cmd("TANDEM.LOCK").arg(name).query(&mut holder).unwrap();
    let mut first = cluster.conn(active).unwrap();
    let first_session: String = redis::cmd("TANDEM.SESSION").arg("OPEN").query(&mut first).unwrap();
    drop(first);
    let first_wait = wait_for_lock(&cluster, active, name, Some(&first_session));
    wait_locks(&cluster, active, name, |rows| rows.first().is_some_and(|r| r.4 == 1));
    let second_wait = wait_for_lock(&cluster, mirrors[0], name, None);
    wait_locks(&cluster, active, name, |rows| rows.first().is_some_and(|r| r.4 == 2));

    tracing::info!("--- kill -9 the active: the first waiter's connection dies with it");
    cluster.kill9(active);
    assert!(first_wait.join().unwrap().is_err(), "its connection was cut");
    let next = cluster.wait_stable(&mirrors, Duration::from_secs(30));

    tracing::info!("--- it resumes on another server and asks again: it keeps its place");
    let first_wait = wait_for_lock(&cluster, mirrors[1], name, Some(&first_session));
    wait_locks(&cluster, next, name, |rows| rows.first().is_some_and(|r| r.4 == 2));

    tracing::info!("--- the holder unlocks: the first waiter gets the lock, the second still waits");
    let released: i64 = redis::cmd("TANDEM.UNLOCK").arg(name).arg(token).query(&mut holder).unwrap();
    assert_eq!(released, 1);
    let granted = first_wait.join().unwrap().unwrap();
    assert!(granted > token);
    let rows = locks(&mut holder, name);
    assert_eq!((rows[0].1, rows[0].2.as_str(), rows[0].4), (granted, first_session.as_str(), 1), "{rows:?}");
    assert!(!second_wait.is_finished(), "the second waiter waits on");
}
