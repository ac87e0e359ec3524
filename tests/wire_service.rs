//! The whole service over real sockets: the real DeltaDeFi gateway (REST), account stream
//! (WebSocket) and live Binance feed against the wire mock exchange on 127.0.0.1. Orders are
//! placed, filled and cancelled; the account stream is dropped while fills happen; at the end
//! every fill the venue made is in SQLite exactly once and the position matches the venue's.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TempDir, assert_settled, count, db, staging_config, wait_until};
use deltadefi_mm::app::{Pipeline, VenueAccess, feed_spec, wire_mock_config};
use mm_actors::binance_feed::source::Synthetic;
use mm_actors::deltadefi::stream::GetStreamStats;
use mm_actors::mock_exchange::wire::{serve, walk_reference};
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::store::Store;
use rust_decimal::Decimal;
use zeroize::Zeroizing;

#[actix_rt::test]
async fn trades_over_the_wire_and_survives_a_dropped_account_stream() {
    let dir = TempDir::new("wire");
    let mut cfg = staging_config(dir.path());
    cfg.mock_exchange.latency_ms = 0;
    cfg.feed.synthetic.interval_ms = 20;
    cfg.feed.synthetic.burst_probability = Decimal::new(3, 2);
    cfg.markets[0].venue_spread_bps = Decimal::from(6);
    cfg.gateway.reconcile_interval_ms = 1_000;

    let wire = wire_mock_config(&cfg, "wire-key".into(), "wire-passcode".into());
    let (addr, state, server) = serve(wire, "127.0.0.1:0".parse().expect("addr")).expect("bind");
    actix_rt::spawn(server);
    let walk = Synthetic::new(&cfg.feed.synthetic, cfg.markets[0].reference.clone(), 0);
    actix_rt::spawn(walk_reference(
        state.clone(),
        cfg.markets[0].market.clone(),
        walk,
        cfg.markets[0].reference.clone(),
    ));

    let cfg = common::wire::over_the_wire(cfg, addr);
    assert_eq!(cfg.validate(), vec![]);
    let db_path = cfg.run.db_path.clone();
    let access = VenueAccess::DeltaDeFi {
        api_key: Zeroizing::new("wire-key".into()),
        passcode: Zeroizing::new("wire-passcode".into()),
    };
    let p = Pipeline::start(
        &cfg,
        Store::open(&db_path).expect("store"),
        feed_spec(&cfg).expect("spec"),
        access,
    )
    .expect("pipeline starts");
    let stream = p.stream.clone().expect("account stream");

    let fills_at_venue = |n: usize| {
        let state = state.clone();
        move || {
            let s = state.clone();
            async move { s.lock().map(|st| st.fills().len() >= n).unwrap_or(false) }
        }
    };
    wait_until(
        "two fills at the venue",
        Duration::from_secs(60),
        fills_at_venue(2),
    )
    .await;
    // Drop the account stream while quoting and filling go on.
    let before = state.lock().expect("state").fills().len();
    let dropped = awc::Client::default()
        .post(format!("http://{addr}/mock/drop-streams"))
        .send()
        .await
        .expect("drop");
    assert!(dropped.status().is_success());
    wait_until(
        "the account stream to reconnect",
        Duration::from_secs(20),
        || {
            let s = stream.clone();
            async move {
                s.send(GetStreamStats)
                    .await
                    .map(|st| st.connects >= 2 && st.connected)
                    .unwrap_or(false)
            }
        },
    )
    .await;
    wait_until(
        "more fills after the reconnect",
        Duration::from_secs(60),
        fills_at_venue(before + 2),
    )
    .await;
    // The venue's depth stream reached the bot's book of the venue.
    let market = cfg.markets[0].market.clone();
    let view = p.reg.books.view(&market, mm_actors::types::now_ms());
    assert!(
        view.bid.is_some() && view.ask.is_some() && view.age_ms.is_some(),
        "the venue's book over the depth stream: {view:?}"
    );
    assert!(
        p.shutdown(Duration::from_secs(20)).await,
        "drains over the wire"
    );

    // Every fill the venue made is stored once: none lost across the drop, none twice.
    let venue_fills = state.lock().expect("state").fills();
    let venue_ids: BTreeSet<String> = venue_fills.iter().map(|f| f.trade_id.to_string()).collect();
    let conn = db(&db_path);
    let mut stmt = conn.prepare("SELECT trade_id FROM fills").expect("prepare");
    let ours: BTreeSet<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    let ours_count = count(&conn, "SELECT COUNT(*) FROM fills") as usize;
    assert_eq!(ours_count, ours.len());
    assert_eq!(ours, venue_ids, "our fills differ from the venue's");
    let venue_position: Decimal = venue_fills.iter().map(|f| f.side.sign() * f.size).sum();
    let risk = p.risk.send(GetRiskStats).await.expect("risk");
    assert_eq!(risk.markets[0].position, venue_position);
    // No order of ours was mistaken for an orphan; nothing is left open anywhere.
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM orders WHERE client_order_id LIKE 'orphan-%'"
        ),
        0
    );
    assert_settled(&conn);
    assert_eq!(state.lock().expect("state").open_order_count(), 0);
    // A 6 bps spread around a walk with bursts: none of our post-only places crossed the
    // venue's book (each would have been a wasted action answered 4104).
    let rejects = state.lock().expect("state").rejects().clone();
    let view = p.reg.books.view(&market, mm_actors::types::now_ms());
    println!(
        "venue rejects {rejects:?}; crosses avoided: {} clamped, {} skipped",
        view.clamped, view.skipped
    );
    assert_eq!(rejects.get(&4104), None, "post-only rejects: {rejects:?}");
    assert!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'place' AND status = 'done'"
        ) >= 2
    );
}
