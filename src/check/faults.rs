//! The faults of a run: the schedule (a pure function of seed, topology and duration,
//! so a seed replays the same faults) and the nemesis that injects each fault on a
//! [`Cluster`], holds it, and heals it.
//!
//! Faults come one at a time: each is healed (the process restarted or resumed, the
//! partition lifted) before the next begins, and the nemesis waits for the stripe to
//! settle in between, so the stripe is never asked to survive more than it promises
//! (one lost member of three). Without that wait ("rough" runs) a fault may hit a
//! stripe still recovering from the last: it may then be unavailable for a while,
//! and must still never be wrong. Whom a fault hits may depend on the cluster's state
//! ("the active", "a mirror"); the schedule names the role, the log names the server.
//!
//! Faults come in families ([`Family`], `--faults`): the classic process and network
//! faults (the default, whose schedules are those of earlier versions for the same
//! seed), wall-clock steps, a mirror paused through a write burst before the active
//! dies (so voters purge), and stalls that make writes time out. A fault that finds
//! a violation by itself (a stripe that does not recover in time) reports it.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::cluster::Cluster;
use super::history::{secs, Op};
use super::Violation;

/// The high-availability topologies of DESIGN.md §1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Three servers.
    ThreeServers,
    /// Two servers and a voter.
    TwoServersAndVoter,
    /// An array of two stripes of three servers (DESIGN.md §7).
    TwoStripesOfThree,
    /// An array of two stripes, each two servers and a voter.
    TwoStripesOfTwoAndVoter,
}

impl Topology {
    /// Servers per stripe.
    pub fn servers(self) -> usize {
        match self {
            Topology::ThreeServers | Topology::TwoStripesOfThree => 3,
            Topology::TwoServersAndVoter | Topology::TwoStripesOfTwoAndVoter => 2,
        }
    }

    /// Voters per stripe.
    pub fn voters(self) -> usize {
        match self {
            Topology::ThreeServers | Topology::TwoStripesOfThree => 0,
            Topology::TwoServersAndVoter | Topology::TwoStripesOfTwoAndVoter => 1,
        }
    }

    pub fn stripes(self) -> usize {
        match self {
            Topology::ThreeServers | Topology::TwoServersAndVoter => 1,
            Topology::TwoStripesOfThree | Topology::TwoStripesOfTwoAndVoter => 2,
        }
    }

    pub fn members(self) -> usize {
        self.servers() + self.voters()
    }
}

impl FromStr for Topology {
    type Err = String;
    fn from_str(text: &str) -> Result<Topology, String> {
        match text.trim() {
            "3" => Ok(Topology::ThreeServers),
            "2+1" => Ok(Topology::TwoServersAndVoter),
            "2x3" => Ok(Topology::TwoStripesOfThree),
            "2x2+1" => Ok(Topology::TwoStripesOfTwoAndVoter),
            other => Err(format!(
                "{other:?} is not a topology: expected 3 (three servers), 2+1 (two servers and a voter), 2x3 or 2x2+1 (an array of two such stripes)"
            )),
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::ThreeServers => write!(f, "3 (server1, server2, server3)"),
            Topology::TwoServersAndVoter => write!(f, "2+1 (server1, server2, voter1)"),
            Topology::TwoStripesOfThree => write!(f, "2x3 (stripe A: server1-3, stripe B: server4-6)"),
            Topology::TwoStripesOfTwoAndVoter => {
                write!(f, "2x2+1 (stripe A: server1, server2, voter1; stripe B: server3, server4, voter2)")
            }
        }
    }
}

