//! DeltaDeFiRest is an actor. It owns the HTTP client (awc, so it lives on the venue arbiter),
//! the API key and the signer, and answers the gateway's and account feed's
//! [`VenueRequest`]s over DeltaDeFi's REST API: build → sign → submit in one path, cancel,
//! cancel-all, order lookup, open orders and balances.
//!
//! At start it reads the market config (and refuses precision finer than the venue allows),
//! fetches and decrypts the operation key. It answers nothing but "not ready" (5001,
//! retryable) until then. (Orphans are flattened by OrderManager at start, through the outbox
//! and the budget like any cancel.)
//!
//! Every request the venue counts (submit, cancel, cancel-all) is written only through the
//! [`SendGate`]: within the budget, after its send is recorded, and for a place only while
//! trading is not halted. A place's build and signature come first, so the submit leaves the
//! moment the budget allows.
//!
//! Only a well-formed answer is definite: a 2xx whose body parses, or an error body with a
//! venue code (and HTTP 429/401). A submit, cancel or cancel-all that may have reached the venue
//! and got anything else (no answer, a timeout, an HTML page, an empty or unparsable 200) has
//! an unknown outcome: a place is looked up by the order id from its build, never resent; a
//! cancel is tried again.

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument as _, error, info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use zeroize::Zeroizing;

use super::wire::{
    BuildOrderRequest, BuildOrderResponse, CancelAllRequest, CancelAllResponse,
    CancelOrderResponse, ListOf, MarketConfigResponse, OperationKeyResponse, OrderResponse,
    SubmitOrderRequest, SubmitOrderResponse, describe_body, error_from_http,
};
use crate::intent::IntentKind;
use crate::pricing_rules::MarketRules;
use crate::rate_limiter::SendGate;
use crate::signer::Signer;
use crate::supervision::ActorHealth;
use crate::types::{MarketId, VenueOrderId, now_ms};
use crate::venue::SendRecord;
use crate::venue::{Balance, NewOrder, VenueError, VenueFailure, VenueReply, VenueRequest};

/// Where and how to reach DeltaDeFi. Secrets are here only in memory, never in `Debug`.
#[derive(Clone)]
pub struct RestConfig {
    pub base_url: String,
    pub api_key: Zeroizing<String>,
    pub passcode: Zeroizing<String>,
    pub timeout: Duration,
    pub markets: Vec<MarketRules>,
    /// Through which every counted request is written.
    pub gate: SendGate,
}

impl std::fmt::Debug for RestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("passcode", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("gate", &self.gate)
            .finish()
    }
}

enum CallError {
    /// The request never left (no connection): nothing happened at the venue.
    NotSent(String),
    /// The request may have reached the venue, but no well-formed answer came back.
    NoAnswer(String),
    /// A well-formed error answer from the venue.
    Venue(VenueError),
}

impl From<CallError> for VenueFailure {
    fn from(e: CallError) -> VenueFailure {
        match e {
            CallError::Venue(v) => VenueFailure::Rejected(v),
            CallError::NotSent(t) => {
                VenueFailure::Rejected(VenueError::new(5001, format!("not sent: {t}")))
            }
            CallError::NoAnswer(t) => VenueFailure::OutcomeUnknown {
                venue_order_id: None,
                reason: t,
            },
        }
    }
}

#[derive(Clone)]
struct Http {
    client: awc::Client,
    base: String,
    key: Rc<Zeroizing<String>>,
}

impl Http {
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        post: bool,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.base);
        let req = if post {
            self.client.post(&url)
        } else {
            self.client.get(&url)
        };
        let req = req.insert_header(("X-API-KEY", self.key.as_str()));
        let sent = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| match e {
            awc::error::SendRequestError::Connect(_) | awc::error::SendRequestError::Url(_) => {
                CallError::NotSent(format!("{path}: {e}"))
            }
            _ => CallError::NoAnswer(format!("{path}: {e}")),
        })?;
        let status = resp.status().as_u16();
        // On the step span that instruments this call (a no-op elsewhere).
        tracing::Span::current().record("http.response.status_code", status);
        let bytes =
            resp.body().limit(8 << 20).await.map_err(|e| {
                CallError::NoAnswer(format!("{path}: HTTP {status}, body lost: {e}"))
            })?;
        if !(200..300).contains(&status) {
            return Err(match error_from_http(status, &bytes) {
                Some(v) => CallError::Venue(v),
                None => CallError::NoAnswer(format!(
                    "{path}: HTTP {status} without a venue error: {}",
                    describe_body(&bytes)
                )),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            CallError::NoAnswer(format!(
                "{path}: HTTP {status} with an unreadable body ({e}): {}",
                describe_body(&bytes)
            ))
        })
    }
}

