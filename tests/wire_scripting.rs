//! Scripting through a real client (the `redis` crate): EVAL/EVALSHA with its script
//! helper, in pipelines and MULTI, SCRIPT KILL of a long read-only script while other
//! clients get -BUSY, and the script cache surviving kill -9 of a restartable server.

mod support;

use std::time::Duration;

use support::{ConfigServer, Server};

/// Waits (up to 20 s) until `command` from `con` is answered `-BUSY`: a script holds
/// the server past busy-reply-threshold.
fn wait_busy(con: &mut redis::Connection, command: &str) -> bool {
    support::wait_until(Duration::from_secs(20), || {
        let r: redis::RedisResult<redis::Value> = redis::cmd(command).query(con);
        r.is_err_and(|e| e.to_string().contains("BUSY"))
    })
}

#[test]
fn the_script_helper_loads_and_reruns_by_sha() {
    let server = Server::start();
    let mut con = server.conn();
    let script = redis::Script::new("return redis.call('incrby', KEYS[1], ARGV[1])");
    let a: i64 = script.key("counter").arg(5).invoke(&mut con).unwrap();
    let b: i64 = script.key("counter").arg(5).invoke(&mut con).unwrap();
    assert_eq!((a, b), (5, 10));
    let exists: Vec<i64> = redis::cmd("SCRIPT").arg("EXISTS").arg(script.get_hash()).query(&mut con).unwrap();
    assert_eq!(exists, vec![1]);
}

#[test]
fn eval_works_in_pipelines_and_transactions() {
    let server = Server::start();
    let mut con = server.conn();
    let mut pipe = redis::pipe();
    for _ in 0..50 {
        pipe.cmd("EVAL").arg("return redis.call('incr', KEYS[1])").arg(1).arg("p");
    }
    let got: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(got, (1..=50).collect::<Vec<i64>>());
    let (x, y): (i64, String) = redis::pipe()
        .atomic()
        .cmd("EVAL")
        .arg("return redis.call('incr', KEYS[1])")
        .arg(1)
        .arg("p")
        .cmd("EVAL")
        .arg("return redis.call('get', KEYS[1])")
        .arg(1)
        .arg("p")
        .query(&mut con)
        .unwrap();
    assert_eq!((x, y.as_str()), (51, "51"));
}

