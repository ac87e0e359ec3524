//! Traces over OTLP with the real DeltaDeFi gateway: the service trades the wire mock over
//! REST and WebSocket on 127.0.0.1 (the mock's bookTicker as the live Binance feed) and exports
//! to a real gRPC receiver. A trace starts at a Binance tick and ends at a fill; places have
//! their build, sign and submit steps, and cancels their REST step, each under the gateway
//! request of the intent that made it. The tree of one trace is printed (the README shows it).
//! (Its own process: the tracing subscriber is global.)

mod common;

use std::time::Duration;

use common::otlp::{Got, tree};
use common::{TempDir, staging_config, wait_until};
use deltadefi_mm::app::{Pipeline, VenueAccess, feed_spec};
use mm_actors::config::LogFormat;
use mm_actors::store::Store;
use rust_decimal::Decimal;
use zeroize::Zeroizing;

#[test]
fn over_rest_a_trace_runs_from_the_tick_to_the_fill_and_cancels_have_their_rest_step() {
    let (_rt, received, otlp) = common::otlp::start_receiver();
    let dir = TempDir::new("otlp-wire");
    let mut cfg = staging_config(dir.path());
    cfg.telemetry.otlp_endpoint = format!("http://{otlp}");
    cfg.mock_exchange.latency_ms = 0;
    cfg.feed.synthetic.interval_ms = 20;
    cfg.feed.synthetic.burst_probability = Decimal::new(3, 2);
    cfg.markets[0].venue_spread_bps = Decimal::from(6);
    let telemetry = deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Text, |_| None)
        .expect("telemetry");
    assert!(telemetry.exporting());
    let mock = common::wire::WireMock::start(&cfg, true);
    let state = mock.state.clone();
    actix::System::new().block_on(async {
        let cfg = common::wire::over_the_wire(cfg.clone(), mock.addr);
        let access = VenueAccess::DeltaDeFi {
            api_key: Zeroizing::new(common::wire::KEY.into()),
            passcode: Zeroizing::new(common::wire::PASSCODE.into()),
        };
        let p = Pipeline::start(
            &cfg,
            Store::open(&cfg.run.db_path).expect("store"),
            feed_spec(&cfg).expect("spec"),
            access,
        )
        .expect("pipeline starts");
        // Fills, and cancels of orders the walk moved away from.
        wait_until(
            "fills and cancels at the venue",
            Duration::from_secs(60),
            || {
                let s = state.clone();
                async move {
                    s.lock()
                        .map(|st| {
                            st.fills().len() >= 4 && st.arrivals().iter().any(|a| a.1 == "cancel")
                        })
                        .unwrap_or(false)
                }
            },
        )
        .await;
        assert!(p.shutdown(Duration::from_secs(20)).await);
    });
    telemetry.shutdown();
    let spans = received.spans();
    let by_id = |id: &[u8]| spans.iter().find(|s| s.span == id);
    let ancestors = |s: &Got| {
        let mut up = Vec::new();
        let mut at = s;
        while let Some(p) = by_id(&at.parent) {
            up.push(p.name.as_str());
            at = p;
        }
        up
    };
    // A cancel's REST step: under the gateway request, the dispatch and the intent that made
    // it, in a trace with a root.
    let cancel = spans
        .iter()
        .find(|s| s.name == "deltadefi.cancel")
        .unwrap_or_else(|| panic!("no cancel step among {} spans", spans.len()));
    let up = ancestors(cancel);
    assert_eq!(
        up.get(..3),
        Some(&["gateway.request", "outbox.dispatch", "order_manager.intent"][..]),
        "a cancel step's chain: {up:?}"
    );
    assert!(
        matches!(
            up.last(),
            Some(&"binance_feed.tick" | &"quote_engine.price" | &"order_manager.flatten")
        ),
        "a cancel's trace starts at its cause: {up:?}"
    );
    // A place's three steps under one gateway request.
    let has_place_steps = spans
        .iter()
        .filter(|s| s.name == "gateway.request")
        .any(|g| {
            let mut steps: Vec<&Got> = spans.iter().filter(|s| s.parent == g.span).collect();
            steps.sort_by_key(|s| s.start);
            let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            names == ["deltadefi.build", "deltadefi.sign", "deltadefi.submit"]
        });
    assert!(has_place_steps, "no place with build, sign, submit");
    // A trace from a tick to a fill over the wire, every parent inside it.
    let fill = spans
        .iter()
        .filter(|s| s.name == "order_manager.fill")
        .find(|f| ancestors(f).last() == Some(&"binance_feed.tick"))
        .expect("a fill in a trace that starts at a tick");
    let root = spans
        .iter()
        .find(|s| s.trace == fill.trace && s.parent.is_empty())
        .expect("root");
    for s in spans.iter().filter(|s| s.trace == fill.trace) {
        assert!(
            s.parent.is_empty() || by_id(&s.parent).is_some_and(|p| p.trace == s.trace),
            "{} has its parent outside the trace",
            s.name
        );
    }
    let text = tree(&spans, root);
    for want in [
        "binance_feed.tick",
        "  quote_engine.price",
        "    order_manager.diff",
        "      risk_guard.check",
        "      order_manager.intent",
        "deltadefi.submit",
        "order_manager.ack",
        "order_manager.fill",
    ] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
    println!("one trace, tick to fill:\n{text}");
}
