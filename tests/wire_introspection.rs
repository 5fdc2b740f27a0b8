//! Introspection and client control through a real client and raw RESP (issue 12):
//! CLIENT REPLY/KILL/UNBLOCK/PAUSE, MONITOR, INFO's sections, the slow log around
//! MULTI/EXEC, LATENCY HISTOGRAM, CLIENT LIST's fields. What redis-server answers
//! the same way is compared in differential_introspection.rs.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{closed_by_server, exchange, log_phases, wait_until, Server};

const QUIET: Duration = Duration::from_millis(300);

/// Reads until `expected` bytes arrived or `deadline` passed.
fn read_exactly(stream: &mut TcpStream, expected: usize, deadline: Duration) -> Vec<u8> {
    let end = Instant::now() + deadline;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < expected && Instant::now() < end {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
    }
    got
}

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(con).ok()?;
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

fn blocked_clients(con: &mut redis::Connection) -> usize {
    info_field(con, "clients", "blocked_clients").and_then(|v| v.parse().ok()).unwrap_or(usize::MAX)
}

#[test]
fn client_reply_off_skip_and_on() {
    let server = Server::start();
    let mut s = server.raw();
    tracing::info!("--- OFF silences everything, ON answers itself");
    let got = exchange(&mut s, b"CLIENT REPLY OFF\r\nPING a\r\nGET nokey\r\nNOSUCH\r\nCLIENT REPLY ON\r\nPING b\r\n", QUIET);
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n$1\r\nb\r\n");
    tracing::info!("--- SKIP silences itself and the next command only");
    let got = exchange(&mut s, b"CLIENT REPLY SKIP\r\nPING c\r\nPING d\r\n", QUIET);
    assert_eq!(String::from_utf8_lossy(&got), "$1\r\nd\r\n");
    tracing::info!("--- ON right after SKIP unsets it");
    let got = exchange(&mut s, b"CLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nPING\r\n", QUIET);
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n+PONG\r\n");
    let got = exchange(&mut s, b"CLIENT REPLY MAYBE\r\n", QUIET);
    assert_eq!(String::from_utf8_lossy(&got), "-ERR syntax error\r\n");
}

#[test]
fn client_reply_off_still_delivers_pubsub_pushes() {
    let server = Server::start();
    let mut s = server.raw();
    assert!(exchange(&mut s, b"HELLO 3\r\n", QUIET).starts_with(b"%7"));
    let got = exchange(&mut s, b"CLIENT REPLY OFF\r\nSUBSCRIBE channel\r\nPING\r\n", QUIET);
    assert_eq!(String::from_utf8_lossy(&got), ">3\r\n$9\r\nsubscribe\r\n$7\r\nchannel\r\n:1\r\n");
    let mut con = server.conn();
    let receivers: i64 = redis::cmd("PUBLISH").arg("channel").arg("hello").query(&mut con).unwrap();
    assert_eq!(receivers, 1);
    let got = read_exactly(&mut s, 39, Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), ">3\r\n$7\r\nmessage\r\n$7\r\nchannel\r\n$5\r\nhello\r\n");
}

#[test]
fn client_kill_skipme_yes_spares_the_caller_and_no_kills_it_after_its_reply() {
    log_phases();
    let server = Server::start();
    let mut me = server.raw();
    let mut others: Vec<TcpStream> = (0..2).map(|_| server.raw()).collect();
    for other in &mut others {
        assert_eq!(exchange(other, b"PING\r\n", QUIET), b"+PONG\r\n");
    }
    tracing::info!("--- SKIPME yes (the default) kills the two others");
    assert_eq!(exchange(&mut me, b"CLIENT KILL SKIPME yes\r\n", QUIET), b":2\r\n");
    for other in &mut others {
        assert!(closed_by_server(other, Duration::from_secs(5)), "a killed client stays connected");
    }
    tracing::info!("--- filters combine: ID of another client and TYPE pubsub");
    let mut sub = server.raw();
    assert!(exchange(&mut sub, b"SUBSCRIBE ch\r\n", QUIET).starts_with(b"*3\r\n"));
    let got = String::from_utf8_lossy(&exchange(&mut me, b"CLIENT KILL TYPE normal\r\n", QUIET)).into_owned();
    assert_eq!(got, ":0\r\n", "the subscriber is no normal client and the caller is skipped");
    assert_eq!(exchange(&mut me, b"CLIENT KILL TYPE pubsub\r\n", QUIET), b":1\r\n");
    assert!(closed_by_server(&mut sub, Duration::from_secs(5)));
    tracing::info!("--- SKIPME no kills the caller too, after its reply");
    let got = exchange(&mut me, b"CLIENT KILL SKIPME no\r\n", QUIET);
    assert_eq!(got, b":1\r\n");
    assert!(closed_by_server(&mut me, Duration::from_secs(5)));
}

