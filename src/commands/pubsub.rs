//! Pub/sub commands: served by the connection and `server::pubsub`; messages are not
//! state and never enter the log. A shard channel sits where Redis puts its key (so
//! COMMAND GETKEYS, cluster clients and MULTI's slot check see it), but it is no key:
//! ACL checks it as a channel only (`Srv::shard_channels`).

use super::flags::*;
use super::*;

const G: &str = "pubsub";

pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Listens for messages published to channels.",
        Handler::Server(Srv::Subscribe),
    ),
    spec(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Stops listening to messages posted to channels.",
        Handler::Server(Srv::Unsubscribe),
    ),
    spec(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Listens for messages published to channels that match patterns.",
        Handler::Server(Srv::Psubscribe),
    ),
    spec(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Stops listening to messages published to channels that match patterns.",
        Handler::Server(Srv::Punsubscribe),
    ),
    spec(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        (0, 0, 0),
        G,
        "Posts a message to a channel.",
        Handler::Server(Srv::Publish),
    ),
    spec(
        "ssubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (1, -1, 1),
        G,
        "Listens for messages published to shard channels.",
        Handler::Server(Srv::Ssubscribe),
    ),
    spec(
        "sunsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (1, -1, 1),
        G,
        "Stops listening to messages posted to shard channels.",
        Handler::Server(Srv::Sunsubscribe),
    ),
    spec(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        (1, 1, 1),
        G,
        "Posts a message to a shard channel.",
        Handler::Server(Srv::Spublish),
    ),
    server_container(
        "pubsub",
        -2,
        PUBSUB | LOADING | STALE,
        G,
        "A container for pub/sub introspection commands.",
        Srv::Pubsub,
        PUBSUB_SUBCOMMANDS,
    ),
];

const PS: u32 = PUBSUB | LOADING | STALE;

static PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    server_sub("pubsub|channels", -2, PS, G, "Returns the active channels.", Srv::Pubsub),
    server_sub("pubsub|numpat", 2, PS, G, "Returns a count of unique pattern subscriptions.", Srv::Pubsub),
    server_sub("pubsub|numsub", -2, PS, G, "Returns a count of subscribers to channels.", Srv::Pubsub),
    server_sub("pubsub|shardchannels", -2, PS, G, "Returns the active shard channels.", Srv::Pubsub),
    server_sub("pubsub|shardnumsub", -2, PS, G, "Returns the count of subscribers of shard channels.", Srv::Pubsub),
    server_sub("pubsub|help", 2, PS, G, "Returns helpful text about the different subcommands.", Srv::Pubsub),
];
