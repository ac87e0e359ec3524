//! Binance spot bookTicker decoding and validation.
//!
//! Accepts the raw form `{"u":…,"s":"ADAUSDT","b":"…","B":"…","a":"…","A":"…"}` and the
//! combined-stream form `{"stream":"adausdt@bookTicker","data":{…}}`. A message is dropped,
//! with a [`DropReason`] that is counted, when it is malformed, for a symbol we do not quote,
//! has a zero or negative price or a negative size, has a value beyond
//! [`crate::types::MAX_EXTERNAL`] (so that no arithmetic on it can overflow), is crossed
//! (bid ≥ ask), or is not newer
//! than the last accepted update id of its symbol (`u` must strictly increase).
//!
//! The update-id order is per connection: [`Decoder::reset_sequence`] forgets it on every new
//! connection (and replay loop). Within one, a frame whose `u` leaps more than
//! [`MAX_UPDATE_ID_JUMP`] ahead is dropped, not adopted (one bad `u` must not blind the feed);
//! and [`SEQUENCE_RESTART_FRAMES`] consecutive "old" frames that increase among themselves are
//! a sequence restart, adopted.
//! `serverShutdown` events are recognised as [`Frame::ServerShutdown`].

use std::time::Instant;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::types::{BinanceSymbol, FastMap, Tick, in_range};

/// Why a message was not turned into a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    Malformed,
    UnknownSymbol,
    NonPositive,
    OutOfRange,
    Crossed,
    OutOfOrder,
    UpdateIdJump,
}

/// A `u` more than this ahead of the last accepted one, within one connection, is absurd.
pub const MAX_UPDATE_ID_JUMP: u64 = 1_000_000_000;
/// Consecutive frames older than the last accepted `u`, each newer than the one before, that
/// are taken as a restarted sequence.
pub const SEQUENCE_RESTART_FRAMES: u32 = 5;

impl DropReason {
    /// Every reason, for counters.
    pub const ALL: [DropReason; 7] = [
        DropReason::Malformed,
        DropReason::UnknownSymbol,
        DropReason::NonPositive,
        DropReason::OutOfRange,
        DropReason::Crossed,
        DropReason::OutOfOrder,
        DropReason::UpdateIdJump,
    ];

    /// Returns the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownSymbol => "unknown_symbol",
            DropReason::NonPositive => "non_positive",
            DropReason::OutOfRange => "out_of_range",
            DropReason::Crossed => "crossed",
            DropReason::OutOfOrder => "out_of_order",
            DropReason::UpdateIdJump => "update_id_jump",
        }
    }
}

/// What one frame carried.
#[derive(Debug, Clone)]
pub enum Frame {
    Tick(Tick),
    /// Binance will close this connection for maintenance: reconnect now.
    ServerShutdown,
    /// A control reply such as `{"result":null,"id":1}`.
    Control,
}

#[derive(Deserialize)]
struct RawTicker {
    /// An event type: such a frame is not a plain bookTicker (the fast path leaves it).
    #[serde(default)]
    e: Option<serde::de::IgnoredAny>,
    u: u64,
    s: String,
    b: Decimal,
    #[serde(rename = "B")]
    bq: Decimal,
    a: Decimal,
    #[serde(rename = "A")]
    aq: Decimal,
}

/// The fields of one bookTicker, the symbol borrowed from the frame's text (the hand-read
/// path allocates nothing for it).
#[derive(Debug, PartialEq)]
struct Fields<'a> {
    u: u64,
    s: &'a str,
    b: Decimal,
    bq: Decimal,
    a: Decimal,
    aq: Decimal,
}

impl RawTicker {
    fn fields(&self) -> Fields<'_> {
        Fields {
            u: self.u,
            s: &self.s,
            b: self.b,
            bq: self.bq,
            a: self.a,
            aq: self.aq,
        }
    }
}

