//! The embedded database: SQLite in `DATA_DIR/pipeline.db`, its schema in numbered migrations.
//!
//! - [`SqliteTable`]: the items table port. Every committed item write appends its stream record
//!   (INSERT/MODIFY, Keys, OldImage, NewImage) in the same transaction, so the stream is exactly
//!   the table's history.
//! - [`SqliteStream`]: that stream as the mappings' record source, with their checkpoints and dead
//!   letters (the on-failure destination).
//! - [`Database::mirror`]: the engine's AWS backend mirrors DynamoDB Streams into the same stream.
//! - [`Database::record_notice`]: the notices the mailbox has published, for its deduplication.

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use rusqlite::Connection;
use tokio::sync::watch;

mod async_queue;
mod migrations;
mod mirror;
mod notices;
mod stream;
mod table;

pub use migrations::{migrations, V1};
pub use mirror::ShardPosition;
pub use stream::{DeadLetterRow, SqliteStream, Unread};
pub use table::SqliteTable;

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
            changes,
            queued: Arc::new(watch::channel(0).0),
            fsync: durability == Durability::Power,
        })
    }

    /// The schema version (`user_version`).
    pub async fn schema_version(&self) -> anyhow::Result<u32> {
        self.call(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .await
    }

    /// Runs `f` with the connection. Without fsync a call takes microseconds, less than handing it
    /// to a blocking thread would, so it runs in place; with fsync it goes to a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> anyhow::Result<T>
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

    /// Wakes when the stream grows.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn appended(&self, seq: u64) {
        self.changes.send_replace(seq);
    }

    /// Wakes when an asynchronous event is enqueued (in this process).
    pub fn subscribe_queue(&self) -> watch::Receiver<u64> {
        self.queued.subscribe()
    }

    fn enqueued(&self) {
        self.queued.send_modify(|n| *n += 1);
    }
}

/// How often the checkpointer looks for new writes to copy from the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The WAL's size on disk after it starts over (`journal_size_limit`): a few checkpoints' worth of
/// writes at the engine's full rate.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// Copies the WAL into the database on a thread and connection of its own, a few times a second
/// while the stream grows. SQLite's automatic checkpoint runs inside the commit that fills the WAL
/// and syncs the disk twice; calls run in place on the runtime's workers, so on the engine's one
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
