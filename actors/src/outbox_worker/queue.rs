//! OutboxWorker's pure core: the non-terminal outbox rows, which one may go next, and what
//! each gateway outcome does to a row.
//!
//! Rules (each a test below):
//! - cancels and cancel-alls go before places; within a class, rows go in id order;
//! - a newer place for the same (market, slot) supersedes an older place that is not at the
//!   venue (never sent, or waiting for a retry after a definite non-execution);
//! - a cancel of an order whose place is not at the venue supersedes both;
//! - a cancel waits while its order's place is in flight or its outcome unknown, and learns
//!   the venue id from the place's acknowledgement; a cancel-all waits for the market's
//!   places in flight;
//! - a retryable failure backs off exponentially; `max_attempts` failures make the row dead;
//! - an unknown outcome is never resent: it waits for [`OutboxQueue::resolve`].

use std::collections::BTreeMap;

use crate::intent::{Intent, IntentKind};
pub use crate::messages::{DispatchResult, OutboxRow, OutboxStatus};
use crate::types::{ClientOrderId, VenueOrderId};

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 7] = [
        OutboxStatus::Pending,
        OutboxStatus::InFlight,
        OutboxStatus::Unknown,
        OutboxStatus::Done,
        OutboxStatus::Rejected,
        OutboxStatus::Superseded,
        OutboxStatus::Dead,
    ];

    /// Returns the database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::InFlight => "in_flight",
            OutboxStatus::Unknown => "unknown",
            OutboxStatus::Done => "done",
            OutboxStatus::Rejected => "rejected",
            OutboxStatus::Superseded => "superseded",
            OutboxStatus::Dead => "dead",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True once the row needs no more work.
    pub fn is_terminal(self) -> bool {
        match self {
            OutboxStatus::Done
            | OutboxStatus::Rejected
            | OutboxStatus::Superseded
            | OutboxStatus::Dead => true,
            OutboxStatus::Pending | OutboxStatus::InFlight | OutboxStatus::Unknown => false,
        }
    }
}

/// Why a place waiting in the outbox must not be sent any more: its market is halted
/// (`allowed` false), or it was decided more than `max_age_ms` ago, on prices now old.
pub fn unsendable(r: &OutboxRow, allowed: bool, now_ms: i64, max_age_ms: i64) -> Option<String> {
    if !allowed {
        Some(format!("trading is halted in {}", r.intent.market()))
    } else if now_ms - r.created_at_ms > max_age_ms {
        Some(format!(
            "decided {} ms ago, older than outbox.place_max_age_ms",
            now_ms - r.created_at_ms
        ))
    } else {
        None
    }
}

impl OutboxRow {
    /// A new pending row.
    pub fn new(id: i64, intent: Intent, now_ms: i64) -> Self {
        Self {
            id,
            intent,
            status: OutboxStatus::Pending,
            attempts: 0,
            created_at_ms: now_ms,
            sent_at_ms: None,
            next_attempt_at_ms: now_ms,
            completed_at_ms: None,
            last_error: None,
            traceparent: None,
            tick_recv_at: None,
        }
    }

    /// The same row, carrying `traceparent`.
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }
}

/// What the shell must do after a queue operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Persist this row snapshot.
    Row(OutboxRow),
    /// The order's place was superseded before reaching the venue: the order is cancelled.
    NeverSent(ClientOrderId),
    /// A row reached an outcome OrderManager must apply.
    Outcome {
        row: OutboxRow,
        result: DispatchResult,
    },
}

/// Retry policy.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

impl RetryPolicy {
    /// Delay before attempt `attempts + 1`.
    pub fn backoff_ms(&self, attempts: u32) -> i64 {
        let exp = attempts.saturating_sub(1).min(20);
        let ms = self
            .backoff_initial_ms
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_ms);
        i64::try_from(ms).unwrap_or(i64::MAX)
    }
}

