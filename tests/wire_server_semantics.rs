//! Server behaviours Redis's own suite checks and clients rely on (issue 12):
//! CONFIG SET all-or-nothing with several parameters, hidden and aliased parameters,
//! lazy freeing (UNLINK, FLUSHALL ASYNC) and its INFO counters, EXEC refused whole
//! (EXECABORT) during a busy script or out of memory, SAVE refused inside MULTI,
//! PUBLISH from a script, an idle client's query buffer given back, a blocked command
//! in the slow log, expiry at the end of a write pause.

mod support;

use std::time::Duration;

use support::{log_phases, wait_until, Server};

fn config_get(con: &mut redis::Connection, pattern: &str) -> Vec<(String, String)> {
    redis::cmd("CONFIG").arg("GET").arg(pattern).query(con).expect("CONFIG GET")
}

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> Option<u64> {
    let info: String = redis::cmd("INFO").arg(section).query(con).ok()?;
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn config_set_of_several_parameters_is_all_or_nothing() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    tracing::info!("--- several parameters at once, `save` among them");
    let ok: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("10000001")
        .arg("repl-backlog-size")
        .arg("10000002")
        .arg("save")
        .arg("3000 5")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(config_get(&mut con, "maxmemory"), vec![("maxmemory".into(), "10000001".into())]);
    assert_eq!(config_get(&mut con, "save"), vec![("save".into(), "3000 5".into())]);
    assert_eq!(config_get(&mut con, "repl-backlog-size"), vec![("repl-backlog-size".into(), "10000002".into())]);

    tracing::info!("--- a refused value leaves every parameter as it was, with Redis's error");
    let before = config_get(&mut con, "maxmemory-clients");
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("12345678")
        .arg("maxmemory-clients")
        .arg("200%")
        .arg("client-query-buffer-limit")
        .arg("invalid")
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("ERR"));
    assert_eq!(
        err.detail(),
        Some("CONFIG SET failed (possibly related to argument 'maxmemory-clients') - percentage argument must be less or equal to 100")
    );
    assert_eq!(config_get(&mut con, "maxmemory"), vec![("maxmemory".into(), "10000001".into())]);
    assert_eq!(config_get(&mut con, "maxmemory-clients"), before);
    let ok: String = redis::cmd("CONFIG").arg("SET").arg("maxmemory-clients").arg("10%").query(&mut con).unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(config_get(&mut con, "maxmemory-clients"), vec![("maxmemory-clients".into(), "10%".into())]);

    tracing::info!("--- a parameter named twice (an alias included) is refused");
    let err = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1").arg("maxmemory").arg("2").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("duplicate parameter"), "{err}");
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("hash-max-ziplist-entries")
        .arg("1")
        .arg("hash-max-listpack-entries")
        .arg("2")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("duplicate parameter"), "{err}");
    let err = redis::cmd("CONFIG").arg("SET").arg("save").arg("3000").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("Invalid save parameters"), "{err}");

    tracing::info!("--- hidden parameters only by name; a glob lists each parameter once, aliases too");
    assert!(config_get(&mut con, "*").iter().all(|(k, _)| k != "key-load-delay"));
    assert_eq!(config_get(&mut con, "key-load-delay"), vec![("key-load-delay".into(), "0".into())]);
    let all: Vec<(String, String)> = redis::cmd("CONFIG").arg("GET").arg("maxmemory").arg("maxmemory*").arg("*of").query(&mut con).unwrap();
    let mut names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "no parameter twice: {all:?}");
    for name in ["maxmemory", "maxmemory-clients", "maxmemory-samples", "replicaof", "slaveof"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

#[test]
fn unlink_and_flushall_async_free_in_the_background() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let members: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    let _: i64 = redis::cmd("SADD").arg("big").arg(&members).query(&mut con).unwrap();
    let _: i64 = redis::cmd("SADD").arg("small").arg(&members[..10]).query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    tracing::info!("--- UNLINK of a large set is freed in the background, a small one in place");
    let n: i64 = redis::cmd("UNLINK").arg("big").arg("small").arg("missing").query(&mut con).unwrap();
    assert_eq!(n, 2);
    let exists: i64 = redis::cmd("EXISTS").arg("big").arg("small").query(&mut con).unwrap();
    assert_eq!(exists, 0, "the keys are gone when UNLINK answers");
    let freed = wait_until(Duration::from_secs(10), || {
        info_field(&mut con, "memory", "lazyfree_pending_objects") == Some(0)
            && info_field(&mut con, "stats", "lazyfreed_objects") == Some(1)
    });
    assert!(freed, "one object lazily freed: {:?}", info_field(&mut con, "stats", "lazyfreed_objects"));

    tracing::info!("--- FLUSHALL ASYNC counts a key an object");
    for i in 0..5 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg("v").query(&mut con).unwrap();
    }
    let _: () = redis::cmd("FLUSHALL").arg("ASYNC").query(&mut con).unwrap();
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);
    let freed = wait_until(Duration::from_secs(10), || info_field(&mut con, "stats", "lazyfreed_objects") == Some(6));
    assert!(freed, "five keys more: {:?}", info_field(&mut con, "stats", "lazyfreed_objects"));
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    assert_eq!(info_field(&mut con, "stats", "lazyfreed_objects"), Some(0));
}

