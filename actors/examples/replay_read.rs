//! The replay reader's cost per frame alone: every frame of a replay file read as the feed
//! reads it at max speed (line, split, frame text), with no decoding, repeatable where the
//! drained run is not.
//!
//! `cargo run --release -p mm-actors --example replay_read [file] [passes]` (default
//! `data/replay_1m.jsonl`, 5 passes); prints ns per frame for each pass.

use std::path::PathBuf;
use std::time::Instant;

use mm_actors::binance_feed::replay::{Next, ReplayCursor};
use mm_actors::config::ReplaySpeed;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "data/replay_1m.jsonl".into()));
    let passes: usize = args.next().and_then(|p| p.parse().ok()).unwrap_or(5);
    for pass in 1..=passes {
        let mut cursor = ReplayCursor::new(path.clone(), ReplaySpeed::Max, false);
        let (mut frames, mut bytes) = (0u64, 0usize);
        let start = Instant::now();
        loop {
            match cursor.next(start) {
                Next::Frame(_) => {
                    frames += 1;
                    bytes += cursor.text().len();
                }
                Next::End => break,
                Next::Failed(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
                Next::NotYet(_) | Next::Rewound | Next::Skipped(_) => {}
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / frames.max(1) as f64;
        println!("pass {pass}: {frames} frames, {bytes} bytes of frame text, {ns:.1} ns per frame");
    }
}
