//! The client-facing server: the listener, one task per connection and the request
//! pipeline it runs (`pipeline`: frames → request → admit → route → local or
//! forwarded), pub/sub fan-out, the active expiry cycle, and clean shutdown. It
//! knows the state machine only through [`core::Core`], and where actives are only
//! through the cluster view.

pub mod admit;
pub mod array;
pub mod blocking;
pub mod clients;
mod cmd;
pub mod connection;
pub mod core;
pub mod errors;
pub mod forward;
pub mod frames;
pub mod monitor;
pub mod params;
pub mod pause;
pub mod pipeline;
pub mod protected;
pub mod pubsub;
pub mod request;
pub mod session;
pub mod sessions;
pub mod settings;
pub mod split;
pub mod stats;
pub mod stream;
pub mod tls;
pub mod tls_params;
pub mod tracking;
pub mod transaction;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::view::{Active, ClusterView};
use crate::replication::replica::{Replica, ReplicaOptions};
use crate::store::KeyEvent;
use blocking::Blocker;
use clients::Clients;
use core::Core;
use openraft::async_runtime::WatchReceiver;
use pubsub::PubSub;
use settings::{notify, Settings};

/// How often the active expiry cycle runs (Redis's default `hz 10`).
const EXPIRE_CYCLE_MS: u64 = 100;
/// Longest one expiry cycle may hold the store lock before yielding to clients.
const EXPIRE_CYCLE_BUDGET_MS: u128 = 25;

/// What every connection shares.
pub struct Shared {
    pub core: Core,
    pub blocker: Blocker,
    pub settings: Settings,
    pub pubsub: PubSub,
    pub clients: Clients,
    /// MONITOR clients.
    pub monitors: monitor::Monitors,
    pub commands_processed: AtomicU64,
    pub started: Instant,
    pub run_id: String,
    pub server_name: String,
    /// The cluster view routing reads; kept current by [`keep_view`] (this stripe)
    /// and [`array::watch_stripe`] (the others).
    view: watch::Receiver<Arc<ClusterView>>,
    view_tx: watch::Sender<Arc<ClusterView>>,
    /// Every stripe of the array in config order (this server's among them).
    pub array: Vec<crate::replication::stripe::StripeLayout>,
    /// What this server last heard from the members of the other stripes.
    pub remote: array::RemoteStates,
    /// Set while a server of another stripe reads another array from its config.
    pub array_mismatch: array::Mismatch,
    /// Carries PUBLISH to the other stripes' servers (`None` outside an array).
    pub array_broadcast: Option<crate::replication::broadcast::Broadcaster>,
    /// The certificates of this server's TLS ports, if it has any (CONFIG SET tls-*
    /// reloads them: [`tls_params::reload`]).
    pub tls: std::sync::OnceLock<Arc<tls::TlsAcceptor>>,
}

impl Shared {
    /// `array`: every stripe of the array in config order; empty or this stripe alone
    /// for a server that is not part of a larger array.
    pub fn new(
        core: Core,
        blocker: Blocker,
        settings: Settings,
        server_name: &str,
        array: Vec<crate::replication::stripe::StripeLayout>,
    ) -> Shared {
        let run_id: String = (0..40).map(|_| char::from_digit(rand::random::<u32>() % 16, 16).unwrap_or('0')).collect();
        let own = core.replica.group.layout.clone();
        let array = if array.iter().any(|l| l.stripe == own.stripe) { array } else { vec![own.clone()] };
        let local = array.iter().position(|l| l.stripe == own.stripe).unwrap_or(0);
        let stripes = array
            .iter()
            .enumerate()
            .map(|(i, l)| crate::cluster::view::StripeView {
                name: l.stripe.clone(),
                active: if i == local { core.replica.active_at() } else { Active::Unknown },
            })
            .collect();
        let (view_tx, view) = watch::channel(Arc::new(ClusterView::array(stripes, local)));
        let others: Vec<_> = array.iter().enumerate().filter(|(i, _)| *i != local).map(|(_, l)| l.clone()).collect();
        let me = own.members.iter().find(|m| m.name == server_name);
        let array_broadcast = match me {
            Some(me) if !others.is_empty() => Some(crate::replication::broadcast::Broadcaster::to_stripes(&others, me)),
            _ => None,
        };
        Shared {
            tls: std::sync::OnceLock::new(),
            array_mismatch: array::Mismatch::default(),
            array_broadcast,
            view,
            view_tx,
            array,
            remote: array::RemoteStates::default(),
            core,
            blocker,
            settings,
            pubsub: PubSub::default(),
            clients: Clients::default(),
            monitors: monitor::Monitors::default(),
            commands_processed: AtomicU64::new(0),
            started: Instant::now(),
            run_id,
            server_name: server_name.to_string(),
        }
    }

