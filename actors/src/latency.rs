//! A fixed-memory latency histogram: 100 ns buckets up to 10 ms, then one overflow bucket.
//! Quantiles are read as the upper edge of their bucket.

/// Histogram of durations in nanoseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: Vec<u32>,
    overflow: u64,
    count: u64,
    max_ns: u64,
}

const BUCKET_NS: u64 = 100;
const BUCKETS: usize = 100_000;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            overflow: 0,
            count: 0,
            max_ns: 0,
        }
    }
}

/// Summary of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// Tick → order action written to the venue, for every action whose tick is known: the
/// process-wide histogram the send gate feeds (`bench` reads and resets it).
pub fn tick_to_write() -> &'static std::sync::Mutex<LatencyHistogram> {
    static H: std::sync::OnceLock<std::sync::Mutex<LatencyHistogram>> = std::sync::OnceLock::new();
    H.get_or_init(Default::default)
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn record(&mut self, ns: u64) {
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        match self.buckets.get_mut((ns / BUCKET_NS) as usize) {
            Some(b) => *b = b.saturating_add(1),
            None => self.overflow += 1,
        }
    }

    /// The duration at quantile `q` (0..=1), in ns.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return (i as u64 + 1) * BUCKET_NS;
            }
        }
        self.max_ns
    }

    /// p50 / p99 / p99.9 / max.
    pub fn summary(&self) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1_000.0;
        LatencySummary {
            count: self.count,
            p50_us: us(self.quantile_ns(0.50)),
            p99_us: us(self.quantile_ns(0.99)),
            p999_us: us(self.quantile_ns(0.999)),
            max_us: us(self.max_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = LatencyHistogram::default();
        for i in 1..=1000u64 {
            h.record(i * 1_000); // 1 µs .. 1 ms
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.1).abs() < 0.2, "{s:?}");
        assert!((s.p99_us - 990.1).abs() < 0.2, "{s:?}");
        assert_eq!(s.max_us, 1000.0);
        h.record(50_000_000); // 50 ms lands in overflow
        assert_eq!(h.quantile_ns(1.0), 50_000_000);
    }
}
