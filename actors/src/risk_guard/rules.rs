//! RiskGuard's pure core: positions and PnL from fills, the trading state of each market, and
//! the verdict on every intent.
//!
//! Position accounting is average cost: a fill that reduces the position realizes
//! `closed × (exit − average cost)` (sign by side); a fill that flips it opens the remainder at
//! the fill price. Marked PnL = realized − fees + position × (mark − average cost).
//! Daily PnL is measured from a baseline taken at start and at each UTC midnight.
//!
//! Trading state per market: HALTED when a halt reason holds (kill switch, daily loss, stale,
//! unconfirmed or diverged reference, storage, accounting, fatal, shutdown); else REDUCING while
//! |position| ≥ `max_position`; else ACTIVE. All arithmetic on positions and PnL is checked.

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use crate::config::RiskConfig;
use crate::intent::Intent;
pub use crate::messages::{Denial, HaltReason, TradingState};
use crate::messages::{FundsInUse, OpenExposure, SidesAllowed};
use crate::pricing_rules::distance_bps;
use crate::types::{AssetNames, Side};
use crate::venue::Balance;

impl TradingState {
    /// Returns the operator spelling (`ACTIVE`, `REDUCING`, `HALTED`).
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "ACTIVE",
            TradingState::Reducing => "REDUCING",
            TradingState::Halted => "HALTED",
        }
    }
}

impl HaltReason {
    /// Returns the spelling stored in `risk_events.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            HaltReason::KillSwitch => "kill_switch",
            HaltReason::DailyLoss => "daily_loss",
            HaltReason::StaleFeed => "stale_feed",
            HaltReason::ReferenceUnconfirmed => "reference_unconfirmed",
            HaltReason::ReferenceDiverged => "reference_diverged",
            HaltReason::Storage => "storage",
            HaltReason::Accounting => "accounting",
            HaltReason::Fatal => "fatal",
            HaltReason::Shutdown => "shutdown",
        }
    }
}

impl Denial {
    /// Every reason's spelling, in the order figures list them (alphabetical).
    pub const KINDS: [&'static str; 9] = [
        "halted",
        "insufficient_funds",
        "no_balance",
        "no_reference",
        "order_too_large",
        "outside_band",
        "position_limit",
        "reducing",
        "too_many_open_orders",
    ];

    /// The denial's reason, for metrics and figures.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// Where [`Self::kind`] is in [`Self::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            Denial::Halted(_) => 0,
            Denial::InsufficientFunds { .. } => 1,
            Denial::NoBalance { .. } => 2,
            Denial::NoReference => 3,
            Denial::OrderTooLarge { .. } => 4,
            Denial::OutsideBand { .. } => 5,
            Denial::PositionLimit { .. } => 6,
            Denial::Reducing(_) => 7,
            Denial::TooManyOpenOrders { .. } => 8,
        }
    }
}

/// A batch's denials counted by reason, without an allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DenialCounts([u64; Denial::KINDS.len()]);

impl DenialCounts {
    /// Each reason with denials, as its index in [`Denial::KINDS`], its spelling and its
    /// count, in that order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &'static str, u64)> + '_ {
        Denial::KINDS
            .iter()
            .zip(self.0)
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(i, (k, n))| (i, *k, n))
    }

    /// Counts given by spelling (a test's shorthand); an unknown spelling is ignored.
    #[cfg(test)]
    pub fn of(counts: &[(&str, u64)]) -> Self {
        let mut out = Self::default();
        for (kind, n) in counts {
            if let Some(i) = Denial::KINDS.iter().position(|k| k == kind) {
                out.0[i] += n;
            }
        }
        out
    }
}

/// What a place can be funded with: the venue's balances and what our live orders lock.
#[derive(Debug, Clone)]
pub struct Capital<'a> {
    /// The base and quote asset of the place's market, as balances name them.
    pub assets: (&'a str, &'a str),
    pub balances: &'a [Balance],
    pub in_use: &'a FundsInUse,
    /// Fee rate a buy pays on top of its notional.
    pub fee_rate: Decimal,
}

