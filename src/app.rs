//! The supervision tree: which actors start, with what, and how they are wired.
//!
//! Every actor runs under [`supervision::start`] (panics become restarts, with backoff). The
//! hot path (BinanceFeed → QuoteEngine → OrderManager ⇄ RiskGuard) shares the current arbiter;
//! the venue side (RateLimiter, OutboxWorker, DeltaDeFiGateway, AccountFeed, MockExchange or
//! the DeltaDeFi transports) runs on a second arbiter, so that dispatching, the budget and
//! venue I/O never delay a tick; SQLite runs on its own thread behind [`Store`]. The hot
//! arbiter's sends to those threads wait until its runnable work is done
//! ([`mm_actors::after_turn`]); peers on the venue side are bound with `bind_elsewhere`. The
//! venue side's actors are held until every peer is bound ([`StartGate`]). In staging,
//! MockExchange is the venue behind the gateway's and the account feed's messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use mm_actors::account_feed::AccountFeed;
use mm_actors::binance_feed::source::ReplayReader;
use mm_actors::binance_feed::{BinanceFeed, FeedSpec};
use mm_actors::config::{Config, FeedSource, VenueKind};
use mm_actors::deltadefi::rest::{DeltaDeFiRest, RestConfig};
use mm_actors::deltadefi::stream::{DeltaDeFiStream, StreamConfig};
use mm_actors::gateway::DeltaDeFiGateway;
use mm_actors::halt_gate::HaltGate;
use mm_actors::mock_exchange::MockExchange;
use mm_actors::mock_exchange::matching::MatchingParams;
use mm_actors::mock_exchange::wire::WireMockConfig;
use mm_actors::order_manager::{CancelEverything, GetOrderStats, OrderManager};
use mm_actors::outbox_worker::{GetOutboxStats, OutboxWorker};
use mm_actors::pricing_rules::MarketRules;
use mm_actors::quote_engine::QuoteEngine;
use mm_actors::rate_limiter::{RateLimiter, SendGate};
use mm_actors::registry::{Reg, Registry};
use mm_actors::risk_guard::{HaltForShutdown, RiskGuard};
use mm_actors::store::Store;
use mm_actors::supervision::{self, ActorHealth, Fatal, GetHealth, Monitor, StartGate};
use mm_actors::venue_book::VenueBooks;
use zeroize::Zeroizing;

/// Builds the feed spec of the config (loading a replay file).
///
/// # Errors
/// A replay file that cannot be read, naming it and the line.
pub fn feed_spec(cfg: &Config) -> anyhow::Result<FeedSpec> {
    Ok(match cfg.feed.source {
        FeedSource::Live => FeedSpec::Live(cfg.feed.live.clone()),
        FeedSource::Synthetic => FeedSpec::Synthetic {
            cfg: cfg.feed.synthetic.clone(),
            max_ticks: None,
        },
        FeedSource::Replay => {
            // One streaming pass checks every line now; the feed then reads it as it plays.
            ReplayReader::open(&cfg.feed.replay.path)?;
            FeedSpec::Replay {
                path: cfg.feed.replay.path.clone(),
                speed: cfg.feed.replay.speed,
                looped: cfg.feed.replay.r#loop,
            }
        }
    })
}

/// The wire mock exchange for `cfg`'s markets and mock settings.
pub fn wire_mock_config(cfg: &Config, api_key: String, passcode: String) -> WireMockConfig {
    WireMockConfig {
        api_key,
        passcode,
        markets: cfg.markets.iter().map(MarketRules::from).collect(),
        params: MatchingParams::from_config(&cfg.mock_exchange, cfg.mock_actions_per_second()),
        build_expiry_ms: 30_000,
        validate_at_build: cfg.mock_exchange.validate_at_build,
        depth_interval_ms: cfg.mock_exchange.depth_interval_ms,
        references: cfg
            .markets
            .iter()
            .map(|mk| (mk.market.clone(), mk.reference.to_string()))
            .collect(),
    }
}

