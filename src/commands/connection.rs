//! Connection commands. They change the connection's own state (protocol, name,
//! authentication), so they are served by `server::cmd`, never by the store.

use super::flags::*;
use super::*;

const G: &str = "connection";

pub static COMMANDS: &[CommandSpec] = &[
    spec("ping", -1, FAST | STALE | LOADING, (0, 0, 0), G, "Returns the server's liveliness response.", Handler::Server(Srv::Ping)),
    spec("echo", 2, FAST | STALE | LOADING, (0, 0, 0), G, "Returns the given string.", Handler::Server(Srv::Echo)),
    spec(
        "hello",
        -1,
        FAST | NO_AUTH | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Handshakes with the server.",
        Handler::Server(Srv::Hello),
    ),
    spec(
        "auth",
        -2,
        FAST | NO_AUTH | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Authenticates the connection.",
        Handler::Server(Srv::Auth),
    ),
    spec("select", 2, FAST | STALE | LOADING, (0, 0, 0), G, "Changes the selected database (only 0 exists).", Handler::Server(Srv::Select)),
    spec(
        "client",
        -2,
        ADMIN | STALE | LOADING | NOSCRIPT,
        (0, 0, 0),
        G,
        "A container for client connection commands.",
        Handler::Server(Srv::Client),
    ),
    spec(
        "quit",
        -1,
        FAST | NO_AUTH | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Closes the connection.",
        Handler::Server(Srv::Quit),
    ),
    spec(
        "reset",
        1,
        FAST | NO_AUTH | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Resets the connection.",
        Handler::Server(Srv::Reset),
    ),
];
