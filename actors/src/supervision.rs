//! Supervision of every actor: panics anywhere in an actor become a restart of that actor
//! alone, restarts back off, and an actor that keeps failing halts the service loudly.
//!
//! actix restarts a supervised actor only when it stops itself (`ctx.stop()`); a panic is not
//! supervised and ends the actor's task for good, leaving a dead mailbox that every peer keeps
//! sending to. [`start`] and [`start_in_arbiter`] replace `actix::Supervisor`: they poll the
//! actor's whole context (its `started`, every handler, every timer and every future spawned
//! on the context) under `catch_unwind`, and treat a panic like a stop. The actor is then
//! restarted through its [`Supervised::restarting`] hook, which resets its state.
//!
//! Invariants:
//! - a first failure restarts at once; failures that follow soon after a restart back off
//!   exponentially ([`RestartPolicy`]), so a failing dependency cannot turn an actor into a
//!   restart storm;
//! - too many failures of one actor within a window are a crash loop: the [`Monitor`] records
//!   it as fatal, the service halts trading and exits non-zero (the actor still restarts);
//! - an actor whose mailbox is found closed is reported as fatal by the service's liveness
//!   check ([`Monitor::report_fatal`]): there is never a silent dead actor.
//!
//! Every actor also answers [`GetHealth`] (how often it started and restarted) and
//! [`InjectFault`] (a deliberate failure, used by the fault-injection tests and chaos drills).

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::dev::{ContextFut, channel};
use actix::prelude::*;
use tracing::{error, warn};

/// How an actor fails on [`InjectFault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The handler returns an error and stops the actor (the normal failure path).
    Error,
    /// The handler itself panics.
    Panic,
    /// A timer of the actor panics after the handler returned.
    PanicInTimer,
    /// A future spawned on the actor's context panics when it completes.
    PanicInFuture,
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

/// The panic payload raised by the injected panics.
#[derive(Debug)]
pub struct InjectedPanic;

/// Panics on purpose with [`InjectedPanic`]: the fault-injection drill. This is the one
/// deliberate panic of the service; the supervisor turns it into a restart.
#[allow(clippy::panic)]
pub fn injected_panic() {
    std::panic::panic_any(InjectedPanic);
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

/// How supervisors restart actors and when failures become fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// A first restart is immediate; later ones within this long of the previous restart
    /// back off.
    pub stable_after: Duration,
    /// Delay before the second restart in a row, doubling up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Failures of one actor within `crash_loop_window` that make a crash loop.
    pub crash_loop_failures: usize,
    pub crash_loop_window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            stable_after: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            crash_loop_failures: 12,
            crash_loop_window: Duration::from_secs(60),
        }
    }
}

/// Why the service must stop: an actor that cannot be kept alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    pub actor: &'static str,
    pub reason: String,
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.actor, self.reason)
    }
}

type FatalHook = Box<dyn Fn(&Fatal) + Send + Sync>;

