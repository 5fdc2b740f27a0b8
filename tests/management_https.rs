//! HTTPS on the management port (`tls-management`, issue 15 points 1 and 3) against
//! real `tandem` processes: the API read with a client no one here wrote (reqwest over
//! rustls) trusting only the test's CA, plain HTTP and stalled handshakes closed
//! without disturbing anyone else, certificates reloaded on SIGHUP, and procedures
//! admitted for ACL users (HTTP Basic) by their rules, with refusals in ACL LOG, and
//! for the management token; HAProxy health-checks over HTTPS. Certificates are made
//! in each test with `openssl`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::{Cluster, Spec};
use support::haproxy::Haproxy;
use support::management::TOKEN;
use support::pki::{https_client, make_ca, make_server_cert};
use support::{binary, closed_by_server, free_ports, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);

/// `[cluster]` lines: the token, the TLS files in `dir`, HTTPS on the management port.
/// The client port would ask for client certificates (`tls-auth-clients = "yes"`);
/// the management port must not.
fn tls_settings(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "management-token = \"{TOKEN}\"\ntls-cert-file = \"{d}/server.crt\"\ntls-key-file = \"{d}/server.key\"\ntls-ca-cert-file = \"{d}/ca.crt\"\ntls-auth-clients = \"yes\"\ntls-management = true"
    )
}

/// (status, JSON body) of a request.
fn json(request: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let answer = request.send().expect("an answer");
    let status = answer.status().as_u16();
    (status, answer.json::<Value>().unwrap_or(Value::Null))
}

/// One server with HTTPS on its management port, on 127.0.0.1.
struct Single {
    child: Child,
    management_port: u16,
    dir: tempfile::TempDir,
}

impl Single {
    fn start() -> Single {
        let dir = tempfile::tempdir().expect("tempdir");
        make_ca(dir.path(), "ca");
        make_server_cert(dir.path(), "ca", "server", &["127.0.0.1"]);
        let [client_port, group_port, management_port] = free_ports(3)[..] else { unreachable!("three ports") };
        let text = format!(
            "[cluster]\nname = \"test\"\n{}\n\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\nname = \"server1\"\nclient-port = {client_port}\ngroup-port = {group_port}\nmanagement-port = {management_port}\ndata = \"data/server1\"\n",
            tls_settings(dir.path())
        );
        std::fs::write(dir.path().join("tandem.toml"), text).expect("write the config");
        let child = spawn(dir.path());
        let single = Single { child, management_port, dir };
        let client = single.client("ca.crt");
        let ready = wait_until(DEADLINE, || client.get(single.url("/healthz")).send().is_ok_and(|r| r.status() == 200));
        assert!(ready, "the server did not answer HTTPS");
        single
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.management_port)
    }

    fn client(&self, ca: &str) -> reqwest::blocking::Client {
        https_client(&self.dir.path().join(ca))
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Single {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path) -> Child {
    Command::new(binary())
        .args(["server", "--name", "server1", "--config", "tandem.toml"])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tandem")
}

#[test]
fn tls_management_without_a_certificate_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [client_port, group_port, management_port] = free_ports(3)[..] else { unreachable!("three ports") };
    let text = format!(
        "[cluster]\nname = \"test\"\ntls-management = true\n\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\nname = \"server1\"\nclient-port = {client_port}\ngroup-port = {group_port}\nmanagement-port = {management_port}\ndata = \"data/server1\"\n"
    );
    std::fs::write(dir.path().join("tandem.toml"), text).expect("write the config");
    let out = spawn(dir.path()).wait_with_output().expect("tandem ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a certificate:\n{stderr}");
    assert!(stderr.contains("tandem.toml:3: cluster.tls-management: tls-management = true needs cluster.tls-cert-file"), "{stderr}");
}

