//! Connection and server commands through a real client and raw RESP.

mod support;

use std::time::Duration;

use support::{exchange, Server};

#[test]
fn ping_echo_select_time() {
    let server = Server::start();
    let mut con = server.conn();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let hi: String = redis::cmd("PING").arg("hi").query(&mut con).unwrap();
    assert_eq!(hi, "hi");
    let echo: Vec<u8> = redis::cmd("ECHO").arg(&b"\x00\xffbin"[..]).query(&mut con).unwrap();
    assert_eq!(echo, b"\x00\xffbin");
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    let err = redis::cmd("SELECT").arg(1).query::<()>(&mut con).unwrap_err();
    assert_eq!(err.detail(), Some("DB index is out of range"));
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    assert!(secs > 1_700_000_000 && micros < 1_000_000);
}

#[test]
fn hello_switches_protocol_and_reports_the_server() {
    let server = Server::start();
    let mut s = server.raw();
    let got = String::from_utf8_lossy(&exchange(&mut s, b"HELLO 3\r\n", Duration::from_millis(300))).into_owned();
    assert!(got.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n"), "{got}");
    assert!(got.contains("$5\r\nproto\r\n:3\r\n"), "{got}");
    let got = exchange(&mut s, b"HGETALL nokey\r\nGET nokey\r\n", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), "%0\r\n_\r\n");
    let got = exchange(&mut s, b"HELLO 4\r\n", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), "-NOPROTO unsupported protocol version\r\n");
}

#[test]
fn requirepass_gates_every_command_until_auth() {
    let server = Server::start();
    let mut admin = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("s3cret").query(&mut admin).unwrap();
    let mut s = server.raw();
    let got = exchange(&mut s, b"GET k\r\nAUTH wrong\r\nAUTH s3cret\r\nGET k\r\n", Duration::from_millis(300));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n$-1\r\n"
    );
    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", server.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn auth_without_a_password_configured_is_an_error() {
    let server = Server::start();
    let mut s = server.raw();
    let got = exchange(&mut s, b"AUTH x\r\n", Duration::from_millis(300));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
    );
}

#[test]
fn client_commands_name_list_and_kill() {
    let server = Server::start();
    let mut con = server.conn();
    let mut victim = server.conn();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut victim).unwrap();
    let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("worker-1").query(&mut victim).unwrap();
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut victim).unwrap();
    assert_eq!(name, "worker-1");
    let err = redis::cmd("CLIENT").arg("SETNAME").arg("bad name").query::<()>(&mut victim).unwrap_err();
    assert_eq!(err.detail(), Some("Client names cannot contain spaces, newlines or special characters."));
    let _: () = redis::cmd("CLIENT").arg("SETINFO").arg("LIB-NAME").arg("tandem-tests").query(&mut victim).unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    let line = list.lines().find(|l| l.contains("name=worker-1")).expect("victim in CLIENT LIST");
    assert!(line.starts_with(&format!("id={id} addr=127.0.0.1:")), "{line}");
    assert!(line.contains("lib-name=tandem-tests"), "{line}");
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut victim).unwrap();
    assert!(info.contains("name=worker-1"));
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(&mut con).unwrap();
    assert_eq!(killed, 1);
    assert!(redis::cmd("PING").query::<String>(&mut victim).is_err(), "a killed client is disconnected");
}

#[test]
fn info_has_the_fields_clients_parse() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").arg("EX").arg(100).query(&mut con).unwrap();
    let info: String = redis::cmd("INFO").query(&mut con).unwrap();
    for field in [
        "redis_version:",
        "redis_mode:standalone",
        "process_id:",
        "run_id:",
        &format!("tcp_port:{}", server.port),
        "uptime_in_seconds:",
        "connected_clients:",
        "blocked_clients:0",
        "used_memory:",
        "used_memory_human:",
        "maxmemory:",
        "maxmemory_policy:noeviction",
        "total_connections_received:",
        "total_commands_processed:",
        "expired_keys:",
        "evicted_keys:",
        "role:master",
        "loading:0",
        "db0:keys=1,expires=1,avg_ttl=",
    ] {
        assert!(info.contains(field), "INFO lacks {field}");
    }
    let only: String = redis::cmd("INFO").arg("replication").query(&mut con).unwrap();
    assert!(only.starts_with("# Replication") && !only.contains("# Memory"));
}

