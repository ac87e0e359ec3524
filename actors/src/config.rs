//! Typed configuration of every actor, with validation.
//!
//! One `#[serde(deny_unknown_fields)]` struct per concern; [`Config::validate`] collects every
//! violation, each naming its key (`markets[0].levels`) and the allowed range, so that a bad
//! config stops start-up with a message an operator can act on. The reference of every key is
//! `config/REFERENCE.md`. Secrets are never part of this struct: they come from the environment.

use std::path::PathBuf;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::types::{BinanceSymbol, MarketId};

/// The whole service configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `staging` (mock exchange in process) or `production` (real venue).
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub run: RunConfig,
    pub markets: Vec<MarketConfig>,
    pub feed: FeedConfig,
    #[serde(default)]
    pub risk: RiskConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub mock_exchange: MockExchangeConfig,
    #[serde(default)]
    pub venue_book: VenueBookConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub backtest: BacktestConfig,
}

/// The backtest's venue, in virtual time: latencies of each step, jittered from a seeded RNG.
/// The simulated market itself (book, fees, fills, balances) is `mock_exchange`'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BacktestConfig {
    /// Seed of the latency jitter (and of the mock's random rejects, when it has any).
    pub seed: u64,
    /// `/order/build`: from the send to the venue having built the order.
    pub build_ms: u64,
    /// `/order/submit`: from the build to the order resting (or refused) and its answer.
    pub submit_ms: u64,
    /// A cancel or cancel-all, from the send to its answer.
    pub cancel_ms: u64,
    /// The account and depth streams: from the venue's change to our receiving it.
    pub stream_ms: u64,
    /// Each latency is its value plus a uniform 0..=its jitter.
    pub build_jitter_ms: u64,
    pub submit_jitter_ms: u64,
    pub cancel_jitter_ms: u64,
    pub stream_jitter_ms: u64,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            build_ms: 50,
            submit_ms: 100,
            cancel_ms: 150,
            stream_ms: 50,
            build_jitter_ms: 20,
            submit_jitter_ms: 20,
            cancel_jitter_ms: 20,
            stream_jitter_ms: 20,
        }
    }
}

/// The venue's own order book (DeltaDeFi's depth stream, or the mock in process).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VenueBookConfig {
    /// A snapshot older than this is not used (no clamp, no divergence check) and shows stale.
    pub max_age_ms: u64,
}

impl Default for VenueBookConfig {
    fn default() -> Self {
        Self { max_age_ms: 10_000 }
    }
}

/// OpenTelemetry export. With no endpoint (here or in `OTEL_EXPORTER_OTLP_ENDPOINT`),
/// nothing is exported.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP collector base URL, e.g. `http://otel-collector:4317` (gRPC) or `:4318` (HTTP).
    pub otlp_endpoint: String,
    pub protocol: OtlpProtocol,
    /// Share of root traces kept (parent-based: children follow their parent).
    pub sample_ratio: f64,
    /// `deployment.environment.name` of the service's resource.
    pub environment: String,
    /// Spans queued for export at most; beyond it new spans are dropped, never waited for.
    pub max_queue_size: usize,
    /// How often metrics are exported.
    pub metrics_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            protocol: OtlpProtocol::Grpc,
            sample_ratio: 1.0,
            environment: "staging".into(),
            max_queue_size: 4_096,
            metrics_interval_ms: 10_000,
        }
    }
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    #[default]
    Grpc,
    HttpProtobuf,
}

/// Where orders go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Orders go to the in-process MockExchange.
    #[default]
    Staging,
    /// Orders go to DeltaDeFi.
    Production,
}

/// Process-level settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// SQLite file; created with its directory if missing.
    pub db_path: PathBuf,
    /// Seconds between status lines (0 disables them).
    pub status_interval_s: u64,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Prefix of our client order ids.
    pub client_id_prefix: String,
    /// How long shutdown waits for cancels to be confirmed and the outbox to drain.
    pub drain_timeout_ms: u64,
    /// Pin the hot arbiter (the tick's path) to this CPU, and every other thread of the
    /// process to the other CPUs it may use. Unset: the scheduler places every thread.
    pub hot_cpu: Option<usize>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            db_path: PathBuf::from("data/staging.db"),
            status_interval_s: 5,
            log_format: LogFormat::Text,
            client_id_prefix: "mm".into(),
            drain_timeout_ms: 10_000,
            hot_cpu: None,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What the quote is anchored on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// Both sides around the reference mid.
    #[default]
    Mid,
    /// Bids from the reference bid, asks from the reference ask.
    Touch,
}

