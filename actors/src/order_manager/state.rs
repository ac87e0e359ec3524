//! The order state machine: one [`OrderState::transition`] with one arm per legal
//! (state, event) edge; every other pair is an [`OrderError::InvalidTransition`].
//!
//! In-flight states are explicit: `PendingNew` (intent durable, venue has not answered),
//! `Unknown` (the place was sent and its answer was lost: never resent, resolved by querying
//! the venue) and `PendingCancel` (cancel intent durable, venue has not confirmed).
//! Terminal states: `Filled`, `Cancelled`, `Rejected`.

use rust_decimal::Decimal;

use crate::intent::Intent;
use crate::messages::DispatchResult;
pub use crate::orders::Order;
pub use crate::orders::OrderState;
use crate::types::{ClientOrderId, VenueOrderId};
use crate::venue::VenueOrderStatus;

impl OrderState {
    /// Every state, for exhaustive tests and parsing.
    pub const ALL: [OrderState; 8] = [
        OrderState::PendingNew,
        OrderState::Unknown,
        OrderState::Working,
        OrderState::PartiallyFilled,
        OrderState::PendingCancel,
        OrderState::Filled,
        OrderState::Cancelled,
        OrderState::Rejected,
    ];

    /// Returns the database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::PendingNew => "pending_new",
            OrderState::Unknown => "unknown",
            OrderState::Working => "working",
            OrderState::PartiallyFilled => "partially_filled",
            OrderState::PendingCancel => "pending_cancel",
            OrderState::Filled => "filled",
            OrderState::Cancelled => "cancelled",
            OrderState::Rejected => "rejected",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True once nothing more can happen to the order.
    pub fn is_terminal(self) -> bool {
        match self {
            OrderState::Filled | OrderState::Cancelled | OrderState::Rejected => true,
            OrderState::PendingNew
            | OrderState::Unknown
            | OrderState::Working
            | OrderState::PartiallyFilled
            | OrderState::PendingCancel => false,
        }
    }

    /// True once the venue has acknowledged the order (it is no longer only sent, or of an
    /// outcome not known).
    pub fn is_acknowledged(self) -> bool {
        !matches!(self, OrderState::PendingNew | OrderState::Unknown)
    }

    /// True while the order may rest on the venue and is not being cancelled.
    pub fn is_quoting(self) -> bool {
        match self {
            OrderState::PendingNew
            | OrderState::Unknown
            | OrderState::Working
            | OrderState::PartiallyFilled => true,
            OrderState::PendingCancel
            | OrderState::Filled
            | OrderState::Cancelled
            | OrderState::Rejected => false,
        }
    }

    /// Applies `ev`, returning the next state.
    ///
    /// # Errors
    /// [`OrderError::InvalidTransition`] for any (state, event) pair that is not a legal edge.
    pub fn transition(self, ev: &OrderEvent) -> Result<OrderState, OrderError> {
        use OrderEvent as E;
        use OrderState as S;
        let next = match (self, ev) {
            // The venue accepted our place.
            (S::PendingNew | S::Unknown, E::Accepted) => S::Working,
            (S::PendingCancel, E::Accepted) => S::PendingCancel,
            (S::Working | S::PartiallyFilled, E::Accepted) => self,
            // Fills: partial keeps it live, complete ends it (also while cancelling).
            (
                S::PendingNew | S::Unknown | S::Working | S::PartiallyFilled,
                E::Filled { complete: false },
            ) => S::PartiallyFilled,
            (S::PendingCancel, E::Filled { complete: false }) => S::PendingCancel,
            (
                S::PendingNew | S::Unknown | S::Working | S::PartiallyFilled | S::PendingCancel,
                E::Filled { complete: true },
            ) => S::Filled,
            // We asked to cancel.
            (S::PendingNew | S::Unknown | S::Working | S::PartiallyFilled, E::CancelRequested) => {
                S::PendingCancel
            }
            (S::PendingCancel, E::CancelRequested) => S::PendingCancel,
            // The venue (or the outbox, for an intent never sent) confirmed the cancel.
            (
                S::PendingNew | S::Unknown | S::Working | S::PartiallyFilled | S::PendingCancel,
                E::Cancelled,
            ) => S::Cancelled,
            // Definite reject of the place.
            (S::PendingNew | S::Unknown | S::PendingCancel, E::Rejected) => S::Rejected,
            // The place was sent but its answer was lost.
            (S::PendingNew, E::OutcomeUnknown) => S::Unknown,
            (S::Unknown | S::PendingCancel, E::OutcomeUnknown) => self,
            // The venue does not know the order.
            (S::PendingNew | S::Unknown, E::NotFound) => S::Rejected,
            (S::Working | S::PartiallyFilled | S::PendingCancel, E::NotFound) => S::Cancelled,
            // Late news about a finished order changes nothing.
            (
                S::Filled | S::Cancelled | S::Rejected,
                E::Cancelled | E::NotFound | E::OutcomeUnknown,
            ) => self,
            (S::Filled, E::Filled { complete: true } | E::Accepted) => self,
            (from, ev) => {
                return Err(OrderError::InvalidTransition {
                    from,
                    event: ev.clone(),
                });
            }
        };
        Ok(next)
    }
}