/// The REST transport.
pub struct DeltaDeFiRest {
    cfg: RestConfig,
    http: Http,
    signer: Option<Rc<Signer>>,
    failures: u32,
    health: ActorHealth,
}

/// Reads `GET /app/market-config` once, before the pipeline starts, so that the precision the
/// config leaves unset can be adopted from the venue.
///
/// # Errors
/// What went wrong, named: unreachable, no answer, a venue error or an unparsable body.
pub async fn fetch_market_config(
    base_url: &str,
    api_key: Zeroizing<String>,
    timeout: std::time::Duration,
) -> Result<MarketConfigResponse, String> {
    let http = Http {
        client: awc::Client::builder().timeout(timeout).finish(),
        base: base_url.trim_end_matches('/').to_string(),
        key: Rc::new(api_key),
    };
    http.call::<(), _>(false, "/app/market-config", None)
        .await
        .map_err(describe)
}

impl DeltaDeFiRest {
    /// A transport for `cfg`. Call on the arbiter it will run on (awc is not `Send`).
    pub fn new(cfg: RestConfig) -> Self {
        let client = awc::Client::builder().timeout(cfg.timeout).finish();
        let http = Http {
            client,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            key: Rc::new(cfg.api_key.clone()),
        };
        Self {
            cfg,
            http,
            signer: None,
            failures: 0,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        self.signer = None;
    }

    async fn start_up(http: Http, cfg: RestConfig) -> Result<Signer, String> {
        let mc: MarketConfigResponse = http
            .call::<(), _>(false, "/app/market-config", None)
            .await
            .map_err(describe)?;
        for m in &cfg.markets {
            match mc
                .trading_pairs
                .iter()
                .find(|p| p.symbol == m.market.as_str())
            {
                None => return Err(format!("market {} is not listed by the venue", m.market)),
                Some(p)
                    if p.price_max_dp < m.price_decimals
                        || p.base_token.max_qty_dp < m.size_decimals =>
                {
                    return Err(format!(
                        "market {}: the venue allows {} price and {} size decimals, the config uses {} and {}",
                        m.market,
                        p.price_max_dp,
                        p.base_token.max_qty_dp,
                        m.price_decimals,
                        m.size_decimals
                    ));
                }
                Some(_) => {}
            }
        }
        let key: OperationKeyResponse = http
            .call::<(), _>(false, "/accounts/operation-key", None)
            .await
            .map_err(describe)?;
        let signer = Signer::from_encrypted(&key.encrypted_operation_key, &cfg.passcode)
            .map_err(|e| e.to_string())?;
        if !key.operation_key_hash.is_empty() && key.operation_key_hash != signer.key_hash_hex() {
            warn!(
                "operation_key_hash differs from the derived key's hash (the hash's meaning is unconfirmed)"
            );
        }
        Ok(signer)
    }
}

fn describe(e: CallError) -> String {
    match e {
        CallError::NotSent(t) | CallError::NoAnswer(t) => t,
        CallError::Venue(v) => v.to_string(),
    }
}

impl Actor for DeltaDeFiRest {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        let (http, cfg) = (self.http.clone(), self.cfg.clone());
        ctx.wait(Self::start_up(http, cfg).into_actor(self).map(|res, act, ctx| match res {
            Ok(signer) => {
                info!(key_hash = %signer.key_hash_hex(), "deltadefi gateway ready");
                act.signer = Some(Rc::new(signer));
                act.failures = 0;
            }
            Err(cause) => {
                act.failures += 1;
                let wait = Duration::from_millis((500u64 << act.failures.min(7)).min(60_000));
                error!(cause = %cause, retry_in_ms = wait.as_millis() as u64, "deltadefi start-up failed");
                ctx.run_later(wait, |_, ctx| ctx.stop());
            }
        }));
    }
}

