//! A general RESP2/RESP3 frame: what another server replies (when a plain client's
//! request is forwarded to the active and the reply is relayed), and what tests read.
//!
//! [`parse_frame`] reads one frame off the front of a buffer. It is incremental
//! (`Ok(None)` until the whole frame has arrived), checks every length and count a
//! peer announces against [`ParseLimits`] before reserving anything, bounds nesting
//! by [`limits::FRAME_DEPTH_MAX`] so that hostile input cannot exhaust the stack, and
//! never panics. [`Frame::encode`] writes a frame back; parsing what it wrote gives
//! the same frame.
//!
//! Client requests do not come through here: they are flat arrays of bulk strings
//! and have their own cheaper parser in [`super::request`].

use super::reply::{bulk, int_line, line};
use bytes::{BufMut, Bytes, BytesMut};

use crate::limits;
use crate::protocol::reply::format_double;
use crate::protocol::request::ParseLimits;

/// One RESP value. The three nulls are kept apart so that a relayed reply is
/// written back exactly as the other server wrote it.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+text`
    Simple(Bytes),
    /// `-CODE text`
    Error(Bytes),
    /// `:n`
    Int(i64),
    /// `$n` + bytes
    Bulk(Bytes),
    /// `!n` + bytes (RESP3 blob error)
    BulkError(Bytes),
    /// `_` (RESP3 null)
    Null,
    /// `$-1` (RESP2 null bulk string)
    NullBulk,
    /// `*-1` (RESP2 null array)
    NullArray,
    /// `*n`
    Array(Vec<Frame>),
    /// `%n` key/value pairs
    Map(Vec<(Frame, Frame)>),
    /// `~n`
    Set(Vec<Frame>),
    /// `>n` (out-of-band: pub/sub messages, invalidations)
    Push(Vec<Frame>),
    /// `,d` (`inf`, `-inf`, `nan` included)
    Double(f64),
    /// `#t` / `#f`
    Bool(bool),
    /// `(digits`, kept as its text
    BigNumber(Bytes),
    /// `=n` + `fmt:` + text; `format` is the three-byte type (`txt`, `mkd`).
    Verbatim { format: [u8; 3], text: Bytes },
    /// `|n` key/value pairs describing the frame that follows them.
    Attribute { attributes: Vec<(Frame, Frame)>, frame: Box<Frame> },
}

/// Why bytes are not a valid frame. The connection that sent them cannot be
/// trusted to be in step any more and is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown frame type byte {0:#04x}")]
    UnknownType(u8),
    #[error("invalid length or count")]
    Length,
    #[error("streamed (`?`) lengths are not supported")]
    Streamed,
    #[error("bulk length {len} is over the limit of {max} bytes")]
    BulkTooLong { len: i64, max: usize },
    #[error("aggregate count {count} is over the limit of {max}")]
    CountTooLarge { count: i64, max: usize },
    #[error("aggregates nest deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("line without CRLF is too long")]
    LineTooLong,
    #[error("CR or LF inside a line, or no CRLF after bulk data")]
    LineEnding,
    #[error("invalid integer")]
    Integer,
    #[error("invalid double")]
    Double,
    #[error("invalid boolean")]
    Bool,
    #[error("invalid big number")]
    BigNumber,
    #[error("invalid verbatim string: no `fmt:` prefix")]
    Verbatim,
    #[error("invalid null")]
    Null,
}

/// Longest line holding a length, a count, an integer, a boolean or a null: an i64
/// with its sign has 20 characters.
const HEADER_LINE_MAX: usize = 32;

/// Longest line holding a double: `%.17g` needs 24 characters; some servers write
/// doubles out in full decimal, so allow those too.
const DOUBLE_LINE_MAX: usize = 512;

