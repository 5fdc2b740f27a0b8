//! Histograms of `u64` samples in base-2 logarithmic buckets, with the API openraft
//! 0.10.0-alpha.37 uses for its runtime statistics (`Histogram`, `PercentileStats`,
//! `AsciiChart`).
//!
//! Why Tandem has its own: the crates.io crate of this name builds, the first time
//! any histogram is made, lookup tables for all sixteen bucket widths it supports,
//! about 27 MB written at start-up and kept for the life of the process, of which
//! openraft uses the table of one width. Every Tandem server made one at start, so
//! 27 MB of an idle server's 42 MB resident memory were those tables (Redis idles at
//! under 7 MB). Here a bucket index is computed from the value's bits, so nothing
//! is precomputed: a histogram is its 252 counters.
//!
//! Buckets: values 0–3 have one bucket each; above, each power of two is split into
//! four buckets by the two bits after the leading one (relative error under 25 %),
//! up to `u64::MAX`: 4 + 62 × 4 = 252 buckets. Percentiles report the lower bound of
//! the bucket the sample of that rank falls in.

use std::fmt;
use std::marker::PhantomData;

/// Buckets per histogram.
const BUCKETS: usize = 252;

/// The bucket of `value`.
fn bucket_of(value: u64) -> usize {
    if value < 4 {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros() as usize; // >= 2
    let fraction = ((value >> (exponent - 2)) & 3) as usize;
    4 + (exponent - 2) * 4 + fraction
}

/// The smallest value in bucket `index`.
fn lower_bound(index: usize) -> u64 {
    if index < 4 {
        return index as u64;
    }
    let exponent = (index - 4) / 4 + 2;
    let fraction = ((index - 4) % 4) as u64;
    (4 + fraction) << (exponent - 2)
}

/// Counts of samples per bucket. `T` is accepted for the API's sake (per-period
/// metadata in the original); no metadata is kept.
pub struct Histogram<T = ()> {
    counts: Vec<u64>,
    total: u64,
    _metadata: PhantomData<fn() -> T>,
}

impl<T> Clone for Histogram<T> {
    fn clone(&self) -> Self {
        Histogram { counts: self.counts.clone(), total: self.total, _metadata: PhantomData }
    }
}

impl<T> PartialEq for Histogram<T> {
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total && self.counts == other.counts
    }
}

impl<T> Eq for Histogram<T> {}

impl<T> fmt::Debug for Histogram<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram").field("samples", &self.total).field("percentiles", &self.percentile_stats()).finish()
    }
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Histogram<T> {
    pub fn new() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, _metadata: PhantomData }
    }

    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `value` `count` times.
    pub fn record_n(&mut self, value: u64, count: u64) {
        let slot = &mut self.counts[bucket_of(value)];
        *slot = slot.saturating_add(count);
        self.total = self.total.saturating_add(count);
    }

    /// Samples recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.0–1.0): the lower bound of the bucket holding the
    /// sample of rank ⌈q × samples⌉ (at least the first); 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return lower_bound(index);
            }
        }
        lower_bound(BUCKETS - 1)
    }

    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.total,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.10),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }
}

/// A histogram's sample count and percentiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PercentileStats {
    pub samples: u64,
    pub p0_1: u64,
    pub p1: u64,
    pub p5: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
}

impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[samples: {}, P0.1: {}, P1: {}, P5: {}, P10: {}, P50: {}, P90: {}, P99: {}, P99.9: {}]",
            self.samples, self.p0_1, self.p1, self.p5, self.p10, self.p50, self.p90, self.p99, self.p99_9
        )
    }
}

/// Named histograms shown together, one line of percentiles each.
pub struct AsciiChart<T = ()> {
    series: Vec<(String, Histogram<T>)>,
}

impl<T> Default for AsciiChart<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> AsciiChart<T> {
    pub fn new() -> Self {
        AsciiChart { series: Vec::new() }
    }

    pub fn add(mut self, name: &str, hist: Histogram<T>) -> Self {
        self.series.push((name.to_string(), hist));
        self
    }

    /// The chart as text.
    pub fn detailed(&self) -> &Self {
        self
    }
}

impl<T> fmt::Display for AsciiChart<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, hist) in &self.series {
            writeln!(f, "{name}: {}", hist.percentile_stats())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_the_bucket_whose_bounds_hold_it() {
        let mut values: Vec<u64> = (0..5000).collect();
        for shift in 0..64 {
            let p = 1u64 << shift;
            values.extend([p.saturating_sub(1), p, p.saturating_add(1), p | (p >> 1), p | (p >> 2)]);
        }
        values.push(u64::MAX);
        for v in values {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v}");
            assert!(lower_bound(b) <= v, "{v} below its bucket {b}");
            if b + 1 < BUCKETS {
                assert!(v < lower_bound(b + 1), "{v} past its bucket {b}");
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_a_quarter_of_the_true_value() {
        let mut h = Histogram::<()>::new();
        for v in 1..=1000u64 {
            h.record(v);
        }
        let s = h.percentile_stats();
        assert_eq!(s.samples, 1000);
        for (got, want) in [(s.p50, 500.0), (s.p90, 900.0), (s.p99, 990.0), (s.p1, 10.0)] {
            assert!(got as f64 <= want && got as f64 > want * 0.75, "{got} for {want}");
        }
        h.record_n(7, 3);
        assert_eq!(h.total(), 1003);
        assert_eq!(Histogram::<()>::new().percentile_stats(), PercentileStats::default());
    }
}
