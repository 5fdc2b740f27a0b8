//! Settings a client can read and change at run time with CONFIG GET/SET. Hot ones
//! (read on every command) are atomics; the rest sit behind a mutex.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::params::Params;
use crate::commands::args::glob_match;
use crate::limits;
use crate::store::encoding::LocalSettings;

/// What happens when used memory passes `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EvictionPolicy {
    NoEviction,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

impl EvictionPolicy {
    const ALL: [(EvictionPolicy, &'static str); 8] = [
        (EvictionPolicy::NoEviction, "noeviction"),
        (EvictionPolicy::AllKeysLru, "allkeys-lru"),
        (EvictionPolicy::VolatileLru, "volatile-lru"),
        (EvictionPolicy::AllKeysLfu, "allkeys-lfu"),
        (EvictionPolicy::VolatileLfu, "volatile-lfu"),
        (EvictionPolicy::AllKeysRandom, "allkeys-random"),
        (EvictionPolicy::VolatileRandom, "volatile-random"),
        (EvictionPolicy::VolatileTtl, "volatile-ttl"),
    ];

    pub fn parse(text: &str) -> Option<EvictionPolicy> {
        Self::ALL.iter().find(|(_, n)| n.eq_ignore_ascii_case(text)).map(|(p, _)| *p)
    }

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(p, _)| *p == self).map_or("noeviction", |(_, n)| n)
    }

    fn from_u8(v: u8) -> EvictionPolicy {
        Self::ALL.get(v as usize).map_or(EvictionPolicy::NoEviction, |(p, _)| *p)
    }

    /// Only keys with a TTL are candidates.
    pub fn volatile(self) -> bool {
        matches!(self, Self::VolatileLru | Self::VolatileLfu | Self::VolatileRandom | Self::VolatileTtl)
    }
}

/// notify-keyspace-events bits: one per class letter, plus K and E.
pub mod notify {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const CLASSES: &str = "g$lshzxetdmn";

    /// The bit of an event class letter.
    pub fn class_bit(class: u8) -> u32 {
        CLASSES.bytes().position(|c| c == class).map_or(0, |i| 1 << (i + 2))
    }

    /// Parses Redis's flag letters; `A` is an alias for "g$lshzxetd".
    pub fn parse(flags: &str) -> Option<u32> {
        let mut mask = 0;
        for c in flags.bytes() {
            mask |= match c {
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b'A' => "g$lshzxetd".bytes().map(class_bit).fold(0, |a, b| a | b),
                c if CLASSES.as_bytes().contains(&c) => class_bit(c),
                _ => return None,
            };
        }
        Some(mask)
    }

    /// The canonical letters for CONFIG GET.
    pub fn format(mask: u32) -> String {
        let all = parse("A").unwrap_or(0);
        let mut out = String::new();
        if mask & all == all {
            out.push('A');
        }
        for c in CLASSES.bytes() {
            let bit = class_bit(c);
            if mask & bit != 0 && !(mask & all == all && all & bit != 0) {
                out.push(c as char);
            }
        }
        if mask & KEYSPACE != 0 {
            out.push('K');
        }
        if mask & KEYEVENT != 0 {
            out.push('E');
        }
        out
    }
}

/// Settings shared by every connection.
#[derive(Debug)]
pub struct Settings {
    pub maxmemory_bytes: AtomicU64,
    policy: AtomicU8,
    pub maxmemory_samples: AtomicUsize,
    pub notify_mask: AtomicU32,
    pub bulk_bytes_max: AtomicUsize,
    pub clients_max: AtomicUsize,
    /// Idle seconds before a client is closed; 0 = never.
    pub timeout_secs: AtomicU64,
    /// `min-replicas-to-write` (kept in [`Params`], mirrored here for the write path).
    pub min_replicas: AtomicUsize,
    pub requirepass: Mutex<Option<String>>,
    pub port: u16,
    pub bind: String,
    pub config_file: String,
    /// Encoding thresholds and the Redis parameters Tandem only reports.
    params: Mutex<Params>,
    /// `busy-reply-threshold` (alias `lua-time-limit`) in ms: shared with the store's
    /// script status, which answers `-BUSY` past it (scripting).
    pub busy_reply_threshold_ms: std::sync::Arc<AtomicU64>,
    /// `aclfile`: the users ACL LOAD reads and ACL SAVE writes, loaded into a
    /// stripe whose users were never set when this server becomes its active.
    pub aclfile: Option<String>,
    /// What this server's forwarding connections log in with, and what it accepts
    /// from other members' (`acl::forward_token` of the cluster secret); `None`
    /// without a secret (a lone server): forwarding then logs in with `requirepass`.
    pub forward_token: Option<String>,
    /// `cluster.client-reconnect-window` in ms: how long a client session outlives
    /// its last renewal (a new session's window; renewals every quarter of it), and what a forwarded
    /// write's tag carries (`store::once`).
    pub client_reconnect_window_ms: AtomicU64,
}

