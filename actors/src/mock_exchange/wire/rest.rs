//! The wire mock's REST endpoints (spec §1.4–§1.5), and its test controls.

use actix_web::{HttpRequest, HttpResponse, web};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::json::{self, err};
use super::{Build, Shared, WireState, unsigned_tx};
use crate::deltadefi::wire::{CancelAllRequest, SubmitOrderRequest};
use crate::mock_exchange::faults::{Fault, guarded};
use crate::mock_exchange::matching::history::interval_seconds;
use crate::mock_exchange::matching::{MockOrder, OrderKind, OrderRequest, Quantity};
use crate::signer::{cbor, verify_signed_tx};
use crate::types::{ClientOrderId, MarketId, Side, VenueOrderId, now_ms};
use crate::venue::{VenueError, VenueFill};

/// Every DeltaDeFi endpoint the mock serves, each answering a wrong method with a JSON 405.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    let get = |path: &str, r: actix_web::Route| {
        web::resource(path)
            .route(r)
            .default_service(web::to(wrong_method))
    };
    cfg.service(get("/app/market-config", web::get().to(market_config)))
        .service(get("/app/hydra-cycle", web::get().to(hydra_cycle)))
        .service(get("/accounts/operation-key", web::get().to(operation_key)))
        .service(get("/accounts/spot-account", web::get().to(spot_account)))
        .service(get("/accounts/api-key", web::get().to(api_key)))
        .service(get("/accounts/order/{id}", web::get().to(order_by_id)))
        .service(get("/accounts/open-orders", web::get().to(open_orders)))
        .service(get("/accounts/trade-orders", web::get().to(trade_orders)))
        .service(get("/accounts/trades", web::get().to(trades)))
        .service(get("/accounts/balance", web::get().to(balance)))
        .service(get("/market/market-price", web::get().to(market_price)))
        .service(get("/market/graph/{symbol}", web::get().to(graph)))
        .service(get("/order/build", web::post().to(build)))
        .service(get("/order/submit", web::post().to(submit)))
        .service(get("/order/cancel-all", web::post().to(cancel_all)))
        .service(get("/order/{id}/cancel", web::post().to(cancel)));
}

async fn wrong_method(req: HttpRequest) -> HttpResponse {
    err(
        405,
        4000,
        &format!("{} is not allowed on {}", req.method(), req.path()),
    )
}

fn venue_err(e: &VenueError) -> HttpResponse {
    let status = match e.code {
        4290 => 429,
        4010 => 401,
        _ => 400,
    };
    err(status, e.code, &e.message)
}

fn lock(shared: &Shared) -> Option<std::sync::MutexGuard<'_, WireState>> {
    shared.lock().ok()
}

fn poisoned() -> HttpResponse {
    err(500, 5000, "Internal Server Error")
}

async fn market_config(shared: Shared) -> HttpResponse {
    let Some(st) = lock(&shared) else {
        return poisoned();
    };
    let mut assets: Vec<(String, Vec<String>, u32)> = Vec::new();
    let mut pairs = Vec::new();
    for m in &st.cfg.markets {
        let (base, quote) = crate::mock_exchange::matching::assets_of(&m.market);
        for (a, dp) in [(&base, m.size_decimals), (&quote, 2)] {
            match assets.iter_mut().find(|(n, _, _)| n == a) {
                Some((_, markets, _)) => markets.push(m.market.to_string()),
                None => assets.push((a.clone(), vec![m.market.to_string()], dp)),
            }
        }
        let token = |a: &str, dp: u32| json!({"symbol": a.to_uppercase(), "unit": json::token_unit(a), "decimals": 6, "max_qty_dp": dp});
        pairs.push(json!({"symbol": m.market.as_str(),
                          "base_token": token(&base, m.size_decimals),
                          "quote_token": token(&quote, 2),
                          "price_max_dp": m.price_decimals}));
    }
    let assets: Vec<serde_json::Value> = assets
        .iter()
        .map(|(a, markets, dp)| {
            json!({"symbol": a.to_uppercase(), "unit": json::token_unit(a), "decimals": 6,
                   "max_qty_dp": dp, "trading_pairs": markets})
        })
        .collect();
    HttpResponse::Ok().json(json!({"assets": assets, "trading_pairs": pairs}))
}

