//! Commands served by the connection rather than the store: connection state
//! (HELLO, AUTH, CLIENT, READONLY…), transactions, pub/sub, and server introspection
//! (INFO, ROLE, COMMAND, CONFIG, TIME, MEMORY).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::connection::Connection;
use super::core::wall_ms;
use crate::commands::{self, args::*, flags, unknown_subcommand, CommandSpec};
use crate::memory;
use crate::protocol::reply::Reply;
use crate::replication::replica::{ActiveAt, MemberView, ReplicationView};
use crate::replication::stripe::{ServerState, STANDBY_LAG_MAX};

pub const REDIS_VERSION: &str = "7.2.0";

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

impl Connection {
    pub(super) async fn server_command(&mut self, spec: &'static CommandSpec, args: Vec<Bytes>) {
        let reply = match spec.name {
            "ping" => self.ping(&args),
            "echo" => Some(Reply::Bulk(args[1].clone())),
            "hello" => Some(self.hello(&args)),
            "auth" => Some(self.auth(&args)),
            "select" => Some(match parse_i64(&args[1]) {
                Some(0) => Reply::ok(),
                Some(_) => Reply::err("ERR DB index is out of range"),
                None => Reply::err(ERR_NOT_INT),
            }),
            "client" => Some(self.client(&args)),
            "quit" => {
                self.closing = true;
                Some(Reply::ok())
            }
            "reset" => Some(self.reset()),
            "readonly" => {
                self.readonly = true;
                Some(Reply::ok())
            }
            "readwrite" => {
                self.readonly = false;
                Some(Reply::ok())
            }
            "role" => Some(self.role()),
            "multi" => Some(self.multi_start()),
            "exec" => Some(self.exec().await),
            "discard" => Some(self.discard()),
            "watch" => Some(self.watch(&args)),
            "unwatch" => {
                self.unwatch_all();
                self.forward.watch_lost = false;
                Some(Reply::ok())
            }
            "subscribe" | "psubscribe" => {
                self.subscribe(&args[1..], spec.name == "psubscribe");
                None
            }
            "unsubscribe" | "punsubscribe" => {
                self.unsubscribe(&args[1..], spec.name == "punsubscribe");
                None
            }
            "publish" => Some(self.publish(&args[1], &args[2])),
            "pubsub" => Some(self.pubsub_cmd(&args)),
            "info" => Some(Reply::Verbatim(Bytes::from(self.info_text(&args[1..])))),
            "command" => Some(command_cmd(&args)),
            "config" => Some(self.config(&args)),
            "time" => {
                let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
                Some(Reply::Array(vec![
                    Reply::bulk_str(&(micros / 1_000_000).to_string()),
                    Reply::bulk_str(&(micros % 1_000_000).to_string()),
                ]))
            }
            "memory" => Some(self.memory(&args)),
            "save" => Some(match self.shared.core.replica.snapshot_now().await {
                Ok(()) => Reply::ok(),
                Err(e) => Reply::error(format!("ERR snapshot failed: {e}")),
            }),
            "bgsave" => {
                self.shared.core.replica.snapshot_soon().await;
                Some(Reply::status("Background saving started"))
            }
            "lastsave" => Some(Reply::Int(self.shared.core.replica.last_snapshot_unix_secs() as i64)),
            _ => Some(commands::unknown_command(&args)),
        };
        if let Some(reply) = reply {
            self.reply(reply);
        }
    }

    fn ping(&mut self, args: &[Bytes]) -> Option<Reply> {
        if args.len() > 2 {
            return Some(commands::wrong_args("ping"));
        }
        let subscribed = !(self.channels.is_empty() && self.patterns.is_empty());
        if subscribed && !self.resp3 {
            let payload = args.get(1).cloned().unwrap_or_default();
            return Some(Reply::Array(vec![Reply::bulk(b"pong"), Reply::Bulk(payload)]));
        }
        Some(match args.get(1) {
            Some(msg) => Reply::Bulk(msg.clone()),
            None => Reply::status("PONG"),
        })
    }

