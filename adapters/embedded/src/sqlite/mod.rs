//! The embedded database: SQLite in `DATA_DIR/pipeline.db`, its schema in numbered migrations.
//!
//! - [`SqliteTable`]: the items table port. Every committed item write appends its stream record
//!   (INSERT/MODIFY, Keys, OldImage, NewImage) in the same transaction, so the stream is exactly
//!   the table's history.
//! - [`SqliteStream`]: that stream as the mappings' record source, with their checkpoints and dead
//!   letters (the on-failure destination, which the failure function receives as a queue).
//! - [`Database::mirror`]: the engine's AWS backend mirrors DynamoDB Streams into the same stream.
//! - [`Database::record_notice`]: the notices the mailbox has published, for its deduplication.
//! - [`Database::record_publish`]: the same, with the webhook outbox written in its transaction
//!   (`webhooks`).
//!
//! Over 400 lines: the connection, its group commit and its checkpointer thread are one
//! mechanism (a commit's durability depends on all three); the table, stream and queues are
//! modules of their own.

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use rusqlite::Connection;
use tokio::sync::watch;

mod async_queue;
mod dead_letters;
mod migrations;
mod mirror;
mod notices;
mod stream;
mod table;
mod webhooks;

pub use dead_letters::{DeadLetterRow, QueuePolicy};
pub use migrations::{migrations, V1};
pub use mirror::ShardPosition;
pub use stream::{SqliteStream, Unread};
pub use table::SqliteTable;
pub use webhooks::{
    Attempted, OutboxRow, Publish, Published, WebhookSubscription, CONFIRMATION, NOTIFICATION,
};

/// The table's stream ARN as the local records name it.
pub const STREAM_ARN: &str = "arn:aws:dynamodb:local:000000000000:table/images/stream/local";
/// The region the local records name.
pub const REGION: &str = "local";

/// What a write survives before it is acknowledged (an upload answered, a checkpoint moved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// A killed or crashed process: writes are in SQLite's WAL and the OS's page cache, which the
    /// process's death does not touch. No fsync per write.
    #[default]
    Process,
    /// A power cut as well: every commit and every object or mail file is fsynced first.
    Power,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "process" => Ok(Durability::Process),
            "power" => Ok(Durability::Power),
            _ => Err(format!("durability {s:?}: expected process or power")),
        }
    }
}

/// A shared SQLite connection; `changes` ticks on every stream append, `queued` on every
/// asynchronous event enqueued.
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
    /// Calls waiting for the next group commit.
    pending: Arc<Mutex<Pending>>,
    /// Group commits made (batches whose transaction committed).
    commits: Arc<std::sync::atomic::AtomicU64>,
    changes: Arc<watch::Sender<u64>>,
    queued: Arc<watch::Sender<u64>>,
    fsync: bool,
}

impl Database {
    pub fn open(path: &Path) -> anyhow::Result<Database> {
        Self::open_with(path, Durability::default())
    }

    /// Opens (or creates) the database and brings its schema to the latest version.
    pub fn open_with(path: &Path, durability: Durability) -> anyhow::Result<Database> {
        let mut conn =
            Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        // WAL lets the CLI read while the engine writes. With synchronous=NORMAL a commit is in the
        // WAL before it returns, so a killed process loses nothing; FULL also waits for the disk,
        // so a power cut loses nothing either.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Checkpoints are the checkpointer thread's (below), not the committing call's.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // When a checkpoint lets the WAL start over, a WAL that grew past this is cut back to it.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        // Every statement of the hot paths stays prepared (rusqlite keeps 16 by default; parsing
        // SQL again was 8% of the engine's CPU under load).
        conn.set_prepared_statement_cache_capacity(64);
        // The indexes that items are found by (their ids are random) outgrow SQLite's default 2 MB
        // of cached pages within a minute of load; every miss is a read, and a page read to be
        // changed is written to the WAL again.
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
        migrations()
            .to_latest(&mut conn)
            .with_context(|| format!("migrating {}", path.display()))?;
        let last: u64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM stream", [], |r| r.get(0))?;
        let changes = Arc::new(watch::channel(last).0);
        let conn = Arc::new(Mutex::new(conn));
        checkpointer(path, Arc::downgrade(&changes), Arc::downgrade(&conn))?;
        Ok(Database {
            conn,
            pending: Default::default(),
            commits: Default::default(),
            changes,
            queued: Arc::new(watch::channel(0).0),
            fsync: durability == Durability::Power,
        })
    }

