//! Trace context across actors and restarts: W3C `traceparent` strings, stored with orders and
//! outbox rows, turned back into a parent context when their story continues.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use rust_decimal::Decimal;

use crate::intent::Intent;
use crate::types::{MarketId, Tick};

/// The tracer the service exports with, for the spans made after the fact (the tick and its
/// pricing). Unset (text logs without a collector, tests) they cost nothing.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Installs the exporting tracer; a second call is ignored.
pub fn install(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// What QuoteEngine decided, for its span.
#[derive(Clone, Copy)]
pub struct Priced<'a> {
    pub market: &'a MarketId,
    pub fair: Decimal,
    pub levels: usize,
    pub reason: &'a dyn std::fmt::Display,
    /// When the target left QuoteEngine.
    pub at: Instant,
}

fn wall(at: Instant, now: (Instant, SystemTime)) -> SystemTime {
    now.1 - now.0.saturating_duration_since(at)
}

/// A span that already ended, from `start` to `end` (instants read against the clocks at
/// `now`), under `parent`; its context.
fn backdated(
    tracer: &SdkTracer,
    name: &'static str,
    (start, end, now): (Instant, Instant, (Instant, SystemTime)),
    attributes: Vec<KeyValue>,
    parent: &Context,
) -> Context {
    let mut span = tracer
        .span_builder(name)
        .with_start_time(wall(start, now))
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    span.end_with_timestamp(wall(end, now));
    Context::new().with_remote_span_context(span.span_context().clone())
}

fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// True once a tracer is installed: only then is a span's timing read.
pub fn installed() -> bool {
    TRACER.get().is_some()
}

/// The root of a quote decision's trace, made when the decision changes orders: a
/// `binance_feed.tick` span (receive to hand-off, with its decode time) and its
/// `quote_engine.price` child (hand-off to target), both backdated to when they happened;
/// returns the pricing span's context, the parent of the diff. `tick` is the tick behind the
/// decision with when the feed passed it on; without one (a fill, a risk change, a
/// reconciliation) the pricing span is the root. An empty context when nothing exports.
pub fn decision_root(tick: Option<(&Tick, Instant)>, priced: &Priced<'_>) -> Context {
    let Some(tracer) = TRACER.get() else {
        return Context::new();
    };
    let now = (Instant::now(), SystemTime::now());
    let parent = match tick {
        Some((t, decoded_at)) => backdated(
            tracer,
            "binance_feed.tick",
            (t.recv_at, decoded_at, now),
            vec![
                KeyValue::new("symbol", t.symbol.to_string()),
                KeyValue::new("market", priced.market.to_string()),
                KeyValue::new("update_id", int(t.update_id)),
                KeyValue::new("bid", t.bid.to_string()),
                KeyValue::new("ask", t.ask.to_string()),
                KeyValue::new(
                    "decode_us",
                    int(decoded_at.saturating_duration_since(t.recv_at).as_micros()),
                ),
            ],
            &Context::new(),
        ),
        None => Context::new(),
    };
    let start = tick.map_or(priced.at, |(_, decoded_at)| decoded_at);
    backdated(
        tracer,
        "quote_engine.price",
        (start, priced.at, now),
        vec![
            KeyValue::new("market", priced.market.to_string()),
            KeyValue::new("fair", priced.fair.to_string()),
            KeyValue::new("levels", int(priced.levels)),
            KeyValue::new("reason", priced.reason.to_string()),
        ],
        &parent,
    )
}

/// Opens the span of one approved intent under `cx` (the diff's) and returns its traceparent,
/// stored with the order and the outbox row so that the dispatch, the acknowledgement and
/// every fill join this trace.
pub fn intent_traceparent(intent: &Intent, cx: &Context) -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    // Without an exporting tracer no span has a context to pass on: the span would only be
    // made and dropped by the log layer.
    TRACER.get()?;
    let span = tracing::info_span!(
        "order_manager.intent",
        market = %intent.market(),
        side = intent.side().map_or("", |s| s.as_str()),
        kind = intent.kind().as_str(),
        client_order_id = intent.client_order_id().map_or("", |c| c.as_str()),
    );
    let _ = span.set_parent(cx.clone());
    span.in_scope(|| tracing::debug!("intent approved"));
    traceparent(&span.context())
}

/// The `traceparent` of `cx`, when it holds a valid span.
pub fn traceparent(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The context a `traceparent` names (an empty context for `None` or a malformed one).
pub fn context_from(traceparent: Option<&str>) -> Context {
    match traceparent {
        Some(tp) => {
            let carrier: HashMap<String, String> =
                [("traceparent".to_string(), tp.to_string())].into();
            TraceContextPropagator::new().extract(&carrier)
        }
        None => Context::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn round_trip() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("trace id"),
            SpanId::from_hex("00f067aa0ba902b7").expect("span id"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let tp = traceparent(&cx).expect("valid");
        assert_eq!(
            tp,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let back = context_from(Some(&tp));
        assert_eq!(
            back.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(traceparent(&Context::new()), None);
        assert!(
            !context_from(Some("garbage"))
                .span()
                .span_context()
                .is_valid()
        );
    }
}
