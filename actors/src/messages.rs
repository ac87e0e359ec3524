//! The actors' protocol: every message that crosses between actors, with the data it carries.
//! Each message says who sends it, who receives it, and what the receiver promises (the
//! README's protocol table is checked against these lines by `tests/protocol.rs`). Actor
//! modules import messages from here and never from each other; this module imports no actor.
//! The queries operators and tests send to one actor (`Get*Stats`, `GetHealth`) live with it.

use std::time::Instant;

use actix::prelude::*;
use rust_decimal::Decimal;

use crate::intent::{Intent, IntentKind};
use crate::types::{BinanceSymbol, ClientOrderId, MarketId, Side, Slot, Tick, VenueOrderId};
pub use crate::venue::SendRecord;
use crate::venue::{Balance, VenueFill, VenueOrder};

// ---- The reference: BinanceFeed to the quoting side ----

/// A validated reference tick (decoded, validated, passed the reference guard), one of a
/// [`ReferenceTicks`]: not a message of its own.
#[derive(Debug, Clone)]
pub struct TickReceived {
    pub tick: Tick,
    /// When the feed accepted it, decoded and checked: the end of the tick's span; the receive
    /// instant when no tracer is installed (nothing reads it then). (Kept out
    /// of [`Tick`], which the decoder returns by value: 16 more bytes there cost the
    /// no-order path 7 %.)
    pub decoded_at: Instant,
}

#[cfg(test)]
impl TickReceived {
    /// An ADAUSDT tick for tests: update id `update_id`, `bid` and `ask` with sizes of one,
    /// received (and decoded) at `at`.
    pub(crate) fn for_tests(update_id: u64, bid: Decimal, ask: Decimal, at: Instant) -> Self {
        Self {
            tick: Tick {
                symbol: BinanceSymbol("ADAUSDT".into()),
                update_id,
                bid,
                bid_qty: Decimal::ONE,
                ask,
                ask_qty: Decimal::ONE,
                recv_ms: crate::types::now_ms(),
                recv_at: at,
            },
            decoded_at: at,
        }
    }
}

/// **BinanceFeed → QuoteEngine, and MockExchange in staging.** The receiver prices each tick in order (QuoteEngine) or moves its reference through them (MockExchange), as if each had come alone. QuoteEngine gets one message per turn of the feed's loop (one frame live, up to 8 at max speed); MockExchange the same whenever the feed waits for its next frame, and at max speed the turns of up to `mock_exchange.follow_batch_us` in one message.
///
/// Validated reference ticks, oldest first, as the turns' runs of ticks; shared by both
/// receivers (the venue's arbiter reads the same ticks, not a copy).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ReferenceTicks {
    first: TickRun,
    /// Later turns' runs, when several are handed over together (no allocation otherwise).
    more: Vec<TickRun>,
}

/// One turn's accepted ticks, shared by their receivers (QuoteEngine and the mock read the
/// same run, not copies). The feed fills its next turns into the runs nobody holds any more.
pub type TickRun = std::sync::Arc<Vec<TickReceived>>;

impl ReferenceTicks {
    /// One turn's ticks.
    pub fn new(ticks: TickRun) -> Self {
        Self {
            first: ticks,
            more: Vec::new(),
        }
    }

    /// Adds a later turn's ticks after these.
    pub fn push(&mut self, ticks: TickRun) {
        self.more.push(ticks);
    }

    /// Every tick, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &TickReceived> {
        self.first
            .iter()
            .chain(self.more.iter().flat_map(|t| t.iter()))
    }
}

/// **BinanceFeed → RiskGuard, every `feed.health_interval_ms`.** The receiver judges staleness and held references from it, halting or resuming the markets of each symbol.
///
/// Freshness and confirmation of each reference symbol.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FeedHealth {
    pub ts_ms: i64,
    pub symbols: Vec<SymbolHealth>,
}

/// One symbol's freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolHealth {
    pub symbol: BinanceSymbol,
    /// Local receive time of the last valid tick.
    pub last_recv_ms: Option<i64>,
    pub mid: Option<Decimal>,
    /// The reference jumped and the new level is not confirmed yet: quoting must pause.
    pub held: bool,
}

// ---- Quoting: QuoteEngine and OrderManager ----