/// Something that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    Accepted,
    Filled { complete: bool },
    CancelRequested,
    Cancelled,
    Rejected,
    OutcomeUnknown,
    NotFound,
}

impl OrderEvent {
    /// Returns the spelling stored in `order_events.event`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderEvent::Accepted => "accepted",
            OrderEvent::Filled { complete: false } => "partial_fill",
            OrderEvent::Filled { complete: true } => "fill",
            OrderEvent::CancelRequested => "cancel_requested",
            OrderEvent::Cancelled => "cancelled",
            OrderEvent::Rejected => "rejected",
            OrderEvent::OutcomeUnknown => "outcome_unknown",
            OrderEvent::NotFound => "not_found",
        }
    }
}

/// Order errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("invalid transition from {from:?} on {event:?}")]
    InvalidTransition { from: OrderState, event: OrderEvent },
}

impl Order {
    /// Size still resting (size minus filled, never negative).
    pub fn remaining(&self) -> Decimal {
        // Most orders are unfilled, and every check of funds and exposure asks each order: an
        // unfilled positive size is its own remainder (same value and scale), without the
        // subtraction and comparison.
        let positive = !self.size.is_zero() && !self.size.is_sign_negative();
        if positive && self.filled.is_zero() && self.filled.scale() <= self.size.scale() {
            return self.size;
        }
        (self.size - self.filled).max(Decimal::ZERO)
    }
}

/// The event an order's report from the venue (stream, query or listing) stands for.
pub fn event_of_status(status: VenueOrderStatus) -> OrderEvent {
    match status {
        VenueOrderStatus::Open => OrderEvent::Accepted,
        VenueOrderStatus::PartiallyFilled => OrderEvent::Filled { complete: false },
        VenueOrderStatus::Filled => OrderEvent::Filled { complete: true },
        VenueOrderStatus::Cancelled => OrderEvent::Cancelled,
        VenueOrderStatus::Failed => OrderEvent::Rejected,
    }
}

/// What comes after an intent's outcome was applied to its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterOutcome {
    Nothing,
    /// Diff the market again (a place was refused: its slot is empty).
    Rework,
    /// Price the market afresh: the place was not sent on a target that is now old.
    Requote,
    /// Ask the venue about the order: its report is authoritative.
    Resolve(ClientOrderId),
    /// A cancel was answered (`failed`: not done); the venue is asked about the order.
    CancelAnswered {
        id: ClientOrderId,
        failed: bool,
    },
    /// A cancel-all was answered (`failed`: not done).
    CancelAllAnswered {
        failed: bool,
    },
}

/// What the classified answer to one intent does to its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomePlan {
    /// The venue id the answer names, to record on the order first.
    pub venue_id: Option<(ClientOrderId, VenueOrderId)>,
    /// The order's event and its detail.
    pub event: Option<(ClientOrderId, OrderEvent, Option<String>)>,
    pub then: AfterOutcome,
}

