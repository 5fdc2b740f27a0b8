//! Bitmap commands over string values: SETBIT, GETBIT, BITCOUNT, BITPOS (BYTE and
//! BIT ranges), BITOP and BITFIELD / BITFIELD_RO.
//!
//! Bit 0 is the most significant bit of the first byte, as in Redis; a string grows
//! with zero bytes when a bit past its end is written. Offsets are bounded so that
//! no string grows past `limits::STRING_BYTES_MAX` (Redis's 512 MB
//! `proto-max-bulk-len`); a server setting never changes that bound, because it would
//! decide what a replicated write does. Argument checks come in Redis 7.0's order, so
//! the same bad command gets the same error.

use bytes::Bytes;

use super::flags::*;
use super::*;
use crate::limits;
use crate::protocol::reply::Reply;
use crate::store::value::{Value, WRONGTYPE};

const G: &str = "bitmap";

pub static COMMANDS: &[CommandSpec] = &[
    spec("setbit", 4, WRITE | DENYOOM, (1, 1, 1), G, "Sets or clears the bit at offset of the string value.", Handler::Write(setbit)),
    spec("getbit", 3, READONLY | FAST, (1, 1, 1), G, "Returns a bit value by offset.", Handler::Read(getbit)),
    spec(
        "bitcount",
        -2,
        READONLY,
        (1, 1, 1),
        G,
        "Counts the number of set bits (population counting) in a string.",
        Handler::Read(bitcount),
    ),
    spec("bitpos", -3, READONLY, (1, 1, 1), G, "Finds the first set (1) or clear (0) bit in a string.", Handler::Read(bitpos)),
    spec(
        "bitop",
        -4,
        WRITE | DENYOOM,
        (2, -1, 1),
        G,
        "Performs bitwise operations on multiple strings, and stores the result.",
        Handler::Write(bitop),
    ),
    spec(
        "bitfield",
        -2,
        WRITE | DENYOOM,
        (1, 1, 1),
        G,
        "Performs arbitrary bitfield integer operations on strings.",
        Handler::Write(bitfield),
    ),
    spec(
        "bitfield_ro",
        -2,
        READONLY | FAST,
        (1, 1, 1),
        G,
        "Performs arbitrary read-only bitfield integer operations on strings.",
        Handler::Read(bitfield_ro),
    ),
];

const ERR_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const ERR_BIT: &str = "ERR bit is not an integer or out of range";
const ERR_BIT_ARG: &str = "ERR The bit argument must be 1 or 0.";
const ERR_NOT_SINGLE: &str = "ERR BITOP NOT must be called with a single source key.";
const ERR_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const ERR_OVERFLOW_TYPE: &str = "ERR Invalid OVERFLOW type specified";
const ERR_RO: &str = "ERR BITFIELD_RO only supports the GET subcommand";

// --- offsets and strings ---

/// A bit offset as Redis's getBitOffsetFromArgument reads it: an integer, or with
/// `hash_bits` (BITFIELD) `#n` meaning `n × hash_bits`; refused when negative or when
/// its byte would be past the largest string.
fn bit_offset(arg: &[u8], hash_bits: Option<u32>) -> Result<u64, Reply> {
    let bad = || Reply::err(ERR_OFFSET);
    let (digits, scale) = match (arg.strip_prefix(b"#"), hash_bits) {
        (Some(rest), Some(bits)) => (rest, i64::from(bits)),
        _ => (arg, 1),
    };
    let offset = parse_i64(digits).and_then(|n| n.checked_mul(scale)).ok_or_else(bad)?;
    let offset = u64::try_from(offset).map_err(|_| bad())?;
    if offset >> 3 >= limits::STRING_BYTES_MAX as u64 {
        return Err(bad());
    }
    Ok(offset)
}

