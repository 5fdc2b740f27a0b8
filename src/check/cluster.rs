//! A stripe of real `tandem` processes, for the fault harness and the
//! high-availability tests: writes the config (every member on its own loopback
//! address 127.0.x.y, free ports), starts servers and voters, kills, pauses and
//! restarts them, reads `tandem status`, and can put a fault-injecting relay in front
//! of every member's group port to cut links between members. Everything it starts
//! is killed when it is dropped.
//!
//! It does not know what the processes are asked to do: clients and checks live in
//! the rest of `check`. The binary it runs is a parameter: tests pass
//! `env!("CARGO_BIN_EXE_tandem")`, `tandem check` passes its own executable.
//!
//! Methods named `try_*` report trouble as an error (the harness must heal and go on);
//! the others panic with the servers' logs, which is what a test wants.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Each cluster takes its own block of loopback addresses, so clusters running in
/// parallel in one process never share an address (the relay tells members apart by
/// their address). Counted from an offset of the process id, so that processes
/// running side by side (two `tandem check` runs, test binaries run in parallel)
/// start in different blocks: found when two checks, both in 127.0.10.x, took each
/// other's ports and a restarted server could not listen on its own.
static NEXT_BLOCK: AtomicU8 = AtomicU8::new(0);

/// This cluster's block of addresses.
fn next_block() -> u8 {
    let offset = (std::process::id() % u32::from(BLOCKS)) as u8;
    (NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) % BLOCKS + offset) % BLOCKS
}

/// How many blocks of addresses there are: 127.0.10.x to 127.0.59.x.
const BLOCKS: u8 = 50;

pub struct Spec {
    /// One entry per server: restartable or not.
    pub servers: Vec<bool>,
    pub voters: usize,
    /// Put a relay in front of every group port (for partitions).
    pub relayed: bool,
    /// `data-storage` per server (default "1g").
    pub data_storage: Vec<&'static str>,
    /// Stripes in the array (A, B, …), each with these servers and voters.
    pub stripes: usize,
    /// Give every server a `cluster-port` for slot-routing clients.
    pub cluster_ports: bool,
    /// Give every server a `tls-port` too (its certificate files are added with
    /// [`Cluster::use_tls`]).
    pub tls_ports: bool,
}

impl Spec {
    pub fn servers(n: usize) -> Spec {
        Spec {
            servers: vec![true; n],
            voters: 0,
            relayed: false,
            data_storage: Vec::new(),
            stripes: 1,
            cluster_ports: false,
            tls_ports: false,
        }
    }

    /// An array of `stripes` stripes, each of this spec's servers and voters (an
    /// array's servers have cluster ports, as its config requires).
    pub fn stripes(mut self, stripes: usize) -> Spec {
        self.stripes = stripes.max(1);
        self.cluster_ports |= self.stripes > 1;
        self
    }
}

/// The name of the stripe at `index` in an array the harness writes: A, B, …
pub fn stripe_name(index: usize) -> String {
    char::from(b'A' + (index % 26) as u8).to_string()
}

pub struct Member {
    pub name: String,
    /// The position of its stripe in the array.
    pub stripe: usize,
    pub host: String,
    pub client_port: u16,
    /// Its `cluster-port`, when the spec asked for them.
    pub cluster_port: Option<u16>,
    pub group_port: u16,
    /// The HTTP management port (0 for a voter, which has none).
    pub management_port: u16,
    /// Its `tls-port`, when the spec asked for them.
    pub tls_port: Option<u16>,
    /// Where the member really listens when a relay sits on `group_port`.
    pub bind_port: Option<u16>,
    pub voter: bool,
    child: Option<Child>,
    run: usize,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub members: Vec<Member>,
    relay: Option<Relay>,
    binary: PathBuf,
    /// Environment given to every process started from now on.
    env: Vec<(String, String)>,
    /// Give every member its own test clock offset file (`set_clock_offset`).
    clock_offsets: bool,
}

