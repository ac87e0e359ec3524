//! What the feed does with each frame, as a pure core (no actix, no logging): decode and
//! validate it ([`Decoder`]), hold a jump back until confirmed ([`ReferenceGuard`]), remember
//! each symbol's last receive time and mid, and gather the accepted ticks of a turn until the
//! feed passes them on. It also says what to report: each symbol's health, and the counts not
//! yet reported as metrics. BinanceFeed around it owns the sources, logs and sends.

use std::time::Instant;

use rust_decimal::Decimal;

use super::codec::{Decoder, DropReason, Frame};
use super::guard::{ReferenceGuard, Verdict};
use crate::config::ReferenceGuardConfig;
use crate::messages::{SymbolHealth, TickReceived, TickRun};
use crate::types::{BinanceSymbol, FastMap};

/// Runs kept for reuse: at max speed the mock holds ~1 ms of turns (about a hundred) before
/// it reads them.
const KEPT_RUNS: usize = 256;
/// Runs of more ticks than this are not kept.
const KEPT_RUN_CAPACITY: usize = 64;

/// What became of one frame.
#[derive(Debug, Clone)]
pub enum Ingested {
    /// A valid tick, gathered for this turn.
    Accepted,
    /// A valid tick whose jump is held back; `held` of them so far, `known_level` once the
    /// symbol had a level to jump from (its first ticks only agree on one).
    Held {
        symbol: BinanceSymbol,
        mid: Decimal,
        held: u64,
        known_level: bool,
    },
    /// Not a tick: a control answer or the server's shutdown notice.
    Other(Frame),
    /// Refused: `count` frames so far for this reason.
    Dropped { reason: DropReason, count: u64 },
}

/// The feed's frame handling.
#[derive(Debug)]
pub struct Ingest {
    symbols: Vec<BinanceSymbol>,
    decoder: Decoder,
    guard: ReferenceGuard,
    frames: u64,
    /// Each symbol's last valid receive time and the level (bid + ask, twice the mid) passed
    /// on; a held tick keeps the one before. Halved only when the mid is reported.
    last: FastMap<BinanceSymbol, (i64, Decimal)>,
    /// Ticks accepted this turn, passed on at the turn's end.
    accepted: Vec<TickReceived>,
    /// The runs passed on, oldest first: one that its receivers have all dropped takes the
    /// next turn's ticks (no allocation, and no free on the thread that read it last).
    runs: std::collections::VecDeque<TickRun>,
    /// Accepted and dropped counts at the last metrics report.
    reported: (u64, FastMap<DropReason, u64>),
}

impl Ingest {
    /// Frames of `symbols`, guarded by `guard`.
    pub fn new(symbols: Vec<BinanceSymbol>, guard: ReferenceGuardConfig) -> Self {
        Self {
            decoder: Decoder::new(symbols.iter().cloned()),
            guard: ReferenceGuard::new(guard),
            symbols,
            frames: 0,
            last: FastMap::default(),
            accepted: Vec::new(),
            runs: std::collections::VecDeque::new(),
            reported: (0, FastMap::default()),
        }
    }

    /// Decodes, validates and guards one frame received at `recv_ms` / `recv_at` (a turn's
    /// frames share one reading of each clock).
    pub fn frame(&mut self, text: &str, recv_ms: i64, recv_at: Instant) -> Ingested {
        self.frames += 1;
        match self.decoder.decode(text, recv_ms, recv_at) {
            Ok(Frame::Tick(t)) => {
                // The guard compares distances in bps, the same for any multiple of the mid:
                // it is given twice the mid, without the division by two.
                let level = t.bid + t.ask;
                let verdict = self.guard.check(&t.symbol, level, t.recv_ms);
                // A held tick still proves the feed alive; its price reaches nobody (the level
                // before it is kept).
                match self.last.get_mut(&t.symbol) {
                    Some(last) => {
                        let kept = if verdict == Verdict::Hold {
                            last.1
                        } else {
                            level
                        };
                        *last = (t.recv_ms, kept);
                    }
                    None => {
                        self.last.insert(t.symbol.clone(), (t.recv_ms, level));
                    }
                }
                if verdict == Verdict::Hold {
                    return Ingested::Held {
                        known_level: self.guard.has_level(&t.symbol),
                        held: self.guard.held_total(),
                        mid: t.mid(),
                        symbol: t.symbol,
                    };
                }
                // Only a tick's span reads when decoding ended: without a tracer the clock is
                // not read a second time per frame.
                let decoded_at = if crate::trace::installed() {
                    Instant::now()
                } else {
                    t.recv_at
                };
                self.accepted.push(TickReceived {
                    tick: t,
                    decoded_at,
                });
                Ingested::Accepted
            }
            Ok(other) => Ingested::Other(other),
            Err(reason) => Ingested::Dropped {
                reason,
                count: self.decoder.dropped(reason),
            },
        }
    }

