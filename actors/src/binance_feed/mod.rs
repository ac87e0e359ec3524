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
    /// Turns a max-speed source put off because the store's queue was over its bound.
    pub store_waits: u64,
}

/// How long a max-speed source waits before it looks at the store's queue again.
const STORE_WAIT: Duration = Duration::from_millis(1);

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
    /// The max-speed walk's frames of one turn, made before they are received (kept, with
    /// their buffers, from turn to turn).
    made: Vec<String>,
    // live
    connected: bool,
    connects: u64,
    /// Generation of the connection whose frames count; older ones are being replaced.
    live_gen: u64,
    live_handle: Option<SpawnHandle>,
    connecting: bool,
    backoff: Backoff,
    health: ActorHealth,
    /// The mock's copy of the reference not yet handed over (max speed only; see
    /// [`BinanceFeed::follow_batch`]).
    venue_pending: Option<ReferenceTicks>,
    /// At max speed, the mock's pending ticks go over once the oldest is this old.
    venue_batch: Duration,
    /// Frames taken in per turn at max speed (see [`BinanceFeed::max_speed_batch`]).
    max_speed_batch: usize,
    /// The store's queue and its bound, which a max-speed source waits under (see
    /// [`BinanceFeed::waits_for_store`]).
    store_queue: Option<(crate::store::Queue, usize)>,
    store_waits: u64,
}

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
            made: Vec::new(),
            connected: false,
            connects: 0,
            live_gen: 0,
            live_handle: None,
            connecting: false,
            backoff,
            health: ActorHealth::default(),
            venue_pending: None,
            venue_batch: Duration::ZERO,
            max_speed_batch: crate::config::DEFAULT_MAX_SPEED_BATCH as usize,
            store_queue: None,
            store_waits: 0,
        }
    }

    /// At max speed, hands the mock (staging) the reference in runs, each once its oldest tick
    /// is `batch` old, instead of every turn: each hand-over wakes the venue thread. The rest
    /// is handed over whenever the feed waits for a frame or ends, so at real rates every tick
    /// still goes over as it comes. Zero (what a feed has unless told; the service passes
    /// `mock_exchange.follow_batch_us`, 1 ms by default): every turn.
    pub fn follow_batch(mut self, batch: Duration) -> Self {
        self.venue_batch = batch;
        self
    }

    /// A max-speed source (a replay at `speed: max`, a walk without interval) takes in up to
    /// `frames` frames per turn (at least one), then yields so that the pipeline works them
    /// before the next batch: `feed.max_speed_batch`. Live and paced sources take each frame
    /// as it comes.
    pub fn max_speed_batch(mut self, frames: u64) -> Self {
        self.max_speed_batch = usize::try_from(frames).unwrap_or(usize::MAX).max(1);
        self
    }

    /// A max-speed source takes in its next batch only while `queue` holds at most `max`
    /// writes; above that it looks again every millisecond. Every tick's decision is
    /// persisted, and a replay at max speed can price faster than SQLite commits: without a
    /// bound, the writes waiting for the store (and the memory they hold) grow with the
    /// file's length. Live and paced sources never wait: their frames come when they come.
    pub fn waits_for_store(mut self, queue: crate::store::Queue, max: usize) -> Self {
        self.store_queue = Some((queue, max));
        self
    }

    /// Whether the store's queue is over its bound; counts the turn put off.
    fn store_behind(&mut self) -> bool {
        let behind = self
            .store_queue
            .as_ref()
            .is_some_and(|(queue, max)| queue.len() > *max);
        if behind {
            self.store_waits += 1;
            if self.store_waits.is_power_of_two() {
                info!(
                    waits = self.store_waits,
                    "the max-speed feed waits for the store to catch up"
                );
            }
        }
        behind
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
    /// loop (one frame live, a batch at max speed). Every path that ingests ends its turn here;
    /// `next` says whether another turn follows at once (max speed): then the mock's copy may
    /// wait for it.
    fn pass_on(&mut self, next: Turn) {
        let ticks = self.ingest.take_accepted();
        if self.reg.ticks_to_venue.get().is_some() {
            if let Some(t) = &ticks {
                match &mut self.venue_pending {
                    Some(p) => p.push(t.clone()),
                    None => self.venue_pending = Some(ReferenceTicks::new(t.clone())),
                }
            }
            if let Some(p) = self
                .venue_pending
                .take_if(|p| venue_due(p, next, self.venue_batch))
            {
                // Sent when this tick's chain is done (the mock is on the venue arbiter).
                self.reg.ticks_to_venue.do_send(p);
            }
        }
        if let Some(t) = ticks {
            self.reg.ticks_to_quotes.do_send(ReferenceTicks::new(t));
        }
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

    /// Whether the synthetic feed's limit is reached once `pending` more frames are taken in.
    fn synthetic_limit_reached(&mut self, pending: u64) -> bool {
        let FeedSpec::Synthetic {
            max_ticks: Some(max),
            ..
        } = &self.spec
        else {
            return false;
        };
        if self.ingest.frames() + pending >= *max {
            self.finished = true;
            return true;
        }
        false
    }

    /// Max-speed synthetic: one batch per turn, then yield so consumers drain their mailboxes;
    /// a turn is put off while the store is behind.
    fn synthetic_burst(&mut self, ctx: &mut Context<Self>) {
        if self.store_behind() {
            self.pass_on(Turn::Waits);
            ctx.run_later(STORE_WAIT, |act, ctx| act.synthetic_burst(ctx));
            return;
        }
        let next = self.synthetic_turn();
        self.pass_on(next);
        if next != Turn::Waits {
            yield_then(ctx, |act, ctx| act.synthetic_burst(ctx));
        }
    }

    /// One batch of the max-speed walk; the feed waits once the limit is reached. The batch's
    /// frames are made first and then received together (one read of each clock per turn),
    /// as a socket read finds frames that already exist: making them is the walk's stand-in
    /// for the network, not part of a tick's time from receipt.
    fn synthetic_turn(&mut self) -> Turn {
        if self.walkers.is_empty() {
            return Turn::Waits;
        }
        let mut made = 0;
        let mut reached = false;
        while made < self.max_speed_batch {
            if self.synthetic_limit_reached(made as u64) {
                reached = true;
                break;
            }
            for w in &mut self.walkers {
                if made == self.made.len() {
                    self.made.push(String::new());
                }
                w.step_into(&mut self.made[made]);
                made += 1;
            }
        }
        let (recv_ms, recv_at) = (now_ms(), Instant::now());
        for text in &self.made[..made] {
            ingest_logged(&mut self.ingest, text, recv_ms, recv_at);
        }
        if reached {
            Turn::Waits
        } else {
            Turn::MoreAtOnce(recv_at)
        }
    }

    fn synthetic_step(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.synthetic_limit_reached(0) {
            return;
        }
        let Some(w) = self.walkers.get_mut(i) else {
            return;
        };
        let (text, delay) = w.step();
        ingest_logged(&mut self.ingest, &text, now_ms(), Instant::now());
        self.pass_on(Turn::Waits);
        ctx.run_later(Duration::from_millis(delay), move |act, ctx| {
            act.synthetic_step(i, ctx)
        });
    }

    fn replay_step(&mut self, ctx: &mut Context<Self>) {
        let next = self.replay_turn(ctx);
        self.pass_on(next);
    }

    /// Plays the frames that are due (at most one batch at max speed) and schedules the next
    /// turn; says whether that turn follows at once. At max speed a turn is put off while the
    /// store is behind.
    fn replay_turn(&mut self, ctx: &mut Context<Self>) -> Turn {
        if self.replay.as_ref().is_some_and(ReplayCursor::at_max_speed) && self.store_behind() {
            ctx.run_later(STORE_WAIT, |act, ctx| act.replay_step(ctx));
            return Turn::Waits;
        }
        let Some(cursor) = &mut self.replay else {
            return Turn::Waits;
        };
        let (mut handled, was_finished) = (0, cursor.finished());
        // One read of each clock per turn: its frames are received together.
        let (recv_ms, recv_at) = (now_ms(), Instant::now());
        loop {
            match cursor.next(recv_at) {
                Next::Frame(_) => {
                    ingest_logged(&mut self.ingest, cursor.text(), recv_ms, recv_at);
                    handled += 1;
                    if cursor.at_max_speed() && handled >= self.max_speed_batch {
                        // Yield so the consumers drain their mailboxes before the next batch.
                        yield_then(ctx, |act, ctx| act.replay_step(ctx));
                        return Turn::MoreAtOnce(recv_at);
                    }
                }
                Next::NotYet(due) => {
                    ctx.run_later(due, |act, ctx| act.replay_step(ctx));
                    return Turn::Waits;
                }
                Next::Rewound => self.ingest.reset_sequence(),
                Next::Skipped(e) => warn!(cause = %e, "replay line skipped"),
                Next::Failed(e) => {
                    error!(cause = %e, "replay file cannot be read");
                    return Turn::Waits;
                }
                Next::End if was_finished => return Turn::Waits,
                Next::End => {
                    info!(
                        frames = self.ingest.frames(),
                        accepted = self.ingest.accepted(),
                        "replay finished"
                    );
                    return Turn::Waits;
                }
            }
        }
    }
}

/// Whether the feed's next turn follows at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Max speed: the next batch of frames is played after a yield. This turn's frames were
    /// received at this instant.
    MoreAtOnce(Instant),
    /// The feed waits: for a frame (live), its time (paced), or nothing (the end).
    Waits,
}

