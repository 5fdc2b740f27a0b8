//! Pub/sub fan-out: channels, patterns and shard channels → subscribed connections. A message is a
//! ready-made [`Reply::Push`] sent to each subscriber's outbox; the connection task
//! writes it. A subscriber that lets more than `PUBSUB_QUEUE_BYTES_MAX` pile up is
//! disconnected (Redis's client-output-buffer-limit for pubsub), so one slow reader
//! cannot hold the server's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::commands::args::glob_match;
use crate::limits;
use crate::protocol::reply::Reply;

pub type ClientId = u64;

/// Where a connection receives pushed messages.
#[derive(Clone)]
pub struct Outbox {
    pub tx: mpsc::UnboundedSender<Reply>,
    /// Bytes queued and not yet written by the connection.
    pub queued_bytes: Arc<AtomicUsize>,
    /// Wakes the connection to close it (queue overflow, CLIENT KILL).
    pub kill: Arc<super::clients::Kill>,
}

impl Outbox {
    /// Queues a message; a subscriber over its limit is told to close.
    pub fn send(&self, msg: Reply, size: usize) -> bool {
        let queued = self.queued_bytes.fetch_add(size, Ordering::Relaxed) + size;
        if queued > limits::PUBSUB_QUEUE_BYTES_MAX {
            self.kill.notify_one();
            return false;
        }
        let sent = self.tx.send(msg).is_ok();
        if sent {
            self.kill.pushed();
        }
        sent
    }
}

#[derive(Default)]
struct Inner {
    channels: Subscribers,
    patterns: Subscribers,
    /// SSUBSCRIBE's: a namespace of its own (PUBLISH never reaches them, nor
    /// SPUBLISH the others), matched exactly.
    shard: Subscribers,
}

type Subscribers = HashMap<Bytes, HashMap<ClientId, Outbox>>;

/// Adds a client under `name`; false if it was there.
fn add(map: &mut Subscribers, name: &Bytes, id: ClientId, outbox: &Outbox) -> bool {
    map.entry(name.clone()).or_default().insert(id, outbox.clone()).is_none()
}

/// Removes a client from under `name` (and the name once nobody is left); false if
/// it was not there.
fn remove(map: &mut Subscribers, name: &[u8], id: ClientId) -> bool {
    let Some(subs) = map.get_mut(name) else { return false };
    let removed = subs.remove(&id).is_some();
    if subs.is_empty() {
        map.remove(name);
    }
    removed
}

#[derive(Default)]
pub struct PubSub {
    inner: Mutex<Inner>,
}

