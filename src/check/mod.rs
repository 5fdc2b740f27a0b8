//! The fault harness behind `tandem check`: starts a stripe of real `tandem`
//! processes, runs concurrent clients on it while a nemesis injects faults on a
//! schedule drawn from one seed, heals the stripe, and checks the history.
//!
//! - [`cluster`]: the processes, their config, the relay that partitions them.
//! - [`faults`]: the schedule (seed → faults) and the nemesis that applies it.
//! - [`clients`]: the clients and their operations (registers, counters, lists; keys
//!   with a time to live, transactions, an eviction run's keys), resent like go-redis
//!   does with `retry`.
//! - [`purge`]: the purge trap (a mirror paused through a write burst, the active
//!   killed), which checks by itself that the stripe recovers in time.
//! - [`history`]: what the clients recorded: invoked, ok, fail or unknown, and when.
//! - [`linearizable`]: the Wing–Gong search with memoisation, for registers;
//!   [`registers`] runs it per key, with the "never written" check and shrinking.
//! - [`lists`], [`counters`]: the list-append and counter checks (duplicates
//!   included); [`expiry`]: values that come back and times to live that grow;
//!   [`transactions`]: WATCH/EXEC; [`eviction`]: the eviction run and its check.
//!
//! The run ends with every server's `TANDEM.DIGEST` compared. It knows the servers
//! only through their client port, the `tandem` CLI and the test clock offset file
//! (`TANDEM_TEST_CLOCK_OFFSET_FILE`).

pub mod clients;
pub mod cluster;
pub mod counters;
pub mod eviction;
pub mod expiry;
pub mod faults;
pub mod history;
pub mod linearizable;
pub mod lists;
pub mod mirrors;
pub mod purge;
pub mod registers;
pub mod transactions;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clients::{Client, Extra, Keys, Kind};
use cluster::{Cluster, Spec};
use faults::{Family, Step, Topology};
use history::{secs, Call, Counts, Op, Outcome, FINAL_CLIENT};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `tandem` executable to start servers with.
    pub binary: PathBuf,
    pub seed: u64,
    pub topology: Topology,
    /// How long clients run and faults are injected (healing and checks come after).
    pub duration: Duration,
    pub clients: usize,
    /// Each client stops after this many operations (or at the end of `duration`).
    pub ops_per_client_max: usize,
    /// Faults to inject instead of the seed's schedule.
    pub schedule: Option<Vec<Step>>,
    /// The families of faults the seed's schedule draws from.
    pub families: Vec<Family>,
    /// Workloads besides registers, counters and lists.
    pub extras: Vec<Extra>,
    /// Clients resend commands on the errors go-redis resends on (`clients::GO_REDIS_RETRIED`).
    pub retry: bool,
    /// Clients of mirrors besides `clients` (`clients::Client::on_mirrors`): their
    /// duplicates and unknown outcomes are counted apart ([`mirrors`]).
    pub mirror_clients: usize,
    /// An eviction run with this `maxmemory-policy` (`volatile-ttl`, `volatile-lru`, …):
    /// every server gets a small `data-storage` and the clients the evict workload.
    pub evict: Option<String>,
    /// Wait for the stripe to settle after each fault before the next (false: faults
    /// may compound).
    pub settle: bool,
    /// Passed to the servers as `TANDEM_BREAK_SAFETY` (debug builds of tandem honour
    /// it by breaking a guarantee on purpose, to show the checks catch it).
    pub break_safety: Option<String>,
    /// Keep the cluster's directory (config, data, server logs) when the run finds a
    /// violation; `keep_always`: even when it does not.
    pub keep_on_violation: bool,
    pub keep_always: bool,
    /// Group ports under mutual TLS with the certificates in this directory
    /// ([`Cluster::use_tls`]).
    pub tls_dir: Option<PathBuf>,
}

