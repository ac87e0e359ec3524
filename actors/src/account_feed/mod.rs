//! AccountFeed is an actor. It owns our view of the venue's account stream: it turns order
//! updates, fills and balances into the service's messages, stores each fill once (unique
//! trade id) before anyone acts on it, and after every (re)start resynchronises over the
//! venue's request path (open orders and balances of every market), since a stream replays
//! nothing. It also looks orders up for OrderManager (unknown outcomes, vanished orders) and
//! lists a market's open orders on request (a flatten's confirmation).
//!
//! Venue reads are never stormed: one resync at a time (a resync asked for while one runs is
//! done once after it), one listing per market at a time, and failed reads retried after a
//! delay.
//!
//! In staging the stream is MockExchange's event output and the request path its
//! `VenueRequest` handler.

use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, info, warn};

use crate::messages::{BalancesUpdated, FillApplied, OrderResolved, OrderUpdate, VenueSnapshot};
pub use crate::messages::{ListOpenOrders, ResolveOrders, Resync};
use crate::registry::Reg;
use crate::store::{Store, Write, rows};
use crate::supervision::ActorHealth;
use crate::types::{ClientOrderId, MarketId, TradeId, VenueOrderId, now_ms};
use crate::venue::{Balance, VenueEvent, VenueFill, VenueReply, VenueRequest};

/// Asks for account-feed figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "AccountStats")]
pub struct GetAccountStats;

/// Account-feed figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct AccountStats {
    pub order_updates: u64,
    pub fills_new: u64,
    pub fills_duplicate: u64,
    pub resyncs: u64,
    /// Balances read over REST but dropped: the stream gave a balance list while the read was
    /// under way, and that list is the newer one.
    pub balances_superseded: u64,
}

/// The account stream reader.
pub struct AccountFeed {
    reg: Reg,
    store: Store,
    markets: Vec<MarketId>,
    /// Period of the open-orders reconciliation with the venue.
    reconcile_every: Duration,
    stats: AccountStats,
    /// Open-orders listings under way, by market; `true` when another was asked for meanwhile.
    listing: std::collections::HashMap<MarketId, bool>,
    /// A resync's requests under way, and whether another was asked for meanwhile.
    resync_in_flight: usize,
    resync_again: bool,
    /// Balance lists the stream has given; a REST read of balances that saw this change while
    /// it was under way is older than the stream's list and dropped.
    stream_balances: u64,
    health: ActorHealth,
}

/// Delay before asking again about an order the venue could not answer for.
const RETRY_QUERY: Duration = Duration::from_secs(1);

