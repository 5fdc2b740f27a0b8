//! The fault harness (`tandem check`) can pass and can fail: on the normal build it
//! injects faults into a stripe of real processes and every checker passes; with a
//! safety guarantee broken on purpose (`TANDEM_BREAK_SAFETY=stale-reads`: a server
//! that is not the active answers reads from its own state) the register checker
//! reports the stale reads of a mirror cut off from the others.

use std::time::Duration;

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
    options.schedule = Some(vec![Step { gap_ms: 2_000, fault: Fault::Isolate(Target::Mirror(0)), hold_ms: 6_000 }]);
    let report = run(&options).expect("the harness runs");
    eprintln!("{report}");
    assert_eq!(report.faults_injected, 1, "{report}");
    assert!(report.violations.iter().any(|v| v.checker == "linearizable"), "the stale reads went unnoticed:\n{report}");
}
