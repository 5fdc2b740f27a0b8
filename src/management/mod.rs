//! The management port (DESIGN.md §9): every server serves, on its `management-port`,
//! a versioned JSON API of the whole array (`/api/v1/…`, see `docs/api.md`), the
//! operator's procedures behind a token or an ACL user, `/healthz` and `/readyz` for
//! load balancers and orchestrators, Prometheus `/metrics`, and the web console with
//! its live feed — over HTTP, or HTTPS only with `tls-management`.
//!
//! It starts before the server loads its data (so `STARTING` is visible) and is
//! given the running server once it serves ([`Management::attach`]). Any server
//! answers for the whole array: it asks the others over the group port
//! ([`peer`]). It knows the rest of the server only through `server::Shared` and
//! `replication::group::Group`'s views; procedures are `replication::control`'s.
//!
//! - [`api`]: the route table and the read-only handlers.
//! - [`procedures`]: failover, stop, shutdown; [`auth`]: who may run them.
//! - [`peer`]: asking and answering the other servers; [`view`]: what is shown.
//! - [`state`]: this server's report, clients and live metrics.
//! - [`metrics`]: the registry and the hooks; [`events`]: the ring of recent events.
//! - [`live`]: the console's server-sent events; [`console`]: the embedded page.
//! - [`http`]: connections, their limits and HTTPS; [`error`]: errors as JSON.
//! - [`client`]: a small HTTP client for `tandem status --api`.

pub mod api;
pub mod auth;
pub mod client;
pub mod console;
pub mod error;
pub mod events;
pub mod http;
pub mod live;
pub mod metrics;
pub mod peer;
pub mod procedures;
pub mod state;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use state::ManagementOptions;
use state::State;

/// Waits until `stop` turns true (or its sender is gone), holding no borrow of it.
pub(crate) async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// With `tls-management`: the certificate and key of `[cluster]`'s `tls-*` files, no
/// client certificate asked (browsers and Prometheus connect), reloaded on SIGHUP. A
/// file that cannot be used stops the start, naming the field and the file.
fn load_tls(options: &ManagementOptions) -> std::io::Result<Option<Arc<crate::server::tls::TlsAcceptor>>> {
    let files = &options.config.cluster.tls;
    if !files.management {
        return Ok(None);
    }
    let files = crate::config::Tls { auth_clients: crate::config::TlsAuthClients::No, ..files.clone() };
    let acceptor = crate::server::tls::TlsAcceptor::load(files)
        .map_err(|e| std::io::Error::other(format!("management port (cluster.tls-management = true): {e}")))?;
    let acceptor = Arc::new(acceptor);
    acceptor.reload_on_sighup()?;
    Ok(Some(acceptor))
}

/// The running management port of this server.
pub struct Management {
    state: Arc<State>,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<()>,
}

impl Management {
    /// Binds the management port and serves it; `None` when the port is 0 (off).
    pub async fn start(options: ManagementOptions) -> std::io::Result<Option<Management>> {
        events::global().set_server(&options.name);
        if options.port == 0 {
            tracing::info!(server = %options.name, "management port off (management-port = 0)");
            return Ok(None);
        }
        let tls = load_tls(&options)?;
        let addr = format!("{}:{}", options.host, options.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on the management port {addr}: {e}")))?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let state = Arc::new(State::new(options, local_addr, stopped.clone()));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let served = tokio::spawn(http::serve(listener, api::router(state.clone()), tls, stopped));
        tokio::spawn(live::run(state.clone()));
        tracing::info!(server = %state.me(), console = %format!("{scheme}://{local_addr}/"), "management port listening (API, metrics, console)");
        Ok(Some(Management { state, stop, served }))
    }

    /// The server now serves: its state, clients and metrics become visible, and it
    /// answers other servers' management queries.
    pub fn attach(&self, shared: Arc<crate::server::Shared>) {
        let state = self.state.clone();
        let _ = shared.core.replica.group.management.set(Arc::new(move |query: &[u8]| peer::answer(&state, query)));
        self.state.attach(shared);
    }

    /// Stops serving, letting open requests finish within [`http::DRAIN_TIMEOUT`].
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(http::DRAIN_TIMEOUT + Duration::from_secs(1), self.served).await;
    }
}
