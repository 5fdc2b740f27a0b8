//! The `tandem` binary: parses the command line, loads and validates the config,
//! and runs the chosen role. Errors stop here with context (anyhow); the library
//! underneath uses typed errors.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use tandem::config::Config;
use tandem::replication::control;
use tandem::replication::replica::ReplicaOptions;
use tandem::replication::stripe::StripeLayout;
use tandem::server::ServerOptions;

// jemalloc, counted: `used_memory` and `data-storage` are measured at the allocator.
// jemalloc hands freed pages back to the OS after 1 s instead of 10 s, from its own
// background thread (as Redis's jemalloc-bg-thread): the Raft log churns through
// memory (entries are purged behind snapshots), and RSS should follow the data, not
// the log's high-water mark, even when the server goes idle.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

#[global_allocator]
static ALLOC: tandem::memory::CountingAlloc<tikv_jemallocator::Jemalloc> = tandem::memory::CountingAlloc(tikv_jemallocator::Jemalloc);

/// `tandem --version`: the crate's version and the commit it was built from (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TANDEM_BUILD"), ")");

/// Shown under `tandem --help` and `tandem -h`: what to run first, and the topologies.
const AFTER_HELP: &str = "\
Topologies (one TOML file describes the whole array; examples/config/ has one each):
  development        one server, data in memory        tandem server   (no file needed)
  reliability        one server, Fast Restart on disk  examples/config/reliability.toml
  high availability  one stripe: 3 servers,            examples/config/ha-3-servers.toml
                     or 2 servers and a voter          examples/config/ha-2-servers-voter.toml
  scale              two or more stripes               examples/config/scale-2-stripes.toml

Try it first:
  tandem server                 a development server on 127.0.0.1:9510 (redis-cli -p 9510 ping)
  tandem demo                   a whole local array of two stripes, with its console

Guides: docs/concepts.md, docs/configuration.md, docs/operations.md, docs/clients.md";

