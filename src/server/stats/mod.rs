//! What this server counts about the commands its clients run, as Redis reports
//! it: per command (`INFO commandstats`: calls, time, rejected and failed calls;
//! `INFO latencystats` and `LATENCY HISTOGRAM`: a latency histogram), per error code
//! (`INFO errorstats`), the slow log (`slowlog`) and the latency monitor's events
//! (`latency`). `CONFIG RESETSTAT` clears the counters.
//!
//! Counted where the server serves a command (its own commands, a local run, an
//! EXEC, a rejection at admission); commands forwarded to another stripe's active
//! are counted there. It knows nothing of sockets or the store.

pub mod latency;
pub mod slowlog;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

use crate::protocol::reply::Reply;
use latency::Latency;
use slowlog::SlowLog;

/// Distinct error codes kept before `errorstats` stops taking new ones (Redis's
/// `ERROR_STATS_NUMBER`): a client sending made-up codes through scripts must not
/// grow this without bound.
pub const ERROR_CODES_MAX: usize = 128;

/// Histogram buckets: bucket `i` holds durations below `2^i` µs (and at least
/// `2^(i-1)`); 40 buckets reach 2^39 µs, about six days.
const BUCKETS: usize = 40;

/// One command's counters (`cmdstat_<name>`).
#[derive(Clone, Default, Debug, PartialEq)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
    /// Latency of each call, by power-of-two bucket of microseconds.
    histogram: Vec<u64>,
}

impl CommandStat {
    /// Adds `other`'s counts to these.
    fn add(&mut self, other: &CommandStat) {
        self.calls += other.calls;
        self.usec += other.usec;
        self.rejected_calls += other.rejected_calls;
        self.failed_calls += other.failed_calls;
        if self.histogram.len() < other.histogram.len() {
            self.histogram.resize(other.histogram.len(), 0);
        }
        for (mine, theirs) in self.histogram.iter_mut().zip(&other.histogram) {
            *mine += theirs;
        }
    }

    fn observe(&mut self, usec: u64) {
        if self.histogram.is_empty() {
            self.histogram = vec![0; BUCKETS];
        }
        let bucket = (64 - usec.leading_zeros() as usize).min(BUCKETS - 1);
        if let Some(slot) = self.histogram.get_mut(bucket) {
            *slot += 1;
        }
    }

    /// Calls whose latency was recorded (a rejected call has none).
    fn observed(&self) -> u64 {
        self.histogram.iter().sum()
    }

    /// The upper bound in µs of the bucket holding the `pct` percentile.
    fn percentile_usec(&self, pct: f64) -> u64 {
        let total = self.observed();
        let wanted = ((pct / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.histogram.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return 1u64 << i;
            }
        }
        1u64 << (BUCKETS - 1)
    }

    /// LATENCY HISTOGRAM's entry: `calls` and the cumulative count at each bucket's
    /// upper bound, only where it grows.
    fn histogram_reply(&self) -> Reply {
        let mut cumulative = 0;
        let mut buckets = Vec::new();
        for (i, count) in self.histogram.iter().enumerate() {
            if *count > 0 {
                cumulative += count;
                buckets.push((Reply::Int(1i64 << i), Reply::Int(cumulative as i64)));
            }
        }
        Reply::Map(vec![(Reply::bulk(b"calls"), Reply::Int(self.calls as i64)), (Reply::bulk(b"histogram_usec"), Reply::Map(buckets))])
    }
}

#[derive(Default)]
struct Counters {
    /// By the address of the command's static name (every request counts here,
    /// under the lock: no hash of the text, no comparison of it); merged and sorted
    /// by name only when reported ([`Counters::sorted`]).
    commands: HashMap<StaticName, CommandStat, foldhash::fast::FixedState>,
    errors: BTreeMap<String, u64>,
    /// Error replies of every code, also those past [`ERROR_CODES_MAX`].
    error_replies: u64,
}

/// A command's name, told apart by where it is, not by its text: one name seen at two
/// addresses is two keys, merged when reported.
#[derive(Clone, Copy)]
struct StaticName(&'static str);

impl PartialEq for StaticName {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for StaticName {}

impl std::hash::Hash for StaticName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.as_ptr() as u64 ^ (self.0.len() as u64).rotate_left(48));
    }
}