async fn hydra_cycle(req: HttpRequest, shared: Shared) -> HttpResponse {
    guarded(req, shared, |st| {
        // One simulated Hydra head cycle of 12 h from the mock's start (spec §1.5; cycles run
        // 30 min–12 h on DeltaDeFi).
        let end = st.started_ms + 12 * 3_600_000;
        HttpResponse::Ok().json(json!({"start": json::iso(st.started_ms), "end": json::iso(end)}))
    })
    .await
}

async fn operation_key(req: HttpRequest, shared: Shared) -> HttpResponse {
    guarded(req, shared, |st| {
        HttpResponse::Ok().json(
            json!({"encrypted_operation_key": st.encrypted_key, "operation_key_hash": st.key_hash}),
        )
    })
    .await
}

async fn spot_account(req: HttpRequest, shared: Shared) -> HttpResponse {
    guarded(req, shared, |st| {
        HttpResponse::Ok().json(json!({
            "account_id": json::ACCOUNT_ID, "account_type": "spot",
            "encrypted_operation_key": st.encrypted_key, "operation_key_hash": st.key_hash,
            "created_at": json::iso(st.started_ms),
        }))
    })
    .await
}

async fn api_key(req: HttpRequest, shared: Shared) -> HttpResponse {
    guarded(req, shared, |st| {
        HttpResponse::Ok()
            .json(json!({"api_key": st.cfg.api_key, "created_at": json::iso(st.started_ms)}))
    })
    .await
}

/// A decimal that must come as a string (the current API, spec §1.3).
fn dec_field(name: &str, v: Option<&serde_json::Value>) -> Result<Option<Decimal>, VenueError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => s.trim().parse::<Decimal>().map(Some).map_err(|_| {
            VenueError::new(
                4000,
                format!("invalid request data: {name} is not a decimal"),
            )
        }),
        Some(_) => Err(VenueError::new(
            4000,
            format!("invalid request data: {name} must be a decimal string"),
        )),
    }
}

/// The build request, tolerant of fields it does not know (spec §1.5).
#[derive(Deserialize)]
struct BuildBody {
    symbol: String,
    side: Side,
    #[serde(rename = "type")]
    order_type: String,
    #[serde(default)]
    base_quantity: Option<serde_json::Value>,
    #[serde(default)]
    quote_quantity: Option<serde_json::Value>,
    #[serde(default)]
    price: Option<serde_json::Value>,
    /// An integer, as a string or a number.
    #[serde(default)]
    max_slippage_basis_point: Option<serde_json::Value>,
    #[serde(default)]
    post_only: Option<bool>,
}

fn order_request(b: BuildBody, order_id: &str) -> Result<OrderRequest, VenueError> {
    let kind = match b.order_type.as_str() {
        "limit" => OrderKind::Limit,
        "market" => OrderKind::Market,
        other => {
            return Err(VenueError::new(
                4000,
                format!("invalid request data: type {other:?} is not limit or market"),
            ));
        }
    };
    let base = dec_field("base_quantity", b.base_quantity.as_ref())?;
    let quote = dec_field("quote_quantity", b.quote_quantity.as_ref())?;
    let quantity = match (base, quote) {
        (Some(q), None) => Quantity::Base(q),
        (None, Some(q)) => Quantity::Quote(q),
        _ => {
            return Err(VenueError::new(
                4000,
                "invalid request data: give exactly one of base_quantity and quote_quantity",
            ));
        }
    };
    let slippage_bp = match &b.max_slippage_basis_point {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let text = match v {
                serde_json::Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            };
            match text.parse::<u32>() {
                Ok(bp) => Some(bp),
                Err(_) => {
                    return Err(VenueError::new(
                        4108,
                        "max slippage basis point must be an integer in 0..=10000",
                    ));
                }
            }
        }
    };
    Ok(OrderRequest {
        client_order_id: ClientOrderId(order_id.into()),
        market: MarketId(b.symbol.into()),
        side: b.side,
        kind,
        price: dec_field("price", b.price.as_ref())?,
        quantity,
        post_only: b.post_only.unwrap_or(false),
        slippage_bp,
    })
}