/// Addresses of every running actor.
#[derive(Clone)]
pub struct Pipeline {
    /// Every supervisor reports here; a fatal condition halts the service.
    pub monitor: Arc<Monitor>,
    /// What a shutdown still waits for (read by the hard shutdown deadline).
    pub progress: Arc<std::sync::Mutex<String>>,
    /// The venue-side arbiter; [`Pipeline::stop`] ends it.
    pub venue_arbiter: ArbiterHandle,
    pub reg: Reg,
    pub store: Store,
    pub feed: Addr<BinanceFeed>,
    pub quotes: Addr<QuoteEngine>,
    pub orders: Addr<OrderManager>,
    pub risk: Addr<RiskGuard>,
    pub limiter: Addr<RateLimiter>,
    pub outbox: Addr<OutboxWorker>,
    pub gateway: Addr<DeltaDeFiGateway>,
    pub account: Addr<AccountFeed>,
    pub mock: Option<Addr<MockExchange>>,
    pub rest: Option<Addr<DeltaDeFiRest>>,
    pub stream: Option<Addr<DeltaDeFiStream>>,
    /// One depth stream per market (DeltaDeFi only; the mock in process writes the books).
    pub depth_streams: Vec<Addr<DeltaDeFiStream>>,
}

/// How the service reaches its venue: the in-process mock, or DeltaDeFi with the secrets
/// read from the environment (never from the config file).
pub enum VenueAccess {
    InProcess,
    DeltaDeFi {
        api_key: Zeroizing<String>,
        passcode: Zeroizing<String>,
    },
}

impl std::fmt::Debug for VenueAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VenueAccess::InProcess => f.write_str("InProcess"),
            VenueAccess::DeltaDeFi { .. } => f.write_str("DeltaDeFi(<secrets redacted>)"),
        }
    }
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("environment variable {0} is required by gateway.venue: deltadefi")]
    MissingSecret(&'static str),
    #[error("cannot adopt the venue's market rules: {0}")]
    MarketRules(String),
    #[error(transparent)]
    Pinning(#[from] crate::affinity::PinError),
}

/// Environment variable holding the DeltaDeFi API key.
pub const ENV_API_KEY: &str = "DELTADEFI_API_KEY";
/// Environment variable holding the DeltaDeFi trading passcode.
pub const ENV_PASSCODE: &str = "DELTADEFI_TRADING_PASSCODE";

impl VenueAccess {
    /// What `cfg` needs: the in-process mock, or DeltaDeFi secrets from `env`.
    ///
    /// # Errors
    /// [`StartError::MissingSecret`] naming the variable that is unset or empty.
    pub fn for_config(
        cfg: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<VenueAccess, StartError> {
        match cfg.gateway.venue {
            VenueKind::Mock => Ok(VenueAccess::InProcess),
            VenueKind::Deltadefi => {
                let get = |k: &'static str| {
                    env(k)
                        .filter(|v| !v.is_empty())
                        .map(Zeroizing::new)
                        .ok_or(StartError::MissingSecret(k))
                };
                Ok(VenueAccess::DeltaDeFi {
                    api_key: get(ENV_API_KEY)?,
                    passcode: get(ENV_PASSCODE)?,
                })
            }
        }
    }
}

/// Fills the precision and minimums each market's config leaves unset, and returns one line
/// per adopted value (printed at start). DeltaDeFi: `price_max_dp` and `base_token.max_qty_dp`
/// from `/app/market-config`, read once now (only when something is unset); the minimums
/// from the documented rule (the market config has no field for them). The in-process mock:
/// its defaults. The adopted config is validated again.
///
/// # Errors
/// [`StartError::MarketRules`]: the venue could not be read, does not list a market, or gave
/// values the config's rules refuse (named).
pub async fn adopt_venue_rules(
    cfg: &mut Config,
    access: &VenueAccess,
) -> Result<Vec<String>, StartError> {
    let unset = |m: &mm_actors::config::MarketConfig| {
        m.price_decimals.is_none()
            || m.size_decimals.is_none()
            || m.min_order_size.is_none()
            || m.min_order_notional.is_none()
    };
    if !cfg.markets.iter().any(unset) {
        return Ok(Vec::new());
    }
    let mut adopted = Vec::new();
    match access {
        VenueAccess::InProcess => {
            for m in &mut cfg.markets {
                adopted.extend(m.adopt(
                    mm_actors::config::DEFAULT_PRICE_DECIMALS,
                    mm_actors::config::DEFAULT_SIZE_DECIMALS,
                    "the in-process mock's market config",
                ));
            }
        }
        VenueAccess::DeltaDeFi { api_key, .. } => {
            let (base, _) = cfg.gateway.deltadefi.urls();
            let timeout = Duration::from_millis(cfg.gateway.request_timeout_ms);
            let mc =
                mm_actors::deltadefi::rest::fetch_market_config(&base, api_key.clone(), timeout)
                    .await
                    .map_err(|e| StartError::MarketRules(format!("GET /app/market-config: {e}")))?;
            for m in cfg.markets.iter_mut().filter(|m| unset(m)) {
                let pair = mc
                    .trading_pairs
                    .iter()
                    .find(|p| p.symbol == m.market.as_str())
                    .ok_or_else(|| {
                        StartError::MarketRules(format!(
                            "market {} is not listed by /app/market-config",
                            m.market
                        ))
                    })?;
                adopted.extend(m.adopt(
                    pair.price_max_dp,
                    pair.base_token.max_qty_dp,
                    "/app/market-config",
                ));
            }
        }
    }
    let violations = cfg.validate();
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(StartError::MarketRules(format!(
            "with the adopted values, {}",
            list.join("; ")
        )));
    }
    Ok(adopted)
}