/// How one DeltaDeFi market is quoted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    pub market: MarketId,
    pub reference: BinanceSymbol,
    #[serde(default)]
    pub anchor: Anchor,
    /// Shift of the reference into venue terms (USDT→USDM basis), in bps; may be negative.
    #[serde(default)]
    pub anchor_bps: Decimal,
    /// Distance between our level-0 bid and ask, in bps of the anchor (half on each side).
    pub venue_spread_bps: Decimal,
    /// Base size of the level-0 order on each side.
    pub order_size: Decimal,
    /// Levels per side.
    #[serde(default = "one_u8")]
    pub levels: u8,
    /// Extra distance of each further level, in bps.
    #[serde(default)]
    pub level_spacing_bps: Decimal,
    /// Size of level `i` = `order_size * level_size_multiplier^i`.
    #[serde(default = "dec_one")]
    pub level_size_multiplier: Decimal,
    /// Price shift at `risk.max_position` inventory, in bps; linear in inventory.
    #[serde(default)]
    pub skew_bps_at_max_position: Decimal,
    /// A working order is kept while its price is within this many bps of the desired price.
    pub requote_tolerance_bps: Decimal,
    /// Venue price decimals (DeltaDeFi `price_max_dp`). Unset: adopted from the venue's
    /// `/app/market-config` at start (the mock in process: [`DEFAULT_PRICE_DECIMALS`]).
    #[serde(default)]
    pub price_decimals: Option<u32>,
    /// Venue size decimals (DeltaDeFi `base_token.max_qty_dp`). Unset: adopted like
    /// `price_decimals` ([`DEFAULT_SIZE_DECIMALS`]).
    #[serde(default)]
    pub size_decimals: Option<u32>,
    /// Minimum base size of one order. Unset: the venue's documented rule, 5 ADA (the
    /// market config has no field for it).
    #[serde(default)]
    pub min_order_size: Option<Decimal>,
    /// Minimum quote notional of one order. Unset: the documented rule, 5 USDM.
    #[serde(default)]
    pub min_order_notional: Option<Decimal>,
}

/// Price decimals when neither the config nor the venue says (DeltaDeFi's documented example).
pub const DEFAULT_PRICE_DECIMALS: u32 = 4;
/// Size decimals when neither the config nor the venue says (ADA's `max_qty_dp`).
pub const DEFAULT_SIZE_DECIMALS: u32 = 2;

/// DeltaDeFi's documented minimum order: "at least 5 ADA", and 5 USD equivalent (the spec
/// keeps both). `/app/market-config` has no field for either.
pub fn documented_minimum() -> Decimal {
    Decimal::from(5)
}

impl MarketConfig {
    /// Price decimals in force: the config's, else the default.
    pub fn price_dp(&self) -> u32 {
        self.price_decimals.unwrap_or(DEFAULT_PRICE_DECIMALS)
    }

    /// Size decimals in force.
    pub fn size_dp(&self) -> u32 {
        self.size_decimals.unwrap_or(DEFAULT_SIZE_DECIMALS)
    }

    /// Minimum base size in force.
    pub fn min_size(&self) -> Decimal {
        self.min_order_size.unwrap_or_else(documented_minimum)
    }

    /// Minimum quote notional in force.
    pub fn min_notional(&self) -> Decimal {
        self.min_order_notional.unwrap_or_else(documented_minimum)
    }

    /// Fills what the config left unset from the venue's market config (`price_max_dp`,
    /// `max_qty_dp`) and the documented minimums. Returns one line per adopted value.
    pub fn adopt(&mut self, price_max_dp: u32, max_qty_dp: u32, source: &str) -> Vec<String> {
        let mut adopted = Vec::new();
        let market = self.market.clone();
        let mut line = |key: &str, value: String, from: &str| {
            adopted.push(format!("markets[{market}].{key} = {value} (from {from})"));
        };
        if self.price_decimals.is_none() {
            self.price_decimals = Some(price_max_dp);
            line("price_decimals", price_max_dp.to_string(), source);
        }
        if self.size_decimals.is_none() {
            self.size_decimals = Some(max_qty_dp);
            line("size_decimals", max_qty_dp.to_string(), source);
        }
        let rule = "DeltaDeFi's documented minimum; the market config has no field";
        if self.min_order_size.is_none() {
            self.min_order_size = Some(documented_minimum());
            line("min_order_size", documented_minimum().to_string(), rule);
        }
        if self.min_order_notional.is_none() {
            self.min_order_notional = Some(documented_minimum());
            line("min_order_notional", documented_minimum().to_string(), rule);
        }
        adopted
    }
}

fn one_u8() -> u8 {
    1
}
fn dec_one() -> Decimal {
    Decimal::ONE
}