/// Denies a place the account cannot fund: a buy needs its notional plus the fee in the
/// quote asset, a sell its size in the base asset. Available is the smaller of two readings,
/// each right when the other is not: the balance's total less everything our live orders lock
/// (right while the venue's `locked` holds only our orders), and its `free` less what our
/// not-yet-acknowledged orders will lock (right while the balance is fresher than our acks).
///
/// # Errors
/// [`Denial::NoBalance`] or [`Denial::InsufficientFunds`].
pub fn check_funds(
    side: Side,
    price: Decimal,
    size: Decimal,
    cap: &Capital<'_>,
) -> Result<(), Denial> {
    let (base, quote) = cap.assets;
    let with_fee = Decimal::ONE.saturating_add(cap.fee_rate);
    let (asset, need) = match side {
        Side::Buy => (quote, price.saturating_mul(size).saturating_mul(with_fee)),
        Side::Sell => (base, size),
    };
    let Some(b) = cap.balances.iter().find(|b| b.asset == asset) else {
        return Err(Denial::NoBalance {
            asset: asset.to_string(),
        });
    };
    let u = cap.in_use.0.get(asset).copied().unwrap_or_default();
    let live = u
        .buy_notional
        .saturating_mul(with_fee)
        .saturating_add(u.sell_base);
    let unacked = u
        .unacked_buy_notional
        .saturating_mul(with_fee)
        .saturating_add(u.unacked_sell_base);
    let by_total = b.free.saturating_add(b.locked).saturating_sub(live);
    let by_free = b.free.saturating_sub(unacked);
    let available = by_total.min(by_free);
    if need > available {
        return Err(Denial::InsufficientFunds {
            asset: asset.to_string(),
            need: need.round_dp(6),
            available: available.max(Decimal::ZERO).round_dp(6),
        });
    }
    Ok(())
}

/// How far, in bps of the fair price, the fair price lies outside the rest of the venue's book
/// (its best bid and ask without our orders): 0 inside the spread, `None` when the book has
/// neither side. Not the distance to the mid: a thin book's mid (the spec's example book is
/// 0.195 / 0.3495) says nothing about where the market is.
pub fn divergence_bps(
    fair: Decimal,
    bid: Option<Decimal>,
    ask: Option<Decimal>,
) -> Option<Decimal> {
    if fair <= Decimal::ZERO || (bid.is_none() && ask.is_none()) {
        return None;
    }
    let above = ask.map_or(Decimal::ZERO, |a| (fair - a).max(Decimal::ZERO));
    let below = bid.map_or(Decimal::ZERO, |b| (b - fair).max(Decimal::ZERO));
    let gap = above.max(below);
    gap.checked_mul(Decimal::from(10_000))
        .and_then(|g| g.checked_div(fair))
        .map(|d| d.round_dp(2))
}

/// Whether quoting stays paused on a diverged reference, given the divergence just measured
/// (`None`: the venue's book is unknown or stale, so the check cannot be made), the limit
/// (0: the check is off) and whether it was paused: pause beyond the limit, resume below 80 %
/// of it (no flapping at the edge), resume when the check cannot be made.
pub fn stays_diverged(divergence: Option<Decimal>, limit: Decimal, was: bool) -> bool {
    if limit.is_zero() {
        return false;
    }
    match divergence {
        Some(d) if d > limit => true,
        Some(d) if d * Decimal::from(5) < limit * Decimal::from(4) => false,
        Some(_) => was,
        None => false,
    }
}

/// Position and PnL of one market.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Base units, + long / − short.
    pub qty: Decimal,
    pub avg_cost: Decimal,
    pub realized: Decimal,
    pub fees: Decimal,
    /// Marked PnL at the start of the current UTC day.
    pub day_start_pnl: Decimal,
    /// UTC day number of `day_start_pnl`.
    pub day: i64,
}

