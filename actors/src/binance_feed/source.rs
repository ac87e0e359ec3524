//! Offline tick sources: a seeded random walk ([`Synthetic`]) and recorded JSONL
//! ([`ReplayFile`]). Both produce bookTicker text, so every tick goes through the same decoder
//! and validation as live data.
//!
//! Replay format: one JSON object per line, `{"recv_ms": <epoch ms>, "msg": <frame as received>}`
//! (`deltadefi-mm record` writes it). Blank lines and lines starting with `#` are skipped.

use std::fmt::Write as _;
use std::path::Path;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use crate::config::SyntheticConfig;
use crate::rng::SplitMix64;
use crate::types::BinanceSymbol;

/// One recorded frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub recv_ms: i64,
    pub msg: serde_json::Value,
}

#[derive(Deserialize)]
struct RecordedRaw<'a> {
    recv_ms: i64,
    #[serde(borrow)]
    msg: &'a serde_json::value::RawValue,
}

/// One line of a replay file: `(recv_ms, frame text)`, or `None` for a blank or `#` line. The
/// frame is the `msg` as recorded: a JSON string's content, or an object's text as it is.
///
/// # Errors
/// The line is not a `{"recv_ms","msg"}` object.
pub fn parse_line(line: &str) -> Result<Option<(i64, String)>, serde_json::Error> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let r: RecordedRaw<'_> = serde_json::from_str(line)?;
    let raw = r.msg.get();
    let msg = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw)?
    } else {
        raw.to_string()
    };
    Ok(Some((r.recv_ms, msg)))
}

/// A line in exactly the shape `record` writes, `{"recv_ms":N,"msg":{...}}` (already trimmed),
/// split without a JSON parser: `(recv_ms, the msg object's text)`. The frame text then meets
/// the decoder, which checks it as it checks a live frame. `None` for any other shape
/// (whitespace, another key order, a string `msg`), which [`parse_line`] reads instead.
fn split_recorded(line: &str) -> Option<(i64, &str)> {
    let rest = line.strip_prefix(r#"{"recv_ms":"#)?;
    let comma = memchr::memchr(b',', rest.as_bytes())?;
    let digits = &rest[..comma];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let recv_ms = digits.parse::<i64>().ok()?;
    let msg = rest[comma..]
        .strip_prefix(r#","msg":"#)?
        .strip_suffix('}')?;
    (msg.starts_with('{') && msg.ends_with('}')).then_some((recv_ms, msg))
}

/// Failures reading a replay file.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read replay file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("replay file {path} line {line}: {source}")]
    Line {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("replay file {path} holds no frames")]
    Empty { path: String },
}

/// A replay file read line by line: memory does not grow with its length.
#[derive(Debug)]
pub struct ReplayReader {
    path: std::path::PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    /// The line being read, its buffer reused from line to line.
    buf: Vec<u8>,
    line: usize,
}

impl ReplayReader {
    /// Opens `path` after checking the framing of every line in one streaming pass, so that a
    /// bad file stops start-up naming the line, as loading it did.
    ///
    /// # Errors
    /// The file cannot be read, a line is not a `{"recv_ms","msg"}` object, or it holds no
    /// frame.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        Self::unchecked(path)?.for_each_frame(|_| {})?;
        Self::unchecked(path)
    }

    /// Reads every frame left, handing each to `each`.
    ///
    /// # Errors
    /// As [`Self::next_frame`], or the file held no frame.
    fn for_each_frame(mut self, mut each: impl FnMut((i64, String))) -> Result<(), ReplayError> {
        let mut frames = 0u64;
        while let Some(frame) = self.next_frame()? {
            frames += 1;
            each(frame);
        }
        if frames == 0 {
            return Err(ReplayError::Empty {
                path: self.path.display().to_string(),
            });
        }
        Ok(())
    }

    /// Opens `path` at its first line without checking the rest (a file checked before).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn unchecked(path: &Path) -> Result<Self, ReplayError> {
        let file = std::fs::File::open(path).map_err(|source| ReplayError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: std::io::BufReader::with_capacity(1 << 16, file),
            buf: Vec::with_capacity(256),
            line: 0,
        })
    }

    /// Starts again from the first line (a looped replay).
    ///
    /// # Errors
    /// The file can no longer be opened.
    pub fn rewind(&mut self) -> Result<(), ReplayError> {
        *self = Self::unchecked(&self.path)?;
        Ok(())
    }

    /// The next frame, `None` at the end of the file. Every line is read with a JSON parser:
    /// this is the start-up check's read.
    ///
    /// # Errors
    /// A line that cannot be read or is not a `{"recv_ms","msg"}` object, naming it; the
    /// reader moves past it.
    pub fn next_frame(&mut self) -> Result<Option<(i64, String)>, ReplayError> {
        self.next_with(parse_line)
    }

    /// The next frame's text into `text` (its allocation reused), returning its `recv_ms`;
    /// `None` at the end of the file. For a file [`Self::open`] checked: a line in the shape
    /// `record` writes is split without a JSON parser (its frame is still checked by the
    /// decoder, as a live frame is); any other line is read as [`Self::next_frame`] reads it.
    ///
    /// # Errors
    /// As [`Self::next_frame`].
    pub fn next_frame_into(&mut self, text: &mut String) -> Result<Option<i64>, ReplayError> {
        self.next_with(|line| {
            if let Some((recv_ms, msg)) = split_recorded(line.trim()) {
                text.clear();
                text.push_str(msg);
                return Ok(Some(recv_ms));
            }
            Ok(parse_line(line)?.map(|(recv_ms, msg)| {
                *text = msg;
                recv_ms
            }))
        })
    }

    /// Reads lines until `read` makes a frame of one (`None` skips the line), naming the line
    /// it refused.
    fn next_with<T>(
        &mut self,
        mut read: impl FnMut(&str) -> Result<Option<T>, serde_json::Error>,
    ) -> Result<Option<T>, ReplayError> {
        loop {
            self.buf.clear();
            let path = &self.path;
            let read_error = |source| ReplayError::Read {
                path: path.display().to_string(),
                source,
            };
            if read_line(&mut self.reader, &mut self.buf).map_err(read_error)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            let line = std::str::from_utf8(&self.buf)
                .map_err(|e| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
            match read(line) {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => continue,
                Err(source) => {
                    return Err(ReplayError::Line {
                        path: path.display().to_string(),
                        line: self.line,
                        source,
                    });
                }
            }
        }
    }
}

