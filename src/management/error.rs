//! The management API's errors: typed here, rendered at the HTTP edge as a status
//! code and a JSON body `{"error": {"code": "...", "message": "..."}}`, so scripts
//! branch on the code and people read the message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no server or voter named {0:?} in this array")]
    UnknownServer(String),
    #[error("no stripe named {0:?} in this array")]
    UnknownStripe(String),
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    #[error("{0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("authentication required: send the cluster's management-token as `Authorization: Bearer <token>`, or an ACL user as `Authorization: Basic base64(user:password)`")]
    Unauthorized,
    /// HTTP Basic with a user and password that AUTH would refuse (WRONGPASS).
    #[error("invalid username-password pair or user is disabled")]
    WrongPassword,
    /// An ACL user that logged in but whose rules refuse the procedure's command.
    #[error("user {user:?} has no permissions to run the '{command}' command, which the {procedure} procedure needs")]
    NoPermission { user: String, command: String, procedure: &'static str },
    #[error("{0}")]
    Forbidden(String),
    /// A procedure the array refused, for the same reasons the CLI gives.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the request took longer than {0} s")]
    Timeout(u64),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownServer(_) | ApiError::UnknownStripe(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized | ApiError::WrongPassword => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::NoPermission { .. } => StatusCode::FORBIDDEN,
            ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// A stable name for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownServer(_) => "unknown_server",
            ApiError::UnknownStripe(_) => "unknown_stripe",
            ApiError::NoRoute(_) => "no_route",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::Unauthorized => "unauthorized",
            ApiError::WrongPassword => "wrong_password",
            ApiError::NoPermission { .. } => "no_permission",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Refused(_) => "refused",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout(_) => "timeout",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let mut response = (self.status(), Json(body)).into_response();
        // Basic is not offered in the challenge: a browser would ask its user and then
        // replay the password with every request to this origin, cross-site form posts
        // included. Scripts and tools send Basic without being asked.
        if matches!(self, ApiError::Unauthorized | ApiError::WrongPassword) {
            response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
