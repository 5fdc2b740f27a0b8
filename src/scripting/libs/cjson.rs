//! `cjson`: JSON for scripts with lua-cjson's API and behaviour as Redis bundles it —
//! `encode`, `decode`, `null`, and the settings `encode_max_depth`,
//! `decode_max_depth`, `encode_invalid_numbers`, `decode_invalid_numbers`,
//! `encode_keep_buffer`, `encode_number_precision`, `encode_sparse_array`. Settings
//! last for one script only (they are reset before each, so every server runs a
//! script with the same ones).

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::{bad_argument, function, number_arg, one, Failure};

#[derive(Debug, Clone, Copy)]
struct Config {
    encode_max_depth: usize,
    decode_max_depth: usize,
    encode_invalid_numbers: bool,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
    precision: usize,
    sparse_convert: bool,
    sparse_ratio: usize,
    sparse_safe: usize,
}

const DEFAULT: Config = Config {
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    encode_invalid_numbers: false,
    decode_invalid_numbers: true,
    keep_buffer: true,
    precision: 14,
    sparse_convert: false,
    sparse_ratio: 2,
    sparse_safe: 10,
};

/// Restores the default settings (before every script).
pub fn reset(lua: &Lua) {
    lua.set_app_data(DEFAULT);
}

fn config(lua: &Lua) -> Config {
    lua.app_data_ref::<Config>().map_or(DEFAULT, |c| *c)
}

fn update(lua: &Lua, f: impl FnOnce(&mut Config)) {
    let mut c = config(lua);
    f(&mut c);
    lua.set_app_data(c);
}

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    reset(lua);
    let t = lua.create_table()?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    t.raw_set(
        "encode",
        function(lua, |lua, args| {
            if args.len() != 1 {
                return Err(Failure::Message("bad argument #1 to 'encode' (expected 1 argument)".into()));
            }
            let config = config(lua);
            let mut out = Vec::new();
            encode(&args[0], &config, 1, &mut out)?;
            Ok(one(Value::String(lua.create_string(&out)?)))
        })?,
    )?;
    t.raw_set(
        "decode",
        function(lua, |lua, args| {
            let Some(Value::String(s)) = args.front() else { return Err(bad_argument(1, "decode", "string", args.front())) };
            let bytes = s.as_bytes().to_vec();
            let mut p = Parser { lua, s: &bytes, pos: 0, depth: 0, config: config(lua) };
            p.skip_ws();
            let v = p.value()?;
            p.skip_ws();
            if p.pos < bytes.len() {
                return Err(p.error("the end"));
            }
            Ok(one(v))
        })?,
    )?;
    setting(lua, &t, "encode_max_depth", |c, v| {
        if let Some(n) = v {
            c.encode_max_depth = n as usize
        }
        c.encode_max_depth as f64
    })?;
    setting(lua, &t, "decode_max_depth", |c, v| {
        if let Some(n) = v {
            c.decode_max_depth = n as usize
        }
        c.decode_max_depth as f64
    })?;
    setting(lua, &t, "encode_number_precision", |c, v| {
        if let Some(n) = v {
            c.precision = (n as usize).clamp(1, 14)
        }
        c.precision as f64
    })?;
    flag_setting(lua, &t, "encode_invalid_numbers", |c, v| {
        if let Some(b) = v {
            c.encode_invalid_numbers = b
        }
        c.encode_invalid_numbers
    })?;
    flag_setting(lua, &t, "decode_invalid_numbers", |c, v| {
        if let Some(b) = v {
            c.decode_invalid_numbers = b
        }
        c.decode_invalid_numbers
    })?;
    flag_setting(lua, &t, "encode_keep_buffer", |c, v| {
        if let Some(b) = v {
            c.keep_buffer = b
        }
        c.keep_buffer
    })?;
    t.raw_set(
        "encode_sparse_array",
        function(lua, |lua, args| {
            update(lua, |c| {
                if let Some(Value::Boolean(b)) = args.front() {
                    c.sparse_convert = *b;
                }
                if let Some(n) = number_arg(args.get(1)) {
                    c.sparse_ratio = n as usize;
                }
                if let Some(n) = number_arg(args.get(2)) {
                    c.sparse_safe = n as usize;
                }
            });
            let c = config(lua);
            Ok(MultiValue::from_iter([
                Value::Boolean(c.sparse_convert),
                Value::Number(c.sparse_ratio as f64),
                Value::Number(c.sparse_safe as f64),
            ]))
        })?,
    )?;
    Ok(t)
}