impl AccountFeed {
    /// A feed for `markets`, reconciling open orders every `reconcile_every`.
    pub fn new(reg: Reg, store: Store, markets: Vec<MarketId>, reconcile_every: Duration) -> Self {
        Self {
            reg,
            store,
            markets,
            reconcile_every,
            stats: AccountStats::default(),
            listing: std::collections::HashMap::new(),
            resync_in_flight: 0,
            resync_again: false,
            stream_balances: 0,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        self.listing.clear();
        self.resync_in_flight = 0;
        self.resync_again = false;
    }

    /// Lists `market`'s open orders once; a request while one is under way is served by one
    /// more listing after it.
    fn list(&mut self, market: MarketId, ctx: &mut Context<Self>) {
        if let Some(again) = self.listing.get_mut(&market) {
            *again = true;
            return;
        }
        let Some(venue) = self.reg.venue.get().cloned() else {
            return;
        };
        self.listing.insert(market.clone(), false);
        ctx.spawn(
            venue
                .send(VenueRequest::OpenOrders {
                    market: market.clone(),
                })
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let again = act.listing.remove(&market).unwrap_or(false);
                    match res {
                        Ok(Ok(VenueReply::OpenOrders(open_orders))) => {
                            act.reg.venue_snapshot.do_send(VenueSnapshot {
                                market: market.clone(),
                                open_orders,
                            });
                            if again {
                                act.list(market, ctx);
                            }
                        }
                        other => {
                            warn!(market = %market, ?other, "open-orders listing failed, retrying");
                            ctx.run_later(RETRY_QUERY, move |act, ctx| act.list(market, ctx));
                        }
                    }
                }),
        );
    }

    fn store_balances(&self, balances: &[Balance]) {
        let ts_ms = now_ms();
        let writes = balances
            .iter()
            .map(|b| Write::Balance {
                balance: b.clone(),
                ts_ms,
            })
            .collect();
        self.store.write(writes, None);
        self.reg
            .balances
            .do_send(BalancesUpdated(balances.to_vec()));
    }

    /// Stores a fill once (unique trade id) and only then hands it to OrderManager and
    /// RiskGuard; a fill seen again (stream and lookup, or after a reconnect) is dropped.
    fn ingest_fill(&mut self, f: VenueFill, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let fill = f.clone();
        ctx.spawn(
            async move { store.read(move |c| rows::insert_fill(c, &fill)).await }
                .into_actor(self)
                .map(move |res, act, _| match res {
                    Ok(Some(fill_row_id)) => {
                        act.stats.fills_new += 1;
                        let applied = FillApplied {
                            fill: f,
                            fill_row_id,
                        };
                        act.reg.fills_to_risk.do_send(applied.clone());
                        act.reg.fills_to_orders.do_send(applied);
                    }
                    Ok(None) => {
                        act.stats.fills_duplicate += 1;
                        debug!(trade_id = %f.trade_id, "duplicate fill ignored");
                    }
                    Err(e) => warn!(trade_id = %f.trade_id, cause = %e, "fill not stored"),
                }),
        );
    }

    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resync_in_flight > 0 {
            self.resync_again = true;
            return;
        }
        let Some(venue) = self.reg.venue.get().cloned() else {
            return;
        };
        self.stats.resyncs += 1;
        for market in self.markets.clone() {
            self.list(market, ctx);
        }
        self.resync_in_flight = 1 + self.markets.len();
        // The venue took its answer at some moment of the request; a balance list the stream
        // gave meanwhile may be newer, and RiskGuard's capital check must not go back to the
        // older one.
        let stream_before = self.stream_balances;
        ctx.spawn(
            venue
                .send(VenueRequest::Balances)
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if let Ok(Ok(VenueReply::Balances(b))) = res {
                        if act.stream_balances == stream_before {
                            act.store_balances(&b);
                        } else {
                            act.stats.balances_superseded += 1;
                            info!("balances read during the resync dropped: the stream gave newer ones meanwhile");
                        }
                    }
                    act.resync_part_done(ctx);
                }),
        );
        for market in self.markets.clone() {
            ctx.spawn(
                venue
                    .send(VenueRequest::RecentTrades { market })
                    .into_actor(self)
                    .map(|res, act, ctx| {
                        if let Ok(Ok(VenueReply::Trades(trades))) = res {
                            act.catch_up_trades(trades, ctx);
                        }
                        act.resync_part_done(ctx);
                    }),
            );
        }
    }

    fn resync_part_done(&mut self, ctx: &mut Context<Self>) {
        self.resync_in_flight = self.resync_in_flight.saturating_sub(1);
        if self.resync_in_flight == 0 && std::mem::take(&mut self.resync_again) {
            self.resync(ctx);
        }
    }

    /// Fetches the orders of trades we have not stored (made while the stream was down): their
    /// lookups carry the fills, which are then stored once like any other.
    fn catch_up_trades(&mut self, trades: Vec<(TradeId, VenueOrderId)>, ctx: &mut Context<Self>) {
        if trades.is_empty() {
            return;
        }
        let store = self.store.clone();
        let ids: Vec<String> = trades.iter().map(|(t, _)| t.to_string()).collect();
        ctx.spawn(
            async move { store.read(move |c| rows::known_trade_ids(c, &ids)).await }
                .into_actor(self)
                .map(move |known, act, ctx| {
                    let Ok(known) = known else { return };
                    let mut orders: Vec<VenueOrderId> = trades
                        .into_iter()
                        .filter(|(t, _)| !known.contains(t.as_str()))
                        .map(|(_, o)| o)
                        .collect();
                    orders.sort();
                    orders.dedup();
                    let Some(venue) = act.reg.venue.get().cloned() else {
                        return;
                    };
                    for id in orders {
                        info!(venue_order_id = %id, "fetching fills made while disconnected");
                        let req = VenueRequest::Query {
                            venue_order_id: Some(id.clone()),
                            client_order_id: ClientOrderId(id.0),
                        };
                        ctx.spawn(venue.send(req).into_actor(act).map(|res, act, ctx| {
                            if let Ok(Ok(VenueReply::Order { fills, .. })) = res {
                                for f in fills {
                                    act.ingest_fill(f, ctx);
                                }
                            }
                        }));
                    }
                }),
        );
    }
}

