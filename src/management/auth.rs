//! Who may run procedures (stop, failover, shutdown) through the management API: a
//! caller presenting the cluster's `management-token` as a bearer token, and never on
//! a plain-HTTP port bound beyond loopback unless `management-allow-plain-http` says
//! so (the token would cross the network in clear). Reading the API needs nothing.
//!
//! The one place procedures are admitted: when TLS and ACL users arrive (the security
//! issue), [`Credentials`] gains an ACL user and [`admit`] learns HTTPS.

use std::net::IpAddr;

use axum::http::HeaderMap;

use super::error::ApiError;

/// What a caller presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Bearer(String),
}

impl Credentials {
    pub fn from_headers(headers: &HeaderMap) -> Credentials {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Credentials::None;
        };
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Credentials::Bearer(token.trim().to_string()),
            _ => Credentials::None,
        }
    }
}

/// How procedures are guarded on this server.
#[derive(Debug, Clone)]
pub struct Guard {
    pub token: Option<String>,
    pub allow_plain_http: bool,
    /// The address the management port is bound to.
    pub bound: IpAddr,
}

impl Guard {
    /// Ok if `credentials` may run a procedure here.
    pub fn admit(&self, credentials: &Credentials) -> Result<(), ApiError> {
        if !self.bound.is_loopback() && !self.allow_plain_http {
            return Err(ApiError::Forbidden(format!(
                "procedures are refused on a plain-HTTP management port bound beyond loopback ({}): the token would cross the network in clear; use the CLI, or set cluster.management-allow-plain-http = true",
                self.bound
            )));
        }
        let Some(token) = &self.token else {
            return Err(ApiError::Forbidden(
                "procedures over HTTP are off: the config has no cluster.management-token (the CLI still runs them)".into(),
            ));
        };
        match credentials {
            Credentials::Bearer(given) if equal_in_constant_time(given.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// Compares without stopping at the first difference, so the time taken tells an
/// attacker nothing about how much of a guess was right.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bound: &str, token: Option<&str>, allow: bool) -> Guard {
        Guard { token: token.map(str::to_string), allow_plain_http: allow, bound: bound.parse().unwrap() }
    }

    #[test]
    fn procedures_need_the_token_and_loopback_or_permission() {
        let right = Credentials::Bearer("0123456789abcdef".into());
        let wrong = Credentials::Bearer("0123456789abcdeX".into());
        let loopback = guard("127.0.0.5", Some("0123456789abcdef"), false);
        assert!(loopback.admit(&right).is_ok());
        assert!(matches!(loopback.admit(&wrong), Err(ApiError::Unauthorized)));
        assert!(matches!(loopback.admit(&Credentials::None), Err(ApiError::Unauthorized)));
        let public = guard("10.1.2.3", Some("0123456789abcdef"), false);
        assert!(matches!(public.admit(&right), Err(ApiError::Forbidden(_))));
        assert!(guard("10.1.2.3", Some("0123456789abcdef"), true).admit(&right).is_ok());
        assert!(matches!(guard("127.0.0.1", None, false).admit(&right), Err(ApiError::Forbidden(_))));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(Credentials::from_headers(&headers), Credentials::None);
        headers.insert(axum::http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(Credentials::from_headers(&headers), Credentials::Bearer("abc".into()));
        headers.insert(axum::http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(Credentials::from_headers(&headers), Credentials::None);
    }
}
