//! The clustering primitives over the wire (issue 13, points 2–5), with the `redis`
//! crate against a real server: `SET … IFEQ`, client sessions, fenced locks with FIFO
//! waiters, group membership and its events, and their error texts.

mod support;

use std::time::{Duration, Instant};

use redis::{Connection, RedisResult, Value};
use support::Server;

fn cmd(con: &mut Connection, args: &[&str]) -> RedisResult<Value> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

fn int(con: &mut Connection, args: &[&str]) -> i64 {
    match cmd(con, args) {
        Ok(Value::Int(n)) => n,
        other => panic!("{args:?}: expected an integer, got {other:?}"),
    }
}

fn error(con: &mut Connection, args: &[&str]) -> String {
    match cmd(con, args) {
        Err(e) => format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")).trim_end().to_string(),
        Ok(v) => panic!("{args:?}: expected an error, got {v:?}"),
    }
}

/// Waits (bounded) until `TANDEM.LOCKS name` shows `waiting` sessions queued.
fn wait_for_waiters(con: &mut Connection, name: &str, waiting: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<(String, i64, String, i64, i64)> = redis::cmd("TANDEM.LOCKS").arg(name).query(con).unwrap();
        if rows.first().is_some_and(|r| r.4 == waiting) {
            return;
        }
        assert!(Instant::now() < deadline, "lock {name}: expected {waiting} waiting, saw {rows:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn set_ifeq_is_compare_and_set_with_valkeys_errors() {
    let server = Server::start();
    let mut con = server.conn();
    assert_eq!(cmd(&mut con, &["SET", "cfg", "v2", "IFEQ", "v1"]).unwrap(), Value::Nil, "nothing is created");
    let _: () = redis::cmd("SET").arg("cfg").arg("v1").query(&mut con).unwrap();
    assert_eq!(cmd(&mut con, &["SET", "cfg", "v2", "IFEQ", "v1"]).unwrap(), Value::Okay);
    assert_eq!(cmd(&mut con, &["SET", "cfg", "v3", "IFEQ", "v1"]).unwrap(), Value::Nil, "a stale expectation sets nothing");
    assert_eq!(cmd(&mut con, &["SET", "cfg", "v3", "IFEQ", "v2", "GET", "PX", "60000"]).unwrap(), Value::BulkString(b"v2".to_vec()));
    assert!(int(&mut con, &["PTTL", "cfg"]) > 0);
    assert_eq!(error(&mut con, &["SET", "cfg", "x", "IFEQ", "v3", "NX"]), "ERR syntax error");
    assert_eq!(error(&mut con, &["SET", "cfg", "x", "XX", "IFEQ", "v3"]), "ERR syntax error");
    let _: () = redis::cmd("RPUSH").arg("list").arg("a").query(&mut con).unwrap();
    assert!(error(&mut con, &["SET", "list", "x", "IFEQ", "a"]).starts_with("WRONGTYPE"));
}

#[test]
fn a_session_opens_describes_itself_and_closes() {
    let server = Server::start();
    let mut con = server.conn();
    let id: String = redis::cmd("TANDEM.SESSION").arg("OPEN").query(&mut con).unwrap();
    assert_eq!(id.len(), 32, "128 random bits in hex: {id}");
    let token = int(&mut con, &["TANDEM.LOCK", "res"]);
    let info: std::collections::HashMap<String, Value> = redis::cmd("TANDEM.SESSION").arg("INFO").query(&mut con).unwrap();
    assert_eq!(info.get("id"), Some(&Value::BulkString(id.clone().into_bytes())));
    assert_eq!(info.get("window-ms"), Some(&Value::Int(120_000)), "the configured window (default 120 s)");
    assert_eq!(
        info.get("locks"),
        Some(&Value::Array(vec![Value::Array(vec![Value::BulkString(b"res".to_vec()), Value::Int(token)])])),
        "the lock belongs to the session opened"
    );
    tracing::info!("--- another connection resumes it and closes it");
    let mut other = server.conn();
    assert_eq!(cmd(&mut other, &["TANDEM.SESSION", "RESUME", &id]).unwrap(), Value::Okay);
    assert_eq!(int(&mut other, &["TANDEM.LOCK", "res"]), token, "the resumed session holds the lock");
    assert_eq!(int(&mut other, &["TANDEM.SESSION", "CLOSE"]), 1);
    assert_eq!(error(&mut other, &["TANDEM.SESSION", "INFO"]), "ERR this connection has no session");
    let gone = error(&mut con, &["TANDEM.SESSION", "RESUME", &id]);
    assert!(gone.starts_with("NOSESSION no session"), "{gone}");
    let rows: Vec<Value> = redis::cmd("TANDEM.LOCKS").query(&mut con).unwrap();
    assert!(rows.is_empty(), "closing released the lock: {rows:?}");
    assert_eq!(int(&mut con, &["TANDEM.SESSION", "CLOSE", "no-such-session"]), 0);
    tracing::info!("--- not inside MULTI");
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    assert_eq!(error(&mut con, &["TANDEM.SESSION", "OPEN"]), "ERR Command not allowed inside a transaction");
    assert!(error(&mut con, &["EXEC"]).starts_with("EXECABORT"));
}

#[test]
fn locks_hand_out_growing_tokens_to_fifo_waiters_and_fence_stale_writes() {
    let server = Server::start();
    let mut holder = server.conn();
    let first = int(&mut holder, &["TANDEM.LOCK", "doc", "TTL", "60000"]);
    assert_eq!(cmd(&mut holder, &["TANDEM.FENCED", "doc", &first.to_string(), "SET", "doc:body", "v1"]).unwrap(), Value::Okay);
    let mut probe = server.conn();
    assert_eq!(cmd(&mut probe, &["TANDEM.LOCK", "doc"]).unwrap(), Value::Nil, "held elsewhere: nil at once");
    assert_eq!(cmd(&mut probe, &["TANDEM.LOCK", "doc", "WAIT", "50"]).unwrap(), Value::Nil, "nil when WAIT runs out");
    wait_for_waiters(&mut probe, "doc", 0);

    tracing::info!("--- two waiters queue in order");
    let waiter = |port_url: String| {
        std::thread::spawn(move || {
            let mut con = redis::Client::open(port_url).unwrap().get_connection().unwrap();
            con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let token: i64 = redis::cmd("TANDEM.LOCK").arg("doc").arg("WAIT").arg(0).query(&mut con).unwrap();
            (token, con)
        })
    };
    let second = waiter(server.url());
    wait_for_waiters(&mut probe, "doc", 1);
    let third = waiter(server.url());
    wait_for_waiters(&mut probe, "doc", 2);

    tracing::info!("--- the holder unlocks: the first waiter gets it");
    assert_eq!(int(&mut holder, &["TANDEM.UNLOCK", "doc", &first.to_string()]), 1);
    assert_eq!(int(&mut holder, &["TANDEM.UNLOCK", "doc", &first.to_string()]), 0, "a stale token unlocks nothing");
    let (token2, mut con2) = second.join().unwrap();
    assert!(token2 > first, "{token2} > {first}");
    wait_for_waiters(&mut probe, "doc", 1);
    let stale = error(&mut holder, &["TANDEM.FENCED", "doc", &first.to_string(), "SET", "doc:body", "stale"]);
    assert_eq!(stale, format!("FENCED the lock 'doc' is held with a newer token than {first}"));
    assert_eq!(cmd(&mut con2, &["TANDEM.FENCED", "doc", &token2.to_string(), "SET", "doc:body", "v2"]).unwrap(), Value::Okay);
    assert_eq!(int(&mut con2, &["TANDEM.UNLOCK", "doc", &token2.to_string()]), 1);
    let (token3, _con3) = third.join().unwrap();
    assert!(token3 > token2);
    let body: String = redis::cmd("GET").arg("doc:body").query(&mut probe).unwrap();
    assert_eq!(body, "v2", "the stale write was refused");
}

#[test]
fn primitives_refuse_bad_input_with_clear_errors() {
    let server = Server::start();
    let mut con = server.conn();
    let cases: &[(&[&str], &str)] = &[
        (&["TANDEM.LOCK", "l", "TTL", "abc"], "ERR value is not an integer or out of range"),
        (&["TANDEM.LOCK", "l", "WAIT", "-5"], "ERR milliseconds must not be negative"),
        (&["TANDEM.LOCK", "l", "WAIT", "18446744073709551616"], "ERR value is not an integer or out of range"),
        (&["TANDEM.LOCK", "l", "FOREVER"], "ERR syntax error"),
        (&["TANDEM.LOCK"], "ERR wrong number of arguments for 'tandem.lock' command"),
        (&["TANDEM.UNLOCK", "l", "x"], "ERR the token is not a non-negative integer"),
        (&["TANDEM.FENCED", "l", "1"], "ERR wrong number of arguments for 'tandem.fenced' command"),
        (&["TANDEM.FENCED", "l", "1", "BLPOP", "k", "0"], "ERR 'blpop' cannot run fenced: only data commands can"),
        (
            &["TANDEM.SESSION", "RESUME", "nope"],
            "NOSESSION no session 'nope': it ended (closed, or its reconnect window ran out) or never existed",
        ),
        (&["TANDEM.SESSION", "OPEN", "WINDOW", "99999999999"], "ERR value is not an integer or out of range"),
        (&["TANDEM.GROUP", "JOIN", "g"], "ERR wrong number of arguments for 'tandem.group|join' command"),
    ];
    for (args, expected) in cases {
        assert_eq!(error(&mut con, args), *expected, "{args:?}");
    }
    let unknown = error(&mut con, &["TANDEM.SESSION", "DANCE"]);
    assert!(unknown.contains("unknown subcommand"), "{unknown}");
    let _: String = redis::cmd("PING").query(&mut con).unwrap();
}

#[test]
fn group_members_and_their_events_follow_sessions() {
    let server = Server::start();
    let mut sub_con = server.conn();
    sub_con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe("__tandem__:group:web").unwrap();
    let mut a = server.conn();
    let mut b = server.conn();
    assert_eq!(int(&mut a, &["TANDEM.GROUP", "JOIN", "web", "app1", "10.0.0.1:8080"]), 1);
    assert_eq!(int(&mut a, &["TANDEM.GROUP", "JOIN", "web", "app1", "10.0.0.1:8081"]), 0, "joined already: info replaced");
    assert_eq!(int(&mut b, &["TANDEM.GROUP", "JOIN", "web", "app2"]), 1);
    let taken = error(&mut b, &["TANDEM.GROUP", "JOIN", "web", "app1"]);
    assert_eq!(taken, "ERR member 'app1' of group 'web' belongs to another session");
    let members: Vec<(String, String)> = redis::cmd("TANDEM.GROUP").arg("MEMBERS").arg("web").query(&mut a).unwrap();
    assert_eq!(members, vec![("app1".into(), "10.0.0.1:8081".into()), ("app2".into(), "".into())]);
    assert_eq!(int(&mut a, &["TANDEM.GROUP", "LEAVE", "web", "app1"]), 1);
    assert_eq!(int(&mut b, &["TANDEM.SESSION", "CLOSE"]), 1, "b's implicit session ends: app2 leaves");
    let events: Vec<String> = (0..4).map(|_| pubsub.get_message().unwrap().get_payload::<String>().unwrap()).collect();
    assert_eq!(events, vec!["join app1", "join app2", "leave app1", "leave app2"]);
}

#[test]
fn a_wait_that_ends_unserved_leaves_the_queue_so_no_lock_goes_to_a_client_told_nil() {
    let server = Server::start();
    let mut holder = server.conn();
    let token = int(&mut holder, &["TANDEM.LOCK", "q"]);
    let mut probe = server.conn();

    tracing::info!("--- a waiter unblocked by CLIENT UNBLOCK");
    let mut waiter = server.conn();
    let waiter_id = int(&mut waiter, &["CLIENT", "ID"]);
    let blocked = std::thread::spawn(move || {
        let reply: Value = redis::cmd("TANDEM.LOCK").arg("q").arg("WAIT").arg(0).query(&mut waiter).unwrap();
        reply
    });
    wait_for_waiters(&mut probe, "q", 1);
    assert_eq!(int(&mut probe, &["CLIENT", "UNBLOCK", &waiter_id.to_string()]), 1);
    assert_eq!(blocked.join().unwrap(), Value::Nil);
    wait_for_waiters(&mut probe, "q", 0);

    tracing::info!("--- a waiter that disconnects");
    let mut raw = server.raw();
    std::io::Write::write_all(&mut raw, b"*4\r\n$11\r\nTANDEM.LOCK\r\n$1\r\nq\r\n$4\r\nWAIT\r\n$1\r\n0\r\n").unwrap();
    wait_for_waiters(&mut probe, "q", 1);
    drop(raw);
    wait_for_waiters(&mut probe, "q", 0);

    tracing::info!("--- the release finds nobody waiting");
    assert_eq!(int(&mut holder, &["TANDEM.UNLOCK", "q", &token.to_string()]), 1);
    let rows: Vec<Value> = redis::cmd("TANDEM.LOCKS").query(&mut probe).unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}

#[test]
fn shared_configuration_is_set_ifeq_plus_keyspace_notifications() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("K$").query(&mut con).unwrap();
    let mut sub_con = server.conn();
    sub_con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe(&["__keyspace@0__:app:config", "marker"]).unwrap();
    tracing::info!("--- version 1, a writer with a stale view, then version 2");
    let _: () = redis::cmd("SET").arg("app:config").arg("v1").query(&mut con).unwrap();
    assert_eq!(cmd(&mut con, &["SET", "app:config", "v2", "IFEQ", "v0"]).unwrap(), Value::Nil);
    let _: i64 = redis::cmd("PUBLISH").arg("marker").arg("after the stale write").query(&mut con).unwrap();
    assert_eq!(cmd(&mut con, &["SET", "app:config", "v2", "IFEQ", "v1"]).unwrap(), Value::Okay);
    let seen: Vec<(String, String)> = (0..3)
        .map(|_| {
            let msg = pubsub.get_message().unwrap();
            (msg.get_channel_name().to_string(), msg.get_payload::<String>().unwrap())
        })
        .collect();
    let keyspace = "__keyspace@0__:app:config".to_string();
    assert_eq!(
        seen,
        vec![(keyspace.clone(), "set".into()), ("marker".into(), "after the stale write".into()), (keyspace, "set".into())],
        "watchers hear each version, and nothing of a refused write"
    );
}

