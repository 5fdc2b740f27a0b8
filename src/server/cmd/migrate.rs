//! MIGRATE: copies keys to another Redis-protocol server with DUMP and RESTORE, then
//! deletes them here unless COPY, as Redis does. It runs on the active of the keys'
//! stripe (a mirror's client is told where); the target gets `AUTH`/`AUTH2` if
//! given, `SELECT db`, then one `RESTORE key ttl payload [REPLACE]` per key that
//! exists. No connection is cached between calls (INFO stats reports `migrate_cached_sockets:0`).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::text;
use crate::commands::args::parse_i64;
use crate::protocol::frame::{parse_frame, Frame};
use crate::protocol::reply::Reply;
use crate::protocol::request::ParseLimits;
use crate::server::admit::Memory;
use crate::server::connection::Connection;
use crate::server::core::Reads;
use crate::server::pipeline::Place;
use crate::server::request::Request;

/// What MIGRATE's arguments ask for.
#[derive(Debug, PartialEq)]
struct Migrate {
    host: String,
    port: u16,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    auth: Vec<Bytes>,
    keys: Vec<Bytes>,
}

fn parse(args: &[Bytes]) -> Result<Migrate, Reply> {
    let not_int = || Reply::err("ERR value is not an integer or out of range");
    let port = parse_i64(&args[2]).and_then(|p| u16::try_from(p).ok()).ok_or_else(not_int)?;
    let db = parse_i64(&args[4]).ok_or_else(not_int)?;
    let timeout_ms = parse_i64(&args[5]).ok_or_else(not_int)?;
    let mut m = Migrate {
        host: text(&args[1]),
        port,
        db,
        // Redis: a timeout of 0 or less is one second.
        timeout: Duration::from_millis(if timeout_ms <= 0 { 1000 } else { timeout_ms as u64 }),
        copy: false,
        replace: false,
        auth: Vec::new(),
        keys: Vec::new(),
    };
    let mut i = 6;
    let mut keys_given = false;
    while i < args.len() {
        let word = text(&args[i]).to_ascii_lowercase();
        let more = args.len() - 1 - i;
        match word.as_str() {
            "copy" => m.copy = true,
            "replace" => m.replace = true,
            "auth" if more >= 1 => {
                m.auth = vec![Bytes::from_static(b"AUTH"), args[i + 1].clone()];
                i += 1;
            }
            "auth2" if more >= 2 => {
                m.auth = vec![Bytes::from_static(b"AUTH"), args[i + 1].clone(), args[i + 2].clone()];
                i += 2;
            }
            "keys" => {
                if !args[3].is_empty() {
                    return Err(Reply::err("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"));
                }
                m.keys = args[i + 1..].to_vec();
                keys_given = true;
                break;
            }
            _ => return Err(Reply::err("ERR syntax error")),
        }
        i += 1;
    }
    if !keys_given {
        m.keys = vec![args[3].clone()];
    }
    Ok(m)
}

