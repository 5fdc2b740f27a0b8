//! Argument parsing shared by every command family, with Redis's error strings.

use bytes::Bytes;

use crate::protocol::reply::Reply;

pub const ERR_SYNTAX: &str = "ERR syntax error";
pub const ERR_NOT_INT: &str = "ERR value is not an integer or out of range";
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
pub const ERR_NO_KEY: &str = "ERR no such key";
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const ERR_INDEX: &str = "ERR index out of range";
pub const ERR_OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub const ERR_NAN: &str = "ERR resulting score is not a number (NaN)";
pub const ERR_NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const ERR_TIMEOUT: &str = "ERR timeout is not a float or out of range";
pub const ERR_TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";

/// `ERR wrong number of arguments for 'x' command`
pub fn wrong_args(name: &str) -> Reply {
    Reply::error(format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
}

/// `ERR unknown command 'x', with args beginning with: 'a' 'b' `
pub fn unknown_command(args: &[Bytes]) -> Reply {
    let name = args.first().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
    let mut text = format!("ERR unknown command '{}', with args beginning with: ", truncate(&name));
    for arg in args.iter().skip(1).take(16) {
        text.push_str(&format!("'{}' ", truncate(&String::from_utf8_lossy(arg))));
    }
    Reply::error(text)
}

/// `ERR unknown subcommand 'x'. Try Y HELP.`
pub fn unknown_subcommand(command: &str, sub: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        truncate(&String::from_utf8_lossy(sub)),
        command.to_ascii_uppercase()
    ))
}

fn truncate(text: &str) -> String {
    text.chars().take(128).collect()
}

/// Parses a signed 64-bit integer exactly as Redis's string2ll: no spaces, no
/// leading '+', no leading zeros except "0" itself.
pub fn parse_i64(arg: &[u8]) -> Option<i64> {
    if arg.is_empty() || arg.len() > 20 {
        return None;
    }
    let (neg, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = (d - b'0') as i64;
        value = value.checked_mul(10)?;
        value = if neg { value.checked_sub(digit)? } else { value.checked_add(digit)? };
    }
    Some(value)
}

pub fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or(Reply::err(ERR_NOT_INT))
}

/// A non-negative integer (counts, COUNT options).
/// A count or length that must not be negative, as Redis's
/// `getPositiveLongFromObjectOrReply` reads one: not a number and negative are the
/// same error, `message` (ERR_NOT_POSITIVE for LPOP's, SPOP's and ZPOPMIN's count).
pub fn non_negative(arg: &[u8], message: &'static str) -> Result<usize, Reply> {
    parse_i64(arg).and_then(|n| usize::try_from(n).ok()).ok_or(Reply::err(message))
}

pub fn count_arg(arg: &[u8]) -> Result<usize, Reply> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        Some(_) => Err(Reply::err(ERR_NOT_POSITIVE)),
        None => Err(Reply::err(ERR_NOT_INT)),
    }
}

/// Parses a float as Redis's string2ld / strtod: accepts "inf", "-inf", "+inf" and
/// C's hexadecimal floats (`0x10`, `-0x1.8p3`); refuses NaN, spaces and empty
/// strings.
pub fn parse_f64(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return None;
    }
    let value = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        lower if is_hex_float(lower) => parse_hex_f64(lower)?,
        _ => text.parse::<f64>().ok()?,
    };
    if value.is_nan() {
        None
    } else {
        Some(value)
    }
}

pub(crate) fn is_hex_float(lower: &str) -> bool {
    lower.trim_start_matches(['+', '-']).starts_with("0x")
}

/// Whether a number's digits before its exponent (`e`, or `p` for a hexadecimal
/// one) hold anything but zeros: a number that reads as 0 though they do was too
/// small for a double (strtod's underflow). `lower`: the text in lower case.
pub(crate) fn mantissa_nonzero(lower: &[u8]) -> bool {
    let unsigned = lower.strip_prefix(b"-").or_else(|| lower.strip_prefix(b"+")).unwrap_or(lower);
    match unsigned.strip_prefix(b"0x") {
        Some(hex) => hex.iter().take_while(|b| **b != b'p').any(|b| b.is_ascii_hexdigit() && *b != b'0'),
        None => unsigned.iter().take_while(|b| **b != b'e').any(|b| (b'1'..=b'9').contains(b)),
    }
}

