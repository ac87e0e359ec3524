//! DeltaDeFi's own Python SDK (`deltadefi` 1.1.1, pinned in tests/sdk/requirements.txt) against
//! the wire mock on 127.0.0.1: every SDK call a market maker uses, the account stream and the
//! market streams, with the SDK's own signer; tests/sdk/conformance.py checks the parsed
//! values of every answer against the spec. The virtualenv is built once by
//! scripts/sdk-venv.sh (`.ci/run` does it first; on a machine where it was never built, this
//! test builds it, which takes a minute or two).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::wire::{KEY, PASSCODE, WireMock};
use common::{TempDir, repo_path, staging_config};

#[test]
fn the_official_sdk_works_against_the_wire_mock() {
    let venv = Command::new("bash")
        .arg(repo_path("scripts/sdk-venv.sh"))
        .current_dir(repo_path(""))
        .output()
        .expect("run scripts/sdk-venv.sh");
    assert!(
        venv.status.success(),
        "the SDK's virtualenv could not be built:\n{}",
        String::from_utf8_lossy(&venv.stderr)
    );
    let python = repo_path(String::from_utf8_lossy(&venv.stdout).trim());

    let dir = TempDir::new("sdk");
    let mut cfg = staging_config(&dir.0);
    // The SDK has no client-side pacing: lift the mock's order-action budget for this test.
    cfg.mock_exchange.actions_per_second = 1_000;
    let mock = WireMock::start(&cfg, false);
    let report = dir.0.join("report.json");
    let t0 = Instant::now();
    let out = Command::new(&python)
        .arg(repo_path("tests/sdk/conformance.py"))
        .args(["--rest", &format!("http://{}", mock.addr)])
        .args(["--ws", &format!("ws://{}", mock.addr)])
        .args(["--api-key", KEY, "--passcode", PASSCODE])
        .arg("--report")
        .arg(&report)
        .output()
        .expect("run the conformance script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK found the mock short:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("report is JSON");
    let failed: Vec<&serde_json::Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
    // Every group of the script ran: a silently skipped section would leave fewer checks.
    assert!(
        results.len() >= 45,
        "only {} checks ran:\n{stdout}",
        results.len()
    );
    for must in [
        "post_order without post_only: accepted (post_only defaults to false)",
        "crossing limit order without post_only: executes as taker at the book",
        "error body (no API key, whatever the body): JSON {error, code} with 401/4010",
        "depth stream: epoch-ms timestamp, numbers, bids descending, asks ascending, not crossed",
        "recent-trades stream: an array with ISO micro-second times and numbers",
    ] {
        assert!(
            results.iter().any(|r| r["name"] == must && r["ok"] == true),
            "check {must:?} missing"
        );
    }
    // Nothing the SDK did was left resting at the venue.
    assert_eq!(mock.open_orders(), 0);
    println!(
        "SDK conformance: {} checks passed in {:.1} s",
        results.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(t0.elapsed() < Duration::from_secs(120));
}
