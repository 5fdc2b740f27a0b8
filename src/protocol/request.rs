//! The request parser: bytes from a client → one command as its arguments.
//!
//! Clients send either a RESP array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
//! or an inline line (`GET k\r\n`). Every announced length is checked against a
//! limit before anything is reserved, and a complete command is split off the buffer
//! without copying its arguments. The parser is incremental: on a partial command it
//! leaves the buffer untouched and asks for more bytes.

use bytes::{Buf, Bytes, BytesMut};

use crate::limits;

/// Why a request could not be parsed; the connection replies
/// `-ERR Protocol error: {self}` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    MultibulkLength,
    #[error("invalid bulk length")]
    BulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("too big inline request")]
    InlineTooBig,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("too big mbulk count string")]
    CountLineTooLong,
    #[error("too big bulk count string")]
    BulkLineTooLong,
    #[error("missing CRLF after bulk data")]
    MissingCrlf,
}

/// Limits the parser enforces; `bulk_bytes_max` follows `proto-max-bulk-len`.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub bulk_bytes_max: usize,
    pub args_max: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits { bulk_bytes_max: limits::BULK_BYTES_MAX_DEFAULT, args_max: limits::ARGS_MAX }
    }
}

/// Longest `*<n>` or `$<n>` header line: 20 digits and a sign are more than any i64.
const HEADER_LINE_MAX: usize = 32;

/// Most bytes reserved ahead of what a client has sent for a bulk it announced.
const RESERVE_AHEAD_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Parses one command off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a command (nothing consumed),
/// `Ok(Some(args))` with the command's arguments (possibly empty for a blank inline
/// line or `*0`, which callers skip), or an error for malformed input.
pub fn parse_command(buf: &mut BytesMut, limits: &ParseLimits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => parse_inline(buf),
    }
}

/// The position of the first `\r\n` in `buf[from..]`, relative to `buf`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    let mut at = 0;
    while let Some(i) = memchr(b'\r', rest.get(at..)?) {
        let pos = at + i;
        match rest.get(pos + 1) {
            Some(b'\n') => return Some(from + pos),
            Some(_) => at = pos + 1,
            None => return None,
        }
    }
    None
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Parses the decimal number in a header line (without its type byte) as Redis's
/// string2ll: no sign but '-', no leading zeros, no spaces. A line longer than any
/// valid number is refused whether or not its CRLF has arrived yet, so the outcome
/// never depends on how TCP split the bytes.
fn parse_len(digits: &[u8]) -> Option<i64> {
    if digits.len() > HEADER_LINE_MAX {
        return None;
    }
    crate::commands::args::parse_i64(digits)
}

/// Up to this many arguments, a command's spans are found without an allocation.
const SPANS_ON_STACK: usize = 16;

/// The common header line read in one pass: `from` starts up to 18 decimal digits,
/// without a leading zero, and a whole `\r\n` follows them. Gives the number and
/// where its `\r` is; `None` for anything else (a sign, a leading zero, a line not
/// all here yet, a bad line), which the general path reads, so that every outcome
/// stays its outcome.
fn plain_number(buf: &[u8], from: usize) -> Option<(i64, usize)> {
    let digits = buf.get(from..)?;
    // One or two digits: most commands' counts and most arguments' lengths.
    match *digits {
        [d @ b'0'..=b'9', b'\r', b'\n', ..] => return Some((i64::from(d - b'0'), from + 1)),
        [d1 @ b'1'..=b'9', d2 @ b'0'..=b'9', b'\r', b'\n', ..] => {
            return Some((i64::from(d1 - b'0') * 10 + i64::from(d2 - b'0'), from + 2))
        }
        _ => {}
    }
    let mut value: i64 = 0;
    for (n, &b) in digits.iter().enumerate().take(19) {
        match b {
            b'0'..=b'9' if n < 18 => value = value * 10 + (b - b'0') as i64,
            b'\r' if n > 0 && digits.get(n + 1) == Some(&b'\n') && (digits[0] != b'0' || n == 1) => return Some((value, from + n)),
            _ => return None,
        }
    }
    None
}

