//! Streams through a real client (the `redis` crate) and raw RESP3: entries, groups,
//! blocking XREAD / XREADGROUP woken by another client, the node limits set with
//! CONFIG SET, and DUMP/RESTORE.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use redis::Value;
use support::{wait_until, write_single_server_config, ConfigServer, Server};

fn blocked_clients(con: &mut redis::Connection) -> usize {
    let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
    info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn wait_blocked(con: &mut redis::Connection, n: usize) {
    assert!(wait_until(Duration::from_secs(10), || blocked_clients(con) == n), "{n} clients never blocked");
}

/// `XREAD`-shaped reply: stream → [(id, [(field, value)])].
type Streams = Vec<(String, Entries)>;

/// Entries as XRANGE replies them: (id, [(field, value)]).
type Entries = Vec<(String, Vec<(String, String)>)>;

#[test]
fn entries_added_are_read_back_in_order() {
    let server = Server::start();
    let mut con = server.conn();
    let first: String = redis::cmd("XADD").arg("orders").arg("*").arg("item").arg("book").arg("qty").arg("1").query(&mut con).unwrap();
    let second: String = redis::cmd("XADD").arg("orders").arg("*").arg("item").arg("pen").arg("qty").arg("3").query(&mut con).unwrap();
    assert!(first < second || first.len() < second.len(), "{first} then {second}");
    let len: usize = redis::cmd("XLEN").arg("orders").query(&mut con).unwrap();
    assert_eq!(len, 2);
    let range: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE").arg("orders").arg("-").arg("+").query(&mut con).unwrap();
    assert_eq!(range[0], (first.clone(), vec![("item".into(), "book".into()), ("qty".into(), "1".into())]));
    assert_eq!(range[1].0, second);
    let read: Streams = redis::cmd("XREAD").arg("STREAMS").arg("orders").arg(&first).query(&mut con).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].1[0].0, second);
    let kind: String = redis::cmd("TYPE").arg("orders").query(&mut con).unwrap();
    assert_eq!(kind, "stream");
}

#[test]
fn xread_block_is_woken_by_an_xadd_from_another_client() {
    let server = Server::start();
    let url = server.url();
    let mut con = server.conn();
    let _: String = redis::cmd("XADD").arg("events").arg("*").arg("old").arg("1").query(&mut con).unwrap();
    let waiter = std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let read: Option<Streams> =
            redis::cmd("XREAD").arg("BLOCK").arg(20000).arg("STREAMS").arg("events").arg("$").query(&mut c).unwrap();
        read
    });
    wait_blocked(&mut con, 1);
    let id: String = redis::cmd("XADD").arg("events").arg("*").arg("new").arg("2").query(&mut con).unwrap();
    let read = waiter.join().unwrap().expect("served, not timed out");
    assert_eq!(read, vec![("events".to_string(), vec![(id, vec![("new".to_string(), "2".to_string())])])]);
}

#[test]
fn xread_block_times_out_with_a_null_reply() {
    let server = Server::start();
    let mut con = server.conn();
    let started = Instant::now();
    let read: Option<Streams> = redis::cmd("XREAD").arg("BLOCK").arg(150).arg("STREAMS").arg("nothing").arg("$").query(&mut con).unwrap();
    assert_eq!(read, None);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let err = redis::cmd("XREAD").arg("BLOCK").arg(-1).arg("STREAMS").arg("s").arg("$").query::<Value>(&mut con).unwrap_err();
    assert_eq!(err.detail(), Some("timeout is negative"));
}

#[test]
fn blocked_group_readers_get_each_entry_once() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("jobs").arg("workers").arg("$").arg("MKSTREAM").query(&mut con).unwrap();
    let mut handles = Vec::new();
    for name in ["w1", "w2"] {
        let url = server.url();
        handles.push(std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let read: Option<Streams> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("workers")
                .arg(name)
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(20000)
                .arg("STREAMS")
                .arg("jobs")
                .arg(">")
                .query(&mut c)
                .unwrap();
            read.expect("served")[0].1[0].1[0].1.clone()
        }));
    }
    wait_blocked(&mut con, 2);
    for job in ["a", "b"] {
        let _: String = redis::cmd("XADD").arg("jobs").arg("*").arg("job").arg(job).query(&mut con).unwrap();
    }
    let mut got: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    got.sort();
    assert_eq!(got, vec!["a", "b"]);
    let pending: (usize, String, String, Vec<(String, String)>) =
        redis::cmd("XPENDING").arg("jobs").arg("workers").query(&mut con).unwrap();
    assert_eq!(pending.0, 2);
    assert_eq!(pending.3, vec![("w1".to_string(), "1".to_string()), ("w2".to_string(), "1".to_string())]);
}

