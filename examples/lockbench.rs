//! Lock throughput, for `bench/locks.sh`: CLIENTS connections each take and release
//! locks on random names among NAMES for SECONDS, one round trip at a time, and the
//! acquire+release pairs per second are printed.
//!
//! - `--kind tandem`: `TANDEM.LOCK name TTL 30000` → fencing token, then
//!   `TANDEM.UNLOCK name token` (fenced, bound to a session, replicated).
//! - `--kind redis`: the single-instance recipe Redis documents: `SET name token NX PX
//!   30000`, then a Lua compare-and-delete (`EVALSHA`) releases it.
//!
//! A lock already held (another client has it) counts as a miss and the client moves
//! to another name; misses are printed apart.
//!
//! ```text
//! cargo run --release --example lockbench -- --kind tandem --port 9510 --clients 50 --seconds 10
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

struct Args {
    kind: String,
    host: String,
    port: u16,
    clients: usize,
    seconds: u64,
    names: u64,
}

fn parse() -> Result<Args, String> {
    let mut args = Args { kind: String::new(), host: "127.0.0.1".into(), port: 0, clients: 50, seconds: 10, names: 10_000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--kind" => args.kind = value,
            "--host" => args.host = value,
            "--port" => args.port = number(&value)? as u16,
            "--clients" => args.clients = number(&value)? as usize,
            "--seconds" => args.seconds = number(&value)?,
            "--names" => args.names = number(&value)?.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.kind != "tandem" && args.kind != "redis" {
        return Err("--kind tandem|redis is required".into());
    }
    if args.port == 0 {
        return Err("--port is required".into());
    }
    Ok(args)
}

#[derive(Default)]
struct Counts {
    pairs: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

async fn client(args: Arc<Args>, seed: u64, stop: Arc<AtomicBool>, counts: Arc<Counts>) -> redis::RedisResult<()> {
    let url = format!("redis://{}:{}/", args.host, args.port);
    let mut con = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let script = redis::Script::new(RELEASE);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !stop.load(Ordering::Relaxed) {
        // xorshift: a name among `names`, differing per client.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let name = format!("lock:{}", x % args.names);
        let outcome: redis::RedisResult<bool> = if args.kind == "tandem" {
            let token: Option<i64> = redis::cmd("TANDEM.LOCK").arg(&name).arg("TTL").arg(30_000).query_async(&mut con).await?;
            match token {
                Some(token) => {
                    let released: i64 = redis::cmd("TANDEM.UNLOCK").arg(&name).arg(token).query_async(&mut con).await?;
                    Ok(released == 1)
                }
                None => {
                    counts.misses.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        } else {
            let token = format!("{seed}:{x}");
            let set: Option<String> =
                redis::cmd("SET").arg(&name).arg(&token).arg("NX").arg("PX").arg(30_000).query_async(&mut con).await?;
            if set.is_none() {
                counts.misses.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let released: i64 = script.key(&name).arg(&token).invoke_async(&mut con).await?;
            Ok(released == 1)
        };
        match outcome {
            Ok(true) => counts.pairs.fetch_add(1, Ordering::Relaxed),
            _ => counts.errors.fetch_add(1, Ordering::Relaxed),
        };
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match parse() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("lockbench: {e}");
            std::process::exit(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let tasks: Vec<_> = (0..args.clients).map(|i| tokio::spawn(client(args.clone(), i as u64 + 1, stop.clone(), counts.clone()))).collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut failed = 0;
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            eprintln!("lockbench: a client stopped: {e}");
            failed += 1;
        }
    }
    let pairs = counts.pairs.load(Ordering::Relaxed);
    println!(
        "{} pairs/s ({} acquire+release pairs in {elapsed:.1} s, {} clients, {} names; {} already held, {} not released, {failed} clients failed)",
        (pairs as f64 / elapsed).round(),
        pairs,
        args.clients,
        args.names,
        counts.misses.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed)
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
