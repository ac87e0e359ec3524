//! The wire mock exchange on its own thread (its own actix system), for tests that run the bot
//! in process or as a binary against it over 127.0.0.1, and read the venue's side directly.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mm_actors::binance_feed::source::Synthetic;
use mm_actors::config::{Config, DeltaDeFiEnvironment, FeedSource, VenueKind};
use mm_actors::mock_exchange::faults::Fault;
use mm_actors::mock_exchange::wire::{WireState, serve, walk_reference};
use mm_actors::venue::VenueOrder;

/// The API key and passcode the mock hands out (and the bot must use).
pub const KEY: &str = "chaos-api-key";
pub const PASSCODE: &str = "chaos-passcode";

/// A running wire mock.
pub struct WireMock {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<WireState>>,
}

impl WireMock {
    /// Serves the mock for `cfg`'s markets; with `walk`, the reference follows the config's
    /// synthetic walk (else the test drives it).
    pub fn start(cfg: &Config, walk: bool) -> WireMock {
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                let wire = deltadefi_mm::app::wire_mock_config(&cfg, KEY.into(), PASSCODE.into());
                let (addr, state, server) =
                    serve(wire, "127.0.0.1:0".parse().expect("addr")).expect("bind");
                if walk {
                    let m = &cfg.markets[0];
                    let walker = Synthetic::new(&cfg.feed.synthetic, m.reference.clone(), 0);
                    actix_rt::spawn(walk_reference(
                        state.clone(),
                        m.market.clone(),
                        walker,
                        m.reference.clone(),
                    ));
                }
                tx.send((addr, state)).expect("mock address out");
                let _ = server.await;
            });
        });
        let (addr, state) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the wire mock came up");
        WireMock { addr, state }
    }

    /// Waits (without blocking the thread) until at least `n` orders rest at the venue.
    pub async fn wait_resting(&self, n: usize) {
        super::wait_until(
            &format!("{n} orders resting at the venue"),
            Duration::from_secs(30),
            || {
                let open = self.open_orders();
                async move { open >= n }
            },
        )
        .await;
    }

    /// Orders resting at the venue.
    pub fn open_orders(&self) -> usize {
        self.state.lock().expect("state").open_order_count()
    }

    /// Every order the venue has seen.
    pub fn all_orders(&self) -> Vec<VenueOrder> {
        self.state.lock().expect("state").all_orders()
    }

    /// Order actions received: (arrival ms, kind).
    pub fn arrivals(&self) -> Vec<(i64, &'static str)> {
        self.state.lock().expect("state").arrivals().to_vec()
    }

    /// The most order actions received within one second.
    pub fn max_per_second(&self) -> usize {
        self.state.lock().expect("state").max_actions_per_second()
    }

    /// bookTicker frames the mock has published (the market's clock).
    pub fn tickers(&self) -> u64 {
        self.state.lock().expect("state").tickers()
    }

    /// Waits (blocking the thread) until the reference has moved `n` more times: for tests
    /// whose bot is another process. In-process bots need [`super::wait_until`] instead.
    pub fn wait_ticks(&self, n: u64) {
        let start = self.state.lock().expect("state").tickers();
        super::proc::wait_for(
            &format!("{n} reference moves"),
            Duration::from_secs(60),
            || self.state.lock().expect("state").tickers() >= start + n,
        );
    }

    /// Breaks the next request to `fault.path`.
    pub fn fault(&self, fault: serde_json::Value) {
        let f: Fault = serde_json::from_value(fault).expect("a fault");
        self.state.lock().expect("state").add_fault(f);
    }
}

/// `cfg` turned into a bot trading the mock at `addr` over the wire (REST, account stream, and
/// the mock's bookTicker as the live Binance feed).
pub fn over_the_wire(mut cfg: Config, addr: SocketAddr) -> Config {
    cfg.gateway.venue = VenueKind::Deltadefi;
    cfg.gateway.deltadefi.environment = DeltaDeFiEnvironment::Custom;
    cfg.gateway.deltadefi.rest_url = format!("http://{addr}");
    cfg.gateway.deltadefi.ws_url = format!("ws://{addr}");
    cfg.gateway.deltadefi.reconnect_initial_ms = 50;
    cfg.feed.source = FeedSource::Live;
    cfg.feed.live.url = format!("ws://{addr}");
    cfg.feed.live.reconnect_initial_ms = 50;
    cfg
}

/// The shipped `config/staging-wire.yaml` pointed at `addr`, written under `dir`, with `edit`
/// applied to its text (for the binary).
pub fn wire_yaml(
    dir: &Path,
    addr: SocketAddr,
    edit: impl Fn(String) -> String,
) -> std::path::PathBuf {
    let yaml = std::fs::read_to_string(super::repo_path("config/staging-wire.yaml"))
        .expect("read staging-wire.yaml")
        .replace("127.0.0.1:8080", &addr.to_string());
    let path = dir.join("wire.yaml");
    std::fs::write(&path, edit(yaml)).expect("write config");
    path
}

/// What the reference driver publishes on each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reference {
    /// The market itself: the venue follows it (fills) and the feed shows it.
    Market,
    /// The feed shows the market's prices times this factor; the venue does not move.
    Lie(rust_decimal::Decimal),
}

/// Drives a market's reference every 20 ms around 0.4500 (a slow zig-zag: one tick every
/// 500 ms, within ±3 ticks), until dropped.
pub struct Driver {
    mode: Arc<Mutex<Reference>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Driver {
    /// Starts driving `market` of `mock`.
    pub fn start(mock: &WireMock, market: mm_actors::types::MarketId) -> Driver {
        let mode = Arc::new(Mutex::new(Reference::Market));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (state, m, s) = (mock.state.clone(), mode.clone(), stop.clone());
        std::thread::spawn(move || {
            let tick = rust_decimal::Decimal::new(1, 4);
            let mut i: i64 = 0;
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                // 0.4497 .. 0.4503 and back, one tick per 25 steps.
                let phase = (i / 25).rem_euclid(12);
                let offset = if phase < 6 { phase - 3 } else { 9 - phase };
                let bid = rust_decimal::Decimal::new(4500, 4)
                    + tick * rust_decimal::Decimal::from(offset);
                let ask = bid + tick;
                let how = *m.lock().expect("mode");
                if let Ok(mut st) = state.lock() {
                    match how {
                        Reference::Market => {
                            st.move_reference(&market, bid, ask);
                        }
                        Reference::Lie(f) => st.publish_ticker(&market, bid * f, ask * f),
                    }
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Driver { mode, stop }
    }

    /// Switches what the feed shows.
    pub fn set(&self, how: Reference) {
        *self.mode.lock().expect("mode") = how;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