#[test]
fn https_serves_the_api_and_plain_http_or_stalled_handshakes_harm_no_one() {
    support::log_phases();
    let mut server = Single::start();
    let client = server.client("ca.crt");

    tracing::info!("--- HTTPS with the CA: the API and the metrics, no client certificate asked");
    let (status, body) = json(client.get(server.url("/api/v1/cluster")));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stripes"][0]["name"], "A", "{body}");
    let scrape = client.get(server.url("/metrics")).send().expect("a scrape");
    assert_eq!(scrape.status(), 200);
    assert!(scrape.text().expect("text").contains("# TYPE tandem_"));

    tracing::info!("--- plain HTTP to the HTTPS port is closed, and HTTPS goes on");
    let plain = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("a client");
    let plain_url = format!("http://127.0.0.1:{}/healthz", server.management_port);
    assert!(plain.get(&plain_url).send().is_err(), "plain HTTP was answered");
    let mut raw = TcpStream::connect(("127.0.0.1", server.management_port)).expect("connect");
    raw.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("a plain request");
    assert!(closed_by_server(&mut raw, Duration::from_secs(10)), "plain HTTP left open");
    assert_eq!(json(client.get(server.url("/healthz"))).0, 200);

    tracing::info!("--- stalled and half-sent handshakes each hold one slot; HTTPS is answered meanwhile");
    let mut stalled: Vec<TcpStream> = (0..40)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", server.management_port)).expect("connect");
            if i % 2 == 1 {
                // A TLS record header announcing a ClientHello that never comes.
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).expect("a piece of a handshake");
            }
            s
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let asked = Instant::now();
        assert_eq!(json(client.get(server.url("/healthz"))).0, 200);
        assert!(asked.elapsed() < Duration::from_secs(5), "HTTPS waited for stalled handshakes");
    }
    tracing::info!("--- the stalled handshakes are cut off (TLS_HANDSHAKE_MS_MAX)");
    let limit = Duration::from_millis(tandem::limits::TLS_HANDSHAKE_MS_MAX) + Duration::from_secs(10);
    for s in stalled.iter_mut() {
        assert!(closed_by_server(s, limit), "a stalled handshake still holds its connection");
    }
    assert!(server.alive(), "the server died");

    tracing::info!("--- SIGHUP: new handshakes use the new certificate (another CA), open connections keep theirs");
    // This client keeps its connection (HTTP/1.1 keep-alive) for its next request.
    let kept = server.client("ca.crt");
    assert_eq!(json(kept.get(server.url("/healthz"))).0, 200);
    let d = server.dir.path();
    make_ca(d, "ca2");
    make_server_cert(d, "ca2", "server2", &["127.0.0.1"]);
    std::fs::copy(d.join("server2.key"), d.join("server.key")).expect("replace the key");
    std::fs::copy(d.join("server2.crt"), d.join("server.crt")).expect("replace the certificate");
    let hup = Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().expect("kill -HUP");
    assert!(hup.success());
    let new_ca = server.client("ca2.crt");
    let reloaded = wait_until(DEADLINE, || new_ca.get(server.url("/healthz")).send().is_ok_and(|r| r.status() == 200));
    assert!(reloaded, "the management port did not present the new certificate after SIGHUP");
    assert_eq!(json(kept.get(server.url("/healthz"))).0, 200, "the connection made before SIGHUP was dropped");
    let old_ca = server.client("ca.crt");
    assert!(old_ca.get(server.url("/healthz")).send().is_err(), "the old certificate is still presented to new connections");
    assert!(server.alive(), "the server died");
}

/// HAProxy with one backend, `active`, whose servers are checked with
/// `GET /readyz?role=active` over HTTPS against `ca`.
fn haproxy_checking_the_active(cluster: &Cluster, ca: &Path) -> Haproxy {
    let dir = Haproxy::dir();
    let socket = dir.path().join("admin.sock");
    let [port] = free_ports(1)[..] else { unreachable!("one port") };
    let servers: String = cluster
        .members
        .iter()
        .map(|m| {
            format!(
                "  server {} {}:{} check port {} check-ssl verify required ca-file {} inter 200 fall 1 rise 1\n",
                m.name,
                m.host,
                m.client_port,
                m.management_port,
                ca.display()
            )
        })
        .collect();
    let config = format!(
        "global\n  maxconn 64\n  stats socket {} level admin\n\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\n\
         backend active\n  option httpchk GET /readyz?role=active\n  http-check expect status 200\n{servers}\n\
         frontend fe_active\n  bind 127.0.0.1:{port}\n  default_backend active\n",
        socket.display()
    );
    Haproxy::start(dir, &config)
}

/// HAProxy's (`status`, `check_status`) of `server` in the `active` backend: ("UP",
/// "L7OK") once a check over HTTPS got a 200, ("DOWN", "L7STS") after a 503.
fn haproxy_status(haproxy: &Haproxy, server: &str) -> Option<(String, String)> {
    let mut s = UnixStream::connect(haproxy.path("admin.sock")).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let header: Vec<&str> = text.lines().next()?.trim_start_matches("# ").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (status, check) = (column("status")?, column("check_status")?);
    let row: Vec<&str> =
        text.lines().map(|l| l.split(',').collect::<Vec<_>>()).find(|c| c.first() == Some(&"active") && c.get(1) == Some(&server))?;
    Some((row.get(status)?.to_string(), row.get(check)?.to_string()))
}

/// ACL LOG on member `i`: each entry as (field → value) pairs, values as text.
fn acl_log(cluster: &Cluster, i: usize) -> Vec<Vec<(String, String)>> {
    let mut con = cluster.conn(i).expect("a connection");
    let entries: Vec<Vec<String>> = redis::cmd("ACL").arg("LOG").query(&mut con).expect("ACL LOG");
    entries.into_iter().map(|e| e.chunks(2).map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default())).collect()).collect()
}

fn field<'a>(entry: &'a [(String, String)], name: &str) -> &'a str {
    entry.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

