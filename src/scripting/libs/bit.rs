//! `bit`: the LuaBitOp API Redis bundles (tobit, tohex, bnot, band, bor, bxor, lshift,
//! rshift, arshift, rol, ror, bswap) on 32-bit signed integers. Numbers become 32 bits
//! the way LuaBitOp does it: rounded to the nearest integer, taken modulo 2^32.

use mlua::{Lua, MultiValue, Table, Value};

use super::{bad_argument, function, number_arg, one, Failure};

/// LuaBitOp's conversion: add 2^52 + 2^51 and keep the low 32 bits of the double.
pub fn tobit(n: f64) -> i32 {
    let shifted = n + 6755399441055744.0;
    shifted.to_bits() as u32 as i32
}

fn arg(args: &MultiValue, i: usize, name: &str) -> Result<i32, Failure> {
    number_arg(args.get(i)).map(tobit).ok_or_else(|| bad_argument(i + 1, name, "number", args.get(i)))
}

fn num(v: i32) -> MultiValue {
    one(Value::Number(v as f64))
}

pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("tobit", function(lua, |_, a| Ok(num(arg(&a, 0, "tobit")?)))?)?;
    t.raw_set("bnot", function(lua, |_, a| Ok(num(!arg(&a, 0, "bnot")?)))?)?;
    t.raw_set("bswap", function(lua, |_, a| Ok(num(arg(&a, 0, "bswap")?.swap_bytes())))?)?;
    for (name, op) in [("band", 0u8), ("bor", 1), ("bxor", 2)] {
        t.raw_set(
            name,
            function(lua, move |_, a| {
                let mut acc = arg(&a, 0, name)?;
                for i in 1..a.len() {
                    let v = arg(&a, i, name)?;
                    acc = match op {
                        0 => acc & v,
                        1 => acc | v,
                        _ => acc ^ v,
                    };
                }
                Ok(num(acc))
            })?,
        )?;
    }
    for (name, op) in [("lshift", 0u8), ("rshift", 1), ("arshift", 2), ("rol", 3), ("ror", 4)] {
        t.raw_set(
            name,
            function(lua, move |_, a| {
                let v = arg(&a, 0, name)?;
                let n = (arg(&a, 1, name)? & 31) as u32;
                let out = match op {
                    0 => ((v as u32) << n) as i32,
                    1 => ((v as u32) >> n) as i32,
                    2 => v >> n,
                    3 => (v as u32).rotate_left(n) as i32,
                    _ => (v as u32).rotate_right(n) as i32,
                };
                Ok(num(out))
            })?,
        )?;
    }
    t.raw_set(
        "tohex",
        function(lua, |lua, a| {
            let v = arg(&a, 0, "tohex")? as u32;
            let n = if a.len() > 1 { arg(&a, 1, "tohex")? } else { 8 };
            let upper = n < 0;
            let digits = (n.unsigned_abs().min(8)) as usize;
            let full = if upper { format!("{v:08X}") } else { format!("{v:08x}") };
            let text = &full[8 - digits..];
            Ok(one(Value::String(lua.create_string(text)?)))
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_wrap_to_32_bits_as_luabitop() {
        assert_eq!(tobit(1.0), 1);
        assert_eq!(tobit(4294967295.0), -1);
        assert_eq!(tobit(2147483648.0), -2147483648);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(1.5), 2);
    }
}