#[test]
fn client_unblock_ends_a_wait_as_a_timeout_or_with_an_error() {
    log_phases();
    let server = Server::start();
    let mut admin = server.conn();
    for (reason, expected) in [("TIMEOUT", "*-1\r\n"), ("ERROR", "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")] {
        tracing::info!("--- a BLPOP waits; CLIENT UNBLOCK {reason} ends it");
        let mut waiter = server.raw();
        let got = exchange(&mut waiter, b"CLIENT ID\r\n", QUIET);
        let id: u64 = String::from_utf8_lossy(&got).trim().trim_start_matches(':').parse().expect("an id");
        waiter.write_all(b"BLPOP nolist 0\r\n").unwrap();
        assert!(wait_until(Duration::from_secs(5), || blocked_clients(&mut admin) == 1), "the BLPOP never blocked");
        let unblocked: i64 = redis::cmd("CLIENT").arg("UNBLOCK").arg(id).arg(reason).query(&mut admin).unwrap();
        assert_eq!(unblocked, 1);
        assert_eq!(String::from_utf8_lossy(&read_exactly(&mut waiter, expected.len(), Duration::from_secs(5))), expected);
        assert!(wait_until(Duration::from_secs(5), || blocked_clients(&mut admin) == 0));
        let again: i64 = redis::cmd("CLIENT").arg("UNBLOCK").arg(id).query(&mut admin).unwrap();
        assert_eq!(again, 0, "a client that no longer waits is not unblocked");
        assert_eq!(exchange(&mut waiter, b"PING\r\n", QUIET), b"+PONG\r\n", "the unblocked client goes on");
    }
}

#[test]
fn client_pause_write_holds_writes_not_reads_until_unpause() {
    log_phases();
    let server = Server::start();
    let mut admin = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("old").query(&mut admin).unwrap();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query(&mut admin).unwrap();
    tracing::info!("--- reads are served during a WRITE pause");
    let mut reader = server.raw();
    assert_eq!(exchange(&mut reader, b"GET k\r\n", QUIET), b"$3\r\nold\r\n");
    tracing::info!("--- a write and a PUBLISH wait, counted as blocked clients");
    let mut writer = server.raw();
    writer.write_all(b"SET k new\r\n").unwrap();
    let mut publisher = server.raw();
    publisher.write_all(b"PUBLISH ch m\r\n").unwrap();
    assert!(wait_until(Duration::from_secs(5), || blocked_clients(&mut admin) == 2), "the write and PUBLISH were not held");
    let value: String = redis::cmd("GET").arg("k").query(&mut admin).unwrap();
    assert_eq!(value, "old", "a held write is not applied");
    tracing::info!("--- a command with bad arity is answered at once");
    let err = redis::cmd("SET").arg("k").query::<()>(&mut admin).unwrap_err();
    assert_eq!(err.detail(), Some("wrong number of arguments for 'set' command"));
    tracing::info!("--- UNPAUSE releases them");
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut admin).unwrap();
    assert_eq!(read_exactly(&mut writer, 5, Duration::from_secs(5)), b"+OK\r\n");
    assert_eq!(read_exactly(&mut publisher, 4, Duration::from_secs(5)), b":0\r\n");
    let value: String = redis::cmd("GET").arg("k").query(&mut admin).unwrap();
    assert_eq!(value, "new");
    assert_eq!(blocked_clients(&mut admin), 0);
}

