//! A client's socket as frames: bytes in, complete commands out (the bounded request
//! parser), replies encoded for the client's protocol and written once per read. It
//! knows nothing of what the commands mean.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::ClientStream;
use crate::limits;
use crate::protocol::request::{parse_command, ParseLimits, ProtocolError};

pub const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Largest read: a client pipelining faster than its writes commit gets its
/// commands taken in bigger gulps, so one proposal carries more of them (a write's
/// commit takes a Raft round, not a memory write as in Redis).
const READ_GULP_MAX_BYTES: usize = 1024 * 1024;
/// An output buffer larger than this after a flush is given back.
const OUT_KEPT_BYTES_MAX: usize = 4 * 1024 * 1024;
/// A client idle this long gives its (empty) query buffer back, as Redis does: ten
/// thousand idle connections would otherwise hold 160 MB of read buffers.
pub const QUERY_BUFFER_IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(2);
/// What the first read after a release reserves: a small command fits; a larger
/// input doubles the room read by read as usual.
const READ_AFTER_RELEASE_BYTES: usize = 512;
/// A consumed query buffer larger than this is given back after small reads.
const SHRINK_ABOVE_BYTES: usize = 4 * READ_CHUNK_BYTES;

pub struct Frames {
    pub socket: ClientStream,
    pub inbuf: BytesMut,
    /// How much room the next read gets: doubles while reads fill it, back to
    /// `READ_CHUNK_BYTES` when one does not.
    read_room: usize,
    pub out: BytesMut,
    /// Bytes allocated for `inbuf`, for CLIENT LIST (the client's `ClientInfo`).
    query_buffer_bytes: Arc<AtomicUsize>,
    /// Reads in a row that did not fill their room: a buffer grown for a large input
    /// is given back only after two (a pipelining client's buffer is kept).
    small_reads: u8,
}

/// What one read from the socket gave.
pub enum Read {
    /// Bytes arrived.
    Data,
    /// The client closed the connection (or it broke).
    Closed,
}

impl Frames {
    pub fn new(socket: ClientStream, query_buffer_bytes: Arc<AtomicUsize>) -> Frames {
        query_buffer_bytes.store(READ_CHUNK_BYTES, Ordering::Relaxed);
        Frames {
            socket,
            inbuf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            read_room: READ_CHUNK_BYTES,
            out: BytesMut::with_capacity(READ_CHUNK_BYTES),
            query_buffer_bytes,
            small_reads: 0,
        }
    }

    /// Reads what the socket has, growing the read size while a pipelining client
    /// keeps it full. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn read(&mut self) -> Read {
        // A buffer grown for one large input (a big value) is given back once it is
        // consumed and reads have been small twice, rather than kept for the
        // connection's life.
        if self.inbuf.is_empty() && self.small_reads >= 2 && self.inbuf.capacity() > SHRINK_ABOVE_BYTES {
            self.inbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        }
        if self.inbuf.capacity() == 0 {
            self.query_buffer_bytes.store(0, Ordering::Relaxed);
            self.socket.readable().await;
        }
        self.inbuf.reserve(self.read_room);
        self.query_buffer_bytes.store(self.inbuf.capacity(), Ordering::Relaxed);
        let room = self.inbuf.capacity() - self.inbuf.len();
        match self.socket.read_buf(&mut self.inbuf).await {
            Ok(0) | Err(_) => Read::Closed,
            Ok(n) => {
                self.read_room = if n >= room { (self.read_room * 2).min(READ_GULP_MAX_BYTES) } else { READ_CHUNK_BYTES };
                self.small_reads = if n >= room { 0 } else { self.small_reads.saturating_add(1) };
                Read::Data
            }
        }
    }

    /// Whether the query buffer holds memory that an idle client could give back.
    pub fn can_release_input(&self) -> bool {
        self.inbuf.is_empty() && self.inbuf.capacity() > 0
    }

    /// Gives an idle client's empty query buffer back; the next read starts small.
    pub fn release_input(&mut self) {
        if self.inbuf.is_empty() {
            self.inbuf = BytesMut::new();
            self.read_room = READ_AFTER_RELEASE_BYTES;
            self.query_buffer_bytes.store(0, Ordering::Relaxed);
        }
    }

    /// Reads while a command waits (a blocking pop): the client may pipeline more,
    /// close, or flood. False when the connection must end.
    pub async fn read_while_waiting(&mut self) -> bool {
        read_more(&mut self.socket, &mut self.inbuf).await
    }

    /// Every complete command in the input buffer, pushed to `batch`; the protocol
    /// error that ended parsing, if one did.
    pub fn parse_all(&mut self, batch: &mut Vec<Vec<Bytes>>, bulk_bytes_max: &std::sync::atomic::AtomicUsize) -> Option<ProtocolError> {
        let limits = ParseLimits { bulk_bytes_max: bulk_bytes_max.load(Ordering::Relaxed), args_max: limits::ARGS_MAX };
        loop {
            match parse_command(&mut self.inbuf, &limits) {
                Ok(Some(args)) if args.is_empty() => continue,
                Ok(Some(args)) => batch.push(args),
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    }

    /// True when the client has sent more than a query buffer may hold.
    pub fn over_query_limit(&self) -> bool {
        self.inbuf.len() > limits::QUERY_BUFFER_BYTES_MAX
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        // Moving past what each write took: a flush given up halfway (the client was
        // killed while its write waited) leaves only the unsent rest to a last try.
        self.socket.write_all_buf(&mut self.out).await?;
        // A no-op on TCP; over TLS it pushes out records rustls still holds.
        self.socket.flush().await?;
        self.out.clear();
        if self.out.capacity() > OUT_KEPT_BYTES_MAX {
            // Don't keep a huge buffer around after one big reply.
            self.out = BytesMut::with_capacity(READ_CHUNK_BYTES);
        }
        Ok(())
    }
}

/// Reads more of a client's input while one of its commands waits (the socket and
/// buffer as separate borrows, so the output buffer stays free for relayed replies).
/// False when the client closed or sent more than a query buffer may hold.
pub async fn read_more(socket: &mut ClientStream, inbuf: &mut BytesMut) -> bool {
    inbuf.reserve(READ_CHUNK_BYTES);
    matches!(socket.read_buf(inbuf).await, Ok(n) if n > 0) && inbuf.len() <= limits::QUERY_BUFFER_BYTES_MAX
}
