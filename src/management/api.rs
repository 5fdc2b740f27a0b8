//! The routes of the management port, in one table ([`ROUTES`]) that `docs/api.md` is
//! checked against, and the read-only handlers: health, readiness, metrics, the
//! array, its stripes, servers, clients and events. Procedures are in
//! [`super::procedures`], the live feed in [`super::live`], the console's files in
//! [`super::console`].

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::peer;
use super::state::State;
use super::view::{ServerReport, StripeView};
use crate::replication::stripe::ServerState;

/// One endpoint: method, path (axum's `{param}` syntax) and what it does.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
}

/// Every endpoint of the management port.
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/", summary: "the web console" },
    Route { method: "GET", path: "/console.js", summary: "the console's script" },
    Route { method: "GET", path: "/console.css", summary: "the console's style sheet" },
    Route { method: "GET", path: "/healthz", summary: "200 while the process runs" },
    Route {
        method: "GET",
        path: "/readyz",
        summary: "200 when this server can serve clients now (?role=active: only the active; ?role=mirror: only a mirror)",
    },
    Route { method: "GET", path: "/metrics", summary: "Prometheus metrics of this server" },
    Route { method: "GET", path: "/api/v1", summary: "this list of endpoints" },
    Route { method: "GET", path: "/api/v1/cluster", summary: "the whole array: stripes, slots, servers" },
    Route { method: "GET", path: "/api/v1/stripes", summary: "every stripe with its servers" },
    Route { method: "GET", path: "/api/v1/stripes/{stripe}", summary: "one stripe with its servers" },
    Route { method: "GET", path: "/api/v1/servers", summary: "every server and voter" },
    Route { method: "GET", path: "/api/v1/servers/{server}", summary: "one server or voter" },
    Route { method: "GET", path: "/api/v1/servers/{server}/clients", summary: "the clients connected to a server" },
    Route { method: "GET", path: "/api/v1/servers/{server}/events", summary: "a server's recent events (?since=seq&limit=n)" },
    Route { method: "GET", path: "/api/v1/events", summary: "recent events of every server (?limit=n)" },
    Route { method: "GET", path: "/api/v1/live", summary: "server-sent events: the array and its events, once a second" },
    Route { method: "POST", path: "/api/v1/stripes/{stripe}/failover", summary: "hand a stripe's leadership to a PASSIVE-STANDBY mirror" },
    Route {
        method: "POST",
        path: "/api/v1/servers/{server}/stop",
        summary: "stop a server or voter (body {\"force\": true} to stop a lone active)",
    },
    Route { method: "POST", path: "/api/v1/shutdown", summary: "stop the whole array: mirrors and voters first, then actives" },
];

/// Events an events endpoint returns unless asked for fewer.
const EVENTS_DEFAULT: usize = 100;

/// The management port's router.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(super::console::index))
        .route("/console.js", get(super::console::script))
        .route("/console.css", get(super::console::style))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1", get(index))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/stripes", get(stripes))
        .route("/api/v1/stripes/{stripe}", get(stripe))
        .route("/api/v1/servers", get(servers))
        .route("/api/v1/servers/{server}", get(server))
        .route("/api/v1/servers/{server}/clients", get(clients))
        .route("/api/v1/servers/{server}/events", get(server_events))
        .route("/api/v1/events", get(events))
        .route("/api/v1/live", get(super::live::handler))
        .route("/api/v1/stripes/{stripe}/failover", post(super::procedures::failover))
        .route("/api/v1/servers/{server}/stop", post(super::procedures::stop))
        .route("/api/v1/shutdown", post(super::procedures::shutdown))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(super::procedures::BODY_BYTES_MAX))
        .with_state(state)
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_string())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} {}", uri.path()))
}

