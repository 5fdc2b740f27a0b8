//! The group port's transport: length-prefixed frames over TCP (or any byte stream:
//! the simulation runs them over simulated sockets), bounded before any
//! allocation, and a challenge-response handshake in which both ends prove the
//! cluster secret (HMAC-SHA256 over fresh nonces; the secret never crosses the wire)
//! and name their cluster and stripe. A connection that fails the handshake is
//! closed before any Raft message is read from it.

use std::io;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::group_tls::{GroupStream, GroupTls};

use crate::store::codec::{put_bytes, Decoder};

/// Largest frame: one log entry may carry a proposal of up to 768 MB.
pub const FRAME_BYTES_MAX: usize = (1 << 30) + (1 << 20);
/// Largest handshake frame: names and nonces only.
const HANDSHAKE_BYTES_MAX: usize = 4096;
/// How long either end waits for the other's part of the handshake: three small
/// frames and an HMAC, many round trips' worth even across a WAN. Short, because a
/// connection holds one of its address's few places while it waits (see
/// `handshakes`); a member that misses it simply connects again.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
const MAGIC: &[u8; 8] = b"TNDMGRP1";
const NONCE_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Who is speaking and what they may prove.
#[derive(Clone)]
pub struct Identity {
    pub cluster: String,
    pub stripe: String,
    /// This end's name (a member, or `tandem-cli`).
    pub name: String,
    pub secret: Vec<u8>,
    /// Mutual TLS around the handshake (`tls-group`); `None`: plain TCP.
    pub tls: Option<std::sync::Arc<GroupTls>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        let tls = if self.tls.is_some() { ", TLS" } else { "" };
        write!(f, "Identity({}/{} as {}{tls})", self.cluster, self.stripe, self.name)
    }
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    for part in parts {
        // Length-prefixed, so no two different part lists feed the same bytes.
        m.update(&(part.len() as u32).to_be_bytes());
        m.update(part);
    }
    m
}

fn nonce() -> [u8; NONCE_BYTES] {
    let mut n = [0u8; NONCE_BYTES];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Reads one frame; `None` at a clean end of stream before a frame starts. The
/// announced length is checked against `max` before anything is allocated, and the
/// buffer grows only as bytes arrive.
pub async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(invalid(format!("a frame of {len} bytes is larger than the limit of {max}")));
    }
    let mut body = Vec::with_capacity(len.min(1 << 20));
    let read = (&mut *stream).take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection closed inside a frame"));
    }
    crate::management::metrics::global().record_group_frame("in", 4 + len);
    Ok(Some(body))
}

pub async fn write_frame<W: AsyncWrite + Unpin>(stream: &mut W, body: &[u8]) -> io::Result<()> {
    if body.len() > FRAME_BYTES_MAX {
        return Err(invalid(format!("a frame of {} bytes is larger than the limit of {FRAME_BYTES_MAX}", body.len())));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).await?;
    // A TLS session may keep part of the frame until flushed; TCP's flush is free.
    stream.flush().await?;
    crate::management::metrics::global().record_group_frame("out", frame.len());
    Ok(())
}

/// Opens a connection from `local_host` (so the peer sees which member calls) to
/// `addr` and runs the client side of the handshake. `target` is the Raft node the
/// caller means to reach (0 for none: probes and the CLI): a process now at that
/// address under another node id (a restarted non-persistent member, a hot swap)
/// refuses, so it is never mistaken for its predecessor.
pub async fn connect(addr: &str, local_host: Option<&str>, me: &Identity, target: u64, timeout: Duration) -> io::Result<GroupStream> {
    let stream = tokio::time::timeout(timeout, async {
        let target = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| invalid(format!("{addr} resolves to no address")))?;
        let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(host) = local_host {
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                if ip.is_ipv4() == target.is_ipv4() {
                    socket.bind(std::net::SocketAddr::new(ip, 0))?;
                }
            }
        }
        socket.connect(target).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out")))??;
    stream.set_nodelay(true)?;
    let mut stream = match &me.tls {
        None => GroupStream::Plain(stream),
        Some(tls) => tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.connect(stream, addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("the TLS handshake with {addr} timed out")))??,
    };
    handshake(&mut stream, addr, me, target).await?;
    Ok(stream)
}

