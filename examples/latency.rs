//! Latency at a fixed offered load, for `bench/latency.sh`: an open loop, unlike
//! redis-benchmark's closed one. CONNECTIONS connections each send `SET key:<n> xxx`
//! (or `GET`) on a fixed schedule, RATE requests a second in all, for SECONDS; every
//! request's latency runs from the moment it was due to be sent to its reply, so a
//! server that stalls is charged for every request that should have gone out
//! meanwhile (no coordinated omission). Prints the rate offered and achieved (replies
//! over the time from the first request due to the last reply) and p50, p99, p99.9 and
//! the maximum, in milliseconds. `--windows FILE` writes the worst latency of each
//! 10 ms of the schedule (`<ms from start> <worst ms>`), to tell stalls from noise.
//!
//! One thread drives every connection with non-blocking sockets and no timer (a
//! tokio or OS timer rounds to a millisecond; a request here leaves within a few
//! microseconds of its time), so it takes one core, as redis-benchmark does.
//!
//! ```text
//! cargo run --release --example latency -- --port 9510 --rate 40000 --connections 50 --seconds 20 --command set
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Args {
    host: String,
    port: u16,
    rate: u64,
    connections: usize,
    seconds: u64,
    command: String,
    keys: u64,
    /// Where to write the worst latency of each 10 ms of the schedule (finding stalls).
    windows: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: 0,
        rate: 0,
        connections: 50,
        seconds: 20,
        command: "set".into(),
        keys: 100_000,
        windows: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--host" => args.host = value,
            "--port" => args.port = number(&value)? as u16,
            "--rate" => args.rate = number(&value)?,
            "--connections" => args.connections = number(&value)? as usize,
            "--seconds" => args.seconds = number(&value)?,
            "--command" => args.command = value.to_ascii_lowercase(),
            "--keys" => args.keys = number(&value)?.max(1),
            "--windows" => args.windows = Some(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.port == 0 || args.rate == 0 || args.connections == 0 {
        return Err("--port and --rate are required; --connections must be at least 1".into());
    }
    if args.command != "set" && args.command != "get" {
        return Err(format!("--command {}: set or get", args.command));
    }
    Ok(args)
}

/// One connection: its socket, the bytes received and not yet parsed, and the due
/// times of the requests sent whose replies have not come.
struct Conn {
    socket: TcpStream,
    input: Vec<u8>,
    waiting: std::collections::VecDeque<Instant>,
    /// The index of this connection's next request on its schedule.
    next: u64,
}

/// The length of the first whole reply in `buf` (simple string, error, integer or
/// bulk string: what SET and GET answer), or `None` until it has all arrived.
fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let Some(line) = buf.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    match buf.first() {
        Some(b'+' | b':') => Ok(Some(line + 2)),
        Some(b'-') => Err(format!("the server answered an error: {}", String::from_utf8_lossy(&buf[..line]))),
        Some(b'$') => {
            let len: i64 = std::str::from_utf8(&buf[1..line]).ok().and_then(|s| s.parse().ok()).ok_or("a bad bulk length")?;
            if len < 0 {
                return Ok(Some(line + 2));
            }
            let total = line + 2 + len as usize + 2;
            Ok((buf.len() >= total).then_some(total))
        }
        _ => Err(format!("an unexpected reply: {:?}", String::from_utf8_lossy(&buf[..line]))),
    }
}

fn run(args: &Args) -> Result<(), String> {
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let socket = TcpStream::connect((args.host.as_str(), args.port)).map_err(|e| format!("connecting: {e}"))?;
        socket.set_nodelay(true).map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        conns.push(Conn { socket, input: Vec::with_capacity(4096), waiting: Default::default(), next: 0 });
    }
    // Each connection sends every `interval`; their schedules are staggered evenly.
    let interval = Duration::from_secs_f64(args.connections as f64 / args.rate as f64);
    let stagger = interval / args.connections as u32;
    let total = args.rate * args.seconds;
    let per_conn = total / args.connections as u64;
    let mut latencies: Vec<u32> = Vec::with_capacity(total as usize);
    let mut worst: Vec<u32> = Vec::new();
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + Duration::from_secs(args.seconds) + Duration::from_secs(30);
    let mut out = Vec::with_capacity(256);
    let mut buf = [0u8; 16384];
    let mut key: u64 = 0x2545_f491_4f6c_dd1d;
    loop {
        let now = Instant::now();
        if now > deadline {
            return Err(format!("replies still missing {}s after the last request was due", 30));
        }
        let mut done = true;
        for (c, conn) in conns.iter_mut().enumerate() {
            // Send what is due.
            out.clear();
            while conn.next < per_conn {
                let due = start + stagger * c as u32 + interval * conn.next as u32;
                if due > now {
                    break;
                }
                key ^= key << 13;
                key ^= key >> 7;
                key ^= key << 17;
                let name = format!("key:{:012}", key % args.keys);
                match args.command.as_str() {
                    "set" => out.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{name}\r\n$3\r\nxxx\r\n", name.len()).as_bytes()),
                    _ => out.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n{name}\r\n", name.len()).as_bytes()),
                }
                conn.waiting.push_back(due);
                conn.next += 1;
            }
            let mut sent = 0;
            while sent < out.len() {
                match conn.socket.write(&out[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                    Err(e) => return Err(format!("sending: {e}")),
                }
            }
            // Take what has arrived.
            if !conn.waiting.is_empty() {
                match conn.socket.read(&mut buf) {
                    Ok(0) => return Err("the server closed a connection".into()),
                    Ok(n) => conn.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(format!("receiving: {e}")),
                }
                let arrived = Instant::now();
                let mut at = 0;
                while let Some(len) = reply_len(&conn.input[at..])? {
                    let due = conn.waiting.pop_front().ok_or("a reply nobody asked for")?;
                    let latency = arrived.saturating_duration_since(due).as_micros().min(u32::MAX as u128) as u32;
                    latencies.push(latency);
                    if args.windows.is_some() {
                        let window = (due.saturating_duration_since(start).as_millis() / 10) as usize;
                        if worst.len() <= window {
                            worst.resize(window + 1, 0);
                        }
                        worst[window] = worst[window].max(latency);
                    }
                    at += len;
                }
                conn.input.drain(..at);
            }
            done &= conn.next == per_conn && conn.waiting.is_empty();
        }
        if done {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(path) = &args.windows {
        let lines: String = worst.iter().enumerate().map(|(w, l)| format!("{} {:.3}\n", w * 10, *l as f64 / 1000.0)).collect();
        std::fs::write(path, lines).map_err(|e| format!("writing {path}: {e}"))?;
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)] as f64 / 1000.0;
    println!(
        "requests {} offered {} achieved {:.0} p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
        latencies.len(),
        args.rate,
        latencies.len() as f64 / elapsed,
        at(0.50),
        at(0.99),
        at(0.999),
        *latencies.last().unwrap_or(&0) as f64 / 1000.0
    );
    Ok(())
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("latency: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("latency: {e}");
        std::process::exit(1);
    }
}