/// The string at `key` made long enough to hold bit `max_bit` (created if absent);
/// true in the second place if it was created or grew (Redis's `dirty`).
fn string_for_bits<'c>(ctx: &'c mut WriteCtx<'_>, key: &[u8], max_bit: u64) -> Result<(&'c mut Vec<u8>, bool), Reply> {
    let existed = match ctx.get(key) {
        None => false,
        Some(value) => {
            value.as_str()?;
            true
        }
    };
    // max_bit was checked by bit_offset (plus at most 63 bits): the cast is exact.
    let need = (max_bit >> 3) as usize + 1;
    let Value::Str(s) = ctx.get_or_insert(key, || Value::Str(Vec::new())) else {
        return Err(Reply::err(WRONGTYPE));
    };
    let grew = s.len() < need;
    if grew {
        s.resize(need, 0);
    }
    Ok((s, grew || !existed))
}

/// The string at `key` for a reader: `None` if absent, WRONGTYPE if not a string.
fn read_string<'a>(ctx: &mut ReadCtx<'a>, key: &[u8]) -> Result<Option<&'a [u8]>, Reply> {
    match ctx.get(key) {
        None => Ok(None),
        Some(value) => Ok(Some(value.as_str()?.as_slice())),
    }
}

// --- SETBIT / GETBIT ---

fn setbit(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2], None)?;
    let on = match parse_i64(&args[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(Reply::err(ERR_BIT)),
    };
    let key = &args[1];
    let (s, dirty) = string_for_bits(ctx, key, offset)?;
    let byte = (offset >> 3) as usize;
    let mask = 1u8 << (7 - (offset & 7));
    let Some(slot) = s.get_mut(byte) else { return Err(Reply::err(ERR_OFFSET)) };
    let was = *slot & mask != 0;
    if on {
        *slot |= mask;
    } else {
        *slot &= !mask;
    }
    if dirty || was != on {
        ctx.notify(b'$', "setbit", key);
    }
    Ok(Reply::Int(i64::from(was)))
}

fn getbit(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2], None)?;
    let Some(s) = read_string(ctx, &args[1])? else { return Ok(Reply::Int(0)) };
    let bit = s.get((offset >> 3) as usize).map_or(0, |byte| (byte >> (7 - (offset & 7))) & 1);
    Ok(Reply::Int(i64::from(bit)))
}

// --- BITCOUNT / BITPOS ---

/// Set bits in `bytes`, eight bytes at a time.
fn popcount(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut count: u64 = words.by_ref().map(|w| u64::from(u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])).count_ones())).sum();
    count += words.remainder().iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
    count
}

/// Bytes `first..=last` of a string, and the masks of the bits outside a BIT range
/// in the first and the last byte.
type ByteRange = (usize, usize, u8, u8);