#[derive(Parser)]
#[command(
    name = "tandem",
    version = VERSION,
    about = "A server array for clustering application servers: shared state over the Redis protocol, in memory, on disk and on mirrors.",
    after_help = AFTER_HELP
)]
struct Cli {
    /// How log lines are written to standard error: text (colours only on a terminal)
    /// or json (one object a line, for log shippers). RUST_LOG sets the level.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one server. Without --config: the development topology on 127.0.0.1:9510.
    Server {
        /// The array's TOML config file, the same on every server (docs/configuration.md).
        #[arg(long, requires = "name")]
        config: Option<std::path::PathBuf>,
        /// This server's name in the config file (a [[stripe.server]] name).
        #[arg(long, requires = "config")]
        name: Option<String>,
        /// Overrides the client port (development topology only).
        #[arg(long, conflicts_with = "config")]
        port: Option<u16>,
        /// The management port (development topology only; default 9540, or off when
        /// --port is given, so several development servers can run side by side; 0: off).
        #[arg(long, conflicts_with = "config")]
        management_port: Option<u16>,
        /// Threads serving clients and Raft (1: everything on one core, as Redis).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Listen for the group port here instead of host:group-port (a proxy or
        /// NAT between the members).
        #[arg(long, requires = "config")]
        group_bind: Option<String>,
    },
    /// Runs a voter: votes in its stripe's elections and keeps the log's tail, holds
    /// no data, never stays active.
    Voter {
        /// The array's TOML config file, the same on every server and voter.
        #[arg(long)]
        config: std::path::PathBuf,
        /// This voter's name in the config file (a [[stripe.voter]] name).
        #[arg(long)]
        name: String,
        /// Listen for the group port here instead of host:group-port (a proxy or
        /// NAT between the members).
        #[arg(long)]
        group_bind: Option<String>,
    },
    /// Shows every server and voter: state, light, term, commit index, lag. Asks
    /// every member over the group port, or with --api one server's management API.
    /// Exits non-zero when a stripe has no active (ACTIVE-COORDINATOR server).
    Status {
        /// The array's TOML config file: every member listed in it is asked.
        #[arg(long, required_unless_present = "api")]
        config: Option<std::path::PathBuf>,
        /// A server's management URL (http://host:management-port, or https:// with
        /// tls-management): that server answers for the whole array. With --config too,
        /// only that server is asked, and an https:// URL's certificate is checked
        /// against the config's tls-ca-cert-file (or its tls-cert-file).
        #[arg(long)]
        api: Option<String>,
        /// Wait up to this long ("30s", "2m") for the array to settle: every stripe has
        /// an active and every member is up and caught up (light green or cyan). Asks
        /// every 200 ms; exits non-zero, naming the members, if it did not settle.
        #[arg(long, value_parser = parse_duration)]
        wait: Option<std::time::Duration>,
    },
    /// Stops a server or voter. An active with no PASSIVE-STANDBY mirror refuses
    /// (it would stop its stripe) unless --force; one with a mirror hands over first.
    Stop {
        /// The array's TOML config file (to find the member and its stripe).
        #[arg(long)]
        config: std::path::PathBuf,
        /// The server or voter to stop, by its name in the config.
        #[arg(long)]
        name: String,
        /// Stop it even if that leaves its stripe without an active or a quorum.
        #[arg(long)]
        force: bool,
    },
    /// Hands a stripe's leadership to a PASSIVE-STANDBY mirror.
    Failover {
        /// The array's TOML config file (to find the stripe's members).
        #[arg(long)]
        config: std::path::PathBuf,
        /// The stripe whose active hands over, by its name in the config.
        #[arg(long)]
        stripe: String,
        /// The mirror to hand over to (default: the most caught up).
        #[arg(long)]
        to: Option<String>,
    },
    /// Stops the whole array: mirrors and voters first, then actives.
    Shutdown {
        /// The array's TOML config file: every member listed in it is stopped.
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Runs the fault harness: starts a stripe of real tandem processes on loopback
    /// addresses, runs clients under faults drawn from --seed (kill -9, SIGSTOP,
    /// partitions, leadership transfer, hot swap; with --faults, clock steps, purge
    /// traps and stalls), heals the stripe, and checks the history (linearizable
    /// registers, lists, counters, expiry, transactions, eviction, equal digests).
    /// Exit code 1 on a violation, 2 if a history could not be decided.
    Check(CheckArgs),
    /// Starts a whole local array in a temporary directory — two stripes of three
    /// servers (with --voter: two servers and a voter each) on loopback addresses —,
    /// prints how to connect plain and cluster clients and where the consoles are,
    /// runs until Ctrl-C, then stops every server and removes the directory.
    Demo {
        /// Each stripe has two servers and a voter instead of three servers.
        #[arg(long)]
        voter: bool,
        /// How many stripes.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
        stripes: u8,
    },
    /// Deletes a server's data (its Raft log and snapshots). The server must be
    /// stopped; asks to type the server's name unless --yes is given.
    ClearData {
        /// The array's TOML config file (to find the server's data directory).
        #[arg(long)]
        config: std::path::PathBuf,
        /// The stopped server whose data is deleted, by its name in the config.
        #[arg(long)]
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Text => tandem::logging::LogFormat::Text,
        LogFormatArg::Json => tandem::logging::LogFormat::Json,
    };
    tandem::logging::init(format, "info,openraft=error");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Written without `eprintln!`, which panics when standard error cannot be
            // written (a log file on a full disk): the exit code stays the failure's.
            use std::io::Write as _;
            let mut stderr = std::io::stderr();
            let _ = writeln!(stderr, "tandem: {e:#}");
            if let Some(hint) = what_to_do(&e) {
                let _ = writeln!(stderr, "tandem: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The next step for an error that stops the binary, where there is one to give.
fn what_to_do(error: &anyhow::Error) -> Option<&'static str> {
    use tandem::config::ConfigError;
    match error.downcast_ref::<ConfigError>()? {
        ConfigError::Read { .. } => Some("give the path of the array's TOML file with --config (examples/config/ has one per topology)"),
        ConfigError::Syntax { .. } | ConfigError::Invalid { .. } => {
            Some("fix the lines above and run the command again; every field is described in docs/configuration.md")
        }
        ConfigError::UnknownServer { .. } | ConfigError::UnknownVoter { .. } => {
            Some("--name takes a name from the config file: a [[stripe.server]] for `tandem server`, a [[stripe.voter]] for `tandem voter`")
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server { config, name, port, management_port, threads, group_bind } => {
            let mut options = server_options(config, name, port, management_port)?;
            let _ = tandem::server::break_safety_stale_reads();
            options.replica.group_bind = group_bind;
            // One thread (the default) serves every client, as Redis does: on a small
            // machine that also runs the clients, cross-thread wakeups cost more than a
            // second core gives (BENCHMARKS.md). The log writer and snapshot writers
            // run apart from it either way.
            let mut builder =
                if threads <= 1 { tokio::runtime::Builder::new_current_thread() } else { tokio::runtime::Builder::new_multi_thread() };
            if threads > 1 {
                builder.worker_threads(threads);
            }
            let runtime = builder.enable_all().build().context("starting the runtime")?;
            runtime.block_on(async move { tandem::server::run(options, stop_on_signal()).await })?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::ClearData { config, name, yes } => clear_data(&config, &name, yes),
        Command::Demo { voter, stripes } => demo(voter, usize::from(stripes)),
        Command::Check(args) => check(args),
        Command::Voter { config, name, group_bind } => {
            let file = load_config(&config)?;
            let (stripe, voter) = file.require_voter(&name)?;
            tandem::logging::set_member(&stripe.name, &voter.name, true);
            let options = ReplicaOptions {
                layout: StripeLayout::from_config(&file, stripe),
                name: voter.name.clone(),
                data_dir: None,
                witness: true,
                group_port: true,
                group_bind,
                local_slots: None,
            };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
            runtime.block_on(async move { tandem::replication::replica::run_voter(options, stop_on_signal()).await })?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Status { config, api, wait } => {
            let config = config.map(load_config).transpose()?;
            let roots = tandem::management::client::trust(config.as_ref())?;
            let runtime = control_runtime()?;
            let deadline = std::time::Instant::now() + wait.unwrap_or_default();
            let (table, unsettled) = loop {
                let table = match (&config, &api) {
                    (_, Some(url)) => runtime.block_on(tandem::management::client::status_table(url, &roots))?,
                    (Some(config), None) => runtime.block_on(control::status_table(config)),
                    (None, None) => anyhow::bail!("give --config or --api"),
                };
                let unsettled = if wait.is_some() { unsettled_members(&table.text) } else { Vec::new() };
                let settled = table.without_active.is_empty() && unsettled.is_empty();
                if settled || std::time::Instant::now() >= deadline {
                    break (table, unsettled);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            };
            print!("{}", table.text);
            // A stripe with no active serves none of its slots: scripts and health
            // checks must see that in the exit code.
            let mut trouble = table.without_active;
            if !unsettled.is_empty() {
                trouble.push(format!("not settled within --wait: {}", unsettled.join(", ")));
            }
            if !trouble.is_empty() {
                anyhow::bail!("{}", trouble.join("; "));
            }
            Ok(())
        }
        Command::Stop { config, name, force } => {
            let file = load_config(&config)?;
            println!("{}", control_runtime()?.block_on(control::stop(&file, &name, force))?);
            wait_data_released(&file, |server| server == name);
            Ok(())
        }
        Command::Failover { config, stripe, to } => {
            let file = load_config(&config)?;
            println!("{}", control_runtime()?.block_on(control::failover(&file, &stripe, to.as_deref()))?);
            Ok(())
        }
        Command::Shutdown { config } => {
            let file = load_config(&config)?;
            for line in control_runtime()?.block_on(control::shutdown(&file))? {
                println!("{line}");
            }
            wait_data_released(&file, |_| true);
            Ok(())
        }
    }
}

/// Members of a `tandem status` table whose light is neither green (the active) nor
/// cyan (a caught-up mirror or voter), as "server3 is INITIALIZING".
fn unsettled_members(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (name, state, light) = (cols.get(1)?, cols.get(3)?, cols.get(4)?);
            (!matches!(*light, "green" | "cyan")).then(|| format!("{name} is {state}"))
        })
        .collect()
}

fn parse_workload(text: &str) -> Result<tandem::check::clients::Extra, String> {
    use tandem::check::clients::Extra;
    match text.trim() {
        "ttl" => Ok(Extra::Ttl),
        "txn" => Ok(Extra::Txn),
        other => Err(format!("{other:?} is not a workload: expected ttl or txn (the eviction run is --evict POLICY)")),
    }
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    tandem::config::parse_duration_ms(text).map(std::time::Duration::from_millis)
}

// `tandem check`'s options (its help is the Check variant's doc comment).
#[derive(clap::Args)]
struct CheckArgs {
    /// The seed of the fault schedule and of the clients' choices (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// 3 (three servers), 2+1 (two servers and a voter), or an array of two such
    /// stripes: 2x3, 2x2+1 (clients use keys of both stripes through any server;
    /// faults hit either stripe, now and then a whole stripe).
    #[arg(long, default_value = "3")]
    topology: tandem::check::faults::Topology,
    /// How long clients run under faults ("30s", "10m").
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// Concurrent clients, spread over the servers.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Keep the cluster's files (config, data, server logs) even without a violation
    /// (they are always kept after one).
    #[arg(long)]
    keep: bool,
    /// Print the seed, topology and fault schedule, and start nothing.
    #[arg(long)]
    plan: bool,
    /// Inject each fault without waiting for the stripe to settle after the last:
    /// faults compound (availability may go for a while; safety must not).
    #[arg(long)]
    rough: bool,
    /// Breaks a guarantee on purpose in the servers it starts (debug builds only;
    /// "stale-reads"): shows that the checks catch it.
    #[arg(long, hide = true)]
    break_safety: Option<String>,
    /// The tandem executable to start the servers with (default: this one), to
    /// check another build.
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Families of faults the schedule draws from, comma-separated: classic (kill
    /// -9, SIGSTOP, partitions, failover, hot swap), clock (wall-clock steps, some
    /// followed by a failover to that server), purge (a mirror paused through a
    /// write burst, then the active killed), stall (every member but the active
    /// paused: writes time out), all, or none.
    #[arg(long, default_value = "classic")]
    faults: String,
    /// Workloads besides registers, counters and lists, comma-separated: ttl (keys
    /// with a time to live), txn (WATCH/MULTI/EXEC transactions).
    #[arg(long, value_delimiter = ',', value_parser = parse_workload)]
    workload: Vec<tandem::check::clients::Extra>,
    /// Clients resend a command on the errors go-redis resends on (TRYAGAIN,
    /// CLUSTERDOWN, LOADING, MOVED, ASK, …); the checks count duplicates.
    #[arg(long)]
    retry: bool,
    /// Clients of mirrors besides --clients: each sends to a server that is a
    /// mirror (asking ROLE), INCRs and RPUSHes keys of its own, and the report
    /// counts their duplicates and unknown outcomes apart (the goal is 0 and 0).
    #[arg(long, default_value_t = 0)]
    mirror_clients: usize,
    /// An eviction run with this maxmemory-policy (volatile-ttl, volatile-lru, …):
    /// a small data-storage and keys made volatile, then persistent, which must
    /// never be evicted.
    #[arg(long)]
    evict: Option<String>,
    /// A directory holding ca.crt, and member.crt + member.key signed by it: every
    /// group port speaks mutual TLS with them (tls-group), Raft and the CLI included.
    #[arg(long)]
    tls_dir: Option<std::path::PathBuf>,
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    use rand::Rng;
    let binary = match args.binary {
        Some(path) => path,
        None => std::env::current_exe().context("finding the tandem executable")?,
    };
    let mut options = tandem::check::Options::new(binary, args.seed.unwrap_or_else(|| rand::thread_rng().gen()));
    options.topology = args.topology;
    options.duration = args.duration;
    options.clients = args.clients.max(1);
    options.settle = !args.rough;
    options.break_safety = args.break_safety;
    options.families = tandem::check::faults::Family::parse_list(&args.faults).map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
    if let Some(policy) = args.evict.as_deref().filter(|p| !p.starts_with("volatile-")) {
        anyhow::bail!(
            "--evict {policy}: the eviction run checks that keys with no time to live are never evicted, so it takes a volatile-* policy"
        );
    }
    options.extras = args.workload;
    options.retry = args.retry;
    options.mirror_clients = args.mirror_clients;
    options.evict = args.evict;
    options.keep_on_violation = true;
    options.keep_always = args.keep;
    options.tls_dir = args.tls_dir;
    if args.plan {
        print!("{}", tandem::check::describe(&options));
        return Ok(());
    }
    let report = tandem::check::run(&options)?;
    print!("{report}");
    println!("{}", tandem::check::summary(&report));
    // 1: a violation; 2: no violation found, but some history could not be decided.
    if !report.passed() {
        std::process::exit(1);
    }
    if !report.inconclusive.is_empty() {
        std::process::exit(2);
    }
    Ok(())
}

/// `tandem demo`: see the command's help.
fn demo(voter: bool, stripes: usize) -> anyhow::Result<()> {
    use tandem::check::cluster::{stripe_name, Cluster, Spec};
    let binary = std::env::current_exe().context("finding this executable")?;
    let spec =
        Spec { cluster_ports: true, ..if voter { Spec { voters: 1, ..Spec::servers(2) } } else { Spec::servers(3) } }.stripes(stripes);
    let mut cluster = Cluster::try_configure(binary, spec).context("writing the demo's config")?;
    eprintln!("starting {} servers in {} ...", cluster.members.len(), cluster.dir.path().display());
    for i in 0..cluster.members.len() {
        cluster.try_spawn(i).with_context(|| format!("starting {}", cluster.members[i].name))?;
    }
    let mut actives = Vec::new();
    for s in 0..stripes {
        let members = cluster.stripe_members(s);
        let active = cluster
            .try_wait_stable(&members, std::time::Duration::from_secs(60))
            .map_err(|e| anyhow::anyhow!("stripe {} did not form: {e}\n{}", stripe_name(s), cluster.all_stderr()))?;
        actives.push(active);
    }
    let first = &cluster.members[actives[0]];
    println!("Tandem demo: {stripes} stripe(s), {} processes, in {}", cluster.members.len(), cluster.dir.path().display());
    for s in 0..stripes {
        println!("  stripe {}:", stripe_name(s));
        for i in cluster.stripe_members(s) {
            let m = &cluster.members[i];
            let role = if actives.contains(&i) {
                "active"
            } else if m.voter {
                "voter"
            } else {
                "mirror"
            };
            if m.voter {
                println!("    {:<9} {:<7} group {}:{}", m.name, role, m.host, m.group_port);
            } else {
                println!(
                    "    {:<9} {:<7} client {}:{}  console http://{}:{}/",
                    m.name, role, m.host, m.client_port, m.host, m.management_port
                );
            }
        }
    }
    println!("Plain clients see one database through any server:");
    println!("  redis-cli -h {} -p {}", first.host, first.client_port);
    let cluster_port = first.cluster_port.unwrap_or(first.client_port);
    println!("Cluster clients route by slot (CLUSTER SLOTS lists every stripe's cluster port):");
    println!("  redis-cli -c -h {} -p {}", first.host, cluster_port);
    println!("  python3 -c 'import redis; print(redis.RedisCluster(host=\"{}\", port={}).ping())'", first.host, cluster_port);
    println!("The console: http://{}:{}/   Status: tandem status --config {}", first.host, first.management_port, cluster.config.display());
    println!("Press Ctrl-C to stop every server and remove the directory.");
    control_runtime()?.block_on(wait_for_signal());
    eprintln!("stopping the demo");
    drop(cluster);
    Ok(())
}

/// After `tandem stop` or `shutdown`: a server that no longer answers may still be
/// finishing (its last log writes) and holds its data directory until it exits, so
/// starting it again or `tandem clear-data` at once would find the directory in use.
/// Where a stopped server's data directory is on this machine (as seen from here),
/// wait, up to 30 s, for the process named in its lock file to be gone; elsewhere
/// there is nothing to wait for (a service manager waits for the exit itself).
fn wait_data_released(config: &Config, stopped: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for server in config.stripes.iter().flat_map(|s| &s.servers).filter(|s| stopped(&s.name)) {
        let Ok(text) = std::fs::read_to_string(server.data.join("LOCK")) else { continue };
        let Ok(pid) = text.trim().parse::<u32>() else { continue };
        // Only a live tandem process is waited for (/proc: Linux). A zombie (exited, not
        // yet reaped by its parent) has closed its files already: state Z in its stat.
        let holds = || {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("Z");
            comm.trim() == "tandem" && state != "Z" && state != "X"
        };
        while holds() && pid != std::process::id() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if holds() {
            eprintln!("tandem: {} (pid {pid}) still runs after 30 s; its data directory stays in use until it exits", server.name);
        }
    }
}

fn control_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

fn clear_data(path: &std::path::Path, name: &str, yes: bool) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let (_stripe, server) = config.require_server(name)?;
    if !yes {
        use std::io::BufRead;
        eprintln!("This deletes every write server {name} holds in {}. Type the server's name to confirm:", server.data.display());
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the confirmation")?;
        if line.trim() != name {
            anyhow::bail!("not confirmed: nothing was deleted");
        }
    }
    tandem::replication::data_dir::DataDir::clear(&server.data).with_context(|| format!("clearing the data of {name}"))?;
    eprintln!("cleared the data of {name} in {}", server.data.display());
    Ok(())
}

fn server_options(
    config: Option<std::path::PathBuf>,
    name: Option<String>,
    port: Option<u16>,
    management_port: Option<u16>,
) -> anyhow::Result<ServerOptions> {
    let (config, name, file) = match (config, name) {
        (Some(path), Some(name)) => (load_config(&path)?, name, path.display().to_string()),
        _ => (Config::development(), "server1".to_string(), String::new()),
    };
    let (stripe, server) = config.require_server(&name)?;
    tandem::logging::set_member(&stripe.name, &server.name, false);
    let management = tandem::management::ManagementOptions {
        name: server.name.clone(),
        config: std::sync::Arc::new(config.clone()),
        host: server.host.clone(),
        port: match (management_port, port) {
            (Some(p), _) => p,
            (None, Some(_)) => 0,
            (None, None) => server.management_port,
        },
    };
    let replica = ReplicaOptions {
        layout: StripeLayout::from_config(&config, stripe),
        name: server.name.clone(),
        data_dir: server.restartable.then(|| server.data.clone()),
        witness: false,
        group_port: !file.is_empty(),
        group_bind: None,
        local_slots: local_slots(&config, &stripe.name),
    };
    let array = config.stripes.iter().map(|s| StripeLayout::from_config(&config, s)).collect();
    Ok(ServerOptions {
        array,
        replica,
        name: server.name.clone(),
        host: server.host.clone(),
        client_port: port.unwrap_or(server.client_port),
        cluster_port: server.cluster_port,
        tls_port: server.tls_port,
        tls: config.cluster.tls.clone(),
        data_storage_bytes: server.data_storage_bytes,
        requirepass: config.cluster.requirepass.clone(),
        protected_mode: config.cluster.protected_mode,
        aclfile: config.cluster.aclfile.clone(),
        client_reconnect_window_ms: config.cluster.client_reconnect_window_ms,
        config_file: file,
        management,
    })
}

/// The slots `stripe` owns in an array of several stripes (the order of the config's
/// stripes decides them, as for routing: `ClusterView::array`).
fn local_slots(config: &Config, stripe: &str) -> Option<std::sync::Arc<[(u16, u16)]>> {
    if config.stripes.len() < 2 {
        return None;
    }
    let at = config.stripes.iter().position(|s| s.name == stripe)?;
    let ranges = tandem::cluster::slot::even_ranges(config.stripes.len());
    ranges.get(at).map(|r| std::sync::Arc::from(vec![*r]))
}

/// Turns true on SIGINT or SIGTERM (call inside the runtime).
fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else { return std::future::pending().await };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads the config, and loads the group ports' TLS certificates when it asks for
/// `tls-group` (every command that speaks to a group port needs them).
fn load_config(path: impl AsRef<std::path::Path>) -> anyhow::Result<Config> {
    let config = Config::from_file(path)?;
    tandem::replication::group_tls::install(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(config)
}
