//! What the management port knows: the config (the whole array), this server's
//! place in it, and — once its data is loaded — the running server. Until then this
//! server reports itself `STARTING`. Builds this server's own report, clients list
//! and live metrics; the others' come over the group port ([`super::peer`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::watch;

use super::auth::Guard;
use super::metrics::{InfoLabels, Live, MemberLabels, StateLabels};
use super::view::{ClientReport, MemberLag, ServerReport};
use crate::config::Config;
use crate::replication::stripe::{ServerState, StripeLayout};
use crate::server::Shared;

/// Most clients one report lists: a server with more shows these (the oldest).
pub const CLIENTS_LISTED_MAX: usize = 1_000;

/// What `tandem server` gives the management port.
#[derive(Debug, Clone)]
pub struct ManagementOptions {
    /// This server's name in the config.
    pub name: String,
    /// The whole array (the development topology without a config file).
    pub config: Arc<Config>,
    /// Where to listen: the server's host, and its `management-port` (0: off).
    pub host: String,
    pub port: u16,
}

/// Commands per second, from the server's count sampled once a second.
#[derive(Debug, Default)]
struct Rate {
    last: Option<(Instant, u64)>,
    per_sec: f64,
}

pub struct State {
    pub options: ManagementOptions,
    /// Every stripe of the array, as the group ports know them.
    pub layouts: Vec<StripeLayout>,
    /// This server's stripe.
    pub stripe: String,
    pub guard: Guard,
    pub local_addr: SocketAddr,
    pub started: Instant,
    server: OnceLock<Arc<Shared>>,
    rate: Mutex<Rate>,
    /// Turns true when the server stops: live streams end, connections drain.
    pub shutdown: watch::Receiver<bool>,
    /// The console's live feed.
    pub feed: super::live::Feed,
}

impl State {
    pub fn new(options: ManagementOptions, local_addr: SocketAddr, shutdown: watch::Receiver<bool>) -> State {
        let config = &options.config;
        let layouts: Vec<StripeLayout> = config.stripes.iter().map(|s| StripeLayout::from_config(config, s)).collect();
        let stripe = config.server(&options.name).map(|(s, _)| s.name.clone()).unwrap_or_default();
        let guard = Guard {
            token: config.cluster.management_token.clone(),
            allow_plain_http: config.cluster.management_allow_plain_http,
            bound: local_addr.ip(),
            https: config.cluster.tls.management,
        };
        State {
            options,
            layouts,
            stripe,
            guard,
            local_addr,
            started: Instant::now(),
            server: OnceLock::new(),
            rate: Mutex::default(),
            shutdown,
            feed: super::live::Feed::default(),
        }
    }

    pub fn me(&self) -> &str {
        &self.options.name
    }

    /// The running server, once its data is loaded.
    pub fn server(&self) -> Option<&Arc<Shared>> {
        self.server.get()
    }

    pub fn attach(&self, shared: Arc<Shared>) {
        let _ = self.server.set(shared);
    }

    /// This server's state (`STARTING` until its data is loaded).
    pub fn server_state(&self) -> ServerState {
        self.server().map_or(ServerState::Starting, |s| s.core.replica.group.state())
    }

    /// Whether a load balancer should send clients here as to a mirror (see
    /// `LocalView::serves_as_mirror`).
    pub fn serves_as_mirror(&self) -> bool {
        self.server().is_some_and(|s| s.core.replica.group.local_view().serves_as_mirror())
    }

