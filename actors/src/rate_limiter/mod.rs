//! RateLimiter is an actor. It owns the venue's order-action budget (default 5 actions/s) and
//! grants leave at two points of an action's life:
//!
//! - [`AcquirePermit`]: when OutboxWorker may hand a row to the gateway. A governor GCRA
//!   limiter (burst 1 by default) paces dispatch, cancels and cancel-alls before places, so
//!   rows wait in the outbox, where a newer intent can still supersede them.
//! - [`AcquireSend`]: immediately before a request that the venue counts (a submit, a cancel, a
//!   cancel-all, including start-up ones) is written to the socket. This is the budget as the
//!   venue counts it ([`budget::SendBudget`]: exact sliding window with a jitter margin, even
//!   spacing), seeded at start from the sends recorded in SQLite. A send is granted only
//!   after its record is committed, so a crash right after it still counts in the next
//!   process's budget. Requests are served in arrival order (the dispatch stage already put
//!   cancels first); a place of a halted market is refused without spending the budget.
//!
//! Transports reach the second point through a [`SendGate`], which also closes to places the
//! moment trading halts ([`crate::halt_gate::HaltGate`]).
//!
//! The watchdog (`deltadefi-mm watchdog`, another process) cancels with the same credentials
//! while the bot's heartbeat is stale, and records its sends before it writes them. While it
//! may have been sending ([`crate::store::beat::Beat`]), its sends are read from SQLite before
//! each of ours and counted in the budget, so that a bot that resumes after a stop does not
//! spend a budget the watchdog already used. With the venue inside the process (the mock)
//! there is no watchdog, and nothing is read.
//!
//! The limiters survive a restart of this actor (only the waiting requests are dropped, and
//! their requesters retry), so a restart can never hand out a fresh burst.

pub mod budget;
mod send_gate;

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter as Gcra};
use rust_decimal::Decimal;
use tokio::sync::oneshot;
use tracing::{error, warn};

use crate::config::RateLimitConfig;
use crate::halt_gate::HaltGate;
use crate::intent::IntentKind;
pub use crate::messages::{AcquirePermit, AcquireSend, Permit, PermitError, SendPermit};
use crate::store::rows;
use crate::store::{Store, Write};
use crate::supervision::ActorHealth;
use crate::types::now_ms;
use crate::venue::SendRecord;
use crate::venue_book::VenueBooks;
use budget::SendBudget;
pub use send_gate::{NotSent, SendGate};

/// The venue's opposite touch when `record` is a post-only place that would cross it now;
/// counted as skipped (it is not written: the venue could only answer 4104).
fn crossing_touch(books: &VenueBooks, record: &SendRecord) -> Option<Decimal> {
    let (side, price) = record.post_only?;
    if record.kind != IntentKind::Place {
        return None;
    }
    let touch = books.would_cross(&record.market, side, price, now_ms())?;
    books.note_skipped(&record.market);
    crate::metrics::metrics().avoided_crosses.add(
        1,
        &[
            opentelemetry::KeyValue::new("market", record.market.to_string()),
            opentelemetry::KeyValue::new("stage", "send"),
        ],
    );
    Some(touch)
}

/// Asks for budget figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "BudgetStats")]
pub struct GetBudget;

/// Budget figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct BudgetStats {
    pub actions_per_second: u32,
    /// Sends let through in the last 1000 ms.
    pub used_last_second: u32,
    /// Dispatch permits granted so far.
    pub granted_total: u64,
    /// Sends let through so far.
    pub sends_total: u64,
    pub waiting: u32,
    /// The budget has been seeded from SQLite.
    pub seeded: bool,
    /// The watchdog's sends counted in the budget since start.
    pub watchdog_sends: u64,
}

/// How much later than recorded a send from SQLite is counted: the record is committed just
/// before the write, and corrected to the write's moment just after it; a crash in between
/// leaves a time early by the commit's latency.
const SEED_SLACK_MS: i64 = 25;

