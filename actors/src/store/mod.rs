//! The SQLite store: one connection on its own thread, reached through a cloneable [`Store`].
//!
//! Writes arrive as [`Write`] batches and are group-committed: the thread drains everything
//! queued, applies it in one transaction, then runs each batch's `on_commit` callback with the
//! outcome. A callback is how "durable before any side effect" is kept: OrderManager hands the
//! outbox rows to OutboxWorker only from the callback of the transaction that wrote them.
//! Reads are closures run on the same thread, after every write queued before them.
//!
//! The connection is opened in WAL mode with `synchronous=NORMAL`, migrations from
//! `migrations/` are applied at open (a database from a newer binary is refused), and decimals
//! are stored as TEXT.
//!
//! Failures, and what they do:
//! - A write that is wrong in itself (a constraint, a type) fails alone: the group is retried
//!   one batch per transaction, so one bad batch never fails the others.
//! - SQLite that cannot commit at all (disk full, read-only file, a write lock held elsewhere,
//!   an I/O error) makes the store *failing*: the shared flag ([`Store::failing_flag`]) is set
//!   before any writer hears of it, which closes the halt gate to places at once. Writes are
//!   then kept in order (up to [`RETAINED_MAX`]) and committed, oldest first, by retries with
//!   backoff; the flag clears only once such a commit succeeds. Writers are told at once that
//!   their batch did not commit.

pub mod beat;
pub mod rows;
pub mod schema;
pub mod text;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

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
    #[error(
        "the database was written by a newer deltadefi-mm (schema version {found}; this binary knows up to {supported}): refusing to use it"
    )]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("the store thread has stopped")]
    Closed,
    #[error("{pending} writes are not committed: SQLite cannot commit ({cause})")]
    NotCommitted { pending: usize, cause: String },
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
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

/// Handle to the store thread; cheap to clone, `Send`.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Command>,
    path: PathBuf,
    failing: Arc<AtomicBool>,
    queue: Queue,
    beat: Arc<beat::Beat>,
}

/// The writes handed to the store and not yet taken up by its thread (those a group commit
/// already holds, at most [`GROUP_MAX`] batches, are not counted), with the most seen at
/// once. A source that can go faster than SQLite commits (a replay at max speed) reads it to
/// wait, so that memory does not grow with the file.
#[derive(Clone, Debug, Default)]
pub struct Queue(Arc<QueueCounts>);

#[derive(Debug, Default)]
struct QueueCounts {
    queued: AtomicUsize,
    peak: AtomicUsize,
}

impl Queue {
    /// Writes queued now.
    pub fn len(&self) -> usize {
        self.0.queued.load(Ordering::Relaxed)
    }

    /// True when no write is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most writes queued at once so far.
    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: usize) {
        let now = self
            .0
            .queued
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        self.0.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn taken(&self, n: usize) {
        // Never below zero, whatever the order the counts arrive in.
        let _ = self
            .0
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
    }
}

/// Writes kept for retry while SQLite cannot commit; beyond this the oldest are dropped (and
/// counted in the log): memory must stay bounded through a long outage.
pub const RETAINED_MAX: usize = 200_000;
/// The most writes a max-speed source (a replay at `speed: max`, the flood walk) lets wait
/// for the store's thread before it takes in more frames (BinanceFeed::waits_for_store). A
/// queued write holds well under a kilobyte, so the queue stays within a few megabytes
/// however long the replay; it is also a long batch of work, so the writer never idles while
/// the feed waits.
pub const MAX_SPEED_QUEUE: usize = 10_000;
/// How long one transaction waits for a write lock held by another connection.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(1_000);
/// First and longest delay between commit retries while the store is failing.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Most write batches in one transaction.
const GROUP_MAX: usize = 512;
/// How long a group of writes nobody waits on (quote decisions, order events, fills) may wait
/// for more to share its transaction. Each transaction writes every page it touched to the WAL
/// again, so thousands of one-row transactions a second cost far more than the rows; a batch
/// with an `on_commit` (an outbox row before its send, a send record) is never held: it
/// commits at once, taking the group with it. A crash may lose what waits here, as it may lose
/// what is still queued; a read or a flush commits it first.
pub const LINGER: Duration = Duration::from_millis(2);