/// **QuoteEngine → OrderManager.** The receiver diffs the latest target of each market against its working orders (older targets are conflated away) and sends the changes to RiskGuard.
///
/// The desired book of one market.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct QuoteTarget {
    pub market: MarketId,
    pub book: QuoteBook,
    pub tolerance_bps: Decimal,
    pub reason: QuoteReason,
    /// The tick that caused it, if one did: its receive instant is where tick-to-intent
    /// latency starts, and the span of a decision that changes orders starts the trace there.
    pub tick: Option<Box<TickReceived>>,
    /// When QuoteEngine sent it.
    pub priced_at: Instant,
}

/// Why a target was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteReason {
    /// First target of a market (or after QuoteEngine restarted).
    Start,
    /// The reference moved the book beyond the requote tolerance.
    PriceMoved { bps: Decimal },
    /// Our inventory changed (a fill).
    Inventory,
    /// RiskGuard changed the market's trading state.
    Risk,
    /// OrderManager asked, after a restart or a reconciliation.
    Reconciliation,
    /// A place was not sent (halted, too old, or crossing the venue's book): quote it afresh.
    NotSent,
}

impl QuoteReason {
    /// Every [`Self::kind`], in [`Self::kind_index`] order.
    pub const KINDS: [&'static str; 6] = [
        "start",
        "price_moved",
        "fill",
        "risk",
        "reconciliation",
        "not_sent",
    ];

    /// The reason without its figures, for metric attributes.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// Where [`Self::kind`] is in [`Self::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            QuoteReason::Start => 0,
            QuoteReason::PriceMoved { .. } => 1,
            QuoteReason::Inventory => 2,
            QuoteReason::Risk => 3,
            QuoteReason::Reconciliation => 4,
            QuoteReason::NotSent => 5,
        }
    }
}

impl std::fmt::Display for QuoteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuoteReason::Start => f.write_str("start"),
            QuoteReason::PriceMoved { bps } => write!(f, "price_moved_{bps}bps"),
            QuoteReason::Inventory => f.write_str("fill"),
            QuoteReason::Risk => f.write_str("risk"),
            QuoteReason::Reconciliation => f.write_str("reconciliation"),
            QuoteReason::NotSent => f.write_str("not_sent"),
        }
    }
}

/// The desired book of one market and the numbers it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteBook {
    /// Reference bid and ask after the `anchor_bps` basis shift.
    pub ref_bid: Decimal,
    pub ref_ask: Decimal,
    /// Anchor price after inventory skew (mid anchor: the fair mid).
    pub fair: Decimal,
    pub orders: Vec<DesiredOrder>,
}

/// One order the market should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredOrder {
    pub slot: Slot,
    pub side: Side,
    pub price: Decimal,
    pub size: Decimal,
}

/// **OrderManager → QuoteEngine.** The receiver re-emits the target of the market (or of every market) even if nothing moved.
///
/// Asks for a fresh target even if nothing moved (OrderManager after a restart or resync).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RequestRequote {
    /// `None` for every market.
    pub market: Option<MarketId>,
    pub reason: QuoteReason,
}

/// **RiskGuard → QuoteEngine.** The receiver reprices the market with the new position (skew, reducing sides).
///
/// Our position in a market changed (from RiskGuard, after a fill).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct InventoryChanged {
    pub market: MarketId,
    pub position: Decimal,
}

// ---- Risk: RiskGuard's verdicts and trading states ----

/// **OrderManager → RiskGuard.** The receiver answers one verdict per intent, in order, against the limits, the trading state and the funds; OrderManager commits only the approved ones.
///
/// Asks for a verdict on each intent of one market.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<Result<(), Denial>>")]
pub struct CheckIntents {
    pub market: MarketId,
    pub intents: Vec<Intent>,
    pub exposure: OpenExposure,
    /// What our live orders lock, by asset, across every market (the capital check).
    pub funds: FundsInUse,
    /// Reference mid in venue terms, from the target that caused the intents.
    pub reference_mid: Option<Decimal>,
    /// Trace context of the work that produced the intents.
    pub cx: opentelemetry::Context,
}

/// Why an intent was denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("trading is halted ({0:?})")]
    Halted(HaltReason),
    #[error("market is reducing: a {0} would grow the position")]
    Reducing(Side),
    #[error("size {size} above max_order_size {max}")]
    OrderTooLarge { size: Decimal, max: Decimal },
    #[error("{open} open orders, max_open_orders is {max}")]
    TooManyOpenOrders { open: u32, max: u32 },
    #[error("price {price} is {distance_bps} bps from reference mid {mid}, band is {band_bps} bps")]
    OutsideBand {
        price: Decimal,
        mid: Decimal,
        distance_bps: Decimal,
        band_bps: Decimal,
    },
    #[error("position {position} with open {open} and this {size} would pass max_position {max}")]
    PositionLimit {
        position: Decimal,
        open: Decimal,
        size: Decimal,
        max: Decimal,
    },
    #[error("no reference price yet")]
    NoReference,
    #[error("no {asset} balance known: nothing can be placed against it yet")]
    NoBalance { asset: String },
    #[error("needs {need} {asset}, {available} available after what our live orders lock")]
    InsufficientFunds {
        asset: String,
        need: Decimal,
        available: Decimal,
    },
}

