//! BinanceFeed is an actor. It owns the reference source (a live Binance bookTicker WebSocket,
//! a replay file, or a seeded synthetic walk), decodes and validates every frame, and sends
//! each valid tick to QuoteEngine (and, in staging, to MockExchange). A tick whose mid jumps
//! beyond the reference guard's limit is held back until the new level is confirmed
//! ([`guard::ReferenceGuard`]). Every `health_interval_ms` it tells RiskGuard when each symbol
//! last had a valid tick (measured on local receive time, so a silent or broken feed turns
//! stale) and whether its reference is held.
//!
//! The decoder (last update ids, drop counters) and the replay position survive a restart of
//! this actor; a live connection is re-opened with backoff and jitter.

pub mod codec;
pub mod guard;
pub mod ingest;
mod live;
pub mod replay;
pub mod source;

use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{error, info, warn};

use crate::config::{LiveConfig, ReferenceGuardConfig, ReplaySpeed, SyntheticConfig};
use crate::messages::{FeedHealth, ReferenceTicks};
use crate::registry::Reg;
use crate::rng::Backoff;
use crate::supervision::ActorHealth;
use crate::types::{BinanceSymbol, now_ms};
use codec::{DropReason, Frame};
use ingest::{Ingest, Ingested};
pub use live::stream_url;
use replay::{Next, ReplayCursor};
use source::Synthetic;

/// Where ticks come from.
#[derive(Debug, Clone)]
pub enum FeedSpec {
    Live(LiveConfig),
    /// A replay file, read line by line as it plays (checked once at start-up).
    Replay {
        path: std::path::PathBuf,
        speed: ReplaySpeed,
        looped: bool,
    },
    /// A seeded walk; with `interval_ms: 0` it runs as fast as the consumers keep up, and
    /// `max_ticks` stops it (until [`PlayMore`] raises the limit).
    Synthetic {
        cfg: SyntheticConfig,
        max_ticks: Option<u64>,
    },
}

/// Raises a synthetic feed's tick limit by this many ticks and resumes it.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct PlayMore(pub u64);

/// Asks for feed figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "FeedStats")]
pub struct GetFeedStats;

