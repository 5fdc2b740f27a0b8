//! `struct`: binary packing for scripts with Roberto Ierusalimschy's struct library
//! API as Redis bundles it — `pack(fmt, ...)`, `unpack(fmt, s [, pos])` (values, then
//! the position after them), `size(fmt)`. Formats: `>` `<` `=` endianness, `!n`
//! alignment, `x` padding, `b B h H l L T i[n] I[n]` integers, `f d` floats, `s`
//! zero-terminated string, `c[n]` fixed-length string (`c0` in unpack: length from the
//! value before).

use mlua::{Lua, MultiValue, Table, Value};

use super::{bad_argument, function, number_arg, one, Failure};

#[derive(Clone, Copy)]
struct Header {
    little: bool,
    align: usize,
}

fn fail(m: impl Into<String>) -> Failure {
    Failure::Message(m.into())
}

/// Reads an optional size after a format letter.
fn size_after(fmt: &[u8], i: &mut usize, default: usize) -> Result<usize, Failure> {
    let start = *i;
    while fmt.get(*i).is_some_and(|b| b.is_ascii_digit()) {
        *i += 1;
    }
    if *i == start {
        return Ok(default);
    }
    let n: usize =
        std::str::from_utf8(&fmt[start..*i]).ok().and_then(|s| s.parse().ok()).ok_or_else(|| fail("integral size out of limits"))?;
    Ok(n)
}

/// The size of an option, or None for options without one (`s`, `c0`, controls).
fn option_size(op: u8, n: usize) -> Option<usize> {
    Some(match op {
        b'x' | b'b' | b'B' => 1,
        b'h' | b'H' => 2,
        b'l' | b'L' | b'T' => 8,
        b'i' | b'I' => n,
        b'f' => 4,
        b'd' => 8,
        b'c' => n,
        _ => return None,
    })
}

fn padding(h: &Header, pos: usize, size: usize) -> usize {
    let align = size.min(h.align);
    if align <= 1 || !align.is_power_of_two() {
        return 0;
    }
    (align - (pos & (align - 1))) & (align - 1)
}

