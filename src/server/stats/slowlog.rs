//! The slow log (SLOWLOG GET/LEN/RESET): the commands that took at least
//! `slowlog-log-slower-than` µs, newest first, at most `slowlog-max-len` of them,
//! each with its arguments trimmed as Redis trims them.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Caller;
use crate::protocol::reply::Reply;

/// Arguments kept per entry (Redis's `SLOWLOG_ENTRY_MAX_ARGC`): the last kept one
/// says how many more there were.
const ARGS_MAX: usize = 32;
/// Bytes kept per argument (Redis's `SLOWLOG_ENTRY_MAX_STRING`).
const ARG_BYTES_MAX: usize = 128;

struct Entry {
    id: u64,
    unix_secs: u64,
    usec: u64,
    args: Vec<Bytes>,
    addr: String,
    name: String,
}

#[derive(Default)]
pub struct SlowLog {
    /// Newest first.
    entries: VecDeque<Entry>,
    next_id: u64,
}

/// Arguments whose values are secrets: shown as `(redacted)`, as Redis does (in the
/// slow log and to MONITOR).
pub(crate) fn redacted(args: &[Bytes]) -> Vec<Bytes> {
    let hidden = Bytes::from_static(b"(redacted)");
    let is = |arg: Option<&Bytes>, name: &str| arg.is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()));
    let mut out = args.to_vec();
    if is(args.first(), "auth") {
        out.iter_mut().skip(1).for_each(|a| *a = hidden.clone());
    } else if is(args.first(), "hello") {
        let mut i = 2;
        while i < out.len() {
            if is(args.get(i), "auth") {
                for a in out.iter_mut().skip(i + 1).take(2) {
                    *a = hidden.clone();
                }
                i += 3;
            } else {
                i += 1;
            }
        }
    } else if is(args.first(), "acl") && is(args.get(1), "setuser") {
        out.iter_mut().skip(2).for_each(|a| *a = hidden.clone());
    } else if is(args.first(), "migrate") {
        let mut i = 6;
        while i < out.len() {
            if is(args.get(i), "keys") {
                break;
            }
            let secrets = if is(args.get(i), "auth") {
                1
            } else if is(args.get(i), "auth2") {
                2
            } else {
                0
            };
            for a in out.iter_mut().skip(i + 1).take(secrets) {
                *a = hidden.clone();
            }
            i += 1 + secrets;
        }
    } else if is(args.first(), "config") && is(args.get(1), "set") {
        for pair in out.get_mut(2..).unwrap_or_default().chunks_mut(2) {
            if let [name, value] = pair {
                if name.eq_ignore_ascii_case(b"masterauth") || name.eq_ignore_ascii_case(b"requirepass") {
                    *value = hidden.clone();
                }
            }
        }
    }
    out
}

/// The arguments as an entry keeps them: at most [`ARGS_MAX`], each at most
/// [`ARG_BYTES_MAX`] bytes, with what was cut said in the last one.
fn trimmed(args: &[Bytes]) -> Vec<Bytes> {
    let args = redacted(args);
    let kept = if args.len() > ARGS_MAX { ARGS_MAX - 1 } else { args.len() };
    let mut out: Vec<Bytes> = args
        .iter()
        .take(kept)
        .map(|a| {
            if a.len() > ARG_BYTES_MAX {
                let mut cut = a.slice(..ARG_BYTES_MAX).to_vec();
                cut.extend_from_slice(format!("... ({} more bytes)", a.len() - ARG_BYTES_MAX).as_bytes());
                Bytes::from(cut)
            } else {
                a.clone()
            }
        })
        .collect();
    if args.len() > ARGS_MAX {
        out.push(Bytes::from(format!("... ({} more arguments)", args.len() - kept)));
    }
    out
}