    fn hello(&mut self, args: &[Bytes]) -> Reply {
        let mut proto = if self.resp3 { 3 } else { 2 };
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
                if let Err(e) = self.check_password(&args[i + 1], &args[i + 2]) {
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
        if !self.authed {
            return Reply::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        if let Some(name) = name {
            if let Err(e) = self.set_name(&name) {
                return e;
            }
        }
        self.resp3 = proto == 3;
        self.info.resp.store(proto as u8, Ordering::Relaxed);
        Reply::Map(vec![
            (Reply::bulk(b"server"), Reply::bulk(b"redis")),
            (Reply::bulk(b"version"), Reply::bulk_str(REDIS_VERSION)),
            (Reply::bulk(b"proto"), Reply::Int(proto)),
            (Reply::bulk(b"id"), Reply::Int(self.info.id as i64)),
            (Reply::bulk(b"mode"), Reply::bulk(b"standalone")),
            (Reply::bulk(b"role"), Reply::bulk(if self.shared.core.replica.is_active() { b"master" } else { b"replica" })),
            (Reply::bulk(b"modules"), Reply::Array(vec![])),
        ])
    }

    fn check_password(&mut self, user: &[u8], pass: &[u8]) -> Result<(), Reply> {
        match self.shared.settings.requirepass() {
            Some(expected) if user == b"default" && pass == expected.as_bytes() => {
                self.authed = true;
                Ok(())
            }
            None if user == b"default" => {
                self.authed = true;
                Ok(())
            }
            _ => Err(Reply::err("WRONGPASS invalid username-password pair or user is disabled.")),
        }
    }

    fn auth(&mut self, args: &[Bytes]) -> Reply {
        if args.len() > 3 {
            return Reply::err(ERR_SYNTAX);
        }
        if args.len() == 2 && self.shared.settings.requirepass().is_none() {
            return Reply::err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
        }
        let (user, pass) = if args.len() == 3 { (&args[1][..], &args[2][..]) } else { (&b"default"[..], &args[1][..]) };
        match self.check_password(user, pass) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        }
    }

    fn set_name(&mut self, name: &[u8]) -> Result<(), Reply> {
        if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
            return Err(Reply::err("ERR Client names cannot contain spaces, newlines or special characters."));
        }
        self.forwarded_in = name.starts_with(super::forward::FORWARD_NAME_PREFIX.as_bytes());
        super::clients::ClientInfo::set(&self.info.name, text(name));
        Ok(())
    }