/// The non-terminal rows.
#[derive(Debug)]
pub struct OutboxQueue {
    rows: BTreeMap<i64, OutboxRow>,
    /// Rows waiting for a rate-limit permit: not offered again meanwhile.
    reserved: std::collections::HashSet<i64>,
    policy: RetryPolicy,
}

fn at_venue_possible(st: OutboxStatus) -> bool {
    matches!(st, OutboxStatus::InFlight | OutboxStatus::Unknown)
}

impl OutboxQueue {
    /// An empty queue.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            rows: BTreeMap::new(),
            reserved: std::collections::HashSet::new(),
            policy,
        }
    }

    /// Number of non-terminal rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no work is left.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows in flight.
    pub fn in_flight(&self) -> usize {
        self.rows
            .values()
            .filter(|r| r.status == OutboxStatus::InFlight)
            .count()
    }

    /// Returns a row.
    pub fn get(&self, id: i64) -> Option<&OutboxRow> {
        self.rows.get(&id)
    }

    /// Iterates over rows with an unknown outcome.
    pub fn unknown(&self) -> impl Iterator<Item = &OutboxRow> {
        self.rows
            .values()
            .filter(|r| r.status == OutboxStatus::Unknown)
    }

    /// Loads rows after a restart. A place that was in flight when the process stopped has an
    /// unknown outcome: it is looked up, never resent. A cancel or cancel-all in flight (or
    /// unknown) then is settled here: the row is done, and the venue's listing decides what is
    /// still open (the start-up flatten, and for a cancel a lookup of its order, re-cancelled
    /// if the venue still lists it open) — so no row stays unknown forever.
    pub fn load(&mut self, rows: Vec<OutboxRow>, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        for mut r in rows.into_iter().filter(|r| !r.status.is_terminal()) {
            let unsettled = matches!(r.status, OutboxStatus::InFlight | OutboxStatus::Unknown);
            match (unsettled, r.intent.kind()) {
                (true, IntentKind::Place) => {
                    if r.status == OutboxStatus::InFlight {
                        r.status = OutboxStatus::Unknown;
                        r.last_error = Some("in flight when the worker stopped".into());
                        effects.push(Effect::Row(r.clone()));
                    }
                    self.rows.insert(r.id, r);
                }
                (true, kind @ (IntentKind::Cancel | IntentKind::CancelAll)) => {
                    r.status = OutboxStatus::Done;
                    r.completed_at_ms = Some(now_ms);
                    r.last_error = Some(
                        "outcome unknown at restart: settled by listing the venue's open orders"
                            .into(),
                    );
                    effects.push(Effect::Row(r.clone()));
                    if kind == IntentKind::Cancel {
                        let message = r.last_error.clone().unwrap_or_default();
                        effects.push(Effect::Outcome {
                            row: r,
                            result: DispatchResult::Unknown {
                                message,
                                venue_order_id: None,
                            },
                        });
                    }
                }
                (false, _) => {
                    self.rows.insert(r.id, r);
                }
            }
        }
        effects
    }

    fn supersede(&mut self, id: i64, by: i64, now_ms: i64, effects: &mut Vec<Effect>) {
        if let Some(mut r) = self.rows.remove(&id) {
            r.status = OutboxStatus::Superseded;
            r.completed_at_ms = Some(now_ms);
            r.last_error = Some(format!("superseded by outbox row {by}"));
            if let Intent::Place {
                client_order_id, ..
            } = &r.intent
            {
                effects.push(Effect::NeverSent(client_order_id.clone()));
            }
            effects.push(Effect::Row(r));
        }
    }

    /// Adds a durable row, superseding what it replaces.
    pub fn enqueue(&mut self, row: OutboxRow, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let not_sent = |r: &OutboxRow| r.status == OutboxStatus::Pending;
        let victims: Vec<i64> = match &row.intent {
            Intent::Place { market, slot, .. } => self
                .rows
                .values()
                .filter(|r| not_sent(r))
                .filter(|r| matches!(&r.intent, Intent::Place { market: m, slot: s, .. } if m == market && s == slot))
                .map(|r| r.id)
                .collect(),
            Intent::Cancel { client_order_id, .. } => {
                let place_unsent = self.rows.values().find(|r| {
                    not_sent(r) && matches!(&r.intent, Intent::Place { client_order_id: c, .. } if c == client_order_id)
                });
                match place_unsent {
                    Some(p) => {
                        let place_id = p.id;
                        let mut superseded = row.clone();
                        superseded.status = OutboxStatus::Superseded;
                        superseded.completed_at_ms = Some(now_ms);
                        superseded.last_error = Some(format!("order never sent: place {place_id} superseded"));
                        self.supersede(place_id, row.id, now_ms, &mut effects);
                        effects.push(Effect::Row(superseded));
                        return effects;
                    }
                    None => Vec::new(),
                }
            }
            Intent::CancelAll { market } => self
                .rows
                .values()
                .filter(|r| not_sent(r) && r.intent.market() == market)
                .map(|r| r.id)
                .collect(),
        };
        for v in victims {
            self.supersede(v, row.id, now_ms, &mut effects);
        }
        self.rows.insert(row.id, row);
        effects
    }

    fn blocked(&self, r: &OutboxRow) -> bool {
        match &r.intent {
            Intent::Place { .. } => false,
            Intent::Cancel { client_order_id, .. } => self.rows.values().any(|p| {
                at_venue_possible(p.status)
                    && matches!(&p.intent, Intent::Place { client_order_id: c, .. } if c == client_order_id)
            }),
            Intent::CancelAll { market } => self.rows.values().any(|p| {
                at_venue_possible(p.status) && p.intent.kind() == IntentKind::Place && p.intent.market() == market
            }),
        }
    }

    /// Holds a row back from [`OutboxQueue::next_ready`] while it waits for a permit.
    pub fn reserve(&mut self, id: i64) {
        self.reserved.insert(id);
    }

    /// Releases a reservation; returns true when the row is still waiting to be sent.
    pub fn unreserve(&mut self, id: i64) -> bool {
        self.reserved.remove(&id);
        self.rows
            .get(&id)
            .is_some_and(|r| r.status == OutboxStatus::Pending)
    }

    /// Rows waiting for a permit.
    pub fn reserved(&self) -> usize {
        self.reserved.len()
    }

    /// The next row to dispatch, if any may go now (rows waiting for a permit excluded).
    pub fn next_ready(&self, now_ms: i64) -> Option<i64> {
        self.next(now_ms, false)
    }

    /// The row a granted permit should carry: `preferred` if it is still waiting, else the
    /// next ready row, reserved or not (its own permit, when it comes, carries another).
    /// A permit is never wasted while a row is ready.
    pub fn take_for_permit(&mut self, preferred: i64, now_ms: i64) -> Option<i64> {
        let id = if self.unreserve(preferred) {
            Some(preferred)
        } else {
            self.next(now_ms, true)
        };
        if let Some(id) = id {
            self.reserved.remove(&id);
        }
        id
    }

    fn next(&self, now_ms: i64, include_reserved: bool) -> Option<i64> {
        let ready = |r: &&OutboxRow| {
            r.status == OutboxStatus::Pending
                && r.next_attempt_at_ms <= now_ms
                && (include_reserved || !self.reserved.contains(&r.id))
                && !self.blocked(r)
        };
        self.rows
            .values()
            .filter(ready)
            .find(|r| r.intent.kind().is_cancel())
            .or_else(|| self.rows.values().find(ready))
            .map(|r| r.id)
    }

    /// Earliest time a pending row becomes ready by the clock (ignoring blocks).
    pub fn next_wakeup_ms(&self) -> Option<i64> {
        self.rows
            .values()
            .filter(|r| r.status == OutboxStatus::Pending)
            .map(|r| r.next_attempt_at_ms)
            .min()
    }

    /// Supersedes every place waiting to be sent (not yet at the venue) for which `stop`
    /// returns a reason: a halted market, or an intent too old to be sent on its prices.
    pub fn drop_unsent_places(
        &mut self,
        mut stop: impl FnMut(&OutboxRow) -> Option<String>,
        now_ms: i64,
    ) -> Vec<Effect> {
        let victims: Vec<(i64, String)> = self
            .rows
            .values()
            .filter(|r| r.status == OutboxStatus::Pending && r.intent.kind() == IntentKind::Place)
            .filter_map(|r| stop(r).map(|why| (r.id, why)))
            .collect();
        let mut effects = Vec::new();
        for (id, why) in victims {
            self.reserved.remove(&id);
            effects.extend(self.on_result(id, DispatchResult::NotSent { reason: why }, now_ms));
        }
        effects
    }

    /// Marks a row as sent. Returns its snapshot to persist (with the send).
    pub fn mark_sent(&mut self, id: i64, now_ms: i64) -> Option<OutboxRow> {
        self.reserved.remove(&id);
        let r = self
            .rows
            .get_mut(&id)
            .filter(|r| r.status == OutboxStatus::Pending)?;
        r.status = OutboxStatus::InFlight;
        r.attempts += 1;
        r.sent_at_ms.get_or_insert(now_ms);
        Some(r.clone())
    }

    /// Applies the gateway's answer to a row.
    pub fn on_result(&mut self, id: i64, result: DispatchResult, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(mut row) = self.rows.remove(&id) else {
            return effects;
        };
        match &result {
            DispatchResult::Done { venue_order_id } => {
                row.status = OutboxStatus::Done;
                row.completed_at_ms = Some(now_ms);
                row.last_error = None;
                if let (
                    Intent::Place {
                        client_order_id, ..
                    },
                    Some(v),
                ) = (&row.intent, venue_order_id)
                {
                    self.learn_venue_id(client_order_id, v, &mut effects);
                }
            }
            DispatchResult::Rejected { code, message } => {
                row.status = OutboxStatus::Rejected;
                row.completed_at_ms = Some(now_ms);
                row.last_error = Some(describe(*code, message));
                if let Intent::Place {
                    client_order_id, ..
                } = &row.intent
                {
                    self.drop_cancels_of(client_order_id, "place rejected", now_ms, &mut effects);
                }
            }
            DispatchResult::Retry {
                code,
                message,
                not_before_ms,
            } => {
                row.last_error = Some(describe(*code, message));
                if row.attempts >= self.policy.max_attempts {
                    row.status = OutboxStatus::Dead;
                    row.completed_at_ms = Some(now_ms);
                    if let Intent::Place {
                        client_order_id, ..
                    } = &row.intent
                    {
                        self.drop_cancels_of(
                            client_order_id,
                            "place dead-lettered",
                            now_ms,
                            &mut effects,
                        );
                    }
                } else {
                    row.status = OutboxStatus::Pending;
                    let backoff = now_ms + self.policy.backoff_ms(row.attempts);
                    row.next_attempt_at_ms = not_before_ms.map_or(backoff, |t| t.max(backoff));
                    effects.push(Effect::Row(row.clone()));
                    self.rows.insert(id, row);
                    return effects;
                }
            }
            DispatchResult::NotSent { reason } => {
                row.status = OutboxStatus::Superseded;
                row.completed_at_ms = Some(now_ms);
                row.last_error = Some(format!("not sent: {reason}"));
                if let Intent::Place {
                    client_order_id, ..
                } = &row.intent
                {
                    effects.push(Effect::NeverSent(client_order_id.clone()));
                    self.drop_cancels_of(client_order_id, "place never sent", now_ms, &mut effects);
                }
                effects.push(Effect::Row(row));
                return effects;
            }
            DispatchResult::Unknown { message, .. } => {
                row.last_error = Some(message.clone());
                if row.intent.kind() == IntentKind::Place {
                    row.status = OutboxStatus::Unknown;
                    effects.push(Effect::Row(row.clone()));
                    effects.push(Effect::Outcome {
                        row: row.clone(),
                        result,
                    });
                    self.rows.insert(id, row);
                    return effects;
                }
                // Cancels are idempotent at the venue: an unknown cancel is simply retried.
                return self.requeue_cancel(row, now_ms, effects);
            }
        }
        effects.push(Effect::Row(row.clone()));
        effects.push(Effect::Outcome { row, result });
        effects
    }

    fn requeue_cancel(
        &mut self,
        mut row: OutboxRow,
        now_ms: i64,
        mut effects: Vec<Effect>,
    ) -> Vec<Effect> {
        if row.attempts >= self.policy.max_attempts {
            row.status = OutboxStatus::Dead;
            row.completed_at_ms = Some(now_ms);
            effects.push(Effect::Row(row.clone()));
            let result = DispatchResult::Retry {
                code: None,
                message: "cancel dead-lettered".into(),
                not_before_ms: None,
            };
            effects.push(Effect::Outcome { row, result });
            return effects;
        }
        row.status = OutboxStatus::Pending;
        row.next_attempt_at_ms = now_ms + self.policy.backoff_ms(row.attempts);
        effects.push(Effect::Row(row.clone()));
        self.rows.insert(row.id, row);
        effects
    }

    /// Resolves the place of `coid` whose outcome was unknown, once the venue has been asked.
    /// Nothing happens when no such row waits (it was resolved already).
    pub fn resolve(
        &mut self,
        coid: &ClientOrderId,
        at_venue: Option<VenueOrderId>,
        now_ms: i64,
    ) -> Vec<Effect> {
        let found = self.rows.values().find(|r| {
            r.status == OutboxStatus::Unknown
                && matches!(&r.intent, Intent::Place { client_order_id, .. } if client_order_id == coid)
        });
        let Some(id) = found.map(|r| r.id) else {
            return Vec::new();
        };
        let result = match at_venue {
            Some(v) => DispatchResult::Done {
                venue_order_id: Some(v),
            },
            None => DispatchResult::Rejected {
                code: None,
                message: "not found at the venue".into(),
            },
        };
        self.on_result(id, result, now_ms)
    }

    fn learn_venue_id(
        &mut self,
        coid: &ClientOrderId,
        v: &VenueOrderId,
        effects: &mut Vec<Effect>,
    ) {
        for r in self.rows.values_mut() {
            if let Intent::Cancel {
                client_order_id,
                venue_order_id,
                ..
            } = &mut r.intent
                && client_order_id == coid
                && venue_order_id.is_none()
            {
                *venue_order_id = Some(v.clone());
                effects.push(Effect::Row(r.clone()));
            }
        }
    }

    fn drop_cancels_of(
        &mut self,
        coid: &ClientOrderId,
        why: &str,
        now_ms: i64,
        effects: &mut Vec<Effect>,
    ) {
        let ids: Vec<i64> = self
            .rows
            .values()
            .filter(|r| matches!(&r.intent, Intent::Cancel { client_order_id, .. } if client_order_id == coid))
            .map(|r| r.id)
            .collect();
        for id in ids {
            if let Some(mut r) = self.rows.remove(&id) {
                r.status = OutboxStatus::Superseded;
                r.completed_at_ms = Some(now_ms);
                r.last_error = Some(why.to_string());
                effects.push(Effect::Row(r));
            }
        }
    }
}

