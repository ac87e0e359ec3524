//! The bot aware of the venue (issue 8), against the wire mock on 127.0.0.1: the venue's book
//! arrives over DeltaDeFi's depth stream; a reference that leaves the venue's book pauses
//! quoting (`reference_diverged`) and quoting resumes when it is back; RiskGuard denies the
//! places the account cannot fund, on either side, so the venue never has to refuse one for
//! funds (4050); precision the config leaves unset is adopted from `/app/market-config`.

mod common;

use std::time::Duration;

use common::wire::{Driver, KEY, PASSCODE, Reference, WireMock, over_the_wire};
use common::{TempDir, order_stats, staging_config, start_wire, wait_until};
use deltadefi_mm::app::{Pipeline, VenueAccess, adopt_venue_rules};
use mm_actors::config::{Config, FeedSource};
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::risk_guard::rules::TradingState;
use mm_actors::types::{MarketId, Side, now_ms};
use rust_decimal::Decimal;
use zeroize::Zeroizing;

fn config(dir: &std::path::Path) -> Config {
    let mut cfg = staging_config(dir);
    cfg.feed.source = FeedSource::Live;
    cfg.mock_exchange.latency_ms = 0;
    cfg.risk.check_interval_ms = 50;
    cfg
}

async fn active_and_quoting(p: &Pipeline) -> bool {
    let r = p.risk.send(GetRiskStats).await.expect("risk");
    order_stats(p).await.markets[0].working > 0 && r.markets[0].state == TradingState::Active
}

