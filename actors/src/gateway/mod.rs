//! DeltaDeFiGateway is an actor. It owns the requests in flight to the venue and turns each
//! outbox row into a venue request, then the venue's answer into a classified
//! [`DispatchResult`] for OutboxWorker: done, definite reject, retry, or unknown outcome.
//!
//! The venue is a `Recipient<VenueRequest>`: MockExchange in staging. A place that times out
//! has an unknown outcome and is never resent from here; a cancel that finds nothing is done.
//! If this actor restarts with requests in flight, each is reported as an unknown outcome.

pub mod errors;

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::GatewayConfig;
use crate::intent::{Intent, IntentKind};
pub use crate::messages::Dispatch;
use crate::messages::{DispatchOutcome, DispatchResult, OutboxRow};
use crate::registry::Reg;
use crate::supervision::ActorHealth;
use crate::types::{VenueOrderId, now_ms};
use crate::venue::{NewOrder, SendTag, VenueFailure, VenueReply, VenueRequest};

/// The order gateway.
pub struct DeltaDeFiGateway {
    reg: Reg,
    timeout: Duration,
    in_flight: HashMap<i64, IntentKind>,
    jitter: crate::rng::SplitMix64,
    health: ActorHealth,
}

impl DeltaDeFiGateway {
    /// A gateway using the venue bound in `reg`; the transport waits at most `send_wait` for
    /// the budget before a write.
    pub fn new(reg: Reg, cfg: &GatewayConfig, send_wait: Duration) -> Self {
        Self {
            reg,
            // A backstop: a DeltaDeFi place is two HTTP calls (build, submit), each bounded by
            // request_timeout_ms in the transport, around a wait for the budget bounded by
            // send_wait; the transport reports a lost submit with the build's order id. This
            // outer bound must not cut that short, or the request could still be written after
            // its outcome was declared.
            timeout: Duration::from_millis(cfg.request_timeout_ms.saturating_mul(2))
                + send_wait
                + Duration::from_secs(1),
            in_flight: HashMap::new(),
            jitter: crate::rng::SplitMix64::new(now_ms() as u64),
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        for (id, _) in self.in_flight.drain() {
            self.reg.dispatch_outcome.do_send(DispatchOutcome {
                id,
                result: DispatchResult::Unknown {
                    message: "gateway restarted with the request in flight".into(),
                    venue_order_id: None,
                },
            });
        }
    }
}

/// A request the venue may or may not have acted on: a place is an unknown outcome, to be
/// looked up (never resent); cancels are idempotent, so they are simply tried again.
fn unanswered(
    kind: IntentKind,
    message: String,
    venue_order_id: Option<VenueOrderId>,
) -> DispatchResult {
    match kind {
        IntentKind::Place => DispatchResult::Unknown {
            message,
            venue_order_id,
        },
        IntentKind::Cancel | IntentKind::CancelAll => DispatchResult::Retry {
            code: None,
            message,
            not_before_ms: None,
        },
    }
}

/// The outbox's view of the venue's answer to an action of `kind`. Shared by the gateway and
/// the backtest.
pub fn result_of(
    answer: Result<VenueReply, VenueFailure>,
    kind: IntentKind,
    now_ms: i64,
) -> DispatchResult {
    match answer {
        Ok(VenueReply::Placed(o)) => DispatchResult::Done {
            venue_order_id: Some(o.venue_order_id),
        },
        Ok(VenueReply::Cancelled(_) | VenueReply::CancelledAll(_)) => DispatchResult::Done {
            venue_order_id: None,
        },
        Ok(other) => DispatchResult::Rejected {
            code: None,
            message: format!("unexpected reply {other:?}"),
        },
        Err(VenueFailure::Rejected(e)) => errors::to_result(&e, kind, now_ms),
        Err(VenueFailure::OutcomeUnknown {
            venue_order_id,
            reason,
        }) => unanswered(kind, reason, venue_order_id),
        Err(VenueFailure::NotSent(why)) => match kind {
            IntentKind::Place => DispatchResult::NotSent {
                reason: why.to_string(),
            },
            // A cancel is never held back by a halt; try it again.
            IntentKind::Cancel | IntentKind::CancelAll => DispatchResult::Retry {
                code: None,
                message: format!("not sent: {why}"),
                not_before_ms: None,
            },
        },
    }
}

/// The venue request that carries out an outbox row.
pub fn request_of(row: &OutboxRow, traceparent: Option<String>) -> VenueRequest {
    let tag = SendTag {
        outbox_id: Some(row.id),
        attempt: row.attempts,
        tick_recv_at: row.tick_recv_at,
    };
    match &row.intent {
        Intent::Place {
            client_order_id,
            market,
            side,
            price,
            size,
            ..
        } => VenueRequest::Place(NewOrder {
            client_order_id: client_order_id.clone(),
            market: market.clone(),
            side: *side,
            price: *price,
            size: *size,
            traceparent,
            tag,
        }),
        Intent::Cancel {
            client_order_id,
            venue_order_id,
            market,
        } => VenueRequest::Cancel {
            venue_order_id: venue_order_id.clone(),
            client_order_id: client_order_id.clone(),
            market: market.clone(),
            tag,
            traceparent,
        },
        Intent::CancelAll { market } => VenueRequest::CancelAll {
            market: market.clone(),
            tag,
            traceparent,
        },
    }
}

impl Actor for DeltaDeFiGateway {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.health.starts += 1;
    }
}

