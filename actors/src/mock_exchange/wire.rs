//! The mock exchange over the wire: DeltaDeFi's REST endpoints with the same request and
//! response shapes (spec §1), error bodies and codes, and the build → sign → submit two-step
//! with a real unsigned Cardano transaction whose vkey witness is verified on submit. It is
//! backed by the same [`MatchingCore`] as the in-process MockExchange, so the real gateway is
//! tested over real sockets.
//!
//! Test controls (not DeltaDeFi's): `POST /mock/reference` moves the reference price of a
//! market (fills follow), `POST /mock/fault` breaks the next request to a path
//! ([`super::faults::Fault`]: an error code, or an answer that is garbage, HTML, empty, late,
//! missing or cut off after the request was executed), `GET /mock/actions` lists every order
//! action received with its arrival time and the most received in one second (the budget as
//! the venue counts it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use tokio::sync::broadcast;

use super::faults::{Fault, guarded};
use super::matching::{MatchingCore, MatchingParams};
use super::streams;
pub use super::streams::{replay_reference, walk_reference};
use crate::deltadefi::wire::{BuildOrderRequest, CancelAllRequest, SubmitOrderRequest};
use crate::pricing_rules::MarketRules;
use crate::rng::SplitMix64;
use crate::signer::cbor::encode_head;
use crate::signer::key::bech32_encode;
use crate::signer::{Signer, XPrv, blake2b256, cbor, key, verify_signed_tx};
use crate::types::{ClientOrderId, MarketId, VenueOrderId, now_ms};
use crate::venue::{NewOrder, VenueError, VenueEvent, VenueFill, VenueOrder, VenueOrderStatus};

/// How the wire mock is set up.
#[derive(Debug, Clone)]
pub struct WireMockConfig {
    pub api_key: String,
    /// The trading passcode that decrypts the operation key it hands out.
    pub passcode: String,
    pub markets: Vec<MarketRules>,
    pub params: MatchingParams,
    /// A build not submitted within this window answers 4300.
    pub build_expiry_ms: i64,
    /// The Binance symbol each market follows, for the bookTicker stream the mock serves.
    pub references: Vec<(MarketId, String)>,
}

struct Build {
    order: NewOrder,
    body: Vec<u8>,
    built_at_ms: i64,
}

/// Shared state of the wire mock (one lock, short critical sections).
pub struct WireState {
    pub(super) cfg: WireMockConfig,
    core: MatchingCore,
    builds: HashMap<String, Build>,
    submitted: HashSet<String>,
    fills: HashMap<VenueOrderId, Vec<VenueFill>>,
    faults: VecDeque<Fault>,
    /// Arrival of every counted request (submit, cancel, cancel-all): (ms, kind).
    arrivals: Vec<(i64, &'static str)>,
    /// bookTicker frames published so far.
    tickers: u64,
    /// Authenticated REST requests received so far (reads included).
    requests: u64,
    encrypted_key: String,
    key_hash: String,
    vkey: [u8; 32],
    rng: SplitMix64,
    /// Account-stream messages (JSON text) for every connected stream.
    pub(super) account_tx: broadcast::Sender<String>,
    /// bookTicker frames (combined form) for every connected Binance stream.
    pub(super) binance_tx: broadcast::Sender<String>,
    /// Closes every stream at once (tests of reconnection).
    pub(super) kill_tx: broadcast::Sender<()>,
    binance_u: u64,
}

/// Encrypts `plain` the way DeltaDeFi's web app does (PBKDF2-HMAC-SHA256 100k, AES-256-GCM,
/// 12-byte IV, 16-byte salt), as the JSON record `{"iv","salt","ciphertext"}`.
fn encrypt_record(plain: &str, passcode: &str, rng: &mut SplitMix64) -> String {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 12];
    for b in salt.iter_mut().chain(iv.iter_mut()) {
        *b = rng.next_u64() as u8;
    }
    let mut k = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(passcode.as_bytes(), &salt, key::PBKDF2_ROUNDS, &mut k);
    let ct = Aes256Gcm::new_from_slice(&k)
        .ok()
        .and_then(|c| c.encrypt((&iv).into(), plain.as_bytes()).ok())
        .unwrap_or_default();
    json!({"iv": B64.encode(iv), "salt": B64.encode(salt), "ciphertext": B64.encode(ct)})
        .to_string()
}

