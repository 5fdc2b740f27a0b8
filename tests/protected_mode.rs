//! Protected mode and the start-up exposure warning (issue 15 point 4), against real
//! `tandem` processes. A connection "from another host" comes from this machine's own
//! non-loopback address (found with a UDP socket's route, nothing sent); a machine
//! without one runs the loopback half and says so (the decision itself is a table in
//! `server::protected`'s unit tests).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{wait_until, ConfigServer};

const DEADLINE: Duration = Duration::from_secs(20);
const SECRET: &str = "protected-test-secret";

/// This machine's address toward the outside, if it has one that is not loopback and
/// can be bound.
fn non_loopback_ipv4() -> Option<IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("192.0.2.1:9").or_else(|_| probe.connect("10.255.255.1:9")).ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified() && std::net::TcpListener::bind((ip, 0)).is_ok()).then_some(ip)
}

/// A raw RESP connection to `to`, from `from` (its source address) when given.
struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(to: SocketAddr, from: Option<IpAddr>) -> std::io::Result<Raw> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let stream = runtime.block_on(async {
            let socket = if to.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            if let Some(from) = from {
                socket.bind(SocketAddr::new(from, 0))?;
            }
            socket.connect(to).await?.into_std()
        })?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(DEADLINE))?;
        Ok(Raw { reader: BufReader::new(stream) })
    }

    fn send(&mut self, args: &[&str]) {
        self.try_send(args).expect("write");
    }

    fn try_send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.reader.get_mut().write_all(out.as_bytes())
    }

    /// One reply's first line, and a bulk's body (a map or array: its first line only).
    fn reply(&mut self) -> String {
        self.try_reply().expect("read a reply")
    }

    fn try_reply(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let line = line.trim_end().to_string();
        Ok(match line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => {
                let mut body = vec![0u8; n + 2];
                self.reader.read_exact(&mut body)?;
                String::from_utf8_lossy(&body[..n]).into_owned()
            }
            None => line,
        })
    }

    fn call(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.reply()
    }

    /// True once the server has closed the connection (within the read timeout).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}

/// Server lines for `[[stripe.server]]` on `host`; returns the text and client port.
fn server_lines(name: &str, host: &str) -> (String, u16) {
    // Picked on the address the server binds: a port free on 127.0.0.1 may be taken on
    // another address, and then 0.0.0.0 cannot have it (CI met exactly that).
    let [port, group] = tandem::check::cluster::free_ports_on(host, 2).expect("ports")[..] else { unreachable!("two ports") };
    server_text(name, host, port, group)
}

/// The `[[stripe.server]]` lines of `name` on `host` with these ports; the text and
/// client port.
fn server_text(name: &str, host: &str, port: u16, group: u16) -> (String, u16) {
    let text = format!(
        "[[stripe.server]]\nname = \"{name}\"\nhost = \"{host}\"\nclient-port = {port}\ngroup-port = {group}\nmanagement-port = 0\ndata = \"data/{name}\"\n\n"
    );
    (text, port)
}

