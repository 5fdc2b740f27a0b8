//! Issue 13, point 6: the example apps of `examples/apps/` (PHP, Node, Python), each
//! run as three instances behind HAProxy (HTTP round-robin, no stickiness, health
//! checks), each instance talking to a three-server stripe through HAProxy in TCP mode
//! that sends clients to mirrors (`/readyz?role=mirror`, the recipe of docs/api.md).
//!
//! One browser (one cookie jar) makes 300 requests `GET /?rid=N` while the test
//! - `kill -9`s the Tandem active while request 81 is in its fenced edit (the moment
//!   its `RPUSH` has applied; what follows is in flight or about to be);
//! - waits for the two survivors to settle and restarts the killed server (around
//!   request 120), so that the stripe is whole again — two mirrors — before the stall;
//! - `kill -9`s one app instance between requests 160 and 161: the one that would get
//!   request 162, so HAProxy meets a refused connection and sends the request on
//!   (`retries` + `option redispatch 1`; a refused connection never reached the app);
//! - at request 220, once the stripe is whole and HAProxy sees both mirrors up,
//!   SIGSTOPs the mirror that was a mirror from the start (it holds app connections)
//!   for 5 s: requests on those connections wait and then go on; HAProxy sends new
//!   connections to the other mirror. The app health checks (`fall 5`, `inter 1s`)
//!   tolerate a stall that short, or every app could look down at once.
//!
//! Asserted: every response is 200; the session counter reads exactly 1..300 in
//! order; the fencing tokens the app saw only grow; the document's log (each request
//! RPUSHes its id, fenced) holds 300 entries, each request's id once, in order — no
//! write applied twice, none lost.
//!
//! Needs php-cli, php-redis, haproxy, node with `examples/apps/node/node_modules`, and
//! redis-py: `bash scripts/test-deps.sh` installs them. The three tests take turns
//! (a lock): each runs four servers' worth of processes on a two-core machine.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use support::cluster::{Cluster, Spec};
use support::wait_until;

const REQUESTS: u64 = 300;
const KILL_ACTIVE_AT: u64 = 81;
const RESTART_AT: u64 = 120;
const KILL_APP_AFTER: u64 = 160;
const STALL_MIRROR_AT: u64 = 220;
const STALL: Duration = Duration::from_secs(5);
/// One request may wait out a failover or the stall, not more.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const READY: Duration = Duration::from_secs(30);

/// The tests take turns: see the module doc.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug)]
enum App {
    Php,
    Node,
    Python,
}

