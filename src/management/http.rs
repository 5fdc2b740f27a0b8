//! The management port's connections: hyper's HTTP/1.1 under our own accept loop, so
//! that every limit is ours — connections at once, time to send the headers, time to
//! send the body, body size, time to answer — and a slow or hostile HTTP client costs
//! one connection's slot, never the server's clients (they are served elsewhere).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::error::ApiError;
use super::procedures::BODY_BYTES_MAX;

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

/// Serves `router` on `listener` until `shutdown` turns true, then lets open
/// requests finish (within [`DRAIN_TIMEOUT`]).
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
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
        let service = TowerToHyperService::new(router.clone());
        let mut shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = super::until_stopped(&mut shutdown) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, connection).await;
                }
            }
        });
    }
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async { while connections.join_next().await.is_some() {} }).await;
    connections.abort_all();
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
