//! Protected mode and the start-up exposure check (issue 15 point 4): who may use a
//! server whose `default` user needs no password, and the warning a server gives at
//! start when one of its RESP ports is open to other hosts. Pure decisions, tested as
//! tables; the connection applies them (`connection`), the start-up logs them
//! (`server::run`). It knows nothing of sockets.
//!
//! Redis 7.0's rule (networking.c, clientAcceptHandler): with `protected-mode yes`
//! and a `default` user that has `nopass`, a connection from anywhere but the
//! loopback interface gets a `-DENIED` text and is closed. Two differences, both so
//! that an array keeps working:
//!
//! - Loopback is the whole of 127.0.0.0/8 and `::1` (with its IPv4-mapped form), not
//!   only 127.0.0.1: Tandem's arrays and tests put servers on 127.0.0.x, and a
//!   connection from any of them comes from this host.
//! - The array's own servers connect to each other's client ports (a mirror forwards
//!   its clients' commands to the active, `upstream`; client sessions are renewed the
//!   same way, `sessions`) from wherever they run. Their first command is always
//!   `HELLO … AUTH default <forward token>` (`acl::forward_token` of the cluster
//!   secret), which only a member can make. So a connection from another host is not
//!   refused at accept, as Redis does, but at its first command unless that command
//!   proves the token; one that sends nothing is refused after
//!   [`FIRST_COMMAND_MS_MAX`]. A client sees the same `-DENIED` reply either way.

use std::net::IpAddr;

use bytes::Bytes;

/// How long a connection from another host may take to send its first command while
/// protected mode holds it (a member's handshake comes at once; anything else only
/// waits to be refused): the TLS handshake's bound, for the same reason.
pub const FIRST_COMMAND_MS_MAX: u64 = crate::limits::TLS_HANDSHAKE_MS_MAX;
/// And its first command must fit in this many bytes (a member's HELLO with its proof
/// takes about 150): until then the client is nobody's, and a buffer it may fill up to
/// the query-buffer limit would let a host protected mode refuses hold a gigabyte per
/// connection. Redis judges at accept, before reading anything.
pub const FIRST_COMMAND_BYTES_MAX: usize = 4096;

/// Redis 7.0.15's text, adapted where it names what Tandem does not have (CONFIG
/// REWRITE, redis.conf, `--protected-mode`): written raw, then the connection closes.
pub const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. \
In this mode connections are only accepted from the loopback interface. \
If you want to connect from external computers to Redis you may adopt one of the following solutions: \
1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, \
however MAKE SURE Redis is not publicly accessible from internet if you do so. \
CONFIG SET lasts until this server restarts (Tandem has no CONFIG REWRITE). \
2) Alternatively you can just disable the protected mode by editing the array's TOML file, setting protected-mode = false under [cluster], and then restarting the server. \
3) Setup a an authentication password for the default user (requirepass under [cluster], or an aclfile). \
NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Whether `ip` is this host's loopback interface: 127.0.0.0/8, `::1`, or either
/// written as an IPv4-mapped IPv6 address.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// What protected mode makes of a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Served as usual.
    Open,
    /// Refused with [`DENIED`] unless its first command proves it is a server of the
    /// array ([`proves_member`]).
    MembersOnly,
}

/// Redis's condition: protected mode on, the `default` user without a password, and
/// a peer beyond loopback.
pub fn admission(peer: IpAddr, protected_mode: bool, default_nopass: bool) -> Admission {
    if protected_mode && default_nopass && !is_loopback(peer) {
        Admission::MembersOnly
    } else {
        Admission::Open
    }
}

