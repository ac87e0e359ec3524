//! `deltadefi-mm report` on the database of a staging run that traded: the PnL parts add up to
//! the total and to the cash flows, the figures match what the database and RiskGuard hold.

mod common;

use std::time::Duration;

use common::{TempDir, busy_config, start_synthetic, wait_for_intents_and_fill};
use mm_actors::risk_guard::GetRiskStats;
use rust_decimal::Decimal;

/// Runs headless Chromium (Debian's package; `.ci/run` installs it) on `page`.
fn chromium(args: &[&str], page: &std::path::Path) -> std::process::Output {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args([
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (apt install chromium)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Pixels per exact RGB colour of a PNG.
fn colours(png_path: &std::path::Path) -> std::collections::HashMap<(u8, u8, u8), u64> {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).expect("screenshot"));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    let mut out = std::collections::HashMap::new();
    for px in buf[..info.buffer_size()].chunks_exact(step) {
        *out.entry((px[0], px[1], px[2])).or_default() += 1;
    }
    out
}

#[actix_rt::test]
async fn the_report_of_a_staging_run_adds_up() {
    let dir = TempDir::new("report");
    let cfg = busy_config(dir.path());
    let p = start_synthetic(&cfg, None);
    wait_for_intents_and_fill(&p, 10).await;
    common::wait_until("three fills", Duration::from_secs(60), || {
        let p = p.clone();
        async move { common::order_stats(&p).await.markets[0].fills >= 3 }
    })
    .await;
    assert!(p.shutdown(Duration::from_secs(15)).await);
    let risk = p.risk.send(GetRiskStats).await.expect("risk");

    let page = dir.path().join("report.html");
    let out = common::proc::bin()
        .args(["report", "--json", "--db"])
        .arg(&cfg.run.db_path)
        .arg("--html")
        .arg(&page)
        .output()
        .expect("run report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let r = &reports[0];
    let dec = |v: &serde_json::Value| -> Decimal {
        v.as_str()
            .expect("a decimal string")
            .parse()
            .expect("decimal")
    };
    assert_eq!(r["market"], "ADAUSDM");
    let pnl = &r["pnl"];
    let (spread, inventory, fees, total) = (
        dec(&pnl["spread"]),
        dec(&pnl["inventory"]),
        dec(&pnl["fees"]),
        dec(&pnl["total"]),
    );
    assert_eq!(total, spread + inventory - fees, "{pnl}");
    assert_eq!(total, dec(&pnl["cash_total"]), "{pnl}");

    let conn = common::db(&cfg.run.db_path);
    let fills = common::count(&conn, "SELECT COUNT(*) FROM fills");
    assert_eq!(r["fills"].as_i64(), Some(fills));
    assert!(fills >= 3);
    let fee_sum: Decimal = conn
        .prepare("SELECT fee FROM fills")
        .expect("prepare")
        .query_map([], |row| row.get::<_, String>(0))
        .expect("query")
        .map(|f| f.expect("row").parse::<Decimal>().expect("fee"))
        .sum();
    assert_eq!(fees, fee_sum);
    assert_eq!(dec(&r["inventory"]["end"]), risk.markets[0].position);
    let share = dec(&r["two_sided_share"]);
    assert!(share > Decimal::ZERO && share <= Decimal::ONE, "{share}");
    let fresh = dec(&r["quote_freshness"]);
    assert!(fresh > Decimal::ZERO && fresh <= Decimal::ONE, "{fresh}");
    assert!(r["max_actions_per_second"].as_u64().expect("max") <= 5);
    // The budget comes from the default config (5/s): at most all of it was used.
    assert_eq!(r["budget_per_second"].as_u64(), Some(5));
    let used = dec(&r["budget_used"]);
    assert!(used > Decimal::ZERO && used <= Decimal::ONE, "{used}");
    assert_eq!(r["markouts"].as_array().map(Vec::len), Some(6));

    // The page: self-contained, four charts with their lines drawn, the JSON embedded equal to
    // the --json output, and every figure in its table equal to the JSON.
    let html = std::fs::read_to_string(&page).expect("page written");
    for outside in ["http://", "https://", "src=", "<link"] {
        assert!(
            !html.contains(outside),
            "the page fetches something: {outside}"
        );
    }
    for id in [
        "chart-price",
        "chart-inventory",
        "chart-pnl",
        "chart-actions",
    ] {
        assert!(html.contains(&format!(r#"id="{id}""#)), "{id} missing");
    }
    let lines: Vec<&str> = html.split(r#"class="series""#).skip(1).collect();
    assert!(lines.len() >= 8, "{} lines", lines.len());
    assert!(html.matches(r#"class="fill""#).count() >= 3);
    let start = html.find(r#"id="report-json">"#).expect("json") + r#"id="report-json">"#.len();
    let end = html[start..].find("</script>").expect("end") + start;
    let embedded: serde_json::Value =
        serde_json::from_str(&html[start..end].replace("<\\/", "</")).expect("embedded JSON");
    assert_eq!(embedded, reports);
    for (key, value) in [
        ("pnl.total", r["pnl"]["total"].clone()),
        ("pnl.spread", r["pnl"]["spread"].clone()),
        ("fills", r["fills"].clone()),
        ("two_sided_share", r["two_sided_share"].clone()),
    ] {
        let shown = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        assert!(
            html.contains(&format!(r#"data-key="{key}">{shown}<"#)),
            "{key} should show {shown}"
        );
    }

    // In a real browser (headless Chromium): the page renders, the DOM it built carries the
    // figures of the JSON, and each chart's own colour is painted in the screenshot.
    let dom = chromium(&["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(r#"id="chart-pnl""#),
        "the browser's DOM: {}",
        &dom[..dom.len().min(300)]
    );
    for m in r["markouts"].as_array().expect("markouts") {
        let key = format!(
            "markout.{}s.{}",
            m["horizon_s"],
            m["side"].as_str().expect("side")
        );
        let shown = m["avg"].as_str().expect("avg");
        assert!(
            dom.contains(&format!(r#"data-key="{key}">{shown}<"#)),
            "{key}"
        );
    }
    let shot = dir.path().join("report.png");
    let arg = format!("--screenshot={}", shot.display());
    chromium(&[&arg, "--window-size=1000,1500"], &page);
    let painted = colours(&shot);
    for (what, rgb) in [
        ("PnL total line", (0xbf, 0x87, 0x00)),
        ("inventory line", (0x09, 0x69, 0xda)),
        ("action bars", (0x82, 0x50, 0xdf)),
        ("bids and buys", (0x1a, 0x7f, 0x37)),
        ("asks and sells", (0xcf, 0x22, 0x2e)),
        ("venue mid", (0xbf, 0x39, 0x89)),
    ] {
        let n = painted.get(&rgb).copied().unwrap_or(0);
        // Its legend swatch is 10 x 10 pixels: beyond 150, the series itself was painted.
        assert!(n >= 150, "{what} not drawn: {n} pixels of {rgb:?}");
    }

    // The text summary says the same total.
    let text = common::proc::bin()
        .args(["report", "--db"])
        .arg(&cfg.run.db_path)
        .output()
        .expect("run report");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("pnl {} = spread", total.round_dp(6))),
        "{text}"
    );
}