#[test]
fn script_kill_stops_a_long_read_only_script_while_others_get_busy() {
    let server = Server::start();
    let mut con = server.conn();
    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(1_000_000_000_000u64).query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("busy-reply-threshold").arg(10).query(&mut con).unwrap();
    let mut runner = server.conn();
    let long = std::thread::spawn(move || -> redis::RedisResult<String> {
        redis::cmd("EVAL_RO").arg("while true do end").arg(0).query(&mut runner)
    });
    let busy = support::wait_until(Duration::from_secs(20), || {
        let r: redis::RedisResult<String> = redis::cmd("GET").arg("x").query(&mut con);
        r.is_err_and(|e| e.to_string().contains("BUSY"))
    });
    assert!(busy, "other clients get -BUSY while the script runs past the threshold");
    let killed: String = redis::cmd("SCRIPT").arg("KILL").query(&mut con).unwrap();
    assert_eq!(killed, "OK");
    let err = long.join().unwrap().expect_err("the killed script fails");
    assert!(err.to_string().contains("killed by user"), "{err}");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

/// Redis's functions unit asks FUNCTION STATS while a function is busy (to find what
/// to kill): the answer names the function, the command that called it and how long
/// it has run; during a busy EVAL it is Redis's -BUSY. Tandem answered -BUSY to both.
#[test]
fn function_stats_describes_a_busy_function_and_function_kill_ends_it() {
    let server = Server::start();
    let mut con = server.conn();
    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(1_000_000_000_000u64).query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("busy-reply-threshold").arg(10).query(&mut con).unwrap();
    let code =
        "#!lua name=spin\nredis.register_function{function_name='spin', callback=function() while true do end end, flags={'no-writes'}}";
    let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(code).query(&mut con).unwrap();
    let idle: redis::Value = redis::cmd("FUNCTION").arg("STATS").query(&mut con).unwrap();
    assert_eq!(field(&idle, "running_script"), Some(&redis::Value::Nil), "{idle:?}");
    let lua = field(&idle, "engines").and_then(|e| field(e, "LUA")).expect("engines.LUA");
    assert_eq!(field(lua, "libraries_count"), Some(&redis::Value::Int(1)), "{idle:?}");
    assert_eq!(field(lua, "functions_count"), Some(&redis::Value::Int(1)), "{idle:?}");

    let mut runner = server.conn();
    let long = std::thread::spawn(move || -> redis::RedisResult<String> {
        redis::cmd("FCALL_RO").arg("spin").arg(0).arg("an-arg").query(&mut runner)
    });
    let busy = wait_busy(&mut con, "PING");
    assert!(busy, "PING gets -BUSY while the function runs past the threshold");
    let stats: redis::Value = redis::cmd("FUNCTION").arg("STATS").query(&mut con).expect("FUNCTION STATS during a busy function");
    let running = field(&stats, "running_script").expect("running_script");
    let text = |v: Option<&redis::Value>| match v {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    };
    assert_eq!(text(field(running, "name")), "spin", "{stats:?}");
    let command: Vec<String> = match field(running, "command") {
        Some(redis::Value::Array(parts)) => parts.iter().map(|p| text(Some(p))).collect(),
        other => panic!("command: {other:?}"),
    };
    assert_eq!(command, ["FCALL_RO", "spin", "0", "an-arg"]);
    assert!(matches!(field(running, "duration_ms"), Some(redis::Value::Int(ms)) if *ms >= 10), "{stats:?}");
    let killed: String = redis::cmd("FUNCTION").arg("KILL").query(&mut con).unwrap();
    assert_eq!(killed, "OK");
    assert!(long.join().unwrap().is_err(), "the killed function fails");

    let mut runner = server.conn();
    let long = std::thread::spawn(move || -> redis::RedisResult<String> {
        redis::cmd("EVAL_RO").arg("while true do end").arg(0).query(&mut runner)
    });
    let busy = support::wait_until(Duration::from_secs(20), || {
        let r: redis::RedisResult<redis::Value> = redis::cmd("FUNCTION").arg("STATS").query(&mut con);
        r.is_err_and(|e| e.to_string().contains("BUSY") && e.to_string().contains("SCRIPT KILL"))
    });
    assert!(busy, "FUNCTION STATS during a busy EVAL is -BUSY, as in Redis");
    let _: String = redis::cmd("SCRIPT").arg("KILL").query(&mut con).unwrap();
    assert!(long.join().unwrap().is_err());
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

/// Redis's scripting unit reads the script cache's size from INFO memory.
#[test]
fn info_memory_counts_the_cached_scripts() {
    let server = Server::start();
    let mut con = server.conn();
    let field = |con: &mut redis::Connection, name: &str| -> Option<u64> {
        let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
        info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
    };
    assert_eq!(field(&mut con, "number_of_cached_scripts"), Some(0));
    for j in 0..3 {
        let _: String = redis::cmd("SCRIPT").arg("LOAD").arg(format!("return {j}")).query(&mut con).unwrap();
    }
    assert_eq!(field(&mut con, "number_of_cached_scripts"), Some(3));
    assert!(field(&mut con, "used_memory_scripts").is_some_and(|b| b >= "return 0".len() as u64 * 3));
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").arg("ASYNC").query(&mut con).unwrap();
    assert_eq!(field(&mut con, "number_of_cached_scripts"), Some(0));
}

/// The value under `name` in a reply that is a map (RESP3) or a flat array of names
/// and values (RESP2).
fn field<'v>(reply: &'v redis::Value, name: &str) -> Option<&'v redis::Value> {
    let is_name = |k: &redis::Value| matches!(k, redis::Value::BulkString(b) if b == name.as_bytes());
    match reply {
        redis::Value::Map(pairs) => pairs.iter().find(|(k, _)| is_name(k)).map(|(_, v)| v),
        redis::Value::Array(items) => items.chunks_exact(2).find(|kv| is_name(&kv[0])).map(|kv| &kv[1]),
        _ => None,
    }
}

#[test]
fn the_script_cache_survives_kill9_of_a_restartable_server() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = support::write_single_server_config(dir.path(), true);
    let mut server = ConfigServer::start(dir.path(), &config, "server1", port);
    let mut con = server.conn();
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg("return 'kept'").query(&mut con).unwrap();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=l\nredis.register_function('f', function() return 'f kept' end)")
        .query(&mut con)
        .unwrap();
    drop(con);
    server.kill9();
    server.restart();
    let mut con = server.conn();
    let kept: String = redis::cmd("EVALSHA").arg(&sha).arg(0).query(&mut con).unwrap();
    assert_eq!(kept, "kept");
    let f: String = redis::cmd("FCALL").arg("f").arg(0).query(&mut con).unwrap();
    assert_eq!(f, "f kept");
}

