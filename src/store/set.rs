//! The value of a set key, in one of two encodings (as Redis's intset/listpack and
//! hashtable):
//!
//! - **packed**: every member in one allocation. A lookup walks them. Used while the
//!   set has at most [`SetPacking::entries`] members none longer than
//!   [`SetPacking::value_bytes`], or — a set of integers only — at most
//!   `set-max-intset-entries` members (Redis's intset). A set that has only ever held
//!   integers keeps each as a binary varint (1000 takes 2 bytes, as in Redis's intset
//!   of 16-bit values); once it holds another string, each member is a varint length
//!   and its bytes;
//! - **table**: an insertion-ordered hash set (the keyspace's [`KeyTable`]: members of
//!   up to [`Key::INLINE_MAX`] bytes kept in its entries, one probe per lookup), once
//!   past those limits. A set never goes back from table to packed while it lives (as in
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

use std::ops::Deref;

use super::hash::{put_len, read_len};
use super::table::{Key, KeyTable};
use super::value::Blob;
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

/// A set past its packed limits: members as keys, nothing as values.
pub type Table = KeyTable<Key, ()>;

#[derive(Clone)]
enum Repr {
    /// The header (4 bytes, little-endian: the member count, and in the top bit
    /// whether a non-integer member was ever held), then the members — while that bit
    /// is down, each a zigzag varint of its value; after, each a varint length and its
    /// bytes —; empty for none.
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

/// True while a packed buffer keeps its members as integers.
fn holds_ints(bytes: &[u8]) -> bool {
    header(bytes) & HELD_STRING == 0
}

/// A member as a set hands it out: lent from where the set keeps it, or — an integer
/// of a packed set of integers, kept in binary — its decimal text, written in place.
/// Either way it reads as the member's bytes.
#[derive(Clone, Copy)]
pub enum Member<'a> {
    Lent(&'a [u8]),
    Int { len: u8, text: [u8; 20] },
}

impl Member<'_> {
    fn int(value: i64) -> Member<'static> {
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(value).as_bytes();
        let mut text = [0u8; 20];
        text[..digits.len()].copy_from_slice(digits);
        Member::Int { len: digits.len() as u8, text }
    }
}

impl Deref for Member<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Member::Lent(bytes) => bytes,
            Member::Int { len, text } => &text[..usize::from(*len)],
        }
    }
}

impl AsRef<[u8]> for Member<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Member<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Member<'_> {}

impl std::hash::Hash for Member<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl std::fmt::Debug for Member<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

// The varints of hashes' lengths carry 64-bit integers here.
const _: () = assert!(usize::BITS == 64, "a packed set's integers need a 64-bit usize");

/// Appends `value` as a zigzag varint (small magnitudes of either sign take few bytes).
pub(super) fn put_int(out: &mut Vec<u8>, value: i64) {
    super::hash::put_len(out, ((value << 1) ^ (value >> 63)) as u64 as usize);
}

/// Reads a zigzag varint at `*pos`, moving past it. The buffer is only ever written
/// by `put_int`, so it is well formed.
pub(super) fn read_int(bytes: &[u8], pos: &mut usize) -> i64 {
    let n = super::hash::read_len(bytes, pos) as u64;
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// One member of a packed buffer, as its kind of buffer keeps it.
#[derive(Clone, Copy)]
enum Kept<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl<'a> Kept<'a> {
    fn member(self) -> Member<'a> {
        match self {
            Kept::Bytes(bytes) => Member::Lent(bytes),
            Kept::Int(value) => Member::int(value),
        }
    }
}

/// One member of a packed buffer and where its encoding lies.
struct Slot<'a> {
    kept: Kept<'a>,
    start: usize,
    end: usize,
}

impl<'a> Slot<'a> {
    fn member(&self) -> Member<'a> {
        self.kept.member()
    }
}

/// Walks the members of a packed buffer.
struct Slots<'a> {
    bytes: &'a [u8],
    pos: usize,
    ints: bool,
}

