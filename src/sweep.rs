//! `backtest --sweep key=v1,v2,...`: the grid of configs, backtested in parallel, one row per
//! combination sorted by an objective.
//!
//! A key is a dotted path into the config file (`risk.max_position`, `markets.0.levels`);
//! `markets.*.key`, or a bare market key (`venue_spread_bps`), sets it in every market. Each
//! combination is the base file with those values, validated like any config: a bad value
//! stops the sweep naming the key.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mm_actors::config::Config;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_yaml::Value;

use crate::backtest::{self, BacktestError, Outcome};

/// One `--sweep` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Parses `key=v1,v2,...`.
///
/// # Errors
/// A message naming the argument.
pub fn parse_axis(s: &str) -> Result<Axis, String> {
    let (key, values) = s
        .split_once('=')
        .ok_or_else(|| format!("--sweep {s:?}: expected key=v1,v2,..."))?;
    let values: Vec<String> = values
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if key.trim().is_empty() || values.is_empty() {
        return Err(format!("--sweep {s:?}: expected key=v1,v2,..."));
    }
    Ok(Axis {
        key: key.trim().to_string(),
        values,
    })
}

/// Every combination of the axes' values, the first axis varying slowest.
pub fn grid(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for a in axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                a.values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((a.key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

fn set(node: &mut Value, path: &[&str], value: &str, key: &str) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        // Keep a string a string (decimals are written as strings); otherwise YAML typing.
        *node = match node {
            Value::String(_) => Value::String(value.to_string()),
            _ => serde_yaml::from_str(value).map_err(|e| format!("{key}={value}: {e}"))?,
        };
        return Ok(());
    };
    match node {
        Value::Sequence(items) if *first == "*" => {
            for item in items {
                set(item, rest, value, key)?;
            }
            Ok(())
        }
        Value::Sequence(items) => {
            let i: usize = first
                .parse()
                .map_err(|_| format!("{key}: {first:?} is not an index of a list"))?;
            let len = items.len();
            let item = items
                .get_mut(i)
                .ok_or_else(|| format!("{key}: index {i} is beyond the list's {len} items"))?;
            set(item, rest, value, key)
        }
        Value::Mapping(map) => {
            let k = Value::String((*first).to_string());
            if !map.contains_key(&k) {
                map.insert(k.clone(), Value::Null);
            }
            match map.get_mut(&k) {
                Some(child) => set(child, rest, value, key),
                None => Err(format!("{key}: cannot set {first:?}")),
            }
        }
        Value::Null => {
            *node = Value::Mapping(serde_yaml::Mapping::new());
            set(node, path, value, key)
        }
        _ => Err(format!("{key}: {first:?} is below a value, not a section")),
    }
}

/// The config `base` (the file's YAML) with `combo` applied, validated.
///
/// # Errors
/// A message naming the key whose value is wrong.
pub fn apply(base: &Value, combo: &[(String, String)]) -> Result<Config, String> {
    let mut v = base.clone();
    for (key, value) in combo {
        let path: Vec<&str> = if key.contains('.') {
            key.split('.').collect()
        } else {
            vec!["markets", "*", key.as_str()]
        };
        set(&mut v, &path, value, key)?;
    }
    let cfg: Config = serde_yaml::from_value(v).map_err(|e| e.to_string())?;
    let violations = cfg.validate();
    if violations.is_empty() {
        Ok(cfg)
    } else {
        Err(violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// What a sweep ranks by (higher is better; `max_inventory` lower).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Objective {
    Pnl,
    Spread,
    Fills,
    Volume,
    TwoSided,
    Freshness,
    Markout1s,
    MaxInventory,
}

/// One combination's figures (all markets summed; shares and markouts of the first market).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub combination: Vec<(String, String)>,
    pub dir: PathBuf,
    pub pnl: Decimal,
    pub spread: Decimal,
    pub inventory_pnl: Decimal,
    pub fees: Decimal,
    pub fills: u64,
    pub volume_quote: Decimal,
    pub max_abs_inventory: Decimal,
    pub two_sided_share: Decimal,
    pub quote_freshness: Decimal,
    pub markout_1s_bps: Decimal,
    pub actions_per_second: Decimal,
    pub rejects: u64,
    pub denials: u64,
}

impl Row {
    fn of(combination: Vec<(String, String)>, dir: PathBuf, o: &Outcome) -> Row {
        let rs = &o.reports;
        let sum = |f: &dyn Fn(&crate::report::MarketReport) -> Decimal| rs.iter().map(f).sum();
        let first = rs.first();
        let markouts_1s: Vec<_> = first
            .map(|r| {
                r.markouts
                    .iter()
                    .filter(|m| m.horizon_s == 1 && m.fills > 0)
                    .collect()
            })
            .unwrap_or_default();
        let n: u64 = markouts_1s.iter().map(|m| m.fills).sum();
        let markout_1s_bps = if n == 0 {
            Decimal::ZERO
        } else {
            (markouts_1s
                .iter()
                .map(|m| m.avg_bps * Decimal::from(m.fills))
                .sum::<Decimal>()
                / Decimal::from(n))
            .round_dp(2)
        };
        Row {
            combination,
            dir,
            pnl: sum(&|r| r.pnl.total),
            spread: sum(&|r| r.pnl.spread),
            inventory_pnl: sum(&|r| r.pnl.inventory),
            fees: sum(&|r| r.pnl.fees),
            fills: rs.iter().map(|r| r.fills).sum(),
            volume_quote: sum(&|r| r.volume_quote),
            max_abs_inventory: rs
                .iter()
                .map(|r| r.inventory.max.abs().max(r.inventory.min.abs()))
                .max()
                .unwrap_or_default(),
            two_sided_share: first.map(|r| r.two_sided_share).unwrap_or_default(),
            quote_freshness: first.map(|r| r.quote_freshness).unwrap_or_default(),
            markout_1s_bps,
            actions_per_second: sum(&|r| r.actions_per_second),
            rejects: o.summary.venue_rejects.values().sum(),
            denials: o.summary.denials.values().sum(),
        }
    }

    fn score(&self, by: Objective) -> Decimal {
        match by {
            Objective::Pnl => self.pnl,
            Objective::Spread => self.spread,
            Objective::Fills => Decimal::from(self.fills),
            Objective::Volume => self.volume_quote,
            Objective::TwoSided => self.two_sided_share,
            Objective::Freshness => self.quote_freshness,
            Objective::Markout1s => self.markout_1s_bps,
            Objective::MaxInventory => -self.max_abs_inventory,
        }
    }
}

/// One combination to run: its place in the grid, its values and its config.
type Job = (usize, Vec<(String, String)>, Config);

/// Runs every combination of `axes` over `base` (the config file's YAML) on `jobs` threads,
/// each into `out/NNN/`, and returns the rows sorted by `by` (best first; ties keep the grid's
/// order).
///
/// # Errors
/// A combination whose config is invalid (before anything runs), or a run that failed.
pub fn run(
    base: &Value,
    axes: &[Axis],
    replay: &Path,
    out: &Path,
    jobs: usize,
    by: Objective,
) -> Result<Vec<Row>, String> {
    let combos = grid(axes);
    let mut configs = Vec::with_capacity(combos.len());
    for c in &combos {
        let cfg = apply(base, c).map_err(|e| {
            let label: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("sweep combination {}: {e}", label.join(" "))
        })?;
        configs.push(cfg);
    }
    let work: Mutex<Vec<Job>> = Mutex::new(
        combos
            .into_iter()
            .zip(configs)
            .enumerate()
            .map(|(i, (c, cfg))| (i, c, cfg))
            .rev()
            .collect(),
    );
    let results: Mutex<Vec<(usize, Result<Row, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let next = work.lock().ok().and_then(|mut w| w.pop());
                    let Some((i, combo, cfg)) = next else { break };
                    let dir = out.join(format!("{i:03}"));
                    let r = one(cfg, replay, &dir)
                        .map(|o| Row::of(combo, dir.clone(), &o))
                        .map_err(|e| format!("{}: {e}", dir.display()));
                    if let Ok(mut all) = results.lock() {
                        all.push((i, r));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().map_err(|e| e.to_string())?;
    results.sort_by_key(|(i, _)| *i);
    let mut rows = Vec::with_capacity(results.len());
    for (_, r) in results {
        rows.push(r?);
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.score(by)));
    Ok(rows)
}

fn one(cfg: Config, replay: &Path, dir: &Path) -> Result<Outcome, BacktestError> {
    backtest::run_to_files(&cfg, replay, dir)
}

/// The rows as a table.
pub fn render(rows: &[Row]) -> String {
    let mut s = format!(
        "{:>4}  {:<40} {:>10} {:>10} {:>10} {:>8} {:>6} {:>10} {:>8} {:>6} {:>6} {:>8} {:>5} {:>7} {:>7}\n",
        "rank",
        "combination",
        "pnl",
        "spread",
        "inventory",
        "fees",
        "fills",
        "volume",
        "max|inv|",
        "2side",
        "fresh",
        "mo1s_bps",
        "act/s",
        "rejects",
        "denials"
    );
    for (i, r) in rows.iter().enumerate() {
        let label: Vec<String> = r
            .combination
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(
            "{:>4}  {:<40} {:>10} {:>10} {:>10} {:>8} {:>6} {:>10} {:>8} {:>6} {:>6} {:>8} {:>5} {:>7} {:>7}\n",
            i + 1,
            label.join(" "),
            format!("{:.4}", r.pnl.round_dp(4)),
            format!("{:.4}", r.spread.round_dp(4)),
            format!("{:.4}", r.inventory_pnl.round_dp(4)),
            format!("{:.4}", r.fees.round_dp(4)),
            r.fills,
            format!("{:.2}", r.volume_quote.round_dp(2)),
            format!("{:.1}", r.max_abs_inventory.round_dp(1)),
            format!("{:.3}", r.two_sided_share.round_dp(3)),
            format!("{:.3}", r.quote_freshness.round_dp(3)),
            format!("{:.2}", r.markout_1s_bps.round_dp(2)),
            format!("{:.2}", r.actions_per_second.round_dp(2)),
            r.rejects,
            r.denials,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_and_grid_is_the_product_in_order() {
        let a = parse_axis("venue_spread_bps=10,20").expect("axis");
        let b = parse_axis("risk.max_position=500, 1000,2000").expect("axis");
        assert_eq!(b.values, vec!["500", "1000", "2000"]);
        let g = grid(&[a, b]);
        assert_eq!(g.len(), 6);
        assert_eq!(
            g[1],
            vec![
                ("venue_spread_bps".to_string(), "10".to_string()),
                ("risk.max_position".to_string(), "1000".to_string())
            ]
        );
        assert!(parse_axis("nokey").is_err());
        assert!(parse_axis("k=").is_err());
    }

    #[test]
    fn apply_sets_market_and_section_keys_and_names_bad_ones() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/staging.yaml"),
        )
        .expect("config");
        let base: Value = serde_yaml::from_str(&text).expect("yaml");
        let cfg = apply(
            &base,
            &[
                ("venue_spread_bps".into(), "35".into()),
                ("risk.max_position".into(), "750".into()),
                ("markets.0.levels".into(), "3".into()),
                ("backtest.stream_jitter_ms".into(), "0".into()),
            ],
        )
        .expect("valid");
        assert_eq!(cfg.markets[0].venue_spread_bps, Decimal::from(35));
        assert_eq!(cfg.markets[0].levels, 3);
        assert_eq!(cfg.risk.max_position, Decimal::from(750));
        assert_eq!(cfg.backtest.stream_jitter_ms, 0);
        let bad = apply(&base, &[("levels".into(), "0".into())]).expect_err("invalid");
        assert!(bad.contains("markets[0].levels"), "{bad}");
        let unknown =
            apply(&base, &[("risk.no_such_key".into(), "1".into())]).expect_err("unknown");
        assert!(unknown.contains("no_such_key"), "{unknown}");
    }
}