/// One command in RESP.
fn encode(out: &mut BytesMut, args: &[Bytes]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Sends `commands` to the target and reads one reply each: the first error the
/// target answered, if any.
async fn exchange(m: &Migrate, commands: &[Vec<Bytes>]) -> Result<(), Reply> {
    let io_error = |what: &str| Reply::error(format!("IOERR error or timeout {what} target instance"));
    let connect = TcpStream::connect((m.host.as_str(), m.port));
    let mut stream = match tokio::time::timeout(m.timeout, connect).await {
        Ok(Ok(stream)) => stream,
        _ => return Err(Reply::err("IOERR error or timeout connecting to the client")),
    };
    let mut out = BytesMut::new();
    for command in commands {
        encode(&mut out, command);
    }
    match tokio::time::timeout(m.timeout, stream.write_all(&out)).await {
        Ok(Ok(())) => {}
        _ => return Err(io_error("writing to")),
    }
    let limits = ParseLimits::default();
    let mut buf = BytesMut::new();
    let mut first_error: Option<Reply> = None;
    for _ in commands {
        let frame = loop {
            match parse_frame(&buf, &limits) {
                Ok(Some((frame, used))) => {
                    let _ = buf.split_to(used);
                    break frame;
                }
                Ok(None) => {}
                Err(_) => return Err(io_error("reading from")),
            }
            match tokio::time::timeout(m.timeout, stream.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Err(io_error("reading from")),
            }
        };
        if let Frame::Error(e) | Frame::BulkError(e) = frame {
            first_error
                .get_or_insert_with(|| Reply::error(format!("ERR Target instance replied with error: {}", String::from_utf8_lossy(&e))));
        }
    }
    first_error.map_or(Ok(()), Err)
}

impl Connection {
    /// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
    /// [AUTH password | AUTH2 username password] [KEYS key …]
    pub(super) async fn migrate(&mut self, request: &Request) -> Reply {
        let m = match parse(&request.args) {
            Ok(m) => m,
            Err(e) => return e,
        };
        // A write (the source's delete, and the target's copy): refused before anything
        // moves while min-replicas-to-write is not met.
        if !self.shared.core.enough_mirrors(&self.shared.settings) {
            return Reply::err(crate::commands::scripting::ERR_NOREPLICAS);
        }
        if let Some(refusal) = self.shared.core.snapshot_refusal(&self.shared.settings) {
            return refusal;
        }
        match self.place(request, &self.shared.view()).await {
            Place::Local => {}
            Place::Answer(reply) => return reply,
            Place::Forward(_) => {
                return Reply::err(
                    "ERR MIGRATE runs on the active server of its keys' stripe: send it there (ROLE and CLUSTER SLOTS say which)",
                )
            }
        }
        // What each key holds now, and its time to live.
        let reads: Vec<Request> = m
            .keys
            .iter()
            .flat_map(|k| [vec![Bytes::from_static(b"dump"), k.clone()], vec![Bytes::from_static(b"pttl"), k.clone()]])
            .filter_map(|args| Request::parse(args).ok())
            .collect();
        let memory = Memory { settings: &self.shared.settings, log_bytes: self.shared.core.replica.log.memory_bytes() };
        let replies = self.shared.core.execute(&reads, &memory, Reads::Linearizable, self.session.info.id, &mut self.write_timer).await;
        let mut commands = Vec::new();
        if !m.auth.is_empty() {
            commands.push(m.auth.clone());
        }
        commands.push(vec![Bytes::from_static(b"SELECT"), Bytes::from(m.db.to_string())]);
        let mut moved = Vec::new();
        for (key, pair) in m.keys.iter().zip(replies.chunks(2)) {
            match pair {
                [Reply::Bulk(payload), Reply::Int(ttl)] => {
                    let mut restore =
                        vec![Bytes::from_static(b"RESTORE"), key.clone(), Bytes::from(ttl.max(&0).to_string()), payload.clone()];
                    if m.replace {
                        restore.push(Bytes::from_static(b"REPLACE"));
                    }
                    commands.push(restore);
                    moved.push(key.clone());
                }
                [Reply::Error(e), _] | [_, Reply::Error(e)] => return Reply::Error(e.clone()),
                _ => {}
            }
        }
        if moved.is_empty() {
            return Reply::status("NOKEY");
        }
        if let Err(e) = exchange(&m, &commands).await {
            return e;
        }
        if !m.copy {
            let mut del = vec![Bytes::from_static(b"del")];
            del.extend(moved);
            if let Ok(request) = Request::parse(del) {
                let replies = self
                    .shared
                    .core
                    .execute(std::slice::from_ref(&request), &memory, Reads::Linearizable, self.session.info.id, &mut self.write_timer)
                    .await;
                if let Some(Reply::Error(e)) = replies.into_iter().next() {
                    return Reply::Error(e);
                }
            }
        }
        Reply::ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn options_parse_as_redis_reads_them() {
        let m = parse(&args(&["migrate", "h", "7000", "", "0", "50", "COPY", "AUTH2", "u", "p", "KEYS", "a", "b"])).unwrap();
        assert!(m.copy && !m.replace);
        assert_eq!(m.auth, args(&["AUTH", "u", "p"]));
        assert_eq!(m.keys, args(&["a", "b"]));
        assert_eq!(m.timeout, Duration::from_millis(50));
        assert!(
            matches!(parse(&args(&["migrate", "h", "7000", "k", "0", "50", "KEYS", "a"])), Err(Reply::Error(e)) if e.contains("empty string"))
        );
        assert!(matches!(parse(&args(&["migrate", "h", "7000", "k", "0", "x"])), Err(Reply::Error(e)) if e.contains("not an integer")));
        assert!(matches!(parse(&args(&["migrate", "h", "7000", "k", "0", "5", "NOPE"])), Err(Reply::Error(e)) if e.contains("syntax")));
        assert_eq!(parse(&args(&["migrate", "h", "7000", "k", "0", "0"])).unwrap().timeout, Duration::from_secs(1));
    }
}
