//! DeltaDeFi's REST and account-stream shapes (spec §1–2), parsed defensively where the
//! sources disagree: decimals as strings or numbers, lists bare or paginated, a submitted
//! order bare or under `order`, `id` or `order_id`, current and legacy statuses. Everything
//! converts into the transport-independent [`crate::venue`] types.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::types::{ClientOrderId, MAX_EXTERNAL, MarketId, Side, TradeId, VenueOrderId, in_range};
use crate::venue::{
    Balance, Depth, Liquidity, VenueError, VenueFill, VenueOrder, VenueOrderStatus,
};

/// A decimal sent as a JSON string or number, within ±[`MAX_EXTERNAL`].
fn dec_any<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let v = dec_any_unbounded(d)?;
    if in_range(v) {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "{v} is beyond the accepted magnitude {MAX_EXTERNAL}"
        )))
    }
}

fn dec_any_unbounded<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        N(serde_json::Number),
    }
    match Raw::deserialize(d)? {
        Raw::S(s) if s.trim().is_empty() => Ok(Decimal::ZERO),
        Raw::S(s) => s.trim().parse().map_err(serde::de::Error::custom),
        // From the number's own text, never through f64.
        Raw::N(n) => n
            .to_string()
            .parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map_err(serde::de::Error::custom),
    }
}

fn dec_any_default<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    Option::<serde_json::Value>::deserialize(d)?.map_or(Ok(Decimal::ZERO), |v| {
        dec_any(v).map_err(serde::de::Error::custom)
    })
}

/// The error body: `{"error": "...", "code": 4200}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub code: u32,
}

/// Reads a non-2xx answer as a definite venue error: a JSON body `{"error", "code"}` with a
/// code, or HTTP 429 / 401 (refused before anything was done). Anything else (an HTML page, an
/// empty 403, a proxy's 503 text) is `None`: not a venue answer, so the request's outcome is
/// unknown.
pub fn error_from_http(status: u16, body: &[u8]) -> Option<VenueError> {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body)
        && e.code != 0
    {
        return Some(VenueError::new(e.code, e.error));
    }
    let code = match status {
        429 => 4290,
        401 => 4010,
        _ => return None,
    };
    Some(VenueError::new(
        code,
        format!("HTTP {status}: {}", describe_body(body)),
    ))
}

/// A short printable rendering of a response body, for logs and errors.
pub fn describe_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text.chars().take(200).collect()
    }
}

/// `GET /app/market-config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketConfigResponse {
    #[serde(default)]
    pub trading_pairs: Vec<TradingPair>,
}

/// One pair of the market config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradingPair {
    pub symbol: String,
    pub base_token: Token,
    pub quote_token: Token,
    pub price_max_dp: u32,
}

/// A token of a pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub symbol: String,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub decimals: u32,
    pub max_qty_dp: u32,
}

/// `GET /accounts/operation-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationKeyResponse {
    /// A JSON document serialised into a string: `{"iv","salt","ciphertext"}`.
    pub encrypted_operation_key: String,
    #[serde(default)]
    pub operation_key_hash: String,
}

/// `POST /order/build` request: a post-only limit order, decimals as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildOrderRequest {
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: String,
    pub base_quantity: String,
    pub price: String,
    pub post_only: bool,
}

/// `POST /order/build` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildOrderResponse {
    pub order_id: String,
    pub tx_hex: String,
}

/// `POST /order/submit` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitOrderRequest {
    pub order_id: String,
    pub signed_tx: String,
}

/// `POST /order/{id}/cancel` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrderResponse {
    pub order_id: String,
}

/// `POST /order/cancel-all` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAllRequest {
    pub symbol: String,
}

/// `POST /order/cancel-all` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAllResponse {
    #[serde(default)]
    pub symbol: String,
    #[serde(default)]
    pub order_ids: Vec<String>,
}

