//! Traces over OTLP to a real receiver on 127.0.0.1 (opentelemetry-proto's gRPC server): the
//! staging pipeline runs until it has approved intents and a fill, and one trace starts at the
//! Binance tick, goes through its pricing, the diff, the risk check and the intents, and ends
//! at a fill, every span's parent inside the trace, with the service's resource. (Its own
//! process: the tracing subscriber is global.)

mod common;

use std::time::Duration;

use common::otlp::Got;
use common::{TempDir, busy_config, start_synthetic};
use mm_actors::config::LogFormat;

#[test]
fn one_trace_from_the_tick_to_the_fill() {
    let (_rt, received, addr) = common::otlp::start_receiver();
    let dir = TempDir::new("otlp");
    let mut cfg = busy_config(dir.path());
    cfg.gateway.reconcile_interval_ms = 300;
    cfg.telemetry.otlp_endpoint = format!("http://{addr}");
    let env = |_: &str| None;
    let telemetry =
        deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Json, env).expect("telemetry");
    assert!(telemetry.exporting());
    actix::System::new().block_on(async {
        let p = start_synthetic(&cfg, None);
        // The first orders are priced when trading turns ACTIVE (no tick behind them): wait
        // for enough fills that some land on orders a tick caused.
        common::wait_until("fills", Duration::from_secs(60), || {
            let o = p.orders.clone();
            async move {
                o.send(mm_actors::order_manager::GetOrderStats)
                    .await
                    .map(|s| s.intents >= 4 && s.markets[0].fills >= 6)
                    .unwrap_or(false)
            }
        })
        .await;
        // An order at the venue that is not ours: a reconciliation adopts and cancels it, in a
        // trace of its own. (While places of ours are in flight unnamed, an unknown order may
        // still be one of them: it is adopted only after its 30 s grace.)
        let foreign = mm_actors::venue::VenueRequest::Place(mm_actors::venue::NewOrder {
            client_order_id: mm_actors::types::ClientOrderId("foreign-1".into()),
            market: cfg.markets[0].market.clone(),
            side: mm_actors::types::Side::Buy,
            price: rust_decimal::Decimal::new(4000, 4),
            size: rust_decimal::Decimal::from(50),
            traceparent: None,
            tag: mm_actors::venue::SendTag::default(),
        });
        let venue = p.reg.venue.get().cloned().expect("the venue is bound");
        assert!(matches!(venue.send(foreign).await, Ok(Ok(_))));
        let db = cfg.run.db_path.clone();
        common::wait_until("the orphan cancelled", Duration::from_secs(60), || {
            let db = db.clone();
            async move {
                common::count(
                    &common::db(&db),
                    "SELECT COUNT(*) FROM orders WHERE client_order_id LIKE 'orphan-%' AND state = 'cancelled'",
                ) == 1
            }
        })
        .await;
        assert!(p.shutdown(Duration::from_secs(15)).await);
    });
    telemetry.shutdown();
    let spans = received.spans();
    let by_id = |id: &[u8]| spans.iter().find(|s| s.span == id).cloned();
    let intent = spans
        .iter()
        .find(|s| {
            s.name == "order_manager.intent"
                && by_id(&s.parent).is_some_and(|p| p.name == "order_manager.diff")
        })
        .cloned()
        .unwrap_or_else(|| panic!("no intent span under a diff span in {} spans", spans.len()));
    let diff = by_id(&intent.parent).expect("diff");
    let price = by_id(&diff.parent).expect("the diff's parent was exported");
    assert_eq!(price.name, "quote_engine.price");
    assert!(
        spans.iter().any(|s| s.name == "risk_guard.check"
            && s.parent == diff.span
            && s.trace == diff.trace),
        "the risk check is a child of the diff in the same trace"
    );
    assert!(
        [&intent, &diff, &price]
            .iter()
            .all(|s| s.trace == price.trace && s.service == "deltadefi-mm")
    );
    // The spans made straight with the SDK carry what their `tracing` spans recorded.
    let attr = |s: &Got, k: &str| {
        s.attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{} has no {k}: {:?}", s.name, s.attrs))
    };
    assert_eq!(attr(&intent, "market"), "ADAUSDM");
    assert!(["place", "cancel"].contains(&attr(&intent, "kind").as_str()));
    assert!(!attr(&intent, "client_order_id").is_empty());
    assert_eq!(attr(&diff, "market"), "ADAUSDM");
    assert!(attr(&diff, "intents").parse::<u64>().expect("a count") >= 1);
    assert!(!attr(&diff, "reason").is_empty());
    let check = spans
        .iter()
        .find(|s| s.name == "risk_guard.check" && s.parent == diff.span)
        .expect("the diff's check");
    assert_eq!(attr(check, "intents"), attr(&diff, "intents"));
    assert!(attr(check, "denied").parse::<u64>().is_ok());
    assert!(check.start <= check.end, "{check:?}");
    // A trace that starts at a tick and holds a fill: the tick is its root, its pricing the
    // tick's child, and every span's parent is in the trace.
    let root_of = |s: &Got| {
        let mut at = s.clone();
        while let Some(p) = by_id(&at.parent) {
            at = p;
        }
        at
    };
    let fill = spans
        .iter()
        .filter(|s| s.name == "order_manager.fill")
        .find(|f| root_of(f).name == "binance_feed.tick")
        .cloned()
        .unwrap_or_else(|| panic!("no fill in a trace rooted at a tick: {:?}", names(&spans)));
    let trace: Vec<&Got> = spans.iter().filter(|s| s.trace == fill.trace).collect();
    let roots: Vec<&&Got> = trace.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root: {:?}", names(&spans));
    assert_eq!(roots[0].name, "binance_feed.tick");
    for s in &trace {
        assert!(
            s.parent.is_empty() || trace.iter().any(|p| p.span == s.parent),
            "{} has its parent outside the trace",
            s.name
        );
    }
    for want in [
        "quote_engine.price",
        "order_manager.diff",
        "risk_guard.check",
        "order_manager.intent",
        "outbox.dispatch",
        "gateway.request",
        "order_manager.fill",
    ] {
        assert!(
            trace.iter().any(|s| s.name == want),
            "{want} missing from the fill's trace"
        );
    }
    let tick = roots[0];
    assert!(
        trace
            .iter()
            .any(|s| s.name == "quote_engine.price" && s.parent == tick.span),
        "the pricing is the tick's child"
    );
    // The intent's story continues in its trace: the permit wait, the dispatch, the gateway
    // request (a child of the dispatch) and the acknowledgement.
    let child_of = |parent: &Got, name: &str| {
        spans
            .iter()
            .find(|s| s.name == name && s.parent == parent.span && s.trace == parent.trace)
            .cloned()
    };
    let acked = spans
        .iter()
        .filter(|s| s.name == "order_manager.intent")
        .find(|i| {
            child_of(i, "order_manager.ack").is_some() && child_of(i, "outbox.dispatch").is_some()
        })
        .cloned()
        .expect("an intent with its dispatch and acknowledgement");
    assert!(
        child_of(&acked, "rate_limiter.wait").is_some(),
        "the permit wait is in the intent's trace"
    );
    let dispatch = child_of(&acked, "outbox.dispatch").expect("dispatch");
    assert!(
        child_of(&dispatch, "gateway.request").is_some(),
        "the gateway request is a child of the dispatch"
    );
    // Decisions that change no order export nothing: every exported pricing has a diff that
    // went to a risk check.
    for price in spans.iter().filter(|s| s.name == "quote_engine.price") {
        let diff = child_of(price, "order_manager.diff").expect("every pricing has its diff");
        assert!(
            child_of(&diff, "risk_guard.check").is_some(),
            "a decision without order changes was exported"
        );
    }
    // A fill joins the trace of the intent that placed its order.
    assert!(
        spans.iter().any(|f| f.name == "order_manager.fill"
            && by_id(&f.parent)
                .is_some_and(|p| p.name == "order_manager.intent" && p.trace == f.trace)),
        "no fill span under an intent span"
    );
    // The orphan's cancel: under the reconciliation that found it.
    let reconcile = spans
        .iter()
        .find(|s| s.name == "order_manager.reconcile")
        .cloned()
        .expect("a reconciliation span");
    assert!(
        reconcile.parent.is_empty(),
        "the reconciliation is its trace's root"
    );
    let cancel = child_of(&reconcile, "order_manager.intent").expect("its cancel intent");
    assert!(
        child_of(&cancel, "outbox.dispatch").is_some(),
        "the orphan's cancel was dispatched in that trace"
    );
    // Only our own spans: nothing from HTTP, gRPC or actix internals.
    let ours = [
        "binance_feed.tick",
        "quote_engine.price",
        "order_manager.diff",
        "order_manager.intent",
        "risk_guard.check",
        "rate_limiter.wait",
        "outbox.dispatch",
        "gateway.request",
        "order_manager.ack",
        "order_manager.fill",
        "order_manager.flatten",
        "order_manager.reconcile",
    ];
    let foreign: Vec<&str> = spans
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !ours.contains(n))
        .collect();
    assert!(foreign.is_empty(), "unexpected spans exported: {foreign:?}");
}

fn names(spans: &[Got]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}
