//! Who may run procedures (stop, failover, shutdown) through the management API: a
//! caller presenting the cluster's `management-token` as a bearer token, or an ACL
//! user of this server's stripe by HTTP Basic (`Authorization: Basic
//! base64(user:password)`), logged in exactly as AUTH would log it in (on/off, nopass,
//! passwords) and allowed by its rules to run the Redis command the procedure
//! corresponds to ([`Procedure::command`]). Reading the API needs nothing.
//!
//! On a plain-HTTP port bound beyond loopback procedures are refused unless
//! `management-allow-plain-http` says so: a token or a password would cross the
//! network in clear. Over HTTPS (`tls-management`) they are admitted wherever the port
//! is bound. The one place procedures are admitted; it decides, and says what ACL LOG
//! should record of a refusal — recording it is the caller's (it knows the connection).

use std::net::IpAddr;

use axum::http::HeaderMap;
use base64::Engine;
use bytes::Bytes;

use super::error::ApiError;
use crate::acl::User;

/// What a caller presented. Its `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Bearer(String),
    /// An ACL user and its password, as bytes: ACL names and passwords need not be UTF-8.
    Basic {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    /// `Basic` with something that is not base64 of `user:password`.
    Malformed,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Bearer(_) => f.write_str("Bearer(<token>)"),
            Credentials::Basic { user, .. } => write!(f, "Basic({:?}, <password>)", String::from_utf8_lossy(user)),
            Credentials::Malformed => f.write_str("Malformed"),
        }
    }
}

impl Credentials {
    pub fn from_headers(headers: &HeaderMap) -> Credentials {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Credentials::None;
        };
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Credentials::Bearer(token.trim().to_string()),
            Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => Credentials::basic(encoded.trim()),
            _ => Credentials::None,
        }
    }

    /// RFC 7617: base64 of `user:password`, split at the first colon (a user id has none).
    fn basic(encoded: &str) -> Credentials {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else { return Credentials::Malformed };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else { return Credentials::Malformed };
        let (user, password) = decoded.split_at(colon);
        Credentials::Basic { user: user.to_vec(), password: password.get(1..).unwrap_or_default().to_vec() }
    }
}

/// The procedures, each admitted against one Redis command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Procedure {
    Failover,
    Stop,
    Shutdown,
}

impl Procedure {
    pub fn name(self) -> &'static str {
        match self {
            Procedure::Failover => "failover",
            Procedure::Stop => "stop",
            Procedure::Shutdown => "shutdown",
        }
    }

    /// The command (with its subcommand) an ACL user must be allowed to run to run
    /// this procedure. Stopping a server is what SHUTDOWN does on the client port (it
    /// is `tandem stop` of that server), and the array's shutdown is a SHUTDOWN of each.
    /// Handing a stripe's leadership to a mirror is CLUSTER FAILOVER: clients see the
    /// array as a Redis Cluster, and Redis refuses its standalone FAILOVER in cluster
    /// mode. So `+@admin`, `+shutdown` or `+cluster|failover` grant them.
    pub fn command(self) -> &'static [&'static str] {
        match self {
            Procedure::Failover => &["cluster", "failover"],
            Procedure::Stop | Procedure::Shutdown => &["shutdown"],
        }
    }
}

/// Who was admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Token,
    User(String),
}

/// What ACL LOG records of a refusal: Redis's reason (`auth` or `command`), the
/// object (`AUTH` for a failed login, as Redis records the command that tried; the
/// refused command's ACL name) and the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRefusal {
    pub reason: &'static str,
    pub object: String,
    pub username: String,
}

/// A refused caller: the error to answer, and what ACL LOG should record, if anything
/// (boxed: refusals are rare, and keep the `Result` small).
#[derive(Debug)]
pub struct Refused {
    pub error: ApiError,
    pub acl: Option<Box<AclRefusal>>,
}

/// Finds an ACL user of this server's stripe by name.
pub type UserLookup<'a> = &'a dyn Fn(&[u8]) -> Option<User>;

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Refused {
        Refused { error, acl: None }
    }
}

/// How procedures are guarded on this server.
#[derive(Clone)]
pub struct Guard {
    pub token: Option<String>,
    pub allow_plain_http: bool,
    /// The address the management port is bound to.
    pub bound: IpAddr,
    /// The port speaks HTTPS (`tls-management`).
    pub https: bool,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        let token = if self.token.is_some() { "set" } else { "none" };
        write!(f, "Guard(token {token}, allow_plain_http {}, bound {}, https {})", self.allow_plain_http, self.bound, self.https)
    }
}

