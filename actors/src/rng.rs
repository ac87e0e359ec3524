//! A small seeded PRNG (SplitMix64) for the synthetic feed, the mock exchange and reconnect
//! jitter ([`Backoff`]): the same seed gives the same sequence on every machine, which keeps
//! replays deterministic.

/// SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `parts_per_million / 1e6`.
    pub fn chance_ppm(&mut self, parts_per_million: u64) -> bool {
        self.below(1_000_000) < parts_per_million
    }
}

/// Exponential reconnect backoff: each delay is the current step plus up to a quarter of it in
/// jitter, then the step doubles up to `max_ms`. `reset` (on a successful connect) goes back
/// to `initial_ms`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    step_ms: u64,
    rng: SplitMix64,
}

impl Backoff {
    /// Starts at `initial_ms`, never steps above `max_ms`; `seed` drives the jitter.
    pub fn new(initial_ms: u64, max_ms: u64, seed: u64) -> Self {
        Self {
            initial_ms,
            max_ms,
            step_ms: initial_ms,
            rng: SplitMix64::new(seed),
        }
    }

    /// Back to the first step.
    pub fn reset(&mut self) {
        self.step_ms = self.initial_ms;
    }

    /// The delay before the next attempt; advances the step.
    pub fn next_delay(&mut self) -> std::time::Duration {
        let jitter = self.rng.below(self.step_ms / 4 + 1);
        let delay = std::time::Duration::from_millis(self.step_ms + jitter);
        self.step_ms = self.step_ms.saturating_mul(2).min(self.max_ms);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::new(100, 350, 7);
        let steps: Vec<u64> = (0..5).map(|_| b.next_delay().as_millis() as u64).collect();
        for (got, step) in steps.iter().zip([100u64, 200, 350, 350, 350]) {
            assert!(
                (step..=step + step / 4).contains(got),
                "{got} ms not in [{step}, {}]",
                step + step / 4
            );
        }
        b.reset();
        let first = b.next_delay().as_millis() as u64;
        assert!((100..=125).contains(&first), "after reset: {first}");
    }

    #[test]
    fn same_seed_same_sequence() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(9);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix64::new(9);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut r = SplitMix64::new(1);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
