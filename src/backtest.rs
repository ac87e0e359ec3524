//! `deltadefi-mm backtest`: the service's decisions replayed in virtual time, one thread, no
//! wall clock.
//!
//! The clock is the replay's `recv_ms`. Each frame goes through the same cores as the live
//! service: the feed's decoder and reference guard, QuoteEngine's pricer
//! ([`MarketPricer`]), OrderManager's tracker and outcome plan, RiskGuard's rules
//! ([`rules::check_batch`], trading states, positions, the daily loss limit), OutboxWorker's
//! queue, the rate limiter's [`SendBudget`], the send gate's crossing check against the venue
//! book ([`VenueBooks`]) and MockExchange's [`MatchingCore`] as the venue. What the actors do
//! by message and timer is scheduled here as events at virtual instants: a place takes effect
//! at the venue `build_ms + submit_ms` after it is written, a cancel `cancel_ms` after, each
//! with a jitter drawn from a seeded RNG, and the venue's answer arrives then; the account and
//! depth streams reach the bot `stream_ms` after the venue changed. Events at the same instant
//! run in the order they were scheduled, so a run is a pure function of the file, the config
//! and the seed.
//!
//! Everything is written to SQLite in the service's own schema, so `report` reads a backtest
//! like any run. The replay is streamed line by line: memory does not grow with its length.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mm_actors::binance_feed::codec::{Decoder, Frame};
use mm_actors::binance_feed::guard::{ReferenceGuard, Verdict};
use mm_actors::binance_feed::source::parse_line;
use mm_actors::config::Config;
use mm_actors::gateway::{request_of, result_of};
use mm_actors::intent::Intent;
use mm_actors::mock_exchange::matching::{MatchingCore, MatchingParams};
use mm_actors::order_manager::QuoteReason;
use mm_actors::order_manager::book::OrderTracker;
use mm_actors::order_manager::state::{AfterOutcome, OrderEvent, plan_outcome};
use mm_actors::outbox_worker::queue::{
    DispatchResult, Effect, OutboxQueue, OutboxRow, RetryPolicy, unsendable,
};
use mm_actors::pricing_rules::MarketRules;
use mm_actors::quote_engine::pricing::{MarketPricer, QuoteBook};
use mm_actors::rate_limiter::NotSent;
use mm_actors::rate_limiter::budget::SendBudget;
use mm_actors::risk_guard::rules::{self, HaltReason, Position, TradingState};
use mm_actors::rng::SplitMix64;
use mm_actors::store::rows::{self, SendRecord};
use mm_actors::store::{StoreError, Write};
use mm_actors::types::{BinanceSymbol, ClientOrderId, MarketId, Side, bps};
use mm_actors::venue::{Balance, VenueEvent, VenueFailure, VenueFill, VenueOrder};
use mm_actors::venue_book::VenueBooks;
use rust_decimal::Decimal;
use serde::Serialize;

