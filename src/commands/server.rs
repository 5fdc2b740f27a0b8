//! Server commands: introspection and run-time settings, served by `server::admin`.

use super::flags::*;
use super::*;

const G: &str = "server";

pub static COMMANDS: &[CommandSpec] = &[
    spec("info", -1, LOADING | STALE, (0, 0, 0), G, "Returns information and statistics about the server.", Handler::Server),
    spec("command", -1, LOADING | STALE, (0, 0, 0), G, "Returns detailed information about all commands.", Handler::Server),
    spec("config", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "A container for server configuration commands.", Handler::Server),
    spec("time", 1, LOADING | STALE | FAST, (0, 0, 0), G, "Returns the server time.", Handler::Server),
    spec("memory", -2, READONLY, (0, 0, 0), G, "A container for memory diagnostics commands.", Handler::Server),
];