crate::supervised_actor!(DeltaDeFiRest, "deltadefi_rest");

async fn place(
    http: Http,
    signer: Rc<Signer>,
    gate: SendGate,
    o: NewOrder,
) -> Result<VenueReply, VenueFailure> {
    let req = BuildOrderRequest {
        symbol: o.market.to_string(),
        side: o.side,
        order_type: "limit".into(),
        base_quantity: o.size.normalize().to_string(),
        price: o.price.normalize().to_string(),
        post_only: true,
    };
    let parent = crate::trace::context_from(o.traceparent.as_deref());
    let step = |name: &'static str| step_span(name, &parent);
    let built: Result<BuildOrderResponse, CallError> =
        traced_call(&http, step("deltadefi.build"), "/order/build", Some(&req)).await;
    // A build places nothing: whatever went wrong, the place can be tried again.
    let built = built.map_err(|e| match e {
        CallError::Venue(v) => VenueFailure::Rejected(v),
        other => VenueFailure::Rejected(VenueError::new(5001, describe(other))),
    })?;
    let signed_tx = step("deltadefi.sign")
        .in_scope(|| signer.sign_tx_hex(&built.tx_hex))
        .map_err(|e| {
            VenueFailure::Rejected(VenueError::new(
                4407,
                format!("cannot sign the built transaction: {e}"),
            ))
        })?;
    let venue_id = VenueOrderId(built.order_id.as_str().into());
    // Through the budget, recording the venue's id of the order before it can exist there.
    let record = SendRecord {
        sent_at_ms: 0,
        kind: IntentKind::Place,
        market: o.market.clone(),
        outbox_id: o.tag.outbox_id,
        attempt: o.tag.attempt,
        source: "outbox",
        venue_order: Some((venue_id.clone(), o.client_order_id.clone())),
        post_only: Some((o.side, o.price)),
        tick_recv_at: o.tag.tick_recv_at,
    };
    gate.acquire(record).await?;
    let submit = SubmitOrderRequest {
        order_id: built.order_id,
        signed_tx,
    };
    let submitted: Result<SubmitOrderResponse, CallError> = traced_call(
        &http,
        step("deltadefi.submit"),
        "/order/submit",
        Some(&submit),
    )
    .await;
    match submitted {
        Ok(r) => {
            let order = r.into_order();
            let mut vo = order
                .to_venue(now_ms())
                .map_err(|e| VenueFailure::OutcomeUnknown {
                    venue_order_id: Some(venue_id.clone()),
                    reason: e.to_string(),
                })?;
            vo.client_order_id = Some(o.client_order_id);
            if order.venue_id().is_none() {
                vo.venue_order_id = venue_id;
            }
            Ok(VenueReply::Placed(vo))
        }
        // The submit never left: nothing was placed, the place may be tried again.
        Err(CallError::NotSent(t)) => Err(VenueFailure::Rejected(VenueError::new(
            5001,
            format!("not sent: {t}"),
        ))),
        // The submit may have reached the venue: look the order up, never resend it.
        Err(CallError::NoAnswer(t)) => Err(VenueFailure::OutcomeUnknown {
            venue_order_id: Some(venue_id),
            reason: t,
        }),
        Err(CallError::Venue(e)) if e.code >= 5000 && e.code != 5002 => {
            Err(VenueFailure::OutcomeUnknown {
                venue_order_id: Some(venue_id),
                reason: e.to_string(),
            })
        }
        Err(CallError::Venue(e)) => Err(VenueFailure::Rejected(e)),
    }
}

/// One REST step of an order action (build, sign, submit, cancel, cancel-all), a child of the
/// intent's span in its trace; its venue code is recorded when the venue refuses.
fn step_span(name: &'static str, parent: &opentelemetry::Context) -> tracing::Span {
    let span = tracing::info_span!(
        "deltadefi.request",
        otel.name = name,
        http.response.status_code = tracing::field::Empty,
        venue.code = tracing::field::Empty,
    );
    let _ = span.set_parent(parent.clone());
    span
}

