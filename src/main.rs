//! The `deltadefi-mm` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use deltadefi_mm::instance::InstanceLock;
use deltadefi_mm::{app, bench, config, logging, status};
use mm_actors::config::LogFormat;
use mm_actors::risk_guard::KillSwitch;
use mm_actors::store::Store;
use tracing::{error, info, warn};

/// mimalloc instead of glibc's malloc: messages are allocated on one arbiter and freed on
/// another, and glibc serialises those frees on the allocating arena's lock and returns freed
/// pages with madvise (TLB shootdowns on every core); see BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "deltadefi-mm",
    version,
    about = "Market maker for DeltaDeFi ADAUSDM priced from Binance ADAUSDT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service until Ctrl-C / SIGTERM (or --duration); offline staging by default.
    Run {
        /// Config file.
        #[arg(long, default_value = "config/staging.yaml")]
        config: PathBuf,
        /// SQLite file (overrides run.db_path and MM_DB_PATH).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Stop by itself after this long (e.g. 30s, 5m), cancelling everything first.
        #[arg(long, value_parser = config::parse_duration)]
        duration: Option<Duration>,
        /// Log format (overrides run.log_format).
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Print per-market status from a database, after the fact or while the service runs.
    Status {
        #[arg(long)]
        db: PathBuf,
        /// Config file, for the budget figure.
        #[arg(long, default_value = "config/staging.yaml")]
        config: PathBuf,
    },
    /// What a run earned and why, from its database: PnL decomposed (spread capture,
    /// inventory, fees), markouts, inventory, fill rate, quoting time, actions and rejects.
    Report {
        #[arg(long)]
        db: PathBuf,
        /// Window start, epoch milliseconds (default: the first record).
        #[arg(long)]
        from: Option<i64>,
        /// Window end, epoch milliseconds (default: the last record).
        #[arg(long)]
        to: Option<i64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML page with charts to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Config file, for each market's requote tolerance (quote freshness).
        #[arg(long, default_value = "config/staging.yaml")]
        config: PathBuf,
    },
    /// Backtest a replay file in virtual time (deterministic: the same file, config and seed
    /// give the same files, byte for byte) and report what it earned. Writes backtest.db,
    /// report.json, report.html, summary.json, orders.csv and fills.csv into --out.
    Backtest(BacktestArgs),
    /// Run the full pipeline in process at full speed and print throughput (until drained),
    /// latency and RSS: the built-in walk, or a replay file.
    Bench {
        /// Reference ticks to push through (the built-in walk).
        #[arg(long, default_value_t = 1_000_000)]
        ticks: u64,
        /// Play this replay file at max speed instead of the walk.
        #[arg(long, conflicts_with = "rate")]
        replay: Option<PathBuf>,
        /// Pace the walk at this many ticks per second (each tick released at its own time, as
        /// frames arrive on a socket) instead of flooding; latency at a real rate.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        rate: Option<u64>,
        /// With --replay: time only the path of a tick that changes no order (decode, validate,
        /// price), on one thread, the file read into memory first.
        #[arg(long, requires = "replay")]
        pricing_only: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "config/staging.yaml")]
        config: PathBuf,
        /// Pin the hot arbiter to this CPU and the other threads to the rest (overrides
        /// `run.hot_cpu`).
        #[arg(long)]
        hot_cpu: Option<usize>,
        /// Frames the max-speed source takes in per turn (overrides `feed.max_speed_batch`).
        #[arg(
            long,
            value_parser = clap::value_parser!(u64)
                .range(1..=mm_actors::config::MAX_SPEED_BATCH_MAX)
        )]
        batch: Option<u64>,
    },
    /// Record the live Binance bookTicker stream of the config's markets to a replay file
    /// (JSONL: {"recv_ms", "msg"}) until Ctrl-C or --duration.
    Record {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "config/staging.yaml")]
        config: PathBuf,
        #[arg(long, value_parser = config::parse_duration)]
        duration: Option<Duration>,
    },
    /// Exit 0 when the service using this database wrote its heartbeat within --max-age
    /// (the container health check), 1 otherwise.
    Health {
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value = "30s", value_parser = config::parse_duration)]
        max_age: Duration,
    },
    /// Engage the kill switch of the service using this database: cancel all and halt.
    Kill {
        #[arg(long)]
        db: PathBuf,
    },
    /// Release the kill switch (and a daily-loss halt) of the service using this database.
    Resume {
        #[arg(long)]
        db: PathBuf,
    },
    /// Serve a mock DeltaDeFi (REST + account WebSocket) and a Binance-shaped bookTicker stream
    /// from the config's markets and synthetic walk. API key and passcode: DELTADEFI_API_KEY and
    /// DELTADEFI_TRADING_PASSCODE (defaults `staging-api-key` / `staging-passcode`).
    MockExchange {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "config/staging.yaml")]
        config: PathBuf,
    },
    /// The dead-man's switch: watch the bot's heartbeat in the database and, when it is older
    /// than --max-age while orders are open, cancel everything at the venue (never places).
    /// Credentials as for `run`: DELTADEFI_API_KEY (and DELTADEFI_TRADING_PASSCODE).
    Watchdog {
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value = "config/staging.yaml")]
        config: PathBuf,
        #[arg(long, default_value = "10s", value_parser = config::parse_duration)]
        max_age: Duration,
    },
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        #[arg(long, default_value = "config/staging.yaml")]
        config: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// SQLite (bundled C) allocates through the C library, not through the Rust allocator. glibc
