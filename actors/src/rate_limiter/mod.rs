//! RateLimiter is an actor. It owns the venue's order-action budget (a governor GCRA limiter,
//! default 5 actions/s with burst 1, so every one-second window holds at most the budget) and
//! grants permits: cancels and cancel-alls before places, each class first come first served.
//!
//! The limiter survives a restart of this actor (only the waiting requests are dropped, and
//! their requesters retry), so a restart can never hand out a fresh burst.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter as Gcra};
use tokio::sync::oneshot;

use crate::config::RateLimitConfig;
use crate::intent::IntentKind;
use crate::supervision::ActorHealth;
use crate::types::now_ms;

/// Asks for one permit to send an order action.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Permit, PermitError>")]
pub struct AcquirePermit {
    pub kind: IntentKind,
}

/// Leave to send one action now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// Wall-clock time of the grant.
    pub granted_at_ms: i64,
}

/// Why no permit was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PermitError {
    #[error("the rate limiter restarted while the request waited")]
    Dropped,
}

/// Asks for budget figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "BudgetStats")]
pub struct GetBudget;

/// Budget figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct BudgetStats {
    pub actions_per_second: u32,
    /// Permits granted in the last 1000 ms.
    pub used_last_second: u32,
    pub granted_total: u64,
    pub waiting: u32,
}

/// The budget holder.
pub struct RateLimiter {
    limiter: Arc<DefaultDirectRateLimiter>,
    per_second: u32,
    cancels: VecDeque<oneshot::Sender<Result<Permit, PermitError>>>,
    places: VecDeque<oneshot::Sender<Result<Permit, PermitError>>>,
    recent: VecDeque<i64>,
    granted_total: u64,
    wake_scheduled: bool,
    health: ActorHealth,
}

impl RateLimiter {
    /// A limiter for `cfg`.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        let per = NonZeroU32::new(cfg.actions_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(cfg.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_nanos(1_000_000_000 / u64::from(per.get()));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(per))
            .allow_burst(burst);
        Self {
            limiter: Arc::new(Gcra::direct(quota)),
            per_second: per.get(),
            cancels: VecDeque::new(),
            places: VecDeque::new(),
            recent: VecDeque::new(),
            granted_total: 0,
            wake_scheduled: false,
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        // Keep the limiter: its state is the budget already spent.
        for tx in self.cancels.drain(..).chain(self.places.drain(..)) {
            let _ = tx.send(Err(PermitError::Dropped));
        }
        self.wake_scheduled = false;
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
                    let now = now_ms();
                    self.recent.push_back(now);
                    self.granted_total += 1;
                    let _ = tx.send(Ok(Permit { granted_at_ms: now }));
                    let used = self.used_last_second();
                    crate::metrics::metrics()
                        .budget_used
                        .record(u64::from(used), &[]);
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

    fn used_last_second(&mut self) -> u32 {
        let cutoff = now_ms() - 1_000;
        while self.recent.front().is_some_and(|t| *t <= cutoff) {
            self.recent.pop_front();
        }
        u32::try_from(self.recent.len()).unwrap_or(u32::MAX)
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.starts += 1;
        ctx.set_mailbox_capacity(256);
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

impl Handler<GetBudget> for RateLimiter {
    type Result = BudgetStats;
    fn handle(&mut self, _: GetBudget, _: &mut Context<Self>) -> BudgetStats {
        BudgetStats {
            actions_per_second: self.per_second,
            used_last_second: self.used_last_second(),
            granted_total: self.granted_total,
            waiting: u32::try_from(self.cancels.len() + self.places.len()).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn cancels_are_granted_before_places_and_spacing_holds() {
        let rl = RateLimiter::new(&RateLimitConfig {
            actions_per_second: 20,
            burst: 1,
        })
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
        assert!(stats.used_last_second <= 20);
    }
}