/// The fast path's shapes: a raw bookTicker, or one inside a combined-stream envelope. Either
/// parses straight into [`RawTicker`], without the untagged [`Envelope`]'s buffering; a frame
/// carrying an event type (`e`) or anything else takes the general path.
#[derive(Deserialize)]
struct FastCombined<'a> {
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    data: RawTicker,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Envelope {
    Combined {
        stream: String,
        data: serde_json::Value,
    },
    Event {
        e: String,
    },
    Control {
        #[serde(rename = "id")]
        _id: serde_json::Value,
    },
    Raw(RawTicker),
}

/// A bookTicker exactly as Binance writes it, raw or in a combined-stream envelope:
/// `{"u":N,"s":"..","b":"..","B":"..","a":"..","A":".."}`, these keys in this order, no spaces,
/// no escapes. `None` for anything else (the serde path then decides), never a different
/// reading than serde's of the same text: `u` is plain digits without a leading zero, and the
/// decimals are read by the same `Decimal::from_str` serde's visitor tries first.
fn scan_book_ticker(text: &str) -> Option<Fields<'_>> {
    let body = match text.strip_prefix("{\"stream\":\"") {
        Some(rest) => {
            let (stream, rest) = quoted(rest)?;
            if stream.ends_with("serverShutdown") {
                return None;
            }
            rest.strip_prefix(",\"data\":")?.strip_suffix('}')?
        }
        None => text,
    };
    let rest = body.strip_prefix("{\"u\":")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let (u, rest) = rest.split_at(digits);
    if u.is_empty() || (u.len() > 1 && u.starts_with('0')) {
        return None;
    }
    let u: u64 = u.parse().ok()?;
    let (s, rest) = quoted(rest.strip_prefix(",\"s\":\"")?)?;
    let (b, rest) = quoted(rest.strip_prefix(",\"b\":\"")?)?;
    let (bq, rest) = quoted(rest.strip_prefix(",\"B\":\"")?)?;
    let (a, rest) = quoted(rest.strip_prefix(",\"a\":\"")?)?;
    let (aq, rest) = quoted(rest.strip_prefix(",\"A\":\"")?)?;
    if rest != "}" {
        return None;
    }
    let dec = |t: &str| plain_decimal(t).or_else(|| t.parse::<Decimal>().ok());
    Some(Fields {
        u,
        s,
        b: dec(b)?,
        bq: dec(bq)?,
        a: dec(a)?,
        aq: dec(aq)?,
    })
}

/// The text up to the next `"`, and what follows that quote; `None` if it holds an escape or a
/// control character (serde would unescape or refuse it), or anything beyond ASCII (which
/// Binance does not write; serde then reads it). Scanned by byte, not by char.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let end = text
        .bytes()
        .position(|c| c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c))?;
    if text.as_bytes()[end] != b'"' {
        return None;
    }
    Some((&text[..end], &text[end + 1..]))
}

/// A decimal written as plain digits with at most one point between digits (`0.4500`,
/// `391.0`, `7`), up to 19 digits: read straight into a mantissa and a scale, the same value
/// and scale as `Decimal::from_str` gives (property test). `None` for any other text, which
/// `from_str` then reads.
fn plain_decimal(text: &str) -> Option<Decimal> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 20 || bytes[0] == b'.' || bytes[bytes.len() - 1] == b'.' {
        return None;
    }
    let (mut mantissa, mut digits, mut scale) = (0u64, 0u32, None::<u32>);
    for &c in bytes {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                digits += 1;
                if let Some(s) = scale.as_mut() {
                    *s += 1;
                }
            }
            b'.' if scale.is_none() => scale = Some(0),
            _ => return None,
        }
    }
    if digits > 19 {
        return None;
    }
    Some(Decimal::from_i128_with_scale(
        i128::from(mantissa),
        scale.unwrap_or(0),
    ))
}

/// Per-symbol update-id order.
#[derive(Debug, Default, Clone, Copy)]
struct Sequence {
    /// Last accepted `u`; 0 = none since the last reset.
    last: u64,
    /// Consecutive older frames seen since, and the newest of them.
    older_run: u32,
    older_last: u64,
}

/// Per-symbol validation state.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Each symbol's update-id order, with the symbol itself to hand out on its ticks.
    last_update: FastMap<BinanceSymbol, (BinanceSymbol, Sequence)>,
    drops: FastMap<DropReason, u64>,
    accepted: u64,
}

