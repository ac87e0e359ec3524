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

/// A span under `parent` that starts and ends now with one event, made with the exporting
/// tracer itself; its context. Made through `tracing` and its OpenTelemetry layer, a span that
/// only passes a context on (an intent's) cost several times more, on the tick's path: a
/// registry slot, the layer's extensions, a context lookup. The diff's and the check's spans
/// are made the same way, backdated ([`backdated`]).
fn instant_span(
    tracer: &SdkTracer,
    name: &'static str,
    attributes: Vec<KeyValue>,
    event: &'static str,
    parent: &Context,
) -> Context {
    let mut span = tracer
        .span_builder(name)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    span.add_event(event, Vec::new());
    span.end();
    Context::new().with_remote_span_context(span.span_context().clone())
}

/// What OrderManager's diff decided, for its span.
pub struct Diffed<'a> {
    pub market: &'a MarketId,
    pub reason: &'a dyn std::fmt::Display,
    pub intents: usize,
    /// When the decision's tick was received (none for a fill, a risk change, a
    /// reconciliation): the span's `tick.age_us`, 0 without one.
    pub tick_at: Option<Instant>,
    /// When the diff began (read only with an exporting tracer): the span's start.
    pub started: Option<Instant>,
}

/// The span of a diff that changes orders, under the decision's root `cx`: the parent of its
/// risk check and of its intents. `cx` itself when nothing exports.
pub fn diff_span(d: &Diffed<'_>, cx: &Context) -> Context {
    let Some(tracer) = TRACER.get() else {
        return cx.clone();
    };
    let now = (Instant::now(), SystemTime::now());
    backdated(
        tracer,
        "order_manager.diff",
        (d.started.unwrap_or(now.0), now.0, now),
        vec![
            KeyValue::new("market", d.market.to_string()),
            KeyValue::new("reason", d.reason.to_string()),
            KeyValue::new("intents", int(d.intents)),
            KeyValue::new(
                "tick.age_us",
                d.tick_at.map_or(0, |t| int(t.elapsed().as_micros())),
            ),
        ],
        cx,
    )
}

/// What RiskGuard's check decided, for its span.
pub struct Checked<'a> {
    pub market: &'a MarketId,
    pub intents: usize,
    pub denied: usize,
    pub trading_state: Option<&'static str>,
    /// When the check began.
    pub started: Instant,
}

/// The span of a risk check under the diff's `cx`, from when it began to now: the parent
/// its denial's warning names. An empty context when nothing exports.
pub fn check_span(c: &Checked<'_>, cx: &Context) -> Context {
    let Some(tracer) = TRACER.get() else {
        return Context::new();
    };
    let now = (Instant::now(), SystemTime::now());
    let mut attributes = vec![
        KeyValue::new("market", c.market.to_string()),
        KeyValue::new("intents", int(c.intents)),
        KeyValue::new("denied", int(c.denied)),
    ];
    if let Some(state) = c.trading_state {
        attributes.push(KeyValue::new("trading_state", state));
    }
    backdated(
        tracer,
        "risk_guard.check",
        (c.started, now.0, now),
        attributes,
        cx,
    )
}

/// The trace and span ids of `cx`, for a log line made outside any `tracing` span that
/// belongs to it; `None` when it holds no valid span.
pub fn ids(cx: &Context) -> Option<(String, String)> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// Makes the span of one approved intent under `cx` (the diff's) and returns its traceparent,
/// stored with the order and the outbox row so that the dispatch, the acknowledgement and
/// every fill join this trace. `None` when nothing exports.
pub fn intent_traceparent(intent: &Intent, cx: &Context) -> Option<String> {
    let tracer = TRACER.get()?;
    let mut attributes = Vec::with_capacity(4);
    attributes.push(KeyValue::new("market", intent.market().to_string()));
    if let Some(side) = intent.side() {
        attributes.push(KeyValue::new("side", side.as_str()));
    }
    attributes.push(KeyValue::new("kind", intent.kind().as_str()));
    if let Some(id) = intent.client_order_id() {
        attributes.push(KeyValue::new("client_order_id", id.as_str().to_string()));
    }
    let cx = instant_span(
        tracer,
        "order_manager.intent",
        attributes,
        "intent approved",
        cx,
    );
    // The log line the span's event stands for, at debug level, with the span's ids (read
    // only when that level logs).
    if tracing::enabled!(tracing::Level::DEBUG)
        && let Some((trace_id, span_id)) = ids(&cx)
    {
        tracing::debug!(
            market = %intent.market(),
            kind = intent.kind().as_str(),
            client_order_id = intent.client_order_id().map_or("", |c| c.as_str()),
            trace_id,
            span_id,
            "intent approved"
        );
    }
    traceparent(&cx)
}

/// The `traceparent` of `cx`, when it holds a valid span: what the W3C propagator writes
/// (version 00, the sampled flag only), without its map.
pub fn traceparent(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let sampled = sc.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED;
    Some(format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sampled.to_u8()
    ))
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
        // What the W3C propagator writes, for any ids and flags.
        let mut rng = crate::rng::SplitMix64::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut next = || rng.next_u64();
            let trace = (u128::from(next()) << 64) | u128::from(next());
            let sc = SpanContext::new(
                TraceId::from_bytes(trace.to_be_bytes()),
                SpanId::from_bytes(next().to_be_bytes()),
                TraceFlags::new((next() & 0xff) as u8),
                next() % 2 == 0,
                TraceState::default(),
            );
            let cx = Context::new().with_remote_span_context(sc);
            let mut carrier = HashMap::new();
            TraceContextPropagator::new().inject_context(&cx, &mut carrier);
            assert_eq!(traceparent(&cx), carrier.remove("traceparent"));
        }
        assert!(
            !context_from(Some("garbage"))
                .span()
                .span_context()
                .is_valid()
        );
    }
}