/// Order status, current and legacy spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireStatus {
    Building,
    Processing,
    Open,
    Closed,
    Failed,
    Cancelled,
    PartiallyFilled,
    FullyFilled,
    PartiallyCancelled,
    #[serde(other)]
    Unrecognised,
}

/// An order as REST and the account stream report it (spec §1.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderResponse {
    #[serde(default)]
    pub id: Option<String>,
    /// The legacy name of `id`.
    #[serde(default)]
    pub order_id: Option<String>,
    pub status: WireStatus,
    pub symbol: String,
    pub side: Side,
    #[serde(deserialize_with = "dec_any")]
    pub base_qty: Decimal,
    #[serde(default, deserialize_with = "dec_any_default")]
    pub price: Decimal,
    #[serde(default, deserialize_with = "dec_any_default")]
    pub executed_base_qty: Decimal,
    #[serde(default, deserialize_with = "dec_any_default")]
    pub executed_price: Decimal,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub commission_unit: String,
    #[serde(default)]
    pub order_execution_records: Option<Vec<ExecutionRecord>>,
}

/// One execution of an order (a fill).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub id: String,
    pub order_id: String,
    #[serde(deserialize_with = "dec_any")]
    pub execution_price: Decimal,
    #[serde(deserialize_with = "dec_any")]
    pub filled_base_qty: Decimal,
    #[serde(default, deserialize_with = "dec_any_default")]
    pub commission: Decimal,
    #[serde(default)]
    pub commission_unit: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub created_at: String,
}

/// The submit response: the order itself (current) or under `order` (older SDKs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SubmitOrderResponse {
    Wrapped { order: OrderResponse },
    Bare(OrderResponse),
}

impl SubmitOrderResponse {
    /// The order.
    pub fn into_order(self) -> OrderResponse {
        match self {
            SubmitOrderResponse::Wrapped { order } | SubmitOrderResponse::Bare(order) => order,
        }
    }
}

/// A list, bare or paginated (`{"data": [...], "total_count", "total_page"}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ListOf<T> {
    Paginated {
        data: Vec<T>,
        #[serde(default)]
        total_page: Option<u32>,
    },
    Bare(Vec<T>),
}

impl<T> ListOf<T> {
    /// The items and the page count (1 for a bare list).
    pub fn into_parts(self) -> (Vec<T>, u32) {
        match self {
            ListOf::Paginated { data, total_page } => (data, total_page.unwrap_or(1)),
            ListOf::Bare(v) => (v, 1),
        }
    }
}

/// One balance row; `free`/`locked` as strings or numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceRow {
    pub asset: String,
    #[serde(default)]
    pub asset_unit: String,
    #[serde(deserialize_with = "dec_any")]
    pub free: Decimal,
    #[serde(deserialize_with = "dec_any")]
    pub locked: Decimal,
}

impl From<BalanceRow> for Balance {
    fn from(b: BalanceRow) -> Balance {
        Balance {
            asset: b.asset.to_ascii_lowercase(),
            free: b.free,
            locked: b.locked,
        }
    }
}

/// One account-stream message (spec §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "sub_type", rename_all = "snake_case")]
pub enum AccountMessage {
    OrderInfo {
        order: Box<OrderResponse>,
    },
    Balance {
        balance: Vec<BalanceRow>,
    },
    /// Rewards and anything else: ignored.
    #[serde(other)]
    Other,
}

/// A depth-stream message (spec §2.3): a full snapshot, levels as JSON numbers (or strings),
/// bids best first, asks best first; the symbol is the one in the stream's URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DepthMessage {
    #[serde(default)]
    pub timestamp: Option<serde_json::Value>,
    #[serde(default)]
    pub bids: Vec<DepthLevel>,
    #[serde(default)]
    pub asks: Vec<DepthLevel>,
}

/// One level of a depth message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DepthLevel {
    #[serde(deserialize_with = "dec_any")]
    pub price: Decimal,
    #[serde(deserialize_with = "dec_any")]
    pub quantity: Decimal,
}

