//! The value of a set key, in one of two encodings (as Redis's intset/listpack and
//! hashtable):
//!
//! - **packed**: every member in one allocation, each a varint length and its bytes.
//!   A lookup walks them. Used while the set has at most [`SetPacking::entries`]
//!   members none longer than [`SetPacking::value_bytes`], or — a set of integers
//!   only — at most `set-max-intset-entries` members (Redis's intset);
//! - **table**: an insertion-ordered hash set, one probe per lookup, once past those
//!   limits. A set never goes back from table to packed while it lives (as in
//!   Redis); a decoded one (snapshot, RESTORE) is packed again if it fits.
//!
//! Both encodings keep the same order: insertion order, and a removal moves the last
//! member into the removed one's place (a swap remove). So the encoding is invisible
//! to every command — SSCAN's index cursor, SRANDMEMBER's and SPOP's picks,
//! SMEMBERS' order — and members whose limits differ still agree on every reply and
//! on the digest.
//!
//! OBJECT ENCODING reports Redis 7.0's names: `intset` for a packed set that has only
//! ever held integers (Redis converts an intset once a string is added and never
//! back; the packed form keeps that fact in a flag), else `hashtable`.

use indexmap::IndexSet;

use super::hash::{put_len, read_len};
use super::value::{Blob, Hasher};
use crate::commands::args::parse_i64;

/// When a set is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetPacking {
    /// Most members of any kind (Redis 7.2's `set-max-listpack-entries`).
    pub entries: usize,
    /// Longest member (Redis 7.2's `set-max-listpack-value`).
    pub value_bytes: usize,
    /// Most members of a set of integers (`set-max-intset-entries`).
    pub intset_entries: usize,
}

impl SetPacking {
    /// Redis's defaults.
    pub const DEFAULT: SetPacking = SetPacking { entries: 128, value_bytes: 64, intset_entries: 512 };

    /// Whether `len` members fit packed, `all_ints` telling whether they are all
    /// integers and `longest` the longest one's length.
    fn fits(&self, len: usize, all_ints: bool, longest: usize) -> bool {
        (all_ints && len <= self.intset_entries) || (len <= self.entries && longest <= self.value_bytes)
    }
}

impl Default for SetPacking {
    fn default() -> Self {
        SetPacking::DEFAULT
    }
}

type Table = IndexSet<Blob, Hasher>;

#[derive(Clone)]
enum Repr {
    /// The header (4 bytes, little-endian: the member count, and in the top bit
    /// whether a non-integer member was ever held), then the members; empty for none.
    Packed(Box<[u8]>),
    Table(Box<Table>),
}

const HEADER: usize = 4;
/// The header's flag: a member that is not an integer was held (OBJECT ENCODING).
const HELD_STRING: u32 = 1 << 31;
const COUNT_MAX: usize = (HELD_STRING - 1) as usize;

fn header(bytes: &[u8]) -> u32 {
    bytes.first_chunk::<HEADER>().map_or(0, |h| u32::from_le_bytes(*h))
}

fn packed_len(bytes: &[u8]) -> usize {
    (header(bytes) & !HELD_STRING) as usize
}

fn is_int(member: &[u8]) -> bool {
    parse_i64(member).is_some()
}

/// One member of a packed buffer and where its encoding lies.
struct Slot<'a> {
    member: &'a [u8],
    start: usize,
    end: usize,
}

/// Walks the members of a packed buffer.
struct Slots<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Slots<'a> {
    type Item = Slot<'a>;

    fn next(&mut self) -> Option<Slot<'a>> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let mut pos = start;
        let n = read_len(self.bytes, &mut pos);
        let member = &self.bytes[pos..pos + n];
        self.pos = pos + n;
        Some(Slot { member, start, end: self.pos })
    }
}

fn slots(bytes: &[u8]) -> Slots<'_> {
    Slots { bytes, pos: HEADER.min(bytes.len()) }
}

fn find<'a>(bytes: &'a [u8], member: &[u8]) -> Option<Slot<'a>> {
    slots(bytes).find(|s| s.member == member)
}

