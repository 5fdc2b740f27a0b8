//! Pub/sub commands: served by the connection and `server::pubsub`; messages are not
//! state and never enter the log.

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
    spec("publish", 3, PUBSUB | LOADING | STALE | FAST, (0, 0, 0), G, "Posts a message to a channel.", Handler::Server(Srv::Publish)),
    spec(
        "pubsub",
        -2,
        PUBSUB | LOADING | STALE,
        (0, 0, 0),
        G,
        "A container for pub/sub introspection commands.",
        Handler::Server(Srv::Pubsub),
    ),
];
