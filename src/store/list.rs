//! A list's value, in one of two encodings that hold the same elements in the same
//! order, so which one a list uses is invisible to every command:
//!
//! - **packed** while it holds at most [`PACKED_ENTRIES_MAX`] elements of at most
//!   [`PACKED_ELEMENT_MAX`] bytes: one allocation, a count byte, then each element
//!   as its length byte, its bytes and its length byte again (as Redis's listpack
//!   keeps a back length), so both ends are reached at once and a walk goes either
//!   way. An edit writes the buffer again: at most 128 × 66 bytes.
//! - **deque** past those: a `VecDeque` of [`Key`]s (elements of up to 22 bytes in
//!   their 24-byte handle). A list never goes back to packed while it lives (as a
//!   Redis 7.0 quicklist); loading one from DUMP or a snapshot packs it if it fits.
//!
//! A list of ten short elements cost 416 bytes as a deque (its box, a 16-slot ring
//! of 24-byte handles); packed it costs its bytes plus 21.

use std::collections::{vec_deque, VecDeque};

use super::table::Key;

/// The most elements a packed list holds.
pub const PACKED_ENTRIES_MAX: usize = 128;

/// The longest element a packed list holds (a length fits one byte).
pub const PACKED_ELEMENT_MAX: usize = 64;

#[derive(Debug, Clone)]
pub struct ListValue(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// The count, then the elements (see the module's notes); empty for none.
    Packed(Box<[u8]>),
    /// Boxed so that a list's handle is 16 bytes, as a hash's, whichever encoding.
    #[allow(clippy::box_collection)]
    Deque(Box<VecDeque<Key>>),
}

impl Default for ListValue {
    fn default() -> Self {
        ListValue(Repr::Packed(Box::default()))
    }
}

/// Equal when both hold the same elements in the same order, whatever their
/// encodings.
impl PartialEq for ListValue {
    fn eq(&self, other: &ListValue) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

fn packed_len(bytes: &[u8]) -> usize {
    bytes.first().map_or(0, |&n| usize::from(n))
}

/// Appends one packed element (at most [`PACKED_ELEMENT_MAX`] bytes).
fn put(out: &mut Vec<u8>, element: &[u8]) {
    let len = element.len() as u8;
    out.push(len);
    out.extend_from_slice(element);
    out.push(len);
}

/// The entries of a packed buffer, without its count.
fn entries(bytes: &[u8]) -> &[u8] {
    bytes.get(1..).unwrap_or_default()
}

/// One element as a packed entry.
fn entry(element: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(element.len() + 2);
    put(&mut out, element);
    out
}

/// The byte offset of element `index` in a packed buffer (its end for the count).
fn offset_of(bytes: &[u8], index: usize) -> usize {
    let mut pos = 1;
    for _ in 0..index {
        pos += usize::from(bytes[pos]) + 2;
    }
    pos
}

/// The byte offset where the last `n` elements of a packed buffer start, found
/// from its end through the back lengths.
fn offset_from_back(bytes: &[u8], n: usize) -> usize {
    let mut end = bytes.len();
    for _ in 0..n {
        end -= usize::from(bytes[end - 1]) + 2;
    }
    end
}

/// Drops `n` (at most all) elements from the head (`front`) or the tail of a
/// packed buffer.
fn drop_packed(bytes: &mut Box<[u8]>, front: bool, n: usize) {
    let count = packed_len(bytes);
    let kept = if front { &bytes[offset_of(bytes, n)..] } else { &bytes[1..offset_from_back(bytes, n)] };
    *bytes = packed_of(count - n, &[kept]);
}

/// A packed buffer of `count` elements: the entries of `parts`, one after another.
fn packed_of(count: usize, parts: &[&[u8]]) -> Box<[u8]> {
    if count == 0 {
        return Box::default();
    }
    let mut out = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    out.push(count as u8);
    parts.iter().for_each(|p| out.extend_from_slice(p));
    out.into_boxed_slice()
}

/// Whether `count` elements, `incoming` of them new, fit the packed encoding.
fn packable<'a>(count: usize, mut incoming: impl Iterator<Item = &'a [u8]>) -> bool {
    count <= PACKED_ENTRIES_MAX && incoming.all(|e| e.len() <= PACKED_ELEMENT_MAX)
}

