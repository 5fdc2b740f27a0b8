//! The registry of connected clients, for CLIENT LIST/KILL/INFO and INFO clients.
//! Each connection owns an `Arc<ClientInfo>`; fields it changes often are atomics
//! or per-client locks, so the registry lock is taken only on connect, disconnect
//! and listing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::clock::wall_ms;

pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub created: Instant,
    pub last_active_ms: AtomicU64,
    pub name: Mutex<String>,
    pub lib_name: Mutex<String>,
    pub lib_ver: Mutex<String>,
    /// The ACL user the client runs as (empty: `default`).
    pub user: Mutex<String>,
    pub last_cmd: Mutex<&'static str>,
    pub resp: AtomicU8,
    pub subscriptions: AtomicUsize,
    pub psubscriptions: AtomicUsize,
    pub ssubscriptions: AtomicUsize,
    pub in_multi: AtomicBool,
    pub blocked: AtomicBool,
    /// Bytes allocated for the client's query buffer (CLIENT LIST's `qbuf` plus
    /// `qbuf-free`), kept by its connection's [`super::frames::Frames`].
    pub query_buffer_bytes: Arc<AtomicUsize>,
    /// Closes the connection (CLIENT KILL, pub/sub overflow, shutdown).
    pub kill: Arc<Kill>,
    /// Where pushed messages for the client are queued (set once by its session):
    /// invalidations reach a client that another one redirects to through it.
    outbox: OnceLock<super::pubsub::Outbox>,
    /// CLIENT TRACKING, as CLIENT LIST shows it: the redirect (-1: not tracking) and
    /// flags (`TRACKING_*`).
    tracking_redirect: AtomicI64,
    tracking_flags: AtomicU8,
}

/// What wakes a connection besides its socket: a kill (CLIENT KILL, shutdown, an
/// overflowing output queue), a change of the users (its user may be gone), and a
/// message queued in its inbox (a push: pub/sub, invalidation, MONITOR's lines; the
/// loop drains the inbox then, rather than polling it once per request). The connection's loop waits on a flag and an [`AtomicWaker`]: a
/// `Notify`'s waiter takes the `Notify`'s lock at every poll, and the loop polls
/// its wait once per request. The `Notify` stays for the waits inside a command
/// (a blocking pop, a forwarded run, WAIT), which a kill ends too.
#[derive(Default)]
pub struct Kill {
    notify: Notify,
    raised: AtomicU8,
    waker: AtomicWaker,
}

/// [`Kill::raised`]: the connection is to close (stays raised).
pub const KILLED: u8 = 1;
/// [`Kill::raised`]: the users changed since the last look.
pub const USERS_CHANGED: u8 = 2;
/// [`Kill::raised`]: messages were queued in the inbox since the last look.
pub const PUSHED: u8 = 4;
/// What a kill or a change of users raises (everything but [`PUSHED`]).
pub const CONTROL: u8 = KILLED | USERS_CHANGED;

impl Kill {
    /// Closes the connection: its loop, and any wait inside a command.
    pub fn notify_one(&self) {
        self.raise(KILLED);
        self.notify.notify_one();
    }

    /// A wait inside a command that a kill ends.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Tells the connection's loop the users changed.
    pub fn users_changed(&self) {
        self.raise(USERS_CHANGED);
    }

    /// Tells the connection's loop a message is in its inbox (after it was sent).
    /// Wakes it only when the bit was not already up: a loop told once drains all
    /// that is queued, and a flush blocked on a slow reader is not woken per message.
    pub fn pushed(&self) {
        if self.raised.fetch_or(PUSHED, Ordering::AcqRel) & PUSHED == 0 {
            self.waker.wake();
        }
    }

