//! Stream entry IDs: `<ms>-<seq>`, two unsigned 64-bit numbers ordered as one
//! 128-bit number (milliseconds first), as Redis's `streamID`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// `0-0`: below every entry (an entry's ID is always greater).
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The last possible ID: a stream that reached it takes no more entries.
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The next ID, `None` after the last possible one (Redis's streamIncrID).
    pub fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| StreamId { ms, seq: 0 }),
        }
    }

    /// The previous ID, `None` before `0-0` (Redis's streamDecrID).
    pub fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self.ms.checked_sub(1).map(|ms| StreamId { ms, seq: u64::MAX }),
        }
    }

    /// The ID an auto-generated entry gets after `last` at time `now_ms`: the time
    /// with sequence 0 when it is later than `last`, else `last`'s time with the next
    /// sequence — IDs never go backwards, even when the clock does. `None` when
    /// `last` is the last possible ID.
    pub fn auto_after(last: StreamId, now_ms: u64) -> Option<StreamId> {
        if now_ms > last.ms {
            Some(StreamId { ms: now_ms, seq: 0 })
        } else {
            last.next()
        }
    }

    /// The ID as a reply: `<ms>-<seq>`.
    pub fn to_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_by_ms_then_seq() {
        assert!(StreamId::new(1, u64::MAX) < StreamId::new(2, 0));
        assert!(StreamId::new(5, 1) > StreamId::new(5, 0));
        assert_eq!(StreamId::new(12, 3).to_string(), "12-3");
    }

    #[test]
    fn next_and_prev_carry_and_stop_at_the_edges() {
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::new(2, 0).prev(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.prev(), None);
    }

    #[test]
    fn auto_ids_never_go_backwards() {
        let last = StreamId::new(1000, 7);
        assert_eq!(StreamId::auto_after(last, 2000), Some(StreamId::new(2000, 0)));
        assert_eq!(StreamId::auto_after(last, 1000), Some(StreamId::new(1000, 8)));
        // A clock behind the stream's last ID: last ms, next sequence.
        assert_eq!(StreamId::auto_after(last, 10), Some(StreamId::new(1000, 8)));
        assert_eq!(StreamId::auto_after(StreamId::new(5, u64::MAX), 1), Some(StreamId::new(6, 0)));
        assert_eq!(StreamId::auto_after(StreamId::MAX, 1), None);
    }
}