impl ListValue {
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed(bytes) => packed_len(bytes),
            Repr::Deque(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while the list is packed.
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Packed(_))
    }

    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(bytes) => Iter(IterRepr::Packed { bytes, front: 1, back: bytes.len(), left: packed_len(bytes) }),
            Repr::Deque(d) => Iter(IterRepr::Deque(d.iter())),
        }
    }

    /// Elements `first..=last` (both within the list).
    pub fn range(&self, first: usize, last: usize) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(bytes) => {
                let front = offset_of(bytes, first);
                let mut back = front;
                for _ in first..=last {
                    back += usize::from(bytes[back]) + 2;
                }
                Iter(IterRepr::Packed { bytes, front, back, left: last + 1 - first })
            }
            Repr::Deque(d) => Iter(IterRepr::Deque(d.range(first..=last))),
        }
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        match &self.0 {
            Repr::Packed(_) => self.iter().nth(index),
            Repr::Deque(d) => d.get(index).map(|e| &e[..]),
        }
    }

    /// Bytes this list holds beyond its handle, for MEMORY USAGE: exact when packed;
    /// for a deque, its box and ring of 24-byte handles, spare ones included, and what
    /// lives outside the handles, measured on up to `samples` elements and
    /// extrapolated.
    pub fn heap_bytes(&self, samples: usize) -> usize {
        match &self.0 {
            Repr::Packed(bytes) => bytes.len(),
            Repr::Deque(d) => {
                let outside = |b: &[u8]| if b.len() <= Key::INLINE_MAX { 0 } else { b.len() };
                let seen = d.len().min(samples);
                let bytes: usize = d.iter().take(seen).map(|e| outside(e)).sum();
                let ring = std::mem::size_of::<VecDeque<Key>>() + d.capacity() * std::mem::size_of::<Key>();
                ring + (bytes * d.len()).checked_div(seen).unwrap_or(0)
            }
        }
    }

    /// Turns a packed list into a deque.
    fn unpack(&mut self) -> &mut VecDeque<Key> {
        if let Repr::Packed(bytes) = &self.0 {
            let mut deque = VecDeque::with_capacity(packed_len(bytes) + 1);
            deque.extend(self.iter().map(Key::from));
            self.0 = Repr::Deque(Box::new(deque));
        }
        match &mut self.0 {
            Repr::Deque(d) => d,
            Repr::Packed(_) => unreachable!("unpacked above"),
        }
    }

    /// The packed buffer, if the list is packed and stays so with `count` elements,
    /// `incoming` of them new; otherwise the deque it becomes.
    fn packed_for<'a>(&mut self, count: usize, incoming: impl Iterator<Item = &'a [u8]>) -> Result<&mut Box<[u8]>, &mut VecDeque<Key>> {
        if self.is_packed() && !packable(count, incoming) {
            self.unpack();
        }
        match &mut self.0 {
            Repr::Packed(bytes) => Ok(bytes),
            Repr::Deque(d) => Err(d),
        }
    }

    /// Appends `elements` at the tail, in order.
    pub fn push_back<'a, I>(&mut self, elements: I)
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        let elements = elements.into_iter();
        let count = self.len().saturating_add(elements.clone().count());
        if count == 0 {
            return;
        }
        match self.packed_for(count, elements.clone()) {
            Ok(bytes) => {
                let mut out = std::mem::take(bytes).into_vec();
                if out.is_empty() {
                    out.push(0); // the count, set below
                }
                out.reserve_exact(elements.clone().map(|e| e.len() + 2).sum());
                elements.for_each(|e| put(&mut out, e));
                out[0] = count as u8;
                *bytes = out.into_boxed_slice();
            }
            Err(d) => d.extend(elements.map(Key::from)),
        }
    }

    /// Pushes each of `elements` at the head in turn (so the last ends up first),
    /// as LPUSH does.
    pub fn push_front<'a, I>(&mut self, elements: I)
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        let elements = elements.into_iter();
        let count = self.len().saturating_add(elements.clone().count());
        match self.packed_for(count, elements.clone()) {
            Ok(bytes) => {
                let mut incoming = Vec::new();
                elements.for_each(|e| put(&mut incoming, e));
                // Entries are palindromic at their ends only: reverse them one by one.
                let mut reversed = Vec::with_capacity(incoming.len());
                let mut end = incoming.len();
                while end > 0 {
                    let start = end - usize::from(incoming[end - 1]) - 2;
                    reversed.extend_from_slice(&incoming[start..end]);
                    end = start;
                }
                *bytes = packed_of(count, &[&reversed, entries(bytes)]);
            }
            Err(d) => elements.for_each(|e| d.push_front(Key::from(e))),
        }
    }

    /// Pushes each of `elements` in turn at the head (`front`) or the tail.
    pub fn push<'a, I>(&mut self, front: bool, elements: I)
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        if front {
            self.push_front(elements)
        } else {
            self.push_back(elements)
        }
    }

    /// Pushes one element that is a [`Key`] already: a deque keeps it as it is (a
    /// long element moved by LMOVE is not copied).
    pub fn push_key(&mut self, front: bool, element: Key) {
        match &mut self.0 {
            Repr::Deque(d) if front => d.push_front(element),
            Repr::Deque(d) => d.push_back(element),
            Repr::Packed(_) => self.push(front, [&element[..]]),
        }
    }

    /// Removes and returns the element at the head (`front`) or the tail.
    pub fn pop_one(&mut self, front: bool) -> Option<Key> {
        if let Repr::Deque(d) = &mut self.0 {
            return if front { d.pop_front() } else { d.pop_back() };
        }
        let element = if front { self.iter().next() } else { self.iter().next_back() }.map(Key::from)?;
        if let Repr::Packed(bytes) = &mut self.0 {
            drop_packed(bytes, front, 1);
        }
        Some(element)
    }

    /// Removes and returns up to `n` elements from the head (`front`) or the tail,
    /// in the order they come off.
    pub fn pop(&mut self, front: bool, n: usize) -> Vec<Key> {
        let n = n.min(self.len());
        if n == 0 {
            return Vec::new();
        }
        if let Repr::Deque(d) = &mut self.0 {
            return if front { d.drain(..n).collect() } else { (0..n).filter_map(|_| d.pop_back()).collect() };
        }
        let popped: Vec<Key> =
            if front { self.iter().take(n).map(Key::from).collect() } else { self.iter().rev().take(n).map(Key::from).collect() };
        if let Repr::Packed(bytes) = &mut self.0 {
            drop_packed(bytes, front, n);
        }
        popped
    }

    /// Replaces element `index`; false if there is none.
    pub fn set(&mut self, index: usize, element: &[u8]) -> bool {
        let count = self.len();
        if index >= count {
            return false;
        }
        match self.packed_for(count, std::iter::once(element)) {
            Ok(bytes) => {
                let (start, end) = (offset_of(bytes, index), offset_of(bytes, index + 1));
                *bytes = packed_of(count, &[&bytes[1..start], &entry(element), &bytes[end..]]);
            }
            Err(d) => d[index] = Key::from(element),
        }
        true
    }

    /// Inserts `element` before element `index` (at the tail for the count).
    pub fn insert(&mut self, index: usize, element: &[u8]) {
        let count = self.len() + 1;
        match self.packed_for(count, std::iter::once(element)) {
            Ok(bytes) => {
                let (head, tail) = entries(bytes).split_at(offset_of(bytes, index) - 1);
                *bytes = packed_of(count, &[head, &entry(element), tail]);
            }
            Err(d) => d.insert(index, Key::from(element)),
        }
    }

    /// Keeps the elements for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        if let Repr::Deque(d) = &mut self.0 {
            return d.retain(|e| keep(e));
        }
        let mut out = vec![0];
        let mut count = 0;
        for e in self.iter().filter(|e| keep(e)) {
            put(&mut out, e);
            count += 1;
        }
        out[0] = count as u8;
        self.0 = Repr::Packed(if count == 0 { Box::default() } else { out.into_boxed_slice() });
    }

    /// Keeps elements `first..=last` (both within the list), as LTRIM.
    pub fn keep_range(&mut self, first: usize, last: usize) {
        match &mut self.0 {
            Repr::Packed(bytes) => {
                let (start, end) = (offset_of(bytes, first), offset_of(bytes, last + 1));
                *bytes = packed_of(last + 1 - first, &[&bytes[start..end]]);
            }
            Repr::Deque(d) => {
                d.truncate(last + 1);
                d.drain(..first);
            }
        }
    }

    pub fn clear(&mut self) {
        self.0 = Repr::Packed(Box::default());
    }
}

