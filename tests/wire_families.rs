//! Every command family through a real client (the `redis` crate), with Redis's
//! reply shapes and error strings.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use redis::Value;
use support::{exchange, Server};

fn err(con: &mut redis::Connection, cmd: &mut redis::Cmd) -> String {
    let e = cmd.query::<Value>(con).unwrap_err();
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

#[test]
fn strings() {
    let server = Server::start();
    let mut c = server.conn();
    let _: () = redis::cmd("SET").arg("s").arg("hello").query(&mut c).unwrap();
    let v: String = redis::cmd("GET").arg("s").query(&mut c).unwrap();
    assert_eq!(v, "hello");
    let n: i64 = redis::cmd("APPEND").arg("s").arg(" world").query(&mut c).unwrap();
    assert_eq!(n, 11);
    let r: String = redis::cmd("GETRANGE").arg("s").arg(0).arg(4).query(&mut c).unwrap();
    assert_eq!(r, "hello");
    let n: i64 = redis::cmd("SETRANGE").arg("s").arg(6).arg("WORLD").query(&mut c).unwrap();
    assert_eq!(n, 11);
    let old: String = redis::cmd("SET").arg("s").arg("x").arg("GET").query(&mut c).unwrap();
    assert_eq!(old, "hello WORLD");
    let nx: Option<String> = redis::cmd("SET").arg("s").arg("y").arg("NX").query(&mut c).unwrap();
    assert_eq!(nx, None);
    let _: () = redis::cmd("MSET").arg("a").arg(1).arg("b").arg(2).query(&mut c).unwrap();
    let m: Vec<Option<i64>> = redis::cmd("MGET").arg("a").arg("b").arg("nope").query(&mut c).unwrap();
    assert_eq!(m, vec![Some(1), Some(2), None]);
    let n: i64 = redis::cmd("MSETNX").arg("a").arg(5).arg("c").arg(6).query(&mut c).unwrap();
    assert_eq!(n, 0);
    let n: i64 = redis::cmd("INCRBY").arg("a").arg(10).query(&mut c).unwrap();
    assert_eq!(n, 11);
    let n: i64 = redis::cmd("DECR").arg("a").query(&mut c).unwrap();
    assert_eq!(n, 10);
    let f: String = redis::cmd("INCRBYFLOAT").arg("f").arg("0.1").query(&mut c).unwrap();
    assert_eq!(f, "0.1");
    let f: String = redis::cmd("INCRBYFLOAT").arg("f").arg("0.2").query(&mut c).unwrap();
    assert_eq!(f, "0.3", "as Redis prints it, not 0.30000000000000004");
    assert_eq!(err(&mut c, redis::cmd("INCR").arg("s")), "ERR value is not an integer or out of range");
    let _: () = redis::cmd("SET").arg("max").arg(i64::MAX).query(&mut c).unwrap();
    assert_eq!(err(&mut c, redis::cmd("INCR").arg("max")), "ERR increment or decrement would overflow");
    let _: () = redis::cmd("SETEX").arg("e").arg(100).arg("v").query(&mut c).unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("e").query(&mut c).unwrap();
    assert!((99..=100).contains(&ttl));
    let v: String = redis::cmd("GETEX").arg("e").arg("PERSIST").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let ttl: i64 = redis::cmd("TTL").arg("e").query(&mut c).unwrap();
    assert_eq!(ttl, -1);
    let v: String = redis::cmd("GETDEL").arg("e").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let n: i64 = redis::cmd("STRLEN").arg("s").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let _: i64 = redis::cmd("LPUSH").arg("list").arg("x").query(&mut c).unwrap();
    assert_eq!(err(&mut c, redis::cmd("GET").arg("list")), "WRONGTYPE Operation against a key holding the wrong kind of value");
    assert_eq!(err(&mut c, redis::cmd("SET").arg("k").arg("v").arg("EX").arg(0)), "ERR invalid expire time in 'set' command");
    assert_eq!(err(&mut c, redis::cmd("SET").arg("k").arg("v").arg("NX").arg("XX")), "ERR syntax error");
}

#[test]
fn keys_and_expiry() {
    let server = Server::start();
    let mut c = server.conn();
    for k in ["user:1", "user:2", "other"] {
        let _: () = redis::cmd("SET").arg(k).arg("v").query(&mut c).unwrap();
    }
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("user:*").query(&mut c).unwrap();
    keys.sort();
    assert_eq!(keys, vec!["user:1", "user:2"]);
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..100 {
        let (next, batch): (String, Vec<String>) = redis::cmd("SCAN").arg(&cursor).arg("COUNT").arg(1).query(&mut c).unwrap();
        seen.extend(batch);
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 3);
    let n: i64 = redis::cmd("EXISTS").arg("user:1").arg("user:1").arg("nope").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let t: String = redis::cmd("TYPE").arg("other").query(&mut c).unwrap();
    assert_eq!(t, "string");
    let _: () = redis::cmd("RENAME").arg("other").arg("renamed").query(&mut c).unwrap();
    assert_eq!(err(&mut c, redis::cmd("RENAME").arg("nope").arg("x")), "ERR no such key");
    let n: i64 = redis::cmd("COPY").arg("renamed").arg("copied").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let n: i64 = redis::cmd("EXPIRE").arg("copied").arg(100).arg("NX").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let n: i64 = redis::cmd("EXPIRE").arg("copied").arg(50).arg("GT").query(&mut c).unwrap();
    assert_eq!(n, 0);
    let pttl: i64 = redis::cmd("PTTL").arg("copied").query(&mut c).unwrap();
    assert!(pttl > 99_000 && pttl <= 100_000);
    let at: i64 = redis::cmd("EXPIRETIME").arg("copied").query(&mut c).unwrap();
    assert!(at > 1_700_000_000);
    let n: i64 = redis::cmd("PERSIST").arg("copied").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let ttl: i64 = redis::cmd("TTL").arg("nope").query(&mut c).unwrap();
    assert_eq!(ttl, -2);
    let dump: Vec<u8> = redis::cmd("DUMP").arg("renamed").query(&mut c).unwrap();
    let _: () = redis::cmd("RESTORE").arg("restored").arg(0).arg(dump.clone()).query(&mut c).unwrap();
    assert_eq!(err(&mut c, redis::cmd("RESTORE").arg("restored").arg(0).arg(dump)), "BUSYKEY Target key name already exists.");
    let k: String = redis::cmd("RANDOMKEY").query(&mut c).unwrap();
    assert!(!k.is_empty());
    let n: i64 = redis::cmd("DEL").arg("user:1").arg("user:2").arg("nope").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let n: i64 = redis::cmd("UNLINK").arg("renamed").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn hashes() {
    let server = Server::start();
    let mut c = server.conn();
    let n: i64 = redis::cmd("HSET").arg("h").arg("a").arg(1).arg("b").arg(2).query(&mut c).unwrap();
    assert_eq!(n, 2);
    let all: HashMap<String, i64> = redis::cmd("HGETALL").arg("h").query(&mut c).unwrap();
    assert_eq!(all, HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    let v: Vec<Option<i64>> = redis::cmd("HMGET").arg("h").arg("a").arg("z").query(&mut c).unwrap();
    assert_eq!(v, vec![Some(1), None]);
    let n: i64 = redis::cmd("HINCRBY").arg("h").arg("a").arg(5).query(&mut c).unwrap();
    assert_eq!(n, 6);
    let f: String = redis::cmd("HINCRBYFLOAT").arg("h").arg("f").arg("1.5").query(&mut c).unwrap();
    assert_eq!(f, "1.5");
    let n: i64 = redis::cmd("HSETNX").arg("h").arg("a").arg(9).query(&mut c).unwrap();
    assert_eq!(n, 0);
    let n: i64 = redis::cmd("HLEN").arg("h").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let n: i64 = redis::cmd("HSTRLEN").arg("h").arg("f").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let b: bool = redis::cmd("HEXISTS").arg("h").arg("b").query(&mut c).unwrap();
    assert!(b);
    let mut keys: Vec<String> = redis::cmd("HKEYS").arg("h").query(&mut c).unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a", "b", "f"]);
    let vals: Vec<String> = redis::cmd("HVALS").arg("h").query(&mut c).unwrap();
    assert_eq!(vals.len(), 3);
    let pairs: Vec<String> = redis::cmd("HRANDFIELD").arg("h").arg(-5).arg("WITHVALUES").query(&mut c).unwrap();
    assert_eq!(pairs.len(), 10);
    let (cursor, items): (String, Vec<String>) = redis::cmd("HSCAN").arg("h").arg(0).arg("COUNT").arg(100).query(&mut c).unwrap();
    assert_eq!((cursor.as_str(), items.len()), ("0", 6));
    let n: i64 = redis::cmd("HDEL").arg("h").arg("a").arg("b").arg("f").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let n: i64 = redis::cmd("EXISTS").arg("h").query(&mut c).unwrap();
    assert_eq!(n, 0, "an emptied hash is deleted");
    let _: () = redis::cmd("SET").arg("s").arg("x").query(&mut c).unwrap();
    assert!(err(&mut c, redis::cmd("HSET").arg("s").arg("a").arg(1)).starts_with("WRONGTYPE"));
}

#[test]
fn lists() {
    let server = Server::start();
    let mut c = server.conn();
    let n: i64 = redis::cmd("RPUSH").arg("l").arg("a").arg("b").arg("c").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let n: i64 = redis::cmd("LPUSH").arg("l").arg("z").query(&mut c).unwrap();
    assert_eq!(n, 4);
    let all: Vec<String> = redis::cmd("LRANGE").arg("l").arg(0).arg(-1).query(&mut c).unwrap();
    assert_eq!(all, vec!["z", "a", "b", "c"]);
    let v: String = redis::cmd("LINDEX").arg("l").arg(-1).query(&mut c).unwrap();
    assert_eq!(v, "c");
    let _: () = redis::cmd("LSET").arg("l").arg(0).arg("y").query(&mut c).unwrap();
    assert_eq!(err(&mut c, redis::cmd("LSET").arg("l").arg(99).arg("x")), "ERR index out of range");
    let n: i64 = redis::cmd("LINSERT").arg("l").arg("BEFORE").arg("b").arg("ab").query(&mut c).unwrap();
    assert_eq!(n, 5);
    let p: i64 = redis::cmd("LPOS").arg("l").arg("b").query(&mut c).unwrap();
    assert_eq!(p, 3);
    let n: i64 = redis::cmd("LREM").arg("l").arg(0).arg("ab").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let _: () = redis::cmd("LTRIM").arg("l").arg(0).arg(2).query(&mut c).unwrap();
    let n: i64 = redis::cmd("LLEN").arg("l").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let v: String = redis::cmd("LMOVE").arg("l").arg("l2").arg("LEFT").arg("RIGHT").query(&mut c).unwrap();
    assert_eq!(v, "y");
    let popped: Vec<String> = redis::cmd("RPOP").arg("l").arg(5).query(&mut c).unwrap();
    assert_eq!(popped, vec!["b", "a"]);
    let none: Option<Vec<String>> = redis::cmd("LPOP").arg("l").arg(2).query(&mut c).unwrap();
    assert_eq!(none, None, "LPOP with a count on a missing key is the null array");
    let n: i64 = redis::cmd("LPUSHX").arg("nope").arg("x").query(&mut c).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn sets() {
    let server = Server::start();
    let mut c = server.conn();
    let n: i64 = redis::cmd("SADD").arg("s1").arg("a").arg("b").arg("c").arg("a").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let _: i64 = redis::cmd("SADD").arg("s2").arg("b").arg("c").arg("d").query(&mut c).unwrap();
    let members: HashSet<String> = redis::cmd("SMEMBERS").arg("s1").query(&mut c).unwrap();
    assert_eq!(members, HashSet::from(["a".into(), "b".into(), "c".into()]));
    let inter: HashSet<String> = redis::cmd("SINTER").arg("s1").arg("s2").query(&mut c).unwrap();
    assert_eq!(inter, HashSet::from(["b".into(), "c".into()]));
    let union: HashSet<String> = redis::cmd("SUNION").arg("s1").arg("s2").query(&mut c).unwrap();
    assert_eq!(union.len(), 4);
    let diff: HashSet<String> = redis::cmd("SDIFF").arg("s1").arg("s2").query(&mut c).unwrap();
    assert_eq!(diff, HashSet::from(["a".into()]));
    let n: i64 = redis::cmd("SINTERSTORE").arg("dst").arg("s1").arg("s2").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let n: i64 = redis::cmd("SINTERCARD").arg(2).arg("s1").arg("s2").arg("LIMIT").arg(1).query(&mut c).unwrap();
    assert_eq!(n, 1);
    let m: Vec<i64> = redis::cmd("SMISMEMBER").arg("s1").arg("a").arg("z").query(&mut c).unwrap();
    assert_eq!(m, vec![1, 0]);
    let n: i64 = redis::cmd("SMOVE").arg("s1").arg("s2").arg("a").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let n: i64 = redis::cmd("SCARD").arg("s2").query(&mut c).unwrap();
    assert_eq!(n, 4);
    let popped: Vec<String> = redis::cmd("SPOP").arg("s2").arg(2).query(&mut c).unwrap();
    assert_eq!(popped.len(), 2);
    let r: Vec<String> = redis::cmd("SRANDMEMBER").arg("s2").arg(-5).query(&mut c).unwrap();
    assert_eq!(r.len(), 5);
    let n: i64 = redis::cmd("SREM").arg("s1").arg("b").arg("c").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let b: bool = redis::cmd("SISMEMBER").arg("s1").arg("b").query(&mut c).unwrap();
    assert!(!b);
}

#[test]
fn sorted_sets() {
    let server = Server::start();
    let mut c = server.conn();
    let n: i64 = redis::cmd("ZADD").arg("z").arg(1).arg("a").arg(2).arg("b").arg(3).arg("c").query(&mut c).unwrap();
    assert_eq!(n, 3);
    let n: i64 = redis::cmd("ZADD").arg("z").arg("GT").arg("CH").arg(0).arg("a").arg(5).arg("b").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let s: f64 = redis::cmd("ZSCORE").arg("z").arg("b").query(&mut c).unwrap();
    assert_eq!(s, 5.0);
    let s: f64 = redis::cmd("ZINCRBY").arg("z").arg("0.5").arg("a").query(&mut c).unwrap();
    assert_eq!(s, 1.5);
    let range: Vec<(String, f64)> = redis::cmd("ZRANGE").arg("z").arg(0).arg(-1).arg("WITHSCORES").query(&mut c).unwrap();
    assert_eq!(range, vec![("a".into(), 1.5), ("c".into(), 3.0), ("b".into(), 5.0)]);
    let by: Vec<String> = redis::cmd("ZRANGE").arg("z").arg("(1.5").arg("+inf").arg("BYSCORE").query(&mut c).unwrap();
    assert_eq!(by, vec!["c", "b"]);
    let rev: Vec<String> = redis::cmd("ZREVRANGEBYSCORE").arg("z").arg(10).arg(2).arg("LIMIT").arg(0).arg(1).query(&mut c).unwrap();
    assert_eq!(rev, vec!["b"]);
    let n: i64 = redis::cmd("ZCOUNT").arg("z").arg(2).arg(5).query(&mut c).unwrap();
    assert_eq!(n, 2);
    let r: i64 = redis::cmd("ZRANK").arg("z").arg("b").query(&mut c).unwrap();
    assert_eq!(r, 2);
    let r: i64 = redis::cmd("ZREVRANK").arg("z").arg("b").query(&mut c).unwrap();
    assert_eq!(r, 0);
    let m: Vec<Option<f64>> = redis::cmd("ZMSCORE").arg("z").arg("a").arg("nope").query(&mut c).unwrap();
    assert_eq!(m, vec![Some(1.5), None]);
    let popped: Vec<(String, f64)> = redis::cmd("ZPOPMIN").arg("z").arg(1).query(&mut c).unwrap();
    assert_eq!(popped, vec![("a".into(), 1.5)]);
    let n: i64 = redis::cmd("ZREMRANGEBYSCORE").arg("z").arg("-inf").arg(3).query(&mut c).unwrap();
    assert_eq!(n, 1);
    let n: i64 = redis::cmd("ZCARD").arg("z").query(&mut c).unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        err(&mut c, redis::cmd("ZADD").arg("z").arg("NX").arg("XX").arg(1).arg("a")),
        "ERR XX and NX options at the same time are not compatible"
    );
    assert_eq!(err(&mut c, redis::cmd("ZADD").arg("z").arg("nan").arg("a")), "ERR value is not a valid float");
    // RESP3: scores are doubles and WITHSCORES pairs nest.
    let mut s = server.raw();
    let _ = exchange(&mut s, b"HELLO 3\r\n", Duration::from_millis(200));
    let got = exchange(&mut s, b"ZSCORE z b\r\nZRANGE z 0 -1 WITHSCORES\r\n", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), ",5\r\n*1\r\n*2\r\n$1\r\nb\r\n,5\r\n");
}
