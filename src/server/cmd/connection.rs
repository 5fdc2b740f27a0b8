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
use crate::server::session::AclSession;
use crate::server::upstream::FORWARD_NAME_PREFIX;

pub use crate::commands::REDIS_VERSION;

pub(super) fn select(args: &[Bytes]) -> Reply {
    match parse_i64(&args[1]) {
        Some(0) => Reply::ok(),
        Some(_) => Reply::err("ERR DB index is out of range"),
        None => Reply::err(ERR_NOT_INT),
    }
}

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
        let entry = Entry::new("auth", context, text(command), text(user), self.session.info.line());
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
            ("info", 2) => Reply::Verbatim(Bytes::from(format!("{}\n", info.line()))),
            ("list", _) => {
                let body: String = self.shared.clients.all().iter().map(|c| format!("{}\n", c.line())).collect();
                Reply::Verbatim(Bytes::from(body))
            }
            ("kill", _) => self.client_kill(&args[2..]),
            ("no-evict" | "no-touch", 3) => Reply::ok(),
            ("help", _) => Reply::Array(
                [
                    "CLIENT <subcommand> [<arg> ...]",
                    "ID",
                    "GETNAME",
                    "SETNAME <name>",
                    "SETINFO <LIB-NAME|LIB-VER> <value>",
                    "INFO",
                    "LIST",
                    "KILL <ip:port> | ID <id> | ADDR <ip:port>",
                ]
                .iter()
                .map(|l| Reply::status(l))
                .collect(),
            ),
            _ => unknown_subcommand("client", &args[1]),
        }
    }

    fn client_kill(&mut self, args: &[Bytes]) -> Reply {
        let clients = self.shared.clients.all();
        if args.len() == 1 {
            // Old form: CLIENT KILL ip:port
            let addr = text(&args[0]);
            return match clients.iter().find(|c| c.addr == addr) {
                Some(c) => {
                    c.kill.notify_one();
                    Reply::ok()
                }
                None => Reply::err("ERR No such client"),
            };
        }
        if args.is_empty() || !args.len().is_multiple_of(2) {
            return Reply::err(ERR_SYNTAX);
        }
        let mut killed = 0;
        for client in &clients {
            let mut matches = true;
            for pair in args.chunks_exact(2) {
                let value = text(&pair[1]);
                matches &= match text(&pair[0]).to_ascii_lowercase().as_str() {
                    "id" => value.parse::<u64>().is_ok_and(|id| id == client.id),
                    "addr" => client.addr == value,
                    "laddr" => client.laddr == value,
                    "skipme" => !(value.eq_ignore_ascii_case("yes") && client.id == self.session.info.id),
                    _ => return Reply::err(ERR_SYNTAX),
                };
            }
            if matches {
                client.kill.notify_one();
                killed += 1;
            }
        }
        Reply::Int(killed)
    }

    pub(super) fn reset(&mut self) -> Reply {
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
        self.session.sync_sub_counts();
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