/// A set: members, insertion-ordered.
#[derive(Clone)]
pub struct SetValue(Repr);

impl Default for SetValue {
    fn default() -> Self {
        SetValue(Repr::Packed(Box::default()))
    }
}

/// The iterator over a set's members, whichever its encoding.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Packed(Slots<'a>),
    Table(indexmap::set::Iter<'a, Blob>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            IterRepr::Packed(s) => s.next().map(|s| s.member),
            IterRepr::Table(t) => t.next().map(|m| &m[..]),
        }
    }
}

/// A set's members by position (SSCAN's cursor, SRANDMEMBER's picks): the table
/// itself, or the packed members listed once so each pick is O(1).
pub enum Indexed<'a> {
    Packed(Vec<&'a [u8]>),
    Table(&'a Table),
}

impl<'a> Indexed<'a> {
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        match self {
            Indexed::Packed(v) => v.get(index).copied(),
            Indexed::Table(t) => t.get_index(index).map(|m| &m[..]),
        }
    }
}

impl SetValue {
    /// A set of `members` (repeats are kept once, at their first place), packed if it
    /// fits `packing`.
    pub fn from_members<'a>(members: impl IntoIterator<Item = &'a [u8]>, packing: SetPacking) -> SetValue {
        let mut set = SetValue::default();
        set.insert_all(members, packing);
        set
    }

    /// A set of a table's members (a decoded payload), packed if it fits `packing`.
    pub fn from_table(table: IndexSet<Blob, Hasher>, packing: SetPacking) -> SetValue {
        let mut set = SetValue(Repr::Table(Box::new(table)));
        set.repack(packing);
        set
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

    /// True while the set is in its packed encoding.
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Packed(_))
    }

    /// Redis 7.0's encoding: `intset` while packed, never having held a string, and
    /// within `intset_entries` (this server's `set-max-intset-entries`).
    pub fn is_intset(&self, intset_entries: usize) -> bool {
        match &self.0 {
            Repr::Packed(bytes) => header(bytes) & HELD_STRING == 0 && packed_len(bytes) <= intset_entries,
            Repr::Table(_) => false,
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.0 {
            Repr::Packed(bytes) => find(bytes, member).is_some(),
            Repr::Table(t) => t.contains(member),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Iter(IterRepr::Packed(slots(bytes))),
            Repr::Table(t) => Iter(IterRepr::Table(t.iter())),
        }
    }

    pub fn indexed(&self) -> Indexed<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Indexed::Packed(slots(bytes).map(|s| s.member).collect()),
            Repr::Table(t) => Indexed::Table(t),
        }
    }

    /// The member at `index` (O(n) when packed: for one pick; many picks take
    /// [`SetValue::indexed`]).
    pub fn get_index(&self, index: usize) -> Option<&[u8]> {
        match &self.0 {
            Repr::Packed(bytes) => slots(bytes).nth(index).map(|s| s.member),
            Repr::Table(t) => t.get_index(index).map(|m| &m[..]),
        }
    }

    /// Bytes this set holds beyond its handle, for MEMORY USAGE: exact when packed;
    /// for a table, per member its entry and slot and what lives outside the handle,
    /// measured on up to `samples` members and extrapolated.
    pub fn heap_bytes(&self, samples: usize) -> usize {
        match &self.0 {
            Repr::Packed(bytes) => bytes.len(),
            Repr::Table(t) => {
                let seen = t.len().min(samples);
                let bytes: usize = t.iter().take(seen).map(|m| m.len() + 40).sum();
                (bytes * t.len()).checked_div(seen).unwrap_or(0)
            }
        }
    }

    /// Adds `member`; true if it is new.
    pub fn insert(&mut self, member: &[u8], packing: SetPacking) -> bool {
        self.insert_all([member], packing) == 1
    }

    /// Adds each member in order; how many were new. A packed set is rewritten once
    /// for all of them, then converted if it no longer fits `packing`.
    pub fn insert_all<'a>(&mut self, members: impl IntoIterator<Item = &'a [u8]>, packing: SetPacking) -> usize {
        match &mut self.0 {
            Repr::Packed(bytes) => {
                let mut buf = std::mem::take(bytes).into_vec();
                if buf.is_empty() {
                    buf.extend_from_slice(&0u32.to_le_bytes());
                }
                let mut head = header(&buf);
                let mut len = packed_len(&buf);
                let mut added = 0;
                let mut longest = 0;
                for member in members {
                    if find(&buf, member).is_some() {
                        continue;
                    }
                    if !is_int(member) {
                        head |= HELD_STRING;
                    }
                    longest = longest.max(member.len());
                    put_len(&mut buf, member.len());
                    buf.extend_from_slice(member);
                    len += 1;
                    added += 1;
                }
                // The members already here fit (integers are at most 20 bytes, other
                // members passed this check): the new ones decide. A set that held a
                // string is kept to the general limits, as Redis's listpack set is.
                let all_ints = head & HELD_STRING == 0;
                if len <= COUNT_MAX && packing.fits(len, all_ints, longest) {
                    head = (head & HELD_STRING) | len as u32;
                    buf[..HEADER].copy_from_slice(&head.to_le_bytes());
                    *bytes = buf.into_boxed_slice();
                } else {
                    self.0 = Repr::Table(Box::new(table_of(&buf, len)));
                }
                added
            }
            Repr::Table(t) => members.into_iter().filter(|m| t.insert(Blob::from(*m))).count(),
        }
    }

    /// Removes `member`; true if it was there. The last member takes its place.
    pub fn swap_remove(&mut self, member: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Packed(bytes) => match find(bytes, member).map(|s| (s.start, s.end)) {
                Some((start, end)) => {
                    remove_packed(bytes, start, end);
                    true
                }
                None => false,
            },
            Repr::Table(t) => t.swap_remove(member),
        }
    }

    /// Removes the member at `index`, the last taking its place.
    pub fn swap_remove_index(&mut self, index: usize) -> Option<Blob> {
        match &mut self.0 {
            Repr::Packed(bytes) => {
                let (member, start, end) = slots(bytes).nth(index).map(|s| (Blob::from(s.member), s.start, s.end))?;
                remove_packed(bytes, start, end);
                Some(member)
            }
            Repr::Table(t) => t.swap_remove_index(index),
        }
    }

    /// Every member, taken out.
    pub fn drain(&mut self) -> Vec<Blob> {
        let members = self.iter().map(Blob::from).collect();
        *self = SetValue::default();
        members
    }

    /// Encodes a decoded set (RESTORE, a snapshot's key) by its content under this
    /// server's `packing`, as Redis does on load.
    pub fn repack(&mut self, packing: SetPacking) {
        let all_ints = self.iter().all(is_int);
        let longest = self.iter().map(<[u8]>::len).max().unwrap_or(0);
        let fits = packing.fits(self.len(), all_ints, longest);
        match (&self.0, fits) {
            (Repr::Packed(bytes), false) => {
                let table = table_of(bytes, packed_len(bytes));
                self.0 = Repr::Table(Box::new(table));
            }
            (Repr::Table(t), true) => {
                let members: Vec<&[u8]> = t.iter().map(|m| &m[..]).collect();
                *self = SetValue::from_members(members, packing);
            }
            _ => {}
        }
    }

    /// Starts loading what a lookup reads first.
    pub fn prefetch(&self) {
        if let Repr::Packed(bytes) = &self.0 {
            if let Some(first) = bytes.first() {
                super::table::prefetch_read(first);
            }
        }
    }
}

