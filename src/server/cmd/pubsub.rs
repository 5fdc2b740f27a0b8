//! SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs, PUBLISH, SPUBLISH,
//! PUBSUB: this server's subscribers, and (S)PUBLISH passed to every other server.

use bytes::Bytes;

use super::text;
use crate::commands::unknown_subcommand;
use crate::protocol::reply::Reply;
use crate::server::connection::Connection;

/// What SUBSCRIBE-like commands name: channels, patterns or shard channels.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Names {
    Channels,
    Patterns,
    Shard,
}

impl Names {
    fn subscribed(self) -> &'static [u8] {
        match self {
            Names::Channels => b"subscribe",
            Names::Patterns => b"psubscribe",
            Names::Shard => b"ssubscribe",
        }
    }

    fn unsubscribed(self) -> &'static [u8] {
        match self {
            Names::Channels => b"unsubscribe",
            Names::Patterns => b"punsubscribe",
            Names::Shard => b"sunsubscribe",
        }
    }
}

impl Connection {
    /// The count a (un)subscribe reply carries: channels and patterns together, as
    /// Redis counts them; shard channels apart.
    fn subscription_count(&self, names: Names) -> i64 {
        let s = &self.session;
        (if names == Names::Shard { s.shard_channels.len() } else { s.channels.len() + s.patterns.len() }) as i64
    }

    /// Subscribes to channels, patterns or shard channels: one push reply per name.
    pub(super) fn subscribe(&mut self, names: &[Bytes], kind: Names) {
        let id = self.session.info.id;
        for name in names {
            let pubsub = &self.shared.pubsub;
            let outbox = &self.session.outbox;
            match kind {
                Names::Channels => pubsub.subscribe(name, id, outbox) && self.session.channels.insert(name.clone()),
                Names::Patterns => pubsub.psubscribe(name, id, outbox) && self.session.patterns.insert(name.clone()),
                Names::Shard => pubsub.ssubscribe(name, id, outbox) && self.session.shard_channels.insert(name.clone()),
            };
            self.session.sync_sub_counts();
            let count = self.subscription_count(kind);
            self.reply(Reply::Push(vec![Reply::bulk(kind.subscribed()), Reply::Bulk(name.clone()), Reply::Int(count)]));
        }
    }

    /// Unsubscribes from the names (all of this kind when none): one push per name.
    pub(super) fn unsubscribe(&mut self, names: &[Bytes], kind: Names) {
        let targets: Vec<Bytes> = if names.is_empty() {
            let set = match kind {
                Names::Channels => &self.session.channels,
                Names::Patterns => &self.session.patterns,
                Names::Shard => &self.session.shard_channels,
            };
            set.iter().cloned().collect()
        } else {
            names.to_vec()
        };
        if targets.is_empty() {
            let count = self.subscription_count(kind);
            self.reply(Reply::Push(vec![Reply::bulk(kind.unsubscribed()), Reply::Nil, Reply::Int(count)]));
            return;
        }
        let id = self.session.info.id;
        for name in targets {
            let pubsub = &self.shared.pubsub;
            match kind {
                Names::Channels => pubsub.unsubscribe(&name, id) | self.session.channels.remove(&name),
                Names::Patterns => pubsub.punsubscribe(&name, id) | self.session.patterns.remove(&name),
                Names::Shard => pubsub.sunsubscribe(&name, id) | self.session.shard_channels.remove(&name),
            };
            self.session.sync_sub_counts();
            let count = self.subscription_count(kind);
            self.reply(Reply::Push(vec![Reply::bulk(kind.unsubscribed()), Reply::Bulk(name), Reply::Int(count)]));
        }
    }

    /// For a slot-routing client, where shard channels must be served as Redis
    /// Cluster serves them: `-CROSSSLOT` for channels of several slots, `-MOVED` for
    /// another stripe's slot. A plain client may use any server: messages reach
    /// every server's subscribers.
    pub(super) async fn shard_channels_elsewhere(&mut self, channels: &[Bytes]) -> Option<Reply> {
        if !self.session.slot_routing {
            return None;
        }
        let mut slots = channels.iter().map(|c| crate::cluster::slot::key_slot(c));
        let slot = slots.next()?;
        if slots.any(|s| s != slot) {
            return Some(Reply::err(super::super::pipeline::ERR_CROSSSLOT));
        }
        let view = self.shared.view();
        if view.owner(slot) == view.local {
            return None;
        }
        match self.place_keys(crate::cluster::route::Keys::Slot(slot), crate::cluster::route::Access::Read).await {
            super::super::pipeline::Place::Answer(reply) => Some(reply),
            _ => None,
        }
    }

    /// PUBLISH inside MULTI: this server's subscribers now, every other server of
    /// the array through the group ports; the count is of this server's receivers
    /// (EXEC does not wait for the others).
    pub(super) fn publish(&self, channel: &Bytes, message: &Bytes, shard: bool) -> Reply {
        let receivers = self.shared.pubsub.deliver(channel, message, shard);
        self.shared.core.replica.broadcast_publish(channel, message, shard);
        if let Some(array) = &self.shared.array_broadcast {
            array.publish(channel, message, shard);
        }
        Reply::Int(receivers as i64)
    }

    /// PUBLISH: this server's subscribers now, every other server of the array (its
    /// stripe's and the other stripes') through the group ports, and the count of
    /// every receiver that answered within a quarter of an election time — a server
    /// that is down or paused counts none and holds PUBLISH up no longer.
    /// SPUBLISH (`shard`) counts the shard channel's subscribers the same way.
    pub(super) async fn publish_counted(&self, channel: &Bytes, message: &Bytes, shard: bool) -> Reply {
        let mut receivers = self.shared.pubsub.deliver(channel, message, shard) as i64;
        let mut counts = self.shared.core.replica.broadcast_publish_counted(channel, message, shard);
        if let Some(array) = &self.shared.array_broadcast {
            counts.extend(array.publish_counted(channel, message, shard));
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
            "shardchannels" if args.len() <= 3 => {
                Reply::Array(pubsub.shard_channels(args.get(2).map(|p| &p[..])).into_iter().map(Reply::Bulk).collect())
            }
            "shardnumsub" => {
                Reply::Array(args[2..].iter().flat_map(|c| [Reply::Bulk(c.clone()), Reply::Int(pubsub.shard_numsub(c) as i64)]).collect())
            }
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