/// A read served at once (no quorum round on a lone server) still waits out a
/// CLIENT PAUSE ALL, which holds every command (UNPAUSE and INFO too, as in Redis):
/// the reply comes after the pause's deadline.
#[test]
fn client_pause_all_holds_reads_until_it_ends() {
    let server = Server::start();
    let mut admin = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut admin).unwrap();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(500).query(&mut admin).unwrap();
    let started = Instant::now();
    let mut reader = server.raw();
    reader.write_all(b"GET k\r\n").unwrap();
    assert_eq!(read_exactly(&mut reader, 7, Duration::from_secs(5)), b"$1\r\nv\r\n");
    assert!(started.elapsed() >= Duration::from_millis(400), "the read was not held by the pause");
}

#[test]
fn client_pause_ends_by_itself_at_its_timeout() {
    let server = Server::start();
    let mut admin = server.conn();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(300).query(&mut admin).unwrap();
    let started = Instant::now();
    let mut writer = server.raw();
    writer.write_all(b"SET k v\r\n").unwrap();
    assert_eq!(read_exactly(&mut writer, 5, Duration::from_secs(5)), b"+OK\r\n");
    assert!(started.elapsed() >= Duration::from_millis(250), "the write was not held by the pause");
}

#[test]
fn monitor_sees_commands_and_transactions_in_order() {
    log_phases();
    let server = Server::start();
    // Connected first: its handshake (CLIENT SETINFO) is not part of what is checked.
    let mut con = server.conn();
    let mut monitor = server.raw();
    assert_eq!(exchange(&mut monitor, b"MONITOR\r\n", QUIET), b"+OK\r\n");
    let _: () = redis::cmd("SET").arg("foo").arg("bar\"x").query(&mut con).unwrap();
    let _: String = redis::cmd("GET").arg("foo").query(&mut con).unwrap();
    let _: () = redis::pipe().atomic().cmd("SET").arg("a").arg(1).ignore().query(&mut con).unwrap();
    // Admin commands (they may carry secrets) are not shown.
    let _: () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("").query(&mut con).unwrap();
    let got = String::from_utf8_lossy(&exchange(&mut monitor, b"", QUIET)).into_owned();
    let lines: Vec<&str> = got.lines().collect();
    let after_addr = |l: &str| l.split_once("] ").map(|(_, rest)| rest.to_string()).unwrap_or_default();
    assert_eq!(
        lines.iter().map(|l| after_addr(l)).collect::<Vec<_>>(),
        vec![r#""SET" "foo" "bar\"x""#, r#""GET" "foo""#, r#""MULTI""#, r#""SET" "a" "1""#, r#""EXEC""#],
        "{got}"
    );
    assert!(lines.iter().all(|l| l.starts_with('+') && l.contains(" [0 127.0.0.1:")), "{got}");
}

/// A run of pipelined writes applies with the requests' own arguments on a lone
/// server (`Core::write_now`): MONITOR and SLOWLOG still see each command whole, in order.
#[test]
fn monitor_and_slowlog_see_every_argument_of_a_pipelined_run_of_writes() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("slowlog-log-slower-than").arg(0).query(&mut con).unwrap();
    let mut monitor = server.raw();
    assert_eq!(exchange(&mut monitor, b"MONITOR\r\n", QUIET), b"+OK\r\n");
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("k1").arg("v1").ignore();
    pipe.cmd("LPUSH").arg("l").arg("x").arg("y").ignore();
    pipe.cmd("HSET").arg("h").arg("f").arg("v").ignore();
    pipe.cmd("INCRBY").arg("n").arg(7).ignore();
    let _: () = pipe.query(&mut con).unwrap();
    let written = [vec!["SET", "k1", "v1"], vec!["LPUSH", "l", "x", "y"], vec!["HSET", "h", "f", "v"], vec!["INCRBY", "n", "7"]];
    type Entry = (i64, i64, i64, Vec<String>, String, String);
    let entries: Vec<Entry> = redis::cmd("SLOWLOG").arg("GET").query(&mut con).unwrap();
    let mut logged: Vec<Vec<String>> = entries.iter().map(|e| e.3.clone()).collect();
    logged.reverse();
    let mut expected: Vec<Vec<String>> = vec![vec!["SLOWLOG".into(), "RESET".into()]];
    expected.extend(written.iter().map(|c| c.iter().map(|a| a.to_string()).collect()));
    assert_eq!(logged, expected);
    let got = String::from_utf8_lossy(&exchange(&mut monitor, b"", QUIET)).into_owned();
    let shown: Vec<String> = got.lines().filter_map(|l| l.split_once("] ").map(|(_, rest)| rest.to_string())).collect();
    let quoted = |c: &Vec<&str>| c.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(" ");
    // SLOWLOG is an admin command: monitors are not shown it.
    let expected: Vec<String> = written.iter().map(quoted).collect();
    assert_eq!(shown, expected, "{got}");
    let list: Vec<String> = redis::cmd("LRANGE").arg("l").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(list, ["y", "x"]);
}

