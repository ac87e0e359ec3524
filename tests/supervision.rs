//! Fault injection: each actor in turn fails (a panic inside a handler, a timer or a future
//! spawned on it, or an error that stops it). The failed actor is restarted alone by its supervisor; every other actor keeps its
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
        // A panic in a timer (RiskGuard's evaluation runs on one) and in a spawned future.
        ("risk_guard", FaultKind::PanicInTimer),
        ("outbox_worker", FaultKind::PanicInFuture),
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
    assert_eq!(total, 13, "{health:?}");
    assert!(
        p.shutdown(Duration::from_secs(15)).await,
        "drains after all the faults"
    );
}

/// An actor that cannot be kept alive halts the service: a fatal report (a crash loop, or a
/// mailbox found closed by the liveness check) closes the halt gate at once, halts every
/// market with reason `fatal` and flattens the venue.
#[actix_rt::test]
async fn a_fatal_condition_halts_trading_and_flattens() {
    let dir = TempDir::new("fatal");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 10;
    cfg.mock_exchange.latency_ms = 2;
    let p = start_synthetic(&cfg, None);
    wait_until("orders working", Duration::from_secs(20), || {
        let o = p.orders.clone();
        async move {
            o.send(GetOrderStats)
                .await
                .map(|s| s.markets[0].working > 0)
                .unwrap_or(false)
        }
    })
    .await;
    p.monitor.report_fatal(mm_actors::supervision::Fatal {
        actor: "test",
        reason: "a drill".into(),
    });
    assert!(
        !p.reg.gate.allows_place(&cfg.markets[0].market),
        "the gate closes synchronously"
    );
    wait_until("halted for fatal and flat", Duration::from_secs(20), || {
        let p = p.clone();
        async move {
            let r = p.risk.send(GetRiskStats).await.expect("risk");
            let o = p.orders.send(GetOrderStats).await.expect("orders");
            r.global_halts
                .contains(&mm_actors::risk_guard::rules::HaltReason::Fatal)
                && o.markets[0].flat
                && o.markets[0].live == 0
        }
    })
    .await;
    assert!(p.shutdown(Duration::from_secs(15)).await);
}

/// A dead actor (here: every actor of the venue arbiter, stopped under it) is found by the
/// liveness check and reported as fatal: never a silent dead actor.
#[actix_rt::test]
async fn a_dead_actor_is_found_and_reported() {
    let dir = TempDir::new("dead-actor");
    let cfg = staging_config(dir.path());
    let p = start_synthetic(&cfg, None);
    wait_until("the pipeline up", Duration::from_secs(20), || {
        let o = p.orders.clone();
        async move { o.send(GetOrderStats).await.is_ok() }
    })
    .await;
    p.stop();
    wait_until("the dead actor reported", Duration::from_secs(10), || {
        let m = p.monitor.clone();
        async move { m.fatal().is_some() }
    })
    .await;
    let fatal = p.monitor.fatal().expect("fatal");
    assert!(fatal.reason.contains("dead"), "{fatal}");
    assert!(
        [
            "rate_limiter",
            "outbox_worker",
            "gateway",
            "account_feed",
            "mock_exchange"
        ]
        .contains(&fatal.actor),
        "{fatal}"
    );
}
