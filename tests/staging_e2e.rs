//! The staging pipeline end to end: a recorded replay through every actor to fills in SQLite.
//!
//! Asserts: orders were placed and filled; every outbox row reached a terminal state; no
//! one-second window holds more sends than the budget; no quote crossed the reference; the
//! position never passed its limit; bad market frames were dropped and counted; the database
//! passes `PRAGMA integrity_check`.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{TempDir, count, db, repo_path, staging_config, wait_until};
use deltadefi_mm::app::{Pipeline, VenueAccess, feed_spec};
use deltadefi_mm::status::max_actions_per_second;
use mm_actors::binance_feed::GetFeedStats;
use mm_actors::binance_feed::codec::DropReason;
use mm_actors::config::{FeedSource, ReplaySpeed};
use mm_actors::store::Store;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal in db")
}

#[actix_rt::test]
async fn replay_through_the_pipeline_to_fills() {
    let dir = TempDir::new("e2e");
    let mut cfg = staging_config(dir.path());
    cfg.feed.source = FeedSource::Replay;
    cfg.feed.replay.path = repo_path("tests/data/adausdt-bookticker.jsonl");
    cfg.feed.replay.speed = ReplaySpeed::Recorded;
    // Tight quotes and a binding position limit, so that fills happen and the limit matters.
    cfg.markets[0].venue_spread_bps = Decimal::from(4);
    cfg.markets[0].requote_tolerance_bps = Decimal::from(3);
    cfg.risk.max_position = Decimal::from(300);
    assert!(cfg.validate().is_empty());
    let budget = cfg.rate_limit.actions_per_second;
    let max_position = cfg.risk.max_position;
    let db_path = cfg.run.db_path.clone();

    let store = Store::open(&db_path).expect("store");
    let p = Pipeline::start(
        &cfg,
        store,
        feed_spec(&cfg).expect("replay loads"),
        VenueAccess::InProcess,
    )
    .expect("pipeline starts");
    wait_until("the replay to finish", Duration::from_secs(40), || {
        let feed = p.feed.clone();
        async move {
            feed.send(GetFeedStats)
                .await
                .map(|s| s.finished)
                .unwrap_or(false)
        }
    })
    .await;
    let feed = p.feed.send(GetFeedStats).await.expect("feed stats");
    assert!(p.shutdown(Duration::from_secs(15)).await, "shutdown drains");
    let health = p.health().await;
    assert!(
        health.iter().all(|(_, h)| h.restarts == 0),
        "no actor restarted: {health:?}"
    );

    // Bad frames in the file: 2 malformed fields + 1 bad JSON, 1 crossed, 1 zero, 1 old u, 1 other symbol.
    let dropped = |r: DropReason| {
        feed.dropped
            .iter()
            .find(|(x, _)| *x == r)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(dropped(DropReason::Malformed), 2, "{feed:?}");
    assert_eq!(dropped(DropReason::Crossed), 1);
    assert_eq!(dropped(DropReason::NonPositive), 1);
    assert_eq!(dropped(DropReason::OutOfOrder), 1);
    assert_eq!(dropped(DropReason::UnknownSymbol), 1);
    assert_eq!(feed.accepted, 480 - 6);

    let conn = db(&db_path);
    let placed = count(
        &conn,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'place' AND status = 'done'",
    );
    let fills = count(&conn, "SELECT COUNT(*) FROM fills");
    assert!(placed >= 4, "orders placed at the venue: {placed}");
    assert!(fills >= 2, "fills: {fills}");
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'in_flight', 'unknown')"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM orders WHERE state NOT IN ('filled', 'cancelled', 'rejected')"
        ),
        0,
        "no live order after shutdown"
    );
    // The budget: every real send is in outbox_sends; outbox.sent_at_ms is each row's first send.
    let max_window = max_actions_per_second(&conn).expect("windows");
    assert!(
        max_window >= 1 && max_window <= budget,
        "max sends in a 1 s window: {max_window}"
    );
    let max_calendar_second = count(
        &conn,
        "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM outbox WHERE sent_at_ms IS NOT NULL GROUP BY sent_at_ms / 1000)",
    );
    assert!(
        max_calendar_second <= i64::from(budget),
        "sent_at_ms per second: {max_calendar_second}"
    );
    // Quotes never crossed the reference (levels included).
    let mut stmt = conn
        .prepare("SELECT ref_bid, ref_ask, levels FROM quotes")
        .expect("prepare");
    let quotes: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert!(quotes.len() > 10, "quotes recorded: {}", quotes.len());
    for (rb, ra, levels) in &quotes {
        let levels: Vec<serde_json::Value> = serde_json::from_str(levels).expect("levels json");
        for l in levels {
            let price = d(l["price"].as_str().expect("price"));
            if l["slot"].as_str().expect("slot").starts_with("buy") {
                assert!(price < d(ra), "bid {price} crosses ref ask {ra}");
            } else {
                assert!(price > d(rb), "ask {price} crosses ref bid {rb}");
            }
        }
    }
    // The position, fill by fill, stayed within the limit.
    let mut stmt = conn
        .prepare("SELECT side, size FROM fills ORDER BY id")
        .expect("prepare");
    let mut position = Decimal::ZERO;
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query")
    {
        let (side, size) = row.expect("row");
        position += if side == "buy" { d(&size) } else { -d(&size) };
        assert!(
            position.abs() <= max_position,
            "position {position} beyond {max_position}"
        );
    }
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
}
