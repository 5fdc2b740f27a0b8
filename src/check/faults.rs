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

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::cluster::Cluster;
use super::history::secs;

/// The high-availability topologies of DESIGN.md §1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Three servers.
    ThreeServers,
    /// Two servers and a voter.
    TwoServersAndVoter,
}

impl Topology {
    pub fn servers(self) -> usize {
        match self {
            Topology::ThreeServers => 3,
            Topology::TwoServersAndVoter => 2,
        }
    }

    pub fn voters(self) -> usize {
        match self {
            Topology::ThreeServers => 0,
            Topology::TwoServersAndVoter => 1,
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
            other => Err(format!("{other:?} is not a topology: expected 3 (three servers) or 2+1 (two servers and a voter)")),
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::ThreeServers => write!(f, "3 (server1, server2, server3)"),
            Topology::TwoServersAndVoter => write!(f, "2+1 (server1, server2, voter1)"),
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
}

/// One fault: injected `gap_ms` after the previous one healed (and the stripe
/// settled), healed `hold_ms` later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub gap_ms: u64,
    pub fault: Fault,
    pub hold_ms: u64,
}

/// The faults of a run of `duration_ms` on `topology`, from `seed` alone.
pub fn schedule(seed: u64, topology: Topology, duration_ms: u64) -> Vec<Step> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut below = |n: u64| rng.next_u64() % n.max(1);
    let (members, servers) = (topology.members() as u64, topology.servers() as u64);
    let mut steps = Vec::new();
    let mut t = 0;
    loop {
        // The first fault once clients are under way; a quiet second at the end.
        let gap_ms = if steps.is_empty() { 1500 + below(1500) } else { 1000 + below(2500) };
        let mut hold_ms = 1000 + below(3000);
        let target = |below: &mut dyn FnMut(u64) -> u64| match below(3) {
            0 => Target::Active,
            1 => Target::Mirror(below(servers - 1) as usize),
            _ => Target::Member(below(members) as usize),
        };
        let fault = match below(100) {
            0..=24 => Fault::Kill(target(&mut below)),
            25..=41 => Fault::Pause(target(&mut below)),
            42..=61 => Fault::Isolate(target(&mut below)),
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
        if t + gap_ms + hold_ms + 1000 > duration_ms {
            break;
        }
        t += gap_ms + hold_ms;
        steps.push(Step { gap_ms, fault, hold_ms });
    }
    steps
}

fn member_name(i: usize, topology: Topology) -> String {
    if i < topology.servers() {
        format!("server{}", i + 1)
    } else {
        format!("voter{}", i - topology.servers() + 1)
    }
}

impl Step {
    /// The step in words, members named as in `topology`.
    pub fn describe(&self, topology: Topology) -> String {
        let who = |t: &Target| match t {
            Target::Active => "the active".to_string(),
            Target::Mirror(k) => format!("mirror #{k}"),
            Target::Member(i) => member_name(*i, topology),
        };
        let hold = secs(self.hold_ms * 1_000_000);
        let what = match &self.fault {
            Fault::Kill(t) => format!("kill -9 {}, restart after {hold}", who(t)),
            Fault::Pause(t) => format!("SIGSTOP {}, SIGCONT after {hold}", who(t)),
            Fault::Isolate(t) => format!("isolate {} from the others, heal after {hold}", who(t)),
            Fault::CutLink(a, b) => {
                format!("cut the link {} <-> {}, heal after {hold}", member_name(*a, topology), member_name(*b, topology))
            }
            Fault::Transfer(None) => "tandem failover --stripe A".to_string(),
            Fault::Transfer(Some(i)) => format!("tandem failover --stripe A --to {}", member_name(*i, topology)),
            Fault::Wipe(t) => format!("hot swap {}: kill -9, delete its data directory, start it empty after {hold}", who(t)),
        };
        format!("+{} {what}", secs(self.gap_ms * 1_000_000))
    }
}

/// How long the stripe may take to settle after a fault is healed before the next
/// one starts anyway (the run notes it).
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);

/// Injects `step` on `cluster`, holds it, heals it, and (if `settle`) waits up to a
/// deadline for the stripe to settle. Lines for the run's log, stamped with time
/// since `epoch`.
pub fn apply(cluster: &mut Cluster, step: &Step, epoch: Instant, settle: bool) -> Vec<String> {
    let stamp = |what: String| format!("{} {what}", secs(epoch.elapsed().as_nanos() as u64));
    let mut log = Vec::new();
    let hold = Duration::from_millis(step.hold_ms);
    let name = |c: &Cluster, i: usize| c.members[i].name.clone();
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
            cluster.cut_link(*a, *b);
            log.push(stamp(format!("cut the link {} <-> {}", name(cluster, *a), name(cluster, *b))));
            std::thread::sleep(hold);
            cluster.heal();
            log.push(stamp("healed the link".to_string()));
        }
        Fault::Transfer(to) => {
            let mut args = vec!["failover", "--stripe", "A"];
            let target = to.map(|i| name(cluster, i));
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
    }
    if !settle {
        return log;
    }
    let all: Vec<usize> = (0..cluster.members.len()).collect();
    let start = Instant::now();
    match cluster.try_wait_stable(&all, SETTLE_DEADLINE) {
        Ok(active) => log.push(stamp(format!("settled in {}: {} active", secs(start.elapsed().as_nanos() as u64), name(cluster, active)))),
        Err(e) => log.push(stamp(format!("did not settle: {e}"))),
    }
    log
}

fn restart(cluster: &mut Cluster, i: usize) -> String {
    match cluster.try_spawn(i) {
        Ok(()) => format!("restarted {}", cluster.members[i].name),
        Err(e) => format!("could not restart {}: {e}", cluster.members[i].name),
    }
}

/// The member a target names now.
fn resolve(cluster: &Cluster, target: Target) -> usize {
    let servers: Vec<usize> = (0..cluster.members.len()).filter(|&i| !cluster.members[i].voter).collect();
    match target {
        Target::Member(i) => i.min(cluster.members.len() - 1),
        // No active seen (an election): the first server.
        Target::Active => cluster.active().unwrap_or(servers[0]),
        Target::Mirror(k) => {
            let active = cluster.active();
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
        for topology in [Topology::ThreeServers, Topology::TwoServersAndVoter] {
            for seed in 0..200 {
                let steps = schedule(seed, topology, 30_000);
                let total: u64 = steps.iter().map(|s| s.gap_ms + s.hold_ms).sum();
                assert!(total + 1000 <= 30_000, "seed {seed}: {total} ms");
                assert!(!steps.is_empty(), "seed {seed}: no fault in 30 s");
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
                    }
                }
            }
        }
    }

    #[test]
    fn topologies_parse_as_the_cli_writes_them() {
        assert_eq!("3".parse::<Topology>(), Ok(Topology::ThreeServers));
        assert_eq!("2+1".parse::<Topology>(), Ok(Topology::TwoServersAndVoter));
        assert!("4".parse::<Topology>().is_err());
    }
}