impl Actor for AccountFeed {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        info!("account feed started, resynchronising");
        self.resync(ctx);
        // Orders the venue lists but we do not know are cancelled; orders we think live but
        // the venue does not list are looked up (OrderManager decides, on VenueSnapshot).
        ctx.run_interval(self.reconcile_every, |act, ctx| act.resync(ctx));
    }
}

crate::supervised_actor!(AccountFeed, "account_feed");

impl Handler<VenueEvent> for AccountFeed {
    type Result = ();
    fn handle(&mut self, msg: VenueEvent, ctx: &mut Context<Self>) {
        match msg {
            VenueEvent::Order(o) => {
                self.stats.order_updates += 1;
                self.reg.order_updates.do_send(OrderUpdate(o));
            }
            VenueEvent::Fill(f) => self.ingest_fill(f, ctx),
            VenueEvent::Balances(b) => {
                self.stream_balances += 1;
                self.store_balances(&b);
            }
        }
    }
}

impl Handler<ResolveOrders> for AccountFeed {
    type Result = ();
    fn handle(&mut self, msg: ResolveOrders, ctx: &mut Context<Self>) {
        let Some(venue) = self.reg.venue.get().cloned() else {
            return;
        };
        for (client_order_id, venue_order_id) in msg.orders {
            let req = VenueRequest::Query {
                venue_order_id: venue_order_id.clone(),
                client_order_id: client_order_id.clone(),
            };
            ctx.spawn(venue.send(req).into_actor(self).map(move |res, act, ctx| match res {
                Ok(Ok(VenueReply::Order { order, fills })) => {
                    for f in fills {
                        act.ingest_fill(f, ctx);
                    }
                    act.reg.order_resolved.do_send(OrderResolved { client_order_id, venue_order: order });
                }
                other => {
                    warn!(client_order_id = %client_order_id, ?other, "order query failed, retrying");
                    let again = ResolveOrders { orders: vec![(client_order_id, venue_order_id)] };
                    ctx.run_later(RETRY_QUERY, move |_, ctx| ctx.notify(again));
                }
            }));
        }
    }
}

impl Handler<ListOpenOrders> for AccountFeed {
    type Result = ();
    fn handle(&mut self, msg: ListOpenOrders, ctx: &mut Context<Self>) {
        self.list(msg.market, ctx);
    }
}

impl Handler<Resync> for AccountFeed {
    type Result = ();
    fn handle(&mut self, _: Resync, ctx: &mut Context<Self>) {
        self.resync(ctx);
    }
}

impl Handler<GetAccountStats> for AccountFeed {
    type Result = AccountStats;
    fn handle(&mut self, _: GetAccountStats, _: &mut Context<Self>) -> AccountStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::halt_gate::HaltGate;
    use crate::messages::BalancesUpdated;
    use crate::venue::{VenueError, VenueFailure};
    use crate::venue_book::VenueBooks;
    use rust_decimal::Decimal;
    use std::sync::Arc;
    use tokio::sync::{mpsc, oneshot};

