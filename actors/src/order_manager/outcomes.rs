//! OrderManager on the outcomes of its intents: what each classified answer of the venue (done,
//! rejected, dead-lettered, unknown, never sent) does to the order, and to a flatten waiting
//! for a cancel.

use actix::prelude::*;
use tracing::{debug, error, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::state::OrderEvent;
use super::{IntentOutcome, OrderManager, OrderNeverSent, QuoteReason};
use crate::intent::Intent;
use crate::outbox_worker::queue::DispatchResult;
use crate::quote_engine::RequestRequote;
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
        let market = row.intent.market().clone();
        match (&row.intent, result) {
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::Done { venue_order_id },
            ) => {
                if let Some(v) = venue_order_id {
                    self.assign_venue_id(id, v);
                }
                self.apply_and_persist(id, OrderEvent::Accepted, None);
            }
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::Rejected { code, message },
            ) => {
                debug!(client_order_id = %id, code, cause = %message, "place rejected");
                self.apply_and_persist(id, OrderEvent::Rejected, Some(message));
                self.work_market(&market, ctx);
            }
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::Retry { message, .. },
            ) => {
                error!(client_order_id = %id, cause = %message, "place dead-lettered");
                self.apply_and_persist(
                    id,
                    OrderEvent::Rejected,
                    Some(format!("dead-lettered: {message}")),
                );
                self.work_market(&market, ctx);
            }
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::Unknown {
                    message,
                    venue_order_id,
                },
            ) => {
                warn!(client_order_id = %id, cause = %message, "place outcome unknown, asking the venue");
                if let Some(v) = venue_order_id {
                    // DeltaDeFi names the order at build time: the id to look it up by.
                    self.assign_venue_id(id, v);
                }
                self.apply_and_persist(id, OrderEvent::OutcomeUnknown, Some(message));
                self.resolve(vec![id.clone()]);
            }
            (
                Intent::Place {
                    client_order_id: id,
                    ..
                },
                DispatchResult::NotSent { reason },
            ) => {
                self.apply_and_persist(
                    id,
                    OrderEvent::Cancelled,
                    Some(format!("not sent: {reason}")),
                );
                // Its target is what was not sent (old, halted, or crossing the venue's book
                // as it is now): quote the slot again from a fresh price, not from that target.
                self.reg.requote.do_send(RequestRequote {
                    market: Some(market.clone()),
                    reason: QuoteReason::NotSent,
                });
            }
            (
                Intent::Cancel {
                    client_order_id: id,
                    ..
                },
                result,
            ) => {
                if !matches!(result, DispatchResult::Done { .. }) {
                    error!(client_order_id = %id, ?result, "cancel failed");
                    self.cancel_failed.insert(id.clone());
                }
                // The venue's report of the order is authoritative (it may have filled).
                self.resolve(vec![id.clone()]);
                let steps = self.flattener.cancel_done(&market, id, now_ms());
                self.run_flatten(steps, ctx);
            }
            (Intent::CancelAll { .. }, result) => {
                if !matches!(result, DispatchResult::Done { .. }) {
                    error!(market = %market, ?result, "cancel-all failed; the flatten lists the venue and cancels one by one");
                }
                // Whatever its answer: list the venue's open orders and cancel what is left.
                let steps = self.flattener.cancel_all_done(&market, now_ms());
                self.run_flatten(steps, ctx);
            }
        }
    }
}
