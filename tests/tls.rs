//! TLS on the tls-port (issue 15 point 1), against real `tandem` processes and clients
//! no one here wrote: Debian's `redis-cli --tls`, redis-py with `ssl=True` and
//! `openssl s_client`. Certificates are made in each test with the `openssl` CLI.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::pki::{make_ca, make_leaf, pki, pong, redis_cli, SClient, Usage};
use support::{closed_by_server, free_ports, wait_until, ConfigServer};

const DEADLINE: Duration = Duration::from_secs(20);

/// A one-server config with a tls-port; `tls` is the `[cluster]` tls-* lines.
/// Returns (config path, client port, tls port).
fn write_config(dir: &Path, tls: &str) -> (PathBuf, u16, u16) {
    let [port, tls_port, group] = free_ports(3)[..] else { unreachable!("three ports") };
    let text = format!(
        "[cluster]\nname = \"tls\"\n{tls}\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\nname = \"server1\"\nclient-port = {port}\ntls-port = {tls_port}\ngroup-port = {group}\nmanagement-port = 0\ndata = \"data/server1\"\n"
    );
    let path = dir.join("tandem.toml");
    std::fs::write(&path, text).expect("write config");
    (path, port, tls_port)
}

fn tls_lines(dir: &Path, auth: &str) -> String {
    let d = dir.display();
    format!("tls-cert-file = \"{d}/server.crt\"\ntls-key-file = \"{d}/server.key\"\ntls-ca-cert-file = \"{d}/ca.crt\"\ntls-auth-clients = \"{auth}\"\n")
}

#[test]
fn redis_cli_and_redis_py_speak_to_the_tls_port() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    let (config, port, tls_port) = write_config(d, &tls_lines(d, "no"));
    let server = ConfigServer::start(d, &config, "server1", port);

    tracing::info!("--- redis-cli --tls --cacert: PING, SET, GET");
    assert!(pong(d, tls_port, &["--cacert", "ca.crt"]));
    assert_eq!(redis_cli(d, tls_port, &["--cacert", "ca.crt"], &["SET", "greeting", "hello"]), (true, "OK".to_string()));
    assert_eq!(redis_cli(d, tls_port, &["--cacert", "ca.crt"], &["GET", "greeting"]), (true, "hello".to_string()));

    tracing::info!("--- redis-py ssl=True reads it and writes over TLS");
    let script = format!(
        "import redis\nr = redis.Redis(host='127.0.0.1', port={tls_port}, ssl=True, ssl_ca_certs='{}/ca.crt', socket_timeout=10)\nassert r.ping()\nprint(r.get('greeting').decode())\nr.set('from-py', 'yes')\n",
        d.display()
    );
    let out = Command::new("python3").args(["-c", &script]).output().expect("run python3");
    assert!(out.status.success(), "redis-py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");

    tracing::info!("--- the plain client port serves the same data");
    let mut con = server.conn();
    let got: String = redis::cmd("GET").arg("from-py").query(&mut con).expect("GET");
    assert_eq!(got, "yes");

    tracing::info!("--- a client that does not trust the server's CA refuses it");
    make_ca(d, "other");
    assert!(!pong(d, tls_port, &["--cacert", "other.crt"]));
}

#[test]
fn tls_auth_clients_yes_requires_a_certificate_from_the_ca() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    make_ca(d, "other");
    make_leaf(d, "other", "stranger", Usage::Client);
    let (config, port, tls_port) = write_config(d, &tls_lines(d, "yes"));
    let _server = ConfigServer::start(d, &config, "server1", port);

    tracing::info!("--- no client certificate: refused");
    assert!(!pong(d, tls_port, &["--cacert", "ca.crt"]));
    tracing::info!("--- a client certificate from another CA: refused");
    assert!(!pong(d, tls_port, &["--cacert", "ca.crt", "--cert", "stranger.crt", "--key", "stranger.key"]));
    tracing::info!("--- a client certificate from the CA: served");
    assert!(pong(d, tls_port, &["--cacert", "ca.crt", "--cert", "client.crt", "--key", "client.key"]));
}

