//! Server commands: introspection and run-time settings, served by `server::cmd`.

use super::flags::*;
use super::*;

const G: &str = "server";

pub static COMMANDS: &[CommandSpec] = &[
    spec("info", -1, LOADING | STALE, (0, 0, 0), G, "Returns information and statistics about the server.", Handler::Server(Srv::Info)),
    spec("command", -1, LOADING | STALE, (0, 0, 0), G, "Returns detailed information about all commands.", Handler::Server(Srv::Command)),
    spec(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "A container for server configuration commands.",
        Handler::Server(Srv::Config),
    ),
    spec("time", 1, LOADING | STALE | FAST, (0, 0, 0), G, "Returns the server time.", Handler::Server(Srv::Time)),
    spec("memory", -2, READONLY, (0, 0, 0), G, "A container for memory diagnostics commands.", Handler::Server(Srv::Memory)),
    spec(
        "save",
        1,
        ADMIN | NOSCRIPT | NO_MULTI,
        (0, 0, 0),
        G,
        "Takes a snapshot of the stripe's state machine and waits for it.",
        Handler::Server(Srv::Save),
    ),
    spec(
        "bgsave",
        -1,
        ADMIN | NOSCRIPT | NO_MULTI,
        (0, 0, 0),
        G,
        "Starts a snapshot of the stripe's state machine.",
        Handler::Server(Srv::Bgsave),
    ),
    spec(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        (0, 0, 0),
        G,
        "Returns the Unix time of the last snapshot.",
        Handler::Server(Srv::Lastsave),
    ),
    spec("role", 1, NOSCRIPT | LOADING | STALE | FAST, (0, 0, 0), G, "Returns the replication role.", Handler::Server(Srv::Role)),
    spec(
        "cluster",
        -2,
        STALE,
        (0, 0, 0),
        G,
        "The Redis Cluster protocol: the array's slots, stripes and servers.",
        Handler::Server(Srv::Cluster),
    ),
    spec(
        "asking",
        1,
        FAST,
        (0, 0, 0),
        G,
        "Accepted for cluster clients: Tandem moves no slots yet, so never asks.",
        Handler::Server(Srv::Asking),
    ),
    spec(
        "readonly",
        1,
        FAST | LOADING | STALE,
        (0, 0, 0),
        G,
        "Lets reads on a mirror be served locally, possibly stale.",
        Handler::Server(Srv::Readonly),
    ),
    spec(
        "readwrite",
        1,
        FAST | LOADING | STALE,
        (0, 0, 0),
        G,
        "Sends reads on a mirror to the active again.",
        Handler::Server(Srv::Readwrite),
    ),
];
