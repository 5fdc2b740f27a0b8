//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, CLIENT, QUIT, RESET,
//! READONLY/READWRITE. They change the session's own state.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::text;
use crate::acl::log::Entry;
use crate::commands::{self, args::*, unknown_subcommand};
use crate::protocol::reply::Reply;
use crate::server::clients::ClientInfo;
use crate::server::connection::Connection;
use crate::server::pause::PauseMode;
use crate::server::session::AclSession;
use crate::server::upstream::FORWARD_NAME_PREFIX;

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "HELP",
    "    Print this help.",
];

/// The bytes of a command as a RESP array: what Redis's `qbuf` shows for the client
/// running CLIENT INFO/LIST (its command is still in its query buffer then).
fn resp_len(args: &[Bytes]) -> usize {
    let digits = |n: usize| n.to_string().len();
    3 + digits(args.len()) + args.iter().map(|a| 5 + digits(a.len()) + a.len()).sum::<usize>()
}

/// The client types CLIENT LIST and CLIENT KILL filter by. Tandem has no Redis
/// replicas or masters among its clients: those types match no one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    Normal,
    Replica,
    Master,
    Pubsub,
}

impl ClientKind {
    fn parse(arg: &[u8]) -> Option<ClientKind> {
        match String::from_utf8_lossy(arg).to_ascii_lowercase().as_str() {
            "normal" => Some(ClientKind::Normal),
            "replica" | "slave" => Some(ClientKind::Replica),
            "master" => Some(ClientKind::Master),
            "pubsub" => Some(ClientKind::Pubsub),
            _ => None,
        }
    }

    fn of(client: &ClientInfo) -> ClientKind {
        if client.subscribed() {
            ClientKind::Pubsub
        } else {
            ClientKind::Normal
        }
    }
}

/// CLIENT KILL's filters: a client is killed when it matches all of them.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    kind: Option<ClientKind>,
    addr: Option<String>,
    laddr: Option<String>,
    skip_me: bool,
}

impl KillFilter {
    fn matches(&self, client: &ClientInfo, me: u64) -> bool {
        self.id.is_none_or(|id| id == client.id)
            && self.kind.is_none_or(|k| ClientKind::of(client) == k)
            && self.addr.as_ref().is_none_or(|a| *a == client.addr)
            && self.laddr.as_ref().is_none_or(|a| *a == client.laddr)
            && !(self.skip_me && client.id == me)
    }
}

pub use crate::commands::REDIS_VERSION;

impl Connection {
    pub(super) fn ping(&mut self, args: &[Bytes]) -> Reply {
        if args.len() > 2 {
            return commands::wrong_args("ping");
        }
        if self.session.subscribed() && !self.session.resp3 {
            let payload = args.get(1).cloned().unwrap_or_default();
            return Reply::Array(vec![Reply::bulk(b"pong"), Reply::Bulk(payload)]);
        }
        match args.get(1) {
            Some(msg) => Reply::Bulk(msg.clone()),
            None => Reply::status("PONG"),
        }
    }