fn control(op: u8, fmt: &[u8], i: &mut usize, h: &mut Header) -> Result<bool, Failure> {
    match op {
        b' ' => {}
        b'>' => h.little = false,
        b'<' | b'=' => h.little = true,
        b'!' => h.align = size_after(fmt, i, 8)?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn put_int(out: &mut Vec<u8>, v: i64, size: usize, little: bool) {
    let bytes = v.to_le_bytes();
    let mut b: Vec<u8> = (0..size)
        .map(|k| {
            if k < 8 {
                bytes[k]
            } else if v < 0 {
                0xff
            } else {
                0
            }
        })
        .collect();
    if !little {
        b.reverse();
    }
    out.extend_from_slice(&b);
}

fn get_int(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let mut v: u64 = 0;
    let n = bytes.len();
    for k in 0..n {
        let b = if little { bytes[n - 1 - k] } else { bytes[k] };
        v = (v << 8) | b as u64;
    }
    if signed && n < 8 && n > 0 {
        let shift = 64 - 8 * n as u32;
        ((v << shift) as i64 >> shift) as f64
    } else if signed {
        v as i64 as f64
    } else {
        v as f64
    }
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", function(lua, |lua, args| pack(lua, &args))?)?;
    t.raw_set("unpack", function(lua, |lua, args| unpack(lua, &args))?)?;
    t.raw_set(
        "size",
        function(lua, |_, args| {
            let fmt = fmt_arg(&args, "size")?;
            let mut h = Header { little: true, align: 1 };
            let (mut i, mut pos) = (0, 0usize);
            while let Some(&op) = fmt.get(i) {
                i += 1;
                if control(op, &fmt, &mut i, &mut h)? {
                    continue;
                }
                let n = size_after(&fmt, &mut i, 4)?;
                let size = option_size(op, n).ok_or_else(|| fail("options 's' and 'c0' have no fixed size"))?;
                pos += padding(&h, pos, size) + size;
            }
            Ok(one(Value::Number(pos as f64)))
        })?,
    )?;
    Ok(t)
}

fn fmt_arg(args: &MultiValue, name: &str) -> Result<Vec<u8>, Failure> {
    match args.front() {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        other => Err(bad_argument(1, name, "string", other)),
    }
}

fn pack(lua: &Lua, args: &MultiValue) -> Result<MultiValue, Failure> {
    let fmt = fmt_arg(args, "pack")?;
    let mut h = Header { little: true, align: 1 };
    let mut out = Vec::new();
    let (mut i, mut arg) = (0, 1);
    while let Some(&op) = fmt.get(i) {
        i += 1;
        if control(op, &fmt, &mut i, &mut h)? {
            continue;
        }
        let n = size_after(&fmt, &mut i, if op == b'c' { 1 } else { 4 })?;
        let size = option_size(op, n).unwrap_or(0);
        out.resize(out.len() + padding(&h, out.len(), size), 0);
        match op {
            b'x' => out.push(0),
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let v = number_arg(args.get(arg)).ok_or_else(|| bad_argument(arg + 1, "pack", "number", args.get(arg)))?;
                arg += 1;
                put_int(&mut out, v as i64, size, h.little);
            }
            b'f' | b'd' => {
                let v = number_arg(args.get(arg)).ok_or_else(|| bad_argument(arg + 1, "pack", "number", args.get(arg)))?;
                arg += 1;
                let mut b = if op == b'f' { (v as f32).to_le_bytes().to_vec() } else { v.to_le_bytes().to_vec() };
                if !h.little {
                    b.reverse();
                }
                out.extend_from_slice(&b);
            }
            b'c' | b's' => {
                let Some(Value::String(s)) = args.get(arg) else { return Err(bad_argument(arg + 1, "pack", "string", args.get(arg))) };
                arg += 1;
                let s = s.as_bytes();
                if op == b's' {
                    out.extend_from_slice(&s);
                    out.push(0);
                } else {
                    let len = if n == 0 { s.len() } else { n };
                    if s.len() < len {
                        return Err(fail("string too short"));
                    }
                    out.extend_from_slice(&s[..len]);
                }
            }
            other => return Err(fail(format!("invalid format option '{}'", other as char))),
        }
    }
    Ok(one(Value::String(lua.create_string(&out)?)))
}

fn unpack(lua: &Lua, args: &MultiValue) -> Result<MultiValue, Failure> {
    let fmt = fmt_arg(args, "unpack")?;
    let Some(Value::String(data)) = args.get(1) else { return Err(bad_argument(2, "unpack", "string", args.get(1))) };
    let data = data.as_bytes().to_vec();
    let start = number_arg(args.get(2)).unwrap_or(1.0) as i64;
    if start < 1 {
        return Err(fail("offset must be 1 or greater"));
    }
    let mut pos = (start - 1) as usize;
    let mut h = Header { little: true, align: 1 };
    let mut out = MultiValue::new();
    let mut i = 0;
    let too_short = || fail("data string too short");
    while let Some(&op) = fmt.get(i) {
        i += 1;
        if control(op, &fmt, &mut i, &mut h)? {
            continue;
        }
        let n = size_after(&fmt, &mut i, if op == b'c' { 1 } else { 4 })?;
        let size = option_size(op, n).unwrap_or(0);
        pos += padding(&h, pos, size);
        match op {
            b'x' => pos += 1,
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let bytes = data.get(pos..pos + size).ok_or_else(too_short)?;
                out.push_back(Value::Number(get_int(bytes, h.little, op.is_ascii_lowercase())));
                pos += size;
            }
            b'f' | b'd' => {
                let mut bytes = data.get(pos..pos + size).ok_or_else(too_short)?.to_vec();
                if !h.little {
                    bytes.reverse();
                }
                let v = if op == b'f' {
                    f32::from_le_bytes(bytes.try_into().map_err(|_| too_short())?) as f64
                } else {
                    f64::from_le_bytes(bytes.try_into().map_err(|_| too_short())?)
                };
                out.push_back(Value::Number(v));
                pos += size;
            }
            b's' => {
                let rest = data.get(pos..).ok_or_else(too_short)?;
                let end = rest.iter().position(|&b| b == 0).ok_or_else(|| fail("unfinished string in data"))?;
                out.push_back(Value::String(lua.create_string(&rest[..end])?));
                pos += end + 1;
            }
            b'c' => {
                let len = if n == 0 {
                    match out.pop_back() {
                        Some(Value::Number(l)) => l as usize,
                        _ => return Err(fail("format 'c0' needs a previous size")),
                    }
                } else {
                    n
                };
                let bytes = data.get(pos..pos + len).ok_or_else(too_short)?;
                out.push_back(Value::String(lua.create_string(bytes)?));
                pos += len;
            }
            other => return Err(fail(format!("invalid format option '{}'", other as char))),
        }
    }
    out.push_back(Value::Number((pos + 1) as f64));
    Ok(out)
}
