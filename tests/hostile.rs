//! Hostile bytes on the client port: each gets an error or a closed connection,
//! the server never dies, and another client keeps being served.

mod support;

use std::io::Write;
use std::time::Duration;

use support::{closed_by_server, exchange, Server};

fn second_client_still_served(server: &Server) {
    let mut con = server.conn();
    let pong: String = redis::cmd("PING").query(&mut con).expect("ping after hostile input");
    assert_eq!(pong, "PONG");
}

#[test]
fn huge_multibulk_count_gets_protocol_error_and_close() {
    let mut server = Server::start();
    let mut s = server.raw();
    let got = exchange(&mut s, b"*3000000000\r\n", Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&got), "-ERR Protocol error: invalid multibulk length\r\n");
    assert!(server.alive());
    second_client_still_served(&server);
}

#[test]
fn negative_bulk_length_gets_protocol_error() {
    let server = Server::start();
    let mut s = server.raw();
    let got = exchange(&mut s, b"*1\r\n$-5\r\n", Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&got), "-ERR Protocol error: invalid bulk length\r\n");
    second_client_still_served(&server);
}

#[test]
fn bulk_longer_than_the_limit_is_refused_before_it_arrives() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("proto-max-bulk-len").arg("1048576").query(&mut con).unwrap();
    let mut s = server.raw();
    // Announce 2 MB but send only the header: the error must come without the body.
    let got = exchange(&mut s, b"*2\r\n$3\r\nSET\r\n$2097152\r\n", Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&got), "-ERR Protocol error: invalid bulk length\r\n");
    second_client_still_served(&server);
}

#[test]
fn one_megabyte_of_garbage_closes_only_that_connection() {
    let mut server = Server::start();
    let mut bystander = server.conn();
    let mut s = server.raw();
    let mut garbage = Vec::with_capacity(1 << 20);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..(1 << 20) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push((x & 0xff) as u8);
    }
    // Start with '*' so the array parser, not just the inline one, sees hostile input.
    garbage[0] = b'*';
    let _ = s.write_all(&garbage);
    assert!(closed_by_server(&mut s, Duration::from_secs(10)), "garbage connection must be closed");
    assert!(server.alive());
    let pong: String = redis::cmd("PING").query(&mut bystander).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn inline_garbage_without_newline_is_bounded() {
    let server = Server::start();
    let mut s = server.raw();
    let line = vec![b'a'; 70 * 1024];
    let got = exchange(&mut s, &line, Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&got), "-ERR Protocol error: too big inline request\r\n");
    second_client_still_served(&server);
}

#[test]
fn deeply_nested_aggregates_are_refused() {
    let server = Server::start();
    let mut s = server.raw();
    let mut input = Vec::new();
    for _ in 0..100_000 {
        input.extend_from_slice(b"*1\r\n");
    }
    let got = exchange(&mut s, &input, Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&got), "-ERR Protocol error: expected '$', got '*'\r\n");
    // RESP3 map and set markers are not requests either.
    let mut s = server.raw();
    let got = exchange(&mut s, b"*1\r\n%1\r\n$1\r\na\r\n$1\r\nb\r\n", Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&got), "-ERR Protocol error: expected '$', got '%'\r\n");
    second_client_still_served(&server);
}

#[test]
fn half_a_frame_then_close_leaves_the_server_serving() {
    let mut server = Server::start();
    {
        let mut s = server.raw();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc").unwrap();
    }
    assert!(server.alive());
    let mut con = server.conn();
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, None, "a half-received SET must not be applied");
    second_client_still_served(&server);
}

#[test]
fn unknown_commands_and_wrong_arity_get_redis_errors_not_a_close() {
    let server = Server::start();
    let mut s = server.raw();
    let got = exchange(&mut s, b"NOSUCH a b\r\nGET\r\nPING\r\n", Duration::from_millis(500));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n-ERR wrong number of arguments for 'get' command\r\n+PONG\r\n"
    );
}
