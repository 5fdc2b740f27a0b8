//! ACL users with Redis 7.0's semantics (DESIGN.md §10): the rules (`user`), the
//! command ids and categories they name (`registry`, over `redis_table`, Redis
//! 7.0.15's own table), the stripe's users and the permission check (`users`), and
//! this server's log of refusals (`log`).
//!
//! The users are replicated state: they live in the store's `Db`, change only when
//! an ACL write is applied from the log, and travel in snapshots. What connections
//! read at admission is the [`View`] the store publishes after each change, so the
//! request path never takes the store's lock to check a user. This module does not
//! know about sockets or the log.

pub mod log;
pub mod redis_table;
pub mod registry;
pub mod user;
pub mod users;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use user::User;
pub use users::{channel_allowed, check, command_name, sort_option_refused, unrestricted, Denied, Users};

/// The password a server forwarding its clients' commands gives the active
/// (`AUTH default <token>`): an HMAC-SHA256 of a fixed label with the cluster secret,
/// so only a member of the array has it. A connection that presents it runs what it
/// is sent unchecked: the forwarding server has checked each command against its
/// own client's user (the stripe's users are the same on every member).
pub fn forward_token(secret: &str) -> String {
    use hmac::{Hmac, Mac};
    // Hmac takes a key of any length.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"tandem forwarding connection v1");
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// What connections see of the stripe's users: the last applied table, a counter
/// bumped at each change (a session re-reads its user when it moved) and the log.
#[derive(Debug, Default)]
pub struct View {
    users: RwLock<Arc<Users>>,
    epoch: AtomicU64,
    pub log: Mutex<log::AclLog>,
    /// Woken at each change: subscribers whose channels were revoked are closed.
    pub changed: tokio::sync::Notify,
    /// This server is the stripe's active: refusals inside scripts (which apply runs
    /// on every member) are logged here only.
    pub active: std::sync::atomic::AtomicBool,
    /// The `acllog-max-len` of the last record (refusals in scripts have no settings).
    len_max: std::sync::atomic::AtomicUsize,
}

impl View {
    pub fn users(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Publishes the users after an applied change (or a snapshot installed).
    pub fn publish(&self, users: Arc<Users>) {
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = users;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// The user called `name` now, as every server of the stripe sees it; this
    /// server's `requirepass` is the default user's password until ACL sets that user.
    pub fn user(&self, name: &[u8], requirepass: Option<&str>) -> Option<User> {
        self.users().get(name, requirepass)
    }

    /// ACL LOG's record of a refusal or a failed AUTH, keeping `len_max` entries.
    pub fn record(&self, entry: log::Entry, now_ms: u64, len_max: usize) {
        self.len_max.store(len_max, Ordering::Relaxed);
        self.log.lock().unwrap_or_else(|e| e.into_inner()).add(entry, now_ms, len_max);
    }

    /// A refusal inside a script (context `lua`), logged on the active only. Its
    /// time is the entry's (apply reads no clock); the caller's client is not known
    /// in apply, so its client-info is empty.
    pub fn record_in_script(&self, denied: Denied, command: &str, args: &[bytes::Bytes], user: &str, now_ms: u64) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let entry = log::Entry::new(denied.reason(), "lua", denied.object(command, args), user.to_string(), String::new());
        let len_max = match self.len_max.load(Ordering::Relaxed) {
            0 => log::ACL_LOG_LEN_DEFAULT,
            n => n,
        };
        self.log.lock().unwrap_or_else(|e| e.into_inner()).add(entry, now_ms, len_max);
    }
}
