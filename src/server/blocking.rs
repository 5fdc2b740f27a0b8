//! Clients blocked on keys (BLPOP, XREAD BLOCK & co) and the delivery of what
//! applying entries produced. One task does both, in apply order: it publishes
//! keyspace events, and when keys gain elements it re-runs the oldest waiter's
//! command on each as a new proposal. A blocking command's first attempt is the
//! connection's own (so it is ordered by its arrival); every later attempt is this
//! task's, starting with one made when the waiter registers: a push can never slip
//! between the attempt that found nothing and the client's registration.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use crate::commands;
use crate::protocol::reply::Reply;
use crate::replication::state_machine::Notice;
use crate::store::Op;

pub enum Request {
    /// A command whose first attempt found nothing: `args` is tried once more (a key
    /// may have changed since), then each time a key in `keys` changes.
    Block {
        id: u64,
        /// The waiting client's id (CLIENT UNBLOCK names it).
        client: u64,
        args: Vec<Bytes>,
        keys: Vec<Bytes>,
        reply: oneshot::Sender<Reply>,
    },
    Cancel {
        id: u64,
    },
    /// CLIENT UNBLOCK: ends `client`'s wait with `reply`; `done` says whether it waited.
    Unblock {
        client: u64,
        reply: Reply,
        done: oneshot::Sender<bool>,
    },
}

/// The connection side: hands blocking commands to the task.
pub struct Blocker {
    tx: mpsc::UnboundedSender<Request>,
    next_id: AtomicU64,
    /// Clients currently waiting (INFO `blocked_clients`).
    pub blocked: Arc<AtomicUsize>,
    /// Clients in WAIT (`server::cmd::wait`), counted apart: the task above rewrites
    /// its own count.
    pub waiting_for_mirrors: AtomicUsize,
}

impl Blocker {
    pub fn new(tx: mpsc::UnboundedSender<Request>, blocked: Arc<AtomicUsize>) -> Blocker {
        Blocker { tx, next_id: AtomicU64::new(1), blocked, waiting_for_mirrors: AtomicUsize::new(0) }
    }

    /// Submits a blocking command that found nothing on its first attempt, in the
    /// form it runs when woken; the receiver gets its reply (now, or when served).
    pub fn block(&self, client: u64, args: Vec<Bytes>, keys: Vec<Bytes>) -> (u64, oneshot::Receiver<Reply>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Request::Block { id, client, args, keys, reply });
        (id, rx)
    }

    /// Ends the wait of `client` with `reply` (CLIENT UNBLOCK): true if it was waiting.
    pub async fn unblock(&self, client: u64, reply: Reply) -> bool {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Request::Unblock { client, reply, done });
        rx.await.unwrap_or(false)
    }

    /// Gives up waiting; a reply already sent stays in the receiver.
    pub fn cancel(&self, id: u64) {
        let _ = self.tx.send(Request::Cancel { id });
    }
}

