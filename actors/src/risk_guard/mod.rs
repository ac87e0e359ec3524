//! RiskGuard is an actor. It owns positions and PnL (from fills), the feed's freshness, the
//! halts in force (kill switch, daily loss, stale reference, shutdown) and so the trading state
//! of every market: ACTIVE, REDUCING or HALTED. It gives a verdict on every intent
//! ([`rules::check`]) and tells QuoteEngine and OrderManager whenever a market's state changes;
//! OrderManager cancels everything in a market that goes HALTED.
//!
//! It pauses a market whose reference lies too far outside the venue's own book
//! (`reference_diverged`), and denies a place the account cannot fund (balances from the
//! account stream and resyncs, less what our live orders lock).
//!
//! It owns the writes to the [`crate::halt_gate::HaltGate`]: the moment it decides a market is
//! HALTED, the gate closes for that market (so no place leaves the process after that), and
//! the halt's record and the supersession of every place of the market still waiting in the
//! outbox are written in one transaction. The gate starts closed; it opens only after the
//! first evaluation, which follows the load below.
//!
//! On (re)start it rebuilds positions from the `fills` table, restores a latched kill switch
//! or daily-loss halt from `risk_events`, and applies operator commands recorded while the
//! service was down, all before the first evaluation. It polls the `control` table so that
//! `deltadefi-mm kill` reaches a running service. Halts it does not decide itself are read
//! at every evaluation: the store's health (storage) and a fatal supervision report.
//! Position and PnL arithmetic is checked; an overflow halts everything (accounting).

mod book;
mod fills;
mod halts;
pub mod rules;

use std::time::Duration;

use actix::prelude::*;
use rust_decimal::Decimal;
use tracing::{error, info, warn};

use crate::config::{MarketConfig, RiskConfig};
pub use crate::messages::{
    BalancesUpdated, CheckIntents, FeedHealth, SymbolHealth, TradingStateChanged,
};
use crate::messages::{FillApplied, InventoryChanged};
use crate::registry::Reg;
use crate::store::{self, Store, Write, rows};
use crate::supervision::ActorHealth;
use crate::types::now_ms;
use book::RiskBook;
pub use book::{MarketRisk, RiskStats};
use rules::{HaltReason, TradingState};

/// Operator: engage (`true`) or release (`false`) the kill switch.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct KillSwitch {
    pub engage: bool,
    pub source: String,
}

/// Stop trading for shutdown.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct HaltForShutdown;

/// Asks for risk figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "RiskStats")]
pub struct GetRiskStats;

/// The risk holder.
pub struct RiskGuard {
    reg: Reg,
    store: Store,
    cfg: RiskConfig,
    stale_after_ms: i64,
    book: RiskBook,
    ticks: u64,
    loaded: bool,
    /// A sweep of the fills table is under way.
    sweeping: bool,
    health: ActorHealth,
}