/// Watches every supervised actor of a service: failures, restarts and fatal conditions.
/// Shared (`Arc`) between the supervisors and whoever must react to a fatal condition.
pub struct Monitor {
    policy: RestartPolicy,
    fatal: tokio::sync::watch::Sender<Option<Fatal>>,
    hooks: Mutex<Vec<FatalHook>>,
    failures: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("fatal", &*self.fatal.borrow())
            .finish()
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::default(),
            fatal: tokio::sync::watch::channel(None).0,
            hooks: Mutex::new(Vec::new()),
            failures: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Monitor {
    /// A monitor with no fatal condition.
    pub fn new() -> Arc<Monitor> {
        Arc::new(Monitor::default())
    }

    /// A monitor whose supervisors follow `policy`.
    pub fn with_policy(policy: RestartPolicy) -> Arc<Monitor> {
        Arc::new(Monitor {
            policy,
            ..Monitor::default()
        })
    }

    /// Runs `hook` (synchronously, on the thread that detects it) on the first fatal
    /// condition: what must happen at once, such as closing the halt gate.
    pub fn on_fatal(&self, hook: impl Fn(&Fatal) + Send + Sync + 'static) {
        if let Ok(mut h) = self.hooks.lock() {
            h.push(Box::new(hook));
        }
    }

    /// Records a fatal condition; only the first is kept.
    pub fn report_fatal(&self, fatal: Fatal) {
        let first = self.fatal.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(fatal.clone());
                true
            } else {
                false
            }
        });
        if first {
            error!(actor = fatal.actor, cause = %fatal.reason, "fatal: halting the service");
            if let Ok(hooks) = self.hooks.lock() {
                for h in hooks.iter() {
                    h(&fatal);
                }
            }
        }
    }

    /// The fatal condition, if one was reported.
    pub fn fatal(&self) -> Option<Fatal> {
        self.fatal.borrow().clone()
    }

    /// Resolves once a fatal condition is reported.
    pub async fn wait_fatal(&self) -> Fatal {
        let mut rx = self.fatal.subscribe();
        loop {
            if let Some(f) = rx.borrow_and_update().clone() {
                return f;
            }
            if rx.changed().await.is_err() {
                // The monitor is gone: nothing can be reported any more.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Failures (panics and stops) of every supervised actor so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The supervising future of one actor: polls its context under `catch_unwind` and restarts it
/// on a stop or a panic, with backoff.
struct Supervision<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    fut: ContextFut<A, Context<A>>,
    name: &'static str,
    monitor: Arc<Monitor>,
    /// Failure instants within the crash-loop window.
    recent: VecDeque<Instant>,
    last_restart: Option<Instant>,
    consecutive: u32,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A restart is due (now, or when `delay` fires).
    restart_due: bool,
}

impl<A> Supervision<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    fn new(fut: ContextFut<A, Context<A>>, name: &'static str, monitor: Arc<Monitor>) -> Self {
        Self {
            fut,
            name,
            monitor,
            recent: VecDeque::new(),
            last_restart: None,
            consecutive: 0,
            delay: None,
            restart_due: false,
        }
    }

    /// Records one failure and decides when the actor restarts.
    fn failed(&mut self, cause: &str) {
        let now = Instant::now();
        let policy = self.monitor.policy;
        self.monitor
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.crash_loop_window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= policy.crash_loop_failures {
            self.monitor.report_fatal(Fatal {
                actor: self.name,
                reason: format!(
                    "crash loop: {} failures within {} s, last: {cause}",
                    self.recent.len(),
                    policy.crash_loop_window.as_secs()
                ),
            });
        }
        let stable = self
            .last_restart
            .is_none_or(|t| now.duration_since(t) >= policy.stable_after);
        self.consecutive = if stable { 0 } else { self.consecutive + 1 };
        self.restart_due = true;
        if self.consecutive == 0 {
            self.delay = None;
        } else {
            let factor = 1u32 << (self.consecutive - 1).min(16);
            let wait = policy
                .backoff_initial
                .saturating_mul(factor)
                .min(policy.backoff_max);
            warn!(
                actor = self.name,
                delay_ms = wait.as_millis() as u64,
                "actor failed again soon after a restart, backing off"
            );
            self.delay = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }
}

impl<A> Future for Supervision<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.restart_due {
                if let Some(d) = this.delay.as_mut() {
                    if d.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.delay = None;
                }
                this.restart_due = false;
                this.last_restart = Some(Instant::now());
                match catch_unwind(AssertUnwindSafe(|| this.fut.restart())) {
                    Ok(true) => {}
                    // Nobody holds the address any more: the actor is no longer needed.
                    Ok(false) => return Poll::Ready(()),
                    Err(payload) => {
                        let cause = panic_message(payload.as_ref());
                        error!(actor = this.name, cause = %cause, "actor panicked while restarting");
                        this.failed(&cause);
                        continue;
                    }
                }
            }
            match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.fut).poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(())) => this.failed("stopped"),
                Err(payload) => {
                    let cause = panic_message(payload.as_ref());
                    error!(actor = this.name, cause = %cause, "actor panicked, restarting it");
                    this.failed(&cause);
                }
            }
        }
    }
}

/// Starts `A` on the current arbiter under supervision; the returned address stays valid
/// across restarts.
pub fn start<A, F>(name: &'static str, monitor: &Arc<Monitor>, f: F) -> Addr<A>
where
    A: Supervised + Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A + 'static,
{
    let mut ctx = Context::new();
    let act = f(&mut ctx);
    let addr = ctx.address();
    let fut = ctx.into_future(act);
    actix_rt::spawn(Supervision::new(fut, name, monitor.clone()));
    addr
}

/// Holds the actors started on another arbiter until it opens. Such an actor would otherwise
/// start at once, while the starting thread is still binding peers, and a message it sent
/// from `started` to a peer not bound yet was dropped (OutboxWorker's outcomes of rows left
/// unknown by a kill: their orders stayed pending until a flatten gave up waiting). Messages
/// sent to a held actor wait in its mailbox. A gate dropped without opening (a start that
/// failed half-way) starts none of them.
pub struct StartGate(tokio::sync::watch::Sender<bool>);

impl Default for StartGate {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }
}

