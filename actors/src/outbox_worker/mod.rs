//! OutboxWorker is an actor. It owns the dispatch of durable outbox rows: it takes rows only
//! after their transaction committed, asks RateLimiter for a permit (cancels first), records
//! the send durably, then hands the row to the gateway. Outcomes go back to OrderManager.
//! Conflation, ordering, retries and dead letters are the pure [`queue::OutboxQueue`]'s.
//!
//! On (re)start it reloads every non-terminal row from SQLite; a row that was in flight has
//! an unknown outcome and is resolved through OrderManager, never resent blindly.

pub mod queue;

use actix::prelude::*;
use tracing::{debug, error, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::OutboxConfig;
use crate::messages::{AcquirePermit, Dispatch, IntentOutcome, OrderNeverSent, StorageRecovered};
pub use crate::messages::{DispatchOutcome, IntentsDurable, ResolveIntent};
use crate::registry::Reg;
use crate::store::{Store, Write, rows};
use crate::supervision::ActorHealth;
use crate::types::now_ms;
use queue::{DispatchResult, Effect, OutboxQueue, RetryPolicy};

/// Asks for outbox figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "OutboxStats")]
pub struct GetOutboxStats;

/// Outbox figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct OutboxStats {
    /// Non-terminal rows.
    pub open: usize,
    pub in_flight: usize,
    pub waiting_permit: usize,
    pub sent_total: u64,
    pub dead_total: u64,
    pub loaded: bool,
}

/// Delay before asking the rate limiter again after it could not answer.
const PERMIT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// The dispatcher.
pub struct OutboxWorker {
    reg: Reg,
    store: Store,
    cfg: OutboxConfig,
    queue: OutboxQueue,
    loaded: bool,
    timer: Option<SpawnHandle>,
    sent_total: u64,
    dead_total: u64,
    /// Open `rate_limiter.wait` spans, by outbox row.
    waits: std::collections::HashMap<i64, tracing::Span>,
    /// When each in-flight row was sent, for the submit-to-ack histogram.
    sent_at: std::collections::HashMap<i64, std::time::Instant>,
    /// Rows were written while SQLite could not commit: reload once it can.
    reload_when_stored: bool,
    health: ActorHealth,
}