/// Redis 7.0 sorts a set `SORT … BY <constant>` lexically when a script asks (and for
/// STORE), so a script never sees a set's internal order; a client asking directly
/// gets the set's order. Found by Redis's unit/scripting ("SORT BY <constant> output
/// gets ordered for scripting").
#[test]
fn sort_by_a_constant_of_a_set_is_ordered_for_scripts() {
    let server = Server::start();
    let mut con = server.conn();
    let members = ["z", "b", "aaa", "a", "azz", "c", "aa"];
    let _: i64 = redis::cmd("SADD").arg("myset").arg(&members[..]).query(&mut con).unwrap();
    let got: Vec<String> =
        redis::cmd("EVAL").arg("return redis.call('sort', KEYS[1], 'by', '_')").arg(1).arg("myset").query(&mut con).unwrap();
    assert_eq!(got, vec!["a", "aa", "aaa", "azz", "b", "c", "z"]);
    let with_get: Vec<Option<String>> = redis::cmd("EVAL")
        .arg("return redis.call('sort', KEYS[1], 'by', '_', 'get', '#', 'get', '_:*')")
        .arg(1)
        .arg("myset")
        .query(&mut con)
        .unwrap();
    assert_eq!(with_get.iter().step_by(2).flatten().collect::<Vec<_>>(), vec!["a", "aa", "aaa", "azz", "b", "c", "z"]);
    let direct: Vec<String> = redis::cmd("SORT").arg("myset").arg("BY").arg("_").query(&mut con).unwrap();
    let mut same = direct.clone();
    same.sort();
    assert_eq!(same, vec!["a", "aa", "aaa", "azz", "b", "c", "z"], "every member, in the set's order: {direct:?}");
}

/// The commands a script calls count in INFO commandstats and show on MONITOR as
/// `[0 lua]` after the script's own line, as in Redis (they run where the stripe
/// applies the script: the server that proposed it records them for its client).
#[test]
fn commands_called_by_scripts_are_counted_and_shown_to_monitors() {
    let server = Server::start();
    let mut con = server.conn();
    let mut monitor = server.raw();
    let got = support::exchange(&mut monitor, b"MONITOR\r\n", Duration::from_millis(200));
    assert_eq!(got, b"+OK\r\n");
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    let script = "redis.call('set', KEYS[1], 0); redis.call('expire', KEYS[1], 100); redis.call('set', KEYS[1], 1)";
    let _: () = redis::cmd("EVAL").arg(script).arg(1).arg("mykey").query(&mut con).unwrap();
    let ro: String = redis::cmd("EVAL_RO").arg("return redis.call('get', KEYS[1])").arg(1).arg("mykey").query(&mut con).unwrap();
    assert_eq!(ro, "1");
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut con).unwrap();
    for (name, calls) in [("eval", 1), ("set", 2), ("expire", 1), ("eval_ro", 1), ("get", 1)] {
        assert!(stats.contains(&format!("cmdstat_{name}:calls={calls},")), "{name} called {calls} times: {stats}");
    }
    let lines = String::from_utf8_lossy(&support::exchange(&mut monitor, b"", Duration::from_millis(300))).to_lowercase();
    let order: Vec<&str> = lines
        .lines()
        .filter_map(|l| {
            ["\"eval\"", "[0 lua] \"set\"", "[0 lua] \"expire\"", "\"eval_ro\"", "[0 lua] \"get\""].into_iter().find(|m| l.contains(m))
        })
        .collect();
    assert_eq!(
        order,
        vec!["\"eval\"", "[0 lua] \"set\"", "[0 lua] \"expire\"", "[0 lua] \"set\"", "\"eval_ro\"", "[0 lua] \"get\""],
        "monitor lines: {lines}"
    );
}

/// A lone server without Fast Restart (the development topology) has no other run of
/// a script to agree with: as on Redis, a script is not cut off by the stripe's
/// default instruction budget (5×10⁷); a budget the stripe sets itself still applies.
#[test]
fn a_lone_server_runs_a_script_past_the_default_budget_unless_one_is_set() {
    let server = Server::start();
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    // At least 1.2×10⁸ Lua instructions (two a turn): more than twice the default budget.
    let script = "local n = 0 for i = 1, 60000000 do n = n + 1 end redis.call('set', KEYS[1], n) return n";
    let n: i64 = redis::cmd("EVAL").arg(script).arg(1).arg("count").query(&mut con).unwrap();
    assert_eq!(n, 60_000_000);
    let stored: i64 = redis::cmd("GET").arg("count").query(&mut con).unwrap();
    assert_eq!(stored, 60_000_000);

    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(1_000_000).query(&mut con).unwrap();
    let err = redis::cmd("EVAL").arg(script).arg(1).arg("count2").query::<i64>(&mut con).unwrap_err();
    assert!(err.to_string().contains("Script stopped after 1000000 instructions"), "{err}");
    let absent: Option<String> = redis::cmd("GET").arg("count2").query(&mut con).unwrap();
    assert_eq!(absent, None);
}

