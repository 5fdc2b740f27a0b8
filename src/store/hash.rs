//! The value of a hash key, in one of two encodings (as Redis's listpack and
//! hashtable):
//!
//! - **packed**: every field and value in one allocation, each a varint length and
//!   its bytes, field then value, pair after pair. A lookup walks the pairs. A hash
//!   of ten short fields costs its bytes plus two per pair, where a table costs a
//!   slot, an entry and an allocation per value. Used while the hash has at most
//!   `hash-max-listpack-entries` fields and no field or value longer than
//!   `hash-max-listpack-value` bytes;
//! - **table**: a [`KeyTable`], one probe per lookup, once either limit is passed.
//!   A hash never goes back from table to packed while it lives (as in Redis); a
//!   decoded one (snapshot, RESTORE) is packed again if it fits.
//!
//! Both encodings keep the same order: insertion order, a replaced value keeps its
//! place, and a removal moves the last pair into the removed one's place (a swap
//! remove). So the encoding is invisible to every command — HSCAN's index cursor,
//! HRANDFIELD's picks, HGETALL's order — and members whose limits differ (they are
//! each server's own setting) still agree on every reply and on the digest.

use super::table::{Key, KeyTable};
use super::value::Blob;

/// When a hash is packed (`hash-max-listpack-entries`, `hash-max-listpack-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    pub entries: usize,
    pub value_bytes: usize,
}

impl Packing {
    /// Redis's defaults.
    pub const DEFAULT: Packing = Packing { entries: 128, value_bytes: 64 };

    fn fits(&self, field: &[u8], value: &[u8]) -> bool {
        field.len() <= self.value_bytes && value.len() <= self.value_bytes
    }
}

impl Default for Packing {
    fn default() -> Self {
        Packing::DEFAULT
    }
}

type Table = KeyTable<Key, Blob>;

#[derive(Clone)]
enum Repr {
    /// How many pairs (4 bytes, little-endian), then the pairs; empty for no pairs.
    /// 16 bytes of handle, so a [`Value`](super::value::Value) holding a hash stays
    /// as small as one holding a string.
    Packed(Box<[u8]>),
    Table(Box<Table>),
}

/// The packed form's count of pairs, in front of them.
const HEADER: usize = 4;

fn packed_len(bytes: &[u8]) -> usize {
    match bytes.first_chunk::<HEADER>() {
        Some(header) => u32::from_le_bytes(*header) as usize,
        None => 0,
    }
}

/// A packed buffer of `len` pairs whose bytes `body` writes after the header.
fn packed(len: usize, body_bytes: usize, body: impl FnOnce(&mut Vec<u8>)) -> Box<[u8]> {
    if len == 0 {
        return Box::default();
    }
    let mut out = Vec::with_capacity(HEADER + body_bytes);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    body(&mut out);
    out.into_boxed_slice()
}

/// A hash: fields and their values, insertion-ordered.
#[derive(Clone)]
pub struct HashValue(Repr);

impl Default for HashValue {
    fn default() -> Self {
        HashValue(Repr::Packed(Box::default()))
    }
}

/// Writes a length as a varint (the packed hash's and set's member lengths).
pub(super) fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn len_bytes(mut n: usize) -> usize {
    let mut bytes = 1;
    while n >= 0x80 {
        n >>= 7;
        bytes += 1;
    }
    bytes
}

/// Reads a length at `*pos`, moving past it. The buffer is only ever written by
/// `put_len`, so it is well formed.
pub(super) fn read_len(bytes: &[u8], pos: &mut usize) -> usize {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// One pair of a packed buffer and where it lies.
struct Pair<'a> {
    field: &'a [u8],
    value: &'a [u8],
    start: usize,
    /// Where the value's length starts.
    value_at: usize,
    end: usize,
}

/// Walks the pairs of a packed buffer.
struct Pairs<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Pair<'a>;

    fn next(&mut self) -> Option<Pair<'a>> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let mut pos = start;
        let n = read_len(self.bytes, &mut pos);
        let field = &self.bytes[pos..pos + n];
        pos += n;
        let value_at = pos;
        let n = read_len(self.bytes, &mut pos);
        let value = &self.bytes[pos..pos + n];
        pos += n;
        self.pos = pos;
        Some(Pair { field, value, start, value_at, end: pos })
    }
}

