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
/// A count read as Redis's `getPositiveLongFromObjectOrReply` reads it (SPOP's and
/// ZPOPMIN/ZPOPMAX's): not a number and negative are the same error.
pub fn positive_count_arg(arg: &[u8]) -> Result<usize, Reply> {
    parse_i64(arg).and_then(|n| usize::try_from(n).ok()).ok_or(Reply::err(ERR_NOT_POSITIVE))
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

fn is_hex_float(lower: &str) -> bool {
    lower.trim_start_matches(['+', '-']).starts_with("0x")
}

/// A hexadecimal float as C's strtod reads one, the whole text (lower case):
/// `[+-]0x` hex digits with at most one point, at least one digit, then an optional
/// `p[+-]` decimal exponent of two.
fn parse_hex_f64(lower: &str) -> Option<f64> {
    let (negative, rest) = match lower.as_bytes().first()? {
        b'-' => (true, &lower[1..]),
        b'+' => (false, &lower[1..]),
        _ => (false, lower),
    };
    let rest = rest.strip_prefix("0x")?;
    let (digits, exponent) = match rest.split_once('p') {
        Some((digits, exponent)) => (digits, exponent.parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    // 120 bits of digits are kept; further whole digits scale, further fraction
    // digits are below a double's precision.
    let mut mantissa: u128 = 0;
    let mut scale: i64 = i64::from(exponent);
    for (i, c) in whole.chars().chain(fraction.chars()).enumerate() {
        let digit = c.to_digit(16)?;
        let in_fraction = i >= whole.len();
        if mantissa >> 120 == 0 {
            mantissa = mantissa << 4 | u128::from(digit);
            if in_fraction {
                scale -= 4;
            }
        } else if !in_fraction {
            scale += 4;
        }
    }
    // Scaled in steps, so no step overflows or underflows on its way.
    let mut value = mantissa as f64;
    while scale > 0 && value.is_finite() && value != 0.0 {
        let step = scale.min(1000);
        value *= 2f64.powi(step as i32);
        scale -= step;
    }
    while scale < 0 && value != 0.0 {
        let step = scale.max(-1000);
        value *= 2f64.powi(step as i32);
        scale -= step;
    }
    Some(if negative { -value } else { value })
}

/// Parses a float as Redis's getDoubleFromObject does (scores, increments, weights,
/// coordinates): as [`parse_f64`], and a number too large for a double (`1e500`)
/// or so small that it reads as zero (`1e-400`) is refused, as strtod's ERANGE
/// makes Redis refuse it; the spelled infinities stay valid.
pub fn parse_double(arg: &[u8]) -> Option<f64> {
    let value = parse_f64(arg)?;
    let lower = arg.to_ascii_lowercase();
    let hex = is_hex_float(std::str::from_utf8(&lower).ok()?);
    // The digits before the exponent: are any of them not zero?
    let (digits, nonzero): (&[u8], fn(&u8) -> bool) = match hex {
        true => {
            (lower.split(|b| *b == b'p').next().unwrap_or_default().get(2..).unwrap_or_default(), |b| b.is_ascii_hexdigit() && *b != b'0')
        }
        false => (lower.split(|b| *b == b'e').next().unwrap_or_default(), |b| (b'1'..=b'9').contains(b)),
    };
    let overflow = value.is_infinite() && arg.iter().any(u8::is_ascii_digit);
    let underflow = value == 0.0 && digits.iter().any(nonzero);
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