#[test]
fn procedures_over_https_admit_acl_users_by_their_rules_and_the_token() {
    support::log_phases();
    let mut cluster = Cluster::configure(Spec::servers(3));
    let dir = cluster.dir.path().to_path_buf();
    let hosts: Vec<String> = cluster.members.iter().map(|m| m.host.clone()).collect();
    make_ca(&dir, "ca");
    make_server_cert(&dir, "ca", "server", &hosts.iter().map(String::as_str).collect::<Vec<_>>());
    cluster.add_cluster_setting(&tls_settings(&dir)).expect("add the TLS settings");
    cluster.start_all();
    let active = cluster.wait_formed();
    let https = |i: usize| cluster.management_url(i).replacen("http://", "https://", 1);
    let client = https_client(&dir.join("ca.crt"));

    tracing::info!("--- the API over HTTPS, and tandem status --api https://… with the config's CA");
    let (status, view) = json(client.get(format!("{}/api/v1/cluster", https(active))));
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["stripes"][0]["active"], cluster.members[active].name.as_str());
    let (ok, table) = cluster.ctl(&["status", "--api", &https(active)]);
    assert!(ok && table.contains("ACTIVE-COORDINATOR"), "{table}");
    let out = Command::new(binary()).args(["status", "--api", &https(active)]).output().expect("run tandem status");
    assert!(!out.status.success(), "https without a CA to check against succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"), "{}", String::from_utf8_lossy(&out.stderr));

    tracing::info!("--- HAProxy health-checks /readyz?role=active over HTTPS (check-ssl, verified with the CA)");
    let haproxy = haproxy_checking_the_active(&cluster, &dir.join("ca.crt"));
    let names: Vec<String> = cluster.members.iter().map(|m| m.name.clone()).collect();
    let settled = wait_until(DEADLINE, || {
        (0..3).all(|i| {
            let want = if i == active { ("UP", "L7OK") } else { ("DOWN", "L7STS") };
            haproxy_status(&haproxy, &names[i]).is_some_and(|(status, check)| (status.as_str(), check.as_str()) == want)
        })
    });
    assert!(settled, "HAProxy's view: {:?}", names.iter().map(|n| haproxy_status(&haproxy, n)).collect::<Vec<_>>());
    drop(haproxy);

    tracing::info!("--- ACL users: an operator allowed SHUTDOWN and CLUSTER FAILOVER, a reader allowed @read");
    let mut con = cluster.conn(active).expect("a connection to the active");
    let setuser = |con: &mut redis::Connection, rules: &[&str]| {
        let _: () = redis::cmd("ACL").arg("SETUSER").arg(rules).query(con).expect("ACL SETUSER");
    };
    setuser(&mut con, &["operator", "on", ">op-secret", "+shutdown", "+cluster|failover"]);
    setuser(&mut con, &["reader", "on", ">read-secret", "+@read", "~*"]);
    let failover = format!("{}/api/v1/stripes/A/failover", https(active));

    tracing::info!("--- a wrong password: 401, and ACL LOG records a failed login");
    let (status, body) = json(client.post(&failover).basic_auth("operator", Some("not-the-secret")));
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("wrong_password")), "{body}");
    let log = acl_log(&cluster, active);
    let entry = log.iter().find(|e| field(e, "username") == "operator").unwrap_or_else(|| panic!("no ACL LOG entry: {log:?}"));
    assert_eq!((field(entry, "reason"), field(entry, "object")), ("auth", "AUTH"), "{entry:?}");
    assert!(field(entry, "client-info").contains("transport=https procedure=failover"), "{entry:?}");

    tracing::info!("--- a user who logs in but may not run CLUSTER FAILOVER: 403, and ACL LOG says why");
    let (status, body) = json(client.post(&failover).basic_auth("reader", Some("read-secret")));
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("no_permission")), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("cluster|failover")), "{body}");
    let log = acl_log(&cluster, active);
    let entry = log.iter().find(|e| field(e, "username") == "reader").unwrap_or_else(|| panic!("no ACL LOG entry: {log:?}"));
    assert_eq!((field(entry, "reason"), field(entry, "object")), ("command", "cluster|failover"), "{entry:?}");
    assert_eq!(cluster.active(), Some(active), "a refused failover moved the active");

    tracing::info!("--- the operator's failover succeeds");
    let (status, body) = json(client.post(&failover).basic_auth("operator", Some("op-secret")));
    assert_eq!(status, 200, "{body}\n{}", cluster.all_stderr());
    let moved = wait_until(DEADLINE, || cluster.active().is_some_and(|a| a != active));
    assert!(moved, "the active did not change\n{}", cluster.all_stderr());
    let new_active = cluster.wait_formed();

    tracing::info!("--- the management token still works: stop a mirror");
    let mirror = (0..3).find(|&i| i != new_active).expect("a mirror");
    let stop = format!("{}/api/v1/servers/{}/stop", https(new_active), cluster.members[mirror].name);
    let (status, body) = json(client.post(&stop).bearer_auth(TOKEN));
    assert_eq!(status, 200, "{body}\n{}", cluster.all_stderr());
    assert!(cluster.wait_exit(mirror, DEADLINE).is_some(), "the mirror did not stop");
}