    fn client(&mut self, args: &[Bytes]) -> Reply {
        let sub = text(&args[1]).to_ascii_lowercase();
        match (sub.as_str(), args.len()) {
            ("id", 2) => Reply::Int(self.info.id as i64),
            ("getname", 2) => {
                let name = self.info.name();
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
                    "lib-name" => super::clients::ClientInfo::set(&self.info.lib_name, value),
                    "lib-ver" => super::clients::ClientInfo::set(&self.info.lib_ver, value),
                    other => return Reply::error(format!("ERR Unrecognized option '{other}'")),
                }
                Reply::ok()
            }
            ("info", 2) => Reply::Verbatim(Bytes::from(format!("{}\n", self.info.line()))),
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
                    "skipme" => !(value.eq_ignore_ascii_case("yes") && client.id == self.info.id),
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

    fn reset(&mut self) -> Reply {
        self.multi = None;
        self.multi_failed = false;
        self.info.in_multi.store(false, Ordering::Relaxed);
        self.unwatch_all();
        let channels: Vec<Bytes> = self.channels.drain().collect();
        for c in channels {
            self.shared.pubsub.unsubscribe(&c, self.info.id);
        }
        let patterns: Vec<Bytes> = self.patterns.drain().collect();
        for p in patterns {
            self.shared.pubsub.punsubscribe(&p, self.info.id);
        }
        self.info.subscriptions.store(0, Ordering::Relaxed);
        self.info.psubscriptions.store(0, Ordering::Relaxed);
        self.resp3 = false;
        self.info.resp.store(2, Ordering::Relaxed);
        super::clients::ClientInfo::set(&self.info.name, String::new());
        self.authed = self.shared.settings.requirepass().is_none();
        self.readonly = false;
        self.forwarded_in = false;
        // What an upstream held for this client (a transaction, WATCHes) ends with it.
        self.forward = super::forward::Forwarding::default();
        Reply::status("RESET")
    }

    // --- transactions ---

    fn multi_start(&mut self) -> Reply {
        if self.multi.is_some() {
            return Reply::err("ERR MULTI calls can not be nested");
        }
        self.multi = Some(Vec::new());
        self.multi_failed = false;
        self.info.in_multi.store(true, Ordering::Relaxed);
        Reply::ok()
    }

    fn discard(&mut self) -> Reply {
        if self.multi.take().is_none() {
            return Reply::err("ERR DISCARD without MULTI");
        }
        self.info.in_multi.store(false, Ordering::Relaxed);
        self.unwatch_all();
        self.forward.watch_lost = false;
        Reply::ok()
    }

    fn watch(&mut self, args: &[Bytes]) -> Reply {
        if self.multi.is_some() {
            return Reply::err("ERR WATCH inside MULTI is not allowed");
        }
        let mut store = self.shared.core.store();
        for key in &args[1..] {
            if self.watches.iter().any(|(k, _)| k == key) {
                continue;
            }
            let stamp = store.db.watch(key);
            self.watches.push((key.clone(), stamp));
        }
        Reply::ok()
    }

    pub(super) fn unwatch_all(&mut self) {
        if self.watches.is_empty() {
            return;
        }
        let mut store = self.shared.core.store();
        for (key, _) in self.watches.drain(..) {
            store.db.unwatch(&key);
        }
    }

    async fn exec(&mut self) -> Reply {
        let Some(queued) = self.multi.take() else { return Reply::err("ERR EXEC without MULTI") };
        self.info.in_multi.store(false, Ordering::Relaxed);
        let watch_lost = std::mem::take(&mut self.forward.watch_lost);
        if self.multi_failed {
            self.unwatch_all();
            return Reply::err("EXECABORT Transaction discarded because of previous errors.");
        }
        if watch_lost {
            // Keys were watched on an active that is not this server any more: they
            // may have changed unseen, so the transaction fails as if they had.
            self.unwatch_all();
            return Reply::NilArray;
        }
        let result = self.shared.core.execute_transaction(&queued, &self.watches, &self.shared.settings).await;
        self.unwatch_all();
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => return e,
        };
        let Reply::Array(mut replies) = reply else { return reply };
        // Server-level commands inside the transaction ran as placeholders: serve them now.
        for (args, slot) in queued.iter().zip(replies.iter_mut()) {
            if let Some(spec) = args.first().and_then(|n| commands::lookup(n)) {
                if matches!(spec.handler, commands::Handler::Server) {
                    *slot = self.inline_server_reply(spec, args);
                }
            }
        }
        Reply::Array(replies)
    }

    /// PUBLISH: this server's subscribers now, the stripe's other servers through the
    /// group port. The count is of this server's receivers, as in Redis Cluster.
    fn publish(&self, channel: &Bytes, message: &Bytes) -> Reply {
        let receivers = self.shared.pubsub.publish(channel, message);
        self.shared.core.replica.broadcast_publish(channel, message);
        Reply::Int(receivers as i64)
    }

    /// The reply of a server-level command run inside EXEC.
    fn inline_server_reply(&mut self, spec: &'static CommandSpec, args: &[Bytes]) -> Reply {
        match spec.name {
            "ping" => self.ping(args).unwrap_or(Reply::Nil),
            "echo" => Reply::Bulk(args[1].clone()),
            "publish" => self.publish(&args[1], &args[2]),
            "time" | "info" | "config" | "command" | "memory" | "pubsub" | "client" | "select" => {
                // Run it normally and take the reply it encodes.
                let mut saved = std::mem::take(&mut self.out);
                let reply = match spec.name {
                    "info" => Reply::Verbatim(Bytes::from(self.info_text(&args[1..]))),
                    "config" => self.config(args),
                    "command" => command_cmd(args),
                    "memory" => self.memory(args),
                    "pubsub" => self.pubsub_cmd(args),
                    "client" => self.client(args),
                    "select" => Reply::ok(),
                    _ => Reply::Nil,
                };
                std::mem::swap(&mut self.out, &mut saved);
                reply
            }
            _ => Reply::error(format!("ERR Command '{}' is not allowed inside a transaction", spec.name)),
        }
    }

    // --- pub/sub ---

    fn subscribe(&mut self, names: &[Bytes], pattern: bool) {
        for name in names {
            if pattern {
                self.shared.pubsub.psubscribe(name, self.info.id, &self.outbox);
                self.patterns.insert(name.clone());
            } else {
                self.shared.pubsub.subscribe(name, self.info.id, &self.outbox);
                self.channels.insert(name.clone());
            }
            self.sync_sub_counts();
            let kind: &[u8] = if pattern { b"psubscribe" } else { b"subscribe" };
            let count = (self.channels.len() + self.patterns.len()) as i64;
            self.reply(Reply::Push(vec![Reply::bulk(kind), Reply::Bulk(name.clone()), Reply::Int(count)]));
        }
    }