#[test]
fn exec_is_refused_whole_while_a_script_is_busy_or_memory_is_full() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    // The loop must outlive the stripe's default budget: it runs until SCRIPT KILL.
    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(1_000_000_000_000u64).query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("busy-reply-threshold").arg(10).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("xx").arg(1).query(&mut con).unwrap();
    let mut queued = server.conn();
    let _: () = redis::cmd("MULTI").query(&mut queued).unwrap();
    let _: String = redis::cmd("INCR").arg("xx").query(&mut queued).unwrap();

    tracing::info!("--- a read-only script loops; other clients meet -BUSY");
    let mut runner = server.conn();
    let long = std::thread::spawn(move || -> redis::RedisResult<String> {
        redis::cmd("EVAL_RO").arg("while true do end").arg(0).query(&mut runner)
    });
    let busy = wait_until(Duration::from_secs(20), || {
        redis::cmd("GET").arg("xx").query::<String>(&mut con).is_err_and(|e| e.to_string().contains("BUSY"))
    });
    assert!(busy, "other clients get -BUSY");
    tracing::info!("--- a command queued during the busy script dooms the transaction; EXEC itself is refused whole");
    let err = redis::cmd("INCR").arg("xx").query::<String>(&mut queued).unwrap_err();
    assert!(err.to_string().contains("BUSY"), "{err}");
    let err = redis::cmd("EXEC").query::<redis::Value>(&mut queued).unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::ExecAbortError, "{err}");
    assert!(err.detail().is_some_and(|d| d.starts_with("Transaction discarded because of: BUSY")), "{err}");
    let killed: String = redis::cmd("SCRIPT").arg("KILL").query(&mut con).unwrap();
    assert_eq!(killed, "OK");
    assert!(long.join().unwrap().is_err());
    let xx: i64 = redis::cmd("GET").arg("xx").query(&mut con).unwrap();
    assert_eq!(xx, 1, "nothing of the transaction ran");
    let pong: String = redis::cmd("PING").arg("asdf").query(&mut queued).unwrap();
    assert_eq!(pong, "asdf", "the connection left MULTI");

    tracing::info!("--- out of memory under noeviction, EXEC with a write is refused whole");
    let _: () = redis::cmd("MULTI").query(&mut queued).unwrap();
    let _: String = redis::cmd("SET").arg("x").arg("1").query(&mut queued).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(1).query(&mut con).unwrap();
    let err = redis::cmd("EXEC").query::<redis::Value>(&mut queued).unwrap_err();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0).query(&mut con).unwrap();
    assert_eq!(err.kind(), redis::ErrorKind::ExecAbortError, "{err}");
    assert!(err.detail().is_some_and(|d| d.starts_with("Transaction discarded because of: OOM")), "{err}");

    tracing::info!("--- SAVE inside MULTI is refused and dooms the transaction");
    let _: () = redis::cmd("MULTI").query(&mut queued).unwrap();
    let err = redis::cmd("SAVE").query::<String>(&mut queued).unwrap_err();
    assert!(err.to_string().contains("Command not allowed inside a transaction"), "{err}");
    let err = redis::cmd("EXEC").query::<redis::Value>(&mut queued).unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::ExecAbortError, "{err}");
}