/// A range `start end` over `len` bytes, or bits with `in_bits`, after Redis's
/// normalisation: negatives from the end, clamped. `None` when empty.
fn byte_range(mut start: i64, mut end: i64, len: usize, in_bits: bool) -> Option<ByteRange> {
    let mut total = len as i64;
    if in_bits {
        total <<= 3;
    }
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    if in_bits {
        first_mask = !((1u16 << (8 - (start & 7))) - 1) as u8;
        last_mask = ((1u16 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Some((start as usize, end as usize, first_mask, last_mask))
}

/// BITCOUNT key [start end [BYTE|BIT]], with Redis 7.0's order: the key is looked up
/// before the range is parsed.
fn bitcount(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let Some(s) = read_string(ctx, &args[1])? else { return Ok(Reply::Int(0)) };
    let range = match args.len() {
        2 => byte_range(0, -1, s.len(), false),
        4 | 5 => {
            let (start, end) = (int_arg(&args[2])?, int_arg(&args[3])?);
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let in_bits = match args.get(4) {
                None => false,
                Some(unit) if is(unit, "bit") => true,
                Some(unit) if is(unit, "byte") => false,
                Some(_) => return Err(Reply::err(ERR_SYNTAX)),
            };
            byte_range(start, end, s.len(), in_bits)
        }
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    let Some((start, end, first_mask, last_mask)) = range else { return Ok(Reply::Int(0)) };
    let Some(bytes) = s.get(start..=end) else { return Ok(Reply::Int(0)) };
    let mut count = popcount(bytes);
    // Bits of the edge bytes outside a BIT range were counted: take them off.
    count -= u64::from((bytes[0] & first_mask).count_ones());
    count -= u64::from((bytes[bytes.len() - 1] & last_mask).count_ones());
    Ok(Reply::Int(count as i64))
}

/// Position of the first bit equal to `bit` in `bytes`; not found: -1 for a set bit,
/// the bit just past the end for a clear one (Redis's redisBitpos).
fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0x00 } else { 0xff };
    match bytes.iter().position(|&b| b != skip) {
        Some(i) => {
            let b = bytes[i];
            let within = if bit { b.leading_zeros() } else { b.leading_ones() };
            i as i64 * 8 + i64::from(within)
        }
        None if bit => -1,
        None => bytes.len() as i64 * 8,
    }
}

/// The BITPOS range arguments (`args[3..]`) over a string of `len` bytes; `None` when
/// empty; the flag says whether an end was given.
fn bitpos_range(args: &[Bytes], len: usize) -> Result<(Option<ByteRange>, bool), Reply> {
    if args.len() == 3 {
        return Ok((byte_range(0, -1, len, false), false));
    }
    if args.len() > 6 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let start = int_arg(&args[3])?;
    let in_bits = match args.get(5) {
        None => false,
        Some(unit) if is(unit, "bit") => true,
        Some(unit) if is(unit, "byte") => false,
        Some(_) => return Err(Reply::err(ERR_SYNTAX)),
    };
    let (end, end_given) = match args.get(4) {
        Some(end) => (int_arg(end)?, true),
        None if in_bits => ((len as i64) * 8 + 7, false),
        None => (len as i64 - 1, false),
    };
    Ok((byte_range(start, end, len, in_bits), end_given))
}

/// BITPOS key bit [start [end [BYTE|BIT]]]: an absent key is an endless run of zeros.
fn bitpos(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let bit = match int_arg(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(Reply::err(ERR_BIT_ARG)),
    };
    let Some(s) = read_string(ctx, &args[1])? else { return Ok(Reply::Int(if bit { -1 } else { 0 })) };
    let (range, end_given) = bitpos_range(args, s.len())?;
    let Some((start, end, first_mask, last_mask)) = range else { return Ok(Reply::Int(-1)) };
    let Some(bytes) = s.get(start..=end) else { return Ok(Reply::Int(-1)) };
    // Bits outside a BIT range are forced to the value not searched for.
    let mut window = bytes.to_vec();
    let force = |b: &mut u8, mask: u8| *b = if bit { *b & !mask } else { *b | mask };
    force(&mut window[0], first_mask);
    let last = window.len() - 1;
    force(&mut window[last], last_mask);
    let pos = first_bit(&window, bit);
    // With an explicit end, the bits right of the range are not zeros to be found.
    if end_given && !bit && pos == window.len() as i64 * 8 {
        return Ok(Reply::Int(-1));
    }
    Ok(Reply::Int(if pos == -1 { -1 } else { pos + start as i64 * 8 }))
}

// --- BITOP ---

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let op = match &args[1] {
        a if is(a, "and") => BitOp::And,
        a if is(a, "or") => BitOp::Or,
        a if is(a, "xor") => BitOp::Xor,
        a if is(a, "not") => BitOp::Not,
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    if op == BitOp::Not && args.len() != 4 {
        return Err(Reply::err(ERR_NOT_SINGLE));
    }
    let mut sources: Vec<Vec<u8>> = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        sources.push(match ctx.get(key) {
            None => Vec::new(),
            Some(value) => value.as_str()?.clone(),
        });
    }
    let len = sources.iter().map(Vec::len).max().unwrap_or(0);
    let target = &args[2];
    if len == 0 {
        if ctx.delete(target) {
            ctx.notify(b'g', "del", target);
        }
        return Ok(Reply::Int(0));
    }
    let byte = |s: &Vec<u8>, i: usize| s.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|i| {
            let mut rest = sources.iter().map(|s| byte(s, i));
            let first = rest.next().unwrap_or(0);
            match op {
                BitOp::Not => !first,
                BitOp::And => rest.fold(first, |a, b| a & b),
                BitOp::Or => rest.fold(first, |a, b| a | b),
                BitOp::Xor => rest.fold(first, |a, b| a ^ b),
            }
        })
        .collect();
    ctx.set(target, Value::Str(result));
    ctx.notify(b'$', "set", target);
    Ok(Reply::Int(len as i64))
}