impl Guard {
    /// Ok if `credentials` may run `procedure` here. `users` finds an ACL user of this
    /// server's stripe by name; `None` while the server has not loaded its data (its
    /// users are not known yet).
    pub fn admit(&self, credentials: &Credentials, procedure: Procedure, users: Option<UserLookup<'_>>) -> Result<Admitted, Refused> {
        if !self.https && !self.bound.is_loopback() && !self.allow_plain_http {
            return Err(ApiError::Forbidden(format!(
                "procedures are refused on a plain-HTTP management port bound beyond loopback ({}): credentials would cross the network in clear; set cluster.tls-management = true (HTTPS), use the CLI, or set cluster.management-allow-plain-http = true",
                self.bound
            ))
            .into());
        }
        match credentials {
            Credentials::None | Credentials::Malformed => Err(ApiError::Unauthorized.into()),
            Credentials::Bearer(given) => {
                let Some(token) = &self.token else {
                    return Err(ApiError::Forbidden(
                        "bearer tokens are off: the config has no cluster.management-token (log in as an ACL user with Basic, or use the CLI)".into(),
                    )
                    .into());
                };
                match equal_in_constant_time(given.as_bytes(), token.as_bytes()) {
                    true => Ok(Admitted::Token),
                    false => Err(ApiError::Unauthorized.into()),
                }
            }
            Credentials::Basic { user, password } => {
                let Some(users) = users else {
                    return Err(ApiError::Unavailable(
                        "this server has not loaded its data yet, so its ACL users are not known: try again soon, or use the management-token".into(),
                    )
                    .into());
                };
                let name = String::from_utf8_lossy(user).into_owned();
                let found = users(user).filter(|u| u.password_ok(password));
                // A user without a password (`nopass`, as `default` is with no
                // requirepass) proves nothing: anyone could present it, from any host
                // the port reaches. Procedures need a user with a password, or the token.
                if found.as_ref().is_some_and(|u| u.nopass) {
                    let acl = AclRefusal { reason: "auth", object: "AUTH".into(), username: name.clone() };
                    let why = format!(
                        "user {name:?} has no password (nopass): procedures need an ACL user with a password, or the management-token"
                    );
                    return Err(Refused { error: ApiError::Forbidden(why), acl: Some(Box::new(acl)) });
                }
                let Some(found) = found else {
                    let acl = AclRefusal { reason: "auth", object: "AUTH".into(), username: name };
                    return Err(Refused { error: ApiError::WrongPassword, acl: Some(Box::new(acl)) });
                };
                match allowed(&found, procedure) {
                    Ok(()) => Ok(Admitted::User(name)),
                    Err((reason, command)) => {
                        let error = ApiError::NoPermission { user: name.clone(), command: command.clone(), procedure: procedure.name() };
                        Err(Refused { error, acl: Some(Box::new(AclRefusal { reason, object: command, username: name })) })
                    }
                }
            }
        }
    }
}

