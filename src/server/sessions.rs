//! Client sessions on this server (DESIGN.md §6): which session each connection is
//! attached to, and keeping those sessions alive.
//!
//! A session is replicated state (`store::prims`); what this server adds is the
//! connection's side of it:
//! - **binding** (admission): a session-bound command (TANDEM.LOCK, TANDEM.GROUP
//!   JOIN) gets the connection's session appended as `SESSION <id>`; a connection
//!   with none gets an implicit one, created in apply on first use
//!   (`SESSION <id> IMPLICIT <window-ms>`), so the logged form is explicit and is
//!   forwarded to the active like any command;
//! - **control** (TANDEM.SESSION OPEN/RESUME/CLOSE/INFO): the connection fills in
//!   what the client left out (a fresh id and the configured window, its own
//!   session), runs the command as any other (here or on the active), and attaches
//!   to or detaches from the session the reply names;
//! - **renewal** ([`keep_alive`]): every quarter of the reconnect window, one entry
//!   per stripe renews every session attached to this server's connections
//!   (`TANDEM.SESSION RENEW id …`), proposed here on the active, sent to the active
//!   from a mirror and to other stripes' actives. A session whose connection went away, or whose server died, is
//!   renewed no more and ends a window after its last renewal, by an entry the
//!   active decides (`Core::expire_prims_due`): no other client waits for it.
//!
//! It does not know how sessions, locks and groups change: that is apply's.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::replication::group_tls::{GroupStream, GroupTls};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::connection::Connection;
use super::core::Core;
use super::request::Request;
use super::session::Session;
use super::Shared;
use crate::cluster::route::Keys;
use crate::cluster::view::{Active, ClusterView};
use crate::commands::tandem;
use crate::protocol::frame::{parse_frame, Frame};
use crate::protocol::reply::Reply;
use crate::protocol::request::encode_command;
use crate::store::Op;

/// Sessions renewed per entry: a server with more attached sessions sends several.
const RENEW_IDS_PER_ENTRY_MAX: usize = 1024;
/// Renewals run at least this often apart, whatever the window (a tiny window in
/// tests must not flood the log), and at most this far apart.
const RENEW_PERIOD_MIN: Duration = Duration::from_millis(50);
const RENEW_PERIOD_MAX: Duration = Duration::from_secs(30);

/// A connection's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub id: Bytes,
    /// Opened by the server for a session-bound command (the client never asked):
    /// created again in apply if its window ran out while the connection lived.
    pub implicit: bool,
}

/// The sessions this server's connections are attached to, with how many
/// connections hold each.
#[derive(Default)]
pub struct Attached {
    ids: Mutex<HashMap<Bytes, usize>>,
}

impl Attached {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, usize>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn attach(&self, id: &Bytes) {
        *self.lock().entry(id.clone()).or_default() += 1;
    }

    pub fn detach(&self, id: &[u8]) {
        let mut ids = self.lock();
        if let Some(count) = ids.get_mut(id) {
            *count -= 1;
            if *count == 0 {
                ids.remove(id);
            }
        }
    }

    pub fn ids(&self) -> Vec<Bytes> {
        self.lock().keys().cloned().collect()
    }
}

/// A new session id: 128 random bits in hex (never guessed, never repeated).
fn new_id() -> Bytes {
    Bytes::from(format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()))
}

/// Appends the connection's session to a session-bound command (see the module
/// doc); a command that names its session (`SESSION <id>`), or that comes from
/// another server (which bound it already), is left as it is. In an array, a
/// command for another stripe than this server's creates the session there on first
/// use (`IMPLICIT`): a session is recorded in each stripe where it holds something.
pub fn bind(session: &mut Session, request: &mut Request, core: &Core, window_ms: u64, view: &ClusterView) {
    if session.forwarded_in || tandem::names_session(request.spec, &request.args) {
        return;
    }
    let bound = session.prims.get_or_insert_with(|| {
        let id = new_id();
        core.attached.attach(&id);
        Bound { id, implicit: true }
    });
    request.args.extend([Bytes::from_static(b"SESSION"), bound.id.clone()]);
    let elsewhere = request.slot.is_some_and(|slot| view.owner(slot) != view.local);
    if bound.implicit || elsewhere {
        request.args.extend([Bytes::from_static(b"IMPLICIT"), Bytes::from(window_ms.to_string())]);
    }
}

