//! MockExchange is an actor. It owns a simulated DeltaDeFi account ([`matching::MatchingCore`])
//! and answers the gateway's [`VenueRequest`]s after a configurable latency, follows the
//! reference ticks to fill our resting orders, and emits order updates, fills and balances
//! to AccountFeed as the real account stream would. It enforces the order-action budget itself
//! (4290 beyond it), so a rate-limiter bug shows as rejects. Like every transport, it takes a
//! counted request only through the [`SendGate`] (the budget, and the halt gate for places).
//!
//! Its order book (the others' simulated levels and our resting orders) reaches the service's
//! [`crate::venue_book::VenueBooks`] after every change, one latency later, as DeltaDeFi's depth
//! stream would bring it: after a request that changed it, and once per message of ticks (the
//! last tick's book, or the unchanged book again).
//!
//! The simulated exchange outlives a restart of this actor, as a real venue would.

pub mod faults;
pub mod matching;
pub mod streams;
pub mod wire;

use std::time::Duration;

use actix::prelude::*;

use crate::config::{MarketConfig, MockExchangeConfig};
use crate::messages::{ReferenceTicks, TickReceived};
use crate::pricing_rules::MarketRules;
use crate::rate_limiter::SendGate;
use crate::registry::Reg;
use crate::rng::SplitMix64;
use crate::supervision::ActorHealth;
use crate::types::{BinanceSymbol, MarketId, now_ms};
use crate::venue::{VenueEvent, VenueFailure, VenueReply, VenueRequest};
use matching::{MatchingCore, MatchingParams};

/// Asks the simulated venue how many places it rejected, by venue error code (4104: a
/// post-only order would have crossed).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "std::collections::BTreeMap<u32, u64>")]
pub struct GetVenueRejects;

/// The simulated venue.
pub struct MockExchange {
    reg: Reg,
    core: MatchingCore,
    references: Vec<(BinanceSymbol, MarketId)>,
    /// Per market of `references`, during one message of ticks: whether a tick changed its
    /// book (`None`: no tick of its reference). Reused from message to message.
    changed: Vec<Option<bool>>,
    latency: Duration,
    jitter_ms: u64,
    rng: SplitMix64,
    gate: SendGate,
    health: ActorHealth,
}

impl MockExchange {
    /// A venue listing `markets`, enforcing `actions_per_second`.
    pub fn new(
        reg: Reg,
        cfg: &MockExchangeConfig,
        markets: &[MarketConfig],
        actions_per_second: u32,
        gate: SendGate,
    ) -> Self {
        let params = MatchingParams::from_config(cfg, actions_per_second);
        Self {
            reg,
            core: MatchingCore::new(params, markets.iter().map(MarketRules::from).collect()),
            references: markets
                .iter()
                .map(|m| (m.reference.clone(), m.market.clone()))
                .collect(),
            changed: Vec::new(),
            latency: Duration::from_millis(cfg.latency_ms),
            jitter_ms: cfg.latency_jitter_ms,
            rng: SplitMix64::new(cfg.seed ^ 0x5eed),
            gate,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {}

    /// Shows `market`'s book as the venue's depth stream would: a full snapshot, after one
    /// latency.
    fn publish_depth(&self, market: &MarketId, ctx: &mut Context<Self>) {
        let depth = self.core.depth(market);
        self.on_depth_stream(market, ctx, move |books, m| {
            books.set_depth(m, depth, now_ms())
        });
    }

    /// Shows `market`'s book again, unchanged since it was last published, after one latency
    /// (the snapshot is not rebuilt).
    fn republish_depth(&self, market: &MarketId, ctx: &mut Context<Self>) {
        self.on_depth_stream(market, ctx, |books, m| books.refresh(m, now_ms()));
    }

    /// Runs `show` on the venue books for `market` as the depth stream would deliver it: now at
    /// zero latency (no copy of the market id), else after one latency.
    fn on_depth_stream(
        &self,
        market: &MarketId,
        ctx: &mut Context<Self>,
        show: impl FnOnce(&crate::venue_book::VenueBooks, &MarketId) + 'static,
    ) {
        if self.latency.is_zero() {
            show(&self.reg.books, market);
        } else {
            let market = market.clone();
            ctx.run_later(self.latency, move |act, _| show(&act.reg.books, &market));
        }
    }

    fn emit(&self, events: Vec<VenueEvent>, ctx: &mut Context<Self>) {
        if events.is_empty() {
            return;
        }
        if self.latency.is_zero() {
            for e in events {
                self.reg.venue_events.do_send(e);
            }
        } else {
            ctx.run_later(self.latency, move |act, _| {
                for e in events {
                    act.reg.venue_events.do_send(e);
                }
            });
        }
    }

    fn process(
        &mut self,
        req: VenueRequest,
        ctx: &mut Context<Self>,
    ) -> Result<VenueReply, VenueFailure> {
        let now = now_ms();
        let market = match &req {
            VenueRequest::Place(o) => Some(o.market.clone()),
            VenueRequest::Cancel { market, .. } | VenueRequest::CancelAll { market, .. } => {
                Some(market.clone())
            }
            _ => None,
        };
        let (reply, events) = self.core.handle(req, now)?;
        self.emit(events, ctx);
        if let Some(m) = market {
            self.publish_depth(&m, ctx);
        }
        Ok(reply)
    }
}

impl Actor for MockExchange {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        ctx.set_mailbox_capacity(1024);
    }
}

crate::supervised_actor!(MockExchange, "mock_exchange");

impl Handler<VenueRequest> for MockExchange {
    type Result = ResponseActFuture<Self, Result<VenueReply, VenueFailure>>;
    fn handle(&mut self, req: VenueRequest, _: &mut Context<Self>) -> Self::Result {
        let record = req.send_record("outbox");
        let gate = self.gate.clone();
        let latency = self.latency;
        let back = self.latency + Duration::from_millis(self.rng.below(self.jitter_ms + 1));
        // A counted request passes the send gate as it leaves; it reaches the venue after one
        // latency; the answer takes another (+ jitter).
        Box::pin(
            async move {
                if let Some(r) = record {
                    gate.acquire(r).await?;
                }
                if !latency.is_zero() {
                    actix_rt::time::sleep(latency).await;
                }
                Ok::<(), VenueFailure>(())
            }
            .into_actor(self)
            .map(move |sent, act, ctx| sent.and_then(|()| act.process(req, ctx)))
            .then(move |r, act, _| {
                async move {
                    if !back.is_zero() {
                        actix_rt::time::sleep(back).await;
                    }
                    r
                }
                .into_actor(act)
            }),
        )
    }
}

impl Handler<GetVenueRejects> for MockExchange {
    type Result = MessageResult<GetVenueRejects>;
    fn handle(&mut self, _: GetVenueRejects, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.rejects().iter().map(|(c, n)| (*c, *n)).collect())
    }
}