fn pairs(bytes: &[u8]) -> Pairs<'_> {
    Pairs { bytes, pos: HEADER.min(bytes.len()) }
}

fn find<'a>(bytes: &'a [u8], field: &[u8]) -> Option<Pair<'a>> {
    pairs(bytes).find(|p| p.field == field)
}

/// The pairs of a packed buffer (its header not read) in a table, in order.
fn table_of(bytes: &[u8], len: usize) -> Table {
    let mut table = Table::with_capacity(len + 1);
    for p in pairs(bytes) {
        table.insert(p.field, Blob::from(p.value));
    }
    table
}

/// The iterator over a hash's pairs, whichever its encoding.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Packed(Pairs<'a>),
    Table(Box<dyn Iterator<Item = (&'a Key, &'a Blob)> + 'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Packed(p) => p.next().map(|p| (p.field, p.value)),
            IterRepr::Table(t) => t.next().map(|(k, v)| (&k[..], &v[..])),
        }
    }
}

/// A hash's pairs by position (HSCAN's cursor, HRANDFIELD's picks): the table
/// itself, or the packed pairs listed once so each pick is O(1).
pub enum Indexed<'a> {
    Packed(Vec<(&'a [u8], &'a [u8])>),
    Table(&'a Table),
}

impl<'a> Indexed<'a> {
    pub fn get(&self, index: usize) -> Option<(&'a [u8], &'a [u8])> {
        match self {
            Indexed::Packed(v) => v.get(index).copied(),
            Indexed::Table(t) => t.get_index(index).map(|(k, v)| (&k[..], &v[..])),
        }
    }
}