impl Connection {
    /// TANDEM.SESSION OPEN/RESUME/CLOSE/INFO (see the module doc).
    pub(super) async fn session_control(&mut self, mut request: Request) {
        let name = request.spec.name;
        let current = self.session.prims.as_ref().map(|b| b.id.clone());
        if name == tandem::SESSION_OPEN {
            let args = &request.args;
            let has = |option: &str| args.iter().skip(2).step_by(2).any(|a| crate::commands::is(a, option));
            let (has_id, has_window) = (has("id"), has("window"));
            if !has_id {
                request.args.extend([Bytes::from_static(b"ID"), new_id()]);
            }
            if !has_window {
                let window = self.shared.settings.client_reconnect_window_ms.load(Ordering::Relaxed);
                request.args.extend([Bytes::from_static(b"WINDOW"), Bytes::from(window.to_string())]);
            }
        } else if (name == tandem::SESSION_CLOSE || name == tandem::SESSION_INFO) && request.args.len() == 2 {
            if let Some(id) = &current {
                request.args.push(id.clone());
            }
        }
        let target = request.args.get(2).cloned();
        // The reply decides what the connection attaches to: `captured` reads it
        // whatever CLIENT REPLY says (which then applies to sending it).
        let view = self.shared.view();
        let whole_array = view.is_array() && !self.session.slot_routing && !self.session.forwarded_in;
        let reply = if whole_array && (name == tandem::SESSION_RESUME || name == tandem::SESSION_CLOSE) {
            self.on_every_stripe(request, &view).await
        } else {
            self.captured(request, Keys::None).await
        };
        match &reply {
            Reply::Bulk(id) if name == tandem::SESSION_OPEN => self.attach(id.clone()),
            Reply::Status(_) if name == tandem::SESSION_RESUME => {
                if let Some(id) = target {
                    self.attach(id);
                }
            }
            Reply::Int(_) if name == tandem::SESSION_CLOSE && target.is_some() && target == current => self.detach(),
            _ => {}
        }
        self.reply(reply);
    }

    /// RESUME or CLOSE in an array: the session may be recorded in every stripe (see
    /// `bind`), so each is asked. RESUME succeeds if a stripe knew the session (else
    /// this server's stripe's answer); CLOSE answers 1 if it ended anywhere.
    async fn on_every_stripe(&mut self, request: Request, view: &ClusterView) -> Reply {
        let resume = request.spec.name == tandem::SESSION_RESUME;
        let mut replies = Vec::with_capacity(view.stripes.len());
        for stripe in 0..view.stripes.len() {
            let first_slot = view.ranges_of(stripe).first().map_or(0, |r| r.0);
            let reply = match Request::parse(request.args.clone()) {
                Ok(part) => self.captured(part, Keys::Slot(first_slot)).await,
                Err((reply, _)) => reply,
            };
            replies.push(reply);
        }
        let local = replies.get(view.local).cloned().unwrap_or(Reply::Nil);
        match resume {
            true => replies.into_iter().find(|r| matches!(r, Reply::Status(_))).unwrap_or(local),
            false if replies.contains(&Reply::Int(1)) => Reply::Int(1),
            false => replies.into_iter().find(|r| matches!(r, Reply::Error(_))).unwrap_or(Reply::Int(0)),
        }
    }

    /// Attaches this connection to session `id` (this server renews it from now on).
    fn attach(&mut self, id: Bytes) {
        self.detach();
        self.shared.core.attached.attach(&id);
        self.session.prims = Some(Bound { id, implicit: false });
    }

    /// Detaches from the connection's session, which lives on for its window.
    pub(super) fn detach(&mut self) {
        if let Some(bound) = self.session.prims.take() {
            self.shared.core.attached.detach(&bound.id);
        }
    }
}

