//! Server introspection and persistence: INFO, ROLE, COMMAND, CONFIG, MEMORY, TIME,
//! SAVE/BGSAVE. What they show of the stripe comes from the replication layer's
//! view (`Group::view`); what they show of commands, from the command table.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::connection::REDIS_VERSION;
use super::text;
use crate::clock::{wall_ms, wall_us};
use crate::cluster::view::Active;
use crate::commands::streams::add::{node_limit_values, node_limits_command, set_node_limit};
use crate::commands::{self, args::*, flags, unknown_subcommand, CommandSpec};
use crate::memory;
use crate::protocol::reply::Reply;
use crate::replication::replica::{MemberView, ReplicationView};
use crate::replication::stripe::{ServerState, STANDBY_LAG_MAX};
use crate::server::connection::Connection;
use crate::store::stream::NodeLimits;

/// The sections `INFO` and `INFO default` show; `all` adds commandstats and
/// latencystats (Redis 7's choice: they are long).
const DEFAULT_SECTIONS: &[&str] =
    &["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules", "errorstats", "cluster", "keyspace"];

/// INFO cpu: the process's CPU time (getrusage), in Redis's fields.
fn cpu_info() -> String {
    let usage = |who| {
        // SAFETY: getrusage only writes the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            return ("0.000000".to_string(), "0.000000".to_string());
        }
        let t = |tv: libc::timeval| format!("{}.{:06}", tv.tv_sec, tv.tv_usec);
        (t(ru.ru_stime), t(ru.ru_utime))
    };
    let (sys, user) = usage(libc::RUSAGE_SELF);
    let (sys_children, user_children) = usage(libc::RUSAGE_CHILDREN);
    format!(
        "used_cpu_sys:{sys}\r\nused_cpu_user:{user}\r\nused_cpu_sys_children:{sys_children}\r\nused_cpu_user_children:{user_children}\r\n"
    )
}

/// What INFO reports of the stripe's state, read under one lock of the store.
struct StoreFigures {
    keys: usize,
    expires: usize,
    expired: u64,
    evicted: u64,
    dirty: u64,
    /// Cached scripts: count and bytes.
    scripts: (usize, usize),
}

impl StoreFigures {
    fn of(store: &crate::store::Store) -> StoreFigures {
        StoreFigures {
            keys: store.db.len(),
            expires: store.db.expires_count(),
            expired: store.expired_keys,
            evicted: store.evicted_keys,
            dirty: store.dirty,
            scripts: (store.db.scripts.script_count(), store.db.scripts.script_bytes()),
        }
    }
}

/// TIME: the server's wall clock in seconds and microseconds.
pub(super) fn time() -> Reply {
    // The same clock entries are stamped with (the test hook included).
    let micros = wall_us();
    Reply::Array(vec![Reply::bulk_str(&(micros / 1_000_000).to_string()), Reply::bulk_str(&(micros % 1_000_000).to_string())])
}

const ERR_NODE_LIMITS_ON_ACTIVE: &str =
    "ERR stream-node-max-entries and stream-node-max-bytes belong to the whole stripe: set them on its active";