/// A hexadecimal float as C's strtod reads one, the whole text (lower case):
/// `[+-]0x` hex digits with at most one point, at least one digit, then an optional
/// `p[+-]` decimal exponent of two; rounded once to the nearest double.
pub(crate) fn parse_hex_f64(lower: &str) -> Option<f64> {
    let (negative, rest) = match lower.as_bytes().first()? {
        b'-' => (true, &lower[1..]),
        b'+' => (false, &lower[1..]),
        _ => (false, lower),
    };
    let rest = rest.strip_prefix("0x")?;
    let (digits, exponent) = match rest.split_once('p') {
        Some((digits, exponent)) => (digits, saturating_exponent(exponent)?),
        None => (rest, 0),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    // The value is mantissa × 2^scale: 124 bits of digits are kept, and of the
    // digits beyond only whether one was not zero (`sticky`) matters to rounding.
    let mut mantissa: u128 = 0;
    let mut scale: i64 = exponent;
    let mut sticky = false;
    for (i, c) in whole.chars().chain(fraction.chars()).enumerate() {
        let digit = c.to_digit(16)?;
        let in_fraction = i >= whole.len();
        if mantissa >> 120 == 0 {
            mantissa = mantissa << 4 | u128::from(digit);
            if in_fraction {
                scale -= 4;
            }
        } else {
            sticky |= digit != 0;
            if !in_fraction {
                scale += 4;
            }
        }
    }
    let magnitude = if mantissa == 0 { 0.0 } else { round_scaled(mantissa, sticky, scale) };
    Some(if negative { -magnitude } else { magnitude })
}

/// An exponent of a hexadecimal float: a sign and decimal digits, held at ±100,000
/// (past which every mantissa gives infinity or zero), as strtod saturates it.
fn saturating_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |n, b| (n * 10 + i64::from(b - b'0')).min(100_000));
    Some(if negative { -magnitude } else { magnitude })
}

/// `mantissa × 2^scale` (mantissa not zero, `sticky`: something not zero below it)
/// rounded once to the nearest double, ties to even, as strtod rounds: to 53 bits,
/// or to a multiple of 2^-1074 among the subnormals; too large is infinity.
fn round_scaled(mantissa: u128, sticky: bool, scale: i64) -> f64 {
    let bits = 128 - i64::from(mantissa.leading_zeros());
    // The weight of the last bit the double keeps.
    let last = (scale + bits - 53).max(-1074);
    let drop = last - scale;
    let (kept, scale) = if drop > bits {
        // Below half of the smallest step: zero.
        return 0.0;
    } else if drop > 0 {
        let dropped = mantissa & ((1u128 << drop) - 1);
        let half = 1u128 << (drop - 1);
        let mut kept = mantissa >> drop;
        if dropped > half || (dropped == half && (sticky || kept & 1 == 1)) {
            kept += 1;
        }
        (kept, last)
    } else {
        (mantissa, scale)
    };
    // kept has at most 54 bits and kept × 2^scale is a double (or too large), so
    // these steps are exact; each is small enough not to overflow on its way.
    let mut value = kept as f64;
    let mut scale = scale;
    while scale > 0 && value.is_finite() {
        let step = scale.min(1000);
        value *= 2f64.powi(step as i32);
        scale -= step;
    }
    while scale < 0 {
        let step = scale.max(-1000);
        value *= 2f64.powi(step as i32);
        scale -= step;
    }
    value
}

/// Parses a float as Redis's getDoubleFromObject does (scores, increments, weights,
/// coordinates): as [`parse_f64`], and a number too large for a double (`1e500`)
/// or so small that it reads as zero (`1e-400`) is refused, as strtod's ERANGE
/// makes Redis refuse it; the spelled infinities stay valid.
pub fn parse_double(arg: &[u8]) -> Option<f64> {
    let value = parse_f64(arg)?;
    let overflow = value.is_infinite() && arg.iter().any(u8::is_ascii_digit);
    let underflow = value == 0.0 && mantissa_nonzero(&arg.to_ascii_lowercase());
    (!overflow && !underflow).then_some(value)
}