/// Renews the sessions attached to this server's connections every quarter of the
/// reconnect window (see the module doc), in every stripe of the array (a stripe
/// that does not know a session ignores it), until `shutdown`.
pub async fn keep_alive(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut remote: HashMap<usize, RemoteActive> = HashMap::new();
    loop {
        let window_ms = shared.settings.client_reconnect_window_ms.load(Ordering::Relaxed);
        let period = Duration::from_millis(window_ms / 4).clamp(RENEW_PERIOD_MIN, RENEW_PERIOD_MAX);
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        let ids = shared.core.attached.ids();
        let view = shared.view();
        for stripe in 0..view.stripes.len() {
            for chunk in ids.chunks(RENEW_IDS_PER_ENTRY_MAX) {
                let mut args = vec![Bytes::from_static(b"TANDEM.SESSION"), Bytes::from_static(b"RENEW")];
                args.extend(chunk.iter().cloned());
                let outcome = match view.active(stripe).clone() {
                    Active::Here => shared.core.propose(vec![Op::Command(args)]).await.map(drop).map_err(|e| e.to_string()),
                    Active::There { client_addr, .. } => renew_remote(&shared, remote.entry(stripe), &client_addr, &args).await,
                    // An election: the next round renews (a window is four rounds).
                    Active::Unknown => Ok(()),
                };
                if let Err(e) = outcome {
                    tracing::debug!(error = %e, stripe, sessions = chunk.len(), "session renewal not sent; the next round tries again");
                }
            }
        }
    }
}

/// A connection from this server to its stripe's active, logged in as a
/// forwarding member, that carries renewals.
struct RemoteActive {
    addr: String,
    stream: GroupStream,
    buf: BytesMut,
}

async fn renew_remote(
    shared: &Shared,
    slot: std::collections::hash_map::Entry<'_, usize, RemoteActive>,
    addr: &str,
    args: &[Bytes],
) -> Result<(), String> {
    let within = shared.active_wait().max(Duration::from_secs(1));
    let mut remote = match slot {
        std::collections::hash_map::Entry::Occupied(o) if o.get().addr == addr => o,
        other => {
            let conn = RemoteActive::connect(shared, addr, within).await?;
            match other {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    o.insert(conn);
                    o
                }
                std::collections::hash_map::Entry::Vacant(v) => v.insert_entry(conn),
            }
        }
    };
    match remote.get_mut().call(args, within).await {
        Ok(()) => Ok(()),
        Err(e) => {
            remote.remove();
            Err(e)
        }
    }
}

impl RemoteActive {
    async fn connect(shared: &Shared, addr: &str, within: Duration) -> Result<RemoteActive, String> {
        let stream = GroupTls::connect_to_server(addr, within).await.map_err(|e| e.to_string())?;
        let mut conn = RemoteActive { addr: addr.to_string(), stream, buf: BytesMut::new() };
        let mut hello = vec![Bytes::from_static(b"HELLO"), Bytes::from_static(b"2")];
        if let Some(password) = shared.settings.forward_password() {
            hello.extend([Bytes::from_static(b"AUTH"), Bytes::from_static(b"default"), Bytes::from(password)]);
        }
        let name = format!("{}{}-sessions", super::upstream::FORWARD_NAME_PREFIX, shared.server_name);
        hello.extend([Bytes::from_static(b"SETNAME"), Bytes::from(name.replace(|c: char| !c.is_ascii_graphic(), "_"))]);
        conn.call(&hello, within).await?;
        Ok(conn)
    }

    /// Sends one command and reads its reply: an error reply is an error.
    async fn call(&mut self, args: &[Bytes], within: Duration) -> Result<(), String> {
        let mut out = BytesMut::new();
        encode_command(&mut out, args);
        let limits = super::upstream::relay_limits(0);
        let exchange = async {
            self.stream.write_all(&out).await.map_err(|e| e.to_string())?;
            // Over TLS the end of the request may wait in the session until flushed.
            self.stream.flush().await.map_err(|e| e.to_string())?;
            loop {
                if let Some((frame, len)) = parse_frame(&self.buf, &limits).map_err(|e| e.to_string())? {
                    let _ = self.buf.split_to(len);
                    return match frame {
                        Frame::Error(text) => Err(String::from_utf8_lossy(&text).into_owned()),
                        _ => Ok(()),
                    };
                }
                if self.stream.read_buf(&mut self.buf).await.map_err(|e| e.to_string())? == 0 {
                    return Err("the active closed the connection".to_string());
                }
            }
        };
        tokio::time::timeout(within, exchange).await.map_err(|_| "no reply in time".to_string())?
    }
}
