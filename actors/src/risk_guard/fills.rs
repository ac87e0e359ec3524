//! RiskGuard's fills: each stored fill row counted once into its market's position, whether
//! AccountFeed reports it (in any order) or a sweep of the fills table finds it unreported.

use actix::prelude::*;
use tracing::warn;

use super::{FillApplied, InventoryChanged, RiskGuard};
use crate::store::rows;
use crate::venue::VenueFill;

impl RiskGuard {
    /// Counts fill row `row_id` into its market's position and tells QuoteEngine the new
    /// one; false when that row was counted before.
    pub(super) fn count_fill(&mut self, row_id: i64, fill: &VenueFill) -> bool {
        let Some((position, applied)) = self.book.apply_fill(row_id, fill) else {
            return false;
        };
        if let Err(e) = applied {
            self.accounting_failed(&e);
        }
        self.reg.inventory.do_send(InventoryChanged {
            market: fill.market.clone(),
            position,
        });
        true
    }

    /// Reads the fills stored after the last row counted, and counts those whose report has
    /// not come by the next sweep: a fill stored but never handed on (AccountFeed stopped
    /// between the two) would otherwise stay out of the position until a restart.
    pub(super) fn sweep_fills(&mut self, ctx: &mut Context<Self>) {
        if !self.loaded || self.sweeping {
            return;
        }
        self.sweeping = true;
        let (store, after, starts) = (
            self.store.clone(),
            self.book.counted_upto(),
            self.health.starts,
        );
        ctx.spawn(
            async move { store.read(move |c| rows::load_fills_after(c, after)).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.sweeping = false;
                    if act.health.starts != starts || !act.loaded {
                        return; // restarted meanwhile: the reload counted them
                    }
                    match res {
                        Ok(stored) => {
                            let due = act.book.sweep(stored);
                            if due.is_empty() {
                                return;
                            }
                            for (id, f) in &due {
                                act.count_fill(*id, f);
                            }
                            warn!(
                                fills = due.len(),
                                "fills stored but never reported, counted from the store"
                            );
                            act.evaluate();
                        }
                        Err(e) => warn!(cause = %e, "cannot read the fills table"),
                    }
                }),
        );
    }
}

impl Handler<FillApplied> for RiskGuard {
    type Result = ();
    fn handle(&mut self, msg: FillApplied, _: &mut Context<Self>) {
        if self.count_fill(msg.fill_row_id, &msg.fill) {
            self.evaluate();
        }
    }
}
