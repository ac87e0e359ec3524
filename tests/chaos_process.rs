//! Chaos at the process level, with the release of the binary an operator runs (issue 7,
//! findings 3, 5, 7, 8, 11 and 12): a second instance on one database is refused naming the
//! holder; the action budget holds at the venue across kill -9 restarts; a database locked at
//! SIGTERM cannot hang the shutdown; a full disk halts trading with reason storage, cancels at
//! the venue and resumes once SQLite commits again; a database from a newer binary and a
//! missing secret are refused before anything is created or sent.

mod common;

use std::time::Duration;

use common::proc::{
    LogTail, bin, signal_pid, spawn_bot, spawn_mock_exchange, wait_code, wait_exit, wait_for,
};
use common::wire::{WireMock, wire_yaml};
use common::{TempDir, count, db, repo_path, staging_config, try_count};

/// The offline staging config with `edit` applied, written under `dir`.
fn staging_yaml(dir: &std::path::Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_path("config/staging.yaml")).expect("staging.yaml");
    let path = dir.join("staging.yaml");
    std::fs::write(&path, edit(text)).expect("write");
    path
}

/// True once the service on `db_path` has an order working.
fn working(db_path: &std::path::Path) -> bool {
    try_count(
        db_path,
        "SELECT COUNT(*) FROM orders WHERE state = 'working'",
    )
    .is_some_and(|n| n > 0)
}

#[test]
fn a_second_instance_on_the_same_database_is_refused_naming_the_holder() {
    let dir = TempDir::new("chaos-second");
    let db_path = dir.path().join("one.db");
    let config = staging_yaml(dir.path(), |t| t);
    let mut first = spawn_bot(&config, &db_path, &[]);
    let first_log = LogTail::follow(&mut first);
    wait_for(
        "the first instance quoting",
        Duration::from_secs(30),
        || working(&db_path),
    );
    let mut second = spawn_bot(&config, &db_path, &[]);
    let (code, stderr, took) = wait_exit(&mut second, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(took < Duration::from_secs(5), "refused at once: {took:?}");
    assert!(
        stderr.contains("in use by another deltadefi-mm"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.id())),
        "names the holder: {stderr}"
    );
    assert!(!stderr.contains("deltadefi-mm starting"), "{stderr}");
    // The first goes on, and stops cleanly.
    signal_pid(first.id(), "-TERM");
    let (code, _) = wait_code(&mut first, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", first_log.text());
}

#[test]
fn a_newer_schema_and_a_missing_secret_are_refused_before_anything_changes() {
    let dir = TempDir::new("chaos-refused");
    // A database migrated by a newer binary.
    let db_path = dir.path().join("newer.db");
    drop(mm_actors::store::Store::open(&db_path).expect("store"));
    {
        let conn = rusqlite::Connection::open(&db_path).expect("db");
        conn.execute(
            "INSERT INTO schema_migrations(version, applied_at_ms) VALUES (99, 0)",
            [],
        )
        .expect("v99");
    }
    let events_before = count(&db(&db_path), "SELECT COUNT(*) FROM risk_events");
    let out = bin()
        .args(["run", "--duration", "2s", "--db"])
        .arg(&db_path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("newer deltadefi-mm"), "{stderr}");
    assert!(stderr.contains("99"), "{stderr}");
    let conn = db(&db_path);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM risk_events"),
        events_before
    );
    assert_eq!(
        count(&conn, "SELECT MAX(version) FROM schema_migrations"),
        99
    );
    // The kill switch still reaches it.
    common::proc::kill_switch(&db_path);

    // No DELTADEFI_API_KEY for a DeltaDeFi config: refused, no database created.
    let wire_db = dir.path().join("wire.db");
    let out = bin()
        .args(["run", "--config", "config/staging-wire.yaml", "--db"])
        .arg(&wire_db)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DELTADEFI_API_KEY"), "{stderr}");
    assert!(
        !wire_db.exists(),
        "nothing created before the secrets are there"
    );
}