/// Parses one frame off the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete, `Ok(Some((frame, consumed)))`
/// once it is whole (the caller drops `consumed` bytes), or an error for input that
/// can never become a valid frame.
pub fn parse_frame(buf: &[u8], limits: &ParseLimits) -> Result<Option<(Frame, usize)>, FrameError> {
    // Walk the frame once without building anything: a partial reply, re-parsed as
    // more bytes arrive, costs no copies and no allocations.
    let mut check = Parser { buf, pos: 0, limits, build: false };
    if check.frame(0)?.is_none() {
        return Ok(None);
    }
    let mut parser = Parser { buf, pos: 0, limits, build: true };
    Ok(parser.frame(0)?.map(|frame| (frame, parser.pos)))
}

/// `Ok(None)`: more bytes are needed.
type Step<T> = Result<Option<T>, FrameError>;

/// Unwraps a step's value, or returns "need more bytes" from the enclosing function.
macro_rules! ready {
    ($step:expr) => {
        match $step? {
            Some(value) => value,
            None => return Ok(None),
        }
    };
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a ParseLimits,
    /// False on the checking pass: frames are walked but not built.
    build: bool,
}

impl<'a> Parser<'a> {
    fn frame(&mut self, depth: usize) -> Step<Frame> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        let frame = match kind {
            b'+' => Frame::Simple(ready!(self.text_line())),
            b'-' => Frame::Error(ready!(self.text_line())),
            b':' => Frame::Int(ready!(self.int_line())),
            b'$' => ready!(self.bulk(Frame::Bulk, Some(Frame::NullBulk))),
            b'!' => ready!(self.bulk(Frame::BulkError, None)),
            b'=' => ready!(self.verbatim()),
            b'_' => ready!(self.null()),
            b'#' => ready!(self.boolean()),
            b',' => ready!(self.double()),
            b'(' => ready!(self.big_number()),
            b'*' => match ready!(self.count(true, depth)) {
                None => Frame::NullArray,
                Some(n) => Frame::Array(ready!(self.items(n, depth))),
            },
            b'~' => Frame::Set(ready!(self.aggregate(depth))),
            b'>' => Frame::Push(ready!(self.aggregate(depth))),
            b'%' => Frame::Map(ready!(self.pairs(depth))),
            b'|' => ready!(self.attribute(depth)),
            other => return Err(FrameError::UnknownType(other)),
        };
        Ok(Some(frame))
    }

    /// The bytes up to the next CRLF, which must be the first CR or LF: lines cannot
    /// contain either. Errors once `max` bytes have passed without one.
    fn line(&mut self, max: usize) -> Step<&'a [u8]> {
        let buf: &'a [u8] = self.buf;
        let rest = buf.get(self.pos..).unwrap_or_default();
        let window = rest.get(..max.saturating_add(2)).unwrap_or(rest);
        let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
            return if rest.len() > max { Err(FrameError::LineTooLong) } else { Ok(None) };
        };
        if end > max {
            return Err(FrameError::LineTooLong);
        }
        match (rest.get(end), rest.get(end + 1)) {
            (Some(b'\r'), None) => Ok(None),
            (Some(b'\r'), Some(b'\n')) => {
                self.pos += end + 2;
                Ok(rest.get(..end))
            }
            _ => Err(FrameError::LineEnding),
        }
    }

    fn text_line(&mut self) -> Step<Bytes> {
        let line = ready!(self.line(self.limits.bulk_bytes_max));
        Ok(Some(self.copy(line)))
    }

    /// A copy of `bytes` on the building pass; nothing on the checking pass.
    fn copy(&self, bytes: &[u8]) -> Bytes {
        if self.build {
            Bytes::copy_from_slice(bytes)
        } else {
            Bytes::new()
        }
    }

    fn int_line(&mut self) -> Step<i64> {
        let line = ready!(self.line(HEADER_LINE_MAX));
        Ok(Some(parse_i64(line).ok_or(FrameError::Integer)?))
    }

    /// A length or count line: `?` (streamed) is refused, anything else must be an
    /// integer.
    fn length_line(&mut self) -> Step<i64> {
        let line = ready!(self.line(HEADER_LINE_MAX));
        if line == b"?" {
            return Err(FrameError::Streamed);
        }
        Ok(Some(parse_i64(line).ok_or(FrameError::Length)?))
    }

    /// A bulk string or bulk error; `null` is what `-1` means, if anything.
    fn bulk(&mut self, make: fn(Bytes) -> Frame, null: Option<Frame>) -> Step<Frame> {
        let len = ready!(self.length_line());
        if len == -1 {
            if let Some(null) = null {
                return Ok(Some(null));
            }
        }
        Ok(Some(make(ready!(self.bulk_body(len)))))
    }

    /// `len` bytes and the CRLF after them, once the length is known to be allowed.
    fn bulk_body(&mut self, len: i64) -> Step<Bytes> {
        let max = self.limits.bulk_bytes_max;
        let len = match usize::try_from(len) {
            Err(_) => return Err(FrameError::Length),
            Ok(n) if n > max => return Err(FrameError::BulkTooLong { len, max }),
            Ok(n) => n,
        };
        let end = self.pos.checked_add(len).ok_or(FrameError::Length)?;
        match self.buf.get(end..).unwrap_or_default() {
            [b'\r', b'\n', ..] => {}
            [] | [b'\r'] => return Ok(None),
            _ => return Err(FrameError::LineEnding),
        }
        let bytes = self.copy(self.buf.get(self.pos..end).unwrap_or_default());
        self.pos = end + 2;
        Ok(Some(bytes))
    }

    fn verbatim(&mut self) -> Step<Frame> {
        let len = ready!(self.length_line());
        let start = self.pos;
        let body = ready!(self.bulk_body(len));
        let Some(&[a, b, c, b':']) = self.buf.get(start..start.saturating_add(4)).filter(|_| len >= 4) else {
            return Err(FrameError::Verbatim);
        };
        let text = body.get(4..).map_or_else(Bytes::new, |_| body.slice(4..));
        Ok(Some(Frame::Verbatim { format: [a, b, c], text }))
    }

    fn null(&mut self) -> Step<Frame> {
        match ready!(self.line(HEADER_LINE_MAX)) {
            b"" => Ok(Some(Frame::Null)),
            _ => Err(FrameError::Null),
        }
    }

    fn boolean(&mut self) -> Step<Frame> {
        match ready!(self.line(HEADER_LINE_MAX)) {
            b"t" => Ok(Some(Frame::Bool(true))),
            b"f" => Ok(Some(Frame::Bool(false))),
            _ => Err(FrameError::Bool),
        }
    }

    fn double(&mut self) -> Step<Frame> {
        let line = ready!(self.line(DOUBLE_LINE_MAX));
        let text = std::str::from_utf8(line).map_err(|_| FrameError::Double)?;
        // Rust's parser also takes "infinity" and "NaN": harmless, and what other
        // servers write for those varies.
        Ok(Some(Frame::Double(text.parse::<f64>().map_err(|_| FrameError::Double)?)))
    }

    fn big_number(&mut self) -> Step<Frame> {
        let line = ready!(self.line(self.limits.bulk_bytes_max));
        let digits = line.strip_prefix(b"-").or_else(|| line.strip_prefix(b"+")).unwrap_or(line);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BigNumber);
        }
        Ok(Some(Frame::BigNumber(self.copy(line))))
    }

    /// An aggregate's count, refused before anything is reserved if it is over the
    /// limit or if the aggregate would nest too deep. `Some(None)` is the null array.
    fn count(&mut self, null_allowed: bool, depth: usize) -> Step<Option<usize>> {
        if depth >= limits::FRAME_DEPTH_MAX {
            return Err(FrameError::TooDeep { max: limits::FRAME_DEPTH_MAX });
        }
        let count = ready!(self.length_line());
        if count == -1 && null_allowed {
            return Ok(Some(None));
        }
        let max = self.limits.args_max;
        match usize::try_from(count) {
            Err(_) => Err(FrameError::Length),
            Ok(n) if n > max => Err(FrameError::CountTooLarge { count, max }),
            Ok(n) => Ok(Some(Some(n))),
        }
    }

    /// Reserves for `n` announced elements, but never more than a bounded amount:
    /// what is announced has not necessarily arrived.
    fn reserve<T>(&self, n: usize) -> Vec<T> {
        if self.build {
            Vec::with_capacity(n.min(limits::ARGS_PREALLOC_MAX))
        } else {
            Vec::new()
        }
    }

    fn aggregate(&mut self, depth: usize) -> Step<Vec<Frame>> {
        let n = ready!(self.count(false, depth)).unwrap_or_default();
        self.items(n, depth)
    }

    fn items(&mut self, n: usize, depth: usize) -> Step<Vec<Frame>> {
        let mut items = self.reserve(n);
        for _ in 0..n {
            let item = ready!(self.frame(depth + 1));
            if self.build {
                items.push(item);
            }
        }
        Ok(Some(items))
    }

    fn pairs(&mut self, depth: usize) -> Step<Vec<(Frame, Frame)>> {
        let n = ready!(self.count(false, depth)).unwrap_or_default();
        let mut pairs = self.reserve(n);
        for _ in 0..n {
            let key = ready!(self.frame(depth + 1));
            let value = ready!(self.frame(depth + 1));
            if self.build {
                pairs.push((key, value));
            }
        }
        Ok(Some(pairs))
    }

    /// Attributes, then the frame they describe. That frame counts one level deeper,
    /// so a chain of attributes is bounded like any nesting.
    fn attribute(&mut self, depth: usize) -> Step<Frame> {
        let attributes = ready!(self.pairs(depth));
        let frame = ready!(self.frame(depth + 1));
        Ok(Some(Frame::Attribute { attributes, frame: Box::new(frame) }))
    }
}