type PermitTx = oneshot::Sender<Result<Permit, PermitError>>;
type SendTx = oneshot::Sender<Result<SendPermit, PermitError>>;

/// The budget holder.
pub struct RateLimiter {
    store: Store,
    limiter: Arc<DefaultDirectRateLimiter>,
    per_second: u32,
    cancels: VecDeque<PermitTx>,
    places: VecDeque<PermitTx>,
    budget: SendBudget,
    seeded: bool,
    /// Sends waiting for the budget, first come first served: the dispatch stage already put
    /// cancels first, and a fixed priority here would starve the places behind a stream of
    /// cancels.
    sends: VecDeque<(AcquireSend, SendTx)>,
    /// Places of a halted market are refused here without spending the budget.
    halt: Arc<HaltGate>,
    /// So are post-only places that would cross the venue's book when their turn comes.
    books: Arc<VenueBooks>,
    /// What the next send's decision waits for, if anything.
    awaiting: Awaiting,
    /// The watchdog may send at this venue (false with the venue inside the process).
    watchdog: bool,
    /// They were read just now: the next decision to grant or wait may go by the budget.
    watchdog_read: bool,
    /// The highest `outbox_sends` id already in the budget (from the seed or those reads).
    seen_send_id: i64,
    watchdog_sends: u64,
    granted_total: u64,
    sends_total: u64,
    wake_scheduled: bool,
    send_wake: Option<SpawnHandle>,
    health: ActorHealth,
}

impl RateLimiter {
    /// A limiter for `cfg`, recording sends in `store`, refusing places that `halt` stops
    /// and post-only places that would cross the venue's book in `books`.
    pub fn new(
        cfg: &RateLimitConfig,
        store: Store,
        halt: Arc<HaltGate>,
        books: Arc<VenueBooks>,
    ) -> Self {
        let per = NonZeroU32::new(cfg.actions_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(cfg.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_nanos(1_000_000_000 / u64::from(per.get()));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(per))
            .allow_burst(burst);
        Self {
            store,
            limiter: Arc::new(Gcra::direct(quota)),
            per_second: per.get(),
            cancels: VecDeque::new(),
            places: VecDeque::new(),
            budget: SendBudget::new(per.get(), burst.get(), cfg.venue_margin_ms),
            seeded: false,
            sends: VecDeque::new(),
            halt,
            books,
            awaiting: Awaiting::Nothing,
            watchdog: true,
            watchdog_read: false,
            seen_send_id: 0,
            watchdog_sends: 0,
            granted_total: 0,
            sends_total: 0,
            wake_scheduled: false,
            send_wake: None,
            health: ActorHealth::default(),
        }
    }

    /// For a venue inside this process: no watchdog can send there, so its sends are never
    /// read.
    pub fn venue_in_process(mut self) -> Self {
        self.watchdog = false;
        self
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        // Keep both limiters: their state is the budget already spent.
        for tx in self.cancels.drain(..).chain(self.places.drain(..)) {
            let _ = tx.send(Err(PermitError::Dropped));
        }
        for (_, tx) in self.sends.drain(..) {
            let _ = tx.send(Err(PermitError::Dropped));
        }
        self.wake_scheduled = false;
        self.send_wake = None;
        self.awaiting = Awaiting::Nothing;
        self.watchdog_read = false;
    }

    /// Reads the sends of the last window from SQLite into the budget. Until it has, nothing
    /// is let through; if the store cannot answer, the budget assumes the whole window was
    /// spent just now (the safe side).
    fn seed(&mut self, ctx: &mut Context<Self>) {
        if self.seeded {
            return; // a restart of this actor keeps the budget it had
        }
        let store = self.store.clone();
        let since = now_ms() - self.budget.window_ms();
        ctx.wait(
            async move {
                store
                    .read(move |c| Ok((rows::sends_since(c, since)?, rows::last_send_id(c)?)))
                    .await
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                match res {
                    // A crash may have come between a record and its correction to the
                    // moment of the write: count each a little later than recorded.
                    Ok((times, last_id)) => {
                        act.seen_send_id = last_id;
                        act.budget.seed(times.into_iter().map(|t| t + SEED_SLACK_MS));
                    }
                    Err(e) => {
                        error!(cause = %e, "cannot read recent sends: assuming a full budget was just spent");
                        let now = now_ms();
                        act.budget.seed(std::iter::repeat_n(now, act.per_second as usize));
                    }
                }
                act.seeded = true;
                act.pump_sends(ctx);
            }),
        );
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        // Drop waiters that gave up.
        self.cancels.retain(|tx| !tx.is_closed());
        self.places.retain(|tx| !tx.is_closed());
        while !(self.cancels.is_empty() && self.places.is_empty()) {
            match self.limiter.check() {
                Ok(()) => {
                    let tx = match self.cancels.pop_front() {
                        Some(tx) => tx,
                        None => match self.places.pop_front() {
                            Some(tx) => tx,
                            None => break,
                        },
                    };
                    self.granted_total += 1;
                    let _ = tx.send(Ok(Permit {
                        granted_at_ms: now_ms(),
                    }));
                }
                Err(not_until) => {
                    if !self.wake_scheduled {
                        self.wake_scheduled = true;
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        ctx.run_later(wait, |act, ctx| {
                            act.wake_scheduled = false;
                            act.pump(ctx);
                        });
                    }
                    break;
                }
            }
        }
    }