/// Plans the effect of `result`, the outcome of `intent`. Shared by OrderManager and the
/// backtest.
pub fn plan_outcome(intent: &Intent, result: &DispatchResult) -> OutcomePlan {
    let plan = |venue_id, event, then| OutcomePlan {
        venue_id,
        event,
        then,
    };
    match (intent, result) {
        (
            Intent::Place {
                client_order_id: id,
                ..
            },
            DispatchResult::Done { venue_order_id },
        ) => plan(
            venue_order_id.clone().map(|v| (id.clone(), v)),
            Some((id.clone(), OrderEvent::Accepted, None)),
            AfterOutcome::Nothing,
        ),
        (
            Intent::Place {
                client_order_id: id,
                ..
            },
            DispatchResult::Rejected { message, .. },
        ) => plan(
            None,
            Some((id.clone(), OrderEvent::Rejected, Some(message.clone()))),
            AfterOutcome::Rework,
        ),
        (
            Intent::Place {
                client_order_id: id,
                ..
            },
            DispatchResult::Retry { message, .. },
        ) => plan(
            None,
            Some((
                id.clone(),
                OrderEvent::Rejected,
                Some(format!("dead-lettered: {message}")),
            )),
            AfterOutcome::Rework,
        ),
        (
            Intent::Place {
                client_order_id: id,
                ..
            },
            DispatchResult::Unknown {
                message,
                venue_order_id,
            },
        ) => plan(
            // DeltaDeFi names the order at build time: the id to look it up by.
            venue_order_id.clone().map(|v| (id.clone(), v)),
            Some((
                id.clone(),
                OrderEvent::OutcomeUnknown,
                Some(message.clone()),
            )),
            AfterOutcome::Resolve(id.clone()),
        ),
        (
            Intent::Place {
                client_order_id: id,
                ..
            },
            DispatchResult::NotSent { reason },
        ) => plan(
            None,
            Some((
                id.clone(),
                OrderEvent::Cancelled,
                Some(format!("not sent: {reason}")),
            )),
            // Its target is what was not sent (old, halted, or crossing the venue's book as it
            // is now): quote the slot again from a fresh price, not from that target.
            AfterOutcome::Requote,
        ),
        (
            Intent::Cancel {
                client_order_id: id,
                ..
            },
            r,
        ) => plan(
            None,
            None,
            AfterOutcome::CancelAnswered {
                id: id.clone(),
                failed: !matches!(r, DispatchResult::Done { .. }),
            },
        ),
        (Intent::CancelAll { .. }, r) => plan(
            None,
            None,
            AfterOutcome::CancelAllAnswered {
                failed: !matches!(r, DispatchResult::Done { .. }),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderState as S;

    #[test]
    fn remaining_is_size_less_filled_to_the_digit() {
        let d = |s: &str| s.parse::<Decimal>().expect("decimal literal");
        // The long form's text, digit for digit (its scale included).
        let cases = [
            ("10", "0"),
            ("10", "0.00"),
            ("10.00", "0"),
            ("10.00", "-0"),
            ("10", "2.5"),
            ("10", "12"),
            ("0.00", "0"),
            ("-1", "0"),
        ];
        for (size, filled) in cases {
            let want = (d(size) - d(filled)).max(Decimal::ZERO).to_string();
            let o = Order {
                client_order_id: "mm-1-1".into(),
                market: "ADAUSDM".into(),
                slot: crate::types::Slot::parse("buy0").expect("slot"),
                side: crate::types::Side::Buy,
                price: d("0.45"),
                size: d(size),
                filled: d(filled),
                state: S::Working,
                venue_order_id: None,
                created_at_ms: 0,
                traceparent: None,
            };
            assert_eq!(o.remaining().to_string(), want, "{size} less {filled}");
        }
    }

    #[test]
    fn legal_edges_table() {
        let cases: &[(&str, S, E, S)] = &[
            ("ack", S::PendingNew, E::Accepted, S::Working),
            ("late ack of unknown", S::Unknown, E::Accepted, S::Working),
            (
                "ack while cancelling",
                S::PendingCancel,
                E::Accepted,
                S::PendingCancel,
            ),
            (
                "partial",
                S::Working,
                E::Filled { complete: false },
                S::PartiallyFilled,
            ),
            (
                "partial again",
                S::PartiallyFilled,
                E::Filled { complete: false },
                S::PartiallyFilled,
            ),
            (
                "fill before ack",
                S::PendingNew,
                E::Filled { complete: true },
                S::Filled,
            ),
            (
                "fill while cancelling",
                S::PendingCancel,
                E::Filled { complete: true },
                S::Filled,
            ),
            (
                "cancel request",
                S::Working,
                E::CancelRequested,
                S::PendingCancel,
            ),
            (
                "cancel confirmed",
                S::PendingCancel,
                E::Cancelled,
                S::Cancelled,
            ),
            (
                "venue cancelled on its own",
                S::Working,
                E::Cancelled,
                S::Cancelled,
            ),
            ("reject", S::PendingNew, E::Rejected, S::Rejected),
            ("lost answer", S::PendingNew, E::OutcomeUnknown, S::Unknown),
            ("unknown not at venue", S::Unknown, E::NotFound, S::Rejected),
            ("working vanished", S::Working, E::NotFound, S::Cancelled),
            ("late cancel of filled", S::Filled, E::Cancelled, S::Filled),
        ];
        for (name, from, ev, to) in cases {
            assert_eq!(from.transition(ev), Ok(*to), "case {name}");
        }
    }

    #[test]
    fn illegal_edges_are_errors() {
        let cases: &[(S, E)] = &[
            (S::Cancelled, E::Accepted),
            (S::Rejected, E::Filled { complete: false }),
            (S::Filled, E::CancelRequested),
            (S::Working, E::Rejected),
            (S::Working, E::OutcomeUnknown),
            (S::Cancelled, E::Filled { complete: true }),
        ];
        for (from, ev) in cases {
            assert_eq!(
                from.transition(ev),
                Err(OrderError::InvalidTransition {
                    from: *from,
                    event: ev.clone()
                }),
                "{from:?} on {ev:?}"
            );
        }
    }

    #[test]
    fn terminal_states_never_become_live_again() {
        let events = [
            E::Accepted,
            E::Filled { complete: false },
            E::Filled { complete: true },
            E::CancelRequested,
            E::Cancelled,
            E::Rejected,
            E::OutcomeUnknown,
            E::NotFound,
        ];
        for st in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for ev in &events {
                if let Ok(next) = st.transition(ev) {
                    assert!(next.is_terminal(), "{st:?} on {ev:?} became {next:?}");
                }
            }
        }
    }

    #[test]
    fn state_spelling_round_trips() {
        for st in S::ALL {
            assert_eq!(S::parse(st.as_str()), Some(st));
        }
        assert_eq!(S::parse("open"), None);
    }
}