#[test]
fn tls_auth_clients_optional_accepts_a_client_without_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    make_ca(d, "other");
    make_leaf(d, "other", "stranger", Usage::Client);
    let (config, port, tls_port) = write_config(d, &tls_lines(d, "optional"));
    let _server = ConfigServer::start(d, &config, "server1", port);
    assert!(pong(d, tls_port, &["--cacert", "ca.crt"]));
    assert!(pong(d, tls_port, &["--cacert", "ca.crt", "--cert", "client.crt", "--key", "client.key"]));
    // A certificate that is given is verified all the same.
    assert!(!pong(d, tls_port, &["--cacert", "ca.crt", "--cert", "stranger.crt", "--key", "stranger.key"]));
}

#[test]
fn plain_text_on_the_tls_port_is_closed_and_the_server_keeps_serving() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    let (config, port, tls_port) = write_config(d, &tls_lines(d, "no"));
    let mut server = ConfigServer::start(d, &config, "server1", port);

    tracing::info!("--- a plain-text PING on the tls-port: connection closed");
    let mut plain = TcpStream::connect(("127.0.0.1", tls_port)).expect("connect");
    plain.write_all(b"PING\r\n").expect("write");
    assert!(closed_by_server(&mut plain, DEADLINE), "the server kept a plain-text connection open on its tls-port");

    tracing::info!("--- garbage shaped like a TLS record: closed too");
    let mut garbage = TcpStream::connect(("127.0.0.1", tls_port)).expect("connect");
    garbage.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).expect("write");
    assert!(closed_by_server(&mut garbage, DEADLINE));

    tracing::info!("--- the server still serves TLS and plain clients");
    assert!(pong(d, tls_port, &["--cacert", "ca.crt"]));
    let pinged: String = redis::cmd("PING").query(&mut server.conn()).expect("PING");
    assert_eq!(pinged, "PONG");
    assert!(server.stop().is_some_and(|s| s.success()));
}

#[test]
fn a_stalled_handshake_is_cut_off_and_others_are_served() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    let (config, port, tls_port) = write_config(d, &tls_lines(d, "no"));
    let _server = ConfigServer::start(d, &config, "server1", port);

    tracing::info!("--- a client sends the first byte of a handshake and stalls");
    let mut stalled = TcpStream::connect(("127.0.0.1", tls_port)).expect("connect");
    stalled.write_all(&[0x16]).expect("write");
    tracing::info!("--- others are served meanwhile");
    assert!(pong(d, tls_port, &["--cacert", "ca.crt"]));
    tracing::info!("--- the stalled one is closed once the handshake's time is up");
    assert!(closed_by_server(&mut stalled, Duration::from_secs(40)), "a stalled handshake was never cut off");
}

#[test]
fn tls_cluster_puts_the_cluster_port_under_tls_for_slot_routing_clients() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    let (config, port, _) = write_config(d, &format!("{}tls-cluster = true\n", tls_lines(d, "no")));
    let text = std::fs::read_to_string(&config).expect("read config");
    // Not one of the config's own ports: they are free until the server binds them, so
    // a second pick may return one of them (seen in CI: "port … is already used").
    let cluster_port = (0..100)
        .map(|_| free_ports(1)[0])
        .find(|p| !text.contains(&format!(" = {p}\n")))
        .expect("a free port that the config does not name");
    std::fs::write(&config, text.replace("management-port = 0\n", &format!("management-port = 0\ncluster-port = {cluster_port}\n")))
        .expect("write config");
    let _server = ConfigServer::start(d, &config, "server1", port);

    tracing::info!("--- redis-cli -c --tls on the cluster port: SET and GET, slots advertise that port");
    let cli = ["--cacert", "ca.crt", "-c"];
    assert_eq!(redis_cli(d, cluster_port, &cli, &["SET", "{a}k", "v"]), (true, "OK".to_string()));
    assert_eq!(redis_cli(d, cluster_port, &cli, &["GET", "{a}k"]), (true, "v".to_string()));
    let (ok, slots) = redis_cli(d, cluster_port, &cli, &["CLUSTER", "SLOTS"]);
    assert!(ok && slots.lines().any(|l| l.trim() == cluster_port.to_string()), "{slots}");

    tracing::info!("--- plain text on the cluster port is closed");
    let mut plain = TcpStream::connect(("127.0.0.1", cluster_port)).expect("connect");
    plain.write_all(b"PING\r\n").expect("write");
    assert!(closed_by_server(&mut plain, DEADLINE));
}