impl Options {
    pub fn new(binary: impl Into<PathBuf>, seed: u64) -> Options {
        Options {
            binary: binary.into(),
            seed,
            topology: Topology::ThreeServers,
            duration: Duration::from_secs(30),
            clients: 6,
            ops_per_client_max: usize::MAX,
            schedule: None,
            families: vec![Family::Classic],
            extras: Vec::new(),
            retry: false,
            mirror_clients: 0,
            evict: None,
            settle: true,
            break_safety: None,
            keep_on_violation: false,
            keep_always: false,
            tls_dir: None,
        }
    }

    /// The faults this run injects, in order.
    pub fn steps(&self) -> Vec<Step> {
        self.schedule
            .clone()
            .unwrap_or_else(|| faults::schedule_of(self.seed, self.topology, self.duration.as_millis() as u64, &self.families))
    }

    /// The extra workloads the clients run (the evict workload in an eviction run).
    pub fn workloads(&self) -> Vec<Extra> {
        let mut extras = self.extras.clone();
        if self.evict.is_some() && !extras.contains(&Extra::Evict) {
            extras.push(Extra::Evict);
        }
        extras
    }

    /// True if some step of the schedule sets clocks (the servers then read their
    /// clock offset files).
    fn steps_clocks(&self) -> bool {
        self.steps().iter().any(|s| matches!(s.fault, faults::Fault::Clock { .. }))
    }

    /// The keys of the run.
    fn keys(&self) -> Keys {
        let mut keys = Keys::new(&self.workloads());
        if self.steps().iter().any(|s| matches!(s.fault, faults::Fault::PurgeTrap { .. })) {
            keys.counters.push(purge::BURST_COUNTER.to_string());
        }
        keys.own_counters.extend((0..self.mirror_clients).map(|i| clients::mirror_counter(self.clients + i)));
        keys
    }

    /// One line on what runs besides the defaults.
    fn modes(&self) -> String {
        let mut modes = Vec::new();
        if self.families.is_empty() {
            modes.push("no faults".to_string());
        } else if self.families != [Family::Classic] {
            modes.push(format!("faults {}", self.families.iter().map(|f| f.name()).collect::<Vec<_>>().join(",")));
        }
        let workloads = self.workloads();
        if !workloads.is_empty() {
            modes.push(format!("workload +{}", workloads.iter().map(|w| w.name()).collect::<Vec<_>>().join(",")));
        }
        if self.retry {
            modes.push("clients retry like go-redis".to_string());
        }
        if self.mirror_clients > 0 {
            modes.push(format!("{} clients of mirrors", self.mirror_clients));
        }
        if let Some(policy) = &self.evict {
            modes.push(format!("eviction run: maxmemory-policy {policy}, data-storage {}", eviction::EVICT_DATA_STORAGE));
        }
        modes.iter().map(|m| format!(" · {m}")).collect()
    }
}

/// Something the checks found wrong, with the operations that show it.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Which check: linearizable, never-written, lists, counters, expiry,
    /// transactions, eviction, digests, liveness, replies.
    pub checker: &'static str,
    pub key: String,
    pub what: String,
    /// The (smallest found) sub-history that shows it.
    pub ops: Vec<Op>,
}

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub topology: Topology,
    pub duration: Duration,
    pub clients: usize,
    /// False for a rough run (no settling between faults).
    pub settle: bool,
    /// What runs besides the defaults (fault families, workloads, retries, eviction).
    pub modes: String,
    pub schedule: Vec<Step>,
    /// The nemesis's log: what it did to whom, when.
    pub fault_log: Vec<String>,
    pub faults_injected: usize,
    /// The clients' operations by kind ("register", "counter", "list", "ttl", "txn", …).
    pub ops: BTreeMap<&'static str, Counts>,
    /// What the clients of mirrors saw, when there were some.
    pub mirrors: Option<mirrors::Tally>,
    pub violations: Vec<Violation>,
    /// Keys whose linearizability search gave up.
    pub inconclusive: Vec<String>,
    pub notes: Vec<String>,
    /// Where the cluster's files were kept, if they were.
    pub kept_dir: Option<PathBuf>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Operations the clients made (not the reads after healing).
    pub fn ops_total(&self) -> Counts {
        self.ops.values().fold(Counts::default(), |a, c| Counts { ok: a.ok + c.ok, fail: a.fail + c.fail, unknown: a.unknown + c.unknown })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("could not set up the cluster: {0}")]
    Setup(#[from] std::io::Error),
    #[error("the stripe did not form: {0}")]
    Formation(String),
    #[error("{0}")]
    Usage(String),
}

