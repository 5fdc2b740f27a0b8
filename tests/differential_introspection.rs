//! Differential test of the introspection surface (issue 12): INFO commandstats and
//! errorstats, CONFIG RESETSTAT and multi-pattern CONFIG GET, SLOWLOG, LATENCY,
//! CLIENT KILL/REPLY/UNBLOCK/PAUSE arguments, COMMAND GETKEYS/LIST/INFO — the same
//! commands sent to redis-server 7.0.15 and to Tandem, in RESP2 and RESP3; replies
//! must be equal. What differs by nature is normalised, never hidden: times and
//! durations (only the counts of commandstats are compared; a slow-log entry is
//! compared by its arguments and client name), client addresses.
//!
//!   cargo test --test differential_introspection

mod support;

use redis::Value;
use support::differential::{connect, outcome};
use support::redis_server::RedisServer;
use support::Server;

/// Both servers' replies to `args`, which must be equal after `normalise`.
fn same(
    t: &mut redis::Connection,
    r: &mut redis::Connection,
    protocol: u8,
    args: &[&str],
    normalise: fn(Result<Value, String>) -> Result<Value, String>,
) {
    let theirs = normalise(outcome(r, args));
    let ours = normalise(outcome(t, args));
    assert_eq!(ours, theirs, "RESP{protocol}: {args:?} (tandem left, redis-server right)");
}