    fn unsubscribe(&mut self, names: &[Bytes], pattern: bool) {
        let kind: &[u8] = if pattern { b"punsubscribe" } else { b"unsubscribe" };
        let targets: Vec<Bytes> = if names.is_empty() {
            let set = if pattern { &self.patterns } else { &self.channels };
            set.iter().cloned().collect()
        } else {
            names.to_vec()
        };
        if targets.is_empty() {
            let count = (self.channels.len() + self.patterns.len()) as i64;
            self.reply(Reply::Push(vec![Reply::bulk(kind), Reply::Nil, Reply::Int(count)]));
            return;
        }
        for name in targets {
            if pattern {
                self.shared.pubsub.punsubscribe(&name, self.info.id);
                self.patterns.remove(&name);
            } else {
                self.shared.pubsub.unsubscribe(&name, self.info.id);
                self.channels.remove(&name);
            }
            self.sync_sub_counts();
            let count = (self.channels.len() + self.patterns.len()) as i64;
            self.reply(Reply::Push(vec![Reply::bulk(kind), Reply::Bulk(name), Reply::Int(count)]));
        }
    }

    fn sync_sub_counts(&self) {
        self.info.subscriptions.store(self.channels.len(), Ordering::Relaxed);
        self.info.psubscriptions.store(self.patterns.len(), Ordering::Relaxed);
    }

