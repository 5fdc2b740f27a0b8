//! The commands as ACL rules name them: one id per command and per subcommand, its
//! ACL categories, and how it touches its keys. Built once from this server's command
//! table and Redis 7.0.15's own (`redis_table`): a subcommand Redis has under a
//! container this server serves by one handler (`client|kill`, `config|set`) gets an
//! id of its own, so `-client|kill` means what it means in Redis.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use super::redis_table::{self, KeySpec};

/// What Redis's table says of a command: its categories and key specs.
type RedisRow = (&'static [&'static str], &'static [KeySpec]);
use crate::commands::{self, flags, CommandSpec};

/// Redis's ACL categories, in its order (ACL CAT lists them so; bit i is category i).
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of a category name (case-insensitive), or `None`.
pub fn category_bit(name: &[u8]) -> Option<u32> {
    CATEGORIES.iter().position(|c| c.as_bytes().eq_ignore_ascii_case(name)).map(|i| 1 << i)
}

fn bit_of(name: &str) -> u32 {
    category_bit(name.as_bytes()).unwrap_or(0)
}

/// How one key spec of a command touches its keys (Redis's key-spec flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAccess {
    /// The argument where this spec's search begins; `None`: found by a keyword.
    pub begin: Option<usize>,
    pub read: bool,
    pub write: bool,
    /// The spec's flags as COMMAND lists them (`RW`, `access`, `delete`, …); empty for
    /// this server's own commands, which have no Redis key specs.
    pub flags: &'static [&'static str],
}

pub struct Command {
    /// `get`, or `config|get` for a subcommand.
    pub name: String,
    pub parent: Option<usize>,
    pub subs: Vec<usize>,
    pub categories: u32,
    pub keys: Vec<KeyAccess>,
    /// NO_AUTH commands (AUTH, HELLO) are never refused by ACL rules, as in Redis.
    pub no_auth: bool,
}

pub struct Registry {
    pub commands: Vec<Command>,
    by_name: HashMap<String, usize>,
}

impl Registry {
    /// Bits a selector needs: one per command, and one more for "future commands"
    /// (set only by `+@all`, so that ACL GETUSER can tell `+@all -x` from a list).
    pub fn bits(&self) -> usize {
        self.commands.len() + 1
    }

    pub fn future_bit(&self) -> usize {
        self.commands.len()
    }

    /// The id of a command or `parent|sub` name (case-insensitive).
    pub fn id(&self, name: &[u8]) -> Option<usize> {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        self.by_name.get(&lower).copied()
    }

    /// The id a request is checked against: its subcommand's when Redis has one for
    /// the second argument, else the command's.
    pub fn id_of_request(&self, spec: &CommandSpec, args: &[Bytes]) -> Option<usize> {
        let id = *self.by_name.get(spec.name)?;
        let command = self.commands.get(id)?;
        if command.subs.is_empty() || spec.name.contains('|') {
            return Some(id);
        }
        let Some(sub) = args.get(1) else { return Some(id) };
        let found = command.subs.iter().copied().find(|&s| {
            self.commands.get(s).and_then(|c| c.name.split_once('|')).is_some_and(|(_, n)| n.as_bytes().eq_ignore_ascii_case(sub))
        });
        Some(found.unwrap_or(id))
    }

    /// Commands of a category, parents before their subcommands (ACL CAT).
    pub fn in_category(&self, bit: u32) -> impl Iterator<Item = &Command> {
        self.commands.iter().filter(move |c| c.categories & bit != 0)
    }
}

/// The registry of this build's command table.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(build)
}

fn build() -> Registry {
    let redis: HashMap<&str, RedisRow> = redis_table::COMMANDS.iter().map(|(name, cats, keys)| (*name, (*cats, *keys))).collect();
    let mut registry = Registry { commands: Vec::new(), by_name: HashMap::new() };
    for spec in commands::all().filter(|s| !s.has(flags::INTERNAL)) {
        let parent = add(&mut registry, spec.name, None, describe(spec, redis.get(spec.name).copied()));
        for sub in spec.subcommands.iter().filter(|s| !s.has(flags::INTERNAL)) {
            add(&mut registry, sub.name, Some(parent), describe(sub, redis.get(sub.name).copied()));
        }
    }
    // Redis's commands this server does not serve (DEBUG, MIGRATE…) are names rules
    // may use, so that an ACL file written for Redis (`-debug`) loads: such commands
    // are never run here. Then Redis's subcommands of containers served here by one
    // handler (`client|kill`) and of those commands.
    for pass_subcommands in [false, true] {
        for (name, cats, keys) in redis_table::COMMANDS {
            if registry.by_name.contains_key(*name) || name.contains('|') != pass_subcommands {
                continue;
            }
            let parent = match name.split_once('|') {
                Some((parent_name, _)) => match registry.by_name.get(parent_name) {
                    Some(&parent) => Some(parent),
                    None => continue,
                },
                None => None,
            };
            let categories = cats.iter().map(|c| bit_of(c)).fold(0, |a, b| a | b);
            add(&mut registry, name, parent, (categories, key_access(keys), false));
        }
    }
    registry
}

