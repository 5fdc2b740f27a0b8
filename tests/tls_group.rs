//! Mutual TLS on the group ports (`tls-group`, issue 15 point 1): a stripe whose
//! members speak to each other, and the CLI to them, only over TLS with certificates
//! from the cluster's CA. Real `tandem` processes; certificates from the `openssl` CLI.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, Spec};
use support::pki::{make_ca, make_leaf, Usage};
use support::wait_until;

const DEADLINE: Duration = Duration::from_secs(30);

/// `ca.crt` and a member certificate it signed, in `dir`.
fn member_pki(dir: &Path) {
    make_ca(dir, "ca");
    make_leaf(dir, "ca", "member", Usage::Member);
}

/// What a plain-TCP caller on member `i`'s group port receives within a few seconds.
/// A plain group port greets every caller at once with its handshake's magic bytes; a
/// TLS one waits for a ClientHello and closes.
fn plain_greeting(cluster: &Cluster, i: usize) -> Vec<u8> {
    let m = &cluster.members[i];
    let mut socket = TcpStream::connect((m.host.as_str(), m.group_port)).expect("connect to the group port");
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 64];
    while Instant::now() < until {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    got
}

#[test]
fn a_stripe_over_group_tls_forms_fails_over_and_loses_nothing() {
    support::log_phases();
    let pki = tempfile::tempdir().expect("tempdir");
    member_pki(pki.path());
    let mut cluster = Cluster::configure(Spec::servers(3));
    cluster.use_group_tls(pki.path()).expect("tls settings");
    cluster.start_all();
    let active = cluster.wait_formed();

    tracing::info!("--- the group ports speak TLS only: a plain caller gets no greeting");
    let greeting = plain_greeting(&cluster, active);
    assert!(!greeting.windows(8).any(|w| w == b"TNDMGRP1"), "a plain-text handshake was offered: {greeting:?}");

    tracing::info!("--- writes replicate over TLS");
    let mut con = cluster.conn(active).expect("connect to the active");
    for _ in 0..200 {
        let _: i64 = redis::cmd("INCR").arg("counter").query(&mut con).expect("INCR");
    }
    let everyone = [0, 1, 2];
    let digest = cluster.wait_converged(&everyone, DEADLINE);
    assert!(!digest.is_empty());

    tracing::info!("--- kill -9 the active: a mirror takes over over TLS, nothing acknowledged is lost");
    cluster.kill9(active);
    let rest: Vec<usize> = everyone.iter().copied().filter(|&i| i != active).collect();
    let new_active = cluster.wait_stable(&rest, DEADLINE);
    assert_ne!(new_active, active);
    let mut con = cluster.conn(new_active).expect("connect to the new active");
    let counter: i64 = redis::cmd("GET").arg("counter").query(&mut con).expect("GET");
    assert_eq!(counter, 200);
    let _: i64 = redis::cmd("INCR").arg("counter").query(&mut con).expect("INCR on the new active");

    tracing::info!("--- the killed member comes back, catches up over TLS, and every digest agrees");
    cluster.spawn(active);
    cluster.wait_stable(&everyone, DEADLINE);
    cluster.wait_converged(&everyone, DEADLINE);
    let mut con = cluster.conn(active).expect("connect to the returned member");
    let counter: i64 = redis::cmd("GET").arg("counter").query(&mut con).expect("GET on the returned member");
    assert_eq!(counter, 201);
}