/// How long the stripe may take to form, and to settle after healing.
const FORM_DEADLINE: Duration = Duration::from_secs(60);
const HEAL_DEADLINE: Duration = Duration::from_secs(60);
/// How long the servers may take to agree on a digest once settled.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(30);

/// The header of a run: seed, topology, schedule.
pub fn describe(options: &Options) -> String {
    let mut text = format!(
        "tandem check: seed {} · topology {} · duration {} · {} clients{}{}{}\nbinary: {}\nschedule:\n",
        options.seed,
        options.topology,
        secs(options.duration.as_nanos() as u64),
        options.clients,
        if options.settle { "" } else { " · rough (no settling between faults)" },
        options.modes(),
        options.break_safety.as_ref().map(|m| format!(" · TANDEM_BREAK_SAFETY={m}")).unwrap_or_default(),
        options.binary.display()
    );
    for step in options.steps() {
        text.push_str(&format!("  {}\n", step.describe(options.topology)));
    }
    text
}

/// Runs the harness once: start, load under faults, heal, check. Progress goes to
/// stderr as it happens.
pub fn run(options: &Options) -> Result<Report, CheckError> {
    if options.topology.stripes() > 1 && options.families.iter().any(|f| *f != Family::Classic) {
        return Err(CheckError::Usage(format!(
            "--faults {}: on an array (--topology {}) only the classic family runs for now (and whole stripes down); clock, purge and stall faults need --topology 3 or 2+1",
            options.families.iter().map(|f| f.name()).collect::<Vec<_>>().join(","),
            options.topology
        )));
    }
    eprint!("{}", describe(options));
    let mut cluster = start(options)?;
    eprintln!("stripe formed in {}", cluster.dir.path().display());
    let keys = options.keys();
    let epoch = Instant::now();
    let (mut ops, nemesis) = load(&mut cluster, options, &keys, epoch);
    eprintln!("{} operations; healing", ops.len());
    let mut report = Report {
        seed: options.seed,
        topology: options.topology,
        duration: options.duration,
        clients: options.clients,
        settle: options.settle,
        modes: options.modes(),
        schedule: options.steps(),
        fault_log: nemesis.log,
        faults_injected: nemesis.injected,
        ops: count_by_kind(&ops),
        mirrors: None,
        violations: nemesis.violations,
        inconclusive: Vec::new(),
        notes: Vec::new(),
        kept_dir: None,
    };
    let used_lists = list_keys(&ops);
    ops.extend(settle(&mut cluster, &keys, &used_lists, epoch, &mut report));
    if options.evict.is_some() {
        let evicted: Vec<String> = (0..cluster.members.len())
            .filter(|&i| !cluster.members[i].voter)
            .filter_map(|i| eviction::evicted_keys(&cluster.url(i)))
            .map(|n| n.to_string())
            .collect();
        report.notes.push(format!("evicted_keys (INFO stats) per server after healing: {}", evicted.join(", ")));
    }
    eprintln!("checking {} operations", ops.len());
    let checking = Instant::now();
    check_all(&ops, &keys, &mut report);
    if options.mirror_clients > 0 {
        report.mirrors = Some(mirrors::tally(&ops, options.clients, options.mirror_clients));
    }
    eprintln!("checked in {}", secs(checking.elapsed().as_nanos() as u64));
    if options.keep_always || (!report.passed() && options.keep_on_violation) {
        report.kept_dir = Some(cluster.keep_dir());
    }
    Ok(report)
}

