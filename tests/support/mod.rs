//! Test harness: starts real `tandem` processes on free 127.0.0.1 ports, waits for
//! them to answer PING within a deadline, and kills them when dropped.

#![allow(dead_code)]

pub mod cluster;
pub mod differential;
pub mod haproxy;
pub mod management;
pub mod pki;
pub mod redis_server;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start answering.
const READY_DEADLINE: Duration = Duration::from_secs(20);

pub struct Server {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

/// `n` distinct ports nobody listens on right now, on 127.0.0.1.
pub fn free_ports(n: usize) -> Vec<u16> {
    tandem::check::cluster::free_ports_on("127.0.0.1", n).expect("bind ephemeral ports")
}

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem"))
}

impl Server {
    /// A development-topology server on a free port.
    pub fn start() -> Server {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let child = Command::new(binary())
                .args(["server", "--port", &port.to_string()])
                .current_dir(dir.path())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn tandem");
            let mut server = Server { port, child, dir };
            if server.wait_ready() {
                return server;
            }
            // Port taken between our probe and the server's bind: try another
            // (dropping the server kills the process).
            drop(server);
        }
        panic!("tandem did not start on any of 5 ports");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + READY_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 7];
                    if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("client")
    }

    pub fn conn(&self) -> redis::Connection {
        let con = self.client().get_connection().expect("connect");
        con.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        con
    }

    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect raw");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s
    }

    /// True while the process is running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Shows a test's `tracing::info!("--- phase")` lines on stderr (captured by the
/// test runner unless the test fails). Safe to call from every test.
pub fn log_phases() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
}

/// Polls `check` until it returns true or `deadline` passes; true if it did.
#[allow(unused_imports)]
pub use tandem::check::cluster::wait_until;

/// Sends raw bytes and reads whatever comes back until the server closes or
/// `window` of silence passes.
pub fn exchange(stream: &mut TcpStream, bytes: &[u8], window: Duration) -> Vec<u8> {
    let _ = stream.write_all(bytes);
    let _ = stream.set_read_timeout(Some(window));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    got
}

/// True once the server has closed `stream` (read returns 0 or reset) within `deadline`.
pub fn closed_by_server(stream: &mut TcpStream, deadline: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(deadline));
    let mut buf = [0u8; 4096];
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
    false
}

/// A server started from a config file, in a directory that outlives its process, so
/// it can be killed and restarted on the same data.
pub struct ConfigServer {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// Where standard error goes instead of a file of its own per run (e.g.
    /// `/dev/full`, where every write fails as on a full disk).
    pub stderr_to: Option<PathBuf>,
    /// Environment given to the process besides `RUST_LOG=info`.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    run: usize,
}

/// Writes a one-server config in `dir` and returns its path and client port.
pub fn write_single_server_config(dir: &std::path::Path, restartable: bool) -> (PathBuf, u16) {
    let [port, group, management] = free_ports(3)[..] else { unreachable!("three ports") };
    let text = format!(
        "[cluster]\nname = \"test\"\n\n[[stripe]]\nname = \"A\"\nelection-time = \"1s\"\n\n[[stripe.server]]\nname = \"server1\"\nhost = \"127.0.0.1\"\nclient-port = {port}\ngroup-port = {group}\nmanagement-port = {management}\ndata = \"data/server1\"\ndata-storage = \"1g\"\nrestartable = {restartable}\n"
    );
    let path = dir.join("tandem.toml");
    std::fs::write(&path, text).expect("write config");
    (path, port)
}

impl ConfigServer {
    /// Starts `name` from `config` with `dir` as working directory; waits for PING.
    pub fn start(dir: &std::path::Path, config: &std::path::Path, name: &str, port: u16) -> ConfigServer {
        let mut server = ConfigServer::unstarted(dir, config, name, port);
        server.restart();
        server
    }

    /// The server, not started yet ([`ConfigServer::restart`] starts it).
    pub fn unstarted(dir: &std::path::Path, config: &std::path::Path, name: &str, port: u16) -> ConfigServer {
        ConfigServer {
            name: name.into(),
            port,
            dir: dir.into(),
            config: config.into(),
            stderr_to: None,
            env: Vec::new(),
            child: None,
            run: 0,
        }
    }

    /// The stderr of run `n` (each start writes its own file).
    pub fn stderr(&self, run: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}-{run}.stderr", self.name))).unwrap_or_default()
    }

    pub fn last_stderr(&self) -> String {
        self.stderr(self.run)
    }

    /// Spawns the process without waiting for it to be ready.
    pub fn spawn(&mut self) -> &mut Child {
        self.run += 1;
        let log = match &self.stderr_to {
            Some(path) => std::fs::OpenOptions::new().write(true).open(path).expect("stderr target"),
            None => std::fs::File::create(self.dir.join(format!("{}-{}.stderr", self.name, self.run))).expect("stderr file"),
        };
        let child = Command::new(binary())
            .args(["server", "--config"])
            .arg(&self.config)
            .args(["--name", &self.name])
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn tandem");
        self.child = Some(child);
        self.child.as_mut().expect("just set")
    }

    /// Spawns without waiting for readiness (for starts that must fail).
    pub fn start_unready(dir: &std::path::Path, config: &std::path::Path, name: &str, port: u16) -> ConfigServer {
        let mut server = ConfigServer::unstarted(dir, config, name, port);
        server.spawn();
        server
    }

    /// (Re)starts the server and waits until it answers PING.
    pub fn restart(&mut self) {
        // A process still running is killed first: two would share the data
        // directory's port, and the old one would answer for the new one.
        self.kill9();
        self.spawn();
        let deadline = Instant::now() + READY_DEADLINE;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited with {status} while starting:\n{}", self.name, self.last_stderr());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not answer within {:?}:\n{}", self.name, READY_DEADLINE, self.last_stderr());
    }

    /// Waits for the process to exit by itself (a refused start); its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let status = self.wait_exit(Duration::from_secs(20));
        self.child = None;
        status
    }

    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("client");
        let con = client.get_connection().expect("connect");
        con.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        con
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data").join(&self.name)
    }

    /// The running process's id (for signals such as SIGHUP).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -HUP`: the server reloads its TLS certificates.
    pub fn sighup(&self) {
        let pid = self.pid().expect("running").to_string();
        assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
    }
}

impl Drop for ConfigServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Unmounts a test's small disk when dropped.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a file system of its own of `size` (a tmpfs, e.g. "16m") on `dir`, made if
/// missing: the disk that fills in a test is this one only. Needs root.
pub fn mount_small_disk(dir: &std::path::Path, size: &str) -> Unmount {
    std::fs::create_dir_all(dir).expect("make the mount point");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .expect("run mount");
    assert!(mounted.success(), "this test mounts a {size} tmpfs on {} and needs root", dir.display());
    Unmount(dir.to_path_buf())
}
