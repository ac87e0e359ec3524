//! Chaos: a venue that answers garbage (issue 7, finding 4).
//!
//! After a submit that reached the venue, an answer that is not a well-formed venue answer — a
//! 200 whose body does not parse, an empty 200, an HTML 404 or 400 page, no answer at all, a
//! connection cut mid-answer — is an unknown outcome: the order is looked up by the id its
//! build gave, found, and managed (never marked rejected, never re-quoted beside it). A
//! cancel-all answered with garbage at shutdown is retried or settled by listing; nothing is
//! left open.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::wire::{WireMock, over_the_wire};
use common::{TempDir, db, staging_config, start_wire, wait_until};
use rust_decimal::Decimal;

fn venue_ids_in_db(path: &std::path::Path) -> Vec<(String, String)> {
    let conn = db(path);
    let mut stmt = conn
        .prepare("SELECT venue_order_id, state FROM orders WHERE venue_order_id IS NOT NULL")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[actix_rt::test]
async fn garbage_after_a_submit_is_an_unknown_outcome_and_the_order_stays_managed() {
    let dir = TempDir::new("chaos-garbage");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 20;
    cfg.mock_exchange.latency_ms = 0;
    cfg.gateway.request_timeout_ms = 800;
    cfg.gateway.reconcile_interval_ms = 1_000;
    cfg.markets[0].requote_tolerance_bps = Decimal::from(2);
    let mock = WireMock::start(&cfg, true);
    let cfg = over_the_wire(cfg, mock.addr);
    let db_path = cfg.run.db_path.clone();
    let p = start_wire(&cfg);
    wait_until(
        "orders resting at the venue",
        Duration::from_secs(30),
        || {
            let n = mock.open_orders();
            async move { n >= 2 }
        },
    )
    .await;
    let faults = [
        serde_json::json!({"path": "/order/submit", "answer": "garbage"}),
        serde_json::json!({"path": "/order/submit", "answer": "empty"}),
        serde_json::json!({"path": "/order/submit", "answer": "html"}),
        serde_json::json!({"path": "/order/submit", "answer": "html", "http_status": 400}),
        serde_json::json!({"path": "/order/submit", "answer": "reset"}),
        serde_json::json!({"path": "/order/submit", "answer": "hang"}),
    ];
    for fault in faults {
        let before: HashSet<String> = mock
            .all_orders()
            .iter()
            .map(|o| o.venue_order_id.to_string())
            .collect();
        mock.fault(fault.clone());
        // The next submit is executed by the venue and answered wrongly.
        wait_until(
            &format!("a submit answered with {fault}"),
            Duration::from_secs(30),
            || {
                let n = mock.all_orders().len();
                let b = before.len();
                async move { n > b }
            },
        )
        .await;
        let new_id = mock
            .all_orders()
            .into_iter()
            .map(|o| o.venue_order_id.to_string())
            .find(|id| !before.contains(id))
            .expect("the new venue order");
        // The bot learns it, by lookup, and manages it: never "rejected".
        wait_until(
            &format!("the order of {fault} known and managed"),
            Duration::from_secs(20),
            || {
                let found = venue_ids_in_db(&db_path)
                    .into_iter()
                    .find(|(v, _)| *v == new_id);
                async move {
                    matches!(found, Some((_, s)) if matches!(s.as_str(),
                        "working" | "partially_filled" | "filled" | "pending_cancel" | "cancelled"))
                }
            },
        )
        .await;
    }
    // Shutdown with cancel-alls answered with garbage (executed) and by a proxy (not executed).
    mock.fault(serde_json::json!({"path": "/order/cancel-all", "answer": "garbage"}));
    mock.fault(serde_json::json!({"path": "/order/cancel-all", "http_status": 503}));
    assert!(
        p.shutdown(Duration::from_secs(20)).await,
        "shutdown ends flat despite garbage"
    );
    assert_eq!(mock.open_orders(), 0, "nothing left open at the venue");
    // Every order the venue ever had is known to us, and none we know is marked rejected
    // while the venue had it.
    let ours: std::collections::HashMap<String, String> =
        venue_ids_in_db(&db_path).into_iter().collect();
    for o in mock.all_orders() {
        let state = ours.get(o.venue_order_id.as_str());
        assert!(
            state.is_some_and(|s| s != "rejected"),
            "venue order {} is {:?} in our database",
            o.venue_order_id,
            state
        );
    }
}
