//! Tandem against redis-server (7.0, installed by scripts/test-deps.sh), side by
//! side: a seeded random sequence of stream commands — valid and invalid — goes to
//! both over RESP2 and RESP3 connections, and every reply must be the same, byte for
//! byte once the documented differences are taken out:
//! - times: idle times, seen and delivery times (the servers' clocks differ), so the
//!   sequence uses explicit IDs (`<ms>-*`, `<ms>-<seq>`), never `*`;
//! - XINFO's `radix-tree-nodes` (Redis's radix-tree internals).
//!
//! The seed is printed; replay with `STREAM_DIFF_SEED=<seed>`. `STREAM_DIFF_STEPS`
//! runs longer than the bounded default (outside CI); `STREAM_DIFF_LOG=1` prints every
//! command sent, to replay a prefix by hand and find where the two states part.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::{free_port, wait_until, Server};
use tandem::protocol::frame::{parse_frame, Frame};
use tandem::protocol::request::ParseLimits;

struct RedisServer {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for this test: run scripts/test-deps.sh");
        let server = RedisServer { port, child, _dir: dir };
        assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok()), "redis-server did not start");
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One RESP connection that sends commands and reads whole reply frames.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    fn open(port: u16, resp3: bool) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut conn = Conn { stream, buf: BytesMut::new() };
        if resp3 {
            conn.call(&["HELLO", "3"]);
        }
        conn
    }

    fn call(&mut self, args: &[&str]) -> Frame {
        let mut out = Vec::new();
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.stream.write_all(&out).expect("send");
        let limits = ParseLimits { bulk_bytes_max: 1 << 30, args_max: 1 << 20 };
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf, &limits).expect("a valid reply") {
                let _ = self.buf.split_to(used);
                return frame;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("a reply in time");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Replaces what legitimately differs (see the module doc) with zeros.
fn normalize(cmd: &[&str], frame: Frame) -> Frame {
    let name = cmd[0].to_ascii_lowercase();
    let sub = cmd.get(1).map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    match (name.as_str(), sub.as_str()) {
        ("xpending", _) if cmd.len() > 3 => map_items(frame, |item| zero_at(item, 2)),
        ("xinfo", "consumers") => map_items(frame, |c| zero_fields(c, &["idle"])),
        ("xinfo", "stream") => zero_stream_info(frame),
        _ => frame,
    }
}

fn zero() -> Frame {
    Frame::Int(0)
}

fn map_items(frame: Frame, f: impl Fn(Frame) -> Frame) -> Frame {
    match frame {
        Frame::Array(items) => Frame::Array(items.into_iter().map(f).collect()),
        other => other,
    }
}

fn zero_at(frame: Frame, at: usize) -> Frame {
    match frame {
        Frame::Array(mut items) => {
            if let Some(slot) = items.get_mut(at) {
                *slot = zero();
            }
            Frame::Array(items)
        }
        other => other,
    }
}

/// Zeroes the named fields of a map (RESP3) or flat key-value array (RESP2), and
/// applies `inner` to the others.
fn rewrite_fields(frame: Frame, names: &[&str], inner: &dyn Fn(&str, Frame) -> Frame) -> Frame {
    let key = |f: &Frame| match f {
        Frame::Bulk(b) | Frame::Simple(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let fix = |k: &Frame, v: Frame| if names.contains(&key(k).as_str()) { zero() } else { inner(&key(k), v) };
    match frame {
        Frame::Map(pairs) => Frame::Map(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    let v = fix(&k, v);
                    (k, v)
                })
                .collect(),
        ),
        Frame::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                let v = fix(&k, v);
                out.push(k);
                out.push(v);
            }
            Frame::Array(out)
        }
        other => other,
    }
}

fn zero_fields(frame: Frame, names: &[&str]) -> Frame {
    rewrite_fields(frame, names, &|_, v| v)
}

fn zero_stream_info(frame: Frame) -> Frame {
    rewrite_fields(frame, &["radix-tree-nodes"], &|name, v| match name {
        "groups" => map_items(v, |group| {
            rewrite_fields(group, &[], &|name, v| match name {
                "pending" => map_items(v, |p| zero_at(p, 2)),
                "consumers" => map_items(v, |c| {
                    rewrite_fields(c, &["seen-time"], &|name, v| if name == "pending" { map_items(v, |p| zero_at(p, 1)) } else { v })
                }),
                _ => v,
            })
        }),
        _ => v,
    })
}