/// Appends the next line of `reader` to `buf`, its `\n` included: as `BufRead::read_until`,
/// with a SIMD search for the line's end (std's byte search was a quarter of the replay's
/// reading). The number of bytes appended; 0 at the end.
fn read_line(reader: &mut impl std::io::BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (done, used) = match memchr::memchr(b'\n', available) {
            Some(i) => (true, i + 1),
            None => (available.is_empty(), available.len()),
        };
        buf.extend_from_slice(&available[..used]);
        reader.consume(used);
        read += used;
        if done {
            return Ok(read);
        }
    }
}

/// A replay file loaded in memory: (recv_ms, frame text).
#[derive(Debug, Clone)]
pub struct ReplayFile {
    pub frames: Vec<(i64, String)>,
}

impl ReplayFile {
    /// Loads and checks the framing of every line (content is validated by the decoder).
    ///
    /// # Errors
    /// Names the file and line that could not be read.
    pub fn load(path: &Path) -> Result<Self, ReplayError> {
        let mut frames = Vec::new();
        ReplayReader::unchecked(path)?.for_each_frame(|f| frames.push(f))?;
        Ok(Self { frames })
    }
}

/// A seeded random walk of one symbol's best bid/ask with occasional trending bursts.
#[derive(Debug, Clone)]
pub struct Synthetic {
    symbol: BinanceSymbol,
    rng: SplitMix64,
    /// Bid in ticks.
    bid_ticks: i64,
    tick: Decimal,
    spread_ticks: i64,
    update_id: u64,
    burst_left: u32,
    burst_dir: i64,
    burst_ppm: u64,
    burst_len: u32,
    mean_interval_ms: u64,
}

impl Synthetic {
    /// A walk for `symbol`, seeded with `cfg.seed + index` so several symbols differ.
    pub fn new(cfg: &SyntheticConfig, symbol: BinanceSymbol, index: u64) -> Self {
        let ticks = (cfg.start_price / cfg.tick_size).trunc();
        let burst_ppm = (cfg.burst_probability * Decimal::from(1_000_000)).trunc();
        Self {
            symbol,
            rng: SplitMix64::new(cfg.seed.wrapping_add(index)),
            bid_ticks: ticks.to_i64().unwrap_or(4_500),
            tick: cfg.tick_size,
            spread_ticks: i64::from(cfg.spread_ticks.max(1)),
            update_id: 1_000_000,
            burst_left: 0,
            burst_dir: 1,
            burst_ppm: burst_ppm.to_u64().unwrap_or(0),
            burst_len: cfg.burst_len,
            mean_interval_ms: cfg.interval_ms,
        }
    }

