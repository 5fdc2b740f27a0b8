//! Hash slots, as Redis Cluster computes them (DESIGN.md §7): CRC16-XMODEM of the
//! key, or of its hash tag (the bytes between the first `{` and the next `}`, when
//! that is not empty), modulo 16384. Pure: no topology, no I/O.

/// Number of hash slots the keyspace is split into.
pub const SLOTS: u16 = 16384;

/// The slot of `key`.
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// The part of `key` that is hashed: its `{tag}` when it has a non-empty one, else all of it.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else { return key };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(close) => &rest[..close],
    }
}

/// The one slot all of `keys` hash to; `None` when there are no keys. `Err` names the
/// first key in another slot than the first key's.
pub fn common_slot<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<u16>, &'a [u8]> {
    let mut found = None;
    for key in keys {
        let s = slot(key);
        match found {
            None => found = Some(s),
            Some(first) if first != s => return Err(key),
            Some(_) => {}
        }
    }
    Ok(found)
}

/// CRC16-XMODEM (polynomial 0x1021, initial value 0, no reflection): Redis Cluster's key hash.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        // The standard check value of CRC-16/XMODEM, also in Redis's crc16.c.
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values from Redis Cluster's CLUSTER KEYSLOT (documented examples and redis-cli).
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"somekey"), 11058);
        assert_eq!(slot(b""), 0);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
    }

    #[test]
    fn only_a_non_empty_first_tag_counts() {
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{"), b"{");
        assert_eq!(hash_tag(b"a}b{c"), b"a}b{c");
    }

    #[test]
    fn common_slot_names_the_first_key_elsewhere() {
        assert_eq!(common_slot([&b"a{t}"[..], b"b{t}"]), Ok(Some(slot(b"t"))));
        assert_eq!(common_slot(std::iter::empty()), Ok(None));
        assert_eq!(common_slot([&b"foo"[..], b"bar"]), Err(&b"bar"[..]));
    }
}
