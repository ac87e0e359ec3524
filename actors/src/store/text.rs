//! Column text made on the stack. Every quote decision writes eight decimals and a reason, and
//! every order change three decimals and a slot: formatted with `to_string()` each was an
//! allocation and a trip through `fmt`, a sixth of the store thread's time.
//!
//! [`SqlText::decimal`] writes exactly what `Decimal`'s `Display` writes (a test compares
//! them); [`SqlText::display`] holds any other `Display` value, on the heap only when it is
//! longer than the inline buffer.

use std::fmt::{self, Write as _};

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rust_decimal::Decimal;

/// Room for any `Decimal` (29 digits, a point, a sign and a leading zero) and a short label.
const INLINE: usize = 64;
// A decimal's text always fits inline.
const _: () = assert!(INLINE >= 44);

/// Text bound as a SQLite TEXT value.
pub enum SqlText {
    Inline { buf: [u8; INLINE], len: usize },
    Heap(String),
}

impl SqlText {
    fn empty() -> Self {
        SqlText::Inline {
            buf: [0; INLINE],
            len: 0,
        }
    }

    /// `d` as `d.to_string()` would write it.
    pub fn decimal(d: Decimal) -> Self {
        let (text, len) = decimal_text(d);
        let mut buf = [0; INLINE];
        buf[..len].copy_from_slice(&text[..len]);
        SqlText::Inline { buf, len }
    }

    /// `v` as `v.to_string()` would write it (text beyond the inline buffer moves to the
    /// heap as it is written).
    pub fn display(v: &impl fmt::Display) -> Self {
        let mut t = Self::empty();
        let _ = write!(t, "{v}");
        t
    }

    /// The text's bytes (UTF-8), as bound: SQLite takes TEXT as bytes, so nothing checks
    /// them again per value.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SqlText::Inline { buf, len } => &buf[..*len],
            SqlText::Heap(s) => s.as_bytes(),
        }
    }

    /// The text (the tests compare it with `Display`'s; SQLite is given [`Self::as_bytes`]).
    #[cfg(test)]
    fn as_str(&self) -> &str {
        match self {
            // Only whole `&str`s are copied in (`write_str`), so the bytes are UTF-8.
            SqlText::Inline { buf, len } => std::str::from_utf8(&buf[..*len]).unwrap_or_default(),
            SqlText::Heap(s) => s,
        }
    }
}

/// Writes `d` as `Display` writes it: the mantissa's digits with the point `scale` from the
/// right, a leading `0` when there is no whole part, and `-` for any negative value (negative
/// zero included).
pub fn write_decimal(out: &mut impl fmt::Write, d: Decimal) {
    let (text, len) = decimal_text(d);
    let _ = out.write_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
}

/// [`write_decimal`]'s text as ASCII bytes: up to 44 (a sign, a leading zero, a point and 40
/// digits), the first `len` of them written.
fn decimal_text(d: Decimal) -> ([u8; 44], usize) {
    // 29 digits at most, and up to 28 zeros to reach the scale: 40 is room for both.
    let mut digits = [0u8; 40];
    let scale = usize::try_from(d.scale()).unwrap_or(28);
    let mut n = 0;
    let m = d.mantissa().unsigned_abs();
    if let Ok(mut small) = u64::try_from(m) {
        while (n < scale || small != 0) && n < digits.len() {
            digits[n] = b'0' + (small % 10) as u8;
            small /= 10;
            n += 1;
        }
    } else {
        let mut big = m;
        while (n < scale || big != 0) && n < digits.len() {
            digits[n] = b'0' + (big % 10) as u8;
            big /= 10;
            n += 1;
        }
    }
    let mut text = [0u8; 44];
    let mut len = 0;
    let mut put = |b: u8| {
        text[len] = b;
        len += 1;
    };
    if d.is_sign_negative() {
        put(b'-');
    }
    if n <= scale {
        put(b'0');
    }
    for i in (0..n).rev() {
        if i + 1 == scale {
            put(b'.');
        }
        put(digits[i]);
    }
    (text, len)
}

