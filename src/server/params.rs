//! CONFIG parameters beyond those [`super::settings::Settings`] acts on: Redis's
//! encoding thresholds (reported by OBJECT ENCODING through the store's
//! [`LocalSettings`]) and Redis parameters that Tandem accepts, checks and reports
//! but has no use for, so that clients and tools that set them keep working.
//!
//! Why some are only reported: Tandem's replication is the stripe's Raft log, not
//! Redis's replica links (`repl-*`, `min-replicas-max-lag`: a mirror counts for
//! `min-replicas-to-write` while it answered within an election time); it frees memory the same way
//! whatever `lazyfree-*` says; and a setting of one server must never change the
//! bytes a replicated write produces, so `hll-sparse-max-bytes` and the list and
//! stream node sizes cannot steer the data (HyperLogLogs use Redis's default bound on
//! every server). Parameters whose effect would matter and that Tandem does not
//! have (`dir`, `appendonly yes`, `lfu-log-factor`…) stay refused.

use std::collections::HashMap;

use crate::protocol::reply::format_double;
use crate::store::encoding::LocalSettings;

/// How a parameter's value is checked and shown.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    /// A size: bytes, or a number with k, kb, m, mb, g, gb; shown in bytes.
    Bytes,
    Bool,
    Enum(&'static [&'static str]),
    /// Space-separated numbers from 0 to 100 (percentiles).
    Percentiles,
    /// A size in bytes (as [`Kind::Bytes`]) or a percentage of `maxmemory` (`10%`).
    BytesOrPercent,
    /// Redis's RDB schedule: pairs of seconds and changes, or empty.
    SaveSchedule,
    Text,
    /// Set at start-up only.
    Immutable,
}

struct Param {
    name: &'static str,
    /// Redis's older name for the same parameter.
    alias: Option<&'static str>,
    default: &'static str,
    kind: Kind,
    /// Left out of CONFIG GET with a pattern, shown when asked for by name (Redis's
    /// hidden parameters, which exist for its tests).
    hidden: bool,
}

const fn p(name: &'static str, alias: Option<&'static str>, default: &'static str, kind: Kind) -> Param {
    Param { name, alias, default, kind, hidden: false }
}

const fn hidden(name: &'static str, default: &'static str, kind: Kind) -> Param {
    Param { name, alias: None, default, kind, hidden: true }
}

const INT: Kind = Kind::Int { min: 0, max: i64::MAX };

