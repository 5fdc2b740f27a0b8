//! Blocking pops, expiry and eviction through a real client, waiting on conditions.

mod support;

use std::time::{Duration, Instant};

use support::{wait_until, Server};

fn used_memory(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()).expect("used_memory in INFO")
}

fn dataset_memory(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory_dataset:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory_dataset in INFO")
}

#[test]
fn blpop_is_woken_by_a_push_from_another_client() {
    let server = Server::start();
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let got: Option<(String, String)> = redis::cmd("BLPOP").arg("jobs").arg("other").arg(10).query(&mut con).unwrap();
        got
    });
    let mut con = server.conn();
    // Wait until the waiter is really blocked, then push.
    assert!(wait_until(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
        info.contains("blocked_clients:1")
    }));
    let _: i64 = redis::cmd("RPUSH").arg("jobs").arg("job-1").query(&mut con).unwrap();
    assert_eq!(waiter.join().unwrap(), Some(("jobs".to_string(), "job-1".to_string())));
    let len: i64 = redis::cmd("LLEN").arg("jobs").query(&mut con).unwrap();
    assert_eq!(len, 0, "the element went to the blocked client, once");
}

#[test]
fn blocked_clients_are_served_in_arrival_order() {
    let server = Server::start();
    let mut con = server.conn();
    let mut handles = Vec::new();
    for i in 0..3 {
        let url = server.url();
        handles.push(std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let got: Option<(String, String)> = redis::cmd("BRPOP").arg("q").arg(10).query(&mut c).unwrap();
            (i, got.map(|(_, v)| v))
        }));
        let want = format!("blocked_clients:{}", i + 1);
        assert!(wait_until(Duration::from_secs(10), || {
            let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
            info.contains(&want)
        }));
    }
    for v in ["a", "b", "c"] {
        let _: i64 = redis::cmd("LPUSH").arg("q").arg(v).query(&mut con).unwrap();
    }
    let results: Vec<(i32, Option<String>)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, vec![(0, Some("a".into())), (1, Some("b".into())), (2, Some("c".into()))]);
}

#[test]
fn blpop_times_out_with_a_null_reply() {
    let server = Server::start();
    let mut con = server.conn();
    let started = Instant::now();
    let got: Option<(String, String)> = redis::cmd("BLPOP").arg("empty").arg("0.2").query(&mut con).unwrap();
    assert_eq!(got, None);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let err = redis::cmd("BLPOP").arg("empty").arg("-1").query::<()>(&mut con).unwrap_err();
    assert_eq!(err.detail(), Some("timeout is negative"));
}

#[test]
fn blmove_moves_when_data_arrives() {
    let server = Server::start();
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let got: Option<String> = redis::cmd("BLMOVE").arg("src").arg("dst").arg("LEFT").arg("RIGHT").arg(10).query(&mut c).unwrap();
        got
    });
    let mut con = server.conn();
    assert!(wait_until(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
        info.contains("blocked_clients:1")
    }));
    let _: i64 = redis::cmd("RPUSH").arg("src").arg("x").query(&mut con).unwrap();
    assert_eq!(waiter.join().unwrap(), Some("x".into()));
    let dst: Vec<String> = redis::cmd("LRANGE").arg("dst").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(dst, vec!["x"]);
}

#[test]
fn keys_expire_on_access_and_by_the_active_cycle() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("a").arg("1").arg("PX").arg(100).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("b").arg("1").arg("PX").arg(100).query(&mut con).unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg("a").query(&mut con).unwrap();
    assert!(ttl > 0 && ttl <= 100, "pttl {ttl}");
    // Read one of them until it is gone; the other is never read.
    assert!(wait_until(Duration::from_secs(5), || {
        let v: Option<String> = redis::cmd("GET").arg("a").query(&mut con).unwrap();
        v.is_none()
    }));
    assert!(
        wait_until(Duration::from_secs(5), || {
            let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
            n == 0
        }),
        "the active cycle must remove keys nobody reads"
    );
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
    assert!(info.contains("expired_keys:2"), "{info}");
}

#[test]
fn noeviction_refuses_writes_over_maxmemory_with_oom() {
    let server = Server::start();
    let mut con = server.conn();
    let used = used_memory(&mut con);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg((used + 1_000_000).to_string()).query(&mut con).unwrap();
    let value = "v".repeat(10_000);
    let mut refused = None;
    for i in 0..1000 {
        if let Err(e) = redis::cmd("SET").arg(format!("k{i}")).arg(&value).query::<()>(&mut con) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, err) = refused.expect("writes must be refused past maxmemory");
    assert!(i > 10, "some writes fit first");
    assert_eq!(err.code(), Some("OOM"));
    assert_eq!(err.detail(), Some("command not allowed when used memory > 'maxmemory'."));
    // Reads and deletes still work.
    let v: Option<String> = redis::cmd("GET").arg("k0").query(&mut con).unwrap();
    assert_eq!(v.as_deref(), Some(value.as_str()));
    let _: i64 = redis::cmd("DEL").arg("k0").arg("k1").arg("k2").query(&mut con).unwrap();
}

#[test]
fn allkeys_lru_evicts_to_stay_under_maxmemory() {
    let server = Server::start();
    let mut con = server.conn();
    let used = used_memory(&mut con);
    let limit = used + 2_000_000;
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("allkeys-lru").query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(limit.to_string()).query(&mut con).unwrap();
    let value = "v".repeat(10_000);
    for i in 0..1000 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(&value).query(&mut con).unwrap();
    }
    let keys: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert!(keys < 1000 && keys > 10, "evicted down to {keys} keys");
    assert!(dataset_memory(&mut con) < limit + 200_000, "memory used by data stays near the limit");
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
    let evicted: i64 = info.lines().find_map(|l| l.strip_prefix("evicted_keys:")).unwrap().trim().parse().unwrap();
    assert_eq!(evicted, 1000 - keys);
}

