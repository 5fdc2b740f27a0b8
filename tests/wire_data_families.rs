//! Bitmaps, HyperLogLog, geo, SORT, multi-key sorted-set commands, LMPOP, LCS,
//! OBJECT and the encoding parameters through a real client (the `redis` crate), in
//! RESP2 and RESP3, and the blocking pops added with them (woken by a write, timing
//! out with a null reply).

mod support;

use std::time::{Duration, Instant};

use redis::Value;
use support::{wait_until, Server};

fn err(con: &mut redis::Connection, cmd: &mut redis::Cmd) -> String {
    let e = cmd.query::<Value>(con).unwrap_err();
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

fn resp3(server: &Server) -> redis::Connection {
    let url = format!("{}?protocol=resp3", server.url());
    redis::Client::open(url).expect("client").get_connection().expect("RESP3 connection")
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn bitmaps() {
    let server = Server::start();
    let mut c = server.conn();
    let old: i64 = redis::cmd("SETBIT").arg("b").arg(7).arg(1).query(&mut c).unwrap();
    assert_eq!(old, 0);
    let v: Vec<u8> = redis::cmd("GET").arg("b").query(&mut c).unwrap();
    assert_eq!(v, vec![1]);
    let _: () = redis::cmd("SET").arg("f").arg("foobar").query(&mut c).unwrap();
    let n: i64 = redis::cmd("BITCOUNT").arg("f").query(&mut c).unwrap();
    assert_eq!(n, 26);
    let n: i64 = redis::cmd("BITCOUNT").arg("f").arg(5).arg(30).arg("BIT").query(&mut c).unwrap();
    assert_eq!(n, 17);
    let p: i64 = redis::cmd("BITPOS").arg("b").arg(1).query(&mut c).unwrap();
    assert_eq!(p, 7);
    let len: i64 = redis::cmd("BITOP").arg("OR").arg("d").arg("b").arg("f").query(&mut c).unwrap();
    assert_eq!(len, 6);
    let got: Vec<Option<i64>> = redis::cmd("BITFIELD")
        .arg("bf")
        .arg("SET")
        .arg("u8")
        .arg(0)
        .arg(200)
        .arg("OVERFLOW")
        .arg("FAIL")
        .arg("INCRBY")
        .arg("u8")
        .arg(0)
        .arg(100)
        .arg("GET")
        .arg("i8")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec![Some(0), None, Some(-56)]);
    let ro: Vec<i64> = redis::cmd("BITFIELD_RO").arg("bf").arg("GET").arg("u4").arg(0).query(&mut c).unwrap();
    assert_eq!(ro, vec![12]);
    assert_eq!(err(&mut c, redis::cmd("SETBIT").arg("b").arg(-1).arg(1)), "ERR bit offset is not an integer or out of range");
    assert_eq!(
        err(&mut c, redis::cmd("BITFIELD_RO").arg("bf").arg("SET").arg("u8").arg(0).arg(1)),
        "ERR BITFIELD_RO only supports the GET subcommand"
    );
}

#[test]
fn hyperloglog_values_are_redis_hyll_strings() {
    let server = Server::start();
    let mut c = server.conn();
    let changed: i64 = redis::cmd("PFADD").arg("h").arg("a").arg("b").arg("c").query(&mut c).unwrap();
    assert_eq!(changed, 1);
    let n: i64 = redis::cmd("PFCOUNT").arg("h").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let raw: Vec<u8> = redis::cmd("GET").arg("h").query(&mut c).unwrap();
    assert_eq!(&raw[..4], b"HYLL");
    // An HLL as redis-server 7.0.15 stores it after PFADD h a b c and PFCOUNT h
    // (sparse, with a valid cached count): SET as a plain string, it is an HLL here.
    let from_redis = b"HYLL\x01\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00`\xf3\x80P\xb1\x84K\xfb\x80BZ";
    let _: () = redis::cmd("SET").arg("r").arg(&from_redis[..]).query(&mut c).unwrap();
    let n: i64 = redis::cmd("PFCOUNT").arg("r").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let changed: i64 = redis::cmd("PFADD").arg("r").arg("a").query(&mut c).unwrap();
    assert_eq!(changed, 0, "the same registers as ours for the same elements");
    let _: () = redis::cmd("PFMERGE").arg("m").arg("h").arg("r").query(&mut c).unwrap();
    let n: i64 = redis::cmd("PFCOUNT").arg("m").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let many: Vec<String> = (0..20_000).map(|i| format!("x{i}")).collect();
    let _: i64 = redis::cmd("PFADD").arg("big").arg(&many).query(&mut c).unwrap();
    let n: i64 = redis::cmd("PFCOUNT").arg("big").query(&mut c).unwrap();
    assert_eq!(n, 19985, "redis-server 7.0.15 estimates 19985 for these elements");
    let _: () = redis::cmd("SET").arg("s").arg("not an hll").query(&mut c).unwrap();
    assert_eq!(err(&mut c, redis::cmd("PFCOUNT").arg("s")), "WRONGTYPE Key is not a valid HyperLogLog string value.");
}

#[test]
fn geo_in_resp2_and_resp3() {
    let server = Server::start();
    let mut c = server.conn();
    let added: i64 = redis::cmd("GEOADD")
        .arg("Sicily")
        .arg(13.361389)
        .arg(38.115556)
        .arg("Palermo")
        .arg(15.087269)
        .arg(37.502669)
        .arg("Catania")
        .query(&mut c)
        .unwrap();
    assert_eq!(added, 2);
    let score: String = redis::cmd("ZSCORE").arg("Sicily").arg("Palermo").query(&mut c).unwrap();
    assert_eq!(score, "3479099956230698", "the 52-bit geohash Redis stores");
    let pos: Value = redis::cmd("GEOPOS").arg("Sicily").arg("Palermo").arg("nowhere").query(&mut c).unwrap();
    assert_eq!(pos, Value::Array(vec![Value::Array(vec![bulk("13.36138933897018433"), bulk("38.11555639549629859")]), Value::Nil]));
    let d: String = redis::cmd("GEODIST").arg("Sicily").arg("Palermo").arg("Catania").arg("km").query(&mut c).unwrap();
    assert_eq!(d, "166.2742");
    let hashes: Vec<String> = redis::cmd("GEOHASH").arg("Sicily").arg("Palermo").arg("Catania").query(&mut c).unwrap();
    assert_eq!(hashes, vec!["sqc8b49rny0", "sqdtr74hyu0"]);
    let near: Vec<String> = redis::cmd("GEOSEARCH")
        .arg("Sicily")
        .arg("FROMLONLAT")
        .arg(15)
        .arg(37)
        .arg("BYRADIUS")
        .arg(200)
        .arg("km")
        .arg("ASC")
        .query(&mut c)
        .unwrap();
    assert_eq!(near, vec!["Catania", "Palermo"]);
    let stored: i64 =
        redis::cmd("GEORADIUS").arg("Sicily").arg(15).arg(37).arg(100).arg("km").arg("STORE").arg("near").query(&mut c).unwrap();
    assert_eq!(stored, 1);
    let mut c3 = resp3(&server);
    let pos: Value = redis::cmd("GEOPOS").arg("Sicily").arg("Catania").query(&mut c3).unwrap();
    let Value::Array(items) = pos else { panic!("GEOPOS: {pos:?}") };
    let Value::Array(coords) = &items[0] else { panic!("GEOPOS item: {items:?}") };
    assert!(matches!(coords[0], Value::Double(x) if (x - 15.087267).abs() < 1e-5), "RESP3 coordinates are doubles: {coords:?}");
}

#[test]
fn sort_by_get_and_store() {
    let server = Server::start();
    let mut c = server.conn();
    let _: i64 = redis::cmd("RPUSH").arg("ids").arg(3).arg(1).arg(2).query(&mut c).unwrap();
    for (id, weight, name) in [(1, 30, "one"), (2, 10, "two"), (3, 20, "three")] {
        let _: () = redis::cmd("SET").arg(format!("w_{id}")).arg(weight).query(&mut c).unwrap();
        let _: i64 = redis::cmd("HSET").arg(format!("o_{id}")).arg("name").arg(name).query(&mut c).unwrap();
    }
    let plain: Vec<String> = redis::cmd("SORT").arg("ids").query(&mut c).unwrap();
    assert_eq!(plain, vec!["1", "2", "3"]);
    let names: Vec<String> =
        redis::cmd("SORT").arg("ids").arg("BY").arg("w_*").arg("GET").arg("o_*->name").arg("DESC").query(&mut c).unwrap();
    assert_eq!(names, vec!["one", "three", "two"]);
    let n: i64 = redis::cmd("SORT").arg("ids").arg("LIMIT").arg(0).arg(2).arg("STORE").arg("out").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let out: Vec<String> = redis::cmd("LRANGE").arg("out").arg(0).arg(-1).query(&mut c).unwrap();
    assert_eq!(out, vec!["1", "2"]);
    let ro: Vec<String> = redis::cmd("SORT_RO").arg("ids").arg("ALPHA").arg("DESC").query(&mut c).unwrap();
    assert_eq!(ro, vec!["3", "2", "1"]);
    assert_eq!(err(&mut c, redis::cmd("SORT_RO").arg("ids").arg("STORE").arg("x")), "ERR syntax error");
}

#[test]
fn multi_key_sorted_sets_in_resp2_and_resp3() {
    let server = Server::start();
    let mut c = server.conn();
    let _: i64 = redis::cmd("ZADD").arg("a").arg(1).arg("x").arg(2).arg("y").query(&mut c).unwrap();
    let _: i64 = redis::cmd("ZADD").arg("b").arg(10).arg("y").arg(20).arg("z").query(&mut c).unwrap();
    let flat: Value = redis::cmd("ZINTER").arg(2).arg("a").arg("b").arg("WITHSCORES").query(&mut c).unwrap();
    assert_eq!(flat, Value::Array(vec![bulk("y"), bulk("12")]));
    let mut c3 = resp3(&server);
    let nested: Value = redis::cmd("ZUNION").arg(2).arg("a").arg("b").arg("WITHSCORES").query(&mut c3).unwrap();
    let pair = |m: &str, s: f64| Value::Array(vec![bulk(m), Value::Double(s)]);
    assert_eq!(nested, Value::Array(vec![pair("x", 1.0), pair("y", 12.0), pair("z", 20.0)]));
    let n: i64 = redis::cmd("ZDIFFSTORE").arg("d").arg(2).arg("b").arg("a").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let n: i64 = redis::cmd("ZINTERCARD").arg(2).arg("a").arg("b").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let popped: Value = redis::cmd("ZMPOP").arg(2).arg("empty").arg("b").arg("MAX").arg("COUNT").arg(5).query(&mut c3).unwrap();
    assert_eq!(popped, Value::Array(vec![bulk("b"), Value::Array(vec![pair("z", 20.0), pair("y", 10.0)])]));
    let none: Value = redis::cmd("ZMPOP").arg(1).arg("b").arg("MIN").query(&mut c).unwrap();
    assert_eq!(none, Value::Nil);
    let picks: Vec<String> = redis::cmd("ZRANDMEMBER").arg("a").arg(-5).query(&mut c).unwrap();
    assert_eq!(picks.len(), 5);
    assert!(picks.iter().all(|p| p == "x" || p == "y"));
    let list: i64 = redis::cmd("RPUSH").arg("l").arg("1").arg("2").arg("3").query(&mut c).unwrap();
    assert_eq!(list, 3);
    let got: (String, Vec<String>) = redis::cmd("LMPOP").arg(1).arg("l").arg("RIGHT").arg("COUNT").arg(2).query(&mut c).unwrap();
    assert_eq!(got, ("l".to_string(), vec!["3".to_string(), "2".to_string()]));
    let _: () = redis::cmd("MSET").arg("k1").arg("ohmytext").arg("k2").arg("mynewtext").query(&mut c).unwrap();
    let lcs: String = redis::cmd("LCS").arg("k1").arg("k2").query(&mut c).unwrap();
    assert_eq!(lcs, "mytext");
}

#[test]
fn object_encoding_follows_config_set_thresholds() {
    let server = Server::start();
    let mut c = server.conn();
    let _: i64 = redis::cmd("ZADD").arg("z").arg(1).arg("a").query(&mut c).unwrap();
    let enc: String = redis::cmd("OBJECT").arg("ENCODING").arg("z").query(&mut c).unwrap();
    assert_eq!(enc, "listpack");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("zset-max-ziplist-entries").arg(0).query(&mut c).unwrap();
    let enc: String = redis::cmd("OBJECT").arg("ENCODING").arg("z").query(&mut c).unwrap();
    assert_eq!(enc, "skiplist");
    // A script that may write runs again on every member, so it reads encodings under
    // Redis's defaults, not this server's CONFIG; a read-only one reads this server's.
    let script = "return redis.call('object', 'encoding', KEYS[1])";
    let enc: String = redis::cmd("EVAL").arg(script).arg(1).arg("z").query(&mut c).unwrap();
    assert_eq!(enc, "listpack");
    let enc: String = redis::cmd("EVAL_RO").arg(script).arg(1).arg("z").query(&mut c).unwrap();
    assert_eq!(enc, "skiplist");
    let got: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("zset-max-listpack-entries").arg("list-compress-depth").query(&mut c).unwrap();
    assert_eq!(got, vec!["zset-max-listpack-entries", "0", "list-compress-depth", "0"]);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("repl-ping-replica-period").arg(5).query(&mut c).unwrap();
    assert!(err(&mut c, redis::cmd("CONFIG").arg("SET").arg("set-max-intset-entries").arg("many")).contains("set-max-intset-entries"));
    let _: () = redis::cmd("SET").arg("n").arg(12).query(&mut c).unwrap();
    let enc: String = redis::cmd("OBJECT").arg("ENCODING").arg("n").query(&mut c).unwrap();
    assert_eq!(enc, "int");
    let idle: i64 = redis::cmd("OBJECT").arg("IDLETIME").arg("n").query(&mut c).unwrap();
    assert!(idle < 100);
    let missing: Option<String> = redis::cmd("OBJECT").arg("ENCODING").arg("nokey").query(&mut c).unwrap();
    assert_eq!(missing, None);
}

/// Waits until INFO shows `n` blocked clients.
fn wait_blocked(con: &mut redis::Connection, n: usize) {
    let want = format!("blocked_clients:{n}");
    assert!(wait_until(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
        info.contains(&want)
    }));
}