/// Where reference ticks come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    pub source: FeedSource,
    /// No valid tick for this long makes the feed stale: cancel all, stop quoting.
    #[serde(default = "default_stale_ms")]
    pub stale_after_ms: u64,
    /// How often BinanceFeed reports its health to RiskGuard.
    #[serde(default = "default_health_ms")]
    pub health_interval_ms: u64,
    /// Frames a max-speed source (a replay at `speed: max`, a walk without interval) takes in
    /// per turn before it lets the pipeline work them: larger batches cost less per frame and
    /// let OrderManager conflate more; each frame waits behind the rest of its batch.
    #[serde(default = "default_max_speed_batch")]
    pub max_speed_batch: u64,
    #[serde(default)]
    pub synthetic: SyntheticConfig,
    #[serde(default)]
    pub replay: ReplayConfig,
    #[serde(default)]
    pub live: LiveConfig,
    #[serde(default)]
    pub reference_guard: ReferenceGuardConfig,
}

/// When a reference move is held back until confirmed (see `binance_feed::guard`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceGuardConfig {
    /// A mid further than this from the reference of the last second is a jump, held back.
    pub jump_limit_bps: Decimal,
    /// A jump is adopted after this many agreeing ticks...
    pub confirm_ticks: u32,
    /// ...spanning at least this long. Quoting pauses meanwhile.
    pub confirm_ms: u64,
}

impl Default for ReferenceGuardConfig {
    fn default() -> Self {
        Self {
            jump_limit_bps: Decimal::from(500),
            confirm_ticks: 5,
            confirm_ms: 3_000,
        }
    }
}

fn default_stale_ms() -> u64 {
    5_000
}
fn default_health_ms() -> u64 {
    250
}

/// Frames per turn at max speed. Larger batches run a drained replay faster mostly by letting
/// OrderManager supersede more targets before it diffs (fewer orders for the same ticks), and
/// a tick waits behind more frames: BENCHMARKS.md (issue 10, eleventh and thirteenth sittings)
/// has 8, 12, 16 and 32 side by side.
pub const DEFAULT_MAX_SPEED_BATCH: u64 = 8;
/// The largest `feed.max_speed_batch` allowed (the smallest is 1).
pub const MAX_SPEED_BATCH_MAX: u64 = 1_024;

fn default_max_speed_batch() -> u64 {
    DEFAULT_MAX_SPEED_BATCH
}

/// Feed source kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedSource {
    Live,
    Replay,
    Synthetic,
}

/// Seeded random walk of the reference book.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    pub seed: u64,
    pub start_price: Decimal,
    pub tick_size: Decimal,
    /// Mean milliseconds between ticks.
    pub interval_ms: u64,
    /// Probability that a tick starts a burst of fast, trending moves.
    pub burst_probability: Decimal,
    /// Ticks in one burst.
    pub burst_len: u32,
    /// Spread of the reference book in ticks.
    pub spread_ticks: u32,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            start_price: Decimal::new(4500, 4),
            tick_size: Decimal::new(1, 4),
            interval_ms: 100,
            burst_probability: Decimal::new(5, 3),
            burst_len: 20,
            spread_ticks: 1,
        }
    }
}

/// Replay of recorded bookTicker messages (JSONL, one `{"recv_ms":…,"msg":{…}}` per line).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    pub path: PathBuf,
    /// `recorded` keeps the recorded gaps; `max` plays as fast as possible.
    pub speed: ReplaySpeed,
    /// Start again from the top at the end of the file.
    pub r#loop: bool,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("tests/data/adausdt-bookticker.jsonl"),
            speed: ReplaySpeed::Recorded,
            r#loop: false,
        }
    }
}

/// Replay pacing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaySpeed {
    #[default]
    Recorded,
    Max,
}

/// Binance bookTicker WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Base URL, without path.
    pub url: String,
    /// `combined` (`/stream?streams=a/b`) or `raw` (`/ws/a`, one symbol only).
    pub stream: StreamKind,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    /// Open a new connection (make-before-break) this long after each connect; Binance
    /// closes a connection at 24 h.
    pub rollover_after_ms: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            url: "wss://stream.binance.com:9443".into(),
            stream: StreamKind::Combined,
            reconnect_initial_ms: 500,
            reconnect_max_ms: 30_000,
            rollover_after_ms: 23 * 3_600_000,
        }
    }
}

/// Binance stream URL form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    #[default]
    Combined,
    Raw,
}

