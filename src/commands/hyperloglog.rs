//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE and PFDEBUG (GETREG, DECODE,
//! ENCODING, TODENSE). The representation is [`super::hll`]'s, Redis's `HYLL` strings.
//!
//! One difference from Redis, by design: PFCOUNT is a read here. Redis stores the
//! count it computed back into the string's cache (PFCOUNT is a write there, replicated
//! like one); a read that wrote would cost a Raft round per count. So PFCOUNT uses a
//! valid cache when the string has one (an HLL restored or SET from Redis) and
//! otherwise computes the count, which takes microseconds, and the cache bytes of an
//! HLL written here stay marked stale.

use bytes::Bytes;

use super::flags::*;
use super::hll::{self, Encoding, HllError};
use super::*;
use crate::protocol::reply::Reply;
use crate::store::value::{Value, WRONGTYPE};

const G: &str = "hyperloglog";

pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "pfadd",
        -2,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        G,
        "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
        Handler::Write(pfadd),
    ),
    spec(
        "pfcount",
        -2,
        READONLY | MAY_REPLICATE,
        (1, -1, 1),
        G,
        "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
        Handler::Read(pfcount),
    ),
    spec(
        "pfmerge",
        -2,
        WRITE | DENYOOM,
        (1, -1, 1),
        G,
        "Merges one or more HyperLogLog values into a single key.",
        Handler::Write(pfmerge),
    ),
    spec("pfdebug", -3, WRITE | ADMIN, (2, 2, 1), G, "Internal commands for debugging HyperLogLog values.", Handler::Write(pfdebug)),
    spec("pfselftest", 1, READONLY | ADMIN, (0, 0, 0), G, "An internal command for testing HyperLogLog values.", Handler::Read(pfselftest)),
];

/// Elements PFSELFTEST adds while it checks the estimate's error. Redis adds 10^7;
/// 10^6 checks the same bounds at every power of ten in a tenth of the time, which
/// matters because a read holds the store while it runs.
const SELFTEST_ELEMENTS: u64 = 1_000_000;

/// Rounds of random register values PFSELFTEST writes and reads back (dense packing).
const SELFTEST_REGISTER_ROUNDS: usize = 16;

const ERR_NO_SUCH_KEY: &str = "ERR The specified key does not exist";
const ERR_NOT_SPARSE: &str = "ERR HLL encoding is not sparse";

fn hll_error(e: HllError) -> Reply {
    Reply::error(e.to_string())
}

/// The HLL string at `key` for a reader: `None` if absent; WRONGTYPE for another type
/// or a string that is not an HLL.
fn read_hll<'a>(ctx: &mut ReadCtx<'a>, key: &[u8]) -> Result<Option<&'a [u8]>, Reply> {
    let Some(value) = ctx.get(key) else { return Ok(None) };
    let s = value.as_str()?;
    hll::encoding(s).map_err(hll_error)?;
    Ok(Some(s))
}

/// The HLL string at `key` for a writer, checked as in [`read_hll`].
fn write_hll<'c>(ctx: &'c mut WriteCtx<'_>, key: &[u8]) -> Result<Option<(&'c mut Vec<u8>, Encoding)>, Reply> {
    let Some(value) = ctx.get_mut(key) else { return Ok(None) };
    let Value::Str(s) = value else { return Err(Reply::err(WRONGTYPE)) };
    let encoding = hll::encoding(s).map_err(hll_error)?;
    Ok(Some((s, encoding)))
}

/// Raises registers for `elements`; true if any rose.
fn add_all(registers: &mut hll::Registers, elements: &[Bytes]) -> bool {
    let mut changed = false;
    for element in elements {
        let (index, value) = hll::position(element);
        if registers[index] < value {
            registers[index] = value;
            changed = true;
        }
    }
    changed
}

/// PFADD key [element …]: 1 if the HLL changed (a new key counts as a change).
fn pfadd(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (key, elements) = (&args[1], &args[2..]);
    let updated = match write_hll(ctx, key)? {
        None => {
            let mut registers = hll::empty_registers();
            add_all(&mut registers, elements);
            ctx.set(key, Value::Str(hll::encode(&registers, true)));
            true
        }
        Some((s, Encoding::Dense)) => {
            let mut changed = false;
            for element in elements {
                let (index, value) = hll::position(element);
                changed |= hll::dense_raise(s, index, value);
            }
            if changed {
                hll::invalidate_cache(s);
            }
            changed
        }
        Some((s, Encoding::Sparse)) => {
            let mut registers = hll::registers(s).map_err(hll_error)?;
            let changed = add_all(&mut registers, elements);
            if changed {
                *s = hll::encode(&registers, true);
            }
            changed
        }
    };
    if updated {
        ctx.notify(b'$', "pfadd", key);
    }
    Ok(Reply::Int(i64::from(updated)))
}