#[test]
fn a_blocked_group_reader_learns_its_stream_or_group_is_gone() {
    let server = Server::start();
    let mut con = server.conn();
    for (setup, expect) in [("DEL", "UNBLOCKED"), ("DESTROY", "NOGROUP"), ("SET", "UNBLOCKED")] {
        let _: () = redis::cmd("XGROUP").arg("CREATE").arg("q").arg("g").arg("$").arg("MKSTREAM").query(&mut con).unwrap();
        let url = server.url();
        let waiter = std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("alice")
                .arg("BLOCK")
                .arg(0)
                .arg("STREAMS")
                .arg("q")
                .arg(">")
                .query::<Value>(&mut c)
        });
        wait_blocked(&mut con, 1);
        match setup {
            "DEL" => redis::cmd("DEL").arg("q").query::<i64>(&mut con).map(drop).unwrap(),
            "DESTROY" => redis::cmd("XGROUP").arg("DESTROY").arg("q").arg("g").query::<i64>(&mut con).map(drop).unwrap(),
            _ => redis::cmd("SET").arg("q").arg("v").query::<()>(&mut con).unwrap(),
        }
        let err = waiter.join().unwrap().unwrap_err();
        assert_eq!(err.code(), Some(expect), "{setup}: {err:?}");
        let _: i64 = redis::cmd("DEL").arg("q").query(&mut con).unwrap();
    }
}

#[test]
fn claims_and_acks_through_a_client() {
    let server = Server::start();
    let mut con = server.conn();
    for i in 0..3 {
        let _: String = redis::cmd("XADD").arg("s").arg(format!("{}-0", i + 1)).arg("n").arg(i).query(&mut con).unwrap();
    }
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("s").arg("g").arg("0").query(&mut con).unwrap();
    let _: Streams = redis::cmd("XREADGROUP").arg("GROUP").arg("g").arg("alice").arg("STREAMS").arg("s").arg(">").query(&mut con).unwrap();
    let claimed: Vec<String> =
        redis::cmd("XCLAIM").arg("s").arg("g").arg("bob").arg(0).arg("1-0").arg("2-0").arg("JUSTID").query(&mut con).unwrap();
    assert_eq!(claimed, vec!["1-0", "2-0"]);
    let auto: (String, Entries, Vec<String>) =
        redis::cmd("XAUTOCLAIM").arg("s").arg("g").arg("carol").arg(0).arg("0").arg("COUNT").arg(1).query(&mut con).unwrap();
    assert_eq!(auto.0, "2-0");
    assert_eq!(auto.1[0].0, "1-0");
    let acked: i64 = redis::cmd("XACK").arg("s").arg("g").arg("1-0").arg("2-0").arg("3-0").query(&mut con).unwrap();
    assert_eq!(acked, 3);
}

