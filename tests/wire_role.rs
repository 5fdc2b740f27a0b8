//! ROLE, INFO replication and READONLY/READWRITE through a real client: on a lone
//! active, and on a server of a two-server stripe whose other server never starts
//! (so no active exists: requests are held one election time, then refused).

mod support;

use std::time::{Duration, Instant};

use redis::Value;
use support::{free_ports, ConfigServer, Server};

fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

fn bulk(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

#[test]
fn role_and_info_replication_on_a_lone_active() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let role: Vec<Value> = redis::cmd("ROLE").query(&mut con).unwrap();
    assert_eq!(role.len(), 3, "{role:?}");
    assert_eq!(bulk(&role[0]), "master");
    let Value::Int(applied) = role[1] else { panic!("applied index: {role:?}") };
    assert!(applied >= 2, "the SET was applied after the stripe's first entries: {role:?}");
    assert_eq!(role[2], Value::Array(vec![]), "a lone active has no mirrors");

    let info: String = redis::cmd("INFO").arg("replication").query(&mut con).unwrap();
    assert!(info.starts_with("# Replication\r\n"), "{info}");
    assert_eq!(info_field(&info, "role").as_deref(), Some("master"));
    assert_eq!(info_field(&info, "connected_slaves").as_deref(), Some("0"));
    assert_eq!(info_field(&info, "tandem_state").as_deref(), Some("ACTIVE-COORDINATOR"));
    assert_eq!(info_field(&info, "tandem_light").as_deref(), Some("green"));
    assert!(info_field(&info, "tandem_active").is_some_and(|a| !a.is_empty()), "{info}");
    let applied_info: i64 = info_field(&info, "tandem_applied_index").unwrap().parse().unwrap();
    assert!(applied_info >= applied, "{info}");
    assert!(info_field(&info, "tandem_term").unwrap().parse::<u64>().unwrap() >= 1, "{info}");
    // The other sections are still there.
    let all: String = redis::cmd("INFO").query(&mut con).unwrap();
    for section in ["# Server", "# Clients", "# Memory", "# Replication", "# Keyspace"] {
        assert!(all.contains(section), "{section} missing from INFO");
    }
}

/// A lone in-memory server applies its writes without a Raft round (`Replica::submit`):
/// each write is still numbered as the next entry, and ROLE, INFO replication and
/// WATCH see those numbers as they would a log's.
#[test]
fn a_lone_in_memory_server_numbers_every_write_as_an_entry() {
    let server = Server::start();
    let mut con = server.conn();
    let mut other = server.conn();
    let applied = |con: &mut redis::Connection| -> i64 {
        let role: Vec<Value> = redis::cmd("ROLE").query(con).unwrap();
        match role[1] {
            Value::Int(index) => index,
            ref other => panic!("applied index: {other:?}"),
        }
    };
    let before = applied(&mut con);
    for i in 0..5 {
        let _: () = redis::cmd("SET").arg("k").arg(i).query(&mut con).unwrap();
    }
    let after = applied(&mut con);
    assert!(after >= before + 5, "five writes, five entries: {before} then {after}");
    let info: String = redis::cmd("INFO").arg("replication").query(&mut con).unwrap();
    let index = |field: &str| info_field(&info, field).and_then(|v| v.parse::<i64>().ok()).unwrap_or_else(|| panic!("{field}: {info}"));
    assert!(index("tandem_applied_index") >= after, "{info}");
    assert!(index("tandem_commit_index") >= index("tandem_applied_index"), "{info}");
    assert!(index("tandem_last_log_index") >= index("tandem_commit_index"), "{info}");
    assert!(index("master_repl_offset") >= after, "{info}");

    // WATCH compares those numbers: another client's write in between fails EXEC.
    let _: () = redis::cmd("WATCH").arg("k").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("theirs").query(&mut other).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("mine").query(&mut con).unwrap();
    let exec: Value = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(exec, Value::Nil, "the watched key changed: EXEC must fail");
    let got: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(got, "theirs");
    // Unchanged since WATCH: EXEC applies.
    let _: () = redis::cmd("WATCH").arg("k").query(&mut con).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("mine").query(&mut con).unwrap();
    let exec: Vec<String> = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(exec, vec!["OK".to_string()]);
    assert!(applied(&mut con) > after, "the transaction is an entry too");
}

