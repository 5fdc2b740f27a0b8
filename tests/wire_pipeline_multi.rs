//! Pipelines and transactions through a real client.

mod support;

use std::io::Read;
use std::time::Duration;

use support::Server;

#[test]
fn a_pipeline_of_a_thousand_commands_gets_every_reply_in_order() {
    let server = Server::start();
    let mut con = server.conn();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
        pipe.cmd("INCR").arg(format!("k{i}"));
    }
    let got: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(got, (1..=1000).collect::<Vec<i64>>());
}

#[test]
fn raw_pipeline_replies_come_back_in_one_go() {
    let server = Server::start();
    let mut s = server.raw();
    let mut input = Vec::new();
    for i in 0..100 {
        input.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$2\r\np{}\r\n$1\r\nx\r\n", i % 10).as_bytes());
    }
    input.extend_from_slice(b"*1\r\n$6\r\nDBSIZE\r\n");
    support::exchange(&mut s, b"", Duration::from_millis(1));
    // exchange left a 1 ms read timeout behind; the replies may take longer on a busy machine.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::Write;
    s.write_all(&input).unwrap();
    let expected = "+OK\r\n".repeat(100) + ":10\r\n";
    let mut got = vec![0u8; expected.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

#[test]
fn multi_exec_applies_all_commands_atomically() {
    let server = Server::start();
    let mut con = server.conn();
    let (a, b): (i64, i64) = redis::pipe().atomic().cmd("INCR").arg("a").cmd("INCRBY").arg("b").arg(5).query(&mut con).unwrap();
    assert_eq!((a, b), (1, 5));
}

#[test]
fn exec_fails_when_a_watched_key_changes() {
    let server = Server::start();
    let mut con = server.conn();
    let mut other = server.conn();
    let _: () = redis::cmd("SET").arg("w").arg("1").query(&mut con).unwrap();
    let _: () = redis::cmd("WATCH").arg("w").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("w").arg("2").query(&mut other).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let q: String = redis::cmd("SET").arg("w").arg("3").query(&mut con).unwrap();
    assert_eq!(q, "QUEUED");
    let res: Option<Vec<String>> = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(res, None, "EXEC must return nil after a watched key changed");
    let v: String = redis::cmd("GET").arg("w").query(&mut con).unwrap();
    assert_eq!(v, "2");
}

#[test]
fn exec_succeeds_when_watched_key_is_untouched() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("WATCH").arg("w").query(&mut con).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let _: String = redis::cmd("SET").arg("w").arg("3").query(&mut con).unwrap();
    let res: Vec<String> = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(res, vec!["OK"]);
}

#[test]
fn queueing_error_aborts_the_transaction() {
    let server = Server::start();
    let mut s = server.raw();
    let got = support::exchange(&mut s, b"MULTI\r\nSET a 1\r\nNOSUCH\r\nEXEC\r\nGET a\r\n", Duration::from_millis(500));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n+QUEUED\r\n-ERR unknown command 'NOSUCH', with args beginning with: \r\n-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n"
    );
}

#[test]
fn runtime_errors_inside_exec_do_not_stop_the_others() {
    let server = Server::start();
    let mut s = server.raw();
    let got = support::exchange(&mut s, b"SET s x\r\nMULTI\r\nINCR s\r\nSET t 1\r\nEXEC\r\n", Duration::from_millis(500));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR value is not an integer or out of range\r\n+OK\r\n"
    );
}

#[test]
fn transaction_errors_use_redis_strings() {
    let server = Server::start();
    let mut s = server.raw();
    let got = support::exchange(&mut s, b"EXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nWATCH x\r\nDISCARD\r\n", Duration::from_millis(500));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n+OK\r\n-ERR MULTI calls can not be nested\r\n-ERR WATCH inside MULTI is not allowed\r\n+OK\r\n"
    );
}

/// Redis's multi.tcl: FLUSHALL touches the watched keys that existed, not the others.
#[test]
fn flushall_fails_a_watch_on_an_existing_key_but_not_on_an_absent_one() {
    let server = Server::start();
    let mut con = server.conn();
    for (existed, expected) in [(true, None), (false, Some(vec!["PONG".to_string()]))] {
        let _: () = redis::cmd("DEL").arg("x").query(&mut con).unwrap();
        if existed {
            let _: () = redis::cmd("SET").arg("x").arg(30).query(&mut con).unwrap();
        }
        let _: () = redis::cmd("WATCH").arg("x").query(&mut con).unwrap();
        let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
        let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
        let _: String = redis::cmd("PING").query(&mut con).unwrap();
        let got: Option<Vec<String>> = redis::cmd("EXEC").query(&mut con).unwrap();
        assert_eq!(got, expected, "x existed: {existed}");
    }
}
