//! The `deltadefi-mm` binary as a child process: spawn, signal, wait with a bound.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo_path;

/// The binary, run from the repository root with a clean environment of `MM_*` and `RUST_LOG`.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deltadefi-mm"));
    c.current_dir(repo_path("")).env_remove("RUST_LOG");
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("MM_") || k.starts_with("DELTADEFI_"))
    {
        c.env_remove(k);
    }
    c
}

/// A child process killed when the test drops it (a failing test must not leave a bot
/// trading behind it).
pub struct Killed(pub Child);

impl std::ops::Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // A stopped process must be continued to die of SIGKILL's reaping promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &self.0.id().to_string()])
                .status();
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// `run` on `config` and `db` with the mock's secrets, stderr captured.
pub fn spawn_bot(config: &std::path::Path, db: &std::path::Path, extra: &[&str]) -> Killed {
    Killed(
        bin()
            .args(["run", "--config"])
            .arg(config)
            .arg("--db")
            .arg(db)
            .args(extra)
            .env("DELTADEFI_API_KEY", super::wire::KEY)
            .env("DELTADEFI_TRADING_PASSCODE", super::wire::PASSCODE)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the bot"),
    )
}

/// `deltadefi-mm mock-exchange` as its own process on a free port of 127.0.0.1, with the
/// `config/staging-wire.yaml` markets and these secrets; returns once it accepts connections.
pub fn spawn_mock_exchange(key: &str, passcode: &str) -> (Killed, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mock = bin()
        .args([
            "mock-exchange",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
            "config/staging-wire.yaml",
        ])
        .env("DELTADEFI_API_KEY", key)
        .env("DELTADEFI_TRADING_PASSCODE", passcode)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Killed)
        .expect("mock-exchange");
    wait_for("the mock exchange up", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (mock, port)
}

/// `deltadefi-mm kill --db`: records the kill switch; asserts it was recorded.
pub fn kill_switch(db: &std::path::Path) {
    let out = bin().args(["kill", "--db"]).arg(db).output().expect("kill");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `sig` (`-TERM`, `-KILL`, `-STOP`, ...) to `pid`.
pub fn signal_pid(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

/// Waits for `child` to exit within `limit`; returns its exit code and stderr.
pub fn wait_exit(child: &mut Child, limit: Duration) -> (Option<i32>, String, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return (status.code(), err, t0.elapsed());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the process did not exit within {limit:?}:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` every 20 ms until it holds, failing with `what` after `limit` (for state in
/// another process, which has no event to await).
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stderr of a running child, collected by a thread as it comes.
#[derive(Clone, Default)]
pub struct LogTail(std::sync::Arc<std::sync::Mutex<String>>);

impl LogTail {
    /// Takes `child`'s stderr and collects it.
    pub fn follow(child: &mut Child) -> LogTail {
        let tail = LogTail::default();
        if let Some(mut err) = child.stderr.take() {
            let buf = tail.0.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                loop {
                    match std::io::Read::read(&mut err, &mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if let Ok(mut b) = buf.lock() {
                                b.push_str(&String::from_utf8_lossy(&chunk[..n]));
                            }
                        }
                    }
                }
            });
        }
        tail
    }

    /// Everything so far, without terminal colour codes.
    pub fn text(&self) -> String {
        strip_ansi(&self.0.lock().map(|b| b.clone()).unwrap_or_default())
    }

    /// True once `needle` was logged.
    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }
}

/// Waits for `child` (whose stderr a [`LogTail`] follows) to exit within `limit`.
pub fn wait_code(child: &mut Child, limit: Duration) -> (Option<i32>, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), t0.elapsed());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (None, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for n in chars.by_ref() {
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
