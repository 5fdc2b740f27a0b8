//! A stripe of real `tandem` processes for high-availability tests: writes the
//! config (every member on its own loopback address 127.0.0.x, free ports), starts
//! servers and voters, kills, pauses and restarts them, reads `tandem status`, and
//! can put a fault-injecting relay in front of every member's group port to cut the
//! stripe in two. Everything it starts is killed when it is dropped.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{binary, wait_until};

/// Each cluster takes its own block of loopback addresses, so clusters of tests
/// running in parallel never share an address.
static NEXT_BLOCK: AtomicU8 = AtomicU8::new(0);

pub struct Spec {
    /// One entry per server: restartable or not.
    pub servers: Vec<bool>,
    pub voters: usize,
    /// Put a relay in front of every group port (for partitions).
    pub relayed: bool,
    /// `data-storage` per server (default "1g").
    pub data_storage: Vec<&'static str>,
}

impl Spec {
    pub fn servers(n: usize) -> Spec {
        Spec { servers: vec![true; n], voters: 0, relayed: false, data_storage: Vec::new() }
    }
}

pub struct Member {
    pub name: String,
    pub host: String,
    pub client_port: u16,
    pub group_port: u16,
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
}

fn free_port_on(host: &str) -> u16 {
    TcpListener::bind((host, 0)).expect("bind an ephemeral port").local_addr().expect("addr").port()
}

impl Cluster {
    /// Writes the config and starts every member; returns once the stripe is formed
    /// (one ACTIVE-COORDINATOR, every other member PASSIVE-STANDBY).
    pub fn start(spec: Spec) -> Cluster {
        let mut cluster = Cluster::configure(spec);
        for i in 0..cluster.members.len() {
            cluster.spawn(i);
        }
        cluster.wait_formed();
        cluster
    }