    fn pubsub_cmd(&mut self, args: &[Bytes]) -> Reply {
        let pubsub = &self.shared.pubsub;
        match text(&args[1]).to_ascii_lowercase().as_str() {
            "channels" if args.len() <= 3 => {
                Reply::Array(pubsub.channels(args.get(2).map(|p| &p[..])).into_iter().map(Reply::Bulk).collect())
            }
            "numsub" => {
                Reply::Array(args[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(pubsub.numsub(c) as i64)]).collect())
            }
            "numpat" if args.len() == 2 => Reply::Int(pubsub.numpat() as i64),
            "shardchannels" => Reply::Array(vec![]),
            "shardnumsub" => Reply::Array(args[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(0)]).collect()),
            _ => unknown_subcommand("pubsub", &args[1]),
        }
    }

    // --- server ---

    fn config(&mut self, args: &[Bytes]) -> Reply {
        let settings = &self.shared.settings;
        match text(&args[1]).to_ascii_lowercase().as_str() {
            "get" if args.len() >= 3 => {
                let patterns: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
                Reply::Map(settings.get(&patterns).into_iter().map(|(k, v)| (Reply::bulk_str(k), Reply::bulk_str(&v))).collect())
            }
            "set" if args.len() >= 4 && args.len().is_multiple_of(2) => {
                for pair in args[2..].chunks_exact(2) {
                    if let Err(e) = settings.set(&text(&pair[0]), &text(&pair[1])) {
                        return Reply::error(e);
                    }
                }
                let events_on = settings.notify_mask.load(Ordering::Relaxed) != 0;
                let local = settings.local();
                let mut store = self.shared.core.store();
                store.events_on = events_on;
                store.local = local;
                Reply::ok()
            }
            "resetstat" if args.len() == 2 => {
                // The counters INFO stats reports; Redis resets the same ones.
                let shared = &self.shared;
                shared.commands_processed.store(0, Ordering::Relaxed);
                shared.clients.total_connections.store(0, Ordering::Relaxed);
                shared.clients.rejected_connections.store(0, Ordering::Relaxed);
                let mut store = shared.core.store();
                store.expired_keys = 0;
                store.evicted_keys = 0;
                Reply::ok()
            }
            "rewrite" if args.len() == 2 => {
                Reply::err("ERR The server is running without a config file that CONFIG REWRITE can change: edit the TOML file")
            }
            "get" | "set" => commands::wrong_args(&format!("config|{}", text(&args[1]).to_ascii_lowercase())),
            _ => unknown_subcommand("config", &args[1]),
        }
    }

    fn memory(&mut self, args: &[Bytes]) -> Reply {
        match text(&args[1]).to_ascii_lowercase().as_str() {
            "usage" if args.len() == 3 || args.len() == 5 => {
                let mut samples = 5;
                if args.len() == 5 {
                    if !is(&args[3], "samples") {
                        return Reply::err(ERR_SYNTAX);
                    }
                    samples = match count_arg(&args[4]) {
                        Ok(0) => usize::MAX,
                        Ok(n) => n,
                        Err(e) => return e,
                    };
                }
                let store = self.shared.core.store();
                match store.db.get(&args[2], wall_ms()) {
                    None => Reply::Nil,
                    Some(item) => {
                        // Key, value and the slot that holds them (hash + key handle + item).
                        let overhead = 8 + 16 + std::mem::size_of::<crate::store::db::Item>();
                        Reply::Int((args[2].len() + overhead + item.value.memory_estimate(samples)) as i64)
                    }
                }
            }
            "doctor" => Reply::Verbatim(Bytes::from_static(b"Sam, I detected no issues in this Tandem instance.")),
            "stats" => Reply::Map(vec![
                (Reply::bulk(b"peak.allocated"), Reply::Int(memory::peak_bytes() as i64)),
                (Reply::bulk(b"total.allocated"), Reply::Int(memory::used_bytes() as i64)),
                (Reply::bulk(b"keys.count"), Reply::Int(self.shared.core.store().db.len() as i64)),
            ]),
            "purge" => Reply::ok(),
            _ => unknown_subcommand("memory", &args[1]),
        }
    }

    /// INFO [section …]: the sections and fields clients and tools parse.
    pub(super) fn info_text(&self, sections: &[Bytes]) -> String {
        let wanted: Vec<String> = sections.iter().map(|s| text(s).to_ascii_lowercase()).collect();
        let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything" || w == "default");
        let want = |name: &str| all || wanted.iter().any(|w| w == name);
        let shared = &self.shared;
        let (keys, expires, blocked, expired, evicted, dirty) = {
            let store = shared.core.store();
            let blocked = shared.blocker.blocked.load(Ordering::Relaxed);
            (store.db.len(), store.db.expires_count(), blocked, store.expired_keys, store.evicted_keys, store.dirty)
        };
        let mut out = String::new();
        let mut section = |name: &str, body: String| {
            if want(&name.to_ascii_lowercase()) {
                out.push_str(&format!("# {name}\r\n{body}\r\n"));
            }
        };
        let uptime = shared.started.elapsed().as_secs();
        section(
            "Server",
            format!(
                "redis_version:{REDIS_VERSION}\r\ntandem_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:10\r\nexecutable:{}\r\nconfig_file:{}\r\ntandem_server:{}\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH,
                std::process::id(),
                shared.run_id,
                shared.settings.port,
                wall_ms() * 1000,
                uptime / 86400,
                std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
                shared.settings.config_file,
                shared.server_name,
            ),
        );
        section(
            "Clients",
            format!(
                "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{blocked}\r\n",
                shared.clients.count(),
                shared.settings.clients_max.load(Ordering::Relaxed)
            ),
        );
        let used = memory::used_bytes();
        let log = shared.core.replica.log.memory_bytes();
        let max = shared.settings.maxmemory_bytes.load(Ordering::Relaxed) as usize;
        section(
            "Memory",
            format!(
                "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_dataset:{}\r\ntandem_log_memory:{log}\r\nused_memory_rss:{}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:jemalloc\r\n",
                memory::human(used),
                used.saturating_sub(log),
                memory::rss_bytes(),
                memory::human(memory::rss_bytes()),
                memory::peak_bytes(),
                memory::human(memory::peak_bytes()),
                memory::human(max),
                shared.settings.policy().name(),
            ),
        );
        section(
            "Persistence",
            format!("loading:0\r\nrdb_changes_since_last_save:{dirty}\r\nrdb_bgsave_in_progress:0\r\naof_enabled:0\r\n"),
        );
        section(
            "Stats",
            format!(
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{expired}\r\nevicted_keys:{evicted}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\n",
                shared.clients.total_connections.load(Ordering::Relaxed),
                shared.commands_processed.load(Ordering::Relaxed),
                shared.clients.rejected_connections.load(Ordering::Relaxed),
                shared.pubsub.channels(None).len(),
                shared.pubsub.numpat(),
            ),
        );
        section("Replication", self.replication_info());
        let keyspace = if keys > 0 { format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n") } else { String::new() };
        section("Keyspace", keyspace);
        out
    }
}