impl OutboxWorker {
    /// A worker persisting to `store`.
    pub fn new(reg: Reg, store: Store, cfg: OutboxConfig) -> Self {
        let queue = OutboxQueue::new(policy(&cfg));
        Self {
            reg,
            store,
            cfg,
            queue,
            loaded: false,
            timer: None,
            sent_total: 0,
            dead_total: 0,
            waits: std::collections::HashMap::new(),
            sent_at: std::collections::HashMap::new(),
            reload_when_stored: false,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        self.queue = OutboxQueue::new(policy(&self.cfg));
        self.loaded = false;
        self.timer = None;
        self.waits.clear();
        self.sent_at.clear();
        self.reload_when_stored = false;
    }

    fn apply_effects(&mut self, effects: Vec<Effect>) {
        let mut writes = Vec::new();
        for e in effects {
            match e {
                Effect::Row(r) => {
                    if r.status == queue::OutboxStatus::Dead {
                        self.dead_total += 1;
                        error!(
                            outbox_id = r.id,
                            cause = r.last_error.as_deref().unwrap_or(""),
                            "intent dead-lettered"
                        );
                    }
                    writes.push(Write::Outbox(r));
                }
                Effect::NeverSent(coid) => self
                    .reg
                    .intent_outcome
                    .do_send(IntentOutcome::NeverSent(OrderNeverSent(coid))),
                Effect::Outcome { row, result } => {
                    self.reg.intent_outcome.do_send(IntentOutcome::Result {
                        row: Box::new(row),
                        result,
                    })
                }
            }
        }
        if !writes.is_empty() {
            self.reload_when_stored |= self.reg.gate.storage_failing();
            self.store.write(writes, None);
        }
    }

    /// Drops the places that must not be sent: their market is halted (the halt gate is
    /// closed), or they are older than `place_max_age_ms`.
    fn drop_unsendable_places(&mut self, now: i64) {
        let gate = self.reg.gate.clone();
        let max_age = i64::try_from(self.cfg.place_max_age_ms).unwrap_or(i64::MAX);
        let effects = self.queue.drop_unsent_places(
            |r| queue::unsendable(r, gate.allows_place(r.intent.market()), now, max_age),
            now,
        );
        if !effects.is_empty() {
            debug!(dropped = effects.len(), "unsendable places dropped");
        }
        self.apply_effects(effects);
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.loaded {
            return;
        }
        let cap = self.cfg.max_in_flight as usize;
        let now = now_ms();
        self.drop_unsendable_places(now);
        while self.queue.in_flight() + self.queue.reserved() < cap {
            let Some(id) = self.queue.next_ready(now) else {
                break;
            };
            self.queue.reserve(id);
            // The wait for a permit, in the intent's trace; it ends when the permit comes.
            let wait = tracing::info_span!("rate_limiter.wait", outbox.id = id);
            let _ = wait.set_parent(crate::trace::context_from(
                self.queue.get(id).and_then(|r| r.traceparent.as_deref()),
            ));
            self.waits.insert(id, wait);
            let Some(kind) = self.queue.get(id).map(|r| r.intent.kind()) else {
                break;
            };
            let Some(limiter) = self.reg.permits.get().cloned() else {
                break;
            };
            ctx.spawn(limiter.send(AcquirePermit { kind }).into_actor(self).map(
                move |permit, act, ctx| {
                    act.waits.remove(&id);
                    let failure = match permit {
                        Ok(Ok(p)) => {
                            act.send_row(id, p.granted_at_ms);
                            act.pump(ctx);
                            return;
                        }
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    // The limiter restarted or is gone: ask again later, never in a tight loop.
                    warn!(outbox_id = id, cause = %failure, "no permit, retrying shortly");
                    act.queue.unreserve(id);
                    ctx.run_later(PERMIT_RETRY, |act, ctx| act.pump(ctx));
                },
            ));
        }
        self.schedule_wakeup(ctx, now);
    }

    fn schedule_wakeup(&mut self, ctx: &mut Context<Self>, now: i64) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = self.queue.next_wakeup_ms().filter(|at| *at > now) {
            let delay = std::time::Duration::from_millis(u64::try_from(at - now).unwrap_or(0));
            self.timer = Some(ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.pump(ctx);
            }));
        }
    }

    fn send_row(&mut self, reserved_for: i64, sent_at_ms: i64) {
        self.drop_unsendable_places(sent_at_ms);
        let Some(id) = self.queue.take_for_permit(reserved_for, sent_at_ms) else {
            debug!(
                outbox_id = reserved_for,
                "permit granted with nothing left to send"
            );
            return;
        };
        let Some(row) = self.queue.mark_sent(id, sent_at_ms) else {
            return;
        };
        self.sent_total += 1;
        self.sent_at.insert(id, std::time::Instant::now());
        let attempt = row.attempts;
        let reg = self.reg.clone();
        let span = tracing::info_span!(
            "outbox.dispatch",
            outbox.id = id,
            kind = row.intent.kind().as_str(),
            attempt
        );
        let _ = span.set_parent(crate::trace::context_from(row.traceparent.as_deref()));
        let dispatch = Dispatch {
            row: row.clone(),
            cx: span.context(),
        };
        let is_cancel = row.intent.kind().is_cancel();
        // Durable before the side effect: the row is in_flight on disk before the venue sees it
        // (the send itself is recorded by the rate limiter when it lets the request go). When
        // the store cannot commit, cancels go anyway: they need no new persistence.
        self.store.write(
            vec![Write::Outbox(row)],
            Some(Box::new(move |r| match r {
                Ok(()) => reg.dispatch.do_send(dispatch),
                Err(e) if is_cancel => {
                    warn!(outbox_id = id, cause = %e, "store failing: sending the cancel unrecorded");
                    reg.dispatch.do_send(dispatch);
                }
                Err(e) => reg.dispatch_outcome.do_send(DispatchOutcome {
                    id,
                    result: DispatchResult::NotSent {
                        reason: format!("its intent could not be stored: {e}"),
                    },
                }),
            })),
        );
    }
}

fn policy(cfg: &OutboxConfig) -> RetryPolicy {
    RetryPolicy {
        max_attempts: cfg.max_attempts,
        backoff_initial_ms: cfg.backoff_initial_ms,
        backoff_max_ms: cfg.backoff_max_ms,
    }
}

