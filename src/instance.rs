//! One service per database: an OS file lock beside the SQLite file.
//!
//! Two processes on one database would overwrite each other's outbox rows, cancel each other's
//! orders and spend the venue budget twice. `run` takes an exclusive lock on `<db>.lock` before
//! it opens the database or reaches the venue; a second process finds it held and stops at
//! once, naming the holder (pid, host and start time written into the file). The lock belongs
//! to the open file: it is released when the process exits, however it exits (`kill -9`
//! included), so a restart never finds a stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "database {db} is in use by another deltadefi-mm ({holder}); refusing to start a second one"
    )]
    Held { db: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

/// The lock file of a database, or of another role on it (`watchdog`).
pub fn lock_path(db: &Path, role: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    if role.is_empty() {
        name.push(".lock");
    } else {
        name.push(format!(".{role}.lock"));
    }
    PathBuf::from(name)
}

impl InstanceLock {
    /// Takes the exclusive lock of `db` for `role` ("" for the service itself).
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder when another process has it.
    pub fn acquire(db: &Path, role: &str) -> Result<InstanceLock, LockError> {
        let path = lock_path(db, role);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    db: db.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let who = format!(
            "pid {} on {}, started at {} ms{}",
            std::process::id(),
            hostname(),
            mm_actors::types::now_ms(),
            if role.is_empty() {
                String::new()
            } else {
                format!(", as {role}")
            }
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(who.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(InstanceLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_named_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("mm-lock-{}", std::process::id()));
        let db = dir.join("x.db");
        let first = InstanceLock::acquire(&db, "").expect("first");
        match InstanceLock::acquire(&db, "") {
            Err(LockError::Held { holder, .. }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                )
            }
            other => panic!("expected Held, got {other:?}"),
        }
        // Another role on the same database has its own lock.
        let watchdog = InstanceLock::acquire(&db, "watchdog").expect("watchdog");
        assert_ne!(watchdog.path(), first.path());
        drop(first);
        InstanceLock::acquire(&db, "").expect("free again");
        let _ = std::fs::remove_dir_all(dir);
    }
}
