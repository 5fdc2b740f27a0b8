//! `cmsgpack`: MessagePack for scripts with lua-cmsgpack's API as Redis bundles it —
//! `pack(...)`, `unpack(s)`, `unpack_one(s, offset)`, `unpack_limit(s, limit, offset)`.
//! Tables nest at most 16 deep (deeper ones pack as nil); a table whose keys are
//! exactly 1..n packs as an array, any other as a map; integral numbers pack as the
//! smallest integer type, others as float32 when exact, else float64.

use mlua::{Lua, MultiValue, Table, Value};

use super::{bad_argument, function, number_arg, one, Failure};

const NESTING_MAX: usize = 16;

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set(
        "pack",
        function(lua, |lua, args| {
            if args.is_empty() {
                return Err(Failure::Message("MessagePack pack needs input.".into()));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                pack(v, 0, &mut out)?;
            }
            Ok(one(Value::String(lua.create_string(&out)?)))
        })?,
    )?;
    t.raw_set(
        "unpack",
        function(lua, |lua, args| {
            let bytes = string_arg(&args, "unpack")?;
            let mut d = Unpacker { lua, s: &bytes, pos: 0 };
            let mut out = MultiValue::new();
            while d.pos < bytes.len() {
                out.push_back(d.value()?);
            }
            Ok(out)
        })?,
    )?;
    t.raw_set("unpack_one", function(lua, |lua, args| unpack_limited(lua, &args, 1, args.get(1), "unpack_one"))?)?;
    t.raw_set(
        "unpack_limit",
        function(lua, |lua, args| {
            let limit = number_arg(args.get(1)).unwrap_or(0.0) as i64;
            unpack_limited(lua, &args, limit, args.get(2), "unpack_limit")
        })?,
    )?;
    Ok(t)
}

fn string_arg(args: &MultiValue, name: &str) -> Result<Vec<u8>, Failure> {
    match args.front() {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        other => Err(bad_argument(1, name, "string", other)),
    }
}

/// Decodes up to `limit` values (all when 0 or less) from `offset`; returns the next
/// offset (-1 at the end) and the values.
fn unpack_limited(lua: &Lua, args: &MultiValue, limit: i64, offset: Option<&Value>, name: &str) -> Result<MultiValue, Failure> {
    let bytes = string_arg(args, name)?;
    let offset = number_arg(offset).unwrap_or(0.0) as i64;
    if offset < 0 || offset as usize > bytes.len() {
        return Err(Failure::Message("Start offset greater than input length.".into()));
    }
    let mut d = Unpacker { lua, s: &bytes, pos: offset as usize };
    let mut values = Vec::new();
    while d.pos < bytes.len() && (limit <= 0 || (values.len() as i64) < limit) {
        values.push(d.value()?);
    }
    let next = if d.pos >= bytes.len() { -1 } else { d.pos as i64 };
    let mut out = MultiValue::new();
    out.push_back(Value::Number(next as f64));
    out.extend(values);
    Ok(out)
}