#[test]
fn readonly_and_readwrite_on_the_active_change_nothing_for_reads_and_writes() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("READONLY").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let got: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(got, "v");
    let _: () = redis::cmd("READWRITE").query(&mut con).unwrap();
    let got: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(got, "v");
    let err = redis::cmd("READONLY").arg("x").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.detail(), Some("wrong number of arguments for 'readonly' command"));
}

/// A stripe of two servers with one election second; only the first is started.
fn lone_member_of_two() -> (tempfile::TempDir, ConfigServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text =
        String::from("[cluster]\nname = \"test\"\nsecret = \"test-secret\"\n\n[[stripe]]\nname = \"A\"\nelection-time = \"1s\"\n");
    let mut port1 = 0;
    let ports = free_ports(6);
    for (i, name) in ["server1", "server2"].into_iter().enumerate() {
        let port = ports[3 * i];
        if name == "server1" {
            port1 = port;
        }
        text.push_str(&format!(
            "\n[[stripe.server]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nclient-port = {port}\ngroup-port = {}\nmanagement-port = {}\ndata = \"data/{name}\"\ndata-storage = \"1g\"\nrestartable = false\n",
            ports[3 * i + 1],
            ports[3 * i + 2]
        ));
    }
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, text).expect("write config");
    let server = ConfigServer::start(dir.path(), &config, "server1", port1);
    (dir, server)
}

#[test]
fn without_an_active_requests_wait_twice_the_election_time_then_get_clusterdown() {
    let (_dir, server) = lone_member_of_two();
    let mut con = server.conn();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG", "connection commands are served here");

    let started = Instant::now();
    let err = redis::cmd("GET").arg("k").query::<Option<String>>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("CLUSTERDOWN"), "{err}");
    assert!(err.to_string().contains("election in progress"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(1800), "held for twice the election time, not {:?}", started.elapsed());
    let err = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("CLUSTERDOWN"), "{err}");

    let role: Vec<Value> = redis::cmd("ROLE").query(&mut con).unwrap();
    assert_eq!(role.len(), 5, "{role:?}");
    assert_eq!(bulk(&role[0]), "slave");
    assert_eq!(bulk(&role[3]), "connecting", "no active known: {role:?}");
    let info: String = redis::cmd("INFO").arg("replication").query(&mut con).unwrap();
    assert_eq!(info_field(&info, "role").as_deref(), Some("slave"), "{info}");
    assert_eq!(info_field(&info, "master_link_status").as_deref(), Some("down"), "{info}");
    assert_ne!(info_field(&info, "tandem_state").as_deref(), Some("ACTIVE-COORDINATOR"), "{info}");

    // READONLY reads the local state machine at once, however stale; writes still
    // need the active.
    let _: () = redis::cmd("READONLY").query(&mut con).unwrap();
    let started = Instant::now();
    let got: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(got, None);
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_millis(900), "a READONLY read does not wait for an active");
    let err = redis::cmd("DEL").arg("k").query::<i64>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("CLUSTERDOWN"), "{err}");
    let _: () = redis::cmd("READWRITE").query(&mut con).unwrap();
    let err = redis::cmd("GET").arg("k").query::<Option<String>>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("CLUSTERDOWN"), "{err}");
}

#[test]
fn a_transaction_without_an_active_is_refused_at_exec_and_applies_nothing() {
    let (_dir, server) = lone_member_of_two();
    let mut con = server.conn();
    // Commands queue on the server the client is connected to (as in Redis Cluster,
    // MULTI touches no key); EXEC then needs the stripe's active, and there is none.
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let queued: String = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    assert_eq!(queued, "QUEUED");
    let err = redis::cmd("EXEC").query::<Value>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("CLUSTERDOWN"), "{err}");
    // The transaction is over: EXEC again has no MULTI, and nothing was applied.
    let err = redis::cmd("EXEC").query::<Value>(&mut con).unwrap_err();
    assert!(err.to_string().contains("EXEC without MULTI"), "{err}");
    let _: () = redis::cmd("READONLY").query(&mut con).unwrap();
    let got: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(got, None);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_forwarded_connection_is_never_forwarded_again() {
    let (_dir, server) = lone_member_of_two();
    let mut con = server.conn();
    // What another server's forwarding connection calls itself.
    let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("tandem-forward:server2").query(&mut con).unwrap();
    let started = Instant::now();
    let err = redis::cmd("GET").arg("k").query::<Option<String>>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    assert!(err.to_string().contains("not the active of its stripe either"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(900), "refused at once, not held");
}