fn parse_multibulk(buf: &mut BytesMut, limits: &ParseLimits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let (count, end) = match plain_number(buf, 1) {
        Some(found) => found,
        None => {
            let Some(end) = find_crlf(buf, 1) else {
                if buf.len() > HEADER_LINE_MAX {
                    return Err(ProtocolError::CountLineTooLong);
                }
                return Ok(None);
            };
            (parse_len(&buf[1..end]).ok_or(ProtocolError::MultibulkLength)?, end)
        }
    };
    if count > limits.args_max as i64 {
        return Err(ProtocolError::MultibulkLength);
    }
    if count <= 0 {
        buf.advance(end + 2);
        return Ok(Some(Vec::new()));
    }
    let count = count as usize;
    // First pass: find where every bulk starts and ends without consuming anything.
    // The usual command's spans stay on the stack (one allocation less per command).
    let mut few = [(0usize, 0usize); SPANS_ON_STACK];
    let mut many: Vec<(usize, usize)> = Vec::new();
    if count > SPANS_ON_STACK {
        many.reserve(count.min(limits::ARGS_PREALLOC_MAX));
    }
    let mut pos = end + 2;
    for n in 0..count {
        let Some(&kind) = buf.get(pos) else { return Ok(None) };
        if kind != b'$' {
            return Err(ProtocolError::ExpectedBulk(kind as char));
        }
        let (len, line_end) = match plain_number(buf, pos + 1) {
            Some(found) => found,
            None => {
                let Some(line_end) = find_crlf(buf, pos + 1) else {
                    if buf.len() - pos > HEADER_LINE_MAX {
                        return Err(ProtocolError::BulkLineTooLong);
                    }
                    return Ok(None);
                };
                (parse_len(&buf[pos + 1..line_end]).ok_or(ProtocolError::BulkLength)?, line_end)
            }
        };
        if len < 0 || len as u64 > limits.bulk_bytes_max as u64 {
            return Err(ProtocolError::BulkLength);
        }
        let start = line_end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            // Make room for the announced bulk once it is known to be within limits,
            // so a large value is not received through many reallocations; but never
            // more than a step ahead of what has arrived, so an announcement alone
            // cannot make us hold memory.
            let missing = stop + 2 - buf.len();
            buf.reserve(missing.min(RESERVE_AHEAD_BYTES_MAX));
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError::MissingCrlf);
        }
        match few.get_mut(n) {
            Some(span) if count <= SPANS_ON_STACK => *span = (start, stop),
            _ => many.push((start, stop)),
        }
        pos = stop + 2;
    }
    let spans = if count <= SPANS_ON_STACK { &few[..count] } else { &many[..] };
    let frame = buf.split_to(pos).freeze();
    Ok(Some(spans.iter().map(|&(a, b)| frame.slice(a..b)).collect()))
}

fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > limits::INLINE_BYTES_MAX {
            return Err(ProtocolError::InlineTooBig);
        }
        return Ok(None);
    };
    if nl > limits::INLINE_BYTES_MAX {
        return Err(ProtocolError::InlineTooBig);
    }
    let line = buf.split_to(nl + 1);
    let text = line.strip_suffix(b"\n").unwrap_or(&line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    split_args(text).map(Some)
}

/// Splits an inline command line into arguments, honouring double quotes (with
/// `\n`, `\xHH` and friends) and single quotes, as redis-cli and Redis do.
pub fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut arg = Vec::new();
        match line[i] {
            b'"' => i = quoted_double(line, i + 1, &mut arg)?,
            b'\'' => i = quoted_single(line, i + 1, &mut arg)?,
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(arg));
    }
    Ok(args)
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Reads a double-quoted argument starting after the opening quote; returns the
/// index after the closing quote. The closing quote must be followed by a space or
/// the end of the line.
fn quoted_double(line: &[u8], mut i: usize, arg: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        let Some(&b) = line.get(i) else { return Err(ProtocolError::UnbalancedQuotes) };
        match b {
            b'\\' if line.get(i + 1) == Some(&b'x') => {
                let hi = line.get(i + 2).copied().and_then(hex_val);
                let lo = line.get(i + 3).copied().and_then(hex_val);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    arg.push(hi * 16 + lo);
                    i += 4;
                } else {
                    arg.push(b'x');
                    i += 2;
                }
            }
            b'\\' => {
                let Some(&c) = line.get(i + 1) else { return Err(ProtocolError::UnbalancedQuotes) };
                arg.push(match c {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 8,
                    b'a' => 7,
                    other => other,
                });
                i += 2;
            }
            b'"' => {
                return match line.get(i + 1) {
                    None => Ok(i + 1),
                    Some(c) if c.is_ascii_whitespace() => Ok(i + 1),
                    Some(_) => Err(ProtocolError::UnbalancedQuotes),
                };
            }
            _ => {
                arg.push(b);
                i += 1;
            }
        }
    }
}

fn quoted_single(line: &[u8], mut i: usize, arg: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        let Some(&b) = line.get(i) else { return Err(ProtocolError::UnbalancedQuotes) };
        match b {
            b'\\' if line.get(i + 1) == Some(&b'\'') => {
                arg.push(b'\'');
                i += 2;
            }
            b'\'' => {
                return match line.get(i + 1) {
                    None => Ok(i + 1),
                    Some(c) if c.is_ascii_whitespace() => Ok(i + 1),
                    Some(_) => Err(ProtocolError::UnbalancedQuotes),
                };
            }
            _ => {
                arg.push(b);
                i += 1;
            }
        }
    }
}