/// Writes the config, starts every member and waits for the stripe to form.
fn start(options: &Options) -> Result<Cluster, CheckError> {
    let spec = Spec {
        servers: vec![true; options.topology.servers()],
        voters: options.topology.voters(),
        relayed: true,
        data_storage: if options.evict.is_some() { vec![eviction::EVICT_DATA_STORAGE; options.topology.servers()] } else { Vec::new() },
        stripes: options.topology.stripes(),
        cluster_ports: options.topology.stripes() > 1,
        tls_ports: false,
    };
    let mut cluster = Cluster::try_configure(&options.binary, spec)?;
    if let Some(dir) = &options.tls_dir {
        cluster.use_tls(dir, true, "no")?;
    }
    if let Some(mode) = &options.break_safety {
        cluster.set_env("TANDEM_BREAK_SAFETY", mode);
    }
    if options.steps_clocks() {
        cluster.enable_clock_offsets();
    }
    let everyone: Vec<usize> = (0..cluster.members.len()).collect();
    for &i in &everyone {
        cluster.try_spawn(i)?;
    }
    for s in 0..cluster.stripe_count() {
        cluster
            .try_wait_stable(&cluster.stripe_members(s), FORM_DEADLINE)
            .map_err(|e| CheckError::Formation(format!("{e}\n{}", cluster.all_stderr())))?;
    }
    Ok(cluster)
}

/// What the nemesis did and found.
struct Nemesis {
    log: Vec<String>,
    injected: usize,
    violations: Vec<Violation>,
}

/// Runs the clients for the run's duration (or until each made its operations) while
/// the nemesis works through the schedule; the clients' history.
fn load(cluster: &mut Cluster, options: &Options, keys: &Keys, epoch: Instant) -> (Vec<Op>, Nemesis) {
    let end = epoch + options.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = (0..cluster.members.len()).filter(|&i| !cluster.members[i].voter).map(|i| cluster.url(i)).collect();
    let _policy = options.evict.as_ref().map(|policy| eviction::PolicyKeeper::start(urls.clone(), policy.clone()));
    let threads: Vec<_> = (0..options.clients + options.mirror_clients)
        .map(|id| {
            let client = Client {
                id,
                urls: urls.clone(),
                home: id % urls.len(),
                keys: keys.clone(),
                extras: options.workloads(),
                retry: options.retry,
                seed: options.seed,
                epoch,
                stop: stop.clone(),
                until: end,
                ops_max: options.ops_per_client_max,
                on_mirrors: id >= options.clients,
            };
            std::thread::spawn(move || client.run())
        })
        .collect();
    let clients_done = |threads: &[std::thread::JoinHandle<Vec<Op>>]| threads.iter().all(|t| t.is_finished());
    let mut nemesis = Nemesis { log: Vec::new(), injected: 0, violations: Vec::new() };
    let mut nemesis_ops = Vec::new();
    for step in &options.steps() {
        let start = Instant::now() + Duration::from_millis(step.gap_ms);
        if start + Duration::from_millis(step.hold_ms) > end || clients_done(&threads) {
            break;
        }
        while Instant::now() < start && !clients_done(&threads) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let applied = faults::apply(cluster, step, epoch, options.settle);
        for line in applied.log {
            eprintln!("  {line}");
            nemesis.log.push(line);
        }
        nemesis.violations.extend(applied.violations);
        nemesis_ops.extend(applied.ops);
        nemesis.injected += 1;
    }
    while Instant::now() < end && !clients_done(&threads) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let mut ops: Vec<Op> = threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect();
    ops.extend(nemesis_ops);
    (ops, nemesis)
}

/// Heals every fault, waits for the stripe to settle, reads every key through the
/// active and waits for equal digests; the reads. What fails is a violation.
fn settle(cluster: &mut Cluster, keys: &Keys, used_lists: &[String], epoch: Instant, report: &mut Report) -> Vec<Op> {
    heal(cluster);
    let mut actives = Vec::new();
    for s in 0..cluster.stripe_count() {
        match cluster.try_wait_stable(&cluster.stripe_members(s), HEAL_DEADLINE) {
            Ok(active) => actives.push(active),
            Err(e) => {
                let what = format!("after every fault was healed, {e}");
                report.violations.push(Violation { checker: "liveness", key: String::new(), what, ops: Vec::new() });
                return Vec::new();
            }
        }
    }
    // Through the first stripe's active: another stripe's keys are forwarded.
    let reads = final_reads(cluster, actives[0], keys, used_lists, epoch, &mut report.notes);
    // Equal digests within each stripe (each holds only its own slots).
    for s in 0..cluster.stripe_count() {
        let servers: Vec<usize> = cluster.stripe_members(s).into_iter().filter(|&i| !cluster.members[i].voter).collect();
        if let Err(e) = cluster.try_wait_converged(&servers, CONVERGE_DEADLINE) {
            report.violations.push(Violation { checker: "digests", key: String::new(), what: e, ops: Vec::new() });
        }
    }
    reads
}