/// `n` distinct free ports on `host`, all held open while they are picked (the OS
/// may hand the same free port out twice in a row).
pub fn free_ports_on(host: &str, n: usize) -> std::io::Result<Vec<u16>> {
    let held = (0..n).map(|_| TcpListener::bind((host, 0))).collect::<std::io::Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// `n` distinct free ports on `host` below the kernel's ephemeral range, all held open
/// while they are picked. For servers that share one address (a machine's own
/// non-loopback address): their connections to each other take ephemeral source ports
/// on it, so a listening port picked from that range may be taken by one of them
/// before its server binds it, and that server then exits at start-up.
pub fn free_ports_below_ephemeral_on(host: &str, n: usize) -> std::io::Result<Vec<u16>> {
    const LOWEST: u16 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(LOWEST);
    if span < 1_000 {
        return free_ports_on(host, n);
    }
    // Start where another test process is unlikely to look (by pid), then walk on.
    let start = std::process::id() % u32::from(span);
    let mut held = Vec::with_capacity(n);
    for step in 0..u32::from(span) {
        if held.len() == n {
            break;
        }
        let port = LOWEST + ((start + step) % u32::from(span)) as u16;
        if let Ok(listener) = TcpListener::bind((host, port)) {
            held.push(listener);
        }
    }
    if held.len() < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("fewer than {n} free ports below {ephemeral_low} on {host}"),
        ));
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

impl Cluster {
    /// Writes the config and starts every member; returns once the stripe is formed
    /// (one ACTIVE-COORDINATOR, every other member PASSIVE-STANDBY).
    pub fn start(binary: impl Into<PathBuf>, spec: Spec) -> Cluster {
        let mut cluster = Cluster::configure(binary, spec);
        cluster.start_all();
        cluster
    }

    /// Writes the config without starting anything.
    pub fn configure(binary: impl Into<PathBuf>, spec: Spec) -> Cluster {
        Cluster::try_configure(binary, spec).unwrap_or_else(|e| panic!("configuring a cluster: {e}"))
    }