pub fn float_arg(arg: &[u8]) -> Result<f64, Reply> {
    parse_double(arg).ok_or(Reply::err(ERR_NOT_FLOAT))
}

/// Case-insensitive comparison of an argument with an option name.
pub fn is(arg: &[u8], option: &str) -> bool {
    arg.eq_ignore_ascii_case(option.as_bytes())
}

/// A blocking command's timeout in seconds (float) → milliseconds; 0 = forever.
pub fn timeout_arg(arg: &[u8]) -> Result<u64, Reply> {
    let secs = parse_f64(arg).filter(|s| s.is_finite()).ok_or(Reply::err(ERR_TIMEOUT))?;
    if secs < 0.0 {
        return Err(Reply::err(ERR_TIMEOUT_NEGATIVE));
    }
    // A positive time too small for a double (`1e-400`) is still a time: Redis reads
    // it as a long double and waits the 1 ms its ceiling makes, not forever. (A
    // negative one's ceiling is 0 there too: forever.)
    if secs == 0.0 && secs.is_sign_positive() && mantissa_nonzero(&arg.to_ascii_lowercase()) {
        return Ok(1);
    }
    let ms = secs * 1000.0;
    if ms > (i64::MAX / 2) as f64 {
        return Err(Reply::err(ERR_TIMEOUT));
    }
    Ok(ms.ceil() as u64)
}

/// Formats an integer as bytes.
pub fn int_bytes(n: i64) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

