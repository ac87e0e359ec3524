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
//!
//! A halted market (every market at start, on shutdown and on a fatal condition) is flattened
//! ([`flatten::Flattener`]): one cancel-all, then the venue's open orders are listed and
//! cancelled one by one until a listing shows none. Quoting waits for that confirmation.
//!
//! When SQLite cannot commit, approved cancels still go (they need no new persistence), places
//! never do, and the manager reloads from SQLite once the store has recovered.

pub mod book;
pub mod flatten;
mod halts;
mod outcomes;
pub mod reconcile;
mod reports;
pub mod state;
mod stats;
mod sums;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use actix::prelude::*;
use rust_decimal::Decimal;
use tracing::{error, info, warn};

use crate::config::MarketConfig;
use crate::intent::Intent;
use crate::latency::LatencyHistogram;
pub use crate::messages::{
    CancelEverything, FillApplied, IntentOutcome, OrderNeverSent, OrderResolved, OrderUpdate,
    QuoteReason, QuoteTarget, StorageRecovered, VenueSnapshot,
};
use crate::messages::{CheckIntents, IntentsDurable, OutboxRow, ResolveOrders, Resync};
use crate::registry::Reg;
use crate::store::{Store, StoreError, Write, rows};
use crate::supervision::ActorHealth;
use crate::types::{ClientOrderId, FastMap, FastSet, MarketId, now_ms};
use book::{OrderTracker, Transition};
use flatten::{FlattenStep, Flattener};
use state::OrderEvent;
pub use stats::{GetOrderStats, MarketOrderStats, OrderStats, ResetLatency};

/// A venue order we cannot match is treated as an orphan only after this long, while a place
/// of ours is still waiting for its venue id.
const ORPHAN_GRACE_MS: i64 = 30_000;
/// Finished orders whose trace is kept for late fills.
const FINISHED_TRACES_KEPT: usize = 10_000;
/// How long an unmatched venue report is kept for a late venue id.
const UNMATCHED_KEPT_MS: i64 = 600_000;
/// A flatten's listing that still shows orders it cannot cancel yet is repeated after this.
const RELIST_AFTER_MS: i64 = 500;

/// Approved intents whose transaction did not commit.
#[derive(Message)]
#[rtype(result = "()")]
struct PersistFailed {
    error: String,
    rows: Vec<OutboxRow>,
}

/// Flatten steps decided where no context was at hand.
#[derive(Message)]
#[rtype(result = "()")]
struct RunFlatten(Vec<FlattenStep>);