// --- BITFIELD ---

#[derive(Clone, Copy, PartialEq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One BITFIELD operation: a signed or unsigned integer of `bits` bits at `offset`.
#[derive(Clone, Copy, Debug)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// `i8`…`i64`, `u1`…`u63`.
fn field_type(arg: &[u8]) -> Result<(bool, u32), Reply> {
    let bad = || Reply::err(ERR_TYPE);
    let (signed, digits) = match arg.split_first() {
        Some((b'i', rest)) => (true, rest),
        Some((b'u', rest)) => (false, rest),
        _ => return Err(bad()),
    };
    let bits = parse_i64(digits).ok_or_else(bad)?;
    let max = if signed { 64 } else { 63 };
    if !(1..=max).contains(&bits) {
        return Err(bad());
    }
    Ok((signed, bits as u32))
}

/// Parses the operations of BITFIELD key [GET t o] [SET t o v] [INCRBY t o n]
/// [OVERFLOW WRAP|SAT|FAIL]…
fn parse_fields(args: &[Bytes]) -> Result<Vec<Field>, Reply> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while let Some(sub) = args.get(j) {
        let remaining = args.len() - j - 1;
        let (get, set, incr) = (is(sub, "get"), is(sub, "set"), is(sub, "incrby"));
        if is(sub, "overflow") && remaining >= 1 {
            overflow = match &args[j + 1] {
                a if is(a, "wrap") => Overflow::Wrap,
                a if is(a, "sat") => Overflow::Sat,
                a if is(a, "fail") => Overflow::Fail,
                _ => return Err(Reply::err(ERR_OVERFLOW_TYPE)),
            };
            j += 2;
            continue;
        }
        if !((get && remaining >= 2) || ((set || incr) && remaining >= 3)) {
            return Err(Reply::err(ERR_SYNTAX));
        }
        let (signed, bits) = field_type(&args[j + 1])?;
        let offset = bit_offset(&args[j + 2], Some(bits))?;
        let op = match () {
            _ if get => FieldOp::Get,
            _ if set => FieldOp::Set(int_arg(&args[j + 3])?),
            _ => FieldOp::IncrBy(int_arg(&args[j + 3])?),
        };
        fields.push(Field { op, signed, bits, offset, overflow });
        j += if get { 3 } else { 4 };
    }
    Ok(fields)
}

/// Reads `bits` bits at bit `offset` as an unsigned number; bytes past the end are zeros.
fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0u64, |value, j| {
        let at = offset + j;
        let byte = usize::try_from(at >> 3).ok().and_then(|i| s.get(i)).copied().unwrap_or(0);
        (value << 1) | u64::from((byte >> (7 - (at & 7))) & 1)
    })
}

fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let value = get_unsigned(s, offset, bits);
    if bits < 64 && value & (1 << (bits - 1)) != 0 {
        (value | (u64::MAX << bits)) as i64
    } else {
        value as i64
    }
}

/// Writes the low `bits` bits of `value` at bit `offset`; the string holds them.
fn set_bits(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let bit = (value >> (u64::from(bits) - 1 - j)) & 1;
        let at = offset + j;
        if let Some(byte) = usize::try_from(at >> 3).ok().and_then(|i| s.get_mut(i)) {
            let mask = 1u8 << (7 - (at & 7));
            *byte = if bit == 1 { *byte | mask } else { *byte & !mask };
        }
    }
}