#[test]
fn a_write_script_publishes_and_a_read_only_one_may_not() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let mut sub = server.client().get_connection().unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("ch").unwrap();
    tracing::info!("--- PUBLISH from a write script reaches subscribers; a read-only script may not publish");
    let n: i64 = redis::cmd("EVAL").arg("return redis.call('publish', 'ch', 'hello')").arg(0).query(&mut con).unwrap();
    assert_eq!(n, 0, "receivers are not replicated state: the script sees 0");
    let msg = pubsub.get_message().expect("the message arrives");
    assert_eq!(msg.get_channel_name(), "ch");
    assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
    let err = redis::cmd("EVAL_RO").arg("return redis.call('publish', 'ch', 'x')").arg(0).query::<i64>(&mut con).unwrap_err();
    assert!(err.to_string().contains("Write commands are not allowed from read-only scripts"), "{err}");
}

/// CLIENT LIST's `qbuf` + `qbuf-free` of the client named `name`.
fn query_buffer(con: &mut redis::Connection, name: &str) -> Option<u64> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(con).ok()?;
    let line = list.lines().find(|l| l.contains(&format!(" name={name} ")))?;
    let field = |f: &str| line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{f}="))).and_then(|v| v.parse::<u64>().ok());
    Some(field("qbuf")? + field("qbuf-free")?)
}

#[test]
fn an_idle_client_gives_its_query_buffer_back() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let mut idle = server.conn();
    let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("idler").query(&mut idle).unwrap();
    let first = query_buffer(&mut con, "idler").expect("listed");
    assert!(first >= 16 * 1024, "a read buffer while the client is active: {first}");
    tracing::info!("--- idle for two seconds, it holds no read buffer; it works on as before");
    let started = std::time::Instant::now();
    let released = wait_until(Duration::from_secs(20), || query_buffer(&mut con, "idler") == Some(0));
    assert!(released, "released: {:?}", query_buffer(&mut con, "idler"));
    assert!(started.elapsed() >= Duration::from_millis(1500), "released only once idle: {:?}", started.elapsed());
    let _: () = redis::cmd("SET").arg("x").arg("small").query(&mut idle).unwrap();
    assert!(query_buffer(&mut con, "idler").is_some_and(|b| b > 0), "a buffer again once it reads");
    tracing::info!("--- a large value grows the buffer; the growth is given back after it");
    let big = "B".repeat(400_000);
    let _: () = redis::cmd("SET").arg("y").arg(&big).query(&mut idle).unwrap();
    let grown = query_buffer(&mut con, "idler").unwrap();
    assert!(grown > 64 * 1024, "grown for the large value: {grown}");
    // Small commands keep coming (so the idle release is not what shrinks it).
    let shrunk = wait_until(Duration::from_secs(5), || {
        let _: () = redis::cmd("SET").arg("x").arg("small").query(&mut idle).unwrap();
        query_buffer(&mut con, "idler").is_some_and(|b| b > 0 && b <= 32 * 1024)
    });
    assert!(shrunk, "the buffer shrank after small reads: {:?}", query_buffer(&mut con, "idler"));
    let back: String = redis::cmd("GET").arg("y").query(&mut idle).unwrap();
    assert_eq!(back, big);
}

#[test]
fn a_blocked_command_is_slow_logged_when_served_with_its_run_time() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("slowlog-log-slower-than").arg(0).query(&mut con).unwrap();
    let mut waiter = server.conn();
    let blocked =
        std::thread::spawn(move || -> redis::RedisResult<(String, String)> { redis::cmd("BLPOP").arg("l").arg(0).query(&mut waiter) });
    let waiting = wait_until(Duration::from_secs(10), || info_field(&mut con, "clients", "blocked_clients") == Some(1));
    assert!(waiting, "the BLPOP blocks");
    // Waits a second blocked: the slow log must not count it as run time.
    std::thread::sleep(Duration::from_secs(1));
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    let _: i64 = redis::cmd("LPUSH").arg("l").arg("foo").query(&mut con).unwrap();
    assert_eq!(blocked.join().unwrap().unwrap(), ("l".to_string(), "foo".to_string()));
    let log: Vec<(i64, i64, i64, Vec<String>, String, String)> = redis::cmd("SLOWLOG").arg("GET").query(&mut con).unwrap();
    let blpop = log.iter().find(|e| e.3 == ["BLPOP", "l", "0"]).unwrap_or_else(|| panic!("BLPOP logged once served: {log:?}"));
    assert!(blpop.2 < 1_000_000, "logged with the time it ran ({} us), not the second it waited", blpop.2);
}

