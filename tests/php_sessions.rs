//! Issue 10's user story, end to end: PHP sessions with phpredis and session locking
//! (`redis.session.locking_enabled=1`, which releases its lock with EVALSHA/EVAL)
//! behind HAProxy round-robin over three `php -S` instances, each talking to another
//! server of a three-server stripe (two of them forward to the active). One browser
//! (one cookie) makes 200 requests: the session counter must read exactly 1..200 and
//! PHP must log no lock or write warning.
//!
//! Needs php-cli, php-redis and haproxy: `bash scripts/test-deps.sh` installs them.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{Cluster, Spec};

const REQUESTS: usize = 200;

/// Kills the child processes it holds when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn require(program: &str, probe: &[&str]) {
    let ok = Command::new(program).args(probe).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    assert!(ok, "`{program}` is missing: run `bash scripts/test-deps.sh` to install the end-to-end test peers");
}

fn wait_listening(port: u16, what: &str) {
    assert!(
        support::wait_until(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "{what} did not listen on port {port}"
    );
}

/// One HTTP GET with the session cookie (if any); the body and the cookie set.
fn get(port: u16, cookie: Option<&str>) -> (String, Option<String>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to haproxy");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let cookie_line = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    write!(s, "GET / HTTP/1.1\r\nHost: test\r\n{cookie_line}Connection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let set_cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: ").or_else(|| l.strip_prefix("set-cookie: ")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string());
    assert!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "unexpected response: {head}");
    (body.trim().to_string(), set_cookie)
}

fn write_php(dir: &Path) {
    std::fs::write(dir.join("index.php"), "<?php\nsession_start();\n$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;\necho $_SESSION['n'];\n")
        .unwrap();
}

fn start_php(dir: &Path, port: u16, redis: &str, log: &Path) -> Child {
    Command::new("php")
        .args(["-d", "session.save_handler=redis"])
        .arg("-d")
        .arg(format!("session.save_path=tcp://{redis}"))
        .args(["-d", "redis.session.locking_enabled=1", "-d", "log_errors=1", "-d", "display_errors=0"])
        .arg("-d")
        .arg(format!("error_log={}", log.display()))
        .arg("-S")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-t")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start php -S")
}

fn start_haproxy(dir: &Path, port: u16, backends: &[u16]) -> Child {
    let servers: String = backends.iter().enumerate().map(|(i, p)| format!("  server php{i} 127.0.0.1:{p}\n")).collect();
    let config = format!(
        "global\n  maxconn 256\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend web\n  bind 127.0.0.1:{port}\n  default_backend php\nbackend php\n  balance roundrobin\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    Command::new("haproxy").arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start haproxy")
}

#[test]
fn issue_10_php_sessions_with_locking_count_every_request_behind_haproxy() {
    require("php", &["-r", "exit(extension_loaded('redis') ? 0 : 1);"]);
    require("haproxy", &["-v"]);
    tracing::info!("--- a stripe of three servers");
    let cluster = Cluster::start(Spec::servers(3));
    cluster.wait_formed();
    let dir = tempfile::tempdir().unwrap();
    write_php(dir.path());
    let ports = support::free_ports(4);
    let mut children = Children(Vec::new());
    let logs: Vec<_> = (0..3).map(|i| dir.path().join(format!("php{i}.log"))).collect();
    for i in 0..3 {
        let redis = format!("{}:{}", cluster.members[i].host, cluster.members[i].client_port);
        children.0.push(start_php(dir.path(), ports[i], &redis, &logs[i]));
        wait_listening(ports[i], "php -S");
    }
    children.0.push(start_haproxy(dir.path(), ports[3], &ports[..3]));
    wait_listening(ports[3], "haproxy");

    tracing::info!("--- {REQUESTS} requests with one cookie jar");
    let started = Instant::now();
    let mut cookie: Option<String> = None;
    let mut counts = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let (body, set) = get(ports[3], cookie.as_deref());
        if cookie.is_none() {
            cookie = set;
        }
        counts.push(body);
    }
    let expected: Vec<String> = (1..=REQUESTS).map(|n| n.to_string()).collect();
    assert_eq!(counts, expected, "the session counter must count every request once ({:?})", started.elapsed());
    for log in &logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            !text.contains("session lock") && !text.contains("Failed to write session data"),
            "PHP logged session trouble in {}:\n{text}",
            log.display()
        );
    }
}
