//! The venue seen by the service, independent of transport: requests the gateway makes,
//! replies and errors (with DeltaDeFi's numeric codes), and the account-stream events.
//! MockExchange speaks these in process; the DeltaDeFi REST/WS codecs translate to them.

use actix::prelude::*;
use rust_decimal::Decimal;

use crate::intent::IntentKind;
use crate::types::{ClientOrderId, MarketId, Side, TradeId, VenueOrderId};

/// Status of an order as the venue reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VenueOrderStatus {
    Open,
    PartiallyFilled,
    Filled,
    Cancelled,
    Failed,
}

impl VenueOrderStatus {
    /// True when the order no longer rests on the book.
    pub fn is_terminal(self) -> bool {
        match self {
            VenueOrderStatus::Filled | VenueOrderStatus::Cancelled | VenueOrderStatus::Failed => {
                true
            }
            VenueOrderStatus::Open | VenueOrderStatus::PartiallyFilled => false,
        }
    }
}

/// An order as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueOrder {
    pub venue_order_id: VenueOrderId,
    /// Ours, where the venue carries it (the mock does; DeltaDeFi does not).
    pub client_order_id: Option<ClientOrderId>,
    pub market: MarketId,
    pub side: Side,
    pub price: Decimal,
    pub size: Decimal,
    pub filled: Decimal,
    pub status: VenueOrderStatus,
    pub ts_ms: i64,
}

/// Maker or taker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liquidity {
    Maker,
    Taker,
}

impl Liquidity {
    /// Returns the lower-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Liquidity::Maker => "maker",
            Liquidity::Taker => "taker",
        }
    }
}

/// One execution of one of our orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueFill {
    pub trade_id: TradeId,
    pub venue_order_id: VenueOrderId,
    pub client_order_id: Option<ClientOrderId>,
    pub market: MarketId,
    pub side: Side,
    pub price: Decimal,
    pub size: Decimal,
    /// Fee in the quote asset.
    pub fee: Decimal,
    pub liquidity: Liquidity,
    pub ts_ms: i64,
}

/// One asset balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub asset: String,
    pub free: Decimal,
    pub locked: Decimal,
}

/// A venue error: DeltaDeFi's numeric code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("venue error {code}: {message}")]
pub struct VenueError {
    pub code: u32,
    pub message: String,
}

impl VenueError {
    /// Builds an error.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VenueFailure {
    /// The venue answered with an error: nothing happened there.
    #[error(transparent)]
    Rejected(#[from] VenueError),
    /// The request may have taken effect (a submit whose answer was lost). Carries the venue's
    /// order id when it is known (DeltaDeFi gives it at build time), the only handle to look
    /// the order up.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown {
        venue_order_id: Option<VenueOrderId>,
        reason: String,
    },
    /// The request was never written to the venue (halted, or its send could not be
    /// recorded): nothing happened there, and a place must not be retried.
    #[error("not sent: {0}")]
    NotSent(#[from] NotSent),
}

/// Which outbox row (and attempt) a request carries out, for the send record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendTag {
    pub outbox_id: Option<i64>,
    pub attempt: u32,
    /// Receive instant of the tick behind it, for tick → write latency.
    pub tick_recv_at: Option<std::time::Instant>,
}

/// A new post-only limit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub client_order_id: ClientOrderId,
    pub market: MarketId,
    pub side: Side,
    pub price: Decimal,
    pub size: Decimal,
    /// W3C traceparent of the gateway request, for the transport's spans.
    pub traceparent: Option<String>,
    pub tag: SendTag,
}

