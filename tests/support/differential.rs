//! What the differential tests (Tandem against redis-server, side by side) share:
//! connecting, sending a command and keeping its error as text, and the one
//! normalisation of doubles that every family needs.

use redis::Value;

pub fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url).expect("client").get_connection().expect("connection")
}

/// The reply to `args`, an error as its code and text.
pub fn outcome<S: AsRef<str>>(con: &mut redis::Connection, args: &[S]) -> Result<Value, String> {
    let mut cmd = redis::cmd(args[0].as_ref());
    for a in &args[1..] {
        cmd.arg(a.as_ref());
    }
    cmd.query::<Value>(con).map_err(|e| format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")))
}

/// Doubles of 16 or more significant digits, or written with an exponent, as the
/// shortest text that reads back as the same double: Redis 7.0 prints `%.17g` (and
/// a subnormal score in full), Tandem the shortest text, as Redis 7.2. A zero reads
/// as 0: Tandem keeps one zero in sorted sets, Redis the -0 it was given or made
/// (a product with a negative weight), which sorts and compares as 0.
pub fn same_double_text(value: Value) -> Value {
    match value {
        Value::BulkString(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let digits = text.bytes().take_while(|b| *b != b'e').filter(u8::is_ascii_digit).count();
            match text.parse::<f64>() {
                Ok(d) if (digits >= 16 && text.contains('.')) || (text.contains('e') && d.is_finite()) => {
                    Value::BulkString(format!("{d}").into_bytes())
                }
                Ok(_) if text == "-0" => Value::BulkString(b"0".to_vec()),
                _ => Value::BulkString(bytes),
            }
        }
        // -0.0 matches the 0.0 pattern (floats compare by value).
        Value::Double(0.0) => Value::Double(0.0),
        Value::Array(items) => Value::Array(items.into_iter().map(same_double_text).collect()),
        Value::Map(pairs) => Value::Map(pairs.into_iter().map(|(k, v)| (same_double_text(k), same_double_text(v))).collect()),
        other => other,
    }
}

/// The draws every command generator makes, from its seeded generator.
pub trait Draw {
    fn rng(&mut self) -> &mut rand_xoshiro::Xoshiro256PlusPlus;

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        use rand::seq::SliceRandom;
        from.choose(self.rng()).copied().unwrap_or("k")
    }

    fn chance(&mut self, p: f64) -> bool {
        use rand::Rng;
        self.rng().gen_bool(p)
    }

    fn int(&mut self, lo: i64, hi: i64) -> String {
        use rand::Rng;
        self.rng().gen_range(lo..=hi).to_string()
    }
}

/// A run's seed (DIFF_SEED, else a random one) and its commands per protocol
/// (DIFF_OPS, else `default_ops`), printed so that a failing run replays.
pub fn seed_and_ops(default_ops: usize) -> (u64, usize) {
    let seed = std::env::var("DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    let ops = std::env::var("DIFF_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(default_ops);
    println!("differential seed: {seed} (replay with DIFF_SEED={seed}), {ops} commands per protocol");
    (seed, ops)
}