fn setting(lua: &Lua, t: &Table, name: &'static str, f: fn(&mut Config, Option<f64>) -> f64) -> mlua::Result<()> {
    t.raw_set(
        name,
        function(lua, move |lua, args| {
            let v = match args.front() {
                None | Some(Value::Nil) => None,
                other => {
                    let n = number_arg(other).ok_or_else(|| bad_argument(1, name, "number", other))?;
                    if n < 1.0 {
                        return Err(Failure::Message(format!("bad argument #1 to '{name}' (expected integer between 1 and 2147483647)")));
                    }
                    Some(n)
                }
            };
            let mut c = config(lua);
            let out = f(&mut c, v);
            lua.set_app_data(c);
            Ok(one(Value::Number(out)))
        })?,
    )
}

fn flag_setting(lua: &Lua, t: &Table, name: &'static str, f: fn(&mut Config, Option<bool>) -> bool) -> mlua::Result<()> {
    t.raw_set(
        name,
        function(lua, move |lua, args| {
            let v = match args.front() {
                None | Some(Value::Nil) => None,
                Some(Value::Boolean(b)) => Some(*b),
                Some(Value::String(s)) if s.as_bytes() == b"on" => Some(true),
                Some(Value::String(s)) if s.as_bytes() == b"off" => Some(false),
                other => return Err(bad_argument(1, name, "boolean", other)),
            };
            let mut c = config(lua);
            let out = f(&mut c, v);
            lua.set_app_data(c);
            Ok(one(Value::Boolean(out)))
        })?,
    )
}

fn fail(m: impl Into<String>) -> Failure {
    Failure::Message(m.into())
}

/// `%.<precision>g`, as lua-cjson formats numbers.
fn format_number(n: f64, precision: usize) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    let sci = format!("{n:.*e}", precision.saturating_sub(1));
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= precision as i32 {
        format!("{}e{}{:02}", strip(mantissa), if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        strip(&format!("{n:.decimals$}"))
    }
}

fn encode(v: &Value, c: &Config, depth: usize, out: &mut Vec<u8>) -> Result<(), Failure> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() {
                if !c.encode_invalid_numbers {
                    return Err(fail("Cannot serialise number: must not be NaN or Inf"));
                }
                out.extend_from_slice(if n.is_nan() {
                    b"nan"
                } else if *n > 0.0 {
                    b"inf"
                } else {
                    b"-inf"
                });
            } else {
                out.extend_from_slice(format_number(*n, c.precision).as_bytes());
            }
        }
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => encode_table(t, c, depth, out)?,
        other => return Err(fail(format!("Cannot serialise {}: type not supported", other.type_name()))),
    }
    Ok(())
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b if b < 0x20 || b == 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            b => out.push(b),
        }
    }
    out.push(b'"');
}

fn encode_table(t: &Table, c: &Config, depth: usize, out: &mut Vec<u8>) -> Result<(), Failure> {
    if depth > c.encode_max_depth {
        return Err(fail(format!("Cannot serialise, excessive nesting ({depth})")));
    }
    // Two passes, holding one pair at a time: Rust may hold only so many Lua values.
    // An array when every key is a positive integer (lua-cjson's rule), dense enough.
    let (mut count, mut max, mut array) = (0usize, 0usize, true);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(Failure::from)?;
        count += 1;
        let n = match k {
            Value::Integer(n) => n as f64,
            Value::Number(n) => n,
            _ => {
                array = false;
                continue;
            }
        };
        if n < 1.0 || n.fract() != 0.0 {
            array = false;
        } else {
            max = max.max(n as usize);
        }
    }
    array &= count > 0;
    if array && max > count * c.sparse_ratio && max > c.sparse_safe {
        if !c.sparse_convert {
            return Err(fail("Cannot serialise table: excessively sparse array"));
        }
        array = false;
    }
    if array {
        out.push(b'[');
        for i in 1..=max {
            if i > 1 {
                out.push(b',');
            }
            let v: Value = t.raw_get(i).map_err(Failure::from)?;
            encode(&v, c, depth + 1, out)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    for (i, pair) in t.pairs::<Value, Value>().enumerate() {
        let (k, v) = pair.map_err(Failure::from)?;
        if i > 0 {
            out.push(b',');
        }
        match &k {
            Value::String(s) => encode_string(&s.as_bytes(), out),
            Value::Integer(n) => encode_string(n.to_string().as_bytes(), out),
            Value::Number(n) => encode_string(format_number(*n, c.precision).as_bytes(), out),
            _ => return Err(fail("Cannot serialise table: table key must be a number or string")),
        }
        out.push(b':');
        encode(&v, c, depth + 1, out)?;
    }
    out.push(b'}');
    Ok(())
}

struct Parser<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    pos: usize,
    depth: usize,
    config: Config,
}

