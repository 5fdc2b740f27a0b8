//! Issue 13, point 1 (DESIGN.md §6, "transparent failover for clients of mirrors"):
//! a client connected to a mirror keeps writing while the active is killed or hands
//! over; it sees no error, and no write is applied twice. Tried as users would
//! before the fix, every `kill -9` of the active gave the mirror's clients an
//! "outcome unknown" error for the writes in flight (retrying them risks a
//! duplicate, not retrying risks a loss).
//!
//! The writes are non-idempotent on purpose: `INCR` (its replies must run 1, 2, 3…
//! with no gap and no repeat) and `RPUSH` (the list must hold each value once, in
//! the order sent).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, Spec};
use support::wait_until;

/// What one client connected to a mirror saw.
#[derive(Debug, Default)]
struct Seen {
    /// INCR replies, in order.
    incrs: Vec<i64>,
    /// RPUSH'd values acknowledged, in order.
    pushed: Vec<u64>,
    errors: Vec<String>,
}

/// Writes pipelines of `INCR n:{id}` + `RPUSH l:{id} <i>` pairs to `url` until
/// `pairs` pairs are acknowledged or the deadline; `progress` counts acknowledged pairs.
fn mirror_client(url: String, id: usize, pairs: u64, batch: u64, progress: Arc<AtomicUsize>) -> Seen {
    let mut seen = Seen::default();
    let mut con = redis::Client::open(url.as_str()).unwrap().get_connection().expect("connect to the mirror");
    con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut next = 0u64;
    while next < pairs && Instant::now() < deadline {
        let mut pipe = redis::pipe();
        let end = (next + batch).min(pairs);
        for i in next..end {
            pipe.cmd("INCR").arg(format!("n:{id}"));
            pipe.cmd("RPUSH").arg(format!("l:{id}")).arg(i);
        }
        match pipe.query::<Vec<i64>>(&mut con) {
            Ok(replies) => {
                for (k, pair) in replies.chunks(2).enumerate() {
                    seen.incrs.push(pair[0]);
                    seen.pushed.push(next + k as u64);
                }
                progress.fetch_add((end - next) as usize, Ordering::Relaxed);
                next = end;
            }
            Err(e) => {
                // Counted, and the client goes on as an application would: with the
                // next writes (whatever the failed pipeline did is then checked).
                seen.errors.push(e.to_string());
                next = end;
                if e.is_io_error() || e.is_connection_dropped() {
                    match redis::Client::open(url.as_str()).unwrap().get_connection() {
                        Ok(c) => con = c,
                        Err(e) => seen.errors.push(format!("reconnect: {e}")),
                    }
                }
            }
        }
    }
    seen
}

/// Checks what a client saw against what the stripe holds: replies 1..n without a
/// gap or a repeat, the counter at n, the list exactly the values acknowledged.
fn assert_once(cluster: &Cluster, reader: usize, id: usize, seen: &Seen) {
    if !seen.errors.is_empty() {
        eprintln!("{}", support::cluster::tail(&cluster.all_stderr(), 120));
    }
    assert!(seen.errors.is_empty(), "client {id} saw errors: {:?}", seen.errors);
    let expected: Vec<i64> = (1..=seen.incrs.len() as i64).collect();
    assert_eq!(seen.incrs, expected, "client {id}: INCR replies must run 1..n (a gap or a repeat is a lost or doubled write)");
    let mut con = cluster.conn(reader).expect("connect to read back");
    let counter: i64 = redis::cmd("GET").arg(format!("n:{id}")).query(&mut con).unwrap();
    assert_eq!(counter, seen.incrs.len() as i64, "client {id}: the counter holds each acknowledged INCR once");
    let list: Vec<u64> = redis::cmd("LRANGE").arg(format!("l:{id}")).arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(list, seen.pushed, "client {id}: the list holds each acknowledged RPUSH once, in order");
}

/// Runs two clients, each on its own mirror, and `fault` once they are under way.
fn under_load(cluster: &mut Cluster, fault: impl FnOnce(&mut Cluster, usize)) -> Vec<(usize, Seen)> {
    let active = cluster.wait_formed();
    let mirrors: Vec<usize> = (0..cluster.members.len()).filter(|&i| i != active && !cluster.members[i].voter).collect();
    let urls = mirrors.iter().map(|&m| cluster.url(m)).collect();
    under_load_via(cluster, active, urls, fault)
}

