//! An array of stripes (DESIGN.md §7) as plain clients and slot-routing clients see
//! it, with real `tandem` processes: one database through any server, `-MOVED` for a
//! client that routes by slot, and a stripe that is down taking only its own slots
//! with it.

mod support;

use std::time::Duration;

use support::cluster::{wait_until, Cluster, Spec};
use tandem::cluster::slot::key_slot;

fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
}

fn error_text(result: redis::RedisResult<redis::Value>) -> String {
    match result {
        // The crate spells known codes its own way (CrossSlot): compare in capitals.
        Err(e) => format!("{e}").to_uppercase(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// The stripe (0 or 1) a key belongs to in an array of two.
fn stripe_of(key: &str) -> usize {
    usize::from(key_slot(key.as_bytes()) >= 8192)
}

/// Keys named `prefix:i`, `n` of them in each of the two stripes.
fn keys_of_both(prefix: &str, n: usize) -> Vec<String> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0.. {
        let key = format!("{prefix}:{i}");
        match stripe_of(&key) {
            0 if a.len() < n => a.push(key),
            1 if b.len() < n => b.push(key),
            _ => {}
        }
        if a.len() == n && b.len() == n {
            break;
        }
    }
    a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect()
}

#[test]
fn a_plain_client_sees_one_database_through_any_server() {
    support::log_phases();
    let cluster = Cluster::start(Spec::servers(1).stripes(2));
    let keys = keys_of_both("k", 50);

    tracing::info!("--- writes through the first stripe's server, reads through the second's");
    let mut a = cluster.conn(0).unwrap();
    let mut b = cluster.conn(1).unwrap();
    for key in &keys {
        let _: () = query(&mut a, &["SET", key, &format!("v-{key}")]).unwrap();
    }
    for key in &keys {
        let value: Option<String> = query(&mut b, &["GET", key]).unwrap();
        assert_eq!(value, Some(format!("v-{key}")), "{key}");
    }

    tracing::info!("--- each stripe holds its own keys only");
    let held: i64 = keys.iter().filter(|k| stripe_of(k) == 0).count() as i64;
    let info: String = query(&mut a, &["INFO", "keyspace"]).unwrap();
    assert!(info.contains(&format!("db0:keys={held},")), "stripe A holds {held} keys: {info}");

    tracing::info!("--- MSET, MGET, EXISTS, TOUCH, DEL, UNLINK over both stripes, through either server");
    let (x, y) = (&keys[0], &keys[1]);
    assert_ne!(stripe_of(x), stripe_of(y));
    let _: () = query(&mut b, &["MSET", x, "1", y, "2"]).unwrap();
    let values: Vec<Option<String>> = query(&mut a, &["MGET", y, "missing", x, y]).unwrap();
    assert_eq!(values, vec![Some("2".into()), None, Some("1".into()), Some("2".into())]);
    let n: i64 = query(&mut a, &["EXISTS", x, y, "missing", x]).unwrap();
    assert_eq!(n, 3);
    let n: i64 = query(&mut b, &["TOUCH", x, y]).unwrap();
    assert_eq!(n, 2);
    let n: i64 = query(&mut b, &["DEL", x, y, "missing"]).unwrap();
    assert_eq!(n, 2);
    let n: i64 = query(&mut a, &["UNLINK", &keys[2], &keys[3]]).unwrap();
    assert_eq!(n, 2);
    let values: Vec<Option<String>> = query(&mut a, &["MGET", x, y, &keys[2], &keys[3], &keys[4]]).unwrap();
    assert_eq!(values, vec![None, None, None, None, Some(format!("v-{}", keys[4]))]);

    tracing::info!("--- what cannot be split stays within one slot, as in Redis Cluster");
    let err = error_text(query(&mut a, &["MSETNX", x, "1", y, "2"]));
    assert!(err.contains("CROSSSLOT"), "{err}");
    let err = error_text(query(&mut a, &["SUNION", x, y]));
    assert!(err.contains("CROSSSLOT"), "{err}");
    // A destination named by a keyword counts too: GEORADIUS would otherwise write
    // `y` on `x`'s stripe, where no client would find it.
    let err = error_text(query(&mut a, &["GEORADIUS", x, "0", "0", "1", "km", "STORE", y]));
    assert!(err.contains("CROSSSLOT"), "{err}");
}

#[test]
fn a_slot_routing_client_is_moved_and_a_plain_one_forwarded() {
    let cluster = Cluster::start(Spec::servers(1).stripes(2));
    let key = keys_of_both("m", 1).into_iter().find(|k| stripe_of(k) == 1).expect("a key of stripe B");
    let mut plain = cluster.conn(0).unwrap();
    let _: () = query(&mut plain, &["SET", &key, "there"]).unwrap();

    // A client on the cluster port routes by slot: CLUSTER SLOTS names the cluster
    // ports, and another stripe's key is a MOVED to its active's cluster port.
    let on_cluster_port = |i: usize| {
        let m = &cluster.members[i];
        let url = format!("redis://{}:{}/", m.host, m.cluster_port.expect("an array's servers have cluster ports"));
        redis::Client::open(url.as_str()).unwrap().get_connection().unwrap()
    };
    let mut routing = on_cluster_port(0);
    let slots: redis::Value = query(&mut routing, &["CLUSTER", "SLOTS"]).unwrap();
    let redis::Value::Array(ranges) = &slots else { panic!("{slots:?}") };
    assert_eq!(ranges.len(), 2, "one range per stripe: {slots:?}");
    let err = error_text(query(&mut routing, &["GET", &key]));
    let b = &cluster.members[1];
    let moved = format!("MOVED: {} {}:{}", key_slot(key.as_bytes()), b.host, b.cluster_port.unwrap());
    assert!(err.contains(&moved), "a MOVED to stripe B's active: {err}");
    let mine = keys_of_both("m", 1).into_iter().find(|k| stripe_of(k) == 0).expect("a key of stripe A");
    let own: Option<String> = query(&mut routing, &["GET", &mine]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(own, None, "its own stripe's keys are served");

    // On the client port, asking for the topology changes nothing: still forwarded.
    let _: redis::Value = query(&mut plain, &["CLUSTER", "SLOTS"]).unwrap();
    let value: Option<String> = query(&mut plain, &["GET", &key]).unwrap();
    assert_eq!(value.as_deref(), Some("there"), "a plain client is forwarded");
}

/// What cannot be served whole is refused before anything runs: MSET with a key
/// left without a value, a transaction that would span stripes or cover one stripe
/// of a whole-database command, and a write split over a stripe that is down.
#[test]
fn nothing_runs_of_what_an_array_cannot_serve_whole() {
    support::log_phases();
    let cluster = Cluster::start(Spec::servers(1).stripes(2));
    let keys = keys_of_both("r", 2);
    let (a1, b1, a2) = (&keys[0], &keys[1], &keys[2]);
    let mut a = cluster.conn(0).unwrap();

    tracing::info!("--- MSET with a key left without a value: Redis's error, nothing set");
    let err = error_text(query(&mut a, &["MSET", a1, "1", b1]));
    assert!(err.contains("WRONG NUMBER OF ARGUMENTS"), "{err}");
    let n: i64 = query(&mut a, &["EXISTS", a1, b1]).unwrap();
    assert_eq!(n, 0, "nothing of the refused MSET was applied");

    tracing::info!("--- MULTI: keys of two stripes and whole-database commands are refused when queued");
    let _: () = query(&mut a, &["MULTI"]).unwrap();
    let err = error_text(query(&mut a, &["MGET", a1, b1]));
    assert!(err.contains("CROSSSLOT"), "{err}");
    let err = error_text(query(&mut a, &["DBSIZE"]));
    assert!(err.contains("INSIDE MULTI WOULD COVER ONE STRIPE"), "{err}");
    let err = error_text(query(&mut a, &["EXEC"]));
    assert!(err.contains("EXECABORT"), "{err}");
    let _: () = query(&mut a, &["MULTI"]).unwrap();
    let _: () = query(&mut a, &["SET", a1, "x"]).unwrap();
    let _: () = query(&mut a, &["SET", a2, "y"]).unwrap();
    let done: Vec<String> = query(&mut a, &["EXEC"]).unwrap();
    assert_eq!(done, ["OK", "OK"], "a transaction within one stripe runs");

    tracing::info!("--- stripe B paused and seen down: a DEL over both stripes waits, then CLUSTERDOWN, nothing deleted");
    cluster.sigstop(1);
    let seen = wait_until(Duration::from_secs(10), || {
        query::<String>(&mut a, &["CLUSTER", "INFO"]).is_ok_and(|i| i.starts_with("cluster_state:fail"))
    });
    let err = error_text(query(&mut a, &["DEL", a1, b1]));
    cluster.sigcont(1);
    assert!(seen, "stripe A never saw stripe B down");
    assert!(err.contains("CLUSTERDOWN") && err.contains("STRIPE B"), "{err}");
    let v: Option<String> = query(&mut a, &["GET", a1]).unwrap();
    assert_eq!(v.as_deref(), Some("x"), "stripe A's part did not run");
}

#[test]
fn a_stripe_down_takes_only_its_slots_and_comes_back_without_an_operator() {
    support::log_phases();
    let mut cluster = Cluster::start(Spec::servers(1).stripes(2));
    let keys = keys_of_both("d", 5);
    let mut a = cluster.conn(0).unwrap();
    for key in &keys {
        let _: () = query(&mut a, &["SET", key, "kept"]).unwrap();
    }

    tracing::info!("--- stripe B's only server is killed");
    cluster.kill9(1);
    let down = wait_until(Duration::from_secs(10), || {
        query::<String>(&mut a, &["CLUSTER", "INFO"])
            .is_ok_and(|i| i.contains("cluster_state:fail") && i.contains("cluster_slots_fail:8192"))
    });
    assert!(down, "CLUSTER INFO does not say half the slots failed: {:?}", query::<String>(&mut a, &["CLUSTER", "INFO"]));
    for key in &keys {
        let got: redis::RedisResult<Option<String>> = query(&mut a, &["GET", key]);
        if stripe_of(key) == 0 {
            assert_eq!(got.unwrap().as_deref(), Some("kept"), "stripe A still serves {key}");
        } else {
            let err = got.expect_err("stripe B is down").to_string().to_uppercase();
            assert!(err.contains("CLUSTERDOWN") && err.contains("STRIPE B"), "{err}");
        }
    }
    let err = error_text(query(&mut a, &["MGET", &keys[0], &keys[1]]));
    assert!(err.contains("CLUSTERDOWN"), "{err}");

    tracing::info!("--- it restarts from its data: every key is served again, nobody intervened");
    cluster.spawn(1);
    let back = wait_until(Duration::from_secs(20), || query::<Option<String>>(&mut a, &["GET", &keys[1]]).is_ok());
    assert!(back, "stripe B did not come back: {}", cluster.all_stderr());
    let values: Vec<Option<String>> = query(&mut a, &["MGET", &keys[0], &keys[1], &keys[2], &keys[3]]).unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some("kept")), "{values:?}");
    let info: String = query(&mut a, &["CLUSTER", "INFO"]).unwrap();
    assert!(info.starts_with("cluster_state:ok"), "{info}");
}

/// `tandem demo`: one command starts a whole local array, prints how to connect and
/// where the consoles are, serves until Ctrl-C, then stops everything and removes
/// its directory.
#[test]
fn tandem_demo_starts_an_array_prints_how_to_connect_and_cleans_up() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = std::process::Command::new(support::binary())
        .args(["demo", "--voter"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run tandem demo");
    // Bounded: the demo is killed if the test fails before it is stopped.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let mut demo = Reap(child);
    let mut printed = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the demo");
        let done = line.starts_with("Press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    assert!(text.contains("stripe A:") && text.contains("stripe B:") && text.contains("voter"), "{text}");
    let dir = printed[0].rsplit(" in ").next().map(std::path::PathBuf::from).expect("the directory");
    assert!(dir.join("tandem.toml").is_file(), "{text}");

    // The plain-client line: `redis-cli -h H -p P`.
    let plain = printed.iter().find(|l| l.trim_start().starts_with("redis-cli -h")).expect("a plain client line");
    let words: Vec<&str> = plain.split_whitespace().collect();
    let url = format!("redis://{}:{}/", words[2], words[4]);
    let mut con = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let keys = keys_of_both("demo", 2);
    for key in &keys {
        let _: () = query(&mut con, &["SET", key, "1"]).unwrap();
    }
    let n: i64 = query(&mut con, &["EXISTS", &keys[0], &keys[1], &keys[2], &keys[3]]).unwrap();
    assert_eq!(n, 4, "keys of both stripes through one server");

    // The console answers where the demo says it is.
    let console = printed.iter().find_map(|l| l.strip_prefix("The console: http://")).expect("a console line");
    let addr = console.split('/').next().expect("host:port");
    let mut http = std::net::TcpStream::connect(addr).expect("connect to the console");
    http.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    http.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    let _ = http.read_to_string(&mut page);
    assert!(page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"), "{}", &page[..page.len().min(200)]);

    // Ctrl-C: everything stops and the directory is gone.
    let pid = demo.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().is_ok_and(|s| s.success()));
    let exited = wait_until(Duration::from_secs(20), || demo.0.try_wait().is_ok_and(|s| s.is_some()));
    assert!(exited, "the demo did not stop on SIGINT");
    assert!(!dir.exists(), "the demo left {} behind", dir.display());
    assert!(redis::Client::open(url.as_str()).unwrap().get_connection().is_err(), "a server outlived the demo");
}

/// DESIGN §7: PUBLISH reaches subscribers on every server of every stripe and counts
/// them all; a subscriber's own server is of no matter.
#[test]
fn publish_reaches_and_counts_subscribers_on_every_stripe() {
    let cluster = Cluster::start(Spec::servers(1).stripes(2));
    // (server, pattern?) per subscriber; a PubSub unsubscribes when dropped, so all
    // stay alive to the end.
    let wanted = [(0, false), (1, false), (1, true)];
    let mut cons: Vec<redis::Connection> =
        wanted.iter().map(|&(i, _)| redis::Client::open(cluster.url(i)).unwrap().get_connection().unwrap()).collect();
    let mut subscribers: Vec<redis::PubSub> = cons
        .iter_mut()
        .zip(wanted)
        .map(|(con, (_, pattern))| {
            let mut pubsub = con.as_pubsub();
            pubsub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            if pattern {
                pubsub.psubscribe("news.*").unwrap();
            } else {
                pubsub.subscribe("news.eu").unwrap();
            }
            pubsub
        })
        .collect();
    let mut a = cluster.conn(0).unwrap();
    // The first messages to another stripe open its connections: a PUBLISH counts
    // the servers that answer within a quarter of an election time, so the count
    // may be short at first; within a deadline it is every subscriber.
    let mut sent = 0;
    let counted = wait_until(Duration::from_secs(10), || {
        sent += 1;
        query::<i64>(&mut a, &["PUBLISH", "news.eu", &format!("hello-{sent}")]).is_ok_and(|n| n == 3)
    });
    assert!(counted, "one subscriber on stripe A's server, a channel and a pattern subscriber on stripe B's");
    for pubsub in &mut subscribers {
        // Every message arrives, in order; the last is the one counted.
        for k in 1..=sent {
            let message = pubsub.get_message().expect("the message arrives");
            assert_eq!(message.get_payload::<String>().unwrap(), format!("hello-{k}"));
        }
    }
    let mut b = cluster.conn(1).unwrap();
    let n: i64 = query(&mut b, &["PUBLISH", "news.us", "hi"]).unwrap();
    assert_eq!(n, 1, "only the pattern subscriber matches");
    let n: i64 = query(&mut b, &["PUBLISH", "elsewhere", "hi"]).unwrap();
    assert_eq!(n, 0);

    // Stripe B's server paused: PUBLISH on A keeps answering, counting what answers.
    cluster.sigstop(1);
    let alone = wait_until(Duration::from_secs(10), || query::<i64>(&mut a, &["PUBLISH", "news.eu", "while paused"]).is_ok_and(|n| n == 1));
    cluster.sigcont(1);
    assert!(alone, "with stripe B's server paused, PUBLISH counts stripe A's subscriber alone");
}

/// Through the client port a plain client sees one database: DBSIZE, KEYS, SCAN,
/// RANDOMKEY and FLUSHALL cover every stripe. Through the cluster port a connection
/// is answered as a Redis Cluster node answers (its stripe only, `-MOVED` for the
/// others), so a cluster client that asks every node and adds up counts right.
#[test]
fn the_client_port_covers_the_whole_array_and_the_cluster_port_one_stripe() {
    support::log_phases();
    let cluster = Cluster::start(Spec { cluster_ports: true, ..Spec::servers(1).stripes(2) });
    let keys = keys_of_both("w", 30);
    let mut a = cluster.conn(0).unwrap();
    for key in &keys {
        let _: () = query(&mut a, &["SET", key, "1"]).unwrap();
    }

    tracing::info!("--- the client port: the whole array");
    let mut b = cluster.conn(1).unwrap();
    for con in [&mut a, &mut b] {
        let n: i64 = query(con, &["DBSIZE"]).unwrap();
        assert_eq!(n, 60);
        let mut listed: Vec<String> = query(con, &["KEYS", "w:*"]).unwrap();
        listed.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(listed, expected);
    }
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut cursor = "0".to_string();
    for _ in 0..1000 {
        let (next, batch): (String, Vec<String>) = query(&mut b, &["SCAN", &cursor, "COUNT", "7"]).unwrap();
        for key in batch {
            *seen.entry(key).or_default() += 1;
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "the scan ends");
    assert_eq!(seen.len(), 60, "SCAN covers every key of both stripes");
    assert!(seen.values().all(|&n| n == 1), "no key is returned twice: {seen:?}");
    let random: Option<String> = query(&mut a, &["RANDOMKEY"]).unwrap();
    assert!(random.is_some_and(|k| keys.contains(&k)));

    tracing::info!("--- the cluster port: one stripe, as a Redis Cluster node");
    let port_of = |i: usize| cluster.members[i].cluster_port.expect("a cluster port");
    let node = |i: usize| {
        let url = format!("redis://{}:{}/", cluster.members[i].host, port_of(i));
        redis::Client::open(url.as_str()).unwrap().get_connection().unwrap()
    };
    let mut ca = node(0);
    let n: i64 = query(&mut ca, &["DBSIZE"]).unwrap();
    assert_eq!(n, 30, "stripe A's keys only");
    let b_key = keys.iter().find(|k| stripe_of(k) == 1).unwrap();
    let err = error_text(query(&mut ca, &["GET", b_key]));
    let server_b = &cluster.members[1];
    assert!(err.contains(&format!("MOVED: {} {}:{}", key_slot(b_key.as_bytes()), server_b.host, port_of(1))), "{err}");
    let slots: redis::Value = query(&mut a, &["CLUSTER", "SLOTS"]).unwrap();
    let text = format!("{slots:?}");
    assert!(text.contains(&format!("int({})", port_of(0))) && text.contains(&format!("int({})", port_of(1))), "{text}");

    tracing::info!("--- redis-py RedisCluster scans every node itself: each key once");
    let script = "import redis, sys\nrc = redis.RedisCluster(host=sys.argv[1], port=int(sys.argv[2]))\nkeys = list(rc.scan_iter(match='w:*', count=7))\nprint(len(keys), len(set(keys)))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &cluster.members[0].host, &cluster.members[0].client_port.to_string()])
        .output()
        .expect("run python3 (bash scripts/test-deps.sh installs redis-py)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "60 60", "{}", String::from_utf8_lossy(&out.stderr));

    tracing::info!("--- FLUSHALL through the client port empties every stripe");
    let _: () = query(&mut b, &["FLUSHALL"]).unwrap();
    let n: i64 = query(&mut a, &["DBSIZE"]).unwrap();
    assert_eq!(n, 0);
}

/// Keyspace notifications reach subscribers whichever stripe produced them: stripe
/// B's active tells stripe A's servers too.
#[test]
fn keyspace_notifications_reach_subscribers_on_other_stripes() {
    let cluster = Cluster::start(Spec::servers(1).stripes(2));
    let mut b = cluster.conn(1).unwrap();
    let _: () = query(&mut b, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]).unwrap();
    let mut con = redis::Client::open(cluster.url(0)).unwrap().get_connection().unwrap();
    let mut on_a = con.as_pubsub();
    on_a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    on_a.psubscribe("__keyevent@0__:*").unwrap();
    let key = keys_of_both("n", 1).into_iter().find(|k| stripe_of(k) == 1).unwrap();
    let _: () = query(&mut b, &["SET", &key, "1"]).unwrap();
    let message = on_a.get_message().expect("stripe B's event arrives on stripe A's server");
    assert_eq!(message.get_channel_name(), "__keyevent@0__:set");
    assert_eq!(message.get_payload::<String>().unwrap(), key);
}

/// The `redis` crate's own cluster client (async) on an array with cluster ports:
/// keys of both stripes through it, a `kill -9` of one stripe's active that it
/// carries on through, nothing acknowledged lost.
#[test]
fn the_redis_crates_cluster_client_carries_on_through_kill9_of_a_stripes_active() {
    support::log_phases();
    let mut cluster = Cluster::start(Spec { cluster_ports: true, ..Spec::servers(3).stripes(2) });
    let actives = cluster.wait_array_formed();
    let nodes: Vec<String> = cluster
        .stripe_members(0)
        .into_iter()
        .map(|i| format!("redis://{}:{}/", cluster.members[i].host, cluster.members[i].cluster_port.unwrap()))
        .collect();
    let keys = keys_of_both("crate", 100);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = redis::cluster::ClusterClientBuilder::new(nodes)
        .retries(10)
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut con = runtime.block_on(client.get_async_connection()).unwrap();
    let set = |con: &mut redis::cluster_async::ClusterConnection, key: &str| -> redis::RedisResult<()> {
        runtime.block_on(redis::cmd("SET").arg(key).arg(key).query_async(con))
    };
    for key in &keys[..100] {
        set(&mut con, key).unwrap();
    }

    tracing::info!("--- kill -9 stripe B's active");
    cluster.kill9(actives[1]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for key in &keys[100..] {
        loop {
            match set(&mut con, key) {
                Ok(()) => break,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::info!(%e, "retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{key}: {e}\n{}", cluster.all_stderr()),
            }
        }
    }
    for key in &keys {
        let value: Option<String> = runtime.block_on(redis::cmd("GET").arg(key).query_async(&mut con)).unwrap();
        assert_eq!(value.as_deref(), Some(key.as_str()), "{key} lost");
    }
}

/// Servers whose configs list the stripes in another order would disagree on which
/// stripe owns a slot and both take the same key: each sees the other's config
/// differs and serves no slot until they agree.
#[test]
fn servers_whose_configs_differ_serve_no_slot_until_they_agree() {
    support::log_phases();
    let mut cluster = Cluster::start(Spec::servers(1).stripes(2));
    let original = std::fs::read_to_string(&cluster.config).unwrap();
    let b_starts = original.match_indices("\n[[stripe]]").nth(1).map(|(i, _)| i).expect("a second stripe");
    let a_starts = original.find("\n[[stripe]]").unwrap();
    let swapped = format!("{}{}\n{}", &original[..a_starts], &original[b_starts..], &original[a_starts..b_starts]);
    assert!(swapped.find("name = \"B\"") < swapped.find("name = \"A\""), "{swapped}");

    tracing::info!("--- stripe B's server restarts reading the stripes as B, A");
    cluster.kill9(1);
    std::fs::write(&cluster.config, &swapped).unwrap();
    cluster.spawn(1);
    let mut a = cluster.conn(0).unwrap();
    let refused = wait_until(Duration::from_secs(15), || {
        query::<Option<String>>(&mut a, &["GET", "any"]).is_err_and(|e| e.to_string().contains("reads another array from its config"))
    });
    assert!(refused, "stripe A's server kept serving: {:?}", query::<Option<String>>(&mut a, &["GET", "any"]));
    assert!(wait_until(Duration::from_secs(15), || cluster.stderr(1).contains("the array's config differs between servers")));

    tracing::info!("--- the config is put back: both serve again");
    cluster.kill9(1);
    std::fs::write(&cluster.config, &original).unwrap();
    cluster.spawn(1);
    let back = wait_until(Duration::from_secs(15), || query::<()>(&mut a, &["SET", "any", "1"]).is_ok());
    assert!(back, "{}", cluster.all_stderr());
}

/// Sharded pub/sub across the array: a plain client may SSUBSCRIBE on any server
/// and SPUBLISH on any server, and every shard subscriber is reached and counted; a
/// slot-routing client is served as a Redis Cluster node serves it (`-MOVED` to the
/// channel's stripe, `-CROSSSLOT` for channels of several slots).
#[test]
fn spublish_reaches_shard_subscribers_on_every_stripe_and_cluster_clients_are_moved() {
    let cluster = Cluster::start(Spec { cluster_ports: true, ..Spec::servers(1).stripes(2) });
    let channels = keys_of_both("orders", 1);
    let (of_a, of_b) = (&channels[0], &channels[1]);
    // Raw RESP2 subscribers (the redis crate's PubSub has no SSUBSCRIBE).
    let mut subscribers: Vec<std::net::TcpStream> = (0..2)
        .map(|i| {
            let m = &cluster.members[i];
            let mut s = std::net::TcpStream::connect((m.host.as_str(), m.client_port)).unwrap();
            let got = support::exchange(&mut s, format!("SSUBSCRIBE {of_b}\r\n").as_bytes(), Duration::from_millis(500));
            assert!(String::from_utf8_lossy(&got).starts_with("*3\r\n$10\r\nssubscribe\r\n"), "{}", String::from_utf8_lossy(&got));
            s
        })
        .collect();
    // As PUBLISH: the first messages open the connections to the other stripe; within
    // a deadline both subscribers are counted.
    let mut a = cluster.conn(0).unwrap();
    let mut sent = 0;
    let counted = wait_until(Duration::from_secs(10), || {
        sent += 1;
        query::<i64>(&mut a, &["SPUBLISH", of_b, &format!("o-{sent}")]).is_ok_and(|n| n == 2)
    });
    assert!(counted, "a shard subscriber on each stripe's server");
    let expected: String = (1..=sent)
        .map(|k| format!("*3\r\n$8\r\nsmessage\r\n${}\r\n{of_b}\r\n${}\r\no-{k}\r\n", of_b.len(), format!("o-{k}").len()))
        .collect();
    for s in &mut subscribers {
        let mut got = Vec::new();
        let arrived = wait_until(Duration::from_secs(10), || {
            got.extend(support::exchange(s, b"", Duration::from_millis(100)));
            got.len() >= expected.len()
        });
        assert!(arrived, "{}", String::from_utf8_lossy(&got));
        assert_eq!(String::from_utf8_lossy(&got), expected, "every message, in order");
    }
    let n: i64 = query(&mut a, &["PUBLISH", of_b, "not for shard subscribers"]).unwrap();
    assert_eq!(n, 0);

    let port_of = |i: usize| cluster.members[i].cluster_port.expect("a cluster port");
    let mut node_a = {
        let url = format!("redis://{}:{}/", cluster.members[0].host, port_of(0));
        redis::Client::open(url.as_str()).unwrap().get_connection().unwrap()
    };
    let err = error_text(query(&mut node_a, &["SPUBLISH", of_b, "x"]));
    assert!(err.contains(&format!("MOVED: {} {}:{}", key_slot(of_b.as_bytes()), cluster.members[1].host, port_of(1))), "{err}");
    let err = error_text(query(&mut node_a, &["SSUBSCRIBE", of_a, of_b]));
    assert!(err.contains("CROSSSLOT"), "{err}");
    let n: i64 = query(&mut node_a, &["SPUBLISH", of_a, "x"]).unwrap();
    assert_eq!(n, 0, "stripe A's own shard channel is served here");

    // redis-py's cluster client finds each shard channel's node by its slot.
    let script = "import redis, sys, time\n\
        rc = redis.RedisCluster(host=sys.argv[1], port=int(sys.argv[2]))\n\
        p = rc.pubsub()\n\
        for ch in sys.argv[3:]:\n    p.ssubscribe(ch)\n\
        got = []\n\
        deadline = time.time() + 10\n\
        while len(got) < len(sys.argv[3:]) and time.time() < deadline:\n\
        \x20   for ch in sys.argv[3:]:\n\
        \x20       rc.spublish(ch, 'from-py:' + ch)\n\
        \x20   m = p.get_sharded_message(timeout=1.0)\n\
        \x20   if m and m['type'] == 'smessage' and m['data'].decode() not in got:\n        got.append(m['data'].decode())\n\
        print(' '.join(sorted(got)))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &cluster.members[0].host, &port_of(0).to_string(), of_a, of_b])
        .output()
        .expect("run python3 (bash scripts/test-deps.sh installs redis-py)");
    let mut want = [format!("from-py:{of_a}"), format!("from-py:{of_b}")];
    want.sort();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.join(" "), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Scripts keep to their stripe's slots, as in Redis Cluster: a script that names a
/// key of another stripe gets Redis's error (the key would otherwise be written
/// where no client looks for it); a script with a shebang keeps to one slot unless
/// it says `allow-cross-slot-keys`; `no-cluster` scripts do not run in an array.
#[test]
fn a_script_touches_only_the_keys_of_its_stripe() {
    support::log_phases();
    let cluster = Cluster::start(Spec::servers(1).stripes(2));
    let keys = keys_of_both("script", 2);
    let (here, there, here_too) = (&keys[0], &keys[1], &keys[2]);
    assert_ne!(key_slot(here.as_bytes()), key_slot(here_too.as_bytes()), "two slots of the first stripe");
    let mut a = cluster.conn(0).unwrap();
    let mut b = cluster.conn(1).unwrap();
    let set = "return redis.call('set', ARGV[1], 'v')";

    tracing::info!("--- a key of the server's own stripe, then one of the other stripe");
    let ok: String = query(&mut a, &["EVAL", set, "0", here]).unwrap();
    assert_eq!(ok, "OK");
    let err = error_text(query(&mut a, &["EVAL", set, "0", there]));
    assert!(err.contains("SCRIPT ATTEMPTED TO ACCESS A NON LOCAL KEY IN A CLUSTER NODE"), "{err}");
    let err = error_text(query(&mut a, &["EVAL_RO", "return redis.call('get', ARGV[1])", "0", there]));
    assert!(err.contains("NON LOCAL KEY"), "{err}");
    let value: Option<String> = query(&mut b, &["GET", here]).unwrap();
    assert_eq!(value.as_deref(), Some("v"), "the local write is seen through the other stripe's server");
    let dbsize: i64 = query(&mut a, &["DBSIZE"]).unwrap();
    assert_eq!(dbsize, 1, "nothing was written for the refused key, on either stripe");

    tracing::info!("--- one slot per script with a shebang, unless it allows more");
    let two = "redis.call('set', ARGV[1], 'w') return redis.call('set', ARGV[2], 'w')";
    let plain: String = query(&mut a, &["EVAL", two, "0", here, here_too]).unwrap();
    assert_eq!(plain, "OK", "an EVAL without a shebang may cross the stripe's slots, as in Redis");
    let err = error_text(query(&mut a, &["EVAL", &format!("#!lua\n{two}"), "0", here, here_too]));
    assert!(err.contains("SCRIPT ATTEMPTED TO ACCESS KEYS THAT DO NOT HASH TO THE SAME SLOT"), "{err}");
    let allowed: String = query(&mut a, &["EVAL", &format!("#!lua flags=allow-cross-slot-keys\n{two}"), "0", here, here_too]).unwrap();
    assert_eq!(allowed, "OK");
    // One call naming keys of two slots is refused even where the script may cross.
    let mset = "return redis.call('mset', ARGV[1], 'x', ARGV[2], 'x')";
    let err = error_text(query(&mut a, &["EVAL", mset, "0", here, here_too]));
    assert!(err.contains("NON LOCAL KEY"), "{err}");
    let err = error_text(query(&mut a, &["EVAL", "#!lua flags=no-cluster\nreturn 1", "0"]));
    assert!(err.contains("CAN NOT RUN SCRIPT ON CLUSTER, 'NO-CLUSTER' FLAG IS SET"), "{err}");
}

/// The users are the array's: ACL SETUSER / DELUSER through any server, on its client
/// port or its cluster port, reach every stripe, so a user logs in on every server and
/// reaches the keys of every stripe (forwarded as that user). Before, a user set
/// through stripe A's server did not exist on stripe B's.
#[test]
fn acl_users_set_through_any_server_or_port_hold_on_every_stripe() {
    support::log_phases();
    let cluster = Cluster::start(Spec { cluster_ports: true, ..Spec::servers(1).stripes(2) });
    let mut admin_a = cluster.conn(0).unwrap();
    let login = |i: usize, user: &str, password: &str| -> redis::RedisResult<redis::Connection> {
        let mut con = cluster.conn(i).unwrap();
        query::<()>(&mut con, &["AUTH", user, password]).map(|()| con)
    };

    tracing::info!("--- a user set through stripe A's client port logs in on stripe B's server");
    let _: () = query(&mut cluster.conn(1).unwrap(), &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).unwrap();
    let _: () = query(&mut admin_a, &["ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@all"]).unwrap();
    let slowlog: redis::Value = query(&mut cluster.conn(1).unwrap(), &["SLOWLOG", "GET", "100"]).unwrap();
    assert!(!format!("{slowlog:?}").contains("app-pw"), "the password reached stripe B's slow log: {slowlog:?}");
    for i in 0..2 {
        let user: redis::Value = query(&mut cluster.conn(i).unwrap(), &["ACL", "GETUSER", "app"]).unwrap();
        assert_ne!(user, redis::Value::Nil, "server {i} knows the user");
    }
    let mut app_b = login(1, "app", "app-pw").expect("the user logs in on stripe B's server");
    let keys = keys_of_both("app", 5);
    for key in &keys {
        let _: () = query(&mut app_b, &["SET", key, "v"]).unwrap();
    }
    let values: Vec<String> = {
        let mut cmd = redis::cmd("MGET");
        for key in &keys {
            cmd.arg(key);
        }
        cmd.query(&mut app_b).unwrap()
    };
    assert_eq!(values, vec!["v"; keys.len()], "the user reaches the keys of both stripes");
    let other = keys_of_both("other", 1);
    for key in &other {
        let err = error_text(query(&mut app_b, &["SET", key, "v"]));
        assert!(err.contains("NOPERM"), "the user's key patterns hold on both stripes: {err}");
    }

    tracing::info!("--- set through stripe B's cluster port, it holds on stripe A too");
    let port = cluster.members[1].cluster_port.expect("a cluster port");
    let url = format!("redis://{}:{}/", cluster.members[1].host, port);
    let mut node_b = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let _: () = query(&mut node_b, &["ACL", "SETUSER", "reader", "on", ">reader-pw", "~*", "+get"]).unwrap();
    let mut reader_a = login(0, "reader", "reader-pw").expect("the user logs in on stripe A's server");
    for key in &keys {
        let v: String = query(&mut reader_a, &["GET", key]).unwrap();
        assert_eq!(v, "v");
    }
    let err = error_text(query(&mut reader_a, &["SET", &keys[0], "w"]));
    assert!(err.contains("NOPERM"), "{err}");

    tracing::info!("--- DELUSER through stripe B's server removes the user everywhere");
    let mut admin_b = cluster.conn(1).unwrap();
    let n: i64 = query(&mut admin_b, &["ACL", "DELUSER", "app", "nosuch"]).unwrap();
    assert_eq!(n, 1, "one user deleted, counted once for the array");
    for i in 0..2 {
        let err = login(i, "app", "app-pw").err().map(|e| e.to_string().to_uppercase()).unwrap_or_default();
        assert!(err.contains("WRONGPASS"), "server {i} no longer knows the user: {err:?}");
    }

    tracing::info!("--- CLIENT REPLY SKIP silences the one joined reply, not a part's");
    {
        use std::io::{Read, Write};
        let member = &cluster.members[0];
        let mut raw = std::net::TcpStream::connect((member.host.as_str(), member.client_port)).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        raw.write_all(b"CLIENT REPLY SKIP\r\nACL SETUSER quiet on\r\nCLIENT REPLY SKIP\r\nDBSIZE\r\nPING\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"\r\n") {
            let n = raw.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&got), "+PONG\r\n", "only PING is answered");
        let user: redis::Value = query(&mut cluster.conn(1).unwrap(), &["ACL", "GETUSER", "quiet"]).unwrap();
        assert_ne!(user, redis::Value::Nil, "the silenced SETUSER ran on stripe B too");
    }

    tracing::info!("--- a refused rule changes no stripe");
    let err = error_text(query(&mut admin_a, &["ACL", "SETUSER", "reader", "+nosuchcommand"]));
    assert!(err.contains("UNKNOWN COMMAND") || err.contains("ERROR IN ACL SETUSER"), "{err}");
    for i in 0..2 {
        let user: redis::Value = query(&mut cluster.conn(i).unwrap(), &["ACL", "GETUSER", "reader"]).unwrap();
        assert!(!format!("{user:?}").contains("nosuch"), "server {i}: {user:?}");
    }
}

/// An ACL write that reaches every stripe needs the caller's rights on each, as that
/// stripe's users say: users that differ between stripes (`ACL LOAD`, which loads the
/// asked server's stripe only) cannot be used to change a stripe where the caller may
/// not. Nothing runs anywhere when one stripe refuses.
#[test]
fn an_acl_write_needs_the_callers_rights_on_every_stripe() {
    support::log_phases();
    let mut cluster = Cluster::configure(Spec::servers(1).stripes(2));
    let aclfile = cluster.dir.path().join("users.acl");
    let users = |ops_rules: &str| format!("user default on nopass ~* &* +@all\nuser ops on >ops-pw ~* &* {ops_rules}\n");
    std::fs::write(&aclfile, users("+@all -acl|setuser")).unwrap();
    cluster.add_cluster_setting(&format!("aclfile = {:?}", aclfile.display().to_string())).unwrap();
    cluster.start_all();
    cluster.wait_array_formed();
    for i in 0..2 {
        let ok = wait_until(Duration::from_secs(30), || {
            let user: redis::RedisResult<redis::Value> = query(&mut cluster.conn(i).unwrap(), &["ACL", "GETUSER", "ops"]);
            user.is_ok_and(|u| u != redis::Value::Nil)
        });
        assert!(ok, "stripe {i} loaded the aclfile at its first start");
    }

    tracing::info!("--- ops may change users on stripe A only: ACL LOAD of a new file there");
    std::fs::write(&aclfile, users("+@all")).unwrap();
    let _: () = query(&mut cluster.conn(0).unwrap(), &["ACL", "LOAD"]).unwrap();
    let mut ops = cluster.conn(0).unwrap();
    let _: () = query(&mut ops, &["AUTH", "ops", "ops-pw"]).unwrap();
    let dry: String = query(&mut cluster.conn(0).unwrap(), &["ACL", "DRYRUN", "ops", "ACL", "SETUSER", "x"]).unwrap();
    assert_eq!(dry, "OK", "stripe A lets ops change users");

    tracing::info!("--- through stripe A, ops cannot change stripe B's users");
    let err = error_text(query(&mut ops, &["ACL", "SETUSER", "intruder", "on", ">pw", "+@all", "~*"]));
    assert!(err.contains("NOPERM") && err.contains("STRIPE B"), "{err}");
    for i in 0..2 {
        let user: redis::Value = query(&mut cluster.conn(i).unwrap(), &["ACL", "GETUSER", "intruder"]).unwrap();
        assert_eq!(user, redis::Value::Nil, "nothing ran on stripe {i}");
    }
}