/// Reads one RESP reply's first line (enough to see its type) and drains the rest.
fn first_line(stream: &mut std::net::TcpStream, request: &[u8]) -> String {
    stream.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !got.windows(2).any(|w| w == b"\r\n") && Instant::now() < deadline {
        let n = stream.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    // Let the rest of the reply arrive, then drop it.
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_string()
}

#[test]
fn resp3_shapes_are_maps_where_redis_sends_maps() {
    let server = Server::start();
    let mut raw = server.raw();
    assert_eq!(first_line(&mut raw, b"HELLO 3\r\n"), "%7");
    assert_eq!(first_line(&mut raw, b"XADD s 1-0 f v\r\n"), "$3");
    assert_eq!(first_line(&mut raw, b"XREAD STREAMS s 0\r\n"), "%1");
    assert_eq!(first_line(&mut raw, b"XREAD STREAMS s 1\r\n"), "_");
    assert_eq!(first_line(&mut raw, b"XINFO STREAM s\r\n"), "%10");
    assert_eq!(first_line(&mut raw, b"XGROUP CREATE s g 0\r\n"), "+OK");
    assert_eq!(first_line(&mut raw, b"XINFO GROUPS s\r\n"), "*1");
    assert_eq!(first_line(&mut raw, b"XADD s NOMKSTREAM * f v\r\n").chars().next(), Some('$'));
    assert_eq!(first_line(&mut raw, b"XADD missing NOMKSTREAM * f v\r\n"), "_");
    let mut raw2 = server.raw();
    assert_eq!(first_line(&mut raw2, b"XREAD STREAMS s 0\r\n"), "*1");
}

#[test]
fn config_set_node_limits_changes_where_nodes_start() {
    let server = Server::start();
    let mut con = server.conn();
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("stream-node-max-*").query(&mut con).unwrap();
    assert_eq!(got, vec!["stream-node-max-bytes", "4096", "stream-node-max-entries", "100"]);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("stream-node-max-entries").arg(10).query(&mut con).unwrap();
    for _ in 0..100 {
        let _: String = redis::cmd("XADD").arg("s").arg("*").arg("x").arg("v").query(&mut con).unwrap();
    }
    let _: String =
        redis::cmd("XADD").arg("s").arg("MAXLEN").arg("~").arg(55).arg("LIMIT").arg(30).arg("*").arg("x").arg("v").query(&mut con).unwrap();
    let len: i64 = redis::cmd("XLEN").arg("s").query(&mut con).unwrap();
    assert_eq!(len, 71);
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("stream-node-max-entries").query(&mut con).unwrap();
    assert_eq!(got, vec!["stream-node-max-entries", "10"]);
    let err = redis::cmd("CONFIG").arg("SET").arg("stream-node-max-entries").arg("x").query::<()>(&mut con).unwrap_err();
    assert!(err.to_string().contains("CONFIG SET failed"), "{err}");
}

#[test]
fn dump_and_restore_a_stream_with_groups() {
    let server = Server::start();
    let mut con = server.conn();
    for i in 0..20 {
        let _: String = redis::cmd("XADD").arg("s").arg("*").arg("n").arg(i).query(&mut con).unwrap();
    }
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("s").arg("g").arg("0").query(&mut con).unwrap();
    let _: Streams = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("COUNT")
        .arg(5)
        .arg("STREAMS")
        .arg("s")
        .arg(">")
        .query(&mut con)
        .unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP").arg("s").query(&mut con).unwrap();
    let _: () = redis::cmd("RESTORE").arg("copy").arg(0).arg(payload).query(&mut con).unwrap();
    for args in [vec!["XRANGE", "{}", "-", "+"], vec!["XPENDING", "{}", "g"], vec!["XINFO", "GROUPS", "{}"]] {
        let run = |key: &str, con: &mut redis::Connection| -> Value {
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(if *a == "{}" { key } else { a });
            }
            cmd.query(con).unwrap()
        };
        assert_eq!(run("s", &mut con), run("copy", &mut con), "{args:?}");
    }
}

/// What a stream looks like to clients, without idle times (which a restart changes).
fn stream_state(con: &mut redis::Connection) -> Vec<Value> {
    let queries: [&[&str]; 5] = [
        &["XRANGE", "s", "-", "+"],
        &["XPENDING", "s", "g"],
        &["XINFO", "GROUPS", "s"],
        &["XINFO", "STREAM", "s"],
        &["CONFIG", "GET", "stream-node-max-entries"],
    ];
    queries
        .iter()
        .map(|args| {
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            cmd.query(con).unwrap()
        })
        .collect()
}

#[test]
fn streams_groups_and_node_limits_survive_kill9_from_snapshot_and_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_single_server_config(dir.path(), true);
    let mut server = ConfigServer::start(dir.path(), &config, "server1", port);
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("stream-node-max-entries").arg(4).query(&mut con).unwrap();
    for i in 0..10 {
        let _: String = redis::cmd("XADD").arg("s").arg("*").arg("n").arg(i).query(&mut con).unwrap();
    }
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("s").arg("g").arg("0").query(&mut con).unwrap();
    let _: Streams = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("COUNT")
        .arg(3)
        .arg("STREAMS")
        .arg("s")
        .arg(">")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    // After the snapshot: these come back from the log's tail.
    for i in 10..13 {
        let _: String = redis::cmd("XADD").arg("s").arg("*").arg("n").arg(i).query(&mut con).unwrap();
    }
    let _: i64 = redis::cmd("XACK").arg("s").arg("g").arg(stream_first_id(&mut con)).query(&mut con).unwrap();
    let before = stream_state(&mut con);
    server.kill9();
    server.restart();
    let mut con = server.conn();
    assert_eq!(stream_state(&mut con), before);
    let len: i64 = redis::cmd("XLEN").arg("s").query(&mut con).unwrap();
    assert_eq!(len, 13);
}

fn stream_first_id(con: &mut redis::Connection) -> String {
    let range: Entries = redis::cmd("XRANGE").arg("s").arg("-").arg("+").arg("COUNT").arg(1).query(con).unwrap();
    range[0].0.clone()
}