fn write_config(dir: &Path, cluster_extra: &str, servers: &str) -> PathBuf {
    let text = format!("[cluster]\nname = \"protected\"\nsecret = \"{SECRET}\"\n{cluster_extra}\n[[stripe]]\nname = \"A\"\n\n{servers}");
    let path = dir.join("tandem.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn denied(reply: &str) -> bool {
    reply.starts_with(
        "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.",
    )
}

#[test]
fn protected_mode_refuses_other_hosts_but_serves_loopback_and_the_arrays_servers() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let (server_text, port) = server_lines("server1", "0.0.0.0");
    let config = write_config(dir.path(), "", &server_text);
    let server = ConfigServer::start(dir.path(), &config, "server1", port);

    tracing::info!("--- the start-up warning names the server, the address and what protected mode does");
    let warned = || {
        server.last_stderr().lines().any(|l| {
            l.contains("WARN")
                && l.contains("server1")
                && l.contains(&format!("client-port 0.0.0.0:{port}"))
                && l.contains("protected-mode refuses every client from another host")
        })
    };
    assert!(wait_until(DEADLINE, warned), "no start-up warning:\n{}", server.last_stderr());

    tracing::info!("--- loopback is served: protected-mode is on by default");
    let local: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut con = Raw::connect(local, None).expect("connect on loopback");
    assert_eq!(con.call(&["CONFIG", "GET", "protected-mode"]), "*2");
    assert_eq!(con.reply(), "protected-mode");
    assert_eq!(con.reply(), "yes");
    assert_eq!(con.call(&["SET", "k", "v"]), "+OK");

    let Some(ip) = non_loopback_ipv4() else {
        tracing::warn!("this machine has no non-loopback IPv4 address: the other-host half of this test cannot run here");
        return;
    };
    let outside: SocketAddr = (ip, port).into();
    tracing::info!("--- a client from {ip} (not loopback): Redis's -DENIED text, then closed");
    let mut stranger = Raw::connect(outside, None).expect("connect from outside");
    let reply = stranger.call(&["PING"]);
    assert!(denied(&reply), "{reply}");
    assert!(reply.contains("'CONFIG SET protected-mode no'") && reply.contains("protected-mode = false under [cluster]"), "{reply}");
    assert!(stranger.closed());

    tracing::info!("--- one that sends nothing is refused too, within the first command's bound");
    let silent_since = Instant::now();
    let mut silent = Raw::connect(outside, None).expect("connect from outside");
    let reply = silent.reply();
    assert!(denied(&reply) && silent_since.elapsed() < DEADLINE, "{reply}");

    tracing::info!("--- one that streams a huge first command is cut off after a few KB, not let fill its buffer");
    let mut flood = Raw::connect(outside, None).expect("connect from outside");
    let socket = flood.reader.get_mut();
    socket.set_write_timeout(Some(DEADLINE)).expect("write timeout");
    socket.write_all(b"*1\r\n$500000000\r\n").expect("write the header");
    let chunk = vec![b'x'; 64 * 1024];
    // 8 MB is far more than the kernel's buffers hold: if the server kept reading, all
    // of it would go through; once it has refused, a write fails.
    let sent = (0..128).take_while(|_| socket.write_all(&chunk).is_ok()).count();
    assert!(sent < 128, "the server took all 8 MB of a first command from a refused host");

    tracing::info!("--- a wrong forward token is refused; the array's token (a member's handshake) is served");
    let mut forger = Raw::connect(outside, None).expect("connect");
    let wrong = tandem::acl::forward_token("not the secret");
    assert!(denied(&forger.call(&["HELLO", "2", "AUTH", "default", &wrong, "SETNAME", "tandem-forward:x"])));
    let mut member = Raw::connect(outside, None).expect("connect");
    let token = tandem::acl::forward_token(SECRET);
    assert_eq!(member.call(&["HELLO", "2", "AUTH", "default", &token, "SETNAME", "tandem-forward:server9"]), "*14");
    for _ in 0..14 {
        member.reply();
    }
    assert_eq!(member.call(&["GET", "k"]), "v");

    tracing::info!("--- refusals are counted as rejected connections (INFO stats)");
    let stats = con.call(&["INFO", "stats"]);
    let rejected = stats.lines().find_map(|l| l.strip_prefix("rejected_connections:")).and_then(|n| n.trim().parse::<u64>().ok());
    assert!(rejected.is_some_and(|n| n >= 3), "{stats}");

    tracing::info!("--- CONFIG SET protected-mode no from loopback: other hosts are served");
    assert_eq!(con.call(&["CONFIG", "SET", "protected-mode", "no"]), "+OK");
    let mut now_open = Raw::connect(outside, None).expect("connect");
    assert_eq!(now_open.call(&["GET", "k"]), "v");

    tracing::info!("--- protected-mode yes again, but the default user has a password: NOAUTH, not DENIED");
    assert_eq!(con.call(&["CONFIG", "SET", "protected-mode", "yes", "requirepass", "pw"]), "+OK");
    let mut with_password = Raw::connect(outside, None).expect("connect");
    assert!(with_password.call(&["GET", "k"]).starts_with("-NOAUTH"));
    assert_eq!(with_password.call(&["AUTH", "pw"]), "+OK");
    assert_eq!(with_password.call(&["GET", "k"]), "v");
}