/// Redis's checkUnsignedBitfieldOverflow: `Some(result)` to store (wrapped or
/// saturated) when `value + incr` does not fit `bits` bits, `None` when it fits.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > max_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { max })
    } else if incr < 0 && incr < min_incr {
        Some(if overflow == Overflow::Wrap { wrap() } else { 0 })
    } else {
        None
    }
}

/// Redis's checkSignedBitfieldOverflow, as [`unsigned_overflow`].
fn signed_overflow(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrap = || {
        let sum = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if sum & (1 << (bits - 1)) != 0 {
                (sum | mask) as i64
            } else {
                (sum & !mask) as i64
            }
        } else {
            sum as i64
        }
    };
    let wide = bits != 64;
    if value > max || (wide && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { max })
    } else if value < min || (wide && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { min })
    } else {
        None
    }
}

/// Runs one SET or INCRBY on `s`: its reply, and whether the bits changed.
fn write_field(s: &mut [u8], f: &Field) -> (Reply, bool) {
    let (delta, is_set) = match f.op {
        FieldOp::Set(v) => (v, true),
        FieldOp::IncrBy(n) => (n, false),
        FieldOp::Get => return (Reply::Int(0), false),
    };
    let (old, new, reply, over) = if f.signed {
        let old = get_signed(s, f.offset, f.bits);
        let (candidate, incr) = if is_set { (delta, 0) } else { (old, delta) };
        let limited = signed_overflow(candidate, incr, f.bits, f.overflow);
        let new = limited.unwrap_or(candidate.wrapping_add(incr));
        (old as u64, new as u64, if is_set { old } else { new }, limited.is_some())
    } else {
        let old = get_unsigned(s, f.offset, f.bits);
        let (candidate, incr) = if is_set { (delta as u64, 0) } else { (old, delta) };
        let limited = unsigned_overflow(candidate, incr, f.bits, f.overflow);
        let new = limited.unwrap_or(candidate.wrapping_add(incr as u64));
        (old, new, if is_set { old as i64 } else { new as i64 }, limited.is_some())
    };
    if over && f.overflow == Overflow::Fail {
        return (Reply::Nil, false);
    }
    set_bits(s, f.offset, f.bits, new);
    let mask = if f.bits == 64 { u64::MAX } else { (1u64 << f.bits) - 1 };
    (Reply::Int(reply), old & mask != new & mask)
}

fn read_field(s: &[u8], f: &Field) -> Reply {
    if f.signed {
        Reply::Int(get_signed(s, f.offset, f.bits))
    } else {
        Reply::Int(get_unsigned(s, f.offset, f.bits) as i64)
    }
}

fn bitfield(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let fields = parse_fields(args)?;
    let key = &args[1];
    let highest = fields.iter().filter(|f| f.op != FieldOp::Get).map(|f| f.offset + u64::from(f.bits) - 1).max();
    let Some(highest) = highest else {
        // Only GETs: a read, which may meet an absent key.
        let s = match ctx.get(key) {
            None => Vec::new(),
            Some(value) => value.as_str()?.clone(),
        };
        return Ok(Reply::Array(fields.iter().map(|f| read_field(&s, f)).collect()));
    };
    let (s, dirty) = string_for_bits(ctx, key, highest)?;
    let mut changes = 0;
    let replies = fields
        .iter()
        .map(|f| match f.op {
            FieldOp::Get => read_field(s, f),
            _ => {
                let (reply, changed) = write_field(s, f);
                if reply != Reply::Nil && (dirty || changed) {
                    changes += 1;
                }
                reply
            }
        })
        .collect();
    if changes > 0 {
        ctx.notify(b'$', "setbit", key);
    }
    Ok(Reply::Array(replies))
}