#[test]
fn keys_that_expired_during_a_write_pause_go_when_it_ends() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let expired = |con: &mut redis::Connection| info_field(con, "stats", "expired_keys").unwrap();
    let before = expired(&mut con);
    let _: () = redis::cmd("SET").arg("foo").arg("bar").arg("PX").arg(10).query(&mut con).unwrap();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(50_000).arg("WRITE").query(&mut con).unwrap();
    let gone = wait_until(Duration::from_secs(10), || redis::cmd("GET").arg("foo").query::<Option<String>>(&mut con).unwrap().is_none());
    assert!(gone, "logically expired while paused");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(expired(&mut con), before, "nothing is deleted while writes are paused");
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut con).unwrap();
    assert_eq!(expired(&mut con), before + 1, "deleted by the time UNPAUSE answers");
    assert_eq!(info_field(&mut con, "stats", "migrate_cached_sockets"), Some(0));
}

#[test]
fn min_replicas_to_write_refuses_writes_without_enough_mirrors() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("x").arg("some value").query(&mut con).unwrap();
    tracing::info!("--- a lone server has no mirror: with min-replicas-to-write 1 it refuses writes, serves reads");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg(1).query(&mut con).unwrap();
    let err = redis::cmd("SET").arg("x").arg("1").query::<String>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOREPLICAS"), "{err}");
    let v: String = redis::cmd("GET").arg("x").query(&mut con).unwrap();
    assert_eq!(v, "some value");
    tracing::info!("--- scripts: a read-only one runs, a shebang script that may write is refused, a plain one fails at its write");
    let v: String = redis::cmd("EVAL").arg("#!lua flags=no-writes\nreturn redis.call('get','x')").arg(1).arg("x").query(&mut con).unwrap();
    assert_eq!(v, "some value");
    let v: String = redis::cmd("EVAL").arg("return redis.call('get','x')").arg(1).arg("x").query(&mut con).unwrap();
    assert_eq!(v, "some value");
    let err = redis::cmd("EVAL").arg("#!lua\nreturn redis.call('get','x')").arg(1).arg("x").query::<String>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOREPLICAS"), "{err}");
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    let err = redis::cmd("EVAL").arg("return redis.call('set','x',1)").arg(1).arg("x").query::<String>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOREPLICAS"), "{err}");
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut con).unwrap();
    let set = stats.lines().find(|l| l.starts_with("cmdstat_set:")).unwrap_or_default();
    assert!(set.starts_with("cmdstat_set:calls=0,") && set.contains("rejected_calls=1,failed_calls=0"), "{stats}");
    tracing::info!("--- a transaction with a write is refused whole; a blocking pop too");
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let _: String = redis::cmd("SET").arg("x").arg("2").query(&mut con).unwrap();
    let err = redis::cmd("EXEC").query::<redis::Value>(&mut con).unwrap_err();
    assert_eq!(err.kind(), redis::ErrorKind::ExecAbortError, "{err}");
    assert!(err.detail().is_some_and(|d| d.contains("NOREPLICAS")), "{err}");
    let err = redis::cmd("BLPOP").arg("l").arg("0.1").query::<redis::Value>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOREPLICAS"), "{err}");
    tracing::info!("--- the script cache is no data: SCRIPT LOAD still works, as on Redis");
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg("return 1").query(&mut con).unwrap();
    assert_eq!(sha.len(), 40);
    tracing::info!("--- a blocking read still waits; MIGRATE is refused before anything moves");
    let read: redis::Value = redis::cmd("XREAD").arg("BLOCK").arg(50).arg("STREAMS").arg("s").arg("$").query(&mut con).unwrap();
    assert_eq!(read, redis::Value::Nil);
    let err = redis::cmd("MIGRATE").arg("127.0.0.1").arg(1).arg("x").arg(0).arg(1000).query::<String>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOREPLICAS"), "{err}");
    tracing::info!("--- back to 0: writes work again");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg(0).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("x").arg("3").query(&mut con).unwrap();
    let v: i64 = redis::cmd("GET").arg("x").query(&mut con).unwrap();
    assert_eq!(v, 3, "nothing refused was applied in between");
}

