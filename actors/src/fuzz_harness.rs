//! Fuzz harnesses: every parser of outside input, driven with arbitrary bytes, checking that it
//! never panics and that what it accepts keeps the service's invariants. Shared by the
//! cargo-fuzz targets in `fuzz/` (run by hand, figures in RELIABILITY.md) and the proptest
//! suite `tests/fuzz_parsers.rs` (run in CI), so that one set of checks is kept.
//!
//! Each harness takes raw bytes; what is not UTF-8 is fed to the parsers lossily, since the
//! transports hand them text. A failed check panics: that is how a fuzzer reports it.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::Instant;

use rust_decimal::Decimal;

use crate::binance_feed::codec::{Decoder, Frame};
use crate::binance_feed::guard::ReferenceGuard;
use crate::config::ReferenceGuardConfig;
use crate::deltadefi::wire::{
    AccountMessage, BuildOrderResponse, CancelAllResponse, ErrorBody, ExecutionRecord, ListOf,
    MarketConfigResponse, OperationKeyResponse, OrderResponse, SubmitOrderResponse,
    error_from_http,
};
use crate::types::{BinanceSymbol, in_range};
use crate::venue::VenueOrder;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

fn check_order(o: &VenueOrder) {
    assert!(
        in_range(o.price) && in_range(o.size) && in_range(o.filled),
        "{o:?}"
    );
}

/// Binance bookTicker frames, one per line (`RESET` starts a new connection): a tick that
/// passes validation is sane (positive, in range, not crossed), and the reference guard never
/// panics on it.
pub fn binance_frames(data: &[u8]) {
    let symbols = [
        BinanceSymbol("ADAUSDT".into()),
        BinanceSymbol("BTCUSDT".into()),
    ];
    let mut decoder = Decoder::new(symbols.iter().cloned());
    let mut guard = ReferenceGuard::new(ReferenceGuardConfig::default());
    let t = text(data);
    for (i, line) in t.lines().enumerate() {
        if line == "RESET" {
            decoder.reset_sequence();
            continue;
        }
        if let Ok(Frame::Tick(tick)) = decoder.decode(line, i as i64, Instant::now()) {
            assert!(tick.bid > Decimal::ZERO && tick.bid < tick.ask, "{tick:?}");
            assert!(in_range(tick.bid) && in_range(tick.ask), "{tick:?}");
            assert!(tick.bid_qty >= Decimal::ZERO && tick.ask_qty >= Decimal::ZERO);
            let _ = guard.check(&tick.symbol, tick.mid(), i as i64 * 10);
        }
    }
}

/// Every DeltaDeFi REST response shape, and the error reading of any status and body.
pub fn deltadefi_rest(data: &[u8]) {
    let t = text(data);
    if let Ok(r) = serde_json::from_str::<SubmitOrderResponse>(&t) {
        let o = r.into_order();
        if let Ok(v) = o.to_venue(0) {
            check_order(&v);
        }
        for f in o.fills(0, Decimal::from(1_000_000)) {
            assert!(f.size > Decimal::ZERO && f.price > Decimal::ZERO, "{f:?}");
        }
    }
    if let Ok(l) = serde_json::from_str::<ListOf<OrderResponse>>(&t) {
        for o in l.into_parts().0 {
            if let Ok(v) = o.to_venue(0) {
                check_order(&v);
            }
        }
    }
    let _ = serde_json::from_str::<ListOf<ExecutionRecord>>(&t);
    let _ = serde_json::from_str::<ListOf<crate::deltadefi::wire::BalanceRow>>(&t);
    let _ = serde_json::from_str::<MarketConfigResponse>(&t);
    let _ = serde_json::from_str::<OperationKeyResponse>(&t);
    let _ = serde_json::from_str::<BuildOrderResponse>(&t);
    let _ = serde_json::from_str::<CancelAllResponse>(&t);
    let _ = serde_json::from_str::<ErrorBody>(&t);
    let status = u16::from(data.first().copied().unwrap_or(0)) * 2 + 200;
    if let Some(e) = error_from_http(status, data) {
        assert!(e.code != 0, "a venue error always has a code");
    }
}

/// DeltaDeFi account-stream messages.
pub fn deltadefi_stream(data: &[u8]) {
    if let Ok(AccountMessage::OrderInfo { order }) =
        serde_json::from_str::<AccountMessage>(&text(data))
    {
        if let Ok(v) = order.to_venue(0) {
            check_order(&v);
        }
        for f in order.fills(0, Decimal::from(1_000_000)) {
            assert!(in_range(f.size) && in_range(f.price), "{f:?}");
        }
    }
}

/// A Cardano transaction from the venue's build: split, signed with a fixed key, verified.
/// Whatever the bytes, nothing panics; what is signed verifies, and its body is unchanged.
pub fn cbor_transaction(data: &[u8]) {
    let Ok(parts) = crate::signer::cbor::split_tx(data) else {
        return;
    };
    let root = match crate::signer::XPrv::from_bytes(&[7u8; 96]) {
        Ok(k) => k,
        Err(_) => return,
    };
    let signer = crate::signer::Signer::from_root(&root);
    if let Ok(signed) = signer.sign_tx(data) {
        let again = crate::signer::cbor::split_tx(&signed).expect("a signed tx splits");
        assert_eq!(
            signed[again.body], data[parts.body],
            "the body is never re-encoded"
        );
        assert_eq!(
            crate::signer::verify_signed_tx(&signed, &signer.vkey()),
            Ok(())
        );
    }
}

/// The encrypted operation-key record and bech32 keys: a wrong or malformed record is an
/// error, never a panic.
pub fn operation_key(data: &[u8]) {
    let t = text(data);
    let _ = crate::signer::key::decrypt_operation_key(&t, "passcode");
    let _ = crate::signer::key::bech32_decode(&t);
    let _ = crate::signer::XPrv::from_bech32(&t);
}
