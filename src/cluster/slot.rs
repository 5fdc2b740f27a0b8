//! Hash slots: which of the 16384 slots a key belongs to, as Redis Cluster computes
//! it (CRC16-XMODEM of the key, or of its `{hash tag}`, modulo 16384), so that
//! cluster clients and Tandem agree on where every key lives.

/// Slots in an array, as in Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), one table lookup per byte.
fn crc16(bytes: &[u8]) -> u16 {
    static TABLE: std::sync::OnceLock<[u16; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u16; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut crc = (i as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            }
            *entry = crc;
        }
        table
    });
    bytes.iter().fold(0u16, |crc, &b| (crc << 8) ^ table[usize::from((crc >> 8) as u8 ^ b)])
}

/// The part of `key` that is hashed: the text between the first `{` and the first `}`
/// after it, when that text is not empty; otherwise the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}') {
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
