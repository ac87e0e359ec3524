//! BinanceFeed's live source against a local WebSocket server playing Binance: combined stream
//! for several symbols, bad frames dropped and counted, pings answered, reconnect after the
//! server closes and after `serverShutdown`.
#![allow(clippy::result_large_err)] // tungstenite's handshake callback signature

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use mm_actors::binance_feed::codec::DropReason;
use mm_actors::binance_feed::{BinanceFeed, FeedSpec, GetFeedStats};
use mm_actors::config::{LiveConfig, ReferenceGuardConfig, StreamKind};
use mm_actors::halt_gate::HaltGate;
use mm_actors::quote_engine::{ReferenceTicks, TickReceived};
use mm_actors::registry::Registry;
use mm_actors::risk_guard::FeedHealth;
use mm_actors::types::BinanceSymbol;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// Records what the feed sends.
struct Probe {
    ticks: mpsc::UnboundedSender<(String, u64, String)>,
}
impl Actor for Probe {
    type Context = Context<Self>;
}
impl Handler<ReferenceTicks> for Probe {
    type Result = ();
    fn handle(&mut self, msg: ReferenceTicks, _: &mut Context<Self>) {
        for TickReceived { tick: t, .. } in msg.iter() {
            let _ = self
                .ticks
                .send((t.symbol.to_string(), t.update_id, t.bid.to_string()));
        }
    }
}
impl Handler<FeedHealth> for Probe {
    type Result = ();
    fn handle(&mut self, _: FeedHealth, _: &mut Context<Self>) {}
}

/// A registry whose tick and health peers are a probe; ticks come out of the receiver.
fn probe_registry() -> (
    Arc<Registry>,
    mpsc::UnboundedReceiver<(String, u64, String)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe { ticks: tx }.start();
    let reg = Arc::new(Registry::new(
        HaltGate::open_for_tests([]),
        Arc::new(mm_actors::venue_book::VenueBooks::new([], 10_000)),
    ));
    reg.ticks_to_quotes.bind(probe.clone().recipient());
    reg.feed_health.bind(probe.recipient());
    (reg, rx)
}

/// A reference guard that passes every tick: these tests are about the connection.
fn permissive() -> ReferenceGuardConfig {
    ReferenceGuardConfig {
        jump_limit_bps: rust_decimal::Decimal::from(10_000),
        confirm_ticks: 1,
        confirm_ms: 0,
    }
}

fn ticker(sym: &str, u: u64, b: &str, a: &str) -> String {
    format!(
        r#"{{"stream":"{}@bookTicker","data":{{"u":{u},"s":"{sym}","b":"{b}","B":"10","a":"{a}","A":"20"}}}}"#,
        sym.to_lowercase()
    )
}

/// What each accepted connection is sent, in order.
fn scripts() -> Vec<Vec<String>> {
    vec![
        vec![
            ticker("ADAUSDT", 1, "0.4500", "0.4501"),
            ticker("BTCUSDT", 7, "90000.10", "90000.20"),
            r#"{"stream":"adausdt@bookTicker","data":{"u":2,"s":"ADAUSDT"}}"#.into(),
            ticker("ADAUSDT", 3, "0.4502", "0.4501"),
            ticker("ADAUSDT", 4, "0", "0.4501"),
            "not json at all".into(),
            ticker("ADAUSDT", 1, "0.4400", "0.4401"),
            ticker("ETHUSDT", 9, "3000", "3001"),
            ticker("ADAUSDT", 5, "0.4503", "0.4504"),
        ],
        vec![
            ticker("ADAUSDT", 6, "0.4505", "0.4506"),
            r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}"#
                .into(),
        ],
        vec![
            ticker("ADAUSDT", 8, "0.4510", "0.4511"),
            ticker("BTCUSDT", 8, "90001.00", "90001.10"),
        ],
    ]
}

