//! The Redis Cluster protocol on a stripe: CLUSTER's replies in Redis's shapes and
//! errors, and redis-py's `RedisCluster` — a slot-routing client, as application
//! servers use for scale — connecting through any server and carrying on through a
//! `kill -9` of the active with nothing acknowledged lost.
//!
//! Needs the `redis` PyPI package: `bash scripts/test-deps.sh` installs it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::cluster::{Cluster, Spec};
use support::Server;

fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
}

fn error_text(result: redis::RedisResult<redis::Value>) -> String {
    match result {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn cluster_commands_answer_in_redis_shapes_on_a_single_server() {
    let server = Server::start();
    let mut con = server.conn();
    // Slots as Redis Cluster computes them (values from redis-server's CLUSTER KEYSLOT).
    assert_eq!(query::<i64>(&mut con, &["CLUSTER", "KEYSLOT", "somekey"]).unwrap(), 11058);
    assert_eq!(query::<i64>(&mut con, &["CLUSTER", "KEYSLOT", "{user1000}.following"]).unwrap(), 3443);
    for key in ["{user1000}.following", "{user1000}.followers", "other"] {
        let _: () = query(&mut con, &["SET", key, "v"]).unwrap();
    }
    assert_eq!(query::<i64>(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", "3443"]).unwrap(), 2);
    let mut keys: Vec<String> = query(&mut con, &["CLUSTER", "GETKEYSINSLOT", "3443", "10"]).unwrap();
    keys.sort();
    assert_eq!(keys, vec!["{user1000}.followers", "{user1000}.following"]);
    assert_eq!(query::<Vec<String>>(&mut con, &["CLUSTER", "GETKEYSINSLOT", "3443", "1"]).unwrap().len(), 1);

    let info: String = query(&mut con, &["CLUSTER", "INFO"]).unwrap();
    assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n"), "{info}");
    assert!(info.contains("cluster_known_nodes:1\r\n") && info.contains("cluster_size:1\r\n"), "{info}");
    let server_info: String = query(&mut con, &["INFO", "cluster"]).unwrap();
    assert!(server_info.contains("cluster_enabled:1"), "{server_info}");

    let myid: String = query(&mut con, &["CLUSTER", "MYID"]).unwrap();
    assert!(myid.len() == 40 && myid.bytes().all(|b| b.is_ascii_hexdigit()), "{myid}");
    let nodes: String = query(&mut con, &["CLUSTER", "NODES"]).unwrap();
    let fields: Vec<&str> = nodes.trim_end().split(' ').collect();
    assert_eq!(fields[0], myid);
    assert!(fields[1].starts_with(&format!("127.0.0.1:{}@", server.port)), "{nodes}");
    assert_eq!((fields[2], fields[3], fields[7], fields[8]), ("myself,master", "-", "connected", "0-16383"), "{nodes}");

    let slots: redis::Value = query(&mut con, &["CLUSTER", "SLOTS"]).unwrap();
    let redis::Value::Array(ranges) = slots else { panic!("CLUSTER SLOTS: {slots:?}") };
    assert_eq!(ranges.len(), 1);
    let redis::Value::Array(range) = &ranges[0] else { panic!("range: {:?}", ranges[0]) };
    assert_eq!((&range[0], &range[1]), (&redis::Value::Int(0), &redis::Value::Int(16383)));
    let redis::Value::Array(node) = &range[2] else { panic!("node: {:?}", range[2]) };
    assert_eq!(node[1], redis::Value::Int(server.port.into()));
    assert_eq!(node[2], redis::Value::BulkString(myid.clone().into_bytes()));
    assert_eq!(query::<String>(&mut con, &["CLUSTER", "MYSHARDID"]).unwrap().len(), 40);
    let _: () = query(&mut con, &["ASKING"]).unwrap();

    // Redis's errors for bad slots, and a sentence for what the config decides.
    assert!(error_text(query(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", "16384"])).contains("Invalid slot"));
    assert!(error_text(query(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", "x"])).contains("value is not an integer"));
    assert!(error_text(query(&mut con, &["CLUSTER", "GETKEYSINSLOT", "1", "-1"])).contains("Invalid slot or number of keys"));
    assert!(error_text(query(&mut con, &["CLUSTER", "ADDSLOTS", "1"])).contains("come from the config file"));
    assert!(error_text(query(&mut con, &["CLUSTER", "NOPE"])).contains("unknown subcommand 'NOPE'. Try CLUSTER HELP."));
    assert!(error_text(query(&mut con, &["CLUSTER", "KEYSLOT"])).contains("wrong number of arguments"));
}

#[test]
fn every_server_of_a_stripe_names_the_active_first() {
    let cluster = Cluster::start(Spec::servers(3));
    let everyone = [0, 1, 2];
    let active = cluster.wait_stable(&everyone, Duration::from_secs(30));
    let active_port = i64::from(cluster.members[active].client_port);
    for i in everyone {
        let mut con = cluster.conn(i).unwrap();
        let slots: redis::Value = query(&mut con, &["CLUSTER", "SLOTS"]).unwrap();
        let redis::Value::Array(ranges) = &slots else { panic!("{slots:?}") };
        let redis::Value::Array(range) = &ranges[0] else { panic!("{slots:?}") };
        assert_eq!(range.len(), 5, "the active and both mirrors, asked on server {i}: {slots:?}");
        let redis::Value::Array(first) = &range[2] else { panic!("{slots:?}") };
        assert_eq!(first[1], redis::Value::Int(active_port), "asked on server {i}");
        let nodes: String = query(&mut con, &["CLUSTER", "NODES"]).unwrap();
        assert_eq!(nodes.lines().filter(|l| l.contains("master")).count(), 1, "{nodes}");
        assert_eq!(nodes.lines().filter(|l| l.contains("myself")).count(), 1, "{nodes}");
        assert_eq!(nodes.lines().count(), 3, "{nodes}");
    }
}

/// Writes through `RedisCluster` started from `startup` (a mirror's address), waits
/// for "go" on stdin, then writes more; a write that fails is retried (SET of the
/// same value: the same outcome whatever happened before) within a bounded time.
/// Prints every acknowledged key.
const CLUSTER_CLIENT: &str = r#"
import sys, time
from redis.cluster import RedisCluster, ClusterNode
from redis.exceptions import RedisError
host, port = sys.argv[1], int(sys.argv[2])
rc = RedisCluster(startup_nodes=[ClusterNode(host, port)], socket_timeout=5)
acked = []
def write(i, deadline_s):
    key = f"key:{i}"
    end = time.monotonic() + deadline_s
    while True:
        try:
            rc.set(key, f"value:{i}")
            acked.append(key)
            return
        except RedisError as e:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)
for i in range(200):
    write(i, 10)
print("phase1", flush=True)
sys.stdin.readline()
for i in range(200, 400):
    write(i, 30)
for key in acked:
    assert rc.get(key) == f"value:{key.split(':')[1]}".encode(), key
print("acked " + " ".join(acked), flush=True)
"#;

/// What happens to the active between the client's two phases of writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `kill -9`: the client must notice and ask for the slots again.
    Kill9,
    /// `tandem failover` to another server: the old active stays up as a mirror.
    Failover,
}

/// Runs a slot-routing client (`client` gets the startup node's host and port)
/// against an array of `stripes` stripes of 3 servers, starting it from a mirror of
/// the first stripe, applies `fault` to the last stripe's active between its two
/// phases of writes (200 keys each, spread over every stripe's slots), and checks
/// every acknowledged write is there.
fn cluster_client_carries_on(name: &str, stripes: usize, fault: Fault, client: impl Fn(&str, u16) -> Command) {
    let mut cluster = Cluster::start(Spec::servers(3).stripes(stripes));
    let actives = cluster.wait_array_formed();
    let faulted: Vec<usize> = cluster.stripe_members(stripes - 1);
    let first = actives[stripes - 1];
    let start = cluster.stripe_members(0).into_iter().find(|&i| i != actives[0]).expect("a mirror");
    let successor = faulted.iter().copied().find(|&i| i != first).expect("a mirror");
    let (host, port) = (cluster.members[start].host.clone(), cluster.members[start].client_port);
    let mut child = client(&host, port)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the client");
    if line.trim() != "phase1" {
        let out = child.wait_with_output().expect("client output");
        panic!("{name} failed before the fault: {line}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let stripe = tandem::check::cluster::stripe_name(stripes - 1);
    match fault {
        Fault::Kill9 => {
            eprintln!("--- kill -9 stripe {stripe}'s active ({})", cluster.members[first].name);
            cluster.kill9(first);
        }
        Fault::Failover => {
            eprintln!("--- fail stripe {stripe} over from {} to {}", cluster.members[first].name, cluster.members[successor].name);
            let (ok, out) = cluster.ctl(&["failover", "--stripe", &stripe, "--to", &cluster.members[successor].name]);
            assert!(ok, "tandem failover: {out}");
        }
    }
    child.stdin.as_mut().expect("stdin").write_all(b"go\n").expect("tell the client");
    line.clear();
    stdout.read_line(&mut line).expect("read the client");
    let out = child.wait_with_output().expect("client output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && line.starts_with("acked "), "{name} failed after the fault: {line}\n{stderr}");
    let acked: Vec<&str> = line.trim().split(' ').skip(1).collect();
    assert_eq!(acked.len(), 400, "every write is acknowledged in the end");

    // Nothing acknowledged is lost: read back through a plain client of the first
    // stripe's active (which forwards other stripes' keys) once the faulted stripe
    // has its new active.
    let up: Vec<usize> = faulted.iter().copied().filter(|&i| fault != Fault::Kill9 || i != first).collect();
    let second = cluster.wait_stable(&up, Duration::from_secs(30));
    assert_ne!(first, second);
    let reader = if stripes == 1 { second } else { actives[0] };
    let mut con = cluster.conn(reader).unwrap();
    let mut owners = std::collections::HashSet::new();
    for key in acked {
        let value: Option<String> = query(&mut con, &["GET", key]).unwrap();
        assert_eq!(value.as_deref(), Some(format!("value:{}", &key[4..]).as_str()), "{key} lost");
        owners.insert(usize::from(tandem::cluster::slot::key_slot(key.as_bytes())) * stripes / 16384);
    }
    assert_eq!(owners.len(), stripes, "the keys cover every stripe");
}

#[test]
fn redis_py_cluster_client_connects_through_a_mirror_and_survives_kill9_of_the_active() {
    cluster_client_carries_on("redis-py RedisCluster", 1, Fault::Kill9, redis_py());
}

/// redis-py's `RedisCluster` running [`CLUSTER_CLIENT`].
fn redis_py() -> impl Fn(&str, u16) -> Command {
    let probe = Command::new("python3").args(["-c", "import redis.cluster"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "python3 with the `redis` package is missing: run `bash scripts/test-deps.sh` to install the end-to-end test peers"
    );
    |host, port| {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", CLUSTER_CLIENT, host, &port.to_string()]);
        cmd
    }
}

/// `tests/node/cluster_client.js` with one of the Node clients.
fn node_client(kind: &'static str) -> impl Fn(&str, u16) -> Command {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/ioredis").is_dir() && dir.join("node_modules/redis").is_dir(),
        "the Node clients are missing: run `bash scripts/test-deps.sh` to install the end-to-end test peers"
    );
    move |host, port| {
        let mut cmd = Command::new("node");
        cmd.current_dir(&dir).args(["cluster_client.js", kind, host, &port.to_string()]);
        cmd
    }
}

#[test]
fn ioredis_cluster_connects_through_a_mirror_and_survives_kill9_of_the_active() {
    cluster_client_carries_on("ioredis Cluster", 1, Fault::Kill9, node_client("ioredis"));
}

/// DESIGN §7 on an array of two stripes: the cluster client sees a Redis Cluster of
/// two shards, carries on through `kill -9` of one stripe's active, loses nothing.
#[test]
fn redis_py_cluster_client_on_a_two_stripe_array_survives_kill9_of_one_stripes_active() {
    cluster_client_carries_on("redis-py RedisCluster", 2, Fault::Kill9, redis_py());
}

#[test]
fn ioredis_cluster_on_a_two_stripe_array_survives_kill9_of_one_stripes_active() {
    cluster_client_carries_on("ioredis Cluster", 2, Fault::Kill9, node_client("ioredis"));
}

#[test]
fn node_redis_create_cluster_on_a_two_stripe_array_follows_a_failover_in_one_stripe() {
    cluster_client_carries_on("node-redis createCluster", 2, Fault::Failover, node_client("node-redis"));
}

/// After a `kill -9` of the active, node-redis 5.9 kept reconnecting to the killed
/// server and never asked for the slots again in our runs (its commands waited for
/// that server); not yet compared with Redis Cluster. A planned failover it follows:
/// the old active stays up and forwards.
#[test]
fn node_redis_create_cluster_connects_through_a_mirror_and_follows_a_failover() {
    cluster_client_carries_on("node-redis createCluster", 1, Fault::Failover, node_client("node-redis"));
}
