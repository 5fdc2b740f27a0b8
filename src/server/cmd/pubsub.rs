//! SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB: this server's
//! subscribers, and PUBLISH passed to the stripe's other servers.

use bytes::Bytes;

use super::text;
use crate::commands::unknown_subcommand;
use crate::protocol::reply::Reply;
use crate::server::connection::Connection;

impl Connection {
    /// Subscribes to channels or patterns: one push reply per name.
    pub(super) fn subscribe(&mut self, names: &[Bytes], pattern: bool) {
        let id = self.session.info.id;
        for name in names {
            if pattern {
                self.shared.pubsub.psubscribe(name, id, &self.session.outbox);
                self.session.patterns.insert(name.clone());
            } else {
                self.shared.pubsub.subscribe(name, id, &self.session.outbox);
                self.session.channels.insert(name.clone());
            }
            self.session.sync_sub_counts();
            let kind: &[u8] = if pattern { b"psubscribe" } else { b"subscribe" };
            let count = (self.session.channels.len() + self.session.patterns.len()) as i64;
            self.reply(Reply::Push(vec![Reply::bulk(kind), Reply::Bulk(name.clone()), Reply::Int(count)]));
        }
    }

    /// Unsubscribes from the names (all of this kind when none): one push per name.
    pub(super) fn unsubscribe(&mut self, names: &[Bytes], pattern: bool) {
        let kind: &[u8] = if pattern { b"punsubscribe" } else { b"unsubscribe" };
        let targets: Vec<Bytes> = if names.is_empty() {
            let set = if pattern { &self.session.patterns } else { &self.session.channels };
            set.iter().cloned().collect()
        } else {
            names.to_vec()
        };
        if targets.is_empty() {
            let count = (self.session.channels.len() + self.session.patterns.len()) as i64;
            self.reply(Reply::Push(vec![Reply::bulk(kind), Reply::Nil, Reply::Int(count)]));
            return;
        }
        let id = self.session.info.id;
        for name in targets {
            if pattern {
                self.shared.pubsub.punsubscribe(&name, id);
                self.session.patterns.remove(&name);
            } else {
                self.shared.pubsub.unsubscribe(&name, id);
                self.session.channels.remove(&name);
            }
            self.session.sync_sub_counts();
            let count = (self.session.channels.len() + self.session.patterns.len()) as i64;
            self.reply(Reply::Push(vec![Reply::bulk(kind), Reply::Bulk(name), Reply::Int(count)]));
        }
    }

    /// PUBLISH inside MULTI: this server's subscribers now, every other server of
    /// the array through the group ports; the count is of this server's receivers
    /// (EXEC does not wait for the others).
    pub(super) fn publish(&self, channel: &Bytes, message: &Bytes) -> Reply {
        let receivers = self.shared.pubsub.publish(channel, message);
        self.shared.core.replica.broadcast_publish(channel, message);
        if let Some(array) = &self.shared.array_broadcast {
            array.publish(channel, message);
        }
        Reply::Int(receivers as i64)
    }

    /// PUBLISH: this server's subscribers now, every other server of the array (its
    /// stripe's and the other stripes') through the group ports, and the count of
    /// every receiver that answered within a quarter of an election time — a server
    /// that is down or paused counts none and holds PUBLISH up no longer.
    pub(super) async fn publish_counted(&self, channel: &Bytes, message: &Bytes) -> Reply {
        let mut receivers = self.shared.pubsub.publish(channel, message) as i64;
        let mut counts = self.shared.core.replica.broadcast_publish_counted(channel, message);
        if let Some(array) = &self.shared.array_broadcast {
            counts.extend(array.publish_counted(channel, message));
        }
        let deadline = tokio::time::Instant::now() + self.shared.core.replica.election_time() / 4;
        for count in counts {
            if let Ok(Ok(n)) = tokio::time::timeout_at(deadline, count).await {
                receivers += n as i64;
            }
        }
        Reply::Int(receivers)
    }

    pub(super) fn pubsub(&mut self, args: &[Bytes]) -> Reply {
        let pubsub = &self.shared.pubsub;
        match text(&args[1]).to_ascii_lowercase().as_str() {
            "channels" if args.len() <= 3 => {
                Reply::Array(pubsub.channels(args.get(2).map(|p| &p[..])).into_iter().map(Reply::Bulk).collect())
            }
            "numsub" => {
                Reply::Array(args[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(pubsub.numsub(c) as i64)]).collect())
            }
            "numpat" if args.len() == 2 => Reply::Int(pubsub.numpat() as i64),
            "shardchannels" => Reply::Array(vec![]),
            "shardnumsub" => Reply::Array(args[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(0)]).collect()),
            "help" => Reply::Array(
                [
                    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "CHANNELS [<pattern>]",
                    "NUMPAT",
                    "NUMSUB [<channel> ...]",
                    "SHARDCHANNELS [<pattern>]",
                    "SHARDNUMSUB [<shardchannel> ...]",
                    "HELP",
                ]
                .iter()
                .map(|l| Reply::Status((*l).into()))
                .collect(),
            ),
            _ => unknown_subcommand("pubsub", &args[1]),
        }
    }
}