impl Settings {
    pub fn new(maxmemory_bytes: u64, port: u16, bind: &str, requirepass: Option<String>, config_file: &str) -> Settings {
        Settings {
            maxmemory_bytes: AtomicU64::new(maxmemory_bytes),
            policy: AtomicU8::new(EvictionPolicy::NoEviction as u8),
            maxmemory_samples: AtomicUsize::new(5),
            notify_mask: AtomicU32::new(0),
            bulk_bytes_max: AtomicUsize::new(limits::BULK_BYTES_MAX_DEFAULT),
            clients_max: AtomicUsize::new(limits::CLIENTS_MAX_DEFAULT),
            timeout_secs: AtomicU64::new(0),
            min_replicas: AtomicUsize::new(0),
            requirepass: Mutex::new(requirepass),
            busy_reply_threshold_ms: std::sync::Arc::new(AtomicU64::new(crate::scripting::status::BUSY_THRESHOLD_MS_DEFAULT)),
            aclfile: None,
            forward_token: None,
            client_reconnect_window_ms: AtomicU64::new(crate::config::CLIENT_RECONNECT_WINDOW_MS_DEFAULT),
            port,
            bind: bind.to_string(),
            config_file: config_file.to_string(),
            params: Mutex::new(Params::default()),
        }
    }

    /// `acllog-max-len`.
    pub fn acllog_max_len(&self) -> usize {
        self.params().acllog_max_len()
    }