    /// Records where `stripe`'s active is now (the view's other stripes unchanged).
    pub fn set_active(&self, stripe: usize, active: Active) {
        self.view_tx.send_if_modified(|view| {
            if *view.active(stripe) == active {
                return false;
            }
            *view = Arc::new(view.with_active(stripe, active));
            true
        });
    }

    /// The answer to a request for `stripe` while it has no active: in an array it
    /// names the stripe (only its slots are down).
    pub fn no_active(&self, stripe: usize) -> crate::protocol::reply::Reply {
        let view = self.view();
        match view.stripes.get(stripe) {
            Some(s) if view.is_array() => errors::stripe_down(&s.name),
            _ => crate::protocol::reply::Reply::err(errors::ERR_NO_ACTIVE),
        }
    }

    fn publish_event(&self, channel: Bytes, message: Bytes, to_array: bool) {
        self.pubsub.publish(&channel, &message);
        if let (true, Some(array)) = (to_array, &self.array_broadcast) {
            array.publish(&channel, &message, false);
        }
    }

    /// Where slot-routing clients reach the server `name` of `stripe` (its cluster
    /// port, or else its client port).
    pub fn cluster_addr_of(&self, stripe: usize, name: &str) -> Option<String> {
        self.array.get(stripe)?.members.iter().find(|m| m.name == name)?.cluster_addr()
    }

    /// The cluster view as it is now.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// A receiver that wakes when the view changes (a waiting command notices that
    /// its stripe's active moved).
    pub fn view_changes(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }

    /// How long a request waits for a stripe with no active to get one, and for the
    /// new active to answer a connection: twice the election time (DESIGN.md §6), so
    /// a request sent during a failover waits out the election rather than fail.
    pub fn active_wait(&self) -> Duration {
        self.core.replica.election_time().saturating_mul(2)
    }