#[test]
fn blmpop_and_bzmpop_are_woken_by_writes() {
    let server = Server::start();
    let url = server.url();
    let list_waiter = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let got: Option<(String, Vec<String>)> =
            redis::cmd("BLMPOP").arg(10).arg(2).arg("q1").arg("q2").arg("LEFT").arg("COUNT").arg(2).query(&mut con).unwrap();
        got
    });
    let mut con = server.conn();
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("RPUSH").arg("q2").arg("a").arg("b").arg("c").query(&mut con).unwrap();
    assert_eq!(list_waiter.join().unwrap(), Some(("q2".to_string(), vec!["a".to_string(), "b".to_string()])));

    let url = server.url();
    let zset_waiter = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let got: Value = redis::cmd("BZMPOP").arg(10).arg(1).arg("z").arg("MIN").query(&mut con).unwrap();
        got
    });
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("ZADD").arg("z").arg(5).arg("m").query(&mut con).unwrap();
    assert_eq!(zset_waiter.join().unwrap(), Value::Array(vec![bulk("z"), Value::Array(vec![Value::Array(vec![bulk("m"), bulk("5")])])]));
}

#[test]
fn bzpopmin_and_bzpopmax_are_woken_by_zadd() {
    let server = Server::start();
    let mut con = server.conn();
    for (command, member) in [("BZPOPMIN", "low"), ("BZPOPMAX", "high")] {
        let url = server.url();
        let waiter = std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let got: Option<(String, String, String)> = redis::cmd(command).arg("none").arg("z").arg(10).query(&mut c).unwrap();
            got
        });
        wait_blocked(&mut con, 1);
        let _: i64 = redis::cmd("ZADD").arg("z").arg(1).arg("low").arg(9).arg("high").query(&mut con).unwrap();
        assert_eq!(
            waiter.join().unwrap(),
            Some(("z".to_string(), member.to_string(), if member == "low" { "1" } else { "9" }.to_string()))
        );
        let _: i64 = redis::cmd("DEL").arg("z").query(&mut con).unwrap();
    }
}