#[test]
fn volatile_ttl_evicts_only_keys_with_a_ttl() {
    let server = Server::start();
    let mut con = server.conn();
    let value = "v".repeat(10_000);
    for i in 0..20 {
        let _: () = redis::cmd("SET").arg(format!("keep{i}")).arg(&value).query(&mut con).unwrap();
    }
    let used = used_memory(&mut con);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("volatile-ttl").query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg((used + 1_000_000).to_string()).query(&mut con).unwrap();
    for i in 0..300 {
        let r = redis::cmd("SET").arg(format!("tmp{i}")).arg(&value).arg("EX").arg(1000 + i).query::<()>(&mut con);
        if r.is_err() {
            break;
        }
    }
    for i in 0..20 {
        let exists: i64 = redis::cmd("EXISTS").arg(format!("keep{i}")).query(&mut con).unwrap();
        assert_eq!(exists, 1, "keys without a TTL are never evicted by volatile-ttl");
    }
}

/// Redis's pubsub.tcl: lowering maxmemory under the data evicts at once (the policy
/// allowing), not at the next write.
#[test]
fn config_set_maxmemory_below_the_data_evicts_at_once() {
    let server = Server::start();
    let mut con = server.conn();
    for (name, value) in [("notify-keyspace-events", "Ee"), ("maxmemory-policy", "allkeys-lru")] {
        let _: () = redis::cmd("CONFIG").arg("SET").arg(name).arg(value).query(&mut con).unwrap();
    }
    let mut sub = server.raw();
    let _ = support::exchange(&mut sub, b"PSUBSCRIBE *\r\n", Duration::from_millis(300));
    let _: () = redis::cmd("SET").arg("foo").arg("bar").query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(1).query(&mut con).unwrap();
    let got = String::from_utf8_lossy(&support::exchange(&mut sub, b"", Duration::from_millis(500))).into_owned();
    assert!(got.contains("__keyevent@0__:evicted\r\n$3\r\nfoo\r\n"), "{got}");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0).query(&mut con).unwrap();
    let keys: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(keys, 0);
}

/// Reads one RESP line (a status, an error, a bulk's header and body) within `deadline`.
fn read_reply_line(stream: &mut std::net::TcpStream, deadline: Duration) -> Option<String> {
    use std::io::Read;
    let end = Instant::now() + deadline;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    let lines = |got: &[u8]| got.windows(2).filter(|w| w == b"\r\n").count();
    while Instant::now() < end {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
        match stream.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => got.push(byte[0]),
            Err(_) => continue,
        }
        let complete = match got.first() {
            Some(b'$') => lines(&got) == 2,
            Some(_) => lines(&got) == 1,
            None => false,
        };
        if complete {
            return Some(String::from_utf8_lossy(&got).into_owned());
        }
    }
    None
}

/// Two clients block on one list, the first with a destination of the wrong type; a
/// push then serves them in the order they blocked, as Redis does (its unit/type/list
/// "BRPOPLPUSH with multiple blocked clients"): the first fails with WRONGTYPE and the
/// second takes the element. The second's registration once took the element ahead of
/// the first, which then waited for good. Fresh connections each round; a release
/// build left the first waiting in about one round in five before the fix.
#[test]
fn clients_blocked_on_one_list_are_served_in_the_order_they_blocked() {
    use std::io::Write;
    let server = Server::start();
    let mut con = server.conn();
    for round in 0..30 {
        let (mut first, mut second) = (server.raw(), server.raw());
        let _: () = redis::cmd("DEL").arg("blist{t}").arg("target1{t}").arg("target2{t}").query(&mut con).unwrap();
        let _: () = redis::cmd("SET").arg("target1{t}").arg("nolist").query(&mut con).unwrap();
        first.write_all(b"*4\r\n$10\r\nBRPOPLPUSH\r\n$8\r\nblist{t}\r\n$10\r\ntarget1{t}\r\n$1\r\n0\r\n").unwrap();
        // The first is waiting; the second blocks right before the push, so its
        // registration and the push's notice reach the blocking task together.
        let blocked = |con: &mut redis::Connection| {
            let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
            info.contains("blocked_clients:1\r\n")
        };
        assert!(wait_until(Duration::from_secs(10), || blocked(&mut con)), "round {round}: the first client blocks");
        second.write_all(b"*4\r\n$10\r\nBRPOPLPUSH\r\n$8\r\nblist{t}\r\n$10\r\ntarget2{t}\r\n$1\r\n0\r\n").unwrap();
        let _: () = redis::cmd("LPUSH").arg("blist{t}").arg("foo").query(&mut con).unwrap();
        let got_first = read_reply_line(&mut first, Duration::from_secs(5));
        let got_second = read_reply_line(&mut second, Duration::from_secs(5));
        assert!(got_first.as_deref().is_some_and(|r| r.starts_with("-WRONGTYPE")), "round {round}: first client got {got_first:?}");
        assert_eq!(got_second.as_deref(), Some("$3\r\nfoo\r\n"), "round {round}");
        let moved: Vec<String> = redis::cmd("LRANGE").arg("target2{t}").arg(0).arg(-1).query(&mut con).unwrap();
        assert_eq!(moved, ["foo"], "round {round}");
    }
}