    fn pump_sends(&mut self, ctx: &mut Context<Self>) {
        // One send at a time: the next is decided only once the last one's record is committed
        // and its sender let go, so that spacing holds between the moments requests are written.
        if !self.seeded || self.awaiting != Awaiting::Nothing {
            return;
        }
        // A request whose sender gave up is not granted: its write would never happen.
        self.sends
            .retain(|(req, tx)| !tx.is_closed() && !req.given_up());
        // A place of a halted market never spends the budget: it would not be written.
        let halt = self.halt.clone();
        let (stopped, waiting): (VecDeque<_>, VecDeque<_>) =
            self.sends.drain(..).partition(|(req, _)| {
                req.record.kind == IntentKind::Place && !halt.allows_place(&req.record.market)
            });
        self.sends = waiting;
        for (req, tx) in stopped {
            let _ = tx.send(Err(PermitError::Halted(req.record.market.to_string())));
        }
        if self.sends.is_empty() {
            // A read of the watchdog's sends stands only for the decision it was made for.
            self.watchdog_read = false;
            return;
        }
        let now = now_ms();
        if self.watchdog
            && !std::mem::take(&mut self.watchdog_read)
            && self.store.beat().watchdog_may_send(now)
        {
            self.read_watchdog_sends(ctx);
            return;
        }
        let at = self.budget.earliest(now);
        if at > now {
            if let Some(h) = self.send_wake.take() {
                ctx.cancel_future(h);
            }
            let wait = Duration::from_millis(u64::try_from(at - now).unwrap_or(0));
            self.send_wake = Some(ctx.run_later(wait, |act, ctx| {
                act.send_wake = None;
                act.pump_sends(ctx);
            }));
            return;
        }
        // The last moment before the write: a place the venue's book has moved onto is not
        // worth a budget slot (the book may have changed while it waited).
        let (mut record, tx) = loop {
            let Some((AcquireSend { record, .. }, tx)) = self.sends.pop_front() else {
                return;
            };
            match crossing_touch(&self.books, &record) {
                Some(touch) => {
                    let _ = tx.send(Err(PermitError::WouldCross {
                        market: record.market.to_string(),
                        touch,
                    }));
                }
                None => break (record, tx),
            }
        };
        self.awaiting = Awaiting::Record;
        record.sent_at_ms = now;
        let me = ctx.address();
        let recorded = record.clone();
        // Durable before the write: the sender is let go only once the record is committed.
        self.store.write(
            vec![Write::VenueSend(record)],
            Some(Box::new(move |r| {
                me.do_send(SendRecorded {
                    record: recorded,
                    result: r,
                    tx,
                })
            })),
        );
    }