/// Every parameter here, with Redis 7.0's default.
static PARAMS: &[Param] = &[
    // ACL LOG's length (acl::log); bounded there.
    p("acllog-max-len", None, "128", INT),
    // Encoding thresholds: what OBJECT ENCODING reports follows them.
    p("hash-max-listpack-entries", Some("hash-max-ziplist-entries"), "128", INT),
    p("hash-max-listpack-value", Some("hash-max-ziplist-value"), "64", INT),
    p("zset-max-listpack-entries", Some("zset-max-ziplist-entries"), "128", INT),
    p("zset-max-listpack-value", Some("zset-max-ziplist-value"), "64", INT),
    p("set-max-intset-entries", None, "512", INT),
    p("set-max-listpack-entries", None, "128", INT),
    p("set-max-listpack-value", None, "64", INT),
    p("list-max-listpack-size", Some("list-max-ziplist-size"), "-2", Kind::Int { min: i32::MIN as i64, max: i32::MAX as i64 }),
    p("list-compress-depth", None, "0", INT),
    // stream-node-max-bytes/-entries are the stripe's state (a log entry), not here.
    p("hll-sparse-max-bytes", None, "3000", Kind::Bytes),
    // Redis replication, persistence and housekeeping: Tandem's own mechanisms differ.
    p("repl-ping-replica-period", Some("repl-ping-slave-period"), "10", Kind::Int { min: 1, max: i64::MAX }),
    p("repl-timeout", None, "60", Kind::Int { min: 1, max: i64::MAX }),
    p("repl-backlog-size", None, "1048576", Kind::Bytes),
    p("repl-diskless-sync", None, "yes", Kind::Bool),
    p("replica-serve-stale-data", Some("slave-serve-stale-data"), "yes", Kind::Bool),
    p("replica-read-only", Some("slave-read-only"), "yes", Kind::Bool),
    p("replica-lazy-flush", Some("slave-lazy-flush"), "no", Kind::Bool),
    p("min-replicas-to-write", Some("min-slaves-to-write"), "0", INT),
    p("min-replicas-max-lag", Some("min-slaves-max-lag"), "10", INT),
    p("masterauth", None, "", Kind::Text),
    p("lazyfree-lazy-eviction", None, "no", Kind::Bool),
    p("lazyfree-lazy-expire", None, "no", Kind::Bool),
    p("lazyfree-lazy-server-del", None, "no", Kind::Bool),
    p("lazyfree-lazy-user-del", None, "no", Kind::Bool),
    p("lazyfree-lazy-user-flush", None, "no", Kind::Bool),
    p("activedefrag", None, "no", Kind::Bool),
    p("active-expire-effort", None, "1", Kind::Int { min: 1, max: 10 }),
    p("maxmemory-eviction-tenacity", None, "10", Kind::Int { min: 0, max: 100 }),
    p("maxmemory-clients", None, "0", Kind::BytesOrPercent),
    p("client-query-buffer-limit", None, "1073741824", Kind::Bytes),
    p("client-output-buffer-limit", None, "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60", Kind::Text),
    p("tracking-table-max-keys", None, "1000000", INT),
    p("slowlog-log-slower-than", None, "10000", Kind::Int { min: -1, max: i64::MAX }),
    p("slowlog-max-len", None, "128", INT),
    p("latency-monitor-threshold", None, "0", INT),
    p("latency-tracking", None, "yes", Kind::Bool),
    p("latency-tracking-info-percentiles", None, "50 99 99.9", Kind::Percentiles),
    p("loglevel", None, "notice", Kind::Enum(&["debug", "verbose", "notice", "warning"])),
    p("sanitize-dump-payload", None, "no", Kind::Enum(&["no", "yes", "clients"])),
    hidden("rdb-key-save-delay", "0", Kind::Int { min: i64::MIN, max: i64::MAX }),
    hidden("key-load-delay", "0", Kind::Int { min: i64::MIN, max: i64::MAX }),
    // Redis's RDB schedule. A restartable Tandem server writes every write to its log
    // before acknowledging it, a schedule of snapshots asks for less than that; a
    // server that is not restartable keeps data on its mirrors, not on disk. So the
    // schedule is checked and reported and steers nothing (docs/clients.md).
    p("save", None, "", Kind::SaveSchedule),
    // A stripe's members are chosen by its configuration and Raft, not by REPLICAOF.
    p("replicaof", Some("slaveof"), "", Kind::Immutable),
    // While the last snapshot failed, the active refuses clients' writes (Redis's
    // meaning for its RDB; here the log still holds every write, but could only grow).
    p("stop-writes-on-bgsave-error", None, "yes", Kind::Bool),
    p("dbfilename", None, "dump.rdb", Kind::Text),
    p("appendfsync", None, "everysec", Kind::Enum(&["always", "everysec", "no"])),
    p("aof-use-rdb-preamble", None, "yes", Kind::Bool),
    p("shutdown-on-sigterm", None, "default", Kind::Text),
    p("shutdown-on-sigint", None, "default", Kind::Text),
    p("proc-title-template", None, "{title} {listen-addr} {server-mode}", Kind::Text),
    p("daemonize", None, "no", Kind::Immutable),
    p("protected-mode", None, "yes", Kind::Bool),
    // TLS on this server's tls-port (and tls-cluster's cluster port): set from the
    // config file's `[cluster]` tls-* at start; CONFIG SET reloads the certificates
    // (`server::tls_params`). Per server, as Redis: each host has its own files.
    p("tls-cert-file", None, "", Kind::Text),
    p("tls-key-file", None, "", Kind::Text),
    p("tls-ca-cert-file", None, "", Kind::Text),
    p("tls-auth-clients", None, "yes", Kind::Enum(&["no", "yes", "optional"])),
];

/// The current values, by canonical name.
#[derive(Debug)]
pub struct Params {
    values: HashMap<&'static str, String>,
}

impl Default for Params {
    fn default() -> Self {
        Params { values: PARAMS.iter().map(|p| (p.name, p.default.to_string())).collect() }
    }
}

fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name.eq_ignore_ascii_case(name) || p.alias.is_some_and(|a| a.eq_ignore_ascii_case(name)))
}

/// Redis's CONFIG SET error for a bad value.
fn invalid(name: &str, why: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
}