    /// Waits up to `within` for `stripe` to have an active; where it is then.
    pub async fn wait_for_active(&self, stripe: usize, within: Duration) -> Active {
        let mut view = self.view.clone();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let active = view.borrow_and_update().active(stripe).clone();
            if active != Active::Unknown {
                return active;
            }
            match tokio::time::timeout_at(deadline, view.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.view().active(stripe).clone(),
            }
        }
    }

    /// Waits up to `within` for `stripe` to have an active other than the server named
    /// `lost` (a mirror that lost its upstream to a failover waits for the successor).
    pub async fn wait_for_new_active(&self, stripe: usize, lost: &str, within: Duration) -> Active {
        let mut view = self.view.clone();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let active = view.borrow_and_update().active(stripe).clone();
            match &active {
                Active::Here => return active,
                Active::There { name, .. } if name != lost => return active,
                _ => {}
            }
            match tokio::time::timeout_at(deadline, view.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.view().active(stripe).clone(),
            }
        }
    }

    /// Publishes the messages applying produced (group join/leave events): on every
    /// server of the stripe (each applies the same entries) in log order, and from
    /// the active to the other stripes' servers, as keyspace notifications travel.
    pub fn publish_messages(&self, messages: &[(Bytes, Bytes)]) {
        if messages.is_empty() {
            return;
        }
        let to_array = self.array_broadcast.is_some() && self.view().local_is_active();
        for (channel, message) in messages {
            self.publish_event(channel.clone(), message.clone(), to_array);
        }
    }

    /// Publishes keyspace notifications for `events`, as `notify-keyspace-events` asks.
    ///
    /// Every server of a stripe applies the same entries and tells its own
    /// subscribers; the active also tells the other stripes' servers (DESIGN.md §7:
    /// notifications reach subscribers whichever stripe produced them).
    pub fn publish_events(&self, events: &[KeyEvent]) {
        let mask = self.settings.notify_mask.load(Ordering::Relaxed);
        let to_array = self.array_broadcast.is_some() && self.view().local_is_active();
        if mask & (notify::KEYSPACE | notify::KEYEVENT) == 0 || events.is_empty() || !(to_array || self.pubsub.has_subscribers()) {
            return;
        }
        for event in events {
            if mask & notify::class_bit(event.class) == 0 {
                continue;
            }
            if mask & notify::KEYSPACE != 0 {
                let mut channel = b"__keyspace@0__:".to_vec();
                channel.extend_from_slice(&event.key);
                self.publish_event(channel.into(), Bytes::copy_from_slice(event.event.as_bytes()), to_array);
            }
            if mask & notify::KEYEVENT != 0 {
                let channel = format!("__keyevent@0__:{}", event.event);
                self.publish_event(channel.into(), event.key.clone(), to_array);
            }
        }
    }
}

