//! Lazy freeing, as Redis's UNLINK and FLUSHALL/FLUSHDB ASYNC: a value whose freeing
//! takes long (a container of many elements, a whole keyspace) is handed to a
//! background thread, so that the apply loop — which every request of the stripe
//! waits on — goes on at once. What is freed, and when, changes nothing in the
//! replicated state: the key is gone when the command's reply is sent.
//!
//! The counters are the process's (INFO's `lazyfree_pending_objects` and
//! `lazyfreed_objects`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

use super::value::Value;

/// Values that cost more than this many allocations to free go to the background
/// thread (Redis's `LAZYFREE_THRESHOLD`).
pub const EFFORT_THRESHOLD: usize = 64;

static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

/// Something to drop, and how many objects it counts for.
struct Garbage {
    objects: u64,
    // Held only to be dropped on the background thread.
    _payload: Box<dyn Send>,
}

fn dropper() -> Option<&'static Mutex<Sender<Garbage>>> {
    static DROPPER: OnceLock<Option<Mutex<Sender<Garbage>>>> = OnceLock::new();
    DROPPER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Garbage>();
            let spawned = std::thread::Builder::new().name("tandem-lazyfree".into()).spawn(move || {
                for garbage in rx {
                    let objects = garbage.objects;
                    drop(garbage);
                    PENDING.fetch_sub(objects, Ordering::Relaxed);
                    FREED.fetch_add(objects, Ordering::Relaxed);
                }
            });
            // Without the thread everything is freed in place, as before.
            spawned.ok().map(|_| Mutex::new(tx))
        })
        .as_ref()
}

/// How many allocations freeing `value` takes (Redis's free effort): one per element
/// of a container, one per stream node and per consumer group and pending entry.
pub fn effort(value: &Value) -> usize {
    match value {
        Value::Str(_) => 1,
        Value::List(l) if l.is_packed() => 1,
        Value::List(l) => l.len(),
        Value::Hash(h) if h.is_packed() => 1,
        Value::Hash(h) => h.len(),
        Value::Set(s) if s.is_packed() => 1,
        Value::Set(s) => s.len(),
        Value::ZSet(z) if z.is_packed() => 1,
        Value::ZSet(z) => z.len(),
        Value::Stream(s) => s.entries.node_count() + s.groups.values().map(|g| 1 + g.pending.len()).sum::<usize>(),
    }
}

/// Frees `value` on the background thread if that is worth it, here otherwise.
pub fn free(value: Value) {
    if effort(&value) > EFFORT_THRESHOLD {
        defer(Box::new(value), 1);
    }
}

/// Frees a whole keyspace (FLUSHALL/FLUSHDB ASYNC) on the background thread; it counts
/// for one object a key, as in Redis.
pub fn free_all(payload: Box<dyn Send>, keys: u64) {
    defer(payload, keys);
}

fn defer(payload: Box<dyn Send>, objects: u64) {
    let Some(dropper) = dropper() else { return };
    PENDING.fetch_add(objects, Ordering::Relaxed);
    let sender = dropper.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(mpsc::SendError(garbage)) = sender.send(Garbage { objects, _payload: payload }) {
        // The thread is gone: free it here.
        PENDING.fetch_sub(objects, Ordering::Relaxed);
        drop(garbage);
    }
}

/// Frees something that is not the keyspace's (log entries a purge removed, say) on the
/// background thread, so the task that let go of it does not stall; counted in no
/// statistic.
pub fn free_elsewhere(payload: Box<dyn Send>) {
    defer(payload, 0);
}

/// Objects handed to the background thread and not freed yet.
pub fn pending() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// Objects the background thread has freed (since start or CONFIG RESETSTAT).
pub fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}

/// CONFIG RESETSTAT.
pub fn reset_stats() {
    FREED.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::value::SetValue;

    #[test]
    fn small_values_are_freed_in_place_and_large_ones_in_the_background() {
        let members = |n: usize| (0..n).map(|i| format!("m{i}")).collect::<Vec<_>>();
        let (small, large) = (members(10), members(1000));
        let packing = crate::store::set::SetPacking::DEFAULT;
        let small = SetValue::from_members(small.iter().map(|m| m.as_bytes()), packing);
        let large = SetValue::from_members(large.iter().map(|m| m.as_bytes()), packing);
        assert_eq!(effort(&Value::Set(small.clone())), 1, "a packed set is one allocation");
        assert_eq!(effort(&Value::Set(large.clone())), 1000);
        let before = freed();
        free(Value::Set(small));
        free(Value::Set(large));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Other tests of this process may free concurrently: at least this one is counted.
        while freed() < before + 1 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(freed() > before, "the large set was freed by the background thread");
    }
}
