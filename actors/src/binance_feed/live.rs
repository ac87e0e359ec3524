//! The feed's live source: the Binance bookTicker WebSocket, opened make-before-break, rolled
//! over before Binance's 24 h limit, and re-opened with backoff and jitter when it ends.

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tracing::{info, warn};

use super::codec::Frame;
use super::{BinanceFeed, FeedSpec, ingest_logged};
use crate::config::{LiveConfig, StreamKind};
use crate::types::{BinanceSymbol, now_ms};

impl BinanceFeed {
    fn stream_url(&self, cfg: &LiveConfig) -> String {
        stream_url(cfg, &self.symbols)
    }

    /// Opens a connection. While another one is up it keeps delivering (make-before-break):
    /// the new one replaces it only once connected, and the old one is then closed.
    pub(super) fn connect(&mut self, cfg: LiveConfig, ctx: &mut Context<Self>) {
        if self.connecting {
            return;
        }
        self.connecting = true;
        let url = self.stream_url(&cfg);
        info!(url = %url, "connecting to binance");
        let fut = tokio_tungstenite::connect_async(url);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.connecting = false;
            match res {
                Ok((ws, _)) => {
                    act.live_gen += 1;
                    let generation = act.live_gen;
                    let (_write, read) = ws.split();
                    let tagged = read.map(move |m| LiveItem::Frame(generation, m)).chain(
                        futures_util::stream::once(async move { LiveItem::Ended(generation) }),
                    );
                    let handle = ctx.add_stream(tagged);
                    // A new connection has its own update-id order.
                    act.ingest.reset_sequence();
                    if let Some(old) = act.live_handle.replace(handle) {
                        // Make-before-break: the old connection goes only now.
                        ctx.cancel_future(old);
                    }
                    act.connected = true;
                    act.connects += 1;
                    act.backoff.reset();
                    // Binance closes a connection after 24 h: roll over before that.
                    let after = Duration::from_millis(cfg.rollover_after_ms);
                    ctx.run_later(after, move |act, ctx| {
                        if act.live_gen == generation {
                            info!("rolling the binance connection over before its 24 h limit");
                            act.connect(cfg, ctx);
                        }
                    });
                }
                Err(e) => {
                    warn!(cause = %e, "binance connect failed");
                    if act.live_handle.is_none() {
                        act.schedule_reconnect(cfg, ctx);
                    } else {
                        // Still connected on the old one: try the rollover again later.
                        ctx.run_later(
                            Duration::from_millis(cfg.reconnect_initial_ms),
                            move |act, ctx| act.connect(cfg, ctx),
                        );
                    }
                }
            }
        }));
    }

    fn schedule_reconnect(&mut self, cfg: LiveConfig, ctx: &mut Context<Self>) {
        self.connected = false;
        let delay = self.backoff.next_delay();
        ctx.run_later(delay, move |act, ctx| act.connect(cfg, ctx));
    }
}

/// The bookTicker URL for `symbols`: combined (`/stream?streams=a@bookTicker/b@bookTicker`)
/// or raw (`/ws/a@bookTicker`, first symbol).
pub fn stream_url(cfg: &LiveConfig, symbols: &[BinanceSymbol]) -> String {
    let names: Vec<String> = symbols
        .iter()
        .map(|s| format!("{}@bookTicker", s.as_str().to_lowercase()))
        .collect();
    let base = cfg.url.trim_end_matches('/');
    match cfg.stream {
        StreamKind::Combined => format!("{base}/stream?streams={}", names.join("/")),
        StreamKind::Raw => format!(
            "{base}/ws/{}",
            names.first().map(String::as_str).unwrap_or("")
        ),
    }
}

/// One item of a live connection, tagged with the connection's generation.
pub(super) enum LiveItem {
    Frame(u64, Result<WsMessage, tungstenite::Error>),
    Ended(u64),
}

impl StreamHandler<LiveItem> for BinanceFeed {
    fn handle(&mut self, item: LiveItem, ctx: &mut Context<Self>) {
        let FeedSpec::Live(cfg) = self.spec.clone() else {
            return;
        };
        match item {
            // Frames of a connection already replaced are ignored.
            LiveItem::Frame(g, _) if g != self.live_gen => {}
            LiveItem::Frame(_, Ok(WsMessage::Text(text))) => {
                let frame =
                    ingest_logged(&mut self.ingest, text.as_str(), now_ms(), Instant::now());
                self.pass_on(super::Turn::Waits);
                if let Some(Frame::ServerShutdown) = frame {
                    info!("binance announced serverShutdown, opening a new connection");
                    self.connect(cfg, ctx);
                }
            }
            LiveItem::Frame(_, Ok(WsMessage::Close(frame))) => {
                // Nothing more comes on a closing connection: open the next one now rather than
                // when this one's socket finally ends (as for serverShutdown).
                info!(
                    ?frame,
                    "binance closed the stream, opening a new connection"
                );
                self.connect(cfg, ctx);
            }
            LiveItem::Frame(_, Ok(_)) => {}
            LiveItem::Frame(_, Err(e)) => warn!(cause = %e, "binance stream error"),
            LiveItem::Ended(g) if g == self.live_gen => {
                warn!("binance stream ended, reconnecting");
                self.live_handle = None;
                self.schedule_reconnect(cfg, ctx);
            }
            LiveItem::Ended(_) => {}
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // Each connection reports its own end (LiveItem::Ended); the actor keeps running.
    }
}