/// An unsigned transaction for an order: a real Cardano shape
/// `[{0: inputs, 1: outputs, 2: fee, 3: ttl}, {}, true, null]`, unique per order id.
fn unsigned_tx(order_id: &str, ttl: u64) -> (Vec<u8>, Vec<u8>) {
    let mut body = Vec::new();
    encode_head(5, 4, &mut body);
    encode_head(0, 0, &mut body);
    encode_head(4, 1, &mut body);
    encode_head(4, 2, &mut body);
    encode_head(2, 32, &mut body);
    body.extend_from_slice(&blake2b256(order_id.as_bytes()));
    encode_head(0, 0, &mut body);
    encode_head(0, 1, &mut body);
    encode_head(4, 1, &mut body);
    encode_head(4, 2, &mut body);
    encode_head(2, 29, &mut body);
    body.push(0x60);
    body.extend_from_slice(&blake2b256(b"deltadefi-mock-script")[..28]);
    encode_head(0, 2_000_000, &mut body);
    encode_head(0, 2, &mut body);
    encode_head(0, 168_317, &mut body);
    encode_head(0, 3, &mut body);
    encode_head(0, ttl, &mut body);
    let mut tx = vec![0x84];
    tx.extend_from_slice(&body);
    tx.extend_from_slice(&[0xa0, 0xf5, 0xf6]);
    (tx, body)
}

fn status_str(o: &VenueOrder) -> &'static str {
    match o.status {
        VenueOrderStatus::Open | VenueOrderStatus::PartiallyFilled => "open",
        VenueOrderStatus::Filled => "closed",
        VenueOrderStatus::Cancelled => "cancelled",
        VenueOrderStatus::Failed => "failed",
    }
}

/// A fill in DeltaDeFi's OrderExecutionRecord shape (decimals as strings).
fn record_json(f: &VenueFill) -> serde_json::Value {
    json!({"id": f.trade_id.as_str(), "order_id": f.venue_order_id.as_str(), "account_id": "mock-account",
           "execution_price": f.price.to_string(), "filled_base_qty": f.size.to_string(),
           "filled_quote_qty": (f.size * f.price).to_string(), "commission_unit": "usdm",
           "commission": f.fee.to_string(), "role": f.liquidity.as_str(),
           "counter_party_order_id": "mock", "created_at": iso(f.ts_ms)})
}

/// An order in DeltaDeFi's OrderResponse shape (decimals as strings).
pub fn order_json(o: &VenueOrder, fills: &[VenueFill]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = fills.iter().map(record_json).collect();
    let remaining = if o.status.is_terminal() {
        Decimal::ZERO
    } else {
        o.size - o.filled
    };
    json!({
        "id": o.venue_order_id.as_str(), "account_id": "mock-account", "status": status_str(o),
        "symbol": o.market.as_str(), "base_qty": o.size.to_string(), "quote_qty": (o.size * o.price).to_string(),
        "side": o.side.as_str(), "price": o.price.to_string(), "type": "limit",
        "locked_base_qty": "0", "locked_quote_qty": "0",
        "executed_base_qty": o.filled.to_string(), "executed_quote_qty": (o.filled * o.price).to_string(),
        "ob_open_order_base_qty": remaining.to_string(), "commission_unit": "usdm",
        "commission": fills.iter().map(|f| f.fee).sum::<Decimal>().to_string(), "commission_rate_bp": 10,
        "executed_price": if o.filled > Decimal::ZERO { o.price.to_string() } else { "0".into() },
        "created_at": iso(o.ts_ms), "updated_at": iso(o.ts_ms), "order_execution_records": records,
    })
}

fn iso(ms: i64) -> String {
    // Seconds since the epoch are enough for a mock: clients do not parse it.
    format!("{}.{:03}Z", ms / 1000, ms.rem_euclid(1000))
}

pub(super) fn err(status: u16, code: u32, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({"error": message, "code": code}))
}