    /// Writes the config (in a fresh temporary directory) without starting anything.
    /// Ports are picked free, then bound by the relay a moment later: another socket
    /// may take one in between (every server's outgoing connections draw from the same
    /// range), so an address in use means picking again, a few times.
    pub fn try_configure(binary: impl Into<PathBuf>, spec: Spec) -> std::io::Result<Cluster> {
        let binary = binary.into();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let again = Spec { data_storage: spec.data_storage.clone(), servers: spec.servers.clone(), ..spec };
            match Cluster::configure_once(binary.clone(), again) {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 5 => continue,
                other => return other,
            }
        }
    }

    fn configure_once(binary: PathBuf, spec: Spec) -> std::io::Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("tandem-cluster-").tempdir()?;
        let block = next_block();
        let mut members = Vec::new();
        let mut text = String::from("[cluster]\nname = \"test\"\nsecret = \"test-secret\"\n");
        let per_stripe = spec.servers.len() + spec.voters;
        for stripe in 0..spec.stripes.max(1) {
            text.push_str(&format!("\n[[stripe]]\nname = \"{}\"\nelection-time = \"1s\"\n", stripe_name(stripe)));
            for j in 0..per_stripe {
                let i = stripe * per_stripe + j;
                let host = format!("127.0.{}.{}", 10 + block, 10 + i);
                let voter = j >= spec.servers.len();
                let name = if voter {
                    format!("voter{}", stripe * spec.voters + j - spec.servers.len() + 1)
                } else {
                    format!("server{}", stripe * spec.servers.len() + j + 1)
                };
                let ports = free_ports_on(&host, 6)?;
                let (client_port, group_port, management_port) = (ports[0], ports[1], ports[2]);
                let bind_port = spec.relayed.then_some(ports[3]);
                if voter {
                    text.push_str(&format!("\n[[stripe.voter]]\nname = \"{name}\"\nhost = \"{host}\"\ngroup-port = {group_port}\n"));
                } else {
                    let storage = spec.data_storage.get(j).copied().unwrap_or("1g");
                    text.push_str(&format!(
                        "\n[[stripe.server]]\nname = \"{name}\"\nhost = \"{host}\"\nclient-port = {client_port}\ngroup-port = {group_port}\nmanagement-port = {}\ndata = \"data/{name}\"\ndata-storage = \"{storage}\"\nrestartable = {}\n",
                        management_port,
                        spec.servers[j]
                    ));
                    if spec.cluster_ports {
                        text.push_str(&format!("cluster-port = {}\n", ports[4]));
                    }
                    if spec.tls_ports {
                        text.push_str(&format!("tls-port = {}\n", ports[5]));
                    }
                }
                let management_port = if voter { 0 } else { management_port };
                let cluster_port = (spec.cluster_ports && !voter).then_some(ports[4]);
                let tls_port = (spec.tls_ports && !voter).then_some(ports[5]);
                members.push(Member {
                    name,
                    stripe,
                    host,
                    client_port,
                    cluster_port,
                    group_port,
                    management_port,
                    tls_port,
                    bind_port,
                    voter,
                    child: None,
                    run: 0,
                });
            }
        }
        let config = dir.path().join("tandem.toml");
        std::fs::write(&config, text)?;
        let relay = if spec.relayed { Some(Relay::start(&members)?) } else { None };
        Ok(Cluster { dir, config, members, relay, binary, env: Vec::new(), clock_offsets: false })
    }

    /// Adds a `[cluster]` setting (a TOML line such as `management-token = "…"`) to the
    /// config, for processes started from now on.
    pub fn add_cluster_setting(&self, line: &str) -> std::io::Result<()> {
        let text = std::fs::read_to_string(&self.config)?;
        std::fs::write(&self.config, text.replacen("[cluster]\n", &format!("[cluster]\n{line}\n"), 1))
    }

    /// TLS with the certificates in `dir`: `ca.crt`, and `member.crt` + `member.key`
    /// that it signed (one certificate for every member will do: it needs
    /// `extendedKeyUsage` serverAuth and clientAuth; a member's name is proven by the
    /// cluster secret). `group`: every group port speaks mutual TLS (`tls-group`);
    /// servers with a `tls-port` ([`Spec::tls_ports`]) serve it with these files and
    /// `auth_clients` (Redis's `tls-auth-clients`).
    pub fn use_tls(&self, dir: &Path, group: bool, auth_clients: &str) -> std::io::Result<()> {
        let dir = std::fs::canonicalize(dir)?;
        for file in ["ca.crt", "member.crt", "member.key"] {
            if !dir.join(file).is_file() {
                return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} has no {file}", dir.display())));
            }
        }
        let d = dir.display();
        self.add_cluster_setting(&format!(
            "tls-group = {group}\ntls-auth-clients = \"{auth_clients}\"\ntls-cert-file = \"{d}/member.crt\"\ntls-key-file = \"{d}/member.key\"\ntls-ca-cert-file = \"{d}/ca.crt\""
        ))
    }

    /// The management API's base URL of member `i`.
    pub fn management_url(&self, i: usize) -> String {
        format!("http://{}:{}", self.members[i].host, self.members[i].management_port)
    }

    /// Sets an environment variable for every process started from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// From now on, every member started reads its wall clock's offset from its own
    /// file (the server's `TANDEM_TEST_CLOCK_OFFSET_FILE`), which `set_clock_offset`
    /// writes.
    pub fn enable_clock_offsets(&mut self) {
        self.clock_offsets = true;
    }

    fn clock_file(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.clock-offset-ms", self.members[i].name))
    }

    /// Sets member `i`'s wall clock to the machine's plus `offset_ms` (negative:
    /// behind), as a step: the member sees it within about 10 ms. The file is
    /// replaced whole (rename), so the member never reads half a number.
    pub fn set_clock_offset(&self, i: usize, offset_ms: i64) -> std::io::Result<()> {
        let path = self.clock_file(i);
        let staging = path.with_extension("next");
        std::fs::write(&staging, format!("{offset_ms}\n"))?;
        std::fs::rename(staging, path)
    }

    /// Starts every member and waits for the stripe to form.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.spawn(i);
        }
        self.wait_formed();
    }

    /// Starts member `i` (again); does not wait.
    pub fn spawn(&mut self, i: usize) {
        self.try_spawn(i).unwrap_or_else(|e| panic!("starting {}: {e}", self.members[i].name));
    }

    /// Starts member `i` (again) unless it runs; does not wait.
    pub fn try_spawn(&mut self, i: usize) -> std::io::Result<()> {
        if self.running(i) {
            return Ok(());
        }
        let clock_file = self.clock_offsets.then(|| self.clock_file(i));
        let m = &mut self.members[i];
        m.run += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("{}-{}.stderr", m.name, m.run)))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg(if m.voter { "voter" } else { "server" }).arg("--config").arg(&self.config).args(["--name", &m.name]);
        if let Some(bind) = m.bind_port {
            cmd.args(["--group-bind", &format!("{}:{bind}", m.host)]);
        }
        // TANDEM_SERVER_LOG (a RUST_LOG filter, e.g. "info,openraft=debug") raises
        // what the servers log when a run needs reading closely.
        cmd.current_dir(self.dir.path())
            .env("RUST_LOG", std::env::var("TANDEM_SERVER_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if let Some(file) = clock_file {
            cmd.env(crate::clock::TEST_CLOCK_OFFSET_FILE, file);
        }
        m.child = Some(cmd.spawn()?);
        Ok(())
    }

    pub fn stderr(&self, i: usize) -> String {
        let m = &self.members[i];
        (1..=m.run)
            .map(|run| std::fs::read_to_string(self.dir.path().join(format!("{}-{run}.stderr", m.name))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---- restart ----\n")
    }

    /// SIGKILL: no chance to flush or clean up. A paused process dies as well.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `sig` ("-STOP", "-CONT") to member `i`; false if it does not run.
    pub fn try_signal(&self, i: usize, sig: &str) -> bool {
        let Some(child) = self.members[i].child.as_ref() else { return false };
        Command::new("kill").args([sig, &child.id().to_string()]).status().is_ok_and(|s| s.success())
    }

    pub fn sigstop(&self, i: usize) {
        assert!(self.try_signal(i, "-STOP"), "SIGSTOP {}", self.members[i].name);
    }

    pub fn sigcont(&self, i: usize) {
        assert!(self.try_signal(i, "-CONT"), "SIGCONT {}", self.members[i].name);
    }

    /// Waits for member `i` to exit by itself; its status.
    pub fn wait_exit(&mut self, i: usize, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Some(Ok(Some(status))) = self.members[i].child.as_mut().map(|c| c.try_wait()) {
                self.members[i].child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn running(&mut self, i: usize) -> bool {
        matches!(self.members[i].child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join("data").join(&self.members[i].name)
    }

    /// Runs `tandem <args> --config <file>`; (success, stdout + stderr).
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        match Command::new(&self.binary).args(args).arg("--config").arg(&self.config).output() {
            Ok(out) => (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))),
            Err(e) => (false, format!("cannot run {}: {e}", self.binary.display())),
        }
    }

    /// `tandem status`: (name, state, node id) per member.
    pub fn status(&self) -> Vec<(String, String, String)> {
        let (_, text) = self.ctl(&["status"]);
        text.lines()
            .skip(1)
            .filter_map(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                (cols.len() >= 10).then(|| (cols[1].to_string(), cols[3].to_string(), cols[9].to_string()))
            })
            .collect()
    }

    pub fn state(&self, i: usize) -> String {
        self.status().into_iter().find(|(n, _, _)| *n == self.members[i].name).map(|(_, s, _)| s).unwrap_or_default()
    }

    pub fn node_id(&self, i: usize) -> String {
        self.status().into_iter().find(|(n, _, _)| *n == self.members[i].name).map(|(_, _, id)| id).unwrap_or_default()
    }

    /// The index of the member `tandem status` shows as ACTIVE-COORDINATOR, if exactly one.
    pub fn active(&self) -> Option<usize> {
        let status = self.status();
        let actives: Vec<usize> = (0..self.members.len())
            .filter(|&i| status.iter().any(|(n, s, _)| *n == self.members[i].name && s == "ACTIVE-COORDINATOR"))
            .collect();
        (actives.len() == 1).then(|| actives[0])
    }

    /// The index of the member of `stripe` that `tandem status` shows as
    /// ACTIVE-COORDINATOR, if exactly one.
    pub fn active_of(&self, stripe: usize) -> Option<usize> {
        let status = self.status();
        let actives: Vec<usize> = self
            .stripe_members(stripe)
            .into_iter()
            .filter(|&i| status.iter().any(|(n, s, _)| *n == self.members[i].name && s == "ACTIVE-COORDINATOR"))
            .collect();
        (actives.len() == 1).then(|| actives[0])
    }

    /// Waits until every member in `up` is ACTIVE-COORDINATOR or PASSIVE-STANDBY, with
    /// exactly one active among them (a data server); that active's index.
    pub fn wait_stable(&self, up: &[usize], deadline: Duration) -> usize {
        self.try_wait_stable(up, deadline).unwrap_or_else(|e| panic!("{e}\n{}", self.all_stderr()))
    }

    /// As `wait_stable`; on timeout, the states last seen.
    pub fn try_wait_stable(&self, up: &[usize], deadline: Duration) -> Result<usize, String> {
        let mut last = Vec::new();
        let mut active = None;
        let ok = wait_until(deadline, || {
            last = self.status();
            let state_of = |i: usize| last.iter().find(|(n, _, _)| *n == self.members[i].name).map(|(_, s, _)| s.clone());
            let states: Vec<(usize, String)> = up.iter().map(|&i| (i, state_of(i).unwrap_or_default())).collect();
            let actives: Vec<usize> = states.iter().filter(|(_, s)| s == "ACTIVE-COORDINATOR").map(|(i, _)| *i).collect();
            let settled = states.iter().all(|(_, s)| s == "ACTIVE-COORDINATOR" || s == "PASSIVE-STANDBY");
            if settled && actives.len() == 1 && !self.members[actives[0]].voter {
                active = Some(actives[0]);
                true
            } else {
                false
            }
        });
        match active {
            Some(a) if ok => Ok(a),
            _ => Err(format!("the stripe did not settle within {deadline:?}: {last:?}")),
        }
    }

    /// Waits for every stripe to form; the first stripe's active.
    pub fn wait_formed(&self) -> usize {
        self.wait_array_formed()[0]
    }

    /// The members of the stripe at `stripe`, by index.
    pub fn stripe_members(&self, stripe: usize) -> Vec<usize> {
        (0..self.members.len()).filter(|&i| self.members[i].stripe == stripe).collect()
    }

    /// How many stripes the array has.
    pub fn stripe_count(&self) -> usize {
        self.members.iter().map(|m| m.stripe + 1).max().unwrap_or(1)
    }

    /// Waits for every stripe to form (each with one ACTIVE-COORDINATOR and every
    /// other member PASSIVE-STANDBY); each stripe's active, in stripe order.
    pub fn wait_array_formed(&self) -> Vec<usize> {
        (0..self.stripe_count()).map(|s| self.wait_stable(&self.stripe_members(s), Duration::from_secs(30))).collect()
    }

    pub fn all_stderr(&self) -> String {
        (0..self.members.len())
            .map(|i| format!("==== {} ====\n{}", self.members[i].name, tail(&self.stderr(i), 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn url(&self, i: usize) -> String {
        format!("redis://{}:{}/", self.members[i].host, self.members[i].client_port)
    }

    /// A connection to server `i` with short timeouts.
    pub fn conn(&self, i: usize) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url(i))?;
        let con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(10)))?;
        con.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(con)
    }

    /// This server's own data digest (a local read: READONLY, then TANDEM.DIGEST).
    pub fn digest(&self, i: usize) -> String {
        self.try_digest(i).unwrap_or_else(|e| panic!("TANDEM.DIGEST on {}: {e}", self.members[i].name))
    }

    pub fn try_digest(&self, i: usize) -> redis::RedisResult<String> {
        let mut con = self.conn(i)?;
        let _: redis::RedisResult<String> = redis::cmd("READONLY").query(&mut con);
        redis::cmd("TANDEM.DIGEST").query(&mut con)
    }

    /// Waits until every server in `up` reports the same digest; that digest.
    pub fn wait_converged(&self, up: &[usize], deadline: Duration) -> String {
        self.try_wait_converged(up, deadline).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As `wait_converged`; on timeout, the digests last seen (server, digest or error).
    pub fn try_wait_converged(&self, up: &[usize], deadline: Duration) -> Result<String, String> {
        let servers: Vec<usize> = up.iter().copied().filter(|&i| !self.members[i].voter).collect();
        let mut last: Vec<Result<String, String>> = Vec::new();
        let ok = wait_until(deadline, || {
            last = servers.iter().map(|&i| self.try_digest(i).map_err(|e| e.to_string())).collect();
            last.iter().all(|d| d.is_ok()) && last.windows(2).all(|w| w[0] == w[1])
        });
        match last.first() {
            Some(Ok(digest)) if ok => Ok(digest.clone()),
            _ => {
                let seen: Vec<String> = servers
                    .iter()
                    .zip(&last)
                    .map(|(&i, d)| format!("{}: {}", self.members[i].name, d.clone().unwrap_or_else(|e| e)))
                    .collect();
                Err(format!("servers did not converge within {deadline:?}: {}", seen.join(", ")))
            }
        }
    }

    /// Cuts every member in `side` off from every member outside it (both ways).
    pub fn partition(&self, side: &[usize]) {
        let n = self.members.len();
        let pairs: Vec<(usize, usize)> =
            (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).filter(|(i, j)| side.contains(i) != side.contains(j)).collect();
        self.block(&pairs);
    }

    /// Cuts the link between members `a` and `b` only (both ways): each still reaches
    /// everyone else.
    pub fn cut_link(&self, a: usize, b: usize) {
        self.block(&[(a, b), (b, a)]);
    }

    /// Refuses connections from member `i` to member `j` for each pair, and closes the
    /// open ones.
    fn block(&self, pairs: &[(usize, usize)]) {
        let relay = self.relay.as_ref().expect("a relayed cluster");
        let mut blocked = lock(&relay.blocked);
        for &(i, j) in pairs {
            blocked.insert((host_ip(&self.members[i].host), j));
        }
        drop(blocked);
        relay.cut();
    }

    /// Lifts every partition.
    pub fn heal(&self) {
        let relay = self.relay.as_ref().expect("a relayed cluster");
        lock(&relay.blocked).clear();
    }

    /// True if this cluster has relays (and so can be partitioned).
    pub fn relayed(&self) -> bool {
        self.relay.is_some()
    }

    /// Keeps the directory (config, data, server logs) after the cluster is dropped;
    /// its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        let path = self.dir.path().to_path_buf();
        // Swap in a throw-away directory and forget the real one.
        if let Ok(empty) = tempfile::tempdir() {
            let _ = std::mem::replace(&mut self.dir, empty).keep();
        }
        path
    }
}