/// Levels of a depth snapshot kept per side.
pub const DEPTH_LEVELS_KEPT: usize = 100;

/// Why a depth snapshot is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepthError {
    #[error("a level has a price or quantity that is not positive")]
    NotPositive,
    #[error("the book is crossed: best bid {bid} >= best ask {ask}")]
    Crossed { bid: Decimal, ask: Decimal },
}

impl DepthMessage {
    /// The book, sorted best first (whatever order it came in), at most
    /// [`DEPTH_LEVELS_KEPT`] levels a side.
    ///
    /// # Errors
    /// [`DepthError`]: a level that is not positive, or a crossed book; the snapshot is dropped.
    pub fn into_depth(self) -> Result<Depth, DepthError> {
        let level = |l: DepthLevel| {
            (l.price > Decimal::ZERO && l.quantity > Decimal::ZERO)
                .then_some((l.price, l.quantity))
                .ok_or(DepthError::NotPositive)
        };
        let mut bids = self
            .bids
            .into_iter()
            .map(level)
            .collect::<Result<Vec<_>, _>>()?;
        let mut asks = self
            .asks
            .into_iter()
            .map(level)
            .collect::<Result<Vec<_>, _>>()?;
        bids.sort_by_key(|l| std::cmp::Reverse(l.0));
        asks.sort_by_key(|l| l.0);
        bids.truncate(DEPTH_LEVELS_KEPT);
        asks.truncate(DEPTH_LEVELS_KEPT);
        if let (Some(b), Some(a)) = (bids.first(), asks.first())
            && b.0 >= a.0
        {
            return Err(DepthError::Crossed { bid: b.0, ask: a.0 });
        }
        Ok(Depth { bids, asks })
    }
}

/// Why a wire object could not become a venue object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("order without id or order_id")]
    NoOrderId,
}

impl OrderResponse {
    /// The order id: `id`, else the legacy `order_id`.
    pub fn venue_id(&self) -> Option<VenueOrderId> {
        self.id
            .clone()
            .or_else(|| self.order_id.clone())
            .filter(|s| !s.is_empty())
            .map(VenueOrderId::from)
    }

    /// Converts to the venue view. DeltaDeFi carries no client id.
    ///
    /// # Errors
    /// [`WireError::NoOrderId`] when neither id field is present.
    pub fn to_venue(&self, ts_ms: i64) -> Result<VenueOrder, WireError> {
        let venue_order_id = self.venue_id().ok_or(WireError::NoOrderId)?;
        let filled = self.executed_base_qty;
        let status = match self.status {
            WireStatus::Building
            | WireStatus::Processing
            | WireStatus::Open
            | WireStatus::Unrecognised => {
                if filled > Decimal::ZERO {
                    VenueOrderStatus::PartiallyFilled
                } else {
                    VenueOrderStatus::Open
                }
            }
            WireStatus::PartiallyFilled => VenueOrderStatus::PartiallyFilled,
            WireStatus::Closed | WireStatus::FullyFilled => VenueOrderStatus::Filled,
            WireStatus::Cancelled | WireStatus::PartiallyCancelled => VenueOrderStatus::Cancelled,
            WireStatus::Failed => VenueOrderStatus::Failed,
        };
        Ok(VenueOrder {
            venue_order_id,
            client_order_id: None,
            market: MarketId(self.symbol.as_str().into()),
            side: self.side,
            price: self.price,
            size: self.base_qty,
            filled,
            status,
            ts_ms,
        })
    }

