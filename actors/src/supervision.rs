//! Supervision helpers shared by every actor.
//!
//! actix restarts a supervised actor only when it stops itself (`ctx.stop()`); a panic in a
//! handler is not supervised and would take the arbiter thread down with every actor on it.
//! [`guarded`] therefore runs handler bodies under `catch_unwind` and turns a panic into a
//! logged `ctx.stop()`, so the [`actix::Supervisor`] restarts that actor alone. Every actor
//! also answers [`GetHealth`] (how often it started and restarted) and [`InjectFault`] (a
//! deliberate failure, used by the fault-injection test and chaos drills).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::prelude::*;
use tracing::error;

/// How an actor fails on [`InjectFault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The handler returns an error and stops the actor (the normal failure path).
    Error,
    /// The handler panics; [`guarded`] must turn this into a restart.
    Panic,
}

/// Makes the receiving actor fail the way a real fault would.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectFault(pub FaultKind);

/// Asks an actor how often it has started and restarted.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "ActorHealth")]
pub struct GetHealth;

/// Start and restart counters of one actor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct ActorHealth {
    pub starts: u32,
    pub restarts: u32,
}

/// The panic payload raised by [`FaultKind::Panic`].
#[derive(Debug)]
pub struct InjectedPanic;

/// Panics on purpose with [`InjectedPanic`]: the fault-injection drill of [`FaultKind::Panic`].
/// This is the one deliberate panic of the service, always run under [`guarded`].
#[allow(clippy::panic)]
pub fn injected_panic() {
    std::panic::panic_any(InjectedPanic);
}

/// Runs `f` and turns a panic into a logged stop of the actor, which its supervisor restarts.
/// Returns `None` when `f` panicked.
pub fn guarded<A, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    actor: &'static str,
    f: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> Option<R>
where
    A: Actor<Context = Context<A>>,
{
    match catch_unwind(AssertUnwindSafe(|| f(&mut *act, &mut *ctx))) {
        Ok(r) => Some(r),
        Err(payload) => {
            error!(actor, cause = %panic_message(payload.as_ref()), "handler panicked, restarting actor");
            ctx.stop();
            None
        }
    }
}

/// Renders a panic payload for the log.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if payload.downcast_ref::<InjectedPanic>().is_some() {
        "injected panic".to_string()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Implements [`Supervised`], [`GetHealth`] and [`InjectFault`] for an actor that has a
/// `health: ActorHealth` field and an inherent `fn on_restart(&mut self, ctx)`.
#[macro_export]
macro_rules! supervised_actor {
    ($actor:ty, $name:literal) => {
        impl ::actix::Supervised for $actor {
            fn restarting(&mut self, ctx: &mut ::actix::Context<Self>) {
                self.health.restarts += 1;
                ::tracing::warn!(actor = $name, restarts = self.health.restarts, "actor restarting");
                self.on_restart(ctx);
            }
        }
        impl ::actix::Handler<$crate::supervision::GetHealth> for $actor {
            type Result = $crate::supervision::ActorHealth;
            fn handle(
                &mut self,
                _: $crate::supervision::GetHealth,
                _: &mut ::actix::Context<Self>,
            ) -> Self::Result {
                self.health
            }
        }
        impl ::actix::Handler<$crate::supervision::InjectFault> for $actor {
            type Result = ();
            fn handle(
                &mut self,
                msg: $crate::supervision::InjectFault,
                ctx: &mut ::actix::Context<Self>,
            ) {
                ::tracing::warn!(actor = $name, kind = ?msg.0, "fault injected");
                match msg.0 {
                    $crate::supervision::FaultKind::Error => {
                        ::tracing::error!(actor = $name, cause = "injected error", "actor failed");
                        ::actix::ActorContext::stop(ctx);
                    }
                    $crate::supervision::FaultKind::Panic => {
                        $crate::supervision::guarded(self, ctx, $name, |_, _| $crate::supervision::injected_panic());
                    }
                }
            }
        }
    };
}
