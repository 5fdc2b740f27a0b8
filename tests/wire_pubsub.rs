//! Pub/sub, pattern pub/sub and keyspace notifications through a real client.

mod support;

use std::time::Duration;

use support::Server;

fn subscriber(server: &Server) -> redis::Connection {
    let con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    con
}

#[test]
fn published_messages_reach_channel_subscribers() {
    let server = Server::start();
    let mut sub_con = subscriber(&server);
    let mut publisher = server.conn();
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe("news").unwrap();
    let receivers: i64 = redis::cmd("PUBLISH").arg("news").arg("hello").query(&mut publisher).unwrap();
    assert_eq!(receivers, 1);
    let msg = pubsub.get_message().unwrap();
    assert_eq!(msg.get_channel_name(), "news");
    assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
}

#[test]
fn pattern_subscribers_get_pmessage_with_the_pattern() {
    let server = Server::start();
    let mut sub_con = subscriber(&server);
    let mut publisher = server.conn();
    let mut pubsub = sub_con.as_pubsub();
    pubsub.psubscribe("user.*").unwrap();
    let receivers: i64 = redis::cmd("PUBLISH").arg("user.42").arg("joined").query(&mut publisher).unwrap();
    assert_eq!(receivers, 1);
    let msg = pubsub.get_message().unwrap();
    assert_eq!(msg.get_pattern::<String>().unwrap(), "user.*");
    assert_eq!(msg.get_channel_name(), "user.42");
    assert_eq!(msg.get_payload::<String>().unwrap(), "joined");
    let none: i64 = redis::cmd("PUBLISH").arg("other").arg("x").query(&mut publisher).unwrap();
    assert_eq!(none, 0);
}

#[test]
fn pubsub_introspection_counts_subscribers() {
    let server = Server::start();
    let mut sub_con = subscriber(&server);
    let mut con = server.conn();
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe("a").unwrap();
    pubsub.psubscribe("p*").unwrap();
    let channels: Vec<String> = redis::cmd("PUBSUB").arg("CHANNELS").query(&mut con).unwrap();
    assert_eq!(channels, vec!["a"]);
    let numsub: (String, i64, String, i64) = redis::cmd("PUBSUB").arg("NUMSUB").arg("a").arg("b").query(&mut con).unwrap();
    assert_eq!(numsub, ("a".into(), 1, "b".into(), 0));
    let numpat: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query(&mut con).unwrap();
    assert_eq!(numpat, 1);
}

#[test]
fn subscribed_resp2_client_may_only_run_pubsub_commands() {
    let server = Server::start();
    let mut s = server.raw();
    let got = support::exchange(&mut s, b"SUBSCRIBE c\r\nGET k\r\nPING\r\nUNSUBSCRIBE\r\nGET k\r\n", Duration::from_millis(500));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n\
         -ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n\
         *2\r\n$4\r\npong\r\n$0\r\n\r\n\
         *3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n\
         $-1\r\n"
    );
}

#[test]
fn resp3_client_gets_push_messages_and_can_keep_running_commands() {
    let server = Server::start();
    let mut s = server.raw();
    let got = support::exchange(&mut s, b"HELLO 3\r\n", Duration::from_millis(300));
    assert!(got.starts_with(b"%7\r\n"), "HELLO 3 replies with a map: {}", String::from_utf8_lossy(&got));
    let got = support::exchange(&mut s, b"SUBSCRIBE c\r\nGET k\r\n", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), ">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n_\r\n");
    let mut publisher = server.conn();
    let _: i64 = redis::cmd("PUBLISH").arg("c").arg("m").query(&mut publisher).unwrap();
    let got = support::exchange(&mut s, b"", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
}

#[test]
fn keyspace_and_keyevent_notifications_follow_the_config_flags() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("KEA").query(&mut con).unwrap();
    let mut sub_con = subscriber(&server);
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe("__keyspace@0__:mykey").unwrap();
    pubsub.subscribe("__keyevent@0__:del").unwrap();
    let _: () = redis::cmd("SET").arg("mykey").arg("v").query(&mut con).unwrap();
    let _: i64 = redis::cmd("DEL").arg("mykey").query(&mut con).unwrap();
    let first = pubsub.get_message().unwrap();
    assert_eq!((first.get_channel_name(), first.get_payload::<String>().unwrap()), ("__keyspace@0__:mykey", "set".to_string()));
    let second = pubsub.get_message().unwrap();
    assert_eq!((second.get_channel_name(), second.get_payload::<String>().unwrap()), ("__keyspace@0__:mykey", "del".to_string()));
    let third = pubsub.get_message().unwrap();
    assert_eq!((third.get_channel_name(), third.get_payload::<String>().unwrap()), ("__keyevent@0__:del", "mykey".to_string()));
}

