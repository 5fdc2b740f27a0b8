//! Scripting through a real client (the `redis` crate): EVAL/EVALSHA with its script
//! helper, in pipelines and MULTI, SCRIPT KILL of a long read-only script while other
//! clients get -BUSY, and the script cache surviving kill -9 of a restartable server.

mod support;

use std::time::Duration;

use support::{ConfigServer, Server};

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