impl HashValue {
    /// A hash of `pairs` (distinct fields, in order), packed if it fits `packing`.
    /// `Err(i)` if pair `i` repeats a field.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone, packing: Packing) -> Result<HashValue, usize> {
        let mut hash = HashValue::default();
        let mut count = 0usize;
        let mut small = true;
        let mut bytes = 0usize;
        for (field, value) in pairs.clone() {
            count += 1;
            small &= packing.fits(field, value);
            bytes += len_bytes(field.len()) + field.len() + len_bytes(value.len()) + value.len();
        }
        if small && count <= packing.entries && u32::try_from(count).is_ok() {
            let mut repeated = None;
            let bytes = packed(count, bytes, |out| {
                for (i, (field, value)) in pairs.into_iter().enumerate() {
                    // Looked for in what is packed so far: hashes that fit are short.
                    if repeated.is_none() && find(out, field).is_some() {
                        repeated = Some(i);
                    }
                    put_len(out, field.len());
                    out.extend_from_slice(field);
                    put_len(out, value.len());
                    out.extend_from_slice(value);
                }
            });
            if let Some(i) = repeated {
                return Err(i);
            }
            hash.0 = Repr::Packed(bytes);
        } else {
            let mut table = Table::with_capacity(count);
            for (i, (field, value)) in pairs.into_iter().enumerate() {
                if table.insert(field, Blob::from(value)).is_some() {
                    return Err(i);
                }
            }
            hash.0 = Repr::Table(Box::new(table));
        }
        Ok(hash)
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed(bytes) => packed_len(bytes),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while the hash is in its packed encoding (OBJECT ENCODING `listpack`).
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Packed(_))
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.0 {
            Repr::Packed(bytes) => find(bytes, field).map(|p| p.value),
            Repr::Table(t) => t.get(field).map(|v| &v[..]),
        }
    }

    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Iter(IterRepr::Packed(pairs(bytes))),
            Repr::Table(t) => Iter(IterRepr::Table(Box::new(t.iter()))),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(f, _)| f)
    }

    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(_, v)| v)
    }

    pub fn indexed(&self) -> Indexed<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Indexed::Packed(pairs(bytes).map(|p| (p.field, p.value)).collect()),
            Repr::Table(t) => Indexed::Table(t),
        }
    }

    /// Bytes this hash holds beyond its handle, for MEMORY USAGE: exact when packed;
    /// for a table, per field its entry (field handle, value handle, hash bits), its
    /// 8-byte slot at up to 3/4 load and what lives outside the handles, measured on
    /// up to `samples` fields and extrapolated.
    pub fn heap_bytes(&self, samples: usize) -> usize {
        match &self.0 {
            Repr::Packed(bytes) => bytes.len(),
            Repr::Table(t) => {
                let outside = |b: &[u8]| if b.len() <= Key::INLINE_MAX { 0 } else { b.len() };
                let seen = t.len().min(samples);
                let bytes: usize = t.iter().take(seen).map(|(k, v)| outside(k) + v.len() + 64).sum();
                (bytes * t.len()).checked_div(seen).unwrap_or(0)
            }
        }
    }

    /// Sets `field` to `value`; true if the field is new. Converts to a table when
    /// the field or value is longer than `packing` allows or the hash outgrows it.
    pub fn insert(&mut self, field: &[u8], value: &[u8], packing: Packing) -> bool {
        self.insert_all([(field, value)], packing) == 1
    }

    /// Sets every field to its value, in order (a later pair for the same field
    /// wins); how many fields were new. A packed hash is rewritten once for all of
    /// them, then converted if any pair or the count is past `packing` (as Redis
    /// checks after each HSET; the order is the same either way).
    pub fn insert_all<'a>(&mut self, pairs_in: impl IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone, packing: Packing) -> usize {
        if matches!(self.0, Repr::Packed(_)) && pairs_in.clone().into_iter().any(|(f, v)| !packing.fits(f, v)) {
            self.unpack();
        }
        match &mut self.0 {
            Repr::Packed(bytes) => {
                let mut buf = std::mem::take(bytes).into_vec();
                if buf.is_empty() {
                    buf.extend_from_slice(&0u32.to_le_bytes());
                }
                let mut len = packed_len(&buf);
                let mut added = 0;
                for (field, value) in pairs_in {
                    match find(&buf, field).map(|p| (p.value_at, p.end)) {
                        Some((at, end)) => {
                            let mut encoded = Vec::with_capacity(len_bytes(value.len()) + value.len());
                            put_len(&mut encoded, value.len());
                            encoded.extend_from_slice(value);
                            if encoded.len() == end - at {
                                buf[at..end].copy_from_slice(&encoded);
                            } else {
                                buf.splice(at..end, encoded);
                            }
                        }
                        None => {
                            put_len(&mut buf, field.len());
                            buf.extend_from_slice(field);
                            put_len(&mut buf, value.len());
                            buf.extend_from_slice(value);
                            len += 1;
                            added += 1;
                        }
                    }
                }
                match u32::try_from(len) {
                    Ok(count) if len <= packing.entries => {
                        buf[..HEADER].copy_from_slice(&count.to_le_bytes());
                        *bytes = buf.into_boxed_slice();
                    }
                    _ => self.0 = Repr::Table(Box::new(table_of(&buf, len))),
                }
                added
            }
            Repr::Table(t) => pairs_in.into_iter().filter(|(f, v)| t.insert(*f, Blob::from(*v)).is_none()).count(),
        }
    }

    /// Removes `field`; true if it was there. The last pair takes its place.
    pub fn swap_remove(&mut self, field: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Packed(bytes) => {
                let Some(removed) = find(bytes, field) else {
                    return false;
                };
                let last_start = pairs(bytes).last().map_or(0, |p| p.start);
                let left = bytes.len() - HEADER - (removed.end - removed.start);
                *bytes = packed(packed_len(bytes) - 1, left, |out| {
                    out.extend_from_slice(&bytes[HEADER..removed.start]);
                    if removed.start != last_start {
                        out.extend_from_slice(&bytes[last_start..]);
                        out.extend_from_slice(&bytes[removed.end..last_start]);
                    }
                });
                true
            }
            Repr::Table(t) => t.swap_remove(field).is_some(),
        }
    }

    /// Encodes a decoded hash (RESTORE, a snapshot's key) by its content under this
    /// server's `packing`, as Redis does on load: packed if it fits, a table if not.
    pub fn repack(&mut self, packing: Packing) {
        let fits = self.len() <= packing.entries && self.iter().all(|(f, v)| packing.fits(f, v));
        match (&self.0, fits) {
            (Repr::Packed(_), false) => self.unpack(),
            (Repr::Table(_), true) => {
                let pairs: Vec<_> = self.iter().collect();
                let packed = HashValue::from_pairs(pairs.iter().copied(), packing).expect("a table's fields are distinct");
                *self = packed;
            }
            _ => {}
        }
    }

    /// Moves a packed hash into a table, keeping the order.
    fn unpack(&mut self) {
        if let Repr::Packed(bytes) = &self.0 {
            self.0 = Repr::Table(Box::new(table_of(bytes, packed_len(bytes))));
        }
    }

    /// Starts loading what a lookup of `field` reads first (the packed bytes, or the
    /// field's slot in the table).
    pub fn prefetch_slot(&self, field: &[u8]) {
        match &self.0 {
            Repr::Packed(bytes) => {
                if let Some(first) = bytes.first() {
                    super::table::prefetch_read(first);
                }
            }
            Repr::Table(t) => t.prefetch_slot(field),
        }
    }

    /// The second stage for a table (the field's entry); nothing more for packed.
    pub fn prefetch_entry(&self, field: &[u8]) {
        if let Repr::Table(t) = &self.0 {
            t.prefetch_entry(field);
        }
    }
}