/// Position or PnL arithmetic left `Decimal`'s range: the figures can no longer be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decimal overflow in {0}")]
pub struct Overflow(pub &'static str);

fn ck(v: Option<Decimal>, what: &'static str) -> Result<Decimal, Overflow> {
    v.ok_or(Overflow(what))
}

impl Position {
    /// Applies one fill (a non-positive size changes nothing). All arithmetic is checked; on
    /// overflow the position is left as it was.
    ///
    /// # Errors
    /// [`Overflow`] naming the figure that left `Decimal`'s range.
    pub fn apply_fill(
        &mut self,
        side: Side,
        price: Decimal,
        size: Decimal,
        fee: Decimal,
    ) -> Result<(), Overflow> {
        if size <= Decimal::ZERO {
            return Ok(());
        }
        let mut next = self.clone();
        next.fees = ck(self.fees.checked_add(fee), "fees")?;
        let signed = side.sign() * size;
        let same_direction =
            self.qty.is_zero() || (self.qty > Decimal::ZERO) == (signed > Decimal::ZERO);
        if same_direction {
            let new_qty = ck(self.qty.checked_add(signed), "position")?;
            let cost = ck(self.qty.abs().checked_mul(self.avg_cost), "cost")?;
            let add = ck(size.checked_mul(price), "cost")?;
            let total = ck(cost.checked_add(add), "cost")?;
            next.avg_cost = ck(total.checked_div(new_qty.abs()), "average cost")?;
            next.qty = new_qty;
            *self = next;
            return Ok(());
        }
        let closed = size.min(self.qty.abs());
        // Closing a long with a sell gains (price − cost); closing a short with a buy gains (cost − price).
        let diff = ck(price.checked_sub(self.avg_cost), "realized")?;
        let gain = ck(closed.checked_mul(diff), "realized")? * -side.sign();
        next.realized = ck(self.realized.checked_add(gain), "realized")?;
        next.qty = ck(self.qty.checked_add(signed), "position")?;
        if next.qty.is_zero() {
            next.avg_cost = Decimal::ZERO;
        } else if (next.qty > Decimal::ZERO) == (signed > Decimal::ZERO) {
            next.avg_cost = price; // flipped: the remainder opened at this price
        }
        *self = next;
        Ok(())
    }

    /// Realized − fees + position marked at `mark`.
    ///
    /// # Errors
    /// [`Overflow`] when the figure leaves `Decimal`'s range.
    pub fn pnl(&self, mark: Option<Decimal>) -> Result<Decimal, Overflow> {
        let unrealized = match mark {
            Some(m) if !self.qty.is_zero() => {
                let diff = ck(m.checked_sub(self.avg_cost), "unrealized")?;
                ck(self.qty.checked_mul(diff), "unrealized")?
            }
            _ => Decimal::ZERO,
        };
        let net = ck(self.realized.checked_sub(self.fees), "pnl")?;
        ck(net.checked_add(unrealized), "pnl")
    }

    /// PnL since the start of the UTC day.
    ///
    /// # Errors
    /// [`Overflow`] when the figure leaves `Decimal`'s range.
    pub fn daily_pnl(&self, mark: Option<Decimal>) -> Result<Decimal, Overflow> {
        ck(self.pnl(mark)?.checked_sub(self.day_start_pnl), "daily pnl")
    }

    /// Starts a new day baseline when `day` is later than the recorded one.
    ///
    /// # Errors
    /// [`Overflow`] when the baseline cannot be computed.
    pub fn roll_day(&mut self, day: i64, mark: Option<Decimal>) -> Result<(), Overflow> {
        if day > self.day {
            self.day_start_pnl = self.pnl(mark)?;
            self.day = day;
        }
        Ok(())
    }
}

/// The PnL since the UTC day began, summed over `positions` (each with its mark) at `now_ms`;
/// a position whose day changed takes a new baseline first. An overflow is returned beside
/// the sum of the figures that could be computed. The daily loss limit compares this sum.
pub fn daily_total<'a>(
    positions: impl IntoIterator<Item = (&'a mut Position, Option<Decimal>)>,
    now_ms: i64,
) -> (Decimal, Option<Overflow>) {
    let day = utc_day(now_ms);
    let (mut total, mut overflow) = (Decimal::ZERO, None);
    for (p, mark) in positions {
        if let Err(e) = p.roll_day(day, mark) {
            overflow = Some(e);
        }
        match p
            .daily_pnl(mark)
            .and_then(|d| total.checked_add(d).ok_or(Overflow("daily pnl")))
        {
            Ok(t) => total = t,
            Err(e) => overflow = Some(e),
        }
    }
    (total, overflow)
}

/// Returns the UTC day number of a millisecond timestamp.
pub fn utc_day(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// The state a market is in, given the halts in force and its position.
pub fn trading_state(
    halts: &BTreeSet<HaltReason>,
    position: Decimal,
    cfg: &RiskConfig,
) -> TradingState {
    if !halts.is_empty() {
        TradingState::Halted
    } else if position.abs() >= cfg.max_position {
        TradingState::Reducing
    } else {
        TradingState::Active
    }
}

/// Which sides a market may quote in `state` with `position`.
pub fn sides_allowed(state: TradingState, position: Decimal) -> SidesAllowed {
    match state {
        TradingState::Active => SidesAllowed::BOTH,
        TradingState::Halted => SidesAllowed::NONE,
        TradingState::Reducing => SidesAllowed {
            buy: position < Decimal::ZERO,
            sell: position > Decimal::ZERO,
        },
    }
}

/// Everything a verdict on one intent depends on.
#[derive(Debug, Clone)]
pub struct CheckContext<'a> {
    pub cfg: &'a RiskConfig,
    pub halts: &'a BTreeSet<HaltReason>,
    pub position: Decimal,
    pub exposure: OpenExposure,
    pub reference_mid: Option<Decimal>,
    /// `None` when the capital check is off.
    pub capital: Option<Capital<'a>>,
}

/// Decides one intent. Cancels are always approved: they only reduce exposure.
///
/// # Errors
/// The [`Denial`] naming the first limit the intent would break.
pub fn check(intent: &Intent, cx: &CheckContext<'_>) -> Result<(), Denial> {
    let Intent::Place {
        side, price, size, ..
    } = intent
    else {
        return Ok(());
    };
    if let Some(reason) = cx.halts.iter().next() {
        return Err(Denial::Halted(*reason));
    }
    let cfg = cx.cfg;
    let state = trading_state(cx.halts, cx.position, cfg);
    let allowed = sides_allowed(state, cx.position);
    let side_ok = match side {
        Side::Buy => allowed.buy,
        Side::Sell => allowed.sell,
    };
    if !side_ok {
        return Err(Denial::Reducing(*side));
    }
    if *size > cfg.max_order_size {
        return Err(Denial::OrderTooLarge {
            size: *size,
            max: cfg.max_order_size,
        });
    }
    if cx.exposure.open_orders + 1 > cfg.max_open_orders {
        return Err(Denial::TooManyOpenOrders {
            open: cx.exposure.open_orders,
            max: cfg.max_open_orders,
        });
    }
    let mid = cx.reference_mid.ok_or(Denial::NoReference)?;
    let dist = distance_bps(*price, mid);
    if dist > cfg.price_band_bps {
        return Err(Denial::OutsideBand {
            price: *price,
            mid,
            distance_bps: dist.round_dp(2),
            band_bps: cfg.price_band_bps,
        });
    }
    let (open, worst) = match side {
        Side::Buy => (
            cx.exposure.open_buy,
            cx.position + cx.exposure.open_buy + *size,
        ),
        Side::Sell => (
            cx.exposure.open_sell,
            -(cx.position - cx.exposure.open_sell - *size),
        ),
    };
    // Growing toward the limit is capped; a side that reduces |position| only needs to stay inside it.
    if worst > cfg.max_position && worst > cx.position.abs() {
        return Err(Denial::PositionLimit {
            position: cx.position,
            open,
            size: *size,
            max: cfg.max_position,
        });
    }
    if let Some(cap) = &cx.capital {
        check_funds(*side, *price, *size, cap)?;
    }
    Ok(())
}

/// What a batch of one market's intents is decided against.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    pub cfg: &'a RiskConfig,
    pub halts: &'a BTreeSet<HaltReason>,
    pub position: Decimal,
    /// Our open orders before the batch.
    pub exposure: OpenExposure,
    /// What our live orders lock before the batch.
    pub funds: FundsInUse,
    pub reference_mid: Option<Decimal>,
    /// The venue's balances; `None` when the capital check is off.
    pub balances: Option<&'a [Balance]>,
}