/// Runs one client per URL, and `fault` once they are under way.
fn under_load_via(cluster: &mut Cluster, active: usize, urls: Vec<String>, fault: impl FnOnce(&mut Cluster, usize)) -> Vec<(usize, Seen)> {
    let progress = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = urls
        .into_iter()
        .enumerate()
        .map(|(id, url)| {
            let progress = progress.clone();
            std::thread::spawn(move || mirror_client(url, id, 3_000, 20, progress))
        })
        .collect();
    assert!(wait_until(Duration::from_secs(30), || progress.load(Ordering::Relaxed) >= 400), "the clients got going");
    fault(cluster, active);
    clients.into_iter().enumerate().map(|(id, c)| (id, c.join().expect("client thread"))).collect()
}

#[test]
fn clients_of_mirrors_see_no_error_and_no_duplicate_when_the_active_is_killed() {
    let mut cluster = Cluster::start(Spec::servers(3));
    let seen = under_load(&mut cluster, |c, active| {
        tracing_like("--- kill -9 the active");
        c.kill9(active);
    });
    let survivors: Vec<usize> = (0..3).filter(|&i| cluster.running(i)).collect();
    let active = cluster.wait_stable(&survivors, Duration::from_secs(30));
    // The path under test was taken: writes in flight went to the new active again.
    let resent = survivors.iter().filter(|&&i| cluster.stderr(i).contains("sending them to the new active")).count();
    assert!(resent > 0, "no mirror had writes in flight at the kill:\n{}", cluster.all_stderr());
    for (id, seen) in &seen {
        assert!(seen.incrs.len() >= 2_000, "client {id} kept writing through the failover: {} writes", seen.incrs.len());
        assert_once(&cluster, active, *id, seen);
    }
}

#[test]
fn clients_of_mirrors_see_no_error_and_no_duplicate_through_a_safe_failover() {
    let mut cluster = Cluster::start(Spec::servers(3));
    let seen = under_load(&mut cluster, |c, active| {
        tracing_like("--- hand the active role over (tandem failover)");
        let (ok, text) = c.ctl(&["failover", "--stripe", "A"]);
        assert!(ok, "tandem failover: {text}");
        assert!(wait_until(Duration::from_secs(20), || c.active().is_some_and(|a| a != active)), "a new active");
    });
    let active = cluster.wait_stable(&[0, 1, 2], Duration::from_secs(30));
    for (id, seen) in &seen {
        assert_once(&cluster, active, *id, seen);
    }
}

/// HAProxy in TCP mode in front of the stripe, sending clients to servers whose
/// `/readyz?role=mirror` answers 200 (the recipe docs give for load balancers).
struct Haproxy {
    _process: support::haproxy::Haproxy,
    port: u16,
}

impl Haproxy {
    fn to_mirrors(cluster: &Cluster) -> Haproxy {
        let port = support::free_ports(1)[0];
        let servers = support::haproxy::server_lines(cluster);
        let config = format!(
            "global\n  maxconn 256\n\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n\n\
             backend mirrors\n  option httpchk GET /readyz?role=mirror\n  http-check expect status 200\n{servers}\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend mirrors\n"
        );
        Haproxy { _process: support::haproxy::Haproxy::start(support::haproxy::Haproxy::dir(), &config), port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

#[test]
fn clients_behind_haproxy_sending_to_mirrors_see_no_error_and_no_duplicate_when_the_active_is_killed() {
    let mut cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let haproxy = Haproxy::to_mirrors(&cluster);
    // Ready once HAProxy has seen the mirrors' health checks pass and lands a client on one.
    let on_mirror = || -> bool {
        let Ok(mut con) = redis::Client::open(haproxy.url().as_str()).and_then(|c| c.get_connection()) else { return false };
        let role: redis::RedisResult<Vec<redis::Value>> = redis::cmd("ROLE").query(&mut con);
        role.is_ok_and(|r| matches!(r.first(), Some(redis::Value::BulkString(b)) if b == b"slave"))
    };
    assert!(wait_until(Duration::from_secs(20), on_mirror), "HAProxy sends clients to a mirror");
    let seen = under_load_via(&mut cluster, active, vec![haproxy.url(), haproxy.url()], |c, active| {
        tracing_like("--- kill -9 the active behind HAProxy");
        c.kill9(active);
    });
    let survivors: Vec<usize> = (0..3).filter(|&i| cluster.running(i)).collect();
    let active = cluster.wait_stable(&survivors, Duration::from_secs(30));
    for (id, seen) in &seen {
        assert!(seen.incrs.len() >= 2_000, "client {id} kept writing through the failover: {} writes", seen.incrs.len());
        assert_once(&cluster, active, *id, seen);
    }
}

/// Phases as the tests' output shows them.
fn tracing_like(phase: &str) {
    eprintln!("{phase}");
}
