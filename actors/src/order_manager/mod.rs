//! OrderManager is an actor. It owns every order we have and its state machine
//! ([`state::OrderState`]), turns each market's desired book into intents ([`book::OrderTracker::diff`]),
//! has RiskGuard approve them, and writes each approved intent to the outbox in the same SQLite
//! transaction as the order's state change; OutboxWorker learns of the rows only after that
//! transaction commits. It applies acknowledgements, order updates and fills as they arrive.
//!
//! It quotes a market only after the venue's open orders were reconciled with ours since its
//! last (re)start: unknown venue orders are adopted and cancelled, orders we think live but the
//! venue does not list are looked up. A place whose outcome is unknown is resolved by a query,
//! never resent.

pub mod book;
pub mod state;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Instant;

use actix::prelude::*;
use rust_decimal::Decimal;
use tracing::{debug, error, info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::account_feed::{ResolveOrders, Resync};
use crate::config::MarketConfig;
use crate::intent::Intent;
use crate::latency::{LatencyHistogram, LatencySummary};
use crate::outbox_worker::queue::{DispatchResult, OutboxRow};
use crate::outbox_worker::{IntentsDurable, ResolveIntent};
use crate::quote_engine::RequestRequote;
use crate::quote_engine::pricing::QuoteBook;
use crate::registry::Reg;
use crate::risk_guard::rules::TradingState;
use crate::risk_guard::{CheckIntents, TradingStateChanged};
use crate::store::{Store, StoreError, Write, rows};
use crate::supervision::ActorHealth;
use crate::types::{ClientOrderId, MarketId, Slot, VenueOrderId, now_ms};
use crate::venue::{VenueFill, VenueOrder, VenueOrderStatus};
use book::{OrderTracker, Transition};
use state::{Order, OrderEvent, OrderState};

/// A venue order we cannot match is treated as an orphan only after this long, while a place
/// of ours is still waiting for its venue id.
const ORPHAN_GRACE_MS: i64 = 30_000;
/// Finished orders whose trace is kept for late fills.
const FINISHED_TRACES_KEPT: usize = 10_000;
/// How long an unmatched venue report is kept for a late venue id.
const UNMATCHED_KEPT_MS: i64 = 600_000;

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
}

impl QuoteReason {
    /// The reason without its figures, for metric attributes.
    pub fn kind(&self) -> &'static str {
        match self {
            QuoteReason::Start => "start",
            QuoteReason::PriceMoved { .. } => "price_moved",
            QuoteReason::Inventory => "fill",
            QuoteReason::Risk => "risk",
            QuoteReason::Reconciliation => "reconciliation",
        }
    }
}

impl fmt::Display for QuoteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuoteReason::Start => f.write_str("start"),
            QuoteReason::PriceMoved { bps } => write!(f, "price_moved_{bps}bps"),
            QuoteReason::Inventory => f.write_str("fill"),
            QuoteReason::Risk => f.write_str("risk"),
            QuoteReason::Reconciliation => f.write_str("reconciliation"),
        }
    }
}

/// The desired book of one market.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct QuoteTarget {
    pub market: MarketId,
    pub book: QuoteBook,
    pub tolerance_bps: Decimal,
    pub reason: QuoteReason,
    /// Receive instant of the tick that caused it, for tick-to-intent latency.
    pub tick_recv_at: Option<Instant>,
}

/// An order whose place was superseded in the outbox before reaching the venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderNeverSent(pub ClientOrderId);

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

/// An order as the venue's account stream reports it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderUpdate(pub VenueOrder);

/// A new fill, stored once (unique trade id) before it is sent.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FillApplied {
    pub fill: VenueFill,
    /// Row id in `fills`; lets a restarted consumer skip fills it already loaded.
    pub fill_row_id: i64,
}

/// The venue's open orders of a market, after a (re)connect or on request.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct VenueSnapshot {
    pub market: MarketId,
    pub open_orders: Vec<VenueOrder>,
}