fn venue_err(e: &VenueError) -> HttpResponse {
    let status = match e.code {
        4290 => 429,
        4010 => 401,
        _ => 400,
    };
    err(status, e.code, &e.message)
}

impl WireState {
    /// A fresh mock account with a new operation key encrypted under `cfg.passcode`.
    pub fn new(cfg: WireMockConfig) -> Self {
        let mut rng = SplitMix64::new(cfg.params.seed ^ now_ms() as u64);
        let mut root = [0u8; 96];
        for b in root.iter_mut() {
            *b = rng.next_u64() as u8;
        }
        root[0] &= 0xf8;
        root[31] &= 0x1f;
        root[31] |= 0x40;
        let xprv = bech32_encode("xprv", &root);
        let encrypted_key = encrypt_record(&xprv, &cfg.passcode, &mut rng);
        let signer = XPrv::from_bytes(&root).map(|k| Signer::from_root(&k));
        let (vkey, key_hash) = match &signer {
            Ok(s) => (s.vkey(), s.key_hash_hex()),
            Err(_) => ([0u8; 32], String::new()),
        };
        Self {
            core: MatchingCore::new(cfg.params.clone(), cfg.markets.clone()),
            cfg,
            builds: HashMap::new(),
            submitted: HashSet::new(),
            fills: HashMap::new(),
            faults: VecDeque::new(),
            arrivals: Vec::new(),
            tickers: 0,
            requests: 0,
            encrypted_key,
            key_hash,
            vkey,
            rng,
            account_tx: broadcast::channel(4096).0,
            binance_tx: broadcast::channel(4096).0,
            kill_tx: broadcast::channel(4).0,
            binance_u: 1_000,
        }
    }

    fn record(&mut self, events: Vec<VenueEvent>) {
        for e in events {
            match e {
                VenueEvent::Fill(f) => self
                    .fills
                    .entry(f.venue_order_id.clone())
                    .or_default()
                    .push(f),
                VenueEvent::Order(o) => {
                    let msg = json!({"type": "Account", "sub_type": "order_info", "order": self.order_json(&o)});
                    let _ = self.account_tx.send(msg.to_string());
                }
                VenueEvent::Balances(b) => {
                    // JSON numbers here, as the DOCS example shows (REST sends strings).
                    let rows: Vec<serde_json::Value> = b
                        .iter()
                        .map(|x| {
                            let num = |d: Decimal| d.normalize().to_string().parse::<serde_json::Number>().map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null);
                            json!({"asset": x.asset, "asset_unit": "", "free": num(x.free), "locked": num(x.locked)})
                        })
                        .collect();
                    let msg = json!({"type": "Account", "sub_type": "balance", "balance": rows});
                    let _ = self.account_tx.send(msg.to_string());
                }
            }
        }
    }

    /// Moves a market's reference: fills what it trades through and publishes the bookTicker.
    pub fn move_reference(&mut self, market: &MarketId, bid: Decimal, ask: Decimal) -> usize {
        let events = self.core.on_reference(market, bid, ask, now_ms());
        let fills = events
            .iter()
            .filter(|e| matches!(e, VenueEvent::Fill(_)))
            .count();
        self.record(events);
        self.publish_ticker(market, bid, ask);
        fills
    }

    /// Publishes a bookTicker frame for `market`'s reference without moving the venue: a feed
    /// that lies (a stuck or ×10 reference), while the venue's own market stays where it is.
    pub fn publish_ticker(&mut self, market: &MarketId, bid: Decimal, ask: Decimal) {
        if let Some((_, symbol)) = self.cfg.references.iter().find(|(m, _)| m == market) {
            self.tickers += 1;
            self.binance_u += 1;
            let data = json!({"u": self.binance_u, "s": symbol, "b": bid.to_string(), "B": "1000.0", "a": ask.to_string(), "A": "1000.0"});
            let frame =
                json!({"stream": format!("{}@bookTicker", symbol.to_lowercase()), "data": data});
            let _ = self.binance_tx.send(frame.to_string());
        }
    }

    /// Publishes any text on the bookTicker stream, as is (a malformed or absurd frame).
    pub fn publish_raw(&mut self, frame: String) {
        self.tickers += 1;
        let _ = self.binance_tx.send(frame);
    }

    /// The next bookTicker update id the mock would use.
    pub fn next_update_id(&mut self) -> u64 {
        self.binance_u += 1;
        self.binance_u
    }

    /// Queues a fault for the next request to its path (what `POST /mock/fault` does).
    pub fn add_fault(&mut self, fault: Fault) {
        self.faults.push_back(fault);
    }

    /// Orders built and not submitted (in flight between build and submit, or abandoned).
    pub fn unsubmitted_builds(&self) -> usize {
        self.builds.len()
    }

    /// Every order the venue has (open, or finished and still remembered).
    pub fn all_orders(&self) -> Vec<VenueOrder> {
        self.core.all_orders()
    }

    /// Every fill so far, of every order.
    pub fn fills(&self) -> Vec<VenueFill> {
        let mut v: Vec<VenueFill> = self.fills.values().flatten().cloned().collect();
        v.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
        v
    }

    /// Orders resting at the mock.
    pub fn open_order_count(&self) -> usize {
        self.cfg
            .markets
            .iter()
            .map(|m| self.core.open_orders(&m.market).len())
            .sum()
    }

    fn order_json(&self, o: &VenueOrder) -> serde_json::Value {
        order_json(
            o,
            self.fills
                .get(&o.venue_order_id)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        )
    }

    pub(super) fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|f| path.starts_with(&f.path))?;
        self.faults.remove(i)
    }

    pub(super) fn authorized(&self, req: &HttpRequest) -> bool {
        req.headers().get("x-api-key").and_then(|v| v.to_str().ok())
            == Some(self.cfg.api_key.as_str())
    }

    /// Counts one authenticated REST request (any path).
    pub(super) fn requested(&mut self) {
        self.requests += 1;
    }

    /// Authenticated REST requests received so far, reads included.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Records the arrival of a request the venue counts against the budget.
    pub(super) fn arrived(&mut self, kind: &'static str) {
        self.arrivals.push((now_ms(), kind));
    }

    /// bookTicker frames published so far: the reference's clock, for tests.
    pub fn tickers(&self) -> u64 {
        self.tickers
    }

    /// Every counted request received so far: (arrival ms, kind).
    pub fn arrivals(&self) -> &[(i64, &'static str)] {
        &self.arrivals
    }

    /// The most counted requests received within any 1000 ms.
    pub fn max_actions_per_second(&self) -> usize {
        let times: Vec<i64> = self.arrivals.iter().map(|(t, _)| *t).collect();
        max_in_window(&times, 1_000)
    }
}