fn denials(r: &mm_actors::risk_guard::RiskStats, why: &str) -> u64 {
    r.markets[0]
        .denials_by_reason
        .get(why)
        .copied()
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_reference_off_the_venues_book_pauses_quoting_until_it_is_back() {
    let dir = TempDir::new("diverged");
    let mut cfg = config(dir.path());
    cfg.risk.max_reference_divergence_bps = Decimal::from(100);
    let mock = WireMock::start(&cfg, false);
    let market = cfg.markets[0].market.clone();
    let driver = Driver::start(&mock, market.clone());
    let cfg = over_the_wire(cfg, mock.addr);
    let p = start_wire(&cfg);
    wait_until("quoting", Duration::from_secs(30), || {
        let p = p.clone();
        async move { active_and_quoting(&p).await }
    })
    .await;
    // The venue's book came over its depth stream, and the reference sits inside it.
    let view = p.reg.books.view(&market, now_ms());
    assert!(view.bid.is_some() && view.ask.is_some(), "{view:?}");
    let r = p.risk.send(GetRiskStats).await.expect("risk");
    assert_eq!(r.markets[0].divergence_bps, Some(Decimal::ZERO), "{r:?}");

    // The feed now shows the market 2 % higher (under the 5 % jump limit, so the feed takes
    // it); the venue's book stays where it is: ~200 bps outside it, over the 100 bps limit.
    driver.set(Reference::Lie(Decimal::new(102, 2)));
    wait_until(
        "paused for reference_diverged, nothing open",
        Duration::from_secs(10),
        || {
            let p = p.clone();
            let open = mock.open_orders();
            async move {
                let r = p.risk.send(GetRiskStats).await.expect("risk");
                r.markets[0].state == TradingState::Halted
                    && r.markets[0]
                        .divergence_bps
                        .is_some_and(|d| d > Decimal::from(100))
                    && open == 0
            }
        },
    )
    .await;
    driver.set(Reference::Market);
    wait_until("quoting again", Duration::from_secs(30), || {
        let p = p.clone();
        async move { active_and_quoting(&p).await }
    })
    .await;
    assert!(p.shutdown(Duration::from_secs(15)).await);
    let conn = common::db(&cfg.run.db_path);
    assert!(
        common::count(
            &conn,
            "SELECT COUNT(*) FROM risk_events WHERE reason LIKE '%reference_diverged%'"
        ) >= 1
    );
    // While the feed lied, no bid was sent onto the venue's asks.
    let rejects = mock.state.lock().expect("state").rejects().clone();
    assert_eq!(rejects.get(&4104), None, "{rejects:?}");
}

#[actix_rt::test]
async fn quotes_from_a_feed_above_the_venue_stay_behind_its_asks() {
    let dir = TempDir::new("behind");
    let cfg = config(dir.path());
    let mock = WireMock::start(&cfg, false);
    let market = cfg.markets[0].market.clone();
    let driver = Driver::start(&mock, market.clone());
    let cfg = over_the_wire(cfg, mock.addr);
    let p = start_wire(&cfg);
    wait_until("quoting", Duration::from_secs(30), || {
        let p = p.clone();
        async move { active_and_quoting(&p).await }
    })
    .await;
    let known: std::collections::HashSet<_> = mock
        .all_orders()
        .into_iter()
        .map(|o| o.venue_order_id)
        .collect();
    // The feed now shows the market 0.3 % higher than the venue trades it: within the
    // divergence limit, so quoting goes on, but every bid priced from it (fair - 10 bps) would
    // sit on or through the venue's asks.
    driver.set(Reference::Lie(Decimal::new(1003, 3)));
    wait_until(
        "bids placed and quotes kept behind the venue's asks",
        Duration::from_secs(30),
        || {
            let bids = mock
                .all_orders()
                .iter()
                .filter(|o| o.side == Side::Buy && !known.contains(&o.venue_order_id))
                .count();
            let clamped = p.reg.books.view(&market, now_ms()).clamped;
            async move { bids >= 1 && clamped >= 3 }
        },
    )
    .await;
    let r = p.risk.send(GetRiskStats).await.expect("risk");
    assert_eq!(r.markets[0].state, TradingState::Active, "{r:?}");
    assert!(p.shutdown(Duration::from_secs(15)).await);
    let rejects = mock.state.lock().expect("state").rejects().clone();
    assert_eq!(rejects.get(&4104), None, "post-only rejects: {rejects:?}");
    // The venue's asks start one tick above its bid, which never passes 0.4503: no bid of
    // ours ever reached them (the feed alone would have bid ~0.4509).
    let high: Vec<_> = mock
        .all_orders()
        .into_iter()
        .filter(|o| o.side == Side::Buy && o.price > Decimal::new(4503, 4))
        .collect();
    assert!(high.is_empty(), "bids through the venue's asks: {high:?}");
}

/// Runs a bot whose account holds `base` ADA and `quote` USDM until the funded side rests and
/// RiskGuard has denied the other; returns every order the venue saw and the venue's rejects.
async fn short_of_funds(
    tag: &str,
    base: Decimal,
    quote: Decimal,
    funded: Side,
) -> Vec<mm_actors::venue::VenueOrder> {
    let dir = TempDir::new(tag);
    let mut cfg = config(dir.path());
    cfg.mock_exchange.base_balance = base;
    cfg.mock_exchange.quote_balance = quote;
    // Quotes far from a reference that barely moves: nothing fills, the balances stay put.
    cfg.markets[0].venue_spread_bps = Decimal::from(200);
    let mock = WireMock::start(&cfg, false);
    let _driver = Driver::start(&mock, cfg.markets[0].market.clone());
    let cfg = over_the_wire(cfg, mock.addr);
    let p = start_wire(&cfg);
    wait_until(
        "the funded side rests, the other is denied",
        Duration::from_secs(30),
        || {
            let p = p.clone();
            let resting = mock
                .all_orders()
                .iter()
                .filter(|o| o.side == funded)
                .count();
            async move {
                let r = p.risk.send(GetRiskStats).await.expect("risk");
                resting >= 2 && denials(&r, "insufficient_funds") >= 3
            }
        },
    )
    .await;
    let status = deltadefi_mm::status::live(&p).await.0;
    let line = status[0].line(0, 5);
    assert!(line.contains("unfunded="), "{line}");
    assert!(p.shutdown(Duration::from_secs(15)).await);
    let rejects = mock.state.lock().expect("state").rejects().clone();
    assert_eq!(
        rejects.get(&4050),
        None,
        "the venue refused for funds: {rejects:?}"
    );
    assert!(mock.all_orders().iter().all(|o| o.filled.is_zero()));
    // Kept for the report.
    let conn = common::db(&cfg.run.db_path);
    assert!(
        common::count(
            &conn,
            "SELECT COALESCE(SUM(count), 0) FROM denials WHERE reason = 'insufficient_funds'"
        ) >= 3
    );
    mock.all_orders()
}

#[actix_rt::test]
async fn without_usdm_no_bid_is_sent() {
    // 20 USDM cannot fund 100 ADA at 0.45 (45.05 with the fee); 20,000 ADA fund the asks.
    let orders = short_of_funds(
        "no-usdm",
        Decimal::from(20_000),
        Decimal::from(20),
        Side::Sell,
    )
    .await;
    let bids: Vec<_> = orders.iter().filter(|o| o.side == Side::Buy).collect();
    assert!(bids.is_empty(), "bids the account could not fund: {bids:?}");
}

#[actix_rt::test]
async fn without_ada_no_ask_is_sent_and_the_bids_are_limited_by_usdm() {
    // 50 ADA cannot back a 100 ADA ask. 100 USDM fund the first bid (45.05) but not both
    // levels (45.05 + 67.5 > 100).
    let orders = short_of_funds("no-ada", Decimal::from(50), Decimal::from(100), Side::Buy).await;
    let asks: Vec<_> = orders.iter().filter(|o| o.side == Side::Sell).collect();
    assert!(asks.is_empty(), "asks the account could not back: {asks:?}");
    let big_bids: Vec<_> = orders
        .iter()
        .filter(|o| o.side == Side::Buy && o.size > Decimal::from(100))
        .collect();
    assert!(
        big_bids.is_empty(),
        "level-1 bids beyond the USDM: {big_bids:?}"
    );
}

#[actix_rt::test]
async fn unset_precision_is_adopted_from_the_venues_market_config() {
    let dir = TempDir::new("adopt");
    let cfg = config(dir.path());
    let mock = WireMock::start(&cfg, false);
    let access = || VenueAccess::DeltaDeFi {
        api_key: Zeroizing::new(KEY.into()),
        passcode: Zeroizing::new(PASSCODE.into()),
    };
    let mut bot = over_the_wire(cfg.clone(), mock.addr);
    // Set in the config: kept, nothing fetched or printed.
    assert_eq!(
        adopt_venue_rules(&mut bot, &access()).await.expect("adopt"),
        Vec::<String>::new()
    );
    let m = &mut bot.markets[0];
    (
        m.price_decimals,
        m.size_decimals,
        m.min_order_size,
        m.min_order_notional,
    ) = (None, None, None, None);
    let lines = adopt_venue_rules(&mut bot, &access()).await.expect("adopt");
    let m = &bot.markets[0];
    assert_eq!((m.price_decimals, m.size_decimals), (Some(4), Some(2)));
    assert_eq!(
        (m.min_order_size, m.min_order_notional),
        (Some(Decimal::from(5)), Some(Decimal::from(5)))
    );
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[0].contains("price_decimals = 4 (from /app/market-config)"),
        "{lines:?}"
    );

    // A market the venue does not list, and a venue that does not answer, refuse start-up.
    let mut unknown = bot.clone();
    unknown.markets[0].market = MarketId("NOPEUSDM".into());
    unknown.markets[0].price_decimals = None;
    let e = adopt_venue_rules(&mut unknown, &access())
        .await
        .expect_err("unlisted");
    assert!(e.to_string().contains("NOPEUSDM is not listed"), "{e}");
    let mut away = bot.clone();
    away.markets[0].size_decimals = None;
    away.gateway.deltadefi.rest_url = "http://127.0.0.1:9".into();
    let e = adopt_venue_rules(&mut away, &access())
        .await
        .expect_err("unreachable");
    assert!(e.to_string().contains("/app/market-config"), "{e}");
}
