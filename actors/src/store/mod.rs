//! The SQLite store: one connection on its own thread, reached through a cloneable [`Store`].
//!
//! Writes arrive as [`Write`] batches and are group-committed: the thread drains everything
//! queued, applies it in one transaction, then runs each batch's `on_commit` callback with the
//! outcome. A callback is how "durable before any side effect" is kept: OrderManager hands the
//! outbox rows to OutboxWorker only from the callback of the transaction that wrote them.
//! Reads are closures run on the same thread, after every write queued before them.
//!
//! The connection is opened in WAL mode with `synchronous=NORMAL`, migrations from
//! `migrations/` are applied at open, and decimals are stored as TEXT.

pub mod rows;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;
use tracing::{error, warn};

pub use rows::Write;

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal_mode is {0}, WAL could not be enabled")]
    NotWal(String),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: u32,
        source: rusqlite::Error,
    },
    #[error("the store thread has stopped")]
    Closed,
    #[error("cannot start the store thread: {0}")]
    Spawn(std::io::Error),
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

/// Called once with the outcome of the transaction that held the batch.
pub type OnCommit = Box<dyn FnOnce(Result<(), String>) + Send>;
type ReadFn = Box<dyn FnOnce(&Connection) + Send>;

enum Command {
    Write {
        writes: Vec<Write>,
        on_commit: Option<OnCommit>,
    },
    Read(ReadFn),
}

/// Handle to the store thread; cheap to clone, `Send`.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Command>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Opens a connection with the service's pragmas.
///
/// # Errors
/// Fails when the file cannot be opened or WAL mode cannot be enabled.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = Connection::open(path)?;
    // journal_mode answers with a row; read it back to know WAL really is on.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotWal(mode));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database, applies migrations and starts the thread.
    ///
    /// # Errors
    /// Fails when the database cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = open_connection(path)?;
        schema::migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Command>();
        thread::Builder::new()
            .name("sqlite-store".into())
            .spawn(move || run(conn, rx))
            .map_err(StoreError::Spawn)?;
        Ok(Store {
            tx,
            path: path.to_path_buf(),
        })
    }

    /// Returns the database file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues writes; `on_commit` runs on the store thread after the transaction.
    pub fn write(&self, writes: Vec<Write>, on_commit: Option<OnCommit>) {
        if let Err(mpsc::SendError(Command::Write {
            on_commit: Some(cb),
            ..
        })) = self.tx.send(Command::Write { writes, on_commit })
        {
            cb(Err("store thread stopped".into()));
        }
    }

    /// Waits until every write queued before this call is committed (or failed).
    ///
    /// # Errors
    /// [`StoreError::Closed`] when the thread has stopped.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(())).await
    }

    /// Runs `f` on the store thread after every write queued before it.
    ///
    /// # Errors
    /// [`StoreError::Closed`] when the thread has stopped; otherwise whatever `f` returns.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadFn = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.tx
            .send(Command::Read(job))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Command>) {
    while let Ok(first) = rx.recv() {
        let mut pending = Some(first);
        let mut batch: Vec<(Vec<Write>, Option<OnCommit>)> = Vec::new();
        // Drain everything queued: consecutive writes share one transaction; a read first
        // commits what came before it.
        while let Some(cmd) = pending.take().or_else(|| rx.try_recv().ok()) {
            match cmd {
                Command::Write { writes, on_commit } => batch.push((writes, on_commit)),
                Command::Read(f) => {
                    commit(&mut conn, &mut batch);
                    f(&conn);
                }
            }
            if batch.len() >= 512 {
                commit(&mut conn, &mut batch);
            }
        }
        commit(&mut conn, &mut batch);
    }
}

fn commit(conn: &mut Connection, batch: &mut Vec<(Vec<Write>, Option<OnCommit>)>) {
    if batch.is_empty() {
        return;
    }
    let mut result = apply(conn, batch);
    if let Err(e) = &result {
        // One retry: SQLITE_BUSY past the busy timeout is the likely transient.
        warn!(cause = %e, "store transaction failed, retrying once");
        result = apply(conn, batch);
    }
    let outcome = result.map_err(|e| {
        error!(cause = %e, "store transaction failed");
        e.to_string()
    });
    for (_, cb) in batch.drain(..) {
        if let Some(cb) = cb {
            cb(outcome.clone());
        }
    }
}

fn apply(
    conn: &mut Connection,
    batch: &[(Vec<Write>, Option<OnCommit>)],
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    for (writes, _) in batch {
        for w in writes {
            w.apply(&tx)?;
        }
    }
    tx.commit()
}
