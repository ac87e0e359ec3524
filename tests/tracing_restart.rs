//! A fill that arrives after a restart joins the trace of the intent that placed its order.
//! The venue is the wire mock (it outlives the bot, as a real venue does): the first run places
//! orders and stops mid-flight; the order fills while the bot is down; the second run catches
//! the fill up (recent trades) and its `order_manager.fill` span has the first run's intent
//! span as parent. (Its own process: the tracing subscriber is global.)

mod common;

use std::time::Duration;

use common::{TempDir, count, db, staging_config, wait_until};
use deltadefi_mm::app::{Pipeline, VenueAccess, feed_spec, wire_mock_config};
use mm_actors::config::{DeltaDeFiEnvironment, FeedSource, LogFormat, VenueKind};
use mm_actors::mock_exchange::wire::serve;
use mm_actors::store::Store;
use mm_actors::types::MarketId;
use rust_decimal::Decimal;
use zeroize::Zeroizing;

#[test]
fn a_fill_after_a_restart_joins_the_original_trace() {
    let (_rt, received, otlp) = common::otlp::start_receiver();
    let dir = TempDir::new("trace-restart");
    let mut cfg = staging_config(dir.path());
    cfg.telemetry.otlp_endpoint = format!("http://{otlp}");
    cfg.markets[0].levels = 1;
    let telemetry = deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Text, |_| None)
        .expect("telemetry");

    // The venue, on its own thread: it keeps running across the bot's restart.
    let wire = wire_mock_config(&cfg, "key".into(), "pass".into());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let (addr, state, server) =
                serve(wire, "127.0.0.1:0".parse().expect("addr")).expect("bind");
            tx.send((addr, state)).expect("out");
            let _ = server.await;
        });
    });
    let (addr, state) = rx.recv_timeout(Duration::from_secs(10)).expect("mock up");
    let market = MarketId("ADAUSDM".into());
    state.lock().expect("state").move_reference(
        &market,
        Decimal::new(4500, 4),
        Decimal::new(4502, 4),
    );

    cfg.gateway.venue = VenueKind::Deltadefi;
    cfg.gateway.deltadefi.environment = DeltaDeFiEnvironment::Custom;
    cfg.gateway.deltadefi.rest_url = format!("http://{addr}");
    cfg.gateway.deltadefi.ws_url = format!("ws://{addr}");
    cfg.feed.source = FeedSource::Live;
    cfg.feed.live.url = format!("ws://{addr}");
    let access = || VenueAccess::DeltaDeFi {
        api_key: Zeroizing::new("key".into()),
        passcode: Zeroizing::new("pass".into()),
    };
    let db_path = cfg.run.db_path.clone();

    // First run: quote until a bid works at the venue, then stop without cancelling (a crash).
    let c1 = cfg.clone();
    let a1 = access();
    let state1 = state.clone();
    actix::System::new().block_on(async move {
        let p = Pipeline::start(
            &c1,
            Store::open(&c1.run.db_path).expect("store"),
            feed_spec(&c1).expect("spec"),
            a1,
        )
        .expect("starts");
        // The reference must move for the feed to be fresh: nudge it until a bid rests.
        let st = state1;
        let path = c1.run.db_path.clone();
        wait_until("a working bid", Duration::from_secs(30), || {
            let st = st.clone();
            let path = path.clone();
            async move {
                if let Ok(mut s) = st.lock() {
                    s.move_reference(
                        &MarketId("ADAUSDM".into()),
                        Decimal::new(4500, 4),
                        Decimal::new(4502, 4),
                    );
                }
                count(
                    &db(&path),
                    "SELECT COUNT(*) FROM orders WHERE state = 'working' AND side = 'buy'",
                ) >= 1
            }
        })
        .await;
        p.stop();
    });
    std::thread::sleep(Duration::from_millis(300)); // the first run's store thread commits its last writes
    telemetry.flush();
    let conn = db(&db_path);
    let (coid, traceparent): (String, String) = conn
        .query_row(
            "SELECT client_order_id, traceparent FROM orders WHERE state = 'working' AND side = 'buy' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a working bid with its traceparent");
    drop(conn);
    let trace_hex = traceparent
        .split('-')
        .nth(1)
        .expect("traceparent trace id")
        .to_string();

    // While the bot is down, the reference ask trades through the bid: it fills at the venue.
    let fills = state.lock().expect("state").move_reference(
        &market,
        Decimal::new(4300, 4),
        Decimal::new(4301, 4),
    );
    assert!(fills >= 1, "the resting bid filled at the venue");

    // Second run: it catches the fill up, and the fill joins the first run's trace.
    let c2 = cfg.clone();
    actix::System::new().block_on(async move {
        let p = Pipeline::start(
            &c2,
            Store::open(&c2.run.db_path).expect("store"),
            feed_spec(&c2).expect("spec"),
            access(),
        )
        .expect("starts");
        let path = c2.run.db_path.clone();
        wait_until(
            "the fill made while down to be stored",
            Duration::from_secs(30),
            || {
                let path = path.clone();
                async move { count(&db(&path), "SELECT COUNT(*) FROM fills") >= 1 }
            },
        )
        .await;
        assert!(p.shutdown(Duration::from_secs(20)).await);
    });
    telemetry.shutdown();
    let spans = received.spans();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let fill = spans
        .iter()
        .find(|s| s.name == "order_manager.fill" && hex(&s.trace) == trace_hex)
        .unwrap_or_else(|| panic!("no fill span in the trace of {coid} ({trace_hex})"));
    let parent = spans
        .iter()
        .find(|s| s.span == fill.parent)
        .expect("the fill's parent was exported by the first run");
    assert_eq!(parent.name, "order_manager.intent");
}
