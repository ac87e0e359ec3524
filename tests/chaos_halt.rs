//! Chaos: a halt stops trading for real (issue 7, finding 1 and 12).
//!
//! Over the wire mock on 127.0.0.1: the kill switch engaged while its cancel-all is still in
//! flight lets no place out and ends with the venue listing nothing open; a cancel-all that
//! claims "nothing to cancel" while orders remain is followed by a listing and one cancel per
//! order; a kill switch recorded while the service was down holds before anything is sent; a
//! dead process's pending places are never sent by the next one.

mod common;

use std::time::Duration;

use common::wire::{WireMock, over_the_wire};
use common::{TempDir, count, db, order_stats, staging_config, start_wire, wait_until};
use deltadefi_mm::app::Pipeline;
use mm_actors::binance_feed::GetFeedStats;
use mm_actors::config::Config;
use mm_actors::risk_guard::rules::TradingState;
use mm_actors::risk_guard::{GetRiskStats, KillSwitch};
use mm_actors::types::now_ms;
use rust_decimal::Decimal;

fn config(dir: &std::path::Path) -> Config {
    let mut cfg = staging_config(dir);
    cfg.feed.synthetic.interval_ms = 20;
    cfg.mock_exchange.latency_ms = 0;
    cfg.gateway.reconcile_interval_ms = 1_000;
    cfg.markets[0].levels = 3;
    cfg
}

async fn flat_and_halted(p: &Pipeline) -> bool {
    let s = order_stats(p).await;
    let r = p.risk.send(GetRiskStats).await.expect("risk");
    s.markets[0].flat && s.markets[0].live == 0 && r.markets[0].state == TradingState::Halted
}

fn places_after(mock: &WireMock, t: i64) -> usize {
    mock.arrivals()
        .iter()
        .filter(|(at, kind)| *kind == "place" && *at > t)
        .count()
}

/// A bot trading the wire mock (whose reference walks), once orders rest at the venue.
async fn quoting_bot(tag: &str) -> (TempDir, WireMock, Pipeline) {
    let dir = TempDir::new(tag);
    let cfg = config(dir.path());
    let mock = WireMock::start(&cfg, true);
    let p = start_wire(&over_the_wire(cfg, mock.addr));
    mock.wait_resting(3).await;
    (dir, mock, p)
}

async fn kill(p: &Pipeline, engage: bool) {
    p.risk.do_send(KillSwitch {
        engage,
        source: "test".into(),
    });
}

#[actix_rt::test]
async fn kill_switch_with_its_cancel_all_in_flight_lets_no_place_out_and_ends_flat() {
    let (_dir, mock, p) = quoting_bot("chaos-kill-inflight").await;
    // Places caught between build and submit at the kill: their builds answer late.
    let built = mock.state.lock().expect("state").unsubmitted_builds();
    for _ in 0..4 {
        mock.fault(serde_json::json!({"path": "/order/build", "delay_ms": 600}));
    }
    wait_until(
        "a place in flight, its build answering late",
        Duration::from_secs(30),
        || {
            let n = mock.state.lock().expect("state").unsubmitted_builds();
            async move { n > built }
        },
    )
    .await;
    // The cancel-all is executed by the venue, but its answer takes 1.5 s.
    mock.fault(serde_json::json!({"path": "/order/cancel-all", "delay_ms": 1500}));
    let t_kill = now_ms();
    kill(&p, true).await;
    wait_until(
        "the kill's cancel-all at the venue",
        Duration::from_secs(10),
        || {
            let n = mock
                .arrivals()
                .iter()
                .filter(|(t, k)| *k == "cancel_all" && *t >= t_kill)
                .count();
            async move { n >= 1 }
        },
    )
    .await;
    // While it is in flight: released, and engaged again.
    kill(&p, false).await;
    kill(&p, true).await;
    wait_until(
        "halted, and the venue listing nothing open",
        Duration::from_secs(20),
        || {
            let p = p.clone();
            async move { flat_and_halted(&p).await }
        },
    )
    .await;
    assert_eq!(mock.open_orders(), 0, "the venue lists nothing open");
    // A place written just before the kill may still be on the wire for a few ms; none after.
    assert_eq!(
        places_after(&mock, t_kill + 100),
        0,
        "{:?}",
        mock.arrivals()
    );
    // And none later, while the reference goes on moving.
    let frames = p.feed.send(GetFeedStats).await.expect("feed").frames;
    wait_until("100 more reference ticks", Duration::from_secs(20), || {
        let f = p.feed.clone();
        async move {
            f.send(GetFeedStats)
                .await
                .map(|s| s.frames > frames + 100)
                .unwrap_or(false)
        }
    })
    .await;
    assert_eq!(places_after(&mock, t_kill + 100), 0);
    assert_eq!(mock.open_orders(), 0);
    assert!(p.shutdown(Duration::from_secs(15)).await);
}