/// Limits enforced by RiskGuard, per market.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Largest absolute base position; beyond it the market goes REDUCING.
    pub max_position: Decimal,
    /// Largest base size of one order.
    pub max_order_size: Decimal,
    /// Most non-terminal orders per market.
    pub max_open_orders: u32,
    /// Orders priced further than this from the reference mid are denied.
    pub price_band_bps: Decimal,
    /// Realized + marked loss (quote units) since UTC midnight that halts trading.
    pub daily_loss_limit: Decimal,
    /// Period of the staleness and kill-switch checks.
    pub check_interval_ms: u64,
    /// Quoting pauses (`reference_diverged`) while the Binance-derived fair price lies further
    /// than this outside the venue's own touch (its book without our orders: below its best
    /// bid or above its best ask; 0 inside it); it resumes below 80 % of it. 0 turns the check
    /// off. Not the distance to the venue's mid: a thin venue book is wide, and quoting inside
    /// its spread is the point.
    pub max_reference_divergence_bps: Decimal,
    /// Deny a place the account cannot fund (free quote for a buy's notional and fee, free base
    /// for a sell), counting what our own live orders already lock.
    pub check_capital: bool,
    /// The fee rate a buy must be able to pay on top of its notional (DeltaDeFi: 0.1 %).
    pub fee_bps: Decimal,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            max_position: Decimal::from(2_000),
            max_order_size: Decimal::from(1_000),
            max_open_orders: 20,
            price_band_bps: Decimal::from(200),
            daily_loss_limit: Decimal::from(100),
            check_interval_ms: 250,
            max_reference_divergence_bps: Decimal::from(100),
            check_capital: true,
            fee_bps: Decimal::from(10),
        }
    }
}

/// The venue's order-action budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Order actions (place + cancel + cancel-all) per second.
    pub actions_per_second: u32,
    /// Actions that may go back to back; 1 spaces them evenly, which keeps every 1-second
    /// window at or under `actions_per_second`.
    pub burst: u32,
    /// Jitter the budget absorbs between our write and the venue's count: sends are counted in
    /// windows of 1000 + this many ms (and spaced by that over `actions_per_second`).
    pub venue_margin_ms: u64,
    /// Longest wait for the budget right before a write; a place that waited longer is not
    /// sent (its prices are old), a cancel is tried again.
    pub max_send_wait_ms: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            actions_per_second: 5,
            burst: 1,
            venue_margin_ms: 50,
            max_send_wait_ms: 3_000,
        }
    }
}

/// Outbox dispatch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Attempts before an intent moves to the dead-letter state.
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Requests in flight at the gateway at once.
    pub max_in_flight: u32,
    /// A place not sent within this long of its decision is dropped, never sent on old prices
    /// (a restart, a long halt, a backed-off retry).
    pub place_max_age_ms: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_initial_ms: 200,
            backoff_max_ms: 5_000,
            max_in_flight: 4,
            place_max_age_ms: 3_000,
        }
    }
}

/// The order gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// `mock`: the in-process MockExchange; `deltadefi`: DeltaDeFi (or the wire mock) over
    /// REST and WebSocket.
    pub venue: VenueKind,
    /// A request without an answer after this long has an unknown outcome.
    pub request_timeout_ms: u64,
    /// Period of the open-orders reconciliation with the venue.
    pub reconcile_interval_ms: u64,
    pub deltadefi: DeltaDeFiConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            venue: VenueKind::Mock,
            request_timeout_ms: 3_000,
            reconcile_interval_ms: 10_000,
            deltadefi: DeltaDeFiConfig::default(),
        }
    }
}

/// Which venue orders go to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueKind {
    #[default]
    Mock,
    Deltadefi,
}

/// DeltaDeFi endpoints. The API key and trading passcode come only from the environment
/// (`DELTADEFI_API_KEY`, `DELTADEFI_TRADING_PASSCODE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeltaDeFiConfig {
    /// `staging`, `mainnet`, or `custom` (then `rest_url` and `ws_url` are used).
    pub environment: DeltaDeFiEnvironment,
    pub rest_url: String,
    pub ws_url: String,
    /// Protocol pings on the account stream (the server's own cadence is unconfirmed).
    pub ping_interval_ms: u64,
    /// Also send the text frame "ping" this often, as DeltaDeFi's Hummingbot connector does;
    /// 0 = never (whether the server needs or answers it is unconfirmed).
    pub text_ping_interval_ms: u64,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for DeltaDeFiConfig {
    fn default() -> Self {
        Self {
            environment: DeltaDeFiEnvironment::Staging,
            rest_url: String::new(),
            ws_url: String::new(),
            ping_interval_ms: 20_000,
            text_ping_interval_ms: 0,
            reconnect_initial_ms: 1_000,
            reconnect_max_ms: 60_000,
        }
    }
}

/// DeltaDeFi environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeltaDeFiEnvironment {
    #[default]
    Staging,
    Mainnet,
    Custom,
}