impl RiskGuard {
    /// A guard over `markets`.
    pub fn new(
        reg: Reg,
        store: Store,
        cfg: RiskConfig,
        markets: &[MarketConfig],
        stale_after_ms: u64,
    ) -> Self {
        Self {
            reg,
            store,
            cfg,
            stale_after_ms: i64::try_from(stale_after_ms).unwrap_or(i64::MAX),
            book: RiskBook::new(markets),
            ticks: 0,
            loaded: false,
            sweeping: false,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        // Until the reload is done, nothing may be placed.
        for (m, _, _) in self.book.markets() {
            self.reg.gate.set_market(m, false);
        }
        self.book.forget_for_reload();
        self.loaded = false;
        self.sweeping = false;
    }

    /// Compares each market's reference with the venue's own book (without our orders):
    /// beyond `max_reference_divergence_bps` quoting pauses; below 80 % of it, it resumes. An
    /// unknown or stale venue book pauses nothing (the check cannot be made).
    fn check_divergence(&mut self, now: i64) {
        let limit = self.cfg.max_reference_divergence_bps;
        for (market, _, _) in self.book.markets().to_vec() {
            let fair = self.book.marks.get(&market).copied();
            let div = fair.and_then(|f| {
                let (bid, ask) = self.reg.books.others_touch(&market, now)?;
                rules::divergence_bps(f, bid, ask)
            });
            let view = self.reg.books.view(&market, now);
            for (side, price) in [("bid", view.bid), ("ask", view.ask)] {
                if let Some(p) = price.and_then(|p| rust_decimal::prelude::ToPrimitive::to_f64(&p))
                {
                    crate::metrics::metrics().venue_touch.record(
                        p,
                        &[
                            opentelemetry::KeyValue::new("market", market.to_string()),
                            opentelemetry::KeyValue::new("side", side),
                        ],
                    );
                }
            }
            if let Some(d) = div {
                crate::metrics::metrics().divergence.record(
                    rust_decimal::prelude::ToPrimitive::to_f64(&d).unwrap_or(0.0),
                    &[opentelemetry::KeyValue::new("market", market.to_string())],
                );
            }
            match (self.book.set_divergence(&market, div, limit), div) {
                (Some(true), _) => {
                    warn!(market = %market, divergence_bps = %div.unwrap_or_default(), limit_bps = %limit, "reference diverged from the venue's book, pausing quotes");
                }
                (Some(false), Some(d)) => {
                    info!(market = %market, divergence_bps = %d, "reference back within the venue's book");
                }
                (Some(false), None) => {
                    info!(market = %market, "venue book unknown, divergence check suspended");
                }
                (None, _) => {}
            }
        }
    }

    /// Halts everything because position or PnL arithmetic overflowed.
    fn accounting_failed(&mut self, e: &rules::Overflow) {
        if self.book.global_halts.insert(HaltReason::Accounting) {
            error!(cause = %e, "position arithmetic overflowed: halting every market");
            self.persist_global("ACTIVE", "HALTED", HaltReason::Accounting.as_str());
        }
    }

    /// Adds or removes a halt that RiskGuard reads from shared state, logging the change.
    fn follow(&mut self, reason: HaltReason, holds: bool) {
        if holds && self.book.global_halts.insert(reason) {
            error!(reason = reason.as_str(), "halting every market");
            self.persist_global("ACTIVE", "HALTED", reason.as_str());
        } else if !holds && self.book.global_halts.remove(&reason) {
            info!(reason = reason.as_str(), "halt cleared");
            self.persist_global("HALTED", "ACTIVE", reason.as_str());
            if reason == HaltReason::Storage {
                for p in &self.reg.storage_recovered {
                    p.do_send(crate::messages::StorageRecovered);
                }
            }
        }
    }

    fn persist_global(&self, from: &str, to: &str, reason: &str) {
        self.store.write(
            vec![Write::RiskEvent {
                ts_ms: now_ms(),
                market: None,
                from: from.into(),
                to: to.into(),
                reason: reason.into(),
            }],
            None,
        );
    }

    /// Recomputes every market's state, sets the halt gate and announces changes.
    fn evaluate(&mut self) {
        if !self.loaded {
            return;
        }
        let now = now_ms();
        self.follow(HaltReason::Storage, self.reg.gate.storage_failing());
        if self.reg.gate.is_fatal() {
            self.follow(HaltReason::Fatal, true);
        }
        let (daily, overflow) = self.book.refresh(now, self.stale_after_ms);
        if let Some(e) = overflow {
            self.accounting_failed(&e);
        }
        if daily <= -self.cfg.daily_loss_limit
            && self.book.global_halts.insert(HaltReason::DailyLoss)
        {
            error!(daily_pnl = %daily, limit = %self.cfg.daily_loss_limit, "daily loss limit reached, halting");
            self.persist_global("ACTIVE", "HALTED", HaltReason::DailyLoss.as_str());
        }
        self.check_divergence(now);
        self.record_metrics(now);
        for next in self.book.next_states(&self.cfg) {
            // The gate first: from here on no place of a halted market leaves the process.
            self.reg
                .gate
                .set_market(&next.market, next.state != TradingState::Halted);
            if next.changed() {
                self.announce(next, now);
            }
        }
    }

    fn record_metrics(&self, now: i64) {
        let m = crate::metrics::metrics();
        let f = |d: Decimal| rust_decimal::prelude::ToPrimitive::to_f64(&d).unwrap_or(0.0);
        for (market, symbol, _) in self.book.markets() {
            let attrs = [opentelemetry::KeyValue::new("market", market.to_string())];
            let (p, mark) = self.book.figures(market);
            m.inventory.record(f(p.qty), &attrs);
            m.pnl.record(f(p.pnl(mark).unwrap_or_default()), &attrs);
            if let Some(t) = self.book.feed_last.get(symbol) {
                m.feed_age.record((now - t) as f64, &attrs);
            }
            let code = match self.book.states.get(market) {
                Some(TradingState::Active) => 0,
                Some(TradingState::Reducing) => 1,
                Some(TradingState::Halted) | None => 2,
            };
            m.trading_state.record(code, &attrs);
        }
    }
}

impl Actor for RiskGuard {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        let store = self.store.clone();
        ctx.wait(
            async move {
                let fills = store.read(rows::load_fills).await?;
                let halts = store.read(rows::latched_halts).await?;
                Ok::<_, crate::store::StoreError>((fills, halts))
            }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok((
                    fills,
                    rows::LatchedHalts {
                        latest: halt,
                        control,
                    },
                )) => {
                    for e in act.book.load_fills(&fills) {
                        act.accounting_failed(&e);
                    }
                    match halt.as_deref() {
                        Some("kill_switch") => {
                            act.book.global_halts.insert(HaltReason::KillSwitch);
                        }
                        Some("daily_loss") => {
                            act.book.global_halts.insert(HaltReason::DailyLoss);
                        }
                        _ => {}
                    }
                    // A kill switch recorded while the service was down holds before anything
                    // is sent: the gate opens only in the evaluation below.
                    act.apply_control(control);
                    for (m, position) in act.book.positions() {
                        act.reg.inventory.do_send(InventoryChanged {
                            market: m.clone(),
                            position,
                        });
                    }
                    act.loaded = true;
                    act.evaluate();
                }
                Err(e) => {
                    error!(cause = %e, "cannot load positions and halts, restarting");
                    ctx.stop();
                }
            }),
        );
        let every = Duration::from_millis(self.cfg.check_interval_ms);
        ctx.run_interval(every, |act, ctx| {
            act.ticks += 1;
            act.evaluate();
            if act.ticks % 4 == 0 {
                act.poll_control(ctx);
                act.sweep_fills(ctx);
            }
        });
        // Every second whatever `check_interval_ms` is: the watchdog's `--max-age` and the rate
        // limiter's reading of the watchdog's sends (`store::beat`) count on it.
        ctx.run_interval(store::beat::HEARTBEAT_EVERY, |act, _| act.heartbeat());
    }
}

