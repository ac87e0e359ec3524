//! Where a replay stands, as a pure core (no actix, no logging): the file read line by line,
//! the frame read but not yet due, the recorded pace's anchor, and the rewind of a looped
//! replay. The feed's actor asks it for the next step and acts on the answer.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::source::{ReplayError, ReplayReader};
use crate::config::ReplaySpeed;

/// What the replay does next.
#[derive(Debug)]
pub enum Next {
    /// A frame to play now, received at this `recv_ms`; its text is [`ReplayCursor::text`].
    Frame(i64),
    /// The next frame is due after this long (recorded pace); it is kept until then.
    NotYet(Duration),
    /// A looped replay reached the end and starts again from the first line: the sequence
    /// numbers start again too.
    Rewound,
    /// A line that no longer reads; the replay goes on past it.
    Skipped(ReplayError),
    /// The file cannot be read (again): the replay ends.
    Failed(ReplayError),
    /// Every frame was played.
    End,
}

/// A replay's position.
#[derive(Debug)]
pub struct ReplayCursor {
    path: PathBuf,
    speed: ReplaySpeed,
    looped: bool,
    /// Opened at the first step (the file was checked when the service started).
    reader: Option<ReplayReader>,
    /// The text of the last frame read; its allocation is reused from frame to frame.
    text: String,
    /// The `recv_ms` of the frame in `text`, read but not yet due.
    pending: Option<i64>,
    /// When the recorded pace started, and the `recv_ms` of the frame it started at.
    started: Option<(Instant, i64)>,
    /// Set once the replay has ended, or failed.
    finished: bool,
    /// A rewind was answered and no frame read since: an end met now is a file with no frame.
    rewound: bool,
}

impl ReplayCursor {
    pub fn new(path: PathBuf, speed: ReplaySpeed, looped: bool) -> Self {
        Self {
            path,
            speed,
            looped,
            reader: None,
            text: String::new(),
            pending: None,
            started: None,
            finished: false,
            rewound: false,
        }
    }

    /// The text of the frame last answered with [`Next::Frame`].
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every frame was played (or the file could not be read).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Frames play as fast as they are handled, not at the recorded pace.
    pub fn at_max_speed(&self) -> bool {
        self.speed == ReplaySpeed::Max
    }

    /// After a restart of the actor, the recorded pace starts again from the next frame; the
    /// position in the file is kept.
    pub fn restart_pace(&mut self) {
        self.started = None;
    }

    /// The next step at `now` (the feed reads the clock once per turn; only the recorded pace
    /// looks at it).
    pub fn next(&mut self, now: Instant) -> Next {
        let recv_ms = match self.pending.take() {
            Some(recv_ms) => recv_ms,
            None => match self.read() {
                Ok(recv_ms) => recv_ms,
                Err(step) => return step,
            },
        };
        if self.speed == ReplaySpeed::Recorded {
            let (t0, first_ms) = *self.started.get_or_insert((now, recv_ms));
            let due = Duration::from_millis(u64::try_from(recv_ms - first_ms).unwrap_or(0));
            let elapsed = now.saturating_duration_since(t0);
            if due > elapsed {
                self.pending = Some(recv_ms);
                return Next::NotYet(due - elapsed);
            }
        }
        Next::Frame(recv_ms)
    }

    /// Reads the next frame into `text`; any other step is the `Err`.
    fn read(&mut self) -> Result<i64, Next> {
        if self.finished {
            return Err(Next::End);
        }
        let reader = match &mut self.reader {
            Some(r) => r,
            None => match ReplayReader::unchecked(&self.path) {
                Ok(r) => self.reader.insert(r),
                Err(e) => return Err(self.fail(e)),
            },
        };
        match reader.next_frame_into(&mut self.text) {
            Ok(Some(recv_ms)) => {
                self.rewound = false;
                Ok(recv_ms)
            }
            Ok(None) if self.looped && !self.rewound => match reader.rewind() {
                Ok(()) => {
                    self.rewound = true;
                    self.started = None;
                    Err(Next::Rewound)
                }
                Err(e) => Err(self.fail(e)),
            },
            Ok(None) => {
                self.finished = true;
                Err(Next::End)
            }
            Err(e) => Err(Next::Skipped(e)),
        }
    }