impl Parser<'_> {
    fn error(&self, expected: &str) -> Failure {
        let found = match self.s.get(self.pos) {
            None => "the end".to_string(),
            Some(b) => format!("'{}'", *b as char),
        };
        fail(format!("Expected {expected} but found {found} at character {}", self.pos + 1))
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, Failure> {
        match self.s.get(self.pos) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let s = self.string()?;
                Ok(Value::String(self.lua.create_string(&s)?))
            }
            Some(b't') if self.s[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            Some(b'f') if self.s[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            Some(b'n') if self.s[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(null())
            }
            Some(b'-' | b'0'..=b'9' | b'i' | b'I' | b'n' | b'N') => self.number(),
            _ => Err(self.error("value")),
        }
    }

    fn nest(&mut self) -> Result<(), Failure> {
        self.depth += 1;
        if self.depth > self.config.decode_max_depth {
            return Err(fail(format!("Found too many nested data structures ({}) at character {}", self.depth, self.pos + 1)));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Value, Failure> {
        self.nest()?;
        self.pos += 1;
        let t = self.lua.create_table()?;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.error("object key string"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b':') {
                return Err(self.error("colon"));
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value()?;
            t.raw_set(self.lua.create_string(&key)?, v)?;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.error("comma or object end")),
            }
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }

    fn array(&mut self) -> Result<Value, Failure> {
        self.nest()?;
        self.pos += 1;
        let t = self.lua.create_table()?;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        let mut i = 1;
        loop {
            self.skip_ws();
            let v = self.value()?;
            t.raw_set(i, v)?;
            i += 1;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.error("comma or array end")),
            }
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }

    fn string(&mut self) -> Result<Vec<u8>, Failure> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                self.pos = start;
                return Err(self.error("string end"));
            };
            self.pos += 1;
            match b {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else { return Err(self.error("escape")) };
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self.unicode()?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(fail(format!("Expected valid escape sequence at character {}", self.pos))),
                    }
                }
                b => out.push(b),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Failure> {
        let hex = self.s.get(self.pos..self.pos + 4).ok_or_else(|| fail("Expected unicode escape"))?;
        let text = std::str::from_utf8(hex).map_err(|_| fail("Expected unicode escape"))?;
        let n = u32::from_str_radix(text, 16).map_err(|_| fail(format!("Expected unicode escape at character {}", self.pos)))?;
        self.pos += 4;
        Ok(n)
    }

    fn unicode(&mut self) -> Result<char, Failure> {
        let first = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&first) && self.s[self.pos..].starts_with(b"\\u") {
            self.pos += 2;
            let low = self.hex4()?;
            0x10000 + ((first - 0xd800) << 10) + (low.wrapping_sub(0xdc00) & 0x3ff)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| fail("Expected valid unicode escape"))
    }

    fn number(&mut self) -> Result<Value, Failure> {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
        let lower = text.to_ascii_lowercase();
        let invalid = matches!(lower.trim_start_matches('-'), "nan" | "inf" | "infinity");
        if invalid && !self.config.decode_invalid_numbers {
            self.pos = start;
            return Err(self.error("value"));
        }
        let n: f64 = if lower.starts_with("0x") || lower.starts_with("-0x") {
            let neg = lower.starts_with('-');
            let v = i64::from_str_radix(lower.trim_start_matches('-').trim_start_matches("0x"), 16).map_err(|_| self.error("value"))?;
            if neg {
                -(v as f64)
            } else {
                v as f64
            }
        } else {
            lower.parse().map_err(|_| {
                self.pos = start;
                self.error("value")
            })?
        };
        Ok(Value::Number(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_with_fourteen_digits() {
        assert_eq!(format_number(100.0, 14), "100");
        assert_eq!(format_number(0.1, 14), "0.1");
        assert_eq!(format_number(1023.2, 14), "1023.2");
        assert_eq!(format_number(0.0003, 14), "0.0003");
        assert_eq!(format_number(1e300, 14), "1e+300");
    }
}
