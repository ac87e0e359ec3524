//! Traces over OTLP to a real receiver on 127.0.0.1 (opentelemetry-proto's gRPC server): the
//! staging pipeline runs until it has approved intents, and one trace holds the quote decision,
//! the diff, the risk check and the intents, linked parent to child, with the service's
//! resource. (Its own process: the tracing subscriber is global.)

mod common;

use std::time::Duration;

use common::otlp::Got;
use common::{TempDir, busy_config, start_synthetic, wait_for_intents_and_fill};
use mm_actors::config::LogFormat;

#[test]
fn one_trace_from_quote_decision_to_approved_intents() {
    let (_rt, received, addr) = common::otlp::start_receiver();
    let dir = TempDir::new("otlp");
    let mut cfg = busy_config(dir.path());
    cfg.telemetry.otlp_endpoint = format!("http://{addr}");
    let env = |_: &str| None;
    let telemetry =
        deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Json, env).expect("telemetry");
    assert!(telemetry.exporting());
    actix::System::new().block_on(async {
        let p = start_synthetic(&cfg, None);
        wait_for_intents_and_fill(&p, 4).await;
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
    let decide = by_id(&diff.parent).expect("the diff's parent was exported");
    assert_eq!(decide.name, "quote.decide");
    assert!(decide.parent.is_empty(), "the quote decision is the root");
    assert!(
        spans.iter().any(|s| s.name == "risk_guard.check"
            && s.parent == diff.span
            && s.trace == decide.trace),
        "the risk check is a child of the diff in the same trace"
    );
    assert!(
        [&intent, &diff, &decide]
            .iter()
            .all(|s| s.trace == decide.trace && s.service == "deltadefi-mm")
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
    // Decisions that change no order export nothing: every exported decision has a diff
    // that went to a risk check.
    for decide in spans.iter().filter(|s| s.name == "quote.decide") {
        let diff = child_of(decide, "order_manager.diff").expect("every decision has its diff");
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
    // Only our own spans: nothing from HTTP, gRPC or actix internals.
    let ours = [
        "quote.decide",
        "order_manager.diff",
        "order_manager.intent",
        "risk_guard.check",
        "rate_limiter.wait",
        "outbox.dispatch",
        "gateway.request",
        "order_manager.ack",
        "order_manager.fill",
    ];
    let foreign: Vec<&str> = spans
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !ours.contains(n))
        .collect();
    assert!(foreign.is_empty(), "unexpected spans exported: {foreign:?}");
}
