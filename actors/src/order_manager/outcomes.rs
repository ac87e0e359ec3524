//! OrderManager on the outcomes of its intents: what each classified answer of the venue (done,
//! rejected, dead-lettered, unknown, never sent) does to the order, and to a flatten waiting
//! for a cancel.

use actix::prelude::*;
use tracing::{debug, error, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::state::{AfterOutcome, OrderEvent, plan_outcome};
use super::{IntentOutcome, OrderManager, OrderNeverSent, QuoteReason};
use crate::messages::{DispatchResult, RequestRequote};
use crate::types::now_ms;

impl Handler<IntentOutcome> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: IntentOutcome, ctx: &mut Context<Self>) {
        let (row, result) = match msg {
            IntentOutcome::NeverSent(OrderNeverSent(id)) => {
                self.apply_and_persist(
                    &id,
                    OrderEvent::Cancelled,
                    Some("superseded before it was sent".into()),
                );
                return;
            }
            IntentOutcome::Result { row, result } => (row, result),
        };
        let ack = tracing::info_span!(
            "order_manager.ack",
            market = %row.intent.market(),
            client_order_id = row.intent.client_order_id().map_or("", |c| c.as_str()),
            venue_order_id = tracing::field::Empty,
            venue.code = tracing::field::Empty,
            outbox.id = row.id,
            kind = row.intent.kind().as_str(),
            outcome = match &result {
                DispatchResult::Done { .. } => "done",
                DispatchResult::Rejected { .. } => "rejected",
                DispatchResult::Retry { .. } => "dead",
                DispatchResult::Unknown { .. } => "unknown",
                DispatchResult::NotSent { .. } => "not_sent",
            },
        );
        let _ = ack.set_parent(crate::trace::context_from(row.traceparent.as_deref()));
        let _ack = ack.enter();
        if let DispatchResult::Rejected {
            code: Some(code), ..
        } = &result
        {
            ack.record("venue.code", code);
        }
        let market = row.intent.market().clone();
        let plan = plan_outcome(&row.intent, &result);
        if let Some((_, v)) = &plan.venue_id {
            ack.record("venue_order_id", v.as_str());
        }
        if let Some((id, v)) = plan.venue_id {
            self.assign_venue_id(&id, v);
        }
        if let Some((id, ev, detail)) = plan.event {
            match &result {
                DispatchResult::Rejected { code, message } => {
                    debug!(client_order_id = %id, code, cause = %message, "place rejected");
                }
                DispatchResult::Retry { message, .. } => {
                    error!(client_order_id = %id, cause = %message, "place dead-lettered");
                }
                DispatchResult::Unknown { message, .. } => {
                    warn!(client_order_id = %id, cause = %message, "place outcome unknown, asking the venue");
                }
                DispatchResult::Done { .. } | DispatchResult::NotSent { .. } => {}
            }
            self.apply_and_persist(&id, ev, detail);
        }
        match plan.then {
            AfterOutcome::Nothing => {}
            AfterOutcome::Rework => self.work_market(&market, ctx),
            AfterOutcome::Requote => self.reg.requote.do_send(RequestRequote {
                market: Some(market.clone()),
                reason: QuoteReason::NotSent,
            }),
            AfterOutcome::Resolve(id) => self.resolve(vec![id]),
            AfterOutcome::CancelAnswered { id, failed } => {
                if failed {
                    error!(client_order_id = %id, ?result, "cancel failed");
                    self.cancel_failed.insert(id.clone());
                }
                // The venue's report of the order is authoritative (it may have filled).
                self.resolve(vec![id.clone()]);
                let steps = self.flattener.cancel_done(&market, &id, now_ms());
                self.run_flatten(steps, ctx);
            }
            AfterOutcome::CancelAllAnswered { failed } => {
                if failed {
                    error!(market = %market, ?result, "cancel-all failed; the flatten lists the venue and cancels one by one");
                }
                // Whatever its answer: list the venue's open orders and cancel what is left.
                let steps = self.flattener.cancel_all_done(&market, now_ms());
                self.run_flatten(steps, ctx);
            }
        }
    }
}