/// A xorshift generator: the whole sequence follows from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// What the generator needs to remember: the millisecond part of the next IDs.
struct Gen {
    rng: Rng,
    ms: u64,
}

impl Gen {
    fn id(&mut self) -> String {
        let r = self.rng.below(20);
        match r {
            0 => "0-0".into(),
            1 => "18446744073709551615-18446744073709551615".into(),
            2 => "bad-id".into(),
            3 => format!("{}", self.rng.below(self.ms + 2)),
            _ => format!("{}-{}", self.rng.below(self.ms + 2), self.rng.below(3)),
        }
    }

    fn range_bound(&mut self) -> String {
        match self.rng.below(8) {
            0 => "-".into(),
            1 => "+".into(),
            2 => format!("({}", self.id()),
            _ => self.id(),
        }
    }

    fn command(&mut self) -> Vec<String> {
        let key = self.rng.pick(&["s1", "s1", "s2", "str", "none"]).to_string();
        let group = self.rng.pick(&["g1", "g1", "g2"]).to_string();
        let consumer = self.rng.pick(&["alice", "bob", "carol"]).to_string();
        let count = self.rng.pick(&["1", "2", "5", "0", "-1", "x"]).to_string();
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match self.rng.below(24) {
            0..=4 => {
                self.ms += self.rng.below(3);
                let id = match self.rng.below(6) {
                    0 => format!("{}-*", self.ms),
                    1 => self.id(),
                    _ => format!("{}-{}", self.ms, self.rng.below(4)),
                };
                let mut cmd = v(&["XADD", &key]);
                match self.rng.below(8) {
                    0 => cmd.extend(v(&["MAXLEN", "~", "5"])),
                    1 => cmd.extend(v(&["MAXLEN", "3"])),
                    2 => cmd.extend(v(&["MINID", "=", &format!("{}", self.ms.saturating_sub(5))])),
                    3 => cmd.extend(v(&["NOMKSTREAM"])),
                    4 => cmd.extend(v(&["MAXLEN", "~", "2", "LIMIT", "1"])),
                    5 => cmd.extend(v(&["LIMIT", "3"])),
                    _ => {}
                }
                cmd.push(id);
                let fields = self.rng.below(3) + usize::from(self.rng.below(20) != 0) as u64;
                for f in 0..fields {
                    cmd.push(self.rng.pick(&["f", "g", "h"]).to_string());
                    cmd.push(format!("v{f}"));
                }
                cmd
            }
            5 => v(&["XDEL", &key, &self.id(), &self.id()]),
            6 => v(&["XLEN", &key]),
            7 => {
                let (a, b) = (self.range_bound(), self.range_bound());
                let mut cmd = v(&[self.rng.pick(&["XRANGE", "XREVRANGE"]), &key, &a, &b]);
                if self.rng.below(2) == 0 {
                    cmd.extend(v(&["COUNT", &count]));
                }
                cmd
            }
            8 => v(&["XTRIM", &key, self.rng.pick(&["MAXLEN", "MINID", "BOGUS"]), self.rng.pick(&["~", "=", "2"]), "2"]),
            9 => v(&["XREAD", "COUNT", &count, "STREAMS", &key, "s2", &self.id(), self.rng.pick(&["$", "0", "1-1"])]),
            10 => v(&["XREAD", "BLOCK", "1", "STREAMS", &key, "$"]),
            11 | 12 => {
                v(&["XREADGROUP", "GROUP", &group, &consumer, "COUNT", &count, "STREAMS", &key, self.rng.pick(&[">", ">", "0", "$"])])
            }
            13 => v(&["XREADGROUP", "GROUP", &group, &consumer, "NOACK", "STREAMS", &key, ">"]),
            14 => {
                let id = self.rng.pick(&["$", "0", "-"]).to_string();
                let sub = self.rng.pick(&["CREATE", "CREATE", "SETID", "DESTROY", "CREATECONSUMER", "DELCONSUMER", "HELP", "BOGUS"]);
                match sub {
                    "CREATE" => v(&["XGROUP", "CREATE", &key, &group, &id, self.rng.pick(&["MKSTREAM", "ENTRIESREAD"]), "3"])
                        .into_iter()
                        .take(5 + self.rng.below(3) as usize)
                        .collect(),
                    "SETID" => v(&["XGROUP", "SETID", &key, &group, &id]),
                    "DESTROY" => v(&["XGROUP", "DESTROY", &key, &group]),
                    "HELP" => v(&["XGROUP", "HELP"]),
                    "BOGUS" => v(&["XGROUP", "BOGUS", &key]),
                    other => v(&["XGROUP", other, &key, &group, &consumer]),
                }
            }
            15 => v(&["XACK", &key, &group, &self.id(), &self.id()]),
            16 => match self.rng.below(3) {
                0 => v(&["XPENDING", &key, &group]),
                1 => v(&["XPENDING", &key, &group, "-", "+", &count]),
                _ => v(&["XPENDING", &key, &group, "IDLE", self.rng.pick(&["0", "99999999"]), "-", "+", "10", &consumer]),
            },
            17 => {
                let mut cmd = v(&["XCLAIM", &key, &group, &consumer, self.rng.pick(&["0", "99999999", "x"]), &self.id(), &self.id()]);
                for _ in 0..self.rng.below(3) {
                    cmd.extend(v(&[self.rng.pick(&["FORCE", "JUSTID", "RETRYCOUNT", "LASTID", "BOGUS"])]));
                    if matches!(cmd.last().map(|s| s.as_str()), Some("RETRYCOUNT")) {
                        cmd.push("3".into());
                    } else if matches!(cmd.last().map(|s| s.as_str()), Some("LASTID")) {
                        cmd.push(self.id());
                    }
                }
                cmd
            }
            18 => {
                let mut cmd = v(&["XAUTOCLAIM", &key, &group, &consumer, self.rng.pick(&["0", "99999999"]), &self.range_bound()]);
                if self.rng.below(2) == 0 {
                    cmd.extend(v(&["COUNT", self.rng.pick(&["1", "2", "0", "100"])]));
                }
                if self.rng.below(3) == 0 {
                    cmd.push("JUSTID".into());
                }
                cmd
            }
            19 => match self.rng.below(5) {
                0 => v(&["XINFO", "STREAM", &key]),
                1 => v(&["XINFO", "STREAM", &key, "FULL", "COUNT", &count]),
                2 => v(&["XINFO", "GROUPS", &key]),
                3 => v(&["XINFO", "CONSUMERS", &key, &group]),
                _ => v(&["XINFO", "HELP"]),
            },
            20 => v(&["XSETID", &key, &self.id(), "ENTRIESADDED", self.rng.pick(&["100", "0", "-1"]), "MAXDELETEDID", &self.id()]),
            21 => v(&[self.rng.pick(&["DEL", "TYPE", "EXISTS"]), &key]),
            22 => v(&["SET", "str", "x"]),
            _ => v(&["XRANGE", &key, "-", "+"]),
        }
    }
}

