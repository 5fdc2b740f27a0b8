//! Certificates changed while the server runs (issue 15 point 1): CONFIG SET tls-*
//! loads new files for new connections and keeps the old ones on a bad file, with
//! Redis's error; SIGHUP reloads under a steady stream of TLS commands without losing
//! a connection or a command. Real `tandem` processes; certificates from `openssl`.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::pki::{make_ca, make_leaf, pki, pong, SClient, TlsConn, Usage};
use support::{free_ports, wait_until, ConfigServer};

const DEADLINE: Duration = Duration::from_secs(20);

/// A one-server config with a tls-port whose files are `<cert>.crt`/`.key` in `dir`.
/// Returns (config path, client port, tls port).
fn write_config(dir: &Path, cert: &str, auth: &str) -> (PathBuf, u16, u16) {
    let [port, tls_port, group] = free_ports(3)[..] else { unreachable!("three ports") };
    let d = dir.display();
    let text = format!(
        "[cluster]\nname = \"tls\"\ntls-cert-file = \"{d}/{cert}.crt\"\ntls-key-file = \"{d}/{cert}.key\"\ntls-ca-cert-file = \"{d}/ca.crt\"\ntls-auth-clients = \"{auth}\"\n\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\nname = \"server1\"\nclient-port = {port}\ntls-port = {tls_port}\ngroup-port = {group}\nmanagement-port = 0\ndata = \"data/server1\"\n"
    );
    let path = dir.join("tandem.toml");
    std::fs::write(&path, text).expect("write config");
    (path, port, tls_port)
}

fn config_get(con: &mut redis::Connection, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(con).expect("CONFIG GET");
    pair.get(1).cloned().unwrap_or_default()
}

fn config_set(con: &mut redis::Connection, pairs: &[(&str, String)]) -> Result<(), String> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("SET");
    for (name, value) in pairs {
        cmd.arg(*name).arg(value);
    }
    cmd.query::<()>(con).map_err(|e| e.to_string())
}

#[test]
fn config_set_tls_files_serves_the_new_certificate_and_keeps_open_connections() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = d.display().to_string();
    pki(d);
    let (config, port, tls_port) = write_config(d, "server", "no");
    let server = ConfigServer::start(d, &config, "server1", port);
    let mut con = server.conn();

    tracing::info!("--- CONFIG GET shows the config file's tls-* values");
    assert_eq!(config_get(&mut con, "tls-cert-file"), format!("{p}/server.crt"));
    assert_eq!(config_get(&mut con, "tls-ca-cert-file"), format!("{p}/ca.crt"));
    assert_eq!(config_get(&mut con, "tls-auth-clients"), "no");

    tracing::info!("--- a TLS connection made with the first certificate");
    let mut kept = SClient::connect(d, tls_port, "ca.crt");
    assert_eq!(kept.line("SET k before"), "+OK");

    tracing::info!("--- CONFIG SET tls-cert-file and tls-key-file to a certificate of another CA, together");
    make_ca(d, "ca2");
    make_leaf(d, "ca2", "server2", Usage::Server);
    config_set(&mut con, &[("tls-cert-file", format!("{p}/server2.crt")), ("tls-key-file", format!("{p}/server2.key"))])
        .expect("CONFIG SET to a good certificate and key");
    assert!(pong(d, tls_port, &["--cacert", "ca2.crt"]), "a new connection did not get the new certificate");
    assert!(!pong(d, tls_port, &["--cacert", "ca.crt"]), "a new connection still got the old certificate");
    assert_eq!(config_get(&mut con, "tls-cert-file"), format!("{p}/server2.crt"));

    tracing::info!("--- the connection made before still works");
    assert_eq!(kept.line("GET k"), "$6");
    assert_eq!(kept.line(""), "before");

    tracing::info!("--- a certificate that is not the key's: Redis's error, old certificate kept, value put back");
    let err = config_set(&mut con, &[("tls-cert-file", format!("{p}/server.crt"))]).expect_err("a mismatched key must fail");
    assert!(err.contains("CONFIG SET failed (possibly related to argument 'tls-cert-file')"), "{err}");
    assert!(err.contains("is not the private key of"), "{err}");
    assert_eq!(config_get(&mut con, "tls-cert-file"), format!("{p}/server2.crt"));
    assert!(pong(d, tls_port, &["--cacert", "ca2.crt"]));

    tracing::info!("--- a file that does not exist: the error names the field and the file");
    let err = config_set(&mut con, &[("tls-cert-file", format!("{p}/missing.crt"))]).expect_err("a missing file must fail");
    assert!(err.contains("argument 'tls-cert-file'") && err.contains("missing.crt") && err.contains("cannot read the file"), "{err}");
    let err = config_set(&mut con, &[("tls-key-file", format!("{p}/server2.csr"))]).expect_err("a CSR is no key");
    assert!(err.contains("argument 'tls-key-file'") && err.contains("tls-key-file") && err.contains("server2.csr"), "{err}");
    assert!(pong(d, tls_port, &["--cacert", "ca2.crt"]));
    assert_eq!(kept.line("PING"), "+PONG");

    tracing::info!("--- tls-auth-clients yes: new connections need a client certificate from tls-ca-cert-file");
    config_set(&mut con, &[("tls-auth-clients", "yes".to_string())]).expect("CONFIG SET tls-auth-clients yes");
    assert_eq!(config_get(&mut con, "tls-auth-clients"), "yes");
    assert!(!pong(d, tls_port, &["--cacert", "ca2.crt"]));
    assert!(pong(d, tls_port, &["--cacert", "ca2.crt", "--cert", "client.crt", "--key", "client.key"]));
    let err = config_set(&mut con, &[("tls-ca-cert-file", String::new())]).expect_err("client certificates need a CA");
    assert!(err.contains("argument 'tls-ca-cert-file'") && err.contains("tls-ca-cert-file is not set"), "{err}");
    assert_eq!(config_get(&mut con, "tls-ca-cert-file"), format!("{p}/ca.crt"));

    tracing::info!("--- SIGHUP then reads the files CONFIG SET named");
    make_ca(d, "ca3");
    make_leaf(d, "ca3", "server3", Usage::Server);
    std::fs::copy(d.join("server3.crt"), d.join("server2.crt")).expect("copy cert");
    std::fs::copy(d.join("server3.key"), d.join("server2.key")).expect("copy key");
    server.sighup();
    let client = ["--cacert", "ca3.crt", "--cert", "client.crt", "--key", "client.key"];
    assert!(
        wait_until(DEADLINE, || pong(d, tls_port, &client)),
        "SIGHUP did not read the files CONFIG SET named:\n{}",
        server.last_stderr()
    );
    assert_eq!(kept.line("PING"), "+PONG");
}