fn describe(code: Option<u32>, message: &str) -> String {
    match code {
        Some(c) => format!("{c}: {message}"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{MarketId, Side, Slot};
    use rust_decimal::Decimal;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
        }
    }
    fn m() -> MarketId {
        MarketId("ADAUSDM".into())
    }
    fn place(id: i64, coid: &str, level: u8) -> OutboxRow {
        OutboxRow::new(
            id,
            Intent::Place {
                client_order_id: ClientOrderId(coid.into()),
                market: m(),
                slot: Slot {
                    side: Side::Buy,
                    level,
                },
                side: Side::Buy,
                price: Decimal::new(4500, 4),
                size: Decimal::from(100),
            },
            0,
        )
    }
    fn cancel(id: i64, coid: &str) -> OutboxRow {
        OutboxRow::new(
            id,
            Intent::Cancel {
                client_order_id: ClientOrderId(coid.into()),
                market: m(),
                venue_order_id: None,
            },
            0,
        )
    }
    fn status(effects: &[Effect], id: i64) -> Option<OutboxStatus> {
        effects.iter().rev().find_map(|e| match e {
            Effect::Row(r) if r.id == id => Some(r.status),
            _ => None,
        })
    }

    #[test]
    fn newer_place_supersedes_unsent_place_in_same_slot() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.enqueue(place(2, "b", 1), 0);
        let fx = q.enqueue(place(3, "c", 0), 0);
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Superseded));
        assert!(fx.contains(&Effect::NeverSent(ClientOrderId("a".into()))));
        assert!(q.get(2).is_some(), "other slot untouched");
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn sent_place_is_not_superseded() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.mark_sent(1, 0);
        let fx = q.enqueue(place(2, "b", 0), 0);
        assert!(fx.is_empty());
        assert_eq!(q.get(1).map(|r| r.status), Some(OutboxStatus::InFlight));
    }

    #[test]
    fn cancel_of_unsent_place_collapses_both() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        let fx = q.enqueue(cancel(2, "a"), 0);
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Superseded));
        assert_eq!(status(&fx, 2), Some(OutboxStatus::Superseded));
        assert!(fx.contains(&Effect::NeverSent(ClientOrderId("a".into()))));
        assert!(q.is_empty());
    }

    #[test]
    fn cancel_waits_for_place_ack_and_learns_venue_id() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.mark_sent(1, 0);
        q.enqueue(cancel(2, "a"), 0);
        assert_eq!(q.next_ready(10), None, "cancel must wait for the place");
        let fx = q.on_result(
            1,
            DispatchResult::Done {
                venue_order_id: Some(VenueOrderId("v1".into())),
            },
            5,
        );
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Done));
        assert_eq!(q.next_ready(10), Some(2));
        assert!(matches!(
            &q.get(2).map(|r| r.intent.clone()),
            Some(Intent::Cancel { venue_order_id: Some(v), .. }) if v.as_str() == "v1"
        ));
    }

    #[test]
    fn a_permit_for_a_superseded_row_carries_the_next_one() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.reserve(1);
        q.enqueue(place(2, "b", 0), 0); // supersedes 1 while it waits for its permit
        assert_eq!(q.take_for_permit(1, 0), Some(2));
        q.mark_sent(2, 0);
        assert_eq!(q.take_for_permit(2, 0), None, "nothing else is ready");
    }

    #[test]
    fn cancels_go_before_places() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.mark_sent(1, 0);
        q.on_result(
            1,
            DispatchResult::Done {
                venue_order_id: Some(VenueOrderId("v1".into())),
            },
            0,
        );
        q.enqueue(place(2, "b", 1), 0);
        q.enqueue(cancel(3, "a"), 0);
        assert_eq!(q.next_ready(0), Some(3));
    }

    #[test]
    fn retries_back_off_then_dead_letter() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        let retry = || DispatchResult::Retry {
            code: Some(5000),
            message: "internal".into(),
            not_before_ms: None,
        };
        q.mark_sent(1, 0);
        q.on_result(1, retry(), 0);
        assert_eq!(q.get(1).map(|r| r.next_attempt_at_ms), Some(100));
        assert_eq!(q.next_ready(99), None);
        assert_eq!(q.next_ready(100), Some(1));
        q.mark_sent(1, 100);
        q.on_result(1, retry(), 100);
        assert_eq!(q.get(1).map(|r| r.next_attempt_at_ms), Some(300));
        q.mark_sent(1, 300);
        let fx = q.on_result(1, retry(), 300);
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Dead));
        assert!(q.is_empty());
    }

    #[test]
    fn unknown_place_is_never_resent_until_resolved() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.mark_sent(1, 0);
        q.on_result(
            1,
            DispatchResult::Unknown {
                message: "timeout".into(),
                venue_order_id: None,
            },
            10,
        );
        assert_eq!(q.next_ready(1_000_000), None);
        assert!(q.resolve(&ClientOrderId("zz".into()), None, 15).is_empty());
        let fx = q.resolve(&ClientOrderId("a".into()), None, 20);
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Rejected));
        assert!(q.is_empty());
    }

    #[test]
    fn restart_turns_in_flight_into_unknown() {
        let mut q = OutboxQueue::new(policy());
        let mut r = place(1, "a", 0);
        r.status = OutboxStatus::InFlight;
        let fx = q.load(vec![r, place(2, "b", 1)], 5);
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Unknown));
        assert_eq!(q.next_ready(0), Some(2));
    }

    #[test]
    fn cancels_unknown_at_restart_are_settled_not_left_unknown() {
        let mut q = OutboxQueue::new(policy());
        let mut c = cancel(1, "a");
        c.status = OutboxStatus::InFlight;
        let mut all = OutboxRow::new(2, Intent::CancelAll { market: m() }, 0);
        all.status = OutboxStatus::Unknown;
        let fx = q.load(vec![c, all], 9);
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Done));
        assert_eq!(status(&fx, 2), Some(OutboxStatus::Done));
        // The cancel's order is looked up (and cancelled again if still open).
        assert!(fx.iter().any(|e| matches!(e, Effect::Outcome { row, result: DispatchResult::Unknown { .. } } if row.id == 1)));
        assert!(q.is_empty(), "nothing waits forever");
    }

    #[test]
    fn cancel_all_supersedes_unsent_and_waits_for_in_flight() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.enqueue(place(2, "b", 1), 0);
        q.mark_sent(2, 0);
        let fx = q.enqueue(OutboxRow::new(3, Intent::CancelAll { market: m() }, 0), 0);
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Superseded));
        assert_eq!(q.next_ready(0), None);
        q.on_result(
            2,
            DispatchResult::Done {
                venue_order_id: Some(VenueOrderId("v2".into())),
            },
            1,
        );
        assert_eq!(q.next_ready(1), Some(3));
    }

    #[test]
    fn unsent_places_of_a_halted_market_or_too_old_are_dropped() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.enqueue(place(2, "b", 1), 0);
        q.mark_sent(2, 0);
        q.reserve(1);
        q.enqueue(cancel(3, "zz"), 0);
        let fx = q.drop_unsent_places(
            |r| (r.created_at_ms < 100).then(|| "stale".to_string()),
            500,
        );
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Superseded));
        assert!(fx.contains(&Effect::NeverSent(ClientOrderId("a".into()))));
        assert_eq!(
            q.get(2).map(|r| r.status),
            Some(OutboxStatus::InFlight),
            "at the venue"
        );
        assert!(q.get(3).is_some(), "cancels stay");
        assert_eq!(q.reserved(), 0);
    }

    #[test]
    fn a_place_not_sent_is_superseded_and_its_order_cancelled() {
        let mut q = OutboxQueue::new(policy());
        q.enqueue(place(1, "a", 0), 0);
        q.mark_sent(1, 0);
        q.enqueue(cancel(2, "a"), 0);
        let fx = q.on_result(
            1,
            DispatchResult::NotSent {
                reason: "trading is halted in ADAUSDM".into(),
            },
            5,
        );
        assert_eq!(status(&fx, 1), Some(OutboxStatus::Superseded));
        assert_eq!(status(&fx, 2), Some(OutboxStatus::Superseded));
        assert!(fx.contains(&Effect::NeverSent(ClientOrderId("a".into()))));
        assert!(q.is_empty());
    }
}