/// A write script that runs longer than a client's write wait (5 s) holds up its own
/// client, as on Redis, rather than answering OUTCOMEUNKNOWN while it still runs: the
/// wait starts again while a script runs. SCRIPT KILL (a lone server) then ends it
/// with Redis's error; writes admitted before it apply after it.
#[test]
fn a_write_script_longer_than_the_write_wait_is_waited_for() {
    let server = Server::start();
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut runner = server.conn();
    runner.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let started = std::time::Instant::now();
    let long =
        std::thread::spawn(move || -> redis::RedisResult<String> { redis::cmd("EVAL").arg("while true do end").arg(0).query(&mut runner) });
    let busy = wait_busy(&mut con, "PING");
    assert!(busy, "other clients get -BUSY once the script passes busy-reply-threshold");
    // Past the 5 s a write waits for its outcome (the bound this test is about).
    while started.elapsed() < Duration::from_secs(7) {
        assert!(!long.is_finished(), "the script's client was answered while the script ran: {:?}", long.join());
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed: String = redis::cmd("SCRIPT").arg("KILL").query(&mut con).unwrap();
    assert_eq!(killed, "OK");
    let err = long.join().unwrap().expect_err("the killed script fails");
    assert!(err.to_string().contains("killed by user"), "{err}");
}

/// SIGTERM while a write script without end runs on a lone server: the server stops
/// (the script is ended, as Redis's SHUTDOWN NOSAVE ends a busy script) instead of
/// waiting for it forever.
#[test]
fn sigterm_stops_a_lone_server_busy_in_a_script_without_end() {
    let mut server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("busy-reply-threshold").arg(10).query(&mut con).unwrap();
    let mut runner = server.conn();
    let long = std::thread::spawn(move || -> redis::RedisResult<String> {
        redis::cmd("EVAL").arg("redis.call('set', KEYS[1], 'x') while true do end").arg(1).arg("k").query(&mut runner)
    });
    let busy = wait_busy(&mut con, "PING");
    assert!(busy, "the script runs");
    let status = server.terminate();
    assert!(status.success(), "stopped cleanly: {status}");
    assert!(long.join().unwrap().is_err(), "the script's client got no success");
}

fn info_line(con: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(con).ok()?;
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

/// An error a command called by a script answers is counted once in errorstats
/// (Redis's "Consistent eval error reporting"): at the call when `redis.pcall` catches
/// it, and once, not twice, when the script answers with it.
#[test]
fn a_script_calls_errors_count_once_in_errorstats() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(1).query(&mut con).unwrap();
    let cases = [
        ("caught by pcall", "local t = redis.pcall('set', KEYS[1], 'y') if t['err'] then return 1 end return 0", false),
        ("raised by call", "return redis.call('set', KEYS[1], 'y')", true),
        ("returned from pcall", "return redis.pcall('set', KEYS[1], 'y')", true),
    ];
    for (what, script, fails) in cases {
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
        let reply = redis::cmd("EVAL").arg(script).arg(1).arg("x").query::<redis::Value>(&mut con);
        match (fails, &reply) {
            (true, Err(e)) => assert!(e.to_string().contains("OOM"), "{what}: {e}"),
            (false, Ok(redis::Value::Int(1))) => {}
            _ => panic!("{what}: {reply:?}"),
        }
        assert_eq!(info_line(&mut con, "errorstats", "errorstat_OOM").as_deref(), Some("count=1"), "{what}");
        assert_eq!(info_line(&mut con, "stats", "total_error_replies").as_deref(), Some("1"), "{what}");
    }
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0).query(&mut con).unwrap();
}

/// A script stopped by its instruction budget leaves no KEYS or ARGV behind: a function
/// run after it reads the global `KEYS` as Redis answers it (no such global), not the
/// stopped script's keys. (They were left set when the stop came from the count hook,
/// which raises again on the next instruction, outside the script's protected call.)
#[test]
fn a_stopped_script_leaves_no_keys_for_a_function_after_it() {
    let server = Server::start();
    let mut con = server.conn();
    let library = "#!lua name=leak\nredis.register_function('peek', function(keys, args) return KEYS[1] end)";
    let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(library).query(&mut con).unwrap();
    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(1_000_000).query(&mut con).unwrap();
    let err =
        redis::cmd("EVAL").arg("while true do end").arg(1).arg("secret-key").arg("secret-arg").query::<redis::Value>(&mut con).unwrap_err();
    assert!(err.to_string().contains("Script stopped after 1000000 instructions"), "{err}");
    let peek = redis::cmd("FCALL").arg("peek").arg(0).query::<redis::Value>(&mut con);
    let err = peek.expect_err("a function reading the global KEYS fails");
    assert!(err.to_string().contains("nonexistent global variable 'KEYS'"), "{err}");
}