async fn build(req: HttpRequest, shared: Shared, body: web::Json<BuildBody>) -> HttpResponse {
    guarded(req, shared, move |st| {
        let n = st.rng.next_u64();
        let order_id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n >> 32,
            (n >> 16) & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            st.rng.next_u64() & 0xffff_ffff_ffff
        );
        let order = match order_request(body.into_inner(), &order_id) {
            Ok(o) => o,
            Err(e) => return venue_err(&e),
        };
        if st.cfg.validate_at_build
            && let Err(e) = st.core.validate(&order)
        {
            return venue_err(&e);
        }
        let (tx, body_bytes) = unsigned_tx(&order_id, 100_000_000);
        st.builds.insert(
            order_id.clone(),
            Build {
                order,
                body: body_bytes,
                built_at_ms: now_ms(),
            },
        );
        HttpResponse::Ok().json(json!({"order_id": order_id, "tx_hex": hex::encode(tx)}))
    })
    .await
}

async fn submit(
    req: HttpRequest,
    shared: Shared,
    body: web::Json<SubmitOrderRequest>,
) -> HttpResponse {
    guarded(req, shared, move |st| {
        let s = body.into_inner();
        if st.submitted.contains(&s.order_id) {
            return err(400, 4302, "transaction already submitted");
        }
        let Some(b) = st.builds.get(&s.order_id) else {
            return err(400, 4402, "transaction not found");
        };
        if now_ms() - b.built_at_ms > st.cfg.build_expiry_ms {
            st.builds.remove(&s.order_id);
            return err(400, 4300, "transaction expired, build again");
        }
        let Ok(signed) = hex::decode(&s.signed_tx) else {
            return err(400, 4000, "invalid request data: signed_tx is not hex");
        };
        let same_body = cbor::split_tx(&signed)
            .ok()
            .is_some_and(|p| signed[p.body] == b.body[..]);
        if !same_body {
            return err(400, 4000, "signed transaction does not match the built one");
        }
        if let Err(e) = verify_signed_tx(&signed, &st.vkey) {
            return err(400, 4407, &format!("failed to sign transaction: {e}"));
        }
        let order = b.order.clone();
        let id = VenueOrderId(s.order_id.as_str().into());
        match st.core.place_order(&order, Some(id), now_ms()) {
            Ok((o, events)) => {
                st.submitted.insert(s.order_id.clone());
                st.builds.remove(&s.order_id);
                st.record(events);
                HttpResponse::Ok().json(st.order_json(&o))
            }
            Err(e) => venue_err(&e),
        }
    })
    .await
}

async fn cancel(req: HttpRequest, shared: Shared, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    guarded(req, shared, move |st| {
        let vid = VenueOrderId(id.as_str().into());
        match st
            .core
            .cancel(Some(&vid), &ClientOrderId(id.as_str().into()), now_ms())
        {
            Ok((_, events)) => {
                st.record(events);
                HttpResponse::Ok().json(json!({"order_id": id}))
            }
            Err(e) => venue_err(&e),
        }
    })
    .await
}