    pub(super) fn hello(&mut self, args: &[Bytes]) -> Reply {
        let mut proto = if self.session.resp3 { 3 } else { 2 };
        let mut i = 1;
        if let Some(v) = args.get(1) {
            match parse_i64(v) {
                Some(p @ (2 | 3)) => proto = p,
                Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
                None => return Reply::err("ERR Protocol version is not an integer or out of range"),
            }
            i = 2;
        }
        let mut name = None;
        while i < args.len() {
            if is(&args[i], "auth") && i + 2 < args.len() {
                if let Err(e) = self.check_password(&args[0], &args[i + 1], &args[i + 2]) {
                    return e;
                }
                i += 3;
            } else if is(&args[i], "setname") && i + 1 < args.len() {
                name = Some(args[i + 1].clone());
                i += 2;
            } else {
                return Reply::error(format!("ERR Syntax error in HELLO option '{}'", text(&args[i])));
            }
        }
        if !self.session.authed {
            return Reply::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        if let Some(name) = name {
            if let Err(e) = self.set_name(&name) {
                return e;
            }
        }
        self.session.set_protocol(proto == 3);
        let role: &[u8] = if self.shared.view().local_is_active() { b"master" } else { b"replica" };
        Reply::Map(vec![
            (Reply::bulk(b"server"), Reply::bulk(b"redis")),
            (Reply::bulk(b"version"), Reply::bulk_str(REDIS_VERSION)),
            (Reply::bulk(b"proto"), Reply::Int(proto)),
            (Reply::bulk(b"id"), Reply::Int(self.session.info.id as i64)),
            (Reply::bulk(b"mode"), Reply::bulk(b"standalone")),
            (Reply::bulk(b"role"), Reply::bulk(role)),
            (Reply::bulk(b"modules"), Reply::Array(vec![])),
        ])
    }

    /// Logs the connection in as `user` if `pass` is one of its passwords (or it has
    /// `nopass`) and it is enabled; a failure is recorded in ACL LOG as Redis does.
    fn check_password(&mut self, command: &[u8], user: &[u8], pass: &[u8]) -> Result<(), Reply> {
        if user == b"default" && self.shared.settings.forward_token.as_deref().is_some_and(|t| constant_time_eq(t.as_bytes(), pass)) {
            self.session.authed = true;
            self.session.acl = AclSession::new("default");
            self.session.acl.forwarder = true;
            return Ok(());
        }
        let requirepass = self.shared.settings.requirepass();
        let found = self.shared.core.acl.user(user, requirepass.as_deref());
        if found.is_some_and(|u| u.password_ok(pass)) {
            self.session.authed = true;
            self.session.acl = AclSession::new(&text(user));
            ClientInfo::set(&self.session.info.user, text(user));
            return Ok(());
        }
        let context = if self.session.txn.in_multi() { "multi" } else { "toplevel" };
        let entry = Entry::new("auth", context, text(command), text(user), self.session.info.line(0));
        self.shared.core.acl.record(entry, crate::clock::wall_ms(), self.shared.settings.acllog_max_len());
        Err(Reply::err("WRONGPASS invalid username-password pair or user is disabled."))
    }

    pub(super) fn auth(&mut self, args: &[Bytes]) -> Reply {
        if args.len() > 3 {
            return Reply::err(ERR_SYNTAX);
        }
        if args.len() == 2 {
            let requirepass = self.shared.settings.requirepass();
            if self.shared.core.acl.user(b"default", requirepass.as_deref()).is_none_or(|u| u.nopass) {
                return Reply::err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
        }
        let (user, pass) = if args.len() == 3 { (&args[1][..], &args[2][..]) } else { (&b"default"[..], &args[1][..]) };
        match self.check_password(&args[0], user, pass) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        }
    }

    /// Whether a new (or RESET) connection starts logged in as `default`: when that
    /// user is enabled and needs no password.
    pub(crate) fn default_logs_in(shared: &crate::server::Shared) -> bool {
        let requirepass = shared.settings.requirepass();
        shared.core.acl.user(b"default", requirepass.as_deref()).is_some_and(|u| u.enabled && u.nopass)
    }

    fn set_name(&mut self, name: &[u8]) -> Result<(), Reply> {
        if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
            return Err(Reply::err("ERR Client names cannot contain spaces, newlines or special characters."));
        }
        self.session.forwarded_in = name.starts_with(FORWARD_NAME_PREFIX.as_bytes());
        ClientInfo::set(&self.session.info.name, text(name));
        Ok(())
    }

    pub(super) fn quit(&mut self) -> Reply {
        self.session.closing = true;
        Reply::ok()
    }

    pub(super) fn set_readonly(&mut self, readonly: bool) -> Reply {
        self.session.readonly = readonly;
        Reply::ok()
    }

