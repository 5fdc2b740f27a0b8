//! PUBLISH across a stripe, and across the array: a message published on one server
//! reaches the subscribers of every server, as Redis Cluster carries PUBLISH over its
//! bus. Delivery is best effort and in order per publishing server: one queue and
//! one group connection per peer; a message that cannot be delivered (a peer down, a
//! full queue) is dropped, never retried out of order. Each peer answers how many of
//! its clients got the message, so PUBLISH can count them all. SPUBLISH travels the
//! same way, marked as a shard channel's message.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::group;
use super::stripe::{Member, StripeLayout};
use super::transport::{self, Identity};
use super::wire::{Request, Response};

/// Messages waiting for one peer; beyond this a slow or absent peer loses messages
/// rather than holding memory.
const QUEUE_MAX: usize = 16 * 1024;
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A message still queued this long after PUBLISH (its peer paused or unreachable)
/// is dropped rather than delivered late.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// One message for one peer, when it was queued, and where its count of receivers
/// goes (if anyone waits).
type Queued = (Bytes, Bytes, bool, std::time::Instant, Option<oneshot::Sender<u64>>);

struct Peer {
    queue: mpsc::Sender<Queued>,
    /// The last delivery to it went through: PUBLISH waits for its count only then
    /// (a paused or unreachable peer holds no PUBLISH up).
    healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

pub struct Broadcaster {
    peers: Vec<Peer>,
}

impl Broadcaster {
    /// One sender task per other data-holding member of the stripe.
    pub fn start(layout: &StripeLayout, me: &Member) -> Broadcaster {
        Broadcaster::to_stripes(std::slice::from_ref(layout), me)
    }

    /// One sender task per data-holding member of `layouts` other than `me` (each
    /// addressed as a member of its own stripe proves the cluster secret).
    pub fn to_stripes(layouts: &[StripeLayout], me: &Member) -> Broadcaster {
        let mut peers = Vec::new();
        for layout in layouts {
            let identity = group::identity(layout, &me.name);
            for peer in layout.members.iter().filter(|m| m.name != me.name && !m.is_voter()) {
                let (tx, rx) = mpsc::channel(QUEUE_MAX);
                let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
                tokio::spawn(deliver(identity.clone(), me.host.clone(), peer.clone(), rx, healthy.clone()));
                peers.push(Peer { queue: tx, healthy });
            }
        }
        Broadcaster { peers }
    }

    /// Queues a message for every peer; `shard`: a shard channel's (SPUBLISH).
    pub fn publish(&self, channel: &Bytes, message: &Bytes, shard: bool) {
        let now = std::time::Instant::now();
        for peer in &self.peers {
            if peer.queue.try_send((channel.clone(), message.clone(), shard, now, None)).is_err() {
                tracing::debug!("a peer's publish queue is full; message dropped for it");
            }
        }
    }

    /// As [`Broadcaster::publish`]; each healthy peer's count of receivers arrives on
    /// its receiver (which closes without a count when the peer could not be
    /// reached). A peer whose last delivery failed is sent the message uncounted.
    pub fn publish_counted(&self, channel: &Bytes, message: &Bytes, shard: bool) -> Vec<oneshot::Receiver<u64>> {
        let now = std::time::Instant::now();
        let mut counts = Vec::with_capacity(self.peers.len());
        for peer in &self.peers {
            let count = if peer.healthy.load(std::sync::atomic::Ordering::Relaxed) {
                let (tx, rx) = oneshot::channel();
                counts.push(rx);
                Some(tx)
            } else {
                None
            };
            if peer.queue.try_send((channel.clone(), message.clone(), shard, now, count)).is_err() {
                tracing::debug!("a peer's publish queue is full; message dropped for it");
            }
        }
        counts
    }
}

async fn deliver(
    identity: Identity,
    local_host: String,
    peer: Member,
    mut queue: mpsc::Receiver<Queued>,
    healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut conn = None;
    while let Some((channel, message, shard, queued, count)) = queue.recv().await {
        if queued.elapsed() > STALE_AFTER {
            continue;
        }
        if conn.is_none() {
            conn = transport::connect(&peer.group_addr(), Some(&local_host), &identity, 0, CALL_TIMEOUT).await.ok();
        }
        let Some(stream) = conn.as_mut() else {
            healthy.store(false, Ordering::Relaxed);
            continue;
        };
        let body = Request::Publish { channel: channel.to_vec(), message: message.to_vec(), shard }.encode();
        match transport::call(stream, &body, CALL_TIMEOUT).await.map(|a| Response::decode(&a)) {
            Ok(Ok(Response::Published { receivers })) => {
                healthy.store(true, Ordering::Relaxed);
                if let Some(count) = count {
                    let _ = count.send(receivers);
                }
            }
            Ok(Ok(Response::Done { ok: true, .. })) => healthy.store(true, Ordering::Relaxed),
            _ => {
                healthy.store(false, Ordering::Relaxed);
                conn = None;
            }
        }
    }
}