/// The most of `times` (sorted) within any half-open window of `window_ms`.
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

pub(super) type Shared = web::Data<Arc<Mutex<WireState>>>;

async fn market_config(shared: Shared) -> HttpResponse {
    let Ok(st) = shared.lock() else {
        return err(500, 5000, "Internal Server Error");
    };
    let pairs: Vec<serde_json::Value> = st
        .cfg
        .markets
        .iter()
        .map(|m| {
            let (base, quote) = super::matching::assets_of(&m.market);
            json!({"symbol": m.market.as_str(),
                   "base_token": {"symbol": base.to_uppercase(), "unit": "lovelace", "decimals": 6, "max_qty_dp": m.size_decimals},
                   "quote_token": {"symbol": quote.to_uppercase(), "unit": "mock.5553444d", "decimals": 6, "max_qty_dp": 2},
                   "price_max_dp": m.price_decimals})
        })
        .collect();
    HttpResponse::Ok().json(json!({"assets": [], "trading_pairs": pairs}))
}

async fn operation_key(req: HttpRequest, shared: Shared) -> HttpResponse {
    guarded(req, shared, |st| {
        HttpResponse::Ok().json(
            json!({"encrypted_operation_key": st.encrypted_key, "operation_key_hash": st.key_hash}),
        )
    })
    .await
}