/// Keeps the cluster view current: rebuilt whenever the replication layer's view of
/// the stripe changes (a new active, an election). Raft's server metrics (state,
/// active, membership) change with those alone, not with every entry applied.
async fn keep_view(shared: Arc<Shared>) {
    let mut metrics = shared.core.replica.raft.server_metrics();
    loop {
        let active = shared.core.replica.active_at();
        let current = shared.view();
        if *current.active(current.local) != active {
            shared.set_active(current.local, active);
            // What this server applies may now lag or differ from what its tracking
            // clients cached (an election, a new active): they drop everything.
            shared.core.tracking.flush_all(&shared.clients);
        }
        shared.core.acl.active.store(shared.view().local_is_active(), Ordering::Relaxed);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// TLS: the tls-port's listener (if the server has one), whether the cluster port
/// speaks TLS too (`tls-cluster`), and the certificates their handshakes use.
pub struct TlsListener {
    pub listener: Option<TcpListener>,
    pub cluster: bool,
    pub acceptor: Arc<tls::TlsAcceptor>,
}

/// How a listener's accepted socket is to be served.
#[derive(Clone, Copy)]
enum Port {
    Client,
    /// The cluster port: slot-routing clients.
    Cluster,
    Tls,
}

/// Accepts clients on `listener` (and slot-routing clients on `cluster`, the
/// server's cluster port, and TLS clients on `tls`) until `shutdown` turns true,
/// then closes them all.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    cluster: Option<TcpListener>,
    tls: Option<TlsListener>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let expiry = tokio::spawn(expire_cycle(shared.clone(), shutdown.clone()));
    let renewals = tokio::spawn(sessions::keep_alive(shared.clone(), shutdown.clone()));
    let view = tokio::spawn(keep_view(shared.clone()));
    let users = tokio::spawn(tell_clients_users_changed(shared.clone()));
    let remote: Vec<_> = (0..shared.array.len())
        .filter(|&s| s != shared.view().local)
        .map(|s| tokio::spawn(array::watch_stripe(shared.clone(), s)))
        .collect();
    loop {
        let (accepted, port) = tokio::select! {
            accepted = listener.accept() => (accepted, Port::Client),
            accepted = async { cluster.as_ref().expect("guarded").accept().await }, if cluster.is_some() => (accepted, Port::Cluster),
            accepted = async { tls.as_ref().and_then(|t| t.listener.as_ref()).expect("guarded").accept().await },
                if tls.as_ref().is_some_and(|t| t.listener.is_some()) => (accepted, Port::Tls),
            _ = shutdown.changed() => break,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: say so, wait a little, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let slot_routing = matches!(port, Port::Cluster);
        match &tls {
            Some(tls) if matches!(port, Port::Tls) || (slot_routing && tls.cluster) => {
                // The handshake runs in its own task, bounded in time: a slow or
                // hostile client never holds up the accept loop.
                let (shared, shutdown, acceptor) = (shared.clone(), shutdown.clone(), tls.acceptor.clone());
                tokio::spawn(async move {
                    let Some(stream) = acceptor.handshake(socket, peer).await else { return };
                    if !*shutdown.borrow() {
                        spawn_connection(&shared, stream, peer, &shutdown, slot_routing);
                    }
                });
            }
            _ => spawn_connection(&shared, socket.into(), peer, &shutdown, slot_routing),
        }
    }
    shared.clients.kill_all();
    users.abort();
    expiry.abort();
    renewals.abort();
    view.abort();
    for task in remote {
        task.abort();
    }
    Ok(())
}

/// Tells every connection when the stripe's users change, so that one whose user
/// was deleted, or a subscriber whose channels were revoked, closes without waiting
/// for its next command (`Connection::user_still_valid`).
async fn tell_clients_users_changed(shared: Arc<Shared>) {
    let acl = shared.core.acl.clone();
    let mut told = acl.epoch();
    loop {
        let changed = acl.changed.notified();
        tokio::pin!(changed);
        // Listening before looking: a change between the look and the wait is not missed.
        changed.as_mut().enable();
        if acl.epoch() == told {
            changed.await;
        }
        told = acl.epoch();
        for client in shared.clients.all() {
            client.kill.users_changed();
        }
    }
}

fn spawn_connection(
    shared: &Arc<Shared>,
    socket: stream::ClientStream,
    peer: SocketAddr,
    shutdown: &watch::Receiver<bool>,
    slot_routing: bool,
) {
    let max = shared.settings.clients_max.load(Ordering::Relaxed);
    if shared.clients.count() >= max {
        shared.clients.rejected_connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut socket = socket;
            let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
            let _ = socket.flush().await;
        });
        return;
    }
    let laddr = match &socket {
        stream::ClientStream::Plain(s) => s.local_addr(),
        stream::ClientStream::Tls(s) => s.get_ref().0.local_addr(),
    };
    let laddr = laddr.map(|a| a.to_string()).unwrap_or_default();
    let info = shared.clients.register(peer.to_string(), laddr);
    let shared = shared.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let id = info.id;
        let mut connection = connection::Connection::new(shared.clone(), info, socket);
        connection.session.on_cluster_port = slot_routing;
        connection.session.slot_routing = slot_routing;
        connection.protected = admission(&shared, peer) == protected::Admission::MembersOnly;
        connection.run(shutdown).await;
        shared.clients.unregister(id);
    });
}

/// What protected mode makes of a connection from `peer`, with the `default` user
/// and `protected-mode` as they are now (Redis decides at accept too).
fn admission(shared: &Shared, peer: SocketAddr) -> protected::Admission {
    let protected_mode = shared.settings.protected_mode();
    // Redis looks at the `nopass` flag alone (a disabled default user counts too).
    let nopass = || {
        let requirepass = shared.settings.requirepass();
        shared.core.acl.user(b"default", requirepass.as_deref()).is_some_and(|u| u.nopass)
    };
    protected::admission(peer.ip(), protected_mode, protected_mode && nopass())
}

