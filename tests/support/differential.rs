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

/// Doubles of 16 or more significant digits as the shortest text that reads back as
/// the same double: Redis 7.0 prints `%.17g`, Tandem the shortest text, as Redis
/// 7.2. A subnormal one too, whichever way it is written (Redis 7.0 prints
/// 4.9406564584124654e-324 or every digit of 1e-310, Tandem 5e-324 and 1e-310).
pub fn same_double_text(value: Value) -> Value {
    match value {
        Value::BulkString(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let digits = text.bytes().take_while(|b| *b != b'e').filter(u8::is_ascii_digit).count();
            let subnormal = |d: f64| d != 0.0 && d.abs() < f64::MIN_POSITIVE;
            match text.parse::<f64>() {
                Ok(d) if (digits >= 16 && text.contains('.')) || subnormal(d) => Value::BulkString(format!("{d}").into_bytes()),
                _ => Value::BulkString(bytes),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(same_double_text).collect()),
        Value::Map(pairs) => Value::Map(pairs.into_iter().map(|(k, v)| (same_double_text(k), same_double_text(v))).collect()),
        other => other,
    }
}

/// A score of -0 as 0, in a reply that is a score or holds only scores: Tandem keeps
/// one zero in sorted sets, Redis the -0 it was given or made (a product with a
/// negative weight), which sorts and compares as 0. Only where a score stands:
/// a member, field or element `-0` is a string and must stay one.
pub fn zero_score(value: Value) -> Value {
    match value {
        Value::BulkString(bytes) if bytes == b"-0" => Value::BulkString(b"0".to_vec()),
        // -0.0 matches the 0.0 pattern (floats compare by value).
        Value::Double(0.0) => Value::Double(0.0),
        Value::Array(items) => Value::Array(items.into_iter().map(zero_score).collect()),
        other => other,
    }
}

/// [`zero_score`] for the scores of a reply of members and scores: every second
/// item of a flat array (RESP2), the second of each pair (RESP3).
pub fn zero_scores_of_pairs(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Array(pair) if pair.len() == 2 => Value::Array(vec![pair[0].clone(), zero_score(pair[1].clone())]),
                    score if i % 2 == 1 => zero_score(score),
                    member => member,
                })
                .collect(),
        ),
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

/// A sorted set's members and scores, for comparing data at a run's end: its
/// doubles as [`same_double_text`] writes them and its -0 scores as 0.
pub fn sorted_set(con: &mut redis::Connection, key: &str) -> String {
    let reply = redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query::<Value>(con);
    format!("{:?}", reply.map(same_double_text).map(zero_scores_of_pairs))
}

/// Every key and its type, in key order: what a run's end compares, each test
/// reading the contents its types need.
pub fn keys_and_types(con: &mut redis::Connection) -> Vec<(String, String)> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let kind: String = redis::cmd("TYPE").arg(&k).query(con).unwrap();
            (k, kind)
        })
        .collect()
}