impl fmt::Write for SqlText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self {
            SqlText::Inline { buf, len } => {
                let end = *len + s.len();
                if end > INLINE {
                    let mut heap = String::with_capacity(end);
                    heap.push_str(std::str::from_utf8(&buf[..*len]).map_err(|_| fmt::Error)?);
                    heap.push_str(s);
                    *self = SqlText::Heap(heap);
                } else {
                    buf[*len..end].copy_from_slice(s.as_bytes());
                    *len = end;
                }
            }
            SqlText::Heap(h) => h.push_str(s),
        }
        Ok(())
    }
}

impl ToSql for SqlText {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_bytes())))
    }
}

/// An optional decimal's text (SQL NULL for `None`).
pub fn opt_decimal(d: Option<Decimal>) -> Option<SqlText> {
    d.map(SqlText::decimal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_read_as_display_writes_them() {
        let cases = [
            Decimal::ZERO,
            -Decimal::ZERO,
            Decimal::new(0, 4),
            Decimal::from_parts(0, 0, 0, true, 4),
            Decimal::new(4500, 4),
            Decimal::new(-4500, 4),
            Decimal::new(5, 28),
            Decimal::new(-1, 28),
            Decimal::new(123_456, 2),
            Decimal::new(7, 0),
            Decimal::MAX,
            Decimal::MIN,
            Decimal::from_i128_with_scale(i128::from(u64::MAX) + 1, 3),
            Decimal::from_i128_with_scale(-(10_i128.pow(28)), 28),
        ];
        for d in cases {
            assert_eq!(SqlText::decimal(d).as_str(), d.to_string(), "{d:?}");
        }
    }

    #[test]
    fn display_text_moves_to_the_heap_only_when_long() {
        let short = SqlText::display(&"price_moved_1.25bps");
        assert!(matches!(short, SqlText::Inline { .. }));
        assert_eq!(short.as_str(), "price_moved_1.25bps");
        let long_text = "x".repeat(INLINE + 1);
        let long = SqlText::display(&long_text);
        assert!(matches!(long, SqlText::Heap(_)));
        assert_eq!(long.as_str(), long_text);
        let mut grown = SqlText::decimal(Decimal::new(-4500, 4));
        let _ = grown.write_str(&"9".repeat(INLINE));
        assert_eq!(grown.as_str(), format!("-0.4500{}", "9".repeat(INLINE)));
        // What SQLite is given is that text, inline or not.
        for t in [&short, &long, &grown] {
            assert_eq!(bound(t), t.as_str().as_bytes());
        }
    }

    /// The bytes `t` binds as its TEXT value.
    fn bound(t: &SqlText) -> Vec<u8> {
        match t.to_sql() {
            Ok(ToSqlOutput::Borrowed(ValueRef::Text(b))) => b.to_vec(),
            other => panic!("not bound as borrowed text: {other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn any_decimal_reads_as_display_writes_it(
            lo in proptest::num::u32::ANY,
            mid in proptest::num::u32::ANY,
            hi in proptest::num::u32::ANY,
            negative in proptest::bool::ANY,
            scale in 0u32..=28,
        ) {
            let d = Decimal::from_parts(lo, mid, hi, negative, scale);
            let text = SqlText::decimal(d);
            proptest::prop_assert_eq!(text.as_str(), d.to_string());
            proptest::prop_assert_eq!(bound(&text), d.to_string().into_bytes());
        }

        #[test]
        fn small_decimals_read_as_display_writes_them(
            m in -10_000_000_000_i64..10_000_000_000,
            scale in 0u32..=28,
        ) {
            let d = Decimal::new(m, scale);
            let text = SqlText::decimal(d);
            proptest::prop_assert_eq!(text.as_str(), d.to_string());
        }
    }
}