impl Connection {
    /// ROLE in Redis's shape: on the active `[master, applied, [[host, port, matched]…]]`
    /// (its data mirrors), on a mirror `[slave, host, port, link, applied]` (the
    /// active's client address; an empty host while no active is known).
    fn role(&self) -> Reply {
        let replica = &self.shared.core.replica;
        let view = replica.replication_view();
        let applied = view.applied_index.unwrap_or(0) as i64;
        if view.state == ServerState::ActiveCoordinator {
            let mirrors = data_mirrors(&view)
                .map(|m| {
                    let (host, port) = split_addr(m.client_addr.as_deref().unwrap_or_default());
                    Reply::Array(vec![
                        Reply::bulk_str(&host),
                        Reply::bulk_str(&port.to_string()),
                        Reply::bulk_str(&m.matched.unwrap_or(0).to_string()),
                    ])
                })
                .collect();
            return Reply::Array(vec![Reply::bulk(b"master"), Reply::Int(applied), Reply::Array(mirrors)]);
        }
        let (host, port) = match replica.active_at() {
            ActiveAt::There { client_addr, .. } => split_addr(&client_addr),
            _ => (String::new(), 0),
        };
        let link = match view.state {
            ServerState::PassiveStandby => "connected",
            ServerState::Initializing => "sync",
            _ => "connecting",
        };
        Reply::Array(vec![
            Reply::bulk(b"slave"),
            Reply::bulk_str(&host),
            Reply::Int(port.into()),
            Reply::bulk_str(link),
            Reply::Int(applied),
        ])
    }

    /// INFO's replication section: Redis's fields (what clients and tools parse), then
    /// this server's place in its stripe (`tandem_*`). A mirror's `lag` is in log
    /// entries, not seconds: what the active knows without a clock on each mirror.
    fn replication_info(&self) -> String {
        let replica = &self.shared.core.replica;
        let view = replica.replication_view();
        let applied = view.applied_index.unwrap_or(0);
        let mut out = String::new();
        if view.state == ServerState::ActiveCoordinator {
            let mirrors: Vec<&MemberView> = data_mirrors(&view).collect();
            out.push_str(&format!("role:master\r\nconnected_slaves:{}\r\n", mirrors.len()));
            for (i, m) in mirrors.iter().enumerate() {
                let (host, port) = split_addr(m.client_addr.as_deref().unwrap_or_default());
                let online = m.voting && m.matched.is_some() && m.lag.is_some_and(|lag| lag <= STANDBY_LAG_MAX);
                out.push_str(&format!(
                    "slave{i}:ip={host},port={port},state={},offset={},lag={}\r\n",
                    if online { "online" } else { "wait_bgsave" },
                    m.matched.unwrap_or(0),
                    m.lag.unwrap_or(0),
                ));
            }
        } else {
            let at = replica.active_at();
            let (host, port) = match &at {
                ActiveAt::There { client_addr, .. } => split_addr(client_addr),
                _ => (String::new(), 0),
            };
            let up = matches!(at, ActiveAt::There { .. }) && matches!(view.state, ServerState::PassiveStandby | ServerState::Initializing);
            out.push_str(&format!(
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nmaster_sync_in_progress:{}\r\nslave_repl_offset:{applied}\r\nslave_read_only:1\r\nconnected_slaves:0\r\n",
                if up { "up" } else { "down" },
                u8::from(view.state == ServerState::Initializing),
            ));
        }
        let index = |i: Option<u64>| i.map_or_else(String::new, |i| i.to_string());
        out.push_str(&format!(
            "master_replid:{}\r\nmaster_repl_offset:{applied}\r\ntandem_state:{}\r\ntandem_light:{}\r\ntandem_node_id:{}\r\ntandem_term:{}\r\ntandem_active:{}\r\ntandem_commit_index:{}\r\ntandem_applied_index:{}\r\ntandem_last_log_index:{}\r\n",
            self.shared.run_id,
            view.state.name(),
            view.state.light(),
            view.node_id,
            view.term,
            view.active.as_deref().unwrap_or_default(),
            index(view.commit_index),
            index(view.applied_index),
            index(view.last_log_index),
        ));
        out
    }
}