    fn params(&self) -> std::sync::MutexGuard<'_, Params> {
        self.params.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of one of the parameters [`Params`] keeps, by its canonical name.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params().value(name).map(str::to_string)
    }

    /// What the store's reads report from this server's settings (OBJECT ENCODING,
    /// FREQ, IDLETIME, REFCOUNT).
    pub fn local(&self) -> LocalSettings {
        let policy = self.policy();
        let lfu = matches!(policy, EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu);
        let lru = matches!(policy, EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru);
        LocalSettings { lfu, lru_or_lfu: lfu || lru, ..self.params().local() }
    }

    pub fn policy(&self) -> EvictionPolicy {
        EvictionPolicy::from_u8(self.policy.load(Ordering::Relaxed))
    }

    /// `protected-mode` (`server::protected`): kept in [`Params`], set from the config
    /// file at start and by CONFIG SET.
    pub fn protected_mode(&self) -> bool {
        self.params().value("protected-mode") == Some("yes")
    }

    /// `stop-writes-on-bgsave-error`: whether clients' writes are refused while the
    /// last snapshot failed.
    pub fn stop_writes_on_snapshot_error(&self) -> bool {
        self.params().value("stop-writes-on-bgsave-error") != Some("no")
    }

    /// The password a forwarding connection gives the active as the default user.
    pub fn forward_password(&self) -> Option<String> {
        self.forward_token.clone().or_else(|| self.requirepass())
    }

    pub fn requirepass(&self) -> Option<String> {
        self.requirepass.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every parameter CONFIG GET knows, with its current value.
    fn all(&self) -> Vec<(&'static str, String)> {
        let mut all = vec![
            ("maxmemory", self.maxmemory_bytes.load(Ordering::Relaxed).to_string()),
            ("maxmemory-policy", self.policy().name().to_string()),
            ("maxmemory-samples", self.maxmemory_samples.load(Ordering::Relaxed).to_string()),
            ("notify-keyspace-events", notify::format(self.notify_mask.load(Ordering::Relaxed))),
            ("proto-max-bulk-len", self.bulk_bytes_max.load(Ordering::Relaxed).to_string()),
            ("maxclients", self.clients_max.load(Ordering::Relaxed).to_string()),
            ("timeout", self.timeout_secs.load(Ordering::Relaxed).to_string()),
            ("requirepass", self.requirepass().unwrap_or_default()),
            ("port", self.port.to_string()),
            ("bind", self.bind.clone()),
            ("databases", "1".to_string()),
            ("appendonly", "no".to_string()),
            ("hz", "10".to_string()),
            ("cluster-enabled", "no".to_string()),
            ("busy-reply-threshold", self.busy_reply_threshold_ms.load(Ordering::Relaxed).to_string()),
            ("lua-time-limit", self.busy_reply_threshold_ms.load(Ordering::Relaxed).to_string()),
        ];
        all.extend(self.params().all());
        all
    }

    /// CONFIG GET: every parameter matching any of the glob `patterns`, once each. A
    /// pattern without glob characters names a parameter (a hidden one included), as
    /// in Redis; a glob leaves hidden parameters out.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        let is_glob = |p: &[u8]| p.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        self.all()
            .into_iter()
            .filter(|(name, _)| {
                patterns.iter().any(|p| {
                    if is_glob(p) {
                        !Params::is_hidden(name) && glob_match(p, name.as_bytes(), true)
                    } else {
                        p.eq_ignore_ascii_case(name.as_bytes())
                    }
                })
            })
            .collect()
    }

    /// The name CONFIG SET's duplicate check compares: an alias counts as its parameter.
    pub fn canonical(name: &str) -> String {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "lua-time-limit" => "busy-reply-threshold".to_string(),
            _ => Params::canonical(&lower).map(str::to_string).unwrap_or(lower),
        }
    }

    /// CONFIG SET one parameter; the error text is Redis's.
    pub fn set(&self, name: &str, value: &str) -> Result<(), String> {
        let invalid = |why: &str| format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}");
        match name.to_ascii_lowercase().as_str() {
            "maxmemory" => {
                let bytes = crate::config::parse_size(value).map_err(|e| invalid(&e))?;
                self.maxmemory_bytes.store(bytes, Ordering::Relaxed);
            }
            "maxmemory-policy" => {
                let policy = EvictionPolicy::parse(value).ok_or_else(|| invalid("argument(s) must be one of the following: volatile-lru, allkeys-lru, volatile-lfu, allkeys-lfu, volatile-random, allkeys-random, volatile-ttl, noeviction"))?;
                self.policy.store(policy as u8, Ordering::Relaxed);
            }
            "maxmemory-samples" => {
                let n: usize = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| invalid("argument must be between 1 and 64 inclusive"))?;
                self.maxmemory_samples.store(n, Ordering::Relaxed);
            }
            "notify-keyspace-events" => {
                let mask = notify::parse(value).ok_or_else(|| invalid("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."))?;
                self.notify_mask.store(mask, Ordering::Relaxed);
            }
            "proto-max-bulk-len" => {
                let bytes = crate::config::parse_size(value).map_err(|e| invalid(&e))?;
                if !(1024 * 1024..=limits::BULK_BYTES_MAX_DEFAULT as u64 * 8).contains(&bytes) {
                    return Err(invalid("argument must be between 1048576 and 4294967296 inclusive"));
                }
                self.bulk_bytes_max.store(bytes as usize, Ordering::Relaxed);
            }
            "maxclients" => {
                let n: usize =
                    value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| invalid("argument must be between 1 and 4294967295 inclusive"))?;
                self.clients_max.store(n, Ordering::Relaxed);
            }
            "timeout" => {
                let n: u64 = value.parse().map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.timeout_secs.store(n, Ordering::Relaxed);
            }
            "busy-reply-threshold" | "lua-time-limit" => {
                let n: u64 = value.parse().map_err(|_| invalid("argument couldn't be parsed into an integer"))?;
                self.busy_reply_threshold_ms.store(n, Ordering::Relaxed);
            }
            "requirepass" => {
                *self.requirepass.lock().unwrap_or_else(|e| e.into_inner()) = if value.is_empty() { None } else { Some(value.to_string()) };
            }
            // Accepted for compatibility with tools that switch persistence off; Tandem's
            // persistence is the stripe's log (restartable), not RDB/AOF.
            "appendonly" if value == "no" => {}
            "hz" => {}
            _ => {
                // The parameters' lock is released before `all` takes it again.
                let outcome = self.params().set(name, value);
                match outcome {
                    Some(outcome) => outcome?,
                    // A parameter CONFIG GET reports but that cannot change while the
                    // server runs (port, bind, databases…): set to what it is, a no-op.
                    None => match self.all().into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                        Some((_, current)) if current == value => {}
                        Some(_) => return Err(invalid("can't set immutable config")),
                        None => return Err(format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'")),
                    },
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_flags_round_trip() {
        let mask = notify::parse("KEA").unwrap();
        assert_eq!(notify::format(mask), "AKE");
        let mask = notify::parse("Kx").unwrap();
        assert_eq!(notify::format(mask), "xK");
        assert!(notify::parse("Q").is_none());
    }

    #[test]
    fn a_fixed_parameter_may_be_set_to_what_it_is() {
        let settings = Settings::new(0, 9510, "127.0.0.1", None, "");
        let port = settings.get(&[b"port"])[0].1.clone();
        assert_eq!(settings.set("port", &port), Ok(()));
        assert!(settings.set("port", "1").unwrap_err().contains("immutable"));
        assert!(settings.set("no-such-thing", "1").unwrap_err().contains("Unknown option"));
    }

    #[test]
    fn config_set_rejects_bad_values_with_redis_errors() {
        let s = Settings::new(0, 9510, "127.0.0.1", None, "");
        assert!(s.set("maxmemory-policy", "allkeys-lru").is_ok());
        assert_eq!(s.policy(), EvictionPolicy::AllKeysLru);
        assert!(s.set("maxmemory-policy", "bogus").unwrap_err().starts_with("ERR CONFIG SET failed"));
        assert!(s.set("no-such", "1").unwrap_err().starts_with("ERR Unknown option"));
        assert!(s.set("maxmemory", "10mb").is_ok() || s.set("maxmemory", "10m").is_ok());
    }
}
