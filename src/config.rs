//! Loading the configuration: a YAML file, then environment overrides for deploy settings,
//! then validation. Every failure names the file, key or variable at fault.

use std::path::{Path, PathBuf};

use mm_actors::config::{Config, FeedSource, LogFormat, Mode, Violation};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("invalid configuration:\n  {}", .0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<Violation>),
}

/// Environment variables that override deploy settings (secrets are never in the file).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("MM_MODE", "mode"),
    ("MM_DB_PATH", "run.db_path"),
    ("MM_LOG_FORMAT", "run.log_format"),
    ("MM_FEED_SOURCE", "feed.source"),
    ("MM_REPLAY_PATH", "feed.replay.path"),
    ("MM_BINANCE_URL", "feed.live.url"),
    ("MM_ACTIONS_PER_SECOND", "rate_limit.actions_per_second"),
    ("MM_DELTADEFI_REST_URL", "gateway.deltadefi.rest_url"),
    ("MM_DELTADEFI_WS_URL", "gateway.deltadefi.ws_url"),
    ("MM_HOT_CPU", "run.hot_cpu"),
];

/// Reads, overrides from `env` and validates the config at `path`.
///
/// # Errors
/// [`ConfigError`] naming what is wrong.
pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let mut cfg = parse(&text).map_err(|message| ConfigError::Parse {
        path: path.into(),
        message,
    })?;
    apply_env(&mut cfg, env)?;
    let violations = cfg.validate();
    if violations.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError::Invalid(violations))
    }
}

/// Parses YAML text; unknown keys are errors that name the key and its place.
///
/// # Errors
/// The parser's message.
pub fn parse(text: &str) -> Result<Config, String> {
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

fn enum_value<T: serde::de::DeserializeOwned>(
    var: &'static str,
    value: &str,
) -> Result<T, ConfigError> {
    serde_yaml::from_str(value).map_err(|e| ConfigError::Env {
        var,
        message: format!("{value:?}: {e}"),
    })
}

/// Applies the `MM_*` overrides.
///
/// # Errors
/// [`ConfigError::Env`] naming a variable whose value does not parse.
pub fn apply_env(
    cfg: &mut Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(v) = env("MM_MODE") {
        cfg.mode = enum_value::<Mode>("MM_MODE", &v)?;
    }
    if let Some(v) = env("MM_DB_PATH") {
        cfg.run.db_path = PathBuf::from(v);
    }
    if let Some(v) = env("MM_LOG_FORMAT") {
        cfg.run.log_format = enum_value::<LogFormat>("MM_LOG_FORMAT", &v)?;
    }
    if let Some(v) = env("MM_FEED_SOURCE") {
        cfg.feed.source = enum_value::<FeedSource>("MM_FEED_SOURCE", &v)?;
    }
    if let Some(v) = env("MM_REPLAY_PATH") {
        cfg.feed.replay.path = PathBuf::from(v);
    }
    if let Some(v) = env("MM_BINANCE_URL") {
        cfg.feed.live.url = v;
    }
    if let Some(v) = env("MM_DELTADEFI_REST_URL") {
        cfg.gateway.deltadefi.rest_url = v;
    }
    if let Some(v) = env("MM_DELTADEFI_WS_URL") {
        cfg.gateway.deltadefi.ws_url = v;
    }
    if let Some(v) = env("MM_HOT_CPU") {
        cfg.run.hot_cpu = Some(v.parse().map_err(|e| ConfigError::Env {
            var: "MM_HOT_CPU",
            message: format!("{v:?}: {e}"),
        })?);
    }
    if let Some(v) = env("MM_ACTIONS_PER_SECOND") {
        cfg.rate_limit.actions_per_second = v.parse().map_err(|e| ConfigError::Env {
            var: "MM_ACTIONS_PER_SECOND",
            message: format!("{v:?}: {e}"),
        })?;
    }
    Ok(())
}

/// Parses a duration such as `30s`, `500ms`, `5m`, `2h` or a bare number of seconds.
///
/// # Errors
/// A message naming the text.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 500ms, 5m or 2h"))?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1_000),
        "ms" => Some(n),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration like 30s, 500ms, 5m or 2h"))?;
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staging() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/staging.yaml"))
            .expect("staging.yaml")
    }

    #[test]
    fn shipped_staging_config_is_valid() {
        let cfg = parse(&staging()).expect("parses");
        assert_eq!(cfg.validate(), vec![]);
        assert_eq!(cfg.markets[0].market.as_str(), "ADAUSDM");
        assert_eq!(cfg.feed.source, FeedSource::Synthetic);
    }

    #[test]
    fn markets_sharing_a_reference_subscribe_to_it_once() {
        let mut cfg = parse(&staging()).expect("parses");
        let mut other = cfg.markets[0].clone();
        other.reference = mm_actors::types::BinanceSymbol("BTCUSDT".into());
        let mut again = cfg.markets[0].clone();
        again.market = mm_actors::types::MarketId("ADAUSDM2".into());
        cfg.markets.push(other);
        cfg.markets.push(again);
        let names: Vec<String> = cfg
            .reference_symbols()
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, ["ADAUSDT", "BTCUSDT"]);
    }

    #[test]
    fn unknown_key_is_named() {
        let text = staging().replace(
            "venue_spread_bps:",
            "venue_sprad_bps: 3\n    venue_spread_bps:",
        );
        let err = parse(&text).expect_err("unknown key");
        assert!(err.contains("venue_sprad_bps"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let mut cfg = parse(&staging()).expect("parses");
        cfg.markets[0].levels = 0;
        cfg.rate_limit.actions_per_second = 0;
        cfg.mock_exchange.partial_fill_ratio = rust_decimal::Decimal::from(2);
        cfg.mock_exchange.follow_batch_us = 100_001;
        cfg.feed.max_speed_batch = 0;
        let keys: Vec<String> = cfg.validate().into_iter().map(|v| v.key).collect();
        for k in [
            "markets[0].levels",
            "rate_limit.actions_per_second",
            "mock_exchange.partial_fill_ratio",
            "mock_exchange.follow_batch_us",
            "feed.max_speed_batch",
        ] {
            assert!(
                keys.iter().any(|got| got == k),
                "{k} not reported in {keys:?}"
            );
        }
    }

    #[test]
    fn env_overrides_apply_and_bad_values_name_the_variable() {
        let mut cfg = parse(&staging()).expect("parses");
        let env = |k: &str| match k {
            "MM_DB_PATH" => Some("/tmp/x.db".to_string()),
            "MM_LOG_FORMAT" => Some("json".to_string()),
            "MM_HOT_CPU" => Some("1".to_string()),
            _ => None,
        };
        apply_env(&mut cfg, env).expect("applies");
        assert_eq!(cfg.run.db_path, PathBuf::from("/tmp/x.db"));
        assert_eq!(cfg.run.log_format, LogFormat::Json);
        assert_eq!(cfg.run.hot_cpu, Some(1));
        let bad = |k: &str| (k == "MM_FEED_SOURCE").then(|| "carrier-pigeon".to_string());
        let err = apply_env(&mut cfg, bad).expect_err("bad value").to_string();
        assert!(err.contains("MM_FEED_SOURCE"), "{err}");
        let bad = |k: &str| (k == "MM_HOT_CPU").then(|| "the fast one".to_string());
        let err = apply_env(&mut cfg, bad).expect_err("bad value").to_string();
        assert!(err.contains("MM_HOT_CPU"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30s"),
            Ok(std::time::Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("2m"),
            Ok(std::time::Duration::from_secs(120))
        );
        assert_eq!(parse_duration("7"), Ok(std::time::Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
    }
}
