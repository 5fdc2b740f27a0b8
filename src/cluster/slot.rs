//! Hash slots: which of the 16384 slots a key belongs to, as Redis Cluster computes
//! it (CRC16-XMODEM of the key, or of its `{hash tag}`, modulo 16384), so that
//! cluster clients and Tandem agree on where every key lives.

/// Slots in an array, as in Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), eight bytes at a time
/// ("slicing by 8": eight independent table lookups per step instead of a chain of
/// eight dependent ones; the CRC is linear, so each byte's part is looked up as the
/// CRC of that byte followed by as many zero bytes as come after it in the step).
/// Every request with a key and every key a snapshot loads is hashed here: one
/// lookup per byte was 8 % of a restart's work. (The `crc` crate slices by 16 only,
/// and most keys are shorter than 16 bytes.)
fn crc16(bytes: &[u8]) -> u16 {
    let t = &CRC16_TABLES;
    let mut crc = 0u16;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let [hi, lo] = crc.to_be_bytes();
        crc = t[7][usize::from(c[0] ^ hi)]
            ^ t[6][usize::from(c[1] ^ lo)]
            ^ t[5][usize::from(c[2])]
            ^ t[4][usize::from(c[3])]
            ^ t[3][usize::from(c[4])]
            ^ t[2][usize::from(c[5])]
            ^ t[1][usize::from(c[6])]
            ^ t[0][usize::from(c[7])];
    }
    let mut rest = chunks.remainder();
    if let [a, b, c, d, tail @ ..] = rest {
        let [hi, lo] = crc.to_be_bytes();
        crc = t[3][usize::from(a ^ hi)] ^ t[2][usize::from(b ^ lo)] ^ t[1][usize::from(*c)] ^ t[0][usize::from(*d)];
        rest = tail;
    }
    rest.iter().fold(crc, |crc, &b| (crc << 8) ^ t[0][usize::from((crc >> 8) as u8 ^ b)])
}

/// `CRC16_TABLES[j][x]`: the CRC of byte `x` followed by `j` zero bytes.
static CRC16_TABLES: [[u16; 256]; 8] = crc16_tables();

const fn crc16_tables() -> [[u16; 256]; 8] {
    let mut tables = [[0u16; 256]; 8];
    let mut x = 0;
    while x < 256 {
        let mut crc = (x as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        tables[0][x] = crc;
        x += 1;
    }
    let mut j = 1;
    while j < 8 {
        let mut x = 0;
        while x < 256 {
            // One more zero byte after it.
            let crc = tables[j - 1][x];
            tables[j][x] = (crc << 8) ^ tables[0][(crc >> 8) as usize];
            x += 1;
        }
        j += 1;
    }
    tables
}

/// The part of `key` that is hashed: the text between the first `{` and the first `}`
/// after it, when that text is not empty; otherwise the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key) {
        let rest = &key[open + 1..];
        if let Some(close) = memchr::memchr(b'}', rest) {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    key
}

/// The slot of `key`.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS - 1)
}

/// The one slot that all of `keys` share: `Ok(None)` for no keys, `Err(())` when two
/// keys fall in different slots (a cross-slot request).
pub fn common_slot<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<u16>, CrossSlot> {
    let mut slot = None;
    for key in keys {
        let s = key_slot(key);
        match slot {
            None => slot = Some(s),
            Some(seen) if seen != s => return Err(CrossSlot),
            Some(_) => {}
        }
    }
    Ok(slot)
}

/// The slots of an array of `stripes` stripes, split evenly in config order as
/// `redis-cli --cluster create` splits them among masters (3 stripes: 0-5460,
/// 5461-10922, 10923-16383), so an array and a Redis Cluster of the same size put
/// every key on the same side. Inclusive ranges, one per stripe.
pub fn even_ranges(stripes: usize) -> Vec<(u16, u16)> {
    let stripes = stripes.clamp(1, usize::from(SLOTS));
    let per = f64::from(SLOTS) / stripes as f64;
    let mut out = Vec::with_capacity(stripes);
    let (mut first, mut cursor) = (0u16, 0f64);
    for i in 0..stripes {
        let last = if i + 1 == stripes { SLOTS - 1 } else { (cursor + per - 1.0).round() as u16 };
        out.push((first, last));
        first = last + 1;
        cursor += per;
    }
    out
}

/// Keys of one request that fall in different slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossSlot;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        // The standard check value of CRC-16/XMODEM, quoted in Redis Cluster's spec.
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    /// The sliced CRC against the plain definition (one bit at a time), at every
    /// length that exercises the 8-, 4- and 1-byte steps and their mixes.
    #[test]
    fn crc16_sliced_agrees_with_the_bitwise_definition() {
        fn bitwise(bytes: &[u8]) -> u16 {
            let mut crc = 0u16;
            for &b in bytes {
                crc ^= u16::from(b) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
                }
            }
            crc
        }
        // Every byte value, in an order with no short period.
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 167 + 13) as u8).collect();
        for len in 0..bytes.len() {
            for start in [0, 1, 3] {
                let input = &bytes[start..(start + len).min(bytes.len())];
                assert_eq!(crc16(input), bitwise(input), "{} bytes from {start}", input.len());
            }
        }
    }

    #[test]
    fn slots_match_redis_cluster() {
        // Values CLUSTER KEYSLOT gives on redis-server.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags_put_keys_in_one_slot() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // Only the first {…} counts; an empty one means the whole key is hashed.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{unclosed"), b"{unclosed");
    }

    #[test]
    fn slots_are_split_as_redis_cli_splits_them() {
        assert_eq!(even_ranges(1), vec![(0, 16383)]);
        assert_eq!(even_ranges(2), vec![(0, 8191), (8192, 16383)]);
        // `redis-cli --cluster create` with three masters gives these ranges.
        assert_eq!(even_ranges(3), vec![(0, 5460), (5461, 10922), (10923, 16383)]);
        for n in [4, 7, 100, 16384] {
            let ranges = even_ranges(n);
            assert_eq!(ranges.len(), n);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[n - 1].1, 16383);
            assert!(ranges.windows(2).all(|w| w[1].0 == w[0].1 + 1 && w[0].0 <= w[0].1), "{n}: {ranges:?}");
        }
    }

    #[test]
    fn common_slot_of_keys() {
        assert_eq!(common_slot(Vec::<&[u8]>::new()), Ok(None));
        assert_eq!(common_slot([&b"{a}1"[..], b"{a}2"]), Ok(Some(key_slot(b"a"))));
        assert_eq!(common_slot([&b"foo"[..], b"bar"]), Err(CrossSlot));
    }
}