/// Cuts the member encoded at `start..end` out of a packed buffer, the last member
/// moving into its place, and lowers the count.
fn remove_packed(bytes: &mut Box<[u8]>, start: usize, end: usize) {
    let head = header(bytes);
    let len = packed_len(bytes) - 1;
    if len == 0 {
        *bytes = Box::default();
        return;
    }
    let last_start = slots(bytes).last().map_or(start, |s| s.start);
    let mut out = Vec::with_capacity(bytes.len() - (end - start));
    out.extend_from_slice(&((head & HELD_STRING) | len as u32).to_le_bytes());
    out.extend_from_slice(&bytes[HEADER..start]);
    if start != last_start {
        out.extend_from_slice(&bytes[last_start..]);
        out.extend_from_slice(&bytes[end..last_start]);
    }
    *bytes = out.into_boxed_slice();
}

/// The members of a packed buffer in a table, in order.
fn table_of(bytes: &[u8], len: usize) -> Table {
    let mut table = Table::with_capacity_and_hasher(len + 1, Hasher::default());
    table.extend(slots(bytes).map(|s| Blob::from(s.member)));
    table
}

/// Equal when both hold the same members, in any order and whichever the encodings.
impl PartialEq for SetValue {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(m))
    }
}

impl std::fmt::Debug for SetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(String::from_utf8_lossy)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(set: &SetValue) -> Vec<String> {
        set.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect()
    }

    /// The same operations on a packed set and on one forced into a table give the
    /// same members in the same order.
    #[test]
    fn both_encodings_keep_the_same_order() {
        let never = SetPacking { entries: 0, value_bytes: 0, intset_entries: 0 };
        let (mut packed, mut table) = (SetValue::default(), SetValue::default());
        let ops: Vec<(bool, String)> = (0..200).map(|i| (i % 3 != 2, format!("m{}", (i * 7) % 23))).collect();
        for (add, m) in &ops {
            if *add {
                assert_eq!(packed.insert(m.as_bytes(), SetPacking::DEFAULT), table.insert(m.as_bytes(), never));
            } else {
                assert_eq!(packed.swap_remove(m.as_bytes()), table.swap_remove(m.as_bytes()));
            }
            assert_eq!(members(&packed), members(&table));
        }
        assert!(matches!(packed.0, Repr::Packed(_)));
        assert!(matches!(table.0, Repr::Table(_)));
        let (a, b) = (packed.swap_remove_index(1), table.swap_remove_index(1));
        assert_eq!(a, b);
        assert_eq!(members(&packed), members(&table));
        assert_eq!(packed, table);
    }

    #[test]
    fn integers_stay_packed_to_the_intset_limit_and_strings_are_remembered() {
        let mut set = SetValue::default();
        for i in 0..512 {
            set.insert(i.to_string().as_bytes(), SetPacking::DEFAULT);
        }
        assert!(set.is_intset(512), "512 integers: an intset");
        assert!(set.insert(b"512", SetPacking::DEFAULT));
        assert!(!set.is_intset(512) && matches!(set.0, Repr::Table(_)), "513: a table for good");

        let mut small = SetValue::from_members([&b"1"[..], b"2", b"3"], SetPacking::DEFAULT);
        assert!(small.is_intset(512));
        small.insert(b"a", SetPacking::DEFAULT);
        small.swap_remove(b"a");
        assert!(!small.is_intset(512), "a set that held a string is no intset again, as in Redis");
        assert!(matches!(small.0, Repr::Packed(_)), "but it stays packed");
        assert_eq!(members(&small), ["1", "2", "3"]);

        let long = "x".repeat(65);
        let mut set = SetValue::from_members([&b"a"[..]], SetPacking::DEFAULT);
        set.insert(long.as_bytes(), SetPacking::DEFAULT);
        assert!(matches!(set.0, Repr::Table(_)), "a member past 64 bytes");
    }

    #[test]
    fn removal_to_empty_and_repack() {
        let mut set = SetValue::from_members([&b"a"[..], b"b"], SetPacking::DEFAULT);
        assert!(set.swap_remove(b"a") && set.swap_remove(b"b"));
        assert!(set.is_empty());
        assert!(!set.swap_remove(b"a"));
        let never = SetPacking { entries: 0, value_bytes: 0, intset_entries: 0 };
        let mut table = SetValue::from_members([&b"1"[..], b"x", b"2"], never);
        assert!(matches!(table.0, Repr::Table(_)));
        table.repack(SetPacking::DEFAULT);
        assert!(matches!(table.0, Repr::Packed(_)));
        assert!(!table.is_intset(512), "re-packed by content: it holds a string");
        assert_eq!(members(&table), ["1", "x", "2"]);
        assert_eq!(table.drain().len(), 3);
        assert!(table.is_empty());
    }
}