#[test]
fn info_config_and_memory_during_a_running_script_hold_up_no_one_else() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(1_000_000_000_000u64).query(&mut con).unwrap();
    // No -BUSY during the test: the commands below wait for the script instead.
    let _: () = redis::cmd("CONFIG").arg("SET").arg("busy-reply-threshold").arg(600_000).query(&mut con).unwrap();
    let mut runner = server.conn();
    let long = std::thread::spawn(move || -> redis::RedisResult<String> {
        redis::cmd("EVAL_RO").arg("while true do end").arg(0).query(&mut runner)
    });
    // CLIENT LIST reads no store: the runner shows its script command once admitted.
    let running = wait_until(Duration::from_secs(20), || {
        redis::cmd("CLIENT").arg("LIST").query::<String>(&mut con).is_ok_and(|list| list.contains("cmd=eval_ro"))
    });
    assert!(running, "the script runs");
    tracing::info!("--- clients asking INFO, CONFIG GET and MEMORY STATS wait for the store");
    let waiters: Vec<_> = [vec!["INFO"], vec!["CONFIG", "GET", "maxmemory"], vec!["MEMORY", "STATS"]]
        .into_iter()
        .map(|command| {
            let mut c = server.conn();
            std::thread::spawn(move || -> redis::RedisResult<redis::Value> {
                let mut cmd = redis::cmd(command[0]);
                for a in &command[1..] {
                    cmd.arg(*a);
                }
                cmd.query(&mut c)
            })
        })
        .collect();
    tracing::info!("--- meanwhile the server answers everyone else");
    let mut other = server.conn();
    for _ in 0..3 {
        let pong: String = redis::cmd("PING").query(&mut other).unwrap();
        assert_eq!(pong, "PONG");
    }
    assert!(!long.is_finished(), "PING answered while the script still ran");
    let killed: String = redis::cmd("SCRIPT").arg("KILL").query(&mut other).unwrap();
    assert_eq!(killed, "OK");
    assert!(long.join().unwrap().is_err());
    for waiter in waiters {
        assert!(waiter.join().unwrap().is_ok(), "answered once the script ended");
    }
}

/// SCRIPT KILL until it answers OK: NOTBUSY until the script has begun (up to 20 s);
/// a wedged server answers nothing at all, and the connection's read timeout then
/// fails the test.
fn kill_the_script(con: &mut redis::Connection, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match redis::cmd("SCRIPT").arg("KILL").query::<String>(con) {
            Ok(ok) => break assert_eq!(ok, "OK", "{what}"),
            Err(e) if e.code() == Some("NOTBUSY") && std::time::Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("{what}: SCRIPT KILL: {e}"),
        }
    }
}

/// MEMORY STATS, CONFIG GET and CLUSTER COUNTKEYSINSLOT read the store in place on
/// the server's one thread. Sent just as an endless read-only script starts, one used
/// to come between the script's thread taking the store and its script beginning: it
/// locked the thread until the script ended, so SCRIPT KILL was never read and the
/// server served no one (seen as a CI run hung in the test above). Now such a command
/// waits for the store without blocking; every round here must end with the script
/// killed and every command answered.
#[test]
fn commands_reading_the_store_as_a_read_script_starts_never_wedge_the_server() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(1_000_000_000_000u64).query(&mut con).unwrap();
    let mut killer = server.conn();
    for round in 0..20 {
        tracing::info!(
            round,
            "--- an endless EVAL_RO while MEMORY STATS, CONFIG GET, CLUSTER and MULTI INFO EXEC are asked without a pause"
        );
        // A fresh Lua VM for each round: the script's thread builds it holding the
        // store, before the script begins (the widest moment to come in).
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The last is INFO inside MULTI, answered at EXEC after the transaction's entry.
        let readers: Vec<_> = [
            vec!["MEMORY", "STATS"],
            vec!["CONFIG", "GET", "maxmemory"],
            vec!["CLUSTER", "COUNTKEYSINSLOT", "1"],
            vec!["INFO", "keyspace"],
        ]
        .into_iter()
        .enumerate()
        .map(|(i, command)| {
            let mut c = server.conn();
            let stop = stop.clone();
            std::thread::spawn(move || -> redis::RedisResult<u64> {
                let mut cmd = redis::cmd(command[0]);
                for a in &command[1..] {
                    cmd.arg(*a);
                }
                let mut in_multi = redis::pipe();
                in_multi.atomic().add_command(cmd.clone());
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && answered < 1_000_000 {
                    let answer = match i {
                        3 => in_multi.query::<redis::Value>(&mut c),
                        _ => cmd.query::<redis::Value>(&mut c),
                    };
                    match answer {
                        Ok(_) => {}
                        Err(e) if e.code() == Some("BUSY") || e.kind() == redis::ErrorKind::ExecAbortError => {}
                        Err(e) => return Err(e),
                    }
                    answered += 1;
                }
                Ok(answered)
            })
        })
        .collect();
        let mut runner = server.conn();
        let long = std::thread::spawn(move || -> redis::RedisResult<String> {
            redis::cmd("EVAL_RO").arg("while true do end").arg(0).query(&mut runner)
        });
        // NOTBUSY until the script has begun; a wedged server answers nothing at all
        // (the connection's 10 s read timeout then fails the test).
        kill_the_script(&mut killer, &format!("round {round}"));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(long.join().unwrap().is_err(), "round {round}: the script was killed");
        for reader in readers {
            let answered = reader.join().unwrap();
            assert!(answered.is_ok(), "round {round}: {answered:?}");
        }
    }
}