#[test]
fn new_blocking_pops_time_out_with_a_null_reply() {
    let server = Server::start();
    let mut con = server.conn();
    for cmd in [
        redis::cmd("BLMPOP").arg(0.2).arg(1).arg("nothing").arg("LEFT").clone(),
        redis::cmd("BZMPOP").arg(0.2).arg(1).arg("nothing").arg("MAX").clone(),
        redis::cmd("BZPOPMIN").arg("nothing").arg(0.2).clone(),
    ] {
        let started = Instant::now();
        let got: Value = cmd.query(&mut con).unwrap();
        assert_eq!(got, Value::Nil);
        assert!(started.elapsed() >= Duration::from_millis(150), "answered before the timeout");
    }
    assert_eq!(err(&mut con, redis::cmd("BZMPOP").arg(-1).arg(1).arg("k").arg("MIN")), "ERR timeout is negative");
}

#[test]
fn a_waiter_stays_blocked_when_its_key_turns_into_another_type() {
    let server = Server::start();
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let got: Option<(String, String)> = redis::cmd("BLPOP").arg("list").arg(10).query(&mut con).unwrap();
        got
    });
    let mut con = server.conn();
    wait_blocked(&mut con, 1);
    // The push makes the key ready, but by the time it could serve it is a string.
    let (): () = redis::pipe()
        .atomic()
        .cmd("LPUSH")
        .arg("list")
        .arg("a")
        .cmd("DEL")
        .arg("list")
        .cmd("SET")
        .arg("list")
        .arg("foo")
        .query(&mut con)
        .unwrap();
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("DEL").arg("list").query(&mut con).unwrap();
    let _: i64 = redis::cmd("LPUSH").arg("list").arg("b").query(&mut con).unwrap();
    assert_eq!(waiter.join().unwrap(), Some(("list".to_string(), "b".to_string())));
}

