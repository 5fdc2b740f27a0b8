//! Time for the server: the wall clock (entry stamps, expiry, TIME) and the entry
//! clock of the active, which never stamps a time below one already applied.
//!
//! The state machine reads no clock (DESIGN.md §4): time reaches it only in the
//! entries the active stamps here. Monotonic timers (timeouts, elections) do not go
//! through this module and are unaffected by anything in it.
//!
//! **Test hook.** With `TANDEM_TEST_CLOCK_OFFSET_FILE=<path>` in the environment, the
//! wall clock is the system time plus the signed number of milliseconds written in
//! that file (missing or unparsable: 0), re-read at most every 10 ms. It exists so the
//! fault harness and the tests can step one server's clock backwards or forwards
//! without touching the machine's; a server started with it logs a warning.
//!
//! It does not know about sockets, Raft or the store's data.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::store::{Entry, Op};

/// The environment variable naming the test clock's offset file (see the module doc).
pub const TEST_CLOCK_OFFSET_FILE: &str = "TANDEM_TEST_CLOCK_OFFSET_FILE";

/// How long an offset read from the file is used before the file is read again: a
/// test that rewrites it sees the change within this, and no call pays for a read.
const OFFSET_REREAD: Duration = Duration::from_millis(10);

/// The test clock's offset file and the offset last read from it, with when.
/// Monotonic timers (`Instant`, tokio) are not affected.
struct TestOffset {
    path: PathBuf,
    last: Mutex<Option<(Instant, i64)>>,
}

impl TestOffset {
    fn new(path: PathBuf) -> TestOffset {
        TestOffset { path, last: Mutex::new(None) }
    }

    /// The file's number (missing or unparsable: 0), read again once the last read
    /// is `OFFSET_REREAD` old at `now`.
    fn offset_ms(&self, now: Instant) -> i64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some((read_at, offset)) if now.saturating_duration_since(read_at) < OFFSET_REREAD => offset,
            _ => {
                let offset = std::fs::read_to_string(&self.path).ok().and_then(|text| text.trim().parse::<i64>().ok()).unwrap_or(0);
                *last = Some((now, offset));
                offset
            }
        }
    }
}

static TEST_OFFSET: OnceLock<Option<TestOffset>> = OnceLock::new();

fn test_offset() -> Option<&'static TestOffset> {
    TEST_OFFSET.get_or_init(|| std::env::var_os(TEST_CLOCK_OFFSET_FILE).map(|path| TestOffset::new(PathBuf::from(path)))).as_ref()
}

/// The offset file when the test hook is on (the server logs a warning naming it).
pub fn test_offset_file() -> Option<PathBuf> {
    test_offset().map(|t| t.path.clone())
}

/// The test hook's offset in milliseconds; 0 without the hook.
fn offset_ms() -> i64 {
    test_offset().map_or(0, |t| t.offset_ms(Instant::now()))
}

/// Wall-clock microseconds since the Unix epoch (with the test hook's offset).
pub fn wall_us() -> u64 {
    let system = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    system.saturating_add_signed(offset_ms().saturating_mul(1000))
}

/// Wall-clock milliseconds since the Unix epoch (with the test hook's offset).
pub fn wall_ms() -> u64 {
    system_ms().saturating_add_signed(offset_ms())
}

/// The system clock in milliseconds since the Unix epoch (0 before it), read by
/// `clock_gettime` itself: read twice per request, std's `SystemTime` subtraction and
/// its 128-bit `as_millis` cost about 60 instructions a read beside the call.
fn system_ms() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to write; CLOCK_REALTIME exists
    // on every Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } != 0 {
        return 0;
    }
    let (Ok(secs), Ok(nanos)) = (u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) else { return 0 };
    secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
}

/// The clock and randomness of the active's decisions: entry time stamps and seeds.
///
/// A stamp is never below the last one it gave, nor below the largest entry time the
/// local state machine has applied (`applied_ms`, published by the state machine):
/// a new active whose wall clock is behind its predecessor's, or a server restarted
/// with its clock stepped back, goes on from where the applied entries left time
/// instead of going back. While the wall clock is behind, time stands still rather
/// than running backwards. The state machine applies `max(entry time, last applied)`
/// as well, so even an entry stamped before the active had applied everything
/// cannot take time back (`store::Store::apply`).
pub struct EntryClock {
    last_ms: u64,
    applied_ms: Arc<AtomicU64>,
    rng: Xoshiro256PlusPlus,
}

impl EntryClock {
    pub fn new(applied_ms: Arc<AtomicU64>) -> EntryClock {
        let seed = wall_ms() ^ ((std::process::id() as u64) << 32);
        EntryClock { last_ms: 0, applied_ms, rng: Xoshiro256PlusPlus::seed_from_u64(seed) }
    }

    /// The time for the next entry or read: `max(wall clock, last stamp, last applied)`.
    pub fn stamp(&mut self) -> u64 {
        self.last_ms = self.last_ms.max(wall_ms()).max(self.applied_ms.load(Ordering::Acquire));
        self.last_ms
    }

    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub fn entry(&mut self, ops: Arc<[Op]>) -> Entry {
        Entry { time_ms: self.stamp(), seed: self.random(), ops, origins: None, summary: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_read_directly_agrees_with_std() {
        let std_ms = || SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap();
        let before = std_ms();
        let direct = system_ms();
        let after = std_ms();
        assert!((before..=after).contains(&direct), "{before} <= {direct} <= {after}");
    }

    #[test]
    fn the_test_clock_offset_is_read_from_its_file_and_cached_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = TestOffset::new(path.clone());
        let t0 = Instant::now();
        assert_eq!(clock.offset_ms(t0), 0, "a missing file is no offset");
        std::fs::write(&path, "-1500\n").unwrap();
        assert_eq!(clock.offset_ms(t0 + Duration::from_millis(5)), 0, "read again only after the re-read interval");
        assert_eq!(clock.offset_ms(t0 + OFFSET_REREAD), -1500, "a step backwards");
        std::fs::write(&path, "2500").unwrap();
        assert_eq!(clock.offset_ms(t0 + 2 * OFFSET_REREAD), 2500);
        std::fs::write(&path, "soon").unwrap();
        assert_eq!(clock.offset_ms(t0 + 3 * OFFSET_REREAD), 0, "an unparsable file is no offset");
    }

    #[test]
    fn stamps_never_go_below_the_last_applied_time_or_the_last_stamp() {
        let applied = Arc::new(AtomicU64::new(0));
        let mut clock = EntryClock::new(applied.clone());
        let first = clock.stamp();
        assert!(first >= wall_ms().saturating_sub(1000));
        // Another active stamped entries far ahead of this server's wall clock.
        let ahead = wall_ms() + 3_600_000;
        applied.store(ahead, Ordering::Release);
        assert_eq!(clock.stamp(), ahead);
        assert_eq!(clock.entry(Arc::new([])).time_ms, ahead);
        // A snapshot from before that is installed: the clock still does not go back.
        applied.store(first, Ordering::Release);
        assert_eq!(clock.stamp(), ahead);
    }
}