/// PFCOUNT key [key …]: one key's estimate (its cache when valid), or the estimate
/// of the union of several.
fn pfcount(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    if let [_, key] = args {
        let Some(s) = read_hll(ctx, key)? else { return Ok(Reply::Int(0)) };
        if let Some(cached) = hll::cached_count(s) {
            return Ok(Reply::Int(cached as i64));
        }
        let registers = hll::registers(s).map_err(hll_error)?;
        return Ok(Reply::Int(hll::count(&registers) as i64));
    }
    let mut union = hll::empty_registers();
    for key in &args[1..] {
        let Some(s) = read_hll(ctx, key)? else { continue };
        let registers = hll::registers(s).map_err(hll_error)?;
        for (u, r) in union.iter_mut().zip(registers.iter()) {
            *u = (*u).max(*r);
        }
    }
    Ok(Reply::Int(hll::count(&union) as i64))
}

/// PFMERGE destkey [sourcekey …]: the destination (itself one of the inputs) gets
/// the register-wise maximum; dense if any input was.
fn pfmerge(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut union = hll::empty_registers();
    let mut dense = false;
    for key in &args[1..] {
        let Some(value) = ctx.get(key) else { continue };
        let s = value.as_str()?;
        dense |= hll::encoding(s).map_err(hll_error)? == Encoding::Dense;
        let registers = hll::registers(s).map_err(hll_error)?;
        for (u, r) in union.iter_mut().zip(registers.iter()) {
            *u = (*u).max(*r);
        }
    }
    let key = &args[1];
    let merged = hll::encode(&union, !dense);
    match ctx.get_mut(key) {
        // Written in place: the destination keeps its TTL, as in Redis.
        Some(Value::Str(s)) => *s = merged,
        _ => ctx.set(key, Value::Str(merged)),
    }
    ctx.notify(b'$', "pfadd", key);
    Ok(Reply::ok())
}