/// Glob-style pattern matching as Redis's stringmatchlen: `*`, `?`, `[a-z]`, `[^x]`,
/// `\` escapes. Iterative with one backtrack point, so hostile patterns cannot blow
/// the stack or take exponential time.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let eq = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = match_class(pattern, p, text[t], nocase) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if eq(pattern[p + 1], text[t]) {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if eq(c, text[t]) {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[p] == '['`; returns whether
/// it matched and the index after the class.
fn match_class(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<(bool, usize)> {
    let mut i = p + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let norm = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
    let c = norm(c);
    let mut matched = false;
    loop {
        match pattern.get(i) {
            None => {
                // Unterminated class: Redis treats the end of pattern as the close.
                return Some((matched != negate, i));
            }
            Some(b']') => return Some((matched != negate, i + 1)),
            Some(b'\\') if i + 1 < pattern.len() => {
                if norm(pattern[i + 1]) == c {
                    matched = true;
                }
                i += 2;
            }
            Some(&lo) if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&b| b != b']') => {
                let hi = pattern[i + 2];
                let (lo, hi) = (norm(lo.min(hi)), norm(lo.max(hi)));
                if c >= lo && c <= hi {
                    matched = true;
                }
                i += 3;
            }
            Some(&b) => {
                if norm(b) == c {
                    matched = true;
                }
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"+1", b"01", b"-0", b" 1", b"1 ", b"1.0", b"abc"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn floats_parse_like_redis() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        // strtod's reading (score ranges): out of range is an infinity or a zero.
        assert_eq!(parse_f64(b"1e500"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"1e-400"), Some(0.0));
        // getDoubleFromObject's (scores, increments): out of range is refused, as
        // redis-server 7.0.15 refuses `ZADD z 1e500 m` and `ZADD z 1e-400 m`.
        assert_eq!(parse_double(b"1e500"), None);
        assert_eq!(parse_double(b"-1e500"), None);
        assert_eq!(parse_double(b"1e-400"), None);
        assert_eq!(parse_double(b"0.000e-400"), Some(0.0));
        assert_eq!(parse_double(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_double(b"1e-310"), Some(1e-310));
        assert_eq!(parse_double(b"0"), Some(0.0));
        // C's hexadecimal floats, as redis-server 7.0.15's strtod reads them
        // (`ZADD z 0x10 m` stores 16).
        assert_eq!(parse_f64(b"0x10"), Some(16.0));
        assert_eq!(parse_f64(b"-0X1.8p3"), Some(-12.0));
        assert_eq!(parse_f64(b"0x.8"), Some(0.5));
        assert_eq!(parse_f64(b"+0x1P-2"), Some(0.25));
        assert_eq!(parse_f64(b"0x1e"), Some(30.0));
        assert_eq!(parse_f64(b"0x"), None);
        assert_eq!(parse_f64(b"0x1p"), None);
        assert_eq!(parse_f64(b"0x1g"), None);
        assert_eq!(parse_f64(b"0x1.2.3"), None);
        assert_eq!(parse_f64(b"0xffffffffffffffffffffffffffffffffff"), Some(2f64.powi(136)));
        assert_eq!(parse_double(b"0x0p5"), Some(0.0));
        assert_eq!(parse_double(b"0x1p-2000"), None);
        assert_eq!(parse_double(b"0x1p2000"), None);
        assert_eq!(parse_f64(b"0x1p2000"), Some(f64::INFINITY));
        // Exponents past an i32 saturate, as strtod's do.
        assert_eq!(parse_f64(b"0x1p99999999999"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-0x1p99999999999"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"0x0p99999999999"), Some(0.0));
        assert_eq!(parse_f64(b"0x1p-99999999999"), Some(0.0));
        // Rounded once, to nearest, ties to even, with the digits past 124 bits
        // counted: just above a halfway point rounds up (redis-server 7.0.15:
        // ZSCORE 1.0000000000000002), exactly halfway to the even neighbour.
        assert_eq!(parse_f64(b"0x1.00000000000008000000000000000000001p0"), Some(1.0000000000000002));
        assert_eq!(parse_f64(b"0x1.00000000000008p0"), Some(1.0));
        assert_eq!(parse_f64(b"0x1.00000000000018p0"), Some(1.0000000000000004));
        // Subnormals round once at 2^-1074 (redis-server: 4.9406564584124654e-324).
        assert_eq!(parse_f64(b"0x1.7fffffffffffffffp-1074"), Some(f64::from_bits(1)));
        assert_eq!(parse_f64(b"0x1p-1075"), Some(0.0));
        assert_eq!(parse_f64(b"0x1.0000001p-1075"), Some(f64::from_bits(1)));
        assert_eq!(parse_f64(b"0x1.fffffffffffffp1023"), Some(f64::MAX));
        assert_eq!(parse_f64(b"0x1.fffffffffffff8p1023"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"0x1p-1022"), Some(f64::MIN_POSITIVE));
    }

    /// A blocking timeout too small for a double is 1 ms (Redis reads it as a long
    /// double and takes its ceiling in ms), never 0, which would wait forever.
    #[test]
    fn a_tiny_timeout_waits_one_millisecond() {
        assert_eq!(timeout_arg(b"1e-400"), Ok(1));
        assert_eq!(timeout_arg(b"0x1p-2000"), Ok(1));
        assert_eq!(timeout_arg(b"0.0001"), Ok(1));
        assert_eq!(timeout_arg(b"0"), Ok(0));
        assert_eq!(timeout_arg(b"0e-400"), Ok(0));
        assert_eq!(timeout_arg(b"0x10"), Ok(16_000));
        // Redis's ceiling of a negative tiny time is 0: it blocks for good, as
        // redis-server 7.0.15 does for `BLPOP k -1e-400`.
        assert_eq!(timeout_arg(b"-0x1p-2000"), Ok(0));
        assert_eq!(timeout_arg(b"-1e-400"), Ok(0));
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b""), None);
    }

    #[test]
    fn glob_matches_like_redis() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"user:*:name", b"user:42:name", false));
        assert!(!glob_match(b"user:*:name", b"user:42:age", false));
        assert!(glob_match(b"h\\*", b"h*", false));
        assert!(glob_match(b"HELLO", b"hello", true));
        // A hostile pattern finishes quickly.
        let text = vec![b'a'; 10_000];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*b", &text, false));
    }
}