    /// The schema version (`user_version`).
    pub async fn schema_version(&self) -> anyhow::Result<u32> {
        self.read(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .await
    }

    /// Runs `f`, which only reads, with the connection. A read takes microseconds, less than
    /// handing it to a blocking thread would, so it runs in place; with fsync it goes to a
    /// blocking thread, as the connection may be held by a commit waiting for the disk.
    pub async fn read<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        if !self.fsync {
            let mut conn = conn
                .lock()
                .map_err(|_| anyhow::anyhow!("database lock poisoned"))?;
            return f(&mut conn);
        }
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| anyhow::anyhow!("database lock poisoned"))?;
            f(&mut conn)
        })
        .await
        .context("database task")?
    }

    /// Runs `f` with the connection, in the next group commit: the calls made while one runs are
    /// run one after another in a single transaction, and each gets its answer once that
    /// transaction has committed. A commit costs the same for one write as for many (SQLite's
    /// locks, the WAL frames of the pages they share, and with fsync the sync), and under load the
    /// pipeline makes several writes an item. Each call runs in a savepoint of its own, so an
    /// error or a panic undoes its writes and leaves the batch's other calls as they were.
    ///
    /// Writes made one after another wait for a commit each: work that can go on together (the
    /// records of a batch) should make its writes together.
    pub async fn write<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let call: Call = Box::new(move |conn| {
            let result = conn.and_then(f);
            let succeeded = result.is_ok();
            let answer: Answer = Box::new(move |committed: Result<(), &anyhow::Error>| {
                let result = match committed {
                    Ok(()) => result,
                    Err(e) => result.and_then(|_| Err(anyhow::anyhow!("committing: {e:#}"))),
                };
                let _ = answer.send(result);
            });
            (succeeded, answer)
        });
        let start = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.calls.push(call);
            !std::mem::replace(&mut pending.committing, true)
        };
        if start {
            tokio::spawn(self.clone().commit_batches());
        }
        answered
            .await
            .map_err(|_| anyhow::anyhow!("the database call panicked, or its runtime stopped"))?
    }

    /// Runs the waiting calls in batches, one transaction each, until none are left.
    async fn commit_batches(self) {
        // Dropped unfinished (its runtime shut down), this task hands the waiting calls on to the
        // next write's.
        let mut handover = Handover {
            pending: &self.pending,
            finished: false,
        };
        loop {
            // The tasks that are ready now make their calls before this batch is taken.
            behind_the_ready_tasks().await;
            let calls = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if pending.calls.is_empty() {
                    pending.committing = false;
                    handover.finished = true;
                    return;
                }
                std::mem::take(&mut pending.calls)
            };
            let conn = self.conn.clone();
            let committed = if self.fsync {
                // A synced commit waits for the disk: not on the runtime's threads.
                let batch = tokio::task::spawn_blocking(move || commit_batch(&conn, calls));
                batch.await.unwrap_or_else(|_| {
                    tracing::error!("a database batch panicked");
                    false
                })
            } else {
                // Without fsync a batch takes microseconds a call, less than handing it to a
                // blocking thread would.
                commit_batch(&conn, calls)
            };
            if committed {
                self.commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// How many group commits this handle's writes have made: fewer than its writes when they
    /// came together.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wakes when the stream grows.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Callers of one batch hear their answers in any order, so the newest position wins.
    fn appended(&self, seq: u64) {
        self.changes.send_if_modified(|head| {
            let newer = seq > *head;
            *head = (*head).max(seq);
            newer
        });
    }

    /// Wakes when an asynchronous event is enqueued (in this process).
    pub fn subscribe_queue(&self) -> watch::Receiver<u64> {
        self.queued.subscribe()
    }

    fn enqueued(&self) {
        self.queued.send_modify(|n| *n += 1);
    }
}

/// Returns once every task that was ready to run has had its turn: the task wakes itself, which
/// puts it at the back of its worker's queue. (`tokio::task::yield_now` waits for the worker to
/// look for I/O, which under load is up to 61 tasks later, and every write in the pipeline waits
/// for its batch.)
async fn behind_the_ready_tasks() {
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut woken, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// A call waiting for a batch: given the connection (or why there is none), it runs and returns
/// whether it succeeded and how to answer once the batch's commit is known.
type Call = Box<dyn FnOnce(anyhow::Result<&mut Connection>) -> (bool, Answer) + Send>;
type Answer = Box<dyn FnOnce(Result<(), &anyhow::Error>) + Send>;

#[derive(Default)]
struct Pending {
    calls: Vec<Call>,
    /// Whether a task is committing batches (and will take these calls).
    committing: bool,
}

struct Handover<'a> {
    pending: &'a Mutex<Pending>,
    finished: bool,
}

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .committing = false;
        }
    }
}

