//! A client's session on this server: the protocol it speaks, whether it has
//! authenticated, what it said about itself (READONLY, a forwarding server), its
//! MULTI/WATCH state and its subscriptions. It is the connection's state apart from
//! the socket (`frames`) and the upstreams to other servers (`upstream`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::clients::ClientInfo;
use super::pubsub::Outbox;
use super::transaction::Transaction;
use crate::cluster::route::Client;
use crate::protocol::reply::Reply;

pub struct Session {
    pub info: Arc<ClientInfo>,
    /// HELLO 3: replies in RESP3, pushes told apart from replies by their type.
    pub resp3: bool,
    pub authed: bool,
    /// READONLY: on a mirror, reads are served here, possibly behind the active.
    pub readonly: bool,
    /// This client is another server forwarding its clients' commands: this server
    /// never forwards them once more.
    pub forwarded_in: bool,
    /// The client routes by slot itself: it connected to the server's cluster port.
    /// Another stripe's slot is then answered `-MOVED`, and keyless commands cover
    /// this server's stripe; a plain client's are forwarded, split or fanned out.
    pub slot_routing: bool,
    /// The connection came in on the server's cluster port: slot-routing for good.
    pub on_cluster_port: bool,
    pub txn: Transaction,
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    /// Shard channels (SSUBSCRIBE).
    pub shard_channels: HashSet<Bytes>,
    /// Where pub/sub messages for this client are queued, and where they arrive.
    pub outbox: Outbox,
    pub inbox: mpsc::UnboundedReceiver<Reply>,
    /// QUIT, a kill or a fatal error: the connection ends after this batch.
    pub closing: bool,
    /// The ACL user this connection runs as.
    pub acl: AclSession,
    /// CLIENT REPLY OFF: no reply is sent until CLIENT REPLY ON.
    pub reply_off: bool,
    /// CLIENT REPLY SKIP: replies still to drop (its own, then the next command's).
    pub replies_to_skip: u8,
    /// A blocking command counted when it started: its reply (the next one this
    /// client gets that is no push) says whether it failed (INFO commandstats).
    pub blocking_call: Option<&'static str>,
    /// The client session this connection is attached to (`server::sessions`).
    pub prims: Option<super::sessions::Bound>,
    /// CLIENT TRACKING ON's options (None: off).
    pub tracking: Option<super::tracking::Options>,
    /// CLIENT CACHING YES|NO given for the next command (or transaction).
    pub caching: bool,
    /// Keys of reads run in this batch, remembered for tracking before they ran
    /// (`Tracking::reading`): marked done once their replies are made.
    pub tracked_reads: Vec<Bytes>,
    /// Keys of other stripes read in this batch by a tracking client: invalidated
    /// once their replies are made (this server never sees them change).
    pub untracked_reads: Vec<Bytes>,
}

/// The user a connection runs as, and what admission last read of it.
pub struct AclSession {
    pub name: String,
    /// The user as of `epoch` of the ACL view (`None` before the first read).
    pub user: Option<crate::acl::User>,
    pub epoch: u64,
    /// The user may run anything: admission checks nothing more.
    pub unrestricted: bool,
    /// Another member forwarding its clients' commands (it logged in with the
    /// forward token): they were checked there, against the same users.
    pub forwarder: bool,
    /// The ACL view's epoch when the connection last checked that its user still
    /// exists and allows its subscriptions.
    pub valid_epoch: u64,
}

impl AclSession {
    /// Runs as `name`, read afresh at the next command.
    pub fn new(name: &str) -> AclSession {
        AclSession { name: name.to_string(), user: None, epoch: u64::MAX, unrestricted: false, forwarder: false, valid_epoch: u64::MAX }
    }
}

impl Session {
    pub fn new(info: Arc<ClientInfo>, authed: bool) -> Session {
        let (tx, inbox) = mpsc::unbounded_channel();
        let outbox = Outbox { tx, queued_bytes: Arc::new(AtomicUsize::new(0)), kill: info.kill.clone() };
        info.set_outbox(outbox.clone());
        Session {
            info,
            resp3: false,
            authed,
            readonly: false,
            forwarded_in: false,
            slot_routing: false,
            on_cluster_port: false,
            txn: Transaction::default(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            outbox,
            inbox,
            closing: false,
            acl: AclSession::new("default"),
            reply_off: false,
            replies_to_skip: 0,
            blocking_call: None,
            prims: None,
            tracking: None,
            caching: false,
            tracked_reads: Vec::new(),
            untracked_reads: Vec::new(),
        }
    }

    /// What routing needs to know about this client. `stale_reads` is the debug
    /// builds' deliberately broken mode (see `server::break_safety_stale_reads`).
    pub fn client(&self, stale_reads: bool) -> Client {
        Client { readonly: self.readonly || stale_reads, slot_routing: self.slot_routing, forwarded_in: self.forwarded_in }
    }

    pub fn subscribed(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty() || !self.shard_channels.is_empty()
    }

    /// RESP2 clients with subscriptions may only run pub/sub commands (RESP3 ones may
    /// run anything: pushes are told apart from replies by their type).
    pub fn resp2_subscribed(&self) -> bool {
        !self.resp3 && self.subscribed()
    }

    pub fn set_protocol(&mut self, resp3: bool) {
        self.resp3 = resp3;
        self.info.resp.store(if resp3 { 3 } else { 2 }, Ordering::Relaxed);
    }

    pub fn sync_sub_counts(&self) {
        self.info.subscriptions.store(self.channels.len(), Ordering::Relaxed);
        self.info.psubscriptions.store(self.patterns.len(), Ordering::Relaxed);
        self.info.ssubscriptions.store(self.shard_channels.len(), Ordering::Relaxed);
    }

    pub fn set_last_cmd(&self, name: &'static str) {
        *self.info.last_cmd.lock().unwrap_or_else(|e| e.into_inner()) = name;
    }
}
