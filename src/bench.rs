//! `deltadefi-mm bench`: the whole pipeline in process at full speed. A synthetic walk is
//! generated and parsed as bookTicker text as fast as the actors keep up; the mock exchange
//! answers at zero latency and the rate budget is lifted so that only the pipeline's own work
//! is measured. A warm-up brings the market to ACTIVE (fresh feed, reconciled orders) first.
//!
//! With `--replay FILE` the file plays at max speed from the pipeline's start instead (its
//! start-up, reconciliation included, is inside the clock, and ticks that arrive before the
//! market is ACTIVE are priced but not quoted). The clock stops once every tick has been priced and the pipeline has drained (every outbox row
//! terminal, nothing in flight or waiting, no counter moving): ticks/s is over that time.
//!
//! Reported: ticks/s through the drained pipeline (and until priced, as before), tick → approved-intent latency quantiles
//! (OrderManager's histogram), the process's peak RSS (VmHWM), the mock's place rejects by
//! code and the post-only crosses QuoteEngine and the send path avoided.

use std::time::{Duration, Instant};

use mm_actors::binance_feed::{FeedSpec, PlayMore};
use mm_actors::config::Config;
use mm_actors::mock_exchange::GetVenueRejects;
use mm_actors::order_manager::GetOrderStats;
use mm_actors::outbox_worker::GetOutboxStats;
use mm_actors::quote_engine::GetQuoteStats;
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::risk_guard::rules::TradingState;
use mm_actors::store::Store;
use serde::Serialize;

use crate::app::{Pipeline, VenueAccess};

/// Latency quantiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencyUs {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

/// One benchmark run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchReport {
    pub ticks: u64,
    /// Until QuoteEngine had priced the last tick.
    pub elapsed_s: f64,
    /// Ticks over `drained_s`: the headline figure.
    pub ticks_per_sec: f64,
    /// Ticks over `elapsed_s` (what `bench` reported before it waited for the drain).
    pub priced_ticks_per_sec: f64,
    /// Until the pipeline had drained: every outbox row terminal, nothing in flight.
    pub drained_s: f64,
    pub latency_us: LatencyUs,
    /// Tick → the order action written to the venue (the send gate passed), for every action
    /// a tick caused.
    pub tick_to_write_us: LatencyUs,
    /// The pace asked for (ticks per second); `None` under flood.
    pub rate: Option<u64>,
    pub intents: u64,
    pub targets: u64,
    /// Quote targets QuoteEngine decided (and persisted).
    pub quote_decisions: u64,
    /// Orders created over the whole run (warm-up included), from SQLite.
    pub orders: u64,
    /// Order actions written to the venue.
    pub actions_sent: u64,
    /// Fills over the whole run, from SQLite.
    pub fills: u64,
    pub peak_rss_mb: f64,
    /// The most writes that waited for the SQLite thread at once over the whole run. A
    /// max-speed source waits while more than `store::MAX_SPEED_QUEUE` do, so this stays
    /// near that bound however long the replay.
    pub store_queue_peak: usize,
    /// CPU seconds of the whole process (every thread) over the same window as `drained_s`.
    /// The drained replay's work moves with how far the mock lags behind QuoteEngine
    /// (BENCHMARKS.md), so CPU per tick beside `orders` compares builds where ticks/s alone
    /// cannot. In paced runs it includes the pacer's own waiting.
    pub cpu_s: f64,
    /// `cpu_s` per measured tick, in microseconds.
    pub cpu_us_per_tick: f64,
    /// `cpu_s` by thread name over the same window (`main` is the hot arbiter's thread,
    /// `sqlite-store` the writer, `actix-rt|system|…` the venue arbiter): which of them is
    /// full says where a faster build must save. Threads that ended inside the window are
    /// not counted.
    pub cpu_s_by_thread: std::collections::BTreeMap<String, f64>,
    /// Device interrupts (the disk's, the network's; not the kernel's own timer and IPIs)
    /// each CPU took over the same window, from `/proc/interrupts` (empty where it cannot be
    /// read). Each one on the hot CPU stops the tick's path while its handler runs: the
    /// paced tail moves with the disk's interrupts (BENCHMARKS.md, fourteenth sitting).
    pub device_irqs_by_cpu: std::collections::BTreeMap<usize, u64>,
    /// Places the mock rejected, by venue code, over the whole run (4104: a post-only order
    /// that would have crossed; each one a wasted action).
    pub venue_rejects: std::collections::BTreeMap<u32, u64>,
    /// Quotes QuoteEngine kept one step behind the venue's opposite touch (or dropped).
    pub crosses_clamped: u64,
    /// Places not written because the venue's book had moved onto them meanwhile.
    pub crosses_skipped: u64,
}

