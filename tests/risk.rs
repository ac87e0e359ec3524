//! RiskGuard through the running pipeline: a stale reference cancels everything and stops
//! quoting until the feed is fresh again; the daily loss limit halts and stays halted; a venue
//! that keeps failing makes intents retry with backoff and then dead-letter, and nothing is
//! left stuck.

mod common;

use std::time::Duration;

use common::{TempDir, assert_settled, count, db, staging_config, start_synthetic, wait_until};
use deltadefi_mm::app::Pipeline;
use mm_actors::binance_feed::PlayMore;
use mm_actors::order_manager::GetOrderStats;
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::risk_guard::rules::{HaltReason, TradingState};
use rust_decimal::Decimal;

async fn state(p: &Pipeline) -> TradingState {
    p.risk.send(GetRiskStats).await.expect("risk").markets[0].state
}

async fn working(p: &Pipeline) -> usize {
    p.orders.send(GetOrderStats).await.expect("orders").markets[0].working
}

async fn live(p: &Pipeline) -> usize {
    p.orders.send(GetOrderStats).await.expect("orders").markets[0].live
}

/// No live order and nothing left in the outbox.
async fn settled(p: &Pipeline) -> bool {
    let open = p
        .outbox
        .send(mm_actors::outbox_worker::GetOutboxStats)
        .await
        .expect("outbox")
        .open;
    live(p).await == 0 && open == 0
}

#[actix_rt::test]
async fn stale_feed_cancels_all_and_quoting_resumes_when_fresh() {
    let dir = TempDir::new("stale");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 20;
    cfg.feed.stale_after_ms = 400;
    cfg.feed.health_interval_ms = 50;
    cfg.risk.check_interval_ms = 50;
    let db_path = cfg.run.db_path.clone();
    // 150 ticks (~3 s), then silence until PlayMore.
    let p = start_synthetic(&cfg, Some(150));

    wait_until("orders working", Duration::from_secs(20), || {
        let p = p.clone();
        async move { working(&p).await > 0 }
    })
    .await;
    wait_until(
        "the feed to go stale and every order to be cancelled",
        Duration::from_secs(20),
        || {
            let p = p.clone();
            async move { state(&p).await == TradingState::Halted && live(&p).await == 0 }
        },
    )
    .await;
    let conn = db(&db_path);
    assert!(
        count(
            &conn,
            "SELECT COUNT(*) FROM risk_events WHERE to_state = 'HALTED' AND reason = 'stale_feed'"
        ) >= 2
    );
    // Its outcome is committed by the store thread a moment after OutboxWorker learns it.
    wait_until(
        "the cancel-all to be recorded done",
        Duration::from_secs(5),
        || {
            let path = db_path.clone();
            async move {
                count(
                    &db(&path),
                    "SELECT COUNT(*) FROM outbox WHERE kind = 'cancel_all' AND status = 'done'",
                ) >= 1
            }
        },
    )
    .await;
    let placed_while_stale = count(&conn, "SELECT COUNT(*) FROM outbox WHERE kind = 'place'");

    p.feed.do_send(PlayMore(1_000));
    wait_until(
        "quoting to resume on fresh ticks",
        Duration::from_secs(20),
        || {
            let p = p.clone();
            async move { state(&p).await == TradingState::Active && working(&p).await > 0 }
        },
    )
    .await;
    assert!(
        count(
            &db(&db_path),
            "SELECT COUNT(*) FROM outbox WHERE kind = 'place'"
        ) > placed_while_stale
    );
    assert!(p.shutdown(Duration::from_secs(15)).await);
}

#[actix_rt::test]
async fn daily_loss_limit_halts_and_latches() {
    let dir = TempDir::new("loss");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 10;
    cfg.feed.synthetic.burst_probability = Decimal::new(3, 2);
    cfg.markets[0].venue_spread_bps = Decimal::from(4);
    cfg.mock_exchange.maker_fee_bps = Decimal::from(50); // every fill costs ~0.2 USDM
    cfg.risk.daily_loss_limit = Decimal::new(1, 2); // 0.01 USDM
    let db_path = cfg.run.db_path.clone();
    let p = start_synthetic(&cfg, None);

    wait_until(
        "a fill to break the daily loss limit",
        Duration::from_secs(30),
        || {
            let p = p.clone();
            async move {
                let r = p.risk.send(GetRiskStats).await.expect("risk");
                r.global_halts.contains(&HaltReason::DailyLoss)
            }
        },
    )
    .await;
    wait_until("every order cancelled", Duration::from_secs(15), || {
        let p = p.clone();
        async move { state(&p).await == TradingState::Halted && settled(&p).await }
    })
    .await;
    let r = p.risk.send(GetRiskStats).await.expect("risk");
    assert!(
        r.markets[0].daily_pnl <= -cfg.risk.daily_loss_limit,
        "{r:?}"
    );
    let conn = db(&db_path);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM risk_events WHERE market IS NULL AND reason = 'daily_loss'"
        ),
        1
    );
    // Latched: the feed is fresh and ticking, yet nothing is placed any more.
    let placed = count(&conn, "SELECT COUNT(*) FROM outbox WHERE kind = 'place'");
    let before = p.orders.send(GetOrderStats).await.expect("orders").intents;
    wait_until(
        "more ticks priced while halted",
        Duration::from_secs(10),
        || {
            let p = p.clone();
            async move {
                let q = p
                    .quotes
                    .send(mm_actors::quote_engine::GetQuoteStats)
                    .await
                    .expect("quotes");
                q[0].ticks > 300
            }
        },
    )
    .await;
    assert_eq!(
        p.orders.send(GetOrderStats).await.expect("orders").intents,
        before
    );
    assert_eq!(
        count(
            &db(&db_path),
            "SELECT COUNT(*) FROM outbox WHERE kind = 'place'"
        ),
        placed
    );
    assert!(p.shutdown(Duration::from_secs(15)).await);
}

