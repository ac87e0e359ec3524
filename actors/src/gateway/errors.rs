//! What each DeltaDeFi error code means for the order it answered (spec §1.3), as one table.

use crate::intent::IntentKind;
use crate::messages::DispatchResult;
use crate::venue::VenueError;

/// How long the venue's "trading locked" (5002) pauses us; DeltaDeFi's own connector waits 60 s.
pub const TRADING_LOCKED_PAUSE_MS: i64 = 60_000;

/// The action a code calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The venue refused; nothing happened there.
    DefiniteReject,
    /// Transient; nothing happened; retry with backoff.
    Retry,
    /// The built transaction is stale or its inputs are spent; build again (a retry).
    Rebuild,
    /// Already done (4302 already submitted; 4200/4201 for a cancel).
    AlreadyDone,
    /// Trading is locked for a Hydra cycle; pause, then retry.
    Pause,
    /// The account or key is unusable: reject, and an operator must act.
    Fatal,
}

/// Classifies a DeltaDeFi code for an action of `kind`.
pub fn classify(code: u32, kind: IntentKind) -> ErrorClass {
    match (code, kind) {
        (4200 | 4201, IntentKind::Cancel | IntentKind::CancelAll) => ErrorClass::AlreadyDone,
        (4302, _) => ErrorClass::AlreadyDone,
        (4290 | 5000 | 5001 | 4301, _) => ErrorClass::Retry,
        (4300 | 4402, _) => ErrorClass::Rebuild,
        (5002, _) => ErrorClass::Pause,
        (4010 | 4400 | 4406 | 4407, _) => ErrorClass::Fatal,
        (c, _) if c >= 5000 => ErrorClass::Retry,
        _ => ErrorClass::DefiniteReject,
    }
}

/// Turns a venue error into the outbox's view of it.
pub fn to_result(e: &VenueError, kind: IntentKind, now_ms: i64) -> DispatchResult {
    let code = Some(e.code);
    let message = e.message.clone();
    match classify(e.code, kind) {
        ErrorClass::DefiniteReject | ErrorClass::Fatal => {
            DispatchResult::Rejected { code, message }
        }
        ErrorClass::Retry | ErrorClass::Rebuild => DispatchResult::Retry {
            code,
            message,
            not_before_ms: None,
        },
        ErrorClass::Pause => DispatchResult::Retry {
            code,
            message,
            not_before_ms: Some(now_ms + TRADING_LOCKED_PAUSE_MS),
        },
        // A cancel that finds nothing is done; a place "already submitted" must be looked up
        // to learn its venue id: an unknown outcome, resolved by query, never resent.
        ErrorClass::AlreadyDone => match kind {
            IntentKind::Place => DispatchResult::Unknown {
                message: format!("{}: {message}", e.code),
                venue_order_id: None,
            },
            IntentKind::Cancel | IntentKind::CancelAll => DispatchResult::Done {
                venue_order_id: None,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IntentKind::{Cancel, CancelAll, Place};

    #[test]
    fn every_spec_code_has_its_action() {
        let cases = [
            (4000, Place, ErrorClass::DefiniteReject),
            (4010, Place, ErrorClass::Fatal),
            (4050, Place, ErrorClass::DefiniteReject),
            (4100, Place, ErrorClass::DefiniteReject),
            (4102, Place, ErrorClass::DefiniteReject),
            (4104, Place, ErrorClass::DefiniteReject),
            (4110, Place, ErrorClass::DefiniteReject),
            (4200, Cancel, ErrorClass::AlreadyDone),
            (4200, CancelAll, ErrorClass::AlreadyDone),
            (4201, Cancel, ErrorClass::AlreadyDone),
            (4202, Cancel, ErrorClass::DefiniteReject),
            (4290, Place, ErrorClass::Retry),
            (4300, Place, ErrorClass::Rebuild),
            (4301, Place, ErrorClass::Retry),
            (4302, Place, ErrorClass::AlreadyDone),
            (4406, Place, ErrorClass::Fatal),
            (5000, Place, ErrorClass::Retry),
            (5001, Cancel, ErrorClass::Retry),
            (5002, Place, ErrorClass::Pause),
            (5999, Place, ErrorClass::Retry),
        ];
        for (code, kind, want) in cases {
            assert_eq!(classify(code, kind), want, "{code} {kind:?}");
        }
    }

    #[test]
    fn results() {
        let e = |c| VenueError::new(c, "x");
        assert!(matches!(
            to_result(&e(4302), Place, 0),
            DispatchResult::Unknown { .. }
        ));
        assert_eq!(
            to_result(&e(4200), CancelAll, 0),
            DispatchResult::Done {
                venue_order_id: None
            }
        );
        assert_eq!(
            to_result(&e(5002), Place, 10),
            DispatchResult::Retry {
                code: Some(5002),
                message: "x".into(),
                not_before_ms: Some(10 + TRADING_LOCKED_PAUSE_MS)
            }
        );
    }
}