impl Connection {
    /// CONFIG GET/SET/RESETSTAT/REWRITE. `Err(limits)`: a SET changed the stream node
    /// limits, which are stripe state: the caller proposes them (after the other
    /// parameters were set here), unless `in_transaction` (nothing is set then).
    pub(super) fn config(&mut self, args: &[Bytes], in_transaction: bool) -> Result<Reply, NodeLimits> {
        let settings = &self.shared.settings;
        Ok(match text(&args[1]).to_ascii_lowercase().as_str() {
            "get" if args.len() >= 3 => {
                let patterns: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
                let mut found = settings.get(&patterns);
                let stripe = node_limit_values(&self.shared.core.store().db);
                found.extend(stripe.into_iter().filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes(), true))));
                Reply::Map(found.into_iter().map(|(k, v)| (Reply::bulk_str(k), Reply::bulk_str(&v))).collect())
            }
            "set" if args.len() >= 4 && args.len().is_multiple_of(2) => {
                let mut seen = std::collections::HashSet::new();
                for pair in args[2..].chunks_exact(2) {
                    let name = text(&pair[0]);
                    if !seen.insert(crate::server::settings::Settings::canonical(&name)) {
                        return Ok(Reply::error(format!(
                            "ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"
                        )));
                    }
                }
                let current = self.shared.core.store().db.stream_limits;
                let mut limits = current;
                let mut local = Vec::new();
                for pair in args[2..].chunks_exact(2) {
                    match set_node_limit(limits, &text(&pair[0]), &text(&pair[1])) {
                        Some(Ok(changed)) => limits = changed,
                        Some(Err(e)) => return Ok(Reply::error(e)),
                        None => local.push(pair),
                    }
                }
                if limits != current && in_transaction {
                    return Err(limits);
                }
                // The node limits are the stripe's, set on its active: refused here,
                // nothing else in the command is set either.
                if limits != current && !self.shared.view().local_is_active() {
                    return Ok(Reply::err(ERR_NODE_LIMITS_ON_ACTIVE));
                }
                // All or nothing, as Redis: what was set before a refused value is put back.
                let mut before: Vec<(&str, String)> = Vec::new();
                let tls = local.iter().map(|pair| text(&pair[0])).find(|name| crate::server::tls_params::is_tls_param(name));
                for pair in local {
                    let name = text(&pair[0]);
                    let previous = settings.get(&[name.as_bytes()]).into_iter().next();
                    if let Err(e) = settings.set(&name, &text(&pair[1])) {
                        for (name, value) in before.into_iter().rev() {
                            let _ = settings.set(name, &value);
                        }
                        return Ok(Reply::error(e));
                    }
                    before.extend(previous);
                }
                // The new certificates load after every parameter is set (a certificate
                // and its key change together); a failed load puts them all back.
                if let Err(e) = tls.map_or(Ok(()), |name| crate::server::tls_params::reload(&self.shared, &name)) {
                    for (name, value) in before.into_iter().rev() {
                        let _ = settings.set(name, &value);
                    }
                    return Ok(Reply::error(e));
                }
                self.configure_stats();
                let min_replicas = settings.param("min-replicas-to-write").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
                settings.min_replicas.store(min_replicas, Ordering::Relaxed);
                if let Some(max) = settings.param("tracking-table-max-keys").and_then(|v| v.parse::<usize>().ok()).filter(|m| *m > 0) {
                    self.shared.core.tracking.limit(&self.shared.clients, max);
                }
                let events_on = settings.notify_mask.load(Ordering::Relaxed) != 0;
                let local = settings.local();
                {
                    let mut store = self.shared.core.store();
                    store.events_on = events_on;
                    store.new_events_on =
                        settings.notify_mask.load(Ordering::Relaxed) & crate::server::settings::notify::class_bit(b'n') != 0;
                    store.set_local(local);
                }
                if limits != current {
                    return Err(limits);
                }
                Reply::ok()
            }
            "resetstat" if args.len() == 2 => {
                // The counters INFO stats reports; Redis resets the same ones.
                let shared = &self.shared;
                shared.commands_processed.store(0, Ordering::Relaxed);
                shared.clients.total_connections.store(0, Ordering::Relaxed);
                shared.clients.rejected_connections.store(0, Ordering::Relaxed);
                shared.core.stats.reset();
                crate::store::lazyfree::reset_stats();
                let mut store = shared.core.store();
                store.expired_keys = 0;
                store.evicted_keys = 0;
                Reply::ok()
            }
            "help" if args.len() == 2 => Reply::Array(
                [
                    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "GET <pattern>",
                    "    Return parameters matching the glob-like <pattern> and their values.",
                    "SET <directive> <value>",
                    "    Set the configuration <directive> to <value>.",
                    "RESETSTAT",
                    "    Reset statistics reported by the INFO command.",
                    "REWRITE",
                    "    Rewrite the configuration file.",
                    "HELP",
                    "    Prints this help.",
                ]
                .iter()
                .map(|l| Reply::Status((*l).into()))
                .collect(),
            ),
            "rewrite" if args.len() == 2 => {
                Reply::err("ERR The server is running without a config file that CONFIG REWRITE can change: edit the TOML file")
            }
            "get" | "set" => commands::wrong_args(&format!("config|{}", text(&args[1]).to_ascii_lowercase())),
            _ => unknown_subcommand("config", &args[1]),
        })
    }

    /// After CONFIG SET lowered `maxmemory` under what the data uses, the active
    /// evicts at once (the policy allowing), as Redis does, rather than at the next
    /// write.
    pub(super) async fn evict_after_config(&self, args: &[Bytes], reply: &Reply) {
        let sets_maxmemory = is(&args[1], "set") && args[2..].iter().step_by(2).any(|name| is(name, "maxmemory"));
        if !sets_maxmemory || *reply != Reply::ok() || !self.shared.view().local_is_active() {
            return;
        }
        let log_bytes = self.shared.core.replica.log.memory_bytes();
        if crate::server::core::over_maxmemory(&self.shared.settings, log_bytes) {
            // -OOM under noeviction: nothing to do until a write asks.
            let _ = self.shared.core.make_room(&self.shared.settings).await;
        }
    }

    /// After CLIENT UNPAUSE the active removes at once the keys that expired during
    /// the pause (expiry is a write, held while writes are paused), before answering:
    /// a read right after UNPAUSE finds them gone and counted, as Redis's expiry on
    /// access does, instead of waiting for the next expiry cycle.
    pub(super) async fn expire_after_unpause(&self, args: &[Bytes], reply: &Reply) {
        if !is(&args[1], "unpause") || *reply != Reply::ok() || !self.shared.view().local_is_active() || self.shared.core.pause.holds(true)
        {
            return;
        }
        // Bounded as one expiry cycle is; a new write pause stops it.
        for _ in 0..16 {
            if self.shared.core.pause.holds(true) || self.shared.core.expire_due().await < crate::limits::EXPIRE_KEYS_PER_ENTRY_MAX {
                break;
            }
        }
    }

    /// Sets the stream node limits on every member of the stripe: a log entry.
    pub(super) async fn propose_node_limits(&self, limits: NodeLimits) -> Reply {
        if !self.shared.view().local_is_active() {
            return Reply::err(ERR_NODE_LIMITS_ON_ACTIVE);
        }
        let op = crate::store::Op::command(&node_limits_command(limits));
        match self.shared.core.propose(vec![op]).await {
            Ok(mut replies) => replies.pop().unwrap_or_else(Reply::ok),
            Err(e) => crate::server::errors::write_reply(&e),
        }
    }

    pub(super) fn memory(&mut self, args: &[Bytes]) -> Reply {
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
                        // Key, value and what holds them: the index's slot (4 bytes), the
                        // key (its bytes apart when too long to be kept in place) and the item.
                        use crate::store::table::Key;
                        let key_bytes = if args[2].len() > Key::INLINE_MAX { args[2].len() } else { 0 };
                        let overhead = 4 + std::mem::size_of::<Key>() + std::mem::size_of::<crate::store::db::Item>();
                        Reply::Int((key_bytes + overhead + item.value.memory_estimate(samples)) as i64)
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
            "help" => Reply::Array(
                [
                    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "DOCTOR",
                    "STATS",
                    "USAGE <key> [SAMPLES <count>]",
                    "PURGE",
                    "HELP",
                ]
                .iter()
                .map(|l| Reply::Status((*l).into()))
                .collect(),
            ),
            _ => unknown_subcommand("memory", &args[1]),
        }
    }

    /// INFO [section …].
    /// INFO inside a transaction (the store was just released by its entry).
    pub(super) fn info(&self, args: &[Bytes]) -> Reply {
        let figures = StoreFigures::of(&self.shared.core.store());
        Reply::Verbatim(Bytes::from(self.info_text(&args[1..], figures)))
    }

    /// INFO: the store's figures are read without blocking the runtime while a script
    /// holds the store (monitoring polls INFO); past the busy threshold it answers
    /// `-BUSY`, as Redis does.
    pub(super) async fn info_async(&self, args: &[Bytes]) -> Reply {
        let figures = match self.shared.core.store_async().await {
            Ok(store) => StoreFigures::of(&store),
            Err(busy) => return busy,
        };
        Reply::Verbatim(Bytes::from(self.info_text(&args[1..], figures)))
    }

    pub(super) async fn save(&mut self) -> Reply {
        match self.shared.core.replica.snapshot_now().await {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::error(format!("ERR the snapshot failed: {e}")),
        }
    }

    /// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: this server stops as `tandem stop`
    /// stops it (the same checks: an active hands over to a caught-up mirror; a stop
    /// that would leave the stripe without an active is refused unless FORCE). Every
    /// write is already in the log, so SAVE and NOSAVE change nothing; NOW is the only
    /// way. On success, as in Redis, the connection closes without a reply.
    pub(super) async fn shutdown(&mut self, args: &[Bytes]) -> Option<Reply> {
        let mut force = false;
        let mut save_given = false;
        for arg in &args[1..] {
            match text(arg).to_ascii_lowercase().as_str() {
                // NOSAVE and SAVE exclude each other, as in Redis.
                "nosave" | "save" if save_given => return Some(Reply::err(ERR_SYNTAX)),
                "nosave" | "save" => save_given = true,
                "now" => {}
                "force" => force = true,
                "abort" if args.len() == 2 => return Some(Reply::err("ERR No shutdown in progress.")),
                _ => return Some(Reply::err(ERR_SYNTAX)),
            }
        }
        let group = self.shared.core.replica.group.clone();
        let (response, stop) = crate::replication::membership::stop(&group, force).await;
        if !stop {
            let why = match response {
                crate::replication::wire::Response::Done { message, .. } => message.replace("--force", "SHUTDOWN FORCE"),
                other => format!("{other:?}"),
            };
            return Some(Reply::error(format!("ERR Errors trying to SHUTDOWN: {why}")));
        }
        tracing::warn!(client = self.session.info.id, force, "SHUTDOWN asked by a client: stopping");
        let _ = group.stop.send(Some(crate::replication::group::Stop::Requested));
        self.session.closing = true;
        None
    }

    pub(super) async fn bgsave(&mut self) -> Reply {
        self.shared.core.replica.snapshot_soon().await;
        Reply::status("Background saving started")
    }

    /// INFO's text: the sections and fields clients and tools parse.
    fn info_text(&self, sections: &[Bytes], figures: StoreFigures) -> String {
        let wanted: Vec<String> = sections.iter().map(|s| text(s).to_ascii_lowercase()).collect();
        let all = wanted.iter().any(|w| w == "all" || w == "everything");
        let default = wanted.is_empty() || wanted.iter().any(|w| w == "default");
        let want = |name: &str| all || (default && DEFAULT_SECTIONS.contains(&name)) || wanted.iter().any(|w| w == name);
        let shared = &self.shared;
        let StoreFigures { keys, expires, expired, evicted, dirty, scripts } = figures;
        // Clients held by CLIENT PAUSE count as blocked, as in Redis.
        let blocked = shared.blocker.blocked.load(Ordering::Relaxed)
            + shared.blocker.waiting_for_mirrors.load(Ordering::Relaxed)
            + shared.core.pause.held();
        let mut out = String::new();
        let mut section = |name: &str, body: String| {
            if want(&name.to_ascii_lowercase()) {
                // Sections are separated by a blank line, none after the last (Redis).
                if !out.is_empty() {
                    out.push_str("\r\n");
                }
                out.push_str(&format!("# {name}\r\n{body}"));
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
                wall_us(),
                uptime / 86400,
                std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
                shared.settings.config_file,
                shared.server_name,
            ),
        );
        let tracking = shared.core.tracking.counts();
        section(
            "Clients",
            format!(
                "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{blocked}\r\ntracking_clients:{}\r\n",
                shared.clients.count(),
                shared.settings.clients_max.load(Ordering::Relaxed),
                tracking.clients,
            ),
        );
        let used = memory::used_bytes();
        let log = shared.core.replica.log.memory_bytes();
        let max = shared.settings.maxmemory_bytes.load(Ordering::Relaxed) as usize;
        section(
            "Memory",
            format!(
                "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_dataset:{}\r\ntandem_log_memory:{log}\r\nused_memory_rss:{}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:jemalloc\r\nused_memory_scripts:{}\r\nnumber_of_cached_scripts:{}\r\nlazyfree_pending_objects:{}\r\nmem_not_counted_for_evict:{log}\r\n",
                memory::human(used),
                used.saturating_sub(log),
                memory::rss_bytes(),
                memory::human(memory::rss_bytes()),
                memory::peak_bytes(),
                memory::human(memory::peak_bytes()),
                memory::human(max),
                shared.settings.policy().name(),
                scripts.1,
                scripts.0,
                crate::store::lazyfree::pending(),
            ),
        );
        section(
            "Persistence",
            format!(
                "loading:0\r\nrdb_changes_since_last_save:{dirty}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\naof_enabled:0\r\n",
                shared.core.replica.last_snapshot_unix_secs(),
                if shared.core.replica.snapshots.report().is_some() { "err" } else { "ok" },
            ),
        );
        section(
            "Stats",
            format!(
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{expired}\r\nevicted_keys:{evicted}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\ntotal_error_replies:{}\r\nlazyfreed_objects:{}\r\nmigrate_cached_sockets:0\r\n",
                shared.clients.total_connections.load(Ordering::Relaxed),
                shared.commands_processed.load(Ordering::Relaxed),
                shared.clients.rejected_connections.load(Ordering::Relaxed),
                shared.pubsub.channels(None).len(),
                shared.pubsub.numpat(),
                shared.pubsub.shard_channels(None).len(),
                tracking.keys,
                tracking.items,
                tracking.prefixes,
                shared.core.stats.error_replies(),
                crate::store::lazyfree::freed(),
            ),
        );
        section("Replication", self.replication_info());
        section("CPU", cpu_info());
        // No modules are loaded: the section is there, empty, as on a Redis without any.
        section("Modules", String::new());
        section("Commandstats", shared.core.stats.commandstats_info());
        section("Errorstats", shared.core.stats.errorstats_info());
        section("Latencystats", shared.core.stats.latencystats_info(&self.info_percentiles()));
        // Every server speaks the Redis Cluster protocol (CLUSTER SLOTS…), whatever
        // the number of stripes: clients read this to choose how to connect.
        section("Cluster", "cluster_enabled:1\r\n".to_string());
        let keyspace = if keys > 0 { format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n") } else { String::new() };
        section("Keyspace", keyspace);
        out
    }
}