#[actix_rt::test]
async fn failing_venue_retries_with_backoff_then_dead_letters() {
    let dir = TempDir::new("rejects");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 20;
    cfg.mock_exchange.reject_probability = Decimal::new(6, 1); // 60 % of actions fail with 5000
    cfg.mock_exchange.latency_ms = 2;
    cfg.outbox.max_attempts = 2;
    cfg.outbox.backoff_initial_ms = 50;
    cfg.rate_limit.actions_per_second = 20;
    let db_path = cfg.run.db_path.clone();
    let p = start_synthetic(&cfg, None);

    wait_until(
        "a retried success and a dead letter",
        Duration::from_secs(30),
        || {
            let path = db_path.clone();
            async move {
                let conn = db(&path);
                count(
                    &conn,
                    "SELECT COUNT(*) FROM outbox WHERE status = 'done' AND attempts = 2",
                ) >= 1
                    && count(&conn, "SELECT COUNT(*) FROM outbox WHERE status = 'dead'") >= 1
            }
        },
    )
    .await;
    assert!(
        p.shutdown(Duration::from_secs(20)).await,
        "drains despite the failing venue"
    );
    let conn = db(&db_path);
    // Backoff: a retry went out no sooner than backoff_initial_ms after the first attempt.
    let min_gap = count(
        &conn,
        "SELECT MIN(b.sent_at_ms - a.sent_at_ms) FROM outbox_sends a JOIN outbox_sends b
         ON a.outbox_id = b.outbox_id AND b.attempt = a.attempt + 1",
    );
    assert!(min_gap >= 50, "retry after {min_gap} ms");
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM outbox WHERE attempts > 2"),
        0,
        "max_attempts respected"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE status = 'dead' AND last_error NOT LIKE '5000%'"
        ),
        0,
        "dead letters keep the venue's error"
    );
    // A dead-lettered place leaves no live order behind, and nothing is left open.
    assert_settled(&conn);
}

/// A fill AccountFeed stored but never handed on (it stopped between the two) still reaches
/// the position: RiskGuard sweeps the fills table after the last row it counted, and counts a
/// row whose report has not come by its next sweep. A late report of it then counts nothing.
#[actix_rt::test]
async fn a_fill_stored_but_never_reported_is_counted_from_the_store() {
    use mm_actors::messages::FillApplied;
    use mm_actors::store::rows;
    use mm_actors::types::{Side, TradeId, VenueOrderId};
    use mm_actors::venue::{Liquidity, VenueFill};

    let dir = TempDir::new("unreported-fill");
    let mut cfg = staging_config(dir.path());
    cfg.risk.check_interval_ms = 20;
    // No ticks: nothing is quoted, so this is the only fill.
    let p = start_synthetic(&cfg, Some(0));
    let fill = VenueFill {
        trade_id: TradeId("lost-report-1".into()),
        venue_order_id: VenueOrderId("v-1".into()),
        client_order_id: None,
        market: cfg.markets[0].market.clone(),
        side: Side::Buy,
        price: Decimal::new(45, 2),
        size: Decimal::from(123),
        fee: Decimal::ZERO,
        liquidity: Liquidity::Maker,
        ts_ms: 1,
    };
    // RiskGuard answers only once it has loaded the stored fills (its start-up read holds its
    // mailbox): the row below is stored after that load.
    let before = p.risk.send(GetRiskStats).await.expect("risk");
    assert_eq!(
        (before.markets[0].position, before.fills),
        (Decimal::ZERO, 0)
    );
    let stored = fill.clone();
    let row = p
        .store
        .read(move |c| rows::insert_fill(c, &stored))
        .await
        .expect("stored")
        .expect("a new row");
    wait_until(
        "RiskGuard to count the unreported fill",
        Duration::from_secs(10),
        || {
            let p = p.clone();
            async move {
                let r = p.risk.send(GetRiskStats).await.expect("risk");
                r.markets[0].position == Decimal::from(123)
            }
        },
    )
    .await;
    // The report turns up after all: the row is counted once.
    p.risk.do_send(FillApplied {
        fill,
        fill_row_id: row,
    });
    let r = p.risk.send(GetRiskStats).await.expect("risk");
    assert_eq!((r.markets[0].position, r.fills), (Decimal::from(123), 1));
    assert!(p.shutdown(Duration::from_secs(15)).await);
}
