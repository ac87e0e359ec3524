//! The mock exchange over the wire: DeltaDeFi's REST endpoints and WebSocket streams with the
//! shapes, error bodies and codes of the spec (exchange-apis.md §1–§2), and the build → sign →
//! submit two-step with a real unsigned Cardano transaction whose vkey witness is verified on
//! submit. It is backed by the same [`MatchingCore`] as the in-process MockExchange, so the real
//! gateway is tested over real sockets, and DeltaDeFi's own SDK can be pointed at it.
//!
//! Every REST path but `/app/market-config` needs the `X-API-KEY` header, checked before the
//! request is parsed (401 / 4010 whatever the body); every error, the framework's own included
//! (bad JSON, a missing field, a wrong type, an unknown path or method), is a JSON body
//! `{"error", "code"}`: 4000 for a malformed request, 4040 (the mock's own code) for an unknown
//! path, where DeltaDeFi itself answers plain text `404 page not found`.
//!
//! Test controls (not DeltaDeFi's): `POST /mock/reference` moves the reference price of a
//! market (fills follow), `POST /mock/fault` breaks the next request to a path
//! ([`super::faults::Fault`]: an error code, or an answer that is garbage, HTML, empty, late,
//! missing or cut off after the request was executed), `GET /mock/actions` lists every order
//! action received with its arrival time and the most received in one second (the budget as
//! the venue counts it).

mod json;
mod rest;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix_web::dev::Service as _;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rust_decimal::Decimal;
use serde_json::json;
use sha2::Sha256;
use tokio::sync::broadcast;

use super::faults::Fault;
use super::matching::{MatchingCore, MatchingParams, OrderRequest};
use super::streams;
pub use super::streams::{replay_reference, walk_reference};
use crate::pricing_rules::MarketRules;
use crate::rng::SplitMix64;
use crate::signer::cbor::encode_head;
use crate::signer::key::bech32_encode;
use crate::signer::{Signer, XPrv, blake2b256, key};
use crate::types::{MarketId, Side, VenueOrderId, now_ms};
use crate::venue::{Liquidity, VenueEvent, VenueFill, VenueOrder};
pub use json::{USDM_UNIT, err, iso};

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
    /// Check an order's precision, size, type and symbol at build too (else only at submit).
    pub validate_at_build: bool,
    /// Depth streams resend their snapshot at least this often.
    pub depth_interval_ms: u64,
}

struct Build {
    order: OrderRequest,
    body: Vec<u8>,
    built_at_ms: i64,
}