impl Counters {
    fn command(&mut self, name: &'static str) -> &mut CommandStat {
        self.commands.entry(StaticName(name)).or_default()
    }

    /// The commands' statistics by name, in the order of their names (INFO, LATENCY
    /// HISTOGRAM).
    fn sorted(&self) -> Vec<(&'static str, CommandStat)> {
        let mut by_name: BTreeMap<&'static str, CommandStat> = BTreeMap::new();
        for (name, s) in &self.commands {
            by_name.entry(name.0).or_default().add(s);
        }
        by_name.into_iter().collect()
    }
}

/// The server's command statistics, slow log and latency monitor.
pub struct Stats {
    counters: Mutex<Counters>,
    slowlog: Mutex<SlowLog>,
    latency: Mutex<Latency>,
    /// `slowlog-log-slower-than` in µs: -1 logs nothing, 0 everything.
    pub slowlog_slower_than_us: AtomicI64,
    /// `slowlog-max-len`.
    pub slowlog_len_max: AtomicUsize,
    /// `latency-monitor-threshold` in ms: 0 turns the monitor off.
    pub latency_threshold_ms: AtomicU64,
    /// `latency-tracking`: per-command histograms on or off.
    pub latency_tracking: AtomicBool,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Mutex::default(),
            slowlog: Mutex::default(),
            latency: Mutex::default(),
            slowlog_slower_than_us: AtomicI64::new(10_000),
            slowlog_len_max: AtomicUsize::new(128),
            latency_threshold_ms: AtomicU64::new(0),
            latency_tracking: AtomicBool::new(true),
        }
    }
}

/// One served command, as the statistics see it.
#[derive(Clone, Copy)]
pub struct Served<'a> {
    /// The name stats use: the command's, or `container|sub` (`config|get`).
    pub name: &'static str,
    pub args: &'a [Bytes],
    pub elapsed: Duration,
    /// The reply was an error.
    pub failed: bool,
    /// FAST commands are the latency monitor's `fast-command` event.
    pub fast: bool,
    /// EXEC is not logged itself: the commands it ran are.
    pub skip_slowlog: bool,
}

/// Who ran it, for the slow log (the name is read only for an entry logged).
pub struct Caller<'a> {
    pub addr: &'a str,
    pub name: &'a Mutex<String>,
}

impl Stats {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn slowlog(&self) -> std::sync::MutexGuard<'_, SlowLog> {
        self.slowlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn latency(&self) -> std::sync::MutexGuard<'_, Latency> {
        self.latency.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one served command: its counters, the slow log, the latency monitor.
    pub fn served(&self, served: &Served<'_>, caller: &Caller<'_>, unix_secs: u64) {
        self.served_all(std::iter::once(*served), caller, || unix_secs);
    }

