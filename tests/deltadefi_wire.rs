//! The real DeltaDeFi REST transport against the wire mock exchange on 127.0.0.1: start-up
//! (market config, operation key decrypted with the passcode, orphan cancel-all), a full place
//! → fill → lookup → cancel cycle with signed transactions verified by the mock, every error
//! path and its classified action, and a submit whose response is lost (no duplicate order).

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use mm_actors::deltadefi::rest::{DeltaDeFiRest, RestConfig};
use mm_actors::gateway::errors::{ErrorClass, classify};
use mm_actors::halt_gate::HaltGate;
use mm_actors::intent::IntentKind;
use mm_actors::mock_exchange::matching::MatchingParams;
use mm_actors::mock_exchange::wire::{WireMockConfig, serve};
use mm_actors::pricing_rules::MarketRules;
use mm_actors::rate_limiter::SendGate;
use mm_actors::types::{ClientOrderId, MarketId, Side, VenueOrderId};
use mm_actors::venue::{
    NewOrder, SendTag, VenueFailure, VenueOrderStatus, VenueReply, VenueRequest,
};
use rust_decimal::Decimal;
use zeroize::Zeroizing;

const KEY: &str = "test-api-key";
const PASSCODE: &str = "correct horse battery staple";

fn d(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn market() -> MarketRules {
    MarketRules {
        market: MarketId("ADAUSDM".into()),
        price_decimals: 4,
        size_decimals: 2,
        min_order_size: d("5"),
        min_order_notional: d("1"),
        anchor_bps: Decimal::ZERO,
    }
}

fn start_mock(actions_per_second: u32) -> SocketAddr {
    let cfg = WireMockConfig {
        api_key: KEY.into(),
        passcode: PASSCODE.into(),
        markets: vec![market()],
        params: MatchingParams {
            maker_fee_bps: d("10"),
            partial_fill_ratio: Decimal::ONE,
            actions_per_second,
            seed: 11,
            base_balance: d("10000"),
            quote_balance: d("10000"),
            ..MatchingParams::default()
        },
        build_expiry_ms: 30_000,
        validate_at_build: true,
        depth_interval_ms: 1_000,
        references: vec![(MarketId("ADAUSDM".into()), "ADAUSDT".into())],
    };
    let (addr, _state, server) = serve(cfg, "127.0.0.1:0".parse().expect("addr")).expect("bind");
    actix_rt::spawn(server);
    addr
}

fn rest(addr: SocketAddr, passcode: &str, timeout_ms: u64) -> Addr<DeltaDeFiRest> {
    let cfg = RestConfig {
        base_url: format!("http://{addr}"),
        api_key: Zeroizing::new(KEY.into()),
        passcode: Zeroizing::new(passcode.into()),
        timeout: Duration::from_millis(timeout_ms),
        markets: vec![market()],
        gate: SendGate::unlimited_for_tests(HaltGate::open_for_tests([MarketId("ADAUSDM".into())])),
    };
    Supervisor::start(move |_| DeltaDeFiRest::new(cfg))
}

async fn control(addr: SocketAddr, path: &str, body: serde_json::Value) {
    let resp = awc::Client::default()
        .post(format!("http://{addr}{path}"))
        .send_json(&body)
        .await
        .expect("control");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

async fn ask(r: &Addr<DeltaDeFiRest>, req: VenueRequest) -> Result<VenueReply, VenueFailure> {
    r.send(req).await.expect("mailbox")
}

/// A wire mock and a REST transport that finished its start-up, the reference at
/// 0.4500 / 0.4502.
async fn ready_venue(timeout_ms: u64) -> (SocketAddr, Addr<DeltaDeFiRest>) {
    let addr = start_mock(100);
    let r = rest(addr, PASSCODE, timeout_ms);
    ready(&r).await;
    control(
        addr,
        "/mock/reference",
        serde_json::json!({"market": "ADAUSDM", "bid": "0.4500", "ask": "0.4502"}),
    )
    .await;
    (addr, r)
}

/// Sends until the transport has finished its start-up (it answers 5001 before).
async fn ready(r: &Addr<DeltaDeFiRest>) {
    for _ in 0..400 {
        match ask(r, VenueRequest::Balances).await {
            Ok(_) => return,
            Err(VenueFailure::Rejected(e)) if e.code == 5001 => {
                actix_rt::time::sleep(Duration::from_millis(25)).await
            }
            Err(e) => panic!("start-up failed: {e}"),
        }
    }
    panic!("the REST transport did not become ready");
}

fn buy(id: &str, price: &str) -> VenueRequest {
    VenueRequest::Place(NewOrder {
        client_order_id: ClientOrderId(id.into()),
        market: MarketId("ADAUSDM".into()),
        side: Side::Buy,
        price: d(price),
        size: d("100"),
        traceparent: None,
        tag: SendTag::default(),
    })
}

fn placed(r: Result<VenueReply, VenueFailure>) -> VenueOrderId {
    match r {
        Ok(VenueReply::Placed(o)) => o.venue_order_id,
        other => panic!("expected a placed order, got {other:?}"),
    }
}

fn code_of(r: Result<VenueReply, VenueFailure>) -> u32 {
    match r {
        Err(VenueFailure::Rejected(e)) => e.code,
        other => panic!("expected a venue error, got {other:?}"),
    }
}

#[actix_rt::test]
async fn place_fill_lookup_cancel_over_rest() {
    let (addr, r) = ready_venue(2_000).await;

    let filled_id = placed(ask(&r, buy("c1", "0.4490")).await);
    let resting_id = placed(ask(&r, buy("c2", "0.4480")).await);
    match ask(
        &r,
        VenueRequest::OpenOrders {
            market: MarketId("ADAUSDM".into()),
        },
    )
    .await
    {
        Ok(VenueReply::OpenOrders(v)) => assert_eq!(v.len(), 2),
        other => panic!("{other:?}"),
    }
    // The reference ask trades through 0.4490 but not 0.4480.
    control(
        addr,
        "/mock/reference",
        serde_json::json!({"market": "ADAUSDM", "bid": "0.4484", "ask": "0.4485"}),
    )
    .await;
    let q = |id: &VenueOrderId| VenueRequest::Query {
        venue_order_id: Some(id.clone()),
        client_order_id: ClientOrderId("x".into()),
    };
    match ask(&r, q(&filled_id)).await {
        Ok(VenueReply::Order { order: Some(o), .. }) => {
            assert_eq!((o.status, o.filled), (VenueOrderStatus::Filled, d("100")))
        }
        other => panic!("{other:?}"),
    }
    let cancel = VenueRequest::Cancel {
        venue_order_id: Some(resting_id.clone()),
        client_order_id: ClientOrderId("c2".into()),
        market: MarketId("ADAUSDM".into()),
        tag: SendTag::default(),
        traceparent: None,
    };
    assert_eq!(
        ask(&r, cancel.clone()).await.ok(),
        Some(VenueReply::Cancelled(resting_id.clone()))
    );
    // Cancelling again: 4201, which for a cancel means done.
    let again = code_of(ask(&r, cancel).await);
    assert_eq!(
        (again, classify(again, IntentKind::Cancel)),
        (4201, ErrorClass::AlreadyDone)
    );
    match ask(&r, q(&resting_id)).await {
        Ok(VenueReply::Order { order: Some(o), .. }) => {
            assert_eq!(o.status, VenueOrderStatus::Cancelled)
        }
        other => panic!("{other:?}"),
    }
    // Nothing open: cancel-all answers 4200, done for a cancel-all.
    let empty = code_of(
        ask(
            &r,
            VenueRequest::CancelAll {
                market: MarketId("ADAUSDM".into()),
                tag: SendTag::default(),
                traceparent: None,
            },
        )
        .await,
    );
    assert_eq!(
        classify(empty, IntentKind::CancelAll),
        ErrorClass::AlreadyDone
    );
    match ask(&r, VenueRequest::Balances).await {
        Ok(VenueReply::Balances(b)) => {
            let ada = b.iter().find(|x| x.asset == "ada").expect("ada");
            assert_eq!(ada.free, d("10100"), "the fill delivered 100 ADA");
        }
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn error_codes_map_to_their_actions() {
    let (addr, r) = ready_venue(2_000).await;
    // Definite rejects from the venue's own checks.
    let cases = [
        (
            "too many decimals",
            "0.44901",
            4102,
            ErrorClass::DefiniteReject,
        ),
        (
            "post-only cross",
            "0.4502",
            4104,
            ErrorClass::DefiniteReject,
        ),
    ];
    for (name, price, code, class) in cases {
        let got = code_of(ask(&r, buy(name, price)).await);
        assert_eq!(
            (got, classify(got, IntentKind::Place)),
            (code, class),
            "{name}"
        );
    }
    // Injected answers on the submit step.
    let injected = [
        (4290, ErrorClass::Retry),
        (4301, ErrorClass::Retry),
        (4300, ErrorClass::Rebuild),
        (5002, ErrorClass::Pause),
        (4010, ErrorClass::Fatal),
    ];
    for (code, class) in injected {
        control(
            addr,
            "/mock/fault",
            serde_json::json!({"path": "/order/submit", "code": code}),
        )
        .await;
        let got = code_of(ask(&r, buy("f", "0.4490")).await);
        assert_eq!(
            (got, classify(got, IntentKind::Place)),
            (code, class),
            "{code}"
        );
    }
    // A 5000 after the submit went out, or a 503 from the gateway: the outcome is unknown and
    // carries the order id from the build.
    for fault in [
        serde_json::json!({"path": "/order/submit", "code": 5000}),
        serde_json::json!({"path": "/order/submit", "http_status": 503}),
    ] {
        control(addr, "/mock/fault", fault).await;
        match ask(&r, buy("u", "0.4490")).await {
            Err(VenueFailure::OutcomeUnknown {
                venue_order_id: Some(_),
                ..
            }) => {}
            other => panic!("expected an unknown outcome, got {other:?}"),
        }
    }
    // 4290 before the submit (on build) is a plain retry too.
    control(
        addr,
        "/mock/fault",
        serde_json::json!({"path": "/order/build", "code": 4290}),
    )
    .await;
    assert_eq!(code_of(ask(&r, buy("b", "0.4490")).await), 4290);
}

#[actix_rt::test]
async fn a_lost_submit_response_is_an_unknown_outcome_and_no_duplicate() {
    let (addr, r) = ready_venue(300).await;
    // The mock executes the submit, then holds its answer past the client's timeout.
    control(
        addr,
        "/mock/fault",
        serde_json::json!({"path": "/order/submit", "delay_ms": 1500}),
    )
    .await;
    let id = match ask(&r, buy("lost", "0.4490")).await {
        Err(VenueFailure::OutcomeUnknown {
            venue_order_id: Some(id),
            ..
        }) => id,
        other => panic!("expected an unknown outcome, got {other:?}"),
    };
    // Looked up by the build's id: it is there, exactly once.
    let q = VenueRequest::Query {
        venue_order_id: Some(id.clone()),
        client_order_id: ClientOrderId("lost".into()),
    };
    match ask(&r, q).await {
        Ok(VenueReply::Order { order: Some(o), .. }) => {
            assert_eq!(o.status, VenueOrderStatus::Open)
        }
        other => panic!("{other:?}"),
    }
    match ask(
        &r,
        VenueRequest::OpenOrders {
            market: MarketId("ADAUSDM".into()),
        },
    )
    .await
    {
        Ok(VenueReply::OpenOrders(v)) => assert_eq!(
            v.iter()
                .map(|o| o.venue_order_id.clone())
                .collect::<Vec<_>>(),
            vec![id]
        ),
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn wrong_passcode_stops_start_up_with_a_clear_error() {
    let addr = start_mock(100);
    let r = rest(addr, "not the passcode", 2_000);
    // Never ready: every request is answered 5001 (retryable), nothing is signed or sent.
    for _ in 0..10 {
        assert_eq!(code_of(ask(&r, buy("w", "0.4490")).await), 5001);
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}