#[actix_rt::test]
async fn a_cancel_all_that_misses_orders_is_followed_by_one_cancel_per_order_left() {
    let (_dir, mock, p) = quoting_bot("chaos-cancel-all-lies").await;
    // The venue answers "Order not found" (4200, nothing to cancel) and cancels nothing.
    mock.fault(serde_json::json!({"path": "/order/cancel-all", "code": 4200}));
    let t_kill = now_ms();
    kill(&p, true).await;
    wait_until("the venue flat again", Duration::from_secs(20), || {
        let p = p.clone();
        async move { flat_and_halted(&p).await }
    })
    .await;
    assert_eq!(mock.open_orders(), 0);
    let single = mock
        .arrivals()
        .iter()
        .filter(|(t, k)| *k == "cancel" && *t >= t_kill)
        .count();
    assert!(
        single >= 3,
        "orders left were cancelled one by one: {single}"
    );
    assert!(p.shutdown(Duration::from_secs(15)).await);
}

#[actix_rt::test]
async fn a_kill_switch_recorded_while_down_holds_before_anything_is_sent() {
    let dir = TempDir::new("chaos-latched-kill");
    let cfg = config(dir.path());
    let mock = WireMock::start(&cfg, true);
    let cfg = over_the_wire(cfg, mock.addr);
    // `deltadefi-mm kill --db` while the service is down.
    {
        let store = mm_actors::store::Store::open(&cfg.run.db_path).expect("store");
        drop(store);
        let conn = rusqlite::Connection::open(&cfg.run.db_path).expect("db");
        conn.execute(
            "INSERT INTO control(ts_ms, command) VALUES (?1, 'kill')",
            [now_ms()],
        )
        .expect("kill recorded");
    }
    // A dead process's place, decided 10 s ago and never sent.
    {
        let conn = rusqlite::Connection::open(&cfg.run.db_path).expect("db");
        let old = now_ms() - 10_000;
        conn.execute_batch(&format!(
            "INSERT INTO orders(client_order_id, market, slot, side, price, size, state, created_at_ms, updated_at_ms)
                 VALUES ('mm-dead-1', 'ADAUSDM', 'buy0', 'buy', '0.4400', '100', 'pending_new', {old}, {old});
             INSERT INTO outbox(id, kind, market, client_order_id, slot, side, price, size, status, created_at_ms, next_attempt_at_ms)
                 VALUES (1, 'place', 'ADAUSDM', 'mm-dead-1', 'buy0', 'buy', '0.4400', '100', 'pending', {old}, {old});
             -- Killed between a cancel that collapsed a place never sent and the outbox's word
             -- of it: the order waits to be cancelled, with no venue id and nothing in flight.
             INSERT INTO orders(client_order_id, market, slot, side, price, size, state, created_at_ms, updated_at_ms)
                 VALUES ('mm-dead-2', 'ADAUSDM', 'sell0', 'sell', '0.4600', '100', 'pending_cancel', {old}, {old});
             INSERT INTO outbox(id, kind, market, client_order_id, slot, side, price, size, status, created_at_ms, next_attempt_at_ms)
                 VALUES (2, 'place', 'ADAUSDM', 'mm-dead-2', 'sell0', 'sell', '0.4600', '100', 'superseded', {old}, {old});"
        ))
        .expect("a dead process's pending place");
    }
    let p = start_wire(&cfg);
    wait_until(
        "the start-up flatten confirmed and 100 reference ticks seen",
        Duration::from_secs(30),
        || {
            let p = p.clone();
            async move {
                let frames = p
                    .feed
                    .send(GetFeedStats)
                    .await
                    .map(|s| s.frames)
                    .unwrap_or(0);
                frames > 100 && flat_and_halted(&p).await
            }
        },
    )
    .await;
    assert_eq!(
        mock.arrivals()
            .iter()
            .filter(|(_, k)| *k == "place")
            .count(),
        0,
        "nothing placed while the kill switch holds: {:?}",
        mock.arrivals()
    );
    let risk = p.risk.send(GetRiskStats).await.expect("risk");
    assert!(
        risk.global_halts
            .contains(&mm_actors::risk_guard::rules::HaltReason::KillSwitch)
    );
    assert!(p.shutdown(Duration::from_secs(15)).await);
    let conn = db(&cfg.run.db_path);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM control WHERE consumed_at_ms IS NULL"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE id = 1 AND status = 'superseded'"
        ),
        1,
        "the dead process's place was dropped, never sent"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM orders WHERE client_order_id IN ('mm-dead-1', 'mm-dead-2') AND state = 'cancelled'"
        ),
        2,
        "nothing of the dead process stays live"
    );
    // No order of the venue's is priced off the old decision.
    assert!(
        mock.all_orders()
            .iter()
            .all(|o| o.price != Decimal::new(4400, 4))
    );
}