impl<'a> Iterator for Slots<'a> {
    type Item = Slot<'a>;

    fn next(&mut self) -> Option<Slot<'a>> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let mut pos = start;
        let kept = if self.ints {
            Kept::Int(read_int(self.bytes, &mut pos))
        } else {
            let n = read_len(self.bytes, &mut pos);
            pos += n;
            Kept::Bytes(&self.bytes[pos - n..pos])
        };
        self.pos = pos;
        Some(Slot { kept, start, end: self.pos })
    }
}

fn slots(bytes: &[u8]) -> Slots<'_> {
    Slots { bytes, pos: HEADER.min(bytes.len()), ints: holds_ints(bytes) }
}

/// The slot of `member` in a packed buffer: in a buffer of integers, only an integer
/// (in its one decimal form) can be there, and values are compared.
fn find<'a>(bytes: &'a [u8], member: &[u8]) -> Option<Slot<'a>> {
    if holds_ints(bytes) {
        let wanted = parse_i64(member)?;
        slots(bytes).find(|s| matches!(s.kept, Kept::Int(v) if v == wanted))
    } else {
        slots(bytes).find(|s| matches!(s.kept, Kept::Bytes(b) if b == member))
    }
}

/// Appends `member` as a buffer of its kind keeps it (`ints`: `member` is an integer).
fn put_member(out: &mut Vec<u8>, member: &[u8], ints: bool) {
    match parse_i64(member).filter(|_| ints) {
        Some(value) => put_int(out, value),
        None => {
            put_len(out, member.len());
            out.extend_from_slice(member);
        }
    }
}

/// A buffer of integers rewritten with each member as its text (a string is joining).
fn ints_to_text(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len() * 4);
    out.extend_from_slice(&(header(buf) | HELD_STRING).to_le_bytes());
    for slot in slots(buf) {
        let member = slot.member();
        put_len(&mut out, member.len());
        out.extend_from_slice(&member);
    }
    out
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
    Table(super::table::Keys<'a, Key, ()>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        match &mut self.0 {
            IterRepr::Packed(s) => s.next().map(|s| s.member()),
            IterRepr::Table(t) => t.next().map(|m| Member::Lent(m)),
        }
    }
}

