//! The report as one self-contained HTML file: no network, no script from anywhere, charts as
//! inline SVG. Charts over time: the reference mid with our best bid/ask and the fills; the
//! inventory; cumulative PnL by component; order actions per second against the budget. The
//! figures of the text report are in a table whose cells carry the JSON key they show, and the
//! JSON itself is embedded (`<script type="application/json" id="report-json">`), so that a
//! reader or a test can check one against the other.

use std::fmt::Write as _;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::report::{MarketInput, MarketReport, carried_and_window, mark_at};

/// Points kept per line at most (a long run is thinned evenly, its last point kept).
const MAX_POINTS: usize = 1_500;

/// (t, reference mid, our bid, our ask, the venue's mid).
pub type PricePoint = (i64, f64, Option<f64>, Option<f64>, Option<f64>);
/// (t, spread, inventory, −fees, total), cumulative.
pub type PnlPoint = (i64, f64, f64, f64, f64);

/// Time series of one market over a report's window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub price: Vec<PricePoint>,
    /// (t, price, +1 buy / −1 sell).
    pub fills: Vec<(i64, f64, i8)>,
    /// (t, position), after each fill.
    pub inventory: Vec<(i64, f64)>,
    pub pnl: Vec<PnlPoint>,
    /// (second start, actions sent in it).
    pub actions: Vec<(i64, u32)>,
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// The series of `input` over `[from_ms, to_ms]`, with the same PnL arithmetic as the report
/// (the last PnL point equals its totals).
pub fn series(input: &MarketInput, from_ms: i64, to_ms: i64) -> Series {
    let mut s = Series::default();
    for m in input
        .marks
        .iter()
        .filter(|m| m.ts_ms >= from_ms && m.ts_ms <= to_ms)
    {
        s.price.push((
            m.ts_ms,
            f(m.mid),
            m.bid.map(f),
            m.ask.map(f),
            m.venue_mid.map(f),
        ));
    }
    let (start, window) = carried_and_window(input, from_ms, to_ms);
    let start_mark = mark_at(&input.marks, from_ms).map(|m| m.mid);
    // Events: every fill and every mark; at each, PnL marked at the mark then in force.
    let mut times: Vec<i64> = window
        .iter()
        .map(|x| x.ts_ms)
        .chain(s.price.iter().map(|p| p.0))
        .chain([to_ms])
        .collect();
    times.sort_unstable();
    times.dedup();
    let (mut spread, mut fees, mut qty_cost) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut pos = start;
    let mut next = 0usize;
    s.inventory.push((from_ms, f(start)));
    for t in times {
        while let Some(x) = window.get(next).filter(|x| x.ts_ms <= t) {
            let sign = Decimal::from(x.sign);
            let mid = mark_at(&input.marks, x.ts_ms).map_or(x.price, |m| m.mid);
            spread += sign * x.size * (mid - x.price);
            fees += x.fee;
            // What the fills cost at their mids: inventory PnL is then pos·M − start·M0 − this.
            qty_cost += sign * x.size * mid;
            pos += sign * x.size;
            s.fills.push((x.ts_ms, f(x.price), x.sign));
            s.inventory.push((x.ts_ms, f(pos)));
            next += 1;
        }
        let Some(m) = mark_at(&input.marks, t).map(|m| m.mid) else {
            continue;
        };
        let inventory = pos * m - start * start_mark.unwrap_or(m) - qty_cost;
        s.pnl.push((
            t,
            f(spread),
            f(inventory),
            f(-fees),
            f(spread + inventory - fees),
        ));
    }
    s.inventory.push((to_ms, f(pos)));
    let mut per_second: std::collections::BTreeMap<i64, u32> = Default::default();
    for t in input
        .sends
        .iter()
        .filter(|t| **t >= from_ms && **t <= to_ms)
    {
        *per_second.entry(t - t.rem_euclid(1_000)).or_default() += 1;
    }
    s.actions = per_second.into_iter().collect();
    s
}

