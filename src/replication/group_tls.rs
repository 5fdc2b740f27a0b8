//! Mutual TLS on the group ports (`[cluster] tls-group = true`): every connection
//! between members, and from the CLI, is a TLS session in which both ends present a
//! certificate from the cluster's CA (`tls-ca-cert-file`). The cluster-secret
//! handshake of [`super::transport`] then runs inside it, unchanged: TLS decides who
//! may speak at all and keeps the traffic private and whole; the secret still proves
//! cluster, stripe and node.
//!
//! A process has one config, so the loaded certificates are installed once for the
//! process ([`install`]) and every [`Identity`](super::transport::Identity) made from a
//! stripe's layout carries them. SIGHUP reloads them on a member that serves a group
//! port; sessions already open keep theirs.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use crate::config::{Config, Tls};
use crate::server::tls::{group_client_config, group_server_config, TlsError};

/// A group connection: plain TCP, or TLS when `tls-group` is set (the client port's
/// stream type, which holds either side of a TLS session).
pub use crate::server::stream::ClientStream as GroupStream;

/// The certificates of this process's group connections.
pub struct GroupTls {
    files: Tls,
    /// Each server's client address (`host:client-port`) and its `tls-port` address:
    /// a mirror forwards its clients to the active over the active's tls-port when it
    /// has one ([`GroupTls::forward_addr`]).
    tls_ports: HashMap<String, String>,
    /// Servers of the array with no tls-port: forwarding to them is plain TCP.
    pub without_tls_port: Vec<String>,
    // std RwLocks: held only to clone or swap an Arc, never across an await.
    server: RwLock<Arc<ServerConfig>>,
    client: RwLock<Arc<ClientConfig>>,
    /// When a refusal was last logged, per peer address: a member retries a peer many
    /// times a second, and one line every [`LOG_EVERY`] says it.
    logged: Mutex<HashMap<String, Instant>>,
}

/// How often the same peer's TLS refusal is logged again.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Addresses whose last refusal is remembered at once.
const LOGGED_PEERS_MAX: usize = 1024;

static INSTALLED: OnceLock<Arc<GroupTls>> = OnceLock::new();

/// Loads the group certificates when `config` asks for `tls-group`; a file that cannot
/// be used stops the start, naming the field and the file.
pub fn install(config: &Config) -> Result<(), TlsError> {
    if !config.cluster.tls.group || INSTALLED.get().is_some() {
        return Ok(());
    }
    let mut tls = GroupTls::load(&config.cluster.tls)?;
    for server in config.stripes.iter().flat_map(|s| &s.servers) {
        match server.tls_port {
            Some(port) => {
                tls.tls_ports.insert(format!("{}:{}", server.host, server.client_port), format!("{}:{port}", server.host));
            }
            None => tls.without_tls_port.push(server.name.clone()),
        }
    }
    let _ = INSTALLED.set(Arc::new(tls));
    Ok(())
}

/// The group certificates of this process, if it uses TLS on group ports.
pub fn installed() -> Option<Arc<GroupTls>> {
    INSTALLED.get().cloned()
}

impl GroupTls {
    pub fn load(files: &Tls) -> Result<GroupTls, TlsError> {
        Ok(GroupTls {
            files: files.clone(),
            tls_ports: HashMap::new(),
            without_tls_port: Vec::new(),
            server: RwLock::new(group_server_config(files)?),
            client: RwLock::new(group_client_config(files)?),
            logged: Mutex::new(HashMap::new()),
        })
    }

    /// Where to forward to the server whose client address is `client_addr`: its
    /// tls-port, or `None` when it has none (then its plain client port).
    pub fn forward_addr(&self, client_addr: &str) -> Option<&str> {
        self.tls_ports.get(client_addr).map(String::as_str)
    }

