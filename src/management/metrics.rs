//! The metrics `/metrics` shows (Prometheus's text format, through the Prometheus
//! project's own `prometheus-client`): counters and histograms that the request path,
//! the log writer, the group port and the Raft glue update as things happen, and
//! gauges read from the live server at each scrape.
//!
//! One registry per process ([`global`]), as Prometheus clients do: the hooks sit in
//! the request path, the log writer thread and the group port, which share nothing
//! else, and a process is one server. The hooks are few and cheap: one call per batch
//! of commands (consecutive commands of one name are counted together), one per
//! fsync, one per group-port frame. This module knows nothing of who calls it;
//! [`super::state`] supplies the live values at scrape time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::commands::CommandSpec;
use crate::protocol::reply::Reply;
use crate::server::request::Request;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub command: &'static str,
    /// The error's code, as Redis's `errorstat_*`: `ERR`, `WRONGTYPE`, `OOM`, `TRYAGAIN`…
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FamilyLabels {
    /// The command family (`string`, `hash`, `list`…), as COMMAND DOCS names it.
    pub family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SnapshotLabels {
    /// `built` (this server wrote one), `sent` (to a member catching up) or `received`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `in` or `out`.
    pub direction: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 50 µs to about 26 s: a pipelined batch on the active, a
/// commit across a stripe, a write waiting out an election.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Buckets from 10 ms to about 5 minutes: snapshots and catch-ups.
fn long_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

/// Error codes longer than this, or not all capitals, are counted as `ERR`: the
/// label's values stay few whatever a reply says.
const ERROR_CODE_BYTES_MAX: usize = 16;

/// Everything counted as it happens, in one process-wide registry.
pub struct Metrics {
    registry: Registry,
    commands: Family<CommandLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    command_seconds: HistogramFamily<FamilyLabels>,
    forwarded: Counter,
    fsync_seconds: Histogram,
    elections: Counter,
    failovers: Counter,
    snapshots: Family<SnapshotLabels, Counter>,
    snapshot_bytes: Family<SnapshotLabels, Counter>,
    snapshot_seconds: HistogramFamily<SnapshotLabels>,
    catch_up_seconds: Histogram,
    group_bytes: Family<DirectionLabels, Counter>,
    group_frames: Family<DirectionLabels, Counter>,
    procedures: Family<CommandLabels, Counter>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            commands: Family::default(),
            errors: Family::default(),
            command_seconds: Family::new_with_constructor(latency_histogram),
            forwarded: Counter::default(),
            fsync_seconds: latency_histogram(),
            elections: Counter::default(),
            failovers: Counter::default(),
            snapshots: Family::default(),
            snapshot_bytes: Family::default(),
            snapshot_seconds: Family::new_with_constructor(long_histogram),
            catch_up_seconds: long_histogram(),
            group_bytes: Family::default(),
            group_frames: Family::default(),
            procedures: Family::default(),
        };
        let r = &mut m.registry;
        r.register("tandem_commands", "Commands run, by command", m.commands.clone());
        r.register("tandem_command_errors", "Commands answered with an error, by command and error code", m.errors.clone());
        r.register_with_unit(
            "tandem_command_duration",
            "Time to run a batch of commands (parse to reply, commit included), by command family",
            Unit::Seconds,
            m.command_seconds.clone(),
        );
        r.register("tandem_forwarded_commands", "Commands a mirror forwarded to its stripe's active", m.forwarded.clone());
        r.register_with_unit(
            "tandem_fsync_duration",
            "Time of one log fdatasync (one group commit)",
            Unit::Seconds,
            m.fsync_seconds.clone(),
        );
        r.register("tandem_elections", "New terms this server has seen (elections)", m.elections.clone());
        r.register("tandem_failovers", "Times this server saw its stripe's active change to another member", m.failovers.clone());
        r.register("tandem_snapshots", "Snapshots built, sent and received", m.snapshots.clone());
        r.register_with_unit("tandem_snapshot", "Bytes of snapshots built, sent and received", Unit::Bytes, m.snapshot_bytes.clone());
        r.register_with_unit(
            "tandem_snapshot_duration",
            "Time to build, send or receive a snapshot",
            Unit::Seconds,
            m.snapshot_seconds.clone(),
        );
        r.register_with_unit(
            "tandem_catch_up_duration",
            "Time this server spent INITIALIZING before it was PASSIVE-STANDBY",
            Unit::Seconds,
            m.catch_up_seconds.clone(),
        );
        r.register_with_unit("tandem_group", "Group-port traffic (Raft and management), by direction", Unit::Bytes, m.group_bytes.clone());
        r.register("tandem_group_frames", "Group-port frames, by direction", m.group_frames.clone());
        r.register("tandem_management_procedures", "Procedures asked through the management API, by procedure", m.procedures.clone());
        m
    }

    /// One run of store commands and their replies, and how long the run took.
    pub fn record_run(&self, run: &[Request], replies: &[Reply], elapsed: Duration) {
        let mut i = 0;
        while let Some(Request { spec, .. }) = run.get(i) {
            // Consecutive commands of one name (a pipeline of SETs) are counted at once.
            let same = run[i..].iter().take_while(|r| std::ptr::eq(r.spec, *spec)).count();
            self.with_command_counter(spec, |c| {
                c.inc_by(same as u64);
            });
            i += same;
        }
        for (request, reply) in run.iter().zip(replies) {
            if let Reply::Error(text) = reply {
                self.errors.get_or_create(&ErrorLabels { command: request.spec.name, error: error_code(text) }).inc();
            }
        }
        if let Some(first) = run.first() {
            self.with_family_histogram(first.spec.group, |h| h.observe(elapsed.as_secs_f64()));
        }
    }

    /// One command served outside a store batch (connection commands, blocking ones).
    pub fn record_command(&self, spec: &'static CommandSpec) {
        self.with_command_counter(spec, |c| {
            c.inc();
        });
    }

    /// Runs `f` on `spec`'s counter in `commands`. The counter is looked up in the
    /// family (a lock, and SipHash of the label) once per thread and command; after
    /// that in this thread's own table, keyed by the spec's address: every request
    /// comes here.
    fn with_command_counter(&self, spec: &'static CommandSpec, f: impl FnOnce(&Counter)) {
        thread_local! {
            static COUNTERS: RefCell<HashMap<(usize, usize), Counter, foldhash::fast::RandomState>> = Default::default();
        }
        COUNTERS.with_borrow_mut(|counters| {
            // This registry's (a test may make another) and the spec's addresses.
            let key = (self as *const Metrics as usize, spec as *const CommandSpec as usize);
            f(counters.entry(key).or_insert_with(|| self.commands.get_or_create(&CommandLabels { command: spec.name }).clone()))
        })
    }

    /// Runs `f` on the latency histogram of command family `group`, found as
    /// [`Self::with_command_counter`] finds a counter (keyed by the registry, and by the
    /// family's static name: its address and length).
    fn with_family_histogram(&self, group: &'static str, f: impl FnOnce(&Histogram)) {
        thread_local! {
            static HISTOGRAMS: RefCell<HashMap<(usize, usize, usize), Histogram, foldhash::fast::RandomState>> = Default::default();
        }
        HISTOGRAMS.with_borrow_mut(|histograms| {
            let key = (self as *const Metrics as usize, group.as_ptr() as usize, group.len());
            f(histograms.entry(key).or_insert_with(|| self.command_seconds.get_or_create(&FamilyLabels { family: group }).clone()))
        })
    }

    pub fn record_forwarded(&self, commands: usize) {
        self.forwarded.inc_by(commands as u64);
    }

    pub fn record_fsync(&self, elapsed: Duration) {
        self.fsync_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn record_election(&self) {
        self.elections.inc();
    }

    pub fn record_failover(&self) {
        self.failovers.inc();
    }

    /// A snapshot `kind` ("built", "sent", "received") of `bytes`, taking `elapsed`.
    pub fn record_snapshot(&self, kind: &'static str, bytes: u64, elapsed: Duration) {
        let labels = SnapshotLabels { kind };
        self.snapshots.get_or_create(&labels).inc();
        self.snapshot_bytes.get_or_create(&labels).inc_by(bytes);
        self.snapshot_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn record_catch_up(&self, elapsed: Duration) {
        self.catch_up_seconds.observe(elapsed.as_secs_f64());
    }

    /// One group-port frame of `bytes` (its length prefix included), `in` or `out`.
    pub fn record_group_frame(&self, direction: &'static str, bytes: usize) {
        let labels = DirectionLabels { direction };
        self.group_bytes.get_or_create(&labels).inc_by(bytes as u64);
        self.group_frames.get_or_create(&labels).inc();
    }

    pub fn record_procedure(&self, procedure: &'static str) {
        self.procedures.get_or_create(&CommandLabels { command: procedure }).inc();
    }

    /// The counters and histograms above, then `live` (gauges read at scrape time),
    /// in Prometheus's text format.
    pub fn render(&self, live: &Registry) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, live);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// Prometheus's classic text format (0.0.4) from OpenMetrics text: what Prometheus
/// scrapers that do not ask for OpenMetrics, and `promtool check metrics`, read.
/// Counters are announced under their sample name (`x_total`), and the OpenMetrics-only
/// `# UNIT` and `# EOF` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The code an error reply starts with (`WRONGTYPE Operation against…` → `WRONGTYPE`).
pub fn error_code(text: &str) -> String {
    let code = text.split(' ').next().unwrap_or("");
    if !code.is_empty() && code.len() <= ERROR_CODE_BYTES_MAX && code.bytes().all(|b| b.is_ascii_uppercase()) {
        code.to_string()
    } else {
        "ERR".to_string()
    }
}

/// Gauges read from the live server at one scrape.
#[derive(Default)]
pub struct Live {
    pub registry: Registry,
}

impl Live {
    /// A gauge `name` (its unit already in the name) with `value`.
    pub fn gauge(&mut self, name: &str, help: &str, value: i64) {
        let gauge: Gauge = Gauge::default();
        gauge.set(value);
        self.registry.register(name, help, gauge);
    }

    /// A gauge per label value: `labels` gives each one's (label value, value).
    pub fn gauges<L>(&mut self, name: &str, help: &str, labels: Vec<(L, i64)>)
    where
        L: Clone + std::fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
    {
        let family: Family<L, Gauge> = Family::default();
        for (label, value) in labels {
            family.get_or_create(&label).set(value);
        }
        self.registry.register(name, help, family);
    }

    /// A counter kept elsewhere (an atomic of the server's), shown at its current value.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        let counter: Counter = Counter::default();
        counter.inc_by(value);
        self.registry.register(name, help, counter);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabels {
    pub member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub version: &'static str,
    pub server: String,
    pub stripe: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_the_first_capital_word_or_err() {
        assert_eq!(error_code("WRONGTYPE Operation against a key holding the wrong kind of value"), "WRONGTYPE");
        assert_eq!(error_code("TRYAGAIN the write was not confirmed"), "TRYAGAIN");
        assert_eq!(error_code("weird lowercase"), "ERR");
        assert_eq!(error_code("AVERYLONGCODEOVERSIXTEEN x"), "ERR");
        assert_eq!(error_code(""), "ERR");
    }

    #[test]
    fn runs_count_each_command_and_error_once() {
        let parse = |args: &[&str]| {
            let args = args.iter().map(|a| bytes::Bytes::copy_from_slice(a.as_bytes())).collect();
            Request::parse(args).map_err(|(reply, _)| reply).unwrap()
        };
        let m = Metrics::new();
        let run = vec![parse(&["SET", "a", "1"]), parse(&["SET", "b", "2"]), parse(&["GET", "a"])];
        let replies = vec![Reply::Status("OK".into()), Reply::err("OOM command not allowed"), Reply::Nil];
        m.record_run(&run, &replies, Duration::from_millis(2));
        assert_eq!(m.commands.get_or_create(&CommandLabels { command: "set" }).get(), 2);
        assert_eq!(m.commands.get_or_create(&CommandLabels { command: "get" }).get(), 1);
        assert_eq!(m.errors.get_or_create(&ErrorLabels { command: "set", error: "OOM".into() }).get(), 1);
        let text = m.render(&Live::default().registry);
        assert!(text.contains("tandem_commands_total{command=\"set\"} 2"), "{text}");
        assert!(text.contains("tandem_command_duration_seconds_count{family=\"string\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let classic = to_prometheus_text(&text);
        assert!(classic.contains("# TYPE tandem_commands_total counter\n"), "{classic}");
        assert!(classic.contains("# HELP tandem_commands_total Commands run"), "{classic}");
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"), "{classic}");
    }
}
