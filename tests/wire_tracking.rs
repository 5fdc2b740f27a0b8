//! CLIENT TRACKING on a stripe and an array of real servers, spoken in raw RESP3: a
//! client of a mirror is told when the active writes a key it read, every tracking
//! client drops everything when the stripe changes active, NOLOOP leaves out the
//! client's own writes, and a key of another stripe is never left cached.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, Spec};

/// A raw connection that reads into a buffer, so pushes and replies can be awaited.
struct Raw {
    stream: TcpStream,
    got: Vec<u8>,
}

impl Raw {
    fn open(cluster: &Cluster, i: usize) -> Raw {
        let m = &cluster.members[i];
        let stream = TcpStream::connect((m.host.as_str(), m.client_port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut raw = Raw { stream, got: Vec::new() };
        raw.send(&["HELLO", "3"]);
        raw.wait_for(b"proto", Duration::from_secs(5));
        raw
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream.write_all(out.as_bytes()).expect("write");
    }

    /// Reads until `needle` has arrived (then drops what came up to its end), or
    /// panics at `deadline` with what did arrive.
    fn wait_for(&mut self, needle: &[u8], deadline: Duration) {
        let end = Instant::now() + deadline;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = self.got.windows(needle.len()).position(|w| w == needle) {
                self.got.drain(..at + needle.len());
                return;
            }
            assert!(Instant::now() < end, "waited for {:?}, got {:?}", String::from_utf8_lossy(needle), String::from_utf8_lossy(&self.got));
            if let Ok(n) = self.stream.read(&mut buf) {
                self.got.extend_from_slice(&buf[..n]);
            }
        }
    }

    /// What arrives within `window` (for asserting that something did not).
    fn drain(&mut self, window: Duration) -> String {
        let end = Instant::now() + window;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.stream.read(&mut buf) {
                self.got.extend_from_slice(&buf[..n]);
            }
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.got)).into_owned()
    }
}

const INVALIDATE_K: &[u8] = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";
const INVALIDATE_ALL: &[u8] = b">2\r\n$10\r\ninvalidate\r\n_\r\n";

fn set(cluster: &Cluster, i: usize, key: &str, value: &str) {
    let mut conn = cluster.conn(i).expect("connect");
    let _: () = redis::cmd("SET").arg(key).arg(value).query(&mut conn).expect("SET");
}

#[test]
fn a_client_of_a_mirror_is_told_of_writes_on_the_active_and_flushed_by_a_failover() {
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mirrors: Vec<usize> = (0..3).filter(|i| *i != active).collect();
    set(&cluster, active, "k", "1");

    let mut client = Raw::open(&cluster, mirrors[0]);
    client.send(&["CLIENT", "TRACKING", "ON"]);
    client.wait_for(b"+OK\r\n", Duration::from_secs(5));
    client.send(&["GET", "k"]);
    client.wait_for(b"$1\r\n1\r\n", Duration::from_secs(5));
    // A key the client did not read is not sent.
    set(&cluster, active, "other", "1");
    set(&cluster, active, "k", "2");
    client.wait_for(INVALIDATE_K, Duration::from_secs(10));
    let rest = client.drain(Duration::from_millis(300));
    assert!(!rest.contains("other"), "a key the client never read was sent: {rest:?}");
    // Told once: read it again to be told again.
    set(&cluster, active, "k", "3");
    let rest = client.drain(Duration::from_millis(300));
    assert!(!rest.contains("invalidate"), "a key is sent once until read again: {rest:?}");

    // A write through the mirror (forwarded to the active) is told too.
    client.send(&["GET", "k"]);
    client.wait_for(b"$1\r\n3\r\n", Duration::from_secs(5));
    set(&cluster, mirrors[1], "k", "4");
    client.wait_for(INVALIDATE_K, Duration::from_secs(10));

    // The stripe changes active: every tracking client drops everything.
    client.send(&["GET", "k"]);
    client.wait_for(b"$1\r\n4\r\n", Duration::from_secs(5));
    let to = &cluster.members[mirrors[1]].name;
    let (ok, out) = cluster.ctl(&["failover", "--stripe", "A", "--to", to]);
    assert!(ok, "failover: {out}");
    client.wait_for(INVALIDATE_ALL, Duration::from_secs(10));
}

#[test]
fn noloop_leaves_out_the_clients_own_writes_and_flushall_invalidates_everything() {
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mut client = Raw::open(&cluster, active);
    client.send(&["CLIENT", "TRACKING", "ON", "NOLOOP"]);
    client.wait_for(b"+OK\r\n", Duration::from_secs(5));
    client.send(&["GET", "k"]);
    client.wait_for(b"_\r\n", Duration::from_secs(5));
    client.send(&["SET", "k", "mine"]);
    client.wait_for(b"+OK\r\n", Duration::from_secs(5));
    let rest = client.drain(Duration::from_millis(300));
    assert!(!rest.contains("invalidate"), "NOLOOP: the client's own write was sent back: {rest:?}");
    client.send(&["GET", "k"]);
    client.wait_for(b"mine\r\n", Duration::from_secs(5));
    set(&cluster, active, "k", "theirs");
    client.wait_for(INVALIDATE_K, Duration::from_secs(10));
    let mut conn = cluster.conn(active).expect("connect");
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).expect("FLUSHALL");
    client.wait_for(INVALIDATE_ALL, Duration::from_secs(10));
}

#[test]
fn a_key_of_another_stripe_is_invalidated_right_after_its_reply() {
    let cluster = Cluster::start(Spec::servers(1).stripes(2));
    cluster.wait_array_formed();
    // The second stripe owns the upper half of the slots; server 0 is the first's.
    assert_eq!(cluster.members[0].stripe, 0);
    let key = (0..).map(|i| format!("key{i}")).find(|k| tandem::cluster::slot::key_slot(k.as_bytes()) >= 8192).expect("a key");
    let mut client = Raw::open(&cluster, 0);
    client.send(&["CLIENT", "TRACKING", "ON"]);
    client.wait_for(b"+OK\r\n", Duration::from_secs(5));
    client.send(&["GET", &key]);
    let push = format!(">2\r\n$10\r\ninvalidate\r\n*1\r\n${}\r\n{key}\r\n", key.len());
    client.wait_for(b"_\r\n", Duration::from_secs(5));
    client.wait_for(push.as_bytes(), Duration::from_secs(5));
}