/// Feed figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
pub struct FeedStats {
    pub frames: u64,
    pub accepted: u64,
    pub dropped: Vec<(DropReason, u64)>,
    /// A non-looping replay has played every frame.
    pub finished: bool,
    pub connected: bool,
    pub connects: u64,
    /// Valid ticks held back by the reference guard.
    pub held: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
struct ReplayStep;

/// The reference feed.
pub struct BinanceFeed {
    reg: Reg,
    spec: FeedSpec,
    symbols: Vec<BinanceSymbol>,
    ingest: Ingest,
    health_every: Duration,
    replay: Option<ReplayCursor>,
    /// A synthetic feed reached its tick limit.
    finished: bool,
    // synthetic
    walkers: Vec<Synthetic>,
    // live
    connected: bool,
    connects: u64,
    /// Generation of the connection whose frames count; older ones are being replaced.
    live_gen: u64,
    live_handle: Option<SpawnHandle>,
    connecting: bool,
    backoff: Backoff,
    health: ActorHealth,
}

/// How many replay frames are handled per mailbox turn at max speed.
const REPLAY_BATCH: usize = 8;

impl BinanceFeed {
    /// A feed of `symbols` from `spec`.
    pub fn new(
        reg: Reg,
        spec: FeedSpec,
        symbols: Vec<BinanceSymbol>,
        health_interval_ms: u64,
        guard: ReferenceGuardConfig,
    ) -> Self {
        let walkers = match &spec {
            FeedSpec::Synthetic { cfg, .. } => symbols
                .iter()
                .enumerate()
                .map(|(i, s)| Synthetic::new(cfg, s.clone(), i as u64))
                .collect(),
            FeedSpec::Live(_) | FeedSpec::Replay { .. } => Vec::new(),
        };
        let backoff = match &spec {
            FeedSpec::Live(l) => {
                Backoff::new(l.reconnect_initial_ms, l.reconnect_max_ms, now_ms() as u64)
            }
            FeedSpec::Replay { .. } | FeedSpec::Synthetic { .. } => Backoff::new(0, 0, 0),
        };
        let replay = match &spec {
            FeedSpec::Replay {
                path,
                speed,
                looped,
            } => Some(ReplayCursor::new(path.clone(), *speed, *looped)),
            FeedSpec::Live(_) | FeedSpec::Synthetic { .. } => None,
        };
        Self {
            reg,
            ingest: Ingest::new(symbols.clone(), guard),
            symbols,
            spec,
            health_every: Duration::from_millis(health_interval_ms),
            replay,
            finished: false,
            walkers,
            connected: false,
            connects: 0,
            live_gen: 0,
            live_handle: None,
            connecting: false,
            backoff,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        self.connected = false;
        self.live_handle = None;
        self.connecting = false;
        if let Some(r) = &mut self.replay {
            r.restart_pace();
        }
        // Ticks of the turn that failed are not passed on after the restart.
        self.ingest.forget_turn();
    }

    /// Passes on the ticks accepted since the last call: one message per turn of the feed's
    /// loop (one frame live, a batch at max speed). Every path that ingests ends its turn here.
    fn pass_on(&mut self) {
        let Some(ticks) = self.ingest.take_accepted() else {
            return;
        };
        // The mock's copy (on the venue arbiter) waits until this tick's chain is done.
        if self.reg.ticks_to_venue.get().is_some() {
            self.reg
                .ticks_to_venue
                .do_send(ReferenceTicks(ticks.clone()));
        }
        self.reg.ticks_to_quotes.do_send(ReferenceTicks(ticks));
    }

    fn report_health(&mut self) {
        let m = crate::metrics::metrics();
        let (ticks, drops) = self.ingest.unreported();
        m.ticks.add(ticks, &[]);
        for (reason, n) in drops {
            m.dropped.add(
                n,
                &[opentelemetry::KeyValue::new("reason", reason.as_str())],
            );
        }
        self.reg.feed_health.do_send(FeedHealth {
            ts_ms: now_ms(),
            symbols: self.ingest.health(),
        });
    }

    fn start_source(&mut self, ctx: &mut Context<Self>) {
        match self.spec.clone() {
            FeedSpec::Synthetic { cfg, .. } if cfg.interval_ms == 0 => self.synthetic_burst(ctx),
            FeedSpec::Synthetic { .. } => {
                for i in 0..self.walkers.len() {
                    self.synthetic_step(i, ctx);
                }
            }
            FeedSpec::Replay { .. } => ctx.notify(ReplayStep),
            FeedSpec::Live(cfg) => self.connect(cfg, ctx),
        }
    }

    fn synthetic_limit_reached(&mut self) -> bool {
        let FeedSpec::Synthetic {
            max_ticks: Some(max),
            ..
        } = &self.spec
        else {
            return false;
        };
        if self.ingest.frames() >= *max {
            self.finished = true;
            return true;
        }
        false
    }

    /// Max-speed synthetic: one batch per turn, then yield so consumers drain their mailboxes.
    fn synthetic_burst(&mut self, ctx: &mut Context<Self>) {
        let more = self.synthetic_turn();
        self.pass_on();
        if more {
            yield_then(ctx, |act, ctx| act.synthetic_burst(ctx));
        }
    }

    /// One batch of the max-speed walk; false once the limit is reached.
    fn synthetic_turn(&mut self) -> bool {
        for _ in 0..REPLAY_BATCH {
            if self.synthetic_limit_reached() {
                return false;
            }
            for i in 0..self.walkers.len() {
                let (text, _) = self.walkers[i].step();
                ingest_logged(&mut self.ingest, &text, now_ms());
            }
        }
        true
    }

    fn synthetic_step(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.synthetic_limit_reached() {
            return;
        }
        let Some(w) = self.walkers.get_mut(i) else {
            return;
        };
        let (text, delay) = w.step();
        ingest_logged(&mut self.ingest, &text, now_ms());
        self.pass_on();
        ctx.run_later(Duration::from_millis(delay), move |act, ctx| {
            act.synthetic_step(i, ctx)
        });
    }

    fn replay_step(&mut self, ctx: &mut Context<Self>) {
        self.replay_turn(ctx);
        self.pass_on();
    }

    /// Plays the frames that are due (at most one batch at max speed) and schedules the next
    /// turn.
    fn replay_turn(&mut self, ctx: &mut Context<Self>) {
        let Some(cursor) = &mut self.replay else {
            return;
        };
        let (mut handled, was_finished) = (0, cursor.finished());
        // One wall-clock read per turn: its frames are received together.
        let recv_ms = now_ms();
        loop {
            match cursor.next(Instant::now) {
                Next::Frame(_) => {
                    ingest_logged(&mut self.ingest, cursor.text(), recv_ms);
                    handled += 1;
                    if cursor.at_max_speed() && handled >= REPLAY_BATCH {
                        // Yield so the consumers drain their mailboxes before the next batch.
                        yield_then(ctx, |act, ctx| act.replay_step(ctx));
                        return;
                    }
                }
                Next::NotYet(due) => {
                    ctx.run_later(due, |act, ctx| act.replay_step(ctx));
                    return;
                }
                Next::Rewound => self.ingest.reset_sequence(),
                Next::Skipped(e) => warn!(cause = %e, "replay line skipped"),
                Next::Failed(e) => {
                    error!(cause = %e, "replay file cannot be read");
                    return;
                }
                Next::End if was_finished => return,
                Next::End => {
                    info!(
                        frames = self.ingest.frames(),
                        accepted = self.ingest.accepted(),
                        "replay finished"
                    );
                    return;
                }
            }
        }
    }
}

/// Decodes, validates and guards one frame; a valid tick waits for the turn's end. Logs the
/// first and then every power of two of held ticks and of each drop reason.
fn ingest_logged(ingest: &mut Ingest, text: &str, recv_ms: i64) -> Option<Frame> {
    match ingest.frame(text, recv_ms) {
        Ingested::Accepted => None,
        Ingested::Held {
            symbol,
            mid,
            held,
            known_level,
        } => {
            if held.is_power_of_two() && known_level {
                warn!(symbol = %symbol, mid = %mid, held, "reference jump held back until confirmed");
            }
            None
        }
        Ingested::Other(frame) => Some(frame),
        Ingested::Dropped { reason, count } => {
            if count.is_power_of_two() {
                warn!(
                    reason = reason.as_str(),
                    dropped = count,
                    "market message dropped"
                );
            }
            None
        }
    }
}

/// Lets every other task on the arbiter run once, then calls `f`.
fn yield_then(
    ctx: &mut Context<BinanceFeed>,
    f: impl FnOnce(&mut BinanceFeed, &mut Context<BinanceFeed>) + 'static,
) {
    ctx.spawn(
        actix::fut::wrap_future::<_, BinanceFeed>(tokio::task::yield_now())
            .map(move |(), act, ctx| f(act, ctx)),
    );
}

impl Handler<PlayMore> for BinanceFeed {
    type Result = ();
    fn handle(&mut self, msg: PlayMore, ctx: &mut Context<Self>) {
        if let FeedSpec::Synthetic {
            max_ticks: Some(max),
            ..
        } = &mut self.spec
        {
            *max += msg.0;
            let resume = self.finished;
            self.finished = false;
            if resume {
                self.start_source(ctx);
            }
        }
    }
}

impl Actor for BinanceFeed {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        ctx.run_interval(self.health_every, |act, _| act.report_health());
        self.start_source(ctx);
    }
}

crate::supervised_actor!(BinanceFeed, "binance_feed");

impl Handler<ReplayStep> for BinanceFeed {
    type Result = ();
    fn handle(&mut self, _: ReplayStep, ctx: &mut Context<Self>) {
        self.replay_step(ctx);
    }
}

impl Handler<GetFeedStats> for BinanceFeed {
    type Result = FeedStats;
    fn handle(&mut self, _: GetFeedStats, _: &mut Context<Self>) -> FeedStats {
        FeedStats {
            frames: self.ingest.frames(),
            accepted: self.ingest.accepted(),
            dropped: self.ingest.drop_counts(),
            finished: self.finished || self.replay.as_ref().is_some_and(ReplayCursor::finished),
            connected: self.connected,
            connects: self.connects,
            held: self.ingest.held_total(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::halt_gate::HaltGate;
    use crate::registry::Registry;
    use crate::venue_book::VenueBooks;

    /// Ticks accepted in a turn that failed (a panic restarts the actor before the turn passed
    /// them on) are not passed on after the restart: they would be priced late.
    #[test]
    fn a_restart_forgets_the_ticks_of_the_failed_turn() {
        let reg = std::sync::Arc::new(Registry::new(
            HaltGate::open_for_tests([]),
            std::sync::Arc::new(VenueBooks::new([], 10_000)),
        ));
        let guard = ReferenceGuardConfig {
            jump_limit_bps: rust_decimal::Decimal::from(10_000),
            confirm_ticks: 1,
            confirm_ms: 0,
        };
        let symbol = BinanceSymbol("ADAUSDT".into());
        let spec = FeedSpec::Synthetic {
            cfg: SyntheticConfig::default(),
            max_ticks: Some(0),
        };
        let mut feed = BinanceFeed::new(reg, spec, vec![symbol], 1_000, guard);
        let frame = r#"{"u":1,"s":"ADAUSDT","b":"0.4500","B":"10","a":"0.4501","A":"20"}"#;
        ingest_logged(&mut feed.ingest, frame, now_ms());
        let mut ctx = Context::<BinanceFeed>::new();
        actix::Supervised::restarting(&mut feed, &mut ctx);
        assert!(feed.ingest.take_accepted().is_none());
    }
}
