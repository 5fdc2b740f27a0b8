//! CRC-32C of any byte range of a buffer, in constant time after one linear pass.
//!
//! `log_file` uses it to ask, at every offset of a damaged tail, "does a well-formed
//! record start here?": checksumming each candidate's bytes directly costs the
//! candidate's length, so a tail of garbage that looks like record headers took
//! time quadratic in its length. Here each range costs two short checksums and a
//! few multiplications, whatever its length.
//!
//! How: CRC-32C is linear over GF(2). Let `U(r, m)` be the raw register after
//! feeding bytes `m` to register `r` (no pre/post inversion). Then
//! `U(r, a‖b) = Z_|b|(U(r, a)) ⊕ U(0, b)`, where `Z_n` (feeding `n` zero bytes) is
//! multiplication by x^(8n) modulo the CRC polynomial. With `Q[i] = U(0, data[..i])`,
//! `U(0, data[a..b]) = Q[b] ⊕ Z_(b-a)(Q[a])`. `Q` is stored every `STRIDE` bytes and
//! finished from the nearest checkpoint; x^(8n) is a product of four table entries,
//! one per byte of `n`. It knows bytes and checksums, nothing of the log's format.

use std::cell::Cell;

/// CRC-32C's polynomial in the reflected bit order the crc32c crate uses.
const POLY: u32 = 0x82F6_3B78;
/// x^0 in reflected order: the top bit.
const ONE: u32 = 1 << 31;
/// Bytes between stored prefix registers: memory is 4 bytes per stride, each range
/// checksums at most two strides directly.
const STRIDE: usize = 64;

/// `a · b mod P` with both in reflected order (zlib's `multmodp`).
fn mul(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = ONE;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        bit >>= 1;
    }
    product
}

/// The raw register after feeding `bytes` to `register`.
fn feed(register: u32, bytes: &[u8]) -> u32 {
    !crc32c::crc32c_append(!register, bytes)
}

/// Checksums of ranges of one buffer.
pub struct RangeCrc<'a> {
    data: &'a [u8],
    /// `checkpoints[k] = U(0, data[..k * STRIDE])`.
    checkpoints: Vec<u32>,
    /// `zeros[j][d] = x^(8 · d · 256^j) mod P`: feeding `d · 256^j` zero bytes.
    zeros: Box<[[u32; 256]; 4]>,
    /// Bytes checksummed directly so far (construction included): the work done.
    hashed: Cell<u64>,
}

impl<'a> RangeCrc<'a> {
    /// One pass over `data`.
    pub fn new(data: &'a [u8]) -> RangeCrc<'a> {
        let mut checkpoints = Vec::with_capacity(data.len() / STRIDE + 1);
        let mut register = 0;
        checkpoints.push(register);
        for chunk in data.chunks(STRIDE) {
            register = feed(register, chunk);
            checkpoints.push(register);
        }
        let mut zeros = Box::new([[ONE; 256]; 4]);
        // x^8: one zero byte.
        let mut step = ONE >> 8;
        for row in zeros.iter_mut() {
            for d in 1..256 {
                row[d] = mul(row[d - 1], step);
            }
            // x^(8 · 256^(j+1)) = x^(8 · 255 · 256^j) · x^(8 · 256^j)
            step = mul(row[255], step);
        }
        RangeCrc { data, checkpoints, zeros, hashed: Cell::new(data.len() as u64) }
    }

    /// `U(0, data[..i])`, from the checkpoint at or before `i`.
    fn prefix(&self, i: usize) -> u32 {
        let k = i / STRIDE;
        let from = k * STRIDE;
        self.hashed.set(self.hashed.get() + (i - from) as u64);
        feed(self.checkpoints.get(k).copied().unwrap_or(0), self.data.get(from..i).unwrap_or_default())
    }

    /// `register` after `n` zero bytes.
    fn zero_bytes(&self, register: u32, n: u32) -> u32 {
        let mut power = ONE;
        for (j, row) in self.zeros.iter().enumerate() {
            let digit = (n >> (8 * j)) & 0xff;
            if digit != 0 {
                power = mul(power, row[digit as usize]);
            }
        }
        mul(power, register)
    }

    /// `crc32c::crc32c_append(seed, &data[start..end])`, without reading the range.
    /// `None` when the range is not inside the buffer or longer than 4 GiB.
    pub fn append(&self, seed: u32, start: usize, end: usize) -> Option<u32> {
        if start > end || end > self.data.len() {
            return None;
        }
        let len = u32::try_from(end - start).ok()?;
        // crc32c_append(s, m) = !U(!s, m) = !(Z_len(!s) ⊕ U(0, m)), and
        // U(0, m) = Q[end] ⊕ Z_len(Q[start]); Z is linear, so the two shifts share one.
        Some(!(self.zero_bytes(!seed ^ self.prefix(start), len) ^ self.prefix(end)))
    }

    /// Bytes checksummed directly so far, construction included.
    pub fn bytes_hashed(&self) -> u64 {
        self.hashed.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn every_range_matches_the_direct_checksum() {
        let mut seed = std::env::var("TANDEM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>) | 1;
        eprintln!("seed {seed} (replay with TANDEM_TEST_SEED={seed})");
        let data: Vec<u8> = (0..5000).map(|_| xorshift(&mut seed) as u8).collect();
        let crcs = RangeCrc::new(&data);
        for _ in 0..2000 {
            let a = (xorshift(&mut seed) % data.len() as u64) as usize;
            let b = a + (xorshift(&mut seed) % (data.len() - a) as u64) as usize;
            let s = xorshift(&mut seed) as u32;
            assert_eq!(crcs.append(s, a, b), Some(crc32c::crc32c_append(s, &data[a..b])), "range {a}..{b} seed {s:#x}");
        }
        assert_eq!(crcs.append(0, 0, data.len()), Some(crc32c::crc32c(&data)));
        assert_eq!(crcs.append(0, 10, 10), Some(0));
        assert_eq!(crcs.append(0, 10, data.len() + 1), None);
    }

    #[test]
    fn a_range_costs_at_most_two_strides_whatever_its_length() {
        let data = vec![7u8; 1 << 20];
        let crcs = RangeCrc::new(&data);
        let built = crcs.bytes_hashed();
        assert_eq!(crcs.append(0, 3, data.len() - 5), Some(crc32c::crc32c(&data[3..data.len() - 5])));
        assert!(crcs.bytes_hashed() - built <= 2 * STRIDE as u64);
    }
}
