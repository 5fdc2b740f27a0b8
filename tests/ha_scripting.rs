//! Scripts in a stripe of three real servers (issue 10): the script cache and function
//! libraries are replicated state that survives the active's kill -9; a runaway script
//! stops on every server at the same instruction, the stripe keeps its active and every
//! server holds the same data; a client of a mirror runs scripts through forwarding.

mod support;

use std::time::{Duration, Instant};

use support::cluster::{Cluster, Spec};

const SCRIPT: &str = "redis.call('incr', KEYS[1]) return redis.call('get', KEYS[1])";
const LIBRARY: &str = "#!lua name=lib\nredis.register_function('hello', function(keys, args) return 'hello ' .. args[1] end)";

#[test]
fn a_script_loaded_on_the_active_runs_on_its_successor_after_kill9() {
    let mut cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    tracing::info!("--- SCRIPT LOAD and FUNCTION LOAD on the active");
    let mut con = cluster.conn(active).unwrap();
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(SCRIPT).query(&mut con).unwrap();
    let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(LIBRARY).query(&mut con).unwrap();
    let first: String = redis::cmd("EVALSHA").arg(&sha).arg(1).arg("n").query(&mut con).unwrap();
    assert_eq!(first, "1");
    drop(con);
    tracing::info!("--- kill -9 the active");
    cluster.kill9(active);
    let up: Vec<usize> = (0..3).filter(|&i| i != active).collect();
    let next = cluster.wait_stable(&up, Duration::from_secs(30));
    assert_ne!(next, active);
    tracing::info!("--- EVALSHA and FCALL on the new active");
    let mut con = cluster.conn(next).unwrap();
    let second: String = redis::cmd("EVALSHA").arg(&sha).arg(1).arg("n").query(&mut con).unwrap();
    assert_eq!(second, "2", "the new active knows the script and the data");
    let hello: String = redis::cmd("FCALL").arg("hello").arg(0).arg("world").query(&mut con).unwrap();
    assert_eq!(hello, "hello world");
    cluster.wait_converged(&up, Duration::from_secs(20));
}

#[test]
fn a_runaway_script_stops_everywhere_and_the_stripe_keeps_its_active() {
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mut con = cluster.conn(active).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // A budget that ends the loop within a write's wait even on a loaded test machine.
    let _: redis::Value = redis::cmd("TANDEM.SCRIPTLIMITS").arg("INSTRUCTIONS").arg(20_000_000).query(&mut con).unwrap();
    tracing::info!("--- a write, then a loop that never ends");
    let started = Instant::now();
    let reply: redis::RedisResult<String> =
        redis::cmd("EVAL").arg("redis.call('set', KEYS[1], 'before') while true do end").arg(1).arg("k").query(&mut con);
    let err = reply.expect_err("the loop must be stopped");
    assert!(err.to_string().contains("Script stopped after"), "{err}");
    tracing::info!(elapsed = ?started.elapsed(), "--- stopped by the budget");
    assert_eq!(cluster.active(), Some(active), "the stripe kept its active while the script ran");
    let value: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(value, "before", "writes before the stop stay, as in Redis");
    let all: Vec<usize> = (0..3).collect();
    cluster.wait_converged(&all, Duration::from_secs(20));
}

#[test]
fn a_client_of_a_mirror_runs_scripts_through_forwarding() {
    let cluster = Cluster::start(Spec::servers(3));
    let active = cluster.wait_formed();
    let mirror = (active + 1) % 3;
    let mut con = cluster.conn(mirror).unwrap();
    let script = redis::Script::new(SCRIPT);
    let one: String = script.key("m").invoke(&mut con).unwrap();
    let two: String = script.key("m").invoke(&mut con).unwrap();
    assert_eq!((one.as_str(), two.as_str()), ("1", "2"));
    let ro: String = redis::cmd("EVAL_RO").arg("return redis.call('get', KEYS[1])").arg(1).arg("m").query(&mut con).unwrap();
    assert_eq!(ro, "2");
    let all: Vec<usize> = (0..3).collect();
    cluster.wait_converged(&all, Duration::from_secs(20));
}
