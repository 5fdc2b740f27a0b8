//! MULTI/EXEC/DISCARD/WATCH/UNWATCH: served by the connection, which queues the
//! commands and submits them to the store as one entry.

use super::flags::*;
use super::*;

const G: &str = "transactions";

pub static COMMANDS: &[CommandSpec] = &[
    spec("multi", 1, FAST | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, (0, 0, 0), G, "Starts a transaction.", Handler::Server(Srv::Multi)),
    spec("exec", 1, NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Executes all commands in a transaction.", Handler::Server(Srv::Exec)),
    spec(
        "discard",
        1,
        FAST | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Discards a transaction.",
        Handler::Server(Srv::Discard),
    ),
    spec(
        "watch",
        -2,
        FAST | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        (1, -1, 1),
        G,
        "Monitors changes to keys to determine the execution of a transaction.",
        Handler::Server(Srv::Watch),
    ),
    spec(
        "unwatch",
        1,
        FAST | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Forgets about watched keys of a transaction.",
        Handler::Server(Srv::Unwatch),
    ),
];
