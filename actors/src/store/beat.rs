//! The heartbeat as another process reads it: what tells the rate limiter whether the
//! watchdog may have been sending.
//!
//! `deltadefi-mm watchdog` cancels at the venue only while the heartbeat in SQLite is older
//! than its `--max-age` (at least [`WATCHDOG_MIN_AGE_MS`]), and records each of its sends in
//! `outbox_sends` before it writes it. The venue counts those sends in the same budget as
//! ours. The bot's budget is seeded from SQLite at start only, so after a stretch in which
//! its heartbeat was stale (the process stopped, its thread hung, its commits stuck behind a
//! lock) it must read the watchdog's sends before each of its own, until no watchdog send can
//! still fall in the window.
//!
//! [`Beat`] follows the commits of the heartbeat. A commit that finds the last committed
//! heartbeat older than [`STALE_MS`] ends a stretch in which the watchdog may have decided to
//! send; its sends can land up to the budget's window (plus the watchdog's time from its
//! look to its send) later, which [`HOLD_MS`] covers.

use std::sync::atomic::{AtomicI64, Ordering};

/// The watchdog's smallest `--max-age`: below it the watchdog refuses to start.
pub const WATCHDOG_MIN_AGE_MS: i64 = 2_000;

/// How often RiskGuard writes the heartbeat.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Older than this, the heartbeat may be about to look dead to a watchdog.
pub const STALE_MS: i64 = 1_500;

/// How long after a stale stretch ends the watchdog's sends are still read before each send:
/// the budget's window (1 s plus its margin), the watchdog's look-to-send time (its record's
/// busy timeout, 200 ms) and slack.
pub const HOLD_MS: i64 = 3_000;

// The watchdog acts only on a heartbeat older than its max-age: the bot must be reading by then.
const _: () = assert!(WATCHDOG_MIN_AGE_MS > STALE_MS);

/// The last committed heartbeat, and until when the watchdog's sends must be read.
#[derive(Debug, Default)]
pub struct Beat {
    last_ts_ms: AtomicI64,
    read_until_ms: AtomicI64,
}

impl Beat {
    /// The heartbeat written at `ts_ms` was committed at `committed_at_ms`.
    pub fn committed(&self, ts_ms: i64, committed_at_ms: i64) {
        let before = self.last_ts_ms.fetch_max(ts_ms, Ordering::SeqCst);
        if committed_at_ms - before > STALE_MS {
            // Until this commit, a reader saw a heartbeat older than STALE_MS.
            self.read_until_ms
                .fetch_max(committed_at_ms + HOLD_MS, Ordering::SeqCst);
        }
    }

    /// True when a watchdog may have sent within the budget's window at `now_ms`: the
    /// heartbeat is stale now, or was not long ago. True until the first heartbeat commits.
    pub fn watchdog_may_send(&self, now_ms: i64) -> bool {
        now_ms - self.last_ts_ms.load(Ordering::SeqCst) > STALE_MS
            || now_ms < self.read_until_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_heartbeat_needs_no_read_until_a_stale_stretch() {
        let b = Beat::default();
        assert!(b.watchdog_may_send(10_000), "before the first heartbeat");
        // The first heartbeat ends a stretch with none: reads for HOLD_MS more.
        b.committed(10_000, 10_002);
        assert!(b.watchdog_may_send(10_500));
        assert!(b.watchdog_may_send(13_001));
        for t in (11_000..=16_000).step_by(1_000) {
            b.committed(t, t + 3);
        }
        assert!(!b.watchdog_may_send(16_500), "beating every second");
        // Stopped: no heartbeat for 2 s.
        assert!(!b.watchdog_may_send(17_500), "1.5 s old is not yet stale");
        assert!(b.watchdog_may_send(17_501), "stale");
        // Resumed: the first heartbeat after the stop commits at 19,000.
        b.committed(18_990, 19_000);
        assert!(
            b.watchdog_may_send(19_100),
            "the watchdog's last sends still count"
        );
        assert!(b.watchdog_may_send(21_999));
        b.committed(20_000, 20_001);
        b.committed(21_000, 21_001);
        assert!(
            !b.watchdog_may_send(22_000),
            "HOLD_MS after the stretch ended"
        );
    }

    #[test]
    fn a_heartbeat_committed_late_counts_as_a_stale_stretch() {
        // Written on time, but stuck behind a lock: the database showed an old heartbeat.
        let b = Beat::default();
        b.committed(1_000, 1_001);
        for t in [2_000, 3_000, 4_000] {
            b.committed(t, 4_500);
        }
        assert!(b.watchdog_may_send(5_000));
        for t in [5_000, 6_000, 7_000] {
            b.committed(t, t + 1);
        }
        assert!(b.watchdog_may_send(7_499));
        assert!(!b.watchdog_may_send(7_500));
    }
}