struct Waiter {
    client: u64,
    args: Vec<Bytes>,
    keys: Vec<Bytes>,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Waiters {
    by_key: HashMap<Bytes, VecDeque<u64>>,
    all: HashMap<u64, Waiter>,
}

impl Waiters {
    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.all.remove(&id)?;
        for key in &waiter.keys {
            if let Some(queue) = self.by_key.get_mut(key) {
                queue.retain(|w| *w != id);
                if queue.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
        Some(waiter)
    }
}

/// The task: runs until both channels close.
pub async fn run(shared: Arc<Shared>, mut notices: mpsc::UnboundedReceiver<Notice>, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut waiters = Waiters::default();
    loop {
        tokio::select! {
            notice = notices.recv() => {
                let Some(notice) = notice else { return };
                deliver(&shared, &mut waiters, notice).await;
            }
            request = requests.recv() => match request {
                None => return,
                Some(Request::Cancel { id }) => {
                    waiters.remove(id);
                }
                Some(Request::Unblock { client, reply, done }) => {
                    let id = waiters.all.iter().find(|(_, w)| w.client == client).map(|(id, _)| *id);
                    let waiter = id.and_then(|id| waiters.remove(id));
                    let unblocked = waiter.is_some_and(|w| w.reply.send(reply).is_ok());
                    let _ = done.send(unblocked);
                }
                Some(Request::Block { id, client, args, keys, reply }) => {
                    // What was applied before this look is offered to the clients
                    // already waiting first, oldest first: the look must not take an
                    // element pushed for them (Redis serves blocked clients in the order
                    // they blocked). Bounded by what is queued now.
                    for _ in 0..notices.len() {
                        let Ok(notice) = notices.try_recv() else { break };
                        deliver(&shared, &mut waiters, notice).await;
                    }
                    // A key may have changed between the first attempt and now, its
                    // notice already gone by: look once more before waiting.
                    let outcome = attempt(&shared, &args).await;
                    if outcome == Reply::WouldBlock {
                        for key in &keys {
                            waiters.by_key.entry(key.clone()).or_default().push_back(id);
                        }
                        waiters.all.insert(id, Waiter { client, args, keys, reply });
                    } else {
                        let _ = reply.send(outcome);
                    }
                }
            },
        }
        shared.blocker.blocked.store(waiters.all.len(), Ordering::Relaxed);
    }
}

/// What applying an entry produced: tracking's reads and invalidations, keyspace
/// events, messages, and the waiters served on keys that gained elements.
async fn deliver(shared: &Shared, waiters: &mut Waiters, notice: Notice) {
    for (client, index, keys) in &notice.script_reads {
        shared.core.tracking.remember(*client, keys, *index);
    }
    if !notice.touched.is_empty() || notice.touched_all.is_some() {
        shared.core.tracking.invalidate(&shared.clients, &notice.touched, notice.touched_all);
    }
    shared.publish_events(&notice.events);
    shared.publish_messages(&notice.messages);
    if !notice.ready_keys.is_empty() && !waiters.all.is_empty() {
        serve(shared, waiters, notice.ready_keys).await;
    }
}

async fn attempt(shared: &Shared, args: &[Bytes]) -> Reply {
    match shared.core.propose(vec![Op::command(args)]).await {
        Ok(mut replies) => replies.pop().unwrap_or(Reply::NilArray),
        Err(e) => super::errors::write_reply(&e),
    }
}

/// Whether `key` holds a value of the kind the waiter's command waits for. Redis
/// serves blocked clients only from such a key: one that became another type (a
/// transaction pushed, deleted and SET it) leaves them blocked, not failed.
/// The store is taken without blocking the runtime while a script holds it.
async fn key_can_serve(shared: &Shared, key: &[u8], args: &[Bytes]) -> bool {
    let Some(wanted) = args.first().and_then(|name| commands::lookup(name)).and_then(commands::waits_for) else { return true };
    let now = shared.core.stamp();
    let store = shared.core.store_after_scripts().await;
    store.db.get(key, now).is_some_and(|item| item.value.type_name() == wanted)
}

/// Whether `args` wait in a queue kept in the replicated state (TANDEM.LOCK): apply
/// decides who is served, so a waiter left waiting says nothing about the next.
fn replicated_queue(args: &[Bytes]) -> bool {
    commands::resolve(args).and_then(|s| s.wait).is_some_and(|w| w.withdraw.is_some())
}

/// Whether the lock a waiting TANDEM.LOCK asks for was granted to its session.
async fn lock_granted(shared: &Shared, args: &[Bytes]) -> bool {
    let now = shared.core.stamp();
    let store = shared.core.store_after_scripts().await;
    commands::tandem::lock_granted(&store.db, now, args)
}

/// Moves waiter `id` to the back of `key`'s queue here (apply keeps the real order).
fn rotate(waiters: &mut Waiters, key: &Bytes, id: u64) {
    if let Some(q) = waiters.by_key.get_mut(key) {
        q.retain(|w| *w != id);
        q.push_back(id);
    }
}

/// Serves waiters on keys that gained elements, oldest first, until a key runs dry.
async fn serve(shared: &Shared, waiters: &mut Waiters, ready: Vec<Bytes>) {
    let mut seen = HashSet::new();
    for key in ready {
        if !seen.insert(key.clone()) {
            continue;
        }
        // Bounded by the waiters on this key: each is tried at most once per signal.
        let mut budget = waiters.by_key.get(&key).map_or(0, |q| q.len());
        while budget > 0 {
            budget -= 1;
            let Some(&id) = waiters.by_key.get(&key).and_then(|q| q.front()) else { break };
            let Some(args) = waiters.all.get(&id).map(|w| w.args.clone()) else { break };
            if waiters.all.get(&id).is_some_and(|w| w.reply.is_closed()) {
                waiters.remove(id);
                continue;
            }
            if !key_can_serve(shared, &key, &args).await {
                break;
            }
            if replicated_queue(&args) && !lock_granted(shared, &args).await {
                // Granted to another session (waiting here or elsewhere): this one
                // keeps waiting without asking.
                rotate(waiters, &key, id);
                continue;
            }
            let outcome = attempt(shared, &args).await;
            if outcome == Reply::WouldBlock {
                // A wait whose queue is replicated state (a lock's FIFO) was decided
                // in apply: the waiter served may be behind this one, so ask each.
                if replicated_queue(&args) {
                    rotate(waiters, &key, id);
                    continue;
                }
                break;
            }
            if let Some(waiter) = waiters.remove(id) {
                let _ = waiter.reply.send(outcome);
            }
        }
    }
}