const WARMUP_TICKS: u64 = 2_000;

/// The process's peak resident set size in MiB, from /proc/self/status (0 where unavailable).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time used so far by the whole process, every thread, in seconds (0 where unavailable).
pub fn process_cpu_s() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

/// CPU seconds used so far by each live thread of this process, summed by thread name (the
/// process's own thread as `main`), from `/proc/self/task` (empty where unavailable).
pub fn thread_cpu_s() -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    let pid = std::process::id().to_string();
    for task in tasks.flatten() {
        let dir = task.path();
        // schedstat's first field: nanoseconds on a CPU; where the kernel keeps no schedstat,
        // stat's user and system time, in the 1/100 s ticks (USER_HZ) /proc reports.
        let schedstat = || {
            let text = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        };
        let stat = || stat_cpu_ns(&std::fs::read_to_string(dir.join("stat")).ok()?);
        let Some(ns) = schedstat().or_else(stat) else {
            continue;
        };
        let name = if task.file_name().to_str() == Some(pid.as_str()) {
            "main".to_string()
        } else {
            std::fs::read_to_string(dir.join("comm"))
                .map_or_else(|_| "?".to_string(), |c| c.trim_end().to_string())
        };
        *by_name.entry(name).or_insert(0.0) += ns as f64 * 1e-9;
    }
    by_name
}

/// A thread's user and system time from its `/proc/.../stat` line, in nanoseconds (/proc
/// counts them in 1/100 s, USER_HZ).
fn stat_cpu_ns(stat: &str) -> Option<u64> {
    // The fields after the name in parentheses (which may hold spaces and parentheses):
    // utime is the 12th of them, stime the 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system).saturating_mul(10_000_000))
}

/// The process's CPU, each thread's and the device interrupts by CPU at one moment: where a
/// bench window starts.
struct CpuMark {
    process_s: f64,
    threads: std::collections::BTreeMap<String, f64>,
    /// Device interrupts so far (`None` where `/proc/interrupts` cannot be read).
    irqs: Option<Vec<crate::interrupts::DeviceLine>>,
}

impl CpuMark {
    fn now() -> Self {
        Self {
            process_s: process_cpu_s(),
            threads: thread_cpu_s(),
            irqs: crate::interrupts::read(),
        }
    }

    /// The process's CPU seconds since the mark, and each thread's (a thread first seen
    /// now counts from zero).
    fn since(&self) -> (f64, std::collections::BTreeMap<String, f64>) {
        let threads = thread_cpu_s()
            .into_iter()
            .map(|(name, s)| {
                let used = (s - self.threads.get(&name).copied().unwrap_or(0.0)).max(0.0);
                (name, used)
            })
            .collect();
        ((process_cpu_s() - self.process_s).max(0.0), threads)
    }

    /// The device interrupts each CPU took since the mark (empty where they cannot be read).
    fn irqs_since(&self) -> std::collections::BTreeMap<usize, u64> {
        match (&self.irqs, crate::interrupts::read()) {
            (Some(before), Some(after)) => crate::interrupts::taken_between(before, &after),
            _ => Default::default(),
        }
    }
}