/// The venue's answer about one order we asked after.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderResolved {
    pub client_order_id: ClientOrderId,
    pub venue_order: Option<VenueOrder>,
}

/// Cancel every order in every market (shutdown, kill switch).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CancelEverything {
    pub reason: String,
}

/// Asks for order figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "OrderStats")]
pub struct GetOrderStats;

/// Order figures.
#[derive(Debug, Clone, Default, PartialEq, MessageResponse)]
pub struct OrderStats {
    pub markets: Vec<MarketOrderStats>,
    /// Tick → approved intent latency.
    pub latency: LatencySummary,
    pub intents: u64,
    pub reconciled: bool,
}

/// Order figures of one market.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarketOrderStats {
    pub market: MarketId,
    /// Non-terminal orders.
    pub live: usize,
    pub working: usize,
    pub fills: u64,
}

/// Clears the tick → intent latency histogram (the benchmark does after its warm-up).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ResetLatency;

#[derive(Message)]
#[rtype(result = "()")]
struct PersistFailed(String);

/// Diff the markets whose target changed; queued behind the mailbox, so that a burst of
/// targets costs one diff per market (the latest target wins).
#[derive(Message)]
#[rtype(result = "()")]
struct WorkPending;

/// The order owner.
pub struct OrderManager {
    reg: Reg,
    store: Store,
    markets: Vec<MarketConfig>,
    tracker: OrderTracker,
    next_outbox_id: i64,
    latest: HashMap<MarketId, QuoteTarget>,
    reconciled: HashSet<MarketId>,
    halted: HashSet<MarketId>,
    fill_sums: HashMap<ClientOrderId, Decimal>,
    /// Traces of recently finished orders, by venue id, for late fills.
    finished_traces: HashMap<String, String>,
    finished_order: std::collections::VecDeque<String>,
    /// Venue orders reported before we knew their id: (latest report, first seen ms).
    unmatched: HashMap<VenueOrderId, (VenueOrder, i64)>,
    /// Orders whose cancel failed for good; cancelled again if the venue still lists them open.
    cancel_failed: HashSet<ClientOrderId>,
    /// Markets with a cancel-all between approval and its outcome.
    cancel_all_pending: HashSet<MarketId>,
    pending_work: HashSet<MarketId>,
    work_scheduled: bool,
    fills: HashMap<MarketId, u64>,
    latency: LatencyHistogram,
    intents: u64,
    loaded: bool,
    health: ActorHealth,
}