async fn cancel_all(
    req: HttpRequest,
    shared: Shared,
    body: web::Json<CancelAllRequest>,
) -> HttpResponse {
    guarded(req, shared, move |st| {
        let symbol = body.into_inner().symbol;
        match st
            .core
            .cancel_all(&MarketId(symbol.as_str().into()), now_ms())
        {
            Ok((ids, events)) => {
                st.record(events);
                let ids: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
                HttpResponse::Ok().json(json!({"symbol": symbol, "order_ids": ids}))
            }
            Err(e) => venue_err(&e),
        }
    })
    .await
}

async fn order_by_id(req: HttpRequest, shared: Shared, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    guarded(req, shared, move |st| {
        let vid = VenueOrderId(id.as_str().into());
        match st.core.query(Some(&vid), &ClientOrderId(id.into())) {
            Some(o) => HttpResponse::Ok().json(st.order_json(&o)),
            None => err(400, 4200, "Order not found"),
        }
    })
    .await
}

#[derive(Deserialize)]
struct Page {
    symbol: Option<String>,
    limit: Option<usize>,
    page: Option<usize>,
}

impl Page {
    /// `limit` (1–250, default 10) and `page` (1–1000, default 1).
    fn bounds(&self) -> (usize, usize) {
        (
            self.limit.unwrap_or(10).clamp(1, 250),
            self.page.unwrap_or(1).clamp(1, 1_000),
        )
    }

    fn wants(&self, market: &MarketId) -> bool {
        self.symbol.as_deref().is_none_or(|s| s == market.as_str())
    }
}

/// The paginated wrapper `{"data", "total_count", "total_page"}` of a page of `all`.
fn paginated<T>(all: &[T], q: &Page, f: impl Fn(&T) -> serde_json::Value) -> HttpResponse {
    let (limit, page) = q.bounds();
    let data: Vec<serde_json::Value> = all
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(f)
        .collect();
    HttpResponse::Ok().json(json!({"data": data, "total_count": all.len(), "total_page": all.len().div_ceil(limit).max(1)}))
}

fn orders_page(st: &WireState, records: Vec<&MockOrder>, q: &Page) -> HttpResponse {
    let rate = st.commission_rate_bp();
    paginated(&records, q, |r| {
        let fills: &[VenueFill] = st
            .fills
            .get(&r.order.venue_order_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        json::order_json(r, fills, rate)
    })
}

fn markets_of<'a>(st: &'a WireState, q: &'a Page) -> impl Iterator<Item = &'a MarketId> + 'a {
    st.cfg
        .markets
        .iter()
        .map(|m| &m.market)
        .filter(|m| q.wants(m))
}

async fn open_orders(req: HttpRequest, shared: Shared, q: web::Query<Page>) -> HttpResponse {
    let q = q.into_inner();
    guarded(req, shared, move |st| {
        let records: Vec<&MockOrder> = markets_of(st, &q)
            .flat_map(|m| st.core.open_records(m))
            .collect();
        orders_page(st, records, &q)
    })
    .await
}

async fn trade_orders(req: HttpRequest, shared: Shared, q: web::Query<Page>) -> HttpResponse {
    let q = q.into_inner();
    guarded(req, shared, move |st| {
        let records: Vec<&MockOrder> = markets_of(st, &q)
            .flat_map(|m| st.core.traded_records(m))
            .collect();
        orders_page(st, records, &q)
    })
    .await
}

async fn trades(req: HttpRequest, shared: Shared, q: web::Query<Page>) -> HttpResponse {
    let q = q.into_inner();
    guarded(req, shared, move |st| {
        let mut all: Vec<VenueFill> = st
            .fills()
            .into_iter()
            .filter(|f| q.wants(&f.market))
            .collect();
        all.sort_by(|a, b| b.ts_ms.cmp(&a.ts_ms).then(b.trade_id.cmp(&a.trade_id)));
        paginated(&all, &q, json::record_json)
    })
    .await
}

async fn balance(req: HttpRequest, shared: Shared) -> HttpResponse {
    guarded(req, shared, |st| {
        HttpResponse::Ok().json(json::balances_json(&st.core.balances(), false))
    })
    .await
}