/// A flatten step that waits longer than this for its answer moves on to a new listing.
const FLATTEN_STEP_MAX_MS: i64 = 10_000;

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
    latest: FastMap<MarketId, QuoteTarget>,
    reconciled: FastSet<MarketId>,
    halted: FastSet<MarketId>,
    fill_sums: FastMap<ClientOrderId, Decimal>,
    /// Traces of recently finished orders, by venue id, for late fills.
    finished_traces: HashMap<String, String>,
    finished_order: std::collections::VecDeque<String>,
    /// Venue orders reported before we knew their id.
    unmatched: reconcile::Unmatched,
    /// Orders whose cancel failed for good; cancelled again if the venue still lists them open.
    cancel_failed: HashSet<ClientOrderId>,
    /// The flatten of every halted market.
    flattener: Flattener,
    /// Why each market was last flattened (the root of its cancels' traces).
    flatten_reason: HashMap<MarketId, String>,
    /// Memory went ahead of SQLite (a commit failed): reload once the store recovers.
    reload_when_stored: bool,
    /// Our own address, for steps decided outside a handler's context.
    me: Option<Addr<OrderManager>>,
    /// Markets with a target not yet worked, in the order their first target came.
    pending_work: Vec<MarketId>,
    work_scheduled: bool,
    fills: FastMap<MarketId, u64>,
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
            latest: FastMap::default(),
            reconciled: FastSet::default(),
            halted: markets.iter().map(|m| m.market.clone()).collect(),
            fill_sums: FastMap::default(),
            unmatched: reconcile::Unmatched::default(),
            finished_traces: HashMap::new(),
            finished_order: std::collections::VecDeque::new(),
            cancel_failed: HashSet::new(),
            flattener: Flattener::new(RELIST_AFTER_MS),
            flatten_reason: HashMap::new(),
            reload_when_stored: false,
            me: None,
            pending_work: Vec::new(),
            work_scheduled: false,
            fills: FastMap::default(),
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
        self.flattener = Flattener::new(RELIST_AFTER_MS);
        self.reload_when_stored = false;
        self.pending_work.clear();
        self.work_scheduled = false;
        self.loaded = false;
    }

    /// Shows the venue books which of their orders are ours (and which are being cancelled).
    fn publish_own(&self) {
        for m in &self.markets {
            self.reg
                .books
                .set_own(&m.market, self.tracker.own_orders(&m.market));
        }
    }

    fn persist(&self, transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        self.publish_own();
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
                if terminal {
                    // An order that ended needs no cancel: a flatten waiting for it moves on.
                    let steps = self.flattener.cancel_done(&t.order.market, id, now_ms());
                    if let (false, Some(me)) = (steps.is_empty(), &self.me) {
                        me.do_send(RunFlatten(steps));
                    }
                }
                self.persist(vec![t]);
                terminal
            }
            None => false,
        }
    }

    /// Diffs a market's latest target against its orders and sends the intents for approval.
    fn work_market(&mut self, market: &MarketId, ctx: &mut Context<Self>) {
        if !self.loaded
            || !self.reconciled.contains(market)
            || self.halted.contains(market)
            || self.flattener.in_progress(market)
        {
            return;
        }
        let Some(target) = self.latest.get(market) else {
            return;
        };
        let (tolerance, tick_at, mid) = (
            target.tolerance_bps,
            target.tick.as_ref().map(|t| t.tick.recv_at),
            Some((target.book.ref_bid + target.book.ref_ask) / Decimal::TWO),
        );
        let diff_started = crate::trace::installed().then(Instant::now);
        let intents = self.tracker.diff(market, &target.book.orders, tolerance);
        if intents.is_empty() {
            return; // a decision that changes no order leaves no trace
        }
        // The trace starts at the tick (and its pricing), made now that a decision changes
        // orders; the diff is the pricing's child.
        let priced = crate::trace::Priced {
            market,
            fair: target.book.fair,
            levels: target.book.orders.len(),
            reason: &target.reason,
            at: target.priced_at,
        };
        let tick = target.tick.as_deref().map(|t| (&t.tick, t.decoded_at));
        let root = crate::trace::decision_root(tick, &priced);
        // Made only with an exporting tracer: without one it would have no context to pass
        // on (one per check, most of them denied at max speed).
        let cx = crate::trace::diff_span(
            &crate::trace::Diffed {
                market,
                reason: &target.reason,
                intents: intents.len(),
                tick_at,
                started: diff_started,
            },
            &root,
        );
        self.submit(market.clone(), intents, mid, tick_at, cx, ctx);
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
            funds: self.tracker.funds_in_use(),
            reference_mid,
            cx: cx.clone(),
        };
        ctx.wait(risk.send(req).into_actor(self).map(move |verdicts, act, ctx| match verdicts {
            Ok(verdicts) => {
                let approved: Vec<(Intent, Option<String>)> = intents
                    .into_iter()
                    .zip(verdicts)
                    .filter(|(_, v)| v.is_ok())
                    .map(|(i, _)| {
                        let tp = crate::trace::intent_traceparent(&i, &cx);
                        (i, tp)
                    })
                    .collect();
                if let Some(t0) = tick_at {
                    let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    let hist = &crate::metrics::metrics().tick_to_intent;
                    for _ in &approved {
                        hist.record(ns as f64 / 1e9, &[]);
                        act.latency.record(ns);
                    }
                }
                act.commit(approved, tick_at, ctx);
            }
            Err(e) => {
                warn!(market = %market, cause = %e, "risk guard unreachable, intents dropped");
                let steps = act.flattener.intents_dropped(&intents, now_ms());
                act.run_flatten(steps, ctx);
            }
        }));
    }

    /// Records approved intents: order transitions and outbox rows in one transaction.
    fn commit(
        &mut self,
        intents: Vec<(Intent, Option<String>)>,
        tick_at: Option<Instant>,
        ctx: &mut Context<Self>,
    ) {
        if intents.is_empty() {
            return;
        }
        self.intents += intents.len() as u64;
        let (writes, rows) =
            self.tracker
                .record_approved(intents, &mut self.next_outbox_id, now_ms(), tick_at);
        // Before any of these intents can be sent: a replaced order no longer counts against
        // its replacement.
        self.publish_own();
        let reg = self.reg.clone();
        let me = ctx.address();
        self.store.write(
            writes,
            Some(Box::new(move |r| match r {
                Ok(()) => reg.intents_durable.do_send(IntentsDurable(rows)),
                Err(error) => me.do_send(PersistFailed { error, rows }),
            })),
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
}

impl Actor for OrderManager {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        self.me = Some(ctx.address());
        ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| {
            let steps = act.flattener.overdue(now_ms(), FLATTEN_STEP_MAX_MS);
            act.run_flatten(steps, ctx);
        });
        let store = self.store.clone();
        ctx.wait(
            async move {
                let orders = store.read(rows::load_live_orders).await?;
                let max_id = store.read(rows::max_outbox_id).await?;
                let settled = store.read(rows::settled_pending_places).await?;
                Ok::<_, StoreError>((orders, max_id, settled))
            }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok((orders, max_id, settled)) => {
                    info!(live_orders = orders.len(), "orders loaded");
                    act.tracker.load(orders);
                    act.publish_own();
                    act.next_outbox_id = max_id + 1;
                    act.settle_unsent(settled);
                    act.loaded = true;
                    // Halted markets (all of them at start) are flattened before quoting; the
                    // others (after a restart of this actor alone) are reconciled.
                    let mut halted: Vec<MarketId> = act.halted.iter().cloned().collect();
                    halted.sort();
                    for m in &halted {
                        act.flatten(m, "start", ctx);
                    }
                    if halted.len() < act.markets.len() {
                        act.reg.resync.do_send(Resync);
                    }
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
        // The market's name is copied only into a map that does not hold it yet.
        if !self.pending_work.contains(&msg.market) {
            self.pending_work.push(msg.market.clone());
        }
        match self.latest.get_mut(&msg.market) {
            Some(latest) => *latest = msg,
            None => {
                self.latest.insert(msg.market.clone(), msg);
            }
        }
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
        let mut markets = std::mem::take(&mut self.pending_work);
        for m in markets.drain(..) {
            self.work_market(&m, ctx);
        }
        // The list's buffer serves again, unless working these queued more.
        if self.pending_work.is_empty() {
            self.pending_work = markets;
        }
    }
}
