//! Chaos in the reference feed (issue 7, findings 2, 9 and 10), over the wire mock's Binance
//! stream: an absurd but well-formed tick (bid 1e27) is dropped and counted and kills nothing;
//! a feed held at ×10 for 2 s is never quoted on (quoting pauses with reason
//! reference_unconfirmed, and resumes when the feed is back); one update id of u64::MAX does
//! not blind the feed.

mod common;

use std::time::Duration;

use common::wire::{Driver, Reference, WireMock, over_the_wire};
use common::{TempDir, order_stats, staging_config, start_wire, wait_until};
use deltadefi_mm::app::Pipeline;
use mm_actors::binance_feed::GetFeedStats;
use mm_actors::binance_feed::codec::DropReason;
use mm_actors::config::{Config, FeedSource};
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::risk_guard::rules::{HaltReason, TradingState};
use rust_decimal::Decimal;

fn config(dir: &std::path::Path) -> Config {
    let mut cfg = staging_config(dir);
    cfg.feed.source = FeedSource::Live;
    cfg.mock_exchange.latency_ms = 0;
    cfg.feed.stale_after_ms = 1_000;
    cfg.feed.health_interval_ms = 50;
    cfg.risk.check_interval_ms = 50;
    cfg
}

async fn state(p: &Pipeline) -> (TradingState, Vec<HaltReason>) {
    let r = p.risk.send(GetRiskStats).await.expect("risk");
    (r.markets[0].state, r.global_halts)
}

async fn quoting(p: &Pipeline) -> bool {
    order_stats(p).await.markets[0].working > 0 && state(p).await.0 == TradingState::Active
}

/// Waits until the mock has published `n` more reference frames (the market's clock).
async fn market_ticks(mock: &WireMock, n: u64) {
    let start = mock.tickers();
    wait_until(
        &format!("{n} reference moves"),
        Duration::from_secs(60),
        || {
            let now = mock.tickers();
            async move { now >= start + n }
        },
    )
    .await;
}

/// A bot trading the wire mock, whose reference the test drives, once it quotes.
async fn quoting_bot(tag: &str) -> (TempDir, WireMock, Driver, Config, Pipeline) {
    let dir = TempDir::new(tag);
    let cfg = config(dir.path());
    let mock = WireMock::start(&cfg, false);
    let driver = Driver::start(&mock, cfg.markets[0].market.clone());
    let cfg = over_the_wire(cfg, mock.addr);
    let p = start_wire(&cfg);
    wait_until("quoting", Duration::from_secs(30), || {
        let p = p.clone();
        async move { quoting(&p).await }
    })
    .await;
    (dir, mock, driver, cfg, p)
}

fn dropped(stats: &mm_actors::binance_feed::FeedStats, reason: DropReason) -> u64 {
    stats
        .dropped
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

#[actix_rt::test]
async fn an_absurd_tick_is_dropped_and_kills_no_actor() {
    let (_dir, mock, _driver, _cfg, p) = quoting_bot("chaos-absurd").await;
    let intents = order_stats(&p).await.intents;
    {
        let mut st = mock.state.lock().expect("state");
        let u = st.next_update_id();
        st.publish_raw(format!(
            r#"{{"stream":"adausdt@bookTicker","data":{{"u":{u},"s":"ADAUSDT","b":"1000000000000000000000000000","B":"1","a":"1000000000000000000000000001","A":"1"}}}}"#
        ));
    }
    wait_until("the absurd tick counted", Duration::from_secs(10), || {
        let f = p.feed.clone();
        async move {
            f.send(GetFeedStats)
                .await
                .map(|s| dropped(&s, DropReason::OutOfRange) == 1)
                .unwrap_or(false)
        }
    })
    .await;
    // Quoting goes on: new intents, and the marks are sane.
    wait_until(
        "new intents after the absurd tick",
        Duration::from_secs(20),
        || {
            let p = p.clone();
            async move { order_stats(&p).await.intents > intents + 2 }
        },
    )
    .await;
    let risk = p.risk.send(GetRiskStats).await.expect("risk guard alive");
    assert!(
        risk.markets[0].mark.is_some_and(|m| m < Decimal::ONE),
        "{risk:?}"
    );
    assert_eq!(risk.markets[0].state, TradingState::Active);
    let total: u32 = p.health().await.iter().map(|(_, h)| h.restarts).sum();
    assert_eq!(total, 0, "no actor died: {:?}", p.health().await);
    assert_eq!(p.monitor.fatal(), None);
    assert!(p.shutdown(Duration::from_secs(15)).await);
}

#[actix_rt::test]
async fn a_feed_held_at_ten_times_the_market_is_never_quoted_on() {
    let (_dir, mock, driver, cfg, p) = quoting_bot("chaos-x10").await;
    driver.set(Reference::Lie(Decimal::from(10)));
    wait_until(
        "quoting paused: halted for an unconfirmed reference, nothing open",
        Duration::from_secs(10),
        || {
            let p = p.clone();
            let open = mock.open_orders();
            async move {
                let r = p.risk.send(GetRiskStats).await.expect("risk");
                r.markets[0].state == TradingState::Halted && open == 0
            }
        },
    )
    .await;
    market_ticks(&mock, 100).await; // 2 s of the lie
    driver.set(Reference::Market);
    wait_until(
        "quoting again once the feed is back",
        Duration::from_secs(30),
        || {
            let p = p.clone();
            async move { quoting(&p).await }
        },
    )
    .await;
    assert!(p.shutdown(Duration::from_secs(15)).await);
    let held = p.feed.send(GetFeedStats).await.expect("feed").held;
    assert!(held >= 50, "the lie was held back: {held}");
    let band = (Decimal::new(40, 2), Decimal::new(50, 2));
    let outside: Vec<_> = mock
        .all_orders()
        .into_iter()
        .filter(|o| o.price < band.0 || o.price > band.1)
        .collect();
    assert!(outside.is_empty(), "orders outside 0.40-0.50: {outside:?}");
    let conn = common::db(&cfg.run.db_path);
    assert!(
        common::count(
            &conn,
            "SELECT COUNT(*) FROM risk_events WHERE reason LIKE '%reference_unconfirmed%'"
        ) >= 1
    );
}

#[actix_rt::test]
async fn one_update_id_of_u64_max_does_not_blind_the_feed() {
    let (_dir, mock, _driver, cfg, p) = quoting_bot("chaos-u64max").await;
    mock.state.lock().expect("state").publish_raw(format!(
        r#"{{"stream":"adausdt@bookTicker","data":{{"u":{},"s":"ADAUSDT","b":"0.4500","B":"1","a":"0.4501","A":"1"}}}}"#,
        u64::MAX
    ));
    let accepted = p.feed.send(GetFeedStats).await.expect("feed").accepted;
    // Three times the staleness limit later, the feed still delivers and nothing went stale.
    market_ticks(&mock, 150).await;
    let stats = p.feed.send(GetFeedStats).await.expect("feed");
    assert_eq!(dropped(&stats, DropReason::UpdateIdJump), 1, "{stats:?}");
    assert!(stats.accepted > accepted + 100, "{stats:?}");
    assert_eq!(state(&p).await.0, TradingState::Active);
    let conn = common::db(&cfg.run.db_path);
    assert_eq!(
        common::count(
            &conn,
            "SELECT COUNT(*) FROM risk_events WHERE reason LIKE '%stale_feed%' AND to_state = 'HALTED' AND from_state = 'ACTIVE'"
        ),
        0,
        "never stale"
    );
    assert!(p.shutdown(Duration::from_secs(15)).await);
}
