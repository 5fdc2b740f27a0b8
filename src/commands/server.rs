//! Server commands: introspection and run-time settings, served by `server::cmd`.

use super::flags::*;
use super::*;

const G: &str = "server";

pub static COMMANDS: &[CommandSpec] = &[
    spec("info", -1, LOADING | STALE, (0, 0, 0), G, "Returns information and statistics about the server.", Handler::Server(Srv::Info)),
    server_container(
        "command",
        -1,
        LOADING | STALE,
        G,
        "Returns detailed information about all commands.",
        Srv::Command,
        COMMAND_SUBCOMMANDS,
    ),
    server_container("config", -2, CFG, G, "A container for server configuration commands.", Srv::Config, CONFIG_SUBCOMMANDS),
    spec(
        "monitor",
        1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Listens for all requests received by the server in real-time.",
        Handler::Server(Srv::Monitor),
    ),
    spec("time", 1, LOADING | STALE | FAST, (0, 0, 0), G, "Returns the server time.", Handler::Server(Srv::Time)),
    server_container("memory", -2, READONLY, G, "A container for memory diagnostics commands.", Srv::Memory, MEMORY_SUBCOMMANDS),
    server_container("slowlog", -2, ADMIN | LOADING | STALE, G, "A container for slow log commands.", Srv::Slowlog, SLOWLOG_SUBCOMMANDS),
    server_container(
        "latency",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        G,
        "A container for latency diagnostics commands.",
        Srv::Latency,
        LATENCY_SUBCOMMANDS,
    ),
    spec(
        "save",
        1,
        ADMIN | NOSCRIPT | NO_MULTI,
        (0, 0, 0),
        G,
        "Takes a snapshot of the stripe's state machine and waits for it.",
        Handler::Server(Srv::Save),
    ),
    spec("bgsave", -1, ADMIN | NOSCRIPT, (0, 0, 0), G, "Starts a snapshot of the stripe's state machine.", Handler::Server(Srv::Bgsave)),
    spec(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        (0, 0, 0),
        G,
        "Stops this server as `tandem stop` does: an active hands over to a caught-up mirror first; refused where it would stop the stripe, unless FORCE.",
        Handler::Server(Srv::Shutdown),
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
        "wait",
        3,
        NOSCRIPT,
        (0, 0, 0),
        G,
        "Blocks until the mirrors holding the connection's writes number at least numreplicas, or the timeout passes; answers how many do.",
        Handler::Server(Srv::Wait),
    ),
    server_container(
        "cluster",
        -2,
        STALE,
        G,
        "The Redis Cluster protocol: the array's slots, stripes and servers.",
        Srv::Cluster,
        CLUSTER_SUBCOMMANDS,
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

const CFG: u32 = ADMIN | NOSCRIPT | LOADING | STALE;
const CMD: u32 = LOADING | STALE;
const SLOW: u32 = ADMIN | LOADING | STALE;
const LAT: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    server_sub("command|count", 2, CMD, G, "Returns a count of commands.", Srv::Command),
    server_sub("command|docs", -2, CMD, G, "Returns documentary information about one, multiple or all commands.", Srv::Command),
    server_sub("command|getkeys", -4, CMD, G, "Extracts the key names from an arbitrary command.", Srv::Command),
    server_sub("command|getkeysandflags", -4, CMD, G, "Extracts the key names and access flags for an arbitrary command.", Srv::Command),
    server_sub("command|help", 2, CMD, G, "Returns helpful text about the different subcommands.", Srv::Command),
    server_sub("command|info", -2, CMD, G, "Returns information about one, multiple or all commands.", Srv::Command),
    server_sub("command|list", -2, CMD, G, "Returns a list of command names.", Srv::Command),
];

static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    server_sub("config|get", -3, CFG, G, "Returns the effective values of configuration parameters.", Srv::Config),
    server_sub("config|help", 2, CFG, G, "Returns helpful text about the different subcommands.", Srv::Config),
    server_sub("config|resetstat", 2, CFG, G, "Resets the server's statistics.", Srv::Config),
    server_sub("config|rewrite", 2, CFG, G, "Persists the effective configuration to file.", Srv::Config),
    server_sub("config|set", -4, CFG, G, "Sets configuration parameters in-flight.", Srv::Config),
];

static MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    server_sub("memory|doctor", 2, READONLY, G, "Outputs a memory problems report.", Srv::Memory),
    server_sub("memory|help", 2, READONLY, G, "Returns helpful text about the different subcommands.", Srv::Memory),
    server_sub("memory|purge", 2, READONLY, G, "Asks the allocator to release memory.", Srv::Memory),
    server_sub("memory|stats", 2, READONLY, G, "Returns details about memory usage.", Srv::Memory),
    spec("memory|usage", -3, READONLY, (2, 2, 1), G, "Estimates the memory usage of a key.", Handler::Server(Srv::Memory)),
];

static SLOWLOG_SUBCOMMANDS: &[CommandSpec] = &[
    server_sub("slowlog|get", -2, SLOW, G, "Returns the slow log's entries.", Srv::Slowlog),
    server_sub("slowlog|help", 2, SLOW, G, "Show helpful text about the different subcommands.", Srv::Slowlog),
    server_sub("slowlog|len", 2, SLOW, G, "Returns the number of entries in the slow log.", Srv::Slowlog),
    server_sub("slowlog|reset", 2, SLOW, G, "Clears all entries from the slow log.", Srv::Slowlog),
];

static LATENCY_SUBCOMMANDS: &[CommandSpec] = &[
    server_sub("latency|doctor", 2, LAT, G, "Returns a human-readable latency analysis report.", Srv::Latency),
    server_sub("latency|graph", 3, LAT, G, "Returns a latency graph for an event.", Srv::Latency),
    server_sub("latency|help", 2, LAT, G, "Returns helpful text about the different subcommands.", Srv::Latency),
    server_sub(
        "latency|histogram",
        -2,
        LAT,
        G,
        "Returns the cumulative distribution of latencies of a subset or all commands.",
        Srv::Latency,
    ),
    server_sub("latency|history", 3, LAT, G, "Returns timestamp-latency samples for an event.", Srv::Latency),
    server_sub("latency|latest", 2, LAT, G, "Returns the latest latency samples for all events.", Srv::Latency),
    server_sub("latency|reset", -2, LAT, G, "Resets the latency data for one or more events.", Srv::Latency),
];

/// CLUSTER's subcommands that Tandem serves, with Redis 7's arities.
static CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    server_sub("cluster|countkeysinslot", 3, STALE, G, "Returns the number of keys in a hash slot.", Srv::Cluster),
    server_sub("cluster|getkeysinslot", 4, STALE, G, "Returns the key names in a hash slot.", Srv::Cluster),
    server_sub("cluster|help", 2, STALE, G, "Returns helpful text about the different subcommands.", Srv::Cluster),
    server_sub("cluster|info", 2, STALE, G, "Returns information about the state of a node.", Srv::Cluster),
    server_sub("cluster|keyslot", 3, STALE, G, "Returns the hash slot for a key.", Srv::Cluster),
    server_sub("cluster|links", 2, STALE, G, "Returns a list of all TCP links to and from peer nodes.", Srv::Cluster),
    server_sub("cluster|myid", 2, STALE, G, "Returns the ID of a node.", Srv::Cluster),
    server_sub("cluster|myshardid", 2, STALE, G, "Returns the shard ID of a node.", Srv::Cluster),
    server_sub("cluster|nodes", 2, STALE, G, "Returns the cluster configuration for a node.", Srv::Cluster),
    server_sub("cluster|replicas", 3, STALE, G, "Lists the replica nodes of a master node.", Srv::Cluster),
    server_sub("cluster|shards", 2, STALE, G, "Returns the mapping of cluster slots to shards.", Srv::Cluster),
    server_sub("cluster|slaves", 3, STALE, G, "Lists the replica nodes of a master node.", Srv::Cluster),
    server_sub("cluster|slots", 2, STALE, G, "Returns the mapping of cluster slots to nodes.", Srv::Cluster),
];