/// A set's members by position (SSCAN's cursor, SRANDMEMBER's picks): the table
/// itself, or the packed members listed once so each pick is O(1).
pub enum Indexed<'a> {
    Packed(Vec<Member<'a>>),
    Table(&'a Table),
}

impl<'a> Indexed<'a> {
    pub fn get(&self, index: usize) -> Option<Member<'a>> {
        match self {
            Indexed::Packed(v) => v.get(index).copied(),
            Indexed::Table(t) => t.get_index(index).map(|(m, ())| Member::Lent(m)),
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
    pub fn from_table(table: Table, packing: SetPacking) -> SetValue {
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
            Repr::Packed(bytes) => holds_ints(bytes) && packed_len(bytes) <= intset_entries,
            Repr::Table(_) => false,
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.0 {
            Repr::Packed(bytes) => find(bytes, member).is_some(),
            Repr::Table(t) => t.contains_key(member),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Iter(IterRepr::Packed(slots(bytes))),
            Repr::Table(t) => Iter(IterRepr::Table(t.keys())),
        }
    }

    pub fn indexed(&self) -> Indexed<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Indexed::Packed(slots(bytes).map(|s| s.member()).collect()),
            Repr::Table(t) => Indexed::Table(t),
        }
    }

    /// The member at `index` (O(n) when packed: for one pick; many picks take
    /// [`SetValue::indexed`]).
    pub fn get_index(&self, index: usize) -> Option<Member<'_>> {
        match &self.0 {
            Repr::Packed(bytes) => slots(bytes).nth(index).map(|s| s.member()),
            Repr::Table(t) => t.get_index(index).map(|(m, ())| Member::Lent(m)),
        }
    }

    /// Bytes this set holds beyond its handle, for MEMORY USAGE: exact when packed;
    /// for a table, its entries and slots, and the members kept outside their entries
    /// (longer than [`Key::INLINE_MAX`]), measured on up to `samples` members and
    /// extrapolated.
    pub fn heap_bytes(&self, samples: usize) -> usize {
        match &self.0 {
            Repr::Packed(bytes) => bytes.len(),
            Repr::Table(t) => {
                let seen = t.len().min(samples);
                let outside: usize = t.keys().take(seen).map(|m| if m.len() > Key::INLINE_MAX { m.len() } else { 0 }).sum();
                t.table_bytes() + (outside * t.len()).checked_div(seen).unwrap_or(0)
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
                let mut len = packed_len(&buf);
                let mut added = 0;
                let mut longest = 0;
                for member in members {
                    if find(&buf, member).is_some() {
                        continue;
                    }
                    let int = is_int(member);
                    if !int && holds_ints(&buf) {
                        buf = ints_to_text(&buf);
                    }
                    longest = longest.max(member.len());
                    let as_int = int && holds_ints(&buf);
                    put_member(&mut buf, member, as_int);
                    len += 1;
                    added += 1;
                }
                let mut head = header(&buf);
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
            Repr::Table(t) => members.into_iter().filter(|m| t.insert_absent(m, ())).count(),
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
            Repr::Table(t) => t.swap_remove(member).is_some(),
        }
    }

    /// Removes the member at `index`, the last taking its place.
    pub fn swap_remove_index(&mut self, index: usize) -> Option<Blob> {
        match &mut self.0 {
            Repr::Packed(bytes) => {
                let (member, start, end) = slots(bytes).nth(index).map(|s| (Blob::from(&*s.member()), s.start, s.end))?;
                remove_packed(bytes, start, end);
                Some(member)
            }
            Repr::Table(t) => t.swap_remove_index(index).map(|(m, ())| m.into()),
        }
    }

    /// Every member, taken out.
    pub fn drain(&mut self) -> Vec<Blob> {
        let members = self.iter().map(|m| Blob::from(&*m)).collect();
        *self = SetValue::default();
        members
    }

    /// Encodes a decoded set (RESTORE, a snapshot's key) by its content under this
    /// server's `packing`, as Redis does on load.
    pub fn repack(&mut self, packing: SetPacking) {
        let all_ints = self.iter().all(|m| is_int(&m));
        let longest = self.iter().map(|m| m.len()).max().unwrap_or(0);
        let fits = packing.fits(self.len(), all_ints, longest);
        match (&self.0, fits) {
            (Repr::Packed(bytes), false) => {
                let table = table_of(bytes, packed_len(bytes));
                self.0 = Repr::Table(Box::new(table));
            }
            (Repr::Table(t), true) => {
                let members: Vec<&[u8]> = t.keys().map(|m| &m[..]).collect();
                *self = SetValue::from_members(members, packing);
            }
            _ => {}
        }
    }

    /// Starts loading what a lookup of `member` reads first: the packed buffer, or
    /// the member's slot in the table (see `store::table`).
    pub fn prefetch_slot(&self, member: &[u8]) {
        match &self.0 {
            Repr::Packed(bytes) => {
                if let Some(first) = bytes.first() {
                    super::table::prefetch_read(first);
                }
            }
            Repr::Table(t) => t.prefetch_slot(member),
        }
    }

    /// The second stage for a table (the member's entry); nothing more for packed.
    pub fn prefetch_entry(&self, member: &[u8]) {
        if let Repr::Table(t) = &self.0 {
            t.prefetch_entry(member);
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
    let mut table = Table::with_capacity(len + 1);
    for slot in slots(bytes) {
        table.insert_absent(&slot.member(), ());
    }
    table
}

/// Equal when both hold the same members, in any order and whichever the encodings.
impl PartialEq for SetValue {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(&m))
    }
}

impl std::fmt::Debug for SetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(set: &SetValue) -> Vec<String> {
        set.iter().map(|m| String::from_utf8_lossy(&m).into_owned()).collect()
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