impl PubSub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes; false if the client already was.
    pub fn subscribe(&self, channel: &Bytes, id: ClientId, outbox: &Outbox) -> bool {
        add(&mut self.lock().channels, channel, id, outbox)
    }

    pub fn unsubscribe(&self, channel: &[u8], id: ClientId) -> bool {
        remove(&mut self.lock().channels, channel, id)
    }

    pub fn psubscribe(&self, pattern: &Bytes, id: ClientId, outbox: &Outbox) -> bool {
        add(&mut self.lock().patterns, pattern, id, outbox)
    }

    pub fn punsubscribe(&self, pattern: &[u8], id: ClientId) -> bool {
        remove(&mut self.lock().patterns, pattern, id)
    }

    pub fn ssubscribe(&self, channel: &Bytes, id: ClientId, outbox: &Outbox) -> bool {
        add(&mut self.lock().shard, channel, id, outbox)
    }

    pub fn sunsubscribe(&self, channel: &[u8], id: ClientId) -> bool {
        remove(&mut self.lock().shard, channel, id)
    }

    /// Delivers a PUBLISH (or, `shard`, an SPUBLISH); how many clients received it.
    pub fn deliver(&self, channel: &[u8], message: &[u8], shard: bool) -> usize {
        if shard {
            self.spublish(channel, message)
        } else {
            self.publish(channel, message)
        }
    }

    /// Delivers `message` to the subscribers of the shard channel `channel`.
    pub fn spublish(&self, channel: &[u8], message: &[u8]) -> usize {
        let inner = self.lock();
        let Some(subs) = inner.shard.get(channel) else { return 0 };
        let size = channel.len() + message.len() + 32;
        let channel = Bytes::copy_from_slice(channel);
        let message = Bytes::copy_from_slice(message);
        let msg = Reply::Push(vec![Reply::bulk(b"smessage"), Reply::Bulk(channel), Reply::Bulk(message)]);
        subs.values().filter(|outbox| outbox.send(msg.clone(), size)).count()
    }

    /// Delivers `message` on `channel`; returns how many clients received it.
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> usize {
        let inner = self.lock();
        if inner.channels.is_empty() && inner.patterns.is_empty() {
            return 0;
        }
        let size = channel.len() + message.len() + 32;
        let channel_b = Bytes::copy_from_slice(channel);
        let message_b = Bytes::copy_from_slice(message);
        let mut receivers = 0;
        if let Some(subs) = inner.channels.get(channel) {
            for outbox in subs.values() {
                let msg = Reply::Push(vec![Reply::bulk(b"message"), Reply::Bulk(channel_b.clone()), Reply::Bulk(message_b.clone())]);
                if outbox.send(msg, size) {
                    receivers += 1;
                }
            }
        }
        for (pattern, subs) in &inner.patterns {
            if !glob_match(pattern, channel, false) {
                continue;
            }
            for outbox in subs.values() {
                let msg = Reply::Push(vec![
                    Reply::bulk(b"pmessage"),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel_b.clone()),
                    Reply::Bulk(message_b.clone()),
                ]);
                if outbox.send(msg, size + pattern.len()) {
                    receivers += 1;
                }
            }
        }
        receivers
    }

    /// PUBSUB CHANNELS [pattern]
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let inner = self.lock();
        inner.channels.keys().filter(|c| pattern.is_none_or(|p| glob_match(p, c, false))).cloned().collect()
    }

    /// PUBSUB NUMSUB channel
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.lock().channels.get(channel).map_or(0, |s| s.len())
    }

    /// PUBSUB SHARDCHANNELS [pattern]
    pub fn shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let inner = self.lock();
        inner.shard.keys().filter(|c| pattern.is_none_or(|p| glob_match(p, c, false))).cloned().collect()
    }

    /// PUBSUB SHARDNUMSUB channel
    pub fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.lock().shard.get(channel).map_or(0, |s| s.len())
    }

    /// PUBSUB NUMPAT: patterns with at least one subscriber.
    pub fn numpat(&self) -> usize {
        self.lock().patterns.len()
    }

    /// Channel or pattern subscribers (who keyspace notifications may reach; shard
    /// channels never get them).
    pub fn has_subscribers(&self) -> bool {
        let inner = self.lock();
        !inner.channels.is_empty() || !inner.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> (Outbox, mpsc::UnboundedReceiver<Reply>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Outbox { tx, queued_bytes: Arc::new(AtomicUsize::new(0)), kill: Arc::default() }, rx)
    }

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers() {
        let ps = PubSub::default();
        let (a, mut ra) = outbox();
        let (b, mut rb) = outbox();
        ps.subscribe(&Bytes::from("news"), 1, &a);
        ps.psubscribe(&Bytes::from("n*"), 2, &b);
        assert_eq!(ps.publish(b"news", b"hi"), 2);
        assert!(matches!(ra.try_recv(), Ok(Reply::Push(v)) if v.len() == 3));
        assert!(matches!(rb.try_recv(), Ok(Reply::Push(v)) if v.len() == 4));
        assert!(ps.unsubscribe(b"news", 1));
        assert_eq!(ps.publish(b"news", b"hi"), 1);
        assert_eq!(ps.numpat(), 1);
    }

    #[test]
    fn shard_channels_are_a_namespace_of_their_own() {
        let ps = PubSub::default();
        let (a, mut ra) = outbox();
        let (b, mut rb) = outbox();
        ps.ssubscribe(&Bytes::from("orders"), 1, &a);
        ps.subscribe(&Bytes::from("orders"), 2, &b);
        ps.psubscribe(&Bytes::from("*"), 2, &b);
        assert_eq!(ps.deliver(b"orders", b"1", true), 1);
        match ra.try_recv() {
            Ok(Reply::Push(v)) => assert_eq!(v, vec![Reply::bulk(b"smessage"), Reply::bulk(b"orders"), Reply::bulk(b"1")]),
            other => panic!("{other:?}"),
        }
        assert!(rb.try_recv().is_err(), "SPUBLISH reached a PUBLISH subscriber");
        assert_eq!(ps.deliver(b"orders", b"2", false), 2);
        assert!(ra.try_recv().is_err(), "PUBLISH reached a shard subscriber");
        assert_eq!((ps.shard_numsub(b"orders"), ps.shard_channels(Some(b"ord*"))), (1, vec![Bytes::from("orders")]));
        assert!(ps.sunsubscribe(b"orders", 1));
        assert_eq!((ps.spublish(b"orders", b"3"), ps.shard_numsub(b"orders")), (0, 0));
    }
}