    /// The fills in `order_execution_records`, when the venue sent them. A record without a
    /// positive size or price is no execution and is skipped.
    pub fn fills(&self, ts_ms: i64, commission_divisor_lovelace: Decimal) -> Vec<VenueFill> {
        let Some(records) = &self.order_execution_records else {
            return Vec::new();
        };
        records
            .iter()
            .filter(|r| r.filled_base_qty > Decimal::ZERO && r.execution_price > Decimal::ZERO)
            .map(|r| VenueFill {
                trade_id: TradeId(r.id.clone()),
                venue_order_id: VenueOrderId(r.order_id.as_str().into()),
                client_order_id: None::<ClientOrderId>,
                market: MarketId(self.symbol.as_str().into()),
                side: self.side,
                price: r.execution_price,
                size: r.filled_base_qty,
                fee: if r.commission_unit == "lovelace" && !commission_divisor_lovelace.is_zero() {
                    r.commission / commission_divisor_lovelace
                } else {
                    r.commission
                },
                liquidity: if r.role == "taker" {
                    Liquidity::Taker
                } else {
                    Liquidity::Maker
                },
                ts_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! Fixtures are the spec's shapes (exchange-apis.md §1.5, §1.6, §2.2), including the
    //! variants the sources disagree on.
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    const ORDER: &str = r#"{"id":"550e8400-e29b-41d4-a716-446655440000","account_id":"a1","status":"open","symbol":"ADAUSDM",
        "base_qty":"100.00","quote_qty":"93.00","side":"buy","price":"0.93","type":"limit",
        "locked_base_qty":"100.00","locked_quote_qty":"93.00","executed_base_qty":"0","executed_quote_qty":"0",
        "ob_open_order_base_qty":"100.00","commission_unit":"lovelace","commission":"0","commission_rate_bp":10,
        "executed_price":"0","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z",
        "order_execution_records":[]}"#;

    #[test]
    fn order_response_bare_wrapped_and_legacy_id() {
        let bare: SubmitOrderResponse = serde_json::from_str(ORDER).expect("bare");
        let wrapped: SubmitOrderResponse =
            serde_json::from_str(&format!(r#"{{"order":{ORDER}}}"#)).expect("wrapped");
        assert_eq!(bare.clone().into_order(), wrapped.into_order());
        let o = bare.into_order().to_venue(5).expect("venue");
        assert_eq!(
            o.venue_order_id.as_str(),
            "550e8400-e29b-41d4-a716-446655440000"
        );
        assert_eq!(
            (o.side, o.price, o.size, o.status),
            (Side::Buy, d("0.93"), d("100.00"), VenueOrderStatus::Open)
        );
        let legacy = ORDER.replace(r#""id":"#, r#""order_id":"#);
        let o: OrderResponse = serde_json::from_str(&legacy).expect("legacy");
        assert_eq!(
            o.venue_id().map(|v| v.0),
            Some("550e8400-e29b-41d4-a716-446655440000".into())
        );
    }

    #[test]
    fn statuses_current_and_legacy() {
        let cases = [
            ("open", "0", VenueOrderStatus::Open),
            ("open", "40", VenueOrderStatus::PartiallyFilled),
            ("processing", "0", VenueOrderStatus::Open),
            ("closed", "100", VenueOrderStatus::Filled),
            ("fully_filled", "100", VenueOrderStatus::Filled),
            ("partially_filled", "40", VenueOrderStatus::PartiallyFilled),
            ("cancelled", "0", VenueOrderStatus::Cancelled),
            ("partially_cancelled", "40", VenueOrderStatus::Cancelled),
            ("failed", "0", VenueOrderStatus::Failed),
            ("something_new", "0", VenueOrderStatus::Open),
        ];
        for (status, filled, want) in cases {
            let text = ORDER
                .replace(r#""status":"open""#, &format!(r#""status":"{status}""#))
                .replace(
                    r#""executed_base_qty":"0""#,
                    &format!(r#""executed_base_qty":"{filled}""#),
                );
            let o: OrderResponse = serde_json::from_str(&text).expect(status);
            assert_eq!(o.to_venue(0).expect("venue").status, want, "{status}");
        }
    }

    #[test]
    fn balances_as_strings_or_numbers_and_lists_bare_or_paginated() {
        let strings = r#"[{"asset":"ada","asset_unit":"","free":"1383.52097","locked":"0"},
                          {"asset":"usdm","asset_unit":"c69b","free":"1153.006812","locked":"0"}]"#;
        let numbers = r#"{"data":[{"asset":"ada","asset_unit":"","free":1383.52097,"locked":0},
                                  {"asset":"usdm","asset_unit":"c69b","free":1153.006812,"locked":0}],
                          "total_count":2,"total_page":1}"#;
        let a: ListOf<BalanceRow> = serde_json::from_str(strings).expect("strings");
        let b: ListOf<BalanceRow> = serde_json::from_str(numbers).expect("numbers");
        assert_eq!(a.into_parts().0, b.into_parts().0);
        let empty: ListOf<BalanceRow> = serde_json::from_str("[]").expect("empty");
        assert_eq!(empty.into_parts(), (vec![], 1));
        let rows: ListOf<BalanceRow> = serde_json::from_str(strings).expect("strings");
        assert_eq!(
            Balance::from(rows.into_parts().0.remove(0)).free,
            d("1383.52097")
        );
    }

    #[test]
    fn account_stream_messages() {
        let order_info = format!(r#"{{"type":"Account","sub_type":"order_info","order":{ORDER}}}"#);
        assert!(matches!(
            serde_json::from_str::<AccountMessage>(&order_info),
            Ok(AccountMessage::OrderInfo { .. })
        ));
        let balance = r#"{"type":"Account","sub_type":"balance","balance":[{"asset":"usdm","asset_unit":"5066","free":1153.006812,"locked":0},{"asset":"ada","asset_unit":"","free":1383.52097,"locked":0}]}"#;
        match serde_json::from_str::<AccountMessage>(balance) {
            Ok(AccountMessage::Balance { balance }) => assert_eq!(balance[1].free, d("1383.52097")),
            other => panic!("balance: {other:?}"),
        }
        let points = r#"{"type":"Account","sub_type":"dlta_points","dlta_points":{"delta":"150"}}"#;
        assert_eq!(
            serde_json::from_str::<AccountMessage>(points).ok(),
            Some(AccountMessage::Other)
        );
        let legacy = r#"{"type":"Account","sub_type":"open_orders","data":[]}"#;
        assert_eq!(
            serde_json::from_str::<AccountMessage>(legacy).ok(),
            Some(AccountMessage::Other)
        );
    }

    #[test]
    fn fills_from_execution_records() {
        let text = ORDER.replace(
            r#""order_execution_records":[]"#,
            r#""order_execution_records":[{"id":"t1","order_id":"550e8400-e29b-41d4-a716-446655440000","account_id":"a1",
               "execution_price":"0.93","filled_base_qty":"40","filled_quote_qty":"37.2","commission_unit":"lovelace",
               "commission":"40000","role":"maker","counter_party_order_id":"x","created_at":"2024-01-01T00:00:01Z"}]"#,
        );
        let o: OrderResponse = serde_json::from_str(&text).expect("order");
        let fills = o.fills(9, Decimal::from(1_000_000));
        assert_eq!(fills.len(), 1);
        assert_eq!(
            (fills[0].trade_id.as_str(), fills[0].size, fills[0].fee),
            ("t1", d("40"), d("0.04"))
        );
    }

    #[test]
    fn absurd_numbers_are_refused_and_empty_fills_skipped() {
        let absurd = ORDER.replace(
            r#""price":"0.93""#,
            r#""price":"1000000000000000000000000""#,
        );
        assert!(serde_json::from_str::<OrderResponse>(&absurd).is_err());
        let number = r#"[{"asset":"ada","asset_unit":"","free":1e27,"locked":0}]"#;
        assert!(serde_json::from_str::<ListOf<BalanceRow>>(number).is_err());
        let text = ORDER.replace(
            r#""order_execution_records":[]"#,
            r#""order_execution_records":[{"id":"t0","order_id":"x","execution_price":"0.93","filled_base_qty":"0"}]"#,
        );
        let o: OrderResponse = serde_json::from_str(&text).expect("order");
        assert!(o.fills(0, Decimal::ONE).is_empty());
    }

    #[test]
    fn market_config_operation_key_and_errors() {
        let mc = r#"{"assets":[{"symbol":"ADA","unit":"lovelace","decimals":6,"max_qty_dp":2,"trading_pairs":["ADAUSDM"]}],
            "trading_pairs":[{"symbol":"ADAUSDM","base_token":{"symbol":"ADA","unit":"lovelace","decimals":6,"max_qty_dp":2},
            "quote_token":{"symbol":"USDM","unit":"c48c.0014df105553444d","decimals":6,"max_qty_dp":2},"price_max_dp":4}]}"#;
        let mc: MarketConfigResponse = serde_json::from_str(mc).expect("market config");
        assert_eq!(
            (
                mc.trading_pairs[0].price_max_dp,
                mc.trading_pairs[0].base_token.max_qty_dp
            ),
            (4, 2)
        );
        let ok: OperationKeyResponse = serde_json::from_str(
            r#"{"encrypted_operation_key":"{\"iv\":\"a\",\"salt\":\"b\",\"ciphertext\":\"c\"}","operation_key_hash":"ab"}"#,
        )
        .expect("op key");
        assert!(ok.encrypted_operation_key.starts_with("{\"iv\""));
        let cases: [(u16, &[u8], Option<u32>); 8] = [
            (
                400,
                br#"{"error":"Order not found","code":4200}"#,
                Some(4200),
            ),
            (
                400,
                br#"{"error":"Internal Server Error","code":5000}"#,
                Some(5000),
            ),
            (429, b"", Some(4290)),
            (401, b"", Some(4010)),
            // Not venue answers: the request's outcome is unknown.
            (404, b"404 page not found", None),
            (400, b"<html><body>Bad Request</body></html>", None),
            (503, b"upstream connect error", None),
            (403, b"", None),
        ];
        for (status, body, code) in cases {
            assert_eq!(
                error_from_http(status, body).map(|e| e.code),
                code,
                "{status} {}",
                describe_body(body)
            );
        }
        let build = BuildOrderRequest {
            symbol: "ADAUSDM".into(),
            side: Side::Buy,
            order_type: "limit".into(),
            base_quantity: "100".into(),
            price: "0.9300".into(),
            post_only: true,
        };
        assert_eq!(
            serde_json::to_string(&build).expect("json"),
            r#"{"symbol":"ADAUSDM","side":"buy","type":"limit","base_quantity":"100","price":"0.9300","post_only":true}"#
        );
    }

    #[test]
    fn depth_snapshots_sorted_bounded_and_checked() {
        let m: DepthMessage = serde_json::from_str(
            r#"{"timestamp":1755747950587,"bids":[{"price":0.195,"quantity":30},{"price":0.2,"quantity":"5"}],
                "asks":[{"price":0.3495,"quantity":50.65}]}"#,
        )
        .expect("parses");
        let d = m.into_depth().expect("a book");
        assert_eq!(d.bids, vec![(d_("0.2"), d_("5")), (d_("0.195"), d_("30"))]);
        assert_eq!(d.asks, vec![(d_("0.3495"), d_("50.65"))]);
        let crossed: DepthMessage = serde_json::from_str(
            r#"{"bids":[{"price":0.5,"quantity":1}],"asks":[{"price":0.4,"quantity":1}]}"#,
        )
        .expect("parses");
        assert!(matches!(
            crossed.into_depth(),
            Err(DepthError::Crossed { .. })
        ));
        let zero: DepthMessage =
            serde_json::from_str(r#"{"bids":[{"price":0.5,"quantity":0}],"asks":[]}"#)
                .expect("parses");
        assert_eq!(zero.into_depth(), Err(DepthError::NotPositive));
        assert!(
            serde_json::from_str::<DepthMessage>(r#"{"bids":[{"price":1e27,"quantity":1}]}"#)
                .is_err()
        );
    }

    fn d_(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }
}
