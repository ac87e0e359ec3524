//! The last gate before an order action is written to the venue, used by every transport.
//!
//! A place passes only while the halt gate is open for its market, and only once the rate
//! limiter has let it through the venue budget and recorded it; the halt gate is asked again
//! after that wait, so a halt that engaged meanwhile still stops it. A post-only place that
//! would cross the venue's book as last seen ([`VenueBooks::would_cross`]) is not written
//! either: the venue could only reject it (4104), and the action would be spent. Cancels pass whatever the
//! halt gate says, and even when their record cannot be committed.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::{AcquireSend, PermitError, SendPermit};
use crate::halt_gate::HaltGate;
use crate::intent::IntentKind;
pub use crate::venue::NotSent;
use crate::venue::SendRecord;
use crate::venue_book::VenueBooks;

/// How a transport asks to write an order action: the halt gate and the rate limiter.
#[derive(Clone)]
pub struct SendGate {
    limiter: Option<Recipient<AcquireSend>>,
    halt: Arc<HaltGate>,
    books: Arc<VenueBooks>,
    max_wait: Duration,
}

impl std::fmt::Debug for SendGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGate")
            .field("limited", &self.limiter.is_some())
            .finish()
    }
}

/// Attempts at reaching a rate limiter that restarted under a waiting request.
const LIMITER_ATTEMPTS: u32 = 5;

impl SendGate {
    /// The gate of a running service; a request waits at most `max_wait` for the budget.
    /// Post-only places that would cross the venue's book in `books` are not written.
    pub fn new(
        limiter: Recipient<AcquireSend>,
        halt: Arc<HaltGate>,
        books: Arc<VenueBooks>,
        max_wait: Duration,
    ) -> Self {
        Self {
            limiter: Some(limiter),
            halt,
            books,
            max_wait,
        }
    }

    /// A gate with no budget, only `halt`: for tests of one transport alone.
    pub fn unlimited_for_tests(halt: Arc<HaltGate>) -> Self {
        Self {
            limiter: None,
            halt,
            books: Arc::new(VenueBooks::new([], 0)),
            max_wait: Duration::ZERO,
        }
    }

    /// The longest a request waits here for the budget.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Why `record` must not be written now: its market halted, or it is a post-only place
    /// the venue's book has moved onto.
    fn stopped(&self, record: &SendRecord) -> Option<NotSent> {
        if record.kind == IntentKind::Place && !self.halt.allows_place(&record.market) {
            return Some(NotSent::Halted(record.market.to_string()));
        }
        super::crossing_touch(&self.books, record).map(|touch| NotSent::WouldCross {
            market: record.market.to_string(),
            touch,
        })
    }

    /// Waits for leave to write the action described by `record` now.
    ///
    /// # Errors
    /// [`NotSent`]: the action must not be written (and was not).
    pub async fn acquire(&self, record: SendRecord) -> Result<SendPermit, NotSent> {
        if let Some(h) = self.stopped(&record) {
            return Err(h);
        }
        let Some(limiter) = &self.limiter else {
            Self::note_written(&record);
            return Ok(SendPermit {
                sent_at_ms: crate::types::now_ms(),
                recorded: false,
            });
        };
        let wait = async {
            // Dropped with this future at the deadline below: the limiter then drops the
            // request instead of spending a slot of the budget on a write that will not come.
            let waiting = Arc::new(());
            let mut attempt = 0;
            loop {
                attempt += 1;
                match limiter
                    .send(AcquireSend::while_held(record.clone(), &waiting))
                    .await
                {
                    Ok(Ok(p)) => return Ok(p),
                    Ok(Err(PermitError::NotRecorded(e))) => return Err(NotSent::NotRecorded(e)),
                    Ok(Err(PermitError::Halted(m))) => return Err(NotSent::Halted(m)),
                    Ok(Err(PermitError::WouldCross { market, touch })) => {
                        return Err(NotSent::WouldCross { market, touch });
                    }
                    Ok(Err(PermitError::Dropped)) if attempt < LIMITER_ATTEMPTS => {
                        actix_rt::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(Err(e)) => return Err(NotSent::LimiterUnavailable(e.to_string())),
                    Err(e) => return Err(NotSent::LimiterUnavailable(e.to_string())),
                }
            }
        };
        // Bounded: the caller's own deadline must not pass while a request still waits here
        // (it would then be sent after its outcome was decided).
        let permit = match tokio::time::timeout(self.max_wait, wait).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(NotSent::BudgetWait(self.max_wait.as_millis() as u64));
            }
        };
        // The wait may have been long: a halt that engaged meanwhile still stops a place, and
        // so does a book that moved onto it (its budget slot is spent either way; the venue's
        // is not).
        if let Some(h) = self.stopped(&record) {
            return Err(h);
        }
        Self::note_written(&record);
        Ok(permit)
    }

    /// The action is written now: its tick's latency goes to the histogram.
    fn note_written(record: &SendRecord) {
        if let (Some(t), Ok(mut h)) = (record.tick_recv_at, crate::latency::tick_to_write().lock())
        {
            h.record(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
    }
}
