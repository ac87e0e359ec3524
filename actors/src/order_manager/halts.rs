//! OrderManager on halts: flattening a market at the venue (the steps of
//! [`super::flatten::Flattener`] carried out), trading-state changes, cancel-everything,
//! commits SQLite could not take, and what a restart finds unsettled.

use actix::prelude::*;
use tracing::{error, info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::flatten::FlattenStep;
use super::state::OrderEvent;
use super::{
    CancelEverything, OrderManager, PersistFailed, QuoteReason, RunFlatten, StorageRecovered,
};
use crate::intent::Intent;
use crate::messages::{
    IntentsDurable, ListOpenOrders, OutboxRow, RequestRequote, TradingState, TradingStateChanged,
};
use crate::types::{ClientOrderId, MarketId, now_ms};

impl OrderManager {
    /// Starts (or joins) the flatten of `market`: cancel-all, then list and cancel what is left.
    pub(super) fn flatten(&mut self, market: &MarketId, reason: &str, ctx: &mut Context<Self>) {
        let steps = self.flattener.start(market, now_ms());
        self.flatten_reason
            .insert(market.clone(), reason.to_string());
        if !steps.is_empty() {
            let live = self
                .tracker
                .orders()
                .filter(|o| &o.market == market)
                .count();
            info!(market = %market, orders = live, reason, "flattening the market at the venue");
        }
        self.run_flatten(steps, ctx);
    }

    /// The root of a flatten's cancels' trace: the halt, shutdown or reconciliation that made
    /// them.
    fn flatten_span(&self, market: &MarketId, step: &'static str) -> opentelemetry::Context {
        let reason = self
            .flatten_reason
            .get(market)
            .map_or("reconciliation", String::as_str);
        tracing::info_span!("order_manager.flatten", market = %market, step, reason).context()
    }

    /// Carries out what the flatten core asked for.
    pub(super) fn run_flatten(&mut self, steps: Vec<FlattenStep>, ctx: &mut Context<Self>) {
        for step in steps {
            match step {
                FlattenStep::CancelAll(market) => {
                    let cx = self.flatten_span(&market, "cancel_all");
                    self.submit(
                        market.clone(),
                        vec![Intent::CancelAll { market }],
                        None,
                        None,
                        cx,
                        ctx,
                    )
                }
                FlattenStep::List { market, at_ms } => {
                    let wait = u64::try_from(at_ms - now_ms()).unwrap_or(0);
                    let reg = self.reg.clone();
                    ctx.run_later(std::time::Duration::from_millis(wait), move |_, _| {
                        reg.list_open_orders.do_send(ListOpenOrders { market });
                    });
                }
                FlattenStep::Cancel(market, ids) => {
                    warn!(market = %market, orders = ids.len(), "flatten: orders still open at the venue, cancelling each");
                    let cancels = ids
                        .into_iter()
                        .map(|id| Intent::Cancel {
                            venue_order_id: self
                                .tracker
                                .get(&id)
                                .and_then(|o| o.venue_order_id.clone()),
                            client_order_id: id,
                            market: market.clone(),
                        })
                        .collect();
                    let cx = self.flatten_span(&market, "cancel");
                    self.submit(market, cancels, None, None, cx, ctx);
                }
                FlattenStep::Confirmed(market) => {
                    info!(market = %market, "flatten confirmed: the venue lists no open order of ours");
                    let first = self.reconciled.insert(market.clone());
                    if !self.halted.contains(&market) {
                        self.flattener.resume(&market);
                        if first {
                            self.reg.requote.do_send(RequestRequote {
                                market: Some(market),
                                reason: QuoteReason::Reconciliation,
                            });
                        } else {
                            self.work_market(&market, ctx);
                        }
                    }
                }
            }
        }
    }

    /// Live orders without a venue id whose place can no longer be under way (its outbox row
    /// was superseded, rejected or dead, or there is none): they never reached the venue, or
    /// the venue's answer is unknown. Settled at load so that nothing stays live forever.
    pub(super) fn settle_unsent(&mut self, settled: Vec<(ClientOrderId, Option<String>)>) {
        for (id, place) in settled {
            match place.as_deref() {
                Some("done") => {
                    // Acknowledged, but the order was not updated before a crash: ask the venue.
                    self.apply_and_persist(&id, OrderEvent::OutcomeUnknown, None);
                    self.resolve(vec![id]);
                }
                Some("rejected" | "dead") => {
                    self.apply_and_persist(
                        &id,
                        OrderEvent::Rejected,
                        Some(format!(
                            "its place ended {}",
                            place.as_deref().unwrap_or("")
                        )),
                    );
                }
                _ => {
                    self.apply_and_persist(
                        &id,
                        OrderEvent::Cancelled,
                        Some("never sent: its place was superseded".into()),
                    );
                }
            }
        }
    }
}

impl Handler<TradingStateChanged> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: TradingStateChanged, ctx: &mut Context<Self>) {
        if msg.state == TradingState::Halted {
            self.halted.insert(msg.market.clone());
            let reason: Vec<&str> = msg.reasons.iter().map(|r| r.as_str()).collect();
            self.flatten(&msg.market, &reason.join(","), ctx);
        } else {
            self.halted.remove(&msg.market);
            self.flattener.resume(&msg.market);
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
            self.flatten(&m, &msg.reason, ctx);
        }
    }
}

impl Handler<PersistFailed> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: PersistFailed, ctx: &mut Context<Self>) {
        if !self.reg.gate.storage_failing() {
            // A bad write, not a failing disk: memory is ahead of the database; reload it.
            error!(cause = %msg.error, "intents not persisted, restarting order manager");
            ctx.stop();
            return;
        }
        // SQLite cannot commit: cancels go anyway (they need no new persistence); places never
        // do. What is durable is reloaded once the store recovers.
        self.reload_when_stored = true;
        let (cancels, places): (Vec<OutboxRow>, Vec<OutboxRow>) = msg
            .rows
            .into_iter()
            .partition(|r| r.intent.kind().is_cancel());
        for r in &places {
            if let Some(id) = r.intent.client_order_id() {
                self.apply_and_persist(
                    id,
                    OrderEvent::Cancelled,
                    Some("not sent: its intent could not be stored".into()),
                );
            }
        }
        if !cancels.is_empty() {
            error!(cause = %msg.error, cancels = cancels.len(), "store failing: sending cancels unrecorded");
            self.reg.intents_durable.do_send(IntentsDurable(cancels));
        }
    }
}

impl Handler<RunFlatten> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: RunFlatten, ctx: &mut Context<Self>) {
        self.run_flatten(msg.0, ctx);
    }
}

impl Handler<StorageRecovered> for OrderManager {
    type Result = ();
    fn handle(&mut self, _: StorageRecovered, ctx: &mut Context<Self>) {
        if self.reload_when_stored {
            warn!("store recovered: reloading orders from SQLite");
            ctx.stop();
        }
    }
}