#[test]
fn expired_keys_are_notified_by_the_active_expiry_cycle() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("Ex").query(&mut con).unwrap();
    let mut sub_con = subscriber(&server);
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe("__keyevent@0__:expired").unwrap();
    // Nobody reads the key: only the active cycle can expire it.
    let _: () = redis::cmd("SET").arg("session:1").arg("v").arg("PX").arg(50).query(&mut con).unwrap();
    let msg = pubsub.get_message().expect("an expired event within the read timeout");
    assert_eq!(msg.get_payload::<String>().unwrap(), "session:1");
    let exists: i64 = redis::cmd("EXISTS").arg("session:1").query(&mut con).unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn evicted_keys_are_notified() {
    let server = Server::start();
    let mut con = server.conn();
    let used: i64 = used_memory(&mut con);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("Ee").query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("allkeys-random").query(&mut con).unwrap();
    let mut sub_con = subscriber(&server);
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe("__keyevent@0__:evicted").unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg((used + 2_000_000).to_string()).query(&mut con).unwrap();
    let value = "x".repeat(10_000);
    for i in 0..400 {
        let _: () = redis::cmd("SET").arg(format!("big{i}")).arg(&value).query(&mut con).unwrap();
    }
    let msg = pubsub.get_message().expect("an evicted event");
    assert!(msg.get_payload::<String>().unwrap().starts_with("big"));
}

pub fn used_memory(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()).expect("used_memory in INFO")
}

/// Redis 7's `n` class (pubsub.tcl): a key created fires `new` once, not when set again.
#[test]
fn keyspace_new_events_fire_when_a_key_is_created() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("En").query(&mut con).unwrap();
    let mut sub = server.raw();
    let _ = support::exchange(&mut sub, b"PSUBSCRIBE *\r\n", std::time::Duration::from_millis(300));
    for (key, value) in [("foo", "bar"), ("foo", "baz"), ("bar", "bar")] {
        let _: () = redis::cmd("SET").arg(key).arg(value).query(&mut con).unwrap();
    }
    let _: i64 = redis::cmd("RPUSH").arg("list").arg("x").query(&mut con).unwrap();
    let got = String::from_utf8_lossy(&support::exchange(&mut sub, b"", std::time::Duration::from_millis(500))).into_owned();
    let keys: Vec<&str> = got.split("__keyevent@0__:new\r\n").skip(1).filter_map(|rest| rest.split("\r\n").nth(1)).collect();
    assert_eq!(keys, vec!["foo", "bar", "list"], "{got}");
}

