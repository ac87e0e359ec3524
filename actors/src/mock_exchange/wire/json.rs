//! The wire mock's JSON shapes, as DeltaDeFi's spec gives them (exchange-apis.md §1.5–§2.3):
//! OrderResponse and OrderExecutionRecord with decimals as strings and ISO-8601 times,
//! balances with the spec's asset units, depth snapshots, market prices and recent trades with
//! JSON numbers, candles, and the `{"error", "code"}` error body.

use actix_web::HttpResponse;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::mock_exchange::matching::MockOrder;
use crate::mock_exchange::matching::history::{Candle, PublicTrade};
use crate::types::Side;
use crate::venue::{Balance, Depth, Level, VenueFill, VenueOrderStatus};

/// USDM's asset unit on Cardano preprod (policy id + asset name, spec §1.3).
pub const USDM_UNIT: &str = "c69b981db7a65e339a6d783755f85a2e03afa1cece9714c55fe4c9135553444d";

/// The account id the mock reports.
pub const ACCOUNT_ID: &str = "8f2a7c3e-5b1d-4e6f-9a0b-1c2d3e4f5a6b";

/// The error body DeltaDeFi sends, with its HTTP status.
pub fn err(status: u16, code: u32, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({"error": message, "code": code}))
}

/// The asset unit of a balance row: `""` for ADA (spec §1.3), USDM's unit, else the asset
/// name's hex (the mock's own stand-in for a native token).
pub fn balance_unit(asset: &str) -> String {
    match asset {
        "ada" => String::new(),
        "usdm" => USDM_UNIT.into(),
        other => hex::encode(other.to_ascii_uppercase()),
    }
}

/// The unit a token has in the market config: `lovelace` for ADA.
pub fn token_unit(asset: &str) -> String {
    match asset {
        "ada" => "lovelace".into(),
        other => balance_unit(other),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn iso_parts(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    (
        format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
            s / 3_600,
            s % 3_600 / 60,
            s % 60
        ),
        ms.rem_euclid(1_000),
    )
}

/// An ISO-8601 UTC time with milliseconds (`2024-01-01T00:00:00.000Z`).
pub fn iso(ms: i64) -> String {
    let (base, frac) = iso_parts(ms);
    format!("{base}.{frac:03}Z")
}

/// An ISO-8601 UTC time with microseconds, as recent trades carry.
pub fn iso_micros(ms: i64) -> String {
    let (base, frac) = iso_parts(ms);
    format!("{base}.{:06}Z", frac * 1_000)
}

/// A decimal as a JSON number, from its text (never through f64).
pub fn num(d: Decimal) -> Value {
    d.normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map_or(Value::Null, Value::Number)
}

fn status_str(rec: &MockOrder) -> &'static str {
    match rec.order.status {
        VenueOrderStatus::Open | VenueOrderStatus::PartiallyFilled => "open",
        VenueOrderStatus::Filled => "closed",
        VenueOrderStatus::Cancelled => "cancelled",
        VenueOrderStatus::Failed => "failed",
    }
}

/// A fill in DeltaDeFi's OrderExecutionRecord shape.
pub fn record_json(f: &VenueFill) -> Value {
    json!({"id": f.trade_id.as_str(), "order_id": f.venue_order_id.as_str(), "account_id": ACCOUNT_ID,
           "execution_price": f.price.to_string(), "filled_base_qty": f.size.to_string(),
           "filled_quote_qty": (f.size * f.price).to_string(), "commission_unit": USDM_UNIT,
           "commission": f.fee.to_string(), "role": f.liquidity.as_str(),
           "counter_party_order_id": null, "created_at": iso(f.ts_ms)})
}