#[test]
fn stream_commands_answer_as_redis_does() {
    let seed: u64 = std::env::var("STREAM_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let steps: usize = std::env::var("STREAM_DIFF_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);
    let log = std::env::var_os("STREAM_DIFF_LOG").is_some();
    eprintln!("differential stream test: seed {seed}, {steps} steps (replay with STREAM_DIFF_SEED={seed})");
    let redis = RedisServer::start();
    let tandem = Server::start();
    let mut pairs =
        [(Conn::open(redis.port, false), Conn::open(tandem.port, false)), (Conn::open(redis.port, true), Conn::open(tandem.port, true))];
    let mut generator = Gen { rng: Rng(seed | 1), ms: 1 };
    for step in 0..steps {
        let cmd = generator.command();
        let args: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
        let resp3 = generator.rng.below(2) == 1;
        let (redis_conn, tandem_conn) = &mut pairs[usize::from(resp3)];
        if log {
            eprintln!("step {step} RESP{}: {args:?}", if resp3 { 3 } else { 2 });
        }
        let want = normalize(&args, redis_conn.call(&args));
        let got = normalize(&args, tandem_conn.call(&args));
        assert_eq!(
            encode(&got),
            encode(&want),
            "seed {seed}, step {step}, RESP{}: {args:?}\n tandem: {got:?}\n redis:  {want:?}",
            if resp3 { 3 } else { 2 }
        );
    }
}

fn encode(frame: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out.freeze()
}
