//! The management port's connections: hyper's HTTP/1.1 under our own accept loop, so
//! that every limit is ours — connections at once, time for the TLS handshake, time to
//! send the headers, time to send the body, body size, time to answer — and a slow or
//! hostile HTTP client costs one connection's slot, never the server's clients (they
//! are served elsewhere). With `tls-management` the port speaks HTTPS only: the
//! handshake happens inside the connection's task, bounded in time, and anything
//! else (plain HTTP included) is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::error::ApiError;
use super::procedures::BODY_BYTES_MAX;
use crate::server::tls::TlsAcceptor;

/// Management connections open at once; more are closed as they arrive.
pub const CONNECTIONS_MAX: usize = 256;
/// A client must send its request line and headers within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// And its body within this.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a request may take to answer: a stop hands leadership over and then
/// waits (up to 30 s) for the server to be gone.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// On shutdown, open requests get this long to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Who is at the other end of a management connection, and over what: in every
/// request's extensions, for the procedures' guard and what ACL LOG records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
}

impl Caller {
    /// ACL LOG's client-info for a procedure asked by this caller.
    pub fn client_info(&self, procedure: &str) -> String {
        let transport = if self.https { "https" } else { "http" };
        format!("addr={} laddr={} transport={transport} procedure={procedure}", self.peer, self.local)
    }
}

/// Serves `router` on `listener` (HTTPS when `tls` is given) until `shutdown` turns
/// true, then lets open requests finish (within [`DRAIN_TIMEOUT`]).
pub async fn serve(listener: TcpListener, router: Router, tls: Option<Arc<TlsAcceptor>>, mut shutdown: watch::Receiver<bool>) {
    let router = router.layer(axum::middleware::from_fn(limits));
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "management port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = super::until_stopped(&mut shutdown) => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "management port: {CONNECTIONS_MAX} connections open; refused one");
            continue;
        };
        let Ok(local) = stream.local_addr() else { continue };
        let caller = Caller { peer, local, https: tls.is_some() };
        let (router, tls, shutdown) = (router.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(stream, router, caller, shutdown).await,
                Some(tls) => {
                    if let Some(stream) = handshake(&tls, stream, peer).await {
                        serve_connection(stream, router, caller, shutdown).await;
                    }
                }
            }
        });
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async { while connections.join_next().await.is_some() {} }).await;
    connections.abort_all();
}

/// The TLS handshake, with the certificate in use now (reloaded on SIGHUP), bounded
/// by `TLS_HANDSHAKE_MS_MAX`. Plain HTTP, garbage or a stall ends this socket only.
async fn handshake(tls: &TlsAcceptor, socket: TcpStream, peer: SocketAddr) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accepting = tokio_rustls::TlsAcceptor::from(tls.current_config()).accept(socket);
    match tokio::time::timeout(Duration::from_millis(crate::limits::TLS_HANDSHAKE_MS_MAX), accepting).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "management port: TLS handshake failed (plain HTTP to the HTTPS port?); connection closed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, timeout_ms = crate::limits::TLS_HANDSHAKE_MS_MAX, "management port: TLS handshake timed out; connection closed");
            None
        }
    }
}

/// HTTP/1.1 on one connection (plain or after the handshake), every request tagged
/// with its [`Caller`]; on shutdown, the request in progress gets [`DRAIN_TIMEOUT`].
async fn serve_connection<I>(io: I, router: Router, caller: Caller, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tagged = router.map_request(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(caller);
        request
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(tagged));
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = super::until_stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, connection).await;
        }
    }
}

/// Reads the body within its time and size limits, then answers within
/// [`REQUEST_TIMEOUT`]; each limit that is hit is a JSON error.
async fn limits(request: Request, next: Next) -> Response {
    let declared =
        request.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_BYTES_MAX as u64) {
        return ApiError::BodyTooLarge(BODY_BYTES_MAX).into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, BODY_BYTES_MAX)).await {
        Err(_) => return ApiError::Timeout(BODY_READ_TIMEOUT.as_secs()).into_response(),
        // Over the limit (a chunked body), or the client went away mid-body.
        Ok(Err(_)) => return ApiError::BodyTooLarge(BODY_BYTES_MAX).into_response(),
        Ok(Ok(bytes)) => bytes,
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(REQUEST_TIMEOUT.as_secs()).into_response(),
    }
}