/// Open-order figures of one market, for RiskGuard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenExposure {
    /// Non-terminal orders.
    pub open_orders: u32,
    /// Remaining base size of non-terminal buys / sells.
    pub open_buy: Decimal,
    pub open_sell: Decimal,
}

/// What our live orders lock, by asset (balances' lower-case names), across every market.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FundsInUse(pub std::collections::BTreeMap<String, AssetUse>);

/// What our live orders lock of one asset: buys their notional (the fee comes on top),
/// sells their base size; all of them, and those the venue has not acknowledged yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssetUse {
    pub buy_notional: Decimal,
    pub sell_base: Decimal,
    pub unacked_buy_notional: Decimal,
    pub unacked_sell_base: Decimal,
}

/// **RiskGuard → QuoteEngine and OrderManager.** The receiver QuoteEngine quotes only the allowed sides; OrderManager flattens a HALTED market at the venue (cancel-all, then list and cancel what is left).
///
/// A market's trading state changed.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct TradingStateChanged {
    pub market: MarketId,
    pub state: TradingState,
    pub sides: SidesAllowed,
    pub reasons: Vec<HaltReason>,
    pub position: Decimal,
}

/// A market's trading state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TradingState {
    Active,
    Reducing,
    Halted,
}

/// Why trading is halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HaltReason {
    /// The operator's kill switch (latched across restarts until `resume`).
    KillSwitch,
    /// The daily loss limit (latched until `resume`).
    DailyLoss,
    /// No valid reference tick for `feed.stale_after_ms`.
    StaleFeed,
    /// The reference jumped and is held back until the new level is confirmed.
    ReferenceUnconfirmed,
    /// The reference is too far from where the rest of the venue's book trades.
    ReferenceDiverged,
    /// SQLite cannot commit.
    Storage,
    /// Position or PnL arithmetic overflowed: the figures cannot be trusted.
    Accounting,
    /// An actor could not be kept alive: the service is stopping.
    Fatal,
    /// The service is stopping.
    Shutdown,
}

/// Which sides may be quoted (RiskGuard's trading state decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SidesAllowed {
    pub buy: bool,
    pub sell: bool,
}

/// **AccountFeed → RiskGuard.** The receiver checks the capital of later places against these balances.
///
/// The venue's balances changed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BalancesUpdated(pub Vec<Balance>);

/// **RiskGuard → OrderManager (kill switch, shutdown).** The receiver flattens every market at the venue.
///
/// Cancel every order in every market (shutdown, kill switch).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CancelEverything {
    pub reason: String,
}

// ---- The outbox: from a durable intent to the venue's answer ----

/// **OrderManager → OutboxWorker, from the commit callback of the transaction that wrote the rows.** The receiver dispatches each row in order (a newer place for a slot supersedes an unsent one; a cancel waits for its place's answer).
///
/// Outbox rows whose transaction has committed: they may now be sent.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct IntentsDurable(pub Vec<OutboxRow>);

/// One outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub intent: Intent,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub sent_at_ms: Option<i64>,
    pub next_attempt_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    pub last_error: Option<String>,
    /// W3C traceparent of the intent: dispatch and outcome join its trace.
    pub traceparent: Option<String>,
    /// Receive instant of the tick that caused the intent, for tick → write latency (not
    /// persisted: gone after a restart).
    pub tick_recv_at: Option<std::time::Instant>,
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    Pending,
    InFlight,
    Unknown,
    Done,
    Rejected,
    Superseded,
    Dead,
}

/// **OrderManager → OutboxWorker.** The receiver settles the outbox row of an order whose outcome was unknown, now that the venue answered a lookup.
///
/// The venue has been asked about an order; settles its place if its outcome was unknown.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ResolveIntent {
    pub client_order_id: ClientOrderId,
    /// The venue's order, when it exists there.
    pub venue_order_id: Option<VenueOrderId>,
}