/// The caller's side of the handshake on a connection already open to `addr` (named
/// in errors only), within [`HANDSHAKE_TIMEOUT`]. [`connect`] opens TCP connections
/// with it; any other byte stream works too (the simulation's sockets).
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, addr: &str, me: &Identity, target: u64) -> io::Result<()> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, client_handshake(stream, me, target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("the handshake with {addr} timed out")))?
}

async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, me: &Identity, target: u64) -> io::Result<()> {
    let hello = read_frame(stream, HANDSHAKE_BYTES_MAX).await?.ok_or_else(|| invalid("the peer closed before its greeting"))?;
    if hello.len() != MAGIC.len() + NONCE_BYTES || &hello[..MAGIC.len()] != MAGIC {
        return Err(invalid("the peer is not a Tandem group port of this version"));
    }
    let server_nonce = &hello[MAGIC.len()..];
    let client_nonce = nonce();
    let target_bytes = target.to_be_bytes();
    let proof = mac(
        &me.secret,
        &[b"client", me.cluster.as_bytes(), me.stripe.as_bytes(), me.name.as_bytes(), &target_bytes, server_nonce, &client_nonce],
    )
    .finalize()
    .into_bytes();
    let mut out = Vec::new();
    put_bytes(&mut out, me.cluster.as_bytes());
    put_bytes(&mut out, me.stripe.as_bytes());
    put_bytes(&mut out, me.name.as_bytes());
    out.extend_from_slice(&target_bytes);
    out.extend_from_slice(&client_nonce);
    out.extend_from_slice(&proof);
    write_frame(stream, &out).await?;
    let answer = read_frame(stream, HANDSHAKE_BYTES_MAX).await?.ok_or_else(|| invalid("the peer closed during the handshake"))?;
    match answer.split_first() {
        Some((1, their_proof)) => {
            mac(&me.secret, &[b"server", me.cluster.as_bytes(), me.stripe.as_bytes(), &client_nonce, server_nonce])
                .verify_slice(their_proof)
                .map_err(|_| invalid("the peer does not know the cluster secret"))?;
            Ok(())
        }
        Some((_, reason)) => Err(io::Error::new(io::ErrorKind::PermissionDenied, String::from_utf8_lossy(reason).into_owned())),
        None => Err(invalid("empty handshake answer")),
    }
}

/// Runs the server side of the handshake; returns the caller's name once it has
/// proven the secret and named this cluster and stripe. `node_id` is this member's:
/// a caller that means another node is refused.
pub async fn accept_handshake<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, me: &Identity, node_id: u64) -> io::Result<Caller> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, server_handshake(stream, me, node_id))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the handshake timed out"))?
}

/// Who opened a group connection: its name, and whether it addressed this member's
/// node id (Raft traffic) or no node (probes, the CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub raft: bool,
}

async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, me: &Identity, node_id: u64) -> io::Result<Caller> {
    let server_nonce = nonce();
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&server_nonce);
    write_frame(stream, &hello).await?;
    let frame = read_frame(stream, HANDSHAKE_BYTES_MAX).await?.ok_or_else(|| invalid("the caller closed before its proof"))?;
    let mut d = Decoder::new(&frame);
    let parsed = (|| {
        let cluster = d.bytes("cluster")?.to_vec();
        let stripe = d.bytes("stripe")?.to_vec();
        let name = d.bytes("name")?.to_vec();
        let target = d.take(8, "target")?.to_vec();
        let client_nonce = d.take(NONCE_BYTES, "nonce")?.to_vec();
        let proof = d.take(32, "proof")?.to_vec();
        d.finish()?;
        Ok::<_, crate::store::codec::CodecError>((cluster, stripe, name, target, client_nonce, proof))
    })();
    let (cluster, stripe, name, target, client_nonce, proof) = parsed.map_err(|e| invalid(e.to_string()))?;
    if mac(&me.secret, &[b"client", &cluster, &stripe, &name, &target, &server_nonce, &client_nonce]).verify_slice(&proof).is_err() {
        return refuse(stream, "refused: the cluster secret does not match".to_string()).await;
    }
    if cluster != me.cluster.as_bytes() || stripe != me.stripe.as_bytes() {
        return refuse(
            stream,
            format!(
                "refused: this is stripe {} of cluster {}, not stripe {} of cluster {}",
                me.stripe,
                me.cluster,
                String::from_utf8_lossy(&stripe),
                String::from_utf8_lossy(&cluster)
            ),
        )
        .await;
    }
    let target = u64::from_be_bytes(target.try_into().expect("8 bytes taken"));
    if target != 0 && target != node_id {
        return refuse(stream, format!("refused: this member is now node {node_id}, not node {target}")).await;
    }
    let proof =
        mac(&me.secret, &[b"server", me.cluster.as_bytes(), me.stripe.as_bytes(), &client_nonce, &server_nonce]).finalize().into_bytes();
    let mut out = vec![1u8];
    out.extend_from_slice(&proof);
    write_frame(stream, &out).await?;
    Ok(Caller { name: String::from_utf8_lossy(&name).into_owned(), raft: target != 0 })
}