/// A unique id for this process's client order ids (base-36 start time in ms).
pub fn run_id() -> String {
    let mut n = u64::try_from(mm_actors::types::now_ms()).unwrap_or(0);
    let mut s = Vec::new();
    while n > 0 {
        let d = (n % 36) as u8;
        s.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

impl Pipeline {
    /// Starts every actor on the current arbiter and binds their peers. Must run inside a
    /// `System`.
    pub fn start(
        cfg: &Config,
        store: Store,
        feed: FeedSpec,
        access: VenueAccess,
    ) -> Result<Pipeline, StartError> {
        if let (VenueKind::Deltadefi, VenueAccess::InProcess) = (cfg.gateway.venue, &access) {
            return Err(StartError::MissingSecret(ENV_API_KEY));
        }
        // This arbiter's sends to other threads (store writes, the venue side) wait until its
        // runnable work is done: a tick's chain does not pay for waking them.
        mm_actors::after_turn::start();
        let markets = cfg.markets.clone();
        let market_ids: Vec<_> = markets.iter().map(|m| m.market.clone()).collect();
        // Closed for every market until RiskGuard has loaded and decided; closed at once by a
        // failing store or a fatal condition.
        let gate = HaltGate::new(market_ids.iter().cloned(), store.failing_flag());
        let books = Arc::new(VenueBooks::new(
            market_ids.iter().cloned(),
            cfg.venue_book.max_age_ms,
        ));
        let reg: Reg = Arc::new(Registry::new(gate.clone(), books));
        let monitor = Monitor::new();
        {
            let (gate, reg) = (gate.clone(), reg.clone());
            monitor.on_fatal(move |_| {
                gate.close_fatal();
                reg.cancel_everything.do_send(CancelEverything {
                    reason: "fatal".into(),
                });
            });
        }
        let symbols = cfg.reference_symbols();
        let run = run_id();

        let venue_arbiter = Arbiter::new().handle();
        // The venue side's actors start once every peer below is bound: see `StartGate`.
        let start_gate = StartGate::new();
        // The one budget every counted request passes, seeded from SQLite. It lives on the
        // venue side, with the outbox and the transports that ask it, off the tick path.
        let (rl_cfg, s, g, b) = (
            cfg.rate_limit.clone(),
            store.clone(),
            gate.clone(),
            reg.books.clone(),
        );
        // Only a venue outside the process has a watchdog whose sends the budget must read.
        let in_process = matches!(access, VenueAccess::InProcess);
        let limiter = supervision::start_in_arbiter(
            &venue_arbiter,
            "rate_limiter",
            &monitor,
            &start_gate,
            move |_| {
                let limiter = RateLimiter::new(&rl_cfg, s, g.clone(), b.clone());
                if in_process {
                    limiter.venue_in_process()
                } else {
                    limiter
                }
            },
        );
        reg.sends.bind_elsewhere(limiter.clone().recipient());
        let send_wait = Duration::from_millis(cfg.rate_limit.max_send_wait_ms);
        let send_gate = SendGate::new(
            limiter.clone().recipient(),
            gate.clone(),
            reg.books.clone(),
            send_wait,
        );

        let (mut mock, mut rest, mut stream_cfg_later) = (None, None, None);
        match access {
            VenueAccess::InProcess => {
                let r = reg.clone();
                let (mock_cfg, mock_markets, mock_aps, sg) = (
                    cfg.mock_exchange.clone(),
                    markets.clone(),
                    cfg.mock_actions_per_second(),
                    send_gate.clone(),
                );
                let m = supervision::start_in_arbiter(
                    &venue_arbiter,
                    "mock_exchange",
                    &monitor,
                    &start_gate,
                    move |_| MockExchange::new(r, &mock_cfg, &mock_markets, mock_aps, sg),
                );
                reg.ticks_to_venue.bind_elsewhere(m.clone().recipient());
                reg.venue.bind_elsewhere(m.clone().recipient());
                mock = Some(m);
            }
            VenueAccess::DeltaDeFi { api_key, passcode } => {
                let (rest_url, ws_url) = cfg.gateway.deltadefi.urls();
                let rest_cfg = RestConfig {
                    base_url: rest_url,
                    api_key: api_key.clone(),
                    passcode,
                    timeout: Duration::from_millis(cfg.gateway.request_timeout_ms),
                    markets: markets.iter().map(MarketRules::from).collect(),
                    gate: send_gate.clone(),
                };
                // awc is not Send: the client is created on the venue arbiter, in the closure.
                let r = supervision::start_in_arbiter(
                    &venue_arbiter,
                    "deltadefi_rest",
                    &monitor,
                    &start_gate,
                    move |_| DeltaDeFiRest::new(rest_cfg),
                );
                reg.venue.bind_elsewhere(r.clone().recipient());
                rest = Some(r);
                let dd = &cfg.gateway.deltadefi;
                let stream_cfg = StreamConfig {
                    ws_url,
                    api_key,
                    ping_every: Duration::from_millis(dd.ping_interval_ms),
                    text_ping_every: (dd.text_ping_interval_ms > 0)
                        .then(|| Duration::from_millis(dd.text_ping_interval_ms)),
                    reconnect_initial_ms: dd.reconnect_initial_ms,
                    reconnect_max_ms: dd.reconnect_max_ms,
                };
                stream_cfg_later = Some(stream_cfg);
            }
        }
        let (r, s, risk_cfg, m, stale) = (
            reg.clone(),
            store.clone(),
            cfg.risk.clone(),
            markets.clone(),
            cfg.feed.stale_after_ms,
        );
        let risk = supervision::start("risk_guard", &monitor, move |_| {
            RiskGuard::new(r, s, risk_cfg, &m, stale)
        });
        let (r, gw_cfg) = (reg.clone(), cfg.gateway.clone());
        let gateway = supervision::start_in_arbiter(
            &venue_arbiter,
            "gateway",
            &monitor,
            &start_gate,
            move |_| DeltaDeFiGateway::new(r, &gw_cfg, send_wait),
        );
        let (r, s, ob_cfg) = (reg.clone(), store.clone(), cfg.outbox.clone());
        let outbox = supervision::start_in_arbiter(
            &venue_arbiter,
            "outbox_worker",
            &monitor,
            &start_gate,
            move |_| OutboxWorker::new(r, s, ob_cfg),
        );
        let (r, s, m, prefix) = (
            reg.clone(),
            store.clone(),
            markets.clone(),
            cfg.run.client_id_prefix.clone(),
        );
        let orders = supervision::start("order_manager", &monitor, move |_| {
            OrderManager::new(r, s, &m, &prefix, &run)
        });
        let (r, s, ids) = (reg.clone(), store.clone(), market_ids);
        let reconcile = Duration::from_millis(cfg.gateway.reconcile_interval_ms);
        let account = supervision::start_in_arbiter(
            &venue_arbiter,
            "account_feed",
            &monitor,
            &start_gate,
            move |_| AccountFeed::new(r, s, ids, reconcile),
        );
        let (r, s, m, max_pos) = (reg.clone(), store.clone(), markets, cfg.risk.max_position);
        let quotes = supervision::start("quote_engine", &monitor, move |_| {
            QuoteEngine::new(r, s, &m, max_pos)
        });
        let (r, health_ms, guard, batch) = (
            reg.clone(),
            cfg.feed.health_interval_ms,
            cfg.feed.reference_guard.clone(),
            cfg.feed.max_speed_batch,
        );
        // Only the in-process mock is handed the reference (`ticks_to_venue`).
        let follow_batch = Duration::from_micros(cfg.mock_exchange.follow_batch_us);
        let store_queue = store.queue();
        let feed = supervision::start("binance_feed", &monitor, move |_| {
            BinanceFeed::new(r, feed, symbols, health_ms, guard)
                .follow_batch(follow_batch)
                .max_speed_batch(batch)
                .waits_for_store(store_queue.clone(), mm_actors::store::MAX_SPEED_QUEUE)
        });

        // Actors on this arbiter start after this synchronous block, the venue arbiter's
        // once `start_gate` opens below: none of them acts before every peer is bound (a
        // message to a peer not bound is dropped; OutboxWorker's first act sends outcomes).
        reg.ticks_to_quotes.bind(quotes.clone().recipient());

        reg.feed_health.bind(risk.clone().recipient());
        reg.quote_targets.bind(orders.clone().recipient());
        reg.requote.bind(quotes.clone().recipient());
        reg.inventory.bind(quotes.clone().recipient());
        reg.risk_check.bind(risk.clone().recipient());
        reg.state_to_quotes.bind(quotes.clone().recipient());
        reg.state_to_orders.bind(orders.clone().recipient());
        reg.balances.bind(risk.clone().recipient());
        reg.fills_to_risk.bind(risk.clone().recipient());
        reg.fills_to_orders.bind(orders.clone().recipient());
        reg.intents_durable
            .bind_elsewhere(outbox.clone().recipient());
        reg.resolve_intent
            .bind_elsewhere(outbox.clone().recipient());
        reg.permits.bind_elsewhere(limiter.clone().recipient());
        reg.dispatch.bind_elsewhere(gateway.clone().recipient());
        reg.dispatch_outcome
            .bind_elsewhere(outbox.clone().recipient());
        reg.intent_outcome.bind(orders.clone().recipient());
        reg.order_updates.bind(orders.clone().recipient());
        reg.venue_snapshot.bind(orders.clone().recipient());
        reg.order_resolved.bind(orders.clone().recipient());
        reg.cancel_everything.bind(orders.clone().recipient());
        reg.resolve_orders
            .bind_elsewhere(account.clone().recipient());
        reg.resync.bind_elsewhere(account.clone().recipient());
        reg.list_open_orders
            .bind_elsewhere(account.clone().recipient());
        reg.storage_recovered[0].bind(orders.clone().recipient());
        reg.storage_recovered[1].bind_elsewhere(outbox.clone().recipient());

        reg.venue_events.bind_elsewhere(account.clone().recipient());
        // The streams are started after the binds, as they always were; the gate holds them
        // like every venue-side actor.
        let mut depth_streams = Vec::new();
        let stream = stream_cfg_later.map(|stream_cfg| {
            for m in &cfg.markets {
                let (rg, sc, market) = (reg.clone(), stream_cfg.clone(), m.market.clone());
                depth_streams.push(supervision::start_in_arbiter(
                    &venue_arbiter,
                    "depth_stream",
                    &monitor,
                    &start_gate,
                    move |_| DeltaDeFiStream::depth(rg, sc, market),
                ));
            }
            let rg = reg.clone();
            supervision::start_in_arbiter(
                &venue_arbiter,
                "account_stream",
                &monitor,
                &start_gate,
                move |_| DeltaDeFiStream::account(rg, stream_cfg),
            )
        });

        // Every thread of the pipeline exists: the hot arbiter takes its own CPU (`run.hot_cpu`)
        // before anything on the venue side starts, so that a failure leaves nothing running.
        if let Some(p) = crate::affinity::installed() {
            crate::affinity::take_hot(p)?;
            tracing::info!(hot_cpu = p.hot, others = ?p.others, "hot arbiter pinned");
        }
        start_gate.open();
        let pipeline = Pipeline {
            monitor,
            progress: Arc::new(std::sync::Mutex::new("running".into())),
            venue_arbiter,
            reg,
            store,
            feed,
            quotes,
            orders,
            risk,
            limiter,
            outbox,
            gateway,
            account,
            mock,
            rest,
            stream,
            depth_streams,
        };
        pipeline.watch_liveness();
        Ok(pipeline)
    }

    /// Start and restart counts of every actor, by name (default counts for an actor that
    /// did not answer).
    pub async fn health(&self) -> Vec<(&'static str, ActorHealth)> {
        self.probe(None)
            .await
            .into_iter()
            .map(|(n, h)| (n, h.unwrap_or_default()))
            .collect()
    }

    /// Asks every actor for its health, each bounded by `timeout` when given.
    async fn probe(
        &self,
        timeout: Option<Duration>,
    ) -> Vec<(&'static str, Result<ActorHealth, MailboxError>)> {
        let mut out = Vec::new();
        macro_rules! h {
            ($name:literal, $addr:expr) => {
                let req = $addr.send(GetHealth);
                let r = match timeout {
                    Some(t) => req.timeout(t).await,
                    None => req.await,
                };
                out.push(($name, r));
            };
        }
        h!("binance_feed", self.feed);
        h!("quote_engine", self.quotes);
        h!("order_manager", self.orders);
        h!("risk_guard", self.risk);
        h!("rate_limiter", self.limiter);
        h!("outbox_worker", self.outbox);
        h!("gateway", self.gateway);
        h!("account_feed", self.account);
        if let Some(m) = &self.mock {
            h!("mock_exchange", m);
        }
        if let Some(r) = &self.rest {
            h!("deltadefi_rest", r);
        }
        if let Some(s) = &self.stream {
            h!("account_stream", s);
        }
        for s in &self.depth_streams {
            h!("depth_stream", s);
        }
        out
    }

    /// Checks every second that every actor's mailbox is open; an actor found dead (its task
    /// gone, e.g. with its arbiter) is reported to the monitor, which halts the service. A
    /// slow answer is not death: actors restarting with backoff answer late.
    fn watch_liveness(&self) {
        let p = self.clone();
        actix_rt::spawn(async move {
            let mut every = actix_rt::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                for (actor, r) in p.probe(Some(Duration::from_secs(1))).await {
                    if let Err(MailboxError::Closed) = r {
                        p.monitor.report_fatal(Fatal {
                            actor,
                            reason: "its mailbox is closed: the actor is dead".into(),
                        });
                        return;
                    }
                }
            }
        });
    }

    /// Stops the venue-side arbiter (and the actors on it) without any clean-up: the end of
    /// the process, or a crash in tests. Call [`Pipeline::shutdown`] first for a clean stop.
    pub fn stop(&self) {
        self.venue_arbiter.stop();
    }

    /// Halts trading, flattens every market at the venue and waits until each market's
    /// flatten is confirmed (the venue lists no open order of ours), no order is live, the
    /// outbox is empty and every write is committed, or `timeout` passes. Returns true when all
    /// of that holds. What is still left is kept in [`Pipeline::progress`] as it goes.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.risk.do_send(HaltForShutdown);
        self.orders.do_send(CancelEverything {
            reason: "shutdown".into(),
        });
        let ask = Duration::from_millis(500);
        let t0 = Instant::now();
        loop {
            let orders = self.orders.send(GetOrderStats).timeout(ask).await.ok();
            let live: Option<usize> = orders
                .as_ref()
                .map(|s| s.markets.iter().map(|m| m.live).sum());
            let not_flat: Vec<String> = match &orders {
                Some(s) => s
                    .markets
                    .iter()
                    .filter(|m| !m.flat)
                    .map(|m| m.market.to_string())
                    .collect(),
                None => vec!["(order manager not answering)".into()],
            };
            let open = self
                .outbox
                .send(GetOutboxStats)
                .timeout(ask)
                .await
                .ok()
                .map(|s| s.open);
            let left = format!(
                "live orders {}, outbox rows open {}, markets not confirmed flat at the venue: {}",
                live.map_or("unknown".into(), |n| n.to_string()),
                open.map_or("unknown".into(), |n| n.to_string()),
                if not_flat.is_empty() {
                    "none".into()
                } else {
                    not_flat.join(",")
                }
            );
            self.set_progress(&left);
            if live == Some(0) && open == Some(0) && not_flat.is_empty() {
                // The actors are settled; make sure their last writes are on disk too.
                self.set_progress("final store flush");
                if let Err(e) = self.store.flush().await {
                    tracing::error!(cause = %e, "final store flush failed");
                    self.set_progress(&format!("store not flushed: {e}"));
                    return false;
                }
                self.set_progress("done");
                return true;
            }
            if t0.elapsed() >= timeout {
                tracing::warn!(left = %left, "shutdown drain timed out");
                return false;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn set_progress(&self, what: &str) {
        if let Ok(mut p) = self.progress.lock() {
            what.clone_into(&mut p);
        }
    }
}