impl DeltaDeFiConfig {
    /// REST and WebSocket base URLs (spec §1.1), without a trailing slash.
    pub fn urls(&self) -> (String, String) {
        match self.environment {
            DeltaDeFiEnvironment::Staging => (
                "https://api-staging.deltadefi.io".into(),
                "wss://stream-staging.deltadefi.io".into(),
            ),
            DeltaDeFiEnvironment::Mainnet => (
                "https://api.deltadefi.io".into(),
                "wss://stream.deltadefi.io".into(),
            ),
            DeltaDeFiEnvironment::Custom => (
                self.rest_url.trim_end_matches('/').to_string(),
                self.ws_url.trim_end_matches('/').to_string(),
            ),
        }
    }
}

/// The simulated DeltaDeFi.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockExchangeConfig {
    pub seed: u64,
    /// One-way latency of every request and event.
    pub latency_ms: u64,
    /// Extra random latency on acknowledgements, 0..=this.
    pub latency_jitter_ms: u64,
    pub maker_fee_bps: Decimal,
    /// Fee of an order's part that executes on arrival (DeltaDeFi documents 0.1 % for both).
    pub taker_fee_bps: Decimal,
    /// Share of an order's size filled per reference tick that trades through it (0 < r ≤ 1).
    pub partial_fill_ratio: Decimal,
    /// Probability that a request fails with code 5000 (retryable).
    pub reject_probability: Decimal,
    /// Fill on the reference touching the price, not only trading through it.
    pub fill_on_touch: bool,
    /// Budget the mock enforces itself (code 4290 beyond it); 0 = same as `rate_limit`.
    pub actions_per_second: u32,
    pub base_balance: Decimal,
    pub quote_balance: Decimal,
    /// Price levels per side of the other participants' simulated book, one tick apart from
    /// the reference touch.
    pub book_levels: u32,
    /// Base size of each of those levels.
    pub book_level_size: Decimal,
    /// Check precision, minimum size, type and symbol when an order is built (as well as at
    /// submit); false checks them only at submit. Which DeltaDeFi does is unconfirmed.
    pub validate_at_build: bool,
    /// The wire mock sends its depth snapshot at least this often even when nothing moved
    /// (whether DeltaDeFi does is unconfirmed; it sends one on every change).
    pub depth_interval_ms: u64,
    /// At max speed (replay or walk), the in-process mock is handed the reference in runs, each
    /// once its oldest tick is this old (0: every turn of the feed, as at real rates, where the
    /// feed waits between frames and hands each over as it comes).
    pub follow_batch_us: u64,
}

impl Default for MockExchangeConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            latency_ms: 20,
            latency_jitter_ms: 10,
            maker_fee_bps: Decimal::from(10),
            taker_fee_bps: Decimal::from(10),
            partial_fill_ratio: Decimal::new(5, 1),
            reject_probability: Decimal::ZERO,
            fill_on_touch: false,
            actions_per_second: 0,
            base_balance: Decimal::from(20_000),
            quote_balance: Decimal::from(10_000),
            book_levels: 5,
            book_level_size: Decimal::from(1_000),
            validate_at_build: true,
            depth_interval_ms: 1_000,
            follow_batch_us: 1_000,
        }
    }
}

/// One invalid key, with what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

struct Checker(Vec<Violation>);

impl Checker {
    fn check(&mut self, ok: bool, key: impl Into<String>, problem: impl Into<String>) {
        if !ok {
            self.0.push(Violation {
                key: key.into(),
                problem: problem.into(),
            });
        }
    }
    fn positive(&mut self, v: Decimal, key: impl Into<String>) {
        self.check(
            v > Decimal::ZERO && crate::types::in_range(v),
            key,
            format!("must be > 0 and <= 1e12 (got {v})"),
        );
    }
    fn non_negative(&mut self, v: Decimal, key: impl Into<String>) {
        self.check(
            v >= Decimal::ZERO && crate::types::in_range(v),
            key,
            format!("must be >= 0 and <= 1e12 (got {v})"),
        );
    }
    fn range_u64(&mut self, v: u64, lo: u64, hi: u64, key: impl Into<String>) {
        self.check(
            (lo..=hi).contains(&v),
            key,
            format!("must be in {lo}..={hi} (got {v})"),
        );
    }
}

