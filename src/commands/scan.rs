//! The SCAN-family cursor, shared by SCAN, HSCAN, SSCAN and ZSCAN.
//!
//! Collections are insertion-ordered and remove by swapping the last element into
//! the hole. Scanning from the *end* towards the start keeps Redis's guarantee under
//! that: the cursor is the number of positions not yet visited, `[0, cursor)`. A
//! removal moves the last element (already visited, or itself unvisited and staying
//! in the unvisited range) into the hole; an insertion lands past the end, in the
//! visited range. So every element present for the whole scan is returned at least
//! once, and an element may be returned twice — exactly Redis's contract.

use std::ops::Range;

use bytes::Bytes;

use super::args::{count_arg, is, ERR_SYNTAX};
use crate::limits;
use crate::protocol::reply::Reply;

/// Options common to the SCAN family.
#[derive(Debug, Default)]
pub struct ScanOptions {
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub type_name: Option<String>,
    pub no_values: bool,
}

/// Parses the cursor argument: Redis's error for anything but an unsigned integer.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(arg).ok().and_then(|s| s.parse::<u64>().ok()).ok_or(Reply::err("ERR invalid cursor"))
}

/// Parses MATCH / COUNT / TYPE (when `allow_type`) / NOVALUES (when `allow_novalues`)
/// from `args`.
pub fn parse_options(args: &[Bytes], allow_type: bool, allow_novalues: bool) -> Result<ScanOptions, Reply> {
    let mut opts = ScanOptions { count: 10, ..ScanOptions::default() };
    let mut i = 0;
    while i < args.len() {
        let opt = &args[i];
        let value = args.get(i + 1);
        match value {
            Some(v) if is(opt, "match") => opts.pattern = Some(v.clone()),
            Some(v) if is(opt, "count") => {
                let n = count_arg(v)?;
                if n == 0 {
                    return Err(Reply::err(ERR_SYNTAX));
                }
                opts.count = n.min(limits::SCAN_COUNT_MAX);
            }
            Some(v) if allow_type && is(opt, "type") => opts.type_name = Some(String::from_utf8_lossy(v).to_ascii_lowercase()),
            _ if allow_novalues && is(opt, "novalues") => {
                opts.no_values = true;
                i += 1;
                continue;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 2;
    }
    Ok(opts)
}

/// The positions to visit in this step, and the cursor to return.
pub fn step(len: usize, cursor: u64, count: usize) -> (Range<usize>, u64) {
    let unvisited = if cursor == 0 { len } else { (cursor as usize).min(len) };
    let low = unvisited.saturating_sub(count.max(1));
    (low..unvisited, low as u64)
}

/// The reply shape of every SCAN command: `[cursor, [elements…]]`.
pub fn reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::bulk(cursor.to_string().as_bytes()), Reply::Array(items)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scan_visits_every_position_once_without_changes() {
        let len = 25;
        let mut seen = vec![0; len];
        let mut cursor = 0;
        loop {
            let (range, next) = step(len, cursor, 10);
            for i in range.rev() {
                seen[i] += 1;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }

    #[test]
    fn removals_during_a_scan_never_hide_a_surviving_element() {
        // Model: a Vec with swap_remove, elements are ids; remove some mid-scan.
        let mut items: Vec<u32> = (0..50).collect();
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let (range, next) = step(items.len(), cursor, 7);
            for i in range.rev() {
                seen.insert(items[i]);
            }
            // Remove two elements from anywhere, as another client would.
            for _ in 0..2 {
                let at = (round * 13 + 5) % items.len();
                items.swap_remove(at);
                round += 1;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for survivor in &items {
            assert!(seen.contains(survivor), "{survivor} was never returned");
        }
    }
}