/// **OutboxWorker → DeltaDeFiGateway.** The receiver sends the row's request to the venue once and classifies the answer (done, definite reject, retry, unknown: never blindly resent).
///
/// Sends one outbox row to the venue; the answer comes back as a [`DispatchOutcome`].
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Dispatch {
    pub row: OutboxRow,
    /// Trace context of the outbox dispatch.
    pub cx: opentelemetry::Context,
}

/// **DeltaDeFiGateway → OutboxWorker.** The receiver records the outcome on the row and retries, dead-letters or settles it.
///
/// The gateway's classified answer for one row.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct DispatchOutcome {
    pub id: i64,
    pub result: DispatchResult,
}

/// The classified answer to one dispatched row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchResult {
    /// Done: a place acknowledged (with the venue id), a cancel or cancel-all confirmed.
    Done {
        venue_order_id: Option<VenueOrderId>,
    },
    /// The venue definitely refused; nothing happened there.
    Rejected { code: Option<u32>, message: String },
    /// Nothing happened at the venue; try again, not before `not_before_ms` if given.
    Retry {
        code: Option<u32>,
        message: String,
        not_before_ms: Option<i64>,
    },
    /// The request may or may not have taken effect; the venue id, when known, is how the
    /// order is looked up.
    Unknown {
        message: String,
        venue_order_id: Option<VenueOrderId>,
    },
    /// A place was never written to the venue (trading halted, or its send could not be
    /// recorded): the row is superseded and its order cancelled, never retried.
    NotSent { reason: String },
}

/// **OutboxWorker → OrderManager.** The receiver moves the order's state machine on the outcome (acknowledged, rejected, unknown: looked up).
///
/// What OutboxWorker learned about an intent.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum IntentOutcome {
    Result {
        row: Box<OutboxRow>,
        result: DispatchResult,
    },
    NeverSent(OrderNeverSent),
}

/// An order whose place was superseded in the outbox before reaching the venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderNeverSent(pub ClientOrderId);

/// **Store, once SQLite commits again → OrderManager, OutboxWorker and RiskGuard.** The receiver reloads what SQLite holds: memory may have gone ahead of a failed commit.
///
/// The store commits again after failing: reload what is durable (sent by RiskGuard).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StorageRecovered;

// ---- The budget: RateLimiter ----

/// **OutboxWorker → RateLimiter.** The receiver grants a dispatch permit within the pacing budget, cancels first.
///
/// Asks for leave to dispatch one outbox row.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Permit, PermitError>")]
pub struct AcquirePermit {
    pub kind: IntentKind,
}

/// Leave to dispatch one row now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// Wall-clock time of the grant.
    pub granted_at_ms: i64,
}

/// Why no permit was granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermitError {
    #[error("the rate limiter restarted while the request waited")]
    Dropped,
    #[error("the send was not recorded: {0}")]
    NotRecorded(String),
    #[error("trading is halted in {0}")]
    Halted(String),
    #[error("a post-only place in {market} would cross the venue's book at {touch}")]
    WouldCross { market: String, touch: Decimal },
}

/// **MockExchange and DeltaDeFiRest, through their `SendGate`, just before a request is written → RateLimiter.** The receiver grants the send only within the venue's budget, after the halt gate and the post-only check, with the send recorded in SQLite first.
///
/// Asks to write one order action to the venue now. Granted within the venue's budget, after
/// `record` (whose `sent_at_ms` is set at the grant) is committed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<SendPermit, PermitError>")]
pub struct AcquireSend {
    pub record: SendRecord,
    /// While the sender waits: once it gives up (its deadline passed and it dropped the
    /// `Arc`), the request is dropped without spending the budget. `None`: it waits however
    /// long. An actix requester that stops waiting is not seen by the receiver otherwise.
    waiting: Option<std::sync::Weak<()>>,
}

impl AcquireSend {
    /// A request that stands however long it waits.
    pub fn new(record: SendRecord) -> Self {
        Self {
            record,
            waiting: None,
        }
    }

    /// A request that stands while the sender holds `waiting`.
    pub fn while_held(record: SendRecord, waiting: &std::sync::Arc<()>) -> Self {
        Self {
            record,
            waiting: Some(std::sync::Arc::downgrade(waiting)),
        }
    }

    /// The sender gave up.
    pub fn given_up(&self) -> bool {
        self.waiting.as_ref().is_some_and(|w| w.strong_count() == 0)
    }
}

/// Leave to write one order action now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendPermit {
    pub sent_at_ms: i64,
    /// False when the record could not be committed (storage failing); only cancels are
    /// granted so, since they need no new persistence.
    pub recorded: bool,
}

// ---- The account: AccountFeed to OrderManager and back ----