/// returns the top of a thread's heap to the system once 128 KiB are free (an `madvise` and a
/// TLB shootdown on every core), which the store thread hit thousands of times a second,
/// allocating and freeing cursors per statement. Keep up to 64 MiB instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_c_heap() {
    // SAFETY: mallopt only sets a tunable of glibc's allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_c_heap() {}

fn main() -> ExitCode {
    keep_freed_c_heap();
    // Only ring is compiled in; pin it so that rustls never has to choose at runtime.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run {
            config,
            db,
            duration,
            log_format,
        } => run(config, db, duration, log_format),
        Command::Status { db, config } => {
            let budget = config::load(&config, env)
                .map(|c| c.rate_limit.actions_per_second)
                .unwrap_or(5);
            let s = status::from_db(&db)?;
            print!("{}", status::render(&s, budget));
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            db,
            from,
            to,
            json,
            html,
            config,
        } => {
            use deltadefi_mm::{report, report_html};
            let mut inputs = report::read_db(&db)?;
            match config::load(&config, env) {
                Ok(cfg) => report::apply_config(&mut inputs, &cfg),
                Err(e) => eprintln!(
                    "{}: {e}; quote freshness compares exact prices",
                    config.display()
                ),
            }
            let reports = report::compute_all(&inputs, from, to);
            if let Some(path) = html {
                let pages = report_html::pages(&inputs, &reports);
                std::fs::write(&path, report_html::render(&pages))
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("report page written to {}", path.display());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", deltadefi_mm::report::render(&reports));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backtest(args) => backtest_command(args),
        Command::Bench {
            ticks,
            replay,
            rate,
            pricing_only,
            json,
            config,
            hot_cpu,
            batch,
        } => {
            let mut cfg = config::load(&config, env)?;
            cfg.run.hot_cpu = hot_cpu.or(cfg.run.hot_cpu);
            cfg.feed.max_speed_batch = batch.unwrap_or(cfg.feed.max_speed_batch);
            let max_speed_batch = cfg.feed.max_speed_batch;
            if let (true, Some(path)) = (pricing_only, &replay) {
                let r = bench::pricing_only(&cfg, path)?;
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "pricing only: {} ticks of {} frames in {:.3} s = {:.0} ticks/s; {} moved the book",
                        r.ticks, r.frames, r.elapsed_s, r.ticks_per_sec, r.targets
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            pin_if_asked(&cfg)?;
            // The OTEL_EXPORTER_OTLP_* variables apply, so a run with a slow or absent
            // collector can be compared with one without telemetry.
            let telemetry = deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Text, env)?;
            deltadefi_mm::interrupts::warn_if_hot_cpu_crowded();
            let source = match (replay, rate) {
                (Some(path), _) => bench::BenchSource::Replay(path),
                (None, Some(rate)) => bench::BenchSource::Paced { ticks, rate },
                (None, None) => bench::BenchSource::Walk(ticks),
            };
            let r = bench::run_source(cfg, source)?;
            telemetry.shutdown();
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({
                        "ticks": r.ticks,
                        "ticks_per_sec": r.ticks_per_sec,
                        "priced_ticks_per_sec": r.priced_ticks_per_sec,
                        "drained_s": r.drained_s,
                        "quote_decisions": r.quote_decisions,
                        "orders": r.orders,
                        "actions_sent": r.actions_sent,
                        "fills": r.fills,
                        "latency_us": r.latency_us,
                        "tick_to_write_us": r.tick_to_write_us,
                        "rate": r.rate,
                        "peak_rss_mb": r.peak_rss_mb,
                        "store_queue_peak": r.store_queue_peak,
                        "cpu_s": r.cpu_s,
                        "cpu_us_per_tick": r.cpu_us_per_tick,
                        "cpu_s_by_thread": r.cpu_s_by_thread,
                        "device_irqs_by_cpu": r.device_irqs_by_cpu,
                        "intents": r.intents,
                        "targets": r.targets,
                        "elapsed_s": r.elapsed_s,
                        "venue_rejects": r.venue_rejects,
                        "crosses_clamped": r.crosses_clamped,
                        "crosses_skipped": r.crosses_skipped,
                        "hot_cpu": deltadefi_mm::affinity::installed().map(|p| p.hot),
                        "max_speed_batch": max_speed_batch,
                    }))?
                );
            } else {
                println!(
                    "ticks {} drained in {:.3} s = {:.0} ticks/s (priced in {:.3} s = {:.0} ticks/s)\n\
                     quote decisions {}; intents {}; orders {}; actions sent {}; fills {}\n\
                     tick -> intent latency: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us\n\
                     tick -> written to the venue: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us ({})\npeak RSS {:.1} MB; CPU {:.3} s, {:.2} us per tick ({})\n\
                     device interrupts by CPU: {}\n\
                     venue rejects {:?}; post-only crosses avoided: {} clamped, {} skipped",
                    r.ticks,
                    r.drained_s,
                    r.ticks_per_sec,
                    r.elapsed_s,
                    r.priced_ticks_per_sec,
                    r.quote_decisions,
                    r.intents,
                    r.orders,
                    r.actions_sent,
                    r.fills,
                    r.latency_us.p50,
                    r.latency_us.p99,
                    r.latency_us.p999,
                    r.tick_to_write_us.p50,
                    r.tick_to_write_us.p99,
                    r.tick_to_write_us.p999,
                    r.rate
                        .map_or("flood".to_string(), |n| format!("paced at {n} ticks/s")),
                    r.peak_rss_mb,
                    r.cpu_s,
                    r.cpu_us_per_tick,
                    r.cpu_s_by_thread
                        .iter()
                        .map(|(name, s)| format!("{name} {s:.3} s"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.device_irqs_by_cpu
                        .iter()
                        .map(|(cpu, n)| format!("CPU {cpu} {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.venue_rejects,
                    r.crosses_clamped,
                    r.crosses_skipped
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Record {
            out,
            config,
            duration,
        } => {
            let cfg = config::load(&config, env)?;
            logging::init(cfg.run.log_format);
            let (n, reconnects) =
                actix::System::new().block_on(record(cfg, out.clone(), duration))?;
            println!(
                "recorded {n} frames to {} ({reconnects} reconnects)",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { db, max_age } => health(&db, max_age),
        Command::Kill { db } => control(&db, "kill"),
        Command::Resume { db } => control(&db, "resume"),
        Command::MockExchange { listen, config } => {
            let cfg = config::load(&config, env)?;
            logging::init(cfg.run.log_format);
            let api_key = env(app::ENV_API_KEY).unwrap_or_else(|| "staging-api-key".into());
            let passcode = env(app::ENV_PASSCODE).unwrap_or_else(|| "staging-passcode".into());
            let wire = app::wire_mock_config(&cfg, api_key, passcode);
            actix::System::new().block_on(async move {
                let (addr, state, server) = mm_actors::mock_exchange::wire::serve(wire, listen)?;
                // The reference the mock follows (and serves as bookTicker): the replay file when the
                // config's feed is a replay, else the synthetic walk.
                let replay = match cfg.feed.source {
                    mm_actors::config::FeedSource::Replay => {
                        // Checked once here; each market's walk then streams it.
                        mm_actors::binance_feed::source::ReplayReader::open(&cfg.feed.replay.path)?;
                        Some(cfg.feed.replay.path.clone())
                    }
                    _ => None,
                };
                for (i, m) in cfg.markets.iter().enumerate() {
                    match &replay {
                        Some(path) => {
                            actix_rt::spawn(mm_actors::mock_exchange::wire::replay_reference(
                                state.clone(),
                                m.market.clone(),
                                path.clone(),
                                m.reference.clone(),
                            ));
                        }
                        None => {
                            let walk = mm_actors::binance_feed::source::Synthetic::new(
                                &cfg.feed.synthetic,
                                m.reference.clone(),
                                i as u64,
                            );
                            actix_rt::spawn(mm_actors::mock_exchange::wire::walk_reference(
                                state.clone(),
                                m.market.clone(),
                                walk,
                                m.reference.clone(),
                            ));
                        }
                    }
                }
                info!(%addr, "mock exchange listening: REST, /accounts/stream, /stream?streams=…, /ws/…");
                server.await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watchdog {
            db,
            config,
            max_age,
        } => {
            let cfg = config::load(&config, env)?;
            let access = app::VenueAccess::for_config(&cfg, env)?;
            logging::init(cfg.run.log_format);
            deltadefi_mm::watchdog::run(cfg, db, max_age, access)
        }
        Command::CheckConfig { config } => {
            let cfg = config::load(&config, env)?;
            println!(
                "{} is valid:\n{}",
                config.display(),
                serde_yaml::to_string(&cfg)?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn health(db: &std::path::Path, max_age: Duration) -> anyhow::Result<ExitCode> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
    let beat: Option<(i64, String)> = conn
        .query_row(
            "SELECT ts_ms, trading_state FROM heartbeat WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok();
    let now = mm_actors::types::now_ms();
    let max = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    Ok(match beat {
        Some((ts, state)) if now - ts <= max => {
            println!("healthy: heartbeat {} ms ago, {state}", now - ts);
            ExitCode::SUCCESS
        }
        Some((ts, _)) => {
            println!("unhealthy: last heartbeat {} ms ago", now - ts);
            ExitCode::from(1)
        }
        None => {
            println!("unhealthy: no heartbeat yet");
            ExitCode::from(1)
        }
    })
}

fn control(db: &std::path::Path, command: &str) -> anyhow::Result<ExitCode> {
    let conn = mm_actors::store::open_connection(db)
        .with_context(|| format!("opening {}", db.display()))?;
    let mut conn = conn;
    match mm_actors::store::schema::migrate(&mut conn) {
        Ok(_) => {}
        // A newer service's database still has the control table (since version 1): the kill
        // switch must work whatever wrote the database.
        Err(e @ mm_actors::store::StoreError::SchemaTooNew { .. }) => {
            warn!(cause = %e, "recording the command in a newer database")
        }
        Err(e) => return Err(e.into()),
    }
    conn.execute(
        "INSERT INTO control(ts_ms, command) VALUES (?1, ?2)",
        rusqlite::params![mm_actors::types::now_ms(), command],
    )?;
    println!(
        "{command} recorded in {}; a running service acts on it within a second",
        db.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run(
    config_path: PathBuf,
    db: Option<PathBuf>,
    duration: Option<Duration>,
    log_format: Option<LogFormatArg>,
) -> anyhow::Result<ExitCode> {
    let mut cfg = config::load(&config_path, env)?;
    if let Some(db) = db {
        cfg.run.db_path = db;
    }
    if let Some(f) = log_format {
        cfg.run.log_format = match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    // Everything that can refuse start-up without touching anything comes first: secrets are
    // read from the environment here and only here (never logged), then the one-instance lock,
    // and only then is the database created or opened.
    let access = app::VenueAccess::for_config(&cfg, env)?;
    // Before any thread is spawned, so that each one inherits a CPU other than the hot one.
    pin_if_asked(&cfg)?;
    let _lock = InstanceLock::acquire(&cfg.run.db_path, "")?;
    let telemetry = deltadefi_mm::telemetry::init(&cfg.telemetry, cfg.run.log_format, env)?;
    deltadefi_mm::interrupts::warn_if_hot_cpu_crowded();
    let store = Store::open(&cfg.run.db_path)
        .with_context(|| format!("opening database {}", cfg.run.db_path.display()))?;
    let spec = app::feed_spec(&cfg)?;
    info!(
        config = %config_path.display(), db = %cfg.run.db_path.display(), mode = ?cfg.mode,
        feed = ?cfg.feed.source, markets = cfg.markets.len(), budget = cfg.rate_limit.actions_per_second,
        "deltadefi-mm starting"
    );
    let drain = Duration::from_millis(cfg.run.drain_timeout_ms);
    let status_every = cfg.run.status_interval_s;
    let outcome = actix::System::new().block_on(async move {
        let mut cfg = cfg;
        match app::adopt_venue_rules(&mut cfg, &access).await {
            Ok(adopted) => {
                for line in adopted {
                    println!("adopted {line}");
                    info!(target: "config", "adopted {line}");
                }
            }
            Err(e) => {
                error!(cause = %e, "cannot start");
                actix::System::current().stop();
                return Outcome::Refused;
            }
        }
        let p = match app::Pipeline::start(&cfg, store, spec, access) {
            Ok(p) => p,
            Err(e) => {
                error!(cause = %e, "cannot start");
                actix::System::current().stop();
                return Outcome::Refused;
            }
        };
        if status_every > 0 {
            let sp = p.clone();
            actix_rt::spawn(async move {
                let mut iv = actix_rt::time::interval(Duration::from_secs(status_every));
                iv.tick().await;
                loop {
                    iv.tick().await;
                    let (markets, used, budget) = status::live(&sp).await;
                    for m in markets {
                        info!(target: "status", "{}", m.line(used, budget));
                    }
                }
            });
        }
        let kill = p.risk.clone();
        actix_rt::spawn(async move {
            if let Ok(mut usr1) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
            {
                while usr1.recv().await.is_some() {
                    kill.do_send(KillSwitch {
                        engage: true,
                        source: "SIGUSR1".into(),
                    });
                }
            }
        });
        let monitor = p.monitor.clone();
        let fatal = tokio::select! {
            reason = wait_for_stop(duration) => {
                info!(reason, "stopping: cancelling every order and draining the outbox");
                None
            }
            f = monitor.wait_fatal() => {
                error!(cause = %f, "halting: cancelling every order, then exiting with an error");
                Some(f)
            }
        };
        // Nothing may keep the process past the drain timeout and a few seconds more.
        hard_deadline(drain + SHUTDOWN_GRACE, p.progress.clone());
        let drained = p.shutdown(drain).await;
        let storage_failing = p.store.is_failing();
        let (markets, used, budget) = status::live(&p).await;
        for m in markets {
            info!(target: "status", "final {}", m.line(used, budget));
        }
        let left = p.progress.lock().map(|s| s.clone()).unwrap_or_default();
        actix::System::current().stop();
        match (fatal, drained, storage_failing) {
            (Some(f), _, _) => Outcome::Fatal(f.to_string()),
            (None, true, false) => Outcome::Clean,
            (None, true, true) => Outcome::Unclean("SQLite could not commit".into()),
            (None, false, _) => Outcome::Unclean(left),
        }
    });
    // Off the actix thread: flush what the exporter still holds.
    telemetry.shutdown();
    Ok(match outcome {
        Outcome::Clean => {
            info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Outcome::Refused => ExitCode::from(2),
        Outcome::Fatal(cause) => {
            error!(cause = %cause, "stopped after a fatal condition");
            ExitCode::from(1)
        }
        Outcome::Unclean(left) => {
            error!(
                left = %left,
                "stopped with work left: see `deltadefi-mm status --db`"
            );
            ExitCode::from(1)
        }
    })
}

/// How `run` ended.
enum Outcome {
    /// Every order cancelled and confirmed, everything committed.
    Clean,
    /// The pipeline could not start.
    Refused,
    /// An actor could not be kept alive.
    Fatal(String),
    /// Stopped with something left (named).
    Unclean(String),
}

/// Installs the pinning `run.hot_cpu` asks for: the calling (main) thread, and every thread
/// it spawns, keep off the hot CPU until the pipeline's start moves the main thread onto it.
fn pin_if_asked(cfg: &mm_actors::config::Config) -> anyhow::Result<()> {
    if let Some(cpu) = cfg.run.hot_cpu {
        let p = deltadefi_mm::affinity::Pinning::for_this_thread(cpu)?;
        deltadefi_mm::affinity::install(p)?;
    }
    Ok(())
}

/// Time past the drain timeout that shutdown may take before the process exits regardless.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Exits the process with code 1 after `after`, naming what shutdown was still waiting for:
/// a locked database, a hung venue or a stuck exporter cannot keep the process alive.
fn hard_deadline(after: Duration, progress: std::sync::Arc<std::sync::Mutex<String>>) {
    let spawned = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(after);
            let left = progress
                .lock()
                .map(|s| s.clone())
                .unwrap_or_else(|_| "unknown".into());
            error!(after_ms = after.as_millis() as u64, left = %left, "shutdown deadline passed, exiting");
            eprintln!(
                "deltadefi-mm: shutdown deadline of {} ms passed; left: {left}",
                after.as_millis()
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        warn!(cause = %e, "cannot start the shutdown deadline");
    }
}

/// Writes every text frame of the live stream with its local receive time.
/// Records the reference stream to `out` until `duration` or Ctrl-C. A lost connection (an
/// error, Binance's 24-hour close, a `serverShutdown`) is reconnected with the live feed's
/// backoff and recording goes on in the same file: the gap shows as a pause in `recv_ms`, and
/// update ids stay increasing across connections. Returns the frames written and the
/// reconnects.
async fn record(
    cfg: mm_actors::config::Config,
    out: PathBuf,
    duration: Option<Duration>,
) -> anyhow::Result<(u64, u64)> {
    use futures_util::StreamExt as _;
    use std::io::Write as _;
    let symbols = cfg.reference_symbols();
    let url = mm_actors::binance_feed::stream_url(&cfg.feed.live, &symbols);
    info!(url = %url, out = %out.display(), "recording");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?,
    );
    let stop = async {
        match duration {
            Some(d) => actix_rt::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let live = &cfg.feed.live;
    let mut backoff = mm_actors::rng::Backoff::new(
        live.reconnect_initial_ms,
        live.reconnect_max_ms,
        mm_actors::types::now_ms() as u64,
    );
    let (mut n, mut reconnects) = (0u64, 0u64);
    'connect: loop {
        let connected = tokio::select! {
            _ = &mut stop => break 'connect,
            c = tokio_tungstenite::connect_async(url.as_str()) => c,
        };
        let mut ws = match connected {
            Ok((ws, _)) => {
                backoff.reset();
                ws
            }
            Err(e) if n == 0 && reconnects == 0 => {
                return Err(anyhow::Error::new(e).context("connecting to the stream"));
            }
            Err(e) => {
                let wait = backoff.next_delay();
                warn!(cause = %e, retry_in_ms = wait.as_millis() as u64, "cannot reconnect");
                tokio::select! {
                    _ = &mut stop => break 'connect,
                    _ = actix_rt::time::sleep(wait) => continue 'connect,
                }
            }
        };
        loop {
            tokio::select! {
                _ = &mut stop => break 'connect,
                msg = ws.next() => match msg {
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                        let recv_ms = mm_actors::types::now_ms();
                        let msg = serde_json::from_str::<serde_json::Value>(t.as_str())
                            .unwrap_or_else(|_| serde_json::Value::String(t.to_string()));
                        writeln!(file, "{}", serde_json::json!({"recv_ms": recv_ms, "msg": msg}))?;
                        n += 1;
                    }
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | None => {
                        warn!(frames = n, "stream closed, reconnecting");
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        warn!(cause = %e, frames = n, "stream error, reconnecting");
                        break;
                    }
                },
            }
        }
        file.flush()?;
        reconnects += 1;
        let wait = backoff.next_delay();
        tokio::select! {
            _ = &mut stop => break 'connect,
            _ = actix_rt::time::sleep(wait) => {}
        }
    }
    file.flush()?;
    Ok((n, reconnects))
}

async fn wait_for_stop(duration: Option<Duration>) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(cause = %e, "cannot listen for SIGTERM");
            None
        }
    };
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let timer = async {
        match duration {
            Some(d) => actix_rt::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = sigterm => "SIGTERM",
        _ = timer => "duration elapsed",
    }
}

#[derive(clap::Args, Debug)]
struct BacktestArgs {
    /// Replay file (JSONL {"recv_ms","msg"}, as `record` writes it).
    #[arg(long)]
    replay: PathBuf,
    #[arg(long, default_value = "config/staging.yaml")]
    config: PathBuf,
    #[arg(long, default_value = "data/backtest")]
    out: PathBuf,
    /// Seed of the latency jitter (overrides backtest.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// key=v1,v2,...: backtest every combination (repeatable), one row each, best first.
    #[arg(long)]
    sweep: Vec<String>,
    /// What a sweep ranks by.
    #[arg(long, value_enum, default_value = "pnl")]
    objective: deltadefi_mm::sweep::Objective,
    /// Sweep runs at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

fn backtest_command(a: BacktestArgs) -> anyhow::Result<ExitCode> {
    use deltadefi_mm::{backtest, report, sweep};
    let started = std::time::Instant::now();
    if a.sweep.is_empty() {
        let mut cfg = config::load(&a.config, |_| None)?;
        if let Some(seed) = a.seed {
            cfg.backtest.seed = seed;
        }
        let outcome = backtest::run_to_files(&cfg, &a.replay, &a.out)?;
        let elapsed = started.elapsed().as_secs_f64();
        let (simulated, sim_rss) = (outcome.simulation_s, outcome.simulation_peak_rss_mb);
        if a.json {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        } else {
            let s = &outcome.summary;
            print!("{}", report::render(&outcome.reports));
            println!(
                "backtest: {} frames ({} ticks, {} dropped, {} held) over {:.1} s of data in {:.2} s = {:.0} frames/s \
                 (simulation {:.2} s, peak RSS {:.1} MB; report {:.2} s, peak RSS {:.1} MB)\n\
                 quote decisions {}; orders {}; actions {}; fills {}; rejects {:?}; denials {:?}; halts {:?}; \
                 crosses avoided {} clamped + {} skipped; open at the venue at the end {}\n\
                 files in {}: backtest.db report.json report.html summary.json orders.csv fills.csv",
                s.frames,
                s.ticks,
                s.dropped,
                s.held,
                (s.last_ms - s.first_ms) as f64 / 1e3,
                elapsed,
                s.frames as f64 / elapsed.max(1e-9),
                simulated,
                sim_rss,
                elapsed - simulated,
                deltadefi_mm::bench::peak_rss_mb(),
                s.quote_decisions,
                s.orders,
                s.actions,
                s.fills,
                s.venue_rejects,
                s.denials,
                s.halts,
                s.crosses_clamped,
                s.crosses_skipped,
                s.open_at_end,
                a.out.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The base for a sweep is the file as written (MM_* overrides do not apply to it).
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let mut base: serde_yaml::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("config file {}", a.config.display()))?;
    if let (Some(seed), serde_yaml::Value::Mapping(m)) = (a.seed, &mut base) {
        let mut bt = serde_yaml::Mapping::new();
        if let Some(serde_yaml::Value::Mapping(old)) = m.get("backtest") {
            bt = old.clone();
        }
        bt.insert("seed".into(), seed.into());
        m.insert("backtest".into(), serde_yaml::Value::Mapping(bt));
    }
    let axes = a
        .sweep
        .iter()
        .map(|s| sweep::parse_axis(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rows = sweep::run(&base, &axes, &a.replay, &a.out, jobs, a.objective)
        .map_err(anyhow::Error::msg)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", sweep::render(&rows));
        println!(
            "{} combinations on {jobs} threads in {:.2} s; ranked by {:?}; each run's files in {}/NNN/",
            rows.len(),
            started.elapsed().as_secs_f64(),
            a.objective,
            a.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