impl SlowLog {
    pub fn push(&mut self, args: &[Bytes], usec: u64, unix_secs: u64, caller: &Caller<'_>, max: usize) {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_front(Entry {
            id,
            unix_secs,
            usec,
            args: trimmed(args),
            addr: caller.addr.to_string(),
            name: caller.name.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        });
        self.entries.truncate(max);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps the newest `max` entries (`slowlog-max-len` lowered).
    pub fn truncate(&mut self, max: usize) {
        self.entries.truncate(max);
    }

    /// SLOWLOG RESET (ids keep counting, as in Redis).
    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// SLOWLOG GET [count]: the newest `count` entries (`None`: all).
    pub fn get_reply(&self, count: Option<usize>) -> Reply {
        let count = count.unwrap_or(usize::MAX);
        Reply::Array(
            self.entries
                .iter()
                .take(count)
                .map(|e| {
                    Reply::Array(vec![
                        Reply::Int(e.id as i64),
                        Reply::Int(e.unix_secs as i64),
                        Reply::Int(e.usec as i64),
                        Reply::Array(e.args.iter().cloned().map(Reply::Bulk).collect()),
                        Reply::bulk_str(&e.addr),
                        Reply::bulk_str(&e.name),
                    ])
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn too_many_arguments_keep_31_and_say_how_many_more() {
        let mut words = vec!["sadd".to_string(), "set".to_string()];
        words.extend((3..=33).map(|n| n.to_string()));
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let kept = trimmed(&args(&refs));
        assert_eq!(kept.len(), 32);
        assert_eq!(kept[30], Bytes::from("31"));
        assert_eq!(kept[31], Bytes::from("... (2 more arguments)"));
        assert_eq!(trimmed(&args(&refs[..32])).len(), 32);
    }

    #[test]
    fn long_arguments_keep_128_bytes_and_say_how_many_more() {
        let long = "A".repeat(129);
        let kept = trimmed(&args(&["sadd", "set", "foo", &long]));
        assert_eq!(kept[3], Bytes::from(format!("{}... (1 more bytes)", "A".repeat(128))));
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(trimmed(&args(&["auth", "u", "p"])), args(&["auth", "(redacted)", "(redacted)"]));
        assert_eq!(redacted(&args(&["acl", "setuser", "u", "+get"])), args(&["acl", "setuser", "(redacted)", "(redacted)"]));
        assert_eq!(
            redacted(&args(&["migrate", "h", "1", "k", "9", "5", "AUTH2", "user", "pw", "KEYS", "auth"])),
            args(&["migrate", "h", "1", "k", "9", "5", "AUTH2", "(redacted)", "(redacted)", "KEYS", "auth"])
        );
        assert_eq!(trimmed(&args(&["hello", "3", "AUTH", "u", "p"])), args(&["hello", "3", "AUTH", "(redacted)", "(redacted)"]));
        assert_eq!(
            trimmed(&args(&["config", "set", "masterauth", "x", "maxmemory", "1"])),
            args(&["config", "set", "masterauth", "(redacted)", "maxmemory", "1"])
        );
    }

    #[test]
    fn newest_first_bounded_by_max_len_and_ids_survive_reset() {
        let mut log = SlowLog::default();
        let name = std::sync::Mutex::new("me".to_string());
        let caller = Caller { addr: "127.0.0.1:5", name: &name };
        for i in 0..5 {
            log.push(&args(&["ping", &i.to_string()]), 10, 100, &caller, 3);
        }
        assert_eq!(log.len(), 3);
        let Reply::Array(entries) = log.get_reply(Some(1)) else { panic!("an array") };
        assert_eq!(
            entries,
            vec![Reply::Array(vec![
                Reply::Int(4),
                Reply::Int(100),
                Reply::Int(10),
                Reply::Array(vec![Reply::bulk(b"ping"), Reply::bulk(b"4")]),
                Reply::bulk(b"127.0.0.1:5"),
                Reply::bulk(b"me"),
            ])]
        );
        log.reset();
        assert!(log.is_empty());
        log.push(&args(&["ping"]), 10, 100, &caller, 3);
        assert!(matches!(log.get_reply(None), Reply::Array(e) if matches!(&e[0], Reply::Array(f) if f[0] == Reply::Int(5))));
    }
}
