//! Actors, typed messages and pure cores of deltadefi-mm.
//!
//! # Layout
//!
//! - [`binance_feed`]: BinanceFeed actor; [`binance_feed::codec`] bookTicker decoding and
//!   validation; [`binance_feed::source`] synthetic walk and replay files.
//! - [`quote_engine`]: QuoteEngine actor; [`quote_engine::pricing`] the desired book and rounding.
//! - [`order_manager`]: OrderManager actor; [`order_manager::state`] the order state machine;
//!   [`order_manager::book`] the diff of desired vs working orders.
//! - [`risk_guard`]: RiskGuard actor; [`risk_guard::rules`] limits, positions, trading states.
//! - [`rate_limiter`]: RateLimiter actor: dispatch pacing, the venue budget at the write point
//!   ([`rate_limiter::budget`]), and the [`rate_limiter::SendGate`] every transport writes through.
//! - [`outbox_worker`]: OutboxWorker actor; [`outbox_worker::queue`] conflation, ordering, retries.
//! - [`gateway`]: DeltaDeFiGateway actor; [`gateway::errors`] what each venue code means.
//! - [`account_feed`]: AccountFeed actor: order updates, fills (stored once), balances, resync.
//! - [`mock_exchange`]: MockExchange actor; [`mock_exchange::matching`] the simulated venue.
//! - [`messages`]: every message between actors, who sends it, who receives it, and what the
//!   receiver promises; [`orders`]: the order record OrderManager keeps and the store writes.
//! - [`store`]: SQLite on its own thread, group commit, migrations, typed rows.
//! - [`venue`]: transport-independent venue requests, replies, errors and events.
//! - [`venue_book`]: the venue's own order book per market (depth stream), from any thread.
//! - [`intent`], [`types`], [`config`], [`pricing_rules`]: shared domain types and configuration.
//! - [`registry`]: late-bound peers; [`supervision`]: panic-to-restart with backoff, crash-loop
//!   detection, health, fault injection.
//! - [`halt_gate`]: whether a place may leave the process, per market, from any thread.
//! - [`deltadefi`]: DeltaDeFi REST and account-stream shapes, parsed defensively.
//! - [`signer`]: operation-key decryption, BIP32-Ed25519 derivation, Cardano tx signing.
//! - [`trace`]: W3C traceparent across actors and restarts.
//! - [`metrics`]: the service's OpenTelemetry instruments.
//! - [`latency`], [`rng`]: fixed-memory histogram, seeded PRNG.
//! - `fuzz_harness`: every parser of outside input under arbitrary bytes (fuzz targets, tests).
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod account_feed;
pub mod after_turn;
pub mod binance_feed;
pub mod config;
pub mod deltadefi;
#[doc(hidden)]
pub mod fuzz_harness;
pub mod gateway;
pub mod halt_gate;
pub mod intent;
pub mod latency;
pub mod messages;
pub mod metrics;
pub mod mock_exchange;
pub mod order_manager;
pub mod orders;
pub mod outbox_worker;
pub mod pricing_rules;
pub mod quote_engine;
pub mod rate_limiter;
pub mod registry;
pub mod risk_guard;
pub mod rng;
pub mod signer;
pub mod store;
pub mod supervision;
pub mod trace;
pub mod types;
pub mod venue;
pub mod venue_book;