/// A REST call of an order action inside its step span, the venue's refusal code recorded.
async fn traced_call<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    http: &Http,
    span: tracing::Span,
    path: &str,
    body: Option<&B>,
) -> Result<R, CallError> {
    let r = http
        .call::<B, R>(true, path, body)
        .instrument(span.clone())
        .await;
    if let Err(CallError::Venue(e)) = &r {
        span.record("venue.code", e.code);
    }
    r
}

async fn open_orders(http: Http, market: MarketId) -> Result<VenueReply, VenueFailure> {
    let mut out = Vec::new();
    let mut page = 1u32;
    loop {
        let path = format!("/accounts/open-orders?symbol={market}&limit=250&page={page}");
        let list: ListOf<OrderResponse> = http.call::<(), _>(false, &path, None).await?;
        let (orders, pages) = list.into_parts();
        for o in orders {
            match o.to_venue(now_ms()) {
                Ok(v) => out.push(v),
                Err(e) => warn!(cause = %e, "open order without id skipped"),
            }
        }
        if page >= pages || page >= 1000 {
            return Ok(VenueReply::OpenOrders(out));
        }
        page += 1;
    }
}

impl Handler<VenueRequest> for DeltaDeFiRest {
    type Result = ResponseActFuture<Self, Result<VenueReply, VenueFailure>>;
    fn handle(&mut self, req: VenueRequest, _: &mut Context<Self>) -> Self::Result {
        let http = self.http.clone();
        let gate = self.cfg.gate.clone();
        let Some(signer) = self.signer.clone() else {
            return Box::pin(actix::fut::ready(Err(VenueFailure::Rejected(
                VenueError::new(
                    5001,
                    "deltadefi gateway is not ready (start-up in progress)",
                ),
            ))));
        };
        let fut = async move {
            match req {
                VenueRequest::Place(o) => place(http, signer, gate, o).await,
                VenueRequest::Cancel {
                    venue_order_id: None,
                    client_order_id,
                    ..
                } => Err(VenueFailure::Rejected(VenueError::new(
                    4200,
                    format!("{client_order_id} never got a venue order id"),
                ))),
                VenueRequest::Cancel {
                    venue_order_id: Some(ref id),
                    ref traceparent,
                    ..
                } => {
                    let parent = crate::trace::context_from(traceparent.as_deref());
                    if let Some(record) = req.send_record("outbox") {
                        gate.acquire(record).await?;
                    }
                    let path = format!("/order/{id}/cancel");
                    let span = step_span("deltadefi.cancel", &parent);
                    let r: CancelOrderResponse =
                        traced_call::<(), _>(&http, span, &path, None).await?;
                    Ok(VenueReply::Cancelled(VenueOrderId(r.order_id.into())))
                }
                VenueRequest::CancelAll {
                    ref market,
                    ref traceparent,
                    ..
                } => {
                    let parent = crate::trace::context_from(traceparent.as_deref());
                    if let Some(record) = req.send_record("outbox") {
                        gate.acquire(record).await?;
                    }
                    let body = CancelAllRequest {
                        symbol: market.to_string(),
                    };
                    let span = step_span("deltadefi.cancel_all", &parent);
                    let r: CancelAllResponse =
                        traced_call(&http, span, "/order/cancel-all", Some(&body)).await?;
                    Ok(VenueReply::CancelledAll(
                        r.order_ids.into_iter().map(VenueOrderId::from).collect(),
                    ))
                }
                VenueRequest::Query {
                    venue_order_id: Some(id),
                    ..
                } => {
                    match http
                        .call::<(), OrderResponse>(false, &format!("/accounts/order/{id}"), None)
                        .await
                    {
                        Ok(o) => Ok(VenueReply::Order {
                            order: o.to_venue(now_ms()).ok(),
                            fills: o.fills(now_ms(), LOVELACE),
                        }),
                        Err(CallError::Venue(e)) if e.code == 4200 => Ok(VenueReply::Order {
                            order: None,
                            fills: Vec::new(),
                        }),
                        Err(e) => Err(e.into()),
                    }
                }
                // Without a venue id the order never passed build: it cannot exist there.
                VenueRequest::Query {
                    venue_order_id: None,
                    ..
                } => Ok(VenueReply::Order {
                    order: None,
                    fills: Vec::new(),
                }),
                VenueRequest::OpenOrders { market } => open_orders(http, market).await,
                VenueRequest::RecentTrades { market } => {
                    let path = format!("/accounts/trades?symbol={market}&limit=250&page=1");
                    let list: ListOf<super::wire::ExecutionRecord> =
                        http.call::<(), _>(false, &path, None).await?;
                    Ok(VenueReply::Trades(
                        list.into_parts()
                            .0
                            .into_iter()
                            .map(|r| (crate::types::TradeId(r.id), VenueOrderId(r.order_id.into())))
                            .collect(),
                    ))
                }
                VenueRequest::Balances => {
                    let list: ListOf<super::wire::BalanceRow> =
                        http.call::<(), _>(false, "/accounts/balance", None).await?;
                    Ok(VenueReply::Balances(
                        list.into_parts().0.into_iter().map(Balance::from).collect(),
                    ))
                }
            }
        };
        Box::pin(fut.into_actor(self))
    }
}