#[test]
fn sighup_reloads_certificates_and_keeps_connections() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    let (config, port, tls_port) = write_config(d, &tls_lines(d, "no"));
    let server = ConfigServer::start(d, &config, "server1", port);

    tracing::info!("--- a connection made with the first certificate");
    let mut kept = SClient::connect(d, tls_port, "ca.crt");
    assert_eq!(kept.line("SET k before"), "+OK");

    tracing::info!("--- new certificate from a new CA in place, SIGHUP");
    make_ca(d, "ca2");
    make_leaf(d, "ca2", "server2", Usage::Server);
    std::fs::copy(d.join("server2.crt"), d.join("server.crt")).expect("copy cert");
    std::fs::copy(d.join("server2.key"), d.join("server.key")).expect("copy key");
    server.sighup();
    assert!(
        wait_until(DEADLINE, || pong(d, tls_port, &["--cacert", "ca2.crt"])),
        "new connections never saw the new certificate:\n{}",
        server.last_stderr()
    );
    assert!(!pong(d, tls_port, &["--cacert", "ca.crt"]), "a new connection still got the old certificate");

    tracing::info!("--- the connection made before the reload still works");
    assert_eq!(kept.line("GET k"), "$6");
    assert_eq!(kept.line(""), "before");

    tracing::info!("--- a reload that fails keeps the certificate in use");
    std::fs::write(d.join("server.crt"), "not a certificate\n").expect("spoil cert");
    server.sighup();
    assert!(
        wait_until(DEADLINE, || server.last_stderr().contains("TLS certificates not reloaded")),
        "no error logged for a failed reload:\n{}",
        server.last_stderr()
    );
    assert!(server.last_stderr().contains("cluster.tls-cert-file"));
    assert!(pong(d, tls_port, &["--cacert", "ca2.crt"]));
    assert_eq!(kept.line("PING"), "+PONG");
}

/// Starts the server expecting it to refuse; its stderr.
fn refused_start(dir: &Path, config: &Path, port: u16) -> String {
    let mut server = ConfigServer::start_unready(dir, config, "server1", port);
    let status = server.wait_exit(DEADLINE).expect("the server should have refused to start");
    assert!(!status.success());
    server.last_stderr()
}

#[test]
fn bad_tls_files_stop_the_start_naming_the_field_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    make_leaf(d, "ca", "another", Usage::Server);
    let p = d.display();

    let cases = [
        // (cert, key, field the error must name, file it must name)
        (format!("{p}/missing.crt"), format!("{p}/server.key"), "cluster.tls-cert-file", "missing.crt"),
        (format!("{p}/server.crt"), format!("{p}/server.csr"), "cluster.tls-key-file", "server.csr"),
        (format!("{p}/server.ext"), format!("{p}/server.key"), "cluster.tls-cert-file", "server.ext"),
        (format!("{p}/server.crt"), format!("{p}/another.key"), "is not the private key of", "another.key"),
    ];
    for (cert, key, field, file) in cases {
        let lines = format!("tls-cert-file = \"{cert}\"\ntls-key-file = \"{key}\"\ntls-auth-clients = \"no\"\n");
        let (config, port, _) = write_config(d, &lines);
        let stderr = refused_start(d, &config, port);
        assert!(stderr.contains(field) && stderr.contains(file), "expected {field} and {file} in:\n{stderr}");
    }

    let lines = format!("tls-cert-file = \"{p}/server.crt\"\ntls-key-file = \"{p}/server.key\"\ntls-ca-cert-file = \"{p}/server.key\"\n");
    let (config, port, _) = write_config(d, &lines);
    let stderr = refused_start(d, &config, port);
    assert!(stderr.contains("cluster.tls-ca-cert-file") && stderr.contains("server.key"), "{stderr}");
}