/// Equal when both hold the same fields with equal values, in any order and
/// whichever the encodings.
impl PartialEq for HashValue {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl std::fmt::Debug for HashValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in self.iter() {
            map.entry(&String::from_utf8_lossy(k), &String::from_utf8_lossy(v));
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(h: &HashValue) -> Vec<(Vec<u8>, Vec<u8>)> {
        h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    /// The same operations on a packed hash and on one forced into a table give the
    /// same pairs in the same order at every step: the encoding is invisible.
    #[test]
    fn packed_and_table_keep_the_same_order_through_any_operations() {
        let never = Packing { entries: 0, value_bytes: 0 };
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut packed = HashValue::default();
        let mut table = HashValue::default();
        for step in 0..5_000 {
            let field = format!("f{}", next() % 40).into_bytes();
            let value = format!("v{step}").into_bytes();
            if next() % 3 == 0 {
                assert_eq!(packed.swap_remove(&field), table.swap_remove(&field), "step {step}");
            } else if next() % 4 == 0 {
                // Several pairs in one command, a field maybe twice.
                let more: Vec<(Vec<u8>, Vec<u8>)> =
                    (0..3).map(|i| (format!("f{}", next() % 40).into_bytes(), format!("w{step}.{i}").into_bytes())).collect();
                let pairs = more.iter().map(|(f, v)| (&f[..], &v[..]));
                assert_eq!(packed.insert_all(pairs.clone(), Packing::DEFAULT), table.insert_all(pairs, never), "step {step}");
            } else {
                assert_eq!(packed.insert(&field, &value, Packing::DEFAULT), table.insert(&field, &value, never), "step {step}");
            }
            assert!(packed.is_packed() && !table.is_packed() || table.is_empty());
            assert_eq!(items(&packed), items(&table), "step {step}");
            assert_eq!(packed.len(), table.len());
            assert_eq!(packed, table);
            let (p, t) = (packed.indexed(), table.indexed());
            for i in 0..=packed.len() {
                assert_eq!(p.get(i), t.get(i));
            }
        }
    }

    #[test]
    fn a_hash_is_converted_past_either_limit_and_keeps_its_order() {
        let packing = Packing { entries: 3, value_bytes: 4 };
        let mut h = HashValue::default();
        for f in ["a", "b", "c"] {
            assert!(h.insert(f.as_bytes(), b"1", packing));
        }
        // Replacing a value at the entry limit keeps it packed.
        assert!(!h.insert(b"b", b"22", packing));
        assert!(h.is_packed());
        assert!(h.insert(b"d", b"1", packing));
        assert!(!h.is_packed());
        assert_eq!(h.keys().collect::<Vec<_>>(), [&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(h.get(b"b"), Some(&b"22"[..]));

        let mut h = HashValue::default();
        h.insert(b"a", b"1", packing);
        // A long value, even for a field already there.
        assert!(!h.insert(b"a", b"12345", packing));
        assert!(!h.is_packed());
        // Removing back under the limits does not pack it again.
        h.insert(b"a", b"1", packing);
        assert!(!h.is_packed());

        let mut h = HashValue::default();
        h.insert(b"a", b"1", packing);
        assert!(h.insert(b"long-field", b"1", packing));
        assert!(!h.is_packed());
    }

    #[test]
    fn a_packed_hash_over_a_lowered_limit_converts_on_its_next_write() {
        let mut h = HashValue::default();
        for f in ["a", "b", "c"] {
            h.insert(f.as_bytes(), b"1", Packing::DEFAULT);
        }
        let lowered = Packing { entries: 2, value_bytes: 64 };
        // An update of a field already there (as Redis converts after any HSET).
        assert!(!h.insert(b"a", b"2", lowered));
        assert!(!h.is_packed());
        assert_eq!(h.keys().collect::<Vec<_>>(), [&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn one_command_of_several_pairs_counts_new_fields_once_and_the_last_value_wins() {
        let mut h = HashValue::default();
        h.insert(b"a", b"0", Packing::DEFAULT);
        let pairs = [(&b"a"[..], &b"1"[..]), (b"b", b"1"), (b"b", b"22"), (b"c", b"333")];
        assert_eq!(h.insert_all(pairs, Packing::DEFAULT), 2);
        assert!(h.is_packed());
        assert_eq!(items(&h), [(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"22".to_vec()), (b"c".to_vec(), b"333".to_vec())]);
        // Past the entry limit within one command: a table, same order.
        let mut t = HashValue::default();
        assert_eq!(t.insert_all(pairs, Packing { entries: 2, value_bytes: 64 }), 3);
        assert!(!t.is_packed());
        assert_eq!(items(&t), items(&h));
    }

    #[test]
    fn removal_moves_the_last_pair_into_the_hole() {
        let mut h = HashValue::default();
        for f in ["a", "bb", "ccc", "dddd"] {
            h.insert(f.as_bytes(), f.as_bytes(), Packing::DEFAULT);
        }
        assert!(h.swap_remove(b"bb"));
        assert!(!h.swap_remove(b"bb"));
        assert_eq!(h.keys().collect::<Vec<_>>(), [&b"a"[..], b"dddd", b"ccc"]);
        assert!(h.swap_remove(b"ccc"));
        assert!(h.swap_remove(b"a"));
        assert_eq!(items(&h), [(b"dddd".to_vec(), b"dddd".to_vec())]);
        assert!(h.swap_remove(b"dddd"));
        assert!(h.is_empty());
    }

    #[test]
    fn long_lengths_and_empty_strings_round_trip_packed() {
        let packing = Packing { entries: 10, value_bytes: 1000 };
        let long = vec![b'x'; 300];
        let mut h = HashValue::default();
        h.insert(b"", b"", packing);
        h.insert(&long, b"v", packing);
        h.insert(b"k", &long, packing);
        assert!(h.is_packed());
        assert_eq!(h.get(b""), Some(&b""[..]));
        assert_eq!(h.get(&long), Some(&b"v"[..]));
        assert_eq!(h.get(b"k"), Some(&long[..]));
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn a_hash_value_is_a_16_byte_handle() {
        assert_eq!(std::mem::size_of::<HashValue>(), 16);
    }

    #[test]
    fn from_pairs_packs_what_fits_and_refuses_repeated_fields() {
        let pairs = [(&b"a"[..], &b"1"[..]), (b"b", b"2")];
        let h = HashValue::from_pairs(pairs, Packing::DEFAULT).unwrap();
        assert!(h.is_packed());
        assert_eq!(items(&h), [(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]);
        let t = HashValue::from_pairs(pairs, Packing { entries: 1, value_bytes: 64 }).unwrap();
        assert!(!t.is_packed());
        let mut repacked = h.clone();
        repacked.repack(Packing::DEFAULT);
        assert!(repacked.is_packed());
        repacked.repack(Packing { entries: 2, value_bytes: 0 });
        assert!(!repacked.is_packed());
        assert_eq!(items(&repacked), items(&h));
        repacked.repack(Packing::DEFAULT);
        assert!(repacked.is_packed());
        assert_eq!(items(&repacked), items(&h));
        assert_eq!(h, t);
        assert_eq!(items(&h), items(&t));
        let twice = [(&b"a"[..], &b"1"[..]), (b"a", b"2")];
        assert_eq!(HashValue::from_pairs(twice, Packing::DEFAULT).unwrap_err(), 1);
        assert_eq!(HashValue::from_pairs(twice, Packing { entries: 0, value_bytes: 0 }).unwrap_err(), 1);
    }
}
