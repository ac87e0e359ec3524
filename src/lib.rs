//! deltadefi-mm: a market maker keeping two-sided quotes on DeltaDeFi priced from Binance.
//!
//! # Layout
//!
//! - [`config`]: YAML loading, `MM_*` environment overrides, validation errors naming keys.
//! - [`app`]: the supervision tree: which actors start and how they are wired.
//! - [`instance`]: one service per database (an OS file lock beside it).
//! - [`status`]: the periodic status line and `status --db`.
//! - [`bench`]: the in-process full-pipeline benchmark.
//! - [`logging`]: text or JSON logs.
//! - [`telemetry`]: OpenTelemetry trace export over OTLP, JSON logs with trace ids.
//! - [`watchdog`]: the dead-man's switch beside the bot (cancels only, never places).
//!
//! The actors and their pure cores live in the `mm-actors` crate (`actors/`).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod affinity;
pub mod app;
pub mod backtest;
pub mod bench;
pub mod config;
pub mod instance;
pub mod interrupts;
pub mod logging;
pub mod report;
pub mod report_html;
pub mod status;
pub mod sweep;
pub mod telemetry;
pub mod watchdog;
