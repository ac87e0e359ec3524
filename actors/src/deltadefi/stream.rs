//! DeltaDeFiStream is an actor. It owns one of DeltaDeFi's WebSockets (one connection per
//! stream; connecting is the subscription, the API key goes in the query), sends protocol pings
//! every `ping_interval_ms`, tolerates text pings and unknown messages, and reconnects with
//! exponential backoff and jitter.
//!
//! - The account stream (`{ws}/accounts/stream`) turns `order_info` and `balance` messages
//!   into [`VenueEvent`]s for AccountFeed (fills from `order_execution_records`, stored once by
//!   trade id there). After every (re)connect it asks AccountFeed for a REST resync, since the
//!   stream replays nothing.
//! - A depth stream (`{ws}/market/depth/{symbol}`) puts each full snapshot of the venue's book
//!   into [`crate::venue_book::VenueBooks`]; a snapshot that is crossed or has a non-positive
//!   level is dropped and counted; while the stream is down the book is unknown.
//!
//! The API key is part of the URL: it is never logged (errors are scrubbed of it).

use std::time::Duration;

use actix::io::SinkWrite;
use actix::prelude::*;
use futures_util::StreamExt;
use futures_util::stream::SplitSink;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use super::rest::LOVELACE;
use super::wire::{AccountMessage, DepthMessage};
use crate::messages::Resync;
use crate::registry::Reg;
use crate::rng::Backoff;
use crate::supervision::ActorHealth;
use crate::types::{MarketId, now_ms};
use crate::venue::{Balance, VenueEvent};

/// How to reach the account stream.
#[derive(Clone)]
pub struct StreamConfig {
    pub ws_url: String,
    pub api_key: Zeroizing<String>,
    pub ping_every: Duration,
    /// Text "ping" frames this often; `None` = never.
    pub text_ping_every: Option<Duration>,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Asks for stream figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "StreamStats")]
pub struct GetStreamStats;

/// Stream figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct StreamStats {
    pub connected: bool,
    pub connects: u64,
    pub messages: u64,
    pub unparsed: u64,
}

/// Which of DeltaDeFi's streams a reader owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamKind {
    /// Order updates and balances, for AccountFeed.
    Account,
    /// The venue's book of one market, into the shared venue books.
    Depth(MarketId),
}

/// A stream reader.
pub struct DeltaDeFiStream {
    reg: Reg,
    cfg: StreamConfig,
    kind: StreamKind,
    sink: Option<SinkWrite<WsMessage, SplitSink<Ws, WsMessage>>>,
    stats: StreamStats,
    backoff: Backoff,
    health: ActorHealth,
}

impl DeltaDeFiStream {
    /// The account stream's reader, delivering to AccountFeed through `reg`.
    pub fn account(reg: Reg, cfg: StreamConfig) -> Self {
        Self::new(reg, cfg, StreamKind::Account)
    }

    /// `market`'s depth stream reader, writing the registry's venue books.
    pub fn depth(reg: Reg, cfg: StreamConfig, market: MarketId) -> Self {
        Self::new(reg, cfg, StreamKind::Depth(market))
    }