    pub(super) fn client(&mut self, args: &[Bytes]) -> Reply {
        let info = &self.session.info;
        let sub = text(&args[1]).to_ascii_lowercase();
        match (sub.as_str(), args.len()) {
            ("id", 2) => Reply::Int(info.id as i64),
            ("getname", 2) => {
                let name = info.name();
                if name.is_empty() {
                    Reply::Nil
                } else {
                    Reply::bulk_str(&name)
                }
            }
            ("setname", 3) => match self.set_name(&args[2]) {
                Ok(()) => Reply::ok(),
                Err(e) => e,
            },
            ("setinfo", 4) => {
                let value = text(&args[3]);
                if value.chars().any(|c| c == ' ' || c == '\n' || c == '\r') {
                    return Reply::err("ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.");
                }
                match text(&args[2]).to_ascii_lowercase().as_str() {
                    "lib-name" => ClientInfo::set(&info.lib_name, value),
                    "lib-ver" => ClientInfo::set(&info.lib_ver, value),
                    other => return Reply::error(format!("ERR Unrecognized option '{other}'")),
                }
                Reply::ok()
            }
            ("info", 2) => Reply::Verbatim(Bytes::from(format!("{}\n", info.line(resp_len(args))))),
            ("list", _) => self.client_list(args),
            ("kill", _) => self.client_kill(&args[2..]),
            ("reply", 3) => self.client_reply(&args[2]),
            ("no-evict" | "no-touch", 3) => {
                if is(&args[2], "on") || is(&args[2], "off") {
                    Reply::ok()
                } else {
                    Reply::err(ERR_SYNTAX)
                }
            }
            ("unpause", 2) => {
                self.shared.core.pause.unpause();
                Reply::ok()
            }
            ("getredir", 2) => Reply::Int(self.session.tracking.as_ref().map_or(-1, |t| t.redirect as i64)),
            ("trackinginfo", 2) => self.tracking_info(),
            ("help", 2) => Reply::Array(CLIENT_HELP.iter().map(|l| Reply::Status((*l).into())).collect()),
            _ => unknown_subcommand("client", &args[1]),
        }
    }