    /// Samples the command count; called once a second.
    pub fn tick(&self) {
        let Some(shared) = self.server() else { return };
        let count = shared.commands_processed.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, before)) = rate.last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                rate.per_sec = count.saturating_sub(before) as f64 / secs;
            }
        }
        rate.last = Some((now, count));
    }

    fn ops_per_sec(&self) -> f64 {
        self.rate.lock().unwrap_or_else(|e| e.into_inner()).per_sec
    }

    /// This server's own report.
    pub fn local_report(&self) -> ServerReport {
        let config = &self.options.config;
        let server = config.server(self.me()).map(|(_, s)| s);
        let host = server.map_or_else(|| self.options.host.clone(), |s| s.host.clone());
        let mut report = ServerReport::empty(self.me(), &self.stripe, false, &host);
        report.reachable = true;
        report.client_port = server.map(|s| s.client_port);
        report.management_port = Some(self.local_addr.port());
        report.data_storage_bytes = server.map(|s| s.data_storage_bytes);
        report.version = Some(env!("CARGO_PKG_VERSION").to_string());
        report.uptime_s = Some(self.started.elapsed().as_secs());
        report.used_memory_bytes = Some(crate::memory::used_bytes() as u64);
        let Some(shared) = self.server() else {
            report.set_state(ServerState::Starting);
            return report;
        };
        let replica = &shared.core.replica;
        let view = replica.group.view();
        report.set_state(view.state);
        report.client_port = Some(shared.settings.port);
        report.node_id = Some(view.node_id);
        report.term = Some(view.term);
        report.commit_index = view.commit_index;
        report.applied_index = view.applied_index;
        report.last_log_index = view.last_log_index;
        report.purged_index = view.purged_index;
        report.active = view.active.clone();
        if view.state.is_leading() {
            report.members =
                view.members.iter().map(|m| MemberLag { name: m.name.clone(), node_id: m.node_id, voting: m.voting, lag: m.lag }).collect();
        }
        // Left out while a script holds the store: a report never waits for it.
        report.keys = shared.core.store_if_free().map(|store| store.db.len() as u64);
        report.clients = Some(shared.clients.count() as u64);
        report.ops_per_sec = Some(self.ops_per_sec());
        report.last_error =
            replica.health.problem().or_else(|| replica.snapshots.report().map(|p| format!("the snapshot could not be written: {p}")));
        report
    }

    /// This server's clients, oldest first.
    pub fn local_clients(&self) -> Vec<ClientReport> {
        let Some(shared) = self.server() else { return Vec::new() };
        let now_ms = crate::clock::wall_ms();
        shared
            .clients
            .all()
            .into_iter()
            .take(CLIENTS_LISTED_MAX)
            .map(|c| ClientReport {
                id: c.id,
                address: c.addr.clone(),
                name: c.name(),
                age_s: c.created.elapsed().as_secs(),
                idle_s: now_ms.saturating_sub(c.last_active_ms.load(Ordering::Relaxed)) / 1000,
                last_command: c.last_cmd.lock().unwrap_or_else(|e| e.into_inner()).to_string(),
                session: None,
            })
            .collect()
    }

    /// Gauges read now: state, memory, keys, clients, Raft indexes and lags.
    pub fn live_metrics(&self) -> Live {
        let mut live = Live::default();
        let state = self.server_state();
        let info = InfoLabels { version: env!("CARGO_PKG_VERSION"), server: self.me().to_string(), stripe: self.stripe.clone() };
        live.gauges("tandem_build_info", "This server's version, name and stripe", vec![(info, 1)]);
        let states = ServerState::ALL.iter().map(|s| (StateLabels { state: s.name() }, i64::from(*s == state))).collect();
        live.gauges("tandem_server_state", "1 for this server's current state (DESIGN.md §2), 0 for the others", states);
        live.gauge("tandem_uptime_seconds", "Seconds since the process started", self.started.elapsed().as_secs() as i64);
        live.gauge(
            "tandem_used_memory_bytes",
            "Bytes allocated (jemalloc, counted), as INFO's used_memory",
            saturate(crate::memory::used_bytes() as u64),
        );
        live.gauge("tandem_rss_bytes", "Resident set size of the process", saturate(crate::memory::rss_bytes() as u64));
        let Some(shared) = self.server() else { return live };
        // Left out of this scrape while a script holds the store: a scrape never waits.
        let figures = shared.core.store_if_free().map(|store| (store.db.len() as u64, store.expired_keys, store.evicted_keys));
        if let Some((keys, expired, evicted)) = figures {
            live.gauge("tandem_keys", "Keys in the data set", saturate(keys));
            live.counter("tandem_expired_keys", "Keys deleted because they expired", expired);
            live.counter("tandem_evicted_keys", "Keys evicted to stay within data-storage", evicted);
        }
        live.gauge(
            "tandem_data_storage_bytes",
            "The memory data may use (data-storage / maxmemory)",
            saturate(shared.settings.maxmemory_bytes.load(Ordering::Relaxed)),
        );
        live.gauge(
            "tandem_log_memory_bytes",
            "Bytes of the Raft log held in memory",
            saturate(shared.core.replica.log.memory_bytes() as u64),
        );
        live.gauge("tandem_connected_clients", "Client connections open now", shared.clients.count() as i64);
        live.counter(
            "tandem_connections_received",
            "Client connections accepted",
            shared.clients.total_connections.load(Ordering::Relaxed),
        );
        live.counter(
            "tandem_rejected_connections",
            "Client connections refused (maxclients)",
            shared.clients.rejected_connections.load(Ordering::Relaxed),
        );
        live.counter(
            "tandem_commands_processed",
            "Commands received, as INFO's total_commands_processed",
            shared.commands_processed.load(Ordering::Relaxed),
        );
        self.raft_metrics(shared, &mut live);
        live
    }

    fn raft_metrics(&self, shared: &Shared, live: &mut Live) {
        let view = shared.core.replica.group.view();
        live.gauge("tandem_raft_term", "This server's current Raft term", saturate(view.term));
        live.gauge("tandem_raft_commit_index", "Last log index this server knows committed", saturate(view.commit_index.unwrap_or(0)));
        live.gauge("tandem_raft_applied_index", "Last log index applied to this server's data", saturate(view.applied_index.unwrap_or(0)));
        live.gauge("tandem_raft_last_log_index", "Last index in this server's log", saturate(view.last_log_index.unwrap_or(0)));
        // Replication progress is known on the active only.
        let lags: Vec<(MemberLabels, i64)> =
            view.members.iter().filter_map(|m| Some((MemberLabels { member: m.name.clone() }, saturate(m.lag?)))).collect();
        live.gauges("tandem_raft_member_lag", "Entries each member trails the active's log by (on the active)", lags);
        let matched: Vec<(MemberLabels, i64)> =
            view.members.iter().filter_map(|m| Some((MemberLabels { member: m.name.clone() }, saturate(m.matched?)))).collect();
        live.gauges("tandem_raft_member_matched_index", "Last log index replicated to each member (on the active)", matched);
    }
}

fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