/// Checks `value` against `kind`; the text CONFIG GET shows afterwards.
fn normalise(name: &str, kind: Kind, value: &str) -> Result<String, String> {
    match kind {
        Kind::Int { min, max } => {
            let n: i64 = value.parse().map_err(|_| invalid(name, "argument couldn't be parsed into an integer"))?;
            if !(min..=max).contains(&n) {
                return Err(invalid(name, &format!("argument must be between {min} and {max} inclusive")));
            }
            Ok(n.to_string())
        }
        Kind::Bytes => {
            crate::config::parse_size(value).map(|n| n.to_string()).map_err(|_| invalid(name, "argument must be a memory value"))
        }
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            v @ ("yes" | "no") => Ok(v.to_string()),
            _ => Err(invalid(name, "argument must be 'yes' or 'no'")),
        },
        Kind::Enum(choices) => choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(value))
            .map(|c| c.to_string())
            .ok_or_else(|| invalid(name, &format!("argument(s) must be one of the following: {}", choices.join(", ")))),
        Kind::Percentiles => {
            let parsed: Option<Vec<String>> = value
                .split_ascii_whitespace()
                .map(|v| v.parse::<f64>().ok().filter(|x| (0.0..=100.0).contains(x)).map(format_double))
                .collect();
            parsed
                .map(|v| v.join(" "))
                .ok_or_else(|| invalid(name, "latency-tracking-info-percentiles: percentiles must be between 0 and 100"))
        }
        Kind::BytesOrPercent => match value.strip_suffix('%') {
            Some(percent) => match percent.parse::<i64>() {
                Ok(n) if n > 100 => Err(invalid(name, "percentage argument must be less or equal to 100")),
                Ok(n) if n >= 0 => Ok(format!("{n}%")),
                _ => Err(invalid(name, "argument must be a memory or percent value")),
            },
            None => crate::config::parse_size(value)
                .map(|n| n.to_string())
                .map_err(|_| invalid(name, "argument must be a memory or percent value")),
        },
        Kind::SaveSchedule => {
            let numbers: Option<Vec<u64>> = value.split_ascii_whitespace().map(|v| v.parse().ok()).collect();
            match numbers {
                Some(n) if n.len().is_multiple_of(2) => Ok(n.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")),
                _ => Err(invalid(name, "Invalid save parameters")),
            }
        }
        Kind::Text => Ok(value.to_string()),
        Kind::Immutable => Err(invalid(name, "can't set immutable config")),
    }
}

impl Params {
    /// Every parameter with its value, under its name and its alias (as Redis lists both).
    pub fn all(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(PARAMS.len() * 2);
        for param in PARAMS {
            let value = self.values.get(param.name).cloned().unwrap_or_default();
            if let Some(alias) = param.alias {
                out.push((alias, value.clone()));
            }
            out.push((param.name, value));
        }
        out
    }

    /// Whether `name` (or its alias) is a hidden parameter.
    pub fn is_hidden(name: &str) -> bool {
        find(name).is_some_and(|p| p.hidden)
    }

    /// The canonical name of a parameter here, from its name or alias.
    pub fn canonical(name: &str) -> Option<&'static str> {
        find(name).map(|p| p.name)
    }

    /// Sets one parameter: `None` if it is not one of these, else Redis's outcome.
    pub fn set(&mut self, name: &str, value: &str) -> Option<Result<(), String>> {
        let param = find(name)?;
        Some(normalise(name, param.kind, value).map(|shown| {
            self.values.insert(param.name, shown);
        }))
    }

    /// `acllog-max-len`: how many entries ACL LOG keeps.
    pub fn acllog_max_len(&self) -> usize {
        usize::try_from(self.number("acllog-max-len")).unwrap_or(usize::MAX)
    }

    /// The value of a parameter, by its canonical name.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn number(&self, name: &str) -> u64 {
        self.values.get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    }

    /// What the store's reads need: the encoding thresholds (the LRU/LFU flags are the
    /// eviction policy's, filled in by the caller).
    pub fn local(&self) -> LocalSettings {
        LocalSettings {
            hash_listpack_entries: self.number("hash-max-listpack-entries"),
            hash_listpack_value_bytes: self.number("hash-max-listpack-value"),
            zset_listpack_entries: self.number("zset-max-listpack-entries"),
            zset_listpack_value_bytes: self.number("zset-max-listpack-value"),
            set_intset_entries: self.number("set-max-intset-entries"),
            ..LocalSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_store_defaults() {
        assert_eq!(Params::default().local(), LocalSettings::default());
    }

    #[test]
    fn an_alias_sets_the_same_parameter_and_both_names_report_it() {
        let mut params = Params::default();
        assert_eq!(params.set("zset-max-ziplist-entries", "0"), Some(Ok(())));
        assert_eq!(params.local().zset_listpack_entries, 0);
        let all = params.all();
        assert!(all.contains(&("zset-max-ziplist-entries", "0".to_string())));
        assert!(all.contains(&("zset-max-listpack-entries", "0".to_string())));
    }

    #[test]
    fn values_are_checked_with_redis_errors() {
        let mut params = Params::default();
        assert_eq!(params.set("no-such", "1"), None);
        let err = |r: Option<Result<(), String>>| r.and_then(|r| r.err()).unwrap_or_default();
        assert!(err(params.set("set-max-intset-entries", "x")).ends_with("argument couldn't be parsed into an integer"));
        assert!(err(params.set("list-compress-depth", "-1")).contains("argument must be between 0 and"));
        assert!(err(params.set("lazyfree-lazy-expire", "maybe")).ends_with("argument must be 'yes' or 'no'"));
        assert!(err(params.set("daemonize", "yes")).ends_with("can't set immutable config"));
        assert_eq!(params.set("hll-sparse-max-bytes", "3kb"), Some(Ok(())));
        assert!(params.all().contains(&("hll-sparse-max-bytes", "3072".to_string())));
        assert_eq!(params.set("latency-tracking-info-percentiles", "50.0 99 99.90"), Some(Ok(())));
        assert!(params.all().contains(&("latency-tracking-info-percentiles", "50 99 99.9".to_string())));
    }
}