/// A decimal i64 with an optional sign; nothing else (no spaces, no empty string).
fn parse_i64(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Frame {
    /// Appends the RESP encoding of this frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Simple(text) => line(out, b'+', text),
            Frame::Error(text) => line(out, b'-', text),
            Frame::Int(n) => int_line(out, b':', *n),
            Frame::Bulk(bytes) => bulk(out, b'$', bytes),
            Frame::BulkError(bytes) => bulk(out, b'!', bytes),
            Frame::Null => out.put_slice(b"_\r\n"),
            Frame::NullBulk => out.put_slice(b"$-1\r\n"),
            Frame::NullArray => out.put_slice(b"*-1\r\n"),
            Frame::Array(items) => aggregate(out, b'*', items),
            Frame::Set(items) => aggregate(out, b'~', items),
            Frame::Push(items) => aggregate(out, b'>', items),
            Frame::Map(pairs) => pairs_of(out, b'%', pairs),
            Frame::Double(d) => line(out, b',', format_double(*d).as_bytes()),
            Frame::Bool(b) => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::BigNumber(digits) => line(out, b'(', digits),
            Frame::Verbatim { format, text } => {
                int_line(out, b'=', text.len().saturating_add(4) as i64);
                out.reserve(text.len() + 6);
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Frame::Attribute { attributes, frame } => {
                pairs_of(out, b'|', attributes);
                frame.encode(out);
            }
        }
    }
}