/// The part of DeltaDeFi's REST API that only ever reduces exposure: list open orders, cancel
/// one, cancel all. No signer, no key material beyond the API key: what the watchdog uses to
/// flatten the account of a bot that stopped working. It has no way to place an order.
pub struct CancelClient {
    http: Http,
}

impl CancelClient {
    /// A client of `base_url` with `api_key`, each call bounded by `timeout`. Call on the
    /// thread it will run on (awc is not `Send`).
    pub fn new(base_url: &str, api_key: Zeroizing<String>, timeout: Duration) -> Self {
        Self {
            http: Http {
                client: awc::Client::builder().timeout(timeout).finish(),
                base: base_url.trim_end_matches('/').to_string(),
                key: Rc::new(api_key),
            },
        }
    }

    /// Cancels every open order of `market`; "nothing to cancel" (4200) is an empty list.
    ///
    /// # Errors
    /// The venue's error, or a transport failure described.
    pub async fn cancel_all(&self, market: &MarketId) -> Result<Vec<VenueOrderId>, String> {
        let body = CancelAllRequest {
            symbol: market.to_string(),
        };
        match self
            .http
            .call::<_, CancelAllResponse>(true, "/order/cancel-all", Some(&body))
            .await
        {
            Ok(r) => Ok(r.order_ids.into_iter().map(VenueOrderId::from).collect()),
            Err(CallError::Venue(e)) if e.code == 4200 => Ok(Vec::new()),
            Err(e) => Err(describe(e)),
        }
    }

    /// Cancels one order; one that is not open any more (4200, 4201) counts as cancelled.
    ///
    /// # Errors
    /// The venue's error, or a transport failure described.
    pub async fn cancel(&self, id: &VenueOrderId) -> Result<(), String> {
        match self
            .http
            .call::<(), CancelOrderResponse>(true, &format!("/order/{id}/cancel"), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(CallError::Venue(e)) if e.code == 4200 || e.code == 4201 => Ok(()),
            Err(e) => Err(describe(e)),
        }
    }

    /// The open orders of `market` (every page).
    ///
    /// # Errors
    /// The venue's error, or a transport failure described.
    pub async fn open_orders(&self, market: &MarketId) -> Result<Vec<VenueOrderId>, String> {
        match open_orders(self.http.clone(), market.clone()).await {
            Ok(VenueReply::OpenOrders(v)) => Ok(v.into_iter().map(|o| o.venue_order_id).collect()),
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Lovelace per ADA: a fee reported in `lovelace` is divided by this (DeltaDeFi's own
/// connector does; the unit is unconfirmed, spec §7.15).
pub const LOVELACE: rust_decimal::Decimal =
    rust_decimal::Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// DeltaDeFi's REST base URL per environment (spec §1.1).
pub fn base_url(environment: &str) -> Option<&'static str> {
    match environment {
        "staging" => Some("https://api-staging.deltadefi.io"),
        "mainnet" => Some("https://api.deltadefi.io"),
        _ => None,
    }
}
