//! Domain types shared by every actor: venue and reference symbols, sides, order ids, slots,
//! the reference tick, and the wall clock.
//!
//! Names say whose namespace a value lives in: a [`MarketId`] is a DeltaDeFi pair (`ADAUSDM`),
//! a [`BinanceSymbol`] is a Binance pair (`ADAUSDT`). Prices and sizes are always
//! [`rust_decimal::Decimal`].

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A DeltaDeFi trading pair, upper case, no separator (`ADAUSDM`). Shared text: every intent,
/// order and row names its market, and a copy is a reference count, not an allocation.
#[derive(Debug, Clone, Default, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MarketId(pub std::sync::Arc<str>);

/// A map for the hot path's small tables, keyed by the configured symbols and markets (or an
/// enum): foldhash instead of SipHash, which was ~5 % of the hot thread in lookups of the same
/// few keys on every tick. Randomly seeded; no table of these grows with outside input.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A set of the same kind as [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A Binance spot symbol, upper case as it appears in `s` of bookTicker (`ADAUSDT`). Shared
/// text, as [`MarketId`]: every tick carries its symbol.
#[derive(Debug, Clone, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BinanceSymbol(pub std::sync::Arc<str>);

/// Looked up by the text of a frame's `s`, without making a symbol of it: the decoder clones
/// the configured one (a reference count, not an allocation per tick).
impl std::borrow::Borrow<str> for BinanceSymbol {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Our own order id, unique across restarts (`<prefix>-<run>-<seq>`). Shared text, as
/// [`MarketId`]: an order's id is copied into its intents, transitions and outbox rows.
#[derive(Debug, Clone, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientOrderId(pub std::sync::Arc<str>);

/// The venue's order id (a UUID on DeltaDeFi). Shared text, as [`ClientOrderId`].
#[derive(Debug, Clone, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VenueOrderId(pub std::sync::Arc<str>);

/// The venue's id of one execution; fills are unique by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TradeId(pub String);

macro_rules! display_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
        impl $t {
            /// Returns the id as a string slice.
            pub fn as_str(&self) -> &str { &self.0 }
        }
    )*};
}
/// Shared-text ids are made from owned or borrowed text, and equal when their text is. Two
/// copies of one id share its text, which is compared only when they do not: `Arc<str>`'s own
/// equality always compares the bytes (its pointer shortcut needs a sized type), and every
/// order scan compares market names.
macro_rules! shared_text {
    ($($t:ident),*) => {$(
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }
        impl Eq for $t {}
        /// The text's hash, as the equality compares the text.
        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }
        impl From<String> for $t {
            fn from(s: String) -> Self { $t(s.into()) }
        }
        impl From<&str> for $t {
            fn from(s: &str) -> Self { $t(s.into()) }
        }
    )*};
}
shared_text!(MarketId, BinanceSymbol, ClientOrderId, VenueOrderId);

display_str!(
    MarketId,
    BinanceSymbol,
    ClientOrderId,
    VenueOrderId,
    TradeId
);

impl MarketId {
    /// Base and quote asset names as the venue's balances name them: DeltaDeFi's pairs are
    /// quoted in USDM (`ADAUSDM` → `ada`, `usdm`); anything else is all base, quote `quote`.
    pub fn assets(&self) -> (String, String) {
        match self.0.strip_suffix("USDM") {
            Some(base) if !base.is_empty() => (base.to_ascii_lowercase(), "usdm".into()),
            _ => (self.0.to_ascii_lowercase(), "quote".into()),
        }
    }
}

/// The asset names ([`MarketId::assets`]) of the markets met in a scan of orders or intents,
/// which are mostly of one market: worked out again only when the market changes.
#[derive(Default)]
pub struct AssetNames<'a>(Option<(&'a MarketId, (String, String))>);

impl<'a> AssetNames<'a> {
    /// Base and quote asset names of `market`.
    pub fn of(&mut self, market: &'a MarketId) -> (&str, &str) {
        if self.0.as_ref().is_some_and(|(last, _)| *last != market) {
            self.0 = None;
        }
        let (_, (base, quote)) = self.0.get_or_insert_with(|| (market, market.assets()));
        (base, quote)
    }
}

/// Order side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// Returns the lower-case wire and database spelling (`buy` / `sell`).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// Parses the lower-case spelling.
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }

    /// Returns +1 for buys and -1 for sells: the sign of the position change of a fill.
    pub fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One quoting position in a market's desired book: a side and a level (0 = best).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    pub side: Side,
    pub level: u8,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.side, self.level)
    }
}