crate::supervised_actor!(DeltaDeFiGateway, "gateway");

impl Handler<Dispatch> for DeltaDeFiGateway {
    type Result = ();
    fn handle(&mut self, msg: Dispatch, ctx: &mut Context<Self>) {
        let id = msg.row.id;
        let kind = msg.row.intent.kind();
        let Some(venue) = self.reg.venue.get().cloned() else {
            self.reg.dispatch_outcome.do_send(DispatchOutcome {
                id,
                result: DispatchResult::Retry {
                    code: None,
                    message: "no venue bound".into(),
                    not_before_ms: None,
                },
            });
            return;
        };
        self.in_flight.insert(id, kind);
        let span = tracing::info_span!(
            "gateway.request",
            outbox.id = id,
            kind = kind.as_str(),
            attempt = msg.row.attempts,
            outcome = tracing::field::Empty,
            venue.code = tracing::field::Empty,
        );
        let _ = span.set_parent(msg.cx.clone());
        let req = request_of(&msg.row, crate::trace::traceparent(&span.context()));
        debug!(
            outbox_id = id,
            kind = kind.as_str(),
            attempt = msg.row.attempts,
            "gateway.dispatch"
        );
        let fut = tokio::time::timeout(self.timeout, venue.send(req));
        ctx.spawn(fut.into_actor(self).map(move |answer, act, _| {
            act.in_flight.remove(&id);
            let now = now_ms();
            let result = match answer {
                Ok(Ok(answer)) => result_of(answer, kind, now),
                Ok(Err(mailbox)) => {
                    warn!(outbox_id = id, cause = %mailbox, "venue unreachable");
                    unanswered(kind, format!("venue mailbox: {mailbox}"), None)
                }
                Err(_) => DispatchResult::Unknown {
                    message: "timed out waiting for the venue".into(),
                    venue_order_id: None,
                },
            };
            // 5002 (trading locked) pauses everyone at once: spread the retries by up to 10 s.
            let result = match result {
                DispatchResult::Retry {
                    code,
                    message,
                    not_before_ms: Some(t),
                } => DispatchResult::Retry {
                    code,
                    message,
                    not_before_ms: Some(t + i64::try_from(act.jitter.below(10_000)).unwrap_or(0)),
                },
                other => other,
            };
            if let DispatchResult::Rejected { code, message } = &result {
                warn!(
                    outbox_id = id,
                    kind = kind.as_str(),
                    code = code.unwrap_or(0),
                    cause = %message,
                    "venue rejected the request"
                );
            }
            match &result {
                DispatchResult::Done { .. } => span.record("outcome", "done"),
                DispatchResult::Rejected { code, .. } => span
                    .record("outcome", "rejected")
                    .record("venue.code", code.unwrap_or(0)),
                DispatchResult::Retry { code, .. } => span
                    .record("outcome", "retry")
                    .record("venue.code", code.unwrap_or(0)),
                DispatchResult::Unknown { .. } => span.record("outcome", "unknown"),
                DispatchResult::NotSent { .. } => span.record("outcome", "not_sent"),
            };
            drop(span);
            act.reg
                .dispatch_outcome
                .do_send(DispatchOutcome { id, result });
        }));
    }
}