    /// A set of integers keeps each as a zigzag varint: 10 members 1000…1009 take the
    /// 4-byte header and 2 bytes each (their text with its lengths took 54).
    #[test]
    fn integers_are_kept_in_binary_and_read_back_as_their_text() {
        let texts: Vec<String> = (1000..1010).map(|i: i64| i.to_string()).collect();
        let set = SetValue::from_members(texts.iter().map(|t| t.as_bytes()), SetPacking::DEFAULT);
        assert_eq!(set.heap_bytes(usize::MAX), 4 + 10 * 2);
        assert_eq!(members(&set), texts);
        assert!(set.contains(b"1004") && !set.contains(b"1010") && !set.contains(b"x"));
        assert!(!set.contains(b"01004") && !set.contains(b"+1004"), "only the one decimal form of a member is it");

        let extremes = [i64::MIN, i64::MIN + 1, -1, 0, 1, 63, 64, -64, -65, i64::MAX];
        let texts: Vec<String> = extremes.iter().map(i64::to_string).collect();
        let set = SetValue::from_members(texts.iter().map(|t| t.as_bytes()), SetPacking::DEFAULT);
        assert!(set.is_intset(512));
        assert_eq!(members(&set), texts);
        assert!(texts.iter().all(|t| set.contains(t.as_bytes())));
        assert_eq!(set.get_index(0).as_deref(), Some(&b"-9223372036854775808"[..]));
        assert_eq!(set.indexed().get(9).as_deref(), Some(&b"9223372036854775807"[..]));
    }

    /// Text that reads as a number but is not its one decimal form ("007", "-0",
    /// "+1") is a string: the set turns to strings, every member kept as it was given.
    #[test]
    fn a_string_joining_integers_turns_them_to_text_in_place() {
        for odd in ["007", "-0", "+1", " 1", "1.0", "99999999999999999999", "x"] {
            let mut set = SetValue::from_members([&b"5"[..], b"-3", b"1000000"], SetPacking::DEFAULT);
            assert!(set.insert(odd.as_bytes(), SetPacking::DEFAULT), "{odd}");
            assert!(!set.is_intset(512), "{odd}");
            assert!(set.is_packed(), "{odd}");
            assert_eq!(members(&set), ["5", "-3", "1000000", odd]);
            assert!(set.contains(b"-3") && set.contains(odd.as_bytes()));
            assert!(set.insert(b"6", SetPacking::DEFAULT), "an integer after the string is kept as text");
            assert!(set.swap_remove(b"5"));
            assert_eq!(members(&set), ["6", "-3", "1000000", odd]);
        }
    }

    /// Random adds and removals of integers (and now and then a string) on a packed set
    /// and on a table: the same members in the same order, whichever the packed form.
    #[test]
    fn integer_sets_keep_the_order_a_table_keeps() {
        use rand_core::{RngCore, SeedableRng};
        let never = SetPacking { entries: 0, value_bytes: 0, intset_entries: 0 };
        for seed in 0..8u64 {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            let (mut packed, mut table) = (SetValue::default(), SetValue::default());
            for step in 0..400 {
                let n = rng.next_u64();
                let member = if seed % 2 == 1 && step == 300 { "s".to_string() } else { ((n % 61) as i64 - 30).to_string() };
                match n % 5 {
                    0..=2 => assert_eq!(packed.insert(member.as_bytes(), SetPacking::DEFAULT), table.insert(member.as_bytes(), never)),
                    3 => assert_eq!(packed.swap_remove(member.as_bytes()), table.swap_remove(member.as_bytes())),
                    _ if !table.is_empty() => {
                        let i = (n >> 8) as usize % table.len();
                        assert_eq!(packed.swap_remove_index(i), table.swap_remove_index(i));
                    }
                    _ => {}
                }
                assert_eq!(members(&packed), members(&table), "seed {seed} step {step}");
            }
            assert!(packed.is_packed());
            if seed % 2 == 0 {
                assert!(packed.is_intset(512), "seed {seed}: only integers were ever held");
            }
        }
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