/// One message of a market stream: its market and JSON text.
pub(super) type MarketMessage = (MarketId, String);

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
    started_ms: i64,
    /// Account-stream messages (JSON text) for every connected stream.
    pub(super) account_tx: broadcast::Sender<String>,
    /// Depth snapshots, last prices and recent trades, by market.
    pub(super) depth_tx: broadcast::Sender<MarketMessage>,
    pub(super) price_tx: broadcast::Sender<MarketMessage>,
    pub(super) trades_tx: broadcast::Sender<MarketMessage>,
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
            started_ms: now_ms(),
            account_tx: broadcast::channel(4096).0,
            depth_tx: broadcast::channel(1024).0,
            price_tx: broadcast::channel(1024).0,
            trades_tx: broadcast::channel(1024).0,
            binance_tx: broadcast::channel(4096).0,
            kill_tx: broadcast::channel(4).0,
            binance_u: 1_000,
        }
    }

    /// Publishes what happened: order updates, fills and balances on the account stream, and
    /// the touched markets' depth, trades and last price on the market streams.
    fn record(&mut self, events: Vec<VenueEvent>) {
        let mut touched: Vec<MarketId> = Vec::new();
        let mut trades: Vec<VenueFill> = Vec::new();
        for e in events {
            match e {
                VenueEvent::Fill(f) => {
                    trades.push(f.clone());
                    self.fills
                        .entry(f.venue_order_id.clone())
                        .or_default()
                        .push(f);
                }
                VenueEvent::Order(o) => {
                    if !touched.contains(&o.market) {
                        touched.push(o.market.clone());
                    }
                    let msg = json!({"type": "Account", "sub_type": "order_info", "order": self.order_json(&o)});
                    let _ = self.account_tx.send(msg.to_string());
                }
                VenueEvent::Balances(b) => {
                    // JSON numbers here, as the DOCS example shows (REST sends strings).
                    let msg = json!({"type": "Account", "sub_type": "balance", "balance": json::balances_json(&b, true)});
                    let _ = self.account_tx.send(msg.to_string());
                }
            }
        }
        for m in touched {
            let mine: Vec<_> = trades
                .iter()
                .filter(|f| f.market == m)
                .map(|f| super::matching::history::PublicTrade {
                    ts_ms: f.ts_ms,
                    market: f.market.clone(),
                    side: match (f.liquidity, f.side) {
                        (Liquidity::Taker, s) => s,
                        (Liquidity::Maker, Side::Buy) => Side::Sell,
                        (Liquidity::Maker, Side::Sell) => Side::Buy,
                    },
                    price: f.price,
                    qty: f.size,
                })
                .collect();
            if !mine.is_empty() {
                let _ = self
                    .trades_tx
                    .send((m.clone(), json::trades_json(&mine).to_string()));
                let _ = self.price_tx.send((m.clone(), self.price_message(&m)));
            }
            self.publish_depth(&m);
        }
    }

    /// The market's depth snapshot as its stream sends it.
    pub(super) fn depth_message(&self, market: &MarketId) -> String {
        json::depth_json(now_ms(), &self.core.depth(market)).to_string()
    }

    /// The market-price stream's message.
    pub(super) fn price_message(&self, market: &MarketId) -> String {
        json!({"type": "Market", "sub_type": "market_price", "price": json::num(self.last_price(market).unwrap_or_default())})
            .to_string()
    }

    /// The latest trades of a market as the recent-trades stream sends them.
    pub(super) fn trades_message(&self, market: &MarketId, limit: usize) -> String {
        json::trades_json(&self.core.history().recent_trades(market, limit)).to_string()
    }

    fn publish_depth(&self, market: &MarketId) {
        if self.depth_tx.receiver_count() > 0 {
            let _ = self
                .depth_tx
                .send((market.clone(), self.depth_message(market)));
        }
    }

    /// The last traded price of a market; before any trade, its mid on the tick grid.
    pub fn last_price(&self, market: &MarketId) -> Option<Decimal> {
        self.core.history().last_price(market).or_else(|| {
            let b = self.core.others(market)?;
            let dp = self.core.rules(market).map_or(4, |r| r.price_decimals);
            Some(((b.bid + b.ask) / Decimal::TWO).round_dp(dp))
        })
    }

    /// Moves a market's reference: fills what it trades through, publishes the bookTicker and
    /// the venue's new depth.
    pub fn move_reference(&mut self, market: &MarketId, bid: Decimal, ask: Decimal) -> usize {
        let events = self.core.on_reference(market, bid, ask, now_ms());
        let fills = events
            .iter()
            .filter(|e| matches!(e, VenueEvent::Fill(_)))
            .count();
        self.record(events);
        self.publish_depth(market);
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

    /// The venue's book of a market: (bids, asks) as (price, quantity), best first.
    pub fn depth(&self, market: &MarketId) -> crate::venue::Depth {
        self.core.depth(market)
    }

    fn order_json(&self, o: &VenueOrder) -> serde_json::Value {
        let fills = self
            .fills
            .get(&o.venue_order_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        match self.core.record(&o.venue_order_id) {
            Some(rec) => json::order_json(rec, fills, self.commission_rate_bp()),
            None => serde_json::Value::Null,
        }
    }

    fn commission_rate_bp(&self) -> u32 {
        rust_decimal::prelude::ToPrimitive::to_u32(&self.cfg.params.maker_fee_bps.round())
            .unwrap_or(0)
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

    /// How many place requests the venue refused with `code` so far.
    pub fn rejects(&self) -> &HashMap<u32, u64> {
        self.core.rejects()
    }

    /// The most counted requests received within any 1000 ms.
    pub fn max_actions_per_second(&self) -> usize {
        let times: Vec<i64> = self.arrivals.iter().map(|(t, _)| *t).collect();
        crate::types::max_in_window(&times, 1_000)
    }
}

pub(super) type Shared = web::Data<Arc<Mutex<WireState>>>;

/// Paths that answer without the API key header: the public market config, the mock's own
/// controls, and the WebSocket streams (which take the key in their query).
fn public_path(path: &str) -> bool {
    path == "/app/market-config"
        || path.starts_with("/mock/")
        || path == "/accounts/stream"
        || path.starts_with("/market/depth/")
        || path.starts_with("/market/market-price/")
        || path.starts_with("/market/recent-trades/")
        || path.starts_with("/market/recent-trade/")
        || path == "/stream"
        || path.starts_with("/ws/")
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    err(
        404,
        4040,
        &format!("no such endpoint: {} {}", req.method(), req.path()),
    )
}

/// The framework's own request errors (bad JSON, a missing field, a wrong type, a bad query)
/// as DeltaDeFi's JSON 4000.
fn bad_request(e: impl std::fmt::Display, _: &HttpRequest) -> actix_web::Error {
    let resp = err(400, 4000, &format!("invalid request data: {e}"));
    actix_web::error::InternalError::from_response(e.to_string(), resp).into()
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
        let auth_state = data.clone();
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().error_handler(bad_request))
            .app_data(web::QueryConfig::default().error_handler(bad_request))
            .app_data(web::PathConfig::default().error_handler(bad_request))
            // The key is checked before anything of the request is parsed.
            .wrap_fn(move |req, srv| {
                let allowed = public_path(req.path())
                    || auth_state
                        .lock()
                        .map(|st| st.authorized(req.request()))
                        .unwrap_or(false);
                let fut = allowed.then(|| srv.call(req));
                async move {
                    match fut {
                        Some(f) => f.await,
                        None => Err(actix_web::error::InternalError::from_response(
                            "unauthorized",
                            err(401, 4010, "unauthorized"),
                        )
                        .into()),
                    }
                }
            })
            .configure(rest::routes)
            .route("/mock/reference", web::post().to(rest::set_reference))
            .route("/mock/fault", web::post().to(rest::add_fault))
            .route("/mock/drop-streams", web::post().to(rest::drop_streams))
            .route("/mock/actions", web::get().to(rest::actions))
            .route("/accounts/stream", web::get().to(streams::account_stream))
            .route(
                "/market/depth/{symbol}",
                web::get().to(streams::depth_stream),
            )
            .route(
                "/market/market-price/{symbol}",
                web::get().to(streams::price_stream),
            )
            .route(
                "/market/recent-trades/{symbol}",
                web::get().to(streams::trades_stream),
            )
            .route(
                "/market/recent-trade/{symbol}",
                web::get().to(streams::trades_stream),
            )
            .route("/stream", web::get().to(streams::binance_stream))
            .route("/ws/{name}", web::get().to(streams::binance_stream))
            .default_service(web::to(not_found))
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
    use crate::signer::{cbor, verify_signed_tx};

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

    #[test]
    fn public_paths() {
        assert!(public_path("/app/market-config"));
        assert!(public_path("/market/depth/ADAUSDM"));
        assert!(!public_path("/market/market-price"));
        assert!(!public_path("/order/build"));
        assert!(!public_path("/nowhere"));
    }
}