    /// CLIENT TRACKING ON|OFF [options] and CLIENT CACHING YES|NO.
    pub(super) async fn client_tracking(&mut self, args: &[Bytes]) -> Reply {
        if is(&args[1], "caching") {
            let Some(tracking) = &self.session.tracking else {
                return Reply::err(
                    "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
                );
            };
            return if is(&args[2], "yes") {
                if !tracking.optin {
                    return Reply::err("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
                }
                self.session.caching = true;
                Reply::ok()
            } else if is(&args[2], "no") {
                if !tracking.optout {
                    return Reply::err("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
                }
                self.session.caching = true;
                Reply::ok()
            } else {
                Reply::err(ERR_SYNTAX)
            };
        }
        let clients = &self.shared.clients;
        // Another server's forwarding connection is no client to redirect to.
        let exists = |id| clients.get(id).is_some_and(|c| !c.name().starts_with(FORWARD_NAME_PREFIX));
        let options = match crate::server::tracking::Options::parse(&args[3..], exists) {
            Ok(options) => options,
            Err(e) => return e,
        };
        if is(&args[2], "on") {
            match self.shared.core.tracking.enable(&self.session.info, options) {
                Ok(options) => self.session.tracking = Some(options),
                Err(e) => return e,
            }
        } else if is(&args[2], "off") {
            self.shared.core.tracking.disable(self.session.info.id);
            self.session.tracking = None;
            self.session.caching = false;
        } else {
            return Reply::err(ERR_SYNTAX);
        }
        Reply::ok()
    }

    /// CLIENT TRACKINGINFO: flags, redirect and prefixes, as Redis lists them.
    fn tracking_info(&self) -> Reply {
        let (flags, redirect, prefixes) = match &self.session.tracking {
            None => (vec!["off"], -1, Vec::new()),
            Some(t) => {
                let mut flags = vec!["on"];
                if t.bcast {
                    flags.push("bcast");
                }
                if t.optin {
                    flags.push("optin");
                    if self.session.caching {
                        flags.push("caching-yes");
                    }
                }
                if t.optout {
                    flags.push("optout");
                    if self.session.caching {
                        flags.push("caching-no");
                    }
                }
                if t.noloop {
                    flags.push("noloop");
                }
                if self.shared.core.tracking.broken(self.session.info.id) {
                    flags.push("broken_redirect");
                }
                (flags, t.redirect as i64, t.prefixes.iter().cloned().map(Reply::Bulk).collect())
            }
        };
        Reply::Map(vec![
            (Reply::bulk(b"flags"), Reply::Set(flags.into_iter().map(|f| Reply::bulk(f.as_bytes())).collect())),
            (Reply::bulk(b"redirect"), Reply::Int(redirect)),
            (Reply::bulk(b"prefixes"), Reply::Array(prefixes)),
        ])
    }

    /// CLIENT REPLY ON|OFF|SKIP: OFF and SKIP are not answered themselves.
    fn client_reply(&mut self, mode: &[u8]) -> Reply {
        if is(mode, "on") {
            self.session.reply_off = false;
            self.session.replies_to_skip = 0;
        } else if is(mode, "off") {
            self.session.reply_off = true;
        } else if is(mode, "skip") {
            // This reply, then the next command's.
            if !self.session.reply_off {
                self.session.replies_to_skip = 2;
            }
        } else {
            return Reply::err(ERR_SYNTAX);
        }
        Reply::ok()
    }

    /// CLIENT LIST [TYPE type] [ID id …].
    fn client_list(&self, command: &[Bytes]) -> Reply {
        let args = &command[2..];
        let mut kind = None;
        let mut ids: Option<Vec<u64>> = None;
        let mut i = 0;
        while i < args.len() {
            if is(&args[i], "type") && i + 1 < args.len() {
                match ClientKind::parse(&args[i + 1]) {
                    Some(k) => kind = Some(k),
                    None => return Reply::error(format!("ERR Unknown client type '{}'", text(&args[i + 1]))),
                }
                i += 2;
            } else if is(&args[i], "id") && i + 1 < args.len() {
                let mut list = Vec::new();
                for arg in &args[i + 1..] {
                    match parse_i64(arg).filter(|id| *id > 0) {
                        Some(id) => list.push(id as u64),
                        None => return Reply::err("ERR Invalid client ID"),
                    }
                }
                ids = Some(list);
                i = args.len();
            } else {
                return Reply::err(ERR_SYNTAX);
            }
        }
        let me = self.session.info.id;
        let body: String = self
            .shared
            .clients
            .all()
            .iter()
            .filter(|c| kind.is_none_or(|k| ClientKind::of(c) == k))
            .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
            .map(|c| format!("{}\n", c.line(if c.id == me { resp_len(command) } else { 0 })))
            .collect();
        Reply::Verbatim(Bytes::from(body))
    }

    /// CLIENT KILL addr | CLIENT KILL [ID id] [TYPE type] [USER user] [ADDR addr]
    /// [LADDR addr] [SKIPME yes|no]: Redis's filters and error texts.
    fn client_kill(&mut self, args: &[Bytes]) -> Reply {
        let me = self.session.info.id;
        let clients = self.shared.clients.all();
        if args.len() == 1 {
            // Old form: CLIENT KILL ip:port, which may be this client.
            let addr = text(&args[0]);
            return match clients.iter().find(|c| c.addr == addr) {
                Some(c) => {
                    c.kill.notify_one();
                    Reply::ok()
                }
                None => Reply::err("ERR No such client"),
            };
        }
        if !args.len().is_multiple_of(2) {
            return Reply::err(ERR_SYNTAX);
        }
        let mut filter = KillFilter { skip_me: true, ..KillFilter::default() };
        for pair in args.chunks_exact(2) {
            let value = &pair[1];
            match text(&pair[0]).to_ascii_lowercase().as_str() {
                "id" => match parse_i64(value).filter(|id| *id > 0) {
                    Some(id) => filter.id = Some(id as u64),
                    None => return Reply::err("ERR client-id should be greater than 0"),
                },
                "type" => match ClientKind::parse(value) {
                    Some(kind) => filter.kind = Some(kind),
                    None => return Reply::error(format!("ERR Unknown client type '{}'", text(value))),
                },
                // One user exists: `default`.
                "user" if &value[..] == b"default" => {}
                "user" => return Reply::error(format!("ERR No such user '{}'", text(value))),
                "addr" => filter.addr = Some(text(value)),
                "laddr" => filter.laddr = Some(text(value)),
                "skipme" if is(value, "yes") => filter.skip_me = true,
                "skipme" if is(value, "no") => filter.skip_me = false,
                _ => return Reply::err(ERR_SYNTAX),
            }
        }
        let mut killed = 0;
        for client in clients.iter().filter(|c| filter.matches(c, me)) {
            client.kill.notify_one();
            killed += 1;
        }
        Reply::Int(killed)
    }

    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends a blocking command's wait, as if it
    /// timed out or with `-UNBLOCKED`; 1 if that client was waiting.
    pub(super) async fn client_unblock(&mut self, args: &[Bytes]) -> Reply {
        if args.len() > 4 {
            return Reply::err("ERR unknown subcommand or wrong number of arguments for 'unblock'. Try CLIENT HELP.");
        }
        let Some(id) = parse_i64(&args[2]) else { return Reply::err(ERR_NOT_INT) };
        let reply = match args.get(3) {
            None => Reply::NilArray,
            Some(reason) if is(reason, "timeout") => Reply::NilArray,
            Some(reason) if is(reason, "error") => Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
            Some(_) => return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
        };
        let Ok(id) = u64::try_from(id) else { return Reply::Int(0) };
        Reply::Int(i64::from(self.shared.blocker.unblock(id, reply).await))
    }

    /// CLIENT PAUSE timeout [WRITE|ALL].
    pub(super) fn client_pause(&mut self, args: &[Bytes]) -> Reply {
        let ms = match parse_i64(&args[2]) {
            Some(ms) if ms < 0 => return Reply::err("ERR timeout is negative"),
            Some(ms) => ms as u64,
            None => return Reply::err("ERR timeout is not an integer or out of range"),
        };
        let mode = match args.get(3) {
            None => PauseMode::All,
            Some(m) if is(m, "all") => PauseMode::All,
            Some(m) if is(m, "write") => PauseMode::Write,
            Some(_) => return Reply::err("ERR CLIENT PAUSE mode must be WRITE or ALL"),
        };
        if args.len() > 4 {
            return Reply::err(ERR_SYNTAX);
        }
        self.shared.core.pause.pause(std::time::Duration::from_millis(ms), mode);
        Reply::ok()
    }

    /// MONITOR: from now on this client receives a line per command served here.
    pub(super) fn monitor(&mut self) -> Reply {
        self.shared.monitors.add(self.session.info.id, &self.session.outbox);
        // Scripts' calls keep their arguments from now on, to be shown.
        self.shared.core.show_script_calls.store(true, std::sync::atomic::Ordering::Relaxed);
        Reply::ok()
    }

    pub(super) fn reset(&mut self) -> Reply {
        self.shared.monitors.remove(self.session.info.id);
        self.session.txn.queue = None;
        self.session.info.in_multi.store(false, Ordering::Relaxed);
        self.unwatch_all();
        let id = self.session.info.id;
        for c in std::mem::take(&mut self.session.channels) {
            self.shared.pubsub.unsubscribe(&c, id);
        }
        for p in std::mem::take(&mut self.session.patterns) {
            self.shared.pubsub.punsubscribe(&p, id);
        }
        for c in std::mem::take(&mut self.session.shard_channels) {
            self.shared.pubsub.sunsubscribe(&c, id);
        }
        self.session.sync_sub_counts();
        if self.session.tracking.take().is_some() {
            self.shared.core.tracking.disable(id);
        }
        self.session.caching = false;
        self.session.set_protocol(false);
        ClientInfo::set(&self.session.info.name, String::new());
        self.session.authed = Connection::default_logs_in(&self.shared);
        self.session.acl = AclSession::new("default");
        ClientInfo::set(&self.session.info.user, String::new());
        self.session.readonly = false;
        self.session.forwarded_in = false;
        self.session.slot_routing = self.session.on_cluster_port;
        // What upstreams held for this client (WATCHes) ends with them.
        self.upstreams.clear();
        Reply::status("RESET")
    }
}

/// Equal bytes, compared without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}
