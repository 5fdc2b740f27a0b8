//! ACL LOG: this server's recent refusals and failed logins, as Redis keeps them
//! (not replicated: each server logs what its own clients were refused).

use std::collections::VecDeque;

use crate::protocol::reply::Reply;

/// Redis's `acllog-max-len` default.
pub const ACL_LOG_LEN_DEFAULT: usize = 128;
/// The most entries kept whatever `acllog-max-len` says: each holds a client line
/// (a few hundred bytes), so this bounds the log near 10 MB.
pub const ACL_LOG_LEN_MAX: usize = 30_000;
/// Entries compared with a new one for a merge (Redis looks at 10).
const MERGE_SCAN: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub count: u64,
    /// command, key, channel or auth.
    pub reason: &'static str,
    /// toplevel, multi or lua.
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub client_info: String,
    pub created_ms: u64,
}

impl Entry {
    pub fn new(reason: &'static str, context: &'static str, object: String, username: String, client_info: String) -> Entry {
        Entry { count: 1, reason, context, object, username, client_info, created_ms: 0 }
    }

    fn same_event(&self, other: &Entry) -> bool {
        self.reason == other.reason && self.context == other.context && self.object == other.object && self.username == other.username
    }
}

#[derive(Debug, Default)]
pub struct AclLog {
    /// Newest first.
    entries: VecDeque<Entry>,
}

impl AclLog {
    /// Records `entry`, keeping at most `len_max` entries (`acllog-max-len`).
    pub fn add(&mut self, mut entry: Entry, now_ms: u64, len_max: usize) {
        entry.created_ms = now_ms;
        let found = self.entries.iter().take(MERGE_SCAN).position(|e| e.same_event(&entry));
        if let Some(at) = found {
            if let Some(mut old) = self.entries.remove(at) {
                old.count += 1;
                old.created_ms = now_ms;
                old.client_info = entry.client_info;
                self.entries.push_front(old);
            }
            return;
        }
        self.entries.push_front(entry);
        self.entries.truncate(len_max.min(ACL_LOG_LEN_MAX));
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// ACL LOG [count]: the newest `count` entries as Redis shows them.
    pub fn reply(&self, count: usize, now_ms: u64) -> Reply {
        let entry = |e: &Entry| {
            let age = now_ms.saturating_sub(e.created_ms) as f64 / 1000.0;
            Reply::Map(vec![
                (Reply::bulk(b"count"), Reply::Int(e.count as i64)),
                (Reply::bulk(b"reason"), Reply::bulk_str(e.reason)),
                (Reply::bulk(b"context"), Reply::bulk_str(e.context)),
                (Reply::bulk(b"object"), Reply::bulk_str(&e.object)),
                (Reply::bulk(b"username"), Reply::bulk_str(&e.username)),
                (Reply::bulk(b"age-seconds"), Reply::Double(age)),
                (Reply::bulk(b"client-info"), Reply::bulk_str(&e.client_info)),
            ])
        };
        Reply::Array(self.entries.iter().take(count).map(entry).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(object: &str) -> Entry {
        Entry::new("command", "toplevel", object.into(), "u".into(), String::new())
    }

    #[test]
    fn the_same_event_is_counted_and_the_log_is_bounded() {
        let mut log = AclLog::default();
        log.add(e("get"), 1, ACL_LOG_LEN_DEFAULT);
        log.add(e("set"), 2, ACL_LOG_LEN_DEFAULT);
        log.add(e("get"), 3, ACL_LOG_LEN_DEFAULT);
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.entries[0].object, "get");
        assert_eq!(log.entries[0].count, 2);
        for i in 0..1000 {
            log.add(e(&format!("c{i}")), 4, ACL_LOG_LEN_DEFAULT);
        }
        assert_eq!(log.entries.len(), ACL_LOG_LEN_DEFAULT);
        log.add(e("x"), 5, 5);
        assert_eq!(log.entries.len(), 5, "acllog-max-len lowered: trimmed at the next entry");
        for i in 0..40_000 {
            log.add(e(&format!("d{i}")), 6, usize::MAX);
        }
        assert_eq!(log.entries.len(), ACL_LOG_LEN_MAX, "bounded whatever the setting");
    }
}