    /// Reads the watchdog's sends of the last window that the budget does not hold yet, then
    /// decides the next send. A failed read is logged and the budget goes by what it holds.
    fn read_watchdog_sends(&mut self, ctx: &mut Context<Self>) {
        self.awaiting = Awaiting::WatchdogRead;
        let store = self.store.clone();
        let since = now_ms() - self.budget.window_ms();
        let after = self.seen_send_id;
        ctx.spawn(
            async move {
                store
                    .read(move |c| rows::watchdog_sends_since(c, since, after))
                    .await
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                act.awaiting = Awaiting::Nothing;
                match res {
                    Ok(sends) if !sends.is_empty() => {
                        warn!(
                            sends = sends.len(),
                            "the watchdog sent at the venue within the last window: counted in the budget"
                        );
                        act.watchdog_sends += sends.len() as u64;
                        for (id, _) in &sends {
                            act.seen_send_id = act.seen_send_id.max(*id);
                        }
                        // Recorded just before its write, like ours.
                        act.budget
                            .seed(sends.into_iter().map(|(_, t)| t + SEED_SLACK_MS));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(cause = %e, "cannot read the watchdog's sends; the budget goes by this process's own");
                    }
                }
                act.watchdog_read = true;
                act.pump_sends(ctx);
            }),
        );
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        ctx.set_mailbox_capacity(256);
        self.seed(ctx);
    }
}

crate::supervised_actor!(RateLimiter, "rate_limiter");

impl Handler<AcquirePermit> for RateLimiter {
    type Result = ResponseFuture<Result<Permit, PermitError>>;
    fn handle(&mut self, msg: AcquirePermit, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if msg.kind.is_cancel() {
            self.cancels.push_back(tx);
        } else {
            self.places.push_back(tx);
        }
        self.pump(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(PermitError::Dropped)) })
    }
}

impl Handler<AcquireSend> for RateLimiter {
    type Result = ResponseFuture<Result<SendPermit, PermitError>>;
    fn handle(&mut self, msg: AcquireSend, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.sends.push_back((msg, tx));
        self.pump_sends(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(PermitError::Dropped)) })
    }
}

/// What the limiter waits for before it decides the next send: one thing at a time, and no
/// send is granted meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Nothing,
    /// A granted send's record is being committed.
    Record,
    /// The watchdog's sends are being read.
    WatchdogRead,
}

/// The record of a granted send was committed (or not): let its sender go.
#[derive(Message)]
#[rtype(result = "()")]
struct SendRecorded {
    record: SendRecord,
    result: Result<(), String>,
    tx: SendTx,
}

impl Handler<SendRecorded> for RateLimiter {
    type Result = ();
    fn handle(&mut self, msg: SendRecorded, ctx: &mut Context<Self>) {
        self.awaiting = Awaiting::Nothing;
        let is_cancel = msg.record.kind.is_cancel();
        let reply = match msg.result {
            Err(e) if !is_cancel => Err(PermitError::NotRecorded(e)),
            r => {
                if let Err(e) = &r {
                    warn!(cause = %e, "send record not committed; the cancel goes anyway");
                }
                // The moment the sender writes: this is what the budget spaces.
                let now = now_ms();
                self.budget.record(now);
                self.sends_total += 1;
                crate::metrics::metrics()
                    .budget_used
                    .record(u64::from(self.budget.used_last_second(now)), &[]);
                if r.is_ok() && now != msg.record.sent_at_ms {
                    // The record said when the send was granted; it goes out now.
                    self.store
                        .write(vec![Write::VenueSendAt(msg.record, now)], None);
                }
                Ok(SendPermit {
                    sent_at_ms: now,
                    recorded: r.is_ok(),
                })
            }
        };
        let _ = msg.tx.send(reply);
        self.pump_sends(ctx);
    }
}