impl Handler<ReferenceTicks> for MockExchange {
    type Result = ();
    fn handle(&mut self, msg: ReferenceTicks, ctx: &mut Context<Self>) {
        // The ticks of one message were received together (one at real rates, a run from a
        // replay at full speed): one clock read for them. Every tick is matched against our
        // orders in turn, its fills emitted at once; each market's book is shown once, after
        // the last tick: rebuilt if a tick changed it, else shown again as it was.
        let now = now_ms();
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        changed.resize(self.references.len(), None);
        for TickReceived { tick: t, .. } in msg.iter() {
            for ((s, m), changed) in self.references.iter().zip(changed.iter_mut()) {
                if *s == t.symbol {
                    let moved = self.core.move_reference(m, t.bid, t.ask, now);
                    self.emit(moved.events, ctx);
                    *changed = Some(moved.depth_changed || changed.unwrap_or(false));
                }
            }
        }
        for ((_, m), changed) in self.references.iter().zip(&changed) {
            match changed {
                Some(true) => self.publish_depth(m, ctx),
                Some(false) => self.republish_depth(m, ctx),
                None => {}
            }
        }
        self.changed = changed;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    use rust_decimal::Decimal;

    use super::*;
    use crate::halt_gate::HaltGate;
    use crate::registry::Registry;
    use crate::venue_book::VenueBooks;

    fn tick(bid: &str, ask: &str) -> TickReceived {
        let d = |s: &str| s.parse::<Decimal>().expect("decimal literal");
        TickReceived::for_tests(1, d(bid), d(ask), Instant::now())
    }

    #[actix_rt::test]
    async fn a_message_of_ticks_leaves_the_book_of_its_last_tick_shown_and_fresh() {
        let market = crate::quote_engine::pricing::tests::market();
        let id = market.market.clone();
        let halt = HaltGate::new([id.clone()], Arc::new(AtomicBool::new(false)));
        let books = Arc::new(VenueBooks::new([id.clone()], 1_000));
        let reg: Reg = Arc::new(Registry::new(halt.clone(), books.clone()));
        let cfg = MockExchangeConfig {
            latency_ms: 0,
            latency_jitter_ms: 0,
            ..MockExchangeConfig::default()
        };
        let mock = MockExchange::new(
            reg,
            &cfg,
            std::slice::from_ref(&market),
            5,
            SendGate::unlimited_for_tests(halt),
        )
        .start();
        let d = |s: &str| Some(s.parse::<Decimal>().expect("decimal literal"));
        let shown = async |ticks: Vec<TickReceived>| {
            mock.do_send(ReferenceTicks::new(ticks.into()));
            // The mailbox is in order: once this is answered, the ticks were handled.
            mock.send(GetVenueRejects).await.expect("mock answers");
            let v = books.view(&id, now_ms());
            assert!(
                v.age_ms.is_some_and(|a| a <= 1_000),
                "shown and fresh: {v:?}"
            );
            (v.bid, v.ask)
        };
        // The book moves on the second tick and not on the third: the second's is shown.
        let moved_then_still = vec![
            tick("0.4500", "0.4502"),
            tick("0.4501", "0.4503"),
            tick("0.4501", "0.4503"),
        ];
        assert_eq!(shown(moved_then_still).await, (d("0.4501"), d("0.4503")));
        // It moves on every tick: the last one's is shown.
        let moved_twice = vec![tick("0.4502", "0.4504"), tick("0.4499", "0.4501")];
        assert_eq!(shown(moved_twice).await, (d("0.4499"), d("0.4501")));
        // Several turns' runs in one message: the last run's last tick's book.
        let mut runs = ReferenceTicks::new(vec![tick("0.4505", "0.4507")].into());
        runs.push(vec![tick("0.4506", "0.4508"), tick("0.4498", "0.4500")].into());
        mock.do_send(runs);
        mock.send(GetVenueRejects).await.expect("mock answers");
        let v = books.view(&id, now_ms());
        assert_eq!((v.bid, v.ask), (d("0.4498"), d("0.4500")));
        let moved_back = vec![tick("0.4499", "0.4501")];
        assert_eq!(shown(moved_back).await, (d("0.4499"), d("0.4501")));
        // A message that moves nothing shows the book again, as it was: fresh again after it
        // had aged.
        books.refresh(&id, now_ms() - 5_000);
        assert_eq!(books.view(&id, now_ms()).bid, None, "aged out");
        let still = vec![tick("0.4499", "0.4501"), tick("0.4499", "0.4501")];
        assert_eq!(shown(still).await, (d("0.4499"), d("0.4501")));
    }
}
