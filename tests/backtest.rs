//! `backtest` as an operator uses it: the same file, config and seed give byte-identical files
//! from two separate processes; nothing is left open at the venue; the budget holds as the
//! simulated venue counts it; the report's PnL parts add up; a sweep ranks its grid and names
//! a bad value's key.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{TempDir, repo_path};
use rust_decimal::Decimal;

/// A deterministic walk of ADAUSDT bookTicker frames at ~25 ms with trends and a few bad
/// frames: enough to quote, fill both ways, requote and be refused now and then.
fn replay(dir: &Path, frames: u32) -> PathBuf {
    let path = dir.join("walk.jsonl");
    let mut text = String::from("# test walk\n");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut t, mut mid) = (1_764_460_800_000i64, 4_500i64);
    for u in 0..frames {
        t += 5 + (next() % 40) as i64;
        let r = next() % 100;
        let trend = if (u / 400) % 2 == 0 { 1 } else { -1 };
        if r < 12 {
            mid += trend;
        } else if r < 18 {
            mid -= trend;
        }
        let ask = mid + 1 + (next() % 10 == 0) as i64;
        let f = |p: i64| format!("{}.{:04}", p / 10_000, p % 10_000);
        if u % 997 == 0 {
            text.push_str(&format!("{{\"recv_ms\":{t},\"msg\":\"not json\"}}\n"));
        }
        text.push_str(&format!(
            "{{\"recv_ms\":{t},\"msg\":{{\"u\":{},\"s\":\"ADAUSDT\",\"b\":\"{}\",\"B\":\"{}.0\",\"a\":\"{}\",\"A\":\"{}.0\"}}}}\n",
            1_000 + u64::from(u),
            f(mid),
            1_000 + next() % 90_000,
            f(ask),
            1_000 + next() % 90_000
        ));
    }
    std::fs::write(&path, text).expect("write replay");
    path
}

fn backtest(args: &[&str]) -> Output {
    let out = common::proc::bin()
        .arg("backtest")
        .args(args)
        .output()
        .expect("run backtest");
    assert!(
        out.status.success(),
        "backtest {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `backtest` on `replay` with the staging config into `out`, expects it to fail, and
/// returns what it said.
fn refused(replay: &Path, out: &Path, extra: &[&str]) -> String {
    let o = common::proc::bin()
        .args(["backtest", "--replay"])
        .arg(replay)
        .arg("--config")
        .arg(repo_path("config/staging.yaml"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run");
    assert!(!o.status.success(), "backtest {extra:?} did not fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

fn json(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&read(dir, name)).expect("json")
}

fn dec(v: &serde_json::Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .expect("decimal")
}

const FILES: [&str; 5] = [
    "report.json",
    "summary.json",
    "orders.csv",
    "fills.csv",
    "report.html",
];

#[test]
fn same_file_config_and_seed_give_identical_files_and_nothing_is_left_open() {
    let dir = TempDir::new("backtest-det");
    let walk = replay(dir.path(), 12_000);
    let config = repo_path("config/staging.yaml");
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for (out, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        backtest(&[
            "--replay",
            walk.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--seed",
            seed,
        ]);
    }
    for f in FILES {
        assert!(read(&a, f) == read(&b, f), "{f} differs between two runs");
    }
    // The seed is what draws the latencies: another seed, other timings.
    assert!(
        read(&a, "orders.csv") != read(&c, "orders.csv"),
        "another seed changed nothing"
    );

    let s = json(&a, "summary.json");
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("summary.{k}: {s}"));
    assert!(n("fills") >= 10, "too quiet to test anything: {s}");
    assert!(n("orders") > 0 && n("actions") > 0 && n("quote_decisions") > 0);
    assert_eq!(n("dropped"), 13, "the bad frames are dropped and counted");
    assert_eq!(n("open_at_end"), 0, "orders left resting at the venue");
    assert!(
        s["venue_rejects"].get("4290").is_none(),
        "the simulated venue refused for the budget: {s}"
    );

    let reports = json(&a, "report.json");
    let r = &reports[0];
    assert!(
        r["max_actions_per_second"].as_u64().expect("max") <= 5,
        "{r}"
    );
    assert_eq!(r["fills"].as_u64(), Some(n("fills")));
    let p = &r["pnl"];
    let (spread, inventory, fees, total) = (
        dec(&p["spread"]),
        dec(&p["inventory"]),
        dec(&p["fees"]),
        dec(&p["total"]),
    );
    assert_eq!(total, spread + inventory - fees);
    assert_eq!(total, dec(&p["cash_total"]));
    assert!(fees > Decimal::ZERO);
    // The database is the service's own: orders end in a terminal state.
    let conn = common::db(&a.join("backtest.db"));
    assert_eq!(
        common::count(
            &conn,
            "SELECT COUNT(*) FROM orders WHERE state NOT IN ('filled','cancelled','rejected')"
        ),
        0
    );
    assert_eq!(
        common::count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending','in_flight','unknown')"
        ),
        0
    );
}

#[test]
fn a_sweep_ranks_every_combination_and_names_a_bad_value() {
    let dir = TempDir::new("backtest-sweep");
    let walk = replay(dir.path(), 6_000);
    let config = repo_path("config/staging.yaml");
    let out = dir.path().join("sweep");
    let o = backtest(&[
        "--replay",
        walk.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--sweep",
        "venue_spread_bps=10,40",
        "--sweep",
        "levels=1,2",
        "--jobs",
        "2",
        "--json",
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json rows");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 4);
    let pnls: Vec<Decimal> = rows.iter().map(|r| dec(&r["pnl"])).collect();
    assert!(
        pnls.windows(2).all(|w| w[0] >= w[1]),
        "not sorted: {pnls:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for r in rows {
        // Each row is its own run's report.
        let run = PathBuf::from(r["dir"].as_str().expect("dir"));
        let report = json(&run, "report.json");
        assert_eq!(dec(&report[0]["pnl"]["total"]), dec(&r["pnl"]));
        seen.insert(r["combination"].to_string());
    }
    assert_eq!(seen.len(), 4, "a combination ran twice or not at all");

    let err = refused(&walk, &dir.path().join("bad"), &["--sweep", "levels=1,0"]);
    assert!(err.contains("markets[0].levels"), "{err}");
}

#[test]
fn a_bad_replay_line_or_an_empty_file_stops_it_naming_what() {
    let dir = TempDir::new("backtest-bad");
    let run = |text: &str| {
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, text).expect("write");
        refused(&path, &dir.path().join("out"), &[])
    };
    let good = r#"{"recv_ms":1,"msg":{"u":1,"s":"ADAUSDT","b":"0.45","B":"1","a":"0.46","A":"1"}}"#;
    let err = run(&format!("# header\n{good}\n{{\"recv_ms\": \n"));
    assert!(err.contains("line 3"), "{err}");
    let err = run("# nothing but a comment\n\n");
    assert!(err.contains("holds no frames"), "{err}");
}

#[test]
fn a_second_run_into_the_same_directory_is_refused() {
    let dir = TempDir::new("backtest-lock");
    let walk = replay(dir.path(), 200);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    // Another process (or a service on that database) holds it.
    let _held =
        deltadefi_mm::instance::InstanceLock::acquire(&out.join("backtest.db"), "").expect("lock");
    let err = refused(&walk, &out, &[]);
    assert!(err.contains("in use"), "{err}");
    assert!(!out.join("report.json").exists());
}
