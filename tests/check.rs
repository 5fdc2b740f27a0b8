//! The fault harness (`tandem check`) can pass and can fail: on the normal build it
//! injects faults into a stripe of real processes and every checker passes; with a
//! safety guarantee broken on purpose (`TANDEM_BREAK_SAFETY=stale-reads`: a server
//! that is not the active answers reads from its own state) the register checker
//! reports the stale reads of a mirror cut off from the others. The new workloads
//! (keys with a time to live, transactions, retrying clients) pass on a stripe
//! without faults, and the test clock offset file moves a server's wall clock.

use std::time::Duration;

use tandem::check::clients::Extra;
use tandem::check::cluster::{wait_until, Cluster, Spec};
use tandem::check::faults::{Fault, Step, Target, Topology};
use tandem::check::{run, Options};

fn options(seed: u64, duration: Duration) -> Options {
    let mut options = Options::new(env!("CARGO_BIN_EXE_tandem"), seed);
    options.topology = Topology::ThreeServers;
    options.duration = duration;
    options.clients = 6;
    // A bound on each client besides the duration.
    options.ops_per_client_max = 5_000;
    options
}

#[test]
fn the_normal_build_passes_every_checker_under_faults() {
    // Seed 10: two hot swaps, a cut link, kill -9 of the active and a SIGSTOP
    // (printed with the report).
    let options = options(10, Duration::from_secs(25));
    let report = run(&options).expect("the harness runs");
    eprintln!("{report}");
    assert!(report.passed(), "violations on the normal build:\n{report}");
    assert!(report.inconclusive.is_empty(), "every key's history was decided:\n{report}");
    assert!(report.faults_injected >= 3, "faults were injected:\n{report}");
    assert!(report.ops_total().ok >= 500, "clients made progress:\n{report}");
}

#[test]
fn stale_reads_from_a_mirror_cut_off_from_the_others_are_caught() {
    let mut options = options(12, Duration::from_secs(12));
    options.break_safety = Some("stale-reads".into());
    // The clients whose home is that mirror keep reading keys that the other
    // clients, through the majority, keep writing.
    options.schedule = Some(vec![Step { gap_ms: 2_000, fault: Fault::Isolate(Target::Mirror(0)), hold_ms: 6_000, stripe: 0 }]);
    let report = run(&options).expect("the harness runs");
    eprintln!("{report}");
    assert_eq!(report.faults_injected, 1, "{report}");
    assert!(report.violations.iter().any(|v| v.checker == "linearizable"), "the stale reads went unnoticed:\n{report}");
}

/// DESIGN §7 under faults: an array of two stripes of three; clients use keys of
/// both stripes through any server (forwarded), transactions stay in one slot; a
/// whole stripe goes down for a while, and faults hit both stripes.
#[test]
fn an_array_of_two_stripes_passes_every_checker_under_faults() {
    let mut options = options(3, Duration::from_secs(22));
    options.topology = Topology::TwoStripesOfThree;
    options.extras = vec![Extra::Ttl, Extra::Txn];
    let steps = options.steps();
    assert!(steps.iter().any(|s| s.fault == Fault::StripeDown), "seed 3 takes a stripe down: {steps:?}");
    assert!(steps.iter().any(|s| s.stripe == 0) && steps.iter().any(|s| s.stripe == 1), "faults in both stripes: {steps:?}");
    let report = run(&options).expect("the harness runs");
    eprintln!("{report}");
    assert!(report.passed(), "violations on an array:\n{report}");
    assert!(report.inconclusive.is_empty(), "every key's history was decided:\n{report}");
    for kind in ["txn", "register", "counter"] {
        assert!(report.ops.get(kind).is_some_and(|c| c.ok >= 50), "clients made progress on {kind} keys:\n{report}");
    }
}

/// DESIGN.md §6 as the harness measures it (issue 13): clients of mirrors doing
/// non-idempotent INCR and RPUSH on keys of their own through two `kill -9`s of the
/// active and a safe failover see no error, no unknown outcome and no duplicate —
/// their mirror re-sends what was in flight to the new active, tagged once.
#[test]
fn clients_of_mirrors_see_no_error_and_no_duplicate_through_kills_of_the_active() {
    let mut options = options(24, Duration::from_secs(20));
    options.clients = 2;
    options.mirror_clients = 3;
    let kill = Step { gap_ms: 2_000, fault: Fault::Kill(Target::Active), hold_ms: 2_000, stripe: 0 };
    let transfer = Step { gap_ms: 2_000, fault: Fault::Transfer(None), hold_ms: 0, stripe: 0 };
    options.schedule = Some(vec![kill.clone(), transfer, kill]);
    let report = run(&options).expect("the harness runs");
    eprintln!("{report}");
    assert!(report.passed(), "violations:\n{report}");
    assert_eq!(report.faults_injected, 3, "{report}");
    let tally = report.mirrors.clone().expect("the report counts the clients of mirrors apart");
    assert!(tally.ops.ok >= 300, "the clients of mirrors made progress:\n{report}");
    assert_eq!(
        (tally.duplicates, tally.ops.unknown, tally.ops.fail),
        (0, 0, 0),
        "clients of mirrors saw duplicates, unknown outcomes or errors:\n{report}"
    );
}

#[test]
fn the_new_workloads_pass_their_checks_on_a_stripe_without_faults() {
    // Keys with a time to live, WATCH/MULTI/EXEC transactions and retrying clients,
    // with nothing going wrong: the expiry, transaction and duplicate checks must not
    // report what did not happen.
    let mut options = options(21, Duration::from_secs(10));
    options.schedule = Some(Vec::new());
    options.extras = vec![Extra::Ttl, Extra::Txn];
    options.retry = true;
    let report = run(&options).expect("the harness runs");
    eprintln!("{report}");
    assert!(report.passed(), "violations without faults:\n{report}");
    for kind in ["ttl", "txn", "register"] {
        assert!(report.ops.get(kind).is_some_and(|c| c.ok >= 10), "clients made progress on {kind} keys:\n{report}");
    }
    assert!(!report.notes.iter().any(|n| n.contains("not checked")), "every transaction key was checked:\n{report}");
}

#[test]
fn the_test_clock_offset_file_steps_a_servers_wall_clock() {
    eprintln!("--- a stripe of one whose server reads its clock offset file");
    let mut cluster = Cluster::configure(env!("CARGO_BIN_EXE_tandem"), Spec::servers(1));
    cluster.enable_clock_offsets();
    cluster.start_all();
    let server_time_s = |cluster: &Cluster| -> Option<i64> {
        let mut con = cluster.conn(0).ok()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
        let usec: i64 = info.lines().find_map(|l| l.strip_prefix("server_time_usec:"))?.trim().parse().ok()?;
        Some(usec / 1_000_000)
    };
    let local_s = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let near = |seen: Option<i64>, want: i64| seen.is_some_and(|s| (s - want).abs() < 60);
    assert!(near(server_time_s(&cluster), local_s()), "no offset file: the machine's time");
    eprintln!("--- step its clock an hour back");
    cluster.set_clock_offset(0, -3_600_000).expect("write the offset file");
    assert!(
        wait_until(Duration::from_secs(10), || near(server_time_s(&cluster), local_s() - 3600)),
        "the server's wall clock went an hour back: {:?} vs {}",
        server_time_s(&cluster),
        local_s()
    );
    eprintln!("--- and an hour ahead");
    cluster.set_clock_offset(0, 3_600_000).expect("write the offset file");
    assert!(wait_until(Duration::from_secs(10), || near(server_time_s(&cluster), local_s() + 3600)), "an hour ahead");
}
