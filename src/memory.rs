//! Memory accounting: a global allocator wrapper that counts the bytes live in the
//! heap, as Redis's zmalloc does. `used_bytes()` is what `data-storage`/`maxmemory`
//! bound and what INFO reports as `used_memory`.
//!
//! The binary installs [`CountingAlloc`] over jemalloc; code linked without it (unit
//! tests) sees 0 and so never evicts.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

static USED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Wraps an allocator and counts live bytes.
pub struct CountingAlloc<A>(pub A);

// SAFETY: every call forwards to the wrapped allocator with the same arguments; the
// counter is bookkeeping only.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        USED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                USED.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                USED.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

/// Bytes currently allocated by the process (0 without the counting allocator).
pub fn used_bytes() -> usize {
    let used = USED.load(Ordering::Relaxed);
    PEAK.fetch_max(used, Ordering::Relaxed);
    used
}

/// The highest `used_bytes()` seen.
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed).max(USED.load(Ordering::Relaxed))
}

/// Resident set size from /proc (0 where unavailable).
pub fn rss_bytes() -> usize {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// `1.50M`-style sizes for INFO's `*_human` fields.
pub fn human(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}