impl StartGate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets every actor held by this gate start, and those started behind it later at once.
    pub fn open(&self) {
        self.0.send_replace(true);
    }
}

/// Starts `A` on `arbiter` under supervision once `gate` opens (`f` runs on that arbiter, so
/// `A` may hold values that are not `Send`, such as an awc client).
pub fn start_in_arbiter<A, F>(
    arbiter: &ArbiterHandle,
    name: &'static str,
    monitor: &Arc<Monitor>,
    gate: &StartGate,
    f: F,
) -> Addr<A>
where
    A: Supervised + Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A + Send + 'static,
{
    let (tx, rx) = channel::channel(16);
    let monitor = monitor.clone();
    let mut open = gate.0.subscribe();
    let spawned = arbiter.spawn(async move {
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        let mut ctx = Context::with_receiver(rx);
        let act = f(&mut ctx);
        let fut = ctx.into_future(act);
        actix_rt::spawn(Supervision::new(fut, name, monitor));
    });
    if !spawned {
        error!(
            actor = name,
            "its arbiter is not running, the actor cannot start"
        );
    }
    Addr::new(tx)
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
                $crate::supervision::inject(msg.0, ctx);
            }
        }
    };
}

/// Carries out an injected fault on the actor owning `ctx`.
pub fn inject<A>(kind: FaultKind, ctx: &mut Context<A>)
where
    A: Actor<Context = Context<A>>,
{
    match kind {
        FaultKind::Error => {
            error!(cause = "injected error", "actor failed");
            ctx.stop();
        }
        FaultKind::Panic => injected_panic(),
        FaultKind::PanicInTimer => {
            ctx.run_later(Duration::from_millis(1), |_, _| injected_panic());
        }
        FaultKind::PanicInFuture => {
            ctx.spawn(
                actix::fut::wrap_future::<_, A>(tokio::task::yield_now())
                    .map(|(), _, _| injected_panic()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter that fails on demand.
    struct Flaky {
        health: ActorHealth,
        handled: u32,
    }
    impl Flaky {
        fn on_restart(&mut self, _: &mut Context<Self>) {
            self.handled = 0;
        }
    }
    impl Actor for Flaky {
        type Context = Context<Self>;
        fn started(&mut self, _: &mut Context<Self>) {
            self.health.starts += 1;
        }
    }
    crate::supervised_actor!(Flaky, "flaky");

    #[derive(Message)]
    #[rtype(result = "u32")]
    struct Count;
    impl Handler<Count> for Flaky {
        type Result = u32;
        fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u32 {
            self.handled += 1;
            self.handled
        }
    }

    /// Says when it started and when it was pinged.
    struct Herald {
        health: ActorHealth,
        said: std::sync::mpsc::Sender<&'static str>,
    }
    impl Herald {
        fn on_restart(&mut self, _: &mut Context<Self>) {}
    }
    impl Actor for Herald {
        type Context = Context<Self>;
        fn started(&mut self, _: &mut Context<Self>) {
            let _ = self.said.send("started");
        }
    }
    crate::supervised_actor!(Herald, "herald");

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Ping;
    impl Handler<Ping> for Herald {
        type Result = ();
        fn handle(&mut self, _: Ping, _: &mut Context<Self>) {
            let _ = self.said.send("ping");
        }
    }

    /// Starts a Herald on `arbiter` behind `gate`.
    fn herald(
        arbiter: &actix_rt::Arbiter,
        gate: &StartGate,
        said: &std::sync::mpsc::Sender<&'static str>,
    ) -> Addr<Herald> {
        let said = said.clone();
        start_in_arbiter(&arbiter.handle(), "herald", &Monitor::new(), gate, |_| {
            Herald {
                health: ActorHealth::default(),
                said,
            }
        })
    }

    /// Queues a marker on `arbiter` behind every start queued there, and behind anything those
    /// starts queued: an actor let through says "started" before it.
    fn marker(arbiter: &actix_rt::Arbiter, said: &std::sync::mpsc::Sender<&'static str>) {
        let said = said.clone();
        arbiter.spawn(async move {
            actix_rt::spawn(async move {
                let _ = said.send("marker");
            });
        });
    }

    #[actix_rt::test]
    async fn an_actor_on_another_arbiter_starts_only_once_the_gate_opens() {
        let arbiter = actix_rt::Arbiter::new();
        let (said, heard) = std::sync::mpsc::channel();
        let next = || heard.recv_timeout(Duration::from_secs(10)).ok();
        let gate = StartGate::new();
        herald(&arbiter, &gate, &said).do_send(Ping);
        marker(&arbiter, &said);
        assert_eq!(
            next(),
            Some("marker"),
            "the actor started before the gate opened"
        );
        gate.open();
        assert_eq!(next(), Some("started"));
        assert_eq!(
            next(),
            Some("ping"),
            "a message sent while held is delivered"
        );
        // Opened and dropped: actors started behind it later start at once.
        let _late = herald(&arbiter, &gate, &said);
        drop(gate);
        assert_eq!(
            next(),
            Some("started"),
            "an open gate dropped still lets it start"
        );
        // A gate dropped without opening starts nothing.
        let shut = StartGate::new();
        let _never = herald(&arbiter, &shut, &said);
        drop(shut);
        marker(&arbiter, &said);
        assert_eq!(next(), Some("marker"));
        arbiter.stop();
    }

    async fn restarts_reach(addr: &Addr<Flaky>, n: u32) -> ActorHealth {
        for _ in 0..500 {
            if let Ok(h) = addr.send(GetHealth).await
                && h.restarts >= n
            {
                return h;
            }
            tokio::task::yield_now().await;
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("actor did not restart {n} times");
    }

    #[actix_rt::test]
    async fn panics_in_handlers_timers_and_futures_all_restart_the_actor() {
        let monitor = Monitor::new();
        let addr = start("flaky", &monitor, |_| Flaky {
            health: ActorHealth::default(),
            handled: 0,
        });
        assert_eq!(addr.send(Count).await.expect("alive"), 1);
        let kinds = [
            FaultKind::Panic,
            FaultKind::PanicInTimer,
            FaultKind::PanicInFuture,
            FaultKind::Error,
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            addr.do_send(InjectFault(kind));
            let h = restarts_reach(&addr, i as u32 + 1).await;
            assert_eq!(h.starts, i as u32 + 2, "{kind:?}");
            // State was reset by the restart, and the mailbox works.
            assert_eq!(addr.send(Count).await.expect("alive"), 1, "{kind:?}");
        }
        assert_eq!(monitor.failures(), 4);
        assert_eq!(monitor.fatal(), None);
    }

    #[actix_rt::test]
    async fn a_crash_loop_is_fatal_and_restarts_back_off() {
        let policy = RestartPolicy {
            stable_after: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(80),
            crash_loop_failures: 6,
            crash_loop_window: Duration::from_secs(60),
        };
        let monitor = Monitor::with_policy(policy);
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = closed.clone();
        monitor.on_fatal(move |_| c.store(true, std::sync::atomic::Ordering::SeqCst));
        let addr = start("flaky", &monitor, |_| Flaky {
            health: ActorHealth::default(),
            handled: 0,
        });
        let t0 = Instant::now();
        for i in 0..5 {
            addr.do_send(InjectFault(FaultKind::Panic));
            restarts_reach(&addr, i + 1).await;
        }
        assert_eq!(monitor.fatal(), None, "five failures are not yet a loop");
        addr.do_send(InjectFault(FaultKind::Panic));
        restarts_reach(&addr, 6).await;
        let fatal = monitor.fatal().expect("a crash loop is fatal");
        assert_eq!(fatal.actor, "flaky");
        assert!(fatal.reason.contains("crash loop"), "{fatal}");
        assert!(closed.load(std::sync::atomic::Ordering::SeqCst), "hook ran");
        // One immediate restart, then 20, 40, 80, 80, 80 ms: restarts back off.
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
        // Still restarted: the service halts, but the actor is never left dead.
        assert_eq!(addr.send(Count).await.expect("alive"), 1);
    }
}