    fn fail(&mut self, e: ReplayError) -> Next {
        self.finished = true;
        Next::Failed(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tag: &str, body: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("mm-cursor-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("r.jsonl");
        std::fs::write(&path, body).expect("write");
        (path, dir)
    }

    const THREE: &str = "{\"recv_ms\":1000,\"msg\":{\"u\":1}}\nnot json\n{\"recv_ms\":1250,\"msg\":{\"u\":2}}\n{\"recv_ms\":1250,\"msg\":{\"u\":3}}\n";

    /// The steps up to the first `NotYet` or the end, as text.
    fn steps(c: &mut ReplayCursor, now: Instant, most: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..most {
            let s = match c.next(now) {
                Next::Frame(ms) => format!("{ms} {}", c.text()),
                Next::NotYet(d) => format!("wait {}ms", d.as_millis()),
                Next::Rewound => "rewound".into(),
                Next::Skipped(e) => format!("skipped {}", e.to_string().contains("line 2")),
                Next::Failed(_) => "failed".into(),
                Next::End => "end".into(),
            };
            let stop = s == "end" || s.starts_with("wait") || s == "failed";
            out.push(s);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn at_max_speed_every_frame_plays_a_bad_line_is_skipped_and_a_loop_rewinds() {
        let (path, dir) = file("max", THREE);
        let mut once = ReplayCursor::new(path.clone(), ReplaySpeed::Max, false);
        let t = Instant::now();
        assert_eq!(
            steps(&mut once, t, 10),
            [
                "1000 {\"u\":1}",
                "skipped true",
                "1250 {\"u\":2}",
                "1250 {\"u\":3}",
                "end"
            ]
        );
        assert!(once.finished());
        assert_eq!(steps(&mut once, t, 3), ["end"]);

        let mut looped = ReplayCursor::new(path, ReplaySpeed::Max, true);
        let all = steps(&mut looped, t, 7);
        assert_eq!(all[4], "rewound");
        assert_eq!(all[5], "1000 {\"u\":1}");
        assert!(!looped.finished());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn at_recorded_pace_a_frame_waits_until_due_and_is_kept_until_then() {
        let (path, dir) = file("paced", THREE);
        let mut c = ReplayCursor::new(path, ReplaySpeed::Recorded, false);
        let t0 = Instant::now();
        // The first frame anchors the pace; the next is 250 ms after it.
        assert_eq!(
            steps(&mut c, t0, 5),
            ["1000 {\"u\":1}", "skipped true", "wait 250ms"]
        );
        assert_eq!(
            steps(&mut c, t0 + Duration::from_millis(100), 5),
            ["wait 150ms"]
        );
        // Due: the kept frame, then the one recorded at the same instant, then the end.
        assert_eq!(
            steps(&mut c, t0 + Duration::from_millis(250), 5),
            ["1250 {\"u\":2}", "1250 {\"u\":3}", "end"]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_restart_keeps_the_position_and_starts_the_pace_again() {
        let (path, dir) = file("restart", THREE);
        let mut c = ReplayCursor::new(path, ReplaySpeed::Recorded, false);
        let t0 = Instant::now();
        assert_eq!(
            steps(&mut c, t0, 5).last().map(String::as_str),
            Some("wait 250ms")
        );
        c.restart_pace();
        // The kept frame anchors the new pace: it plays at once, nothing is replayed twice.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            steps(&mut c, later, 5),
            ["1250 {\"u\":2}", "1250 {\"u\":3}", "end"]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_that_cannot_be_read_ends_the_replay() {
        let mut c = ReplayCursor::new(
            std::env::temp_dir().join("mm-cursor-no-such-file.jsonl"),
            ReplaySpeed::Max,
            true,
        );
        assert_eq!(steps(&mut c, Instant::now(), 3), ["failed"]);
        assert!(c.finished());
    }
}
