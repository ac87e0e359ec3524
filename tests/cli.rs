//! The binary as an operator uses it: bad configs stop start-up naming the key; SIGINT cancels
//! everything, drains the outbox and exits 0; the kill switch halts a running service;
//! `status --db` reads the result.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, count, db, repo_path};

fn bin() -> Command {
    common::proc::bin()
}

fn staging_with(replace: &str, by: &str) -> String {
    let text = std::fs::read_to_string(repo_path("config/staging.yaml")).expect("staging.yaml");
    assert!(text.contains(replace), "staging.yaml lacks {replace:?}");
    text.replacen(replace, by, 1)
}

/// Runs `record` for 2 s with the config `yaml` into `dir`; returns the file and the output.
fn record_2s(dir: &TempDir, yaml: &str) -> (std::path::PathBuf, Output) {
    let config = dir.path().join("record.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let out = dir.path().join("recorded.jsonl");
    let o = bin()
        .args(["record", "--duration", "2s", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("record");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (out, o)
}

fn run_with_config(dir: &TempDir, yaml: &str) -> Output {
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, yaml).expect("write config");
    bin()
        .args(["run", "--config"])
        .arg(&path)
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .output()
        .expect("run binary")
}

#[test]
fn bad_config_stops_start_up_naming_the_key() {
    let dir = TempDir::new("cli-config");
    let cases = [
        (
            "unknown key",
            staging_with("  levels: 2", "  levels: 2\n    levles: 3"),
            "levles",
        ),
        (
            "out of range",
            staging_with("  levels: 2", "  levels: 0"),
            "markets[0].levels",
        ),
        (
            "budget zero",
            staging_with("actions_per_second: 5", "actions_per_second: 0"),
            "rate_limit.actions_per_second",
        ),
        (
            "wrong type",
            staging_with("max_open_orders: 20", "max_open_orders: many"),
            "max_open_orders",
        ),
        (
            "hot CPU out of range",
            staging_with(
                "  drain_timeout_ms:",
                "  hot_cpu: 5000\n  drain_timeout_ms:",
            ),
            "run.hot_cpu",
        ),
        (
            // In range, but not a CPU this process may use (no machine here has 1,000).
            "hot CPU not usable",
            staging_with(
                "  drain_timeout_ms:",
                "  hot_cpu: 1000\n  drain_timeout_ms:",
            ),
            "run.hot_cpu: CPU 1000 is not one this process may run on",
        ),
    ];
    for (name, yaml, key) in cases {
        let out = run_with_config(&dir, &yaml);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(key),
            "{name}: stderr does not name {key}: {stderr}"
        );
        assert!(
            !dir.path().join("x.db").exists(),
            "{name}: nothing may be created before the config is valid"
        );
    }
    let out = bin()
        .args(["run", "--config", "/nonexistent/x.yaml"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.yaml"));
}

fn spawn_run(db_path: &std::path::Path) -> Child {
    bin()
        .args(["run", "--db"])
        .arg(db_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run")
}

/// Starts `run` on `db_path` and returns once an order works at the (mock) venue.
fn spawn_quoting(db_path: &std::path::Path) -> Child {
    let child = spawn_run(db_path);
    wait_db(
        db_path,
        "a working order",
        "SELECT COUNT(*) FROM orders WHERE state = 'working'",
    );
    child
}

fn wait_db(db_path: &std::path::Path, what: &str, sql: &str) {
    let t0 = Instant::now();
    loop {
        if common::try_count(db_path, sql).is_some_and(|n| n > 0) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    common::proc::signal_pid(child.id(), sig);
}

fn wait_exit(mut child: Child) -> (Option<i32>, String) {
    let (code, stderr, _) = common::proc::wait_exit(&mut child, Duration::from_secs(30));
    (code, stderr)
}

#[test]
fn sigint_cancels_everything_drains_and_exits_zero() {
    let dir = TempDir::new("cli-sigint");
    let db_path = dir.path().join("run.db");
    let child = spawn_quoting(&db_path);
    signal(&child, "-INT");
    let (code, stderr) = wait_exit(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGINT"), "{stderr}");
    let conn = db(&db_path);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM orders WHERE state NOT IN ('filled','cancelled','rejected')"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending','in_flight','unknown')"
        ),
        0
    );
    assert!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'cancel_all' AND status = 'done'"
        ) >= 1
    );

    let out = bin()
        .args(["status", "--db"])
        .arg(&db_path)
        .output()
        .expect("status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ADAUSDM HALTED"), "{stdout}");
    assert!(stdout.contains("working=0"), "{stdout}");
}

#[test]
fn kill_switch_from_the_cli_halts_a_running_service() {
    let dir = TempDir::new("cli-kill");
    let db_path = dir.path().join("run.db");
    let child = spawn_quoting(&db_path);
    common::proc::kill_switch(&db_path);
    wait_db(
        &db_path,
        "the kill switch",
        "SELECT COUNT(*) FROM risk_events WHERE reason = 'kill_switch'",
    );
    wait_db(
        &db_path,
        "every order cancelled",
        "SELECT CASE WHEN (SELECT COUNT(*) FROM orders WHERE state NOT IN ('filled','cancelled','rejected')) = 0 \
         AND (SELECT COUNT(*) FROM outbox WHERE status IN ('pending','in_flight','unknown')) = 0 THEN 1 ELSE 0 END",
    );
    let placed_at_kill = count(
        &db(&db_path),
        "SELECT COUNT(*) FROM outbox WHERE kind = 'place'",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let placed_later = count(
        &db(&db_path),
        "SELECT COUNT(*) FROM outbox WHERE kind = 'place'",
    );
    assert_eq!(placed_at_kill, placed_later, "no new order while halted");
    signal(&child, "-TERM");
    let (code, stderr) = wait_exit(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
}

#[test]
fn record_writes_a_replay_file_of_the_live_stream() {
    use mm_actors::binance_feed::codec::{Decoder, Frame};
    use mm_actors::binance_feed::source::{ReplayFile, Synthetic};
    let dir = TempDir::new("cli-record");
    // A Binance-shaped stream: the wire mock with a synthetic walk, on its own thread.
    let mut cfg = deltadefi_mm::config::parse(
        &std::fs::read_to_string(repo_path("config/staging.yaml")).expect("read"),
    )
    .expect("parses");
    cfg.feed.synthetic.interval_ms = 10;
    let (tx, rx) = std::sync::mpsc::channel();
    let walk_cfg = cfg.clone();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let wire = deltadefi_mm::app::wire_mock_config(&walk_cfg, "k".into(), "p".into());
            let (addr, state, server) =
                mm_actors::mock_exchange::wire::serve(wire, "127.0.0.1:0".parse().expect("addr"))
                    .expect("bind");
            let m = &walk_cfg.markets[0];
            let walk = Synthetic::new(&walk_cfg.feed.synthetic, m.reference.clone(), 0);
            actix_rt::spawn(mm_actors::mock_exchange::wire::walk_reference(
                state,
                m.market.clone(),
                walk,
                m.reference.clone(),
            ));
            tx.send(addr).expect("addr out");
            let _ = server.await;
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).expect("mock up");
    let yaml = staging_with(
        "url: wss://stream.binance.com:9443",
        &format!("url: ws://{addr}"),
    );
    let (out, _) = record_2s(&dir, &yaml);
    let replay = ReplayFile::load(&out).expect("a replay file");
    assert!(
        replay.frames.len() > 20,
        "frames recorded: {}",
        replay.frames.len()
    );
    assert!(
        replay.frames.windows(2).all(|w| w[0].0 <= w[1].0),
        "receive times in order"
    );
    let mut dec = Decoder::new([cfg.markets[0].reference.clone()]);
    for (recv_ms, text) in &replay.frames {
        assert!(
            matches!(
                dec.decode(text, *recv_ms, std::time::Instant::now()),
                Ok(Frame::Tick(_))
            ),
            "{text}"
        );
    }
}

#[test]
fn secrets_never_appear_in_logs_or_the_database() {
    let dir = TempDir::new("cli-secrets");
    let (key, passcode) = ("k3y-0f-th3-d35k-91c4", "p4ss-c0d3-77e1-aa02");
    // The wire mock on a free port, with these secrets.
    let (mut mock, port) = common::proc::spawn_mock_exchange(key, passcode);
    let yaml = std::fs::read_to_string(repo_path("config/staging-wire.yaml"))
        .expect("read")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let config = dir.path().join("wire.yaml");
    std::fs::write(&config, yaml).expect("write");
    let db_path = dir.path().join("wire.db");
    let out = bin()
        .args(["run", "--duration", "4s", "--config"])
        .arg(&config)
        .arg("--db")
        .arg(&db_path)
        .env("RUST_LOG", "debug")
        .env("DELTADEFI_API_KEY", key)
        .env("DELTADEFI_TRADING_PASSCODE", passcode)
        .output()
        .expect("run");
    let _ = mock.kill();
    let mut mock_err = String::new();
    if let Some(mut e) = mock.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut mock_err);
    }
    let _ = mock.wait();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{logs}");
    assert!(
        logs.contains("deltadefi gateway ready"),
        "the bot traded against the mock: {logs}"
    );
    for secret in [key, passcode] {
        assert!(!logs.contains(secret), "a secret is in the bot's logs");
        assert!(!mock_err.contains(secret), "a secret is in the mock's logs");
        let db_bytes = std::fs::read(&db_path).expect("db");
        let wal = std::fs::read(dir.path().join("wire.db-wal")).unwrap_or_default();
        for bytes in [&db_bytes, &wal] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is in SQLite"
            );
        }
    }
}