/// Resumes, restarts and reconnects every member.
fn heal(cluster: &mut Cluster) {
    if cluster.relayed() {
        cluster.heal();
    }
    for i in 0..cluster.members.len() {
        cluster.try_signal(i, "-CONT");
        if let Err(e) = cluster.try_spawn(i) {
            eprintln!("  could not restart {}: {e}", cluster.members[i].name);
        }
    }
}

/// One read of every key the clients used through the active, recorded like their
/// operations.
fn final_reads(cluster: &Cluster, active: usize, keys: &Keys, used: &[String], epoch: Instant, notes: &mut Vec<String>) -> Vec<Op> {
    let url = cluster.url(active);
    let logs: Vec<String> = keys.txn.iter().map(|k| clients::txn_log(k)).collect();
    let reads = keys
        .registers
        .iter()
        .chain(&keys.ttl)
        .chain(&keys.txn)
        .map(|k| (k, Call::Get))
        .chain(keys.counters.iter().chain(&keys.own_counters).map(|k| (k, Call::ReadCounter)))
        .chain(used.iter().chain(&logs).map(|k| (k, Call::ReadList)));
    let mut out = Vec::new();
    for (key, call) in reads {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let invoke_ns = epoch.elapsed().as_nanos() as u64;
            let outcome = match clients::connect(&url) {
                Ok(mut con) => clients::execute(&mut con, key, &call),
                Err(e) => history::classify(&call, &e),
            };
            let complete_ns = epoch.elapsed().as_nanos() as u64;
            let op = Op {
                client: FINAL_CLIENT,
                server: active,
                key: key.clone(),
                call: call.clone(),
                outcome,
                invoke_ns,
                complete_ns,
                retried: Vec::new(),
            };
            if op.is_ok() {
                out.push(op);
                break;
            }
            if Instant::now() > deadline {
                notes.push(format!("the read of {key} after healing failed: {op}"));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    out
}

/// The list keys the clients used.
fn list_keys(ops: &[Op]) -> Vec<String> {
    let keys: BTreeSet<&str> = ops.iter().filter(|o| Kind::of(&o.key) == Some(Kind::List)).map(|o| o.key.as_str()).collect();
    keys.into_iter().map(String::from).collect()
}

fn count_by_kind(ops: &[Op]) -> BTreeMap<&'static str, Counts> {
    let mut by: BTreeMap<&'static str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by.entry(Kind::of(&op.key).map_or("other", Kind::name)).or_default().push(op);
    }
    by.into_iter().map(|(k, v)| (k, Counts::of(v))).collect()
}