impl Handler<GetBudget> for RateLimiter {
    type Result = BudgetStats;
    fn handle(&mut self, _: GetBudget, _: &mut Context<Self>) -> BudgetStats {
        BudgetStats {
            actions_per_second: self.per_second,
            used_last_second: self.budget.used_last_second(now_ms()),
            granted_total: self.granted_total,
            sends_total: self.sends_total,
            waiting: u32::try_from(self.cancels.len() + self.places.len() + self.sends.len())
                .unwrap_or(u32::MAX),
            seeded: self.seeded,
            watchdog_sends: self.watchdog_sends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::MarketId;

    /// A store on a fresh file under the system's temp directory.
    fn temp_store(tag: &str) -> (Store, std::path::PathBuf) {
        let (path, dir) = crate::store::tests::temp_db(&format!("rl-{tag}"));
        (Store::open(&path).expect("store"), dir)
    }

    fn no_books() -> Arc<VenueBooks> {
        Arc::new(VenueBooks::new([], 0))
    }

    fn record(kind: IntentKind) -> SendRecord {
        SendRecord {
            sent_at_ms: 0,
            kind,
            market: MarketId("ADAUSDM".into()),
            outbox_id: None,
            attempt: 0,
            source: "test",
            venue_order: None,
            post_only: None,
            tick_recv_at: None,
        }
    }

    #[actix_rt::test]
    async fn cancels_are_granted_before_places_and_spacing_holds() {
        let (store, dir) = temp_store("permit");
        let rl = RateLimiter::new(
            &RateLimitConfig {
                actions_per_second: 20,
                burst: 1,
                venue_margin_ms: 0,
                max_send_wait_ms: 3_000,
            },
            store,
            HaltGate::open_for_tests([MarketId("ADAUSDM".into())]),
            no_books(),
        )
        .start();
        // Spend the single burst token so that the next requests queue.
        rl.send(AcquirePermit {
            kind: IntentKind::Place,
        })
        .await
        .expect("mailbox")
        .expect("permit");
        let p1 = rl.send(AcquirePermit {
            kind: IntentKind::Place,
        });
        let p2 = rl.send(AcquirePermit {
            kind: IntentKind::Place,
        });
        let c1 = rl.send(AcquirePermit {
            kind: IntentKind::Cancel,
        });
        let (p1, p2, c1) = tokio::join!(p1, p2, c1);
        let t = |r: Result<Result<Permit, PermitError>, MailboxError>| {
            r.expect("mailbox").expect("permit").granted_at_ms
        };
        let (p1, p2, c1) = (t(p1), t(p2), t(c1));
        // p1 was queued first, but the cancel arrived before the first refill and goes first.
        assert!(c1 <= p1 && p1 <= p2, "cancel {c1} place {p1} place {p2}");
        // 20/s with burst 1: grants are ~50 ms apart.
        assert!(p2 - c1 >= 90, "spacing {} ms", p2 - c1);
        let stats = rl.send(GetBudget).await.expect("stats");
        assert_eq!(stats.granted_total, 4);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[actix_rt::test]
    async fn sends_are_recorded_spaced_and_seeded_across_restarts() {
        let (store, dir) = temp_store("send");
        let cfg = five_a_second();
        let halt = HaltGate::open_for_tests([MarketId("ADAUSDM".into())]);
        let rl = RateLimiter::new(&cfg, store.clone(), halt.clone(), no_books()).start();
        let mut times = Vec::new();
        for _ in 0..3 {
            let p = rl
                .send(AcquireSend::new(record(IntentKind::Place)))
                .await
                .expect("mailbox")
                .expect("send");
            assert!(p.recorded);
            times.push(p.sent_at_ms);
        }
        assert!(
            times[1] - times[0] >= 200 && times[2] - times[1] >= 200,
            "{times:?}"
        );
        let stored = store.read(|c| rows::sends_since(c, 0)).await.expect("read");
        assert_eq!(
            stored, times,
            "every send is recorded when it is let through"
        );
        // A new limiter (a new process) on the same database continues the spacing.
        let again = RateLimiter::new(&cfg, store.clone(), halt.clone(), no_books()).start();
        let next = again
            .send(AcquireSend::new(record(IntentKind::Cancel)))
            .await
            .expect("mailbox")
            .expect("send");
        assert!(
            next.sent_at_ms - times[2] >= 200,
            "seeded: {} after {}",
            next.sent_at_ms,
            times[2]
        );
        let stats = again.send(GetBudget).await.expect("stats");
        assert!(stats.seeded);
        assert_eq!(stats.sends_total, 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// When the limiter let a send of `kind` go.
    async fn sent_at(rl: &Addr<RateLimiter>, kind: IntentKind) -> i64 {
        rl.send(AcquireSend::new(record(kind)))
            .await
            .expect("mailbox")
            .expect("send")
            .sent_at_ms
    }

    /// Records a send as `deltadefi-mm watchdog` does: another connection, another process.
    fn watchdog_send(store: &Store, at_ms: i64) {
        let c = rusqlite::Connection::open(store.path()).expect("open");
        c.execute(
            "INSERT INTO outbox_sends(outbox_id, attempt, sent_at_ms, kind, market, source)
             VALUES (NULL, 0, ?1, 'cancel', 'ADAUSDM', ?2)",
            rusqlite::params![at_ms, rows::WATCHDOG_SOURCE],
        )
        .expect("insert");
    }

    fn five_a_second() -> RateLimitConfig {
        RateLimitConfig {
            actions_per_second: 5,
            burst: 1,
            venue_margin_ms: 0,
            max_send_wait_ms: 3_000,
        }
    }

    /// A bot that resumes after a stop (its heartbeat stale) finds the watchdog's cancels in
    /// the database: the venue counted them, so its next send is spaced after them.
    #[actix_rt::test]
    async fn the_watchdogs_sends_are_counted_while_the_heartbeat_is_stale() {
        let (store, dir) = temp_store("watchdog");
        let halt = HaltGate::open_for_tests([MarketId("ADAUSDM".into())]);
        let rl = RateLimiter::new(&five_a_second(), store.clone(), halt, no_books()).start();
        let first = sent_at(&rl, IntentKind::Place).await;
        // No heartbeat committed yet: as stale as it gets. The watchdog sent 100 ms later.
        assert!(store.beat().watchdog_may_send(now_ms()));
        watchdog_send(&store, first + 100);
        let next = sent_at(&rl, IntentKind::Cancel).await;
        assert!(
            next >= first + 100 + 200,
            "5/s: 200 ms after the watchdog's send at {}, not after ours at {first}: {next}",
            first + 100
        );
        let stats = rl.send(GetBudget).await.expect("stats");
        assert_eq!(stats.watchdog_sends, 1);
        // Read once: the next send is spaced after the last one, not after the watchdog's again.
        let third = sent_at(&rl, IntentKind::Cancel).await;
        assert!(
            third - next >= 200 && third - next < 400,
            "{next} then {third}"
        );
        assert_eq!(rl.send(GetBudget).await.expect("stats").watchdog_sends, 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A read made for a request that was refused meanwhile (its market halted) does not stand
    /// for a later request: the watchdog may have sent in between.
    #[actix_rt::test]
    async fn a_read_for_a_request_refused_meanwhile_is_not_reused() {
        let (store, dir) = temp_store("watchdog-refused");
        let market = MarketId("ADAUSDM".into());
        let halt = HaltGate::open_for_tests([market.clone()]);
        let rl =
            RateLimiter::new(&five_a_second(), store.clone(), halt.clone(), no_books()).start();
        rl.send(GetBudget).await.expect("seeded");
        // The store's thread is held inside a read, so that the limiter's read waits.
        let (hold, held) = crate::store::tests::hold_thread(&store).await;
        // A place starts a read, and its market halts before the read is answered: the place
        // is refused, and nobody is left waiting.
        let refused = rl.send(AcquireSend::new(record(IntentKind::Place)));
        rl.send(GetBudget).await.expect("stats");
        halt.set_market(&market, false);
        hold.send(()).expect("release");
        held.await.expect("joined").expect("read");
        assert!(
            matches!(refused.await.expect("mailbox"), Err(PermitError::Halted(_))),
            "the place is refused"
        );
        // Then the watchdog sends, and a new request comes: the budget alone would let it go
        // at once.
        let watchdog_at = now_ms();
        watchdog_send(&store, watchdog_at);
        let next = sent_at(&rl, IntentKind::Cancel).await;
        assert!(
            next >= watchdog_at + 200,
            "spaced after the watchdog's send at {watchdog_at}: {next}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A request whose sender stopped waiting (the send gate's `max_send_wait_ms`) spends no
    /// slot of the budget: the next live request gets it, and nothing is recorded for it.
    #[actix_rt::test]
    async fn a_request_given_up_spends_no_budget() {
        let (store, dir) = temp_store("given-up");
        let halt = HaltGate::open_for_tests([MarketId("ADAUSDM".into())]);
        let rl = RateLimiter::new(&five_a_second(), store.clone(), halt, no_books())
            .venue_in_process()
            .start();
        let first = sent_at(&rl, IntentKind::Cancel).await;
        // Three writes whose transports wait at most 30 ms, as `rate_limit.max_send_wait_ms`.
        let impatient = SendGate::new(
            rl.clone().recipient(),
            HaltGate::open_for_tests([MarketId("ADAUSDM".into())]),
            no_books(),
            Duration::from_millis(30),
        );
        for _ in 0..3 {
            let waited = impatient.acquire(record(IntentKind::Cancel)).await;
            assert!(
                matches!(waited, Err(NotSent::BudgetWait(30))),
                "given up before the next slot: {waited:?}"
            );
        }
        let next = sent_at(&rl, IntentKind::Cancel).await;
        assert!(
            next - first < 400,
            "the slot after the first goes to the live request, not to three given up: {} ms",
            next - first
        );
        store.flush().await.expect("flush");
        let stored = store.read(|c| rows::sends_since(c, 0)).await.expect("read");
        assert_eq!(stored.len(), 2, "{stored:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A heartbeat fresh for longer than the hold, or a venue inside the process: nothing is
    /// read before a send.
    #[actix_rt::test]
    async fn the_watchdogs_sends_are_not_read_when_it_cannot_have_sent() {
        let (store, dir) = temp_store("no-watchdog");
        let halt = HaltGate::open_for_tests([MarketId("ADAUSDM".into())]);
        let now = now_ms();
        for t in (now - 5_000..=now).step_by(1_000) {
            store.beat().committed(t, t + 1);
        }
        assert!(!store.beat().watchdog_may_send(now_ms()));
        let fresh =
            RateLimiter::new(&five_a_second(), store.clone(), halt.clone(), no_books()).start();
        watchdog_send(&store, now_ms());
        sent_at(&fresh, IntentKind::Cancel).await;
        assert_eq!(
            fresh.send(GetBudget).await.expect("stats").watchdog_sends,
            0
        );

        let (store, dir2) = temp_store("in-process");
        assert!(store.beat().watchdog_may_send(now_ms()));
        let mock = RateLimiter::new(&five_a_second(), store.clone(), halt, no_books())
            .venue_in_process()
            .start();
        watchdog_send(&store, now_ms());
        sent_at(&mock, IntentKind::Cancel).await;
        assert_eq!(mock.send(GetBudget).await.expect("stats").watchdog_sends, 0);
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(dir2);
    }
}
