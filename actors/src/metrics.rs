//! Service metrics, through OpenTelemetry's global meter: a no-op until a meter provider is
//! installed (the binary does so when an OTLP endpoint is configured). Instruments are created
//! once, on first use; per-tick figures are added as deltas at each feed health report, never
//! per tick.

use std::sync::OnceLock;

use opentelemetry::metrics::{Counter, Gauge, Histogram};

/// Every instrument of the service.
pub struct Metrics {
    /// Valid reference ticks (`mm.ticks.received`).
    pub ticks: Counter<u64>,
    /// Dropped market messages, by `reason` (`mm.ticks.dropped`).
    pub dropped: Counter<u64>,
    /// Quote decisions sent to OrderManager, by `market` and `reason` (`mm.quotes`).
    pub quotes: Counter<u64>,
    /// Order actions by `kind` and `outcome` (`mm.order_actions`).
    pub actions: Counter<u64>,
    /// Actions granted in the last second (`mm.budget.used`).
    pub budget_used: Gauge<u64>,
    /// Tick receipt to approved intent, seconds (`mm.tick_to_intent.duration`).
    pub tick_to_intent: Histogram<f64>,
    /// Request sent to outcome known, seconds (`mm.submit_to_ack.duration`).
    pub submit_to_ack: Histogram<f64>,
    /// Base position, by `market` (`mm.inventory`).
    pub inventory: Gauge<f64>,
    /// Marked PnL in the quote asset, by `market` (`mm.pnl`).
    pub pnl: Gauge<f64>,
    /// Milliseconds since the reference's last valid tick, by `market` (`mm.feed.age`).
    pub feed_age: Gauge<f64>,
    /// 0 ACTIVE, 1 REDUCING, 2 HALTED, by `market` (`mm.trading_state`).
    pub trading_state: Gauge<u64>,
    /// Intents RiskGuard denied, by `market` and `reason` (`mm.risk.denials`).
    pub denials: Counter<u64>,
    /// How far the reference lies outside the venue's book, bps, by `market`
    /// (`mm.reference.divergence`).
    pub divergence: Gauge<f64>,
    /// The venue's best bid and ask, by `market` and `side` (`mm.venue.touch`).
    pub venue_touch: Gauge<f64>,
    /// Quotes kept behind the venue's opposite touch (`stage` = `quote`: clamped or dropped
    /// when priced; `send`: skipped right before the write), by `market` (`mm.post_only.avoided`).
    pub avoided_crosses: Counter<u64>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The service's instruments (created on first use from the global meter).
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| {
        let m = opentelemetry::global::meter("deltadefi-mm");
        Metrics {
            ticks: m
                .u64_counter("mm.ticks.received")
                .with_description("valid reference ticks")
                .build(),
            dropped: m
                .u64_counter("mm.ticks.dropped")
                .with_description("market messages dropped, by reason")
                .build(),
            quotes: m
                .u64_counter("mm.quotes")
                .with_description("quote decisions")
                .build(),
            actions: m
                .u64_counter("mm.order_actions")
                .with_description("order actions by kind and outcome")
                .build(),
            budget_used: m
                .u64_gauge("mm.budget.used")
                .with_description("order actions in the last second")
                .build(),
            tick_to_intent: m
                .f64_histogram("mm.tick_to_intent.duration")
                .with_unit("s")
                .with_description("tick receipt to approved intent")
                .build(),
            submit_to_ack: m
                .f64_histogram("mm.submit_to_ack.duration")
                .with_unit("s")
                .with_description("request sent to outcome known")
                .build(),
            inventory: m
                .f64_gauge("mm.inventory")
                .with_description("base position")
                .build(),
            pnl: m
                .f64_gauge("mm.pnl")
                .with_description("realized minus fees plus marked position")
                .build(),
            feed_age: m
                .f64_gauge("mm.feed.age")
                .with_unit("ms")
                .with_description("age of the last valid tick")
                .build(),
            trading_state: m
                .u64_gauge("mm.trading_state")
                .with_description("0 active, 1 reducing, 2 halted")
                .build(),
            denials: m
                .u64_counter("mm.risk.denials")
                .with_description("intents denied, by reason")
                .build(),
            divergence: m
                .f64_gauge("mm.reference.divergence")
                .with_unit("bps")
                .with_description("reference outside the venue's book")
                .build(),
            venue_touch: m
                .f64_gauge("mm.venue.touch")
                .with_description("the venue's best bid and ask")
                .build(),
            avoided_crosses: m
                .u64_counter("mm.post_only.avoided")
                .with_description("post-only quotes kept from crossing the venue's book")
                .build(),
        }
    })
}

/// A `market` attribute whose clones share one copy of the name.
pub fn market_attr(market: &crate::types::MarketId) -> opentelemetry::KeyValue {
    let name: std::sync::Arc<str> = market.as_str().into();
    opentelemetry::KeyValue::new("market", name)
}

/// The attributes `(market, reason)` of a counter counted by market and one of `kinds`, in
/// the order of `kinds`: made once per market and passed by reference (making them per count
/// cost the hot thread a string per decision or denial).
pub fn market_reason_attrs(
    market: &opentelemetry::KeyValue,
    kinds: &[&'static str],
) -> Vec<[opentelemetry::KeyValue; 2]> {
    kinds
        .iter()
        .map(|kind| {
            [
                market.clone(),
                opentelemetry::KeyValue::new("reason", *kind),
            ]
        })
        .collect()
}
