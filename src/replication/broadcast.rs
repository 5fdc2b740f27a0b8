//! PUBLISH across a stripe, and across the array: a message published on one server
//! reaches the subscribers of every server, as Redis Cluster carries PUBLISH over its
//! bus. Delivery is best effort and in order per publishing server: one queue and
//! one group connection per peer; a message that cannot be delivered (a peer down, a
//! full queue) is dropped, never retried out of order. Each peer answers how many of
//! its clients got the message, so PUBLISH can count them all.

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

/// One message for one peer, and where its count of receivers goes (if anyone waits).
type Queued = (Bytes, Bytes, Option<oneshot::Sender<u64>>);

pub struct Broadcaster {
    peers: Vec<mpsc::Sender<Queued>>,
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
                tokio::spawn(deliver(identity.clone(), me.host.clone(), peer.clone(), rx));
                peers.push(tx);
            }
        }
        Broadcaster { peers }
    }

    pub fn publish(&self, channel: &Bytes, message: &Bytes) {
        for peer in &self.peers {
            if peer.try_send((channel.clone(), message.clone(), None)).is_err() {
                tracing::debug!("a peer's publish queue is full; message dropped for it");
            }
        }
    }

    /// As [`Broadcaster::publish`]; each peer's count of receivers arrives on its
    /// receiver (which closes without a count when the peer could not be reached).
    pub fn publish_counted(&self, channel: &Bytes, message: &Bytes) -> Vec<oneshot::Receiver<u64>> {
        let mut counts = Vec::with_capacity(self.peers.len());
        for peer in &self.peers {
            let (tx, rx) = oneshot::channel();
            if peer.try_send((channel.clone(), message.clone(), Some(tx))).is_err() {
                tracing::debug!("a peer's publish queue is full; message dropped for it");
            }
            counts.push(rx);
        }
        counts
    }
}

async fn deliver(identity: Identity, local_host: String, peer: Member, mut queue: mpsc::Receiver<Queued>) {
    let mut conn = None;
    while let Some((channel, message, count)) = queue.recv().await {
        if conn.is_none() {
            conn = transport::connect(&peer.group_addr(), Some(&local_host), &identity, 0, CALL_TIMEOUT).await.ok();
        }
        let Some(stream) = conn.as_mut() else { continue };
        let body = Request::Publish { channel: channel.to_vec(), message: message.to_vec() }.encode();
        match transport::call(stream, &body, CALL_TIMEOUT).await.map(|a| Response::decode(&a)) {
            Ok(Ok(Response::Published { receivers })) => {
                if let Some(count) = count {
                    let _ = count.send(receivers);
                }
            }
            Ok(Ok(Response::Done { ok: true, .. })) => {}
            _ => conn = None,
        }
    }
}
