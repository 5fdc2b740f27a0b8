//! Tandem: a server array for clustering application servers.
//!
//! Module map (read ARCHITECTURE.md for the request path and the invariants):
//!
//! - [`config`]: the TOML file and flags → a validated [`config::Config`].
//! - [`limits`]: every bound on what a peer can make us do, with the reason.
//! - [`protocol`]: RESP2/RESP3 requests in, replies out.
//! - [`commands`]: the command table; one file per family; parse arguments, then apply.
//! - [`store`]: the deterministic state machine: `apply(entry) -> replies`.
//! - [`acl`]: ACL users (Redis 7.0's rules), the stripe's users and the permission check.
//! - [`clock`]: the wall clock (with the test hook) and the active's entry clock.
//! - [`scripting`]: the Lua engine scripts (EVAL, FCALL) run in, inside `apply`.
//! - [`cluster`]: hash slots, the cluster view and routing (pure).
//! - [`server`]: listener, connections, pub/sub fan-out, blocking, expiry and eviction.
//! - [`management`]: the management port: JSON API, procedures, health, metrics, console.
//! - [`logging`]: log lines as text or JSON, each naming the stripe and the member.
//! - [`check`]: the fault harness (`tandem check`): real processes, faults from a seed,
//!   and checkers of the clients' history (linearizability, lists, counters, digests).

pub mod acl;
pub mod check;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod limits;
pub mod logging;
pub mod management;
pub mod memory;
pub mod protocol;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod store;