/// What the benchmark pushes through the pipeline.
#[derive(Debug, Clone)]
pub enum BenchSource {
    /// The seeded synthetic walk, this many ticks after a warm-up to ACTIVE.
    Walk(u64),
    /// The walk paced at `rate` ticks per second (each tick released at its own time from a
    /// blocking thread), `ticks` of it.
    Paced { ticks: u64, rate: u64 },
    /// A replay file at max speed, from the pipeline's start (no warm-up: the file decides).
    Replay(std::path::PathBuf),
}

/// Counters read in one poll: what tells a drained pipeline from a busy one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Progress {
    ticks: u64,
    targets: u64,
    intents: u64,
    sent: u64,
    open: usize,
    in_flight: usize,
    waiting: usize,
}

async fn progress(p: &Pipeline) -> anyhow::Result<Progress> {
    let q = p.quotes.send(GetQuoteStats).await?;
    let o = p.orders.send(GetOrderStats).await?;
    let x = p.outbox.send(GetOutboxStats).await?;
    Ok(Progress {
        ticks: q.iter().map(|m| m.ticks).sum(),
        targets: q.iter().map(|m| m.targets).sum(),
        intents: o.intents,
        sent: x.sent_total,
        open: x.open,
        in_flight: x.in_flight,
        waiting: x.waiting_permit,
    })
}