impl Connection {
    /// ROLE in Redis's shape: on the active `[master, applied, [[host, port, matched]…]]`
    /// (its data mirrors), on a mirror `[slave, host, port, link, applied]` (the
    /// active's client address; an empty host while no active is known). An
    /// ACTIVE-SUSPENDED active (no quorum answers it) is no master a client may write
    /// to: it answers the mirror's shape, no active known, and its state
    /// `ACTIVE-SUSPENDED` where Redis puts the link's state.
    pub(super) fn role(&self) -> Reply {
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
        let cluster = self.shared.view();
        let (host, port) = match cluster.active(cluster.local) {
            Active::There { client_addr, .. } => split_addr(client_addr),
            _ => (String::new(), 0),
        };
        let link = match view.state {
            ServerState::PassiveStandby => "connected",
            ServerState::Initializing => "sync",
            ServerState::ActiveSuspended => ServerState::ActiveSuspended.name(),
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
            let cluster = self.shared.view();
            let at = cluster.active(cluster.local);
            let (host, port) = match &at {
                Active::There { client_addr, .. } => split_addr(client_addr),
                _ => (String::new(), 0),
            };
            let up = matches!(at, Active::There { .. }) && matches!(view.state, ServerState::PassiveStandby | ServerState::Initializing);
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
pub(super) fn data_mirrors(view: &ReplicationView) -> impl Iterator<Item = &MemberView> {
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

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "HELP",
    "    Print this help.",
];

/// The commands clients may call (internal ones are hidden).
fn public() -> impl Iterator<Item = &'static CommandSpec> {
    commands::all().filter(|s| !s.has(flags::INTERNAL))
}

/// Every public command and subcommand.
fn public_with_subcommands() -> impl Iterator<Item = &'static CommandSpec> {
    public().flat_map(|s| std::iter::once(s).chain(s.subcommands.iter()))
}

/// The ACL categories a command is in, as COMMAND INFO and FILTERBY ACLCAT name them:
/// its family's and those its flags imply.
fn acl_categories(spec: &CommandSpec) -> Vec<String> {
    let family = match spec.group {
        "sorted-set" => "sortedset",
        "generic" => "keyspace",
        "server" | "cluster" => "admin",
        other => other,
    };
    let mut cats = vec![family.to_string()];
    for (flag, cat) in [
        (flags::WRITE, "write"),
        (flags::READONLY, "read"),
        (flags::ADMIN, "admin"),
        (flags::PUBSUB, "pubsub"),
        (flags::BLOCKING, "blocking"),
    ] {
        if spec.has(flag) {
            cats.push(cat.to_string());
        }
    }
    if spec.has(flags::ADMIN) {
        cats.push("dangerous".to_string());
    }
    cats.push(if spec.has(flags::FAST) { "fast" } else { "slow" }.to_string());
    cats.sort();
    cats.dedup();
    cats
}

/// COMMAND, COMMAND COUNT/INFO/DOCS/LIST/GETKEYS/HELP.
pub(super) fn command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(public().map(command_info).collect());
    };
    match text(sub).to_ascii_lowercase().as_str() {
        "count" => Reply::Int(public().count() as i64),
        "info" if args.len() == 2 => Reply::Array(public().map(command_info).collect()),
        "info" => Reply::Array(
            args[2..]
                .iter()
                .map(|n| commands::lookup_full(n).filter(|s| !s.has(flags::INTERNAL)).map_or(Reply::NilArray, command_info))
                .collect(),
        ),
        "list" => command_list(&args[2..]),
        "docs" => {
            let specs: Vec<&CommandSpec> =
                if args.len() > 2 { args[2..].iter().filter_map(|n| commands::lookup_full(n)).collect() } else { public().collect() };
            Reply::Map(specs.into_iter().filter(|s| !s.has(flags::INTERNAL)).map(command_docs).collect())
        }
        "getkeys" => command_getkeys(&args[2..], false),
        "getkeysandflags" => command_getkeys(&args[2..], true),
        "help" => Reply::Array(COMMAND_HELP.iter().map(|l| Reply::Status((*l).into())).collect()),
        _ => unknown_subcommand("command", sub),
    }
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern].
fn command_list(args: &[Bytes]) -> Reply {
    let names = |keep: &dyn Fn(&CommandSpec) -> bool| {
        Reply::Array(public_with_subcommands().filter(|s| keep(s)).map(|s| Reply::bulk_str(s.name)).collect())
    };
    match args {
        [] => names(&|_| true),
        [filterby, kind, value] if is(filterby, "filterby") => {
            if is(kind, "module") {
                // No modules.
                Reply::Array(vec![])
            } else if is(kind, "aclcat") {
                let wanted = text(value).to_ascii_lowercase();
                names(&|s| acl_categories(s).contains(&wanted))
            } else if is(kind, "pattern") {
                names(&|s| glob_match(value, s.name.as_bytes(), true))
            } else {
                Reply::err(ERR_SYNTAX)
            }
        }
        _ => Reply::err(ERR_SYNTAX),
    }
}