/// Runs `calls` in one transaction and answers each once it has committed. Each call runs in a
/// savepoint of its own, so an error or a panic undoes exactly its writes and the others go on (a
/// call that panics answers nothing, and its caller hears so). Should the batch's transaction not
/// begin, each call's savepoint is a transaction of its own, as if it had been alone. Whether the
/// batch's transaction committed.
fn commit_batch(conn: &Mutex<Connection>, calls: Vec<Call>) -> bool {
    let mut conn = match conn.lock() {
        Ok(conn) => conn,
        Err(_) => {
            let poisoned = anyhow::anyhow!("database lock poisoned");
            for call in calls {
                call(Err(anyhow::anyhow!("database lock poisoned"))).1(Err(&poisoned));
            }
            return false;
        }
    };
    let batched = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
    let mut answers = Vec::with_capacity(calls.len());
    for call in calls {
        if let Err(e) = statement(&conn, "SAVEPOINT call") {
            let e = anyhow::Error::new(e).context("starting a savepoint");
            call(Err(anyhow::anyhow!("{e:#}"))).1(Err(&e));
            continue;
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(Ok(&mut conn))));
        let kept = match ran {
            Ok((succeeded, answer)) => {
                answers.push(answer);
                succeeded
            }
            Err(_) => false,
        };
        if !kept {
            let _ = statement(&conn, "ROLLBACK TO call");
        }
        if let Err(e) = statement(&conn, "RELEASE call") {
            tracing::error!(error = %e, "releasing a savepoint");
        }
    }
    let committed = if batched {
        conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            anyhow::Error::new(e)
        })
    } else {
        Ok(())
    };
    drop(conn);
    for answer in answers {
        answer(committed.as_ref().map(|_| ()));
    }
    batched && committed.is_ok()
}

/// Runs one of the batch's own statements, prepared once.
fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The connection's page cache, in KiB: the indexes of a few hundred thousand items.
const PAGE_CACHE_KIB: i64 = 32 * 1024;

/// How often the checkpointer looks for new writes to copy from the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The WAL's size on disk after it starts over (`journal_size_limit`): a few checkpoints' worth of
/// writes at the engine's full rate.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// Copies the WAL into the database on a thread and connection of its own, a few times a second
/// while the stream grows. SQLite's automatic checkpoint runs inside the commit that fills the WAL
/// and syncs the disk twice; commits run in place on the runtime's workers, so on the engine's one
/// core that commit stalled the whole engine (on this disk, with a quarter of the core idle under
/// load). A passive checkpoint takes no lock a writer or reader waits for. The thread ends once
/// the last handle of the database is dropped.
///
/// A passive checkpoint alone never lets the WAL start over under load: SQLite goes back to the
/// WAL's beginning only when a writer finds every frame already copied, and the engine commits
/// while the checkpoint copies. The WAL then grew for as long as the load lasted (580 MB in 10 s of
/// tiny uploads), and every commit appended to it: new blocks, zeroed by the kernel, which was 13%
/// of the engine's CPU. So once the passive pass is done, the rest (what was committed during it)
/// is copied while the engine's connection is held, and its next commit starts the WAL over
/// (`tests/checkpoints.rs`: without this, 2.1 GB of WAL in 20 s of two writers).
fn checkpointer(
    path: &Path,
    changes: Weak<watch::Sender<u64>>,
    engine: Weak<Mutex<Connection>>,
) -> anyhow::Result<()> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut copied = None;
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                let Some(changes) = changes.upgrade() else {
                    return;
                };
                let head = *changes.borrow();
                drop(changes);
                if copied == Some(head) {
                    continue;
                }
                // A pass reports what it found at its start as all copied, yet the engine commits
                // while it copies; those frames are copied again with the engine's connection
                // held (a short wait for its writers), so that nothing is left to copy when the
                // engine's next commit comes, and that commit starts the WAL over.
                let done = checkpoint(&conn).and_then(|_| match engine.upgrade() {
                    Some(engine) => {
                        let _writers_wait = engine.lock();
                        checkpoint(&conn)
                    }
                    None => Ok(false),
                });
                match done {
                    Ok(true) => copied = Some(head),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
                }
            }
        })
        .context("starting the checkpoint thread")?;
    Ok(())
}

/// A passive checkpoint: whether every frame it found in the WAL is now in the database.
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    // (busy, frames in the WAL, frames copied)
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(r.get::<_, i64>(1)? == r.get::<_, i64>(2)?)
    })
}

/// DynamoDB-style sequence numbers: numeric strings; zero-padded so text order is numeric order.
pub fn sequence_number(seq: u64) -> String {
    format!("{seq:021}")
}
