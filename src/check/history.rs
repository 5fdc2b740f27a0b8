//! The history of a run: every operation a client invoked, what came back, and when
//! (monotonic nanoseconds since the run started). The checkers read nothing else.
//!
//! An operation ends one of three ways: **ok** (a reply that says what happened),
//! **fail** (a clear refusal: it did not take effect), or **unknown** (a timeout, a
//! dropped connection, or an error that says the outcome is unknown: it may take
//! effect at any time after it was invoked, or never). A read that does not succeed
//! is a fail whatever the reason: it changed nothing and returned nothing.

use std::fmt;

/// What a client asked for. Values are unique per run (`"<client>-<n>"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `GET` of a register.
    Get,
    /// `SET key value`.
    Set(String),
    /// `SET key value NX`.
    SetNx(String),
    /// `DEL key`.
    Del,
    /// `INCR` of a counter.
    Incr,
    /// `GET` of a counter.
    ReadCounter,
    /// `RPUSH key value` on a list.
    Append(String),
    /// `LRANGE key 0 -1`.
    ReadList,
    /// `SET key value PX ms`: a value that expires (keys with a time to live, and the
    /// volatile keys of an eviction run).
    SetPx(String, u64),
    /// `MULTI`, `GET key`, `PTTL key`, `EXEC`: the value and the milliseconds it has
    /// left, at one instant of the server's clock.
    ReadTtl,
    /// `WATCH key`, `GET key` (→ `read`), `MULTI`, `SET key value`, `RPUSH key:log
    /// value`, `EXEC`: a transaction that replaces the value it read, and logs what
    /// it wrote in the order the writes apply.
    Txn { value: String, read: Option<String> },
    /// `SET key <the value padded to clients::FILLER_BYTES> PX <an hour>`: fills
    /// memory in an eviction run; not checked.
    Fill(String),
}

impl Call {
    /// True if the call changes state (its failures may be unknown).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Call::Set(_) | Call::SetNx(_) | Call::Del | Call::Incr | Call::Append(_) | Call::SetPx(..) | Call::Txn { .. } | Call::Fill(_)
        )
    }

    /// The value the call writes, if it writes one.
    pub fn written(&self) -> Option<&str> {
        match self {
            Call::Set(v) | Call::SetNx(v) | Call::Append(v) | Call::SetPx(v, _) | Call::Txn { value: v, .. } | Call::Fill(v) => Some(v),
            _ => None,
        }
    }
}

/// What an ok reply said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// `GET` of a register: its value, or none.
    Value(Option<String>),
    /// `SET` answered OK.
    Done,
    /// `SET NX`: set (true) or not (nil).
    Flag(bool),
    /// `DEL`: keys removed; `INCR`: the new value; `RPUSH`: the list's new length;
    /// `GET` of a counter: its value (0 when absent).
    Int(i64),
    /// `LRANGE`: the whole list, each item packed (see [`pack`]).
    List(Vec<u64>),
    /// `EXEC`: committed (the replies of its commands) or not (nil: a watched key
    /// changed).
    Committed(bool),
    /// `GET` and `PTTL` of one transaction: the value (or none) and the milliseconds
    /// it has left (-1: no expiry, -2: absent).
    ValueTtl(Option<String>, i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Ret),
    /// Did not take effect; why.
    Fail(String),
    /// May or may not take effect; why.
    Unknown(String),
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client that invoked it; [`FINAL_CLIENT`] for the reads after healing.
    pub client: usize,
    /// Which server the client sent it to.
    pub server: usize,
    pub key: String,
    pub call: Call,
    pub outcome: Outcome,
    pub invoke_ns: u64,
    /// When the reply came, or when the client gave up (for unknown outcomes, the
    /// operation may still take effect later).
    pub complete_ns: u64,
    /// The errors on which a retrying client sent the same command again before the
    /// reply it kept (see `clients::Retry`); each earlier attempt may have taken
    /// effect as well if the server's error did not mean "not applied".
    pub retried: Vec<String>,
}