    /// Records a run of served commands (a pipeline's batch) under one lock of the
    /// counters; consecutive commands of one name share one look-up of their counter.
    /// An iterator, not a slice: every request comes here, and a run of one has
    /// nothing to gather first. `unix_secs` is asked only for what is logged (the
    /// clock is not read for every request).
    pub fn served_all<'a>(&self, served: impl Iterator<Item = Served<'a>> + Clone, caller: &Caller<'_>, unix_secs: impl Fn() -> u64) {
        let usec = |s: &Served<'_>| s.elapsed.as_micros().min(u64::MAX as u128) as u64;
        {
            let tracking = self.latency_tracking.load(Ordering::Relaxed);
            let mut counters = self.counters();
            let mut rest = served.clone().peekable();
            while let Some(first) = rest.next() {
                let stat = counters.command(first.name);
                let mut count = |s: &Served<'_>| {
                    let us = usec(s);
                    stat.calls += 1;
                    stat.usec += us;
                    stat.failed_calls += u64::from(s.failed);
                    if tracking {
                        stat.observe(us);
                    }
                };
                count(&first);
                while let Some(s) = rest.next_if(|s| std::ptr::eq(s.name, first.name)) {
                    count(&s);
                }
            }
        }
        let slower_than = self.slowlog_slower_than_us.load(Ordering::Relaxed);
        let latency_on = self.latency_threshold_ms.load(Ordering::Relaxed) > 0;
        for s in served {
            let us = usec(&s);
            if !s.skip_slowlog && slower_than >= 0 && us >= slower_than as u64 {
                let max = self.slowlog_len_max.load(Ordering::Relaxed);
                // The clock is read before the slow log's lock is taken.
                let at = unix_secs();
                self.slowlog().push(s.args, us, at, caller, max);
            }
            if latency_on {
                let event = if s.fast { "fast-command" } else { "command" };
                self.latency_event_at(event, s.elapsed, &unix_secs);
            }
        }
    }

    /// The slow log alone (a blocking command, counted when it started), if `elapsed`
    /// reaches `slowlog-log-slower-than`.
    pub fn slowlog_only(&self, args: &[Bytes], elapsed: Duration, caller: &Caller<'_>, unix_secs: u64) {
        let slower_than = self.slowlog_slower_than_us.load(Ordering::Relaxed);
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        if slower_than >= 0 && us >= slower_than as u64 {
            let max = self.slowlog_len_max.load(Ordering::Relaxed);
            self.slowlog().push(args, us, unix_secs, caller, max);
        }
    }

    /// An event of the latency monitor other than a command's (`expire-cycle`):
    /// recorded when it took at least `latency-monitor-threshold` ms.
    pub fn latency_event(&self, event: &'static str, elapsed: Duration, unix_secs: u64) {
        self.latency_event_at(event, elapsed, &|| unix_secs);
    }

    /// [`Stats::latency_event`], reading the clock only for an event it records.
    fn latency_event_at(&self, event: &'static str, elapsed: Duration, unix_secs: &dyn Fn() -> u64) {
        let threshold_ms = self.latency_threshold_ms.load(Ordering::Relaxed);
        let ms = elapsed.as_millis().min(u64::MAX as u128) as u64;
        if threshold_ms > 0 && ms >= threshold_ms {
            let at = unix_secs();
            self.latency().add(event, ms, at);
        }
    }

    /// Commands scripts called (name, calls, failed calls): counted as calls of no
    /// measured time, as Redis counts a script's commands in commandstats.
    pub fn script_calls(&self, counts: &[(&'static str, crate::scripting::CallCount)]) {
        let mut counters = self.counters();
        for (name, count) in counts {
            let stat = counters.command(name);
            stat.calls += count.calls;
            stat.failed_calls += count.failed;
            stat.rejected_calls += count.rejected;
        }
    }

    /// A call counted when it started (a blocking command) that ended in an error.
    pub fn failed_later(&self, name: &'static str) {
        self.counters().command(name).failed_calls += 1;
    }

    /// A call refused before it ran (arity, authentication, memory inside MULTI…).
    pub fn rejected(&self, name: &'static str) {
        self.counters().command(name).rejected_calls += 1;
    }

    /// An error reply sent to a client, by its code (the first word of its text).
    pub fn error_reply(&self, text: &str) {
        let code = crate::protocol::reply::error_code(text);
        let mut counters = self.counters();
        counters.error_replies += 1;
        if let Some(count) = counters.errors.get_mut(code) {
            *count += 1;
        } else if counters.errors.len() < ERROR_CODES_MAX {
            counters.errors.insert(code.to_string(), 1);
        }
    }

    /// Every error reply counted (INFO stats' `total_error_replies`).
    pub fn error_replies(&self) -> u64 {
        self.counters().error_replies
    }

    /// CONFIG RESETSTAT: the counters and histograms (not the slow log or the
    /// latency monitor's events, as in Redis).
    pub fn reset(&self) {
        *self.counters() = Counters::default();
    }

    /// INFO commandstats.
    pub fn commandstats_info(&self) -> String {
        let mut out = String::new();
        for (name, s) in self.counters().sorted() {
            let per_call = if s.calls > 0 { s.usec as f64 / s.calls as f64 } else { 0.0 };
            let _ = write!(
                out,
                "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                s.calls, s.usec, s.rejected_calls, s.failed_calls
            );
        }
        out
    }

    /// INFO errorstats.
    pub fn errorstats_info(&self) -> String {
        let mut out = String::new();
        for (code, count) in &self.counters().errors {
            let _ = write!(out, "errorstat_{code}:count={count}\r\n");
        }
        out
    }

    /// INFO latencystats, at `percentiles` (`latency-tracking-info-percentiles`).
    pub fn latencystats_info(&self, percentiles: &[f64]) -> String {
        let mut out = String::new();
        for (name, s) in self.counters().sorted() {
            if s.observed() == 0 {
                continue;
            }
            let fields: Vec<String> = percentiles
                .iter()
                .map(|p| format!("p{}={:.3}", crate::protocol::reply::format_double(*p), s.percentile_usec(*p) as f64))
                .collect();
            let _ = write!(out, "latency_percentiles_usec_{name}:{}\r\n", fields.join(","));
        }
        out
    }

    /// LATENCY HISTOGRAM [command …]: every command called (none named), or those
    /// named (a container names its subcommands too); unknown names are skipped.
    pub fn histogram_reply(&self, wanted: &[Bytes]) -> Reply {
        let counters = self.counters();
        let chosen = |name: &str| {
            wanted.is_empty()
                || wanted.iter().any(|w| {
                    let w = String::from_utf8_lossy(w).to_ascii_lowercase();
                    name == w || name.split_once('|').is_some_and(|(container, _)| container == w)
                })
        };
        Reply::Map(
            counters
                .sorted()
                .into_iter()
                .filter(|(name, s)| s.observed() > 0 && chosen(name))
                .map(|(name, s)| (Reply::bulk_str(name), s.histogram_reply()))
                .collect(),
        )
    }

    #[cfg(test)]
    fn command(&self, name: &str) -> Option<CommandStat> {
        self.counters().sorted().into_iter().find(|(n, _)| *n == name).map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served<'a>(name: &'static str, args: &'a [Bytes], usec: u64, failed: bool) -> Served<'a> {
        Served { name, args, elapsed: Duration::from_micros(usec), failed, fast: true, skip_slowlog: false }
    }

    static NAME: Mutex<String> = Mutex::new(String::new());

    fn caller() -> Caller<'static> {
        Caller { addr: "127.0.0.1:1", name: &NAME }
    }

    #[test]
    fn commandstats_count_calls_time_failures_and_rejections_in_redis_format() {
        let stats = Stats::default();
        stats.served(&served("set", &[], 10, false), &caller(), 1);
        stats.served(&served("set", &[], 20, true), &caller(), 1);
        stats.rejected("set");
        stats.rejected("config|get");
        stats.served(&served("brpop", &[], 0, false), &caller(), 1);
        stats.failed_later("brpop");
        let info = stats.commandstats_info();
        assert_eq!(
            info,
            "cmdstat_brpop:calls=1,usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls=1\r\n\
             cmdstat_config|get:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0\r\n\
             cmdstat_set:calls=2,usec=30,usec_per_call=15.00,rejected_calls=1,failed_calls=1\r\n"
        );
        stats.reset();
        assert_eq!(stats.commandstats_info(), "");
    }

    #[test]
    fn one_name_counted_from_two_places_is_one_command_in_every_report() {
        // Counted by the name's address: the same text at another address (a name
        // built at run time, or not merged by the linker) must still add up.
        let stats = Stats::default();
        let elsewhere: &'static str = String::from("get").leak();
        stats.served(&served("get", &[], 4, false), &caller(), 1);
        stats.served(&served(elsewhere, &[], 6, true), &caller(), 1);
        stats.rejected(elsewhere);
        assert_eq!(stats.commandstats_info(), "cmdstat_get:calls=2,usec=10,usec_per_call=5.00,rejected_calls=1,failed_calls=1\r\n");
        assert_eq!(stats.command("get").map(|s| s.observed()), Some(2));
        let Reply::Map(histograms) = stats.histogram_reply(&[]) else { panic!("LATENCY HISTOGRAM is a map") };
        assert_eq!(histograms.len(), 1);
    }

    #[test]
    fn errorstats_count_by_code_and_stop_taking_new_codes_at_the_bound() {
        let stats = Stats::default();
        stats.error_reply("ERR unknown command");
        stats.error_reply("WRONGTYPE Operation against a key holding the wrong kind of value");
        stats.error_reply("ERR syntax error");
        stats.error_reply("");
        assert_eq!(stats.errorstats_info(), "errorstat_ERR:count=3\r\nerrorstat_WRONGTYPE:count=1\r\n");
        for i in 0..ERROR_CODES_MAX * 2 {
            stats.error_reply(&format!("CODE{i} x"));
        }
        assert_eq!(stats.errorstats_info().lines().count(), ERROR_CODES_MAX);
        assert_eq!(stats.error_replies(), 4 + 2 * ERROR_CODES_MAX as u64);
    }

    #[test]
    fn histogram_buckets_are_powers_of_two_and_percentiles_their_bounds() {
        let stats = Stats::default();
        for usec in [0, 1, 3, 3, 1000] {
            stats.served(&served("get", &[], usec, false), &caller(), 1);
        }
        let stat = stats.command("get").unwrap_or_default();
        assert_eq!(stat.observed(), 5);
        assert_eq!(stat.percentile_usec(50.0), 4);
        assert_eq!(stat.percentile_usec(100.0), 1024);
        assert_eq!(stats.latencystats_info(&[50.0, 99.9]), "latency_percentiles_usec_get:p50=4.000,p99.9=1024.000\r\n");
        stats.latency_tracking.store(false, Ordering::Relaxed);
        stats.served(&served("get", &[], 5, false), &caller(), 1);
        assert_eq!(stats.command("get").map(|s| (s.calls, s.observed())), Some((6, 5)));
    }

    #[test]
    fn other_events_reach_the_latency_monitor_by_the_same_threshold() {
        let stats = Stats::default();
        stats.latency_event("expire-cycle", Duration::from_millis(500), 3);
        assert!(stats.latency().is_empty(), "a threshold of 0 turns the monitor off");
        stats.latency_threshold_ms.store(20, Ordering::Relaxed);
        stats.latency_event("expire-cycle", Duration::from_millis(19), 3);
        assert!(stats.latency().is_empty());
        stats.latency_event("expire-cycle", Duration::from_millis(20), 3);
        assert_eq!(stats.latency().history_reply("expire-cycle"), Reply::Array(vec![Reply::Array(vec![Reply::Int(3), Reply::Int(20)])]));
    }

    #[test]
    fn latency_histogram_picks_named_commands_and_a_containers_subcommands() {
        let stats = Stats::default();
        for name in ["set", "client|id", "client|list"] {
            stats.served(&served(name, &[], 5, false), &caller(), 1);
        }
        let names = |reply: Reply| match reply {
            Reply::Map(entries) => entries.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(names(stats.histogram_reply(&[])).len(), 3);
        assert_eq!(names(stats.histogram_reply(&[Bytes::from("CLIENT")])), vec![Reply::bulk(b"client|id"), Reply::bulk(b"client|list")]);
        assert_eq!(names(stats.histogram_reply(&[Bytes::from("blabla"), Bytes::from("set")])), vec![Reply::bulk(b"set")]);
    }

    #[test]
    fn slow_commands_reach_the_slowlog_and_the_latency_monitor_by_threshold() {
        let stats = Stats::default();
        let args = [Bytes::from("ping")];
        stats.slowlog_slower_than_us.store(100, Ordering::Relaxed);
        stats.served(&served("ping", &args, 99, false), &caller(), 1);
        stats.served(&served("ping", &args, 100, false), &caller(), 1);
        assert_eq!(stats.slowlog().len(), 1);
        stats.slowlog_slower_than_us.store(-1, Ordering::Relaxed);
        stats.served(&served("ping", &args, 1_000_000, false), &caller(), 1);
        assert_eq!(stats.slowlog().len(), 1);
        assert!(stats.latency().is_empty());
        stats.latency_threshold_ms.store(200, Ordering::Relaxed);
        stats.served(&served("ping", &args, 199_999, false), &caller(), 1);
        assert!(stats.latency().is_empty());
        stats.served(&Served { fast: false, ..served("ping", &args, 250_000, false) }, &caller(), 7);
        assert_eq!(
            stats.latency().latest_reply(),
            Reply::Array(vec![Reply::Array(vec![Reply::bulk(b"command"), Reply::Int(7), Reply::Int(250), Reply::Int(250)])])
        );
    }
}
