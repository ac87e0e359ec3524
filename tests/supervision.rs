//! Fault injection: each actor in turn fails (a panic inside a handler, or an error that stops
//! it). The failed actor is restarted alone by its supervisor; every other actor keeps its
//! state (no restart, counters keep growing from where they were), and quoting resumes.

mod common;

use std::time::Duration;

use common::{TempDir, staging_config, start_synthetic, wait_until};
use deltadefi_mm::app::Pipeline;
use mm_actors::account_feed::GetAccountStats;
use mm_actors::binance_feed::GetFeedStats;
use mm_actors::order_manager::GetOrderStats;
use mm_actors::outbox_worker::GetOutboxStats;
use mm_actors::quote_engine::GetQuoteStats;
use mm_actors::rate_limiter::GetBudget;
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::supervision::{ActorHealth, FaultKind, InjectFault};
use rust_decimal::Decimal;

/// Monotonic counters of every actor that has some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    feed_frames: u64,
    quote_ticks: u64,
    intents: u64,
    risk_fills: u64,
    permits: u64,
    sent: u64,
    order_updates: u64,
}

async fn counters(p: &Pipeline) -> Counters {
    Counters {
        feed_frames: p.feed.send(GetFeedStats).await.expect("feed").frames,
        quote_ticks: p
            .quotes
            .send(GetQuoteStats)
            .await
            .expect("quotes")
            .iter()
            .map(|m| m.ticks)
            .sum(),
        intents: p.orders.send(GetOrderStats).await.expect("orders").intents,
        risk_fills: p.risk.send(GetRiskStats).await.expect("risk").fills,
        permits: p
            .limiter
            .send(GetBudget)
            .await
            .expect("limiter")
            .granted_total,
        sent: p
            .outbox
            .send(GetOutboxStats)
            .await
            .expect("outbox")
            .sent_total,
        order_updates: p
            .account
            .send(GetAccountStats)
            .await
            .expect("account")
            .order_updates,
    }
}

async fn inject(p: &Pipeline, actor: &str, kind: FaultKind) {
    let f = InjectFault(kind);
    match actor {
        "binance_feed" => p.feed.do_send(f),
        "quote_engine" => p.quotes.do_send(f),
        "order_manager" => p.orders.do_send(f),
        "risk_guard" => p.risk.do_send(f),
        "rate_limiter" => p.limiter.do_send(f),
        "outbox_worker" => p.outbox.do_send(f),
        "gateway" => p.gateway.do_send(f),
        "account_feed" => p.account.do_send(f),
        "mock_exchange" => p.mock.as_ref().expect("in-process mock").do_send(f),
        other => panic!("unknown actor {other}"),
    }
}

fn restarts_of(h: &[(&'static str, ActorHealth)], actor: &str) -> u32 {
    h.iter()
        .find(|(n, _)| *n == actor)
        .map(|(_, h)| h.restarts)
        .expect("actor listed")
}

#[actix_rt::test]
async fn each_actor_restarts_alone_and_quoting_resumes() {
    let dir = TempDir::new("faults");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 10;
    cfg.feed.synthetic.burst_probability = Decimal::new(2, 2);
    cfg.markets[0].requote_tolerance_bps = Decimal::from(2);
    cfg.mock_exchange.latency_ms = 5;
    cfg.rate_limit.actions_per_second = 20;
    let p = start_synthetic(&cfg, None);

    wait_until("quoting to start", Duration::from_secs(20), || {
        let o = p.orders.clone();
        async move {
            o.send(GetOrderStats)
                .await
                .map(|s| s.intents > 4)
                .unwrap_or(false)
        }
    })
    .await;

    let actors = [
        ("binance_feed", FaultKind::Panic),
        ("quote_engine", FaultKind::Error),
        ("order_manager", FaultKind::Panic),
        ("risk_guard", FaultKind::Error),
        ("rate_limiter", FaultKind::Panic),
        ("outbox_worker", FaultKind::Error),
        ("gateway", FaultKind::Panic),
        ("account_feed", FaultKind::Error),
        ("mock_exchange", FaultKind::Panic),
        ("order_manager", FaultKind::Error),
        ("quote_engine", FaultKind::Panic),
    ];
    for (actor, kind) in actors {
        let before = p.health().await;
        let c0 = counters(&p).await;
        inject(&p, actor, kind).await;
        let want = restarts_of(&before, actor) + 1;
        wait_until(
            &format!("{actor} to restart after {kind:?}"),
            Duration::from_secs(10),
            || {
                let p = p.clone();
                async move { restarts_of(&p.health().await, actor) == want }
            },
        )
        .await;
        let after = p.health().await;
        for (name, h) in &after {
            if *name != actor {
                assert_eq!(
                    h.restarts,
                    restarts_of(&before, name),
                    "{name} restarted when {actor} failed"
                );
            }
        }
        // Others keep their state: no counter went back.
        let c1 = counters(&p).await;
        assert!(
            c1.feed_frames >= c0.feed_frames,
            "{actor}: {c0:?} -> {c1:?}"
        );
        assert!(
            c1.quote_ticks >= c0.quote_ticks,
            "{actor}: {c0:?} -> {c1:?}"
        );
        assert!(c1.intents >= c0.intents, "{actor}: {c0:?} -> {c1:?}");
        assert!(c1.risk_fills >= c0.risk_fills, "{actor}: {c0:?} -> {c1:?}");
        assert!(c1.permits >= c0.permits, "{actor}: {c0:?} -> {c1:?}");
        assert!(c1.sent >= c0.sent, "{actor}: {c0:?} -> {c1:?}");
        assert!(
            c1.order_updates >= c0.order_updates,
            "{actor}: {c0:?} -> {c1:?}"
        );
        // Quoting resumes: new intents are approved and new requests reach the venue.
        wait_until(
            &format!("quoting to resume after {actor} failed"),
            Duration::from_secs(20),
            || {
                let p = p.clone();
                async move {
                    let c = counters(&p).await;
                    c.intents > c1.intents + 1 && c.sent > c1.sent
                }
            },
        )
        .await;
    }
    let health = p.health().await;
    let total: u32 = health.iter().map(|(_, h)| h.restarts).sum();
    assert_eq!(total, 11, "{health:?}");
    assert!(
        p.shutdown(Duration::from_secs(15)).await,
        "drains after all the faults"
    );
}