    /// A connection to another server's client port, for forwarding: over TLS with this
    /// member's certificate to its tls-port when group ports use TLS and it has one,
    /// else plain TCP to `client_addr`. Bounded by `within`.
    pub async fn connect_to_server(client_addr: &str, within: Duration) -> io::Result<GroupStream> {
        let tls = installed();
        let target = tls.as_ref().and_then(|t| t.forward_addr(client_addr)).unwrap_or(client_addr).to_string();
        let connecting = async {
            let socket = TcpStream::connect(&target).await?;
            socket.set_nodelay(true)?;
            match &tls {
                Some(tls) if target != client_addr => tls.connect(socket, &target).await,
                _ => Ok(GroupStream::Plain(socket)),
            }
        };
        tokio::time::timeout(within, connecting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {target} timed out")))?
    }

    /// Reads the files again; on error the certificates in use stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (server, client) = (group_server_config(&self.files)?, group_client_config(&self.files)?);
        *self.server.write().unwrap_or_else(|e| e.into_inner()) = server;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
        Ok(())
    }

    /// Reloads on every SIGHUP for the life of the process.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("group port: cannot listen for SIGHUP; TLS certificates are reloaded only by a restart");
            return;
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(tls) = weak.upgrade() else { return };
                match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: group-port TLS certificates reloaded; new connections use them"),
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: group-port TLS certificates not reloaded; the previous ones stay in use")
                    }
                }
            }
        });
    }

    /// The calling side's TLS handshake with the member at `addr` (host:port).
    pub async fn connect(&self, socket: TcpStream, addr: &str) -> io::Result<GroupStream> {
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host).trim_start_matches('[').trim_end_matches(']');
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host} is not a host name TLS can use: {e}")))?,
        };
        let config = self.client.read().unwrap_or_else(|e| e.into_inner()).clone();
        match tokio_rustls::TlsConnector::from(config).connect(name, socket).await {
            Ok(stream) => Ok(GroupStream::Tls(Box::new(TlsStream::Client(stream)))),
            Err(e) => Err(self.refused(addr, e)),
        }
    }

    /// The accepting side's TLS handshake with a caller at `peer`.
    pub async fn accept(&self, socket: TcpStream, peer: std::net::SocketAddr) -> io::Result<GroupStream> {
        let config = self.server.read().unwrap_or_else(|e| e.into_inner()).clone();
        match tokio_rustls::TlsAcceptor::from(config).accept(socket).await {
            Ok(stream) => Ok(GroupStream::Tls(Box::new(TlsStream::Server(stream)))),
            // Logged per address, not per connection: a caller's ports change with
            // every connection.
            Err(e) => Err(self.refused(&peer.ip().to_string(), e)),
        }
    }

    /// A failed handshake as an error that says what to fix, logged as a warning (at
    /// most once per [`LOG_EVERY`] for one peer).
    fn refused(&self, peer: &str, e: io::Error) -> io::Error {
        let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let why = match tls {
            Some(rustls::Error::InvalidCertificate(c)) => {
                format!("the peer's certificate is refused ({c:?}): a member's certificate must chain to cluster.tls-ca-cert-file")
            }
            Some(rustls::Error::NoCertificatesPresented) => {
                "the peer presented no certificate: group ports need mutual TLS (is tls-group set on every member?)".to_string()
            }
            Some(rustls::Error::AlertReceived(alert)) => format!(
                "the peer refused this member's TLS session ({alert:?}): this member's certificate must chain to the CA in the peer's cluster.tls-ca-cert-file"
            ),
            Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
                "the peer does not speak TLS: is tls-group set on every member?".to_string()
            }
            Some(other) => format!("TLS: {other}"),
            None => format!("TLS handshake: {e}"),
        };
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let due = logged.get(peer).is_none_or(|at| now.duration_since(*at) >= LOG_EVERY);
        if due && tls.is_some() {
            if logged.len() >= LOGGED_PEERS_MAX {
                logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
            }
            // Past the bound (that many addresses refused within LOG_EVERY), refusals
            // go unlogged until the oldest expire.
            if logged.len() < LOGGED_PEERS_MAX {
                logged.insert(peer.to_string(), now);
                tracing::warn!(%peer, "group port: TLS refused: {why}");
            }
        }
        io::Error::new(io::ErrorKind::PermissionDenied, why)
    }
}