impl OrderManager {
    /// A manager for `markets`; client ids are `<prefix>-<run>-<n>`.
    pub fn new(reg: Reg, store: Store, markets: &[MarketConfig], prefix: &str, run: &str) -> Self {
        Self {
            reg,
            store,
            markets: markets.to_vec(),
            tracker: OrderTracker::new(prefix, run),
            next_outbox_id: 1,
            latest: HashMap::new(),
            reconciled: HashSet::new(),
            halted: markets.iter().map(|m| m.market.clone()).collect(),
            fill_sums: HashMap::new(),
            unmatched: HashMap::new(),
            finished_traces: HashMap::new(),
            finished_order: std::collections::VecDeque::new(),
            cancel_failed: HashSet::new(),
            cancel_all_pending: HashSet::new(),
            pending_work: HashSet::new(),
            work_scheduled: false,
            fills: HashMap::new(),
            latency: LatencyHistogram::default(),
            intents: 0,
            loaded: false,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        self.latest.clear();
        self.reconciled.clear();
        self.fill_sums.clear();
        self.unmatched.clear();
        self.cancel_failed.clear();
        self.cancel_all_pending.clear();
        self.pending_work.clear();
        self.work_scheduled = false;
        self.loaded = false;
    }

    fn persist(&self, transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        let now = now_ms();
        let writes = transitions
            .into_iter()
            .map(|transition| Write::Order {
                transition,
                ts_ms: now,
            })
            .collect();
        self.store.write(writes, None);
    }

    fn event(
        &mut self,
        id: &ClientOrderId,
        ev: OrderEvent,
        detail: Option<String>,
    ) -> Option<Transition> {
        match self.tracker.apply(id, &ev, detail) {
            Ok(t) => t,
            Err(e) => {
                warn!(client_order_id = %id, cause = %e, "order event ignored");
                None
            }
        }
    }

    fn apply_and_persist(
        &mut self,
        id: &ClientOrderId,
        ev: OrderEvent,
        detail: Option<String>,
    ) -> bool {
        match self.event(id, ev, detail) {
            Some(t) => {
                let terminal = t.order.state.is_terminal();
                if terminal
                    && let (Some(v), Some(tp)) = (&t.order.venue_order_id, &t.order.traceparent)
                {
                    self.remember_trace(v.to_string(), tp.clone());
                }
                self.persist(vec![t]);
                terminal
            }
            None => false,
        }
    }

    /// Diffs a market's latest target against its orders and sends the intents for approval.
    fn work_market(&mut self, market: &MarketId, ctx: &mut Context<Self>) {
        if !self.loaded || !self.reconciled.contains(market) || self.halted.contains(market) {
            return;
        }
        let Some(target) = self.latest.get(market) else {
            return;
        };
        let (tolerance, tick_at, mid) = (
            target.tolerance_bps,
            target.tick_recv_at,
            Some((target.book.ref_bid + target.book.ref_ask) / Decimal::TWO),
        );
        let desired = target.book.orders.clone();
        let intents = self.tracker.diff(market, &desired, tolerance);
        if intents.is_empty() {
            return; // a decision that changes no order leaves no trace
        }
        // The root of the trace: the quote decision that changes orders, and its diff.
        let decide = tracing::info_span!(
            "quote.decide",
            market = %market,
            reason = %target.reason,
            fair = %target.book.fair,
            levels = target.book.orders.len(),
            tick.age_us = tick_at.map_or(0, |t| t.elapsed().as_micros() as u64),
        );
        let span = decide.in_scope(
            || tracing::info_span!("order_manager.diff", market = %market, intents = intents.len()),
        );
        self.submit(market.clone(), intents, mid, tick_at, span.context(), ctx);
    }

    /// Has RiskGuard decide `intents`, then commits the approved ones. The mailbox waits for
    /// the verdict so that the next target is diffed against the committed state.
    fn submit(
        &mut self,
        market: MarketId,
        intents: Vec<Intent>,
        reference_mid: Option<Decimal>,
        tick_at: Option<Instant>,
        cx: opentelemetry::Context,
        ctx: &mut Context<Self>,
    ) {
        let Some(risk) = self.reg.risk_check.get().cloned() else {
            return;
        };
        let exposure = self.tracker.exposure(&market);
        let req = CheckIntents {
            market: market.clone(),
            intents: intents.clone(),
            exposure,
            reference_mid,
            cx: cx.clone(),
        };
        ctx.wait(risk.send(req).into_actor(self).map(move |verdicts, act, ctx| match verdicts {
            Ok(verdicts) => {
                let approved: Vec<Intent> =
                    intents.into_iter().zip(verdicts).filter_map(|(i, v)| v.ok().map(|()| i)).collect();
                // Each intent gets its span; its traceparent is stored with the order and the
                // outbox row so that dispatch, acknowledgement and fills join this trace.
                let approved: Vec<(Intent, Option<String>)> = approved
                    .into_iter()
                    .map(|i| {
                        let span = tracing::info_span!(
                            "order_manager.intent",
                            market = %i.market(),
                            kind = i.kind().as_str(),
                            client_order_id = i.client_order_id().map(|c| c.as_str()).unwrap_or(""),
                        );
                        let _ = span.set_parent(cx.clone());
                        span.in_scope(|| tracing::debug!("intent approved"));
                        let tp = crate::trace::traceparent(&span.context());
                        (i, tp)
                    })
                    .collect();
                if let Some(t0) = tick_at {
                    let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    let hist = &crate::metrics::metrics().tick_to_intent;
                    for _ in &approved {
                        hist.record(ns as f64 / 1e9, &[]);
                    }
                    for _ in &approved {
                        act.latency.record(ns);
                    }
                }
                act.commit(approved, ctx);
            }
            Err(e) => {
                warn!(market = %market, cause = %e, "risk guard unreachable, intents dropped");
                act.cancel_all_pending.remove(&market); // let the next halt or shutdown try again
            }
        }));
    }

    /// Records approved intents: order transitions and outbox rows in one transaction.
    fn commit(&mut self, intents: Vec<(Intent, Option<String>)>, ctx: &mut Context<Self>) {
        if intents.is_empty() {
            return;
        }
        let now = now_ms();
        let mut writes = Vec::with_capacity(intents.len() * 2);
        let mut rows = Vec::with_capacity(intents.len());
        for (intent, traceparent) in intents {
            for transition in self
                .tracker
                .apply_intent(&intent, now, traceparent.as_deref())
            {
                writes.push(Write::Order {
                    transition,
                    ts_ms: now,
                });
            }
            let row =
                OutboxRow::new(self.next_outbox_id, intent, now).with_traceparent(traceparent);
            self.next_outbox_id += 1;
            self.intents += 1;
            writes.push(Write::Outbox(row.clone()));
            rows.push(row);
        }
        let reg = self.reg.clone();
        let me = ctx.address();
        self.store.write(
            writes,
            Some(Box::new(move |r| match r {
                Ok(()) => reg.intents_durable.do_send(IntentsDurable(rows)),
                Err(e) => me.do_send(PersistFailed(e)),
            })),
        );
    }

    fn cancel_all(&mut self, market: &MarketId, reason: &str, ctx: &mut Context<Self>) {
        // Every non-terminal order, cancels in progress included: one venue call settles all.
        let live = self
            .tracker
            .orders()
            .filter(|o| &o.market == market)
            .count();
        if live == 0 || !self.cancel_all_pending.insert(market.clone()) {
            return; // nothing to cancel, or a cancel-all for this market is already on its way
        }
        info!(market = %market, orders = live, reason, "cancelling every order of the market");
        self.submit(
            market.clone(),
            vec![Intent::CancelAll {
                market: market.clone(),
            }],
            None,
            None,
            opentelemetry::Context::new(),
            ctx,
        );
    }

    fn resolve(&self, ids: Vec<ClientOrderId>) {
        let orders: Vec<(ClientOrderId, Option<crate::types::VenueOrderId>)> = ids
            .into_iter()
            .map(|id| {
                let venue = self.tracker.get(&id).and_then(|o| o.venue_order_id.clone());
                (id, venue)
            })
            .collect();
        if !orders.is_empty() {
            self.reg.resolve_orders.do_send(ResolveOrders { orders });
        }
    }

    /// Applies what the venue says about one order; returns the order's market when it ended.
    fn apply_venue_order(&mut self, id: &ClientOrderId, vo: &VenueOrder) -> Option<MarketId> {
        if self
            .tracker
            .get(id)
            .is_some_and(|o| o.venue_order_id.is_none())
        {
            self.tracker.set_venue_id(id, vo.venue_order_id.clone());
        }
        let filled = vo
            .filled
            .max(self.fill_sums.get(id).copied().unwrap_or_default());
        self.tracker.set_filled(id, filled);
        let ev = match vo.status {
            VenueOrderStatus::Open => OrderEvent::Accepted,
            VenueOrderStatus::PartiallyFilled => OrderEvent::Filled { complete: false },
            VenueOrderStatus::Filled => OrderEvent::Filled { complete: true },
            VenueOrderStatus::Cancelled => OrderEvent::Cancelled,
            VenueOrderStatus::Failed => OrderEvent::Rejected,
        };
        let market = self.tracker.get(id).map(|o| o.market.clone());
        if self.apply_and_persist(id, ev, None) {
            market
        } else {
            None
        }
    }

    /// Keeps the trace of a finished order for fills that arrive after it finished.
    fn remember_trace(&mut self, venue_id: String, traceparent: String) {
        if self
            .finished_traces
            .insert(venue_id.clone(), traceparent)
            .is_none()
        {
            self.finished_order.push_back(venue_id);
        }
        while self.finished_order.len() > FINISHED_TRACES_KEPT {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished_traces.remove(&old);
            }
        }
    }