impl Config {
    /// Returns every violation of the allowed ranges; empty when the config is usable.
    pub fn validate(&self) -> Vec<Violation> {
        let mut c = Checker(Vec::new());
        c.check(
            !self.markets.is_empty(),
            "markets",
            "must list at least one market",
        );
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.markets.iter().enumerate() {
            let k = |f: &str| format!("markets[{i}].{f}");
            c.check(
                seen.insert(m.market.clone()),
                k("market"),
                format!("{} is listed twice", m.market),
            );
            c.check(
                !m.market.0.is_empty()
                    && m.market
                        .0
                        .chars()
                        .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()),
                k("market"),
                "must be upper-case letters and digits, e.g. ADAUSDM",
            );
            c.check(
                !m.reference.0.is_empty()
                    && m.reference
                        .0
                        .chars()
                        .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()),
                k("reference"),
                "must be an upper-case Binance symbol, e.g. ADAUSDT",
            );
            c.check(
                m.anchor_bps.abs() <= Decimal::from(1_000),
                k("anchor_bps"),
                format!("must be in -1000..=1000 (got {})", m.anchor_bps),
            );
            c.check(
                m.venue_spread_bps > Decimal::ZERO && m.venue_spread_bps <= Decimal::from(5_000),
                k("venue_spread_bps"),
                format!("must be in (0, 5000] (got {})", m.venue_spread_bps),
            );
            c.positive(m.order_size, k("order_size"));
            c.range_u64(u64::from(m.levels), 1, 10, k("levels"));
            c.non_negative(m.level_spacing_bps, k("level_spacing_bps"));
            c.check(
                m.level_size_multiplier > Decimal::ZERO
                    && m.level_size_multiplier <= Decimal::from(10),
                k("level_size_multiplier"),
                format!("must be in (0, 10] (got {})", m.level_size_multiplier),
            );
            c.non_negative(m.skew_bps_at_max_position, k("skew_bps_at_max_position"));
            c.non_negative(m.requote_tolerance_bps, k("requote_tolerance_bps"));
            c.range_u64(u64::from(m.price_dp()), 0, 12, k("price_decimals"));
            c.range_u64(u64::from(m.size_dp()), 0, 12, k("size_decimals"));
            c.non_negative(m.min_size(), k("min_order_size"));
            c.non_negative(m.min_notional(), k("min_order_notional"));
            c.check(
                m.order_size >= m.min_size(),
                k("order_size"),
                format!(
                    "must be >= min_order_size {} (got {})",
                    m.min_size(),
                    m.order_size
                ),
            );
        }
        let f = &self.feed;
        c.range_u64(f.stale_after_ms, 100, 600_000, "feed.stale_after_ms");
        c.range_u64(f.health_interval_ms, 10, 10_000, "feed.health_interval_ms");
        c.range_u64(
            f.max_speed_batch,
            1,
            MAX_SPEED_BATCH_MAX,
            "feed.max_speed_batch",
        );
        c.check(
            f.health_interval_ms < f.stale_after_ms,
            "feed.health_interval_ms",
            "must be below feed.stale_after_ms",
        );
        let g = &f.reference_guard;
        c.check(
            g.jump_limit_bps > Decimal::ZERO && g.jump_limit_bps <= Decimal::from(10_000),
            "feed.reference_guard.jump_limit_bps",
            format!("must be in (0, 10000] (got {})", g.jump_limit_bps),
        );
        c.range_u64(
            u64::from(g.confirm_ticks),
            1,
            10_000,
            "feed.reference_guard.confirm_ticks",
        );
        c.range_u64(g.confirm_ms, 0, 600_000, "feed.reference_guard.confirm_ms");
        let s = &f.synthetic;
        c.positive(s.start_price, "feed.synthetic.start_price");
        c.positive(s.tick_size, "feed.synthetic.tick_size");
        c.range_u64(s.interval_ms, 0, 60_000, "feed.synthetic.interval_ms");
        c.check(
            s.burst_probability >= Decimal::ZERO && s.burst_probability <= Decimal::ONE,
            "feed.synthetic.burst_probability",
            format!("must be in 0..=1 (got {})", s.burst_probability),
        );
        c.range_u64(
            u64::from(s.spread_ticks),
            1,
            1_000,
            "feed.synthetic.spread_ticks",
        );
        if f.source == FeedSource::Replay {
            c.check(
                !f.replay.path.as_os_str().is_empty(),
                "feed.replay.path",
                "must name a JSONL file when feed.source is replay",
            );
        }
        if f.source == FeedSource::Live {
            c.check(
                f.live.url.starts_with("ws://") || f.live.url.starts_with("wss://"),
                "feed.live.url",
                format!("must start with ws:// or wss:// (got {})", f.live.url),
            );
            c.check(
                f.live.stream == StreamKind::Combined || self.markets.len() <= 1,
                "feed.live.stream",
                "raw streams carry one symbol: use combined for several markets",
            );
            c.range_u64(
                f.live.reconnect_initial_ms,
                10,
                60_000,
                "feed.live.reconnect_initial_ms",
            );
            c.range_u64(
                f.live.reconnect_max_ms,
                f.live.reconnect_initial_ms,
                600_000,
                "feed.live.reconnect_max_ms",
            );
            c.range_u64(
                f.live.rollover_after_ms,
                1_000,
                86_000_000,
                "feed.live.rollover_after_ms",
            );
        }
        let r = &self.risk;
        c.positive(r.max_position, "risk.max_position");
        c.positive(r.max_order_size, "risk.max_order_size");
        c.range_u64(
            u64::from(r.max_open_orders),
            1,
            1_000,
            "risk.max_open_orders",
        );
        c.positive(r.price_band_bps, "risk.price_band_bps");
        c.positive(r.daily_loss_limit, "risk.daily_loss_limit");
        c.range_u64(r.check_interval_ms, 10, 60_000, "risk.check_interval_ms");
        c.check(
            r.max_reference_divergence_bps >= Decimal::ZERO
                && r.max_reference_divergence_bps <= Decimal::from(10_000),
            "risk.max_reference_divergence_bps",
            format!(
                "must be in 0..=10000, 0 = off (got {})",
                r.max_reference_divergence_bps
            ),
        );
        c.check(
            r.fee_bps >= Decimal::ZERO && r.fee_bps <= Decimal::from(1_000),
            "risk.fee_bps",
            format!("must be in 0..=1000 (got {})", r.fee_bps),
        );
        c.range_u64(
            self.venue_book.max_age_ms,
            100,
            600_000,
            "venue_book.max_age_ms",
        );
        for (i, m) in self.markets.iter().enumerate() {
            c.check(
                m.order_size <= r.max_order_size,
                format!("markets[{i}].order_size"),
                format!(
                    "must be <= risk.max_order_size {} (got {})",
                    r.max_order_size, m.order_size
                ),
            );
        }
        let rl = &self.rate_limit;
        c.range_u64(
            u64::from(rl.actions_per_second),
            1,
            1_000_000,
            "rate_limit.actions_per_second",
        );
        c.range_u64(
            u64::from(rl.burst),
            1,
            u64::from(rl.actions_per_second.max(1)),
            "rate_limit.burst",
        );
        c.range_u64(rl.venue_margin_ms, 0, 1_000, "rate_limit.venue_margin_ms");
        c.range_u64(
            rl.max_send_wait_ms,
            100,
            60_000,
            "rate_limit.max_send_wait_ms",
        );
        let o = &self.outbox;
        c.range_u64(u64::from(o.max_attempts), 1, 100, "outbox.max_attempts");
        c.range_u64(o.backoff_initial_ms, 1, 60_000, "outbox.backoff_initial_ms");
        c.range_u64(
            o.backoff_max_ms,
            o.backoff_initial_ms,
            600_000,
            "outbox.backoff_max_ms",
        );
        c.range_u64(u64::from(o.max_in_flight), 1, 64, "outbox.max_in_flight");
        c.range_u64(o.place_max_age_ms, 100, 600_000, "outbox.place_max_age_ms");
        c.range_u64(
            self.gateway.request_timeout_ms,
            10,
            120_000,
            "gateway.request_timeout_ms",
        );
        c.range_u64(
            self.gateway.reconcile_interval_ms,
            100,
            600_000,
            "gateway.reconcile_interval_ms",
        );
        let dd = &self.gateway.deltadefi;
        if dd.environment == DeltaDeFiEnvironment::Custom {
            c.check(
                dd.rest_url.starts_with("http://") || dd.rest_url.starts_with("https://"),
                "gateway.deltadefi.rest_url",
                format!(
                    "must be an http(s) URL when environment is custom (got {:?})",
                    dd.rest_url
                ),
            );
            c.check(
                dd.ws_url.starts_with("ws://") || dd.ws_url.starts_with("wss://"),
                "gateway.deltadefi.ws_url",
                format!(
                    "must be a ws(s) URL when environment is custom (got {:?})",
                    dd.ws_url
                ),
            );
        }
        c.range_u64(
            dd.ping_interval_ms,
            1_000,
            300_000,
            "gateway.deltadefi.ping_interval_ms",
        );
        c.range_u64(
            dd.reconnect_initial_ms,
            10,
            60_000,
            "gateway.deltadefi.reconnect_initial_ms",
        );
        c.range_u64(
            dd.reconnect_max_ms,
            dd.reconnect_initial_ms,
            600_000,
            "gateway.deltadefi.reconnect_max_ms",
        );
        let b = &self.backtest;
        for (v, key) in [
            (b.build_ms, "backtest.build_ms"),
            (b.submit_ms, "backtest.submit_ms"),
            (b.cancel_ms, "backtest.cancel_ms"),
            (b.stream_ms, "backtest.stream_ms"),
            (b.build_jitter_ms, "backtest.build_jitter_ms"),
            (b.submit_jitter_ms, "backtest.submit_jitter_ms"),
            (b.cancel_jitter_ms, "backtest.cancel_jitter_ms"),
            (b.stream_jitter_ms, "backtest.stream_jitter_ms"),
        ] {
            c.range_u64(v, 0, 60_000, key);
        }
        let m = &self.mock_exchange;
        c.range_u64(m.latency_ms, 0, 10_000, "mock_exchange.latency_ms");
        c.range_u64(
            m.latency_jitter_ms,
            0,
            10_000,
            "mock_exchange.latency_jitter_ms",
        );
        c.non_negative(m.maker_fee_bps, "mock_exchange.maker_fee_bps");
        c.check(
            m.partial_fill_ratio > Decimal::ZERO && m.partial_fill_ratio <= Decimal::ONE,
            "mock_exchange.partial_fill_ratio",
            format!("must be in (0, 1] (got {})", m.partial_fill_ratio),
        );
        c.check(
            m.reject_probability >= Decimal::ZERO && m.reject_probability < Decimal::ONE,
            "mock_exchange.reject_probability",
            format!("must be in [0, 1) (got {})", m.reject_probability),
        );
        c.non_negative(m.base_balance, "mock_exchange.base_balance");
        c.non_negative(m.quote_balance, "mock_exchange.quote_balance");
        c.non_negative(m.taker_fee_bps, "mock_exchange.taker_fee_bps");
        c.range_u64(
            u64::from(m.book_levels),
            1,
            100,
            "mock_exchange.book_levels",
        );
        c.positive(m.book_level_size, "mock_exchange.book_level_size");
        c.range_u64(
            m.depth_interval_ms,
            10,
            600_000,
            "mock_exchange.depth_interval_ms",
        );
        c.range_u64(
            m.follow_batch_us,
            0,
            100_000,
            "mock_exchange.follow_batch_us",
        );
        c.range_u64(
            self.run.status_interval_s,
            0,
            3_600,
            "run.status_interval_s",
        );
        let t = &self.telemetry;
        c.check(
            (0.0..=1.0).contains(&t.sample_ratio),
            "telemetry.sample_ratio",
            format!("must be in 0..=1 (got {})", t.sample_ratio),
        );
        c.range_u64(
            t.max_queue_size as u64,
            64,
            1_000_000,
            "telemetry.max_queue_size",
        );
        c.range_u64(
            t.metrics_interval_ms,
            100,
            600_000,
            "telemetry.metrics_interval_ms",
        );
        c.check(
            t.otlp_endpoint.is_empty()
                || t.otlp_endpoint.starts_with("http://")
                || t.otlp_endpoint.starts_with("https://"),
            "telemetry.otlp_endpoint",
            format!(
                "must be empty or an http(s) URL (got {:?})",
                t.otlp_endpoint
            ),
        );
        c.range_u64(
            self.run.drain_timeout_ms,
            0,
            600_000,
            "run.drain_timeout_ms",
        );
        if let Some(cpu) = self.run.hot_cpu {
            c.range_u64(cpu as u64, 0, 1023, "run.hot_cpu");
        }
        c.check(
            !self.run.client_id_prefix.is_empty()
                && self.run.client_id_prefix.len() <= 16
                && self
                    .run
                    .client_id_prefix
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric()),
            "run.client_id_prefix",
            "must be 1..=16 ASCII letters or digits",
        );
        c.check(
            self.mode == Mode::Staging || self.gateway.venue == VenueKind::Deltadefi,
            "mode",
            "production needs gateway.venue: deltadefi",
        );
        c.check(
            self.mode == Mode::Staging || self.gateway.deltadefi.environment == DeltaDeFiEnvironment::Mainnet,
            "gateway.deltadefi.environment",
            "production trades on mainnet; use mode: staging for the staging environment or a custom URL",
        );
        c.0
    }

    /// The distinct Binance symbols the markets price from, in first-seen order: one feed
    /// subscription (and one synthetic walk) per symbol, however many markets share it.
    pub fn reference_symbols(&self) -> Vec<BinanceSymbol> {
        let mut out: Vec<BinanceSymbol> = Vec::with_capacity(self.markets.len());
        for m in &self.markets {
            if !out.contains(&m.reference) {
                out.push(m.reference.clone());
            }
        }
        out
    }

    /// Returns the budget the mock exchange enforces.
    pub fn mock_actions_per_second(&self) -> u32 {
        if self.mock_exchange.actions_per_second == 0 {
            self.rate_limit.actions_per_second
        } else {
            self.mock_exchange.actions_per_second
        }
    }
}