/// The stripe's other data-holding servers as the active sees them (voters hold no
/// data and have no client port).
fn data_mirrors(view: &ReplicationView) -> impl Iterator<Item = &MemberView> {
    view.members.iter().filter(move |m| m.node_id != view.node_id && m.client_addr.is_some())
}

/// `host:port` split at its last colon (an IPv6 host keeps its own); port 0 when
/// there is none.
fn split_addr(addr: &str) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']').to_string(), port.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

/// COMMAND, COMMAND COUNT/INFO/DOCS/LIST/GETKEYS.
fn command_cmd(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(commands::all().filter(|s| !s.has(flags::INTERNAL)).map(command_info).collect());
    };
    match text(sub).to_ascii_lowercase().as_str() {
        "count" => Reply::Int(commands::all().filter(|s| !s.has(flags::INTERNAL)).count() as i64),
        "info" => Reply::Array(
            args[2..]
                .iter()
                .map(|n| commands::lookup(n).filter(|s| !s.has(flags::INTERNAL)).map_or(Reply::NilArray, command_info))
                .collect(),
        ),
        "list" => Reply::Array(commands::all().filter(|s| !s.has(flags::INTERNAL)).map(|s| Reply::bulk_str(s.name)).collect()),
        "docs" => {
            let specs: Vec<&CommandSpec> =
                if args.len() > 2 { args[2..].iter().filter_map(|n| commands::lookup(n)).collect() } else { commands::all().collect() };
            Reply::Map(specs.into_iter().filter(|s| !s.has(flags::INTERNAL)).map(command_docs).collect())
        }
        "getkeys" if args.len() >= 3 => match commands::lookup(&args[2]) {
            None => Reply::err("ERR Invalid command specified"),
            Some(spec) if !spec.arity_ok(args.len() - 2) => Reply::err("ERR Invalid number of arguments specified for command"),
            Some(spec) => {
                let keys = spec.keys(&args[2..]);
                if keys.is_empty() {
                    Reply::err("ERR The command has no key arguments")
                } else {
                    Reply::Array(keys.into_iter().map(|k| Reply::Bulk(k.clone())).collect())
                }
            }
        },
        _ => unknown_subcommand("command", sub),
    }
}

/// One COMMAND INFO entry in Redis 7's 10-element shape.
fn command_info(spec: &CommandSpec) -> Reply {
    let flag_names = flags::NAMES.iter().filter(|(bit, _)| spec.has(*bit)).map(|(_, n)| Reply::Status((*n).into())).collect();
    let mut key_specs = Vec::new();
    if spec.first_key > 0 {
        key_specs.push(Reply::Map(vec![
            (
                Reply::bulk(b"begin_search"),
                Reply::Map(vec![
                    (Reply::bulk(b"type"), Reply::bulk(b"index")),
                    (Reply::bulk(b"spec"), Reply::Map(vec![(Reply::bulk(b"index"), Reply::Int(spec.first_key as i64))])),
                ]),
            ),
            (
                Reply::bulk(b"find_keys"),
                Reply::Map(vec![
                    (Reply::bulk(b"type"), Reply::bulk(b"range")),
                    (
                        Reply::bulk(b"spec"),
                        Reply::Map(vec![
                            (
                                Reply::bulk(b"lastkey"),
                                Reply::Int(if spec.last_key < 0 { spec.last_key as i64 } else { (spec.last_key - spec.first_key) as i64 }),
                            ),
                            (Reply::bulk(b"keystep"), Reply::Int(spec.step as i64)),
                            (Reply::bulk(b"limit"), Reply::Int(0)),
                        ]),
                    ),
                ]),
            ),
        ]));
    }
    Reply::Array(vec![
        Reply::bulk_str(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(flag_names),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(vec![Reply::Status(format!("@{}", spec.group).into())]),
        Reply::Array(vec![]),
        Reply::Array(key_specs),
        Reply::Array(vec![]),
    ])
}

fn command_docs(spec: &CommandSpec) -> (Reply, Reply) {
    (
        Reply::bulk_str(spec.name),
        Reply::Map(vec![
            (Reply::bulk(b"summary"), Reply::bulk_str(spec.summary)),
            (Reply::bulk(b"since"), Reply::bulk(b"1.0.0")),
            (Reply::bulk(b"group"), Reply::bulk_str(spec.group)),
        ]),
    )
}