impl App {
    fn name(self) -> &'static str {
        match self {
            App::Php => "php",
            App::Node => "node",
            App::Python => "python",
        }
    }

    /// Fails the test, saying how to install them, if the app's peers are missing.
    fn require(self) {
        support::management::require_program("haproxy");
        let (program, args, what): (&str, Vec<String>, &str) = match self {
            App::Php => ("php", vec!["-r".into(), "exit(extension_loaded('redis') ? 0 : 1);".into()], "php-cli with php-redis"),
            App::Node => {
                let express = examples().join("apps/node/node_modules/connect-redis");
                let probe = format!("process.exit(require('fs').existsSync('{}') ? 0 : 1)", express.display());
                ("node", vec!["-e".into(), probe], "node and examples/apps/node/node_modules (npm ci)")
            }
            App::Python => ("python3", vec!["-c".into(), "import redis".into()], "python3 with redis-py"),
        };
        let ok = Command::new(program).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        assert!(ok, "{what} is missing: run `bash scripts/test-deps.sh` to install the end-to-end test peers");
    }

    /// Starts instance `name` on `port`, talking to Tandem at `tandem_port`.
    fn spawn(self, name: &str, port: u16, tandem_port: u16, log: &Path) -> Child {
        let apps = examples().join("apps");
        let mut cmd = match self {
            App::Php => {
                let mut c = Command::new("php");
                c.args(["-d", "log_errors=1", "-d", "display_errors=0"])
                    .arg("-d")
                    .arg(format!("error_log={}", log.with_extension("php-errors").display()))
                    .arg("-S")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg(apps.join("php/index.php"));
                c
            }
            App::Node => {
                let mut c = Command::new("node");
                c.arg(apps.join("node/app.js"));
                c
            }
            App::Python => {
                let mut c = Command::new("python3");
                c.arg(apps.join("python/app.py"));
                c
            }
        };
        let out = std::fs::File::create(log).expect("app log");
        let err = out.try_clone().expect("app log");
        cmd.env("TANDEM_HOST", "127.0.0.1")
            .env("TANDEM_PORT", tandem_port.to_string())
            .env("TANDEM_URL", format!("redis://127.0.0.1:{tandem_port}"))
            .env("PORT", port.to_string())
            .env("APP_NAME", name)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"))
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Child processes, killed when dropped (so a failing test leaves nothing behind).
#[derive(Default)]
struct Children(Vec<(String, Child)>);

impl Children {
    fn kill9(&mut self, name: &str) {
        let (_, child) = self.0.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no process {name}"));
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HAProxy with two front ends: `tandem` (TCP, to servers whose
/// `/readyz?role=mirror` answers 200) and `web` (HTTP round-robin over the apps,
/// checked on their `/health`). Its stats socket tells the state of each server.
struct Haproxy {
    tandem_port: u16,
    web_port: u16,
    socket: PathBuf,
    config: PathBuf,
}

impl Haproxy {
    fn configure(dir: &Path, cluster: &Cluster, apps: &[(String, u16)]) -> Haproxy {
        let ports = support::free_ports(2);
        let socket = dir.join("haproxy.sock");
        let tandem: String = cluster
            .members
            .iter()
            .map(|m| format!("  server {} {}:{} check port {} inter 200 fall 1 rise 1\n", m.name, m.host, m.client_port, m.management_port))
            .collect();
        let web: String =
            apps.iter().map(|(name, port)| format!("  server {name} 127.0.0.1:{port} check inter 1s fall 5 rise 1\n")).collect();
        let config = format!(
            "global\n  maxconn 512\n  stats socket {socket} mode 600 level admin\n\n\
             defaults\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n  timeout check 2s\n\n\
             frontend tandem\n  mode tcp\n  bind 127.0.0.1:{tandem_port}\n  default_backend tandem\n\
             backend tandem\n  mode tcp\n  option httpchk GET /readyz?role=mirror\n  http-check expect status 200\n{tandem}\n\
             frontend web\n  mode http\n  bind 127.0.0.1:{web_port}\n  default_backend apps\n\
             backend apps\n  mode http\n  balance roundrobin\n  retries 3\n  option redispatch 1\n\
             option httpchk GET /health\n  http-check expect status 200\n{web}",
            socket = socket.display(),
            tandem_port = ports[0],
            web_port = ports[1],
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        Haproxy { tandem_port: ports[0], web_port: ports[1], socket, config: path }
    }

    fn spawn(&self, log: &Path) -> Child {
        let out = std::fs::File::create(log).expect("haproxy log");
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&self.config)
            .stdout(Stdio::from(out.try_clone().expect("log")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start haproxy")
    }

    /// (backend, server) → status ("UP", "DOWN", …) from `show stat`.
    fn statuses(&self) -> BTreeMap<(String, String), String> {
        let mut statuses = BTreeMap::new();
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) else { return statuses };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut csv = String::new();
        if s.write_all(b"show stat\n").is_err() || s.read_to_string(&mut csv).is_err() {
            return statuses;
        }
        for line in csv.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split(',').collect();
            if let (Some(backend), Some(server), Some(status)) = (cols.first(), cols.get(1), cols.get(17)) {
                statuses.insert((backend.to_string(), server.to_string()), status.to_string());
            }
        }
        statuses
    }

    /// True once every (backend, server, up?) in `want` holds.
    fn shows(&self, want: &[(&str, &str, bool)]) -> bool {
        let statuses = self.statuses();
        want.iter().all(|(backend, server, up)| {
            let status = statuses.get(&(backend.to_string(), server.to_string()));
            status.is_some_and(|s| s.starts_with("UP") == *up && (s.starts_with("UP") || s.starts_with("DOWN")))
        })
    }

    fn wait_shows(&self, want: &[(&str, &str, bool)]) {
        assert!(wait_until(READY, || self.shows(want)), "HAProxy did not come to see {want:?}: {:?}", self.statuses());
    }
}

/// A browser: one cookie jar, one request at a time.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

/// What one request got.
#[derive(Debug, Clone)]
struct Visit {
    rid: u64,
    status: u16,
    body: String,
    /// From a 200's JSON: the session counter, the fencing token, the instance.
    n: Option<u64>,
    token: Option<u64>,
    app: Option<String>,
    elapsed: Duration,
}

impl Browser {
    fn get(&mut self, port: u16, path: &str) -> Result<(u16, String), String> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| e.to_string())?;
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let cookie = if cookie.is_empty() { String::new() } else { format!("Cookie: {}\r\n", cookie.join("; ")) };
        write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n{cookie}Connection: close\r\n\r\n").map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).map_err(|e| format!("read: {e}"))?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| format!("no end of headers in {response:?}"))?;
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {head:?}"))?;
        let mut chunked = false;
        for line in head.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else { continue };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "set-cookie" {
                if let Some((k, v)) = value.split(';').next().and_then(|pair| pair.split_once('=')) {
                    self.cookies.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
            chunked |= name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked");
        }
        Ok((status, if chunked { dechunk(body) } else { body.to_string() }))
    }

    fn visit(&mut self, port: u16, rid: u64) -> Visit {
        let started = std::time::Instant::now();
        let (status, body) = self.get(port, &format!("/?rid={rid}")).unwrap_or_else(|e| (0, e));
        let json: Option<serde_json::Value> = (status == 200).then(|| serde_json::from_str(&body).ok()).flatten();
        let field = |k: &str| json.as_ref().and_then(|j| j[k].as_u64());
        let app = json.as_ref().and_then(|j| j["app"].as_str().map(str::to_string));
        Visit { rid, status, n: field("n"), token: field("token"), app, body, elapsed: started.elapsed() }
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn phase(text: &str) {
    eprintln!("--- {text}");
}

/// Everything the processes logged, for a failing assertion.
fn logs(dir: &Path, cluster: &Cluster) -> String {
    let mut text = String::new();
    let mut files: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "log" || e == "php-errors")) {
        let body = std::fs::read_to_string(f).unwrap_or_default();
        text.push_str(&format!("==== {}\n{}\n", f.display(), support::cluster::tail(&body, 40)));
    }
    text.push_str(&format!("==== tandem\n{}\n", support::cluster::tail(&cluster.all_stderr(), 200)));
    text
}

fn run(app: App) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    app.require();
    let dir = tempfile::tempdir().expect("tempdir");
    phase("a stripe of three servers, HAProxy in front of it and of three app instances");
    let mut cluster = Cluster::start(Spec::servers(3));
    let first_active = cluster.wait_formed();
    let names: Vec<String> = (1..=3).map(|i| format!("{}{i}", app.name())).collect();
    let app_ports = support::free_ports(3);
    let apps: Vec<(String, u16)> = names.iter().cloned().zip(app_ports.iter().copied()).collect();
    let haproxy = Haproxy::configure(dir.path(), &cluster, &apps);
    let mut children = Children::default();
    children.0.push(("haproxy".into(), haproxy.spawn(&dir.path().join("haproxy.log"))));
    let tandem_up: Vec<(&str, &str, bool)> =
        cluster.members.iter().enumerate().map(|(i, m)| ("tandem", m.name.as_str(), i != first_active)).collect();
    haproxy.wait_shows(&tandem_up);
    for (name, port) in &apps {
        children.0.push((name.clone(), app.spawn(name, *port, haproxy.tandem_port, &dir.path().join(format!("{name}.log")))));
    }
    let web_up: Vec<(&str, &str, bool)> = names.iter().map(|n| ("apps", n.as_str(), true)).collect();
    let mut probe = Browser::default();
    assert!(
        wait_until(READY, || app_ports.iter().all(|&p| probe.get(p, "/health").is_ok_and(|(s, _)| s == 200))),
        "the app instances did not answer /health:\n{}",
        logs(dir.path(), &cluster)
    );
    haproxy.wait_shows(&web_up);

    let mut browser = Browser::default();
    let mut visits = Vec::new();
    let web = haproxy.web_port;
    phase("requests 1..80");
    visits.extend((1..KILL_ACTIVE_AT).map(|rid| browser.visit(web, rid)));

    phase("request 81, and kill -9 the Tandem active once its fenced RPUSH has applied");
    let mut on_active = cluster.conn(first_active).expect("connect to the active");
    on_active.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let pushed = wait_until(REQUEST_TIMEOUT, || {
                redis::cmd("LLEN").arg("{doc}log").query::<u64>(&mut on_active).is_ok_and(|n| n >= KILL_ACTIVE_AT)
            });
            cluster.kill9(first_active);
            pushed
        });
        visits.push(browser.visit(web, KILL_ACTIVE_AT));
        assert!(killer.join().expect("killer thread"), "request {KILL_ACTIVE_AT}'s RPUSH never showed on the active");
    });
    visits.extend((KILL_ACTIVE_AT + 1..RESTART_AT).map(|rid| browser.visit(web, rid)));

    phase("the survivors settle; restart the killed server (it rejoins as a mirror)");
    let survivors: Vec<usize> = (0..3).filter(|&i| i != first_active).collect();
    let active = cluster.wait_stable(&survivors, READY);
    cluster.spawn(first_active);
    visits.extend((RESTART_AT..=KILL_APP_AFTER).map(|rid| browser.visit(web, rid)));

    phase("kill -9 the app instance that request 162 would go to");
    let victim = visits.iter().rev().nth(1).and_then(|v| v.app.clone()).expect("request 159 answered by an instance");
    children.kill9(&victim);
    visits.extend((KILL_APP_AFTER + 1..STALL_MIRROR_AT).map(|rid| browser.visit(web, rid)));

    phase("the stripe is whole again: two mirrors behind HAProxy; SIGSTOP the original mirror for 5 s");
    let stalled = survivors.iter().copied().find(|&i| i != active).expect("a mirror from the start");
    assert_eq!(cluster.wait_stable(&[0, 1, 2], READY), active, "the restarted server rejoined as a mirror");
    let mirrors_up: Vec<(&str, &str, bool)> =
        [first_active, stalled].iter().map(|&i| ("tandem", cluster.members[i].name.as_str(), true)).collect();
    haproxy.wait_shows(&mirrors_up);
    cluster.sigstop(stalled);
    std::thread::scope(|s| {
        s.spawn(|| {
            // The fault's length, not a wait for a condition.
            std::thread::sleep(STALL);
            cluster.sigcont(stalled);
        });
        visits.extend((STALL_MIRROR_AT..=REQUESTS).map(|rid| browser.visit(web, rid)));
    });

    phase("check what the browser saw against what the stripe holds");
    let active = cluster.wait_stable(&[0, 1, 2], READY);
    let mut con = cluster.conn(active).expect("connect to the active");
    let log: Vec<String> = redis::cmd("LRANGE").arg("{doc}log").arg(0).arg(-1).query(&mut con).expect("LRANGE the document's log");
    let served: BTreeMap<String, usize> = visits.iter().fold(BTreeMap::new(), |mut m, v| {
        *m.entry(v.app.clone().unwrap_or_else(|| "-".into())).or_default() += 1;
        m
    });
    eprintln!("served by instance: {served:?}; killed {victim}; tandem active {first_active} → {active}, stalled {stalled}");
    // What the faults did, for the reader (not asserted: the timing is the machine's).
    let resent = (0..3).map(|i| cluster.stderr(i).matches("sending them to the new active").count()).sum::<usize>();
    let mut slowest: Vec<(Duration, u64)> = visits.iter().map(|v| (v.elapsed, v.rid)).collect();
    slowest.sort_unstable_by(|a, b| b.cmp(a));
    eprintln!("mirrors' resends to the new active: {resent}; slowest requests (time, request): {:?}", &slowest[..5]);
    let context = || logs(dir.path(), &cluster);
    let failed: Vec<(u64, u16, &str)> = visits.iter().filter(|v| v.status != 200).map(|v| (v.rid, v.status, v.body.as_str())).collect();
    assert!(failed.is_empty(), "{} requests not answered 200 (request, status, body): {failed:#?}\n{}", failed.len(), context());
    let counts: Vec<u64> = visits.iter().map(|v| v.n.unwrap_or(0)).collect();
    let expected: Vec<u64> = (1..=REQUESTS).collect();
    assert_eq!(counts, expected, "the session counter must count every request once, in order\n{}", context());
    let tokens: Vec<u64> = visits.iter().map(|v| v.token.unwrap_or(0)).collect();
    let backwards: Vec<_> = tokens.windows(2).enumerate().filter(|(_, w)| w[1] <= w[0]).map(|(i, w)| (i + 2, w[0], w[1])).collect();
    assert!(backwards.is_empty(), "fencing tokens must only grow: (request, previous, token) {backwards:?}\n{}", context());
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for rid in &log {
        *times.entry(rid.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "writes applied more than once (request id, times): {twice:?}\n{}", context());
    // phpredis goes on without the session lock when it cannot take it, and says so
    // only in the log.
    for name in names.iter().filter(|_| matches!(app, App::Php)) {
        let errors = std::fs::read_to_string(dir.path().join(format!("{name}.php-errors"))).unwrap_or_default();
        assert!(
            !errors.contains("session lock") && !errors.contains("Failed to write session data"),
            "{name} logged session trouble:\n{errors}"
        );
    }
    let rids: Vec<String> = (1..=REQUESTS).map(|r| r.to_string()).collect();
    assert_eq!(log, rids, "the document's log holds each request's id once, in order\n{}", context());
}

#[test]
fn php_app_counts_every_request_once_through_tandem_failover_app_kill_and_stalled_mirror() {
    run(App::Php);
}

#[test]
fn node_app_counts_every_request_once_through_tandem_failover_app_kill_and_stalled_mirror() {
    run(App::Node);
}

#[test]
fn python_app_counts_every_request_once_through_tandem_failover_app_kill_and_stalled_mirror() {
    run(App::Python);
}