/// Binance closes a connection after 24 h (and on `serverShutdown`): `record` reconnects and
/// keeps writing the same file.
#[test]
fn record_reconnects_when_the_stream_closes() {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let dir = TempDir::new("cli-record-reconnect");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = connections.clone();
    // Each connection gets three frames, then a close frame.
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let c = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                for i in 0..3u64 {
                    let u = 1_000 + c * 10 + i;
                    let frame = format!(
                        r#"{{"stream":"adausdt@bookTicker","data":{{"u":{u},"s":"ADAUSDT","b":"0.4500","B":"10.0","a":"0.4501","A":"10.0"}}}}"#
                    );
                    if ws.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
                let _ = ws.close(None).await;
            });
        }
    });
    let yaml = staging_with(
        "url: wss://stream.binance.com:9443",
        &format!("url: ws://{addr}"),
    )
    .replace("reconnect_initial_ms: 500", "reconnect_initial_ms: 50")
    .replace("reconnect_max_ms: 30000", "reconnect_max_ms: 100");
    let (out, o) = record_2s(&dir, &yaml);
    let n = connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 3, "only {n} connections in 2 s");
    let replay = mm_actors::binance_feed::source::ReplayFile::load(&out).expect("replay");
    let ids: std::collections::BTreeSet<u64> = replay
        .frames
        .iter()
        .map(|(_, t)| {
            let v: serde_json::Value = serde_json::from_str(t).expect("json");
            v["data"]["u"].as_u64().expect("u")
        })
        .collect();
    // Frames of at least three connections, none twice.
    assert_eq!(ids.len(), replay.frames.len());
    assert!(
        ids.iter()
            .map(|u| (u - 1_000) / 10)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 3,
        "{ids:?}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("reconnects"), "{stdout}");
}