    fn raise(&self, what: u8) {
        self.raised.fetch_or(what, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The connection's loop: what of `interest` was raised since it last looked
    /// (`KILLED` stays raised, the others are taken; what is not of interest stays for
    /// a later look). No lock.
    pub fn raised(&self, interest: u8) -> impl std::future::Future<Output = u8> + '_ {
        std::future::poll_fn(move |cx| {
            let take = || match self.raised.load(Ordering::Acquire) & interest {
                0 => None,
                _ => Some(self.raised.fetch_and(!interest | KILLED, Ordering::AcqRel) & interest),
            };
            if let Some(raised) = take() {
                return std::task::Poll::Ready(raised);
            }
            self.waker.register(cx.waker());
            // Raised between the first look and the registration.
            take().map_or(std::task::Poll::Pending, std::task::Poll::Ready)
        })
    }
}

const TRACKING_BCAST: u8 = 1;
const TRACKING_BROKEN: u8 = 2;

impl ClientInfo {
    fn text(m: &Mutex<String>) -> String {
        m.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn name(&self) -> String {
        Self::text(&self.name)
    }

    /// Has channels, patterns or shard channels (flag `P`, CLIENT LIST's `TYPE pubsub`).
    pub fn subscribed(&self) -> bool {
        self.subscriptions.load(Ordering::Relaxed)
            + self.psubscriptions.load(Ordering::Relaxed)
            + self.ssubscriptions.load(Ordering::Relaxed)
            > 0
    }

    pub fn set_outbox(&self, outbox: super::pubsub::Outbox) {
        let _ = self.outbox.set(outbox);
    }

    pub fn outbox(&self) -> Option<&super::pubsub::Outbox> {
        self.outbox.get()
    }

    pub fn resp3(&self) -> bool {
        self.resp.load(Ordering::Relaxed) >= 3
    }

    /// Records the client's tracking (None: off) for CLIENT LIST.
    pub fn set_tracking(&self, options: Option<&super::tracking::Options>, broken: bool) {
        match options {
            None => {
                self.tracking_redirect.store(-1, Ordering::Relaxed);
                self.tracking_flags.store(0, Ordering::Relaxed);
            }
            Some(o) => {
                self.tracking_redirect.store(o.redirect as i64, Ordering::Relaxed);
                let flags = if o.bcast { TRACKING_BCAST } else { 0 } | if broken { TRACKING_BROKEN } else { 0 };
                self.tracking_flags.store(flags, Ordering::Relaxed);
            }
        }
    }

    pub fn set(field: &Mutex<String>, value: String) {
        *field.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// One line of CLIENT LIST / CLIENT INFO, Redis's field order; `qbuf`: the
    /// bytes in its query buffer (the command running, for the client asking).
    pub fn line(&self, qbuf: usize) -> String {
        let now = wall_ms();
        let idle = now.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)) / 1000;
        let mut flags = String::new();
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if self.subscribed() {
            flags.push('P');
        }
        if self.in_multi.load(Ordering::Relaxed) {
            flags.push('x');
        }
        let redirect = self.tracking_redirect.load(Ordering::Relaxed);
        if redirect >= 0 {
            flags.push('t');
            let tracking = self.tracking_flags.load(Ordering::Relaxed);
            if tracking & TRACKING_BROKEN != 0 {
                flags.push('R');
            }
            if tracking & TRACKING_BCAST != 0 {
                flags.push('B');
            }
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let cmd = *self.last_cmd.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} multi={} qbuf={qbuf} qbuf-free={} argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.name(),
            self.created.elapsed().as_secs(),
            idle,
            flags,
            self.subscriptions.load(Ordering::Relaxed),
            self.psubscriptions.load(Ordering::Relaxed),
            self.ssubscriptions.load(Ordering::Relaxed),
            if self.in_multi.load(Ordering::Relaxed) { 0 } else { -1 },
            self.query_buffer_bytes.load(Ordering::Relaxed).saturating_sub(qbuf),
            cmd,
            match Self::text(&self.user) {
                user if user.is_empty() => "default".to_string(),
                user => user,
            },
            self.tracking_redirect.load(Ordering::Relaxed),
            self.resp.load(Ordering::Relaxed),
            Self::text(&self.lib_name),
            Self::text(&self.lib_ver),
        )
    }
}

#[derive(Default)]
pub struct Clients {
    next_id: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
}

