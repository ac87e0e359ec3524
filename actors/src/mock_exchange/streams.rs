//! The wire mock's WebSocket side: DeltaDeFi's account stream (order updates, balances) and a
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

/// Pumps `rx` into a WebSocket session until the client leaves or the streams are dropped;
/// answers protocol pings and the text "ping" some clients send.
fn pump(
    mut session: actix_ws::Session,
    mut incoming: actix_ws::MessageStream,
    mut rx: broadcast::Receiver<String>,
    mut kill: broadcast::Receiver<()>,
    transform: impl Fn(&str) -> Option<String> + 'static,
) {
    actix_rt::spawn(async move {
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Ok(text) => {
                        if let Some(t) = transform(&text)
                            && session.text(t).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
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
    pump(session, incoming, rx, kill, |t| Some(t.to_string()));
    Ok(resp)
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
    pump(session, incoming, rx, kill, move |frame| {
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
    });
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
    frames: Arc<Vec<(i64, String)>>,
    symbol: crate::types::BinanceSymbol,
) {
    loop {
        let mut decoder = crate::binance_feed::codec::Decoder::new([symbol.clone()]);
        let mut prev: Option<i64> = None;
        for (recv_ms, text) in frames.iter() {
            if let Some(p) = prev {
                let gap = u64::try_from(recv_ms - p).unwrap_or(0);
                actix_rt::time::sleep(Duration::from_millis(gap)).await;
            }
            prev = Some(*recv_ms);
            if let Ok(crate::binance_feed::codec::Frame::Tick(t)) =
                decoder.decode(text, now_ms(), std::time::Instant::now())
                && let Ok(mut st) = state.lock()
            {
                st.move_reference(&market, t.bid, t.ask);
            }
        }
        if frames.is_empty() {
            return;
        }
    }
}
