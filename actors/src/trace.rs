//! Trace context across actors and restarts: W3C `traceparent` strings, stored with orders and
//! outbox rows, turned back into a parent context when their story continues.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;

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
