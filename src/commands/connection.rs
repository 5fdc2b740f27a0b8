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
    server_container("client", -2, CL, G, "A container for client connection commands.", Srv::Client, CLIENT_SUBCOMMANDS),
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

const CL: u32 = ADMIN | STALE | LOADING | NOSCRIPT;
const CL_SELF: u32 = STALE | LOADING | NOSCRIPT;

/// CLIENT's subcommands with Redis 7's arities (counting `CLIENT` and the subcommand).
static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    server_sub("client|caching", 3, CL_SELF, G, "Instructs the server whether to track the keys in the next request.", Srv::ClientTracking),
    server_sub("client|getname", 2, CL_SELF, G, "Returns the name of the connection.", Srv::Client),
    server_sub(
        "client|getredir",
        2,
        CL_SELF,
        G,
        "Returns the client ID to which the connection's tracking notifications are redirected.",
        Srv::Client,
    ),
    server_sub("client|help", 2, CL_SELF, G, "Returns helpful text about the different subcommands.", Srv::Client),
    server_sub("client|id", 2, CL_SELF, G, "Returns the unique client ID of the connection.", Srv::Client),
    server_sub("client|info", 2, CL_SELF, G, "Returns information about the connection.", Srv::Client),
    server_sub("client|kill", -3, CL, G, "Terminates open connections.", Srv::Client),
    server_sub("client|list", -2, CL, G, "Lists open connections.", Srv::Client),
    server_sub("client|no-evict", 3, CL, G, "Sets the client eviction mode of the connection.", Srv::Client),
    server_sub(
        "client|no-touch",
        3,
        CL_SELF,
        G,
        "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.",
        Srv::Client,
    ),
    server_sub("client|pause", -3, CL, G, "Suspends commands processing.", Srv::ClientPause),
    server_sub("client|reply", 3, CL_SELF, G, "Instructs the server whether to reply to commands.", Srv::Client),
    server_sub("client|setinfo", 4, CL_SELF, G, "Sets information specific to the client or connection.", Srv::Client),
    server_sub("client|setname", 3, CL_SELF, G, "Sets the connection name.", Srv::Client),
    server_sub("client|tracking", -3, CL_SELF, G, "Controls server-assisted client-side caching for the connection.", Srv::ClientTracking),
    server_sub(
        "client|trackinginfo",
        2,
        CL_SELF,
        G,
        "Returns information about server-assisted client-side caching for the connection.",
        Srv::Client,
    ),
    server_sub(
        "client|unblock",
        -3,
        CL,
        G,
        "Unblocks a client blocked by a blocking command from a different connection.",
        Srv::ClientUnblock,
    ),
    server_sub("client|unpause", 2, CL, G, "Resumes processing commands from paused clients.", Srv::Client),
];

/// SELECT's answer: only database 0 exists (from a client or a script alike).
pub fn select(args: &[Bytes]) -> Reply {
    match parse_i64(&args[1]) {
        Some(0) => Reply::status("OK"),
        Some(_) => Reply::err("ERR DB index is out of range"),
        None => Reply::err(ERR_NOT_INT),
    }
}