/// Writes are committed in transactions of this many.
const WRITE_BATCH: usize = 8_192;
/// Finished orders the simulated venue remembers for queries.
const CLOSED_KEPT: usize = 2_048;
/// Requotes after refused places allowed at one instant before the next waits a millisecond.
const SAME_INSTANT_REQUOTES: u32 = 16;
/// After the replay ends, the run halts for shutdown and follows its events this long at most.
const DRAIN_LIMIT_MS: i64 = 600_000;

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("cannot read replay file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("replay file {path} line {line}: {source}")]
    Line {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("replay file {path} holds no frames")]
    Empty { path: PathBuf },
    #[error("output directory {path}: {source}")]
    Out {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("backtest database: {0}")]
    Store(#[from] StoreError),
    #[error("backtest database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("report: {0}")]
    Report(#[from] crate::report::ReportError),
    #[error("{0}")]
    Locked(#[from] crate::instance::LockError),
}

/// What a backtest did: counts only, the same for the same file, config and seed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub seed: u64,
    pub frames: u64,
    pub ticks: u64,
    /// Frames the decoder dropped (malformed, crossed, out of order...).
    pub dropped: u64,
    /// Ticks the reference guard held back (an unconfirmed jump).
    pub held: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub quote_decisions: u64,
    /// Quotes moved behind the venue's opposite touch, and places not sent because they
    /// would still have crossed it when written.
    pub crosses_clamped: u64,
    pub crosses_skipped: u64,
    pub orders: u64,
    /// Order actions written to the venue (retries included).
    pub actions: u64,
    pub fills: u64,
    pub venue_rejects: BTreeMap<u32, u64>,
    pub denials: BTreeMap<String, u64>,
    pub halts: BTreeMap<String, u64>,
    /// Orders still open at the venue after the final cancel-all (must be 0).
    pub open_at_end: usize,
}

/// An event at a virtual instant.
#[derive(Debug)]
enum Ev {
    /// An order action reaches the venue; its answer comes back at the same instant.
    AtVenue(Box<OutboxRow>),
    /// The account stream tells the bot what changed at the venue.
    Stream(VenueEvent),
    /// The depth stream delivers the venue's book of a market.
    Depth(MarketId),
    /// The venue's answer to a query about one of our orders.
    Resolve(ClientOrderId),
    /// The outbox's timer: a retry's backoff or the budget's next slot.
    Wake,
    /// QuoteEngine is asked for a fresh target (a place was not sent).
    Requote(MarketId),
}

#[derive(Debug)]
struct Scheduled {
    at: i64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    /// Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Buffered writes, committed in batches.
struct Writer {
    conn: rusqlite::Connection,
    writes: Vec<Write>,
    fills: Vec<VenueFill>,
}

impl Writer {
    fn push(&mut self, w: Write) -> Result<(), BacktestError> {
        self.writes.push(w);
        self.maybe_flush()
    }

    fn fill(&mut self, f: VenueFill) -> Result<(), BacktestError> {
        self.fills.push(f);
        self.maybe_flush()
    }

    fn maybe_flush(&mut self) -> Result<(), BacktestError> {
        if self.writes.len() + self.fills.len() >= WRITE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BacktestError> {
        let tx = self.conn.transaction()?;
        rows::apply_all(&tx, &self.writes)?;
        self.writes.clear();
        for f in self.fills.drain(..) {
            rows::insert_fill(&tx, &f)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Latency of each step, jittered.
struct Latency {
    rng: SplitMix64,
    cfg: mm_actors::config::BacktestConfig,
}

/// A step of the venue's latency.
#[derive(Debug, Clone, Copy)]
enum Step {
    Build,
    Submit,
    Cancel,
    Stream,
}

impl Latency {
    fn draw(&mut self, step: Step) -> i64 {
        let c = &self.cfg;
        let (base, jitter) = match step {
            Step::Build => (c.build_ms, c.build_jitter_ms),
            Step::Submit => (c.submit_ms, c.submit_jitter_ms),
            Step::Cancel => (c.cancel_ms, c.cancel_jitter_ms),
            Step::Stream => (c.stream_ms, c.stream_jitter_ms),
        };
        let jitter = self.rng.below(jitter.saturating_add(1));
        i64::try_from(base.saturating_add(jitter)).unwrap_or(i64::MAX)
    }
}

/// The others' best bid and ask on the venue.
type Touch = (Option<Decimal>, Option<Decimal>);

struct Market {
    pricer: MarketPricer,
    latest: Option<QuoteBook>,
    position: Position,
    mark: Option<Decimal>,
    state: Option<TradingState>,
    /// A cancel-all is on its way: quoting waits for its answer.
    flattening: bool,
    /// The others' touch last sent on the depth stream, and when.
    depth_sent: Option<(Touch, i64)>,
}

/// One backtest run.
struct Sim {
    cfg: Config,
    now: i64,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    latency: Latency,
    decoder: Decoder,
    guard: ReferenceGuard,
    t0: Instant,
    venue: MatchingCore,
    books: VenueBooks,
    markets: BTreeMap<MarketId, Market>,
    tracker: OrderTracker,
    queue: OutboxQueue,
    budget: SendBudget,
    next_outbox_id: i64,
    balances: Vec<Balance>,
    global_halts: BTreeSet<HaltReason>,
    held: BTreeSet<BinanceSymbol>,
    last_tick: HashMap<BinanceSymbol, i64>,
    fill_sums: HashMap<ClientOrderId, Decimal>,
    wake_at: Option<i64>,
    /// Requotes after a place not sent, at one instant: (instant, count).
    requotes_at: (i64, u32),
    writer: Writer,
    summary: Summary,
}

/// The markets' precision and minimums, as the in-process mock would give them when unset.
pub fn adopt_mock_rules(cfg: &mut Config) {
    for m in &mut cfg.markets {
        m.adopt(
            mm_actors::config::DEFAULT_PRICE_DECIMALS,
            mm_actors::config::DEFAULT_SIZE_DECIMALS,
            "the simulated venue",
        );
    }
}

/// Runs a backtest of `replay` under `cfg` into `out` (created; `backtest.db` replaced) and
/// returns what it did.
///
/// # Errors
/// [`BacktestError`] naming the file, line or database at fault.
pub fn run(mut cfg: Config, replay: &Path, out: &Path) -> Result<Summary, BacktestError> {
    adopt_mock_rules(&mut cfg);
    std::fs::create_dir_all(out).map_err(|source| BacktestError::Out {
        path: out.into(),
        source,
    })?;
    let db = out.join("backtest.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p).map_err(|source| BacktestError::Out { path: p, source })?;
        }
    }
    let mut conn = mm_actors::store::open_connection(&db)?;
    mm_actors::store::schema::migrate(&mut conn)?;
    let file = std::fs::File::open(replay).map_err(|source| BacktestError::Read {
        path: replay.into(),
        source,
    })?;
    let mut sim = Sim::new(cfg, conn);
    let mut first = true;
    for (i, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
        let line = line.map_err(|source| BacktestError::Read {
            path: replay.into(),
            source,
        })?;
        let Some((recv_ms, text)) = parse_line(&line).map_err(|source| BacktestError::Line {
            path: replay.into(),
            line: i + 1,
            source,
        })?
        else {
            continue;
        };
        if first {
            sim.start(recv_ms)?;
            first = false;
        }
        // A clock that steps back (a recording's clock adjusted) does not move time back.
        let at = recv_ms.max(sim.now);
        sim.run_until(at)?;
        sim.on_frame(&text, at)?;
    }
    if first {
        return Err(BacktestError::Empty {
            path: replay.into(),
        });
    }
    sim.finish()?;
    let Sim {
        mut writer,
        summary,
        ..
    } = sim;
    writer.flush()?;
    // One file, no WAL beside it: the run is over.
    writer
        .conn
        .pragma_update_and_check(None, "journal_mode", "DELETE", |_| Ok(()))?;
    Ok(summary)
}

impl Sim {
    fn new(cfg: Config, conn: rusqlite::Connection) -> Self {
        let seed = cfg.backtest.seed;
        let budget_per_second = if cfg.mock_exchange.actions_per_second == 0 {
            cfg.rate_limit.actions_per_second
        } else {
            cfg.mock_exchange.actions_per_second
        };
        let mut params = MatchingParams::from_config(&cfg.mock_exchange, budget_per_second);
        params.seed = seed ^ cfg.mock_exchange.seed;
        // The run asks about an order within seconds of its end: memory stays flat.
        params.closed_kept = CLOSED_KEPT;
        let rules: Vec<MarketRules> = cfg.markets.iter().map(MarketRules::from).collect();
        let symbols: Vec<BinanceSymbol> = cfg.markets.iter().map(|m| m.reference.clone()).collect();
        let markets = cfg
            .markets
            .iter()
            .map(|m| {
                (
                    m.market.clone(),
                    Market {
                        pricer: MarketPricer::new(m.clone()),
                        latest: None,
                        position: Position::default(),
                        mark: None,
                        state: None,
                        flattening: false,
                        depth_sent: None,
                    },
                )
            })
            .collect();
        Self {
            now: 0,
            heap: BinaryHeap::new(),
            seq: 0,
            latency: Latency {
                rng: SplitMix64::new(seed),
                cfg: cfg.backtest.clone(),
            },
            decoder: Decoder::new(symbols),
            guard: ReferenceGuard::new(cfg.feed.reference_guard.clone()),
            t0: Instant::now(),
            venue: MatchingCore::new(params, rules),
            books: VenueBooks::new(
                cfg.markets.iter().map(|m| m.market.clone()),
                cfg.venue_book.max_age_ms,
            ),
            markets,
            tracker: OrderTracker::new(&cfg.run.client_id_prefix, &format!("bt{seed}")),
            queue: OutboxQueue::new(RetryPolicy {
                max_attempts: cfg.outbox.max_attempts,
                backoff_initial_ms: cfg.outbox.backoff_initial_ms,
                backoff_max_ms: cfg.outbox.backoff_max_ms,
            }),
            budget: SendBudget::new(
                cfg.rate_limit.actions_per_second,
                cfg.rate_limit.burst,
                cfg.rate_limit.venue_margin_ms,
            ),
            next_outbox_id: 1,
            balances: Vec::new(),
            global_halts: BTreeSet::new(),
            held: BTreeSet::new(),
            last_tick: HashMap::new(),
            fill_sums: HashMap::new(),
            wake_at: None,
            requotes_at: (i64::MIN, 0),
            writer: Writer {
                conn,
                writes: Vec::new(),
                fills: Vec::new(),
            },
            summary: Summary {
                seed,
                ..Summary::default()
            },
            cfg,
        }
    }

    fn schedule(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn stream(&mut self, events: Vec<VenueEvent>) {
        let at = self.now.saturating_add(self.latency.draw(Step::Stream));
        for e in events {
            self.schedule(at, Ev::Stream(e));
        }
    }

    /// The account as the bot's resync would read it at start.
    fn start(&mut self, t: i64) -> Result<(), BacktestError> {
        self.now = t;
        self.summary.first_ms = t;
        self.balances = self.venue.balances();
        for b in self.balances.clone() {
            self.writer.push(Write::Balance {
                balance: b,
                ts_ms: t,
            })?;
        }
        Ok(())
    }

    /// Runs every event due at or before `t`, then sets the clock to `t`.
    fn run_until(&mut self, t: i64) -> Result<(), BacktestError> {
        while self.heap.peek().is_some_and(|s| s.at <= t) {
            let Some(s) = self.heap.pop() else { break };
            self.check_stale(s.at)?;
            self.now = self.now.max(s.at);
            self.handle(s.ev)?;
        }
        self.check_stale(t)?;
        self.now = self.now.max(t);
        Ok(())
    }

    /// A reference silent for `feed.stale_after_ms` halts its markets at that instant.
    fn check_stale(&mut self, t: i64) -> Result<(), BacktestError> {
        let stale_ms = i64::try_from(self.cfg.feed.stale_after_ms).unwrap_or(i64::MAX);
        let deadline = self
            .last_tick
            .values()
            .map(|last| last.saturating_add(stale_ms))
            .filter(|d| *d < t && *d >= self.now)
            .min();
        if let Some(d) = deadline {
            self.now = d.saturating_add(1);
            self.evaluate()?;
        }
        Ok(())
    }

    fn handle(&mut self, ev: Ev) -> Result<(), BacktestError> {
        match ev {
            Ev::AtVenue(row) => self.at_venue(*row),
            Ev::Stream(e) => self.on_stream(e),
            Ev::Depth(m) => {
                let depth = self.venue.depth(&m);
                self.books.set_depth(&m, depth, self.now);
                Ok(())
            }
            Ev::Resolve(id) => {
                let venue_id = self.tracker.get(&id).and_then(|o| o.venue_order_id.clone());
                match self.venue.query(venue_id.as_ref(), &id) {
                    Some(vo) => self.on_venue_order(&id, &vo),
                    None => Ok(()),
                }
            }
            Ev::Requote(m) => self.reprice(&m, QuoteReason::NotSent, true),
            Ev::Wake => {
                if self.wake_at.is_some_and(|w| w <= self.now) {
                    self.wake_at = None;
                }
                self.pump()
            }
        }
    }

    fn on_frame(&mut self, text: &str, t: i64) -> Result<(), BacktestError> {
        self.summary.frames += 1;
        self.summary.last_ms = t;
        let tick = match self.decoder.decode(text, t, self.t0) {
            Ok(Frame::Tick(tick)) => tick,
            Ok(_) => return Ok(()),
            Err(_) => {
                self.summary.dropped += 1;
                return Ok(());
            }
        };
        self.summary.ticks += 1;
        self.last_tick.insert(tick.symbol.clone(), t);
        let mid = (tick.bid + tick.ask) / Decimal::TWO;
        let pass = self.guard.check(&tick.symbol, mid, t) == Verdict::Pass;
        if pass {
            self.held.remove(&tick.symbol);
        } else {
            self.summary.held += 1;
            self.held.insert(tick.symbol.clone());
        }
        let ids: Vec<MarketId> = self
            .markets
            .iter()
            .filter(|(_, m)| m.pricer.cfg.reference == tick.symbol)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            // The venue's market follows the reference whatever our guard thinks of it.
            let events = self.venue.on_reference(id, tick.bid, tick.ask, t);
            if !events.is_empty() {
                self.stream(events);
            }
            self.maybe_send_depth(id);
            if pass && let Some(m) = self.markets.get_mut(id) {
                m.pricer.reference = Some((tick.bid, tick.ask));
                m.pricer.ticks += 1;
                m.mark = Some(mid * (Decimal::ONE + bps(m.pricer.cfg.anchor_bps)));
            }
        }
        self.evaluate()?;
        if pass {
            for id in &ids {
                self.reprice(id, QuoteReason::PriceMoved { bps: Decimal::ZERO }, false)?;
            }
        }
        Ok(())
    }

    /// Sends the venue's book on the depth stream when the others' touch moved (or at least
    /// every `depth_interval_ms`), as the venue publishes on change.
    fn maybe_send_depth(&mut self, id: &MarketId) {
        let touch = self
            .venue
            .others(id)
            .map(|b| (b.best(Side::Buy), b.best(Side::Sell)));
        let Some(touch) = touch else { return };
        let interval = i64::try_from(self.cfg.mock_exchange.depth_interval_ms).unwrap_or(1_000);
        let now = self.now;
        let Some(m) = self.markets.get_mut(id) else {
            return;
        };
        let due = m
            .depth_sent
            .is_none_or(|(last, at)| last != touch || now - at >= interval);
        if due {
            m.depth_sent = Some((touch, now));
            let at = now.saturating_add(self.latency.draw(Step::Stream));
            self.schedule(at, Ev::Depth(id.clone()));
        }
    }

    fn halts_of(&self, id: &MarketId) -> BTreeSet<HaltReason> {
        let mut h = self.global_halts.clone();
        let Some(m) = self.markets.get(id) else {
            return h;
        };
        let stale_ms = i64::try_from(self.cfg.feed.stale_after_ms).unwrap_or(i64::MAX);
        let symbol = &m.pricer.cfg.reference;
        let fresh = self
            .last_tick
            .get(symbol)
            .is_some_and(|t| self.now - t <= stale_ms);
        if !fresh {
            h.insert(HaltReason::StaleFeed);
        }
        if self.held.contains(symbol) {
            h.insert(HaltReason::ReferenceUnconfirmed);
        }
        h
    }

    /// RiskGuard's evaluation: the daily loss limit, then each market's trading state; a
    /// change re-prices the market (and a halt cancels everything it has).
    fn evaluate(&mut self) -> Result<(), BacktestError> {
        let (daily, overflow) = rules::daily_total(
            self.markets.values_mut().map(|m| (&mut m.position, m.mark)),
            self.now,
        );
        if overflow.is_some() {
            self.global_halts.insert(HaltReason::Accounting);
        }
        if daily <= -self.cfg.risk.daily_loss_limit {
            self.global_halts.insert(HaltReason::DailyLoss);
        }
        let ids: Vec<MarketId> = self.markets.keys().cloned().collect();
        for id in ids {
            let halts = self.halts_of(&id);
            let Some(m) = self.markets.get_mut(&id) else {
                continue;
            };
            let position = m.position.qty;
            let state = rules::trading_state(&halts, position, &self.cfg.risk);
            let prev = m.state.replace(state);
            let sides = rules::sides_allowed(state, position);
            if prev == Some(state) && m.pricer.sides == sides {
                continue;
            }
            m.pricer.sides = sides;
            m.pricer.inventory = position;
            if prev != Some(state) {
                let reason = halts
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                if state == TradingState::Halted {
                    for h in &halts {
                        *self
                            .summary
                            .halts
                            .entry(h.as_str().to_string())
                            .or_default() += 1;
                    }
                }
                self.writer.push(Write::RiskEvent {
                    ts_ms: self.now,
                    market: Some(id.clone()),
                    from: prev.map_or("HALTED", TradingState::as_str).to_string(),
                    to: state.as_str().to_string(),
                    reason,
                })?;
                if state == TradingState::Halted {
                    self.flatten(&id)?;
                }
            }
            self.reprice(&id, QuoteReason::Risk, true)?;
        }
        Ok(())
    }

    /// A halted market: places not yet written are dropped, and one cancel-all takes what
    /// rests at the venue.
    fn flatten(&mut self, id: &MarketId) -> Result<(), BacktestError> {
        let live = self.tracker.orders().any(|o| &o.market == id);
        let flattening = self.markets.get(id).is_some_and(|m| m.flattening);
        if live && !flattening {
            if let Some(m) = self.markets.get_mut(id) {
                m.flattening = true;
            }
            self.commit(vec![Intent::CancelAll { market: id.clone() }])?;
        }
        self.pump()
    }

    fn halted(&self, id: &MarketId) -> bool {
        self.markets.get(id).is_none_or(|m| {
            m.state != Some(TradingState::Active) && m.state != Some(TradingState::Reducing)
        })
    }

    fn reprice(
        &mut self,
        id: &MarketId,
        reason: QuoteReason,
        force: bool,
    ) -> Result<(), BacktestError> {
        let max_position = self.cfg.risk.max_position;
        let touches = self
            .books
            .others_touch(id, self.now)
            .unwrap_or((None, None));
        let Some(m) = self.markets.get_mut(id) else {
            return Ok(());
        };
        let Some(priced) = m.pricer.reprice(max_position, touches, reason, force) else {
            return Ok(());
        };
        self.summary.quote_decisions += 1;
        self.summary.crosses_clamped += u64::from(priced.moved);
        let record = m.pricer.record(&priced, self.now, touches);
        m.latest = Some(priced.book);
        self.writer.push(Write::Quote(record))?;
        self.work_market(id)
    }

    /// OrderManager: the diff of a market's latest target, decided by RiskGuard, committed.
    fn work_market(&mut self, id: &MarketId) -> Result<(), BacktestError> {
        if self.halted(id) {
            return Ok(());
        }
        let Some(m) = self.markets.get(id) else {
            return Ok(());
        };
        if m.flattening {
            return Ok(());
        }
        let Some(book) = &m.latest else {
            return Ok(());
        };
        let tolerance = m.pricer.cfg.requote_tolerance_bps;
        let mid = (book.ref_bid + book.ref_ask) / Decimal::TWO;
        let desired = book.orders.clone();
        let position = m.position.qty;
        let intents = self.tracker.diff(id, &desired, tolerance);
        if intents.is_empty() {
            return Ok(());
        }
        let halts = self.halts_of(id);
        let verdicts = rules::check_batch(
            &intents,
            rules::Batch {
                cfg: &self.cfg.risk,
                halts: &halts,
                position,
                exposure: self.tracker.exposure(id),
                funds: self.tracker.funds_in_use(),
                reference_mid: Some(mid),
                balances: self
                    .cfg
                    .risk
                    .check_capital
                    .then_some(self.balances.as_slice()),
            },
        );
        for (_, reason, count) in rules::denials_by_reason(&verdicts).iter() {
            *self.summary.denials.entry(reason.to_string()).or_default() += count;
            self.writer.push(Write::Denials {
                ts_ms: self.now,
                market: id.clone(),
                reason,
                count,
            })?;
        }
        let approved: Vec<Intent> = intents
            .into_iter()
            .zip(verdicts)
            .filter_map(|(i, v)| v.ok().map(|()| i))
            .collect();
        self.commit(approved)?;
        self.pump()
    }

    /// Approved intents: order transitions and outbox rows, then the queue.
    fn commit(&mut self, intents: Vec<Intent>) -> Result<(), BacktestError> {
        let now = self.now;
        let mut markets = BTreeSet::new();
        for intent in intents {
            markets.insert(intent.market().clone());
            if matches!(intent, Intent::Place { .. }) {
                self.summary.orders += 1;
            }
            for transition in self.tracker.apply_intent(&intent, now, None) {
                self.writer.push(Write::Order {
                    transition,
                    ts_ms: now,
                })?;
            }
            let row = OutboxRow::new(self.next_outbox_id, intent, now);
            self.next_outbox_id += 1;
            self.writer.push(Write::Outbox(row.clone()))?;
            let effects = self.queue.enqueue(row, now);
            self.effects(effects)?;
        }
        for m in markets {
            self.books.set_own(&m, self.tracker.own_orders(&m));
        }
        Ok(())
    }

    fn effects(&mut self, effects: Vec<Effect>) -> Result<(), BacktestError> {
        for e in effects {
            match e {
                Effect::Row(r) => self.writer.push(Write::Outbox(r))?,
                Effect::NeverSent(id) => {
                    self.event(
                        &id,
                        OrderEvent::Cancelled,
                        Some("superseded before it was sent".into()),
                    )?;
                }
                Effect::Outcome { row, result } => self.outcome(&row, &result)?,
            }
        }
        Ok(())
    }

    /// Applies an event to an order and persists it; true when the order ended.
    fn event(
        &mut self,
        id: &ClientOrderId,
        ev: OrderEvent,
        detail: Option<String>,
    ) -> Result<bool, BacktestError> {
        let Ok(Some(t)) = self.tracker.apply(id, &ev, detail) else {
            return Ok(false);
        };
        let terminal = t.order.state.is_terminal();
        if terminal {
            self.fill_sums.remove(id);
        }
        let market = t.order.market.clone();
        self.writer.push(Write::Order {
            transition: t,
            ts_ms: self.now,
        })?;
        self.books
            .set_own(&market, self.tracker.own_orders(&market));
        Ok(terminal)
    }

    fn outcome(&mut self, row: &OutboxRow, result: &DispatchResult) -> Result<(), BacktestError> {
        let market = row.intent.market().clone();
        let plan = plan_outcome(&row.intent, result);
        if let Some((id, v)) = plan.venue_id {
            self.tracker.set_venue_id(&id, v);
        }
        if let Some((id, ev, detail)) = plan.event {
            self.event(&id, ev, detail)?;
        }
        match plan.then {
            AfterOutcome::Nothing => Ok(()),
            AfterOutcome::Rework => self.work_market(&market),
            AfterOutcome::Requote => {
                // As the message to QuoteEngine is: after what is already queued. A target that
                // is refused again at the same instant (our own order in the way) comes back
                // a millisecond later rather than spinning in place.
                let at = if self.requotes_at.0 == self.now {
                    self.requotes_at.1 += 1;
                    if self.requotes_at.1 > SAME_INSTANT_REQUOTES {
                        self.now.saturating_add(1)
                    } else {
                        self.now
                    }
                } else {
                    self.requotes_at = (self.now, 1);
                    self.now
                };
                self.schedule(at, Ev::Requote(market));
                Ok(())
            }
            AfterOutcome::Resolve(id) | AfterOutcome::CancelAnswered { id, .. } => {
                let at = self.now.saturating_add(self.latency.draw(Step::Cancel));
                self.schedule(at, Ev::Resolve(id));
                Ok(())
            }
            AfterOutcome::CancelAllAnswered { .. } => {
                if let Some(m) = self.markets.get_mut(&market) {
                    m.flattening = false;
                }
                self.work_market(&market)
            }
        }
    }

    /// OutboxWorker, the rate limiter and the send gate: write what may go now.
    fn pump(&mut self) -> Result<(), BacktestError> {
        let now = self.now;
        let max_age = i64::try_from(self.cfg.outbox.place_max_age_ms).unwrap_or(i64::MAX);
        let halted: BTreeSet<MarketId> = self
            .markets
            .keys()
            .filter(|id| self.halted(id))
            .cloned()
            .collect();
        let effects = self.queue.drop_unsent_places(
            |r| unsendable(r, !halted.contains(r.intent.market()), now, max_age),
            now,
        );
        self.effects(effects)?;
        let cap = self.cfg.outbox.max_in_flight as usize;
        while self.queue.in_flight() < cap {
            let Some(id) = self.queue.next_ready(now) else {
                break;
            };
            let at = self.budget.earliest(now);
            if at > now {
                self.wake(at);
                break;
            }
            let crossing = self.queue.get(id).and_then(|r| match &r.intent {
                Intent::Place {
                    market,
                    side,
                    price,
                    ..
                } => self
                    .books
                    .would_cross(market, *side, *price, now)
                    .map(|touch| (market.clone(), touch)),
                _ => None,
            });
            if let Some((market, touch)) = crossing {
                self.summary.crosses_skipped += 1;
                let reason = NotSent::WouldCross {
                    market: market.to_string(),
                    touch,
                }
                .to_string();
                let effects = self
                    .queue
                    .on_result(id, DispatchResult::NotSent { reason }, now);
                self.effects(effects)?;
                continue;
            }
            self.budget.record(now);
            let Some(row) = self.queue.mark_sent(id, now) else {
                continue;
            };
            self.summary.actions += 1;
            self.writer.push(Write::Outbox(row.clone()))?;
            self.writer.push(Write::VenueSend(SendRecord {
                sent_at_ms: now,
                kind: row.intent.kind(),
                market: row.intent.market().clone(),
                outbox_id: Some(row.id),
                attempt: row.attempts,
                source: "outbox",
                venue_order: None,
                post_only: None,
                tick_recv_at: None,
            }))?;
            let lat = match row.intent {
                Intent::Place { .. } => self
                    .latency
                    .draw(Step::Build)
                    .saturating_add(self.latency.draw(Step::Submit)),
                _ => self.latency.draw(Step::Cancel),
            };
            self.schedule(now.saturating_add(lat), Ev::AtVenue(Box::new(row)));
        }
        if let Some(w) = self.queue.next_wakeup_ms().filter(|w| *w > now) {
            self.wake(w);
        }
        Ok(())
    }

    fn wake(&mut self, at: i64) {
        if self.wake_at.is_none_or(|w| at < w || w < self.now) {
            self.wake_at = Some(at);
            self.schedule(at, Ev::Wake);
        }
    }

    /// MockExchange: the action takes effect and is answered, as the gateway classifies it.
    fn at_venue(&mut self, row: OutboxRow) -> Result<(), BacktestError> {
        let now = self.now;
        let answer = match self.venue.handle(request_of(&row, None), now) {
            Ok((reply, events)) => {
                self.stream(events);
                Ok(reply)
            }
            Err(e) => {
                *self.summary.venue_rejects.entry(e.code).or_default() += 1;
                Err(VenueFailure::Rejected(e))
            }
        };
        let result = result_of(answer, row.intent.kind(), now);
        self.maybe_send_depth(row.intent.market());
        let effects = self.queue.on_result(row.id, result, now);
        self.effects(effects)?;
        self.pump()
    }

    fn on_stream(&mut self, e: VenueEvent) -> Result<(), BacktestError> {
        match e {
            VenueEvent::Order(vo) => {
                let id = vo
                    .client_order_id
                    .clone()
                    .filter(|c| self.tracker.get(c).is_some())
                    .or_else(|| self.tracker.by_venue(&vo.venue_order_id).cloned());
                match id {
                    Some(id) => self.on_venue_order(&id, &vo),
                    None => Ok(()),
                }
            }
            VenueEvent::Fill(f) => self.on_fill(f),
            VenueEvent::Balances(b) => {
                for balance in &b {
                    self.writer.push(Write::Balance {
                        balance: balance.clone(),
                        ts_ms: self.now,
                    })?;
                }
                self.balances = b;
                Ok(())
            }
        }
    }

    fn on_venue_order(&mut self, id: &ClientOrderId, vo: &VenueOrder) -> Result<(), BacktestError> {
        let seen = self.fill_sums.get(id).copied().unwrap_or_default();
        let ev = self.tracker.report_event(id, vo, seen);
        let market = vo.market.clone();
        if self.event(id, ev, None)? {
            self.work_market(&market)?;
        }
        Ok(())
    }

    fn on_fill(&mut self, f: VenueFill) -> Result<(), BacktestError> {
        self.summary.fills += 1;
        let market = f.market.clone();
        if let Some(m) = self.markets.get_mut(&market) {
            if m.position
                .apply_fill(f.side, f.price, f.size, f.fee)
                .is_err()
            {
                self.global_halts.insert(HaltReason::Accounting);
            }
            m.pricer.inventory = m.position.qty;
        }
        let id = f
            .client_order_id
            .clone()
            .filter(|c| self.tracker.get(c).is_some())
            .or_else(|| self.tracker.by_venue(&f.venue_order_id).cloned());
        self.writer.fill(f.clone())?;
        if let Some(id) = id {
            let sum = self.fill_sums.entry(id.clone()).or_default();
            *sum += f.size;
            let sum = *sum;
            let ev = self.tracker.fill_event(&id, sum);
            self.event(&id, ev, None)?;
        }
        self.evaluate()?;
        self.reprice(&market, QuoteReason::Inventory, false)
    }

    /// The end of the replay is a shutdown: every market halts, one cancel-all each, and the
    /// events that follow run to their end.
    fn finish(&mut self) -> Result<(), BacktestError> {
        self.global_halts.insert(HaltReason::Shutdown);
        self.evaluate()?;
        let limit = self.now.saturating_add(DRAIN_LIMIT_MS);
        while let Some(s) = self.heap.pop() {
            if s.at > limit {
                break;
            }
            self.now = self.now.max(s.at);
            self.handle(s.ev)?;
        }
        self.summary.open_at_end = self
            .markets
            .keys()
            .map(|m| self.venue.open_orders(m).len())
            .sum();
        Ok(())
    }
}

/// Runs a backtest into `out` and writes its files, holding the database's instance lock
/// throughout: a second run into the same directory (or a service on that database) is
/// refused, never interleaved.
///
/// # Errors
/// [`BacktestError`]; [`BacktestError::Locked`] naming the holder.
pub fn run_to_files(cfg: &Config, replay: &Path, out: &Path) -> Result<Outcome, BacktestError> {
    std::fs::create_dir_all(out).map_err(|source| BacktestError::Out {
        path: out.into(),
        source,
    })?;
    let _lock = crate::instance::InstanceLock::acquire(&out.join("backtest.db"), "")?;
    let started = std::time::Instant::now();
    let summary = run(cfg.clone(), replay, out)?;
    let (simulation_s, rss) = (started.elapsed().as_secs_f64(), crate::bench::peak_rss_mb());
    let mut outcome = write_outputs(cfg, out, summary)?;
    outcome.simulation_s = simulation_s;
    outcome.simulation_peak_rss_mb = rss;
    Ok(outcome)
}

/// A finished backtest: what it did and what it earned.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub summary: Summary,
    pub reports: Vec<crate::report::MarketReport>,
    /// Wall time and the process's peak RSS when the simulation ended (0 unless run by
    /// [`run_to_files`]); not part of the deterministic output.
    #[serde(skip)]
    pub simulation_s: f64,
    #[serde(skip)]
    pub simulation_peak_rss_mb: f64,
}

/// Writes a finished run's files into `out`, next to `backtest.db`: `report.json`,
/// `report.html`, `summary.json`, `orders.csv` and `fills.csv`. Each is byte-identical for the
/// same replay, config and seed.
///
/// # Errors
/// The database cannot be read or a file cannot be written.
pub fn write_outputs(cfg: &Config, out: &Path, summary: Summary) -> Result<Outcome, BacktestError> {
    use crate::{report, report_html};
    let db = out.join("backtest.db");
    let mut inputs = report::read_db(&db)?;
    report::apply_config(&mut inputs, cfg);
    let reports = report::compute_all(&inputs, None, None);
    let pages = report_html::pages(&inputs, &reports);
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let orders = csv(
        &conn,
        "client_order_id,market,side,price,size,filled,state,created_at_ms,updated_at_ms",
        "SELECT client_order_id, market, side, price, size, filled, state, created_at_ms, updated_at_ms
         FROM orders ORDER BY created_at_ms, client_order_id",
    )?;
    let fills = csv(
        &conn,
        "trade_id,ts_ms,market,client_order_id,side,price,size,fee,liquidity",
        "SELECT trade_id, ts_ms, market, client_order_id, side, price, size, fee, liquidity
         FROM fills ORDER BY id",
    )?;
    let files = [
        ("report.json", to_json(&reports)),
        ("report.html", report_html::render(&pages)),
        ("summary.json", to_json(&summary)),
        ("orders.csv", orders),
        ("fills.csv", fills),
    ];
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| BacktestError::Out { path, source })?;
    }
    Ok(Outcome {
        summary,
        reports,
        simulation_s: 0.0,
        simulation_peak_rss_mb: 0.0,
    })
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Our own types always serialise.
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn csv(conn: &rusqlite::Connection, header: &str, sql: &str) -> Result<String, BacktestError> {
    let mut out = format!("{header}\n");
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let cells: Vec<String> = (0..n)
            .map(|i| match r.get_ref(i) {
                Ok(rusqlite::types::ValueRef::Integer(v)) => v.to_string(),
                Ok(rusqlite::types::ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                Ok(rusqlite::types::ValueRef::Real(v)) => v.to_string(),
                _ => String::new(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}