#[test]
fn a_served_waiter_hears_its_destination_type_error() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("target").arg("nolist").query(&mut con).unwrap();
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let e = redis::cmd("BRPOPLPUSH").arg("blist").arg("target").arg(10).query::<Value>(&mut c).unwrap_err();
        e.code().map(str::to_string)
    });
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("RPUSH").arg("blist").arg("foo").query(&mut con).unwrap();
    assert_eq!(waiter.join().unwrap().as_deref(), Some("WRONGTYPE"));
    let left: Vec<String> = redis::cmd("LRANGE").arg("blist").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(left, vec!["foo"], "nothing was moved");
}

#[test]
fn blocked_pops_are_served_by_a_key_put_in_place_whole() {
    let server = Server::start();
    let mut con = server.conn();
    for (pop, wanted) in [("BLPOP", "hij"), ("BZPOPMIN", "m")] {
        let url = server.url();
        let waiter = std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let got: Vec<String> = redis::cmd(pop).arg("foo{t}").arg(10).query(&mut c).unwrap();
            got
        });
        wait_blocked(&mut con, 1);
        if pop == "BLPOP" {
            let _: i64 = redis::cmd("LPUSH").arg("bob{t}").arg("abc").arg("def").arg("hij").query(&mut con).unwrap();
        } else {
            let _: i64 = redis::cmd("ZADD").arg("bob{t}").arg(1).arg("m").query(&mut con).unwrap();
        }
        let _: () = redis::cmd("RENAME").arg("bob{t}").arg("foo{t}").query(&mut con).unwrap();
        let got = waiter.join().unwrap();
        assert_eq!(got[0], "foo{t}", "{pop}");
        assert_eq!(got[1], wanted, "{pop}");
        let _: i64 = redis::cmd("DEL").arg("foo{t}").query(&mut con).unwrap();
    }
    // SORT … STORE creates the list a BLPOP waits for.
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let got: Vec<String> = redis::cmd("BLPOP").arg("foo{t}").arg(10).query(&mut c).unwrap();
        got
    });
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("LPUSH").arg("notfoo{t}").arg("hello").arg("hola").arg("aguacate").query(&mut con).unwrap();
    let _: i64 = redis::cmd("SORT").arg("notfoo{t}").arg("ALPHA").arg("STORE").arg("foo{t}").query(&mut con).unwrap();
    assert_eq!(waiter.join().unwrap(), vec!["foo{t}", "aguacate"]);
}