    fn new(reg: Reg, cfg: StreamConfig, kind: StreamKind) -> Self {
        let backoff = Backoff::new(
            cfg.reconnect_initial_ms,
            cfg.reconnect_max_ms,
            now_ms() as u64,
        );
        Self {
            reg,
            cfg,
            kind,
            sink: None,
            stats: StreamStats::default(),
            backoff,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        self.lost();
    }

    /// The connection is gone: a depth stream's book is no longer known.
    fn lost(&mut self) {
        self.sink = None;
        self.forget();
    }

    /// The connection is closing: nothing it showed is trusted any more.
    fn forget(&mut self) {
        self.stats.connected = false;
        if let StreamKind::Depth(m) = &self.kind {
            self.reg.books.clear(m);
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            StreamKind::Account => "account stream",
            StreamKind::Depth(_) => "depth stream",
        }
    }

    fn scrub(&self, text: &str) -> String {
        text.replace(self.cfg.api_key.as_str(), "<redacted>")
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let path = match &self.kind {
            StreamKind::Account => "/accounts/stream".to_string(),
            StreamKind::Depth(m) => format!("/market/depth/{m}"),
        };
        let url = format!(
            "{}{path}?api_key={}",
            self.cfg.ws_url,
            self.cfg.api_key.as_str()
        );
        ctx.wait(
            tokio_tungstenite::connect_async(url)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok((ws, _)) => {
                        let (write, read) = ws.split();
                        act.sink = Some(SinkWrite::new(write, ctx));
                        ctx.add_stream(read);
                        act.stats.connected = true;
                        act.stats.connects += 1;
                        act.backoff.reset();
                        match &act.kind {
                            StreamKind::Account => {
                                info!(
                                    connects = act.stats.connects,
                                    "account stream connected, resynchronising over REST"
                                );
                                act.reg.resync.do_send(Resync);
                            }
                            StreamKind::Depth(m) => {
                                info!(market = %m, connects = act.stats.connects, "depth stream connected");
                            }
                        }
                    }
                    Err(e) => {
                        warn!(stream = act.name(), cause = %act.scrub(&e.to_string()), "stream connect failed");
                        act.schedule_reconnect(ctx);
                    }
                }),
        );
    }

    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>) {
        self.lost();
        let delay = self.backoff.next_delay();
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }

    fn on_text(&mut self, text: &str) {
        self.stats.messages += 1;
        if let StreamKind::Depth(m) = &self.kind {
            let m = m.clone();
            self.on_depth(&m, text);
            return;
        }
        let msg = match serde_json::from_str::<AccountMessage>(text) {
            Ok(m) => m,
            Err(e) => {
                // Text pings/pongs and unknown shapes are tolerated, counted, never fatal.
                self.stats.unparsed += 1;
                debug!(cause = %e, "account stream message ignored");
                return;
            }
        };
        let now = now_ms();
        match msg {
            AccountMessage::OrderInfo { order } => {
                for f in order.fills(now, LOVELACE) {
                    self.reg.venue_events.do_send(VenueEvent::Fill(f));
                }
                match order.to_venue(now) {
                    Ok(o) => self.reg.venue_events.do_send(VenueEvent::Order(o)),
                    Err(e) => warn!(cause = %e, "order_info without an order id"),
                }
            }
            AccountMessage::Balance { balance } => {
                self.reg.venue_events.do_send(VenueEvent::Balances(
                    balance.into_iter().map(Balance::from).collect(),
                ));
            }
            AccountMessage::Other => {}
        }
    }
}

impl DeltaDeFiStream {
    fn on_depth(&mut self, market: &MarketId, text: &str) {
        let parsed = serde_json::from_str::<DepthMessage>(text)
            .map_err(|e| e.to_string())
            .and_then(|d| d.into_depth().map_err(|e| e.to_string()));
        match parsed {
            Ok(depth) => self.reg.books.set_depth(market, depth, now_ms()),
            Err(cause) => {
                // Text pings and bad snapshots alike: dropped, counted, never used.
                self.stats.unparsed += 1;
                if text.trim_start().starts_with('{') {
                    crate::metrics::metrics()
                        .dropped
                        .add(1, &[opentelemetry::KeyValue::new("reason", "bad_depth")]);
                    if self.stats.unparsed.is_power_of_two() {
                        warn!(market = %market, cause = %cause, dropped = self.stats.unparsed, "depth snapshot dropped");
                    }
                }
            }
        }
    }
}

impl Actor for DeltaDeFiStream {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        self.connect(ctx);
        ctx.run_interval(self.cfg.ping_every, |act, _| {
            if let Some(sink) = act.sink.as_mut() {
                let _ = sink.write(WsMessage::Ping(Vec::new().into()));
            }
        });
        if let Some(every) = self.cfg.text_ping_every {
            ctx.run_interval(every, |act, _| {
                if let Some(sink) = act.sink.as_mut() {
                    let _ = sink.write(WsMessage::text("ping"));
                }
            });
        }
    }
}

crate::supervised_actor!(DeltaDeFiStream, "deltadefi_stream");

impl actix::io::WriteHandler<tungstenite::Error> for DeltaDeFiStream {}

impl StreamHandler<Result<WsMessage, tungstenite::Error>> for DeltaDeFiStream {
    fn handle(&mut self, item: Result<WsMessage, tungstenite::Error>, _: &mut Context<Self>) {
        match item {
            Ok(WsMessage::Text(t)) => self.on_text(t.as_str()),
            Ok(WsMessage::Close(frame)) => {
                info!(stream = self.name(), ?frame, "closed by the venue");
                // Answer the close at once (the reply otherwise waits for our next write, and
                // the read half ends only after it), and stop trusting what this connection
                // showed: a depth stream's book is cleared now, not when the socket ends.
                if let Some(sink) = self.sink.as_mut() {
                    sink.close();
                }
                self.forget();
            }
            Ok(_) => {}
            Err(e) => {
                warn!(stream = self.name(), cause = %self.scrub(&e.to_string()), "stream error")
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        warn!(stream = self.name(), "stream ended, reconnecting");
        self.schedule_reconnect(ctx);
    }
}

impl Handler<GetStreamStats> for DeltaDeFiStream {
    type Result = StreamStats;
    fn handle(&mut self, _: GetStreamStats, _: &mut Context<Self>) -> StreamStats {
        self.stats
    }
}