#[test]
fn a_member_whose_certificate_is_from_another_ca_is_refused_on_both_sides() {
    support::log_phases();
    let pki = tempfile::tempdir().expect("tempdir");
    let d = pki.path();
    member_pki(d);
    make_ca(d, "other");
    make_leaf(d, "other", "stranger", Usage::Member);
    let mut cluster = Cluster::configure(Spec::servers(3));
    cluster.use_group_tls(d).expect("tls settings");

    tracing::info!("--- the stripe forms; the third member is stopped");
    cluster.start_all();
    let third = (0..3).find(|&i| Some(i) != cluster.active()).expect("a mirror");
    let others: Vec<usize> = (0..3).filter(|&i| i != third).collect();
    cluster.kill9(third);
    cluster.wait_stable(&others, DEADLINE);

    tracing::info!("--- it comes back with a certificate from another CA (the files are swapped while it loads them)");
    let keep = |name: &str| std::fs::copy(d.join(name), d.join(format!("{name}.good"))).expect("keep the good files");
    keep("member.crt");
    keep("member.key");
    std::fs::copy(d.join("stranger.crt"), d.join("member.crt")).expect("swap in the stranger's certificate");
    std::fs::copy(d.join("stranger.key"), d.join("member.key")).expect("swap in the stranger's key");
    let before = (cluster.stderr(others[0]).len(), cluster.stderr(others[1]).len());
    cluster.spawn(third);
    let refused_by_members = wait_until(DEADLINE, || {
        let theirs = cluster.stderr(others[0])[before.0..].to_string() + &cluster.stderr(others[1])[before.1..];
        theirs.contains("TLS refused") && theirs.contains("must chain to cluster.tls-ca-cert-file")
    });
    let refused_by_stranger = wait_until(DEADLINE, || cluster.stderr(third).contains("TLS refused"));
    // Put the good files back for the CLI (and for the reload below).
    std::fs::copy(d.join("member.crt.good"), d.join("member.crt")).expect("restore");
    std::fs::copy(d.join("member.key.good"), d.join("member.key")).expect("restore");
    assert!(refused_by_members, "the stripe's members did not log the refusal:\n{}", cluster.all_stderr());
    assert!(refused_by_stranger, "the stranger did not log the refusal:\n{}", cluster.stderr(third));
    for line in cluster.all_stderr().lines().filter(|l| l.contains("TLS refused")).take(4) {
        tracing::info!("logged: {line}");
    }

    tracing::info!("--- the stranger is not let in: the stripe carries on without it");
    let active = cluster.active().expect("an active");
    let mut con = cluster.conn(active).expect("connect");
    let _: () = redis::cmd("SET").arg("written-while-refused").arg("yes").query(&mut con).expect("SET");
    let row = cluster.state(third);
    assert!(!row.contains("STANDBY"), "the stranger joined: {row}");

    tracing::info!("--- SIGHUP: the third member reloads the cluster's certificate and joins");
    assert!(cluster.try_signal(third, "-HUP"));
    cluster.wait_stable(&[0, 1, 2], DEADLINE);
    cluster.wait_converged(&[0, 1, 2], DEADLINE);
}

#[test]
fn tls_group_without_its_files_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tandem.toml");
    let text = "[cluster]\nname = \"c\"\nsecret = \"s3cret-s3cret\"\ntls-group = true\ntls-cert-file = \"m.crt\"\n[[stripe]]\nname = \"A\"\n[[stripe.server]]\nname = \"s1\"\nclient-port = 1\ngroup-port = 3\nmanagement-port = 4\ndata = \"d\"\n";
    std::fs::write(&config, text).expect("write");
    let out = std::process::Command::new(support::binary()).args(["status", "--config"]).arg(&config).output().expect("run tandem status");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("tandem.toml:4: cluster.tls-group: group ports over mutual TLS need"), "{stderr}");
}

#[test]
fn a_group_port_over_tls_closes_garbage_and_keeps_serving() {
    support::log_phases();
    let pki = tempfile::tempdir().expect("tempdir");
    member_pki(pki.path());
    let mut cluster = Cluster::configure(Spec::servers(1));
    cluster.use_group_tls(pki.path()).expect("tls settings");
    cluster.start_all();
    let (host, group_port) = (cluster.members[0].host.clone(), cluster.members[0].group_port);
    tracing::info!("--- garbage shaped like a TLS record, then plain text");
    for bytes in [&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..], b"TNDMGRP1 hello\r\n"] {
        let mut socket = TcpStream::connect((host.as_str(), group_port)).expect("connect");
        socket.write_all(bytes).expect("write");
        assert!(support::closed_by_server(&mut socket, DEADLINE), "the group port kept a bad connection open");
    }
    tracing::info!("--- the CLI (over TLS) still reads the member's status");
    let (ok, text) = cluster.ctl(&["status"]);
    assert!(ok && text.contains("ACTIVE"), "{text}");
}