/// COMMAND GETKEYS command arg…: the keys as the command table finds them. With
/// `flags` (GETKEYSANDFLAGS) each key comes with the flags of the Redis key spec it
/// falls under (the ACL's attribution: `acl::users::key_access_at`), so `LMOVE a b`
/// gives `a` `RW access delete` and `b` `RW insert` as Redis does; this server's own
/// commands, which Redis has no specs for, give `RW access update` for a write and
/// `RO access` for a read.
fn command_getkeys(command: &[Bytes], flags: bool) -> Reply {
    let Some(spec) = commands::resolve(command).filter(|s| !s.has(flags::INTERNAL)) else {
        return Reply::err("ERR Invalid command specified");
    };
    if !spec.arity_ok(command.len()) {
        return Reply::err("ERR Invalid number of arguments specified for command");
    }
    let keys = spec.keys(command);
    let has_key_args = spec.first_key > 0 || spec.key_finder.is_some() || spec.numkeys_at > 0;
    if keys.is_empty() && !has_key_args {
        return Reply::err("ERR The command has no key arguments");
    }
    if !flags {
        return Reply::Array(keys.into_iter().map(|k| Reply::Bulk(k.clone())).collect());
    }
    let registry = crate::acl::registry::registry();
    let described = registry.id_of_request(spec, command).and_then(|id| registry.commands.get(id));
    let whole: &[&str] = if spec.is_write() { &["RW", "access", "update"] } else { &["RO", "access"] };
    let with_flags = |key: &Bytes| {
        let at = command.iter().position(|a| std::ptr::eq(a, key)).unwrap_or(0);
        let named = described.map(|c| crate::acl::users::key_access_at(c, command, at).flags).filter(|f| !f.is_empty());
        // `incomplete` and `variable_flags` describe the spec, not the key found.
        let flags = named
            .unwrap_or(whole)
            .iter()
            .filter(|f| !matches!(**f, "incomplete" | "variable_flags"))
            .map(|f| Reply::Status((*f).into()))
            .collect();
        Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Set(flags)])
    };
    Reply::Array(keys.into_iter().map(with_flags).collect())
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
        Reply::Set(acl_categories(spec).into_iter().map(|c| Reply::Status(format!("@{c}").into())).collect()),
        Reply::Array(vec![]),
        Reply::Array(key_specs),
        Reply::Array(spec.subcommands.iter().map(command_info).collect()),
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