#[test]
fn a_session_its_lock_and_the_token_counter_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = support::write_single_server_config(dir.path(), true);
    let mut server = support::ConfigServer::start(dir.path(), &config, "server1", port);
    let mut con = server.conn();
    let session: String = redis::cmd("TANDEM.SESSION").arg("OPEN").query(&mut con).unwrap();
    let first = int(&mut con, &["TANDEM.LOCK", "a"]);
    assert_eq!(int(&mut con, &["TANDEM.UNLOCK", "a", &first.to_string()]), 1);
    let held = int(&mut con, &["TANDEM.LOCK", "b"]);
    let _: Value = redis::cmd("SAVE").query(&mut con).unwrap();
    let later = int(&mut con, &["TANDEM.LOCK", "c"]);
    tracing::info!("--- kill -9 and restart: the snapshot and the log's tail come back");
    server.kill9();
    server.restart();
    let mut con = server.conn();
    assert_eq!(cmd(&mut con, &["TANDEM.SESSION", "RESUME", &session]).unwrap(), Value::Okay);
    assert_eq!(int(&mut con, &["TANDEM.LOCK", "b"]), held, "held across the restart (from the snapshot)");
    assert_eq!(int(&mut con, &["TANDEM.LOCK", "c"]), later, "held across the restart (from the log)");
    let next = int(&mut con, &["TANDEM.LOCK", "a"]);
    assert!(next > later && later > held && held > first, "tokens keep growing: {first} {held} {later} {next}");
}

#[test]
fn a_fenced_command_is_checked_against_the_users_rules_as_itself() {
    let server = Server::start();
    let mut admin = server.conn();
    let _: () =
        redis::cmd("ACL").arg(&["SETUSER", "app", "on", ">pw", "+tandem.lock", "+tandem.fenced", "+get", "~*"]).query(&mut admin).unwrap();
    let mut app = server.conn();
    let _: () = redis::cmd("AUTH").arg("app").arg("pw").query(&mut app).unwrap();
    let token = int(&mut app, &["TANDEM.LOCK", "l"]);
    let refused = error(&mut app, &["TANDEM.FENCED", "l", &token.to_string(), "SET", "k", "v"]);
    assert!(refused.starts_with("NOPERM"), "{refused}");
    assert_eq!(cmd(&mut app, &["TANDEM.FENCED", "l", &token.to_string(), "GET", "k"]).unwrap(), Value::Nil);
    assert_eq!(cmd(&mut admin, &["EXISTS", "k"]).unwrap(), Value::Int(0));
}
