//! Replies to clients, independent of the protocol version, and their encoding as
//! RESP2 or RESP3. A handler builds a [`Reply`]; the connection encodes it for the
//! protocol the client chose with `HELLO`. This module knows nothing of commands.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;

/// One reply. Aggregates that RESP2 lacks (map, set, double, boolean, push) are
/// encoded as their RESP2 stand-ins, as Redis does.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`
    Status(Cow<'static, str>),
    /// `-text`; the text starts with the error code (`ERR`, `WRONGTYPE`, …).
    Error(Cow<'static, str>),
    /// `:n`
    Int(i64),
    /// `$n\r\nbytes`
    Bulk(Bytes),
    /// The null bulk string (`$-1` / `_`).
    Nil,
    /// The null array (`*-1` / `_`).
    NilArray,
    /// `*n`
    Array(Vec<Reply>),
    /// `*n` of bulk strings kept in their wire form (LRANGE): see [`BulkArray`].
    Bulks(BulkArray),
    /// `%n` in RESP3; a flat array of key, value, … in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// Pairs that RESP3 shows as an array of 2-element arrays and RESP2 as one flat
    /// array (`ZRANGE … WITHSCORES`, `HRANDFIELD … WITHVALUES`).
    Pairs(Vec<(Reply, Reply)>),
    /// `%n` in RESP3; an array of 2-element arrays in RESP2 (XREAD's streams).
    Keyed(Vec<(Reply, Reply)>),
    /// `~n` in RESP3; an array in RESP2.
    Set(Vec<Reply>),
    /// `,d` in RESP3; a bulk string in RESP2.
    Double(f64),
    /// `#t`/`#f` in RESP3; `:1`/`:0` in RESP2.
    Bool(bool),
    /// A double in Redis's "human" long-double text (17 decimals, trailing zeros cut):
    /// a bulk string in RESP2, `,` in RESP3 (GEOPOS and WITHCOORD coordinates).
    HumanDouble(f64),
    /// `=n\r\ntxt:…` in RESP3; a bulk string in RESP2.
    Verbatim(Bytes),
    /// `>n` in RESP3; an array in RESP2 (pub/sub messages).
    Push(Vec<Reply>),
    /// `(digits` in RESP3; a bulk string in RESP2 (a script's `{big_number=…}`).
    BigNumber(Bytes),
    /// Internal: a blocking command found nothing and the connection should wait.
    /// Never sent; encodes as the null array should it ever escape.
    WouldBlock,
}

pub const OK: Reply = Reply::Status(Cow::Borrowed("OK"));
pub const QUEUED: Reply = Reply::Status(Cow::Borrowed("QUEUED"));

impl Reply {
    pub fn ok() -> Reply {
        OK
    }

    pub fn status(text: &'static str) -> Reply {
        Reply::Status(Cow::Borrowed(text))
    }

    /// An error reply from a static text that already carries its code.
    pub fn err(text: &'static str) -> Reply {
        Reply::Error(Cow::Borrowed(text))
    }

    /// An error reply from formatted text that already carries its code.
    pub fn error(text: String) -> Reply {
        Reply::Error(Cow::Owned(text))
    }

    pub fn bulk(bytes: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(bytes))
    }

    pub fn bulk_str(text: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    pub fn bulk_opt(bytes: Option<&[u8]>) -> Reply {
        bytes.map_or(Reply::Nil, Reply::bulk)
    }

    /// A double as a bulk string in RESP2 and RESP3 alike (`INCRBYFLOAT`, `HINCRBYFLOAT`).
    pub fn bulk_double(value: f64) -> Reply {
        Reply::Bulk(Bytes::from(format_double(value)))
    }

    /// This reply with every [`Reply::Bulks`] in it spelled out as an array of
    /// `Reply::Bulk`s: the same value and encoding, for code that compares replies.
    pub fn expanded(self) -> Reply {
        match self {
            Reply::Bulks(bulks) => Reply::Array(bulks.to_replies()),
            Reply::Array(items) => Reply::Array(items.into_iter().map(Reply::expanded).collect()),
            reply => reply,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoding of this reply to `out`.
    pub fn encode(&self, out: &mut BytesMut, resp3: bool) {
        match self {
            Reply::Status(text) => line(out, b'+', text.as_bytes()),
            Reply::Error(text) => line(out, b'-', text.as_bytes()),
            Reply::Int(n) => int_line(out, b':', *n),
            Reply::Bulk(bytes) => bulk(out, b'$', bytes),
            Reply::Nil if resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray | Reply::WouldBlock if resp3 => out.put_slice(b"_\r\n"),
            Reply::NilArray | Reply::WouldBlock => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => aggregate(out, b'*', items, resp3),
            Reply::Bulks(bulks) => {
                int_line(out, b'*', bulks.len() as i64);
                out.put_slice(&bulks.wire);
            }
            Reply::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, resp3),
            Reply::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, resp3),
            Reply::Map(pairs) if resp3 => {
                int_line(out, b'%', pairs.len() as i64);
                pairs_body(out, pairs, resp3);
            }
            Reply::Map(pairs) => {
                int_line(out, b'*', (pairs.len() * 2) as i64);
                pairs_body(out, pairs, resp3);
            }
            Reply::Keyed(pairs) if resp3 => {
                int_line(out, b'%', pairs.len() as i64);
                pairs_body(out, pairs, resp3);
            }
            Reply::Keyed(pairs) => {
                int_line(out, b'*', pairs.len() as i64);
                for (k, v) in pairs {
                    out.put_slice(b"*2\r\n");
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::Pairs(pairs) if resp3 => {
                int_line(out, b'*', pairs.len() as i64);
                for (k, v) in pairs {
                    out.put_slice(b"*2\r\n");
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::Pairs(pairs) => {
                int_line(out, b'*', (pairs.len() * 2) as i64);
                pairs_body(out, pairs, resp3);
            }
            Reply::Double(d) if resp3 => line(out, b',', format_double_resp3(*d).as_bytes()),
            Reply::Double(d) => bulk(out, b'$', format_double(*d).as_bytes()),
            Reply::HumanDouble(d) if resp3 => line(out, b',', format_human_double(*d).as_bytes()),
            Reply::HumanDouble(d) => bulk(out, b'$', format_human_double(*d).as_bytes()),
            Reply::Bool(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Reply::Verbatim(text) if resp3 => {
                int_line(out, b'=', (text.len() + 4) as i64);
                out.put_slice(b"txt:");
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(text) => bulk(out, b'$', text),
            Reply::BigNumber(digits) if resp3 => line(out, b'(', digits),
            Reply::BigNumber(digits) => bulk(out, b'$', digits),
        }
    }
}

/// An array of bulk strings held as their encoding, `$len\r\nbytes\r\n` after one
/// another, which is the same in RESP2 and RESP3. A reply of many short strings
/// (LRANGE) is then built with one allocation and copied out in one piece, instead of
/// one `Bytes` allocated, encoded and freed per element.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BulkArray {
    len: usize,
    wire: Vec<u8>,
}

impl BulkArray {
    /// An empty array with room for `items` strings of `bytes` bytes in all.
    pub fn with_capacity(items: usize, bytes: usize) -> BulkArray {
        // `$`, the length's digits and two CRLFs per item: 6 for short items, 8
        // covers lengths below 1000 (longer ones are rare enough to grow for).
        BulkArray { len: 0, wire: Vec::with_capacity(bytes + items * 8) }
    }

    pub fn push(&mut self, item: &[u8]) {
        let wire = &mut self.wire;
        let n = item.len();
        if n < 10 {
            wire.extend_from_slice(&[b'$', b'0' + n as u8, b'\r', b'\n']);
        } else {
            let mut digits = itoa::Buffer::new();
            wire.push(b'$');
            wire.extend_from_slice(digits.format(n).as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(item);
        wire.extend_from_slice(b"\r\n");
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the encoding (for reply size accounting).
    pub fn wire_len(&self) -> usize {
        self.wire.len()
    }

    /// The strings, in order.
    pub fn iter(&self) -> BulkIter<'_> {
        BulkIter { wire: &self.wire }
    }

    /// The strings as `Reply::Bulk`s, for a consumer that walks replies (scripts).
    pub fn to_replies(&self) -> Vec<Reply> {
        self.iter().map(Reply::bulk).collect()
    }
}

impl<'a> FromIterator<&'a [u8]> for BulkArray {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> BulkArray {
        let iter = iter.into_iter();
        // A hash's fields come through `flat_map`, whose lower bound is 0: start with
        // room for a few short items rather than none.
        let mut bulks = BulkArray::with_capacity(iter.size_hint().0.max(8), 64);
        for item in iter {
            bulks.push(item);
        }
        bulks
    }
}

/// The strings of a [`BulkArray`], read back from its encoding.
pub struct BulkIter<'a> {
    wire: &'a [u8],
}

impl<'a> Iterator for BulkIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // Each item is `$<digits>\r\n<bytes>\r\n`, as `push` wrote it.
        let rest = self.wire.get(1..)?;
        let digits = rest.iter().position(|&b| b == b'\r')?;
        let n = rest[..digits].iter().fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
        let item = rest.get(digits + 2..digits + 2 + n)?;
        self.wire = &rest[(digits + 4 + n).min(rest.len())..];
        Some(item)
    }
}

/// Writes a `<kind>text\r\n` line (status, error, double…). Shared with `frame`.
pub(crate) fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    // A status or error line must not contain CR or LF: replace them as Redis does.
    for &b in text {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

/// Writes a `<kind><n>\r\n` line (integers, lengths, counts).
pub(crate) fn int_line(out: &mut BytesMut, kind: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    out.reserve(digits.len() + 3);
    out.put_u8(kind);
    out.put_slice(digits.as_bytes());
    out.put_slice(b"\r\n");
}

/// Writes a length-prefixed `<kind><len>\r\n<bytes>\r\n` string.
pub(crate) fn bulk(out: &mut BytesMut, kind: u8, bytes: &[u8]) {
    int_line(out, kind, bytes.len() as i64);
    out.reserve(bytes.len() + 2);
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, kind: u8, items: &[Reply], resp3: bool) {
    int_line(out, kind, items.len() as i64);
    for item in items {
        item.encode(out, resp3);
    }
}

fn pairs_body(out: &mut BytesMut, pairs: &[(Reply, Reply)], resp3: bool) {
    for (k, v) in pairs {
        k.encode(out, resp3);
        v.encode(out, resp3);
    }
}

/// The code of an error reply's text, as INFO errorstats counts it: its first word
/// (`ERR` when there is none), without a leading `-`.
pub fn error_code(text: &str) -> &str {
    text.trim_start_matches('-').split(' ').next().filter(|c| !c.is_empty()).unwrap_or("ERR")
}

/// Formats a double the way Redis 7 replies with it: the shortest text that reads
/// back as the same value, integers without a fraction, `inf`/`-inf`/`nan`.
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if value == value.trunc() && value.abs() < 1e17 {
        // Integral values print without a fraction ("3", not "3.0"); -0.0 prints "-0".
        let mut buf = itoa::Buffer::new();
        let text = buf.format(value as i64);
        if value == 0.0 && value.is_sign_negative() {
            return "-0".to_string();
        }
        return text.to_string();
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(value);
    // ryu writes "1e16" and "1.5e-7"; Redis (printf %.17g) writes "1e+16" and "1.5e-07".
    match text.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let mantissa = mantissa.strip_suffix(".0").unwrap_or(mantissa);
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text.to_string(),
    }
}

/// Formats a double as Redis's `ld2string(…, LD_STR_HUMAN)`: `%.17Lf` of the exact
/// value, then trailing zeros (and a bare point) removed; never "-0".
pub fn format_human_double(value: f64) -> String {
    if !value.is_finite() {
        return format_double(value);
    }
    let mut text = format!("{value:.17}");
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    if text == "-0" {
        text = "0".to_string();
    }
    text
}

/// Formats the result of INCRBYFLOAT/HINCRBYFLOAT as Redis's "human" long-double
/// format: fixed notation, no trailing zeros, never "-0". Redis computes in long
/// double, where 0.1 + 0.2 prints as 0.3; in f64 it is 0.30000000000000004. So a
/// result within two ulps of its 15-significant-digit rounding is shown rounded;
/// anything further (a large integer, say) keeps every digit f64 holds.
pub fn format_incr_double(value: f64) -> String {
    let value = if value == 0.0 { 0.0 } else { value };
    let rounded = format!("{value:.14e}").parse::<f64>().unwrap_or(value);
    let tolerance = 2.0 * f64::EPSILON * value.abs();
    let shown = if (rounded - value).abs() <= tolerance { rounded } else { value };
    format!("{shown}")
}

fn format_double_resp3(value: f64) -> String {
    format_double(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(reply: &Reply, resp3: bool) -> String {
        let mut out = BytesMut::new();
        reply.encode(&mut out, resp3);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn human_doubles_print_like_redis_ld2string() {
        // GEOPOS of (13.361389, 38.115556) on redis-server 7.0.15.
        assert_eq!(format_human_double(13.361389338970184), "13.36138933897018433");
        assert_eq!(format_human_double(38.1155563954963), "38.11555639549629859");
        assert_eq!(format_human_double(-0.0), "0");
        assert_eq!(format_human_double(2.5), "2.5");
        assert_eq!(enc(&Reply::HumanDouble(2.5), false), "$3\r\n2.5\r\n");
        assert_eq!(enc(&Reply::HumanDouble(2.5), true), ",2.5\r\n");
    }

    #[test]
    fn bulks_in_wire_form_encode_and_read_back_as_the_plain_array() {
        let long = vec![b'x'; 1000];
        let items: Vec<&[u8]> = vec![b"", b"a", b"123456789", b"1234567890", b"\r\n$3\r\n\0", &long];
        let bulks: BulkArray = items.iter().copied().collect();
        let plain = Reply::Array(items.iter().map(|i| Reply::bulk(i)).collect());
        for resp3 in [false, true] {
            assert_eq!(enc(&Reply::Bulks(bulks.clone()), resp3), enc(&plain, resp3));
        }
        assert_eq!(bulks.len(), items.len());
        assert_eq!(bulks.iter().collect::<Vec<_>>(), items);
        assert_eq!(Reply::Bulks(bulks).expanded(), plain);
        let empty = BulkArray::default();
        assert_eq!(enc(&Reply::Bulks(empty.clone()), false), "*0\r\n");
        assert_eq!(empty.iter().next(), None);
    }

    #[test]
    fn map_is_flat_array_in_resp2_and_map_in_resp3() {
        let r = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Int(1))]);
        assert_eq!(enc(&r, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&r, true), "%1\r\n$1\r\na\r\n:1\r\n");
    }

    #[test]
    fn nulls_differ_by_protocol() {
        assert_eq!(enc(&Reply::Nil, false), "$-1\r\n");
        assert_eq!(enc(&Reply::NilArray, false), "*-1\r\n");
        assert_eq!(enc(&Reply::Nil, true), "_\r\n");
    }

    #[test]
    fn pairs_nest_only_in_resp3() {
        let r = Reply::Pairs(vec![(Reply::bulk(b"m"), Reply::Double(1.5))]);
        assert_eq!(enc(&r, false), "*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n");
        assert_eq!(enc(&r, true), "*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n");
    }

    #[test]
    fn keyed_is_nested_pairs_in_resp2_and_map_in_resp3() {
        let r = Reply::Keyed(vec![(Reply::bulk(b"s"), Reply::Array(vec![]))]);
        assert_eq!(enc(&r, false), "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n");
        assert_eq!(enc(&r, true), "%1\r\n$1\r\ns\r\n*0\r\n");
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(10.6), "10.6");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(-f64::INFINITY), "-inf");
        assert_eq!(format_double(1.5e-7), "1.5e-07");
        assert_eq!(format_double(1e300), "1e+300");
    }

    #[test]
    fn error_lines_cannot_break_framing() {
        assert_eq!(enc(&Reply::error("ERR a\r\nb".into()), false), "-ERR a  b\r\n");
    }
}
