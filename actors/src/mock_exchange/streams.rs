//! The wire mock's WebSocket side: DeltaDeFi's account stream (order updates, balances), its
//! market streams (depth snapshots, last price, recent trades) and a
//! Binance-shaped bookTicker stream, fed from the shared state's broadcasts; and the tasks that
//! move the mock's reference (a synthetic walk, or a replay file) for `deltadefi-mm
//! mock-exchange`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::wire::{Shared, WireState, err};
use crate::types::{MarketId, now_ms};

/// The account stream's authentication: the API key in the query.
#[derive(Deserialize)]
pub(super) struct StreamAuth {
    api_key: Option<String>,
}

/// Renders the message a stream resends periodically.
type Resend = Box<dyn Fn() -> Option<String>>;

/// What a stream sends besides its broadcasts: a first message on connect, and a message
/// resent every period (a depth snapshot even when nothing moved).
struct Extra {
    first: Option<String>,
    every: Option<(Duration, Resend)>,
}

impl Extra {
    const NONE: Extra = Extra {
        first: None,
        every: None,
    };
}

/// Pumps `rx` into a WebSocket session until the client leaves or the streams are dropped;
/// answers protocol pings and the text "ping" some clients send.
fn pump<T: Clone + Send + 'static>(
    mut session: actix_ws::Session,
    mut incoming: actix_ws::MessageStream,
    mut rx: broadcast::Receiver<T>,
    mut kill: broadcast::Receiver<()>,
    transform: impl Fn(&T) -> Option<String> + 'static,
    extra: Extra,
) {
    actix_rt::spawn(async move {
        if let Some(first) = extra.first
            && session.text(first).await.is_err()
        {
            return;
        }
        let period = extra
            .every
            .as_ref()
            .map_or(Duration::from_secs(3_600), |(d, _)| *d);
        let mut resend =
            actix_rt::time::interval_at(actix_rt::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Ok(item) => {
                        if let Some(t) = transform(&item)
                            && session.text(t).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = resend.tick() => {
                    if let Some(t) = extra.every.as_ref().and_then(|(_, f)| f())
                        && session.text(t).await.is_err()
                    {
                        return;
                    }
                }
                _ = kill.recv() => break,
                inc = incoming.next() => match inc {
                    Some(Ok(actix_ws::Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(actix_ws::Message::Text(t))) if t.trim() == "ping" => {
                        if session.text("pong").await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = session.close(None).await;
    });
}

pub(super) async fn account_stream(
    req: HttpRequest,
    payload: web::Payload,
    shared: Shared,
    q: web::Query<StreamAuth>,
) -> Result<HttpResponse, actix_web::Error> {
    let (rx, kill) = {
        let Ok(st) = shared.lock() else {
            return Ok(err(500, 5000, "Internal Server Error"));
        };
        if q.api_key.as_deref() != Some(st.cfg.api_key.as_str()) {
            return Ok(err(401, 4010, "unauthorized"));
        }
        (st.account_tx.subscribe(), st.kill_tx.subscribe())
    };
    let (resp, session, incoming) = actix_ws::handle(&req, payload)?;
    pump(
        session,
        incoming,
        rx,
        kill,
        |t: &String| Some(t.clone()),
        Extra::NONE,
    );
    Ok(resp)
}

/// A market stream's query: the API key and, for recent trades, how many to send first.
#[derive(Deserialize)]
pub(super) struct MarketAuth {
    api_key: Option<String>,
    limit: Option<usize>,
}

/// Which market stream.
#[derive(Clone, Copy)]
enum MarketStream {
    Depth,
    Price,
    Trades,
}

async fn market_stream(
    req: HttpRequest,
    payload: web::Payload,
    shared: Shared,
    q: MarketAuth,
    kind: MarketStream,
) -> Result<HttpResponse, actix_web::Error> {
    let symbol = req
        .match_info()
        .get("symbol")
        .unwrap_or_default()
        .to_string();
    let market = MarketId(symbol.into());
    let (rx, kill, first, every) = {
        let Ok(st) = shared.lock() else {
            return Ok(err(500, 5000, "Internal Server Error"));
        };
        if q.api_key.as_deref() != Some(st.cfg.api_key.as_str()) {
            return Ok(err(401, 4010, "unauthorized"));
        }
        if !st.cfg.markets.iter().any(|m| m.market == market) {
            return Ok(err(400, 4106, "invalid symbol"));
        }
        let kill = st.kill_tx.subscribe();
        match kind {
            MarketStream::Depth => {
                let (state, m) = (shared.clone(), market.clone());
                let every = Duration::from_millis(st.cfg.depth_interval_ms.max(10));
                let resend: Resend =
                    Box::new(move || state.lock().ok().map(|st| st.depth_message(&m)));
                (
                    st.depth_tx.subscribe(),
                    kill,
                    Some(st.depth_message(&market)),
                    Some((every, resend)),
                )
            }
            MarketStream::Price => (
                st.price_tx.subscribe(),
                kill,
                Some(st.price_message(&market)),
                None,
            ),
            MarketStream::Trades => {
                let first = st.trades_message(&market, q.limit.unwrap_or(50).clamp(1, 500));
                (st.trades_tx.subscribe(), kill, Some(first), None)
            }
        }
    };
    let (resp, session, incoming) = actix_ws::handle(&req, payload)?;
    let m = market.clone();
    pump(
        session,
        incoming,
        rx,
        kill,
        move |(mk, text): &(MarketId, String)| (*mk == m).then(|| text.clone()),
        Extra { first, every },
    );
    Ok(resp)
}

/// `/market/depth/{symbol}`: a full snapshot on connect, on every change, and every
/// `depth_interval_ms`.
pub(super) async fn depth_stream(
    req: HttpRequest,
    payload: web::Payload,
    shared: Shared,
    q: web::Query<MarketAuth>,
) -> Result<HttpResponse, actix_web::Error> {
    market_stream(req, payload, shared, q.into_inner(), MarketStream::Depth).await
}

/// `/market/market-price/{symbol}`: the last traded price on connect and after every trade.
pub(super) async fn price_stream(
    req: HttpRequest,
    payload: web::Payload,
    shared: Shared,
    q: web::Query<MarketAuth>,
) -> Result<HttpResponse, actix_web::Error> {
    market_stream(req, payload, shared, q.into_inner(), MarketStream::Price).await
}

/// `/market/recent-trades/{symbol}`: the latest `limit` trades on connect, then each new batch.
pub(super) async fn trades_stream(
    req: HttpRequest,
    payload: web::Payload,
    shared: Shared,
    q: web::Query<MarketAuth>,
) -> Result<HttpResponse, actix_web::Error> {
    market_stream(req, payload, shared, q.into_inner(), MarketStream::Trades).await
}

/// The combined stream's names.
#[derive(Deserialize)]
pub(super) struct Streams {
    streams: Option<String>,
}

/// Binance-shaped bookTicker: `/stream?streams=a@bookTicker/b@bookTicker` (combined frames)
/// or `/ws/a@bookTicker` (bare payloads).
pub(super) async fn binance_stream(
    req: HttpRequest,
    payload: web::Payload,
    shared: Shared,
    q: web::Query<Streams>,
) -> Result<HttpResponse, actix_web::Error> {
    let raw = req.match_info().get("name").map(str::to_string);
    let wanted: Vec<String> = match (&raw, &q.streams) {
        (Some(name), _) => vec![name.clone()],
        (None, Some(s)) => s.split('/').map(str::to_string).collect(),
        (None, None) => Vec::new(),
    };
    let (rx, kill) = {
        let Ok(st) = shared.lock() else {
            return Ok(err(500, 5000, "Internal Server Error"));
        };
        (st.binance_tx.subscribe(), st.kill_tx.subscribe())
    };
    let (resp, session, incoming) = actix_ws::handle(&req, payload)?;
    let combined = raw.is_none();
    pump(
        session,
        incoming,
        rx,
        kill,
        move |frame: &String| {
            let v: serde_json::Value = serde_json::from_str(frame).ok()?;
            let stream = v.get("stream")?.as_str()?;
            if !wanted.iter().any(|w| w.eq_ignore_ascii_case(stream)) {
                return None;
            }
            if combined {
                Some(frame.to_string())
            } else {
                Some(v.get("data")?.to_string())
            }
        },
        Extra::NONE,
    );
    Ok(resp)
}

/// Walks the reference of `market` (published as `symbol` bookTicker) with the synthetic
/// source, forever: what `deltadefi-mm mock-exchange` runs so that the bot has prices to follow.
pub async fn walk_reference(
    state: Arc<Mutex<WireState>>,
    market: MarketId,
    mut walk: crate::binance_feed::source::Synthetic,
    symbol: crate::types::BinanceSymbol,
) {
    let mut decoder = crate::binance_feed::codec::Decoder::new([symbol]);
    loop {
        let (text, delay) = walk.step();
        if let Ok(crate::binance_feed::codec::Frame::Tick(t)) =
            decoder.decode(&text, now_ms(), std::time::Instant::now())
            && let Ok(mut st) = state.lock()
        {
            st.move_reference(&market, t.bid, t.ask);
        }
        actix_rt::time::sleep(Duration::from_millis(delay.max(1))).await;
    }
}

/// Plays recorded frames as the reference of `market` at their recorded pace, looping: the
/// replay alternative to [`walk_reference`].
pub async fn replay_reference(
    state: Arc<Mutex<WireState>>,
    market: MarketId,
    path: std::path::PathBuf,
    symbol: crate::types::BinanceSymbol,
) {
    use crate::binance_feed::source::ReplayReader;
    loop {
        // Read line by line, from the start on every loop.
        let mut reader = match ReplayReader::unchecked(&path) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(cause = %e, "replay file cannot be read");
                return;
            }
        };
        let mut decoder = crate::binance_feed::codec::Decoder::new([symbol.clone()]);
        let mut prev: Option<i64> = None;
        let mut played = 0u64;
        loop {
            let (recv_ms, text) = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(cause = %e, "replay line skipped");
                    continue;
                }
            };
            if let Some(p) = prev {
                let gap = u64::try_from(recv_ms - p).unwrap_or(0);
                actix_rt::time::sleep(Duration::from_millis(gap)).await;
            }
            prev = Some(recv_ms);
            played += 1;
            if let Ok(crate::binance_feed::codec::Frame::Tick(t)) =
                decoder.decode(&text, now_ms(), std::time::Instant::now())
                && let Ok(mut st) = state.lock()
            {
                st.move_reference(&market, t.bid, t.ask);
            }
        }
        if played == 0 {
            return;
        }
    }
}