/// Polls `check` until it returns true or `deadline` passes; true if it did.
pub fn wait_until(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check()
}

fn host_ip(host: &str) -> IpAddr {
    host.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            // A paused process must be resumed to die promptly.
            self.try_signal(i, "-CONT");
            self.kill9(i);
        }
        if let Some(relay) = &self.relay {
            relay.stop.store(true, Ordering::Relaxed);
            relay.cut_all();
        }
    }
}

/// An open relayed connection: its id, the caller's address, the member it reaches,
/// and a handle on each side (to cut it).
type Link = (u64, IpAddr, usize, TcpStream, TcpStream);

/// A relay on every member's advertised group port, forwarding to where it really
/// listens. Connections from a blocked (caller address, member) pair are refused,
/// and cut if already open: a partition of the group network, on loopback.
struct Relay {
    blocked: Arc<Mutex<HashSet<(IpAddr, usize)>>>,
    links: Arc<Mutex<Vec<Link>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(members: &[Member]) -> std::io::Result<Relay> {
        let relay = Relay { blocked: Arc::default(), links: Arc::default(), stop: Arc::default() };
        for (j, m) in members.iter().enumerate() {
            let listener = TcpListener::bind((m.host.as_str(), m.group_port))?;
            listener.set_nonblocking(true)?;
            let target = format!("{}:{}", m.host, m.bind_port.unwrap_or(m.group_port));
            let (blocked, links, stop) = (relay.blocked.clone(), relay.links.clone(), relay.stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (inbound, peer) = match listener.accept() {
                        Ok(pair) => pair,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    if lock(&blocked).contains(&(peer.ip(), j)) {
                        let _ = inbound.shutdown(Shutdown::Both);
                        continue;
                    }
                    let _ = inbound.set_nonblocking(false);
                    let Ok(outbound) = TcpStream::connect(&target) else {
                        let _ = inbound.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (Ok(a), Ok(b), Ok(c), Ok(d)) =
                        (inbound.try_clone(), outbound.try_clone(), inbound.try_clone(), outbound.try_clone())
                    else {
                        let _ = inbound.shutdown(Shutdown::Both);
                        continue;
                    };
                    let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
                    lock(&links).push((id, peer.ip(), j, a, b));
                    pump(c, d, None);
                    // The link is forgotten once it closes: a long run opens many
                    // (every `tandem status` is one), and each holds two descriptors.
                    pump(outbound, inbound, Some((links.clone(), id)));
                }
            });
        }
        Ok(relay)
    }

    /// Closes the open links that are now blocked.
    fn cut(&self) {
        let blocked = lock(&self.blocked);
        let mut links = lock(&self.links);
        links.retain(|(_, ip, j, a, b)| {
            if blocked.contains(&(*ip, *j)) {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    fn cut_all(&self) {
        for (_, _, _, a, b) in lock(&self.links).drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

static NEXT_LINK: AtomicU64 = AtomicU64::new(0);

/// Copies `from` to `to` until either side closes, then closes both; forgets the
/// link `forget` names.
fn pump(mut from: TcpStream, mut to: TcpStream, forget: Option<(Arc<Mutex<Vec<Link>>>, u64)>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
        if let Some((links, id)) = forget {
            lock(&links).retain(|link| link.0 != id);
        }
    });
}