/// **AccountFeed → OrderManager.** The receiver applies the venue's report of one order to its state machine.
///
/// An order as the venue's account stream reports it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderUpdate(pub VenueOrder);

/// **AccountFeed → OrderManager and RiskGuard, after the fill is stored (once, by trade id).** The receiver OrderManager moves the order on; RiskGuard counts the position and PnL.
///
/// A new fill, stored once (unique trade id) before it is sent.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FillApplied {
    pub fill: VenueFill,
    /// Row id in `fills`; lets a restarted consumer skip fills it already loaded.
    pub fill_row_id: i64,
}

/// **AccountFeed → OrderManager, after every (re)connect and each reconciliation.** The receiver reconciles its orders with what the venue lists open (adopting or cancelling what it did not know).
///
/// The venue's open orders of a market, after a (re)connect or on request.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct VenueSnapshot {
    pub market: MarketId,
    pub open_orders: Vec<VenueOrder>,
}

/// **AccountFeed → OrderManager.** The receiver settles an order whose outcome was unknown with the venue's answer to a lookup.
///
/// The venue's answer about one order we asked after.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderResolved {
    pub client_order_id: ClientOrderId,
    pub venue_order: Option<VenueOrder>,
}

/// **OrderManager → AccountFeed (a flatten).** The receiver lists the market's open orders at the venue and answers with a `VenueSnapshot`.
///
/// Lists one market's open orders at the venue; the answer comes as a [`VenueSnapshot`].
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ListOpenOrders {
    pub market: MarketId,
}

/// **OrderManager → AccountFeed.** The receiver looks each order up at the venue and answers with an `OrderResolved` each.
///
/// Asks the venue about these orders; answers come as [`OrderResolved`].
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ResolveOrders {
    pub orders: Vec<(ClientOrderId, Option<VenueOrderId>)>,
}

/// **OrderManager, or DeltaDeFiAccountStream after a reconnect → AccountFeed.** The receiver lists open orders, recent trades and balances again, and reports them.
///
/// Re-reads open orders and balances from the venue.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Resync;

// ---- The venue: requests and account events (defined with the venue's vocabulary) ----

/// **DeltaDeFiGateway → the venue transport (MockExchange in process, DeltaDeFiRest over REST).** The receiver writes the request through its `SendGate` (budget, halt gate, post-only check) and answers the venue's reply, or a failure that says whether the request may have arrived.
pub use crate::venue::VenueRequest;

/// **The venue transport (MockExchange, DeltaDeFiAccountStream) → AccountFeed.** The receiver stores fills once by trade id before anyone acts on them, then passes order updates and fills to OrderManager and RiskGuard.
pub use crate::venue::VenueEvent;

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(ids: &[u64]) -> TickRun {
        let now = Instant::now();
        TickRun::new(
            ids.iter()
                .map(|&u| TickReceived::for_tests(u, Decimal::ONE, Decimal::TWO, now))
                .collect(),
        )
    }

    /// Each reason keeps its metric spelling, and its index finds it in `KINDS`.
    #[test]
    fn reason_kinds_are_spelled_as_before() {
        let reasons = [
            (QuoteReason::Start, "start"),
            (QuoteReason::PriceMoved { bps: Decimal::ONE }, "price_moved"),
            (QuoteReason::Inventory, "fill"),
            (QuoteReason::Risk, "risk"),
            (QuoteReason::Reconciliation, "reconciliation"),
            (QuoteReason::NotSent, "not_sent"),
        ];
        for (i, (reason, spelled)) in reasons.iter().enumerate() {
            assert_eq!(reason.kind(), *spelled);
            assert_eq!(reason.kind_index(), i, "{spelled}");
        }
        assert_eq!(QuoteReason::KINDS.len(), reasons.len());
    }

    #[test]
    fn reference_ticks_read_their_runs_in_order() {
        let ids = |r: &ReferenceTicks| r.iter().map(|t| t.tick.update_id).collect::<Vec<_>>();
        let mut r = ReferenceTicks::new(ticks(&[1, 2]));
        assert_eq!(ids(&r), [1, 2]);
        r.push(ticks(&[]));
        r.push(ticks(&[3]));
        r.push(ticks(&[4, 5]));
        assert_eq!(ids(&r), [1, 2, 3, 4, 5]);
        let mut empty_first = ReferenceTicks::new(ticks(&[]));
        empty_first.push(ticks(&[7]));
        assert_eq!(ids(&empty_first), [7]);
        assert!(ids(&ReferenceTicks::new(ticks(&[]))).is_empty());
    }
}