impl Clients {
    pub fn register(&self, addr: String, laddr: String) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            last_active_ms: AtomicU64::new(wall_ms()),
            name: Mutex::default(),
            lib_name: Mutex::default(),
            lib_ver: Mutex::default(),
            user: Mutex::default(),
            last_cmd: Mutex::new("NULL"),
            resp: AtomicU8::new(2),
            subscriptions: AtomicUsize::new(0),
            psubscriptions: AtomicUsize::new(0),
            ssubscriptions: AtomicUsize::new(0),
            in_multi: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            query_buffer_bytes: Arc::new(AtomicUsize::new(0)),
            kill: Arc::default(),
            outbox: OnceLock::new(),
            tracking_redirect: AtomicI64::new(-1),
            tracking_flags: AtomicU8::new(0),
        });
        self.lock().insert(id, info.clone());
        self.total_connections.fetch_add(1, Ordering::Relaxed);
        info
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ClientInfo>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.lock().get(&id).cloned()
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.lock().values().cloned().collect()
    }

    /// Closes every connection (shutdown).
    pub fn kill_all(&self) {
        for client in self.all() {
            client.kill.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn now(kill: &Kill) -> Option<u8> {
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let raised = std::pin::pin!(kill.raised(CONTROL | PUSHED));
        match raised.poll(&mut cx) {
            std::task::Poll::Ready(r) => Some(r),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn a_kill_stays_raised_and_a_change_of_users_is_taken_once() {
        let kill = Kill::default();
        assert_eq!(now(&kill), None);
        kill.users_changed();
        assert_eq!(now(&kill), Some(USERS_CHANGED));
        assert_eq!(now(&kill), None, "taken by the first look");
        kill.notify_one();
        kill.users_changed();
        assert_eq!(now(&kill), Some(KILLED | USERS_CHANGED));
        assert_eq!(now(&kill), Some(KILLED), "a kill is for good");
    }

    #[test]
    fn a_push_is_told_to_the_look_that_asks_for_it() {
        let kill = Kill::default();
        kill.pushed();
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        // A flush looks for kills only: the push stays for the loop.
        let flush_look = std::pin::pin!(kill.raised(CONTROL));
        assert!(flush_look.poll(&mut cx).is_pending());
        assert_eq!(now(&kill), Some(PUSHED));
        assert_eq!(now(&kill), None, "taken by the loop's look");
    }

    #[test]
    fn pushes_wake_the_loop_once_until_it_looks() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let kill = Kill::default();
        // A flush waiting on a slow reader: registered, looking for kills only.
        assert!(std::pin::pin!(kill.raised(CONTROL)).poll(&mut cx).is_pending());
        for _ in 0..100 {
            kill.pushed();
        }
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "one wake for a burst, not one per message");
        assert!(std::pin::pin!(kill.raised(CONTROL)).poll(&mut cx).is_pending());
        assert_eq!(std::pin::pin!(kill.raised(PUSHED)).poll(&mut cx), std::task::Poll::Ready(PUSHED));
        kill.pushed();
        assert_eq!(count.0.load(Ordering::Relaxed), 2, "taken, the next push wakes again");
        // Woken, the task looks again (a wake is spent on the waker it woke).
        assert!(std::pin::pin!(kill.raised(CONTROL)).poll(&mut cx).is_pending());
        kill.notify_one();
        assert_eq!(count.0.load(Ordering::Relaxed), 3, "a kill always wakes");
    }

    #[tokio::test]
    async fn a_kill_wakes_the_loop_and_ends_a_wait_inside_a_command() {
        let kill = Arc::new(Kill::default());
        let waiting = tokio::spawn({
            let kill = kill.clone();
            async move { kill.raised(CONTROL | PUSHED).await }
        });
        let inside = tokio::spawn({
            let kill = kill.clone();
            async move { kill.notified().await }
        });
        tokio::task::yield_now().await;
        kill.notify_one();
        assert_eq!(waiting.await.unwrap(), KILLED);
        inside.await.unwrap();
    }
}