#[test]
fn command_introspection_gives_key_positions() {
    let server = Server::start();
    let mut con = server.conn();
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut con).unwrap();
    let all: Vec<redis::Value> = redis::cmd("COMMAND").query(&mut con).unwrap();
    assert_eq!(count as usize, all.len());
    assert!(count > 100, "{count} commands");
    let info: Vec<redis::Value> = redis::cmd("COMMAND").arg("INFO").arg("get").arg("mset").arg("nosuch").query(&mut con).unwrap();
    assert_eq!(info.len(), 3);
    let redis::Value::Array(get) = &info[0] else { panic!("{:?}", info[0]) };
    assert_eq!(get.len(), 10);
    assert_eq!(get[1], redis::Value::Int(2));
    assert_eq!((&get[3], &get[4], &get[5]), (&redis::Value::Int(1), &redis::Value::Int(1), &redis::Value::Int(1)));
    let redis::Value::Array(mset) = &info[1] else { panic!() };
    assert_eq!((&mset[3], &mset[4], &mset[5]), (&redis::Value::Int(1), &redis::Value::Int(-1), &redis::Value::Int(2)));
    assert_eq!(info[2], redis::Value::Nil);
    let keys: Vec<String> = redis::cmd("COMMAND").arg("GETKEYS").arg("MSET").arg("a").arg("1").arg("b").arg("2").query(&mut con).unwrap();
    assert_eq!(keys, vec!["a", "b"]);
    let docs: redis::Value = redis::cmd("COMMAND").arg("DOCS").arg("get").query(&mut con).unwrap();
    assert!(matches!(docs, redis::Value::Array(ref v) if v.len() == 2));
}

#[test]
fn config_get_set_round_trips_and_rejects_unknown() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("allkeys-lfu").query(&mut con).unwrap();
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query(&mut con).unwrap();
    assert_eq!(got, vec!["maxmemory-policy", "allkeys-lfu"]);
    // Redis 7.0's parameters of that name, in any order.
    let many: std::collections::HashMap<String, String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory*").query(&mut con).unwrap();
    let mut names: Vec<&str> = many.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["maxmemory", "maxmemory-clients", "maxmemory-eviction-tenacity", "maxmemory-policy", "maxmemory-samples"]);
    let err = redis::cmd("CONFIG").arg("SET").arg("nosuch").arg("1").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.detail(), Some("Unknown option or number of arguments for CONFIG SET - 'nosuch'"));
    let err = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("sometimes").query::<()>(&mut con).unwrap_err();
    assert!(err.detail().unwrap().starts_with("CONFIG SET failed (possibly related to argument 'maxmemory-policy')"));
}

#[test]
fn memory_usage_reports_a_plausible_size() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("x".repeat(1000)).query(&mut con).unwrap();
    let n: i64 = redis::cmd("MEMORY").arg("USAGE").arg("k").query(&mut con).unwrap();
    assert!((1000..1200).contains(&n), "{n}");
    let none: Option<i64> = redis::cmd("MEMORY").arg("USAGE").arg("missing").query(&mut con).unwrap();
    assert_eq!(none, None);
}

#[test]
fn reset_and_quit() {
    let server = Server::start();
    let mut s = server.raw();
    let got = exchange(
        &mut s,
        b"HELLO 3\r\nCLIENT SETNAME x\r\nMULTI\r\nRESET\r\nCLIENT GETNAME\r\nQUIT\r\nPING\r\n",
        Duration::from_millis(500),
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.ends_with("+OK\r\n+OK\r\n+RESET\r\n$-1\r\n+OK\r\n"), "{text}");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start();
    let _con = server.conn();
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
}