#[test]
fn a_database_locked_at_sigterm_cannot_hang_the_shutdown() {
    let dir = TempDir::new("chaos-locked");
    let db_path = dir.path().join("locked.db");
    let config = staging_yaml(dir.path(), |t| {
        t.replace("drain_timeout_ms: 10000", "drain_timeout_ms: 2000")
    });
    let mut bot = spawn_bot(&config, &db_path, &[]);
    let log = LogTail::follow(&mut bot);
    wait_for("quoting", Duration::from_secs(30), || working(&db_path));
    // Another process holds the write lock.
    let holder = rusqlite::Connection::open(&db_path).expect("db");
    holder
        .execute_batch("BEGIN EXCLUSIVE;")
        .expect("write lock");
    wait_for("the storage halt", Duration::from_secs(15), || {
        log.contains("SQLite cannot commit")
    });
    signal_pid(bot.id(), "-TERM");
    // Drain timeout 2 s + the 5 s grace is the hard deadline.
    let (code, took) = wait_code(&mut bot, Duration::from_secs(15));
    let text = log.text();
    assert_eq!(code, Some(1), "{text}");
    assert!(took < Duration::from_secs(9), "out after {took:?}: {text}");
    assert!(
        text.contains("reason=storage") || text.contains("reason=\"storage"),
        "{text}"
    );
    assert!(text.contains("left"), "names what was left: {text}");
    holder.execute_batch("ROLLBACK;").expect("release");

    // Locked before start: refused at once, exit 2.
    let holder = rusqlite::Connection::open(&db_path).expect("db");
    holder
        .execute_batch("BEGIN EXCLUSIVE;")
        .expect("write lock");
    let out = bin()
        .args(["run", "--duration", "3s", "--db"])
        .arg(&db_path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("locked"), "{stderr}");
}

/// Kills (-9) and restarts the bot `restarts` times against the wire mock, each time soon after
/// it sent its first actions, then stops it with SIGTERM; returns the mock and the database.
fn kill_restart_loop(dir: &TempDir, restarts: usize) -> (WireMock, std::path::PathBuf) {
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 20;
    cfg.feed.synthetic.burst_probability = rust_decimal::Decimal::new(3, 2);
    cfg.mock_exchange.latency_ms = 0;
    let mock = WireMock::start(&cfg, true);
    let config = wire_yaml(dir.path(), mock.addr, |t| {
        t.replace(
            "requote_tolerance_bps: \"5\"",
            "requote_tolerance_bps: \"1\"",
        )
        .replace("venue_spread_bps: \"20\"", "venue_spread_bps: \"8\"")
    });
    let db_path = dir.path().join("restarts.db");
    for i in 0..restarts {
        let seen = mock.arrivals().len();
        let mut bot = spawn_bot(&config, &db_path, &[]);
        let log = LogTail::follow(&mut bot);
        // Killed as soon as it has sent a few actions (its start-up cancel-all among them), at
        // a random-ish point of its send schedule.
        let want = 2 + i % 4;
        wait_for(
            &format!("incarnation {i} to send {want} actions"),
            Duration::from_secs(30),
            || mock.arrivals().len() >= seen + want,
        );
        signal_pid(bot.id(), "-KILL");
        let (code, _) = wait_code(&mut bot, Duration::from_secs(10));
        assert_eq!(code, None, "killed by a signal: {}", log.text());
    }
    // A last run that quotes for a while, then stops cleanly.
    let seen = mock.arrivals().len();
    let mut bot = spawn_bot(&config, &db_path, &[]);
    let log = LogTail::follow(&mut bot);
    wait_for("the last run to quote", Duration::from_secs(30), || {
        mock.arrivals().len() >= seen + 8 && mock.open_orders() > 0
    });
    signal_pid(bot.id(), "-TERM");
    let (code, _) = wait_code(&mut bot, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", log.text());
    (mock, db_path)
}

/// The least time between an action and the fifth after it, as the venue received them: at
/// most five per second holds while this is ≥ 1000 ms.
fn tightest_six(mock: &WireMock) -> i64 {
    let t: Vec<i64> = mock.arrivals().iter().map(|(t, _)| *t).collect();
    t.windows(6).map(|w| w[5] - w[0]).min().unwrap_or(i64::MAX)
}

/// What must hold after any number of kill -9 restarts: the budget at the venue, nothing left
/// open, every venue order known and none of them mistaken for rejected, every venue trade
/// stored once, the position equal to the venue's.
fn assert_survived_restarts(mock: &WireMock, db_path: &std::path::Path, budget: usize) {
    let max = mock.max_per_second();
    assert!(
        max <= budget,
        "{max} actions in one second at the venue (budget {budget}): {:?}",
        mock.arrivals()
    );
    let conn = db(db_path);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE last_error LIKE '4290%'"
        ),
        0,
        "the venue refused over budget"
    );
    assert_eq!(
        mock.open_orders(),
        0,
        "nothing left open after the final SIGTERM"
    );
    let mut stmt = conn
        .prepare("SELECT venue_order_id, state, COALESCE(last_error, '') FROM orders WHERE venue_order_id IS NOT NULL")
        .expect("prepare");
    let ours: std::collections::HashMap<String, (String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    for o in mock.all_orders() {
        match ours.get(o.venue_order_id.as_str()) {
            Some((state, err)) => assert_ne!(
                state, "rejected",
                "venue order {} was at the venue but is rejected here ({err})",
                o.venue_order_id
            ),
            None => panic!(
                "venue order {} was never known to the database",
                o.venue_order_id
            ),
        }
    }
    let venue_fills = mock.state.lock().expect("state").fills();
    let venue_trades: std::collections::BTreeSet<String> =
        venue_fills.iter().map(|f| f.trade_id.to_string()).collect();
    let mut stmt = conn.prepare("SELECT trade_id FROM fills").expect("prepare");
    let stored: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    let stored_set: std::collections::BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "a trade stored twice");
    assert_eq!(
        stored_set, venue_trades,
        "our trades differ from the venue's"
    );
    let venue_position: rust_decimal::Decimal =
        venue_fills.iter().map(|f| f.side.sign() * f.size).sum();
    let status = deltadefi_mm::status::from_db(db_path).expect("status");
    assert_eq!(status.markets[0].inventory, venue_position);
}