    /// The ticks accepted since the last call, `None` if there were none: moved into the one
    /// shared run both receivers read, the turn's buffer kept for the next turn.
    ///
    /// The run is the oldest one passed on if nobody holds it any more (its old ticks are
    /// dropped now), else a new one, and a run still held moves behind the others. At most
    /// [`KEPT_RUNS`] are kept; a run beyond them is freed by whoever holds it last.
    pub fn take_accepted(&mut self) -> Option<TickRun> {
        if self.accepted.is_empty() {
            return None;
        }
        let free = match self.runs.pop_front() {
            Some(mut oldest) => {
                if std::sync::Arc::get_mut(&mut oldest).is_some() {
                    Some(oldest)
                } else {
                    self.runs.push_back(oldest);
                    None
                }
            }
            None => None,
        };
        // A new run's buffer becomes the next turn's (the swap below): as large as this one's.
        let mut run =
            free.unwrap_or_else(|| TickRun::new(Vec::with_capacity(self.accepted.capacity())));
        let Some(ticks) = std::sync::Arc::get_mut(&mut run) else {
            // Not reached: the run was new, or held by nobody but this queue.
            return Some(TickRun::new(std::mem::take(&mut self.accepted)));
        };
        ticks.clear();
        std::mem::swap(ticks, &mut self.accepted);
        // A turn that gathered many frames (a replay catching up) keeps no large run.
        if self.runs.len() < KEPT_RUNS && run.capacity() <= KEPT_RUN_CAPACITY {
            self.runs.push_back(run.clone());
        }
        Some(run)
    }

    /// Forgets the ticks of a turn that failed: after a restart they would be priced late.
    pub fn forget_turn(&mut self) {
        self.accepted.clear();
    }

    /// A new connection or a rewound replay has its own update-id order.
    pub fn reset_sequence(&mut self) {
        self.decoder.reset_sequence();
    }

    /// Frames handled, valid or not.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Valid ticks so far.
    pub fn accepted(&self) -> u64 {
        self.decoder.accepted()
    }

    /// Frames dropped so far, by reason.
    pub fn drop_counts(&self) -> Vec<(DropReason, u64)> {
        self.decoder.drop_counts()
    }

    /// Valid ticks held back so far.
    pub fn held_total(&self) -> u64 {
        self.guard.held_total()
    }

    /// Each symbol's last valid receive time, its mid, and whether its reference is held.
    pub fn health(&self) -> Vec<SymbolHealth> {
        self.symbols
            .iter()
            .map(|s| {
                let last = self.last.get(s);
                SymbolHealth {
                    symbol: s.clone(),
                    last_recv_ms: last.map(|l| l.0),
                    mid: last.map(|l| l.1 / Decimal::TWO),
                    held: self.guard.is_held(s),
                }
            })
            .collect()
    }