impl<'a> FromIterator<&'a [u8]> for ListValue {
    /// Packed if every element fits.
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(elements: I) -> ListValue {
        let mut list = ListValue::default();
        let mut packed = vec![0];
        let mut count = 0;
        let mut elements = elements.into_iter();
        for e in elements.by_ref() {
            if count == PACKED_ENTRIES_MAX || e.len() > PACKED_ELEMENT_MAX {
                packed[0] = count as u8;
                list.0 = Repr::Packed(packed.into_boxed_slice());
                let d = list.unpack();
                d.push_back(Key::from(e));
                d.extend(elements.map(Key::from));
                return list;
            }
            put(&mut packed, e);
            count += 1;
        }
        if count > 0 {
            packed[0] = count as u8;
            list.0 = Repr::Packed(packed.into_boxed_slice());
        }
        list
    }
}

/// A list's elements, from either end.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    /// The entries in `front..back`, `left` of them.
    Packed {
        bytes: &'a [u8],
        front: usize,
        back: usize,
        left: usize,
    },
    Deque(vec_deque::Iter<'a, Key>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            IterRepr::Packed { bytes, front, left, .. } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let len = usize::from(bytes[*front]);
                let element = &bytes[*front + 1..*front + 1 + len];
                *front += len + 2;
                Some(element)
            }
            IterRepr::Deque(it) => it.next().map(|e| &e[..]),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::Packed { left, .. } => *left,
            IterRepr::Deque(it) => it.len(),
        };
        (n, Some(n))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            IterRepr::Packed { bytes, back, left, .. } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let len = usize::from(bytes[*back - 1]);
                let element = &bytes[*back - 1 - len..*back - 1];
                *back -= len + 2;
                Some(element)
            }
            IterRepr::Deque(it) => it.next_back().map(|e| &e[..]),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model list and the packed one, edited alike.
    fn check(list: &ListValue, model: &VecDeque<Vec<u8>>) {
        assert_eq!(list.len(), model.len());
        assert!(list.iter().eq(model.iter().map(|e| &e[..])));
        assert!(list.iter().rev().eq(model.iter().rev().map(|e| &e[..])));
        for (i, e) in model.iter().enumerate() {
            assert_eq!(list.get(i), Some(&e[..]));
        }
        assert_eq!(list.get(model.len()), None);
        if !model.is_empty() {
            let (first, last) = (model.len() / 3, model.len() - 1 - model.len() / 4);
            if first <= last {
                assert!(list.range(first, last).eq(model.range(first..=last).map(|e| &e[..])));
                assert!(list.range(first, last).rev().eq(model.range(first..=last).rev().map(|e| &e[..])));
            }
        }
        let rebuilt: ListValue = model.iter().map(|e| &e[..]).collect();
        assert_eq!(&rebuilt, list);
        let fits = model.len() <= PACKED_ENTRIES_MAX && model.iter().all(|e| e.len() <= PACKED_ELEMENT_MAX);
        assert_eq!(rebuilt.is_packed(), fits);
    }

    #[test]
    fn every_edit_matches_a_deque_of_the_same_elements() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let mut list = ListValue::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            // Most rounds stay packed; some grow long or take a long element.
            let long_at = if round % 4 == 0 { next(300) } else { u64::MAX };
            for step in 0..300 {
                let len = if step == long_at { 65 + next(40) } else { next(12) };
                let element: Vec<u8> = (0..len).map(|_| b'a' + next(3) as u8).collect();
                match next(9) {
                    0 | 1 => {
                        let n = 1 + next(3) as usize;
                        let many = vec![element.clone(); n];
                        list.push_back(many.iter().map(|e| &e[..]));
                        model.extend(many);
                    }
                    2 | 3 => {
                        let many: Vec<Vec<u8>> = (0..1 + next(3)).map(|i| [&element[..], &[i as u8]].concat()).collect();
                        list.push_front(many.iter().map(|e| &e[..]));
                        many.into_iter().for_each(|e| model.push_front(e));
                    }
                    4 if step % 2 == 0 => {
                        let front = next(2) == 0;
                        let popped = list.pop_one(front);
                        let expected = if front { model.pop_front() } else { model.pop_back() };
                        assert_eq!(popped.as_deref(), expected.as_deref());
                        if let Some(k) = popped {
                            let back = next(2) == 0;
                            list.push_key(!back, k.clone());
                            if back {
                                model.push_back(k.to_vec())
                            } else {
                                model.push_front(k.to_vec())
                            }
                        }
                    }
                    4 => {
                        let n = next(3) as usize;
                        let front = next(2) == 0;
                        let popped = list.pop(front, n);
                        let expected: Vec<Vec<u8>> =
                            (0..n).filter_map(|_| if front { model.pop_front() } else { model.pop_back() }).collect();
                        assert!(popped.iter().map(|k| &k[..]).eq(expected.iter().map(|e| &e[..])));
                    }
                    5 => {
                        let i = next(model.len() as u64 + 1) as usize;
                        assert_eq!(list.set(i, &element), i < model.len());
                        if i < model.len() {
                            model[i] = element;
                        }
                    }
                    6 => {
                        let i = next(model.len() as u64 + 1) as usize;
                        list.insert(i, &element);
                        model.insert(i, element);
                    }
                    7 => {
                        let gone = b'a' + next(3) as u8;
                        list.retain(|e| e.first() != Some(&gone));
                        model.retain(|e| e.first() != Some(&gone));
                    }
                    _ if !model.is_empty() => {
                        let first = next(model.len() as u64) as usize;
                        let last = first + next((model.len() - first) as u64) as usize;
                        list.keep_range(first, last);
                        model.truncate(last + 1);
                        model.drain(..first);
                    }
                    _ => list.clear(),
                }
                check(&list, &model);
            }
        }
    }

    #[test]
    fn a_list_packs_up_to_its_limits_and_then_stays_a_deque() {
        let short = [b'x'; PACKED_ELEMENT_MAX];
        let mut list = ListValue::default();
        list.push_back(std::iter::repeat_n(&short[..], PACKED_ENTRIES_MAX));
        assert!(list.is_packed());
        assert_eq!(list.heap_bytes(5), 1 + PACKED_ENTRIES_MAX * (PACKED_ELEMENT_MAX + 2));
        list.push_front([&b"one more"[..]]);
        assert!(!list.is_packed());
        assert_eq!(list.pop(true, 1)[0][..], b"one more"[..]);
        assert!(!list.is_packed(), "a deque stays one");
        let mut list: ListValue = [&b"a"[..]].into_iter().collect();
        assert!(list.is_packed());
        assert!(list.set(0, &[b'y'; PACKED_ELEMENT_MAX + 1]));
        assert!(!list.is_packed());
        let mut list = ListValue::default();
        list.insert(0, &[b'z'; PACKED_ELEMENT_MAX + 1]);
        assert!(!list.is_packed());
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn emptied_packed_lists_hold_no_allocation() {
        let mut list: ListValue = [&b"a"[..], b"b"].into_iter().collect();
        list.pop(false, 2);
        assert!(list.is_empty() && list.heap_bytes(5) == 0);
        let mut list: ListValue = [&b"a"[..]].into_iter().collect();
        list.retain(|_| false);
        assert!(list.is_empty() && list.heap_bytes(5) == 0);
        assert_eq!(list, ListValue::default());
    }
}
