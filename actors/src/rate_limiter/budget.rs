//! The venue's order-action budget as the venue counts it: the pure core behind
//! [`super::AcquireSend`].
//!
//! The venue counts the requests it receives in a sliding second. What we control is when a
//! request is written; the network adds jitter on the way. So the budget is kept exactly at
//! the write point, with a safety margin: at most `per_second` sends in any window of
//! `1000 + margin_ms` ms, and (with burst 1) consecutive sends at least
//! `(1000 + margin_ms) / per_second` ms apart. A send seen late by up to `margin_ms` still
//! keeps every one-second window at the venue within the budget.
//!
//! The core takes `now_ms` as an argument and is seeded with the send times recorded in
//! SQLite, so a restart (of the actor or of the process) never hands out a fresh budget.

use std::collections::VecDeque;

/// Sends in the window, and when the next may go.
#[derive(Debug, Clone)]
pub struct SendBudget {
    per_window: usize,
    window_ms: i64,
    min_gap_ms: i64,
    /// Send times (ms), oldest first, within the last window.
    sends: VecDeque<i64>,
}

impl SendBudget {
    /// A budget of `per_second` sends; `burst` 1 spaces them evenly; `margin_ms` widens the
    /// counting window to absorb jitter between our write and the venue's count.
    pub fn new(per_second: u32, burst: u32, margin_ms: u64) -> Self {
        let per = per_second.max(1);
        let window_ms = 1_000 + i64::try_from(margin_ms).unwrap_or(0);
        Self {
            per_window: per as usize,
            window_ms,
            min_gap_ms: if burst <= 1 {
                window_ms.div_euclid(i64::from(per))
            } else {
                0
            },
            sends: VecDeque::new(),
        }
    }

    /// How far back sends matter: what to read from SQLite to seed the budget.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Adds sends that happened elsewhere (a previous process, read from SQLite). Sends at the
    /// same millisecond are distinct sends.
    pub fn seed(&mut self, times: impl IntoIterator<Item = i64>) {
        let mut all: Vec<i64> = self.sends.iter().copied().chain(times).collect();
        all.sort_unstable();
        self.sends = all.into();
    }

    fn prune(&mut self, now_ms: i64) {
        // Keep what still constrains a send at `now_ms` or later.
        let horizon = now_ms - self.window_ms.max(self.min_gap_ms);
        while self.sends.front().is_some_and(|t| *t <= horizon) {
            self.sends.pop_front();
        }
    }

    /// The earliest time (≥ `now_ms`) a send is allowed.
    pub fn earliest(&mut self, now_ms: i64) -> i64 {
        self.prune(now_ms);
        let mut at = now_ms;
        if let Some(last) = self.sends.back() {
            at = at.max(last + self.min_gap_ms);
        }
        if self.sends.len() >= self.per_window {
            // The send `per_window` back must have left the window.
            let i = self.sends.len() - self.per_window;
            if let Some(t) = self.sends.get(i) {
                at = at.max(t + self.window_ms);
            }
        }
        at
    }

    /// Records a send at `at_ms` (call only when [`SendBudget::earliest`] allowed it).
    pub fn record(&mut self, at_ms: i64) {
        let i = self.sends.partition_point(|t| *t <= at_ms);
        self.sends.insert(i, at_ms);
    }

    /// Sends within the last 1000 ms.
    pub fn used_last_second(&self, now_ms: i64) -> u32 {
        let n = self
            .sends
            .iter()
            .filter(|t| **t > now_ms - 1_000 && **t <= now_ms)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    //! Invariant checked here and by the property test: whatever the request times, the sends
    //! the budget allows put at most `per_second` into any window of 1000 + margin ms.
    use super::*;
    use proptest::prelude::*;

    /// Sends as many requests as allowed, each at its earliest time.
    fn run(b: &mut SendBudget, requests: &[i64]) -> Vec<i64> {
        let mut out = Vec::new();
        for r in requests {
            let at = b.earliest(*r);
            b.record(at);
            out.push(at);
        }
        out
    }

    fn max_in_window(sends: &[i64], window: i64) -> usize {
        sends
            .iter()
            .map(|t| {
                sends
                    .iter()
                    .filter(|u| **u >= *t && **u < t + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn spacing_with_burst_one() {
        let mut b = SendBudget::new(5, 1, 50);
        let sends = run(&mut b, &[0, 0, 0, 0, 0, 0]);
        assert_eq!(sends, vec![0, 210, 420, 630, 840, 1050]);
    }

    #[test]
    fn a_seeded_budget_continues_where_the_last_process_stopped() {
        let mut b = SendBudget::new(5, 1, 0);
        // The previous process sent five times in its last second, the last at 980.
        b.seed([180, 380, 580, 780, 980]);
        assert_eq!(b.earliest(1_000), 1_180);
        let mut fresh = SendBudget::new(5, 1, 0);
        assert_eq!(fresh.earliest(1_000), 1_000, "unseeded: at once");
    }

    #[test]
    fn bursts_are_capped_by_the_window() {
        let mut b = SendBudget::new(5, 5, 0);
        let sends = run(&mut b, &[0; 10]);
        assert_eq!(&sends[..5], &[0, 0, 0, 0, 0]);
        assert_eq!(sends[5], 1_000);
        assert!(max_in_window(&sends, 1_000) <= 5);
        assert_eq!(b.used_last_second(999), 5);
    }

    proptest! {
        #[test]
        fn prop_never_more_than_the_budget_in_a_window(
            per in 1u32..10,
            burst in 1u32..10,
            margin in 0u64..100,
            seed in proptest::collection::vec(0i64..2_000, 0..12),
            mut reqs in proptest::collection::vec(0i64..5_000, 1..60),
        ) {
            let burst = burst.min(per);
            let mut b = SendBudget::new(per, burst, margin);
            let mut seed = seed;
            seed.sort_unstable();
            // A valid history: the seed itself obeys the budget.
            let seeded = run(&mut SendBudget::new(per, burst, margin), &seed);
            b.seed(seeded.iter().copied());
            reqs.sort_unstable();
            let reqs: Vec<i64> = reqs.into_iter().map(|r| r + seeded.last().copied().unwrap_or(0)).collect();
            let sends = run(&mut b, &reqs);
            let all: Vec<i64> = seeded.iter().chain(sends.iter()).copied().collect();
            let window = 1_000 + margin as i64;
            prop_assert!(max_in_window(&all, window) <= per as usize, "{all:?}");
            for (s, r) in sends.iter().zip(&reqs) {
                prop_assert!(s >= r, "a send before its request");
            }
        }
    }
}
