//! The forwarding connection a mirror opens to its active, against a real server:
//! the handshake (protocol, password, client name) and replies relayed exactly as a
//! client connected to the active directly would read them.

mod support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::Server;
use tandem::server::upstream::{encode_command, relay_limits, Hello, Upstream, UpstreamError};

const WITHIN: Duration = Duration::from_secs(10);

fn cmd(parts: &[&str]) -> Vec<Bytes> {
    parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect()
}

fn request(cmds: &[Vec<Bytes>]) -> BytesMut {
    let mut out = BytesMut::new();
    for c in cmds {
        encode_command(&mut out, c);
    }
    out
}

/// Sends `cmds` on a direct connection and reads exactly one reply frame per command
/// (the first `skip` dropped), within a deadline.
async fn direct(port: u16, resp3: bool, cmds: &[Vec<Bytes>]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut all = Vec::new();
    if resp3 {
        all.push(cmd(&["HELLO", "3"]));
    }
    all.extend(cmds.iter().cloned());
    stream.write_all(&request(&all)).await.expect("write");
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let read = async {
        while frames.len() < all.len() {
            match tandem::protocol::frame::parse_frame(&buf, &relay_limits(0)).expect("valid reply") {
                Some((_, len)) => frames.push(buf.split_to(len)),
                None => assert!(stream.read_buf(&mut buf).await.expect("read") > 0, "closed"),
            }
        }
    };
    tokio::time::timeout(WITHIN, read).await.expect("replies within the deadline");
    frames.into_iter().skip(usize::from(resp3)).flat_map(|f| f.to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn relayed_replies_are_what_a_direct_client_reads() {
    let server = Server::start();
    let mut con = server.conn();
    let _: () = redis::cmd("RPUSH").arg("l").arg("a").arg("b").query(&mut con).unwrap();
    let _: () = redis::cmd("HSET").arg("h").arg("f").arg("1").query(&mut con).unwrap();
    let _: () = redis::cmd("ZADD").arg("z").arg("1.5").arg("m").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("s").arg("v").query(&mut con).unwrap();
    let reads = [
        cmd(&["GET", "s"]),
        cmd(&["LRANGE", "l", "0", "-1"]),
        cmd(&["HGETALL", "h"]),
        cmd(&["ZSCORE", "z", "m"]),
        cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        cmd(&["GET", "missing"]),
        cmd(&["LPOP", "missing"]),
        cmd(&["EXISTS", "s", "l", "nothing"]),
        cmd(&["HGET", "s", "f"]),
    ];
    let addr = format!("127.0.0.1:{}", server.port);
    for resp3 in [false, true] {
        let hello = Hello { resp3, password: None, from: "test" };
        let mut upstream = Upstream::open(&addr, "server1".into(), &hello, WITHIN).await.expect("handshake");
        let mut out = BytesMut::new();
        let mut relayed = 0;
        upstream
            .exchange(&request(&reads), 0, reads.len(), &mut out, &mut relayed, Some(WITHIN), &relay_limits(0))
            .await
            .expect("exchange");
        assert_eq!(relayed, reads.len());
        let expected = direct(server.port, resp3, &reads).await;
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&expected), "resp3: {resp3}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_handshake_authenticates_and_names_the_forwarding_connection() {
    let server = Server::start();
    let addr = format!("127.0.0.1:{}", server.port);
    let mut admin = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("s3cret").query(&mut admin).unwrap();

    let hello = Hello { resp3: false, password: Some("wrong"), from: "server2" };
    match Upstream::open(&addr, "server1".into(), &hello, WITHIN).await {
        Err(UpstreamError::Refused(text)) => assert!(text.starts_with("WRONGPASS"), "{text}"),
        other => panic!("expected WRONGPASS, got {:?}", other.err()),
    }

    let hello = Hello { resp3: false, password: Some("s3cret"), from: "server2" };
    let mut upstream = Upstream::open(&addr, "server1".into(), &hello, WITHIN).await.expect("handshake");
    let mut out = BytesMut::new();
    let mut relayed = 0;
    upstream
        .exchange(&request(&[cmd(&["CLIENT", "GETNAME"])]), 0, 1, &mut out, &mut relayed, Some(WITHIN), &relay_limits(0))
        .await
        .expect("exchange");
    assert_eq!(&out[..], b"$22\r\ntandem-forward:server2\r\n");
}
