//! RiskGuard's halts: announcing a market's new state (its record and the supersession of the
//! market's unsent places in one transaction), operator commands (kill switch and resume, from
//! the control table or a signal), the heartbeat, and the shutdown halt.

use actix::prelude::*;
use tracing::{info, warn};

use super::book::StateOf;
use super::rules::{self, HaltReason, TradingState};
use super::{HaltForShutdown, KillSwitch, RiskGuard, TradingStateChanged};
use crate::store::{Write, rows};
use crate::types::now_ms;

impl RiskGuard {
    /// Records and announces a market's new state. A halt's record and the supersession of the
    /// market's unsent places share one transaction.
    pub(super) fn announce(&mut self, next: StateOf, now: i64) {
        let StateOf {
            market,
            prev,
            state,
            halts,
            position,
        } = next;
        let market = &market;
        let reasons: Vec<HaltReason> = halts.into_iter().collect();
        let reason = reasons
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let from = prev.map(|s| s.as_str()).unwrap_or("START");
        if state == TradingState::Halted {
            warn!(market = %market, from, to = state.as_str(), reason = %reason, "trading state changed");
        } else {
            info!(market = %market, from, to = state.as_str(), reason = %reason, "trading state changed");
        }
        let mut writes = vec![Write::RiskEvent {
            ts_ms: now,
            market: Some(market.clone()),
            from: from.into(),
            to: state.as_str().into(),
            reason: if reason.is_empty() {
                "position".into()
            } else {
                reason.clone()
            },
        }];
        if state == TradingState::Halted {
            writes.push(Write::SupersedePendingPlaces {
                market: market.clone(),
                ts_ms: now,
                reason: format!("trading halted ({reason})"),
            });
        }
        self.store.write(writes, None);
        let msg = TradingStateChanged {
            market: market.clone(),
            state,
            sides: rules::sides_allowed(state, position),
            reasons,
            position,
        };
        self.reg.state_to_orders.do_send(msg.clone());
        self.reg.state_to_quotes.do_send(msg);
    }

    pub(super) fn poll_control(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        ctx.spawn(
            async move { store.read(rows::pending_control).await }
                .into_actor(self)
                .map(|res, act, _| match res {
                    Ok(cmds) => {
                        act.apply_control(cmds);
                        act.evaluate();
                    }
                    Err(e) => warn!(cause = %e, "cannot read the control table"),
                }),
        );
    }

    /// Applies operator commands from the `control` table, oldest first, and marks them done.
    pub(super) fn apply_control(&mut self, cmds: Vec<(i64, String)>) {
        for (id, cmd) in cmds {
            self.store.write(
                vec![Write::ControlConsumed {
                    id,
                    ts_ms: now_ms(),
                }],
                None,
            );
            self.set_kill_flag(cmd == "kill", "control table");
        }
    }

    pub(super) fn heartbeat(&self) {
        let mut states: Vec<String> = self
            .book
            .states
            .iter()
            .map(|(m, s)| format!("{m}={}", s.as_str()))
            .collect();
        states.sort();
        self.store.write_heartbeat(now_ms(), states.join(","));
    }

    pub(super) fn set_kill(&mut self, engage: bool, source: &str) {
        self.set_kill_flag(engage, source);
        self.evaluate();
    }

    pub(super) fn set_kill_flag(&mut self, engage: bool, source: &str) {
        if engage {
            if self.book.global_halts.insert(HaltReason::KillSwitch) {
                warn!(
                    source,
                    "kill switch engaged: cancelling everything and halting"
                );
                self.persist_global("ACTIVE", "HALTED", HaltReason::KillSwitch.as_str());
            }
        } else if self.book.global_halts.remove(&HaltReason::KillSwitch)
            | self.book.global_halts.remove(&HaltReason::DailyLoss)
        {
            info!(source, "trading resumed by operator");
            self.persist_global("HALTED", "ACTIVE", "resume");
        }
    }
}

impl Handler<KillSwitch> for RiskGuard {
    type Result = ();
    fn handle(&mut self, msg: KillSwitch, _: &mut Context<Self>) {
        self.set_kill(msg.engage, &msg.source);
    }
}

impl Handler<HaltForShutdown> for RiskGuard {
    type Result = ();
    fn handle(&mut self, _: HaltForShutdown, _: &mut Context<Self>) {
        self.book.global_halts.insert(HaltReason::Shutdown);
        self.evaluate();
    }
}