/// Waits until the pipeline is drained: every outbox row terminal, nothing in flight or
/// waiting for a permit, and no counter moving between two polls (a store barrier between
/// them, so that no commit is pending). Returns the instant it was first seen drained.
async fn drained(p: &Pipeline) -> anyhow::Result<(Instant, Progress)> {
    let t0 = Instant::now();
    let mut last: Option<(Instant, Progress)> = None;
    loop {
        let seen_at = Instant::now();
        let now = progress(p).await?;
        let idle = now.open == 0 && now.in_flight == 0 && now.waiting == 0;
        match &last {
            Some((at, prev)) if idle && *prev == now => return Ok((*at, now)),
            _ => last = idle.then_some((seen_at, now)),
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(120),
            "the pipeline did not drain within 120 s"
        );
        // Writes queued before this read are committed when it answers.
        p.store.read(|_| Ok(())).await?;
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
}

/// When each of `ticks` ticks paced at `rate` per second is due, and how many are due at a
/// given time since the start: tick k (from 1) is due at k / rate seconds.
#[derive(Debug, Clone, Copy)]
struct Pace {
    ticks: u64,
    rate: u64,
    released: u64,
}

impl Pace {
    fn new(ticks: u64, rate: u64) -> Self {
        Self {
            ticks,
            rate: rate.max(1),
            released: 0,
        }
    }

    /// The ticks that came due by `elapsed` and were not released yet (marked released).
    /// Whole nanoseconds, so that the tick due at [`Pace::next_due`] is due then, not a
    /// rounding later.
    fn release(&mut self, elapsed: Duration) -> u64 {
        let due = elapsed.as_nanos().saturating_mul(u128::from(self.rate)) / 1_000_000_000;
        let due = u64::try_from(due).unwrap_or(u64::MAX).min(self.ticks);
        let n = due.saturating_sub(self.released);
        self.released += n;
        n
    }

    /// When the next tick is due, from the start; `None` once every tick is released.
    fn next_due(&self) -> Option<Duration> {
        let nanos = u128::from(self.released + 1) * 1_000_000_000;
        let nanos = nanos.div_ceil(u128::from(self.rate));
        (self.released < self.ticks)
            .then(|| Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }
}

/// Releases `ticks` ticks to `feed` at `rate` per second from `start`: each once it is due,
/// sleeping until the next one (the kernel's timer slack, about 50 µs, sets the jitter; ticks
/// that came due meanwhile go together).
fn pace(feed: &actix::Recipient<PlayMore>, ticks: u64, rate: u64, start: Instant) {
    // Spawned from the hot arbiter, this thread starts on its CPU: frames come from elsewhere.
    if let Some(p) = crate::affinity::installed()
        && let Err(e) = crate::affinity::keep_off(p)
    {
        tracing::warn!(cause = %e, "the pacer stays on the hot CPU");
    }
    let mut pace = Pace::new(ticks, rate);
    while let Some(next) = pace.next_due() {
        let n = pace.release(start.elapsed());
        if n > 0 {
            feed.do_send(PlayMore(n));
            continue;
        }
        std::thread::sleep((start + next).saturating_duration_since(Instant::now()));
    }
}

/// Runs the benchmark of `source` with `cfg` adjusted for speed (budget lifted, mock at
/// zero latency, reference guard and divergence pause relaxed).
///
/// # Errors
/// Store or pipeline failures.
pub fn run(cfg: Config, ticks: u64) -> anyhow::Result<BenchReport> {
    run_source(cfg, BenchSource::Walk(ticks))
}

/// As [`run`], for any source.
///
/// # Errors
/// Store or pipeline failures, or a pipeline that does not drain.
pub fn run_source(mut cfg: Config, source: BenchSource) -> anyhow::Result<BenchReport> {
    let dir = std::env::temp_dir().join(format!("deltadefi-mm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.db");
    cfg.run.db_path = db.clone();
    cfg.run.status_interval_s = 0;
    cfg.rate_limit.actions_per_second = 1_000_000;
    cfg.rate_limit.burst = 1_000_000;
    cfg.mock_exchange.latency_ms = 0;
    cfg.mock_exchange.latency_jitter_ms = 0;
    cfg.mock_exchange.actions_per_second = 0;
    cfg.feed.synthetic.interval_ms = 0;
    cfg.feed.synthetic.burst_probability = rust_decimal::Decimal::ZERO;
    // At full speed the walk covers in one wall-clock second what the market does in hours:
    // the reference guard (which still runs on every tick) must not read that as a jump.
    cfg.feed.reference_guard.jump_limit_bps = rust_decimal::Decimal::from(10_000);
    cfg.feed.reference_guard.confirm_ticks = 1;
    cfg.feed.reference_guard.confirm_ms = 0;
    // Nor may the mock's book, which trails the reference by up to ~100 bps when the walk runs
    // this fast, pause quoting as a diverged reference. Quotes are still kept behind that book
    // (its crosses avoided are reported).
    cfg.risk.max_reference_divergence_bps = rust_decimal::Decimal::ZERO;
    if let BenchSource::Replay(path) = &source {
        // A replay plays from the start, as `run` plays it (the walk warms up first): the
        // market quotes once RiskGuard has heard the feed is fresh and evaluated it. At the
        // service's intervals (250 ms) a short or fast replay could be over, every tick priced
        // while halted, before that; at 10 ms it quotes from its first few milliseconds.
        cfg.feed.health_interval_ms = 10;
        cfg.risk.check_interval_ms = 10;
        // Checked before the clock starts, as `run` does at start-up.
        mm_actors::binance_feed::source::ReplayReader::open(path)?;
    }
    let report = actix::System::new().block_on(async move {
        let store = Store::open(&cfg.run.db_path)?;
        let spec = match &source {
            BenchSource::Walk(_) | BenchSource::Paced { .. } => FeedSpec::Synthetic {
                cfg: cfg.feed.synthetic.clone(),
                max_ticks: Some(WARMUP_TICKS),
            },
            BenchSource::Replay(path) => FeedSpec::Replay {
                path: path.clone(),
                speed: mm_actors::config::ReplaySpeed::Max,
                looped: false,
            },
        };
        let (started, cpu_started) = (Instant::now(), CpuMark::now());
        let p = Pipeline::start(&cfg, store, spec, VenueAccess::InProcess)?;
        let (start, cpu_start, before, priced_at) = match &source {
            BenchSource::Walk(ticks) | BenchSource::Paced { ticks, .. } => {
                // Warm up until every market quotes: fresh feed, reconciled orders, ACTIVE.
                let t0 = Instant::now();
                loop {
                    let risk = p.risk.send(GetRiskStats).await?;
                    let orders = p.orders.send(GetOrderStats).await?;
                    if orders.reconciled
                        && risk.markets.iter().all(|m| m.state == TradingState::Active)
                    {
                        break;
                    }
                    anyhow::ensure!(
                        t0.elapsed() < Duration::from_secs(10),
                        "pipeline did not become ACTIVE within 10 s"
                    );
                    actix_rt::time::sleep(Duration::from_millis(5)).await;
                }
                let before = progress(&p).await?;
                p.orders
                    .send(mm_actors::order_manager::ResetLatency)
                    .await?;
                let (start, cpu_start) = (Instant::now(), CpuMark::now());
                match source {
                    BenchSource::Paced { rate, .. } => {
                        // Each tick is released at its own time from a blocking thread, as
                        // frames arrive on a socket: the arbiter is woken for it (a timer on
                        // the arbiter itself ticks by the millisecond, and released 10 at a
                        // time at 10k/s, which measured the bench's own bursts).
                        let (feed, ticks, rate) = (p.feed.clone().recipient(), *ticks, rate);
                        actix_rt::task::spawn_blocking(move || pace(&feed, ticks, rate, start))
                            .await?;
                    }
                    _ => p.feed.do_send(PlayMore(*ticks)),
                }
                let target = before.ticks + ticks;
                loop {
                    if progress(&p).await?.ticks >= target {
                        break;
                    }
                    actix_rt::time::sleep(Duration::from_millis(1)).await;
                }
                (start, cpu_start, before, Instant::now())
            }
            BenchSource::Replay(_) => {
                // Every frame played and every accepted (not held) tick priced.
                loop {
                    let f = p.feed.send(mm_actors::binance_feed::GetFeedStats).await?;
                    let priced = progress(&p).await?.ticks;
                    if f.finished && priced >= f.accepted.saturating_sub(f.held) {
                        break;
                    }
                    anyhow::ensure!(
                        started.elapsed() < Duration::from_secs(600),
                        "the replay was not priced within 600 s"
                    );
                    actix_rt::time::sleep(Duration::from_millis(1)).await;
                }
                let before = Progress {
                    ticks: 0,
                    targets: 0,
                    intents: 0,
                    sent: 0,
                    open: 0,
                    in_flight: 0,
                    waiting: 0,
                };
                (started, cpu_started, before, Instant::now())
            }
        };
        let (drained_at, after) = drained(&p).await?;
        let (cpu_s, cpu_s_by_thread) = cpu_start.since();
        let device_irqs_by_cpu = cpu_start.irqs_since();
        let priced_s = priced_at.duration_since(start).as_secs_f64();
        let drained_s = drained_at.saturating_duration_since(start).as_secs_f64();
        let stats = p.orders.send(GetOrderStats).await?;
        let write = mm_actors::latency::tick_to_write()
            .lock()
            .map(|h| h.summary())
            .unwrap_or_default();
        let venue_rejects = match &p.mock {
            Some(m) => m.send(GetVenueRejects).await?,
            None => Default::default(),
        };
        let now = mm_actors::types::now_ms();
        let views: Vec<_> = cfg
            .markets
            .iter()
            .map(|m| p.reg.books.view(&m.market, now))
            .collect();
        let since = before.clone();
        let (orders, fills) = p
            .store
            .read(|c| {
                let n = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
                Ok((
                    n("SELECT COUNT(*) FROM orders")?,
                    n("SELECT COUNT(*) FROM fills")?,
                ))
            })
            .await?;
        actix::System::current().stop();
        let ticks = after.ticks - since.ticks;
        anyhow::Ok(BenchReport {
            ticks,
            elapsed_s: priced_s,
            ticks_per_sec: ticks as f64 / drained_s.max(1e-9),
            priced_ticks_per_sec: ticks as f64 / priced_s.max(1e-9),
            drained_s,
            latency_us: LatencyUs {
                p50: stats.latency.p50_us,
                p99: stats.latency.p99_us,
                p999: stats.latency.p999_us,
            },
            tick_to_write_us: LatencyUs {
                p50: write.p50_us,
                p99: write.p99_us,
                p999: write.p999_us,
            },
            rate: match source {
                BenchSource::Paced { rate, .. } => Some(rate),
                _ => None,
            },
            intents: after.intents - since.intents,
            targets: after.targets - since.targets,
            quote_decisions: after.targets - since.targets,
            orders: u64::try_from(orders).unwrap_or(0),
            actions_sent: after.sent - since.sent,
            fills: u64::try_from(fills).unwrap_or(0),
            peak_rss_mb: peak_rss_mb(),
            store_queue_peak: p.store.queue().peak(),
            cpu_s,
            cpu_us_per_tick: cpu_s * 1e6 / (ticks.max(1) as f64),
            cpu_s_by_thread,
            device_irqs_by_cpu,
            venue_rejects,
            crosses_clamped: views.iter().map(|v| v.clamped).sum(),
            crosses_skipped: views.iter().map(|v| v.skipped).sum(),
        })
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// The path of a tick that changes no order, on one thread: decode + validate (the feed's
/// decoder and reference guard) and price (QuoteEngine's pricer and its tolerance gate).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PricingReport {
    pub frames: u64,
    pub ticks: u64,
    pub elapsed_s: f64,
    pub ticks_per_sec: f64,
    /// Ticks that moved the book beyond the requote tolerance (each would go on to OrderManager).
    pub targets: u64,
}

/// Runs [`PricingReport`] over `path`'s frames (read into memory first: the file's I/O is not
/// timed) with `cfg`'s markets and reference guard.
///
/// # Errors
/// The replay file cannot be read.
pub fn pricing_only(cfg: &Config, path: &std::path::Path) -> anyhow::Result<PricingReport> {
    use mm_actors::binance_feed::codec::{Decoder, Frame};
    use mm_actors::binance_feed::guard::{ReferenceGuard, Verdict};
    use mm_actors::order_manager::QuoteReason;
    use mm_actors::quote_engine::pricing::{MarketPricer, SidesAllowed};
    let mut reader = mm_actors::binance_feed::source::ReplayReader::open(path)?;
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame()? {
        frames.push(f);
    }
    let mut decoder = Decoder::new(cfg.markets.iter().map(|m| m.reference.clone()));
    let mut guard = ReferenceGuard::new(cfg.feed.reference_guard.clone());
    let mut pricers: Vec<MarketPricer> = cfg
        .markets
        .iter()
        .map(|m| {
            let mut p = MarketPricer::new(m.clone());
            p.sides = SidesAllowed::BOTH;
            p
        })
        .collect();
    let max_position = cfg.risk.max_position;
    let now = Instant::now();
    let (mut ticks, mut targets) = (0u64, 0u64);
    let t0 = Instant::now();
    for (recv_ms, text) in &frames {
        let Ok(Frame::Tick(t)) = decoder.decode(text, *recv_ms, now) else {
            continue;
        };
        ticks += 1;
        let mid = (t.bid + t.ask) / rust_decimal::Decimal::TWO;
        if guard.check(&t.symbol, mid, *recv_ms) != Verdict::Pass {
            continue;
        }
        for p in pricers.iter_mut().filter(|p| p.cfg.reference == t.symbol) {
            p.reference = Some((t.bid, t.ask));
            let reason = QuoteReason::PriceMoved {
                bps: rust_decimal::Decimal::ZERO,
            };
            if p.reprice(max_position, (None, None), reason, false)
                .is_some()
            {
                targets += 1;
            }
        }
    }
    let elapsed_s = t0.elapsed().as_secs_f64();
    Ok(PricingReport {
        frames: frames.len() as u64,
        ticks,
        elapsed_s,
        ticks_per_sec: ticks as f64 / elapsed_s.max(1e-9),
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::prelude::*;

    /// Counts the ticks released to it, and when each release came.
    struct Releases(std::sync::mpsc::Sender<(u64, Instant)>);
    impl Actor for Releases {
        type Context = Context<Self>;
    }
    impl Handler<PlayMore> for Releases {
        type Result = ();
        fn handle(&mut self, msg: PlayMore, _: &mut Context<Self>) {
            let _ = self.0.send((msg.0, Instant::now()));
        }
    }

    /// A stat line's user and system ticks, read past a thread name holding `) (`.
    #[test]
    fn a_stat_line_gives_user_and_system_time() {
        let line = "4242 (actix-rt|x) (y) S 1 4242 4242 0 -1 4194368 900 0 0 0 150 27 0 0 20 0 \
                    3 0 100 1000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1";
        assert_eq!(stat_cpu_ns(line), Some(177 * 10_000_000));
        assert_eq!(stat_cpu_ns("4242 (cut short) S 1"), None);
    }

    /// The schedule: woken when the next tick is due, the pacer releases exactly that one (a
    /// 1 ms timer would release 20 at a time at this rate); woken late, everything that came
    /// due meanwhile, at once; never a tick early, never one twice.
    #[test]
    fn the_pace_releases_each_tick_at_its_time_and_late_ones_together() {
        let mut pace = Pace::new(400, 20_000);
        let mut releases = Vec::new();
        while let Some(next) = pace.next_due() {
            assert_eq!(pace.release(next - Duration::from_nanos(500)), 0, "early");
            releases.push(pace.release(next));
        }
        assert_eq!(releases.len(), 400);
        assert!(releases.iter().all(|n| *n == 1), "{releases:?}");

        let mut late = Pace::new(400, 20_000);
        assert_eq!(
            late.release(Duration::from_millis(1)),
            20,
            "one ms in: 20 due"
        );
        assert_eq!(late.release(Duration::from_millis(1)), 0, "none twice");
        assert_eq!(late.next_due(), Some(Duration::from_micros(1_050)));
        assert_eq!(
            late.release(Duration::from_secs(60)),
            380,
            "the rest, never more"
        );
        assert_eq!(late.next_due(), None);
    }

    /// Run for real: the pacer releases every tick once and none before it is due. (How many
    /// go together depends on how late the scheduler wakes it; the test above holds that.)
    #[test]
    fn the_pacer_releases_each_tick_once_and_none_early() {
        let (tx, rx) = std::sync::mpsc::channel();
        let start = actix::System::new().block_on(async move {
            let addr = Releases(tx).start();
            let to = addr.clone().recipient();
            let start = Instant::now();
            actix_rt::task::spawn_blocking(move || pace(&to, 400, 20_000, start))
                .await
                .expect("the pacer");
            // Answered only after every release before it was handled: none is still queued.
            addr.send(PlayMore(0)).await.expect("the receiver");
            start
        });
        let releases: Vec<(u64, Instant)> = rx.try_iter().filter(|r| r.0 > 0).collect();
        assert_eq!(releases.iter().map(|r| r.0).sum::<u64>(), 400);
        let mut released = 0;
        for (n, at) in &releases {
            released += n;
            // Tick k is due at k / 20,000 s: never released before that.
            let due = Duration::from_secs_f64(released as f64 / 20_000.0);
            assert!(
                at.duration_since(start) + Duration::from_micros(50) >= due,
                "{released} early"
            );
        }
    }
}