fn aggregate(out: &mut BytesMut, kind: u8, items: &[Frame]) {
    int_line(out, kind, items.len() as i64);
    for item in items {
        item.encode(out);
    }
}

fn pairs_of(out: &mut BytesMut, kind: u8, pairs: &[(Frame, Frame)]) {
    int_line(out, kind, pairs.len() as i64);
    for (key, value) in pairs {
        key.encode(out);
        value.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        parse_frame(input, &ParseLimits::default())
    }

    /// Parses a whole frame that must use every byte.
    fn whole(input: &[u8]) -> Frame {
        let (frame, used) = parse(input).unwrap().unwrap();
        assert_eq!(used, input.len(), "consumed");
        frame
    }

    fn encode(frame: &Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame.encode(&mut out);
        out.to_vec()
    }

    fn b(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    fn nested_arrays(levels: usize) -> Vec<u8> {
        let mut input = b"*1\r\n".repeat(levels);
        input.extend_from_slice(b":1\r\n");
        input
    }

    #[test]
    fn simple_error_and_integer_lines_parse() {
        assert_eq!(whole(b"+OK\r\n"), Frame::Simple(b("OK")));
        assert_eq!(whole(b"-ERR no\r\n"), Frame::Error(b("ERR no")));
        assert_eq!(whole(b":-42\r\n"), Frame::Int(-42));
        assert_eq!(whole(b":+7\r\n"), Frame::Int(7));
        assert_eq!(whole(b"+\r\n"), Frame::Simple(Bytes::new()));
    }

    #[test]
    fn bulk_strings_and_nulls_parse() {
        assert_eq!(whole(b"$5\r\nhe\r\no\r\n"), Frame::Bulk(b("he\r\no")));
        assert_eq!(whole(b"$0\r\n\r\n"), Frame::Bulk(Bytes::new()));
        assert_eq!(whole(b"$-1\r\n"), Frame::NullBulk);
        assert_eq!(whole(b"*-1\r\n"), Frame::NullArray);
        assert_eq!(whole(b"_\r\n"), Frame::Null);
        assert_eq!(whole(b"!10\r\nSYNTAX bad\r\n"), Frame::BulkError(b("SYNTAX bad")));
    }

    #[test]
    fn resp3_scalars_parse() {
        assert_eq!(whole(b"#t\r\n"), Frame::Bool(true));
        assert_eq!(whole(b"#f\r\n"), Frame::Bool(false));
        assert_eq!(whole(b",1.5\r\n"), Frame::Double(1.5));
        assert_eq!(whole(b",-2e3\r\n"), Frame::Double(-2000.0));
        assert_eq!(whole(b",inf\r\n"), Frame::Double(f64::INFINITY));
        assert_eq!(whole(b",-inf\r\n"), Frame::Double(f64::NEG_INFINITY));
        assert!(matches!(whole(b",nan\r\n"), Frame::Double(d) if d.is_nan()));
        assert_eq!(
            whole(b"(3492890328409238509324850943850943825024385\r\n"),
            Frame::BigNumber(b("3492890328409238509324850943850943825024385"))
        );
        assert_eq!(whole(b"=15\r\ntxt:Some string\r\n"), Frame::Verbatim { format: *b"txt", text: b("Some string") });
    }

    #[test]
    fn aggregates_parse() {
        assert_eq!(whole(b"*2\r\n$1\r\na\r\n:1\r\n"), Frame::Array(vec![Frame::Bulk(b("a")), Frame::Int(1)]));
        assert_eq!(whole(b"*0\r\n"), Frame::Array(vec![]));
        assert_eq!(whole(b"~1\r\n+x\r\n"), Frame::Set(vec![Frame::Simple(b("x"))]));
        assert_eq!(whole(b">2\r\n+message\r\n:3\r\n"), Frame::Push(vec![Frame::Simple(b("message")), Frame::Int(3)]));
        assert_eq!(whole(b"%1\r\n+k\r\n#t\r\n"), Frame::Map(vec![(Frame::Simple(b("k")), Frame::Bool(true))]));
        let attributed = whole(b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n");
        let expected =
            Frame::Attribute { attributes: vec![(Frame::Simple(b("ttl")), Frame::Int(3))], frame: Box::new(Frame::Bulk(b("v"))) };
        assert_eq!(attributed, expected);
    }

    #[test]
    fn consumed_stops_at_the_end_of_the_first_frame() {
        assert_eq!(parse(b":1\r\n:2\r\n").unwrap(), Some((Frame::Int(1), 4)));
    }

    #[test]
    fn every_proper_prefix_of_a_frame_needs_more() {
        let input = b"*3\r\n$3\r\nfoo\r\n%1\r\n+k\r\n,1.25\r\n=7\r\ntxt:abc\r\n";
        for cut in 0..input.len() {
            assert_eq!(parse(&input[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(input).unwrap().is_some());
    }

    #[test]
    fn nesting_up_to_the_limit_parses() {
        let input = nested_arrays(limits::FRAME_DEPTH_MAX);
        assert!(parse(&input).unwrap().is_some());
    }

    #[test]
    fn nesting_beyond_the_limit_is_an_error_not_a_stack_overflow() {
        let input = nested_arrays(limits::FRAME_DEPTH_MAX + 1);
        assert_eq!(parse(&input), Err(FrameError::TooDeep { max: limits::FRAME_DEPTH_MAX }));
        let hostile = b"*1\r\n".repeat(1_000_000);
        assert_eq!(parse(&hostile), Err(FrameError::TooDeep { max: limits::FRAME_DEPTH_MAX }));
    }

    #[test]
    fn attribute_chains_are_bounded_like_nesting() {
        let hostile = b"|0\r\n".repeat(1_000_000);
        assert_eq!(parse(&hostile), Err(FrameError::TooDeep { max: limits::FRAME_DEPTH_MAX }));
    }

    #[test]
    fn huge_counts_are_refused_before_allocation() {
        let too_many = limits::ARGS_MAX as i64 + 1;
        for kind in ["*", "~", ">", "%", "|"] {
            let input = format!("{kind}{too_many}\r\n");
            assert_eq!(parse(input.as_bytes()), Err(FrameError::CountTooLarge { count: too_many, max: limits::ARGS_MAX }), "{kind}");
        }
        assert_eq!(parse(b"*9223372036854775807\r\n"), Err(FrameError::CountTooLarge { count: i64::MAX, max: limits::ARGS_MAX }));
    }

    #[test]
    fn announced_count_within_limit_needs_its_elements() {
        assert_eq!(parse(b"*1000000\r\n:1\r\n"), Ok(None));
    }

    #[test]
    fn bulk_over_the_limit_is_refused() {
        let limits = ParseLimits { bulk_bytes_max: 10, args_max: 10 };
        assert_eq!(parse_frame(b"$11\r\n", &limits), Err(FrameError::BulkTooLong { len: 11, max: 10 }));
        assert_eq!(parse_frame(b"!11\r\n", &limits), Err(FrameError::BulkTooLong { len: 11, max: 10 }));
        assert_eq!(parse_frame(b"*11\r\n", &limits), Err(FrameError::CountTooLarge { count: 11, max: 10 }));
    }

    #[test]
    fn negative_lengths_other_than_null_are_refused() {
        assert_eq!(parse(b"$-2\r\n"), Err(FrameError::Length));
        assert_eq!(parse(b"*-2\r\n"), Err(FrameError::Length));
        assert_eq!(parse(b"~-1\r\n"), Err(FrameError::Length));
        assert_eq!(parse(b"!-1\r\n"), Err(FrameError::Length));
        assert_eq!(parse(b"=-1\r\n"), Err(FrameError::Length));
        assert_eq!(parse(b"$abc\r\n"), Err(FrameError::Length));
        assert_eq!(parse(b"*?\r\n"), Err(FrameError::Streamed));
    }

    #[test]
    fn malformed_scalars_are_refused() {
        assert_eq!(parse(b"?x\r\n"), Err(FrameError::UnknownType(b'?')));
        assert_eq!(parse(b":12a\r\n"), Err(FrameError::Integer));
        assert_eq!(parse(b":\r\n"), Err(FrameError::Integer));
        assert_eq!(parse(b":99999999999999999999\r\n"), Err(FrameError::Integer));
        assert_eq!(parse(b"#x\r\n"), Err(FrameError::Bool));
        assert_eq!(parse(b",1.5x\r\n"), Err(FrameError::Double));
        assert_eq!(parse(b"(12a\r\n"), Err(FrameError::BigNumber));
        assert_eq!(parse(b"(\r\n"), Err(FrameError::BigNumber));
        assert_eq!(parse(b"_x\r\n"), Err(FrameError::Null));
        assert_eq!(parse(b"=3\r\ntxt\r\n"), Err(FrameError::Verbatim));
        assert_eq!(parse(b"=5\r\ntxt-a\r\n"), Err(FrameError::Verbatim));
    }

    #[test]
    fn bad_line_endings_are_refused() {
        assert_eq!(parse(b"+a\nb\r\n"), Err(FrameError::LineEnding));
        assert_eq!(parse(b"+a\rb\r\n"), Err(FrameError::LineEnding));
        assert_eq!(parse(b"$1\r\nabc\r\n"), Err(FrameError::LineEnding));
        assert_eq!(parse(b"$1\r\na\rx"), Err(FrameError::LineEnding));
    }

    #[test]
    fn header_line_without_crlf_is_bounded() {
        let mut input = b"*".to_vec();
        input.extend(std::iter::repeat_n(b'1', 40));
        assert_eq!(parse(&input), Err(FrameError::LineTooLong));
        let limits = ParseLimits { bulk_bytes_max: 8, args_max: 8 };
        assert_eq!(parse_frame(b"+0123456789", &limits), Err(FrameError::LineTooLong));
        assert_eq!(parse_frame(b"+012345678\r\n", &limits), Err(FrameError::LineTooLong));
        assert_eq!(parse_frame(b"+01234567\r\n", &limits).unwrap().map(|(_, n)| n), Some(11));
    }

    #[test]
    fn every_kind_round_trips_through_encode() {
        let frames = [
            Frame::Simple(b("OK")),
            Frame::Error(b("ERR x")),
            Frame::Int(i64::MIN),
            Frame::Bulk(b("a\r\nb")),
            Frame::BulkError(b("ERR y")),
            Frame::Null,
            Frame::NullBulk,
            Frame::NullArray,
            Frame::Double(0.1),
            Frame::Double(-1e300),
            Frame::Double(f64::INFINITY),
            Frame::Bool(false),
            Frame::BigNumber(b("-123456789012345678901234567890")),
            Frame::Verbatim { format: *b"mkd", text: b("# hi\r\n") },
            Frame::Array(vec![Frame::Int(1), Frame::Array(vec![])]),
            Frame::Set(vec![Frame::Bulk(b("m"))]),
            Frame::Push(vec![Frame::Simple(b("invalidate")), Frame::Null]),
            Frame::Map(vec![(Frame::Bulk(b("k")), Frame::Map(vec![]))]),
            Frame::Attribute { attributes: vec![(Frame::Simple(b("a")), Frame::Bool(true))], frame: Box::new(Frame::Int(2)) },
        ];
        for frame in frames {
            let bytes = encode(&frame);
            assert_eq!(whole(&bytes), frame, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn encoding_matches_the_wire_format() {
        let frame = Frame::Map(vec![
            (Frame::Simple(b("a")), Frame::Double(1.5)),
            (Frame::Bulk(b("b")), Frame::Verbatim { format: *b"txt", text: b("x") }),
        ]);
        assert_eq!(encode(&frame), b"%2\r\n+a\r\n,1.5\r\n$1\r\nb\r\n=5\r\ntxt:x\r\n");
    }

    #[test]
    fn hand_built_lines_cannot_break_framing() {
        assert_eq!(encode(&Frame::Simple(b("a\r\nb"))), b"+a  b\r\n");
    }
}