fn add(registry: &mut Registry, name: &str, parent: Option<usize>, (categories, keys, no_auth): (u32, Vec<KeyAccess>, bool)) -> usize {
    let id = registry.commands.len();
    registry.commands.push(Command { name: name.to_string(), parent, subs: Vec::new(), categories, keys, no_auth });
    registry.by_name.insert(name.to_string(), id);
    if let Some(p) = parent.and_then(|p| registry.commands.get_mut(p)) {
        p.subs.push(id);
    }
    id
}

fn key_access(keys: &[KeySpec]) -> Vec<KeyAccess> {
    keys.iter().map(|&(begin, read, write, flags)| KeyAccess { begin: usize::try_from(begin).ok(), read, write, flags }).collect()
}

/// Categories and key access of one of this server's commands: Redis's where Redis
/// has the command, else derived from its flags and family as Redis derives them.
fn describe(spec: &CommandSpec, redis: Option<RedisRow>) -> (u32, Vec<KeyAccess>, bool) {
    let no_auth = spec.has(flags::NO_AUTH);
    if let Some((cats, keys)) = redis {
        return (cats.iter().map(|c| bit_of(c)).fold(0, |a, b| a | b), key_access(keys), no_auth);
    }
    let mut cats = 0;
    let mut add = |name: &str| cats |= bit_of(name);
    if spec.has(flags::WRITE) {
        add("write");
    }
    if spec.has(flags::READONLY) {
        add("read");
    }
    if spec.has(flags::ADMIN) {
        add("admin");
        add("dangerous");
    }
    if spec.has(flags::PUBSUB) {
        add("pubsub");
    }
    add(if spec.has(flags::FAST) { "fast" } else { "slow" });
    if spec.has(flags::BLOCKING) {
        add("blocking");
    }
    match spec.group {
        "string" => add("string"),
        "list" => add("list"),
        "hash" => add("hash"),
        "set" => add("set"),
        "sorted-set" => add("sortedset"),
        "stream" => add("stream"),
        "bitmap" => add("bitmap"),
        "hyperloglog" => add("hyperloglog"),
        "geo" => add("geo"),
        "generic" => add("keyspace"),
        "scripting" => add("scripting"),
        "transactions" => add("transaction"),
        "connection" => add("connection"),
        _ => {}
    }
    let keys = vec![KeyAccess { begin: None, read: true, write: spec.has(flags::WRITE), flags: &[] }];
    (cats, keys, no_auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_categories_reach_this_servers_commands_and_their_subcommands() {
        let r = registry();
        let get = r.id(b"GET").expect("get");
        assert_eq!(r.commands[get].categories, bit_of("read") | bit_of("string") | bit_of("fast"));
        let kill = r.id(b"client|kill").expect("client|kill is an id of its own");
        assert_eq!(r.commands[kill].parent, r.id(b"client"));
        assert!(r.id(b"script|load").is_some());
        assert!(r.id(b"no-such").is_none());
        assert!(r.id(b"tandem.expired").is_none(), "internal commands are no ACL names");
        assert!(r.id(b"debug").is_some(), "Redis's commands not served here are names rules may use");
    }

    #[test]
    fn a_request_is_checked_as_its_subcommand() {
        let r = registry();
        let spec = commands::lookup(b"config").expect("config");
        let args = [Bytes::from_static(b"config"), Bytes::from_static(b"SET"), Bytes::from_static(b"x")];
        assert_eq!(r.id_of_request(spec, &args), r.id(b"config|set"));
        let bad = [Bytes::from_static(b"config"), Bytes::from_static(b"nope")];
        assert_eq!(r.id_of_request(spec, &bad), r.id(b"config"));
    }
}
