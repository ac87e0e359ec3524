//! A crash and a restart on the same database: the first run is dropped mid-flight (no
//! shutdown, rows still pending, orders working); the second run resumes from SQLite. Every
//! pending outbox row is carried through to a terminal state, nothing in flight is resent,
//! and every order the first run had live is known to the second and settled with the venue.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TempDir, count, db, staging_config, wait_until};
use deltadefi_mm::app::{Pipeline, VenueAccess, feed_spec};
use mm_actors::config::Config;
use mm_actors::store::Store;
use mm_actors::types::now_ms;

fn config(dir: &std::path::Path) -> Config {
    let mut cfg = staging_config(dir);
    cfg.feed.synthetic.interval_ms = 20;
    cfg.markets[0].levels = 3;
    cfg.rate_limit.actions_per_second = 2; // slow, so that rows are still pending at the crash
    cfg
}

fn statuses(
    conn: &rusqlite::Connection,
    table: &str,
    key: &str,
    col: &str,
) -> HashMap<String, String> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT CAST({key} AS TEXT), CAST({col} AS TEXT) FROM {table}"
        ))
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[test]
fn restart_resumes_outbox_and_orders_from_sqlite() {
    let dir = TempDir::new("resume");
    let cfg = config(dir.path());
    let path = cfg.run.db_path.clone();

    // First run: quote until at least one order works at the venue and rows wait in the outbox.
    let c1 = cfg.clone();
    actix::System::new().block_on(async move {
        let store = Store::open(&c1.run.db_path).expect("store");
        let p1 = Pipeline::start(
            &c1,
            store,
            feed_spec(&c1).expect("spec"),
            VenueAccess::InProcess,
        )
        .expect("pipeline starts");
        let p = c1.run.db_path.clone();
        wait_until(
            "working orders and pending rows",
            Duration::from_secs(30),
            || {
                let conn = db(&p);
                let ok = count(&conn, "SELECT COUNT(*) FROM orders WHERE state = 'working'") >= 1
                    && count(
                        &conn,
                        "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
                    ) >= 1;
                async move { ok }
            },
        )
        .await;
        // Stopping the venue arbiter and returning drops every actor with everything in
        // flight: a crash, not a shutdown.
        p1.stop();
    });
    std::thread::sleep(Duration::from_millis(200)); // the store thread finishes its last commit
    let crash_ms = now_ms();
    let conn = db(&path);
    let outbox_at_crash = statuses(&conn, "outbox", "id", "status");
    let orders_at_crash = statuses(&conn, "orders", "client_order_id", "state");
    let sends_at_crash = statuses(&conn, "outbox_sends", "id", "outbox_id");
    drop(conn);
    let pending: Vec<&String> = outbox_at_crash
        .iter()
        .filter(|(_, s)| *s == "pending")
        .map(|(id, _)| id)
        .collect();
    let in_flight: Vec<&String> = outbox_at_crash
        .iter()
        .filter(|(_, s)| *s == "in_flight")
        .map(|(id, _)| id)
        .collect();
    let live: Vec<&String> = orders_at_crash
        .iter()
        .filter(|(_, s)| !matches!(s.as_str(), "filled" | "cancelled" | "rejected"))
        .map(|(id, _)| id)
        .collect();
    assert!(
        !pending.is_empty() && !live.is_empty(),
        "crash state: {outbox_at_crash:?} {orders_at_crash:?}"
    );

    // Second run on the same database, then a clean shutdown.
    let c2 = cfg.clone();
    actix::System::new().block_on(async move {
        let store = Store::open(&c2.run.db_path).expect("store");
        let p = Pipeline::start(
            &c2,
            store,
            feed_spec(&c2).expect("spec"),
            VenueAccess::InProcess,
        )
        .expect("pipeline starts");
        let path = c2.run.db_path.clone();
        wait_until("every row open at the crash to finish", Duration::from_secs(30), || {
            let conn = db(&path);
            let open = count(
                &conn,
                &format!(
                    "SELECT COUNT(*) FROM outbox WHERE status IN ('pending','in_flight','unknown') \
                     AND created_at_ms <= {crash_ms}"
                ),
            );
            async move { open == 0 }
        })
        .await;
        assert!(
            p.shutdown(Duration::from_secs(20)).await,
            "second run drains"
        );
    });

    let conn = db(&path);
    let outbox_after = statuses(&conn, "outbox", "id", "status");
    for id in &pending {
        let st = &outbox_after[*id];
        assert!(
            matches!(st.as_str(), "done" | "superseded" | "rejected"),
            "row {id} pending at the crash ended {st}"
        );
        if st == "done" {
            let resent_after = count(
                &conn,
                &format!(
                    "SELECT COUNT(*) FROM outbox_sends WHERE outbox_id = {id} AND sent_at_ms >= {crash_ms}"
                ),
            );
            assert!(
                resent_after >= 1,
                "row {id} is done but was not sent after the restart"
            );
        }
    }
    for id in &in_flight {
        let before = sends_at_crash.values().filter(|o| o == id).count() as i64;
        let total = count(
            &conn,
            &format!("SELECT COUNT(*) FROM outbox_sends WHERE outbox_id = {id}"),
        );
        assert_eq!(
            total, before,
            "row {id} was in flight at the crash and must not be resent"
        );
    }
    // Every order live at the crash was known to the second run and settled with the venue.
    let orders_after = statuses(&conn, "orders", "client_order_id", "state");
    for id in &live {
        let st = &orders_after[*id];
        assert!(
            matches!(st.as_str(), "filled" | "cancelled" | "rejected"),
            "order {id} ended {st}"
        );
        let settled_after = count(
            &conn,
            &format!(
                "SELECT COUNT(*) FROM order_events WHERE client_order_id = '{id}' AND ts_ms >= {crash_ms}"
            ),
        );
        assert!(
            settled_after >= 1,
            "order {id} had no event after the restart"
        );
    }
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending','in_flight','unknown')"
        ),
        0
    );
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
}