    /// Advances one step; returns the bookTicker text and the delay before the next step.
    pub fn step(&mut self) -> (String, u64) {
        let mut text = String::new();
        let delay = self.step_into(&mut text);
        (text, delay)
    }

    /// Advances one step, writing the bookTicker text into `out` (emptied first); returns the
    /// delay before the next step.
    pub fn step_into(&mut self, out: &mut String) -> u64 {
        if self.burst_left == 0 && self.rng.chance_ppm(self.burst_ppm) {
            self.burst_left = self.burst_len;
            self.burst_dir = if self.rng.below(2) == 0 { -1 } else { 1 };
        }
        let mv = if self.burst_left > 0 {
            self.burst_left -= 1;
            self.burst_dir * (1 + i64::try_from(self.rng.below(2)).unwrap_or(0))
        } else {
            // 60 % unchanged, 20 % up, 20 % down: ADA's top of book mostly flickers sizes.
            match self.rng.below(10) {
                0 | 1 => -1,
                2 | 3 => 1,
                _ => 0,
            }
        };
        self.bid_ticks = (self.bid_ticks + mv).max(10);
        let spread = if self.rng.below(20) == 0 {
            self.spread_ticks + 1
        } else {
            self.spread_ticks
        };
        self.update_id += 1 + self.rng.below(3);
        let bid = Decimal::from(self.bid_ticks) * self.tick;
        let ask = Decimal::from(self.bid_ticks + spread) * self.tick;
        let bq = Decimal::new(
            i64::try_from(1_000 + self.rng.below(200_000)).unwrap_or(1_000),
            1,
        );
        let aq = Decimal::new(
            i64::try_from(1_000 + self.rng.below(200_000)).unwrap_or(1_000),
            1,
        );
        out.clear();
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            r#"{{"u":{},"s":"{}","b":"{}","B":"{}","a":"{}","A":"{}"}}"#,
            self.update_id, self.symbol, bid, bq, ask, aq
        );
        if self.burst_left > 0 {
            self.mean_interval_ms / 10
        } else if self.mean_interval_ms == 0 {
            0
        } else {
            self.rng.below(self.mean_interval_ms * 2) + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance_feed::codec::{Decoder, Frame};
    use std::time::Instant;

    /// Lines as `read_until` splits them, across the reader's buffer edge and at an end with no
    /// `\n`, whatever the buffer's size.
    #[test]
    fn lines_read_as_read_until_reads_them() {
        use std::io::BufRead as _;
        let text = b"{\"a\":1}\n\nno end here\nx\r\n{\"b\":2}";
        for capacity in [1, 2, 3, 7, 64] {
            let mut ours = std::io::BufReader::with_capacity(capacity, &text[..]);
            let mut std_reader = std::io::BufReader::with_capacity(capacity, &text[..]);
            loop {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                let n = read_line(&mut ours, &mut a).expect("read");
                let m = std_reader.read_until(b'\n', &mut b).expect("read");
                assert_eq!((n, &a), (m, &b), "capacity {capacity}");
                if n == 0 {
                    break;
                }
            }
        }
    }

    #[test]
    fn synthetic_walk_is_valid_deterministic_and_moves() {
        let cfg = SyntheticConfig::default();
        let sym = BinanceSymbol("ADAUSDT".into());
        let mut a = Synthetic::new(&cfg, sym.clone(), 0);
        let mut b = Synthetic::new(&cfg, sym.clone(), 0);
        let mut dec = Decoder::new([sym]);
        let mut mids = Vec::new();
        for _ in 0..5_000 {
            let (ta, _) = a.step();
            let (tb, _) = b.step();
            assert_eq!(ta, tb);
            match dec.decode(&ta, 0, Instant::now()) {
                Ok(Frame::Tick(t)) => {
                    assert_eq!(t.bid, t.bid.round_dp(4));
                    mids.push(t.mid());
                }
                other => panic!("synthetic produced an invalid tick: {other:?} {ta}"),
            }
        }
        let lo = mids.iter().min().copied().unwrap_or_default();
        let hi = mids.iter().max().copied().unwrap_or_default();
        assert!(hi > lo, "the walk moves");
        assert!(
            lo > Decimal::new(1, 1) && hi < Decimal::ONE,
            "ADA-like prices, got {lo}..{hi}"
        );
    }

    #[test]
    fn replay_load_reports_the_bad_line() {
        let dir = std::env::temp_dir().join(format!("mm-replay-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (bad, good) = (dir.join("bad.jsonl"), dir.join("good.jsonl"));
        std::fs::write(
            &bad,
            "# header\n{\"recv_ms\":1,\"msg\":{\"u\":1}}\nnot json\n",
        )
        .expect("write");
        std::fs::write(&good, "{\"recv_ms\":1,\"msg\":{\"u\":1}}\n").expect("write");
        let err = ReplayFile::load(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 3"), "{err}");
        let ok = ReplayFile::load(&good).expect("parses");
        assert_eq!(ok.frames, vec![(1, "{\"u\":1}".to_string())]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn streaming_reads_give_the_frames_the_checked_read_gives() {
        let dir = std::env::temp_dir().join(format!("mm-replay-into-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("mixed.jsonl");
        // The shape `record` writes, and every other shape a JSON parser accepts.
        let lines = [
            r#"{"recv_ms":1767225600010,"msg":{"u":5,"s":"ADAUSDT","b":"0.4500","a":"0.4501"}}"#,
            r#"{"recv_ms":2,"msg":{"stream":"adausdt@bookTicker","data":{"u":1}}}"#,
            "# a comment",
            "",
            r#"{"recv_ms":3,"msg":"{\"u\":7}"}"#,
            r#"  { "recv_ms" : 4 , "msg" : { "u" : 8 } }  "#,
            r#"{"msg":{"u":9},"recv_ms":5}"#,
            "{\"recv_ms\":6,\"msg\":{\"u\":10}}\r",
            r#"{"recv_ms":-7,"msg":{"u":11}}"#,
        ];
        std::fs::write(&path, lines.join("\n")).expect("write");
        let mut checked = ReplayReader::open(&path).expect("opens");
        let mut streamed = ReplayReader::unchecked(&path).expect("opens");
        let mut text = String::from("left over from a longer frame before");
        let mut n = 0;
        while let Some(want) = checked.next_frame().expect("checked read") {
            let recv_ms = streamed.next_frame_into(&mut text).expect("streamed read");
            assert_eq!(recv_ms.map(|ms| (ms, text.clone())), Some(want));
            n += 1;
        }
        assert_eq!(n, 7);
        assert_eq!(streamed.next_frame_into(&mut text).expect("end"), None);
        // A line the split does not recognise still meets the parser, and is named.
        std::fs::write(&path, "{\"recv_ms\":1,\"msg\":{\"u\":1}\n").expect("write");
        let mut r = ReplayReader::unchecked(&path).expect("opens");
        let e = r.next_frame_into(&mut text).expect_err("unbalanced line");
        assert!(e.to_string().contains("line 1"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_reader_checks_every_line_at_open_then_streams_and_rewinds() {
        let dir = std::env::temp_dir().join(format!("mm-replay-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good.jsonl");
        std::fs::write(
            &good,
            "# header\n{\"recv_ms\":1,\"msg\":{\"u\":1}}\n\n{\"recv_ms\":2,\"msg\":\"text\"}\n",
        )
        .expect("write");
        let mut r = ReplayReader::open(&good).expect("opens");
        let a = r.next_frame().expect("ok").expect("frame");
        assert_eq!(a, (1, "{\"u\":1}".to_string()));
        assert_eq!(r.next_frame().expect("ok"), Some((2, "text".to_string())));
        assert_eq!(r.next_frame().expect("ok"), None);
        r.rewind().expect("rewind");
        assert_eq!(r.next_frame().expect("ok"), Some(a));

        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, "{\"recv_ms\":1,\"msg\":1}\nnot json\n").expect("write");
        let e = ReplayReader::open(&bad).expect_err("bad line");
        assert!(e.to_string().contains("line 2"), "{e}");
        // Read without the check, the bad line is an error naming it, and reading goes on.
        let mut r = ReplayReader::unchecked(&bad).expect("opens");
        assert!(r.next_frame().expect("first").is_some());
        assert!(r.next_frame().is_err());
        assert_eq!(r.next_frame().expect("end"), None);

        let empty = dir.join("empty.jsonl");
        std::fs::write(&empty, "# nothing\n").expect("write");
        assert!(matches!(
            ReplayReader::open(&empty),
            Err(ReplayError::Empty { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