/// When the group must commit if nothing more arrives: `None` to commit now (empty, or someone
/// waits on one of its batches).
fn linger_deadline(batch: &[Batch], until: &mut Option<Instant>) -> Option<Instant> {
    if batch.is_empty() || batch.iter().any(|(_, cb)| cb.is_some()) {
        return None;
    }
    Some(*until.get_or_insert_with(|| Instant::now() + LINGER))
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
    conn.busy_timeout(BUSY_TIMEOUT)?;
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
        // A database we can read but not write (a read-only file) is refused now, not found
        // out at the first order.
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
        let (tx, rx) = mpsc::channel::<Command>();
        let failing = Arc::new(AtomicBool::new(false));
        let flag = failing.clone();
        let queue = Queue::default();
        let taken = queue.clone();
        thread::Builder::new()
            .name("sqlite-store".into())
            .spawn(move || Writer::new(conn, flag).run(rx, &taken))
            .map_err(StoreError::Spawn)?;
        Ok(Store {
            tx,
            path: path.to_path_buf(),
            failing,
            queue,
            beat: Arc::default(),
        })
    }

    /// The heartbeat's commits, as a watchdog reading the database sees them.
    pub fn beat(&self) -> &beat::Beat {
        &self.beat
    }

    /// Writes the heartbeat, and notes its commit in [`Store::beat`].
    pub fn write_heartbeat(&self, ts_ms: i64, trading_state: String) {
        let beat = self.beat.clone();
        self.write(
            vec![Write::Heartbeat {
                ts_ms,
                trading_state,
            }],
            Some(Box::new(move |r| {
                if r.is_ok() {
                    beat.committed(ts_ms, crate::types::now_ms());
                }
            })),
        );
    }

    /// The "SQLite cannot commit" flag, shared with the thread (the halt gate follows it).
    pub fn failing_flag(&self) -> Arc<AtomicBool> {
        self.failing.clone()
    }

    /// True while SQLite cannot commit.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Returns the database file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writes queued for the store's thread.
    pub fn queue(&self) -> Queue {
        self.queue.clone()
    }

    /// Queues writes; `on_commit` runs on the store thread after the transaction. On the hot
    /// arbiter the hand-over waits until its runnable work is done ([`crate::after_turn`]),
    /// in the order of the calls.
    pub fn write(&self, writes: Vec<Write>, on_commit: Option<OnCommit>) {
        let (tx, queue) = (self.tx.clone(), self.queue.clone());
        queue.add(writes.len());
        crate::after_turn::after_turn(move || {
            if let Err(mpsc::SendError(Command::Write { writes, on_commit })) =
                tx.send(Command::Write { writes, on_commit })
            {
                queue.taken(writes.len());
                if let Some(cb) = on_commit {
                    cb(Err("store thread stopped".into()));
                }
            }
        });
    }

    /// Waits until every write queued before this call is committed, retained writes included
    /// (one more attempt is made for those).
    ///
    /// # Errors
    /// [`StoreError::NotCommitted`] when some are not; [`StoreError::Closed`] when the thread
    /// has stopped.
    pub async fn flush(&self) -> Result<(), StoreError> {
        crate::after_turn::send_queued();
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
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
        crate::after_turn::send_queued();
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

/// True for errors of the database as a whole (it cannot commit anything now), as opposed to
/// errors of one write.
fn is_environmental(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(
            C::DiskFull
            | C::ReadOnly
            | C::DatabaseBusy
            | C::DatabaseLocked
            | C::SystemIoFailure
            | C::CannotOpen
            | C::PermissionDenied
            | C::FileLockingProtocolFailed
            | C::DatabaseCorrupt
            | C::NotADatabase
            | C::OutOfMemory
            | C::Unknown,
        ) => true,
        Some(_) => false,
        // Errors that are not SQLite's (a closed connection, a poisoned statement cache).
        None => !matches!(
            e,
            rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::InvalidParameterCount(..)
        ),
    }
}

type Batch = (Vec<Write>, Option<OnCommit>);

/// The store thread's state: the connection, and what waits for SQLite to commit again.
struct Writer {
    conn: Connection,
    failing: Arc<AtomicBool>,
    /// Writes that did not commit while SQLite was failing, oldest first.
    retained: VecDeque<Vec<Write>>,
    retained_writes: usize,
    dropped: u64,
    last_error: String,
    retry_delay: Duration,
    next_retry: Option<Instant>,
}