/// The mock's pending copy goes over now: the feed is about to wait, or its oldest tick was
/// received `batch` or more before this turn (measured to the turn, not to the newest tick: a
/// long stretch of dropped or held frames does not keep the pending ticks back).
fn venue_due(pending: &ReferenceTicks, next: Turn, batch: Duration) -> bool {
    match next {
        Turn::Waits => true,
        Turn::MoreAtOnce(turn_at) => pending
            .iter()
            .next()
            .is_none_or(|oldest| turn_at.saturating_duration_since(oldest.tick.recv_at) >= batch),
    }
}

/// Decodes, validates and guards one frame; a valid tick waits for the turn's end. Logs the
/// first and then every power of two of held ticks and of each drop reason.
fn ingest_logged(ingest: &mut Ingest, text: &str, recv_ms: i64, recv_at: Instant) -> Option<Frame> {
    match ingest.frame(text, recv_ms, recv_at) {
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
            store_waits: self.store_waits,
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
        ingest_logged(&mut feed.ingest, frame, now_ms(), Instant::now());
        let mut ctx = Context::<BinanceFeed>::new();
        actix::Supervised::restarting(&mut feed, &mut ctx);
        assert!(feed.ingest.take_accepted().is_none());
    }

    /// Records the messages of ticks it is sent, as their update ids and receive instants.
    struct Probe(tokio::sync::mpsc::UnboundedSender<Vec<(u64, Instant)>>);
    impl Actor for Probe {
        type Context = Context<Self>;
    }
    impl Handler<ReferenceTicks> for Probe {
        type Result = ();
        fn handle(&mut self, msg: ReferenceTicks, _: &mut Context<Self>) {
            let _ = self.0.send(
                msg.iter()
                    .map(|t| (t.tick.update_id, t.tick.recv_at))
                    .collect(),
            );
        }
    }
    impl Handler<FeedHealth> for Probe {
        type Result = ();
        fn handle(&mut self, _: FeedHealth, _: &mut Context<Self>) {}
    }

    /// Plays `frames` bookTicker frames, `gap_ms` apart as recorded, at `speed`, with the mock
    /// handed runs of up to `batch`: the messages QuoteEngine and the mock got, as update ids.
    /// Eight frames per turn at max speed.
    async fn play(
        tag: &str,
        frames: u64,
        gap_ms: i64,
        speed: ReplaySpeed,
        batch: Duration,
    ) -> (Vec<Vec<(u64, Instant)>>, Vec<Vec<(u64, Instant)>>) {
        let body: String = (1..=frames)
            .map(|u| line(u, "ADAUSDT", 1_000 + gap_ms * u as i64))
            .collect();
        play_file(tag, &body, frames, speed, batch, 8).await
    }

    /// A replay line of a bookTicker frame.
    fn line(u: u64, symbol: &str, ms: i64) -> String {
        format!(
            "{{\"recv_ms\":{ms},\"msg\":{{\"u\":{u},\"s\":\"{symbol}\",\"b\":\"0.4500\",\"B\":\"10\",\"a\":\"0.4501\",\"A\":\"20\"}}}}\n"
        )
    }

    /// Plays `body` until both receivers have `frames` ticks: [`play`] for any file.
    async fn play_file(
        tag: &str,
        body: &str,
        frames: u64,
        speed: ReplaySpeed,
        batch: Duration,
        turn: u64,
    ) -> (Vec<Vec<(u64, Instant)>>, Vec<Vec<(u64, Instant)>>) {
        let mut playing = start_file(tag, body, speed, |feed| {
            feed.follow_batch(batch).max_speed_batch(turn)
        });
        let quotes = playing.received(0, frames).await;
        let venue = playing.received(1, frames).await;
        (quotes, venue)
    }

    /// A replay of `body` playing, with what QuoteEngine and the mock are sent.
    struct Playing {
        feed: Addr<BinanceFeed>,
        /// QuoteEngine's messages, then the mock's.
        rx: [tokio::sync::mpsc::UnboundedReceiver<Vec<(u64, Instant)>>; 2],
        /// The replay file's directory, removed at the end.
        dir: Option<std::path::PathBuf>,
    }

    impl Drop for Playing {
        fn drop(&mut self) {
            if let Some(dir) = &self.dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    impl Playing {
        /// The feed's figures once it has put off `n` turns for the store.
        async fn store_waits(&self, n: u64) -> FeedStats {
            let waited = async {
                loop {
                    let stats = self.feed.send(GetFeedStats).await.expect("stats");
                    if stats.store_waits >= n {
                        return stats;
                    }
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(Duration::from_secs(30), waited)
                .await
                .expect("the feed waits for the store")
        }

        /// The messages of receiver `which` until it has `frames` ticks.
        async fn received(&mut self, which: usize, frames: u64) -> Vec<Vec<(u64, Instant)>> {
            let mut got: Vec<Vec<(u64, Instant)>> = Vec::new();
            while got.iter().map(Vec::len).sum::<usize>() < frames as usize {
                let next = tokio::time::timeout(Duration::from_secs(30), self.rx[which].recv());
                got.push(next.await.ok().flatten().expect("a message of ticks"));
            }
            got
        }
    }

    /// Starts a feed playing `body` at `speed`, made as `build` finishes it.
    fn start_file(
        tag: &str,
        body: &str,
        speed: ReplaySpeed,
        build: impl FnOnce(BinanceFeed) -> BinanceFeed,
    ) -> Playing {
        let dir = std::env::temp_dir().join(format!("mm-feed-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("r.jsonl");
        std::fs::write(&path, body).expect("write");
        let spec = FeedSpec::Replay {
            path,
            speed,
            looped: false,
        };
        start_spec(spec, Some(dir), build)
    }

    /// Starts a feed of `spec`, made as `build` finishes it.
    fn start_spec(
        spec: FeedSpec,
        dir: Option<std::path::PathBuf>,
        build: impl FnOnce(BinanceFeed) -> BinanceFeed,
    ) -> Playing {
        let reg = std::sync::Arc::new(Registry::new(
            HaltGate::open_for_tests([]),
            std::sync::Arc::new(VenueBooks::new([], 10_000)),
        ));
        let (qtx, qrx) = tokio::sync::mpsc::unbounded_channel();
        let (vtx, vrx) = tokio::sync::mpsc::unbounded_channel();
        let quotes = Probe(qtx).start();
        reg.ticks_to_quotes.bind(quotes.clone().recipient());
        reg.feed_health.bind(quotes.recipient());
        reg.ticks_to_venue.bind(Probe(vtx).start().recipient());
        // The first level is adopted on its first tick.
        let guard = ReferenceGuardConfig {
            jump_limit_bps: rust_decimal::Decimal::from(10_000),
            confirm_ticks: 1,
            confirm_ms: 0,
        };
        let symbols = vec![BinanceSymbol("ADAUSDT".into())];
        let feed = build(BinanceFeed::new(reg, spec, symbols, 60_000, guard)).start();
        Playing {
            feed,
            rx: [qrx, vrx],
            dir,
        }
    }

    /// A max-speed replay takes in no frame while the store's queue is over its bound, and
    /// plays every frame, once and in order, when the queue is back under it.
    #[actix_rt::test]
    async fn at_max_speed_the_replay_waits_while_the_store_is_behind() {
        let body: String = (1..=100).map(|u| line(u, "ADAUSDT", 1_000)).collect();
        let queue = crate::store::Queue::default();
        queue.add(5);
        let waits = queue.clone();
        let mut playing = start_file("store-behind", &body, ReplaySpeed::Max, |feed| {
            feed.waits_for_store(waits, 4)
        });
        // Turns are put off, one a millisecond, and nothing has been read meanwhile.
        let stats = playing.store_waits(3).await;
        assert_eq!((stats.frames, stats.accepted), (0, 0), "{stats:?}");
        assert!(playing.rx[0].try_recv().is_err(), "no tick priced");
        // Back at the bound: the replay goes on.
        queue.taken(1);
        let quotes = playing.received(0, 100).await;
        assert!(in_order(&quotes, 100));
        let stats = playing.feed.send(GetFeedStats).await.expect("stats");
        assert_eq!(stats.frames, 100);
    }

    /// The max-speed walk (the bench's flood) waits for the store as a replay does.
    #[actix_rt::test]
    async fn the_max_speed_walk_waits_while_the_store_is_behind() {
        let queue = crate::store::Queue::default();
        queue.add(1);
        let waits = queue.clone();
        let spec = FeedSpec::Synthetic {
            cfg: SyntheticConfig {
                interval_ms: 0,
                ..SyntheticConfig::default()
            },
            max_ticks: Some(40),
        };
        let mut playing = start_spec(spec, None, |feed| feed.waits_for_store(waits, 0));
        let stats = playing.store_waits(3).await;
        assert_eq!(stats.frames, 0, "{stats:?}");
        queue.taken(1);
        let quotes = playing.received(0, 40).await;
        assert_eq!(quotes.concat().len(), 40);
    }

    /// A replay at its recorded pace never waits for the store: its frames are due when
    /// they are due.
    #[actix_rt::test]
    async fn a_paced_replay_does_not_wait_for_the_store() {
        let body: String = (1..=5)
            .map(|u| line(u, "ADAUSDT", 1_000 + u as i64))
            .collect();
        let queue = crate::store::Queue::default();
        queue.add(1_000);
        let waits = queue.clone();
        let mut playing = start_file("store-paced", &body, ReplaySpeed::Recorded, |feed| {
            feed.waits_for_store(waits, 0)
        });
        let quotes = playing.received(0, 5).await;
        assert!(in_order(&quotes, 5));
        let stats = playing.feed.send(GetFeedStats).await.expect("stats");
        assert_eq!(stats.store_waits, 0);
    }

    fn in_order(messages: &[Vec<(u64, Instant)>], frames: u64) -> bool {
        let ids: Vec<u64> = messages.concat().iter().map(|(u, _)| *u).collect();
        ids == (1..=frames).collect::<Vec<_>>()
    }

    /// At max speed, the mock gets the turns' ticks in runs (one message for a long bound),
    /// every tick once and in order, the rest at the end; QuoteEngine still gets every turn.
    #[actix_rt::test]
    async fn at_max_speed_the_mock_is_handed_runs_of_turns_and_every_tick_in_order() {
        let (quotes, venue) = play("runs", 100, 0, ReplaySpeed::Max, Duration::from_secs(60)).await;
        assert_eq!(
            quotes.len(),
            13,
            "a turn of 8 frames per message: {quotes:?}"
        );
        assert!(in_order(&quotes, 100));
        // A turn's frames are received together: one reading of the clock for them all.
        for turn in &quotes {
            assert!(turn.iter().all(|(_, at)| *at == turn[0].1), "{turn:?}");
        }
        assert_eq!(venue.len(), 1, "one run, handed over at the end: {venue:?}");
        assert!(in_order(&venue, 100));
        // A zero bound: every turn, as QuoteEngine.
        let (quotes, venue) = play("turns", 100, 0, ReplaySpeed::Max, Duration::ZERO).await;
        assert_eq!(venue, quotes);
        assert_eq!(venue.len(), 13);
    }

    /// `feed.max_speed_batch` sets how many frames a max-speed turn takes in.
    #[actix_rt::test]
    async fn a_max_speed_turn_takes_in_the_configured_batch() {
        let body: String = (1..=100).map(|u| line(u, "ADAUSDT", 1_000)).collect();
        for (turn, messages) in [(25, 4), (1, 100), (12, 9)] {
            let tag = format!("batch{turn}");
            let (quotes, _) =
                play_file(&tag, &body, 100, ReplaySpeed::Max, Duration::ZERO, turn).await;
            assert_eq!(quotes.len(), messages, "{turn} a turn: {quotes:?}");
            assert!(
                quotes.iter().all(|m| m.len() <= turn as usize),
                "{quotes:?}"
            );
            assert!(in_order(&quotes, 100));
        }
    }

    /// Ticks are not kept back from the mock by a long stretch of frames that are dropped:
    /// the first run goes over once it is a bound old, before the replay's last tick.
    #[actix_rt::test]
    async fn dropped_frames_do_not_keep_the_mock_s_ticks_back() {
        let mut body: String = (1..=10).map(|u| line(u, "ADAUSDT", 1_000)).collect();
        // Frames of a symbol nobody follows: each is dropped and counted.
        for u in 11..200_011 {
            body.push_str(&line(u, "XYZUSDT", 1_000));
        }
        body.push_str(&line(200_011, "ADAUSDT", 1_000));
        let (quotes, venue) = play_file(
            "dropped",
            &body,
            11,
            ReplaySpeed::Max,
            Duration::from_millis(1),
            8,
        )
        .await;
        let ids = |m: &[Vec<(u64, Instant)>]| {
            m.iter()
                .map(|turn| turn.iter().map(|(u, _)| *u).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&quotes).concat(),
            ids(&venue).concat(),
            "every tick, in order"
        );
        assert_eq!(
            ids(&venue),
            [(1..=10).collect::<Vec<u64>>(), vec![200_011]],
            "the first ten went over before the last tick"
        );
    }

    /// At a recorded pace the feed waits between frames: each tick goes to the mock as it
    /// comes, whatever the bound.
    #[actix_rt::test]
    async fn at_a_recorded_pace_every_tick_goes_over_as_it_comes() {
        let (quotes, venue) = play(
            "paced",
            5,
            2,
            ReplaySpeed::Recorded,
            Duration::from_secs(60),
        )
        .await;
        // Turn for turn (a late timer may play two due frames in one turn, for both).
        assert_eq!(venue, quotes);
        assert!(in_order(&venue, 5));
    }

    #[test]
    fn a_run_is_due_when_the_feed_waits_or_its_oldest_tick_is_the_bound_old() {
        let at = Instant::now();
        let tick = |u: u64, later: Duration| {
            let d = |s: &str| s.parse::<rust_decimal::Decimal>().expect("decimal literal");
            crate::messages::TickReceived::for_tests(u, d("0.45"), d("0.4501"), at + later)
        };
        let bound = Duration::from_micros(1_000);
        let turn = |us: u64| Turn::MoreAtOnce(at + Duration::from_micros(us));
        let mut run = ReferenceTicks::new(vec![tick(1, Duration::ZERO)].into());
        assert!(!venue_due(&run, turn(0), bound));
        assert!(venue_due(&run, Turn::Waits, bound));
        run.push(vec![tick(2, Duration::from_micros(999))].into());
        assert!(!venue_due(&run, turn(999), bound), "999 µs old");
        assert!(venue_due(&run, turn(1_000), bound), "1,000 µs old");
        assert!(venue_due(&run, turn(0), Duration::ZERO));
        // No tick since the first (every frame after it dropped or held): still due in time.
        let alone = ReferenceTicks::new(vec![tick(1, Duration::ZERO)].into());
        assert!(
            venue_due(&alone, turn(5_000), bound),
            "kept back by frames that never came"
        );
    }
}