crate::supervised_actor!(RiskGuard, "risk_guard");

impl Handler<CheckIntents> for RiskGuard {
    type Result = MessageResult<CheckIntents>;
    fn handle(&mut self, msg: CheckIntents, _: &mut Context<Self>) -> Self::Result {
        // The check's span is made after the check, and only for an exporting tracer.
        let started = crate::trace::installed().then(std::time::Instant::now);
        if let Some(mid) = msg.reference_mid {
            match self.book.marks.get_mut(&msg.market) {
                Some(mark) => *mark = mid,
                None => {
                    self.book.marks.insert(msg.market.clone(), mid);
                }
            }
        }
        let halts = self.book.halts_for_check(&msg.market, self.loaded);
        let position = self.book.position(&msg.market);
        let verdicts = rules::check_batch(
            &msg.intents,
            rules::Batch {
                cfg: &self.cfg,
                halts: &halts,
                position,
                exposure: msg.exposure,
                funds: msg.funds,
                reference_mid: msg.reference_mid,
                balances: self
                    .cfg
                    .check_capital
                    .then_some(self.book.balances.as_slice()),
            },
        );
        let denied = verdicts.iter().filter(|v| v.is_err()).count() as u64;
        let check_cx = match started {
            Some(started) => crate::trace::check_span(
                &crate::trace::Checked {
                    market: &msg.market,
                    intents: msg.intents.len(),
                    denied: denied as usize,
                    trading_state: self.book.states.get(&msg.market).map(|s| s.as_str()),
                    started,
                },
                &msg.cx,
            ),
            None => opentelemetry::Context::new(),
        };
        // Counted once per reason of this check: the running totals, the metric, and one
        // `denials` row each for the report.
        if denied > 0 {
            let now = crate::types::now_ms();
            let mut writes = Vec::new();
            let by_reason = rules::denials_by_reason(&verdicts);
            self.book
                .count_denials(&msg.market, &by_reason, |reason, count, attrs| {
                    crate::metrics::metrics().denials.add(count, attrs);
                    writes.push(Write::Denials {
                        ts_ms: now,
                        market: msg.market.clone(),
                        reason,
                        count,
                    });
                });
            self.store.write(writes, None);
            if self.book.denials.is_power_of_two()
                && let Some(Err(d)) = verdicts.iter().find(|v| v.is_err())
            {
                // The check's ids, where a tracer made its span (an absent field is not logged).
                let ids = crate::trace::ids(&check_cx);
                warn!(
                    market = %msg.market, cause = %d, denials = self.book.denials,
                    trace_id = ids.as_ref().map(|(t, _)| t.as_str()),
                    span_id = ids.as_ref().map(|(_, s)| s.as_str()),
                    "intent denied"
                );
            }
        }
        MessageResult(verdicts)
    }
}