/// One request to the venue.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<VenueReply, VenueFailure>")]
pub enum VenueRequest {
    Place(NewOrder),
    /// Cancel by venue id, or by our id where the venue knows it.
    Cancel {
        venue_order_id: Option<VenueOrderId>,
        client_order_id: ClientOrderId,
        market: MarketId,
        tag: SendTag,
        /// The trace it continues (the intent's), for the transport's per-step spans.
        traceparent: Option<String>,
    },
    CancelAll {
        market: MarketId,
        tag: SendTag,
        traceparent: Option<String>,
    },
    /// Look one order up (outcome resolution).
    Query {
        venue_order_id: Option<VenueOrderId>,
        client_order_id: ClientOrderId,
    },
    OpenOrders {
        market: MarketId,
    },
    Balances,
    /// The account's latest executions in a market (newest first): what a resync uses to catch
    /// fills made while the account stream was down.
    RecentTrades {
        market: MarketId,
    },
}

/// The venue's answer to a [`VenueRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueReply {
    Placed(VenueOrder),
    Cancelled(VenueOrderId),
    CancelledAll(Vec<VenueOrderId>),
    /// One order, with the fills the venue lists for it (empty where it lists none).
    Order {
        order: Option<VenueOrder>,
        fills: Vec<VenueFill>,
    },
    OpenOrders(Vec<VenueOrder>),
    Balances(Vec<Balance>),
    /// Executions as (trade id, order id).
    Trades(Vec<(TradeId, VenueOrderId)>),
}

/// One account-stream event.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum VenueEvent {
    Order(VenueOrder),
    Fill(VenueFill),
    Balances(Vec<Balance>),
}

impl VenueRequest {
    /// The send record of a request the venue counts against the budget (`None` for reads).
    pub fn send_record(&self, source: &'static str) -> Option<SendRecord> {
        use crate::intent::IntentKind;
        let (kind, market, tag, post_only) = match self {
            VenueRequest::Place(o) => {
                (IntentKind::Place, &o.market, o.tag, Some((o.side, o.price)))
            }
            VenueRequest::Cancel { market, tag, .. } => (IntentKind::Cancel, market, *tag, None),
            VenueRequest::CancelAll { market, tag, .. } => {
                (IntentKind::CancelAll, market, *tag, None)
            }
            VenueRequest::Query { .. }
            | VenueRequest::OpenOrders { .. }
            | VenueRequest::Balances
            | VenueRequest::RecentTrades { .. } => return None,
        };
        Some(SendRecord {
            sent_at_ms: 0,
            kind,
            market: market.clone(),
            outbox_id: tag.outbox_id,
            attempt: tag.attempt,
            source,
            venue_order: None,
            post_only,
            tick_recv_at: tag.tick_recv_at,
        })
    }
}

/// One price level of a book: (price, base quantity).
pub type Level = (Decimal, Decimal);

/// A venue's order book as its depth stream reports it: bids best (highest) first, asks best
/// (lowest) first. The venue's own snapshot, our orders included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Depth {
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// One order action let through to the venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    pub sent_at_ms: i64,
    pub kind: IntentKind,
    pub market: MarketId,
    /// The outbox row, for actions that come from the outbox.
    pub outbox_id: Option<i64>,
    pub attempt: u32,
    /// Who sent it outside the outbox (`startup`, `watchdog`), else `outbox`.
    pub source: &'static str,
    /// For a place: the venue's id of the order and ours.
    pub venue_order: Option<(VenueOrderId, ClientOrderId)>,
    /// For a post-only place: its side and price, to check against the venue's book right
    /// before it is granted and written (not stored).
    pub post_only: Option<(Side, Decimal)>,
    /// Receive instant of the tick behind it, for tick → write latency (not stored).
    pub tick_recv_at: Option<std::time::Instant>,
}

/// Why an order action was not written to the venue. Nothing reached the venue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSent {
    #[error("trading is halted in {0}")]
    Halted(String),
    #[error("the send could not be recorded: {0}")]
    NotRecorded(String),
    #[error("the rate limiter did not answer: {0}")]
    LimiterUnavailable(String),
    #[error("no budget within {0} ms")]
    BudgetWait(u64),
    #[error("a post-only place in {market} would cross the venue's book at {touch}")]
    WouldCross { market: String, touch: Decimal },
}