fn exact(v: Result<Value, String>) -> Result<Value, String> {
    v
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// INFO commandstats without the times: `name calls rejected failed` per command,
/// sorted (Redis lists them in its dict's order).
fn counts_only(v: Result<Value, String>) -> Result<Value, String> {
    v.map(|value| {
        let mut lines: Vec<String> = text(&value)
            .lines()
            .filter_map(|line| {
                let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let kept: Vec<&str> = fields.split(',').filter(|f| !f.starts_with("usec")).collect();
                Some(format!("{name} {}", kept.join(",")))
            })
            .collect();
        lines.sort();
        Value::BulkString(lines.join("\n").into_bytes())
    })
}

/// INFO's text, line by line (RESP3 sends it as a verbatim string).
fn info_lines(v: Result<Value, String>) -> Result<Value, String> {
    v.map(|value| Value::BulkString(text(&value).replace("\r\n", "\n").into_bytes()))
}

/// Map replies compared as sorted pairs (CONFIG GET: Redis's order is its dict's).
fn sorted_pairs(v: Result<Value, String>) -> Result<Value, String> {
    v.map(|value| {
        let mut pairs: Vec<(String, String)> = match value {
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
            Value::Array(items) => items.chunks(2).map(|p| (text(&p[0]), p.get(1).map(text).unwrap_or_default())).collect(),
            other => return other,
        };
        pairs.sort();
        Value::Array(pairs.into_iter().map(|(k, v)| Value::BulkString(format!("{k}={v}").into_bytes())).collect())
    })
}

/// SLOWLOG GET: each entry's arguments and client name (ids, times, durations and
/// addresses differ by nature).
fn slowlog_args(v: Result<Value, String>) -> Result<Value, String> {
    v.map(|value| match value {
        Value::Array(entries) => Value::Array(
            entries
                .into_iter()
                .map(|e| match e {
                    Value::Array(fields) if fields.len() == 6 => Value::Array(vec![fields[3].clone(), fields[5].clone()]),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    })
}

/// A list compared as a sorted list (COMMAND LIST's order is each table's).
fn sorted(v: Result<Value, String>) -> Result<Value, String> {
    v.map(|value| match value {
        Value::Array(items) | Value::Set(items) => {
            let mut names: Vec<String> = items.iter().map(text).collect();
            names.sort();
            Value::Array(names.into_iter().map(|n| Value::BulkString(n.into_bytes())).collect())
        }
        other => other,
    })
}

fn stats_phase(t: &mut redis::Connection, r: &mut redis::Connection, protocol: u8) {
    for cmd in [&["FLUSHALL"][..], &["CONFIG", "RESETSTAT"]] {
        same(t, r, protocol, cmd, exact);
    }
    let script: &[&[&str]] = &[
        &["SET", "foo", "bar"],
        &["GEOADD", "foo", "0", "0", "bar"],
        &["SET", "foo"],
        &["NOSUCHCMD", "x"],
        &["MULTI"],
        &["SET", "a", "1"],
        &["INCR", "foo"],
        &["EXEC"],
        &["MULTI"],
        &["GET"],
        &["EXEC"],
        &["LPUSH", "l", "x"],
        &["BRPOP", "l", "0"],
        &["CLIENT", "KILL", "ID", "0"],
        &["CLIENT", "KILL"],
        &["CONFIG", "GET", "slowlog-max-len"],
        &["EXPIRE", "foo", "0"],
    ];
    for cmd in script {
        same(t, r, protocol, cmd, exact);
    }
    same(t, r, protocol, &["INFO", "commandstats"], counts_only);
    same(t, r, protocol, &["INFO", "errorstats"], info_lines);
    same(t, r, protocol, &["CONFIG", "RESETSTAT"], exact);
    same(t, r, protocol, &["INFO", "commandstats"], counts_only);
    same(t, r, protocol, &["INFO", "errorstats"], info_lines);
    same(t, r, protocol, &["CONFIG", "RESETSTAT", "x"], exact);
    // maxmemory differs by design (data-storage's default), so it is not asked.
    same(t, r, protocol, &["CONFIG", "GET", "slowlog-*", "latency-monitor-*", "hz"], sorted_pairs);
}

fn slowlog_phase(t: &mut redis::Connection, r: &mut redis::Connection, protocol: u8) {
    let exact_cmds: &[&[&str]] = &[
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
        &["SLOWLOG", "RESET"],
        &["SLOWLOG", "LEN"],
        &["SLOWLOG", "GET", "-2"],
        &["SLOWLOG", "GET", "x"],
        &["SLOWLOG", "LEN", "x"],
        &["SLOWLOG", "NOPE"],
        &["SLOWLOG"],
        &["CONFIG", "SET", "slowlog-max-len", "3"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
        &["CLIENT", "SETNAME", "differ"],
        &["SET", "key", "test"],
        &["SADD", "set", "a", "b", "c"],
        &["INCR", "num"],
        &["LPUSH", "list", "a"],
        &["SLOWLOG", "LEN"],
    ];
    for cmd in exact_cmds {
        same(t, r, protocol, cmd, exact);
    }
    same(t, r, protocol, &["SLOWLOG", "GET"], slowlog_args);
    same(t, r, protocol, &["SLOWLOG", "GET", "1"], slowlog_args);
    same(t, r, protocol, &["SLOWLOG", "GET", "0"], slowlog_args);
    let long = "A".repeat(129);
    let many: Vec<String> = (3..=40).map(|n| n.to_string()).collect();
    let mut sadd = vec!["SADD", "set2"];
    sadd.extend(many.iter().map(String::as_str));
    same(t, r, protocol, &["SADD", "set3", "foo", &long], exact);
    same(t, r, protocol, &sadd, exact);
    same(t, r, protocol, &["SLOWLOG", "GET", "2"], slowlog_args);
    for cmd in
        [&["CONFIG", "SET", "slowlog-log-slower-than", "10000"][..], &["CONFIG", "SET", "slowlog-max-len", "128"], &["SLOWLOG", "RESET"]]
    {
        same(t, r, protocol, cmd, exact);
    }
}

fn latency_phase(t: &mut redis::Connection, r: &mut redis::Connection, protocol: u8) {
    let cmds: &[&[&str]] = &[
        &["CONFIG", "SET", "latency-monitor-threshold", "200"],
        &["LATENCY", "RESET"],
        &["LATENCY", "LATEST"],
        &["LATENCY", "HISTORY", "command"],
        &["LATENCY", "HISTORY", "blabla"],
        &["LATENCY", "RESET", "blabla"],
        &["LATENCY", "GRAPH", "command"],
        &["LATENCY", "HELP", "xxx"],
        &["LATENCY", "HISTORY"],
        &["LATENCY", "NOPE"],
        &["CONFIG", "RESETSTAT"],
        &["LATENCY", "HISTOGRAM", "blabla"],
        &["LATENCY", "HISTOGRAM", "blabla", "blabla2"],
        &["CONFIG", "SET", "latency-monitor-threshold", "0"],
    ];
    for cmd in cmds {
        same(t, r, protocol, cmd, exact);
    }
}

fn client_phase(t: &mut redis::Connection, r: &mut redis::Connection, protocol: u8) {
    let cmds: &[&[&str]] = &[
        &["CLIENT", "KILL"],
        &["CLIENT", "KILL", "ID", "10", "wrong_arg"],
        &["CLIENT", "KILL", "ID", "str"],
        &["CLIENT", "KILL", "ID", "-1"],
        &["CLIENT", "KILL", "ID", "0"],
        &["CLIENT", "KILL", "TYPE", "wrong_type"],
        &["CLIENT", "KILL", "USER", "wrong_user"],
        &["CLIENT", "KILL", "SKIPME", "yes_or_no"],
        &["CLIENT", "KILL", "NOPE", "x"],
        &["CLIENT", "KILL", "1.2.3.4:5"],
        &["CLIENT", "KILL", "ID", "99999"],
        &["CLIENT", "KILL", "TYPE", "master"],
        &["CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "no"],
        &["CLIENT", "REPLY", "maybe"],
        &["CLIENT", "REPLY"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "NO-EVICT", "on"],
        &["CLIENT", "NO-EVICT", "off"],
        &["CLIENT", "UNBLOCK", "99999"],
        &["CLIENT", "UNBLOCK", "x"],
        &["CLIENT", "UNBLOCK", "99999", "foo"],
        &["CLIENT", "UNBLOCK", "99999", "ERROR"],
        &["CLIENT", "UNBLOCK"],
        &["CLIENT", "PAUSE", "-1"],
        &["CLIENT", "PAUSE", "x"],
        &["CLIENT", "PAUSE", "10", "maybe"],
        &["CLIENT", "PAUSE", "0", "WRITE"],
        &["CLIENT", "UNPAUSE"],
        &["CLIENT", "UNPAUSE", "x"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "LIST", "TYPE", "nope"],
        &["CLIENT", "LIST", "ID", "x"],
        &["CLIENT", "LIST", "nope"],
        &["CLIENT", "LIST", "TYPE", "master"],
        &["CLIENT", "NOPE"],
        // CLIENT TRACKING: its options checked against each other and the client's mode.
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "CACHING", "yes"],
        &["CLIENT", "TRACKING", "maybe"],
        &["CLIENT", "TRACKING", "on", "nope"],
        &["CLIENT", "TRACKING", "on", "REDIRECT", "x"],
        &["CLIENT", "TRACKING", "on", "REDIRECT", "99999"],
        &["CLIENT", "TRACKING", "on", "PREFIX", "a"],
        &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"],
        &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"],
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab", "PREFIX", "a"],
        &["CLIENT", "TRACKING", "on", "OPTIN"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "CACHING", "no"],
        &["CLIENT", "CACHING", "maybe"],
        &["CLIENT", "CACHING", "yes"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "on", "OPTOUT"],
        &["CLIENT", "TRACKING", "on", "BCAST"],
        &["CLIENT", "TRACKING", "off"],
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "b", "NOLOOP"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab"],
        &["CLIENT", "TRACKING", "on"],
        &["CLIENT", "TRACKING", "off"],
        &["CLIENT", "TRACKINGINFO"],
    ];
    for cmd in cmds {
        same(t, r, protocol, cmd, exact);
    }
}

fn command_phase(t: &mut redis::Connection, r: &mut redis::Connection, protocol: u8) {
    let cmds: &[&[&str]] = &[
        &["COMMAND", "GETKEYS", "get", "key"],
        &["COMMAND", "GETKEYS", "memory", "usage", "key"],
        &["COMMAND", "GETKEYS", "xgroup", "create", "key", "groupname", "$"],
        &["COMMAND", "GETKEYS", "eval", "return 1", "1", "key"],
        &["COMMAND", "GETKEYS", "eval", "return 1", "0"],
        &["COMMAND", "GETKEYS", "lcs", "key1", "key2"],
        &["COMMAND", "GETKEYS", "zunionstore", "target", "3", "a", "b", "c"],
        &["COMMAND", "GETKEYS", "ping"],
        &["COMMAND", "GETKEYS", "set"],
        &["COMMAND", "GETKEYS", "nosuch", "x"],
        // WAIT on a server without replicas: 0, at once or when the timeout passes.
        &["WAIT", "0", "0"],
        &["WAIT", "1", "10"],
        &["WAIT", "-1", "0"],
        &["WAIT", "x", "0"],
        &["WAIT", "0", "x"],
        &["WAIT", "0", "-1"],
        &["WAIT", "0"],
        // Each key with its key spec's flags (a write's keys differ: LMOVE's source is
        // `RW access delete`, its destination `RW insert`).
        &["COMMAND", "GETKEYSANDFLAGS", "set", "k1", "v1"],
        &["COMMAND", "GETKEYSANDFLAGS", "set", "k1", "v1", "get"],
        &["COMMAND", "GETKEYSANDFLAGS", "mset", "k1", "v1", "k2", "v2"],
        &["COMMAND", "GETKEYSANDFLAGS", "lmove", "k1", "k2", "left", "right"],
        &["COMMAND", "GETKEYSANDFLAGS", "sort", "k1", "store", "k2"],
        &["COMMAND", "GETKEYSANDFLAGS", "sort", "k1", "by", "w_*", "get", "#", "store", "k2"],
        &["COMMAND", "GETKEYSANDFLAGS", "sort_ro", "k1"],
        &["COMMAND", "GETKEYSANDFLAGS", "smove", "a", "b", "m"],
        &["COMMAND", "GETKEYSANDFLAGS", "bitfield", "k", "get", "u8", "0"],
        &["COMMAND", "GETKEYSANDFLAGS", "bitfield", "k", "set", "u8", "0", "1"],
        &["COMMAND", "GETKEYSANDFLAGS", "georadius", "g", "0", "0", "1", "km", "store", "d1", "storedist", "d2"],
        &["COMMAND", "GETKEYSANDFLAGS", "xread", "count", "1", "streams", "s1", "s2", "0", "0"],
        &["COMMAND", "GETKEYSANDFLAGS", "xreadgroup", "group", "g", "c", "streams", "s1", ">"],
        &["COMMAND", "GETKEYSANDFLAGS", "migrate", "h", "1", "", "0", "5", "keys", "a", "b"],
        &["COMMAND", "GETKEYSANDFLAGS", "migrate", "h", "1", "k", "0", "5"],
        &["COMMAND", "GETKEYSANDFLAGS", "eval", "return 1", "2", "a", "b"],
        &["COMMAND", "GETKEYSANDFLAGS", "zunionstore", "t", "2", "a", "b"],
        &["COMMAND", "GETKEYSANDFLAGS", "blmpop", "0", "2", "a", "b", "left"],
        &["COMMAND", "GETKEYSANDFLAGS", "rename", "a", "b"],
        &["COMMAND", "GETKEYSANDFLAGS", "copy", "a", "b"],
        &["COMMAND", "GETKEYSANDFLAGS", "getdel", "a"],
        &["COMMAND", "GETKEYSANDFLAGS", "getex", "a", "px", "5"],
        &["COMMAND", "GETKEYSANDFLAGS", "pfmerge", "d", "a", "b"],
        &["COMMAND", "GETKEYSANDFLAGS", "bitop", "and", "d", "a", "b"],
        &["COMMAND", "GETKEYSANDFLAGS", "object", "encoding", "a"],
        &["COMMAND", "GETKEYSANDFLAGS", "memory", "usage", "a"],
        &["COMMAND", "GETKEYSANDFLAGS", "xgroup", "create", "s", "g", "$"],
        &["COMMAND", "GETKEYSANDFLAGS", "del", "a", "b"],
        &["COMMAND", "GETKEYSANDFLAGS", "ping"],
        &["COMMAND", "GETKEYS"],
        &["COMMAND", "INFO", "get|key"],
        &["COMMAND", "INFO", "config|get|key"],
        &["COMMAND", "LIST", "bad_arg"],
        &["COMMAND", "LIST", "FILTERBY", "bad_arg"],
        &["COMMAND", "LIST", "FILTERBY", "bad_arg", "bad_arg2"],
        &["COMMAND", "LIST", "FILTERBY", "aclcat", "non_existing_category"],
        &["COMMAND", "LIST", "FILTERBY", "pattern", "set"],
        &["COMMAND", "LIST", "FILTERBY", "pattern", "non_exists*"],
        &["COMMAND", "LIST", "FILTERBY", "module", "non_existing_module"],
        &["COMMAND", "NOPE"],
    ];
    for cmd in cmds {
        same(t, r, protocol, cmd, exact);
    }
    same(t, r, protocol, &["COMMAND", "LIST", "FILTERBY", "pattern", "config|*"], sorted);
    same(t, r, protocol, &["COMMAND", "LIST", "FILTERBY", "pattern", "slowlog*"], sorted);
    same(t, r, protocol, &["COMMAND", "LIST", "FILTERBY", "pattern", "latency*"], sorted);
}

/// INFO's sections, in Redis's order, for the default set, `everything` and one
/// section alone (clients split the text at the `# ` headers).
fn info_sections_phase(t: &mut redis::Connection, r: &mut redis::Connection) {
    let headers = |con: &mut redis::Connection, args: &[&str]| -> Vec<String> {
        let mut cmd = redis::cmd("INFO");
        for a in args {
            cmd.arg(*a);
        }
        let text: String = cmd.query(con).expect("INFO");
        text.lines().filter(|l| l.starts_with("# ")).map(str::to_string).collect()
    };
    for args in [&[][..], &["everything"], &["modules"], &["default"], &["cpu", "modules", "keyspace"]] {
        assert_eq!(headers(t, args), headers(r, args), "INFO {args:?}: sections (tandem left, redis-server right)");
    }
}

#[test]
fn introspection_answers_as_redis_server_does() {
    let tandem = Server::start();
    let redis = RedisServer::start();
    for protocol in [2u8, 3] {
        let mut t = connect(&format!("{}?protocol=resp{protocol}", tandem.url()));
        let mut r = connect(&redis.url(protocol));
        stats_phase(&mut t, &mut r, protocol);
        slowlog_phase(&mut t, &mut r, protocol);
        latency_phase(&mut t, &mut r, protocol);
        client_phase(&mut t, &mut r, protocol);
        command_phase(&mut t, &mut r, protocol);
        info_sections_phase(&mut t, &mut r);
    }
}