/// MIGRATE moves keys to another server (here redis-server 7.0.15) with their time to
/// live, keeps them with COPY, reports a missing key as NOKEY and the target's refusal
/// as its error, and hides AUTH's password from MONITOR.
#[test]
fn migrate_moves_keys_to_another_server() {
    let server = Server::start();
    let target = support::redis_server::RedisServer::start();
    let mut con = server.conn();
    let mut peer = redis::Client::open(target.url(2)).unwrap().get_connection().unwrap();
    let migrate = |con: &mut redis::Connection, extra: &[&str]| -> redis::RedisResult<String> {
        let mut cmd = redis::cmd("MIGRATE");
        cmd.arg("127.0.0.1").arg(target.port);
        for a in extra {
            cmd.arg(*a);
        }
        cmd.query(con)
    };
    assert_eq!(migrate(&mut con, &["nosuch", "0", "1000"]).unwrap(), "NOKEY");
    let _: () = redis::cmd("SET").arg("k").arg("v").arg("PX").arg(60_000).query(&mut con).unwrap();
    assert_eq!(migrate(&mut con, &["k", "0", "1000"]).unwrap(), "OK");
    let here: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(here, None, "moved, not copied");
    let there: Option<String> = redis::cmd("GET").arg("k").query(&mut peer).unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg("k").query(&mut peer).unwrap();
    assert_eq!(there.as_deref(), Some("v"));
    assert!(ttl > 50_000 && ttl <= 60_000, "the TTL travels: {ttl}");

    let _: () = redis::cmd("MSET").arg("a").arg("1").arg("b").arg("2").query(&mut con).unwrap();
    assert_eq!(migrate(&mut con, &["", "0", "1000", "COPY", "KEYS", "a", "b"]).unwrap(), "OK");
    let kept: Vec<Option<String>> = redis::cmd("MGET").arg("a").arg("b").query(&mut con).unwrap();
    assert_eq!(kept, vec![Some("1".into()), Some("2".into())], "COPY keeps them here");
    let err = migrate(&mut con, &["", "0", "1000", "KEYS", "a"]).unwrap_err();
    assert!(err.to_string().contains("Target instance replied with error: BUSYKEY"), "{err}");
    assert_eq!(migrate(&mut con, &["", "0", "1000", "REPLACE", "KEYS", "a"]).unwrap(), "OK");

    let mut monitor = server.raw();
    assert_eq!(support::exchange(&mut monitor, b"MONITOR\r\n", Duration::from_millis(200)), b"+OK\r\n");
    let _ = migrate(&mut con, &["nosuch", "0", "1000", "AUTH", "secret"]);
    let line = String::from_utf8_lossy(&support::exchange(&mut monitor, b"", Duration::from_millis(300))).into_owned();
    assert!(line.contains("\"AUTH\" \"(redacted)\"") && !line.contains("secret"), "{line}");
}

/// INFO's `blocked_clients`.
fn blocked_clients(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("clients").query(con).expect("INFO");
    info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// WAIT for a mirror a lone server does not have blocks, as Redis's WAIT for a
/// missing replica does: the client shows as blocked, and the wait ends with it.
#[test]
fn wait_for_a_missing_mirror_blocks_until_its_client_goes() {
    let server = Server::start();
    let mut con = server.conn();
    let mut raw = server.raw();
    std::io::Write::write_all(&mut raw, b"*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n0\r\n").expect("send WAIT");
    assert!(support::wait_until(Duration::from_secs(10), || blocked_clients(&mut con) == 1), "WAIT 1 0 blocks");
    // A write applied meanwhile (the blocking task then counts its own waiters) does
    // not lose the waiting client from the count.
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).expect("SET");
    assert_eq!(blocked_clients(&mut con), 1, "still blocked after another client's write");
    drop(raw);
    assert!(support::wait_until(Duration::from_secs(10), || blocked_clients(&mut con) == 0), "the wait ends with its client");
    let n: i64 = redis::cmd("WAIT").arg(1).arg(50).query(&mut con).expect("WAIT with a timeout");
    assert_eq!(n, 0);
}