/// An order in DeltaDeFi's OrderResponse shape, every optional field present (null where it
/// does not apply).
pub fn order_json(rec: &MockOrder, fills: &[VenueFill], commission_rate_bp: u32) -> Value {
    let o = &rec.order;
    let records: Vec<Value> = fills.iter().map(record_json).collect();
    let open = !o.status.is_terminal();
    let remaining = if open {
        o.size - o.filled
    } else {
        Decimal::ZERO
    };
    let (locked_base, locked_quote) = match o.side {
        Side::Sell => (rec.locked, Decimal::ZERO),
        Side::Buy => (Decimal::ZERO, rec.locked),
    };
    json!({
        "id": o.venue_order_id.as_str(), "account_id": ACCOUNT_ID,
        "active_order_utxo_id": if open { Value::String(format!("{}#0", o.venue_order_id.as_str().replace('-', ""))) } else { Value::Null },
        "status": status_str(rec), "symbol": o.market.as_str(),
        "base_qty": o.size.to_string(), "quote_qty": (o.size * o.price).to_string(),
        "side": o.side.as_str(), "price": o.price.to_string(), "type": rec.kind.as_str(),
        "slippage_bp": rec.slippage_bp,
        "market_order_limit_price": rec.limit_price.map(|p| p.round_dp(8).to_string()),
        "locked_base_qty": locked_base.to_string(), "locked_quote_qty": locked_quote.round_dp(8).to_string(),
        "executed_base_qty": o.filled.to_string(), "executed_quote_qty": rec.executed_quote.to_string(),
        "ob_open_order_base_qty": remaining.to_string(), "commission_unit": USDM_UNIT,
        "commission": rec.fees.to_string(), "commission_rate_bp": commission_rate_bp,
        "executed_price": rec.avg_price().to_string(),
        "created_at": iso(rec.created_ms), "updated_at": iso(o.ts_ms),
        "order_execution_records": records,
    })
}

/// Balance rows; `free`/`locked` as strings (REST) or JSON numbers (the account stream, as the
/// DOCS example shows).
pub fn balances_json(b: &[Balance], numbers: bool) -> Vec<Value> {
    b.iter()
        .map(|x| {
            let v = |d: Decimal| {
                if numbers {
                    num(d)
                } else {
                    Value::String(d.normalize().to_string())
                }
            };
            json!({"asset": x.asset, "asset_unit": balance_unit(&x.asset), "free": v(x.free), "locked": v(x.locked)})
        })
        .collect()
}

/// A depth snapshot (spec §2.3): epoch-ms timestamp, levels as JSON numbers.
pub fn depth_json(ts_ms: i64, book: &Depth) -> Value {
    let side = |v: &[Level]| -> Vec<Value> {
        v.iter()
            .map(|(p, q)| json!({"price": num(*p), "quantity": num(*q)}))
            .collect()
    };
    json!({"timestamp": ts_ms, "bids": side(&book.bids), "asks": side(&book.asks)})
}

/// Recent trades (spec §2.3): a JSON array, ISO times with microseconds, JSON numbers.
pub fn trades_json(trades: &[PublicTrade]) -> Value {
    Value::Array(
        trades
            .iter()
            .map(|t| {
                json!({"timestamp": iso_micros(t.ts_ms), "symbol": t.market.as_str(), "side": t.side.as_str(),
                       "price": num(t.price), "amount": num(t.qty)})
            })
            .collect(),
    )
}

/// Candles in the `AggregatedOHLC` shape (`t` seconds, `s` symbol, numbers).
pub fn candles_json(symbol: &str, candles: &[Candle]) -> Value {
    Value::Array(
        candles
            .iter()
            .map(|c| {
                json!({"t": c.t, "s": symbol, "o": num(c.open), "h": num(c.high), "l": num(c.low),
                       "c": num(c.close), "v": num(c.volume)})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_755_747_950_587), "2025-08-21T03:45:50.587Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_micros(1_755_747_780_204), "2025-08-21T03:43:00.204000Z");
    }

    #[test]
    fn numbers_keep_their_digits() {
        let d: Decimal = "0.3495".parse().expect("decimal");
        assert_eq!(num(d).to_string(), "0.3495");
        assert_eq!(num(Decimal::from(30)).to_string(), "30");
    }
}