async fn build(
    req: HttpRequest,
    shared: Shared,
    body: web::Json<BuildOrderRequest>,
) -> HttpResponse {
    guarded(req, shared, move |st| {
        let b = body.into_inner();
        if b.order_type != "limit" {
            return err(400, 4000, "only limit orders in the mock");
        }
        let (Ok(price), Ok(size)) = (
            b.price.parse::<Decimal>(),
            b.base_quantity.parse::<Decimal>(),
        ) else {
            return err(400, 4000, "invalid request data");
        };
        if !st.cfg.markets.iter().any(|m| m.market.as_str() == b.symbol) {
            return err(400, 4106, "invalid symbol");
        }
        let n = st.rng.next_u64();
        let order_id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n >> 32,
            (n >> 16) & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            st.rng.next_u64() & 0xffff_ffff_ffff
        );
        let (tx, body_bytes) = unsigned_tx(&order_id, 100_000_000);
        let order = NewOrder {
            client_order_id: ClientOrderId(order_id.clone()),
            market: MarketId(b.symbol),
            side: b.side,
            price,
            size,
            traceparent: None,
            tag: crate::venue::SendTag::default(),
        };
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
            return err(400, 4000, "signed_tx is not hex");
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
        let id = VenueOrderId(s.order_id.clone());
        match st.core.place_as(&order, Some(id), now_ms()) {
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
        let vid = VenueOrderId(id.clone());
        match st
            .core
            .cancel(Some(&vid), &ClientOrderId(id.clone()), now_ms())
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
        match st.core.cancel_all(&MarketId(symbol.clone()), now_ms()) {
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
        let vid = VenueOrderId(id.clone());
        match st.core.query(Some(&vid), &ClientOrderId(id)) {
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

async fn open_orders(req: HttpRequest, shared: Shared, q: web::Query<Page>) -> HttpResponse {
    let q = q.into_inner();
    guarded(req, shared, move |st| {
        let symbol = q.symbol.unwrap_or_default();
        let all = st.core.open_orders(&MarketId(symbol));
        let limit = q.limit.unwrap_or(10).clamp(1, 250);
        let page = q.page.unwrap_or(1).max(1);
        let total_page = all.len().div_ceil(limit).max(1);
        let data: Vec<serde_json::Value> = all
            .iter()
            .skip((page - 1) * limit)
            .take(limit)
            .map(|o| st.order_json(o))
            .collect();
        HttpResponse::Ok()
            .json(json!({"data": data, "total_count": all.len(), "total_page": total_page}))
    })
    .await
}

async fn trades(req: HttpRequest, shared: Shared, q: web::Query<Page>) -> HttpResponse {
    let q = q.into_inner();
    guarded(req, shared, move |st| {
        let symbol = q.symbol.unwrap_or_default();
        let mut all: Vec<VenueFill> = st.fills().into_iter().filter(|f| f.market.as_str() == symbol).collect();
        all.sort_by(|a, b| b.ts_ms.cmp(&a.ts_ms).then(b.trade_id.cmp(&a.trade_id)));
        let limit = q.limit.unwrap_or(10).clamp(1, 250);
        let page = q.page.unwrap_or(1).max(1);
        let data: Vec<serde_json::Value> = all
            .iter()
            .skip((page - 1) * limit)
            .take(limit)
            .map(record_json)
            .collect();
        HttpResponse::Ok().json(json!({"data": data, "total_count": all.len(), "total_page": all.len().div_ceil(limit).max(1)}))
    })
    .await
}

async fn balance(req: HttpRequest, shared: Shared) -> HttpResponse {
    guarded(req, shared, |st| {
        let rows: Vec<serde_json::Value> = st
            .core
            .balances()
            .iter()
            .map(|b| json!({"asset": b.asset, "asset_unit": "", "free": b.free.to_string(), "locked": b.locked.to_string()}))
            .collect();
        HttpResponse::Ok().json(rows)
    })
    .await
}

#[derive(Deserialize)]
struct ReferenceMove {
    market: String,
    bid: Decimal,
    ask: Decimal,
}

async fn set_reference(shared: Shared, body: web::Json<ReferenceMove>) -> HttpResponse {
    let Ok(mut st) = shared.lock() else {
        return err(500, 5000, "Internal Server Error");
    };
    let m = body.into_inner();
    let fills = st.move_reference(&MarketId(m.market), m.bid, m.ask);
    HttpResponse::Ok().json(json!({"fills": fills}))
}

async fn add_fault(shared: Shared, body: web::Json<Fault>) -> HttpResponse {
    let Ok(mut st) = shared.lock() else {
        return err(500, 5000, "Internal Server Error");
    };
    st.faults.push_back(body.into_inner());
    HttpResponse::Ok().json(json!({"queued": st.faults.len()}))
}

async fn actions(shared: Shared) -> HttpResponse {
    let Ok(st) = shared.lock() else {
        return err(500, 5000, "Internal Server Error");
    };
    let list: Vec<serde_json::Value> = st
        .arrivals
        .iter()
        .map(|(t, k)| json!({"ts_ms": t, "kind": k}))
        .collect();
    HttpResponse::Ok().json(json!({
        "actions": list,
        "max_per_second": st.max_actions_per_second(),
        "open_orders": st.open_order_count(),
        "fills": st.fills().len(),
    }))
}

async fn drop_streams(shared: Shared) -> HttpResponse {
    let Ok(st) = shared.lock() else {
        return err(500, 5000, "Internal Server Error");
    };
    let n = st.kill_tx.send(()).unwrap_or(0);
    HttpResponse::Ok().json(json!({"dropped": n}))
}

/// Serves the wire mock on `listen`; returns the bound address, the shared state (for tests)
/// and the server future to run on an actix system.
///
/// # Errors
/// The bind error.
pub fn serve(
    cfg: WireMockConfig,
    listen: SocketAddr,
) -> std::io::Result<(SocketAddr, Arc<Mutex<WireState>>, actix_web::dev::Server)> {
    let state = Arc::new(Mutex::new(WireState::new(cfg)));
    let data = web::Data::new(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/app/market-config", web::get().to(market_config))
            .route("/accounts/operation-key", web::get().to(operation_key))
            .route("/accounts/order/{id}", web::get().to(order_by_id))
            .route("/accounts/open-orders", web::get().to(open_orders))
            .route("/accounts/balance", web::get().to(balance))
            .route("/accounts/trades", web::get().to(trades))
            .route("/order/build", web::post().to(build))
            .route("/order/submit", web::post().to(submit))
            .route("/order/cancel-all", web::post().to(cancel_all))
            .route("/order/{id}/cancel", web::post().to(cancel))
            .route("/mock/reference", web::post().to(set_reference))
            .route("/mock/fault", web::post().to(add_fault))
            .route("/mock/drop-streams", web::post().to(drop_streams))
            .route("/mock/actions", web::get().to(actions))
            .route("/accounts/stream", web::get().to(streams::account_stream))
            .route("/stream", web::get().to(streams::binance_stream))
            .route("/ws/{name}", web::get().to(streams::binance_stream))
    })
    .workers(1)
    .disable_signals()
    .bind(listen)?;
    let addr = server.addrs().first().copied().unwrap_or(listen);
    Ok((addr, state, server.run()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::key::{bech32_decode, decrypt_operation_key};

    #[test]
    fn bech32_round_trip_and_key_record() {
        let data: Vec<u8> = (0u8..96).collect();
        let s = bech32_encode("xprv", &data);
        let (hrp, back) = bech32_decode(&s).expect("decodes");
        assert_eq!((hrp.as_str(), back.to_vec()), ("xprv", data));
        let mut rng = SplitMix64::new(3);
        let rec = encrypt_record("xprv1secret", "pass", &mut rng);
        assert_eq!(
            decrypt_operation_key(&rec, "pass")
                .expect("decrypts")
                .as_str(),
            "xprv1secret"
        );
    }

    #[test]
    fn built_transactions_sign_and_verify() {
        let (tx, body) = unsigned_tx("order-1", 5);
        let parts = cbor::split_tx(&tx).expect("a transaction");
        assert_eq!(tx[parts.body.clone()], body[..]);
        let root = XPrv::from_bytes(&[7u8; 96]).expect("key");
        let signer = Signer::from_root(&root);
        let signed = signer.sign_tx(&tx).expect("signs");
        assert_eq!(verify_signed_tx(&signed, &signer.vkey()), Ok(()));
        let other = Signer::from_root(&XPrv::from_bytes(&[9u8; 96]).expect("key"));
        assert!(verify_signed_tx(&signed, &other.vkey()).is_err());
    }
}