/// A write from another client while an endless read-only script holds the store:
/// its apply waits for the script without blocking the server. Before, the apply
/// locked the store on the server's one thread: PING and SCRIPT KILL went unanswered
/// for good. The write is applied once the script is killed, or answered as unknown
/// if that took longer than the stripe's answer deadline; never lost once answered OK.
#[test]
fn a_write_during_an_endless_read_script_leaves_the_server_answering() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(1_000_000_000_000u64).query(&mut con).unwrap();
    let mut runner = server.conn();
    let long = std::thread::spawn(move || -> redis::RedisResult<String> {
        redis::cmd("EVAL_RO").arg("while true do end").arg(0).query(&mut runner)
    });
    // CLIENT LIST reads no store; a client shows its command once it is admitted.
    let admitted = |con: &mut redis::Connection, cmd: &str| {
        redis::cmd("CLIENT").arg("LIST").query::<String>(con).is_ok_and(|l| l.contains(&format!("cmd={cmd} ")))
    };
    assert!(wait_until(Duration::from_secs(20), || admitted(&mut con, "eval_ro")), "the script runs");
    tracing::info!("--- a SET from another client, then PING from a third");
    let mut writer = server.conn();
    let write = std::thread::spawn(move || -> redis::RedisResult<String> { redis::cmd("SET").arg("a").arg("1").query(&mut writer) });
    assert!(wait_until(Duration::from_secs(20), || admitted(&mut con, "set")), "the write was admitted");
    let mut other = server.conn();
    let pong: String = redis::cmd("PING").query(&mut other).expect("PING answered while the write waits for the script");
    assert_eq!(pong, "PONG");
    tracing::info!("--- SCRIPT KILL is read and ends the script; the write then applies");
    kill_the_script(&mut other, "the write's script");
    assert!(long.join().unwrap().is_err(), "the script was killed");
    let written = write.join().unwrap();
    let value: Option<String> = redis::cmd("GET").arg("a").query(&mut other).unwrap();
    match written {
        Ok(ok) => assert_eq!((ok.as_str(), value.as_deref()), ("OK", Some("1")), "an acknowledged write is there"),
        Err(e) => assert_eq!(e.code(), Some("OUTCOMEUNKNOWN"), "{e}"),
    }
}

#[test]
fn shutdown_stops_the_server_as_tandem_stop_does() {
    log_phases();
    let mut server = Server::start();
    let mut con = server.conn();
    tracing::info!("--- inside MULTI it is refused; alone in its stripe the server refuses without FORCE");
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let err = redis::cmd("SHUTDOWN").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("Command not allowed inside a transaction"), "{err}");
    let _: redis::RedisResult<redis::Value> = redis::cmd("DISCARD").query(&mut con);
    let err = redis::cmd("SHUTDOWN").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("SHUTDOWN FORCE"), "{err}");
    let err = redis::cmd("SHUTDOWN").arg("ABORT").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("No shutdown in progress"), "{err}");
    let err = redis::cmd("SHUTDOWN").arg("LATER").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    let err = redis::cmd("SHUTDOWN").arg("NOSAVE").arg("SAVE").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    assert!(server.alive());
    tracing::info!("--- SHUTDOWN NOSAVE FORCE: no reply, the process exits cleanly");
    let gone = redis::cmd("SHUTDOWN").arg("NOSAVE").arg("FORCE").query::<redis::Value>(&mut con);
    assert!(gone.is_err(), "the connection closes without a reply: {gone:?}");
    let exited = wait_until(Duration::from_secs(20), || !server.alive());
    assert!(exited, "the server stopped");
}