/// Decides a batch of intents of one market, in order: each approved place counts as open
/// (exposure and funds) for the intents after it.
pub fn check_batch(intents: &[Intent], batch: Batch<'_>) -> Vec<Result<(), Denial>> {
    let Batch {
        cfg,
        halts,
        position,
        mut exposure,
        mut funds,
        reference_mid,
        balances,
    } = batch;
    let fee_rate = crate::types::bps(cfg.fee_bps);
    let mut names = AssetNames::default();
    intents
        .iter()
        .map(|i| {
            let (base, quote) = names.of(i.market());
            let cx = CheckContext {
                cfg,
                halts,
                position,
                exposure,
                reference_mid,
                capital: balances.map(|balances| Capital {
                    assets: (base, quote),
                    balances,
                    in_use: &funds,
                    fee_rate,
                }),
            };
            let v = check(i, &cx);
            if v.is_ok()
                && let Intent::Place {
                    side, price, size, ..
                } = i
            {
                exposure.open_orders += 1;
                let open = match side {
                    Side::Buy => &mut exposure.open_buy,
                    Side::Sell => &mut exposure.open_sell,
                };
                *open = open.saturating_add(*size);
                funds.add_to(base, quote, *side, *price, *size, false);
            }
            v
        })
        .collect()
}