/// `bench` times until the pipeline has drained, on the walk or on any replay file, and shows
/// the work done beside the speed.
#[test]
fn bench_times_until_drained_on_the_walk_and_on_a_replay() {
    let json = |args: &[&str]| -> serde_json::Value {
        let o = bin()
            .arg("bench")
            .args(args)
            .arg("--json")
            .output()
            .expect("bench");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("json")
    };
    // A walk long enough to outlast the start-up (the market quotes only once reconciled).
    let dir = TempDir::new("cli-bench");
    let replay = dir.path().join("walk.jsonl");
    let mut text = String::new();
    let mut mid = 4_500i64;
    for u in 0..40_000u64 {
        mid += [0, 0, 0, 1, -1][(u * 7 % 5) as usize] * if u % 2_000 < 1_000 { 1 } else { -1 };
        text.push_str(&format!(
            "{{\"recv_ms\":{},\"msg\":{{\"u\":{},\"s\":\"ADAUSDT\",\"b\":\"0.{mid:04}\",\"B\":\"10.0\",\"a\":\"0.{:04}\",\"A\":\"10.0\"}}}}\n",
            1_764_460_800_000 + u * 25,
            1_000 + u,
            mid + 1
        ));
    }
    std::fs::write(&replay, text).expect("write walk");
    let peer = repo_path("config/bench-peer.yaml");
    let r = json(&[
        "--replay",
        replay.to_str().expect("utf-8"),
        "--config",
        peer.to_str().expect("utf-8"),
    ]);
    let n = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    // Every tick is priced.
    assert_eq!(n(&r, "ticks"), 40_000.0, "{r}");
    assert!(n(&r, "drained_s") >= n(&r, "elapsed_s"), "{r}");
    // The process's CPU over the drain window: some, and no more than every CPU all along.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    assert!(n(&r, "cpu_s") > 0.0, "{r}");
    assert!(n(&r, "cpu_s") <= n(&r, "drained_s") * cpus + 0.05, "{r}");
    let per_tick = n(&r, "cpu_s") * 1e6 / n(&r, "ticks");
    assert!(
        (n(&r, "cpu_us_per_tick") - per_tick).abs() < 1e-6 * per_tick.max(1.0),
        "{r}"
    );
    // By thread: the hot arbiter (the main thread) and the SQLite writer both worked, and no
    // thread used more than the whole process did.
    let threads = r["cpu_s_by_thread"].as_object().expect("cpu_s_by_thread");
    for name in ["main", "sqlite-store"] {
        assert!(threads[name].as_f64().expect(name) > 0.0, "{name}: {r}");
    }
    let by_thread: f64 = threads.values().filter_map(|s| s.as_f64()).sum();
    assert!(by_thread <= n(&r, "cpu_s") + 0.05, "{r}");
    for k in ["quote_decisions", "orders", "actions_sent"] {
        assert!(n(&r, k) > 0.0, "{k}: {r}");
    }
    // The most writes that waited for the SQLite thread at once: decisions did.
    assert!(r["store_queue_peak"].as_u64().is_some_and(|q| q > 0), "{r}");
    // Device interrupts by CPU over the window: every CPU /proc/interrupts lists, keyed by
    // its number.
    if let Ok(text) = std::fs::read_to_string("/proc/interrupts") {
        let irqs = r["device_irqs_by_cpu"]
            .as_object()
            .expect("device_irqs_by_cpu");
        let listed = text.lines().next().map_or(0, |h| {
            h.split_whitespace()
                .filter(|c| c.starts_with("CPU"))
                .count()
        });
        assert_eq!(irqs.len(), listed, "{r}");
        for (cpu, n) in irqs {
            assert!(cpu.parse::<usize>().is_ok() && n.as_u64().is_some(), "{r}");
        }
    }
    // The path of ticks that change no order, alone: every tick decoded, each price move seen.
    let only = json(&[
        "--replay",
        replay.to_str().expect("utf-8"),
        "--config",
        peer.to_str().expect("utf-8"),
        "--pricing-only",
    ]);
    assert_eq!(n(&only, "ticks"), 40_000.0, "{only}");
    assert!(
        n(&only, "targets") > 0.0 && n(&only, "targets") < 40_000.0,
        "{only}"
    );
    let w = json(&["--ticks", "20000"]);
    assert_eq!(n(&w, "ticks"), 20000.0);
    assert!(n(&w, "drained_s") >= n(&w, "elapsed_s"), "{w}");
    assert!(
        n(&w, "ticks_per_sec") <= n(&w, "priced_ticks_per_sec"),
        "{w}"
    );
}