fn encoding(con: &mut redis::Connection, key: &str) -> String {
    redis::cmd("OBJECT").arg("ENCODING").arg(key).query(con).expect("OBJECT ENCODING")
}

/// A small hash is kept packed (one allocation, as Redis's listpack) and becomes a
/// table past `hash-max-listpack-entries` or `hash-max-listpack-value`; the change is
/// invisible to every reply (same fields, same order), and a restored hash that fits
/// is packed again.
#[test]
fn small_hashes_are_packed_until_a_limit_and_the_encoding_is_invisible() {
    log_phases();
    let server = Server::start();
    let mut con = server.conn();
    let pairs: Vec<(String, String)> = (0..5).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
    let _: i64 = redis::cmd("HSET").arg("small").arg(&pairs).query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "small"), "listpack");
    let before: Vec<(String, String)> = redis::cmd("HGETALL").arg("small").query(&mut con).unwrap();
    assert_eq!(before, pairs);

    tracing::info!("--- past the entry limit: a table, same fields in the same order");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("hash-max-listpack-entries").arg("5").query(&mut con).unwrap();
    let _: i64 = redis::cmd("HSET").arg("small").arg("f5").arg("v5").query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "small"), "hashtable");
    let after: Vec<(String, String)> = redis::cmd("HGETALL").arg("small").query(&mut con).unwrap();
    assert_eq!(after[..5], pairs[..]);
    assert_eq!(after[5], ("f5".to_string(), "v5".to_string()));
    // Removing back under the limit does not pack it again (as Redis).
    let _: i64 = redis::cmd("HDEL").arg("small").arg("f5").query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "small"), "hashtable");

    tracing::info!("--- a value longer than hash-max-listpack-value converts, even for a field already there");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("hash-max-listpack-value").arg("8").query(&mut con).unwrap();
    let _: i64 = redis::cmd("HSET").arg("other").arg("a").arg("1").arg("b").arg("2").query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "other"), "listpack");
    let _: i64 = redis::cmd("HSET").arg("other").arg("a").arg("123456789").query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "other"), "hashtable");
    let value: String = redis::cmd("HGET").arg("other").arg("a").query(&mut con).unwrap();
    assert_eq!(value, "123456789");

    tracing::info!("--- DUMP and RESTORE: a table that fits the limits comes back packed");
    let _: i64 = redis::cmd("HDEL").arg("small").arg("f4").query(&mut con).unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("small").query(&mut con).unwrap();
    let _: () = redis::cmd("RESTORE").arg("copy").arg(0).arg(dump).query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "copy"), "listpack");
    let original: Vec<(String, String)> = redis::cmd("HGETALL").arg("small").query(&mut con).unwrap();
    let copy: Vec<(String, String)> = redis::cmd("HGETALL").arg("copy").query(&mut con).unwrap();
    assert_eq!(copy, original);
    // Under a lower limit a restored hash is a table at once.
    let dump: Vec<u8> = redis::cmd("DUMP").arg("copy").query(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("hash-max-listpack-entries").arg("2").query(&mut con).unwrap();
    let _: () = redis::cmd("RESTORE").arg("copy2").arg(0).arg(dump).query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "copy2"), "hashtable");
    // Under a higher one, a restored hash of 200 fields is packed (Redis's default is 128).
    let _: () = redis::cmd("CONFIG").arg("SET").arg("hash-max-listpack-entries").arg("1000").query(&mut con).unwrap();
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("f{i}"), format!("{i}"))).collect();
    let _: i64 = redis::cmd("HSET").arg("many").arg(&many).query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "many"), "listpack");
    let dump: Vec<u8> = redis::cmd("DUMP").arg("many").query(&mut con).unwrap();
    let _: () = redis::cmd("RESTORE").arg("many2").arg(0).arg(dump).query(&mut con).unwrap();
    assert_eq!(encoding(&mut con, "many2"), "listpack");
    let back: Vec<(String, String)> = redis::cmd("HGETALL").arg("many2").query(&mut con).unwrap();
    assert_eq!(back, many);

    tracing::info!("--- a script reads the encoding from the content, whatever this server holds");
    let read = "return redis.call('object', 'encoding', KEYS[1])";
    let in_script: String = redis::cmd("EVAL").arg(read).arg(1).arg("small").query(&mut con).unwrap();
    assert_eq!(in_script, "listpack", "5 short fields fit Redis's defaults");
    assert_eq!(encoding(&mut con, "small"), "hashtable");
}