    /// A venue whose balance answer waits until the test releases it.
    struct HeldVenue {
        asked: mpsc::UnboundedSender<()>,
        release: Option<oneshot::Receiver<Vec<Balance>>>,
    }
    impl Actor for HeldVenue {
        type Context = Context<Self>;
    }
    impl Handler<VenueRequest> for HeldVenue {
        type Result = ResponseFuture<Result<VenueReply, VenueFailure>>;
        fn handle(&mut self, msg: VenueRequest, _: &mut Context<Self>) -> Self::Result {
            let reply = match msg {
                VenueRequest::Balances => {
                    let _ = self.asked.send(());
                    let release = self.release.take();
                    return Box::pin(async move {
                        match release {
                            Some(rx) => rx.await.map(VenueReply::Balances).map_err(|_| {
                                VenueFailure::Rejected(VenueError {
                                    code: 0,
                                    message: "test ended".into(),
                                })
                            }),
                            None => Ok(VenueReply::Balances(vec![])),
                        }
                    });
                }
                VenueRequest::OpenOrders { .. } => Ok(VenueReply::OpenOrders(vec![])),
                VenueRequest::RecentTrades { .. } => Ok(VenueReply::Trades(vec![])),
                _ => Err(VenueFailure::Rejected(VenueError {
                    code: 0,
                    message: "not in this test".into(),
                })),
            };
            Box::pin(async move { reply })
        }
    }

    /// RiskGuard's place: every balance list it is given.
    struct Balances(mpsc::UnboundedSender<Vec<Balance>>);
    impl Actor for Balances {
        type Context = Context<Self>;
    }
    impl Handler<BalancesUpdated> for Balances {
        type Result = ();
        fn handle(&mut self, msg: BalancesUpdated, _: &mut Context<Self>) {
            let _ = self.0.send(msg.0);
        }
    }

    fn usdm(free: i64) -> Vec<Balance> {
        vec![Balance {
            asset: "usdm".into(),
            free: Decimal::from(free),
            locked: Decimal::ZERO,
        }]
    }

    #[actix_rt::test]
    async fn balances_read_over_rest_do_not_replace_a_newer_list_from_the_stream() {
        let (path, dir) = crate::store::tests::temp_db("account-feed");
        let store = Store::open(&path).expect("store");
        let market = MarketId("ADAUSDM".into());
        let gate = HaltGate::new([market.clone()], store.failing_flag());
        let books = Arc::new(VenueBooks::new([market.clone()], 1_000));
        let reg: Reg = Arc::new(crate::registry::Registry::new(gate, books));
        let (asked_tx, mut asked) = mpsc::unbounded_channel();
        let (release, release_rx) = oneshot::channel();
        let venue = HeldVenue {
            asked: asked_tx,
            release: Some(release_rx),
        }
        .start();
        reg.venue.bind(venue.recipient());
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        reg.balances.bind(Balances(seen_tx).start().recipient());

        // The start-up resync asks for balances; the venue holds its answer (taken before the
        // change below).
        let feed = AccountFeed::new(
            reg.clone(),
            store.clone(),
            vec![market],
            Duration::from_secs(3600),
        )
        .start();
        asked.recv().await.expect("balances asked for");
        // Meanwhile the stream gives the newer list: 900 USDM free after a trade.
        feed.do_send(VenueEvent::Balances(usdm(900)));
        assert_eq!(seen.recv().await, Some(usdm(900)));
        // Then the REST answer arrives, with the 1,000 USDM of before the trade: it is dropped
        // (counted), and RiskGuard hears nothing more.
        let _ = release.send(usdm(1_000));
        let superseded = async {
            loop {
                let stats = feed.send(GetAccountStats).await.expect("stats");
                if stats.balances_superseded > 0 {
                    break stats.balances_superseded;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            late = seen.recv() => panic!("RiskGuard was given the older REST list: {late:?}"),
            n = superseded => assert_eq!(n, 1),
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