#[test]
fn a_stripe_on_a_non_loopback_address_forwards_through_protected_mode() {
    support::log_phases();
    let Some(ip) = non_loopback_ipv4() else {
        tracing::warn!("this machine has no non-loopback IPv4 address: nothing to test here (see server::protected's tables)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let host = ip.to_string();
    // Three servers on one address: their ports are picked together (so they differ)
    // and below the ephemeral range, which their connections to each other draw from
    // (CI met a server that could not bind a port a peer's connection had taken).
    let ports = tandem::check::cluster::free_ports_below_ephemeral_on(&host, 6).expect("ports");
    let (one, port1) = server_text("server1", &host, ports[0], ports[1]);
    let (two, port2) = server_text("server2", &host, ports[2], ports[3]);
    let (three, port3) = server_text("server3", &host, ports[4], ports[5]);
    let config = write_config(dir.path(), "", &format!("{one}{two}{three}"));
    let mut servers: Vec<ConfigServer> = [("server1", port1), ("server2", port2), ("server3", port3)]
        .into_iter()
        .map(|(name, port)| ConfigServer::start_unready(dir.path(), &config, name, port))
        .collect();
    let addrs: Vec<SocketAddr> = [port1, port2, port3].into_iter().map(|p| (ip, p).into()).collect();
    // The test's own connections come from 127.0.0.1, so protected mode lets them in;
    // the servers' connections to each other come from `ip`.
    let loopback: IpAddr = [127, 0, 0, 1].into();

    tracing::info!("--- wait for an active: ROLE on every server");
    // A server that dies while starting fails the wait below, with every server's log.
    let role = |addr: SocketAddr| -> Option<String> {
        let mut c = Raw::connect(addr, Some(loopback)).ok()?;
        c.try_send(&["ROLE"]).ok()?;
        c.try_reply().ok()?;
        c.try_reply().ok()
    };
    let settled = wait_until(Duration::from_secs(30), || addrs.iter().filter(|a| role(**a).as_deref() == Some("master")).count() == 1);
    assert!(settled, "no active:\n{}", servers.iter().map(|s| s.last_stderr()).collect::<Vec<_>>().join("\n"));

    tracing::info!("--- a write sent to every server: the mirrors forward it to the active from {ip}");
    for (i, addr) in addrs.iter().enumerate() {
        let mut c = Raw::connect(*addr, Some(loopback)).expect("connect from loopback");
        let reply = c.call(&["SET", &format!("via{i}"), "ok"]);
        assert_eq!(reply, "+OK", "through {addr}:\n{}", servers[i].last_stderr());
    }
    tracing::info!("--- and every write reads back everywhere");
    for addr in &addrs {
        let mut c = Raw::connect(*addr, Some(loopback)).expect("connect");
        for i in 0..addrs.len() {
            assert_eq!(c.call(&["GET", &format!("via{i}")]), "ok", "via{i} on {addr}");
        }
    }
    tracing::info!("--- a client from {ip} itself is still refused");
    let mut stranger = Raw::connect(addrs[0], None).expect("connect");
    assert!(denied(&stranger.call(&["PING"])));
    for server in &mut servers {
        server.kill9();
    }
}

#[test]
fn the_start_up_warning_names_the_open_port_and_a_password_silences_it() {
    support::log_phases();
    let dir = tempfile::tempdir().expect("tempdir");
    let (server_text, port) = server_lines("server1", "0.0.0.0");
    let config = write_config(dir.path(), "protected-mode = false\n", &server_text);
    let mut server = ConfigServer::start(dir.path(), &config, "server1", port);

    tracing::info!("--- 0.0.0.0, no password, protected-mode = false: the risk named");
    let risk = format!("anyone who can reach 0.0.0.0:{port} can read and write every key; set requirepass / an aclfile");
    let warned = |s: &ConfigServer| s.last_stderr().lines().any(|l| l.contains("WARN") && l.contains("server1") && l.contains(&risk));
    assert!(wait_until(DEADLINE, || warned(&server)), "no start-up warning:\n{}", server.last_stderr());
    let mut con = server.conn();
    let mode: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("protected-mode").query(&mut con).expect("CONFIG GET");
    assert_eq!(mode, ["protected-mode", "no"]);
    server.kill9();

    tracing::info!("--- the same with requirepass: no warning");
    let config = write_config(dir.path(), "protected-mode = false\nrequirepass = \"pw\"\n", &server_text);
    let mut server = ConfigServer::start_unready(dir.path(), &config, "server1", port);
    let ready = || server.last_stderr().contains("server ready to accept connections");
    assert!(wait_until(DEADLINE, ready), "not ready:\n{}", server.last_stderr());
    assert!(!server.last_stderr().contains("beyond loopback"), "{}", server.last_stderr());
    server.kill9();

    tracing::info!("--- on loopback: no warning");
    let (loopback_text, port) = server_lines("server1", "127.0.0.1");
    let config = write_config(dir.path(), "protected-mode = false\n", &loopback_text);
    let server = ConfigServer::start(dir.path(), &config, "server1", port);
    assert!(!server.last_stderr().contains("beyond loopback"), "{}", server.last_stderr());
}