    /// Records the venue id of one of our orders and applies any update the account stream
    /// delivered for it before we knew the id.
    fn assign_venue_id(&mut self, id: &ClientOrderId, v: VenueOrderId) {
        self.tracker.set_venue_id(id, v.clone());
        if let Some((vo, _)) = self.unmatched.remove(&v) {
            self.apply_venue_order(id, &vo);
        }
    }

    /// True when a venue order we do not know may still be one of ours whose place has not
    /// been answered yet (DeltaDeFi names orders at build time, before we learn the name).
    fn may_be_ours(&mut self, vo: &VenueOrder, now: i64) -> bool {
        let unnamed_in_flight = self
            .tracker
            .orders()
            .any(|o| o.market == vo.market && o.venue_order_id.is_none() && !o.state.is_terminal());
        let first_seen = self
            .unmatched
            .entry(vo.venue_order_id.clone())
            .or_insert((vo.clone(), now))
            .1;
        unnamed_in_flight && now - first_seen < ORPHAN_GRACE_MS
    }

    fn adopt_orphan(&mut self, vo: &VenueOrder) -> Intent {
        let id = ClientOrderId(format!("orphan-{}", vo.venue_order_id));
        warn!(venue_order_id = %vo.venue_order_id, market = %vo.market, "unknown order at the venue, cancelling it");
        let order = Order {
            client_order_id: id.clone(),
            market: vo.market.clone(),
            slot: Slot {
                side: vo.side,
                level: u8::MAX,
            },
            side: vo.side,
            price: vo.price,
            size: vo.size,
            filled: vo.filled,
            state: OrderState::Working,
            venue_order_id: Some(vo.venue_order_id.clone()),
            created_at_ms: vo.ts_ms,
            traceparent: None,
        };
        self.tracker.load_one(order.clone());
        self.persist(vec![Transition {
            order,
            from: None,
            event: "adopted",
            detail: Some("orphan at the venue".into()),
        }]);
        Intent::Cancel {
            client_order_id: id,
            market: vo.market.clone(),
            venue_order_id: Some(vo.venue_order_id.clone()),
        }
    }

