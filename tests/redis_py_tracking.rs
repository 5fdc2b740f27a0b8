//! redis-py's client-side cache (`cache_config`, RESP3, CLIENT TRACKING) on a client of
//! a mirror of a 3-server stripe: a read is served from the cache until the key is
//! written through the active (or through another mirror), then the new value is read.
//!
//! Needs the `redis` PyPI package: `bash scripts/test-deps.sh` installs it.

mod support;

use std::process::Command;

use support::cluster::{Cluster, Spec};

const SCRIPT: &str = r#"
import sys, time
import redis
from redis.cache import CacheConfig, CacheKey

def at(addr, **kw):
    host, port = addr.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), **kw)

active, mirror, other = sys.argv[1:4]
cached = at(mirror, protocol=3, cache_config=CacheConfig())
writer = at(active)
via_mirror = at(other)

def in_cache(key):
    return cached.get_cache().get(CacheKey(command="GET", redis_keys=(key,))) is not None

def read_until(key, want, what):
    # The invalidation reaches the mirror when it applies the write: bounded wait.
    deadline = time.monotonic() + 10
    for _ in range(2000):
        got = cached.get(key)
        if got == want:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    raise AssertionError(f"{what}: {key} still read {got!r} from the cache, want {want!r}")

writer.set("session:1", "v1")
assert cached.get("session:1") == b"v1"
assert in_cache("session:1"), "a read is cached"
assert cached.get("session:1") == b"v1"

writer.set("session:1", "v2")
read_until("session:1", b"v2", "a write on the active")
assert in_cache("session:1"), "cached again after the new read"

via_mirror.set("session:1", "v3")
read_until("session:1", b"v3", "a write through another mirror")

writer.delete("session:1")
read_until("session:1", None, "a delete on the active")
print("ok")
"#;

#[test]
fn redis_py_client_side_cache_on_a_mirror_sees_writes_made_on_the_active() {
    let probe = Command::new("python3").args(["-c", "import redis.cache"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "python3 with the `redis` package (5.1 or later) is missing: run `bash scripts/test-deps.sh` to install the end-to-end test peers"
    );
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mirrors: Vec<usize> = (0..3).filter(|i| *i != active).collect();
    let addr = |i: usize| format!("{}:{}", cluster.members[i].host, cluster.members[i].client_port);
    let out =
        Command::new("python3").args(["-c", SCRIPT, &addr(active), &addr(mirrors[0]), &addr(mirrors[1])]).output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.trim() == "ok", "redis-py client-side caching failed:\n{stdout}\n{stderr}");
}