/// Whom a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Whoever is the active when the fault starts.
    Active,
    /// The k-th (modulo their number) server that is not the active then, in config order.
    Mirror(usize),
    /// Member i, in config order (servers first, then the voter).
    Member(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9`, restarted on the same data directory after the hold.
    Kill(Target),
    /// SIGSTOP, SIGCONT after the hold.
    Pause(Target),
    /// Cut off from every other member on the group network.
    Isolate(Target),
    /// The group link between two members cut; each still reaches the third.
    CutLink(usize, usize),
    /// `tandem failover --stripe A [--to serverN]`.
    Transfer(Option<usize>),
    /// A mirror killed, its data directory deleted, and started empty after the hold
    /// (a hot swap: it joins as a new member and syncs).
    Wipe(Target),
    /// The member's wall clock set to the machine's plus `offset_ms` (a step; behind
    /// when negative), for the rest of the run; with `failover`, leadership is then
    /// handed to it (`tandem failover --to`), so the stripe's time comes from its clock.
    Clock { target: Target, offset_ms: i64, failover: bool },
    /// The voter trap with a purge: a write burst; a mirror paused in the middle of it
    /// (the burst goes on for the hold); the active killed (`wipe`: and its data
    /// directory deleted); the mirror resumed. The stripe, one member down, must have
    /// an active again within [`RECOVERY_BOUND`]; then the active is restarted.
    PurgeTrap { wipe: bool },
    /// Every member but the active paused (writes cannot commit and time out), resumed
    /// after the hold.
    Stall,
    /// Every member of the stripe killed (`kill -9`): its slots are down, the other
    /// stripes' keep working; all restarted after the hold.
    StripeDown,
}

/// One fault: injected `gap_ms` after the previous one healed (and the stripe
/// settled), healed `hold_ms` later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub gap_ms: u64,
    pub fault: Fault,
    pub hold_ms: u64,
    /// The stripe the fault hits (its members are numbered within it), in an array.
    pub stripe: usize,
}

/// The families of faults a schedule draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// kill -9, SIGSTOP, isolation, a cut link, leadership transfer, hot swap.
    Classic,
    /// Wall-clock steps, backwards too, some followed by a failover to that server.
    Clock,
    /// [`Fault::PurgeTrap`].
    Purge,
    /// [`Fault::Stall`].
    Stall,
}

impl Family {
    pub const ALL: [Family; 4] = [Family::Classic, Family::Clock, Family::Purge, Family::Stall];

    pub fn name(self) -> &'static str {
        match self {
            Family::Classic => "classic",
            Family::Clock => "clock",
            Family::Purge => "purge",
            Family::Stall => "stall",
        }
    }

    /// A comma-separated list of family names, "all", or "none" (no faults at all).
    pub fn parse_list(text: &str) -> Result<Vec<Family>, String> {
        const EXPECTED: &str = "expected classic, clock, purge, stall, all or none";
        if text.trim() == "none" {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let found: Vec<Family> = if word == "all" {
                Family::ALL.to_vec()
            } else {
                let one = Family::ALL.iter().copied().find(|f| f.name() == word);
                vec![one.ok_or_else(|| format!("{word:?} is not a family of faults: {EXPECTED}"))?]
            };
            out.extend(found);
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err(format!("no family of faults named: {EXPECTED}"));
        }
        Ok(out)
    }
}

/// How long a stripe with one member down may take to have an active again after a
/// purge trap before the run reports that it did not recover. Generous: an
/// election takes about one election time (1 s here) and catching up a paused mirror
/// a few seconds.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// The write burst of a purge trap runs this long before the mirror is paused: at
/// least one purge hint (every 2 s) lands in it, so the voter's last snapshot is
/// behind the paused mirror and the next hint makes it snapshot again.
pub const PURGE_BURST_BEFORE_PAUSE: Duration = Duration::from_millis(2500);
/// Concurrent connections of a burst: each waits for its reply, so the entries
/// come as fast as the stripe commits them (proposals in flight are bounded).
pub const PURGE_BURST_CONNECTIONS: usize = 16;
/// What a purge trap takes besides its hold, in a schedule's time budget: the burst
/// before the pause, and an election with a little catch-up.
const PURGE_PLANNED_EXTRA_MS: u64 = 2_500 + 4_000;

impl Step {
    /// The time the step takes in the schedule's budget.
    pub fn planned_ms(&self) -> u64 {
        let extra = if matches!(self.fault, Fault::PurgeTrap { .. }) { PURGE_PLANNED_EXTRA_MS } else { 0 };
        self.gap_ms + self.hold_ms + extra
    }
}

/// The faults of a run of `duration_ms` on `topology`, from `seed` alone: the classic
/// family only.
pub fn schedule(seed: u64, topology: Topology, duration_ms: u64) -> Vec<Step> {
    schedule_of(seed, topology, duration_ms, &[Family::Classic])
}

/// The faults of a run of `duration_ms` on `topology` from `families`, from `seed`
/// alone. With the classic family alone, the same schedule as `schedule`.
pub fn schedule_of(seed: u64, topology: Topology, duration_ms: u64, families: &[Family]) -> Vec<Step> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut below = |n: u64| rng.next_u64() % n.max(1);
    let mut steps = Vec::new();
    let Some(&first_family) = families.first() else { return steps };
    let mut t = 0;
    loop {
        // The first fault once clients are under way; a quiet second at the end.
        let gap_ms = if steps.is_empty() { 1500 + below(1500) } else { 1000 + below(2500) };
        // One family alone draws nothing here: its schedules stay those of a seed.
        let family = if families.len() > 1 { families[below(families.len() as u64) as usize] } else { first_family };
        let (mut fault, mut hold_ms) = match family {
            Family::Classic => classic(&mut below, topology),
            Family::Clock => clock(&mut below, topology),
            Family::Purge => (Fault::PurgeTrap { wipe: below(4) == 0 }, 3000 + below(2000)),
            Family::Stall => (Fault::Stall, 6000 + below(3000)),
        };
        // In an array (only there, so one stripe's schedules stay those of a seed):
        // which stripe, and now and then that whole stripe down.
        let mut stripe = 0;
        if topology.stripes() > 1 {
            stripe = below(topology.stripes() as u64) as usize;
            if below(6) == 0 {
                (fault, hold_ms) = (Fault::StripeDown, 2000 + below(3000));
            }
        }
        let step = Step { gap_ms, fault, hold_ms, stripe };
        if t + step.planned_ms() + 1000 > duration_ms {
            break;
        }
        t += step.planned_ms();
        steps.push(step);
    }
    steps
}

/// A classic fault and its hold.
fn classic(below: &mut dyn FnMut(u64) -> u64, topology: Topology) -> (Fault, u64) {
    let (members, servers) = (topology.members() as u64, topology.servers() as u64);
    let mut hold_ms = 1000 + below(3000);
    let target = |below: &mut dyn FnMut(u64) -> u64| match below(3) {
        0 => Target::Active,
        1 => Target::Mirror(below(servers - 1) as usize),
        _ => Target::Member(below(members) as usize),
    };
    let fault = match below(100) {
        0..=24 => Fault::Kill(target(below)),
        25..=41 => Fault::Pause(target(below)),
        42..=61 => Fault::Isolate(target(below)),
        62..=71 => {
            let a = below(members);
            let b = (a + 1 + below(members - 1)) % members;
            Fault::CutLink(a as usize, b as usize)
        }
        72..=83 => {
            hold_ms = 0;
            Fault::Transfer((below(2) == 0).then(|| below(servers) as usize))
        }
        _ => Fault::Wipe(Target::Mirror(below(servers - 1) as usize)),
    };
    (fault, hold_ms)
}

/// A clock step: mostly a mirror's clock set behind (0.5 to 10 s), then leadership
/// handed to it; otherwise any server's clock stepped either way.
fn clock(below: &mut dyn FnMut(u64) -> u64, topology: Topology) -> (Fault, u64) {
    let servers = topology.servers() as u64;
    let behind_ms = -(500 + below(9500) as i64);
    let fault = if below(3) < 2 {
        Fault::Clock { target: Target::Mirror(below(servers - 1) as usize), offset_ms: behind_ms, failover: true }
    } else {
        let offset_ms = if below(2) == 0 { behind_ms } else { 500 + below(4500) as i64 };
        Fault::Clock { target: Target::Member(below(servers) as usize), offset_ms, failover: false }
    };
    (fault, 0)
}

/// The name of member `i` (within its stripe) of stripe `stripe`, as the harness
/// writes the config.
fn member_name(i: usize, topology: Topology, stripe: usize) -> String {
    if i < topology.servers() {
        format!("server{}", stripe * topology.servers() + i + 1)
    } else {
        format!("voter{}", stripe * topology.voters() + i - topology.servers() + 1)
    }
}

impl Step {
    /// The step in words, members named as in `topology`.
    pub fn describe(&self, topology: Topology) -> String {
        let who = |t: &Target| match t {
            Target::Active => "the active".to_string(),
            Target::Mirror(k) => format!("mirror #{k}"),
            Target::Member(i) => member_name(*i, topology, self.stripe),
        };
        let member_name = |i: usize, topology: Topology| member_name(i, topology, self.stripe);
        let stripe = super::cluster::stripe_name(self.stripe);
        let hold = secs(self.hold_ms * 1_000_000);
        let what = match &self.fault {
            Fault::Kill(t) => format!("kill -9 {}, restart after {hold}", who(t)),
            Fault::Pause(t) => format!("SIGSTOP {}, SIGCONT after {hold}", who(t)),
            Fault::Isolate(t) => format!("isolate {} from the others, heal after {hold}", who(t)),
            Fault::CutLink(a, b) => {
                format!("cut the link {} <-> {}, heal after {hold}", member_name(*a, topology), member_name(*b, topology))
            }
            Fault::Transfer(None) => format!("tandem failover --stripe {stripe}"),
            Fault::Transfer(Some(i)) => format!("tandem failover --stripe {stripe} --to {}", member_name(*i, topology)),
            Fault::Wipe(t) => format!("hot swap {}: kill -9, delete its data directory, start it empty after {hold}", who(t)),
            Fault::Clock { target, offset_ms, failover } => format!(
                "set the wall clock of {} {}{}",
                who(target),
                offset_words(*offset_ms),
                if *failover { ", then tandem failover --stripe A --to it" } else { "" }
            ),
            Fault::PurgeTrap { wipe } => format!(
                "purge trap: a write burst; after {} SIGSTOP mirror #0 while the burst goes on for {hold}; kill -9 the active{}; SIGCONT the mirror; the stripe must have an active within {}; restart the active",
                secs(PURGE_BURST_BEFORE_PAUSE.as_nanos() as u64),
                if *wipe { " and delete its data directory" } else { "" },
                secs(RECOVERY_BOUND.as_nanos() as u64)
            ),
            Fault::Stall => format!("stall: SIGSTOP every member but the active (writes time out), SIGCONT after {hold}"),
            Fault::StripeDown => format!("stripe down: kill -9 every member, restart them after {hold}"),
        };
        let whose = if topology.stripes() > 1 { format!("stripe {stripe}: ") } else { String::new() };
        format!("+{} {whose}{what}", secs(self.gap_ms * 1_000_000))
    }
}

fn offset_words(offset_ms: i64) -> String {
    let amount = secs(offset_ms.unsigned_abs() * 1_000_000);
    match offset_ms {
        0 => "to the machine's".to_string(),
        o if o < 0 => format!("{amount} behind the machine's"),
        _ => format!("{amount} ahead of the machine's"),
    }
}

/// How long the stripe may take to settle after a fault is healed before the next
/// one starts anyway (the run notes it).
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);

/// What injecting a fault did and found.
#[derive(Default)]
pub struct Applied {
    /// Lines for the run's log, stamped with time since the run's start.
    pub log: Vec<String>,
    /// What the fault found by itself (a stripe that did not recover in time).
    pub violations: Vec<Violation>,
    /// Operations the nemesis made (a purge trap's write burst), for the checks.
    pub ops: Vec<Op>,
}

/// Injects `step` on `cluster`, holds it, heals it, and (if `settle`) waits up to a
/// deadline for the stripe to settle.
pub fn apply(cluster: &mut Cluster, step: &Step, epoch: Instant, settle: bool) -> Applied {
    let stamp = |what: String| format!("{} {what}", secs(epoch.elapsed().as_nanos() as u64));
    let mut applied = Applied::default();
    let log = &mut applied.log;
    let hold = Duration::from_millis(step.hold_ms);
    let name = |c: &Cluster, i: usize| c.members[i].name.clone();
    // Members are numbered within the step's stripe; the cluster numbers them all.
    let members = cluster.stripe_members(step.stripe);
    let global = |i: usize| members.get(i).copied().unwrap_or(members[0]);
    let resolve = |c: &Cluster, t: Target| resolve_in(c, step.stripe, t);
    let stripe = super::cluster::stripe_name(step.stripe);
    match &step.fault {
        Fault::Kill(t) => {
            let i = resolve(cluster, *t);
            cluster.kill9(i);
            log.push(stamp(format!("killed {} (kill -9)", name(cluster, i))));
            std::thread::sleep(hold);
            log.push(stamp(restart(cluster, i)));
        }
        Fault::Pause(t) => {
            let i = resolve(cluster, *t);
            cluster.try_signal(i, "-STOP");
            log.push(stamp(format!("paused {} (SIGSTOP)", name(cluster, i))));
            std::thread::sleep(hold);
            cluster.try_signal(i, "-CONT");
            log.push(stamp(format!("resumed {} (SIGCONT)", name(cluster, i))));
        }
        Fault::Isolate(t) => {
            let i = resolve(cluster, *t);
            cluster.partition(&[i]);
            log.push(stamp(format!("isolated {} from the others", name(cluster, i))));
            std::thread::sleep(hold);
            cluster.heal();
            log.push(stamp("healed the partition".to_string()));
        }
        Fault::CutLink(a, b) => {
            let (a, b) = (global(*a), global(*b));
            cluster.cut_link(a, b);
            log.push(stamp(format!("cut the link {} <-> {}", name(cluster, a), name(cluster, b))));
            std::thread::sleep(hold);
            cluster.heal();
            log.push(stamp("healed the link".to_string()));
        }
        Fault::Transfer(to) => {
            let mut args = vec!["failover", "--stripe", stripe.as_str()];
            let target = to.map(|i| name(cluster, global(i)));
            if let Some(t) = &target {
                args.extend(["--to", t.as_str()]);
            }
            let (ok, out) = cluster.ctl(&args);
            let first = out.lines().next().unwrap_or("").trim().to_string();
            log.push(stamp(format!("{}: {}", args.join(" "), if ok { first } else { format!("refused: {first}") })));
        }
        Fault::Wipe(t) => {
            let i = resolve(cluster, *t);
            cluster.kill9(i);
            let wiped = std::fs::remove_dir_all(cluster.data_dir(i));
            log.push(stamp(format!("killed {} and deleted its data directory ({wiped:?})", name(cluster, i))));
            std::thread::sleep(hold);
            log.push(stamp(restart(cluster, i)));
        }
        Fault::Clock { target, offset_ms, failover } => {
            let i = resolve(cluster, *target);
            log.extend(clock_step(cluster, i, *offset_ms, *failover).into_iter().map(stamp));
        }
        Fault::Stall => {
            let active = resolve(cluster, Target::Active);
            let others: Vec<usize> = members.iter().copied().filter(|&i| i != active).collect();
            let names: Vec<String> = others.iter().map(|&i| name(cluster, i)).collect();
            for &i in &others {
                cluster.try_signal(i, "-STOP");
            }
            log.push(stamp(format!("paused {} (SIGSTOP): {} cannot commit", names.join(", "), name(cluster, active))));
            std::thread::sleep(hold);
            for &i in &others {
                cluster.try_signal(i, "-CONT");
            }
            log.push(stamp(format!("resumed {} (SIGCONT)", names.join(", "))));
        }
        Fault::PurgeTrap { wipe } => super::purge::trap(cluster, *wipe, hold, epoch, &mut applied),
        Fault::StripeDown => {
            for &i in &members {
                cluster.kill9(i);
            }
            log.push(stamp(format!("killed every member of stripe {stripe} (kill -9)")));
            std::thread::sleep(hold);
            for &i in &members {
                log.push(stamp(restart(cluster, i)));
            }
        }
    }
    if settle {
        applied.log.push(stamp(wait_settled(cluster)));
    }
    applied
}

/// Waits up to [`SETTLE_DEADLINE`] for every stripe to settle; what happened.
fn wait_settled(cluster: &Cluster) -> String {
    let start = Instant::now();
    let mut actives = Vec::new();
    for s in 0..cluster.stripe_count() {
        let left = SETTLE_DEADLINE.saturating_sub(start.elapsed());
        match cluster.try_wait_stable(&cluster.stripe_members(s), left) {
            Ok(active) => actives.push(cluster.members[active].name.clone()),
            Err(e) => return format!("did not settle: {e}"),
        }
    }
    let word = if actives.len() == 1 { "active" } else { "actives" };
    format!("settled in {}: {} {word}", secs(start.elapsed().as_nanos() as u64), actives.join(", "))
}

/// Steps member `i`'s wall clock to `offset_ms`, and with `failover` hands it the
/// leadership; what happened.
fn clock_step(cluster: &Cluster, i: usize, offset_ms: i64, failover: bool) -> Vec<String> {
    let name = cluster.members[i].name.clone();
    let set = cluster.set_clock_offset(i, offset_ms).map_or_else(|e| format!(" (failed: {e})"), |()| String::new());
    let mut log = vec![format!("set the wall clock of {name} {}{set}", offset_words(offset_ms))];
    if failover {
        let (ok, out) = cluster.ctl(&["failover", "--stripe", "A", "--to", &name]);
        let first = out.lines().next().unwrap_or("").trim().to_string();
        log.push(format!("failover --stripe A --to {name}: {}", if ok { first } else { format!("refused: {first}") }));
    }
    log
}

fn restart(cluster: &mut Cluster, i: usize) -> String {
    match cluster.try_spawn(i) {
        Ok(()) => format!("restarted {}", cluster.members[i].name),
        Err(e) => format!("could not restart {}: {e}", cluster.members[i].name),
    }
}

/// The member a target names now (in a stripe of one).
pub fn resolve(cluster: &Cluster, target: Target) -> usize {
    resolve_in(cluster, 0, target)
}

/// The member a target names now in stripe `stripe` (an index into all members).
pub fn resolve_in(cluster: &Cluster, stripe: usize, target: Target) -> usize {
    let members = cluster.stripe_members(stripe);
    let servers: Vec<usize> = members.iter().copied().filter(|&i| !cluster.members[i].voter).collect();
    match target {
        Target::Member(i) => members[i.min(members.len() - 1)],
        // No active seen (an election): the first server.
        Target::Active => cluster.active_of(stripe).unwrap_or(servers[0]),
        Target::Mirror(k) => {
            let active = cluster.active_of(stripe);
            let mirrors: Vec<usize> = servers.iter().copied().filter(|&i| Some(i) != active).collect();
            if mirrors.is_empty() {
                servers[k % servers.len()]
            } else {
                mirrors[k % mirrors.len()]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        for topology in [Topology::ThreeServers, Topology::TwoServersAndVoter] {
            for seed in 0..50 {
                assert_eq!(schedule(seed, topology, 60_000), schedule(seed, topology, 60_000));
            }
        }
        assert_ne!(schedule(1, Topology::ThreeServers, 60_000), schedule(2, Topology::ThreeServers, 60_000));
    }

    #[test]
    fn a_schedule_fits_its_duration_and_names_real_members() {
        let families: [&[Family]; 3] = [&[Family::Classic], &Family::ALL, &[Family::Clock, Family::Purge, Family::Stall]];
        for topology in [Topology::ThreeServers, Topology::TwoServersAndVoter] {
            for (seed, families) in (0..200).flat_map(|seed| families.iter().map(move |f| (seed, *f))) {
                let steps = schedule_of(seed, topology, 60_000, families);
                let total: u64 = steps.iter().map(Step::planned_ms).sum();
                assert!(total + 1000 <= 60_000, "seed {seed}: {total} ms");
                assert!(!steps.is_empty(), "seed {seed}: no fault in 60 s");
                for s in &steps {
                    let ok = |t: &Target| match t {
                        Target::Member(i) => *i < topology.members(),
                        Target::Mirror(k) => *k < topology.servers() - 1,
                        Target::Active => true,
                    };
                    match &s.fault {
                        Fault::Kill(t) | Fault::Pause(t) | Fault::Isolate(t) => assert!(ok(t)),
                        Fault::Wipe(t) => assert!(matches!(t, Target::Mirror(_)) && ok(t)),
                        Fault::CutLink(a, b) => assert!(a != b && *a < topology.members() && *b < topology.members()),
                        Fault::Transfer(to) => assert!(to.is_none_or(|i| i < topology.servers())),
                        // Clocks are set on servers only (a voter holds no data and stamps nothing).
                        Fault::Clock { target, .. } => {
                            assert!(ok(target) && !matches!(target, Target::Member(i) if *i >= topology.servers()))
                        }
                        Fault::PurgeTrap { .. } | Fault::Stall | Fault::StripeDown => assert!(s.hold_ms > 0),
                    }
                }
            }
        }
    }

    #[test]
    fn the_classic_family_alone_keeps_the_schedules_of_earlier_versions() {
        // Seed 10's schedule as e66709c printed it (`tandem check --seed 10 --duration 25s --plan`).
        let step = |gap_ms, fault, hold_ms| Step { gap_ms, fault, hold_ms, stripe: 0 };
        let before = vec![
            step(2072, Fault::Wipe(Target::Mirror(0)), 2714),
            step(1740, Fault::CutLink(1, 0), 2869),
            step(2768, Fault::Kill(Target::Active), 2588),
            step(1606, Fault::Pause(Target::Member(2)), 1235),
            step(2413, Fault::Wipe(Target::Mirror(0)), 3233),
        ];
        assert_eq!(schedule_of(10, Topology::ThreeServers, 25_000, &[Family::Classic]), before);
        assert_eq!(schedule(10, Topology::ThreeServers, 25_000), before);
    }

    #[test]
    fn every_family_appears_and_replays_from_its_seed() {
        let all = schedule_of(7, Topology::TwoServersAndVoter, 600_000, &Family::ALL);
        assert_eq!(all, schedule_of(7, Topology::TwoServersAndVoter, 600_000, &Family::ALL));
        assert!(all.iter().any(|s| matches!(s.fault, Fault::Clock { failover: true, offset_ms, .. } if offset_ms < 0)));
        assert!(all.iter().any(|s| matches!(s.fault, Fault::PurgeTrap { .. })));
        assert!(all.iter().any(|s| matches!(s.fault, Fault::Stall)));
        assert!(all.iter().any(|s| matches!(s.fault, Fault::Kill(_))));
        assert_eq!(Family::parse_list("clock, purge"), Ok(vec![Family::Clock, Family::Purge]));
        assert_eq!(Family::parse_list("all"), Ok(Family::ALL.to_vec()));
        assert!(Family::parse_list("weather").is_err());
        assert_eq!(Family::parse_list("none"), Ok(Vec::new()));
        assert!(schedule_of(7, Topology::ThreeServers, 600_000, &[]).is_empty());
    }

    #[test]
    fn topologies_parse_as_the_cli_writes_them() {
        assert_eq!("3".parse::<Topology>(), Ok(Topology::ThreeServers));
        assert_eq!("2+1".parse::<Topology>(), Ok(Topology::TwoServersAndVoter));
        assert_eq!("2x3".parse::<Topology>(), Ok(Topology::TwoStripesOfThree));
        assert_eq!("2x2+1".parse::<Topology>(), Ok(Topology::TwoStripesOfTwoAndVoter));
        assert!("4".parse::<Topology>().is_err());
    }

    #[test]
    fn an_arrays_schedule_names_stripes_and_takes_whole_stripes_down() {
        let steps = schedule(3, Topology::TwoStripesOfThree, 600_000);
        assert!(steps.iter().all(|s| s.stripe < 2));
        assert!(steps.iter().any(|s| s.stripe == 0) && steps.iter().any(|s| s.stripe == 1));
        assert!(steps.iter().any(|s| s.fault == Fault::StripeDown));
        assert!(schedule(3, Topology::ThreeServers, 600_000).iter().all(|s| s.stripe == 0 && s.fault != Fault::StripeDown));
        let down = steps.iter().find(|s| s.fault == Fault::StripeDown).unwrap();
        assert!(down.describe(Topology::TwoStripesOfThree).contains(&format!("stripe {}: stripe down", ["A", "B"][down.stripe])));
    }
}