    fn find(&self, vo: &VenueOrder) -> Option<ClientOrderId> {
        vo.client_order_id
            .as_ref()
            .filter(|c| self.tracker.get(c).is_some())
            .cloned()
            .or_else(|| self.tracker.by_venue(&vo.venue_order_id).cloned())
    }
}

impl Actor for OrderManager {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        let store = self.store.clone();
        ctx.wait(
            async move {
                let orders = store.read(rows::load_live_orders).await?;
                let max_id = store.read(rows::max_outbox_id).await?;
                Ok::<_, StoreError>((orders, max_id))
            }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok((orders, max_id)) => {
                    info!(live_orders = orders.len(), "orders loaded");
                    act.tracker.load(orders);
                    act.next_outbox_id = max_id + 1;
                    act.loaded = true;
                    act.reg.resync.do_send(Resync);
                }
                Err(e) => {
                    error!(cause = %e, "cannot load orders, restarting");
                    ctx.stop();
                }
            }),
        );
    }
}

crate::supervised_actor!(OrderManager, "order_manager");

impl Handler<QuoteTarget> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: QuoteTarget, ctx: &mut Context<Self>) {
        let market = msg.market.clone();
        self.latest.insert(market.clone(), msg);
        self.pending_work.insert(market);
        if !self.work_scheduled {
            self.work_scheduled = true;
            ctx.notify(WorkPending);
        }
    }
}

