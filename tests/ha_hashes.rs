//! Hashes on a stripe of three real servers whose members keep them in different
//! encodings (`hash-max-listpack-entries` is each server's own setting): every
//! member still holds the same data in the same order — equal digests, equal
//! HGETALL and HSCAN pages on each member's own copy — a write script that reads
//! OBJECT ENCODING writes the same on all, and a member restarted from its data
//! (snapshot and log, re-encoding what it loads) agrees again.

mod support;

use std::time::Duration;

use support::cluster::{Cluster, Spec};

type Pairs = Vec<(String, String)>;
/// HSCAN's pages: each next cursor and the items it came with.
type Pages = Vec<(u64, Vec<String>)>;

/// A connection that reads this member's own copy (READONLY on a mirror).
fn local_reader(cluster: &Cluster, i: usize) -> redis::Connection {
    let mut con = cluster.conn(i).expect("connect");
    let _: () = redis::cmd("READONLY").query(&mut con).expect("READONLY");
    con
}

fn encoding(con: &mut redis::Connection, key: &str) -> String {
    redis::cmd("OBJECT").arg("ENCODING").arg(key).query(con).expect("OBJECT ENCODING")
}

/// Every page of `scan` (HSCAN, SSCAN) with COUNT 2, in order.
fn scan_pages(con: &mut redis::Connection, scan: &str, key: &str) -> Pages {
    let mut pages = Vec::new();
    let mut cursor = 0u64;
    for _ in 0..1000 {
        let (next, items): (u64, Vec<String>) = redis::cmd(scan).arg(key).arg(cursor).arg("COUNT").arg(2).query(con).expect("scan");
        pages.push((next, items));
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    pages
}

/// What each member holds of `keys`, read from its own copy: HGETALL and HSCAN pages.
fn views(cluster: &Cluster, members: &[usize], keys: &[String]) -> Vec<Vec<(Pairs, Pages)>> {
    members
        .iter()
        .map(|&i| {
            let mut con = local_reader(cluster, i);
            keys.iter()
                .map(|k| {
                    let all: Pairs = redis::cmd("HGETALL").arg(k).query(&mut con).expect("HGETALL");
                    (all, scan_pages(&mut con, "HSCAN", k))
                })
                .collect()
        })
        .collect()
}

#[test]
fn members_with_different_hash_encodings_hold_the_same_hashes_in_the_same_order() {
    let mut cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let all: Vec<usize> = (0..3).collect();
    tracing::info!("--- each member its own threshold: always a table, 4 fields, Redis's 128");
    for (i, entries) in [(0usize, "0"), (1, "4"), (2, "128")] {
        let mut con = cluster.conn(i).unwrap();
        let _: () = redis::cmd("CONFIG").arg("SET").arg("hash-max-listpack-entries").arg(entries).query(&mut con).unwrap();
    }

    tracing::info!("--- writes through the active: sets, updates, removals, counters");
    let mut con = cluster.conn(active).unwrap();
    let keys: Vec<String> = (0..12).map(|k| format!("h{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        let pairs: Pairs = (0..(k + 1)).map(|f| (format!("f{f}"), format!("v{k}.{f}"))).collect();
        let _: i64 = redis::cmd("HSET").arg(key).arg(&pairs).query(&mut con).unwrap();
        // A removal in the middle moves the last field into its place.
        let _: i64 = redis::cmd("HDEL").arg(key).arg(format!("f{}", k / 2)).query(&mut con).unwrap();
        let _: i64 = redis::cmd("HINCRBY").arg(key).arg("count").arg(k).query(&mut con).unwrap();
        let _: i64 = redis::cmd("HSETNX").arg(key).arg("f0").arg("not-this").query(&mut con).unwrap();
        let _: i64 = redis::cmd("HSET").arg(key).arg("f1").arg("replaced").query(&mut con).unwrap();
    }
    // A script that writes what it reads of the encoding: by content on every member.
    let script = "return redis.call('set', KEYS[2], redis.call('object', 'encoding', KEYS[1]))";
    let _: String = redis::cmd("EVAL").arg(script).arg(2).arg("h6").arg("enc").query(&mut con).unwrap();
    let digest = cluster.wait_converged(&all, Duration::from_secs(20));

    tracing::info!("--- the members hold h6 (7 fields) in different encodings");
    let encodings: Vec<String> = all.iter().map(|&i| encoding(&mut local_reader(&cluster, i), "h6")).collect();
    assert_eq!(encodings, ["hashtable", "hashtable", "listpack"]);
    let written: String = redis::cmd("GET").arg("enc").query(&mut con).unwrap();
    assert_eq!(written, "listpack", "the script read h6 by its content under Redis's defaults");

    tracing::info!("--- and the same fields, order and HSCAN pages on each");
    let seen = views(&cluster, &all, &keys);
    assert!(seen.iter().all(|v| *v == seen[0]), "members differ: {seen:?}");
    assert_eq!(seen[0][3].0.len(), 5, "h3: four fields, one removed, `count` added");

    tracing::info!("--- a mirror restarted from its data re-encodes what it loads and agrees");
    let mirror = (0..3).find(|&i| i != active).unwrap();
    cluster.kill9(mirror);
    cluster.spawn(mirror);
    let again = cluster.wait_converged(&all, Duration::from_secs(30));
    assert_eq!(again, digest);
    let after = views(&cluster, &all, &keys);
    assert_eq!(after, seen);
}

/// Sets too: `set-max-intset-entries` is each server's own, so a set of integers is
/// packed on one member and a table on another; members, their order, SSCAN pages,
/// SPOP's picks (made in apply, by the entry's seed) and the digest agree.
#[test]
fn members_with_different_set_encodings_hold_the_same_sets_in_the_same_order() {
    let mut cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let all: Vec<usize> = (0..3).collect();
    for (i, entries) in [(0usize, "0"), (1, "4"), (2, "512")] {
        let mut con = cluster.conn(i).unwrap();
        let _: () = redis::cmd("CONFIG").arg("SET").arg("set-max-intset-entries").arg(entries).query(&mut con).unwrap();
    }
    let mut con = cluster.conn(active).unwrap();
    let keys: Vec<String> = (0..12).map(|k| format!("{{s}}{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        let members: Vec<String> = (0..(k + 2)).map(|m| if k == 11 { format!("m{m}") } else { (m * 7).to_string() }).collect();
        let _: i64 = redis::cmd("SADD").arg(key).arg(&members).query(&mut con).unwrap();
        let _: i64 = redis::cmd("SREM").arg(key).arg(&members[k / 2]).query(&mut con).unwrap();
        let _: Vec<String> = redis::cmd("SPOP").arg(key).arg(1).query(&mut con).unwrap();
    }
    let _: i64 = redis::cmd("SMOVE").arg(&keys[9]).arg(&keys[2]).arg("0").query(&mut con).unwrap();
    let _: i64 = redis::cmd("SUNIONSTORE").arg("{s}u").arg(&keys[3]).arg(&keys[8]).query(&mut con).unwrap();
    let script = "return redis.call('set', KEYS[2], redis.call('object', 'encoding', KEYS[1]))";
    let _: String = redis::cmd("EVAL").arg(script).arg(2).arg(&keys[6]).arg("{s}enc").query(&mut con).unwrap();
    let digest = cluster.wait_converged(&all, Duration::from_secs(20));

    let encodings: Vec<String> = all.iter().map(|&i| encoding(&mut local_reader(&cluster, i), &keys[6])).collect();
    assert_eq!(encodings, ["hashtable", "hashtable", "intset"], "{} on each member", keys[6]);
    let written: String = redis::cmd("GET").arg("{s}enc").query(&mut con).unwrap();
    assert_eq!(written, "intset", "the script read the set by its content under Redis's defaults");

    let mut names = keys.clone();
    names.push("{s}u".into());
    let seen: Vec<Vec<(Vec<String>, Pages)>> = all
        .iter()
        .map(|&i| {
            let mut con = local_reader(&cluster, i);
            names
                .iter()
                .map(|k| (redis::cmd("SMEMBERS").arg(k).query(&mut con).expect("SMEMBERS"), scan_pages(&mut con, "SSCAN", k)))
                .collect()
        })
        .collect();
    assert!(seen.iter().all(|v| *v == seen[0]), "members differ: {seen:?}");

    let mirror = (0..3).find(|&i| i != active).unwrap();
    cluster.kill9(mirror);
    cluster.spawn(mirror);
    assert_eq!(cluster.wait_converged(&all, Duration::from_secs(30)), digest);
}