#[derive(Deserialize)]
struct SymbolQuery {
    symbol: String,
}

fn listed(st: &WireState, symbol: &str) -> Option<MarketId> {
    st.cfg
        .markets
        .iter()
        .find(|m| m.market.as_str() == symbol)
        .map(|m| m.market.clone())
}

async fn market_price(
    req: HttpRequest,
    shared: Shared,
    q: web::Query<SymbolQuery>,
) -> HttpResponse {
    let symbol = q.into_inner().symbol;
    guarded(req, shared, move |st| {
        let Some(m) = listed(st, &symbol) else {
            return err(400, 4106, "invalid symbol");
        };
        HttpResponse::Ok().json(json!({"price": json::num(st.last_price(&m).unwrap_or_default())}))
    })
    .await
}

#[derive(Deserialize)]
struct GraphQuery {
    interval: String,
    #[serde(default)]
    start: Option<i64>,
    #[serde(default)]
    end: Option<i64>,
    #[serde(default)]
    order_by: Option<String>,
}

async fn graph(
    req: HttpRequest,
    shared: Shared,
    path: web::Path<String>,
    q: web::Query<GraphQuery>,
) -> HttpResponse {
    let (symbol, q) = (path.into_inner(), q.into_inner());
    guarded(req, shared, move |st| {
        let Some(m) = listed(st, &symbol) else {
            return err(400, 4106, "invalid symbol");
        };
        let Some(interval) = interval_seconds(&q.interval) else {
            return err(400, 4405, "invalid interval parameter");
        };
        let desc = match q.order_by.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return err(400, 4000, "invalid request data: order_by is asc or desc"),
        };
        let end = q.end.unwrap_or(now_ms() / 1_000);
        let start = q.start.unwrap_or(end - 86_400);
        let mut candles = st.core.history().candles(&m, interval, start, end);
        if desc {
            candles.reverse();
        }
        HttpResponse::Ok().json(json::candles_json(&symbol, &candles))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct ReferenceMove {
    market: String,
    bid: Decimal,
    ask: Decimal,
}

pub(super) async fn set_reference(shared: Shared, body: web::Json<ReferenceMove>) -> HttpResponse {
    let Some(mut st) = lock(&shared) else {
        return poisoned();
    };
    let m = body.into_inner();
    let fills = st.move_reference(&MarketId(m.market.into()), m.bid, m.ask);
    HttpResponse::Ok().json(json!({"fills": fills}))
}

pub(super) async fn add_fault(shared: Shared, body: web::Json<Fault>) -> HttpResponse {
    let Some(mut st) = lock(&shared) else {
        return poisoned();
    };
    st.faults.push_back(body.into_inner());
    HttpResponse::Ok().json(json!({"queued": st.faults.len()}))
}

pub(super) async fn actions(shared: Shared) -> HttpResponse {
    let Some(st) = lock(&shared) else {
        return poisoned();
    };
    let list: Vec<serde_json::Value> = st
        .arrivals
        .iter()
        .map(|(t, k)| json!({"ts_ms": t, "kind": k}))
        .collect();
    let rejects: serde_json::Map<String, serde_json::Value> = st
        .core
        .rejects()
        .iter()
        .map(|(c, n)| (c.to_string(), json!(n)))
        .collect();
    HttpResponse::Ok().json(json!({
        "actions": list,
        "max_per_second": st.max_actions_per_second(),
        "open_orders": st.open_order_count(),
        "fills": st.fills().len(),
        "place_rejects": rejects,
    }))
}

pub(super) async fn drop_streams(shared: Shared) -> HttpResponse {
    let Some(st) = lock(&shared) else {
        return poisoned();
    };
    let n = st.kill_tx.send(()).unwrap_or(0);
    HttpResponse::Ok().json(json!({"dropped": n}))
}