impl Handler<WorkPending> for OrderManager {
    type Result = ();
    fn handle(&mut self, _: WorkPending, ctx: &mut Context<Self>) {
        self.work_scheduled = false;
        let markets: Vec<MarketId> = self.pending_work.drain().collect();
        for m in markets {
            self.work_market(&m, ctx);
        }
    }
}

impl Handler<IntentOutcome> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: IntentOutcome, ctx: &mut Context<Self>) {
        let (row, result) = match msg {
            IntentOutcome::NeverSent(OrderNeverSent(id)) => {
                self.apply_and_persist(
                    &id,
                    OrderEvent::Cancelled,
                    Some("superseded before it was sent".into()),
                );
                return;
            }
            IntentOutcome::Result { row, result } => (row, result),
        };
        let ack = tracing::info_span!(
            "order_manager.ack",
            outbox.id = row.id,
            kind = row.intent.kind().as_str(),
            outcome = match &result {
                DispatchResult::Done { .. } => "done",
                DispatchResult::Rejected { .. } => "rejected",
                DispatchResult::Retry { .. } => "dead",
                DispatchResult::Unknown { .. } => "unknown",
            },
        );
        let _ = ack.set_parent(crate::trace::context_from(row.traceparent.as_deref()));
        let _ack = ack.enter();
        let market = row.intent.market().clone();
        match (&row.intent, result) {
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::Done { venue_order_id },
            ) => {
                if let Some(v) = venue_order_id {
                    self.assign_venue_id(id, v);
                }
                self.apply_and_persist(id, OrderEvent::Accepted, None);
            }
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::Rejected { code, message },
            ) => {
                debug!(client_order_id = %id, code, cause = %message, "place rejected");
                self.apply_and_persist(id, OrderEvent::Rejected, Some(message));
                self.work_market(&market, ctx);
            }
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::Retry { message, .. },
            ) => {
                error!(client_order_id = %id, cause = %message, "place dead-lettered");
                self.apply_and_persist(
                    id,
                    OrderEvent::Rejected,
                    Some(format!("dead-lettered: {message}")),
                );
                self.work_market(&market, ctx);
            }
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::Unknown {
                    message,
                    venue_order_id,
                },
            ) => {
                warn!(client_order_id = %id, cause = %message, "place outcome unknown, asking the venue");
                if let Some(v) = venue_order_id {
                    // DeltaDeFi names the order at build time: the id to look it up by.
                    self.assign_venue_id(id, v);
                }
                self.apply_and_persist(id, OrderEvent::OutcomeUnknown, Some(message));
                self.resolve(vec![id.clone()]);
            }
            (
                Intent::Cancel {
                    client_order_id: id,
                    ..
                },
                result,
            ) => {
                if !matches!(result, DispatchResult::Done { .. }) {
                    error!(client_order_id = %id, ?result, "cancel failed");
                    self.cancel_failed.insert(id.clone());
                }
                // The venue's report of the order is authoritative (it may have filled).
                self.resolve(vec![id.clone()]);
            }
            (Intent::CancelAll { .. }, result) => {
                self.cancel_all_pending.remove(&market);
                if !matches!(result, DispatchResult::Done { .. }) {
                    error!(market = %market, ?result, "cancel-all failed");
                }
                let ids: Vec<ClientOrderId> = self
                    .tracker
                    .orders()
                    .filter(|o| o.market == market && o.state == OrderState::PendingCancel)
                    .map(|o| o.client_order_id.clone())
                    .collect();
                self.resolve(ids);
            }
        }
    }
}