/// Appends `args` as a RESP array of bulk strings: the inverse of [`parse_command`],
/// for commands this server sends to another.
pub fn encode_command(out: &mut BytesMut, args: &[Bytes]) {
    let mut int = itoa::Buffer::new();
    out.extend_from_slice(b"*");
    out.extend_from_slice(int.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.reserve(arg.len() + 16);
        out.extend_from_slice(b"$");
        out.extend_from_slice(int.format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        parse_command(&mut buf, &ParseLimits::default())
    }

    #[test]
    fn multibulk_command_is_split_into_arguments() {
        let got = parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap().unwrap();
        assert_eq!(got, vec![Bytes::from("GET"), Bytes::from("k")]);
    }

    /// The one-pass header reading agrees with the general path wherever it answers,
    /// and answers for the usual lines, over every short line of a few characters.
    #[test]
    fn plain_number_agrees_with_the_general_path() {
        let alphabet = b"0123456789-+ \r\na";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut answered = 0;
        for _ in 0..200_000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = (seed >> 59) as usize % 24;
            let line: Vec<u8> = (0..len).map(|i| alphabet[((seed >> (i * 2 % 56)) as usize + i * 7) % alphabet.len()]).collect();
            if let Some((value, end)) = plain_number(&line, 0) {
                answered += 1;
                assert_eq!(find_crlf(&line, 0), Some(end), "{:?}", String::from_utf8_lossy(&line));
                assert_eq!(parse_len(&line[..end]), Some(value), "{:?}", String::from_utf8_lossy(&line));
            }
        }
        assert!(answered > 0);
        for (line, want) in
            [(&b"0\r\n"[..], Some((0, 1))), (b"123\r\n", Some((123, 3))), (b"999999999999999999\r\n", Some((999_999_999_999_999_999, 18)))]
        {
            assert_eq!(plain_number(line, 0), want);
        }
        for line in [&b"01\r\n"[..], b"-1\r\n", b"12\r", b"12", b"\r\n", b"1234567890123456789\r\n", b"1 \r\n"] {
            assert_eq!(plain_number(line, 0), None, "{:?}", String::from_utf8_lossy(line));
        }
    }

    /// Commands around the number of arguments whose spans are kept on the stack
    /// parse alike, whole, and wait alike when cut short anywhere.
    #[test]
    fn commands_of_any_argument_count_parse_whole_or_not_at_all() {
        for count in [1, SPANS_ON_STACK - 1, SPANS_ON_STACK, SPANS_ON_STACK + 1, 3 * SPANS_ON_STACK] {
            let args: Vec<Bytes> = (0..count).map(|i| Bytes::from(format!("arg-{i}"))).collect();
            let mut wire = format!("*{count}\r\n").into_bytes();
            for a in &args {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            assert_eq!(parse(&wire).unwrap(), Some(args.clone()), "{count} arguments");
            for cut in [wire.len() - 1, wire.len() / 2, 5] {
                let mut buf = BytesMut::from(&wire[..cut]);
                assert_eq!(parse_command(&mut buf, &ParseLimits::default()).unwrap(), None, "{count} arguments cut at {cut}");
                assert_eq!(buf.len(), cut);
            }
        }
    }

    #[test]
    fn partial_command_consumes_nothing() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r"[..]);
        assert_eq!(parse_command(&mut buf, &ParseLimits::default()).unwrap(), None);
        assert_eq!(buf.len(), 16);
    }

    #[test]
    fn huge_multibulk_count_is_refused_before_allocation() {
        assert_eq!(parse(b"*3000000000\r\n"), Err(ProtocolError::MultibulkLength));
    }

    #[test]
    fn negative_bulk_length_is_refused() {
        assert_eq!(parse(b"*1\r\n$-5\r\n"), Err(ProtocolError::BulkLength));
    }

    #[test]
    fn bulk_over_the_limit_is_refused() {
        let limits = ParseLimits { bulk_bytes_max: 10, args_max: 10 };
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(parse_command(&mut buf, &limits), Err(ProtocolError::BulkLength));
    }

    #[test]
    fn nested_array_in_request_is_refused() {
        assert_eq!(parse(b"*1\r\n*1\r\n$1\r\na\r\n"), Err(ProtocolError::ExpectedBulk('*')));
    }

    #[test]
    fn inline_command_honours_quotes() {
        let got = parse(b"SET \"a b\" 'c d' \"\\x41\\n\"\r\n").unwrap().unwrap();
        assert_eq!(got, vec![Bytes::from("SET"), Bytes::from("a b"), Bytes::from("c d"), Bytes::from("A\n")]);
    }

    #[test]
    fn inline_unbalanced_quotes_are_an_error() {
        assert_eq!(parse(b"SET \"a\r\n"), Err(ProtocolError::UnbalancedQuotes));
    }

    #[test]
    fn inline_line_without_newline_is_bounded() {
        let big = vec![b'a'; limits::INLINE_BYTES_MAX + 1];
        assert_eq!(parse(&big), Err(ProtocolError::InlineTooBig));
    }

    #[test]
    fn missing_crlf_after_bulk_is_an_error() {
        assert_eq!(parse(b"*1\r\n$1\r\nabc\r\n"), Err(ProtocolError::MissingCrlf));
    }

    #[test]
    fn header_without_crlf_is_bounded() {
        let mut input = b"*".to_vec();
        input.extend(std::iter::repeat_n(b'1', 40));
        assert_eq!(parse(&input), Err(ProtocolError::CountLineTooLong));
    }
}
