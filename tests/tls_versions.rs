//! `tls-protocols`, `tls-ciphers` and `tls-ciphersuites` (Redis's names) decide what a
//! tls-port offers, seen from `openssl s_client` (a client no one here wrote).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::pki::{make_ca, make_leaf, Usage};
use support::{free_ports, ConfigServer};

/// A one-server config with a tls-port and these extra `[cluster]` lines; the server is
/// started. Returns it and its tls-port.
fn start(dir: &Path, extra: &str) -> (ConfigServer, u16) {
    make_ca(dir, "ca");
    make_leaf(dir, "ca", "server", Usage::Server);
    let [port, tls_port, group] = free_ports(3)[..] else { unreachable!("three ports") };
    let d = dir.display();
    let text = format!(
        "[cluster]\nname = \"tls\"\ntls-cert-file = \"{d}/server.crt\"\ntls-key-file = \"{d}/server.key\"\ntls-auth-clients = \"no\"\n{extra}\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\nname = \"server1\"\nclient-port = {port}\ntls-port = {tls_port}\ngroup-port = {group}\nmanagement-port = 0\ndata = \"data/server1\"\n"
    );
    let config = dir.join("tandem.toml");
    std::fs::write(&config, text).expect("write config");
    (ConfigServer::start(dir, &config, "server1", port), tls_port)
}

/// Whether `openssl s_client` with `args` completes a handshake with the tls-port, and
/// what it printed.
fn handshake(dir: &Path, port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-brief", "-verify_return_error", "-CAfile", "ca.crt", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (text.contains("CONNECTION ESTABLISHED"), text)
}

#[test]
fn tls_protocols_limits_the_versions_offered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_server, port) = start(d, "tls-protocols = \"TLSv1.2\"");
    let (ok, text) = handshake(d, port, &["-tls1_2"]);
    assert!(ok && text.contains("Protocol version: TLSv1.2"), "{text}");
    let (ok, text) = handshake(d, port, &["-tls1_3"]);
    assert!(!ok, "TLS 1.3 was accepted though tls-protocols says TLSv1.2 only:\n{text}");
}

#[test]
fn tls_ciphers_and_ciphersuites_limit_the_suites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_server, port) = start(d, "tls-ciphers = \"ECDHE-ECDSA-AES256-GCM-SHA384\"\ntls-ciphersuites = \"TLS_CHACHA20_POLY1305_SHA256\"");
    tracing::info!("--- TLS 1.2: the listed suite only");
    let (ok, text) = handshake(d, port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]);
    assert!(ok && text.contains("ECDHE-ECDSA-AES256-GCM-SHA384"), "{text}");
    let (ok, text) = handshake(d, port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert!(!ok, "a TLS 1.2 suite left out of tls-ciphers was accepted:\n{text}");
    tracing::info!("--- TLS 1.3: the listed suite only");
    let (ok, text) = handshake(d, port, &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"]);
    assert!(ok && text.contains("TLS_CHACHA20_POLY1305_SHA256"), "{text}");
    let (ok, text) = handshake(d, port, &["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]);
    assert!(!ok, "a TLS 1.3 suite left out of tls-ciphersuites was accepted:\n{text}");
}