impl Handler<OrderUpdate> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: OrderUpdate, ctx: &mut Context<Self>) {
        let vo = msg.0;
        match self.find(&vo) {
            Some(id) => {
                if let Some(market) = self.apply_venue_order(&id, &vo) {
                    self.work_market(&market, ctx);
                }
            }
            None => {
                // DeltaDeFi carries no client id, and its stream can report a new order before
                // the submit's answer names it: park the update until the id is assigned. Only
                // reconciliation, after a grace period, treats such an order as an orphan.
                let now = now_ms();
                self.unmatched
                    .retain(|_, (_, seen)| now - *seen < UNMATCHED_KEPT_MS);
                match self.unmatched.get_mut(&vo.venue_order_id) {
                    Some(entry) => entry.0 = vo,
                    None => {
                        self.unmatched.insert(vo.venue_order_id.clone(), (vo, now));
                    }
                }
            }
        }
    }
}

impl Handler<FillApplied> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: FillApplied, ctx: &mut Context<Self>) {
        let f = msg.fill;
        *self.fills.entry(f.market.clone()).or_insert(0) += 1;
        // The fill joins the trace of the intent that placed the order, even after a restart
        // (the traceparent is stored with the order) or once the order has finished.
        let tp = f
            .client_order_id
            .as_ref()
            .and_then(|c| self.tracker.get(c))
            .or_else(|| {
                self.tracker
                    .by_venue(&f.venue_order_id)
                    .and_then(|c| self.tracker.get(c))
            })
            .and_then(|o| o.traceparent.clone())
            .or_else(|| self.finished_traces.get(f.venue_order_id.as_str()).cloned());
        let span = tracing::info_span!(
            "order_manager.fill",
            market = %f.market,
            trade_id = %f.trade_id,
            side = f.side.as_str(),
            price = %f.price,
            size = %f.size,
        );
        let _ = span.set_parent(crate::trace::context_from(tp.as_deref()));
        let _fill = span.enter();
        let id = f
            .client_order_id
            .clone()
            .filter(|c| self.tracker.get(c).is_some())
            .or_else(|| self.tracker.by_venue(&f.venue_order_id).cloned());
        let Some(id) = id else { return };
        let sum = self.fill_sums.entry(id.clone()).or_default();
        *sum += f.size;
        let sum = *sum;
        self.tracker.set_filled(&id, sum);
        let complete = self.tracker.get(&id).is_some_and(|o| o.filled >= o.size);
        if self.apply_and_persist(&id, OrderEvent::Filled { complete }, None) {
            self.fill_sums.remove(&id);
            self.work_market(&f.market, ctx);
        }
    }
}

impl Handler<VenueSnapshot> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: VenueSnapshot, ctx: &mut Context<Self>) {
        if !self.loaded {
            return;
        }
        let market = msg.market.clone();
        let listed: HashSet<_> = msg
            .open_orders
            .iter()
            .map(|o| o.venue_order_id.clone())
            .collect();
        let mut orphans = Vec::new();
        let now = now_ms();
        for vo in &msg.open_orders {
            match self.find(vo) {
                Some(id) => {
                    self.apply_venue_order(&id, vo);
                }
                None if self.may_be_ours(vo, now) => {
                    debug!(venue_order_id = %vo.venue_order_id, "unmatched venue order, waiting for a place's answer");
                }
                None => {
                    self.unmatched.remove(&vo.venue_order_id);
                    orphans.push(self.adopt_orphan(vo));
                }
            }
        }
        let missing: Vec<ClientOrderId> = self
            .tracker
            .orders()
            .filter(|o| o.market == market)
            .filter(|o| match (&o.venue_order_id, o.state) {
                (_, OrderState::Unknown) => true,
                (Some(v), _) => !listed.contains(v),
                (None, _) => false,
            })
            .map(|o| o.client_order_id.clone())
            .collect();
        self.resolve(missing);
        let first = self.reconciled.insert(market.clone());
        info!(market = %market, venue_open = msg.open_orders.len(), orphans = orphans.len(), "reconciled with the venue");
        if !orphans.is_empty() {
            self.submit(
                market.clone(),
                orphans,
                None,
                None,
                opentelemetry::Context::new(),
                ctx,
            );
        }
        if first {
            self.reg.requote.do_send(RequestRequote {
                market: Some(market),
                reason: QuoteReason::Reconciliation,
            });
        }
    }
}