#[actix_rt::test]
async fn live_feed_validates_reconnects_and_answers_pings() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let paths = Arc::new(Mutex::new(Vec::<String>::new()));
    let pongs = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let (server_paths, server_pongs) = (paths.clone(), pongs.clone());
    actix_rt::spawn(async move {
        // Each connection is served on its own task, as a real server would: the client opens
        // the next connection before it lets the previous one go.
        for (i, script) in scripts().into_iter().enumerate() {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let p = server_paths.clone();
            let server_pongs = server_pongs.clone();
            actix_rt::spawn(async move {
                let mut ws = tokio_tungstenite::accept_hdr_async(
                    tcp,
                    move |req: &Request, resp: Response| {
                        p.lock().expect("paths").push(req.uri().to_string());
                        Ok(resp)
                    },
                )
                .await
                .expect("handshake");
                if i == 0 {
                    ws.send(Message::Ping(b"are-you-there".to_vec().into()))
                        .await
                        .expect("ping");
                }
                for frame in script {
                    ws.send(Message::text(frame)).await.expect("send");
                }
                if i == 0 {
                    // Wait for the pong, then close: the client must reconnect.
                    while let Some(Ok(m)) = ws.next().await {
                        if let Message::Pong(p) = m {
                            server_pongs.lock().expect("pongs").push(p.to_vec());
                            break;
                        }
                    }
                    let _ = ws.close(None).await;
                }
                // Otherwise keep the connection until the client leaves.
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });

    let (reg, mut rx) = probe_registry();
    let live = LiveConfig {
        url: format!("ws://{addr}"),
        stream: StreamKind::Combined,
        reconnect_initial_ms: 10,
        reconnect_max_ms: 100,
        rollover_after_ms: 23 * 3_600_000,
    };
    let symbols = vec![
        BinanceSymbol("ADAUSDT".into()),
        BinanceSymbol("BTCUSDT".into()),
    ];
    let feed = Supervisor::start(move |_| {
        BinanceFeed::new(reg, FeedSpec::Live(live), symbols, 50, permissive())
    });

    let mut got = Vec::new();
    while got.len() < 6 {
        let t = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("tick in time")
            .expect("open");
        got.push(t);
    }
    let want: Vec<(String, u64, String)> = [
        ("ADAUSDT", 1, "0.4500"),
        ("BTCUSDT", 7, "90000.10"),
        ("ADAUSDT", 5, "0.4503"),
        ("ADAUSDT", 6, "0.4505"),
        ("ADAUSDT", 8, "0.4510"),
        ("BTCUSDT", 8, "90001.00"),
    ]
    .into_iter()
    .map(|(s, u, b)| (s.to_string(), u, b.to_string()))
    .collect();
    assert_eq!(got, want);

    let stats = feed.send(GetFeedStats).await.expect("stats");
    let dropped = |r: DropReason| {
        stats
            .dropped
            .iter()
            .find(|(x, _)| *x == r)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(dropped(DropReason::Malformed), 2, "{stats:?}");
    assert_eq!(dropped(DropReason::Crossed), 1);
    assert_eq!(dropped(DropReason::NonPositive), 1);
    assert_eq!(dropped(DropReason::OutOfOrder), 1);
    assert_eq!(dropped(DropReason::UnknownSymbol), 1);
    assert_eq!(stats.accepted, 6);
    assert_eq!(
        stats.connects, 3,
        "close and serverShutdown each cause a reconnect"
    );
    let paths = paths.lock().expect("paths").clone();
    assert_eq!(paths.len(), 3);
    assert!(
        paths
            .iter()
            .all(|p| p == "/stream?streams=adausdt@bookTicker/btcusdt@bookTicker"),
        "{paths:?}"
    );
    assert_eq!(
        pongs.lock().expect("pongs").clone(),
        vec![b"are-you-there".to_vec()]
    );
}

#[actix_rt::test]
async fn rollover_opens_the_new_connection_before_closing_the_old() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let u = Arc::new(AtomicU64::new(1));
    // (connection number, event) in order: "open" / "closed".
    let log = Arc::new(Mutex::new(Vec::<(usize, &'static str)>::new()));
    let (server_log, server_u) = (log.clone(), u.clone());
    actix_rt::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            n += 1;
            let (log, u) = (server_log.clone(), server_u.clone());
            actix_rt::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                log.lock().expect("log").push((n, "open"));
                loop {
                    let next = u.fetch_add(1, Ordering::SeqCst);
                    let frame = ticker("ADAUSDT", next, "0.4500", "0.4501");
                    if ws.send(Message::text(frame)).await.is_err() {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_millis(20), ws.next()).await {
                        Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
                        _ => {}
                    }
                }
                log.lock().expect("log").push((n, "closed"));
            });
        }
    });
    let (reg, mut rx) = probe_registry();
    let live = LiveConfig {
        url: format!("ws://{addr}"),
        stream: StreamKind::Combined,
        reconnect_initial_ms: 10,
        reconnect_max_ms: 100,
        rollover_after_ms: 300,
    };
    let feed = Supervisor::start(move |_| {
        BinanceFeed::new(
            reg,
            FeedSpec::Live(live),
            vec![BinanceSymbol("ADAUSDT".into())],
            50,
            permissive(),
        )
    });
    // Collect ticks across at least two rollovers.
    let mut last = 0;
    let mut seen = 0;
    while feed.send(GetFeedStats).await.expect("stats").connects < 3 {
        let (_, u, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("tick")
            .expect("open");
        assert!(u > last, "ticks went back: {u} after {last}");
        last = u;
        seen += 1;
    }
    let stats = feed.send(GetFeedStats).await.expect("stats");
    assert!(seen > 10, "ticks flowed through the rollovers: {seen}");
    assert_eq!(
        stats.dropped.iter().map(|(_, n)| n).sum::<u64>(),
        0,
        "the old connection's frames are not counted as drops"
    );
    let log = log.lock().expect("log").clone();
    let opened2 = log
        .iter()
        .position(|e| *e == (2, "open"))
        .expect("second connection");
    let closed1 = log
        .iter()
        .position(|e| *e == (1, "closed"))
        .expect("first connection closed");
    assert!(opened2 < closed1, "make-before-break: {log:?}");
}