async fn healthz(Extract(state): Extract<Arc<State>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "alive": true, "server": state.me(), "state": state.server_state().name() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadyQuery {
    role: Option<String>,
}

/// 200 when this server serves clients now: the active (with its quorum), or a
/// PASSIVE-STANDBY mirror, which knows its active and forwards to it — also while
/// it waits out an election its clients' requests wait out too. `?role=active`
/// asks for the active only; `?role=mirror` for a mirror only — a load balancer that
/// sends clients to mirrors gives them failover without an error or a duplicate
/// (their writes in flight go to the new active, tagged: DESIGN.md §6).
async fn readyz(Extract(state): Extract<Arc<State>>, query: Result<Query<ReadyQuery>, QueryRejection>) -> Response {
    let (active_ok, mirror_ok) = match query {
        Ok(Query(ReadyQuery { role: None })) => (true, true),
        Ok(Query(ReadyQuery { role: Some(role) })) if role == "active" => (true, false),
        Ok(Query(ReadyQuery { role: Some(role) })) if role == "mirror" => (false, true),
        Ok(Query(ReadyQuery { role: Some(role) })) => {
            return ApiError::BadRequest(format!("role must be \"active\" or \"mirror\" (or left out), not {role:?}")).into_response()
        }
        Err(e) => return ApiError::BadRequest(e.body_text()).into_response(),
    };
    let now = state.server_state();
    let ready = (active_ok && now == ServerState::ActiveCoordinator) || (mirror_ok && state.serves_as_mirror());
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({ "ready": ready, "server": state.me(), "state": now.name(), "light": now.light() }))).into_response()
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), else the classic text format.
async fn metrics(Extract(state): Extract<Arc<State>>, headers: axum::http::HeaderMap) -> Response {
    let live = state.live_metrics();
    let text = super::metrics::global().render(&live.registry);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("application/openmetrics-text") {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], super::metrics::to_prometheus_text(&text)).into_response()
    }
}

async fn index() -> Json<serde_json::Value> {
    let routes: Vec<serde_json::Value> =
        ROUTES.iter().map(|r| serde_json::json!({ "method": r.method, "path": r.path, "summary": r.summary })).collect();
    Json(serde_json::json!({ "version": "v1", "routes": routes }))
}

async fn cluster(Extract(state): Extract<Arc<State>>) -> Json<super::view::ClusterView> {
    Json(peer::cluster(&state).await)
}

async fn stripes(Extract(state): Extract<Arc<State>>) -> Json<Vec<StripeView>> {
    Json(peer::cluster(&state).await.stripes)
}

async fn stripe(Extract(state): Extract<Arc<State>>, Path(name): Path<String>) -> Result<Json<StripeView>, ApiError> {
    peer::one_stripe(&state, &name).await.map(Json).ok_or(ApiError::UnknownStripe(name))
}

async fn servers(Extract(state): Extract<Arc<State>>) -> Json<Vec<ServerReport>> {
    Json(peer::cluster(&state).await.stripes.into_iter().flat_map(|s| s.servers).collect())
}

async fn server(Extract(state): Extract<Arc<State>>, Path(name): Path<String>) -> Result<Json<ServerReport>, ApiError> {
    // The whole stripe is asked: a member's lag is known only to its active.
    let (layout, _) = peer::find(&state, &name).ok_or_else(|| ApiError::UnknownServer(name.clone()))?;
    let stripe = peer::one_stripe(&state, &layout.stripe).await.ok_or_else(|| ApiError::UnknownServer(name.clone()))?;
    stripe.servers.into_iter().find(|s| s.name == name).map(Json).ok_or(ApiError::UnknownServer(name))
}

async fn clients(Extract(state): Extract<Arc<State>>, Path(name): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let (layout, member) = peer::find(&state, &name).ok_or_else(|| ApiError::UnknownServer(name.clone()))?;
    if member.is_voter() {
        return Err(ApiError::BadRequest(format!("{name} is a voter: it has no clients")));
    }
    let list = peer::clients(&state, layout, member).await.map_err(|why| ApiError::Unavailable(format!("{name}: {why}")))?;
    Ok(Json(serde_json::json!({ "server": name, "clients": list })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

fn events_query(query: Result<Query<EventsQuery>, QueryRejection>) -> Result<(u64, usize), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok((q.since.unwrap_or(0), q.limit.unwrap_or(EVENTS_DEFAULT).min(super::events::EVENTS_MAX)))
}

async fn server_events(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (since, limit) = events_query(query)?;
    let (layout, member) = peer::find(&state, &name).ok_or_else(|| ApiError::UnknownServer(name.clone()))?;
    let list = peer::events(&state, layout, member, since, limit).await.map_err(|why| ApiError::Unavailable(format!("{name}: {why}")))?;
    Ok(Json(serde_json::json!({ "server": name, "events": list })))
}

async fn events(
    Extract(state): Extract<Arc<State>>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (_, limit) = events_query(query)?;
    Ok(Json(serde_json::json!({ "events": peer::all_events(&state, limit).await })))
}