async fn refuse<S: AsyncWrite + Unpin, T>(stream: &mut S, reason: String) -> io::Result<T> {
    let mut out = vec![0u8];
    out.extend_from_slice(reason.as_bytes());
    let _ = write_frame(stream, &out).await;
    Err(io::Error::new(io::ErrorKind::PermissionDenied, reason))
}

/// Sends one request and reads its answer within `timeout`.
pub async fn call<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, body: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    tokio::time::timeout(timeout, async {
        write_frame(stream, body).await?;
        read_frame(stream, FRAME_BYTES_MAX)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection"))
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {} ms", timeout.as_millis())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(secret: &str, stripe: &str) -> Identity {
        Identity { cluster: "c".into(), stripe: stripe.into(), name: "n".into(), secret: secret.as_bytes().to_vec(), tls: None }
    }

    async fn pair_for(server: Identity, client: Identity, target: u64) -> (io::Result<Caller>, io::Result<GroupStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accept = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            accept_handshake(&mut s, &server, 7).await
        });
        let client = connect(&addr, Some("127.0.0.1"), &client, target, Duration::from_secs(5)).await;
        (accept.await.unwrap(), client)
    }

    async fn pair(server: Identity, client: Identity) -> (io::Result<Caller>, io::Result<GroupStream>) {
        pair_for(server, client, 7).await
    }

    #[tokio::test]
    async fn members_with_the_secret_shake_hands() {
        let (server, client) = pair(identity("s", "A"), identity("s", "A")).await;
        assert_eq!(server.unwrap(), Caller { name: "n".into(), raft: true });
        assert!(client.is_ok());
        let (server, _) = pair_for(identity("s", "A"), identity("s", "A"), 0).await;
        assert_eq!(server.unwrap(), Caller { name: "n".into(), raft: false });
    }

    #[tokio::test]
    async fn a_member_that_is_not_the_node_meant_refuses() {
        let (server, client) = pair_for(identity("s", "A"), identity("s", "A"), 8).await;
        assert!(server.unwrap_err().to_string().contains("not node 8"));
        assert!(client.unwrap_err().to_string().contains("now node 7"));
    }

    #[tokio::test]
    async fn a_stranger_without_the_secret_is_refused_on_both_sides() {
        let (server, client) = pair(identity("s", "A"), identity("wrong", "A")).await;
        assert!(server.unwrap_err().to_string().contains("secret"));
        assert!(client.unwrap_err().to_string().contains("secret"));
    }

    #[tokio::test]
    async fn another_stripe_is_refused_by_name() {
        let (server, client) = pair(identity("s", "A"), identity("s", "B")).await;
        assert!(server.unwrap_err().to_string().contains("stripe A"));
        assert!(client.unwrap_err().to_string().contains("stripe A"));
    }

    #[tokio::test]
    async fn the_handshake_runs_over_any_byte_stream() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let accept = tokio::spawn(async move { accept_handshake(&mut server, &identity("s", "A"), 7).await });
        handshake(&mut client, "in-memory", &identity("s", "A"), 7).await.unwrap();
        assert_eq!(accept.await.unwrap().unwrap(), Caller { name: "n".into(), raft: true });
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_allocation() {
        let mut bytes: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = read_frame(&mut bytes, 1024).await.unwrap_err();
        assert!(err.to_string().contains("larger than the limit"), "{err}");
        let mut cut: &[u8] = &[0, 0, 0, 9, 1, 2];
        assert_eq!(read_frame(&mut cut, 1024).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 1024).await.unwrap().is_none());
    }
}