#[test]
fn info_default_leaves_out_commandstats_and_all_has_them() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("a").arg("b").query(&mut con).unwrap();
    let default: String = redis::cmd("INFO").query(&mut con).unwrap();
    assert!(default.contains("used_cpu_user:") && default.contains("# Errorstats"), "{default}");
    assert!(!default.contains("rejected_calls"), "{default}");
    let all: String = redis::cmd("INFO").arg("all").query(&mut con).unwrap();
    assert!(all.contains("cmdstat_set:calls=1,usec=") && all.contains("latency_percentiles_usec_set:p50="), "{all}");
    let cpu: String = redis::cmd("INFO").arg("cpu").query(&mut con).unwrap();
    assert!(cpu.starts_with("# CPU\r\nused_cpu_sys:") && !cpu.contains("used_memory"), "{cpu}");
    assert!(!cpu.ends_with("\r\n\r\n"), "no blank line after the last section");
}

#[test]
fn slowlog_logs_the_commands_exec_ran_not_exec_and_bounds_its_length() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("slowlog-log-slower-than").arg(0).query(&mut con).unwrap();
    let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("logger").query(&mut con).unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    let _: () = redis::pipe().atomic().cmd("SET").arg("a").arg(1).ignore().cmd("INCR").arg("a").ignore().query(&mut con).unwrap();
    type Entry = (i64, i64, i64, Vec<String>, String, String);
    let entries: Vec<Entry> = redis::cmd("SLOWLOG").arg("GET").query(&mut con).unwrap();
    let commands: Vec<Vec<String>> = entries.iter().map(|e| e.3.clone()).collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(commands, vec![s(&["INCR", "a"]), s(&["SET", "a", "1"]), s(&["MULTI"]), s(&["SLOWLOG", "RESET"])]);
    assert!(entries.iter().all(|e| e.5 == "logger" && e.4.starts_with("127.0.0.1:")));
    assert!(entries.windows(2).all(|w| w[0].0 > w[1].0), "newest first, ids decreasing");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("slowlog-max-len").arg(2).query(&mut con).unwrap();
    let len: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut con).unwrap();
    assert_eq!(len, 2, "lowering slowlog-max-len drops the oldest entries");
}

#[test]
fn latency_histogram_counts_calls_per_command_and_subcommand() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    for _ in 0..2 {
        let _: () = redis::cmd("SET").arg("a").arg("b").query(&mut con).unwrap();
    }
    let _: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
    let histo: Vec<redis::Value> = redis::cmd("LATENCY").arg("HISTOGRAM").arg("set").arg("client").query(&mut con).unwrap();
    let text = format!("{histo:?}");
    assert_eq!(histo.len(), 4, "set and client|id: {text}");
    assert!(text.contains("\"client|id\"") && text.contains("\"set\""), "{text}");
    let set: Vec<redis::Value> = redis::cmd("LATENCY").arg("HISTOGRAM").arg("set").query(&mut con).unwrap();
    let entry = format!("{:?}", set.get(1));
    assert!(entry.contains("\"calls\""), "{entry}");
    let calls: Vec<redis::Value> = match set.get(1) {
        Some(redis::Value::Array(fields)) => fields.clone(),
        other => panic!("a histogram entry: {other:?}"),
    };
    assert_eq!(calls.get(1), Some(&redis::Value::Int(2)));
}