/// Whether `args` (a connection's first command) is a forwarding server's handshake:
/// `HELLO <proto> [options] AUTH default <token> …` or `AUTH default <token>`, with
/// this array's forward token. Without a token (a lone server) nothing proves it.
pub fn proves_member(args: &[Bytes], forward_token: Option<&str>) -> bool {
    let Some(token) = forward_token else { return false };
    let is = |arg: &Bytes, word: &str| arg.eq_ignore_ascii_case(word.as_bytes());
    let presents = |at: usize| {
        matches!((args.get(at), args.get(at + 1), args.get(at + 2)),
            (Some(auth), Some(user), Some(pass)) if is(auth, "auth") && &user[..] == b"default" && constant_time_eq(pass, token.as_bytes()))
    };
    match args.first() {
        Some(name) if is(name, "hello") => (2..args.len()).any(presents),
        Some(name) if is(name, "auth") => args.len() == 3 && presents(0),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A RESP port of a server, for the start-up check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespPort {
    Client,
    Cluster,
    Tls,
}

impl RespPort {
    pub fn name(self) -> &'static str {
        match self {
            RespPort::Client => "client-port",
            RespPort::Cluster => "cluster-port",
            RespPort::Tls => "tls-port",
        }
    }
}

/// What the start-up check knows about one bound port.
#[derive(Debug, Clone, Copy)]
pub struct Exposure {
    pub port: RespPort,
    /// The address the listener is bound to (0.0.0.0 counts as beyond loopback).
    pub bound: std::net::SocketAddr,
    /// The port speaks TLS and requires a client certificate from tls-ca-cert-file
    /// (`tls-auth-clients yes`): only holders of such a certificate get in.
    pub client_certificates: bool,
}

/// The warning for one port, or `None` when it is safe: bound to loopback, the
/// `default` user needs a password (`default_open` false), or (with protected mode
/// off) clients must show a certificate. The group port is not checked here: it is
/// only opened with `cluster.secret`, whose proof it demands. The management port
/// serves no keys, and its procedures need `management-token` or an ACL user with a
/// password (a `nopass` user, such as `default` here, is refused there).
pub fn exposure_warning(exposure: &Exposure, default_open: bool, protected_mode: bool) -> Option<String> {
    let addr = exposure.bound;
    if is_loopback(addr.ip()) || !default_open {
        return None;
    }
    let port = exposure.port.name();
    if protected_mode {
        return Some(format!(
            "{port} {addr} is reachable beyond loopback and the default user has no password: protected-mode refuses every client from another host with -DENIED (the array's own servers are let in); set requirepass / an aclfile to serve them, or protected-mode = false on a trusted network"
        ));
    }
    if exposure.client_certificates {
        return None;
    }
    Some(format!(
        "{port} {addr} is reachable beyond loopback with no password and protected-mode off: anyone who can reach {addr} can read and write every key; set requirepass / an aclfile, or serve clients on a tls-port with tls-auth-clients = \"yes\""
    ))
}

/// Whether the `default` user, as this server will first serve it, logs in without a
/// password: the stripe's users (from its data) once they were ever set, else the
/// aclfile's `default` line (`aclfile` is the file's text) if it has one, else
/// `requirepass`.
pub fn default_open(users: &crate::acl::Users, requirepass: Option<&str>, aclfile: Option<&str>) -> bool {
    let open = |u: &crate::acl::User| u.enabled && u.nopass;
    if !users.pristine() {
        return users.get(b"default", requirepass).is_none_or(|u| open(&u));
    }
    let mut configured = crate::acl::Users::default();
    if let Some(text) = aclfile {
        // As the first start loads it: the configured default first, the file over it;
        // a file that does not load leaves the configured default.
        let _ = configured.set_user(b"default", &[], requirepass);
        let _ = configured.load(text);
    }
    configured.get(b"default", requirepass).is_none_or(|u| open(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn protected_mode_admission_table() {
        use Admission::*;
        // (peer, protected-mode, default user nopass) → admission
        let table = [
            ("127.0.0.1", true, true, Open),
            ("127.0.0.2", true, true, Open),
            ("127.255.255.254", true, true, Open),
            ("::1", true, true, Open),
            ("::ffff:127.0.0.1", true, true, Open),
            ("192.0.2.2", true, true, MembersOnly),
            ("10.1.2.3", true, true, MembersOnly),
            ("0.0.0.0", true, true, MembersOnly),
            ("::ffff:10.1.2.3", true, true, MembersOnly),
            ("2001:db8::1", true, true, MembersOnly),
            ("192.0.2.2", true, false, Open),
            ("192.0.2.2", false, true, Open),
            ("192.0.2.2", false, false, Open),
            ("127.0.0.1", false, false, Open),
        ];
        for (peer, protected_mode, nopass, want) in table {
            assert_eq!(admission(ip(peer), protected_mode, nopass), want, "{peer} protected-mode={protected_mode} nopass={nopass}");
        }
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn only_the_forward_token_proves_a_member() {
        let token = crate::acl::forward_token("s3cret");
        let t = token.as_str();
        let yes = [
            args(&["HELLO", "3", "AUTH", "default", t, "SETNAME", "tandem-forward:server2"]),
            args(&["hello", "2", "auth", "default", t]),
            args(&["HELLO", "2", "SETNAME", "x", "AUTH", "default", t]),
            args(&["AUTH", "default", t]),
        ];
        for a in &yes {
            assert!(proves_member(a, Some(t)), "{a:?}");
        }
        let wrong = crate::acl::forward_token("other");
        let no = [
            args(&["HELLO", "3", "AUTH", "default", &wrong]),
            args(&["HELLO", "3", "AUTH", "alice", t]),
            args(&["HELLO", "3", "AUTH", "default"]),
            args(&["AUTH", t]),
            args(&["AUTH", "default", t, "extra"]),
            args(&["PING"]),
            args(&["SET", "AUTH", "default", t]),
            args(&[]),
        ];
        for a in &no {
            assert!(!proves_member(a, Some(t)), "{a:?}");
        }
        // A lone server has no token: nothing proves membership.
        assert!(!proves_member(&yes[0], None));
    }

    #[test]
    fn start_up_warning_table() {
        let at = |port: RespPort, addr: &str, client_certificates: bool| Exposure {
            port,
            bound: addr.parse().expect("addr"),
            client_certificates,
        };
        // (port, default user open, protected-mode) → warned?
        let loopback = at(RespPort::Client, "127.0.0.2:7000", false);
        assert_eq!(exposure_warning(&loopback, true, false), None);
        let wide = at(RespPort::Client, "0.0.0.0:7000", false);
        assert_eq!(exposure_warning(&wide, false, false), None, "a password closes it");
        let open = exposure_warning(&wide, true, false).expect("warned");
        assert!(open.contains("anyone who can reach 0.0.0.0:7000 can read and write every key"), "{open}");
        assert!(open.starts_with("client-port 0.0.0.0:7000"), "{open}");
        let protected = exposure_warning(&wide, true, true).expect("warned");
        assert!(protected.contains("protected-mode refuses every client from another host"), "{protected}");
        let mtls = at(RespPort::Tls, "192.0.2.2:7001", true);
        assert_eq!(exposure_warning(&mtls, true, false), None, "client certificates close it");
        let tls_no_auth = at(RespPort::Tls, "192.0.2.2:7001", false);
        assert!(exposure_warning(&tls_no_auth, true, false).is_some_and(|w| w.starts_with("tls-port 192.0.2.2:7001")));
        let cluster = at(RespPort::Cluster, "[2001:db8::1]:7002", false);
        assert!(exposure_warning(&cluster, true, false).is_some_and(|w| w.starts_with("cluster-port [2001:db8::1]:7002")));
    }

    #[test]
    fn the_default_user_as_first_served() {
        let pristine = crate::acl::Users::default();
        assert!(default_open(&pristine, None, None));
        assert!(!default_open(&pristine, Some("pw"), None));
        assert!(!default_open(&pristine, None, Some("user default on >pw ~* +@all\n")));
        assert!(!default_open(&pristine, None, Some("user default off nopass ~* +@all\n")));
        assert!(default_open(&pristine, None, Some("user alice on >pw ~* +@all\n")), "alice's password does not close default");
        assert!(!default_open(&pristine, Some("pw"), Some("user alice on >pw ~* +@all\n")));
        assert!(default_open(&pristine, None, Some("not an acl file\n")));
        let mut set = crate::acl::Users::default();
        set.set_user(b"default", &[&b">pw"[..]], None).expect("setuser");
        assert!(!default_open(&set, None, Some("user default on nopass ~* +@all\n")), "the stripe's users win over the file");
    }
}
