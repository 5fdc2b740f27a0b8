//! PUBLISH across a stripe: a message published on one server reaches the
//! subscribers of every server, as Redis Cluster carries PUBLISH over its bus.
//! Delivery is best effort and in order per publishing server: one queue and one
//! group connection per peer; a message that cannot be delivered (a peer down, a
//! full queue) is dropped, never retried out of order.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::group;
use super::stripe::{Member, StripeLayout};
use super::transport::{self, Identity};
use super::wire::{Request, Response};

/// Messages waiting for one peer; beyond this a slow or absent peer loses messages
/// rather than holding memory.
const QUEUE_MAX: usize = 16 * 1024;
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Broadcaster {
    peers: Vec<mpsc::Sender<(Bytes, Bytes)>>,
}

impl Broadcaster {
    /// One sender task per other data-holding member of the stripe.
    pub fn start(layout: &StripeLayout, me: &Member) -> Broadcaster {
        let identity = group::identity(layout, &me.name);
        let peers = layout
            .members
            .iter()
            .filter(|m| m.name != me.name && !m.is_voter())
            .map(|peer| {
                let (tx, rx) = mpsc::channel(QUEUE_MAX);
                tokio::spawn(deliver(identity.clone(), me.host.clone(), peer.clone(), rx));
                tx
            })
            .collect();
        Broadcaster { peers }
    }

    pub fn publish(&self, channel: &Bytes, message: &Bytes) {
        for peer in &self.peers {
            if peer.try_send((channel.clone(), message.clone())).is_err() {
                tracing::debug!("a peer's publish queue is full; message dropped for it");
            }
        }
    }
}

async fn deliver(identity: Identity, local_host: String, peer: Member, mut queue: mpsc::Receiver<(Bytes, Bytes)>) {
    let mut conn = None;
    while let Some((channel, message)) = queue.recv().await {
        if conn.is_none() {
            conn = transport::connect(&peer.group_addr(), Some(&local_host), &identity, 0, CALL_TIMEOUT).await.ok();
        }
        let Some(stream) = conn.as_mut() else { continue };
        let body = Request::Publish { channel: channel.to_vec(), message: message.to_vec() }.encode();
        match transport::call(stream, &body, CALL_TIMEOUT).await.map(|a| Response::decode(&a)) {
            Ok(Ok(Response::Done { ok: true, .. })) => {}
            _ => conn = None,
        }
    }
}