/// Runs every checker on every key.
fn check_all(ops: &[Op], keys: &Keys, report: &mut Report) {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for key in &keys.registers {
        let found = registers::check(key, by_key.get(key.as_str()).map_or(&[], |v| v));
        report.violations.extend(found.violations);
        report.inconclusive.extend(found.inconclusive);
    }
    for key in keys.counters.iter().chain(&keys.own_counters) {
        report.violations.extend(counters::check(key, by_key.get(key.as_str()).map_or(&[], |v| v)));
    }
    for (key, on) in &by_key {
        match Kind::of(key) {
            Some(Kind::List) => report.violations.extend(lists::check(key, on)),
            Some(Kind::Ttl) => report.violations.extend(expiry::check(key, on)),
            _ => {}
        }
    }
    for key in &keys.txn {
        let on = by_key.get(key.as_str()).map_or(&[][..], |v| v.as_slice());
        let finals = |k: &str| by_key.get(k).and_then(|v| v.iter().rev().find(|o| o.client == FINAL_CLIENT).copied());
        match finals(&clients::txn_log(key)) {
            Some(log) => report.violations.extend(transactions::check(key, on, log, finals(key))),
            None => report.notes.push(format!("{key}: its log was not read after healing; its transactions were not checked")),
        }
    }
    let evict_keys = by_key.iter().filter(|(k, _)| Kind::of(k) == Some(Kind::Evict)).map(|(k, v)| (*k, v.clone()));
    report.violations.extend(eviction::check(evict_keys));
    note_retries(ops, report);
    let unexpected: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(&o.outcome, Outcome::Unknown(why) | Outcome::Fail(why) if why.starts_with(clients::UNEXPECTED)))
        .collect();
    if !unexpected.is_empty() {
        report.violations.push(Violation {
            checker: "replies",
            key: String::new(),
            what: format!("{} replies of a shape no Redis server gives to the command", unexpected.len()),
            ops: unexpected.into_iter().take(5).cloned().collect(),
        });
    }
}

/// How many operations a retrying client sent more than once, and after which errors.
fn note_retries(ops: &[Op], report: &mut Report) {
    let resent: Vec<&Op> = ops.iter().filter(|o| !o.retried.is_empty()).collect();
    if resent.is_empty() {
        return;
    }
    let unknown = resent.iter().filter(|o| o.retried.iter().any(|e| e.to_ascii_lowercase().contains("unknown"))).count();
    report.notes.push(format!(
        "{} operations were sent again by a retrying client, {unknown} of them after an error that said the outcome was unknown",
        resent.len()
    ));
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} · topology {} · duration {} · {} clients{}",
            self.seed,
            self.topology,
            secs(self.duration.as_nanos() as u64),
            self.clients,
            self.modes
        )?;
        writeln!(f, "schedule ({} faults planned, {} injected):", self.schedule.len(), self.faults_injected)?;
        for step in &self.schedule {
            writeln!(f, "  {}", step.describe(self.topology))?;
        }
        writeln!(f, "faults:")?;
        for line in &self.fault_log {
            writeln!(f, "  {line}")?;
        }
        let total = self.ops_total();
        writeln!(f, "operations: {} ({} ok, {} failed, {} unknown)", total.total(), total.ok, total.fail, total.unknown)?;
        for (kind, c) in &self.ops {
            writeln!(f, "  {kind:<9} {:>7} ({} ok, {} failed, {} unknown)", c.total(), c.ok, c.fail, c.unknown)?;
        }
        if let Some(tally) = &self.mirrors {
            writeln!(f, "{tally}")?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for why in &self.inconclusive {
            writeln!(f, "inconclusive: {why}")?;
        }
        if self.violations.is_empty() {
            writeln!(f, "no violations")?;
        } else {
            writeln!(f, "{} violations:", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "- [{}] {}{}", v.checker, if v.key.is_empty() { String::new() } else { format!("{}: ", v.key) }, v.what)?;
                for op in &v.ops {
                    writeln!(f, "    {op}")?;
                }
            }
        }
        if let Some(dir) = &self.kept_dir {
            writeln!(f, "the cluster's config, data and server logs are kept in {}", dir.display())?;
        }
        Ok(())
    }
}

/// One line: seed, operations, faults, violations by checker.
pub fn summary(report: &Report) -> String {
    let total = report.ops_total();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &report.violations {
        *kinds.entry(v.checker).or_default() += 1;
    }
    let found = if kinds.is_empty() { "no violations".to_string() } else { format!("violations: {kinds:?}") };
    let mirrors = report
        .mirrors
        .as_ref()
        .map(|t| format!(", clients of mirrors: {} duplicates, {} unknown ({} answered)", t.duplicates, t.ops.unknown, t.unknown_answered))
        .unwrap_or_default();
    format!("seed {}: {} operations, {} faults{mirrors}, {found}", report.seed, total.total(), report.faults_injected)
}