impl Handler<FeedHealth> for RiskGuard {
    type Result = ();
    fn handle(&mut self, msg: FeedHealth, _: &mut Context<Self>) {
        self.book.apply_feed_health(msg.symbols);
        self.evaluate();
    }
}

impl Handler<BalancesUpdated> for RiskGuard {
    type Result = ();
    fn handle(&mut self, msg: BalancesUpdated, _: &mut Context<Self>) {
        self.book.balances = msg.0;
    }
}

impl Handler<GetRiskStats> for RiskGuard {
    type Result = MessageResult<GetRiskStats>;
    fn handle(&mut self, _: GetRiskStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.book.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{FundsInUse, OpenExposure};
    use crate::types::Side;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A subscriber that only counts the spans made, by name.
    #[derive(Default)]
    struct SpanCount {
        checks: Arc<AtomicU64>,
        next: AtomicU64,
    }
    impl tracing::Subscriber for SpanCount {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            if span.metadata().name() == "risk_guard.check" {
                self.checks.fetch_add(1, Ordering::SeqCst);
            }
            tracing::span::Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// A guard over the test market with `cfg`, on a fresh database (returned with its
    /// directory, to remove), and the market.
    fn guard_with(tag: &str, cfg: RiskConfig) -> (Addr<RiskGuard>, Store, PathBuf, MarketConfig) {
        let (path, dir) = crate::store::tests::temp_db(tag);
        let store = Store::open(&path).expect("store");
        let market = crate::quote_engine::pricing::tests::market();
        let gate = crate::halt_gate::HaltGate::new([market.market.clone()], store.failing_flag());
        let books = Arc::new(crate::venue_book::VenueBooks::new(
            [market.market.clone()],
            1_000,
        ));
        let reg: Reg = Arc::new(crate::registry::Registry::new(gate, books));
        let guard = RiskGuard::new(
            reg,
            store.clone(),
            cfg,
            std::slice::from_ref(&market),
            5_000,
        )
        .start();
        (guard, store, dir, market)
    }

    /// Without an exporting tracer a check makes no span: nothing would read it, and at max
    /// speed there is one per check, most of them denials.
    #[actix_rt::test]
    async fn a_check_makes_no_span_without_a_tracer() {
        assert!(
            !crate::trace::installed(),
            "no test of this crate installs one"
        );
        let checks = Arc::new(AtomicU64::new(0));
        let _default = tracing::subscriber::set_default(SpanCount {
            checks: checks.clone(),
            ..SpanCount::default()
        });
        let (guard, _store, dir, market) = guard_with("risk-span", RiskConfig::default());
        let place = rules::tests::place(Side::Buy, "0.4500", "10");
        let verdicts = guard
            .send(CheckIntents {
                market: market.market.clone(),
                intents: vec![place],
                exposure: OpenExposure::default(),
                funds: FundsInUse::default(),
                reference_mid: None,
                cx: opentelemetry::Context::new(),
            })
            .await
            .expect("verdicts");
        assert_eq!(verdicts.len(), 1, "one verdict per intent");
        assert_eq!(checks.load(Ordering::SeqCst), 0, "no risk_guard.check span");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The heartbeat goes every second even when the risk checks run once a minute: a
    /// watchdog with `--max-age 10s` must not flatten a healthy bot.
    #[actix_rt::test]
    async fn the_heartbeat_is_written_every_second_whatever_the_check_interval() {
        let cfg = RiskConfig {
            check_interval_ms: 60_000,
            ..RiskConfig::default()
        };
        let (_guard, store, dir, _) = guard_with("risk-beat", cfg);
        let beats = || {
            store.read(|c| {
                Ok(c.query_row("SELECT COUNT(*) FROM heartbeat", [], |r| r.get::<_, i64>(0))?)
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // Awaits the store thread's answer each time: the first heartbeat is due after 1 s.
        while beats().await.expect("read") == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no heartbeat within 5 s with check_interval_ms 60000"
            );
            actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