fn pack(v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), Failure> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => pack_int(*n, out),
        Value::Number(n) => pack_number(*n, out),
        Value::String(s) => pack_str(&s.as_bytes(), out),
        Value::Table(t) if depth < NESTING_MAX => pack_table(t, depth, out)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn pack_number(n: f64, out: &mut Vec<u8>) {
    if n.is_finite() && n.fract() == 0.0 && (-9.2e18..=1.8e19).contains(&n) {
        if n >= 0.0 {
            pack_uint(n as u64, out);
        } else {
            pack_int(n as i64, out);
        }
    } else if (n as f32) as f64 == n {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn pack_uint(n: u64, out: &mut Vec<u8>) {
    match n {
        0..=0x7f => out.push(n as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn pack_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        return pack_uint(n as u64, out);
    }
    match n {
        -32..=-1 => out.push(n as i8 as u8),
        -128..=-33 => out.extend_from_slice(&[0xd0, n as i8 as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2147483648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn pack_str(s: &[u8], out: &mut Vec<u8>) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn pack_len(len: usize, fix: u8, b16: u8, b32: u8, out: &mut Vec<u8>) {
    if len < 16 {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn pack_table(t: &Table, depth: usize, out: &mut Vec<u8>) -> Result<(), Failure> {
    // Two passes, holding one pair at a time: Rust may hold only so many Lua values.
    let (mut count, mut max, mut array) = (0usize, 0.0f64, true);
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
        max = max.max(n);
        array &= n >= 1.0 && n.fract() == 0.0;
    }
    let array = array && max as usize == count;
    if array {
        pack_len(count, 0x90, 0xdc, 0xdd, out);
        for i in 1..=count {
            let v: Value = t.raw_get(i).map_err(Failure::from)?;
            pack(&v, depth + 1, out)?;
        }
    } else {
        pack_len(count, 0x80, 0xde, 0xdf, out);
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair.map_err(Failure::from)?;
            pack(&k, depth + 1, out)?;
            pack(&v, depth + 1, out)?;
        }
    }
    Ok(())
}

struct Unpacker<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    pos: usize,
}

fn missing() -> Failure {
    Failure::Message("Missing bytes in input.".into())
}

impl Unpacker<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Failure> {
        let end = self.pos.checked_add(n).ok_or_else(missing)?;
        let bytes = self.s.get(self.pos..end).ok_or_else(missing)?;
        self.pos = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, Failure> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }

    fn value(&mut self) -> Result<Value, Failure> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            0x00..=0x7f => Value::Number(tag as f64),
            0x80..=0x8f => self.map((tag & 0x0f) as usize)?,
            0x90..=0x9f => self.array((tag & 0x0f) as usize)?,
            0xa0..=0xbf => self.string((tag & 0x1f) as usize)?,
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 | 0xd9 => {
                let n = self.uint(1)? as usize;
                self.string(n)?
            }
            0xc5 | 0xda => {
                let n = self.uint(2)? as usize;
                self.string(n)?
            }
            0xc6 | 0xdb => {
                let n = self.uint(4)? as usize;
                self.string(n)?
            }
            0xca => Value::Number(f32::from_bits(self.uint(4)? as u32) as f64),
            0xcb => Value::Number(f64::from_bits(self.uint(8)?)),
            0xcc => Value::Number(self.uint(1)? as f64),
            0xcd => Value::Number(self.uint(2)? as f64),
            0xce => Value::Number(self.uint(4)? as f64),
            0xcf => Value::Number(self.uint(8)? as f64),
            0xd0 => Value::Number(self.uint(1)? as u8 as i8 as f64),
            0xd1 => Value::Number(self.uint(2)? as u16 as i16 as f64),
            0xd2 => Value::Number(self.uint(4)? as u32 as i32 as f64),
            0xd3 => Value::Number(self.uint(8)? as i64 as f64),
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(n)?
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(n)?
            }
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(n)?
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(n)?
            }
            0xe0..=0xff => Value::Number(tag as i8 as f64),
            _ => return Err(Failure::Message("Bad data format in input.".into())),
        })
    }

    fn string(&mut self, n: usize) -> Result<Value, Failure> {
        let bytes = self.take(n)?.to_vec();
        Ok(Value::String(self.lua.create_string(&bytes)?))
    }

    fn array(&mut self, n: usize) -> Result<Value, Failure> {
        // Every element takes at least a byte: a count the input cannot hold is refused
        // before anything is allocated for it.
        if n > self.s.len() - self.pos {
            return Err(missing());
        }
        let t = self.lua.create_table_with_capacity(n.min(1024), 0)?;
        for i in 1..=n {
            let v = self.value()?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, n: usize) -> Result<Value, Failure> {
        if n > self.s.len() - self.pos {
            return Err(missing());
        }
        let t = self.lua.create_table()?;
        for _ in 0..n {
            let k = self.value()?;
            let v = self.value()?;
            if !matches!(k, Value::Nil) {
                t.raw_set(k, v)?;
            }
        }
        Ok(Value::Table(t))
    }
}
