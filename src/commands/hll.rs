//! The HyperLogLog representation: Redis's `HYLL` string format, its hash and its
//! cardinality estimator, written from Redis's documentation of the format.
//!
//! We keep Redis's format rather than one of our own so that an HLL is an ordinary
//! string everywhere: GET and SET of a raw HLL, DUMP/RESTORE, APPEND and SETRANGE
//! (which may corrupt it, and must then be refused, never crash) all behave as in
//! Redis, and bytes taken from a Redis server load here.
//!
//! ```text
//! header (16 bytes): "HYLL" | encoding (0 dense, 1 sparse) | 3 unused |
//!                    cached cardinality, u64 LE; its top bit set = not valid
//! dense:  16384 registers × 6 bits, register i at bit 6·i, low bits first
//! sparse: runs of registers — ZERO 00xxxxxx (1..64 zeros), XZERO 01xxxxxx yyyyyyyy
//!         (1..16384 zeros), VAL 1vvvvvxx (1..4 registers of value 1..32)
//! ```
//!
//! Sparse HLLs written here are canonical (runs merged), so they may differ in bytes
//! from the ones Redis builds element by element; they decode to the same registers,
//! so every count agrees. A sparse HLL turns dense when a register passes 32 or the
//! string passes [`SPARSE_BYTES_MAX`], Redis's default `hll-sparse-max-bytes`: a fixed
//! bound, because a per-server setting must not decide the bytes of a replicated write.

/// Registers: 2^14 (`HLL_P` = 14), giving Redis's standard error of 0.81 %.
pub const REGISTERS: usize = 1 << P;
const P: u32 = 14;
/// Bits of the hash left for the run of zeros (`HLL_Q`).
const Q: u32 = 64 - P;
const REGISTER_BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << REGISTER_BITS) - 1;
pub const HEADER_BYTES: usize = 16;
pub const DENSE_BYTES: usize = HEADER_BYTES + (REGISTERS * REGISTER_BITS).div_ceil(8);
/// Redis's default `hll-sparse-max-bytes`.
pub const SPARSE_BYTES_MAX: usize = 3000;
const SPARSE_VALUE_MAX: u8 = 32;
const SPARSE_VAL_RUN_MAX: usize = 4;
const SPARSE_ZERO_RUN_MAX: usize = 64;
const SPARSE_XZERO_RUN_MAX: usize = 16384;
const ENCODING_DENSE: u8 = 0;
const ENCODING_SPARSE: u8 = 1;
const MAGIC: &[u8; 4] = b"HYLL";
/// Top bit of the last cache byte: the cached cardinality is stale.
const CACHE_STALE: u8 = 0x80;
const HASH_SEED: u64 = 0xadc8_3b19;

/// Why bytes cannot be used as an HLL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HllError {
    /// Not an HLL at all (wrong header or size): Redis answers WRONGTYPE.
    #[error("WRONGTYPE Key is not a valid HyperLogLog string value.")]
    NotHll,
    /// An HLL header over a damaged body.
    #[error("INVALIDOBJ Corrupted HLL object detected")]
    Corrupt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Dense,
    Sparse,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Dense => "dense",
            Encoding::Sparse => "sparse",
        }
    }
}

/// Every register, decoded.
pub type Registers = Box<[u8; REGISTERS]>;

pub fn empty_registers() -> Registers {
    Box::new([0; REGISTERS])
}

/// Checks the header as Redis's isHLLObjectOrReply does; the body is checked when read.
pub fn encoding(s: &[u8]) -> Result<Encoding, HllError> {
    if s.len() < HEADER_BYTES || &s[..4] != MAGIC {
        return Err(HllError::NotHll);
    }
    match s[4] {
        ENCODING_DENSE if s.len() == DENSE_BYTES => Ok(Encoding::Dense),
        ENCODING_SPARSE => Ok(Encoding::Sparse),
        _ => Err(HllError::NotHll),
    }
}