    /// Writes the config without starting anything.
    pub fn configure(spec: Spec) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let block = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) % 50;
        let mut members = Vec::new();
        let mut text =
            String::from("[cluster]\nname = \"test\"\nsecret = \"test-secret\"\n\n[[stripe]]\nname = \"A\"\nelection-time = \"1s\"\n");
        let count = spec.servers.len() + spec.voters;
        for i in 0..count {
            let host = format!("127.0.{}.{}", 10 + block, 10 + i);
            let voter = i >= spec.servers.len();
            let name = if voter { format!("voter{}", i - spec.servers.len() + 1) } else { format!("server{}", i + 1) };
            let client_port = free_port_on(&host);
            let group_port = free_port_on(&host);
            let bind_port = spec.relayed.then(|| free_port_on(&host));
            if voter {
                text.push_str(&format!("\n[[stripe.voter]]\nname = \"{name}\"\nhost = \"{host}\"\ngroup-port = {group_port}\n"));
            } else {
                let storage = spec.data_storage.get(i).copied().unwrap_or("1g");
                text.push_str(&format!(
                    "\n[[stripe.server]]\nname = \"{name}\"\nhost = \"{host}\"\nclient-port = {client_port}\ngroup-port = {group_port}\nmanagement-port = {}\ndata = \"data/{name}\"\ndata-storage = \"{storage}\"\nrestartable = {}\n",
                    free_port_on(&host),
                    spec.servers[i]
                ));
            }
            members.push(Member { name, host, client_port, group_port, bind_port, voter, child: None, run: 0 });
        }
        let config = dir.path().join("tandem.toml");
        std::fs::write(&config, text).expect("write config");
        let relay = spec.relayed.then(|| Relay::start(&members));
        Cluster { dir, config, members, relay }
    }

    /// Starts member `i` (again); does not wait.
    pub fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.run += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("{}-{}.stderr", m.name, m.run))).expect("stderr file");
        let mut cmd = Command::new(binary());
        cmd.arg(if m.voter { "voter" } else { "server" }).arg("--config").arg(&self.config).args(["--name", &m.name]);
        if let Some(bind) = m.bind_port {
            cmd.args(["--group-bind", &format!("{}:{bind}", m.host)]);
        }
        let child = cmd
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn tandem");
        m.child = Some(child);
    }

    pub fn stderr(&self, i: usize) -> String {
        let m = &self.members[i];
        (1..=m.run)
            .map(|run| std::fs::read_to_string(self.dir.path().join(format!("{}-{run}.stderr", m.name))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---- restart ----\n")
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.members[i].child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().expect("kill").success());
    }

    pub fn sigstop(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    pub fn sigcont(&self, i: usize) {
        self.signal(i, "-CONT");
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
        let out = Command::new(binary()).args(args).arg("--config").arg(&self.config).output().expect("run tandem");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
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

    /// Waits until every member in `up` is ACTIVE-COORDINATOR or PASSIVE-STANDBY, with
    /// exactly one active among them (a data server); that active's index.
    pub fn wait_stable(&self, up: &[usize], deadline: Duration) -> usize {
        let mut last = Vec::new();
        let mut active = None;
        let ok = wait_until(deadline, || {
            last = self.status();
            let states: Vec<(usize, String)> = up
                .iter()
                .map(|&i| (i, last.iter().find(|(n, _, _)| *n == self.members[i].name).map(|(_, s, _)| s.clone()).unwrap_or_default()))
                .collect();
            let actives: Vec<usize> = states.iter().filter(|(_, s)| s == "ACTIVE-COORDINATOR").map(|(i, _)| *i).collect();
            let settled = states.iter().all(|(_, s)| s == "ACTIVE-COORDINATOR" || s == "PASSIVE-STANDBY");
            if settled && actives.len() == 1 && !self.members[actives[0]].voter {
                active = Some(actives[0]);
                true
            } else {
                false
            }
        });
        assert!(ok, "the stripe did not settle within {deadline:?}: {last:?}\n{}", self.all_stderr());
        active.expect("set when settled")
    }

    pub fn wait_formed(&self) -> usize {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.wait_stable(&all, Duration::from_secs(30))
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
        let mut con = self.conn(i).expect("connect for the digest");
        let _: redis::RedisResult<String> = redis::cmd("READONLY").query(&mut con);
        redis::cmd("TANDEM.DIGEST").query(&mut con).expect("TANDEM.DIGEST")
    }

    /// Waits until every server in `up` reports the same digest; that digest.
    pub fn wait_converged(&self, up: &[usize], deadline: Duration) -> String {
        let servers: Vec<usize> = up.iter().copied().filter(|&i| !self.members[i].voter).collect();
        let mut last = Vec::new();
        let ok = wait_until(deadline, || {
            last = servers.iter().map(|&i| self.digest(i)).collect();
            last.windows(2).all(|w| w[0] == w[1])
        });
        assert!(ok, "servers did not converge: {last:?}");
        last[0].clone()
    }

    /// Cuts every member in `side` off from every member outside it (both ways).
    pub fn partition(&self, side: &[usize]) {
        let relay = self.relay.as_ref().expect("a relayed cluster");
        let mut blocked = relay.blocked.lock().unwrap();
        for i in 0..self.members.len() {
            for j in 0..self.members.len() {
                if side.contains(&i) != side.contains(&j) {
                    blocked.insert((host_ip(&self.members[i].host), j));
                }
            }
        }
        drop(blocked);
        relay.cut();
    }

    pub fn heal(&self) {
        let relay = self.relay.as_ref().expect("a relayed cluster");
        relay.blocked.lock().unwrap().clear();
    }
}

fn host_ip(host: &str) -> IpAddr {
    host.parse().expect("an IP address")
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            // A paused process must be resumed to die promptly.
            if let Some(child) = self.members[i].child.as_ref() {
                let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
            }
            self.kill9(i);
        }
        if let Some(relay) = &self.relay {
            relay.stop.store(true, Ordering::Relaxed);
            relay.cut_all();
        }
    }
}

type Link = (IpAddr, usize, TcpStream, TcpStream);

/// A relay on every member's advertised group port, forwarding to where it really
/// listens. Connections from a blocked (caller address, member) pair are refused,
/// and cut if already open: a partition of the group network, on loopback.
struct Relay {
    blocked: Arc<Mutex<HashSet<(IpAddr, usize)>>>,
    links: Arc<Mutex<Vec<Link>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(members: &[Member]) -> Relay {
        let relay = Relay { blocked: Arc::default(), links: Arc::default(), stop: Arc::default() };
        for (j, m) in members.iter().enumerate() {
            let listener = TcpListener::bind((m.host.as_str(), m.group_port)).expect("relay bind");
            listener.set_nonblocking(true).expect("nonblocking");
            let target = format!("{}:{}", m.host, m.bind_port.expect("relayed"));
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
                    if blocked.lock().unwrap().contains(&(peer.ip(), j)) {
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
                    if let (Ok(a), Ok(b)) = (inbound.try_clone(), outbound.try_clone()) {
                        links.lock().unwrap().push((peer.ip(), j, a, b));
                    }
                    pump(inbound.try_clone().expect("clone"), outbound.try_clone().expect("clone"));
                    pump(outbound, inbound);
                }
            });
        }
        relay
    }

    /// Closes the open links that are now blocked.
    fn cut(&self) {
        let blocked = self.blocked.lock().unwrap();
        let mut links = self.links.lock().unwrap();
        links.retain(|(ip, j, a, b)| {
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
        for (_, _, a, b) in self.links.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
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
    });
}