/// `s` made dense, keeping its header's cache bytes (Redis's hllSparseToDense).
fn to_dense(s: &[u8]) -> Result<Vec<u8>, Reply> {
    let registers = hll::registers(s).map_err(hll_error)?;
    let mut dense = hll::encode(&registers, false);
    if let (Some(to), Some(from)) = (dense.get_mut(8..hll::HEADER_BYTES), s.get(8..hll::HEADER_BYTES)) {
        to.copy_from_slice(from);
    }
    Ok(dense)
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key. GETREG and TODENSE make a sparse HLL
/// dense, without a keyspace event, as Redis does.
fn pfdebug(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    let Some((s, encoding)) = write_hll(ctx, &args[2])? else { return Err(Reply::err(ERR_NO_SUCH_KEY)) };
    let known = ["getreg", "decode", "encoding", "todense"].iter().any(|name| is(sub, name));
    if known && args.len() != 3 {
        return Err(Reply::error(format!("ERR Wrong number of arguments for the '{}' subcommand", String::from_utf8_lossy(sub))));
    }
    let reply = match () {
        _ if is(sub, "getreg") => {
            if encoding == Encoding::Sparse {
                *s = to_dense(s)?;
            }
            let registers = hll::registers(s).map_err(hll_error)?;
            Reply::Array(registers.iter().map(|&r| Reply::Int(i64::from(r))).collect())
        }
        _ if is(sub, "decode") => {
            if encoding != Encoding::Sparse {
                return Err(Reply::err(ERR_NOT_SPARSE));
            }
            Reply::Bulk(Bytes::from(hll::describe_sparse(s)))
        }
        _ if is(sub, "encoding") => Reply::status(encoding.name()),
        _ if is(sub, "todense") => {
            let sparse = encoding == Encoding::Sparse;
            if sparse {
                *s = to_dense(s)?;
            }
            Reply::Int(i64::from(sparse))
        }
        _ => return Err(Reply::error(format!("ERR Unknown PFDEBUG subcommand '{}'", String::from_utf8_lossy(sub)))),
    };
    if is(sub, "getreg") || is(sub, "todense") {
        *ctx.dirty += 1;
    }
    Ok(reply)
}

/// PFSELFTEST: checks this server's HyperLogLog code as Redis's self test checks
/// Redis's: dense registers read back what was written at every bit alignment; a
/// sparse and a dense HLL fed the same elements agree exactly; and the estimate at
/// each power of ten stays within six standard errors (1 at 10).
fn pfselftest(ctx: &mut ReadCtx, _args: &[Bytes]) -> CmdResult {
    use rand::Rng;
    for _ in 0..SELFTEST_REGISTER_ROUNDS {
        let mut registers = hll::empty_registers();
        registers.iter_mut().for_each(|r| *r = ctx.rng.gen_range(0..64));
        let dense = hll::encode(&registers, false);
        if hll::registers(&dense).map_err(hll_error)? != registers {
            return Err(Reply::err("TESTFAILED Register error"));
        }
    }
    let seed: u64 = ctx.rng.gen();
    let relative_error = 1.04 / (hll::REGISTERS as f64).sqrt();
    let mut sparse = hll::new_sparse();
    let mut dense = hll::encode(&hll::empty_registers(), false);
    let mut registers = hll::empty_registers();
    let mut checkpoint = 1;
    for j in 1..=SELFTEST_ELEMENTS {
        let element = (j ^ seed).to_le_bytes();
        let (index, value) = hll::position(&element);
        hll::dense_raise(&mut dense, index, value);
        registers[index] = registers[index].max(value);
        if j != checkpoint {
            continue;
        }
        sparse = hll::encode(&registers, hll::encoding(&sparse) == Ok(Encoding::Sparse));
        let from_dense = hll::count(&*hll::registers(&dense).map_err(hll_error)?);
        let from_sparse = hll::count(&*hll::registers(&sparse).map_err(hll_error)?);
        if from_dense != from_sparse {
            return Err(Reply::err("TESTFAILED dense/sparse disagree"));
        }
        let max_error = if j == 10 { 1.0 } else { (relative_error * 6.0 * j as f64).ceil() };
        if (j as f64 - from_dense as f64).abs() > max_error {
            return Err(Reply::error(format!("TESTFAILED Too big error. card:{j} abserr:{}", (j as i64 - from_dense as i64).abs())));
        }
        checkpoint *= 10;
    }
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::Store;

    const T: u64 = 1_000;

    fn raw(store: &mut Store, key: &str) -> Vec<u8> {
        match run(store, T, &["get", key]) {
            Reply::Bulk(b) => b.to_vec(),
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn pfadd_creates_counts_and_reports_changes() {
        let mut store = Store::new();
        assert_eq!(run(&mut store, T, &["pfadd", "h"]), Reply::Int(1));
        assert_eq!(run(&mut store, T, &["pfcount", "h"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["pfadd", "h", "a", "b", "c"]), Reply::Int(1));
        assert_eq!(run(&mut store, T, &["pfadd", "h", "a", "b", "c"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["pfcount", "h"]), Reply::Int(3));
        assert_eq!(run(&mut store, T, &["pfadd", "h", ""]), Reply::Int(1));
        assert_eq!(&raw(&mut store, "h")[..4], b"HYLL");
        assert_eq!(run(&mut store, T, &["pfcount", "missing"]), Reply::Int(0));
    }

    #[test]
    fn pfadd_records_an_event_only_on_change() {
        let mut store = Store::new();
        let applied = run_applied(&mut store, T, &["pfadd", "h", "x"]);
        assert_eq!(applied.events.iter().map(|e| e.event).collect::<Vec<_>>(), vec!["pfadd"]);
        assert!(run_applied(&mut store, T, &["pfadd", "h", "x"]).events.is_empty());
    }

    #[test]
    fn the_cache_byte_is_stale_after_a_change() {
        let mut store = Store::new();
        run(&mut store, T, &["pfadd", "h", "a", "b", "c"]);
        assert_eq!(raw(&mut store, "h")[15], 0x80);
    }

    #[test]
    fn sparse_turns_dense_as_it_grows_and_counts_agree() {
        let mut store = Store::new();
        let elements: Vec<String> = (0..5000).map(|i| format!("e{i}")).collect();
        for chunk in elements.chunks(100) {
            let mut cmd = vec!["pfadd", "sparse"];
            cmd.extend(chunk.iter().map(String::as_str));
            run(&mut store, T, &cmd);
            let mut cmd = vec!["pfadd", "dense"];
            cmd.extend(chunk.iter().map(String::as_str));
            run(&mut store, T, &cmd);
            run(&mut store, T, &["pfdebug", "todense", "dense"]);
            assert_eq!(run(&mut store, T, &["pfcount", "sparse"]), run(&mut store, T, &["pfcount", "dense"]));
        }
        assert_eq!(run(&mut store, T, &["pfdebug", "encoding", "sparse"]), Reply::status("dense"));
        let Reply::Int(n) = run(&mut store, T, &["pfcount", "sparse"]) else { panic!() };
        assert!((n - 5000).abs() < 5000 * 5 / 100, "estimate {n}");
    }

    #[test]
    fn pfcount_of_several_keys_counts_the_union() {
        let mut store = Store::new();
        run(&mut store, T, &["pfadd", "a", "1", "2", "3"]);
        run(&mut store, T, &["pfadd", "b", "3", "4"]);
        assert_eq!(run(&mut store, T, &["pfcount", "a", "b", "missing"]), Reply::Int(4));
        assert_eq!(run(&mut store, T, &["pfmerge", "d", "a", "b"]), Reply::ok());
        assert_eq!(run(&mut store, T, &["pfcount", "d"]), Reply::Int(4));
        run(&mut store, T, &["pfadd", "big", "x"]);
        run(&mut store, T, &["pfdebug", "todense", "big"]);
        assert_eq!(run(&mut store, T, &["pfmerge", "d", "big"]), Reply::ok());
        assert_eq!(run(&mut store, T, &["pfdebug", "encoding", "d"]), Reply::status("dense"));
        assert_eq!(run(&mut store, T, &["pfcount", "d"]), Reply::Int(5));
    }

    #[test]
    fn damaged_or_foreign_strings_are_refused() {
        let mut store = Store::new();
        run(&mut store, T, &["set", "s", "bar"]);
        let not_hll = err("WRONGTYPE Key is not a valid HyperLogLog string value.");
        assert_eq!(run(&mut store, T, &["pfadd", "s", "1"]), not_hll);
        assert_eq!(run(&mut store, T, &["pfcount", "s"]), not_hll);
        assert_eq!(run(&mut store, T, &["pfmerge", "x", "s"]), not_hll);
        assert_eq!(run(&mut store, T, &["pfmerge", "s", "x"]), not_hll);
        run(&mut store, T, &["lpush", "l", "x"]);
        assert_eq!(run(&mut store, T, &["pfcount", "l"]), err(WRONGTYPE));
        run(&mut store, T, &["pfadd", "h", "a", "b", "c"]);
        run(&mut store, T, &["append", "h", "hello"]);
        assert_eq!(run(&mut store, T, &["pfcount", "h"]), err("INVALIDOBJ Corrupted HLL object detected"));
        assert_eq!(run(&mut store, T, &["pfadd", "h", "zz"]), err("INVALIDOBJ Corrupted HLL object detected"));
        run(&mut store, T, &["del", "h"]);
        run(&mut store, T, &["pfadd", "h", "a"]);
        run(&mut store, T, &["setrange", "h", "4", "\x00"]);
        assert_eq!(run(&mut store, T, &["pfcount", "h"]), not_hll, "dense header on a sparse length");
    }

    #[test]
    fn pfselftest_passes() {
        let mut store = Store::new();
        assert_eq!(run(&mut store, T, &["pfselftest"]), Reply::ok());
    }

    #[test]
    fn pfdebug_subcommands() {
        let mut store = Store::new();
        run(&mut store, T, &["pfadd", "h", "a"]);
        assert_eq!(run(&mut store, T, &["pfdebug", "decode", "h"]), bulk("Z:12711 v:2,1 Z:3672"));
        assert_eq!(run(&mut store, T, &["pfdebug", "encoding", "h"]), Reply::status("sparse"));
        let Reply::Array(regs) = run(&mut store, T, &["pfdebug", "getreg", "h"]) else { panic!() };
        assert_eq!(regs.len(), hll::REGISTERS);
        assert_eq!(regs[12711], Reply::Int(2));
        assert_eq!(run(&mut store, T, &["pfdebug", "encoding", "h"]), Reply::status("dense"));
        assert_eq!(run(&mut store, T, &["pfdebug", "todense", "h"]), Reply::Int(0));
        assert_eq!(run(&mut store, T, &["pfdebug", "decode", "h"]), err(ERR_NOT_SPARSE));
        assert_eq!(run(&mut store, T, &["pfdebug", "bogus", "h"]), err("ERR Unknown PFDEBUG subcommand 'bogus'"));
        assert_eq!(run(&mut store, T, &["pfdebug", "encoding", "missing"]), err(ERR_NO_SUCH_KEY));
        assert_eq!(run(&mut store, T, &["pfcount", "h"]), Reply::Int(1));
    }
}