/// Whether `user`'s rules allow the procedure's command, by the check every request
/// on the client port passes (`acl::check`). Else Redis's reason and the command's ACL
/// name (`shutdown`, `cluster|failover`).
fn allowed(user: &User, procedure: Procedure) -> Result<(), (&'static str, String)> {
    let args: Vec<Bytes> = procedure.command().iter().map(|w| Bytes::from_static(w.as_bytes())).collect();
    let Some(spec) = crate::commands::resolve(&args) else {
        // Both commands are in the table (a unit test says so); refuse if one is not.
        debug_assert!(false, "{:?} names no command", procedure.command());
        return Err(("command", procedure.command().join("|")));
    };
    crate::acl::check(user, spec, &args).map_err(|denied| (denied.reason(), crate::acl::command_name(spec, &args)))
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
        Guard { token: token.map(str::to_string), allow_plain_http: allow, bound: bound.parse().unwrap(), https: false }
    }

    fn user(rules: &str) -> User {
        let mut u = User::new("alice");
        let rules: Vec<&[u8]> = rules.split(' ').map(str::as_bytes).collect();
        u.apply_all(&rules).expect("rules");
        u
    }

    fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic { user: user.into(), password: password.into() }
    }

    #[test]
    fn procedures_need_the_token_and_loopback_or_permission() {
        let right = Credentials::Bearer("0123456789abcdef".into());
        let wrong = Credentials::Bearer("0123456789abcdeX".into());
        let admit = |g: &Guard, c: &Credentials| g.admit(c, Procedure::Stop, None).map_err(|r| r.error);
        let loopback = guard("127.0.0.5", Some("0123456789abcdef"), false);
        assert_eq!(admit(&loopback, &right).ok(), Some(Admitted::Token));
        assert!(matches!(admit(&loopback, &wrong), Err(ApiError::Unauthorized)));
        assert!(matches!(admit(&loopback, &Credentials::None), Err(ApiError::Unauthorized)));
        let public = guard("10.1.2.3", Some("0123456789abcdef"), false);
        assert!(matches!(admit(&public, &right), Err(ApiError::Forbidden(_))));
        assert!(admit(&guard("10.1.2.3", Some("0123456789abcdef"), true), &right).is_ok());
        assert!(admit(&Guard { https: true, ..public }, &right).is_ok(), "over HTTPS the credentials do not cross in clear");
        assert!(matches!(admit(&guard("127.0.0.1", None, false), &right), Err(ApiError::Forbidden(_))));
    }

    #[test]
    fn acl_users_log_in_as_auth_would_and_need_the_procedures_command() {
        let g = guard("127.0.0.1", None, false);
        let admin = user("on >pw +@admin");
        let operator = user("on >pw +shutdown");
        let reader = user("on >pw +@read");
        let off = user("off >pw +@all");
        let open = user("on nopass +@all");
        let admit = |u: &User, c: &Credentials, p: Procedure| {
            let found = |name: &[u8]| (name == b"alice").then(|| u.clone());
            g.admit(c, p, Some(&found))
        };
        assert_eq!(admit(&admin, &basic("alice", "pw"), Procedure::Failover).ok(), Some(Admitted::User("alice".into())));
        assert!(admit(&operator, &basic("alice", "pw"), Procedure::Stop).is_ok());
        let refused = admit(&open, &basic("alice", "anything"), Procedure::Shutdown).expect_err("nopass proves nothing");
        assert!(matches!(&refused.error, ApiError::Forbidden(why) if why.contains("no password")), "{:?}", refused.error);
        assert_eq!(refused.acl.map(|a| (a.reason, a.object)), Some(("auth", "AUTH".to_string())));
        for (who, credentials) in [(&admin, basic("alice", "nope")), (&admin, basic("bob", "pw")), (&off, basic("alice", "pw"))] {
            let refused = admit(who, &credentials, Procedure::Stop).expect_err("refused");
            assert!(matches!(refused.error, ApiError::WrongPassword), "{:?}", refused.error);
            assert_eq!(refused.acl.map(|a| (a.reason, a.object)), Some(("auth", "AUTH".to_string())));
        }
        let refused = admit(&operator, &basic("alice", "pw"), Procedure::Failover).expect_err("no cluster|failover");
        assert!(matches!(refused.error, ApiError::NoPermission { .. }), "{:?}", refused.error);
        assert_eq!(refused.acl.map(|a| (a.reason, a.object, a.username)), Some(("command", "cluster|failover".into(), "alice".into())));
        let refused = admit(&reader, &basic("alice", "pw"), Procedure::Shutdown).expect_err("no shutdown");
        assert_eq!(refused.acl.map(|a| a.object), Some("shutdown".to_string()));
        assert!(admit(&user("on >pw +@all -cluster|failover"), &basic("alice", "pw"), Procedure::Stop).is_ok());
        assert!(admit(&user("on >pw +@all -cluster|failover"), &basic("alice", "pw"), Procedure::Failover).is_err());
        let starting = g.admit(&basic("alice", "pw"), Procedure::Stop, None).expect_err("users not known yet");
        assert!(matches!(starting.error, ApiError::Unavailable(_)));
    }

    #[test]
    fn credentials_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(Credentials::from_headers(&headers), Credentials::None);
        headers.insert(axum::http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(Credentials::from_headers(&headers), Credentials::Bearer("abc".into()));
        // base64("alice:pa:ss")
        headers.insert(axum::http::header::AUTHORIZATION, "Basic YWxpY2U6cGE6c3M=".parse().unwrap());
        assert_eq!(Credentials::from_headers(&headers), basic("alice", "pa:ss"));
        for bad in ["Basic abc", "basic !!!!", "Basic YWxpY2U="] {
            headers.insert(axum::http::header::AUTHORIZATION, bad.parse().unwrap());
            assert_eq!(Credentials::from_headers(&headers), Credentials::Malformed, "{bad}");
        }
        headers.insert(axum::http::header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert_eq!(Credentials::from_headers(&headers), Credentials::None);
    }
}