/// The active expiry cycle: every `EXPIRE_CYCLE_MS`, delete due keys as entries,
/// in chunks, within a time budget so clients keep being served.
async fn expire_cycle(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(EXPIRE_CYCLE_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        shared.core.replica.snapshot_if_log_large().await;
        if !shared.view().local_is_active() {
            // Expiry is decided by the active and replicated as deletes; a mirror
            // never expires a key by itself.
            continue;
        }
        // CLIENT PAUSE WRITE holds expiry too: deletes are writes (Redis does the same).
        if shared.core.pause.holds(true) {
            continue;
        }
        let started = Instant::now();
        // Sessions whose window ran out and lock leases that ended: entries too.
        shared.core.expire_prims_due().await;
        loop {
            let removed = shared.core.expire_due().await;
            if removed < crate::limits::EXPIRE_KEYS_PER_ENTRY_MAX || started.elapsed().as_millis() > EXPIRE_CYCLE_BUDGET_MS {
                break;
            }
            tokio::task::yield_now().await;
        }
        shared.core.stats.latency_event("expire-cycle", started.elapsed(), crate::clock::wall_ms() / 1000);
    }
}

/// Deliberately broken safety, for proving that the verification harness catches
/// it (`tests/check.rs`): with `TANDEM_BREAK_SAFETY=stale-reads`, a server that is
/// not the active serves every read from its own state, as if READONLY, without
/// telling the client. Only debug builds read the variable; release builds cannot
/// be broken this way.
pub fn break_safety_stale_reads() -> bool {
    #[cfg(debug_assertions)]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            let on = std::env::var("TANDEM_BREAK_SAFETY").is_ok_and(|v| v == "stale-reads");
            if on {
                tracing::warn!(
                    "TANDEM_BREAK_SAFETY=stale-reads: mirrors serve stale reads as if they were current (a test of the checker)"
                );
            }
            on
        })
    }
    #[cfg(not(debug_assertions))]
    {
        false
    }
}

/// What `tandem server` needs to start serving clients.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub name: String,
    /// Every stripe of the array in config order, this server's among them.
    pub array: Vec<crate::replication::stripe::StripeLayout>,
    pub host: String,
    pub client_port: u16,
    /// The port for slot-routing clients, if the server has one.
    pub cluster_port: Option<u16>,
    /// The TLS port beside the client port, if the server has one, and the files
    /// its certificates come from.
    pub tls_port: Option<u16>,
    pub tls: crate::config::Tls,
    pub data_storage_bytes: u64,
    pub requirepass: Option<String>,
    /// `protected-mode` (`protected`), from `[cluster]`.
    pub protected_mode: bool,
    /// `aclfile` (see [`Settings::aclfile`]).
    pub aclfile: Option<String>,
    /// `cluster.client-reconnect-window` in ms: client sessions, and how long the
    /// stripe remembers a forwarded client's writes after its last one (`store::once`).
    pub client_reconnect_window_ms: u64,
    pub config_file: String,
    pub replica: ReplicaOptions,
    /// The management port (HTTP API, metrics, console); its port 0 turns it off.
    pub management: crate::management::ManagementOptions,
}