impl Actor for OutboxWorker {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        let store = self.store.clone();
        ctx.wait(
            async move { store.read(rows::load_open_outbox).await }
                .into_actor(self)
                .map(|loaded, act, ctx| match loaded {
                    Ok(rows) => {
                        let effects = act.queue.load(rows, now_ms());
                        act.apply_effects(effects);
                        for r in act.queue.unknown() {
                            act.reg.intent_outcome.do_send(IntentOutcome::Result {
                                row: Box::new(r.clone()),
                                result: DispatchResult::Unknown {
                                    message: r
                                        .last_error
                                        .clone()
                                        .unwrap_or_else(|| "outcome unknown".into()),
                                    venue_order_id: None,
                                },
                            });
                        }
                        act.loaded = true;
                        act.pump(ctx);
                    }
                    Err(e) => {
                        error!(cause = %e, "cannot load the outbox, restarting");
                        ctx.stop();
                    }
                }),
        );
    }
}

crate::supervised_actor!(OutboxWorker, "outbox_worker");

impl Handler<IntentsDurable> for OutboxWorker {
    type Result = ();
    fn handle(&mut self, msg: IntentsDurable, ctx: &mut Context<Self>) {
        let now = now_ms();
        for row in msg.0 {
            // After a restart the reload may already hold this row.
            if self.queue.get(row.id).is_some() {
                continue;
            }
            let effects = self.queue.enqueue(row, now);
            self.apply_effects(effects);
        }
        self.pump(ctx);
    }
}

impl Handler<DispatchOutcome> for OutboxWorker {
    type Result = ();
    fn handle(&mut self, msg: DispatchOutcome, ctx: &mut Context<Self>) {
        let m = crate::metrics::metrics();
        let kind = self
            .queue
            .get(msg.id)
            .map_or("unknown_row", |r| r.intent.kind().as_str());
        let outcome = match &msg.result {
            DispatchResult::Done { .. } => "done",
            DispatchResult::Rejected { .. } => "rejected",
            DispatchResult::Retry { .. } => "retry",
            DispatchResult::Unknown { .. } => "unknown",
            DispatchResult::NotSent { .. } => "not_sent",
        };
        m.actions.add(
            1,
            &[
                opentelemetry::KeyValue::new("kind", kind),
                opentelemetry::KeyValue::new("outcome", outcome),
            ],
        );
        if let Some(sent) = self.sent_at.remove(&msg.id) {
            m.submit_to_ack.record(
                sent.elapsed().as_secs_f64(),
                &[opentelemetry::KeyValue::new("kind", kind)],
            );
        }
        if let DispatchResult::Retry { message, .. } | DispatchResult::Rejected { message, .. } =
            &msg.result
        {
            debug!(outbox_id = msg.id, cause = %message, "dispatch failed");
        }
        let effects = self.queue.on_result(msg.id, msg.result, now_ms());
        self.apply_effects(effects);
        self.pump(ctx);
    }
}

impl Handler<ResolveIntent> for OutboxWorker {
    type Result = ();
    fn handle(&mut self, msg: ResolveIntent, ctx: &mut Context<Self>) {
        let effects = self
            .queue
            .resolve(&msg.client_order_id, msg.venue_order_id, now_ms());
        // The order side of the resolution was applied by OrderManager already.
        let effects = effects
            .into_iter()
            .filter(|e| !matches!(e, Effect::Outcome { .. }))
            .collect();
        self.apply_effects(effects);
        self.pump(ctx);
    }
}

impl Handler<StorageRecovered> for OutboxWorker {
    type Result = ();
    fn handle(&mut self, _: StorageRecovered, ctx: &mut Context<Self>) {
        if self.reload_when_stored {
            warn!("store recovered: reloading the outbox from SQLite");
            ctx.stop();
        }
    }
}

impl Handler<GetOutboxStats> for OutboxWorker {
    type Result = OutboxStats;
    fn handle(&mut self, _: GetOutboxStats, _: &mut Context<Self>) -> OutboxStats {
        OutboxStats {
            open: self.queue.len(),
            in_flight: self.queue.in_flight(),
            waiting_permit: self.queue.reserved(),
            sent_total: self.sent_total,
            dead_total: self.dead_total,
            loaded: self.loaded,
        }
    }
}