impl Handler<OrderResolved> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: OrderResolved, ctx: &mut Context<Self>) {
        let id = msg.client_order_id;
        let market = self.tracker.get(&id).map(|o| o.market.clone());
        match &msg.venue_order {
            Some(vo) => {
                self.apply_venue_order(&id, vo);
                if self.cancel_failed.remove(&id) && !vo.status.is_terminal() {
                    warn!(client_order_id = %id, "cancel failed but the order is still open, cancelling again");
                    let cancel = Intent::Cancel {
                        client_order_id: id.clone(),
                        market: vo.market.clone(),
                        venue_order_id: Some(vo.venue_order_id.clone()),
                    };
                    self.submit(
                        vo.market.clone(),
                        vec![cancel],
                        None,
                        None,
                        opentelemetry::Context::new(),
                        ctx,
                    );
                }
            }
            None => {
                self.cancel_failed.remove(&id);
                self.apply_and_persist(
                    &id,
                    OrderEvent::NotFound,
                    Some("not found at the venue".into()),
                );
            }
        }
        // Settles the outbox row of a place whose outcome was unknown (a no-op otherwise).
        self.reg.resolve_intent.do_send(ResolveIntent {
            client_order_id: id,
            venue_order_id: msg.venue_order.map(|vo| vo.venue_order_id),
        });
        if let Some(m) = market {
            self.work_market(&m, ctx);
        }
    }
}

impl Handler<TradingStateChanged> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: TradingStateChanged, ctx: &mut Context<Self>) {
        if msg.state == TradingState::Halted {
            self.halted.insert(msg.market.clone());
            let reason: Vec<&str> = msg.reasons.iter().map(|r| r.as_str()).collect();
            self.cancel_all(&msg.market, &reason.join(","), ctx);
        } else {
            self.halted.remove(&msg.market);
            self.work_market(&msg.market, ctx);
        }
    }
}

impl Handler<CancelEverything> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: CancelEverything, ctx: &mut Context<Self>) {
        let markets: Vec<MarketId> = self.markets.iter().map(|m| m.market.clone()).collect();
        for m in markets {
            self.halted.insert(m.clone());
            self.cancel_all(&m, &msg.reason, ctx);
        }
    }
}

impl Handler<PersistFailed> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: PersistFailed, ctx: &mut Context<Self>) {
        // Memory is ahead of the database: restart and reload what is durable.
        error!(cause = %msg.0, "intent not persisted, restarting order manager");
        ctx.stop();
    }
}

impl Handler<ResetLatency> for OrderManager {
    type Result = ();
    fn handle(&mut self, _: ResetLatency, _: &mut Context<Self>) {
        self.latency = LatencyHistogram::default();
    }
}

impl Handler<GetOrderStats> for OrderManager {
    type Result = OrderStats;
    fn handle(&mut self, _: GetOrderStats, _: &mut Context<Self>) -> OrderStats {
        OrderStats {
            markets: self
                .markets
                .iter()
                .map(|m| MarketOrderStats {
                    market: m.market.clone(),
                    live: self
                        .tracker
                        .orders()
                        .filter(|o| o.market == m.market)
                        .count(),
                    working: self
                        .tracker
                        .orders()
                        .filter(|o| {
                            o.market == m.market
                                && matches!(
                                    o.state,
                                    OrderState::Working | OrderState::PartiallyFilled
                                )
                        })
                        .count(),
                    fills: self.fills.get(&m.market).copied().unwrap_or(0),
                })
                .collect(),
            latency: self.latency.summary(),
            intents: self.intents,
            reconciled: self
                .markets
                .iter()
                .all(|m| self.reconciled.contains(&m.market)),
        }
    }
}