#[test]
fn client_list_shows_the_running_subcommand_and_its_query_bytes() {
    let server = Server::start();
    let mut s = server.raw();
    let got = String::from_utf8_lossy(&exchange(&mut s, b"*2\r\n$6\r\nclient\r\n$4\r\nlist\r\n", QUIET)).into_owned();
    assert!(got.contains(" qbuf=26 ") && got.contains(" cmd=client|list "), "{got}");
    let got = String::from_utf8_lossy(&exchange(&mut s, b"*2\r\n$6\r\nclient\r\n$4\r\ninfo\r\n", QUIET)).into_owned();
    assert!(got.contains(" qbuf=26 ") && got.contains(" cmd=client|info "), "{got}");
    let id = got.split("id=").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_default().to_string();
    let listed = String::from_utf8_lossy(&exchange(&mut s, format!("CLIENT LIST ID {id}\r\n").as_bytes(), QUIET)).into_owned();
    assert_eq!(listed.matches("id=").count(), 1, "{listed}");
    let none = exchange(&mut s, b"CLIENT LIST TYPE pubsub\r\n", QUIET);
    assert_eq!(none, b"$0\r\n\r\n");
}

#[test]
fn client_pause_write_holds_active_expiry_until_unpause() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let expired = |con: &mut redis::Connection| info_field(con, "stats", "expired_keys").and_then(|v| v.parse::<u64>().ok());
    tracing::info!("--- two keys expire while writes are paused");
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("foo{t}")
        .arg("bar")
        .arg("PX")
        .arg(10)
        .ignore()
        .cmd("SET")
        .arg("bar{t}")
        .arg("foo")
        .arg("PX")
        .arg(10)
        .ignore()
        .cmd("CLIENT")
        .arg("PAUSE")
        .arg(50_000)
        .arg("WRITE")
        .ignore()
        .query(&mut con)
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        let foo: Option<String> = redis::cmd("GET").arg("foo{t}").query(&mut con).unwrap_or(Some(String::new()));
        foo.is_none()
    }));
    // Several expiry cycles (100 ms apart) pass: none may delete while paused.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(expired(&mut con), Some(0), "active expiry ran during a WRITE pause");
    tracing::info!("--- after UNPAUSE the active expiry deletes them");
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut con).unwrap();
    assert!(wait_until(Duration::from_secs(5), || expired(&mut con) == Some(2)), "the keys were never expired");
}

/// stream-cgroups.tcl: a blocked command that ends in an error counts as one failed call.
#[test]
fn a_blocked_command_that_ends_in_an_error_is_a_failed_call() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("s").arg("g").arg("$").arg("MKSTREAM").query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    let mut waiter = server.raw();
    waiter.write_all(b"XREADGROUP GROUP g alice BLOCK 0 STREAMS s >\r\n").unwrap();
    assert!(wait_until(Duration::from_secs(5), || blocked_clients(&mut con) == 1), "the XREADGROUP never blocked");
    let _: i64 = redis::cmd("XGROUP").arg("DESTROY").arg("s").arg("g").query(&mut con).unwrap();
    let got = String::from_utf8_lossy(&read_exactly(&mut waiter, 8, Duration::from_secs(5))).into_owned();
    assert!(got.starts_with("-NOGROUP"), "{got}");
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut con).unwrap();
    assert!(stats.contains("cmdstat_xreadgroup:calls=1,") && stats.contains(",rejected_calls=0,failed_calls=1\r\n"), "{stats}");
    assert_eq!(info_field(&mut con, "errorstats", "errorstat_NOGROUP").as_deref(), Some("count=1"));
    assert_eq!(info_field(&mut con, "stats", "total_error_replies").as_deref(), Some("1"));
}
