//! The operator's procedures through the API: failover, stop and shutdown. They are
//! the CLI's own (`replication::control`), with the same safety rules; this file only
//! admits the caller ([`super::auth`], recording an ACL user's refusal in ACL LOG),
//! reads the body, and turns the outcome into a status code. Every call and every
//! refusal by the array is an event; a refused caller is not (anyone who reaches the
//! port could flood the ring), only a debug line and, for an ACL user, ACL LOG.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State as Extract};
use axum::http::HeaderMap;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::auth::{Admitted, Credentials, Procedure};
use super::error::ApiError;
use super::events::{record, EventKind};
use super::http::Caller;
use super::state::State;
use crate::replication::control::{self, ControlError};

/// Largest request body the API reads: procedures take a few fields.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverBody {
    /// The PASSIVE-STANDBY mirror to hand over to (default: the most caught up).
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    /// Stop an active even with no PASSIVE-STANDBY mirror (it stops the stripe).
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownBody {}

/// An optional JSON body: empty means the defaults.
pub fn json_body<T: DeserializeOwned + Default>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge(BODY_BYTES_MAX)
        } else {
            ApiError::BadRequest(format!("the body could not be read: {rejection}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("the body is not the JSON expected: {e}")))
}

/// Admits the caller of `procedure` ([`super::auth::Guard::admit`]) against this
/// server's stripe's ACL users; a user's failed login or refused command goes to ACL
/// LOG, as on the client port (context `toplevel`, the HTTP caller as client-info).
fn admit(state: &State, caller: &Caller, headers: &HeaderMap, procedure: Procedure) -> Result<Admitted, ApiError> {
    let server = state.server();
    let users = server.map(|shared| move |name: &[u8]| shared.core.acl.user(name, shared.settings.requirepass().as_deref()));
    let found = users.as_ref().map(|f| f as super::auth::UserLookup<'_>);
    let refused = match state.guard.admit(&Credentials::from_headers(headers), procedure, found) {
        Ok(admitted) => return Ok(admitted),
        Err(refused) => refused,
    };
    if let (Some(acl), Some(shared)) = (refused.acl, server) {
        let entry = crate::acl::log::Entry::new(acl.reason, "toplevel", acl.object, acl.username, caller.client_info(procedure.name()));
        shared.core.acl.record(entry, crate::clock::wall_ms(), shared.settings.acllog_max_len());
    }
    tracing::debug!(peer = %caller.peer, procedure = procedure.name(), error = %refused.error, "management procedure refused");
    Err(refused.error)
}

/// Who ran a procedure, for its event.
fn by(admitted: &Admitted) -> String {
    match admitted {
        Admitted::Token => "the management token".to_string(),
        Admitted::User(name) => format!("ACL user {name}"),
    }
}

fn outcome(procedure: &str, result: Result<String, ControlError>) -> Result<Json<serde_json::Value>, ApiError> {
    match result {
        Ok(message) => {
            record(EventKind::Procedure, None, None, format!("{procedure}: {message}"));
            Ok(Json(serde_json::json!({ "ok": true, "message": message })))
        }
        Err(e) => {
            // The member that refused records the refusal itself.
            record(EventKind::Procedure, None, None, format!("{procedure} refused: {e}"));
            Err(match e {
                ControlError::Refused(why) | ControlError::Usage(why) => ApiError::Refused(why),
            })
        }
    }
}

/// `POST /api/v1/stripes/{stripe}/failover`.
pub async fn failover(
    Extract(state): Extract<Arc<State>>,
    Path(stripe): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = by(&admit(&state, &caller, &headers, Procedure::Failover)?);
    let body: FailoverBody = json_body(body)?;
    if !state.layouts.iter().any(|l| l.stripe == stripe) {
        return Err(ApiError::UnknownStripe(stripe));
    }
    super::metrics::global().record_procedure("failover");
    let result = control::failover(&state.options.config, &stripe, body.to.as_deref()).await;
    outcome(&format!("failover of stripe {stripe} (by {who})"), result)
}

/// `POST /api/v1/servers/{server}/stop`.
pub async fn stop(
    Extract(state): Extract<Arc<State>>,
    Path(server): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = by(&admit(&state, &caller, &headers, Procedure::Stop)?);
    let body: StopBody = json_body(body)?;
    if super::peer::find(&state, &server).is_none() {
        return Err(ApiError::UnknownServer(server));
    }
    super::metrics::global().record_procedure("stop");
    let config = &state.options.config;
    // A server asked to stop itself answers before it is gone.
    let result = if server == state.me() {
        control::request_stop(config, &server, body.force).await
    } else {
        control::stop(config, &server, body.force).await
    };
    outcome(&format!("stop {server}{} (by {who})", if body.force { " (forced)" } else { "" }), result)
}

/// `POST /api/v1/shutdown`: the whole array, this server last.
pub async fn shutdown(
    Extract(state): Extract<Arc<State>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = by(&admit(&state, &caller, &headers, Procedure::Shutdown)?);
    let _: ShutdownBody = json_body(body)?;
    super::metrics::global().record_procedure("shutdown");
    record(EventKind::Procedure, None, None, format!("shutdown of the array asked (by {who})"));
    match control::shutdown_but_last(&state.options.config, Some(state.me())).await {
        Ok(lines) => Ok(Json(serde_json::json!({ "ok": true, "message": lines.join("; "), "stopped": lines }))),
        Err(e) => outcome("shutdown", Err(e)),
    }
}