fn bitfield_ro(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let fields = parse_fields(args)?;
    if fields.iter().any(|f| f.op != FieldOp::Get) {
        return Err(Reply::err(ERR_RO));
    }
    let s = read_string(ctx, &args[1])?.unwrap_or_default();
    Ok(Reply::Array(fields.iter().map(|f| read_field(s, f)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::Store;

    const T: u64 = 1_000;

    fn ints(values: &[i64]) -> Reply {
        Reply::Array(values.iter().map(|&v| Reply::Int(v)).collect())
    }

    #[test]
    fn setbit_grows_the_string_and_returns_the_old_bit() {
        let mut store = Store::new();
        assert_eq!(run(&mut store, T, &["setbit", "k", "7", "1"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["get", "k"]), bulk("\x01"));
        assert_eq!(run(&mut store, T, &["setbit", "k", "7", "0"]), Reply::Int(1));
        assert_eq!(run(&mut store, T, &["setbit", "k", "15", "1"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["get", "k"]), bulk("\x00\x01"));
        assert_eq!(run(&mut store, T, &["getbit", "k", "15"]), Reply::Int(1));
        assert_eq!(run(&mut store, T, &["getbit", "k", "1000"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["getbit", "missing", "3"]), Reply::Int(0));
    }

    #[test]
    fn setbit_errors_come_in_redis_order() {
        let mut store = Store::new();
        run(&mut store, T, &["lpush", "l", "x"]);
        assert_eq!(run(&mut store, T, &["setbit", "k", "-1", "1"]), err(ERR_OFFSET));
        assert_eq!(run(&mut store, T, &["setbit", "k", "4294967296", "1"]), err(ERR_OFFSET));
        assert_eq!(run(&mut store, T, &["setbit", "k", "0", "2"]), err(ERR_BIT));
        assert_eq!(run(&mut store, T, &["setbit", "l", "x", "2"]), err(ERR_OFFSET));
        assert_eq!(run(&mut store, T, &["setbit", "l", "0", "1"]), err(WRONGTYPE));
        assert_eq!(run(&mut store, T, &["getbit", "l", "0"]), err(WRONGTYPE));
        assert_eq!(run(&mut store, T, &["getbit", "l", "-1"]), err(ERR_OFFSET));
    }

    #[test]
    fn setbit_records_an_event_only_when_something_changed() {
        let mut store = Store::new();
        assert_eq!(run_applied(&mut store, T, &["setbit", "k", "0", "0"]).events.len(), 1, "created");
        assert_eq!(run_applied(&mut store, T, &["setbit", "k", "0", "0"]).events.len(), 0, "unchanged");
        assert_eq!(run_applied(&mut store, T, &["setbit", "k", "0", "1"]).events.len(), 1, "changed");
    }

    #[test]
    fn bitcount_by_byte_and_by_bit() {
        let mut store = Store::new();
        run(&mut store, T, &["set", "k", "foobar"]);
        assert_eq!(run(&mut store, T, &["bitcount", "k"]), Reply::Int(26));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "0", "0"]), Reply::Int(4));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "1", "1"]), Reply::Int(6));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "1", "1", "byte"]), Reply::Int(6));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "5", "30", "bit"]), Reply::Int(17));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "-2", "-1"]), Reply::Int(7));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "-1", "-2"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "-1", "-2", "bogus"]), Reply::Int(0), "Redis 7.0 answers before parsing the unit");
        assert_eq!(run(&mut store, T, &["bitcount", "k", "0"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "0", "1", "bits"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["bitcount", "k", "a", "1"]), err(ERR_NOT_INT));
        assert_eq!(run(&mut store, T, &["bitcount", "missing", "a", "1"]), Reply::Int(0));
    }

    #[test]
    fn bitpos_finds_set_and_clear_bits() {
        let mut store = Store::new();
        run(&mut store, T, &["set", "k", "\u{7f}"]);
        assert_eq!(run(&mut store, T, &["bitpos", "k", "0"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["bitpos", "k", "1"]), Reply::Int(1));
        run(&mut store, T, &["set", "ff", "\x00\x00\x00"]);
        assert_eq!(run(&mut store, T, &["bitpos", "ff", "1"]), Reply::Int(-1));
        assert_eq!(run(&mut store, T, &["bitpos", "missing", "1"]), Reply::Int(-1));
        assert_eq!(run(&mut store, T, &["bitpos", "missing", "0"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["bitpos", "k", "2"]), err(ERR_BIT_ARG));
    }

    #[test]
    fn bitpos_with_ranges_in_bytes_and_bits() {
        let mut store = Store::new();
        run(&mut store, T, &["setbit", "k", "23", "1"]);
        run(&mut store, T, &["setbit", "k", "0", "1"]);
        assert_eq!(run(&mut store, T, &["bitpos", "k", "1", "1"]), Reply::Int(23));
        assert_eq!(run(&mut store, T, &["bitpos", "k", "1", "1", "-1"]), Reply::Int(23));
        assert_eq!(run(&mut store, T, &["bitpos", "k", "1", "1", "23", "bit"]), Reply::Int(23));
        assert_eq!(run(&mut store, T, &["bitpos", "k", "1", "1", "22", "bit"]), Reply::Int(-1));
        assert_eq!(run(&mut store, T, &["bitpos", "k", "0", "0", "0", "bit"]), Reply::Int(-1));
        assert_eq!(run(&mut store, T, &["bitpos", "k", "0", "0", "-1", "bit"]), Reply::Int(1));
        assert_eq!(run(&mut store, T, &["bitpos", "k", "1", "0", "1", "bits"]), err(ERR_SYNTAX));
    }

    #[test]
    fn bitop_combines_strings_and_deletes_on_empty_result() {
        let mut store = Store::new();
        run(&mut store, T, &["set", "a", "abc"]);
        run(&mut store, T, &["set", "b", "a"]);
        assert_eq!(run(&mut store, T, &["bitop", "and", "d", "a", "b"]), Reply::Int(3));
        assert_eq!(run(&mut store, T, &["get", "d"]), bulk("a\x00\x00"));
        assert_eq!(run(&mut store, T, &["bitop", "or", "d", "a", "b", "missing"]), Reply::Int(3));
        assert_eq!(run(&mut store, T, &["get", "d"]), bulk("abc"));
        assert_eq!(run(&mut store, T, &["bitop", "xor", "d", "a", "b"]), Reply::Int(3));
        assert_eq!(run(&mut store, T, &["get", "d"]), bulk("\x00bc"));
        assert_eq!(run(&mut store, T, &["bitop", "not", "d", "b"]), Reply::Int(1));
        assert_eq!(run(&mut store, T, &["get", "d"]), Reply::Bulk(Bytes::from_static(&[!b'a'])));
        assert_eq!(run(&mut store, T, &["bitop", "not", "d", "a", "b"]), err(ERR_NOT_SINGLE));
        assert_eq!(run(&mut store, T, &["bitop", "nand", "d", "a"]), err(ERR_SYNTAX));
        let applied = run_applied(&mut store, T, &["bitop", "and", "d", "nothing"]);
        assert_eq!(applied.replies[0], Reply::Int(0));
        assert_eq!(applied.events.iter().map(|e| e.event).collect::<Vec<_>>(), vec!["del"]);
        assert_eq!(run(&mut store, T, &["exists", "d"]), Reply::Int(0));
        run(&mut store, T, &["lpush", "l", "x"]);
        assert_eq!(run(&mut store, T, &["bitop", "or", "d", "a", "l"]), err(WRONGTYPE));
    }

    #[test]
    fn bitfield_get_set_incrby() {
        let mut store = Store::new();
        assert_eq!(run(&mut store, T, &["bitfield", "k", "set", "u8", "0", "255", "get", "u8", "0"]), ints(&[0, 255]));
        assert_eq!(
            run(&mut store, T, &["bitfield", "k", "incrby", "u2", "100", "1", "overflow", "sat", "incrby", "u2", "102", "1"]),
            ints(&[1, 1])
        );
        assert_eq!(
            run(&mut store, T, &["bitfield", "k", "set", "i8", "#1", "-1", "get", "i8", "#1", "get", "u4", "8"]),
            ints(&[0, -1, 15])
        );
        assert_eq!(run(&mut store, T, &["bitfield", "k", "get", "i64", "0"]), ints(&[-281474976710656]));
        assert_eq!(run(&mut store, T, &["bitfield", "missing", "get", "u8", "0"]), ints(&[0]));
        assert_eq!(run(&mut store, T, &["bitfield", "missing"]), ints(&[]));
        assert_eq!(run(&mut store, T, &["exists", "missing"]), Reply::Int(0));
    }

    #[test]
    fn bitfield_overflow_modes() {
        let mut store = Store::new();
        let wrap = run(&mut store, T, &["bitfield", "k", "set", "u8", "0", "250", "incrby", "u8", "0", "10"]);
        assert_eq!(wrap, ints(&[0, 4]));
        let sat = run(&mut store, T, &["bitfield", "k", "overflow", "sat", "incrby", "u8", "0", "300", "incrby", "i8", "8", "-300"]);
        assert_eq!(sat, ints(&[255, -128]));
        let fail = run(&mut store, T, &["bitfield", "k", "overflow", "fail", "incrby", "u8", "0", "1", "get", "u8", "0"]);
        assert_eq!(fail, Reply::Array(vec![Reply::Nil, Reply::Int(255)]));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "set", "i8", "16", "200"]), ints(&[0]));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "get", "i8", "16"]), ints(&[-56]));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "set", "i64", "64", "-1", "incrby", "i64", "64", "1"]), ints(&[0, 0]));
        let big = run(&mut store, T, &["bitfield", "k", "set", "i64", "64", "9223372036854775807", "incrby", "i64", "64", "1"]);
        assert_eq!(big, ints(&[0, i64::MIN]));
    }

    #[test]
    fn bitfield_errors_and_bitfield_ro() {
        let mut store = Store::new();
        assert_eq!(run(&mut store, T, &["bitfield", "k", "get", "u64", "0"]), err(ERR_TYPE));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "get", "i65", "0"]), err(ERR_TYPE));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "get", "x8", "0"]), err(ERR_TYPE));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "get", "u8", "-1"]), err(ERR_OFFSET));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "get", "u8", "#-1"]), err(ERR_OFFSET));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "get", "u8"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "overflow", "maybe"]), err(ERR_OVERFLOW_TYPE));
        assert_eq!(run(&mut store, T, &["bitfield", "k", "set", "u8", "0", "x"]), err(ERR_NOT_INT));
        assert_eq!(run(&mut store, T, &["bitfield_ro", "k", "set", "u8", "0", "1"]), err(ERR_RO));
        run(&mut store, T, &["set", "k", "\u{7f}"]);
        assert_eq!(run(&mut store, T, &["bitfield_ro", "k", "get", "u8", "0", "get", "u4", "4"]), ints(&[127, 15]));
        run(&mut store, T, &["lpush", "l", "x"]);
        assert_eq!(run(&mut store, T, &["bitfield_ro", "l", "get", "u8", "0"]), err(WRONGTYPE));
        assert_eq!(run(&mut store, T, &["bitfield", "l", "set", "u8", "0", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn overflow_helpers_match_redis_edge_cases() {
        assert_eq!(unsigned_overflow(3, 1, 2, Overflow::Wrap), Some(0));
        assert_eq!(unsigned_overflow(0, -1, 2, Overflow::Sat), Some(0));
        assert_eq!(unsigned_overflow(0, -1, 2, Overflow::Wrap), Some(3));
        assert_eq!(unsigned_overflow(1, 1, 2, Overflow::Wrap), None);
        assert_eq!(signed_overflow(127, 1, 8, Overflow::Wrap), Some(-128));
        assert_eq!(signed_overflow(-128, -1, 8, Overflow::Sat), Some(-128));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Overflow::Sat), Some(i64::MAX));
        assert_eq!(signed_overflow(i64::MIN, -1, 64, Overflow::Wrap), Some(i64::MAX));
        assert_eq!(signed_overflow(5, -3, 64, Overflow::Wrap), None);
    }
}
