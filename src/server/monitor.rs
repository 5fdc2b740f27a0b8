//! MONITOR: clients that receive a line for every command this server serves, in
//! Redis's format (`+1700000000.123456 [0 127.0.0.1:50000] "set" "k" "v"`). A line
//! goes through the monitor's pub/sub outbox, so a monitor that does not read is
//! closed at the same bound as a slow subscriber.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use super::pubsub::Outbox;
use crate::protocol::reply::Reply;

#[derive(Default)]
pub struct Monitors {
    /// How many monitors there are: read on every command without the lock.
    count: AtomicUsize,
    outboxes: Mutex<HashMap<u64, Outbox>>,
}

impl Monitors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Outbox>> {
        self.outboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, client: u64, outbox: &Outbox) {
        let mut outboxes = self.lock();
        outboxes.insert(client, outbox.clone());
        self.count.store(outboxes.len(), Ordering::Relaxed);
    }

    pub fn remove(&self, client: u64) {
        let mut outboxes = self.lock();
        if outboxes.remove(&client).is_some() {
            self.count.store(outboxes.len(), Ordering::Relaxed);
        }
    }

    pub fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Sends `line` to every monitor; one whose connection is gone (or over its
    /// queue's bound) is dropped.
    pub fn feed(&self, line: &str) {
        let mut outboxes = self.lock();
        outboxes.retain(|_, outbox| outbox.send(Reply::Status(line.to_string().into()), line.len()));
        self.count.store(outboxes.len(), Ordering::Relaxed);
    }
}

/// One MONITOR line: time, database and client address, then each argument quoted
/// as Redis quotes it (`sdscatrepr`).
pub fn line(unix_us: u64, addr: &str, args: &[Bytes]) -> String {
    let mut out = format!("{}.{:06} [0 {addr}]", unix_us / 1_000_000, unix_us % 1_000_000);
    // Secrets (AUTH's password…) are shown as `(redacted)`, as in the slow log.
    for arg in &crate::server::stats::slowlog::redacted(args) {
        out.push_str(" \"");
        for &b in arg.iter() {
            match b {
                b'\\' => out.push_str("\\\\"),
                b'"' => out.push_str("\\\""),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                7 => out.push_str("\\a"),
                8 => out.push_str("\\b"),
                b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
                b => out.push_str(&format!("\\x{b:02x}")),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_quotes_arguments_as_redis_does() {
        let args = [Bytes::from("set"), Bytes::from("k\"\\"), Bytes::from(&b"\x00\n\xff v"[..])];
        assert_eq!(
            line(1_700_000_000_000_042, "127.0.0.1:5", &args),
            "1700000000.000042 [0 127.0.0.1:5] \"set\" \"k\\\"\\\\\" \"\\x00\\n\\xff v\""
        );
    }
}