impl Writer {
    fn new(conn: Connection, failing: Arc<AtomicBool>) -> Self {
        Self {
            conn,
            failing,
            retained: VecDeque::new(),
            retained_writes: 0,
            dropped: 0,
            last_error: String::new(),
            retry_delay: RETRY_INITIAL,
            next_retry: None,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Command>, queue: &Queue) {
        loop {
            let first = match self.next_retry {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(cmd) => Some(cmd),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => return,
                },
            };
            if self.next_retry.is_some_and(|at| Instant::now() >= at) {
                self.retry_retained();
            }
            let mut pending = first;
            let mut batch: Vec<Batch> = Vec::new();
            // Set while the group holds only writes nobody waits on: until then more may join.
            let mut linger_until: Option<Instant> = None;
            // Drain everything queued: consecutive writes share one transaction; a read first
            // commits what came before it.
            loop {
                let cmd = match pending.take() {
                    Some(cmd) => cmd,
                    None => match rx.try_recv() {
                        Ok(cmd) => cmd,
                        Err(mpsc::TryRecvError::Disconnected) => break,
                        Err(mpsc::TryRecvError::Empty) => {
                            let Some(until) = linger_deadline(&batch, &mut linger_until) else {
                                break;
                            };
                            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                                Ok(cmd) => cmd,
                                Err(_) => break,
                            }
                        }
                    },
                };
                match cmd {
                    Command::Write { writes, on_commit } => {
                        queue.taken(writes.len());
                        batch.push((writes, on_commit));
                    }
                    Command::Read(f) => {
                        self.commit(&mut batch);
                        self.guarded(|c| f(c));
                    }
                    Command::Flush(done) => {
                        self.commit(&mut batch);
                        if !self.retained.is_empty() {
                            self.retry_retained();
                        }
                        let r = if self.retained.is_empty() {
                            Ok(())
                        } else {
                            Err(StoreError::NotCommitted {
                                pending: self.retained_writes,
                                cause: self.last_error.clone(),
                            })
                        };
                        let _ = done.send(r);
                    }
                }
                if batch.len() >= GROUP_MAX {
                    self.commit(&mut batch);
                }
                if batch.is_empty() {
                    linger_until = None;
                }
            }
            self.commit(&mut batch);
        }
    }

    /// Runs a read under `catch_unwind`: a panicking closure must not end the store thread.
    fn guarded(&mut self, f: impl FnOnce(&Connection)) {
        let conn = &self.conn;
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))) {
            error!(cause = %crate::supervision::panic_message(p.as_ref()), "a store read panicked");
        }
    }

    fn commit(&mut self, batch: &mut Vec<Batch>) {
        if batch.is_empty() {
            return;
        }
        if self.failing.load(Ordering::SeqCst) {
            // Retries follow their own backoff; keep the order.
            for (writes, cb) in batch.drain(..) {
                self.retain(writes);
                if let Some(cb) = cb {
                    cb(Err(format!("storage failing: {}", self.last_error)));
                }
            }
            return;
        }
        let all: Vec<&Vec<Write>> = batch.iter().map(|(w, _)| w).collect();
        match apply(&mut self.conn, &all) {
            Ok(()) => {
                for (_, cb) in batch.drain(..) {
                    if let Some(cb) = cb {
                        cb(Ok(()));
                    }
                }
            }
            Err(e) if is_environmental(&e) => self.start_failing(&e, batch),
            Err(e) => {
                // A bad write: each batch alone, so that it fails by itself.
                warn!(cause = %e, batches = batch.len(), "store transaction failed, retrying batch by batch");
                for (writes, cb) in batch.drain(..) {
                    let r = apply(&mut self.conn, &[&writes]);
                    let outcome = match r {
                        Ok(()) => Ok(()),
                        Err(e) if is_environmental(&e) => {
                            self.start_failing(&e, &mut vec![(writes, cb)]);
                            continue;
                        }
                        Err(e) => {
                            error!(cause = %e, writes = writes.len(), "a write batch was refused by SQLite and is dropped");
                            Err(e.to_string())
                        }
                    };
                    if let Some(cb) = cb {
                        cb(outcome);
                    }
                }
            }
        }
    }

    fn start_failing(&mut self, e: &rusqlite::Error, batch: &mut Vec<Batch>) {
        self.last_error = e.to_string();
        if !self.failing.swap(true, Ordering::SeqCst) {
            error!(cause = %e, "SQLite cannot commit: storage failing, retrying with backoff");
            self.retry_delay = RETRY_INITIAL;
            self.next_retry = Some(Instant::now() + self.retry_delay);
        }
        for (writes, cb) in batch.drain(..) {
            self.retain(writes);
            if let Some(cb) = cb {
                cb(Err(format!("storage failing: {e}")));
            }
        }
    }

    fn retain(&mut self, writes: Vec<Write>) {
        self.retained_writes += writes.len();
        self.retained.push_back(writes);
        while self.retained_writes > RETAINED_MAX {
            let Some(old) = self.retained.pop_front() else {
                break;
            };
            self.retained_writes -= old.len();
            self.dropped += old.len() as u64;
            error!(
                dropped_total = self.dropped,
                "storage failing too long: oldest unwritten records dropped"
            );
        }
    }

    /// Commits the retained writes, oldest first; clears the failing flag on success.
    fn retry_retained(&mut self) {
        let all: Vec<&Vec<Write>> = self.retained.iter().collect();
        let r = if all.is_empty() {
            // Nothing retained: probe with an empty write transaction.
            self.conn
                .execute_batch("BEGIN IMMEDIATE; COMMIT;")
                .inspect_err(|_| {
                    let _ = self.conn.execute_batch("ROLLBACK;");
                })
        } else {
            apply(&mut self.conn, &all)
        };
        match r {
            Ok(()) => {
                if self.failing.swap(false, Ordering::SeqCst) {
                    warn!(
                        committed = self.retained_writes,
                        "SQLite commits again: storage recovered"
                    );
                }
                self.retained.clear();
                self.retained_writes = 0;
                self.next_retry = None;
            }
            Err(e) if !is_environmental(&e) && !self.retained.is_empty() => {
                // One retained batch is bad in itself: commit the others one by one.
                let mut kept = VecDeque::new();
                for writes in std::mem::take(&mut self.retained) {
                    if let Err(e) = apply(&mut self.conn, &[&writes]) {
                        if is_environmental(&e) {
                            kept.push_back(writes);
                        } else {
                            error!(cause = %e, "a retained write batch was refused by SQLite and is dropped");
                        }
                    }
                }
                self.retained_writes = kept.iter().map(Vec::len).sum();
                self.retained = kept;
                if self.retained.is_empty() {
                    self.failing.store(false, Ordering::SeqCst);
                    warn!("SQLite commits again: storage recovered");
                    self.next_retry = None;
                } else {
                    self.schedule_retry();
                }
            }
            Err(e) => {
                self.last_error = e.to_string();
                self.schedule_retry();
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.retry_delay = (self.retry_delay * 2).min(RETRY_MAX);
        self.next_retry = Some(Instant::now() + self.retry_delay);
    }
}

fn apply(conn: &mut Connection, batch: &[&Vec<Write>]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    rows::apply_all(&tx, batch.iter().flat_map(|w| w.iter()))?;
    tx.commit()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::intent::IntentKind;
    use crate::store::rows::SendRecord;
    use crate::types::MarketId;
    use rust_decimal::Decimal;

    /// A database file path in a fresh directory under the system's temp directory, and
    /// that directory (for the test to remove).
    pub(crate) fn temp_db(tag: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "mm-store-{tag}-{}-{}",
            std::process::id(),
            crate::types::now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        (dir.join("s.db"), dir)
    }

    /// The store's thread held inside a read until the returned sender sends (then await the
    /// handle): what is queued meanwhile waits behind it.
    pub(crate) async fn hold_thread(
        store: &Store,
    ) -> (
        std::sync::mpsc::Sender<()>,
        actix_rt::task::JoinHandle<Result<(), StoreError>>,
    ) {
        let (hold, release) = std::sync::mpsc::channel::<()>();
        let (entered, inside) = oneshot::channel::<()>();
        let reader = store.clone();
        let held = actix_rt::spawn(async move {
            reader
                .read(move |_| {
                    let _ = entered.send(());
                    let _ = release.recv();
                    Ok(())
                })
                .await
        });
        inside.await.expect("the thread is in the read");
        (hold, held)
    }

    fn send(outbox_id: Option<i64>) -> Write {
        Write::VenueSend(SendRecord {
            sent_at_ms: 1,
            kind: IntentKind::Cancel,
            market: MarketId("ADAUSDM".into()),
            outbox_id,
            attempt: 1,
            source: "test",
            venue_order: None,
            post_only: None,
            tick_recv_at: None,
        })
    }

    async fn sends_stored(store: &Store) -> i64 {
        store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM outbox_sends", [], |r| r.get(0))?))
            .await
            .expect("count")
    }

    #[actix_rt::test]
    async fn on_a_thread_that_puts_writes_off_a_read_or_flush_sees_every_write_queued_before_it() {
        let (path, dir) = temp_db("after-turn");
        let store = Store::open(&path).expect("store");
        assert!(crate::after_turn::start());
        store.write(vec![send(None)], None);
        assert_eq!(
            sends_stored(&store).await,
            1,
            "the read went after the write"
        );
        store.write(vec![send(None)], None);
        store.flush().await.expect("flush");
        let n: i64 = rusqlite::Connection::open(&path)
            .expect("open")
            .query_row("SELECT COUNT(*) FROM outbox_sends", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 2, "the flush waited for the write queued before it");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The queue counts every write handed over until the store's thread takes it up, and
    /// keeps the most it held at once.
    #[actix_rt::test]
    async fn the_queue_counts_writes_until_the_thread_takes_them() {
        let (path, dir) = temp_db("queue");
        let store = Store::open(&path).expect("store");
        let queue = store.queue();
        // The thread is held inside a read until the writes below are queued behind it.
        let (hold, held) = hold_thread(&store).await;
        store.write(vec![send(None), send(None)], None);
        store.write(vec![send(None)], None);
        assert_eq!((queue.len(), queue.peak()), (3, 3), "three writes wait");
        hold.send(()).expect("release");
        held.await.expect("joined").expect("read");
        store.flush().await.expect("flush");
        assert_eq!(sends_stored(&store).await, 3);
        assert!(queue.is_empty(), "taken up: {}", queue.len());
        assert_eq!(queue.peak(), 3, "the most at once is kept");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[actix_rt::test]
    async fn a_bad_write_fails_alone_and_the_rest_of_its_group_commits() {
        let (path, dir) = temp_db("bad-row");
        let store = Store::open(&path).expect("store");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Three batches queued together (one group commit); the middle one references an
        // outbox row that does not exist (a foreign key).
        for (name, w) in [
            ("first", send(None)),
            ("bad", send(Some(424_242))),
            ("last", send(None)),
        ] {
            let tx = tx.clone();
            store.write(
                vec![w],
                Some(Box::new(move |r| {
                    let _ = tx.send((name, r.is_ok()));
                })),
            );
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv().await.expect("outcome"));
        }
        got.sort();
        assert_eq!(got, vec![("bad", false), ("first", true), ("last", true)]);
        assert!(!store.is_failing(), "a bad row is not a failing disk");
        let n = sends_stored(&store).await;
        assert_eq!(n, 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Quote rows of one batch, among other writes, land in their order with their values,
    /// and the next batch writes them as well (the batch holds the statement, then returns it).
    #[actix_rt::test]
    async fn quote_rows_among_other_writes_land_in_order_batch_after_batch() {
        let (path, dir) = temp_db("quotes");
        let store = Store::open(&path).expect("store");
        let m = MarketId("ADAUSDM".into());
        let quote = |ts_ms: i64, bid: &str| {
            let bid: Decimal = bid.parse().expect("bid");
            Write::Quote(rows::QuoteRecord {
                market: m.clone(),
                ts_ms,
                reason: crate::order_manager::QuoteReason::Start,
                ref_bid: bid,
                ref_ask: bid + Decimal::new(1, 4),
                fair: bid,
                bid: Some(bid),
                ask: None,
                inventory: Decimal::ZERO,
                levels: Vec::new(),
                venue_bid: None,
                venue_ask: Some(bid),
            })
        };
        let denial = |ts_ms| Write::Denials {
            ts_ms,
            market: m.clone(),
            reason: "outside_band",
            count: 1,
        };
        store.write(
            vec![
                quote(1, "0.4500"),
                send(None),
                quote(2, "0.4501"),
                denial(2),
                quote(3, "0.4502"),
            ],
            None,
        );
        store.flush().await.expect("flush");
        store.write(vec![quote(4, "0.4503"), send(None)], None);
        store.flush().await.expect("flush");
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = store
            .read(|c| {
                let mut st =
                    c.prepare("SELECT ts_ms, ref_bid, ask, venue_ask FROM quotes ORDER BY id")?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .expect("read");
        let expected: Vec<(i64, String, Option<String>, Option<String>)> =
            [(1, "0.4500"), (2, "0.4501"), (3, "0.4502"), (4, "0.4503")]
                .into_iter()
                .map(|(ts, bid)| (ts, bid.to_string(), None, Some(bid.to_string())))
                .collect();
        assert_eq!(rows, expected);
        assert_eq!(sends_stored(&store).await, 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[actix_rt::test]
    async fn denials_of_one_millisecond_market_and_reason_are_summed_into_one_row() {
        let (path, dir) = temp_db("denials");
        let store = Store::open(&path).expect("store");
        let m = MarketId("ADAUSDM".into());
        let denial = |ts_ms, reason, count| Write::Denials {
            ts_ms,
            market: m.clone(),
            reason,
            count,
        };
        // One batch (one transaction): the sums cannot depend on how writes were grouped.
        store.write(
            vec![
                denial(5, "outside_band", 2),
                denial(5, "position_limit", 1),
                denial(5, "outside_band", 3),
                denial(6, "outside_band", u64::MAX),
                denial(6, "outside_band", 1),
            ],
            None,
        );
        store.flush().await.expect("flush");
        let rows: Vec<(i64, String, i64)> = store
            .read(|c| {
                let mut s =
                    c.prepare("SELECT ts_ms, reason, count FROM denials ORDER BY ts_ms, reason")?;
                let rows = s
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                (5, "outside_band".to_string(), 5),
                (5, "position_limit".to_string(), 1),
                (6, "outside_band".to_string(), i64::MAX),
            ]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Rows committed as seen by another connection (as `status` or `report` would see them).
    fn sends_visible(path: &Path) -> i64 {
        let c = Connection::open(path).expect("second connection");
        c.query_row("SELECT COUNT(*) FROM outbox_sends", [], |r| r.get(0))
            .expect("count")
    }

    #[actix_rt::test]
    async fn writes_nobody_waits_on_commit_with_the_next_awaited_one_or_on_their_own() {
        let (path, dir) = temp_db("linger");
        let store = Store::open(&path).expect("store");
        // Writes without a callback, then one whose writer waits: by the time its callback
        // runs, everything queued before it is committed too, in the same transaction.
        for _ in 0..20 {
            store.write(vec![send(None)], None);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        store.write(
            vec![send(None)],
            Some(Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            })),
        );
        assert!(rx.await.expect("callback"));
        assert_eq!(sends_visible(&path), 21);
        // A lone write nobody waits on still commits by itself, within the linger (nothing
        // announces that commit: poll it from outside).
        store.write(vec![send(None)], None);
        let mut seen = 0;
        for _ in 0..1_000 {
            seen = sends_visible(&path);
            if seen == 22 {
                break;
            }
            std::thread::sleep(LINGER);
        }
        assert_eq!(seen, 22, "a write nobody waits on is not held forever");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[actix_rt::test]
    async fn a_locked_database_fails_the_store_which_retains_and_recovers() {
        let (path, dir) = temp_db("locked");
        let store = Store::open(&path).expect("store");
        let holder = Connection::open(&path).expect("second connection");
        holder.execute_batch("BEGIN EXCLUSIVE;").expect("lock");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let t = tx.clone();
        store.write(
            vec![send(None)],
            Some(Box::new(move |r| {
                let _ = t.send(r.is_ok());
            })),
        );
        assert_eq!(
            rx.recv().await,
            Some(false),
            "told at once it did not commit"
        );
        assert!(store.is_failing(), "the failing flag is up");
        assert!(matches!(
            store.flush().await,
            Err(StoreError::NotCommitted { pending: 1, .. })
        ));
        holder.execute_batch("ROLLBACK;").expect("unlock");
        // A flush retries the retained write at once: it commits, and the flag clears.
        store.flush().await.expect("everything committed");
        assert!(!store.is_failing());
        let n = sends_stored(&store).await;
        assert_eq!(n, 1, "nothing lost");
        let _ = std::fs::remove_dir_all(dir);
    }
}