/// When the server speaks TLS (a tls-port, or `tls-cluster` on its cluster port):
/// loads the TLS files (a bad one stops the start, naming the field and the file),
/// binds the tls-port and reloads the certificates on SIGHUP.
async fn bind_tls(options: &ServerOptions) -> std::io::Result<Option<TlsListener>> {
    let cluster = options.tls.cluster && options.cluster_port.is_some();
    if options.tls_port.is_none() && !cluster {
        return Ok(None);
    }
    let acceptor = Arc::new(tls::TlsAcceptor::load(options.tls.clone()).map_err(|e| std::io::Error::other(e.to_string()))?);
    acceptor.reload_on_sighup()?;
    let listener = match options.tls_port {
        Some(port) => {
            let addr = format!("{}:{port}", options.host);
            let bound = TcpListener::bind(&addr).await;
            Some(bound.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on the tls-port {addr}: {e}")))?)
        }
        None => None,
    };
    tracing::info!(tls_port = ?options.tls_port, cluster_port_tls = cluster, auth_clients = ?options.tls.auth_clients, "TLS ready");
    Ok(Some(TlsListener { listener, cluster, acceptor }))
}

/// The RESP ports as bound, for the start-up check ([`warn_if_exposed`]).
fn exposures(
    options: &ServerOptions,
    client: &TcpListener,
    cluster: Option<&TcpListener>,
    tls: Option<&TlsListener>,
) -> Vec<protected::Exposure> {
    use protected::{Exposure, RespPort};
    let certificates = options.tls.auth_clients == crate::config::TlsAuthClients::Yes;
    let cluster_tls = tls.is_some_and(|t| t.cluster);
    let ports = [
        (Some(client), RespPort::Client, false),
        (cluster, RespPort::Cluster, cluster_tls && certificates),
        (tls.and_then(|t| t.listener.as_ref()), RespPort::Tls, certificates),
    ];
    ports
        .into_iter()
        .filter_map(|(listener, port, client_certificates)| {
            Some(Exposure { port, bound: listener?.local_addr().ok()?, client_certificates })
        })
        .collect()
}

/// Issue 15: one warning line per RESP port that other hosts can reach while the
/// `default` user has no password (`protected::exposure_warning` says when and what).
fn warn_if_exposed(shared: &Shared, options: &ServerOptions, exposures: &[protected::Exposure]) {
    if exposures.iter().all(|e| protected::is_loopback(e.bound.ip())) {
        return;
    }
    let aclfile = options.aclfile.as_ref().and_then(|path| std::fs::read_to_string(path).ok());
    let requirepass = shared.settings.requirepass();
    let open = protected::default_open(&shared.core.acl.users(), requirepass.as_deref(), aclfile.as_deref());
    let protected_mode = shared.settings.protected_mode();
    for exposure in exposures {
        if let Some(warning) = protected::exposure_warning(exposure, open, protected_mode) {
            tracing::warn!(server = %options.name, "{warning}");
        }
    }
}

/// Binds the client port and serves until `shutdown` turns true.
pub async fn run(options: ServerOptions, shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
    if let Some(file) = crate::clock::test_offset_file() {
        tracing::warn!(
            file = %file.display(),
            "TEST ONLY: {} is set: this server's wall clock is offset by the milliseconds in that file; never set it in production",
            crate::clock::TEST_CLOCK_OFFSET_FILE
        );
    }
    let addr = format!("{}:{}", options.host, options.client_port);
    let listener = TcpListener::bind(&addr).await.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let cluster_listener = match options.cluster_port {
        Some(port) => {
            let addr = format!("{}:{port}", options.host);
            let bound = TcpListener::bind(&addr).await;
            Some(bound.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on the cluster port {addr}: {e}")))?)
        }
        None => None,
    };
    let tls_listener = bind_tls(&options).await?;
    let exposures = exposures(&options, &listener, cluster_listener.as_ref(), tls_listener.as_ref());
    // Before the data loads, so that STARTING is visible on it.
    let management = crate::management::Management::start(options.management.clone()).await?;
    let mut settings =
        Settings::new(options.data_storage_bytes, options.client_port, &options.host, options.requirepass.clone(), &options.config_file);
    let (notice_tx, notice_rx) = tokio::sync::mpsc::unbounded_channel();
    let replica = Replica::start(options.replica.clone(), notice_tx).await.map_err(|e| std::io::Error::other(e.to_string()))?;
    let (block_tx, block_rx) = tokio::sync::mpsc::unbounded_channel();
    let blocker = Blocker::new(block_tx, Arc::default());
    // No keyspace events are built until notify-keyspace-events asks for them.
    // The encoding thresholds of the config file (CONFIG SET changes them later).
    {
        let mut store = replica.store.lock().unwrap_or_else(|e| e.into_inner());
        store.events_on = false;
        store.set_local(settings.local());
    }
    // Scripting: a lone server that never replays its log (the development topology)
    // may kill a write script as Redis does; anywhere else that would diverge.
    let lone = options.replica.layout.members.len() == 1 && options.replica.data_dir.is_none();
    let scripts = replica.store.lock().unwrap_or_else(|e| e.into_inner()).script_status();
    scripts.lone.store(lone, Ordering::Relaxed);
    settings.busy_reply_threshold_ms = scripts.busy_threshold_ms.clone();
    settings.aclfile = options.aclfile.clone();
    for (name, value) in tls_params::values(&options.tls) {
        let _ = settings.set(name, &value);
    }
    let _ = settings.set("protected-mode", if options.protected_mode { "yes" } else { "no" });
    settings.client_reconnect_window_ms.store(options.client_reconnect_window_ms, Ordering::Relaxed);
    settings.forward_token = options.replica.layout.secret.as_deref().map(crate::acl::forward_token);
    let shared = Arc::new(Shared::new(Core::new(replica), blocker, settings, &options.name, options.array.clone()));
    if let Some(tls) = &tls_listener {
        let _ = shared.tls.set(tls.acceptor.clone());
    }
    if let Some(management) = &management {
        management.attach(shared.clone());
    }
    let pump = tokio::spawn(blocking::run(shared.clone(), notice_rx, block_rx));
    let _ = shared.core.replica.group.array_fingerprint.set(array::fingerprint(&shared.array));
    // Other servers' PUBLISHes reach this server's subscribers, counted.
    {
        let weak = Arc::downgrade(&shared);
        let _ = shared.core.replica.group.publish_hook.set(Arc::new(move |channel: &[u8], message: &[u8], shard: bool| {
            weak.upgrade().map_or(0, |shared| shared.pubsub.deliver(channel, message, shard))
        }));
    }
    if let Some(path) = shared.settings.aclfile.clone() {
        tokio::spawn(cmd::acl_load_at_first_start(shared.clone(), path));
    }
    // PUBLISHes made on the stripe's other servers reach this server's subscribers.
    if let Some(mut published) = shared.core.replica.take_published() {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some((channel, message, shard)) = published.recv().await {
                shared.pubsub.deliver(&channel, &message, shard);
            }
        });
    }
    warn_if_exposed(&shared, &options, &exposures);
    if let Some(tls) = crate::replication::group_tls::installed().filter(|t| !t.without_tls_port.is_empty()) {
        tracing::warn!(
            server = %options.name,
            "tls-group is on, but {} have no tls-port: a mirror forwards its clients to such an active over its plain client port, commands and the array's forward token in clear; give every server a tls-port",
            tls.without_tls_port.join(", ")
        );
    }
    tracing::info!(
        server = %options.name,
        %addr,
        data_storage_bytes = options.data_storage_bytes,
        restartable = options.replica.data_dir.is_some(),
        "server ready to accept connections"
    );
    // `tandem stop` (or the stripe refusing this server) ends the server like a signal.
    let (stop_tx, stop_rx) = watch::channel(false);
    let refused = {
        let shared = shared.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let why = tokio::select! {
                why = shared.core.replica.stop_requested() => why,
                _ = shutdown.wait_for(|s| *s) => None,
            };
            let _ = stop_tx.send(true);
            // A script without end on a lone server must not hold the stop up (nor one
            // that starts while the server drains).
            let scripts = shared.core.scripts.clone();
            tokio::spawn(async move {
                loop {
                    scripts.stop_for_shutdown();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            why
        })
    };
    let served = serve(shared.clone(), listener, cluster_listener, tls_listener, stop_rx).await;
    if let Some(management) = management {
        management.stop().await;
    }
    shared.core.replica.shutdown().await;
    pump.abort();
    served?;
    match refused.await {
        Ok(Some(why)) => Err(std::io::Error::other(why)),
        _ => Ok(()),
    }
}