/// A new, empty HLL: sparse, its cache marked stale (PFADD creating a key counts as
/// a change, as in Redis).
pub fn new_sparse() -> Vec<u8> {
    let mut out = header(ENCODING_SPARSE);
    put_zero_run(&mut out, REGISTERS);
    invalidate_cache(&mut out);
    out
}

fn header(encoding: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + 2);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[encoding, 0, 0, 0]);
    out.extend_from_slice(&[0; 8]);
    out
}

pub fn invalidate_cache(s: &mut [u8]) {
    if let Some(byte) = s.get_mut(15) {
        *byte |= CACHE_STALE;
    }
}

/// The cached cardinality, if valid.
pub fn cached_count(s: &[u8]) -> Option<u64> {
    let cache: [u8; 8] = s.get(8..16)?.try_into().ok()?;
    (cache[7] & CACHE_STALE == 0).then(|| u64::from_le_bytes(cache))
}

// --- hashing ---

/// MurmurHash64A, the hash Redis uses for HLL elements (little-endian reads).
fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let mut k = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the value it proposes (the length of the
/// run of zeros in the rest of its hash, plus one).
pub fn position(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, HASH_SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// --- dense ---

fn dense_get(registers: &[u8], i: usize) -> u8 {
    let bit = i * REGISTER_BITS;
    let (byte, shift) = (bit / 8, bit % 8);
    let lo = registers.get(byte).copied().unwrap_or(0) as u16;
    let hi = registers.get(byte + 1).copied().unwrap_or(0) as u16;
    (((lo | (hi << 8)) >> shift) as u8) & REGISTER_MAX
}

fn dense_set(registers: &mut [u8], i: usize, value: u8) {
    let bit = i * REGISTER_BITS;
    let (byte, shift) = (bit / 8, bit % 8);
    let word = u16::from(value & REGISTER_MAX) << shift;
    let mask = u16::from(REGISTER_MAX) << shift;
    if let Some(b) = registers.get_mut(byte) {
        *b = (*b & !(mask as u8)) | word as u8;
    }
    if let Some(b) = registers.get_mut(byte + 1) {
        *b = (*b & !((mask >> 8) as u8)) | (word >> 8) as u8;
    }
}

// --- decoding ---

/// Every register of the HLL `s` (header already checked by [`encoding`]).
pub fn registers(s: &[u8]) -> Result<Registers, HllError> {
    let mut out = empty_registers();
    let body = s.get(HEADER_BYTES..).ok_or(HllError::NotHll)?;
    match encoding(s)? {
        Encoding::Dense => {
            for (i, r) in out.iter_mut().enumerate() {
                *r = dense_get(body, i);
            }
        }
        Encoding::Sparse => {
            let mut at = 0usize;
            let mut p = 0usize;
            while let Some(&op) = body.get(p) {
                let (run, value, step) = match op >> 6 {
                    0b00 => (usize::from(op & 0x3f) + 1, 0, 1),
                    0b01 => {
                        let low = *body.get(p + 1).ok_or(HllError::Corrupt)?;
                        ((usize::from(op & 0x3f) << 8 | usize::from(low)) + 1, 0, 2)
                    }
                    _ => (usize::from(op & 0x3) + 1, ((op >> 2) & 0x1f) + 1, 1),
                };
                let end = at.checked_add(run).filter(|&e| e <= REGISTERS).ok_or(HllError::Corrupt)?;
                out[at..end].fill(value);
                at = end;
                p += step;
            }
            if at != REGISTERS {
                return Err(HllError::Corrupt);
            }
        }
    }
    Ok(out)
}

// --- encoding ---

fn put_zero_run(out: &mut Vec<u8>, mut run: usize) {
    while run > 0 {
        let n = run.min(SPARSE_XZERO_RUN_MAX);
        if n <= SPARSE_ZERO_RUN_MAX {
            out.push((n - 1) as u8);
        } else {
            let v = n - 1;
            out.push(0x40 | (v >> 8) as u8);
            out.push((v & 0xff) as u8);
        }
        run -= n;
    }
}

/// The canonical sparse body of `registers`, or `None` if they cannot be sparse (a
/// value over 32) or it would pass [`SPARSE_BYTES_MAX`].
fn sparse_body(registers: &[u8; REGISTERS]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < REGISTERS {
        let value = registers[i];
        let run = registers[i..].iter().take_while(|&&r| r == value).count();
        if value == 0 {
            put_zero_run(&mut out, run);
        } else {
            if value > SPARSE_VALUE_MAX {
                return None;
            }
            let mut left = run;
            while left > 0 {
                let n = left.min(SPARSE_VAL_RUN_MAX);
                out.push(0x80 | ((value - 1) << 2) | (n - 1) as u8);
                left -= n;
            }
        }
        if HEADER_BYTES + out.len() > SPARSE_BYTES_MAX {
            return None;
        }
        i += run;
    }
    Some(out)
}

/// `registers` as an HLL with a stale cache: sparse when `sparse` is asked for and
/// they fit, dense otherwise.
pub fn encode(registers: &[u8; REGISTERS], sparse: bool) -> Vec<u8> {
    let mut out = match sparse.then(|| sparse_body(registers)).flatten() {
        Some(body) => {
            let mut out = header(ENCODING_SPARSE);
            out.extend_from_slice(&body);
            out
        }
        None => {
            let mut out = header(ENCODING_DENSE);
            out.resize(DENSE_BYTES, 0);
            for (i, &r) in registers.iter().enumerate() {
                dense_set(&mut out[HEADER_BYTES..], i, r);
            }
            out
        }
    };
    invalidate_cache(&mut out);
    out
}

/// Sets register `index` of the dense HLL `s` to `value` if that raises it; true if it did.
pub fn dense_raise(s: &mut [u8], index: usize, value: u8) -> bool {
    let Some(body) = s.get_mut(HEADER_BYTES..) else { return false };
    if dense_get(body, index) >= value {
        return false;
    }
    dense_set(body, index, value);
    true
}

/// The DECODE text of a sparse body (PFDEBUG DECODE): `z:n`, `Z:n`, `v:value,n`.
pub fn describe_sparse(s: &[u8]) -> String {
    let body = s.get(HEADER_BYTES..).unwrap_or_default();
    let mut parts = Vec::new();
    let mut p = 0;
    while let Some(&op) = body.get(p) {
        match op >> 6 {
            0b00 => {
                parts.push(format!("z:{}", (op & 0x3f) + 1));
                p += 1;
            }
            0b01 => {
                let low = body.get(p + 1).copied().unwrap_or(0);
                parts.push(format!("Z:{}", ((usize::from(op & 0x3f) << 8) | usize::from(low)) + 1));
                p += 2;
            }
            _ => {
                parts.push(format!("v:{},{}", ((op >> 2) & 0x1f) + 1, (op & 3) + 1));
                p += 1;
            }
        }
    }
    parts.join(" ")
}

// --- counting ---

/// σ(x) of Ertl's improved estimator (Redis's hllSigma).
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

/// τ(x) of the same estimator (Redis's hllTau).
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

/// The estimated cardinality of `registers`, computed as Redis 7 does (same steps,
/// same rounding), so both answer the same number for the same registers.
pub fn count(registers: &[u8; REGISTERS]) -> u64 {
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
    let m = REGISTERS as f64;
    let mut histogram = [0u32; 64];
    for &r in registers.iter() {
        histogram[usize::from(r & REGISTER_MAX)] += 1;
    }
    let q = Q as usize;
    let mut z = m * tau((m - f64::from(histogram[q + 1])) / m);
    for j in (1..=q).rev() {
        z += f64::from(histogram[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_land_where_redis_puts_them() {
        // Register and value of a lone element, read from redis-server 7.0.15 with
        // PFADD then PFDEBUG GETREG.
        assert_eq!(position(b"a"), (12711, 2));
        assert_eq!(position(b"hello"), (9216, 1));
        assert_eq!(position(b"foobar12"), (15489, 2));
        assert_eq!(position(b""), (5938, 2));
    }

    #[test]
    fn counts_equal_redis_counts() {
        // PFCOUNT of redis-server 7.0.15 after PFADD of the same elements.
        let count_of = |elements: Vec<String>| {
            let mut regs = empty_registers();
            for e in elements {
                let (index, value) = position(e.as_bytes());
                regs[index] = regs[index].max(value);
            }
            count(&regs)
        };
        assert_eq!(count_of((1..=1000).map(|i| i.to_string()).collect()), 1001);
        assert_eq!(count_of((1..=20000).map(|i| format!("x{i}")).collect()), 19985);
    }

    #[test]
    fn dense_registers_round_trip_at_every_bit_alignment() {
        let mut regs = empty_registers();
        for (i, r) in regs.iter_mut().enumerate() {
            *r = (i % 64) as u8;
        }
        let dense = encode(&regs, false);
        assert_eq!(dense.len(), DENSE_BYTES);
        assert_eq!(encoding(&dense), Ok(Encoding::Dense));
        assert_eq!(registers(&dense).unwrap(), regs);
    }

    #[test]
    fn sparse_registers_round_trip_and_turn_dense_when_too_big() {
        let mut regs = empty_registers();
        regs[0] = 3;
        regs[1] = 3;
        regs[500] = 32;
        regs[16383] = 1;
        let sparse = encode(&regs, true);
        assert_eq!(encoding(&sparse), Ok(Encoding::Sparse));
        assert_eq!(registers(&sparse).unwrap(), regs);
        assert_eq!(describe_sparse(&sparse), "v:3,2 Z:498 v:32,1 Z:15882 v:1,1");
        regs[7] = 33;
        assert_eq!(encoding(&encode(&regs, true)), Ok(Encoding::Dense), "a value over 32");
        let mut many = empty_registers();
        for i in (0..REGISTERS).step_by(3) {
            many[i] = 1;
        }
        assert_eq!(encoding(&encode(&many, true)), Ok(Encoding::Dense), "over the byte bound");
    }

    #[test]
    fn damaged_hlls_are_refused_not_trusted() {
        let empty = new_sparse();
        assert_eq!(empty.len(), HEADER_BYTES + 2);
        assert_eq!(registers(&empty).unwrap(), empty_registers());
        let mut tail = empty.clone();
        tail.extend_from_slice(b"hello");
        assert_eq!(registers(&tail), Err(HllError::Corrupt));
        let mut cut = empty.clone();
        cut.pop();
        assert_eq!(registers(&cut), Err(HllError::Corrupt));
        let mut magic = empty.clone();
        magic[0] = b'0';
        assert_eq!(encoding(&magic), Err(HllError::NotHll));
        let mut kind = empty.clone();
        kind[4] = b'x';
        assert_eq!(encoding(&kind), Err(HllError::NotHll));
        let mut short_dense = empty;
        short_dense[4] = ENCODING_DENSE;
        assert_eq!(encoding(&short_dense), Err(HllError::NotHll));
        assert_eq!(encoding(b"HYLL"), Err(HllError::NotHll));
    }

    #[test]
    fn estimates_stay_within_redis_error_bounds() {
        for n in [0u64, 1, 10, 100, 1_000, 10_000, 100_000] {
            let mut regs = empty_registers();
            for i in 0..n {
                let (index, value) = position(format!("element:{i}").as_bytes());
                regs[index] = regs[index].max(value);
            }
            let estimate = count(&regs);
            let error = (estimate as f64 - n as f64).abs();
            // 0.81 % standard error; allow 5 σ, and ±1 for the smallest counts.
            assert!(error <= (n as f64 * 0.0081 * 5.0).max(1.0), "n={n} estimate={estimate}");
        }
    }

    #[test]
    fn cache_flag_is_the_top_bit_of_byte_15() {
        let mut s = new_sparse();
        assert_eq!(cached_count(&s), None);
        s[15] = 0;
        s[8] = 42;
        assert_eq!(cached_count(&s), Some(42));
        invalidate_cache(&mut s);
        assert_eq!(s[15], 0x80);
    }
}