impl Decoder {
    /// A decoder accepting `symbols`.
    pub fn new(symbols: impl IntoIterator<Item = BinanceSymbol>) -> Self {
        Self {
            last_update: symbols
                .into_iter()
                .map(|s| (s.clone(), (s, Sequence::default())))
                .collect(),
            ..Self::default()
        }
    }

    /// Forgets the update-id order of every symbol: a new connection starts its own.
    pub fn reset_sequence(&mut self) {
        for (_, seq) in self.last_update.values_mut() {
            *seq = Sequence::default();
        }
    }

    /// Messages dropped for `reason` so far.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(&reason).copied().unwrap_or(0)
    }

    /// Drop counters, by reason.
    pub fn drop_counts(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.dropped(r)))
            .collect()
    }

    /// Ticks accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Decodes and validates one text frame received at `recv_ms` / `recv_at`.
    ///
    /// # Errors
    /// The [`DropReason`] of a message that must not be quoted on; it has been counted.
    pub fn decode(
        &mut self,
        text: &str,
        recv_ms: i64,
        recv_at: Instant,
    ) -> Result<Frame, DropReason> {
        let r = self.decode_inner(text, recv_ms, recv_at);
        match &r {
            Ok(Frame::Tick(_)) => self.accepted += 1,
            Ok(_) => {}
            Err(reason) => *self.drops.entry(*reason).or_insert(0) += 1,
        }
        r
    }

    fn decode_inner(
        &mut self,
        text: &str,
        recv_ms: i64,
        recv_at: Instant,
    ) -> Result<Frame, DropReason> {
        // Nearly every frame is a plain bookTicker in Binance's own compact layout: read it by
        // hand when it is exactly that, else let serde parse it.
        if let Some(r) = scan_book_ticker(text) {
            return self.validate(&r, recv_ms, recv_at).map(Frame::Tick);
        }
        if text.contains("\"stream\"") {
            if let Ok(c) = serde_json::from_str::<FastCombined<'_>>(text)
                && c.data.e.is_none()
                && !c.stream.ends_with("serverShutdown")
            {
                return self
                    .validate(&c.data.fields(), recv_ms, recv_at)
                    .map(Frame::Tick);
            }
        } else if let Ok(r) = serde_json::from_str::<RawTicker>(text)
            && r.e.is_none()
        {
            return self
                .validate(&r.fields(), recv_ms, recv_at)
                .map(Frame::Tick);
        }
        let env: Envelope = serde_json::from_str(text).map_err(|_| DropReason::Malformed)?;
        let raw = match env {
            Envelope::Raw(raw) => raw,
            Envelope::Combined { stream, data } => {
                if stream.ends_with("serverShutdown") {
                    return Ok(Frame::ServerShutdown);
                }
                serde_json::from_value(data).map_err(|_| DropReason::Malformed)?
            }
            Envelope::Event { e } if e == "serverShutdown" => return Ok(Frame::ServerShutdown),
            Envelope::Event { .. } => return Err(DropReason::Malformed),
            Envelope::Control { .. } => return Ok(Frame::Control),
        };
        self.validate(&raw.fields(), recv_ms, recv_at)
            .map(Frame::Tick)
    }

    fn validate(
        &mut self,
        raw: &Fields<'_>,
        recv_ms: i64,
        recv_at: Instant,
    ) -> Result<Tick, DropReason> {
        let (symbol, last) = self
            .last_update
            .get_mut(raw.s)
            .ok_or(DropReason::UnknownSymbol)?;
        // By sign and zero flags: `<=` against zero would first rescale a price's four
        // decimals to zero's none.
        let positive = |d: Decimal| !d.is_zero() && !d.is_sign_negative();
        let negative = |d: Decimal| !d.is_zero() && d.is_sign_negative();
        if !positive(raw.b) || !positive(raw.a) || negative(raw.bq) || negative(raw.aq) {
            return Err(DropReason::NonPositive);
        }
        if ![raw.b, raw.a, raw.bq, raw.aq].into_iter().all(in_range) {
            return Err(DropReason::OutOfRange);
        }
        if raw.b >= raw.a {
            return Err(DropReason::Crossed);
        }
        if raw.u <= last.last {
            // Older than what we accepted: a duplicate or a late frame, unless a run of them
            // keeps increasing, which is a sequence that restarted.
            if last.older_run > 0 && raw.u > last.older_last {
                last.older_run += 1;
            } else {
                last.older_run = 1;
            }
            last.older_last = raw.u;
            if last.older_run < SEQUENCE_RESTART_FRAMES {
                return Err(DropReason::OutOfOrder);
            }
        } else if last.last > 0 && raw.u - last.last > MAX_UPDATE_ID_JUMP {
            return Err(DropReason::UpdateIdJump);
        }
        *last = Sequence {
            last: raw.u,
            ..Sequence::default()
        };
        Ok(Tick {
            symbol: symbol.clone(),
            update_id: raw.u,
            bid: raw.b,
            bid_qty: raw.bq,
            ask: raw.a,
            ask_qty: raw.aq,
            recv_ms,
            recv_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec() -> Decoder {
        Decoder::new([BinanceSymbol("ADAUSDT".into())])
    }
    fn msg(u: u64, b: &str, a: &str) -> String {
        format!(r#"{{"u":{u},"s":"ADAUSDT","b":"{b}","B":"100","a":"{a}","A":"200"}}"#)
    }

    #[test]
    fn raw_and_combined_forms_decode() {
        let mut d = dec();
        let now = Instant::now();
        let Ok(Frame::Tick(t)) = d.decode(&msg(1, "0.4500", "0.4501"), 5, now) else {
            panic!("raw")
        };
        assert_eq!(
            (t.update_id, t.bid, t.ask, t.recv_ms),
            (
                1,
                "0.4500".parse().expect("d"),
                "0.4501".parse().expect("d"),
                5
            )
        );
        let combined = format!(
            r#"{{"stream":"adausdt@bookTicker","data":{}}}"#,
            msg(2, "0.45", "0.46")
        );
        assert!(matches!(d.decode(&combined, 6, now), Ok(Frame::Tick(_))));
        assert_eq!(d.accepted(), 2);
    }

    #[test]
    fn the_fast_path_leaves_every_other_shape_to_the_general_one() {
        let mut d = dec();
        let now = Instant::now();
        let t = |r: Result<Frame, DropReason>| match r {
            Ok(Frame::Tick(t)) => format!("tick {}", t.update_id),
            Ok(Frame::ServerShutdown) => "shutdown".into(),
            Ok(Frame::Control) => "control".into(),
            Err(e) => e.as_str().into(),
        };
        let cases = [
            (msg(1, "0.45", "0.46"), "tick 1"),
            (
                format!(
                    r#"{{"stream":"adausdt@bookTicker","data":{}}}"#,
                    msg(2, "0.45", "0.46")
                ),
                "tick 2",
            ),
            // An event-typed frame was never a plain bookTicker: dropped as before.
            (
                r#"{"e":"bookTicker","u":3,"s":"ADAUSDT","b":"0.45","B":"1","a":"0.46","A":"1"}"#
                    .into(),
                "malformed",
            ),
            (r#"{"e":"serverShutdown"}"#.into(), "shutdown"),
            (
                r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown"}}"#.into(),
                "shutdown",
            ),
            (r#"{"result":null,"id":1}"#.into(), "control"),
            (r#"{"u":4,"s":"ADAUSDT","b":"0.45"}"#.into(), "malformed"),
            (msg(5, "0.46", "0.45"), "crossed"),
        ];
        for (frame, want) in cases {
            assert_eq!(t(d.decode(&frame, 1, now)), want, "{frame}");
        }
    }

    proptest::proptest! {
        /// The hand-read path never reads a frame differently from serde: whatever it accepts,
        /// serde parses to the same fields; whatever it declines goes to serde unchanged.
        #[test]
        fn the_hand_read_book_ticker_agrees_with_serde(
            u in proptest::sample::select(vec!["7", "0", "07", "+7", "18446744073709551615", "18446744073709551616", "", "1.5", "-1"]),
            s in proptest::sample::select(vec!["ADAUSDT", "", "ADA\\u0055SDT", "ADA USDT"]),
            b in proptest::sample::select(vec!["0.4500", "1e5", "-0", "", " 0.45", "0.45\\u0030", "abc", "79228162514264337593543950336", "0.000000000000000000000000000001"]),
            q in proptest::sample::select(vec!["100", "1e30", "0", "5.", ".5"]),
            combined in proptest::bool::ANY,
            space in proptest::bool::ANY,
        ) {
            let sep = if space { ", " } else { "," };
            let inner = format!(r#"{{"u":{u}{sep}"s":"{s}","b":"{b}","B":"{q}","a":"{b}","A":"{q}"}}"#);
            let text = if combined {
                format!(r#"{{"stream":"adausdt@bookTicker","data":{inner}}}"#)
            } else {
                inner.clone()
            };
            if let Some(fast) = scan_book_ticker(&text) {
                proptest::prop_assert!(!space);
                let slow: RawTicker = serde_json::from_str(&inner).expect("serde reads what the scan read");
                proptest::prop_assert_eq!(fast, slow.fields());
            }
        }
    }

    proptest::proptest! {
        /// Plain decimals read to the same value and scale as `Decimal::from_str` reads them
        /// (its text, digit for digit); anything else is left to it.
        #[test]
        fn plain_decimals_read_as_from_str_reads_them(
            whole in "[0-9]{0,12}",
            point in proptest::bool::ANY,
            fraction in "[0-9]{0,12}",
            odd in proptest::sample::select(vec!["", "-", "+", "e5", "_", " ", "."]),
            odd_at_end in proptest::bool::ANY,
        ) {
            let core = if point { format!("{whole}.{fraction}") } else { format!("{whole}{fraction}") };
            let text = if odd_at_end { format!("{core}{odd}") } else { format!("{odd}{core}") };
            if let Some(fast) = plain_decimal(&text) {
                let slow: Decimal = text.parse().expect("from_str reads what the fast path read");
                proptest::prop_assert_eq!(fast.to_string(), slow.to_string());
                proptest::prop_assert_eq!(fast.scale(), slow.scale());
            }
        }
    }

    #[test]
    fn plain_decimals_take_the_fast_path_and_the_rest_do_not() {
        for plain in [
            "0.4500",
            "391.0",
            "7",
            "0",
            "0000.10",
            "9999999999999999999",
        ] {
            assert!(plain_decimal(plain).is_some(), "{plain}");
        }
        for other in [
            "",
            ".5",
            "5.",
            "1.2.3",
            "-1",
            "+1",
            "1e5",
            "1_0",
            "99999999999999999999",
            "0.45 ",
        ] {
            assert!(plain_decimal(other).is_none(), "{other}");
        }
    }

    #[test]
    fn the_hand_read_path_takes_binance_layout_and_declines_the_rest() {
        assert!(scan_book_ticker(&msg(1, "0.45", "0.46")).is_some());
        let combined = format!(
            r#"{{"stream":"adausdt@bookTicker","data":{}}}"#,
            msg(2, "0.45", "0.46")
        );
        assert!(scan_book_ticker(&combined).is_some());
        for other in [
            r#"{"e":"bookTicker","u":3,"s":"ADAUSDT","b":"0.45","B":"1","a":"0.46","A":"1"}"#,
            r#"{"s":"ADAUSDT","u":3,"b":"0.45","B":"1","a":"0.46","A":"1"}"#,
            r#"{"stream":"!serverShutdown","data":{"u":3,"s":"ADAUSDT","b":"0.45","B":"1","a":"0.46","A":"1"}}"#,
            r#"{"u":3,"s":"ADAUSDT","b":"0.45","B":"1","a":"0.46","A":"1"} "#,
            r#"{"u":3,"s":"ADAUSDT","b":"0.45","B":"1","a":"0.46","A":"1","x":1}"#,
        ] {
            assert!(scan_book_ticker(other).is_none(), "{other}");
        }
    }

    #[test]
    fn bad_messages_are_dropped_and_counted() {
        let mut d = dec();
        let now = Instant::now();
        d.decode(&msg(10, "0.45", "0.46"), 0, now).expect("first");
        let cases = [
            ("not json", "{{nope".to_string(), DropReason::Malformed),
            (
                "missing field",
                r#"{"u":11,"s":"ADAUSDT","b":"0.45"}"#.to_string(),
                DropReason::Malformed,
            ),
            ("bad decimal", msg(11, "abc", "0.46"), DropReason::Malformed),
            (
                "other symbol",
                msg(11, "0.45", "0.46").replace("ADAUSDT", "BTCUSDT"),
                DropReason::UnknownSymbol,
            ),
            ("zero bid", msg(11, "0", "0.46"), DropReason::NonPositive),
            (
                "negative ask",
                msg(11, "0.45", "-0.46"),
                DropReason::NonPositive,
            ),
            (
                "absurd bid",
                msg(
                    11,
                    "1000000000000000000000000000",
                    "1000000000000000000000000001",
                ),
                DropReason::OutOfRange,
            ),
            (
                "absurd size",
                msg(11, "0.45", "0.46").replace(r#""B":"100""#, r#""B":"1e30""#),
                DropReason::Malformed,
            ),
            ("crossed", msg(11, "0.47", "0.46"), DropReason::Crossed),
            ("locked", msg(11, "0.46", "0.46"), DropReason::Crossed),
            ("same u", msg(10, "0.45", "0.46"), DropReason::OutOfOrder),
            ("older u", msg(9, "0.45", "0.46"), DropReason::OutOfOrder),
        ];
        for (name, text, want) in &cases {
            assert_eq!(d.decode(text, 0, now).err(), Some(*want), "{name}");
        }
        assert_eq!(d.dropped(DropReason::Malformed), 4);
        assert_eq!(d.dropped(DropReason::OutOfRange), 1);
        assert_eq!(d.dropped(DropReason::OutOfOrder), 2);
        assert_eq!(d.accepted(), 1);
        // A good message after the bad ones is still accepted.
        assert!(matches!(
            d.decode(&msg(11, "0.45", "0.46"), 0, now),
            Ok(Frame::Tick(_))
        ));
    }

    #[test]
    fn one_absurd_update_id_cannot_blind_the_feed() {
        let mut d = dec();
        let now = Instant::now();
        d.decode(&msg(1_000, "0.45", "0.46"), 0, now)
            .expect("first");
        // u64::MAX in the middle of a connection: dropped, not adopted.
        assert_eq!(
            d.decode(&msg(u64::MAX, "0.45", "0.46"), 0, now).err(),
            Some(DropReason::UpdateIdJump)
        );
        assert!(d.decode(&msg(1_001, "0.45", "0.46"), 0, now).is_ok());
        // As the first frame of a connection it is adopted; the sequence that follows is
        // "older", and after a few increasing frames it is taken as a restart.
        d.reset_sequence();
        assert!(d.decode(&msg(u64::MAX, "0.45", "0.46"), 0, now).is_ok());
        let mut accepted = 0;
        for u in 1_002..1_012 {
            if d.decode(&msg(u, "0.45", "0.46"), 0, now).is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 10 - (SEQUENCE_RESTART_FRAMES as usize - 1));
        // A duplicate is still dropped.
        assert_eq!(
            d.decode(&msg(1_011, "0.45", "0.46"), 0, now).err(),
            Some(DropReason::OutOfOrder)
        );
        // A new connection starts a new order.
        d.reset_sequence();
        assert!(d.decode(&msg(5, "0.45", "0.46"), 0, now).is_ok());
    }

    #[test]
    fn server_shutdown_and_control_frames() {
        let mut d = dec();
        let now = Instant::now();
        assert!(matches!(
            d.decode(r#"{"e":"serverShutdown","E":1770123456789}"#, 0, now),
            Ok(Frame::ServerShutdown)
        ));
        assert!(matches!(
            d.decode(
                r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}"#,
                0,
                now
            ),
            Ok(Frame::ServerShutdown)
        ));
        assert!(matches!(
            d.decode(r#"{"result":null,"id":1}"#, 0, now),
            Ok(Frame::Control)
        ));
    }
}