    /// The valid ticks and the drops (by reason) since the last call, for the counters.
    pub fn unreported(&mut self) -> (u64, Vec<(DropReason, u64)>) {
        let accepted = self.decoder.accepted();
        let ticks = accepted - self.reported.0;
        self.reported.0 = accepted;
        let mut drops = Vec::new();
        for (reason, n) in self.decoder.drop_counts() {
            let prev = self.reported.1.insert(reason, n).unwrap_or(0);
            if n > prev {
                drops.push((reason, n - prev));
            }
        }
        (ticks, drops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest() -> Ingest {
        let guard = ReferenceGuardConfig {
            jump_limit_bps: Decimal::from(100),
            confirm_ticks: 2,
            confirm_ms: 0,
        };
        Ingest::new(vec![BinanceSymbol("ADAUSDT".into())], guard)
    }

    fn frame(u: u64, bid: &str, ask: &str) -> String {
        format!(r#"{{"u":{u},"s":"ADAUSDT","b":"{bid}","B":"10","a":"{ask}","A":"20"}}"#)
    }

    #[test]
    fn a_turn_gathers_its_ticks_and_a_jump_is_held_with_the_mid_before() {
        let mut f = ingest();
        // The first level is adopted once two ticks agree on it.
        let first = f.frame(&frame(1, "0.5000", "0.5002"), 10, Instant::now());
        assert!(
            matches!(
                first,
                Ingested::Held {
                    held: 1,
                    known_level: false,
                    ..
                }
            ),
            "{first:?}"
        );
        let second = f.frame(&frame(2, "0.5001", "0.5003"), 11, Instant::now());
        assert!(matches!(second, Ingested::Accepted), "{second:?}");
        let turn = f.take_accepted().expect("one tick");
        let ids: Vec<u64> = turn.iter().map(|t| t.tick.update_id).collect();
        assert_eq!(ids, [2]);
        // The turn's buffer stays for the next turn: no allocation per turn but the shared one.
        assert!(f.accepted.is_empty() && f.accepted.capacity() >= 1);
        assert!(f.take_accepted().is_none());
        // 10 % up: held, and the health still shows the mid before it, at the new time.
        let held = f.frame(&frame(3, "0.5500", "0.5502"), 12, Instant::now());
        assert!(
            matches!(
                held,
                Ingested::Held {
                    held: 2,
                    known_level: true,
                    ..
                }
            ),
            "{held:?}"
        );
        assert!(f.take_accepted().is_none());
        let h = f.health();
        assert_eq!(h[0].last_recv_ms, Some(12));
        assert_eq!(h[0].mid, Some("0.5002".parse().expect("mid")));
        assert!(h[0].held);
        assert_eq!(f.frames(), 3);
    }

    /// A run is filled again only once nobody holds it: a receiver still reading one (the
    /// mock reads up to a millisecond behind) never sees it change; one let go is reused.
    #[test]
    fn a_run_is_reused_once_let_go_and_never_while_held() {
        let mut f = ingest();
        f.frame(&frame(1, "0.5000", "0.5002"), 1, Instant::now()); // held: the first level
        let mut turn = |u: u64| {
            let accepted = f.frame(&frame(u, "0.5000", "0.5002"), u as i64, Instant::now());
            assert!(matches!(accepted, Ingested::Accepted), "{accepted:?}");
            (f.take_accepted().expect("a run"), f.runs.len())
        };
        let ids = |r: &TickRun| r.iter().map(|t| t.tick.update_id).collect::<Vec<_>>();
        let (quotes, _) = turn(2);
        let first = std::sync::Arc::as_ptr(&quotes);
        let mock = quotes.clone();
        drop(quotes);
        let (second, _) = turn(3);
        assert_ne!(
            std::sync::Arc::as_ptr(&second),
            first,
            "still held by the mock"
        );
        assert_eq!(ids(&mock), [2]);
        assert_eq!(ids(&second), [3]);
        drop((mock, second));
        let (third, _) = turn(4);
        assert_eq!(std::sync::Arc::as_ptr(&third), first, "let go: reused");
        assert_eq!(ids(&third), [4]);
        drop(third);
        // Held without end, the runs are not all kept, and none of them changes.
        let held: Vec<(u64, TickRun, usize)> = (5..1_000)
            .map(|u| {
                let (run, kept) = turn(u);
                (u, run, kept)
            })
            .collect();
        assert!(held.iter().all(|(_, _, kept)| *kept <= KEPT_RUNS));
        assert!(held.iter().all(|(u, run, _)| ids(run) == [*u]));
    }

    #[test]
    fn drops_are_counted_and_reported_once() {
        let mut f = ingest();
        let bad = f.frame("not json", 1, Instant::now());
        assert!(
            matches!(
                bad,
                Ingested::Dropped {
                    reason: DropReason::Malformed,
                    count: 1
                }
            ),
            "{bad:?}"
        );
        let crossed = f.frame(&frame(1, "0.5002", "0.5000"), 2, Instant::now());
        assert!(
            matches!(
                crossed,
                Ingested::Dropped {
                    reason: DropReason::Crossed,
                    count: 1
                }
            ),
            "{crossed:?}"
        );
        f.frame(&frame(2, "0.5000", "0.5002"), 3, Instant::now());
        let ok = f.frame(&frame(3, "0.5000", "0.5002"), 4, Instant::now());
        assert!(matches!(ok, Ingested::Accepted), "{ok:?}");
        // A failed turn's ticks are forgotten.
        f.forget_turn();
        assert!(f.take_accepted().is_none());
        let (ticks, mut drops) = f.unreported();
        drops.sort_by_key(|(r, _)| r.as_str());
        assert_eq!(ticks, 2);
        assert_eq!(
            drops,
            [(DropReason::Crossed, 1), (DropReason::Malformed, 1)]
        );
        assert_eq!(f.unreported(), (0, Vec::new()));
        let again = f.frame("not json", 5, Instant::now());
        assert!(
            matches!(
                again,
                Ingested::Dropped {
                    reason: DropReason::Malformed,
                    count: 2
                }
            ),
            "{again:?}"
        );
        assert_eq!(f.unreported(), (0, vec![(DropReason::Malformed, 1)]));
    }
}