/// The denials of a batch's verdicts, counted by reason.
pub fn denials_by_reason(verdicts: &[Result<(), Denial>]) -> DenialCounts {
    let mut counts = DenialCounts::default();
    for d in verdicts.iter().filter_map(|v| v.as_ref().err()) {
        counts.0[d.kind_index()] += 1;
    }
    counts
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::types::{ClientOrderId, MarketId, Slot};

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }
    /// A place of `size` at `price` on ADAUSDM (client id `x`).
    pub(crate) fn place(side: Side, price: &str, size: &str) -> Intent {
        Intent::Place {
            client_order_id: ClientOrderId("x".into()),
            market: MarketId("ADAUSDM".into()),
            slot: Slot { side, level: 0 },
            side,
            price: d(price),
            size: d(size),
        }
    }

    /// Each denial keeps its spelling (metrics, `denials` rows, figures), and a batch's
    /// counts list each reason with denials once, in `KINDS` order.
    #[test]
    fn denial_kinds_are_spelled_as_before_and_counted_by_reason() {
        let z = Decimal::ZERO;
        let denials = [
            (Denial::Halted(HaltReason::KillSwitch), "halted"),
            (Denial::Reducing(Side::Buy), "reducing"),
            (Denial::OrderTooLarge { size: z, max: z }, "order_too_large"),
            (
                Denial::TooManyOpenOrders { open: 2, max: 1 },
                "too_many_open_orders",
            ),
            (
                Denial::OutsideBand {
                    price: z,
                    mid: z,
                    distance_bps: z,
                    band_bps: z,
                },
                "outside_band",
            ),
            (
                Denial::PositionLimit {
                    position: z,
                    open: z,
                    size: z,
                    max: z,
                },
                "position_limit",
            ),
            (Denial::NoReference, "no_reference"),
            (
                Denial::NoBalance {
                    asset: "ada".into(),
                },
                "no_balance",
            ),
            (
                Denial::InsufficientFunds {
                    asset: "ada".into(),
                    need: z,
                    available: z,
                },
                "insufficient_funds",
            ),
        ];
        for (d, spelled) in &denials {
            assert_eq!(d.kind(), *spelled);
        }
        assert_eq!(denials.len(), Denial::KINDS.len());
        assert!(
            Denial::KINDS.windows(2).all(|w| w[0] < w[1]),
            "sorted, once each"
        );
        let verdicts: Vec<Result<(), Denial>> = vec![
            Ok(()),
            Err(Denial::TooManyOpenOrders { open: 2, max: 1 }),
            Err(Denial::NoReference),
            Err(Denial::TooManyOpenOrders { open: 3, max: 1 }),
        ];
        let counted: Vec<_> = denials_by_reason(&verdicts).iter().collect();
        assert_eq!(
            counted,
            [(3, "no_reference", 1), (8, "too_many_open_orders", 2)]
        );
        assert_eq!(denials_by_reason(&[Ok(())]).iter().count(), 0);
    }

    #[test]
    fn divergence_pauses_beyond_the_limit_and_resumes_below_80_percent_of_it() {
        let limit = d("50");
        assert!(stays_diverged(Some(d("50.01")), limit, false));
        assert!(
            !stays_diverged(Some(d("50")), limit, false),
            "at the limit: not yet"
        );
        // Between 80 % and 100 %: as it was.
        assert!(stays_diverged(Some(d("45")), limit, true));
        assert!(!stays_diverged(Some(d("45")), limit, false));
        assert!(
            stays_diverged(Some(d("40")), limit, true),
            "exactly 80 %: still paused"
        );
        assert!(!stays_diverged(Some(d("39.99")), limit, true));
        assert!(
            !stays_diverged(None, limit, true),
            "an unknown book pauses nothing"
        );
        assert!(
            !stays_diverged(Some(d("1000")), Decimal::ZERO, true),
            "0 turns it off"
        );
    }

    #[test]
    fn average_cost_accounting() {
        let mut p = Position::default();
        p.apply_fill(Side::Buy, d("0.40"), d("100"), d("0.04"))
            .expect("fill");
        p.apply_fill(Side::Buy, d("0.50"), d("100"), d("0.05"))
            .expect("fill");
        assert_eq!(p.qty, d("200"));
        assert_eq!(p.avg_cost, d("0.45"));
        p.apply_fill(Side::Sell, d("0.55"), d("50"), d("0"))
            .expect("fill");
        assert_eq!(p.realized, d("5.00"));
        assert_eq!(p.qty, d("150"));
        // Flip to short: close 150, open 50 at 0.60.
        p.apply_fill(Side::Sell, d("0.60"), d("200"), d("0"))
            .expect("fill");
        assert_eq!(p.realized, d("27.50"));
        assert_eq!(p.qty, d("-50"));
        assert_eq!(p.avg_cost, d("0.60"));
        assert_eq!(
            p.pnl(Some(d("0.70"))),
            Ok(d("27.50") - d("0.09") - d("5.00"))
        );
    }

    #[test]
    fn overflow_is_an_error_and_leaves_the_position_alone() {
        let mut p = Position::default();
        let huge = Decimal::MAX / Decimal::TWO;
        p.apply_fill(Side::Buy, d("1"), huge, d("0")).expect("fits");
        let before = p.clone();
        assert_eq!(
            p.apply_fill(Side::Buy, d("1"), huge + d("1000"), d("0")),
            Err(Overflow("position"))
        );
        assert_eq!(p, before);
        assert!(p.pnl(Some(Decimal::MAX)).is_err());
        // A zero-size fill is no fill (and no division by zero).
        let mut z = Position::default();
        assert_eq!(z.apply_fill(Side::Buy, d("0.45"), d("0"), d("0")), Ok(()));
        assert_eq!(z, Position::default());
    }

    #[test]
    fn daily_baseline_rolls_at_midnight() {
        let mut p = Position {
            realized: d("10"),
            ..Position::default()
        };
        p.roll_day(utc_day(86_400_000 * 3 + 5), None).expect("roll");
        assert_eq!(p.daily_pnl(None), Ok(Decimal::ZERO));
        p.realized -= d("4");
        assert_eq!(p.daily_pnl(None), Ok(d("-4")));
    }

    #[test]
    fn verdict_table() {
        let cfg = RiskConfig {
            max_position: d("1000"),
            max_order_size: d("500"),
            max_open_orders: 4,
            price_band_bps: d("100"),
            daily_loss_limit: d("50"),
            check_interval_ms: 250,
            ..RiskConfig::default()
        };
        let none = BTreeSet::new();
        let killed: BTreeSet<HaltReason> = [HaltReason::KillSwitch].into();
        let exp = OpenExposure {
            open_orders: 1,
            open_buy: d("100"),
            open_sell: d("0"),
        };
        let cx = |halts, position: &str, exposure| CheckContext {
            cfg: &cfg,
            halts,
            position: d(position),
            exposure,
            reference_mid: Some(d("0.45")),
            capital: None,
        };
        let cases: Vec<(&str, Intent, CheckContext<'_>, Result<(), &str>)> = vec![
            (
                "plain buy",
                place(Side::Buy, "0.449", "100"),
                cx(&none, "0", exp),
                Ok(()),
            ),
            (
                "halted",
                place(Side::Buy, "0.449", "100"),
                cx(&killed, "0", exp),
                Err("halted"),
            ),
            (
                "too large",
                place(Side::Buy, "0.449", "501"),
                cx(&none, "0", exp),
                Err("size"),
            ),
            (
                "outside band",
                place(Side::Sell, "0.46", "100"),
                cx(&none, "0", exp),
                Err("band"),
            ),
            (
                "position",
                place(Side::Buy, "0.449", "100"),
                cx(&none, "850", exp),
                Err("max_position"),
            ),
            (
                "reducing buy",
                place(Side::Buy, "0.449", "100"),
                cx(&none, "1000", exp),
                Err("reducing"),
            ),
            (
                "reducing sell ok",
                place(Side::Sell, "0.451", "100"),
                cx(&none, "1000", exp),
                Ok(()),
            ),
            (
                "too many orders",
                place(Side::Sell, "0.451", "100"),
                cx(
                    &none,
                    "0",
                    OpenExposure {
                        open_orders: 4,
                        ..exp
                    },
                ),
                Err("open orders"),
            ),
        ];
        for (name, intent, cx, want) in cases {
            let got = check(&intent, &cx).map_err(|e| e.to_string());
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
        let cancel = Intent::CancelAll {
            market: MarketId("ADAUSDM".into()),
        };
        assert_eq!(check(&cancel, &cx(&killed, "5000", exp)), Ok(()));
        // A dust reference mid (a valid tick can carry one): the place is outside the band by
        // more than any Decimal holds, denied rather than a panic in the check.
        let dust = CheckContext {
            reference_mid: Some(d("0.0000000000000000000000000001")),
            ..cx(&none, "0", exp)
        };
        let got = check(&place(Side::Buy, "0.449", "100"), &dust).map_err(|e| e.to_string());
        assert!(got.is_err_and(|e| e.contains("band")), "dust mid");
    }

    #[test]
    fn states_and_sides() {
        let cfg = RiskConfig::default();
        assert_eq!(
            trading_state(&BTreeSet::new(), d("0"), &cfg),
            TradingState::Active
        );
        assert_eq!(
            trading_state(&BTreeSet::new(), cfg.max_position, &cfg),
            TradingState::Reducing
        );
        assert_eq!(
            trading_state(&[HaltReason::StaleFeed].into(), d("0"), &cfg),
            TradingState::Halted
        );
        assert_eq!(
            sides_allowed(TradingState::Reducing, d("-5")),
            SidesAllowed {
                buy: true,
                sell: false
            }
        );
        assert_eq!(
            sides_allowed(TradingState::Halted, d("0")),
            SidesAllowed::NONE
        );
    }

    #[test]
    fn funds_are_checked_against_balances_and_our_locks() {
        let m = crate::types::MarketId("ADAUSDM".into());
        let bal = |asset: &str, free: &str, locked: &str| Balance {
            asset: asset.into(),
            free: d(free),
            locked: d(locked),
        };
        let balances = vec![bal("usdm", "100", "45.045"), bal("ada", "150", "0")];
        let mut in_use = FundsInUse::default();
        // One acknowledged bid of 100 @ 0.45 (its 45.045 is in the venue's `locked`).
        in_use.add(&m, Side::Buy, d("0.45"), d("100"), true);
        let cap = Capital {
            assets: ("ada", "usdm"),
            balances: &balances,
            in_use: &in_use,
            fee_rate: d("0.001"),
        };
        // 99.9 notional + 0.0999 fee fits 100 free; 100 does not.
        assert_eq!(check_funds(Side::Buy, d("0.45"), d("222"), &cap), Ok(()));
        let e = check_funds(Side::Buy, d("0.45"), d("223"), &cap).expect_err("denied");
        assert_eq!(e.kind(), "insufficient_funds");
        // An unacknowledged sell of 100 ADA: the balance does not show it yet.
        let mut in_use = in_use.clone();
        in_use.add(&m, Side::Sell, d("0.46"), d("100"), false);
        let cap = Capital {
            assets: ("ada", "usdm"),
            balances: &balances,
            in_use: &in_use,
            fee_rate: d("0.001"),
        };
        assert_eq!(check_funds(Side::Sell, d("0.46"), d("50"), &cap), Ok(()));
        assert!(check_funds(Side::Sell, d("0.46"), d("51"), &cap).is_err());
        // Once acknowledged, the venue's balance moved it to `locked`: still 50 left.
        let moved = vec![bal("usdm", "100", "45.045"), bal("ada", "50", "100")];
        let mut acked = FundsInUse::default();
        acked.add(&m, Side::Buy, d("0.45"), d("100"), true);
        acked.add(&m, Side::Sell, d("0.46"), d("100"), true);
        let cap = Capital {
            assets: ("ada", "usdm"),
            balances: &moved,
            in_use: &acked,
            fee_rate: d("0.001"),
        };
        assert_eq!(check_funds(Side::Sell, d("0.46"), d("50"), &cap), Ok(()));
        assert!(check_funds(Side::Sell, d("0.46"), d("50.01"), &cap).is_err());
        // A withdrawal in flight also sits in `locked`: the free reading catches it.
        let withdrawing = vec![bal("usdm", "10", "1000")];
        let cap = Capital {
            assets: ("ada", "usdm"),
            balances: &withdrawing,
            in_use: &FundsInUse::default(),
            fee_rate: d("0.001"),
        };
        assert!(check_funds(Side::Buy, d("0.45"), d("100"), &cap).is_err());
        let none: Vec<Balance> = Vec::new();
        let cap = Capital {
            assets: ("ada", "usdm"),
            balances: &none,
            ..cap
        };
        assert_eq!(
            check_funds(Side::Buy, d("0.45"), d("10"), &cap).map_err(|e| e.kind()),
            Err("no_balance")
        );
    }

    #[test]
    fn divergence_is_the_distance_outside_the_book() {
        assert_eq!(
            divergence_bps(d("0.45"), Some(d("0.449")), Some(d("0.451"))),
            Some(d("0"))
        );
        assert_eq!(
            divergence_bps(d("0.46"), Some(d("0.449")), Some(d("0.451"))),
            Some(d("195.65"))
        );
        assert_eq!(
            divergence_bps(d("0.40"), Some(d("0.449")), None),
            Some(d("1225"))
        );
        assert_eq!(divergence_bps(d("0.45"), None, None), None);
        // A thin, wide book (the spec's example): a fair price inside it is no divergence.
        assert_eq!(
            divergence_bps(d("0.25"), Some(d("0.195")), Some(d("0.3495"))),
            Some(d("0"))
        );
    }
}
