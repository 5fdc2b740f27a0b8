//! redis-py's `Lock` (its acquire, extend, reacquire and release are Lua scripts run with
//! EVALSHA) against a real server: acquire, extend, a second client blocking until the
//! first releases, release of a lock held by someone else refused.
//!
//! Needs the `redis` PyPI package: `bash scripts/test-deps.sh` installs it.

mod support;

use std::process::Command;

use support::Server;

const SCRIPT: &str = r#"
import sys, threading, time
import redis
from redis.exceptions import LockNotOwnedError

port = int(sys.argv[1])
r = redis.Redis(port=port)
lock = r.lock("resource", timeout=5)
assert lock.acquire(blocking=False), "first acquire"
assert lock.owned()
ttl = r.pttl("resource")
assert 0 < ttl <= 5000, ttl
assert lock.extend(10), "extend"
assert r.pttl("resource") > 5000, "extend adds time"
assert lock.reacquire(), "reacquire"

other = redis.Redis(port=port).lock("resource", timeout=5, blocking_timeout=0.2)
assert not other.acquire(), "a held lock is not acquired again"

# A second client blocks until the first releases.
got = {}
def waiter():
    l = redis.Redis(port=port).lock("resource", timeout=5, blocking_timeout=20, thread_local=False)
    got["acquired"] = l.acquire()
    got["lock"] = l
t = threading.Thread(target=waiter)
t.start()
# Whatever the waiter has done so far, it cannot hold the lock yet.
assert "acquired" not in got, got
lock.release()
t.join(25)
assert got.get("acquired") is True, got
assert not lock.owned()

# Releasing a lock someone else holds is refused by the script.
stale = redis.Redis(port=port).lock("resource", timeout=5)
stale.local.token = b"not-the-owner"
try:
    stale.release()
    raise AssertionError("releasing another's lock must fail")
except LockNotOwnedError:
    pass
got["lock"].release()
assert r.exists("resource") == 0
print("ok")
"#;

#[test]
fn redis_py_lock_acquires_extends_blocks_and_releases() {
    let probe = Command::new("python3").args(["-c", "import redis"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "python3 with the `redis` package is missing: run `bash scripts/test-deps.sh` to install the end-to-end test peers"
    );
    let server = Server::start();
    let out = Command::new("python3").args(["-c", SCRIPT, &server.port.to_string()]).output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.trim() == "ok", "redis-py Lock failed:\n{stdout}\n{stderr}");
}