#[test]
fn the_budget_holds_at_the_venue_across_kill_9_restarts() {
    let dir = TempDir::new("chaos-restarts");
    let (mock, db_path) = kill_restart_loop(&dir, 10);
    assert_survived_restarts(&mock, &db_path, 5);
    let fills = mock.state.lock().expect("state").fills().len();
    println!(
        "10 kill -9 restarts: {} actions at the venue, at most {} in one second (six actions span >= {} ms), {fills} fills",
        mock.arrivals().len(),
        mock.max_per_second(),
        tightest_six(&mock),
    );
}

/// The soak: 50 kill -9 restarts (`CHAOS_RESTARTS` to change), not in CI; figures go to
/// RELIABILITY.md. Run with `scripts/chaos.sh`.
#[test]
#[ignore = "soak: scripts/chaos.sh"]
fn soak_kill_9_restarts() {
    let restarts: usize = std::env::var("CHAOS_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = TempDir::new("chaos-soak");
    let t0 = std::time::Instant::now();
    let (mock, db_path) = kill_restart_loop(&dir, restarts);
    assert_survived_restarts(&mock, &db_path, 5);
    let conn = db(&db_path);
    let venue_fills = mock.state.lock().expect("state").fills().len();
    let tightest = tightest_six(&mock);
    let (actions, max, orders, open) = (
        mock.arrivals().len(),
        mock.max_per_second(),
        mock.all_orders().len(),
        mock.open_orders(),
    );
    println!(
        "soak: {restarts} kill -9 restarts in {:.1?}; venue: {actions} actions, at most {max} in one second (the 6th action of any run of six came >= {tightest} ms after the 1st), {orders} orders, {venue_fills} fills, {open} open at the end; ours: {} orders, {} fills, {} outbox rows",
        t0.elapsed(),
        count(&conn, "SELECT COUNT(*) FROM orders"),
        count(&conn, "SELECT COUNT(*) FROM fills"),
        count(&conn, "SELECT COUNT(*) FROM outbox"),
    );
}

/// `prlimit` on a running process: its soft file-size limit (bytes), or `unlimited`.
fn set_file_size_limit(pid: u32, soft: &str) {
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={soft}:")])
        .output()
        .expect("prlimit");
    assert!(
        out.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_full_disk_halts_with_reason_storage_cancels_at_the_venue_and_resumes_when_writable() {
    let dir = TempDir::new("chaos-disk-full");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 20;
    cfg.mock_exchange.latency_ms = 0;
    let mock = WireMock::start(&cfg, true);
    let config = wire_yaml(dir.path(), mock.addr, |t| t);
    let db_path = dir.path().join("full.db");
    // The bot ignores SIGXFSZ (as a process should not die of a full disk): writes past the
    // limit fail with EFBIG instead, which SQLite reports as an I/O error.
    let mut bot = common::proc::Killed(
        std::process::Command::new("sh")
            .args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_deltadefi-mm"))
            .args(["run", "--config"])
            .arg(&config)
            .arg("--db")
            .arg(&db_path)
            .current_dir(repo_path(""))
            .env("DELTADEFI_API_KEY", common::wire::KEY)
            .env("DELTADEFI_TRADING_PASSCODE", common::wire::PASSCODE)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let log = LogTail::follow(&mut bot);
    wait_for(
        "orders resting at the venue",
        Duration::from_secs(30),
        || mock.open_orders() >= 2,
    );
    // The disk is full: no file of the process may grow past 16 KiB any more.
    set_file_size_limit(bot.id(), "16384");
    let full = std::time::Instant::now();
    wait_for("the storage halt", Duration::from_secs(20), || {
        log.contains("reason=storage")
    });
    let halted_in = full.elapsed();
    let halted_at = common::now_ms_approx();
    wait_for(
        "every order cancelled at the venue",
        Duration::from_secs(20),
        || mock.open_orders() == 0,
    );
    let flat_in = full.elapsed();
    let places_after_halt = |mock: &WireMock| {
        mock.arrivals()
            .iter()
            .filter(|(t, k)| *k == "place" && *t > halted_at + 200)
            .count()
    };
    // No restart storm, no request storm (reads included), no place while nothing can be
    // recorded.
    let seen = mock.arrivals().len();
    let requests = mock.state.lock().expect("state").requests();
    mock.wait_ticks(75); // 1.5 s of the market at 20 ms a tick
    let read = mock.state.lock().expect("state").requests() - requests;
    assert!(
        read <= 10,
        "{read} REST requests in 1.5 s while storage failed"
    );
    assert_eq!(places_after_halt(&mock), 0, "{}", log.text());
    assert!(
        mock.arrivals().len() <= seen + 2,
        "no request storm while storage fails"
    );
    let restarts = log.text().matches("actor restarting").count();
    assert!(
        restarts <= 2,
        "{restarts} actor restarts while storage failed"
    );
    // Space again: SQLite commits, the halt clears, quoting resumes.
    set_file_size_limit(bot.id(), "unlimited");
    let room = std::time::Instant::now();
    wait_for("storage recovered", Duration::from_secs(20), || {
        log.contains("storage recovered")
    });
    let recovered_in = room.elapsed();
    wait_for("quoting again", Duration::from_secs(30), || {
        mock.open_orders() > 0
    });
    println!(
        "disk full: halted {halted_in:?} and the venue flat {flat_in:?} after the limit; {restarts} actor restarts, {read} REST requests in 1.5 s of outage; SQLite commits again {recovered_in:?} after room came back, quoting {:?} after",
        room.elapsed()
    );
    signal_pid(bot.id(), "-TERM");
    let (code, _) = wait_code(&mut bot, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", log.text());
    assert_eq!(mock.open_orders(), 0);
    let conn = db(&db_path);
    assert!(
        count(
            &conn,
            "SELECT COUNT(*) FROM risk_events WHERE reason LIKE '%storage%'"
        ) >= 1,
        "the storage halt is recorded once the disk has room"
    );
}

#[test]
fn cancels_unknown_at_a_crash_are_settled_at_the_next_start() {
    let dir = TempDir::new("chaos-unknown-cancel");
    let db_path = dir.path().join("crash.db");
    let config = staging_yaml(dir.path(), |t| t);
    // A run that leaves working orders behind, then a crash with a cancel and a cancel-all
    // in flight (their answers lost with the process).
    let mut bot = spawn_bot(&config, &db_path, &[]);
    wait_for("quoting", Duration::from_secs(30), || working(&db_path));
    signal_pid(bot.id(), "-KILL");
    let _ = wait_code(&mut bot, Duration::from_secs(10));
    {
        let conn = rusqlite::Connection::open(&db_path).expect("db");
        let coid: String = conn
            .query_row(
                "SELECT client_order_id FROM orders WHERE state = 'working' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("a working order");
        let now = mm_actors::types::now_ms();
        conn.execute_batch(&format!(
            "INSERT INTO outbox(id, kind, market, client_order_id, status, attempts, created_at_ms, sent_at_ms, next_attempt_at_ms)
                 VALUES (100000, 'cancel', 'ADAUSDM', '{coid}', 'in_flight', 1, {now}, {now}, {now});
             INSERT INTO outbox(id, kind, market, status, attempts, created_at_ms, sent_at_ms, next_attempt_at_ms)
                 VALUES (100001, 'cancel_all', 'ADAUSDM', 'unknown', 1, {now}, {now}, {now});
             UPDATE orders SET state = 'pending_cancel' WHERE client_order_id = '{coid}';"
        ))
        .expect("rows in flight at the crash");
    }
    // The next run settles them, quotes, and stops cleanly well inside its drain timeout.
    let mut run = bin()
        .args(["run", "--duration", "3s", "--config"])
        .arg(&config)
        .arg("--db")
        .arg(&db_path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let (code, stderr, took) = wait_exit(&mut run, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        took < Duration::from_secs(8),
        "no full drain timeout: {took:?}"
    );
    let conn = db(&db_path);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE id IN (100000, 100001) AND status = 'done'"
        ),
        2
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending','in_flight','unknown')"
        ),
        0
    );
}

#[test]
fn every_reject_logs_one_warn_line_with_its_code() {
    let dir = TempDir::new("chaos-reject-warn");
    let mut cfg = staging_config(dir.path());
    cfg.mock_exchange.latency_ms = 0;
    let mock = WireMock::start(&cfg, true);
    let config = wire_yaml(dir.path(), mock.addr, |t| t);
    let db_path = dir.path().join("reject.db");
    mock.fault(serde_json::json!({"path": "/order/submit", "code": 4100}));
    let mut bot = spawn_bot(&config, &db_path, &[]);
    let log = LogTail::follow(&mut bot);
    wait_for("the reject logged", Duration::from_secs(30), || {
        log.contains("venue rejected the request")
    });
    signal_pid(bot.id(), "-TERM");
    let (code, _) = wait_code(&mut bot, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", log.text());
    let text = log.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("venue rejected the request"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("code=4100"),
        "{}",
        lines[0]
    );
}

#[test]
fn sigterm_with_the_venue_gone_exits_one_within_the_deadline_naming_what_is_left() {
    let dir = TempDir::new("chaos-venue-gone");
    // The wire mock as its own process, so that it can disappear.
    let (mut mock, port) = spawn_mock_exchange(common::wire::KEY, common::wire::PASSCODE);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = wire_yaml(dir.path(), addr, |t| {
        t.replace("drain_timeout_ms: 15000", "drain_timeout_ms: 2000")
    });
    let db_path = dir.path().join("gone.db");
    let mut bot = spawn_bot(&config, &db_path, &[]);
    let log = LogTail::follow(&mut bot);
    wait_for("quoting", Duration::from_secs(30), || working(&db_path));
    signal_pid(mock.id(), "-KILL");
    let _ = mock.wait();
    signal_pid(bot.id(), "-TERM");
    let (code, took) = wait_code(&mut bot, Duration::from_secs(20));
    let text = log.text();
    assert_eq!(code, Some(1), "{text}");
    assert!(took < Duration::from_secs(8), "out after {took:?}");
    assert!(
        text.contains("not confirmed flat at the venue: ADAUSDM"),
        "{text}"
    );
}