/// The client id of the reads made after healing.
pub const FINAL_CLIENT: usize = usize::MAX;

impl Op {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown(_))
    }

    pub fn ret(&self) -> Option<&Ret> {
        match &self.outcome {
            Outcome::Ok(r) => Some(r),
            _ => None,
        }
    }

    /// True if this operation finished before `other` was invoked (real-time order).
    pub fn precedes(&self, other: &Op) -> bool {
        self.is_ok() && self.complete_ns < other.invoke_ns
    }
}

/// A value as the clients write it, `"<client>-<n>"`, in 64 bits: lists are read
/// whole, again and again, and their items are most of a history's memory.
pub fn pack(value: &str) -> u64 {
    let parsed = value.split_once('-').and_then(|(c, n)| Some((c.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
    match parsed {
        Some((client, n)) if client < u32::MAX => (u64::from(client) << 32) | u64::from(n),
        _ => FOREIGN,
    }
}

/// What [`pack`] makes of a value no client could have written.
pub const FOREIGN: u64 = u64::MAX;

pub fn unpack(item: u64) -> String {
    if item == FOREIGN {
        "<a value no client wrote>".to_string()
    } else {
        format!("{}-{}", item >> 32, item & 0xFFFF_FFFF)
    }
}

fn unpack_all(items: &[u64]) -> Vec<String> {
    items.iter().map(|&i| unpack(i)).collect()
}

/// Seconds with milliseconds, for histories people read.
pub fn secs(ns: u64) -> String {
    format!("{}.{:03}s", ns / 1_000_000_000, ns / 1_000_000 % 1000)
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Get | Call::ReadCounter => write!(f, "GET"),
            Call::Set(v) => write!(f, "SET {v:?}"),
            Call::SetNx(v) => write!(f, "SET {v:?} NX"),
            Call::Del => write!(f, "DEL"),
            Call::Incr => write!(f, "INCR"),
            Call::Append(v) => write!(f, "RPUSH {v:?}"),
            Call::ReadList => write!(f, "LRANGE 0 -1"),
            Call::SetPx(v, ms) => write!(f, "SET {v:?} PX {ms}"),
            Call::ReadTtl => write!(f, "MULTI, GET, PTTL, EXEC"),
            Call::Fill(v) => write!(f, "SET {v:?}… (a filler) PX"),
            Call::Txn { value, read: Some(read) } => write!(f, "WATCH, GET → {read:?}, MULTI, SET {value:?}, RPUSH log {value:?}, EXEC"),
            Call::Txn { value, read: None } => write!(f, "WATCH, GET, MULTI, SET {value:?}, RPUSH log {value:?}, EXEC"),
        }
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Value(Some(v)) => write!(f, "{v:?}"),
            Ret::Value(None) => write!(f, "nil"),
            Ret::Done => write!(f, "OK"),
            Ret::Flag(true) => write!(f, "OK (set)"),
            Ret::Flag(false) => write!(f, "nil (not set)"),
            Ret::Int(n) => write!(f, "{n}"),
            Ret::Committed(true) => write!(f, "committed"),
            Ret::ValueTtl(Some(v), ttl) => write!(f, "{v:?} with {ttl} ms left"),
            Ret::ValueTtl(None, ttl) => write!(f, "nil (PTTL {ttl})"),
            Ret::Committed(false) => write!(f, "nil (aborted: a watched key changed)"),
            Ret::List(items) if items.len() <= 12 => write!(f, "{:?}", unpack_all(items)),
            Ret::List(items) => {
                let (head, tail) = (unpack_all(&items[..4]), unpack_all(&items[items.len() - 4..]));
                write!(f, "[{} items: {head:?} … {tail:?}]", items.len())
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.client == FINAL_CLIENT { "final".to_string() } else { format!("c{}", self.client) };
        let end = match &self.outcome {
            Outcome::Ok(_) => secs(self.complete_ns),
            _ => format!("{} ", secs(self.complete_ns)),
        };
        write!(f, "[{} … {}] {who}@server{} {} {}", secs(self.invoke_ns), end, self.server + 1, self.key, self.call)?;
        match &self.outcome {
            Outcome::Ok(r) => write!(f, " → {r}"),
            Outcome::Fail(why) => write!(f, " → failed: {why}"),
            Outcome::Unknown(why) => write!(f, " → unknown: {why}"),
        }?;
        if !self.retried.is_empty() {
            write!(f, " (sent {} times; retried after: {})", self.retried.len() + 1, self.retried.join(" | "))?;
        }
        Ok(())
    }
}

/// How a client reads an error: did the operation take effect?
///
/// Transport trouble (timeouts, resets, refused connections) leaves a write unknown.
/// A server's error reply is unknown when it says so, or when it does not clearly
/// refuse (a generic `ERR` about the log, say); the clear refusals (`TRYAGAIN` that
/// is not about the outcome, `CLUSTERDOWN`, `MISCONF`, `OOM`, `READONLY`, `MOVED`,
/// `LOADING`, …) are fails. Reads always fail: they changed nothing.
pub fn classify(call: &Call, error: &redis::RedisError) -> Outcome {
    let text = error.to_string();
    if !call.is_write() {
        return Outcome::Fail(text);
    }
    if error.is_connection_refusal() {
        // Nothing reached a server.
        return Outcome::Fail(text);
    }
    if error.is_io_error() {
        return Outcome::Unknown(text);
    }
    if text.to_ascii_lowercase().contains("unknown") {
        return Outcome::Unknown(text);
    }
    const REFUSALS: &[&str] =
        &["TRYAGAIN", "CLUSTERDOWN", "MISCONF", "OOM", "READONLY", "MOVED", "ASK", "LOADING", "MASTERDOWN", "NOAUTH", "WRONGTYPE"];
    match error.code() {
        Some(code) if REFUSALS.contains(&code) => Outcome::Fail(text),
        _ => Outcome::Unknown(text),
    }
}

/// Counts of a history's outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub fail: usize,
    pub unknown: usize,
}

impl Counts {
    pub fn of<'a>(ops: impl IntoIterator<Item = &'a Op>) -> Counts {
        let mut c = Counts::default();
        for op in ops {
            match op.outcome {
                Outcome::Ok(_) => c.ok += 1,
                Outcome::Fail(_) => c.fail += 1,
                Outcome::Unknown(_) => c.unknown += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.ok + self.fail + self.unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_pack_into_64_bits_and_back() {
        assert_eq!(unpack(pack("3-17")), "3-17");
        assert_eq!(pack("x"), FOREIGN);
        assert_eq!(pack("1-2-3"), FOREIGN);
    }

    #[test]
    fn transport_trouble_leaves_a_write_unknown_and_a_read_failed() {
        let io = redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"));
        assert!(matches!(classify(&Call::Set("v".into()), &io), Outcome::Unknown(_)));
        assert!(matches!(classify(&Call::Get, &io), Outcome::Fail(_)));
    }

    #[test]
    fn a_refused_connection_sent_nothing() {
        let refused = redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(matches!(classify(&Call::Incr, &refused), Outcome::Fail(_)));
    }

    #[test]
    fn an_error_that_says_the_outcome_is_unknown_is_unknown() {
        let e = redis::RedisError::from((
            redis::ErrorKind::TryAgain,
            "An error was signalled by the server",
            "the active changed before this write committed; its outcome is unknown".to_string(),
        ));
        assert!(matches!(classify(&Call::Append("v".into()), &e), Outcome::Unknown(_)));
        let e = redis::RedisError::from((
            redis::ErrorKind::TryAgain,
            "An error was signalled by the server",
            "this server is not the active of its stripe; retry".to_string(),
        ));
        assert!(matches!(classify(&Call::Append("v".into()), &e), Outcome::Fail(_)));
        let e = redis::RedisError::from((
            redis::ErrorKind::ResponseError,
            "An error was signalled by the server",
            "the stripe's log stopped".to_string(),
        ));
        assert!(matches!(classify(&Call::Del, &e), Outcome::Unknown(_)), "a generic error is no clear refusal");
    }
}