/// Sharded pub/sub (Redis 7): SSUBSCRIBE/SPUBLISH are a namespace of their own —
/// PUBLISH never reaches a shard subscriber, nor SPUBLISH a channel subscriber — and
/// the subscribe replies count shard channels apart from channels and patterns.
#[test]
fn shard_channels_are_subscribed_published_and_counted_apart() {
    let server = Server::start();
    let mut s = server.raw();
    let got = support::exchange(&mut s, b"SSUBSCRIBE orders audit\r\nSUBSCRIBE orders\r\nGET k\r\n", Duration::from_millis(500));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "*3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n\
         *3\r\n$10\r\nssubscribe\r\n$5\r\naudit\r\n:2\r\n\
         *3\r\n$9\r\nsubscribe\r\n$6\r\norders\r\n:1\r\n\
         -ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    let mut con = server.conn();
    let n: i64 = redis::cmd("SPUBLISH").arg("orders").arg("o-1").query(&mut con).unwrap();
    assert_eq!(n, 1, "the shard subscriber only");
    let got = support::exchange(&mut s, b"", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), "*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$3\r\no-1\r\n");
    let n: i64 = redis::cmd("PUBLISH").arg("orders").arg("p-1").query(&mut con).unwrap();
    assert_eq!(n, 1, "the channel subscriber only");
    let got = support::exchange(&mut s, b"", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), "*3\r\n$7\r\nmessage\r\n$6\r\norders\r\n$3\r\np-1\r\n");

    let mut shard: Vec<String> = redis::cmd("PUBSUB").arg("SHARDCHANNELS").query(&mut con).unwrap();
    shard.sort();
    assert_eq!(shard, vec!["audit", "orders"]);
    let matching: Vec<String> = redis::cmd("PUBSUB").arg("SHARDCHANNELS").arg("ord*").query(&mut con).unwrap();
    assert_eq!(matching, vec!["orders"]);
    let numsub: (String, i64, String, i64) = redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg("orders").arg("none").query(&mut con).unwrap();
    assert_eq!(numsub, ("orders".into(), 1, "none".into(), 0));
    // Where Redis puts a key, for clients that route by COMMAND's key positions.
    let keys: Vec<String> = redis::cmd("COMMAND").arg("GETKEYS").arg("SPUBLISH").arg("orders").arg("m").query(&mut con).unwrap();
    assert_eq!(keys, vec!["orders"]);
    let stats: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
    assert!(stats.contains("pubsubshard_channels:2\r\n"), "{stats}");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(list.lines().any(|l| l.contains("sub=1 psub=0 ssub=2") && l.contains("flags=P")), "{list}");

    // A shard channel is checked by ACL as a channel, not as a key.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("shardy")
        .arg("on")
        .arg("nopass")
        .arg("~foo*")
        .arg("&ord*")
        .arg("+@all")
        .query(&mut con)
        .unwrap();
    let mut shardy = server.conn();
    let _: () = redis::cmd("AUTH").arg("shardy").arg("x").query(&mut shardy).unwrap();
    let n: Result<i64, _> = redis::cmd("SPUBLISH").arg("orders").arg("o-acl").query(&mut shardy);
    assert_eq!(n.ok(), Some(1), "a key rule does not apply to a shard channel");
    let refused: Result<i64, _> = redis::cmd("SPUBLISH").arg("foo").arg("x").query(&mut shardy);
    assert!(refused.is_err_and(|e| e.to_string().contains("NOPERM")), "a channel rule does");
    let _ = support::exchange(&mut s, b"", Duration::from_millis(300));

    // SUNSUBSCRIBE with no names leaves every shard channel; the channel stays.
    let got = support::exchange(&mut s, b"SUNSUBSCRIBE\r\n", Duration::from_millis(300));
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("$12\r\nsunsubscribe\r\n$6\r\norders\r\n") && text.contains("$5\r\naudit\r\n"), "{text}");
    assert!(text.ends_with(":0\r\n"), "{text}");
    let n: i64 = redis::cmd("SPUBLISH").arg("orders").arg("o-2").query(&mut con).unwrap();
    assert_eq!(n, 0);
    let got = support::exchange(&mut s, b"SUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nGET k\r\n", Duration::from_millis(300));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n:0\r\n*3\r\n$11\r\nunsubscribe\r\n$6\r\norders\r\n:0\r\n$-1\r\n"
    );
}

/// A subscriber that stops reading holds the server's write to it; CLIENT KILL still
/// closes it (before, the connection waited in that write for as long as the client
/// did not read, and stayed in CLIENT LIST).
#[test]
fn a_subscriber_that_stops_reading_is_still_closed_by_client_kill() {
    use std::io::{Read, Write};
    let server = Server::start();
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"CLIENT SETNAME stalled\r\nSUBSCRIBE feed\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("feed\r\n:1\r\n") {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    // From here the subscriber reads nothing: 16 MB of messages fill the socket's
    // buffers on both sides, and the server's write to it waits.
    let mut publisher = server.conn();
    let payload = "x".repeat(64 * 1024);
    for _ in 0..256 {
        let _: i64 = redis::cmd("PUBLISH").arg("feed").arg(&payload).query(&mut publisher).unwrap();
    }
    let listed = |con: &mut redis::Connection| -> String { redis::cmd("CLIENT").arg("LIST").query(con).unwrap() };
    let line = listed(&mut publisher).lines().find(|l| l.contains("name=stalled")).map(str::to_string).expect("the subscriber is listed");
    let id = line.split(' ').find_map(|f| f.strip_prefix("id=")).unwrap().to_string();
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id).query(&mut publisher).unwrap();
    assert_eq!(killed, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while listed(&mut publisher).contains("name=stalled") {
        assert!(std::time::Instant::now() < deadline, "the killed subscriber is still connected: {}", listed(&mut publisher));
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(raw);
}