impl Slot {
    /// Parses the `buy0` / `sell2` form written by `Display`.
    pub fn parse(s: &str) -> Option<Slot> {
        let (side, level) = if let Some(rest) = s.strip_prefix("buy") {
            (Side::Buy, rest)
        } else if let Some(rest) = s.strip_prefix("sell") {
            (Side::Sell, rest)
        } else {
            return None;
        };
        Some(Slot {
            side,
            level: level.parse().ok()?,
        })
    }
}

/// A validated best bid/ask of the reference venue, as received.
#[derive(Debug, Clone)]
pub struct Tick {
    pub symbol: BinanceSymbol,
    /// Binance order-book update id `u`; strictly increasing per symbol.
    pub update_id: u64,
    pub bid: Decimal,
    pub bid_qty: Decimal,
    pub ask: Decimal,
    pub ask_qty: Decimal,
    /// Local wall-clock receive time (Binance spot bookTicker carries no timestamp).
    pub recv_ms: i64,
    /// Local monotonic receive instant, for tick-to-intent latency.
    pub recv_at: Instant,
}

impl Tick {
    /// Returns the mid price `(bid + ask) / 2`.
    pub fn mid(&self) -> Decimal {
        (self.bid + self.ask) / Decimal::TWO
    }
}

/// The most of `times` (sorted) within any half-open window of `window_ms`: how many order
/// actions a one-second window held at most, wherever they were counted.
pub fn max_in_window(times: &[i64], window_ms: i64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window_ms {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The largest magnitude a price, size, fee or balance from outside (Binance, the venue, the
/// config) may have: 10^12. Every parser of outside input refuses larger values, so that the
/// product of two accepted values (at most 10^24) and sums of thousands of such products stay
/// far inside `Decimal`'s range (about 7.9 × 10^28); accumulators still use checked arithmetic.
pub const MAX_EXTERNAL: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);

/// True when `d` is within ±[`MAX_EXTERNAL`]. Asked of every price and size of every tick: a
/// mantissa within the bound is within it at any scale (the scale only divides), so only a
/// large mantissa is compared as a number.
pub fn in_range(d: Decimal) -> bool {
    const MAX_MANTISSA: u128 = MAX_EXTERNAL.mantissa().unsigned_abs();
    d.mantissa().unsigned_abs() <= MAX_MANTISSA || d.abs() <= MAX_EXTERNAL
}

/// Basis points as a fraction: `bps / 10_000`.
pub fn bps(x: Decimal) -> Decimal {
    x / Decimal::from(10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_equal_by_their_text_whether_or_not_they_share_it() {
        use std::hash::BuildHasher as _;
        let a = MarketId::from("ADAUSDM");
        let shared = a.clone();
        let apart = MarketId::from(String::from("ADAUSDM"));
        assert!(!std::sync::Arc::ptr_eq(&a.0, &apart.0));
        assert_eq!(a, shared);
        assert_eq!(a, apart);
        assert_ne!(a, MarketId::from("ADAUSDT"));
        let h = std::collections::hash_map::RandomState::new();
        assert_eq!(h.hash_one(&a), h.hash_one(&apart));
        assert_eq!(h.hash_one(&a), h.hash_one("ADAUSDM"), "hashed as its text");
        let mut orders = std::collections::HashMap::new();
        orders.insert(ClientOrderId::from("mm-x-1"), 1);
        assert_eq!(
            orders.get(&ClientOrderId::from(String::from("mm-x-1"))),
            Some(&1)
        );
    }

    #[test]
    fn external_bound_is_ten_to_the_twelve() {
        assert_eq!(MAX_EXTERNAL, Decimal::from(1_000_000_000_000_i64));
        assert!(in_range(Decimal::from(-1_000_000_000_000_i64)));
        assert!(!in_range(MAX_EXTERNAL + Decimal::ONE));
        assert!(!in_range(Decimal::from_i128_with_scale(10_i128.pow(27), 0)));
        // A mantissa beyond the bound, scaled back within it (1e7), and not enough (1e13).
        assert!(in_range(Decimal::from_i128_with_scale(10_i128.pow(27), 20)));
        assert!(!in_range(Decimal::from_i128_with_scale(
            -(10_i128.pow(27)),
            14
        )));
        assert!(in_range(Decimal::from_i128_with_scale(10_i128.pow(26), 14)));
        // The product of two bounded values cannot overflow.
        assert!(MAX_EXTERNAL.checked_mul(MAX_EXTERNAL).is_some());
    }
}