#[test]
fn sighup_under_a_steady_stream_of_tls_commands_loses_no_connection_and_no_command() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    pki(d);
    make_leaf(d, "ca", "serverB", Usage::Server);
    for ext in ["crt", "key"] {
        std::fs::copy(d.join(format!("server.{ext}")), d.join(format!("live.{ext}"))).expect("copy");
    }
    let (config, port, tls_port) = write_config(d, "live", "no");
    let server = ConfigServer::start(d, &config, "server1", port);

    const COMMANDS: usize = 3_000;
    const RELOAD_EVERY: usize = 150;
    const RUN_MAX: Duration = Duration::from_secs(120);
    tracing::info!("--- {COMMANDS} SETs over one TLS connection, a SIGHUP every {RELOAD_EVERY}, certificates alternating");
    let ca = d.join("ca.crt");
    let mut stream = TlsConn::connect(&ca, tls_port, Duration::from_secs(10)).expect("TLS connect");
    let started = Instant::now();
    let mut reloads = 0;
    for i in 0..COMMANDS {
        let reply = stream.line(&format!("SET k:{i} {i}")).unwrap_or_else(|e| panic!("command {i} failed: {e}\n{}", server.last_stderr()));
        assert_eq!(reply, "+OK", "command {i}");
        if (i + 1) % RELOAD_EVERY == 0 {
            let leaf = if reloads % 2 == 0 { "serverB" } else { "server" };
            for ext in ["crt", "key"] {
                std::fs::copy(d.join(format!("{leaf}.{ext}")), d.join(format!("live.{ext}"))).expect("copy");
            }
            server.sighup();
            reloads += 1;
            // A new connection's handshake meanwhile succeeds with either certificate.
            let mut fresh = TlsConn::connect(&ca, tls_port, Duration::from_secs(10)).expect("a new TLS connection during reloads");
            assert_eq!(fresh.line("PING").expect("PING on a new connection"), "+PONG");
        }
        assert!(started.elapsed() < RUN_MAX, "{i} commands took longer than {RUN_MAX:?}");
    }
    tracing::info!("--- every reload logged, every command kept");
    let reloaded = || server.last_stderr().matches("TLS certificates reloaded").count();
    assert!(wait_until(DEADLINE, || reloaded() == reloads), "{} of {reloads} reloads logged:\n{}", reloaded(), server.last_stderr());
    assert!(!server.last_stderr().contains("not reloaded"), "{}", server.last_stderr());
    assert_eq!(stream.line("DBSIZE").expect("DBSIZE"), format!(":{COMMANDS}"));
    let mut con = server.conn();
    let last: String = redis::cmd("GET").arg(format!("k:{}", COMMANDS - 1)).query(&mut con).expect("GET");
    assert_eq!(last, (COMMANDS - 1).to_string());
    tracing::info!("{COMMANDS} commands and {reloads} reloads in {:?}", started.elapsed());
}