fn thin<T: Clone>(v: &[T]) -> Vec<T> {
    if v.len() <= MAX_POINTS {
        return v.to_vec();
    }
    let step = v.len().div_ceil(MAX_POINTS);
    let mut out: Vec<T> = v.iter().step_by(step).cloned().collect();
    if let Some(last) = v.last() {
        out.push(last.clone());
    }
    out
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 900.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

struct Axes {
    t0: i64,
    t1: i64,
    y0: f64,
    y1: f64,
}

impl Axes {
    fn new(t0: i64, t1: i64, ys: impl Iterator<Item = f64>) -> Axes {
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for y in ys.filter(|y| y.is_finite()) {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        if (y1 - y0).abs() < 1e-12 {
            (y0, y1) = (y0 - 0.5, y1 + 0.5);
        }
        Axes {
            t0,
            t1: t1.max(t0 + 1),
            y0,
            y1,
        }
    }
    fn x(&self, t: i64) -> f64 {
        PAD + (t - self.t0) as f64 / (self.t1 - self.t0) as f64 * (W - 2.0 * PAD)
    }
    fn y(&self, v: f64) -> f64 {
        H - PAD + (self.y0 - v) / (self.y1 - self.y0) * (H - 2.0 * PAD)
    }
}

fn polyline(ax: &Axes, pts: &[(i64, f64)], color: &str, name: &str, step: bool) -> String {
    let mut d = String::new();
    let mut prev: Option<f64> = None;
    for (t, v) in thin(pts) {
        if let (true, Some(p)) = (step, prev) {
            let _ = write!(d, "{:.1},{:.1} ", ax.x(t), ax.y(p));
        }
        let _ = write!(d, "{:.1},{:.1} ", ax.x(t), ax.y(v));
        prev = Some(v);
    }
    format!(
        r#"<polyline class="series" data-name="{}" fill="none" stroke="{color}" stroke-width="1.2" points="{}"/>"#,
        esc(name),
        d.trim_end()
    )
}

fn chart(title: &str, id: &str, ax: &Axes, body: &str, legend: &[(&str, &str)]) -> String {
    let mut out = format!(
        r#"<figure><figcaption>{}</figcaption><svg id="{id}" class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img">"#,
        esc(title)
    );
    let _ = write!(
        out,
        r##"<rect x="{PAD}" y="{PAD}" width="{}" height="{}" fill="#fafafa" stroke="#ccc"/>"##,
        W - 2.0 * PAD,
        H - 2.0 * PAD
    );
    let _ = write!(
        out,
        r##"<text x="2" y="{:.1}" font-size="10">{}</text><text x="2" y="{:.1}" font-size="10">{}</text>"##,
        PAD + 4.0,
        fmt_num(ax.y1),
        H - PAD,
        fmt_num(ax.y0)
    );
    let secs = (ax.t1 - ax.t0) as f64 / 1_000.0;
    let _ = write!(
        out,
        r#"<text x="{PAD}" y="{:.1}" font-size="10">0 s</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{secs:.1} s</text>"#,
        H - PAD + 14.0,
        W - PAD,
        H - PAD + 14.0
    );
    out.push_str(body);
    for (i, (name, color)) in legend.iter().enumerate() {
        let x = PAD + 10.0 + i as f64 * 140.0;
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="8" width="10" height="10" fill="{color}"/><text x="{:.1}" y="17" font-size="11">{}</text>"#,
            x + 14.0,
            esc(name)
        );
    }
    out.push_str("</svg></figure>");
    out
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// One market's section: the figures table and the four charts.
fn section(r: &MarketReport, s: &Series) -> String {
    let mut out = format!("<section><h2>{}</h2>", esc(&r.market));
    let rows: [(&str, String); 14] = [
        ("pnl.total", r.pnl.total.to_string()),
        ("pnl.spread", r.pnl.spread.to_string()),
        ("pnl.inventory", r.pnl.inventory.to_string()),
        ("pnl.fees", r.pnl.fees.to_string()),
        ("fills", r.fills.to_string()),
        ("volume_quote", r.volume_quote.to_string()),
        ("inventory.end", r.inventory.end.to_string()),
        (
            "inventory.time_weighted",
            r.inventory.time_weighted.to_string(),
        ),
        ("fills_per_hour", r.fills_per_hour.to_string()),
        ("two_sided_share", r.two_sided_share.to_string()),
        ("quote_freshness", r.quote_freshness.to_string()),
        ("actions", r.actions.to_string()),
        (
            "max_actions_per_second",
            r.max_actions_per_second.to_string(),
        ),
        ("budget_used", r.budget_used.to_string()),
    ];
    out.push_str("<table class=\"figures\">");
    for (key, value) in rows {
        let _ = write!(
            out,
            r#"<tr><th>{}</th><td data-key="{}">{}</td></tr>"#,
            esc(key),
            esc(key),
            esc(&value)
        );
    }
    for m in &r.markouts {
        let key = format!("markout.{}s.{}", m.horizon_s, m.side);
        let _ = write!(
            out,
            r#"<tr><th>{}</th><td data-key="{}">{}</td></tr>"#,
            esc(&key),
            esc(&key),
            m.avg
        );
    }
    out.push_str("</table>");

    let (t0, t1) = (r.from_ms, r.to_ms);
    let price_pts = |g: fn(&PricePoint) -> Option<f64>| -> Vec<(i64, f64)> {
        s.price
            .iter()
            .filter_map(|p| g(p).map(|v| (p.0, v)))
            .collect()
    };
    let mid = price_pts(|p| Some(p.1));
    let bid = price_pts(|p| p.2);
    let ask = price_pts(|p| p.3);
    let venue = price_pts(|p| p.4);
    let ax = Axes::new(
        t0,
        t1,
        mid.iter()
            .chain(&bid)
            .chain(&ask)
            .chain(&venue)
            .map(|p| p.1)
            .chain(s.fills.iter().map(|x| x.1)),
    );
    let mut body = polyline(&ax, &mid, "#555", "reference mid", true);
    body.push_str(&polyline(&ax, &venue, "#bf3989", "venue mid", true));
    body.push_str(&polyline(&ax, &bid, "#1a7f37", "our bid", true));
    body.push_str(&polyline(&ax, &ask, "#cf222e", "our ask", true));
    for (t, p, sign) in thin(&s.fills) {
        let color = if sign > 0 { "#1a7f37" } else { "#cf222e" };
        let _ = write!(
            body,
            r#"<circle class="fill" cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
            ax.x(t),
            ax.y(p)
        );
    }
    out.push_str(&chart(
        "Reference and venue mid, our best bid and ask, fills",
        "chart-price",
        &ax,
        &body,
        &[
            ("reference mid", "#555"),
            ("venue mid", "#bf3989"),
            ("bid / buys", "#1a7f37"),
            ("ask / sells", "#cf222e"),
        ],
    ));

    let ax = Axes::new(t0, t1, s.inventory.iter().map(|p| p.1));
    let body = polyline(&ax, &s.inventory, "#0969da", "inventory", true);
    out.push_str(&chart(
        "Inventory (base)",
        "chart-inventory",
        &ax,
        &body,
        &[("position", "#0969da")],
    ));

    type Component = (&'static str, &'static str, fn(&PnlPoint) -> f64);
    let comps: [Component; 4] = [
        ("total", "#bf8700", |p| p.4),
        ("spread", "#1a7f37", |p| p.1),
        ("inventory", "#0969da", |p| p.2),
        ("fees", "#cf222e", |p| p.3),
    ];
    let ax = Axes::new(t0, t1, s.pnl.iter().flat_map(|p| [p.1, p.2, p.3, p.4]));
    let mut body = String::new();
    for (name, color, g) in comps {
        let pts: Vec<(i64, f64)> = s.pnl.iter().map(|p| (p.0, g(p))).collect();
        body.push_str(&polyline(&ax, &pts, color, name, false));
    }
    out.push_str(&chart(
        "Cumulative PnL by component (quote units)",
        "chart-pnl",
        &ax,
        &body,
        &[
            ("total", "#bf8700"),
            ("spread", "#1a7f37"),
            ("inventory", "#0969da"),
            ("fees", "#cf222e"),
        ],
    ));

    let ax = Axes::new(
        t0,
        t1,
        s.actions.iter().map(|a| f64::from(a.1)).chain([0.0]),
    );
    let mut body = String::new();
    let bar_w = ((W - 2.0 * PAD) * 1_000.0 / (ax.t1 - ax.t0) as f64).max(1.0);
    for (t, n) in thin(&s.actions) {
        let y = ax.y(f64::from(n));
        let _ = write!(
            body,
            r##"<rect class="bar" x="{:.1}" y="{y:.1}" width="{bar_w:.1}" height="{:.1}" fill="#8250df"/>"##,
            ax.x(t),
            ax.y(0.0) - y
        );
    }
    out.push_str(&chart(
        "Order actions per second",
        "chart-actions",
        &ax,
        &body,
        &[("actions sent", "#8250df")],
    ));
    out.push_str("</section>");
    out
}

/// Each report with its charts' series, over the report's own window.
pub fn pages(inputs: &[MarketInput], reports: &[MarketReport]) -> Vec<(MarketReport, Series)> {
    inputs
        .iter()
        .zip(reports)
        .map(|(i, r)| (r.clone(), series(i, r.from_ms, r.to_ms)))
        .collect()
}

/// The whole page for `reports` (with their series), JSON embedded.
pub fn render(reports: &[(MarketReport, Series)]) -> String {
    let json = serde_json::to_string(&reports.iter().map(|(r, _)| r).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
        // Safe inside <script>: no "</" can close it early.
        .replace("</", "<\\/");
    let mut out = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>deltadefi-mm report</title><style>body{font:14px system-ui,sans-serif;margin:24px;color:#111}table.figures{border-collapse:collapse;margin:8px 0 16px}table.figures th,table.figures td{border:1px solid #ddd;padding:3px 8px;text-align:left}table.figures td{font-family:ui-monospace,monospace}figure{margin:0 0 16px}figcaption{font-weight:600;margin-bottom:4px}</style></head><body><h1>deltadefi-mm report</h1>"#,
    );
    for (r, s) in reports {
        out.push_str(&section(r, s));
    }
    let _ = write!(
        out,
        r#"<script type="application/json" id="report-json">{json}</script></body></html>"#
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FillRow, MarkRow, compute};

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn the_last_pnl_point_is_the_reports_total_and_the_page_is_self_contained() {
        let mark = |t: i64, mid: &str| MarkRow {
            ts_ms: t,
            mid: d(mid),
            bid: Some(d(mid) - d("0.0005")),
            ask: Some(d(mid) + d("0.0005")),
            venue_mid: Some(d(mid)),
        };
        let input = MarketInput {
            market: "ADAUSDM".into(),
            fills: vec![
                FillRow {
                    ts_ms: 1_000,
                    sign: 1,
                    price: d("0.4495"),
                    size: d("100"),
                    fee: d("0.045"),
                },
                FillRow {
                    ts_ms: 3_000,
                    sign: -1,
                    price: d("0.4510"),
                    size: d("40"),
                    fee: d("0.018"),
                },
            ],
            marks: vec![
                mark(0, "0.4500"),
                mark(2_000, "0.4480"),
                mark(4_000, "0.4505"),
            ],
            sends: vec![900, 950, 2_900],
            ..MarketInput::default()
        };
        let r = compute(&input, 0, 5_000);
        let s = series(&input, 0, 5_000);
        let last = s.pnl.last().expect("points");
        assert!(
            (last.4 - f(r.pnl.total)).abs() < 1e-9,
            "{last:?} vs {}",
            r.pnl.total
        );
        assert!((last.1 - f(r.pnl.spread)).abs() < 1e-9);
        assert!((last.2 - f(r.pnl.inventory)).abs() < 1e-9);
        assert_eq!(s.actions, vec![(0, 2), (2_000, 1)]);
        let html = render(&[(r.clone(), s)]);
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="));
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains(&format!(r#"data-key="pnl.total">{}<"#, r.pnl.total)));
        assert!(html.contains(r#"id="report-json""#));
    }
}
