//! The store's cost per quote row, alone and repeatable: `rows` decision rows shaped like the
//! peer workload's (two levels, the venue's touch) written through `rows::apply_all` in
//! transactions of `batch` rows on a fresh WAL database, as the store thread writes them.
//! The drained `bench` cannot show a few per cent on the writer (its work moves with the
//! mock's lag); this can. `cargo run --release -p mm-actors --example store_rows [rows] [batch]`
//! prints the time per row (defaults: 200000 rows, 300 per transaction).

use std::time::Instant;

use mm_actors::messages::DesiredOrder;
use mm_actors::order_manager::QuoteReason;
use mm_actors::store::Write;
use mm_actors::store::rows::{self, QuoteRecord};
use mm_actors::types::{MarketId, Side, Slot};
use rust_decimal::Decimal;

fn arg(n: usize, default: usize) -> Result<usize, Box<dyn std::error::Error>> {
    Ok(match std::env::args().nth(n) {
        Some(s) => s.parse()?,
        None => default,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, batch) = (arg(1, 200_000)?, arg(2, 300)?.max(1));
    let dir = std::env::temp_dir().join(format!("store-rows-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut conn = mm_actors::store::open_connection(&dir.join("rows.db"))?;
    mm_actors::store::schema::migrate(&mut conn)?;
    let market = MarketId("ADAUSDM".into());
    let tick = Decimal::new(1, 4);
    let writes: Vec<Write> = (0..n)
        .map(|i| {
            let bid = Decimal::new(4500 + (i % 50) as i64, 4);
            let level = |side, price| DesiredOrder {
                slot: Slot { side, level: 0 },
                side,
                price,
                size: Decimal::TEN,
            };
            Write::Quote(QuoteRecord {
                market: market.clone(),
                ts_ms: 1_767_225_600_000 + i as i64,
                reason: QuoteReason::PriceMoved {
                    bps: Decimal::new(222, 2),
                },
                ref_bid: bid,
                ref_ask: bid + tick,
                fair: bid + tick / Decimal::TWO,
                bid: Some(bid - tick * Decimal::from(9)),
                ask: Some(bid + tick * Decimal::from(10)),
                inventory: Decimal::from(-20),
                levels: vec![
                    level(Side::Buy, bid - tick * Decimal::from(9)),
                    level(Side::Sell, bid + tick * Decimal::from(10)),
                ],
                venue_bid: Some(bid),
                venue_ask: Some(bid + tick),
            })
        })
        .collect();
    let t0 = Instant::now();
    for chunk in writes.chunks(batch) {
        let tx = conn.transaction()?;
        rows::apply_all(&tx, chunk)?;
        tx.commit()?;
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{n} quote rows, {batch} per transaction: {s:.3} s, {:.2} us per row",
        s * 1e6 / n.max(1) as f64
    );
    drop(conn);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
